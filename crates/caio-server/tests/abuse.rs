//! caio under hostile clients, on 127.0.0.1 over a real SQLite file: every
//! input is read one strict way, and what the caller says cannot lower the
//! gateway's own estimates. Each test is a reproduction that once got
//! through.

mod support;

use std::time::Duration;

use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::rules::Policy;
use caio_gateway::fixture::Upstream;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, token};

fn service(id: &str, endpoint: &str, extra: &str) -> Contract {
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": ["chat"], "privacy": {{"data_locality": "local"}},
            "security": {{"required_permissions": ["chat.basic"]}}{extra},
            "api": {{"adapter": "openai", "endpoint": "{endpoint}", "model": "m-{id}"}}}}"#
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn post(server: &Server, path: &str, body: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_repeated_key_is_refused_in_every_body_and_header_that_carries_json() {
    let up = Upstream::start("up").await;
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |_| {}).await;
    let messages = r#"[{"role": "user", "content": "hi"}]"#;
    // The chat front door.
    let body = format!(r#"{{"model": "chat", "model": "other", "messages": {messages}}}"#);
    let (status, error) = post(&server, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("model"), "{error}");
    // /v1/orchestrate's routing request, read as /v1/route reads it.
    let body = format!(
        r#"{{"request": {{"id": "r", "capabilities": ["chat"], "sensitivity": "sensitive", "sensitivity": "public"}},
            "operation": "chat", "input": {{"messages": {messages}}}}}"#
    );
    let (status, error) = post(&server, "/v1/orchestrate", &body, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["details"]["path"], "request.sensitivity", "{error}");
    let (status, error) = post(&server, "/v1/route", r#"{"id": "r", "capabilities": ["chat"], "id": "q"}"#, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the same as /v1/route: {error}");
    // The x-caio-request header.
    let body = format!(r#"{{"model": "chat", "messages": {messages}}}"#);
    let header = r#"{"sensitivity": "sensitive", "sensitivity": "public"}"#;
    let (status, error) = post(&server, "/v1/chat/completions", &body, &[("x-caio-request", header)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["details"]["path"], "sensitivity", "{error}");
    assert_eq!(up.hits(), 0, "nothing refused reached a service");
}

#[tokio::test]
async fn the_caller_cannot_lower_the_gateways_size_estimate() {
    let up = Upstream::start("up").await;
    let limited = service("s", &up.openai_base(), r#", "constraints": {"max_input_tokens": 1000}"#);
    let server = Server::start_with(vec![limited], Policy::default(), |_| {}).await;
    let long = "x".repeat(40_000);
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": long}]}).to_string();
    let (status, error) = post(&server, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, error) =
        post(&server, "/v1/chat/completions", &body, &[("x-caio-request", r#"{"estimated_tokens": 1}"#)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a lower estimate changes nothing: {error}");
    assert!(error["error"]["details"].to_string().contains("input_tokens"), "{error}");
    // Raising it is the caller's right.
    let short = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let (status, _) =
        post(&server, "/v1/chat/completions", &short, &[("x-caio-request", r#"{"estimated_tokens": 5000}"#)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a higher estimate counts");
    let (status, answer) = post(&server, "/v1/chat/completions", &short, &[]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(up.hits(), 1);
}

/// Opens a streamed completion and reads its first event; the stream stays
/// open until the returned response is dropped or read to the end.
async fn open_stream(server: &Server) -> reqwest::Response {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let mut response = client()
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.chunk().await.unwrap().expect("a first event");
    response
}

#[tokio::test]
async fn a_stream_counts_against_max_in_flight_until_it_ends_and_ends_at_stream_ms() {
    let up = Upstream::start("up").await;
    up.words(20);
    up.chunk_gap(Duration::from_millis(100));
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |config| {
        config.limits.max_in_flight = 2;
        config.limits.stream = Duration::from_millis(600);
    })
    .await;
    let (first, second) = (open_stream(&server).await, open_stream(&server).await);
    // Two streams hold both slots: a third call of any kind is refused.
    let (status, error) = post(&server, "/v1/route", r#"{"id": "r", "capabilities": ["chat"]}"#, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "overloaded");
    // The streams last 2 s upstream; they end at stream_ms with an error event.
    let ended = first.text().await.unwrap();
    let last = ended.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.contains("\"code\":\"stream_timeout\""), "{ended}");
    assert!(!ended.contains("w20"), "cut before its end: {ended}");
    drop(second);
    // Their slots are free again.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = post(&server, "/v1/route", r#"{"id": "r", "capabilities": ["chat"]}"#, &[]).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::OK);
}
