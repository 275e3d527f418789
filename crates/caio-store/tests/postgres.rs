//! The PostgreSQL store on a real server (initdb in a temporary directory,
//! a loopback port); skipped, and saying so, where PostgreSQL is not
//! installed.

mod common;

use std::sync::Arc;

use caio_store::{PostgresStore, Store, StoreError};
use common::body;

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

#[test]
fn contracts_keep_every_version_and_deprecation_withdraws_a_service() {
    let Some(server) = caio_testkit::postgres("postgres: contracts_keep_every_version") else { return };
    let url = server.database();
    common::registry_keeps_versions(&|| Box::new(PostgresStore::open(&url).unwrap()));
}

#[test]
fn appends_chain_persist_and_verify() {
    let Some(server) = caio_testkit::postgres("postgres: appends_chain_persist_and_verify") else { return };
    let url = server.database();
    common::appends_chain_and_persist(&|| Box::new(PostgresStore::open(&url).unwrap()));
}

#[test]
fn replicas_on_one_database_append_to_one_chain() {
    let Some(server) = caio_testkit::postgres("postgres: replicas_on_one_database") else { return };
    let url = server.database();
    // Three stores opened at once, as three replicas starting together:
    // the migrations run once, under their lock.
    let opening: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn({
                let url = url.clone();
                move || Arc::new(PostgresStore::open(&url).unwrap()) as Arc<dyn Store>
            })
        })
        .collect();
    let stores: Vec<Arc<dyn Store>> = opening.into_iter().map(|t| t.join().unwrap()).collect();
    common::concurrent_appends_keep_one_chain(&stores);
    let version: i32 = admin(&url).query_one("SELECT version FROM caio_schema", &[]).unwrap().get(0);
    assert_eq!(version, 2, "every migration ran, once");
}

/// A database with five traces, and a client to edit it behind the store's
/// back, as an attacker with access to the database would.
fn five_traces(server: &caio_testkit::Postgres) -> (String, postgres::Client) {
    let url = server.database();
    let store = PostgresStore::open(&url).unwrap();
    for i in 0..5 {
        store.append(body(i)).wait().unwrap();
    }
    (url.clone(), admin(&url))
}

#[test]
fn tampering_is_found_when_the_store_opens_or_verifies() {
    let Some(server) = caio_testkit::postgres("postgres: tampering_is_found") else { return };
    let (edited, mut sql) = five_traces(&server);
    sql.batch_execute("UPDATE traces SET body = replace(body, '\"r2\"', '\"evil\"') WHERE seq = 2").unwrap();
    let err = PostgresStore::open(&edited).unwrap().verify(None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the trace log does not verify at entry 2: its hash does not match its content (the trace was edited)"
    );
    let (cut, mut sql) = five_traces(&server);
    sql.batch_execute("DELETE FROM traces WHERE seq = 4").unwrap();
    let err = PostgresStore::open(&cut).unwrap_err().to_string();
    assert!(err.contains("is not the recorded head"), "{err}");
    let (start, mut sql) = five_traces(&server);
    sql.batch_execute("DELETE FROM traces WHERE seq = 0").unwrap();
    let err = PostgresStore::open(&start).unwrap().verify(None, None).unwrap_err().to_string();
    assert!(err.contains("does not start at GENESIS"), "{err}");
    let (untouched, _) = five_traces(&server);
    let report = PostgresStore::open(&untouched).unwrap().verify(None, None).unwrap();
    assert_eq!((report.checked, report.anchored), (5, true));
}

#[test]
fn a_newer_schema_bad_urls_and_closed_stores_get_clear_errors() {
    let Some(server) = caio_testkit::postgres("postgres: clear_errors") else { return };
    let url = server.database();
    drop(PostgresStore::open(&url).unwrap());
    admin(&url).batch_execute("UPDATE caio_schema SET version = 99").unwrap();
    let err = PostgresStore::open(&url).unwrap_err().to_string();
    assert!(err.contains("schema version 99, written by a newer caio"), "{err}");
    admin(&url).batch_execute("UPDATE caio_schema SET version = 2").unwrap();
    let store = PostgresStore::open(&url).unwrap();
    store.close();
    assert_eq!(store.append(body(0)).wait(), Err(StoreError::Closed));
    assert_eq!(store.trace(0), Err(StoreError::Closed));

    let err = PostgresStore::open("postgres://caio:s3cret@127.0.0.1:1/caio").unwrap_err().to_string();
    assert!(err.starts_with("the store at postgres://caio@127.0.0.1:1/caio: "), "{err}");
    assert!(!err.contains("s3cret"), "the password is never shown: {err}");
    let err = PostgresStore::open("postgres://caio@127.0.0.1:notaport/caio").unwrap_err().to_string();
    assert!(err.contains("postgres://user:password@host:port/database"), "{err}");
    let missing = server.url("no_such_database");
    let err = PostgresStore::open(&missing).unwrap_err().to_string();
    assert!(err.contains("database \"no_such_database\" does not exist"), "{err}");
}

#[test]
fn a_connection_the_server_dropped_is_opened_again() {
    let Some(server) = caio_testkit::postgres("postgres: reconnects") else { return };
    let url = server.database();
    let store = PostgresStore::open(&url).unwrap();
    store.append(body(0)).wait().unwrap();
    let dropped: i64 = admin(&url)
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'caio' AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(dropped >= 1, "the store's connections were cut");
    // The first use of a cut connection fails; the next one reconnects.
    let appended = store.append(body(1)).wait();
    let appended = if appended.is_err() { store.append(body(1)).wait() } else { appended };
    assert!(appended.is_ok(), "appends resume: {appended:?}");
    let verified = store.verify(None, None);
    let verified = if verified.is_err() { store.verify(None, None) } else { verified };
    assert!(verified.as_ref().is_ok_and(|r| r.anchored), "reads resume: {verified:?}");
    assert_eq!(store.head().unwrap().unwrap().body, body(1));
}

#[test]
fn one_merkle_tree_across_replicas_and_an_edited_registry_row_is_refused() {
    let Some(server) = caio_testkit::postgres("postgres: merkle_tree") else { return };
    let url = server.database();
    common::the_tree_proves_every_entry(&PostgresStore::open(&url).unwrap());
    // Two replicas append in turn: each takes up the tree the other grew.
    let (one, two) = (PostgresStore::open(&url).unwrap(), PostgresStore::open(&url).unwrap());
    for i in 0..300 {
        let store = if i % 3 == 0 { &one } else { &two };
        store.append(body(i)).wait().unwrap();
    }
    let leaves: Vec<_> =
        (0..1001).map(|seq| caio_calculus::merkle::log_leaf(&one.trace(seq).unwrap().unwrap().hash).unwrap()).collect();
    assert_eq!(two.tree_head().unwrap().root, caio_calculus::merkle::root(&leaves));
    assert_eq!(one.verify(None, None).unwrap().checkpoints, 1);

    let url = server.database();
    common::registry_changes_are_log_entries(&PostgresStore::open(&url).unwrap());
    admin(&url)
        .batch_execute("UPDATE contracts SET body = replace(body, '127.0.0.1:11434', 'evil.example:80')")
        .unwrap();
    let err = PostgresStore::open(&url).unwrap_err();
    assert!(
        matches!(&err, StoreError::Contradicted { service, entry: 0, reason, .. } if service == "a" && reason.contains("the row was edited")),
        "{err}"
    );
}
