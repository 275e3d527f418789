//! The SQLite store on real files in a temporary directory.

mod common;

use std::sync::Arc;

use caio_store::{SqliteStore, Store, StoreError};
use common::{body, contract};

#[test]
fn contracts_keep_every_version_and_deprecation_withdraws_a_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    common::registry_keeps_versions(&|| Box::new(SqliteStore::open(&path).unwrap()));
}

#[test]
fn appends_chain_persist_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    common::appends_chain_and_persist(&|| Box::new(SqliteStore::open(&path).unwrap()));
}

#[test]
fn concurrent_appends_share_commits_and_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("caio.db")).unwrap());
    common::concurrent_appends_keep_one_chain(&[store]);
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
        "the trace log does not verify at entry 2: its hash does not match its content (the trace was edited)"
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
