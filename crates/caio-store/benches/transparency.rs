//! What the transparency log costs at scale: a SQLite store of 10^6
//! entries (small decision bodies, queued appends), then the tree head,
//! inclusion and consistency proofs at that size (time and size), their
//! verification, and signing a checkpoint. Prints each figure.
//!
//! ```sh
//! cargo bench -p caio-store --bench transparency            # 10^6 entries
//! cargo bench -p caio-store --bench transparency -- 100000  # another size
//! ```

use std::time::Instant;

use caio_calculus::merkle::{link_bytes, log_leaf, verify_consistency, verify_inclusion};
use caio_store::checkpoint::{Checkpoint, NoteSigner};
use caio_store::{SqliteStore, Store};

fn unhex(text: &str) -> [u8; 32] {
    link_bytes(text).expect("a hash in hex")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("transparency: bench");
        return;
    }
    let size: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bench.db")).unwrap();
    let started = Instant::now();
    let mut appended = 0;
    while appended < size {
        let batch = (size - appended).min(50_000);
        let pending: Vec<_> = (appended..appended + batch)
            .map(|i| {
                store.append(serde_json::json!({"request_id": format!("r{i}"), "selected": "svc", "score": 0.5}).into())
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        appended += batch;
        eprint!("\rappended {appended} of {size}");
    }
    eprintln!();
    let seconds = started.elapsed().as_secs_f64();
    println!("{size} entries appended in {seconds:.1} s ({:.0} appends/s, queued)", size as f64 / seconds);

    let rounds = 1000u64;
    let started = Instant::now();
    let mut head = store.tree_head().unwrap();
    for _ in 1..rounds {
        head = store.tree_head().unwrap();
    }
    println!("tree head at {} entries: {:.3} ms", head.size, started.elapsed().as_secs_f64() * 1e3 / rounds as f64);

    let (mut hashes, mut proving, mut checking) = (0usize, 0f64, 0f64);
    for i in 0..rounds {
        let seq = (i * 7919 * 104_729) % size;
        let started = Instant::now();
        let proof = store.inclusion_proof(seq, size).unwrap();
        proving += started.elapsed().as_secs_f64();
        let path: Vec<_> = proof.proof.iter().map(|h| unhex(h)).collect();
        let leaf = log_leaf(&store.trace(seq).unwrap().unwrap().hash).unwrap();
        let started = Instant::now();
        assert!(verify_inclusion(&leaf, seq, size, &path, &head.root));
        checking += started.elapsed().as_secs_f64();
        hashes += path.len();
    }
    let mean = hashes as f64 / rounds as f64;
    println!(
        "inclusion proof at {size}: {mean:.1} hashes ({:.0} bytes), {:.3} ms to make, {:.1} µs to verify",
        mean * 32.0,
        proving * 1e3 / rounds as f64,
        checking * 1e6 / rounds as f64
    );

    let (mut hashes, mut proving) = (0usize, 0f64);
    let old_sizes: Vec<u64> = (0..100u64).map(|i| 1 + (i * 104_729 * 7) % (size - 1)).collect();
    for &old in &old_sizes {
        let started = Instant::now();
        let proof = store.consistency_proof(old, size).unwrap();
        proving += started.elapsed().as_secs_f64();
        let path: Vec<_> = proof.proof.iter().map(|h| unhex(h)).collect();
        assert!(verify_consistency(old, size, &unhex(&proof.from_root), &head.root, &path));
        hashes += path.len();
    }
    println!(
        "consistency proof to {size}: {:.1} hashes, {:.3} ms to make (both roots included)",
        hashes as f64 / old_sizes.len() as f64,
        proving * 1e3 / old_sizes.len() as f64
    );

    let signer = NoteSigner::from_seed("bench.example/log", [1; 32]).unwrap();
    let checkpoint = Checkpoint { origin: "bench.example/log".into(), size, root: head.root };
    let started = Instant::now();
    let signs = 10_000;
    for _ in 0..signs {
        std::hint::black_box(signer.sign(&checkpoint));
    }
    println!("signing a checkpoint: {:.1} µs", started.elapsed().as_secs_f64() * 1e6 / signs as f64);

    let started = Instant::now();
    let report = store.verify(None, None).unwrap();
    println!(
        "full verification (chain, tree, registry): {} entries in {:.1} s",
        report.checked,
        started.elapsed().as_secs_f64()
    );
}
