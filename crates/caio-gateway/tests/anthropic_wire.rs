//! caio's Messages requests against the official `anthropic` package's: the
//! package sends a request to a fixture that records it, caio's adapter
//! sends the same chat written in the OpenAI format, and the two requests
//! must be the same JSON with the same API headers.
//!
//! The Python interpreter is `CAIO_OPENAI_PYTHON` (the environment of the
//! official clients), else `python3`; one without the `anthropic` package
//! skips the test with a message, unless `CAIO_REQUIRE_OPENAI=1` (CI sets
//! it), which makes it a failure.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::registry::Registry;
use caio_gateway::adapter::CallBody;
use caio_gateway::fixture::Upstream;
use caio_gateway::{Call, Gateway, GatewayConfig, Operation, Reply};
use serde_json::json;

fn python() -> Option<String> {
    let python = std::env::var("CAIO_OPENAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import anthropic"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    let why = format!("`{python}` cannot import the `anthropic` package (set CAIO_OPENAI_PYTHON to a Python that can)");
    if std::env::var("CAIO_REQUIRE_OPENAI").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED anthropic_wire: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caio_writes_the_messages_request_the_official_client_writes() {
    let Some(python) = python() else { return };
    let fixture = Upstream::start("claude").await;
    // The official client.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/anthropic_client.py");
    let url = fixture.base();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).env("CAIO_ANTHROPIC_URL", url).output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "the client failed:\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Hello from upstream (claude)");
    // caio, for the same chat in the OpenAI format.
    let contract = parse_contracts(
        &format!(
            r#"{{"id": "claude", "version": "1.0.0", "capabilities": ["chat"], "privacy": {{"data_locality": "cloud"}},
                "api": {{"adapter": "anthropic", "endpoint": "{}", "model": "m-claude", "credentials_env": "KEY"}}}}"#,
            fixture.base()
        ),
        Format::Json,
    )
    .unwrap()
    .remove(0);
    let gateway = Gateway::new(GatewayConfig::default())
        .unwrap()
        .with_environment(Arc::new(|name| (name == "KEY").then(|| "sk-ant-test".to_string())));
    gateway.declare(&Registry::from_contracts(vec![contract.clone()]).unwrap());
    let body = json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            ]},
            {"role": "assistant", "content": "A", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{\"at\": 1}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "seen"},
        ],
        "max_tokens": 50,
        "stop": ["END"],
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
    });
    let call = Call {
        operation: Operation::Chat,
        body: CallBody::from_value(&body).unwrap(),
        stream: false,
        id: "chatcmpl-wire".into(),
        created: 1,
        restart: false,
        upload: None,
    };
    let (reply, _) = Arc::new(gateway).execute(&[contract], &call).await;
    let Ok(Reply::Complete { .. }) = reply else { panic!("caio's call failed: {reply:?}") };
    let seen = fixture.seen();
    let [(client_path, client_headers, client_body), (caio_path, caio_headers, caio_body)] = &seen[..] else {
        panic!("two requests, found {}", seen.len())
    };
    assert_eq!(caio_path, client_path);
    assert_eq!(caio_body, client_body, "the same Messages request");
    for header in ["authorization", "anthropic-version", "content-type"] {
        assert_eq!(caio_headers.get(header), client_headers.get(header), "{header}");
    }
}
