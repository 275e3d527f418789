//! The gateway's pool of kept-alive connections to model servers, against
//! a hand-written HTTP/1.1 server on 127.0.0.1 that watches its one
//! connection: a connection left idle longer than `gateway.pool_idle_ms`
//! is closed by the gateway, so a burst's connections do not outlive it.

use std::time::Duration;

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::registry::Registry;
use caio_gateway::adapter::CallBody;
use caio_gateway::{Call, Gateway, GatewayConfig, Operation, Reply};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one request (head and a `content-length` body) from `stream`.
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the gateway closed before sending a request");
        seen.extend_from_slice(&buffer[..n]);
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the gateway closed in the middle of its request");
        seen.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test]
async fn a_connection_idle_longer_than_pool_idle_ms_is_closed_by_the_gateway() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1", listener.local_addr().unwrap());
    let text = format!(
        r#"{{"id": "kept", "version": "1.0.0", "capabilities": ["chat"], "privacy": {{"data_locality": "local"}},
            "api": {{"adapter": "openai", "endpoint": "{endpoint}", "model": "m", "timeout_ms": 5000}}}}"#
    );
    let contracts = parse_contracts(&text, Format::Json).unwrap();
    let gateway =
        std::sync::Arc::new(Gateway::new(GatewayConfig { pool_idle_ms: 100, ..GatewayConfig::default() }).unwrap());
    gateway.declare(&Registry::from_contracts(contracts.clone()).unwrap());

    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        let answer = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]})
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        // Kept alive by both sides: the next read ends only when the
        // gateway closes the connection (or sends another request).
        let mut rest = [0u8; 1];
        stream.read(&mut rest).await.unwrap()
    });

    let call = Call {
        operation: Operation::Chat,
        body: CallBody::from_value(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})).unwrap(),
        stream: false,
        id: "chatcmpl-pool".into(),
        created: 1,
        restart: false,
        upload: None,
    };
    let (reply, _) = gateway.execute(&contracts, &call).await;
    assert!(matches!(reply, Ok(Reply::Complete { .. })), "the call is served: {reply:?}");
    // Far longer than pool_idle_ms, far shorter than the default (30 s): a
    // gateway that keeps the connection fails here.
    let closed = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert_eq!(closed.expect("the idle connection is closed").unwrap(), 0, "the gateway sent nothing more and closed");
}
