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

/// A copy of the (closed) store at `path`, beside it, named `name`.
fn copy_beside(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let copy = path.with_file_name(name);
    std::fs::copy(path, &copy).unwrap();
    copy
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
    let copy = |name: &str| copy_beside(&path, name);
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
    // The first trace removed: in a log this small, the tree read at open
    // finds it.
    let start = copy("start.db");
    tamper(&start, "DELETE FROM traces WHERE seq = 0");
    let err = SqliteStore::open(&start).unwrap_err().to_string();
    assert_eq!(err, "the trace log does not verify at entry 0: the entry is missing (entries were removed)");
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
    tamper(&path, "PRAGMA user_version = 2");
    let store = SqliteStore::open(&path).unwrap();
    store.close();
    assert_eq!(store.append(body(0)).wait(), Err(StoreError::Closed));
    assert_eq!(store.register(contract("a", "1.0.0"), 1, "admin"), Err(StoreError::Closed));
    let missing = SqliteStore::open(dir.path().join("no/such/dir/caio.db")).unwrap_err();
    assert!(matches!(missing, StoreError::Database { .. }), "{missing}");
}

#[test]
fn the_merkle_tree_proves_entries_and_checkpoints_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    common::the_tree_proves_every_entry(&SqliteStore::open(&path).unwrap());
    // The log at its checkpoint as tlog tiles: checked here from the files
    // alone, hashing the entries' data and joining the tiles.
    let store = SqliteStore::open(&path).unwrap();
    let tiles = dir.path().join("tiles");
    let checkpoint = store.checkpoint(None).unwrap().unwrap();
    let exported = caio_store::tiles::export(&store, &checkpoint, &tiles, |_| {}).unwrap();
    assert_eq!((exported.size, exported.hash_tiles, exported.entry_bundles), (701, 4, 3));
    let read = |p: &str| std::fs::read(tiles.join(p)).unwrap();
    let mut leaves = Vec::new();
    for (bundle, tile) in [
        ("tile/entries/000", "tile/0/000"),
        ("tile/entries/001", "tile/0/001"),
        ("tile/entries/002.p/189", "tile/0/002.p/189"),
    ] {
        let (bundle, tile) = (read(bundle), read(tile));
        let entries: Vec<&[u8]> = bundle
            .chunks(34)
            .map(|e| {
                assert_eq!(&e[..2], &[0, 32], "each entry: its length, then its 32 bytes");
                &e[2..]
            })
            .collect();
        assert_eq!(entries.len() * 32, tile.len());
        for (entry, hash) in entries.iter().zip(tile.chunks(32)) {
            assert_eq!(caio_calculus::merkle::leaf_hash(entry).as_slice(), hash);
            leaves.push(<[u8; 32]>::try_from(hash).unwrap());
        }
    }
    assert_eq!(caio_calculus::trace::hex(&caio_calculus::merkle::root(&leaves)), checkpoint.root);
    let level1 = read("tile/1/000.p/2");
    assert_eq!(level1[..32], caio_calculus::merkle::root(&leaves[..256]));
    assert_eq!(level1[32..], caio_calculus::merkle::root(&leaves[256..512]));
    assert_eq!(std::fs::read_to_string(tiles.join("checkpoint")).unwrap(), "signed note");
    assert_eq!(std::fs::read_to_string(tiles.join("traces.jsonl")).unwrap().lines().count(), 701);
    // Reopened, the tree grows from its saved nodes.
    store.append(body(1000)).wait().unwrap();
    assert_eq!(store.tree_head().unwrap().size, 702);
    assert_eq!(store.verify(None, None).unwrap().checkpoints, 1);
    drop(store);
    // A saved node edited: the full verification recomputes the tree.
    let nodes = copy_beside(&path, "nodes.db");
    tamper(&nodes, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE height = 9");
    let err = SqliteStore::open(&nodes).unwrap().verify(None, None).unwrap_err().to_string();
    assert!(err.contains("saved nodes were edited"), "{err}");
    // History rewritten behind a checkpoint: the stored checkpoint says so.
    let rewritten = copy_beside(&path, "rewritten.db");
    tamper(&rewritten, "UPDATE checkpoints SET root = zeroblob(32)");
    let err = SqliteStore::open(&rewritten).unwrap().verify(None, None).unwrap_err().to_string();
    assert!(err.contains("at entry 700: the tree of the first 701 entries has root"), "{err}");
}

