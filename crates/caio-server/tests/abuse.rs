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
    // An `input` that is not an object is refused, not taken apart.
    let body = r#"{"request": {"id": "r", "capabilities": ["chat"]}, "operation": "chat", "input": 5}"#;
    let (status, error) = post(&server, "/v1/orchestrate", body, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().starts_with("`input`"), "{error}");
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

/// Sends a request head on a fresh connection and `body` (maybe less than
/// the `Content-Length` it declares), then reads what comes back within
/// `wait`: the response's first line, or `None` if nothing came.
async fn raw(server: &Server, head: &str, body: &[u8], wait: Duration) -> (tokio::net::TcpStream, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let line = match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Ok(Ok(n)) if n > 0 => {
            Some(String::from_utf8_lossy(&buffer[..n]).lines().next().unwrap_or_default().to_string())
        }
        _ => None,
    };
    (stream, line)
}

fn head(path: &str, bearer: Option<&str>, length: usize) -> String {
    let authorization = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{authorization}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn the_caller_is_authenticated_before_a_byte_of_its_body_is_read() {
    let up = Upstream::start("up").await;
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |_| {}).await;
    // A megabyte announced, none of it sent: a forged token, and the answer comes at once.
    for path in ["/v1/chat/completions", "/v1/embeddings", "/v1/orchestrate", "/v1/route"] {
        let (_, line) = raw(&server, &head(path, Some("forged"), 1 << 20), b"", Duration::from_secs(5)).await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "{path}");
    }
    // No token at all: the OpenAI front doors take it only from the header.
    // (`/v1/route` and `/v1/orchestrate` also read one from the routing
    // request, so they read the body: within the budget and the deadline.)
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        let (_, line) = raw(&server, &head(path, None, 1 << 20), b"", Duration::from_secs(5)).await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "{path}");
    }
    // Registering a service: an admin only, known before the body.
    let caller = token("alice", &["chat.basic"]);
    let (_, line) = raw(&server, &head("/v1/services", Some(&caller), 1 << 20), b"", Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 403 Forbidden"));
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_by_a_budget_and_a_deadline() {
    let up = Upstream::start("up").await;
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |config| {
        config.limits.body_bytes = 64 * 1024;
        config.limits.body_budget_bytes = 128 * 1024;
        config.limits.timeout = Duration::from_millis(800);
    })
    .await;
    let caller = token("alice", &["chat.basic"]);
    let announce = head("/v1/chat/completions", Some(&caller), 64 * 1024);
    // Two bodies announced in full take the whole budget while they trickle in.
    let (first, nothing) = raw(&server, &announce, b"{", Duration::from_millis(100)).await;
    assert_eq!(nothing, None, "the server waits for the rest");
    let (second, _) = raw(&server, &announce, b"{", Duration::from_millis(100)).await;
    // A third has no room: refused before it is read.
    let (_, line) = raw(&server, &announce, b"", Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    // The trickling bodies end at the deadline, and their room is free again.
    let (mut first, mut second) = (first, second);
    for stream in [&mut first, &mut second] {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buffer[..n]).to_string();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("body_timeout"), "{text}");
    }
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    assert_eq!(post(&server, "/v1/chat/completions", &body, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_caller_has_a_bounded_number_of_calls_in_flight() {
    let up = Upstream::start("up").await;
    up.always(Some(caio_gateway::fixture::Fault::Slow(Duration::from_millis(500))));
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |config| {
        config.limits.caller_in_flight = 1;
    })
    .await;
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let first = post(&server, "/v1/chat/completions", &body, &[]);
    let second = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        post(&server, "/v1/chat/completions", &body, &[]).await
    };
    let other = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        client()
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(token("bob", &["chat.basic"]))
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
    };
    let ((first, _), (second, error), other) = tokio::join!(first, second, other);
    assert_eq!(first, StatusCode::OK);
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("caller_in_flight"), "{error}");
    assert_eq!(other, StatusCode::OK, "another caller is not held back");
}

