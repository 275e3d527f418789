//! What durability costs: appends of decision-sized trace bodies (100
//! rejected services, about 7.7 KB) to a SQLite store, one at a time (each
//! waits for its own commit and sync) and queued (group commit: many per
//! transaction and sync). Prints the time per append of each.
//!
//! ```sh
//! cargo bench -p caio-store --bench append
//! ```

use std::time::Instant;

use caio_store::{SqliteStore, Store};

fn body(i: usize) -> caio_calculus::trace::Body {
    let rejected: Vec<_> = (0..100)
        .map(|j| serde_json::json!([format!("svc-{j:05}"), "rules", "rule r-7: requires service.cost.per_1k_tokens <= 0.5"]))
        .collect();
    serde_json::json!({"request_id": format!("r{i}"), "rejected": rejected}).into()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("append: bench");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bench.db")).unwrap();
    let bytes = body(0).as_str().len();
    let one_by_one = 500;
    let started = Instant::now();
    for i in 0..one_by_one {
        store.append(body(i)).wait().unwrap();
    }
    let sequential = started.elapsed().as_secs_f64() / one_by_one as f64;
    let queued_count = 20_000;
    let bodies: Vec<_> = (0..queued_count).map(body).collect();
    let started = Instant::now();
    let pending: Vec<_> = bodies.into_iter().map(|b| store.append(b)).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let queued = started.elapsed().as_secs_f64() / queued_count as f64;
    println!("trace body {bytes} bytes, synchronous = FULL");
    println!("one at a time: {:.3} ms per append ({:.0} appends/s)", sequential * 1e3, 1.0 / sequential);
    println!("queued (group commit): {:.3} ms per append ({:.0} appends/s)", queued * 1e3, 1.0 / queued);
}
