//! The `caio` binary as a user runs it: every command, its exit codes, and a
//! real `caio serve` process on 127.0.0.1, killed under load.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{caio, root, text};

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["token", "--help"],
        vec!["route", "--help"],
        vec!["trace", "verify", "--help"],
        vec!["trace", "prove", "--help"],
        vec!["trace", "check-proof", "--help"],
        vec!["trace", "export", "--help"],
        vec!["checkpoint", "key", "--help"],
        vec!["witness", "--help"],
        vec!["health", "--help"],
        vec!["contracts", "check", "--help"],
    ] {
        let output = caio(&args);
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stdout).contains("Usage"), "{args:?}");
    }
    assert_eq!(caio(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn contracts_check_names_each_bad_file_and_field() {
    let output = caio(&["contracts", "check", "examples/contracts"]);
    assert!(output.status.success(), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("11 files, all valid"));
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("examples/contracts/ollama-llama3-8b.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &good).unwrap();
    std::fs::write(dir.path().join("b.yaml"), good.replace("max: 1500", "max: -1")).unwrap();
    std::fs::write(dir.path().join("c.json"), "{\"id\": \"x\", \"id\": \"y\"}").unwrap();
    std::fs::write(dir.path().join("d.yaml"), &good).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_caio")).args(["contracts", "check"]).arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output.stdout);
    assert!(out.contains("b.yaml: guarantees.latency_ms.max: must be a finite number >= 0, found -1"), "{out}");
    assert!(out.contains("c.json: id: appears twice in the same object; keep one"), "{out}");
    assert!(out.contains("d.yaml: ollama-llama3-8b@1.2.0 is also defined in"), "{out}");
    assert!(out.contains("3 of 4 files have problems"), "{out}");
    assert_eq!(caio(&["contracts", "check", "no/such/dir"]).status.code(), Some(2));
}

#[test]
fn route_decides_offline_and_says_why_not_the_others() {
    let output =
        caio(&["route", "examples/requests/chat-internal.yaml", "--permission", "chat.basic", "--trust-level", "1"]);
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    let out = text(&output.stdout);
    assert!(out.starts_with("chat-internal-001: selected "), "{out}");
    assert!(out.contains("(step match): does not offer the requested capabilities"), "{out}");
    let no_permission = caio(&["route", "examples/requests/chat-internal.yaml"]);
    assert_eq!(no_permission.status.code(), Some(1), "{}", text(&no_permission.stdout));
    assert!(text(&no_permission.stdout).contains("no service qualifies"));
    let json = caio(&[
        "route",
        "examples/requests/chat-internal.yaml",
        "--permission",
        "chat.basic",
        "--trust-level",
        "1",
        "--json",
    ]);
    let decision: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(decision["proofs"].as_array().unwrap().len() > 3);
    let missing = caio(&["route", "no-such-request.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no-such-request.yaml"));
}

#[test]
fn route_explains_a_plan_offline() {
    let voice = [
        "route",
        "--plan",
        "examples/plans/voice-assistant.yaml",
        "--permission",
        "audio.transcribe",
        "--permission",
        "chat.basic",
        "--permission",
        "audio.speak",
        "--trust-level",
        "1",
    ];
    let output = caio(&voice);
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    let out = text(&output.stdout);
    for line in [
        "  transcribe: whisper-stt",
        "  answer: vllm-mixtral",
        "    ollama-llama3-8b (score -1.5000): admitted, not chosen",
        "  speak: piper-tts",
        "    cloud-tts (step security): authorized: the caller lacks [\"cloud.use\"]",
        "  end to end latency_ms: <= 4000 at p89 (required <= 4500 at p85)",
        "  end to end locality: local (at most local)",
        "  composition proof holds; trace ",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let json = caio(&[&voice[..], &["--json"]].concat());
    let decision: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(decision["steps"].as_array().unwrap().len(), 3);
    assert_eq!(decision["trace"]["seq"], 3, "the plan's trace follows its three steps'");
    for (plan, permissions) in [
        ("examples/plans/grounded-answer.yaml", ["embed.basic", "chat.basic"]),
        ("examples/plans/cross-check.yaml", ["chat.basic", "cloud.use"]),
    ] {
        let output = caio(&[
            "route",
            "--plan",
            plan,
            "--permission",
            permissions[0],
            "--permission",
            permissions[1],
            "--trust-level",
            "2",
        ]);
        assert!(output.status.success(), "{plan}: {}{}", text(&output.stdout), text(&output.stderr));
    }
    // A bound no combination meets: exit 1, and by how much.
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(root().join("examples/plans/voice-assistant.yaml")).unwrap();
    let tight = dir.path().join("tight.yaml");
    std::fs::write(&tight, example.replace("max: 4500", "max: 3500")).unwrap();
    let mut args = voice.to_vec();
    let tight_path = tight.to_string_lossy().into_owned();
    args[2] = &tight_path;
    let output = caio(&args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let out = text(&output.stdout);
    assert!(out.contains("no combination of services meets the plan"), "{out}");
    assert!(
        out.contains(
            "latency_ms: the best any combination guarantees is <= 4000 at p89; the plan requires <= 3500 at p85"
        ),
        "{out}"
    );
    // A malformed plan names the file and the field.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, example.replace("capabilities: [chat]", "capabilities: []")).unwrap();
    let bad_path = bad.to_string_lossy().into_owned();
    args[2] = &bad_path;
    let output = caio(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("bad.yaml: steps.answer.capabilities: must list at least one capability"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn token_signs_a_development_token_that_authenticates() {
    let output = caio(&["token", "--sub", "alice", "--permission", "chat.basic", "--permission", "caio:admin"]);
    assert!(output.status.success());
    assert!(text(&output.stderr).contains("DEVELOPMENT token"));
    let token = text(&output.stdout).trim().to_string();
    let auth = caio_calculus::security::parse_auth_config(
        &std::fs::read_to_string(root().join("examples/auth/dev.yaml")).unwrap(),
        caio_calculus::contract::Format::Yaml,
    )
    .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let caller = caio_calculus::security::authenticate(&token, &auth, now).unwrap();
    assert_eq!(caller.claims.sub, "alice");
    assert!(caller.claims.permissions.contains("caio:admin"));
}

/// A `caio serve` process on a free port of 127.0.0.1.
struct Served {
    child: Child,
    url: String,
}

fn serve(db: &Path) -> Served {
    serve_with(db, None, &[])
}

/// `caio serve`, with the limit on open files `ulimit` sets with
/// `descriptors` (such as `-n 256`) when given, and environment variables
/// set (`Some`) or removed (`None`).
fn serve_with(db: &Path, descriptors: Option<&str>, environment: &[(&str, Option<&str>)]) -> Served {
    let mut command = match descriptors {
        None => Command::new(env!("CARGO_BIN_EXE_caio")),
        Some(limit) => {
            let mut shell = Command::new("sh");
            shell.args(["-c", &format!("ulimit {limit} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_caio")]);
            shell
        }
    };
    for (name, value) in environment {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .current_dir(root())
        .env("CAIO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("caio listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Served { child, url }
}

fn token(permissions: &[&str]) -> String {
    let mut args = vec!["token", "--sub", "load", "--trust-level", "1"];
    for p in permissions {
        args.extend(["--permission", p]);
    }
    text(&caio(&args).stdout).trim().to_string()
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&dir.path().join("caio.db"));
    let client = reqwest::blocking::Client::new();
    assert_eq!(client.get(format!("{}/healthz", served.url)).send().unwrap().status(), 200);
    let routed = client
        .post(format!("{}/v1/route", served.url))
        .bearer_auth(token(&["chat.basic"]))
        .json(&serde_json::json!({"id": "r", "capabilities": ["chat"]}))
        .send()
        .unwrap();
    assert_eq!(routed.status(), 200);
    // A client holding a half-sent head, and one idle on a kept-alive
    // connection, do not hold the shutdown.
    use std::io::{Read, Write};
    let address = served.url.trim_start_matches("http://").to_string();
    let mut half = std::net::TcpStream::connect(&address).unwrap();
    half.write_all(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            assert!(status.success(), "a graceful shutdown exits 0, got {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((half, idle));
}

#[test]
fn with_few_descriptors_idle_connections_cannot_make_serve_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_with(&dir.path().join("caio.db"), Some("-n 256"), &[]);
    let address = served.url.trim_start_matches("http://").to_string();
    // More idle connections than the process may hold descriptors.
    let idle: Vec<std::net::TcpStream> = (0..300).filter_map(|_| std::net::TcpStream::connect(&address).ok()).collect();
    assert!(idle.len() >= 250, "{} connections made", idle.len());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for _ in 0..5 {
        assert_eq!(client.get(format!("{}/healthz", served.url)).send().unwrap().status(), 200);
    }
    let metrics = client.get(format!("{}/metrics", served.url)).send().unwrap().text().unwrap();
    let evicted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("caio_connections_evicted_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(evicted >= 100, "idle connections made room: {evicted}");
    drop(idle);
    served.child.kill().unwrap();
}

/// The soft and hard limits on open files of a process (`/proc/PID/limits`).
fn descriptor_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn serve_raises_its_soft_descriptor_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_with(&dir.path().join("caio.db"), Some("-S -n 256"), &[]);
    let (soft, hard) = descriptor_limits(served.child.id());
    // An unlimited (or larger) hard limit is taken as the kernel's usual
    // ceiling on open files per process.
    let ceiling = 1u64 << 20;
    let expected = hard.parse::<u64>().map_or(ceiling, |h| h.min(ceiling)).to_string();
    assert_eq!(soft, expected, "soft limit raised from 256 to the hard limit {hard}");
    served.child.kill().unwrap();
}

#[test]
fn serve_runs_with_the_servers_allocator_settings_and_keeps_the_operators() {
    let dir = tempfile::tempdir().unwrap();
    let environment = [("MIMALLOC_PURGE_DELAY", Some("5")), ("MIMALLOC_ARENA_EAGER_COMMIT", None)];
    let mut served = serve_with(&dir.path().join("caio.db"), None, &environment);
    let read = std::fs::read(format!("/proc/{}/environ", served.child.id())).unwrap();
    let variables: Vec<String> = read.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    assert!(variables.contains(&"MIMALLOC_ARENA_EAGER_COMMIT=0".to_string()), "{variables:?}");
    assert!(variables.contains(&"MIMALLOC_PURGE_DELAY=5".to_string()), "the operator's value stays: {variables:?}");
    served.child.kill().unwrap();
    let _ = served.child.wait();
}

#[test]
fn a_killed_server_loses_no_acknowledged_decision() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caio.db");
    let mut served = serve(&db);
    let token = token(&["chat.basic"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (url, token, stop, answered) = (served.url.clone(), token.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let body = serde_json::json!({"id": format!("w{w}-{i}"), "capabilities": ["chat"]});
                    let Ok(response) = client.post(format!("{url}/v1/route")).bearer_auth(&token).json(&body).send()
                    else {
                        break;
                    };
                    if response.status() == 200 {
                        let Ok(answer) = response.json::<serde_json::Value>() else { break };
                        acknowledged.push((
                            answer["trace"]["seq"].as_u64().unwrap(),
                            answer["trace"]["hash"].as_str().unwrap().to_string(),
                            format!("w{w}-{i}"),
                        ));
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Killed under load, once 40 decisions were acknowledged (an event, not
    // a speed: the deadline only bounds a server that never answers).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 40 {
        assert!(std::time::Instant::now() < deadline, "the server acknowledged no 40 decisions");
        std::thread::sleep(Duration::from_millis(10));
    }
    served.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    served.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: Vec<(u64, String, String)> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acknowledged.len() >= 40, "the kill came under load: {} decisions acknowledged", acknowledged.len());

    // The chain verifies after the crash, and holds every acknowledged decision.
    let verified = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&db).output().unwrap();
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    assert!(text(&verified.stdout).contains("ending at the recorded head"));
    let connection = rusqlite::Connection::open(&db).unwrap();
    for (seq, hash, request_id) in &acknowledged {
        let (stored_hash, body): (String, String) = connection
            .query_row("SELECT hash, body FROM traces WHERE seq = ?1", [*seq as i64], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap_or_else(|e| panic!("acknowledged trace {seq} is missing: {e}"));
        assert_eq!(&stored_hash, hash);
        assert!(body.contains(&format!("\"request_id\":\"{request_id}\"")));
    }
    drop(connection);
    // The restarted server continues the same chain.
    let mut restarted = serve(&db);
    let client = reqwest::blocking::Client::new();
    let next = client
        .post(format!("{}/v1/route", restarted.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "after", "capabilities": ["chat"]}))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    let last = acknowledged.iter().map(|a| a.0).max().unwrap();
    assert!(next["trace"]["seq"].as_u64().unwrap() > last, "{next}");
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
    eprintln!("crash test: {} acknowledged decisions, all in the verified chain", acknowledged.len());
}

#[test]
fn trace_verify_reads_stores_and_json_lines_and_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caio.db");
    {
        let store = caio_store::SqliteStore::open(&db).unwrap();
        use caio_store::Store as _;
        for i in 0..4 {
            store.append(serde_json::json!({"i": i}).into()).wait().unwrap();
        }
    }
    let ok = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&db).output().unwrap();
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("ok: 4 checked (traces 0 to 3), ending at the recorded head"));
    let connection = rusqlite::Connection::open(&db).unwrap();
    let mut lines = String::new();
    let mut statement = connection.prepare("SELECT seq, prev_hash, hash, body FROM traces ORDER BY seq").unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok(serde_json::json!({"seq": row.get::<_, i64>(0)?, "prev_hash": row.get::<_, String>(1)?, "hash": row.get::<_, String>(2)?, "body": serde_json::from_str::<serde_json::Value>(&row.get::<_, String>(3)?).unwrap()}))
        })
        .unwrap();
    for row in rows {
        lines.push_str(&row.unwrap().to_string());
        lines.push('\n');
    }
    drop(statement);
    let jsonl = dir.path().join("traces.jsonl");
    std::fs::write(&jsonl, &lines).unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&jsonl).output().unwrap();
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    std::fs::write(&jsonl, lines.replace("{\"i\":2}", "{\"i\":20}")).unwrap();
    let broken = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&jsonl).output().unwrap();
    assert_eq!(broken.status.code(), Some(1));
    assert!(text(&broken.stdout).contains("broken: entry 2: its hash"), "{}", text(&broken.stdout));
    connection.execute_batch("UPDATE traces SET body = '{\"i\":30}' WHERE seq = 3").unwrap();
    let broken = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&db).output().unwrap();
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken.stdout));
    assert!(
        text(&broken.stdout).contains("broken: entry 3: its hash"),
        "named by its sequence number: {}",
        text(&broken.stdout)
    );
    // A body that no longer reads as JSON is tampering too (exit 1), not a
    // usage error.
    connection
        .execute_batch(
            "UPDATE traces SET body = '{\"i\":3}' WHERE seq = 3; UPDATE traces SET body = 'not json' WHERE seq = 1",
        )
        .unwrap();
    drop(connection);
    let unreadable = Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify"]).arg(&db).output().unwrap();
    assert_eq!(unreadable.status.code(), Some(1), "{}{}", text(&unreadable.stdout), text(&unreadable.stderr));
    assert!(
        text(&unreadable.stdout).contains("broken: trace 1 has a body that is not JSON"),
        "{}",
        text(&unreadable.stdout)
    );
    assert_eq!(caio(&["trace", "verify", "no-such.db"]).status.code(), Some(2));
}

#[test]
fn a_bad_configuration_stops_serve_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    // `serve` with `args` exits 2 and says `expected`; its stderr.
    let refused = |args: &[&str], expected: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_caio")).arg("serve").args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stdout));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        stderr
    };
    let db = dir.path().join("caio.db").display().to_string();
    let check = |name: &str, contents: &str, expected: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        refused(&["--config", &path.display().to_string(), "--db", &db], expected);
    };
    check("unknown.toml", "listne = \"127.0.0.1:1\"\n", "unknown field `listne`");
    check("address.toml", "listen = \"localhost\"\n", "`localhost` is not an address");
    check("limits.toml", "[limits]\nburst = 0.5\n", "[limits]");
    check("unlimited.toml", "[limits]\nrate_per_second = inf\n", "rate_per_second a finite number > 0");
    check(
        "buffer.toml",
        "[limits]\nread_buffer_bytes = 4096\n",
        "read_buffer_bytes must be at least 8192 (found 4096)",
    );
    check(
        "origin.toml",
        "public_origin = \"caio.example.com/ui\"\n",
        "public_origin: `caio.example.com/ui` must be an origin",
    );
    let keys = dir.path().join("keys.yaml");
    std::fs::write(&keys, "issuer: i\naudience: caio\nkeys: [{kid: k, algorithm: HS256, key: short}]\n").unwrap();
    check("keys.toml", "auth = \"keys.yaml\"\n", "keys[0].key: an HS256 secret must be at least 32 bytes");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "rules:\n  - {id: a, require: 'service.nope'}\n").unwrap();
    check("policy.toml", "policy = \"policy.yaml\"\n", "rules[0].require: `service.nope` does not exist");
    check(
        "allow.toml",
        "[gateway]\nallow = [\"ftp://x\"]\n",
        "gateway.allow: `ftp://x` is not an http:// or https:// URL",
    );
    check("breaker.toml", "[gateway.breaker]\nfailure_rate = 2.0\n", "`failure_rate` must be in [0, 1], found 2");
    check("retry.toml", "[gateway.retry]\nretrys = 1\n", "unknown field `retrys`");
    check("confidence.toml", "[score]\nconfidence = 1.0\n", "[score]: confidence must be in (0, 1)");
    check("probe.toml", "[score]\nprobe_share = 1.5\n", "[score]: `probe_share` must be in [0, 1], found 1.5");
    check(
        "prior.toml",
        "[score.prior]\nfailures = 0.0\nsuccesses = 19.0\n",
        "[score]: prior.failures must be a finite number > 0",
    );
    check(
        "route.toml",
        "[routes.fast]\ncapabilities = []\n",
        "[routes.fast].capabilities: must list at least one capability",
    );
    check(
        "route-id.toml",
        "[routes.fast]\nid = \"x\"\ncapabilities = [\"chat\"]\n",
        "[routes.fast].id: set by each call",
    );
    check(
        "shared.toml",
        "[shared]\nredis = \"redis://127.0.0.1:1/\"\nsync_ms = 1\n",
        "[shared].sync_ms: 1 is out of range",
    );
    check("redis.toml", "[shared]\nredis = \"http://cache\"\n", "[shared].redis: `http://cache`");
    check("shared-key.toml", "[shared]\nsync = 5\n", "unknown field `sync`");
    // A PostgreSQL store that does not answer: the location without its
    // password, and what the engine said.
    let stderr = refused(
        &["--store", "postgres://caio:s3cret@127.0.0.1:1/caio"],
        "the store at postgres://caio@127.0.0.1:1/caio: ",
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