async fn connect(server: &Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.url.trim_start_matches("http://")).await.unwrap()
}

/// Whether the server closes `stream` within `wait` (end of stream or reset).
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn healthz(server: &Server) -> StatusCode {
    client().get(format!("{}/healthz", server.url)).send().await.unwrap().status()
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_and_an_idle_connection_are_closed_at_the_header_read_time() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start_with(Vec::new(), Policy::default(), |config| {
        config.connections.header_read = Duration::from_millis(500);
    })
    .await;
    // Slowloris: a byte every 100 ms never completes a head; trickling does not extend it.
    let mut slow = connect(&server).await;
    let trickle = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle).await.expect("the server cut the trickle off");
    assert!(closed_within(&mut slow, Duration::from_secs(2)).await, "closed after the header-read time");
    // A connection that never sends anything.
    let mut silent = connect(&server).await;
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
    // A kept-alive connection after its request: idle, closed the same way.
    let mut kept = connect(&server).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(closed_within(&mut kept, Duration::from_secs(2)).await, "the answer, then the close");
    assert!(started.elapsed() >= Duration::from_millis(400), "not before its idle time");
    assert_eq!(healthz(&server).await, StatusCode::OK);
}

#[tokio::test]
async fn a_request_head_larger_than_the_read_buffer_is_refused_with_431() {
    let server = Server::start_with(Vec::new(), Policy::default(), |config| {
        config.connections.read_buffer = 16 << 10;
    })
    .await;
    // Within the buffer: answered.
    let fits = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "p".repeat(8 << 10));
    let (_kept, line) = raw(&server, &fits, b"", Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    // Hyper's own bound is about 400 KB; a connection holds at most the
    // configured read buffer instead.
    let large = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "p".repeat(40 << 10));
    let (_kept, line) = raw(&server, &large, b"", Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 431 Request Header Fields Too Large"));
    assert_eq!(healthz(&server).await, StatusCode::OK);
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_keep_healthz_from_answering() {
    let server = Server::start_with(Vec::new(), Policy::default(), |config| {
        config.connections.max_connections = 200;
        config.connections.max_per_address = 200;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(connect(&server).await);
    }
    // Every slot is held by a connection that sent nothing: the newest take
    // the places of the oldest, so a new one is always served.
    for _ in 0..5 {
        assert_eq!(healthz(&server).await, StatusCode::OK);
    }
    let opened = server.state.connections().map(|r| r.open()).unwrap_or_default();
    assert!(opened <= 200, "{opened} connections open");
}

#[tokio::test]
async fn request_ids_are_bounded_and_endpoints_checked_as_calls_parse_them() {
    let up = Upstream::start("up").await;
    let server = Server::start_with(vec![service("s", &up.openai_base(), "")], Policy::default(), |_| {}).await;
    let long = "r".repeat(200_000);
    for id in [long.as_str(), "evil\u{202E}gnp.exe", "line\nbreak"] {
        let body = json!({"id": id, "capabilities": ["chat"]}).to_string();
        let (status, error) = post(&server, "/v1/route", &body, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(error["error"]["message"].as_str().unwrap().starts_with("id: a request id"), "{error}");
    }
    let chat = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let (status, _) = post(&server, "/v1/chat/completions", &chat, &[("x-request-id", &"r".repeat(200))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An endpoint every call would refuse is refused when it is registered.
    let contract = json!({"id": "encoded", "version": "1.0.0", "capabilities": ["chat"], "privacy": {"data_locality": "local"},
        "api": {"adapter": "openai", "endpoint": "http://127.0.0.1%3A18491/v1"}});
    let response = client()
        .post(format!("{}/v1/services", server.url))
        .bearer_auth(token("admin", &["caio:admin"]))
        .json(&contract)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["details"]["path"], "api.endpoint", "{error}");
    assert_eq!(up.hits(), 0);
}
