//! The SQLite store on real files in a temporary directory.

use std::sync::Arc;

use caio_calculus::contract::{Format, parse_contracts};
use caio_store::{SqliteStore, Store, StoreError};

fn contract(id: &str, version: &str) -> caio_calculus::contract::Contract {
    let text = format!(
        "{{id: {id}, version: {version}, capabilities: [chat], privacy: {{data_locality: local}}, api: {{adapter: ollama, endpoint: 'http://127.0.0.1:11434'}}}}"
    );
    parse_contracts(&text, Format::Yaml).unwrap().remove(0)
}

fn body(i: u64) -> serde_json::Value {
    serde_json::json!({"request_id": format!("r{i}"), "selected": "a", "score": 0.5 + i as f64 / 7.0})
}

#[test]
fn contracts_keep_every_version_and_deprecation_withdraws_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("caio.db")).unwrap();
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
    drop(store);
    let reopened = SqliteStore::open(dir.path().join("caio.db")).unwrap();
    assert_eq!(
        reopened.services().unwrap().iter().map(|s| (s.id.as_str(), s.versions.len())).collect::<Vec<_>>(),
        [("a", 4), ("b", 1)]
    );
}

#[test]
fn appends_chain_persist_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    let store = SqliteStore::open(&path).unwrap();
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
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.head().unwrap().unwrap(), head, "the log survives a reopen");
    let next = store.append(body(10)).wait().unwrap();
    assert_eq!((next.seq, next.prev_hash.as_str()), (10, head.hash.as_str()));
    assert_eq!(store.trace(4).unwrap().unwrap().body, body(4));
    assert_eq!(store.trace(99).unwrap(), None);
}

#[test]
fn concurrent_appends_share_commits_and_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("caio.db")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50).map(|i| store.append(body(t * 1000 + i)).wait().unwrap().seq).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..400).collect::<Vec<_>>(), "every append got its own sequence number");
    assert_eq!(store.verify(None, None).unwrap().checked, 400);
}

/// Edits the file behind the store's back, as an attacker with disk access would.
fn tamper(path: &std::path::Path, sql: &str) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.execute_batch(sql).unwrap();
}

#[test]
fn tampering_is_found_when_the_store_opens_or_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..5 {
        store.append(body(i)).wait().unwrap();
    }
    drop(store);
    let copy = |name: &str| {
        let copy = dir.path().join(name);
        std::fs::copy(&path, &copy).unwrap();
        copy
    };
    // An edited body in the middle: found by a full verification.
    let edited = copy("edited.db");
    tamper(&edited, "UPDATE traces SET body = replace(body, '\"r2\"', '\"evil\"') WHERE seq = 2");
    let store = SqliteStore::open(&edited).unwrap();
    let err = store.verify(None, None).unwrap_err();
    assert!(matches!(&err, StoreError::Broken(link) if link.seq == 2), "{err}");
    assert_eq!(
        err.to_string(),
        "the trace log does not verify at trace 2: its hash does not match its content (the trace was edited)"
    );
    // The newest trace removed: found when the store opens.
    let cut = copy("cut.db");
    tamper(&cut, "DELETE FROM traces WHERE seq = 4");
    let err = SqliteStore::open(&cut).unwrap_err().to_string();
    assert!(err.contains("is not the recorded head"), "{err}");
    // The first trace removed: found by a full verification.
    let start = copy("start.db");
    tamper(&start, "DELETE FROM traces WHERE seq = 0");
    let store = SqliteStore::open(&start).unwrap();
    assert!(store.verify(None, None).unwrap_err().to_string().contains("does not start at GENESIS"));
    // The untouched file verifies.
    assert_eq!(SqliteStore::open(&path).unwrap().verify(None, None).unwrap().checked, 5);
}

#[test]
fn a_file_from_a_newer_caio_is_refused_and_closed_stores_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    drop(SqliteStore::open(&path).unwrap());
    tamper(&path, "PRAGMA user_version = 99");
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 99, written by a newer caio"), "{err}");
    tamper(&path, "PRAGMA user_version = 1");
    let store = SqliteStore::open(&path).unwrap();
    store.close();
    assert_eq!(store.append(body(0)).wait(), Err(StoreError::Closed));
    assert_eq!(store.register(contract("a", "1.0.0"), 1), Err(StoreError::Closed));
    let missing = SqliteStore::open(dir.path().join("no/such/dir/caio.db")).unwrap_err();
    assert!(matches!(missing, StoreError::Database { .. }), "{missing}");
}