#[test]
fn registry_changes_are_entries_and_an_edited_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    common::registry_changes_are_log_entries(&SqliteStore::open(&path).unwrap());
    let copy = |name: &str| copy_beside(&path, name);
    // The endpoint moved to another host behind the store's back.
    let edited = copy("edited.db");
    tamper(&edited, "UPDATE contracts SET body = replace(body, '127.0.0.1:11434', 'evil.example:80')");
    let err = SqliteStore::open(&edited).unwrap_err();
    assert!(
        matches!(&err, StoreError::Contradicted { service, version, entry: 0, reason } if service == "a" && version == "1.0.0" && reason.contains("the row was edited")),
        "{err}"
    );
    // A version added with no entry.
    let added = copy("added.db");
    tamper(&added, "INSERT INTO contracts SELECT id, '9.0.0', digest, registered_at, body, NULL FROM contracts");
    let err = SqliteStore::open(&added).unwrap_err().to_string();
    assert!(err.contains("names no log entry (it was added behind the store's back)"), "{err}");
    // The deprecation deleted, so that the service routes again: the store
    // is back at the state of an earlier entry, which opening cannot tell
    // from the truth; the full verification replays the log and finds it.
    let undeprecated = copy("undeprecated.db");
    tamper(&undeprecated, "DELETE FROM deprecations");
    let err = SqliteStore::open(&undeprecated).unwrap().verify(None, None).unwrap_err().to_string();
    assert!(err.contains("`a` is active in the store but deprecated in the log"), "{err}");
    // The whole registry deleted: the replay finds that too.
    let removed = copy("removed.db");
    tamper(&removed, "DELETE FROM deprecations; DELETE FROM contracts");
    let err = SqliteStore::open(&removed).unwrap().verify(None, None).unwrap_err().to_string();
    assert!(err.contains("`a` version 1.0.0 was registered in the log but is missing from the store"), "{err}");
}

#[test]
fn a_store_an_older_caio_wrote_gets_its_tree_and_registry_entries() {
    use caio_calculus::trace::{append, canonical};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // Schema 1, as caio wrote it before the transparency log: 300 traces, two
    // versions and a deprecation.
    tamper(&path, &format!("{}; PRAGMA user_version = 1;", caio_store::migrations::SQLITE[0]));
    let connection = rusqlite::Connection::open(&path).unwrap();
    let mut head = None;
    for i in 0..300 {
        let trace = append(head.as_ref(), body(i)).unwrap();
        connection
            .execute(
                "INSERT INTO traces VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![trace.seq as i64, trace.prev_hash, trace.hash, trace.body.as_str()],
            )
            .unwrap();
        head = Some(trace);
    }
    connection.execute("INSERT INTO meta VALUES ('head', ?1)", [&head.unwrap().hash]).unwrap();
    for (id, version) in [("a", "1.0.0"), ("b", "2.0.0")] {
        let c = contract(id, version);
        let view = caio_calculus::rules::service_view(&c);
        let digest = caio_store::registry_log::contract_digest(&c);
        connection
            .execute(
                "INSERT INTO contracts VALUES (?1, ?2, ?3, 1, ?4)",
                rusqlite::params![id, version, digest, canonical(&view)],
            )
            .unwrap();
    }
    connection.execute("INSERT INTO deprecations VALUES ('b', 2)", []).unwrap();
    drop(connection);
    let store = SqliteStore::open(&path).unwrap();
    let report = store.verify(None, None).unwrap();
    assert_eq!((report.checked, report.registry_changes), (303, 3), "two registrations and a deprecation logged");
    let change = caio_store::registry_log::RegistryChange::of(&store.trace(300).unwrap().unwrap()).unwrap();
    assert_eq!(change.by, caio_store::registry_log::MIGRATION_ACTOR);
    assert_eq!(store.tree_head().unwrap().size, 303);
    assert!(store.services().unwrap()[1].deprecated_at.is_some());
    drop(store);
    assert_eq!(SqliteStore::open(&path).unwrap().verify(None, None).unwrap().registry_changes, 3, "migrated once");
}

#[test]
fn an_edit_at_the_boundary_of_two_verification_windows_is_found() {
    // The chain is checked in windows of 4,096 links that overlap by one
    // trace: entry 4096 ends the first window and starts the second. Edited
    // with its own hash recomputed, it still follows entry 4095; only the
    // link from it to entry 4097, across the windows, gives it away.
    use caio_calculus::trace::{Body, link_hash};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caio.db");
    let store = SqliteStore::open(&path).unwrap();
    let pending: Vec<_> = (0..4_100).map(|i| store.append(body(i))).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let edited = store.trace(4096).unwrap().unwrap();
    drop(store);
    let forged = Body::parse(&edited.body.as_str().replace("\"r4096\"", "\"forged\"")).unwrap();
    let hash = link_hash(4096, &edited.prev_hash, &forged);
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute("UPDATE traces SET body = ?1, hash = ?2 WHERE seq = 4096", rusqlite::params![forged.as_str(), hash])
        .unwrap();
    drop(connection);
    let err = SqliteStore::open(&path).unwrap().verify(None, None).unwrap_err();
    assert!(matches!(&err, StoreError::Broken(link) if link.seq == 4097), "{err}");
}
