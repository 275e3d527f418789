//! The transparency log over HTTP, on a real server and SQLite file:
//! checkpoints signed with the log key, inclusion proofs of decisions and
//! consistency proofs between checkpoints, each checked here with nothing
//! but the calculus's verifiers and the log's public key.

mod support;

use std::time::Duration;

use caio_calculus::merkle::{Hash, link_bytes, log_leaf, verify_consistency, verify_inclusion};
use caio_server::checkpoints::{CheckpointConfig, sign_now};
use caio_server::{AppState, Limits};
use caio_store::checkpoint::{NoteSigner, open};
use reqwest::StatusCode;
use serde_json::Value;
use support::{Server, chat_request, token};

fn unhex(text: &str) -> Hash {
    link_bytes(text).expect("a hash in hex")
}

async fn get(url: String) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn sign(state: &AppState) -> u64 {
    let state = state.clone();
    tokio::task::spawn_blocking(move || sign_now(&state)).await.unwrap().unwrap().expect("the log grew").size
}

async fn decide(server: &Server, id: &str) -> Value {
    let routed = reqwest::Client::new()
        .post(format!("{}/v1/route", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&chat_request(id))
        .send()
        .await
        .unwrap();
    routed.json().await.unwrap()
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_with_the_public_key_only() {
    let signer = NoteSigner::from_seed("caio.test/log", [3; 32]).unwrap();
    let verifier = signer.verifier();
    let server = Server::start(Limits::default()).await;
    let (status, said) = get(format!("{}/v1/checkpoint", server.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(said.contains("signs no checkpoints"), "{said}");
    server.shutdown().await;

    // Checkpoints signed only when asked: the server's own schedule is an
    // hour, so that the test decides when.
    let config = CheckpointConfig {
        signer,
        every_entries: 1_000_000,
        every: Duration::from_secs(3600),
        poll: Duration::from_secs(3600),
    };
    let (contracts, policy) = support::examples();
    let server = Server::start_with(contracts, policy, move |c| c.checkpoints = Some(config)).await;
    let first = decide(&server, "one").await;
    let old_size = sign(&server.state).await;
    for i in 0..5 {
        decide(&server, &format!("more-{i}")).await;
    }
    let size = sign(&server.state).await;

    let (status, note) = get(format!("{}/v1/checkpoint", server.url)).await;
    assert_eq!(status, StatusCode::OK);
    let checkpoint = open(&note, &verifier).unwrap();
    assert_eq!((checkpoint.origin.as_str(), checkpoint.size), ("caio.test/log", size));

    // The first decision is in the latest checkpoint's tree.
    let seq = first["trace"]["seq"].as_u64().unwrap();
    let (status, proof) = get(format!("{}/v1/traces/{seq}/proof", server.url)).await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let proof: Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(proof["size"], size);
    assert_eq!(proof["checkpoint"], note.as_str(), "the proof names the checkpoint it is for");
    let leaf = log_leaf(first["trace"]["hash"].as_str().unwrap()).unwrap();
    let path: Vec<Hash> = proof["proof"].as_array().unwrap().iter().map(|h| unhex(h.as_str().unwrap())).collect();
    assert!(verify_inclusion(&leaf, seq, size, &path, &checkpoint.root));
    assert!(!verify_inclusion(&leaf, seq + 1, size, &path, &checkpoint.root), "not at another position");

    // The older checkpoint is a prefix of the newer one.
    let (status, consistency) =
        get(format!("{}/v1/checkpoints/consistency?from={old_size}&to={size}", server.url)).await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    let consistency: Value = serde_json::from_str(&consistency).unwrap();
    let old_root = unhex(consistency["from_root"].as_str().unwrap());
    let hashes: Vec<Hash> =
        consistency["proof"].as_array().unwrap().iter().map(|h| unhex(h.as_str().unwrap())).collect();
    assert!(verify_consistency(old_size, size, &old_root, &checkpoint.root, &hashes));
    let older = server.state.store().checkpoint(Some(old_size)).unwrap().unwrap();
    assert_eq!(open(&older.note, &verifier).unwrap().root, old_root, "the proof starts at the older signed root");

    // Bad questions get clear answers.
    let (status, said) = get(format!("{}/v1/traces/{seq}/proof?size={}", server.url, size + 1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");
    let (status, said) = get(format!("{}/v1/checkpoints/consistency?from=5&to=2", server.url)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    let (status, said) = get(format!("{}/v1/traces/{seq}/proof?size=1&extra=1", server.url)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    let (status, _) = get(format!("{}/v1/traces/x/proof", server.url)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing new: no new checkpoint.
    let state = server.state.clone();
    assert_eq!(tokio::task::spawn_blocking(move || sign_now(&state)).await.unwrap().unwrap(), None);
    server.shutdown().await;
}

/// The overview's chain badge, as a viewer sees it.
async fn badge(server: &Server) -> String {
    let client = reqwest::Client::new();
    let cookie = support::viewer_cookie(server).await;
    let page =
        client.get(format!("{}/ui", server.url)).header("cookie", cookie).send().await.unwrap().text().await.unwrap();
    let start = page.find("id=\"chain\"").expect("the chain badge");
    page[start..start + page[start..].find("</p>").unwrap()].to_string()
}

#[tokio::test]
async fn the_dashboard_verifies_the_whole_log_and_names_the_latest_checkpoint() {
    let signer = NoteSigner::from_seed("caio.test/log", [3; 32]).unwrap();
    let config = CheckpointConfig {
        signer,
        every_entries: 1_000_000,
        every: Duration::from_secs(3600),
        poll: Duration::from_secs(3600),
    };
    let config2 = config.clone();
    let (contracts, policy) = support::examples();
    let server = Server::start_with(contracts, policy, move |c| c.checkpoints = Some(config)).await;
    // 1,100 decisions: the oldest are more than 1,000 entries behind the head.
    let first = decide(&server, "old").await;
    let store = server.state.store().clone();
    tokio::task::spawn_blocking(move || {
        for i in 0..1_100 {
            store.append(serde_json::json!({"request_id": format!("bulk-{i}")}).into()).wait().unwrap();
        }
    })
    .await
    .unwrap();
    // An old decision edited behind the store's back, more than 1,000
    // entries behind the head: the first view checks the whole log.
    let path = server.dir.path().join("caio.db");
    let seq = first["trace"]["seq"].as_i64().unwrap();
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute("UPDATE traces SET body = replace(body, '\"old\"', '\"forged\"') WHERE seq = ?1", [seq])
        .unwrap();
    drop(connection);
    let shown = badge(&server).await;
    assert!(shown.contains("✗") && shown.contains(&format!("at entry {seq}")), "{shown}");
    server.shutdown().await;

    // An untouched log: verified whole once, then only what is new.
    let (contracts, policy) = support::examples();
    let server = Server::start_with(contracts, policy, move |c| c.checkpoints = Some(config2)).await;
    decide(&server, "a").await;
    sign(&server.state).await;
    let shown = badge(&server).await;
    assert!(shown.contains("✓") && shown.contains("the latest signed checkpoint covers"), "{shown}");
    decide(&server, "b").await;
    let shown = badge(&server).await;
    assert!(
        shown.contains("✓") && shown.contains("(2 checked now)"),
        "the entry verified before and the new one: {shown}"
    );
    server.shutdown().await;
}
