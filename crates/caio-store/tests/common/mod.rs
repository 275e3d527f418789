//! What every backend of the store must do, as scenarios each backend's
//! tests run on a real database.

#![allow(dead_code)]

use std::sync::Arc;

use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_store::{Store, StoreError};

pub fn contract(id: &str, version: &str) -> Contract {
    let text = format!(
        "{{id: {id}, version: {version}, capabilities: [chat], privacy: {{data_locality: local}}, api: {{adapter: ollama, endpoint: 'http://127.0.0.1:11434'}}}}"
    );
    parse_contracts(&text, Format::Yaml).unwrap().remove(0)
}

pub fn body(i: u64) -> caio_calculus::trace::Body {
    serde_json::json!({"request_id": format!("r{i}"), "selected": "a", "score": 0.5 + i as f64 / 7.0}).into()
}

/// Versions, deprecation and registration errors, and that they survive a
/// reopen; `open` opens the same store again each time.
pub fn registry_keeps_versions(open: &dyn Fn() -> Box<dyn Store>) {
    let store = open();
    let before = store.registry_generation().unwrap();
    store.register(contract("a", "1.0.0"), 10, "admin").unwrap();
    store.register(contract("a", "1.10.0"), 11, "admin").unwrap();
    let record = store.register(contract("a", "1.2.0"), 12, "admin").unwrap();
    let versions: Vec<&str> = record.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0"], "semantic-version order, not text order");
    assert_eq!(record.active().unwrap().version, "1.10.0");
    assert_eq!(
        store.register(contract("a", "1.0.0"), 13, "admin").unwrap_err(),
        StoreError::Duplicate { service: "a".into(), version: "1.0.0".into() }
    );
    let mut invalid = contract("b", "1.0.0");
    invalid.api.endpoint = "javascript:alert(1)".into();
    assert!(
        matches!(store.register(invalid, 14, "admin"), Err(StoreError::Invalid { path, .. }) if path == "api.endpoint")
    );
    store.register(contract("b", "1.0.0"), 15, "admin").unwrap();
    assert_eq!(store.registry().unwrap().entries().count(), 2);
    let deprecated = store.deprecate("a", 20, "admin").unwrap();
    assert_eq!(deprecated.deprecated_at, Some(20));
    assert_eq!(store.registry().unwrap().entries().map(|e| e.contract.id.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(store.deprecate("nope", 21, "admin").unwrap_err(), StoreError::UnknownService("nope".into()));
    // A new version brings a deprecated service back.
    store.register(contract("a", "2.0.0"), 30, "admin").unwrap();
    assert_eq!(store.service("a").unwrap().unwrap().deprecated_at, None);
    assert_eq!(store.service("nope").unwrap(), None);
    let after = store.registry_generation().unwrap();
    drop(store);
    let reopened = open();
    assert_eq!(
        reopened.services().unwrap().iter().map(|s| (s.id.as_str(), s.versions.len())).collect::<Vec<_>>(),
        [("a", 4), ("b", 1)]
    );
    assert_eq!(reopened.registry_generation().unwrap(), after, "the generation is stored");
    if after != 0 {
        assert_eq!(after - before, 6, "five registrations and one deprecation changed the registry");
    }
}

/// Appends link, verify whole and in part, and survive a reopen.
pub fn appends_chain_and_persist(open: &dyn Fn() -> Box<dyn Store>) {
    let store = open();
    assert_eq!(store.verify(None, None).unwrap().checked, 0);
    for i in 0..10 {
        let trace = store.append(body(i)).wait().unwrap();
        assert_eq!(trace.seq, i);
    }
    let report = store.verify(None, None).unwrap();
    assert_eq!((report.first, report.last, report.checked, report.anchored), (Some(0), Some(9), 10, true));
    let part = store.verify(Some(3), Some(5)).unwrap();
    assert_eq!((part.first, part.last, part.checked, part.anchored), (Some(3), Some(5), 3, false));
    let head = store.head().unwrap().unwrap();
    drop(store);
    let store = open();
    assert_eq!(store.head().unwrap().unwrap(), head, "the log survives a reopen");
    let next = store.append(body(10)).wait().unwrap();
    assert_eq!((next.seq, next.prev_hash.as_str()), (10, head.hash.as_str()));
    assert_eq!(store.trace(4).unwrap().unwrap().body, body(4));
    assert_eq!(store.trace(99).unwrap(), None);
}

/// Eight threads over `stores` (one store, or several on one database, as
/// replicas would be) append 400 traces: each gets its own sequence number
/// and the log is one chain.
pub fn concurrent_appends_keep_one_chain(stores: &[Arc<dyn Store>]) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = stores[t as usize % stores.len()].clone();
            std::thread::spawn(move || {
                (0..50).map(|i| store.append(body(t * 1000 + i)).wait().unwrap().seq).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..400).collect::<Vec<_>>(), "every append got its own sequence number");
    for store in stores {
        assert_eq!(store.verify(None, None).unwrap().checked, 400);
    }
}

/// The Merkle tree over the log: its root at every size, and inclusion and
/// consistency proofs across the saved subtrees of 256 entries, each
/// checked as an auditor would, with nothing but hashes, against the root
/// recomputed from every entry.
pub fn the_tree_proves_every_entry(store: &dyn Store) {
    use caio_calculus::merkle::{link_bytes, log_leaf, root, verify_consistency, verify_inclusion};
    store.register(contract("a", "1.0.0"), 1, "admin").unwrap();
    for i in 0..700 {
        store.append(body(i)).wait().unwrap();
    }
    let leaves: Vec<_> = (0..701).map(|seq| log_leaf(&store.trace(seq).unwrap().unwrap().hash).unwrap()).collect();
    let head = store.tree_head().unwrap();
    assert_eq!((head.size, head.root), (701, root(&leaves)));
    let root_at = |size: u64| root(&leaves[..size as usize]);
    for (seq, size) in
        [(0, 1), (0, 701), (255, 256), (256, 257), (256, 701), (511, 512), (700, 701), (300, 600), (17, 513)]
    {
        let proof = store.inclusion_proof(seq, size).unwrap();
        assert_eq!((proof.seq, proof.size, proof.root.clone()), (seq, size, caio_calculus::trace::hex(&root_at(size))));
        let hashes: Vec<_> = proof.proof.iter().map(|h| link_bytes(h).unwrap()).collect();
        assert!(verify_inclusion(&leaves[seq as usize], seq, size, &hashes, &root_at(size)), "entry {seq} of {size}");
        assert_eq!(proof.leaf, caio_calculus::trace::hex(&leaves[seq as usize]));
    }
    for (from, to) in [(0, 701), (1, 701), (256, 512), (255, 700), (512, 701), (701, 701), (300, 301)] {
        let proof = store.consistency_proof(from, to).unwrap();
        let hashes: Vec<_> = proof.proof.iter().map(|h| link_bytes(h).unwrap()).collect();
        assert!(verify_consistency(from, to, &root_at(from), &root_at(to), &hashes), "{from} -> {to}");
    }
    assert!(matches!(store.inclusion_proof(0, 702), Err(StoreError::NoProof(_))));
    assert!(matches!(store.inclusion_proof(701, 701), Err(StoreError::NoProof(_))));
    assert!(matches!(store.consistency_proof(2, 1), Err(StoreError::NoProof(_))));
    // A checkpoint is kept, served, and checked by a full verification.
    store.save_checkpoint(head, "signed note".into(), 42).unwrap();
    let kept = store.checkpoint(None).unwrap().unwrap();
    assert_eq!(
        (kept.size, kept.root.as_str(), kept.note.as_str()),
        (701, caio_calculus::trace::hex(&head.root).as_str(), "signed note")
    );
    assert_eq!(store.checkpoint(Some(700)).unwrap(), None);
    let report = store.verify(None, None).unwrap();
    assert_eq!((report.checkpoints, report.registry_changes), (1, 1));
    assert_eq!(report.tree_root, Some(caio_calculus::trace::hex(&head.root)));
}

/// Registrations and deprecations are entries of the log that name who
/// made them and the contract's digest.
pub fn registry_changes_are_log_entries(store: &dyn Store) {
    use caio_store::registry_log::{RegistryChange, contract_digest};
    store.register(contract("a", "1.0.0"), 5, "alice").unwrap();
    store.append(body(0)).wait().unwrap();
    store.deprecate("a", 6, "bob").unwrap();
    store.deprecate("a", 7, "bob").unwrap();
    let changes: Vec<RegistryChange> =
        (0..3).filter_map(|seq| RegistryChange::of(&store.trace(seq).unwrap().unwrap())).collect();
    assert_eq!(changes.len(), 2, "a second deprecation of a deprecated service changes nothing");
    assert_eq!((changes[0].event.as_str(), changes[0].by.as_str(), changes[0].at), ("register", "alice", 5));
    assert_eq!(changes[0].digest.as_deref(), Some(contract_digest(&contract("a", "1.0.0")).as_str()));
    assert_eq!((changes[1].event.as_str(), changes[1].by.as_str()), ("deprecate", "bob"));
    assert_ne!(changes[0].registry, changes[1].registry);
    assert_eq!(store.verify(None, None).unwrap().registry_changes, 2);
    // The configuration a server starts with: an entry naming the policy and
    // the keys by digest, their texts kept by digest.
    use caio_store::registry_log::{ConfigChange, text_digest};
    let change = ConfigChange::of("rules: []\n", "issuer: caio\n", None, "caio serve (start)", 8);
    let entry = store.record_config(change.clone(), vec!["rules: []\n".into(), "issuer: caio\n".into()]).unwrap();
    assert_eq!(ConfigChange::read(&store.trace(entry.seq).unwrap().unwrap()), Some(change.clone()));
    assert_eq!(change.policy, text_digest("rules: []\n"));
    assert_eq!(store.text(&change.policy).unwrap().as_deref(), Some("rules: []\n"));
    assert_eq!(store.text(&text_digest("never kept")).unwrap(), None);
    let report = store.verify(None, None).unwrap();
    assert_eq!((report.checked, report.registry_changes), (entry.seq + 1, 2));
}
