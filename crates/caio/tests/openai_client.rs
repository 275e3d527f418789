//! A real client: the official `openai` Python package calls `caio serve`
//! (the binary, with a configuration file) in front of a model server on
//! 127.0.0.1, for a chat completion, a streamed completion, an embedding,
//! generated images, speech streamed as it comes, a transcription and a
//! rerank, and a chat streamed from a service that speaks Anthropic's
//! Messages API; its responses parse.
//!
//! The Python interpreter is `CAIO_OPENAI_PYTHON`, else `python3`; one
//! without the package skips the test with a message, unless
//! `CAIO_REQUIRE_OPENAI=1` (CI sets it), which makes it a failure.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::root;

use caio_gateway::fixture::Upstream;
use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> Option<String> {
    let python = std::env::var("CAIO_OPENAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let found =
        Command::new(&python).args(["-c", "import openai"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    let why = format!("`{python}` cannot import the `openai` package (set CAIO_OPENAI_PYTHON to a Python that can)");
    if std::env::var("CAIO_REQUIRE_OPENAI").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED openai_client: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_package_talks_to_caio() {
    let Some(python) = python() else { return };
    let upstream = Upstream::start("local-model").await;
    upstream.chunk_gap(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    std::fs::write(
        contracts.join("local.yaml"),
        format!(
            "id: local-model\nversion: 1.0.0\ncapabilities: [chat, embeddings, image_generation, rerank, text_to_speech, speech_to_text]\nprivacy: {{ data_locality: local }}\n\
             security: {{ required_permissions: [chat.basic] }}\n\
             api: {{ adapter: openai, endpoint: \"{}\", model: tiny, timeout_ms: 5000 }}\n",
            upstream.openai_base()
        ),
    )
    .unwrap();
    let claude = Upstream::start("claude").await;
    std::fs::write(
        contracts.join("claude.yaml"),
        format!(
            "id: claude\nversion: 1.0.0\ncapabilities: [summarize]\nprivacy: {{ data_locality: cloud }}\n\
             security: {{ required_permissions: [chat.basic] }}\n\
             api: {{ adapter: anthropic, endpoint: \"{}\", model: claude-test, credentials_env: CAIO_TEST_ANTHROPIC_KEY, timeout_ms: 5000 }}\n",
            claude.base()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("caio.toml"),
        "listen = \"127.0.0.1:0\"\ndb = \"caio.db\"\nregistry = \"contracts\"\n",
    )
    .unwrap();

    let caio = env!("CARGO_BIN_EXE_caio");
    let mut child = Command::new(caio)
        .args(["serve", "--config"])
        .arg(dir.path().join("caio.toml"))
        .env("CAIO_LOG", "warn")
        .env("CAIO_TEST_ANTHROPIC_KEY", "sk-ant-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url =
        line.trim().strip_prefix("caio listening on ").unwrap_or_else(|| panic!("first line: {line}")).to_string();
    let token = Command::new(caio)
        .args(["token", "--sub", "py", "--permission", "chat.basic"])
        .current_dir(root())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    let script = root().join("crates/caio/tests/clients/openai_client.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("CAIO_BASE_URL", format!("{url}/v1"))
            .env("CAIO_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // A graceful stop: the executions of the last calls are recorded.
    let pid = served.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut served = served;
    let stopped = tokio::task::spawn_blocking(move || served.0.wait().map(|s| s.success())).await.unwrap();
    assert!(matches!(stopped, Ok(true)), "caio stops gracefully: {stopped:?}");
    assert!(output.status.success(), "the client failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("openai {} parsed: {parsed}", parsed["openai_version"]);
    assert_eq!(parsed["chat"], "Hello from upstream (local-model)");
    assert_eq!(parsed["chat_object"], "chat.completion");
    assert_eq!(parsed["finish_reason"], "stop");
    assert_eq!(parsed["streamed"], serde_json::json!(["Hello", " from", " upstream", " (local-model)"]));
    let (first, total) = (parsed["first_chunk_s"].as_f64().unwrap(), parsed["stream_total_s"].as_f64().unwrap());
    assert!(total >= 0.9, "the upstream paused 300 ms between chunks: {total} s");
    assert!(first < total - 0.6, "the first chunk reached the client before the rest: {first} s of {total} s");
    assert_eq!(parsed["embedding"], serde_json::json!([11.0, 0.5, -0.25]));
    assert_eq!(parsed["images"], serde_json::json!(["image 0 from local-model", "image 1 from local-model"]));
    assert_eq!(parsed["ranked"], serde_json::json!([1, 2]));
    assert_eq!(parsed["audio_type"], "audio/wav");
    assert_eq!(
        parsed["audio"],
        "audio 1/4 from local-model audio 2/4 from local-model audio 3/4 from local-model audio 4/4 from local-model "
    );
    let (first, total) = (parsed["first_audio_s"].as_f64().unwrap(), parsed["audio_total_s"].as_f64().unwrap());
    assert_eq!(parsed["summarized"], serde_json::json!(["Hello", " from", " upstream", " (claude)"]));
    let (path, headers, sent) = claude.seen().pop().unwrap();
    assert_eq!(
        (path.as_str(), sent["model"].as_str(), sent["stream"].as_bool()),
        ("/v1/messages", Some("claude-test"), Some(true))
    );
    assert_eq!(headers.get("authorization").unwrap(), "Bearer sk-ant-test");
    let recorded = parsed["recording_bytes"].as_u64().unwrap();
    assert_eq!(parsed["transcript"], format!("heard {recorded} bytes (local-model)"));
    // Every call's decision and execution are in the chain, and it verifies.
    let db = dir.path().join("caio.db");
    let verified = Command::new(caio).args(["trace", "verify"]).arg(&db).output().unwrap();
    let report = String::from_utf8_lossy(&verified.stdout).to_string();
    assert!(verified.status.success(), "{report}");
    let connection = rusqlite::Connection::open(&db).unwrap();
    let count = |kind: &str| -> i64 {
        connection
            .query_row("SELECT count(*) FROM traces WHERE json_extract(body, '$.kind') = ?1", [kind], |row| row.get(0))
            .unwrap()
    };
    // chat, streamed chat, embeddings, images, speech, transcription,
    // the Anthropic-served stream and rerank.
    assert_eq!(count("execution"), 8, "{report}");
    // A decision and an execution each, after the two registrations of the
    // services and the configuration the server started with.
    assert!(report.contains("ok: 19 checked") && report.contains("2 registry change(s)"), "{report}");
    assert!(first < total - 0.6, "the first audio reached the client before the rest: {first} s of {total} s");
    assert_eq!(upstream.seen().iter().filter(|(p, _, _)| p == "/v1/chat/completions").count(), 2);
}
