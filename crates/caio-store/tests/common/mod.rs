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
    store.register(contract("a", "1.0.0"), 10).unwrap();
    store.register(contract("a", "1.10.0"), 11).unwrap();
    let record = store.register(contract("a", "1.2.0"), 12).unwrap();
    let versions: Vec<&str> = record.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0"], "semantic-version order, not text order");
    assert_eq!(record.active().unwrap().version, "1.10.0");
    assert_eq!(
        store.register(contract("a", "1.0.0"), 13).unwrap_err(),
        StoreError::Duplicate { service: "a".into(), version: "1.0.0".into() }
    );
    let mut invalid = contract("b", "1.0.0");
    invalid.api.endpoint = "javascript:alert(1)".into();
    assert!(matches!(store.register(invalid, 14), Err(StoreError::Invalid { path, .. }) if path == "api.endpoint"));
    store.register(contract("b", "1.0.0"), 15).unwrap();
    assert_eq!(store.registry().unwrap().entries().count(), 2);
    let deprecated = store.deprecate("a", 20).unwrap();
    assert_eq!(deprecated.deprecated_at, Some(20));
    assert_eq!(store.registry().unwrap().entries().map(|e| e.contract.id.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(store.deprecate("nope", 21).unwrap_err(), StoreError::UnknownService("nope".into()));
    // A new version brings a deprecated service back.
    store.register(contract("a", "2.0.0"), 30).unwrap();
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
