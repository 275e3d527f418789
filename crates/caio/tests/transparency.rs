//! The transparency log end to end, with real `caio serve` processes on
//! 127.0.0.1 and real SQLite files: checkpoints signed by the server, a
//! decision's inclusion proof checked offline with the log's public key
//! only, a witness that follows two stores and refuses a fork and a
//! rollback, and a registry row edited behind the store's back refused at
//! start and by `trace verify`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use support::{caio, root, text};

use caio_store::checkpoint::{NoteSigner, NoteVerifier, cosigned_at, open};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

/// An Ed25519 private key in PKCS#8 PEM at `path`.
fn write_key(path: &Path, seed: u8) {
    let pem = SigningKey::from_bytes(&[seed; 32]).to_pkcs8_pem(LineEnding::LF).unwrap();
    std::fs::write(path, pem.as_bytes()).unwrap();
}

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `caio serve` on `db` with the examples and a log key signing a
/// checkpoint after every entry.
fn serve(dir: &Path, db: &Path) -> Served {
    let config = dir.join(format!("{}.toml", db.file_stem().unwrap().to_string_lossy()));
    let examples = root().join("examples");
    std::fs::write(
        &config,
        format!(
            "registry = {:?}\npolicy = {:?}\n[checkpoints]\nkey = \"log.pem\"\norigin = \"caio.test/log\"\nevery_entries = 1\nevery_ms = 50\n",
            examples.join("contracts"),
            examples.join("policies/default.yaml"),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(db)
        .current_dir(root())
        .env("CAIO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(url) = line.trim().strip_prefix("caio listening on ") else {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        panic!("caio serve did not start: {line}{stderr}");
    };
    Served { url: url.to_string(), child }
}

fn token() -> String {
    text(&caio(&["token", "--sub", "t", "--trust-level", "1", "--permission", "chat.basic"]).stdout).trim().to_string()
}

/// Routes `n` requests and waits until a signed checkpoint includes them
/// all (the server signs on its own schedule; the wait is for that event,
/// bounded, and asserts nothing about speed).
fn decide(served: &Served, n: usize, tag: &str) -> u64 {
    let client = reqwest::blocking::Client::new();
    let token = token();
    let mut last = 0;
    for i in 0..n {
        let routed: serde_json::Value = client
            .post(format!("{}/v1/route", served.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"id": format!("{tag}-{i}"), "capabilities": ["chat"]}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        last = routed["trace"]["seq"].as_u64().unwrap_or_else(|| panic!("no trace seq in {routed}"));
    }
    for _ in 0..600 {
        let answer = client.get(format!("{}/v1/checkpoint", served.url)).send().unwrap();
        if answer.status() == 200 {
            let note = answer.text().unwrap();
            let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if size > last {
                return last;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no checkpoint included entry {last}");
}

fn stop(mut served: Served) {
    let pid = served.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    served.child.wait().unwrap();
}

fn witness(dir: &Path, url: &str, verifier: &str) -> Output {
    caio(&[
        "witness",
        "--log",
        url,
        "--key",
        verifier,
        "--state",
        dir.join("witness.state").to_str().unwrap(),
        "--sign",
        dir.join("witness.pem").to_str().unwrap(),
        "--name",
        "witness.test",
    ])
}

#[test]
fn proofs_verify_offline_and_the_witness_refuses_forks_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    write_key(&dir.path().join("log.pem"), 7);
    write_key(&dir.path().join("witness.pem"), 9);
    let key =
        caio(&["checkpoint", "key", "--key", dir.path().join("log.pem").to_str().unwrap(), "--name", "caio.test/log"]);
    assert!(key.status.success(), "{}", text(&key.stderr));
    let verifier = text(&key.stdout).trim().to_string();
    assert!(verifier.starts_with("caio.test/log+"), "{verifier}");

    // Store A: decisions, a checkpoint, the witness's first look.
    let a = dir.path().join("a.db");
    let served = serve(dir.path(), &a);
    decide(&served, 3, "a");
    let looked = witness(dir.path(), &served.url, &verifier);
    assert!(looked.status.success(), "{}{}", text(&looked.stdout), text(&looked.stderr));
    assert!(text(&looked.stdout).contains(", cosigned"), "{}", text(&looked.stdout));
    stop(served);
    // A copy of A as it is now, to roll back to later.
    let old = dir.path().join("old.db");
    std::fs::copy(&a, &old).unwrap();

    // A grows; the witness checks the growth with a consistency proof.
    let served = serve(dir.path(), &a);
    let proved = decide(&served, 4, "a2");
    let looked = witness(dir.path(), &served.url, &verifier);
    assert!(looked.status.success(), "{}{}", text(&looked.stdout), text(&looked.stderr));
    let note = reqwest::blocking::get(format!("{}/v1/checkpoint", served.url)).unwrap().text().unwrap();
    stop(served);

    // A decision's proof, checked offline with the log's public key only.
    let proof = caio(&["trace", "prove", a.to_str().unwrap(), &proved.to_string()]);
    assert!(proof.status.success(), "{}", text(&proof.stderr));
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, &proof.stdout).unwrap();
    let checked = caio(&["trace", "check-proof", proof_file.to_str().unwrap(), "--key", &verifier]);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
    assert!(
        text(&checked.stdout).contains(&format!("ok: trace {proved} is entry {proved} of the log `caio.test/log`"))
    );
    // The same proof with the decision edited, or with another log's key: refused.
    let mut bundle: serde_json::Value = serde_json::from_slice(&proof.stdout).unwrap();
    bundle["trace"]["body"]["request_id"] = serde_json::json!("forged");
    std::fs::write(&proof_file, bundle.to_string()).unwrap();
    let forged = caio(&["trace", "check-proof", proof_file.to_str().unwrap(), "--key", &verifier]);
    assert_eq!(forged.status.code(), Some(1), "{}", text(&forged.stdout));
    assert!(text(&forged.stdout).contains("the trace was edited"), "{}", text(&forged.stdout));
    write_key(&dir.path().join("other.pem"), 8);
    let other = caio(&[
        "checkpoint",
        "key",
        "--key",
        dir.path().join("other.pem").to_str().unwrap(),
        "--name",
        "caio.test/log",
    ]);
    std::fs::write(&proof_file, &proof.stdout).unwrap();
    let wrong_key = caio(&["trace", "check-proof", proof_file.to_str().unwrap(), "--key", text(&other.stdout).trim()]);
    assert_eq!(wrong_key.status.code(), Some(1));
    assert!(text(&wrong_key.stdout).contains("not signed by `caio.test/log`"), "{}", text(&wrong_key.stdout));

    // The log as static tiles: the checkpoint and the traces, which verify.
    let tiles = dir.path().join("tiles");
    let exported = caio(&["trace", "export", a.to_str().unwrap(), "--tiles", tiles.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    assert_eq!(std::fs::read_to_string(tiles.join("checkpoint")).unwrap(), note);
    // Fewer than 256 entries: one partial tile of leaves, one bundle.
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size < 256, "{size}");
    let leaves = std::fs::read(tiles.join(format!("tile/0/000.p/{size}"))).unwrap();
    assert_eq!(leaves.len() as u64, 32 * size);
    assert!(text(&exported.stdout).contains("1 hash tiles, 1 entry bundles"), "{}", text(&exported.stdout));
    let replayed = caio(&["trace", "verify", tiles.join("traces.jsonl").to_str().unwrap()]);
    assert!(replayed.status.success(), "{}", text(&replayed.stdout));

    // The whole store checked against the signed checkpoint.
    let note_file = dir.path().join("checkpoint.txt");
    std::fs::write(&note_file, &note).unwrap();
    let verified = caio(&[
        "trace",
        "verify",
        a.to_str().unwrap(),
        "--checkpoint",
        note_file.to_str().unwrap(),
        "--key",
        &verifier,
    ]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    assert!(text(&verified.stdout).contains("the signed checkpoint of"), "{}", text(&verified.stdout));

    // The rolled-back copy, served with the same key: refused, naming both.
    let served = serve(dir.path(), &old);
    let refused = witness(dir.path(), &served.url, &verifier);
    assert_eq!(refused.status.code(), Some(1), "{}{}", text(&refused.stdout), text(&refused.stderr));
    assert!(text(&refused.stdout).contains("refused: the log was rolled back"), "{}", text(&refused.stdout));
    // The old copy grown into another history, past what the witness saw:
    // a fork, refused.
    decide(&served, 12, "fork");
    let forked = witness(dir.path(), &served.url, &verifier);
    assert_eq!(forked.status.code(), Some(1), "{}{}", text(&forked.stdout), text(&forked.stderr));
    assert!(text(&forked.stdout).contains("refused: the log forked"), "{}", text(&forked.stdout));
    stop(served);
    // The witness still holds the checkpoint it accepted, cosigned.
    let state = std::fs::read_to_string(dir.path().join("witness.state")).unwrap();
    let log = NoteVerifier::parse(&verifier).unwrap();
    assert_eq!(open(&state, &log).unwrap(), open(&note, &log).unwrap(), "the last checkpoint it accepted");
    let witness_key = NoteSigner::from_seed("witness.test", [9; 32]).unwrap().cosignature_verifier();
    assert!(cosigned_at(&state, &witness_key).is_ok(), "{state}");
}

#[test]
fn an_edited_contract_row_is_refused_at_start_and_by_trace_verify() {
    let dir = tempfile::tempdir().unwrap();
    write_key(&dir.path().join("log.pem"), 7);
    let db = dir.path().join("caio.db");
    stop(serve(dir.path(), &db));
    // The endpoint moved to another host and the permissions dropped,
    // behind the store's back.
    let connection = rusqlite::Connection::open(&db).unwrap();
    let edited = connection
        .execute(
            "UPDATE contracts SET body = json_set(body, '$.api.endpoint', 'http://evil.example:80') WHERE id = 'vllm-mixtral'",
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    drop(connection);
    // Each start recorded the configuration it decides under.
    let connection = rusqlite::Connection::open(&db).unwrap();
    let configs: i64 = connection
        .query_row("SELECT count(*) FROM traces WHERE body LIKE '{\"config_change\":%'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(configs, 1);
    let kept: i64 = connection.query_row("SELECT count(*) FROM texts", [], |row| row.get(0)).unwrap();
    assert_eq!(kept, 2, "the policy's text and the keys' text");
    drop(connection);
    let verified = caio(&["trace", "verify", db.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(1), "{}{}", text(&verified.stdout), text(&verified.stderr));
    let said = text(&verified.stdout);
    assert!(
        said.contains("the registry row of `vllm-mixtral` version") && said.contains("contradicts log entry"),
        "{said}"
    );
    assert!(said.contains("(the row was edited)"), "{said}");
    let started = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(&db)
        .current_dir(root())
        .env("CAIO_LOG", "off")
        .output()
        .unwrap();
    assert!(!started.status.success());
    assert!(text(&started.stderr).contains("contradicts log entry"), "{}", text(&started.stderr));
}
