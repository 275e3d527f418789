//! The front doors end to end: caio on 127.0.0.1 over a real SQLite file,
//! in front of fixture model servers on 127.0.0.1 that fail on request.
//! Each test checks what the client got, which services were called, and
//! what the trace log recorded.

mod support;

use std::time::{Duration, Instant};

use caio_calculus::breaker::{BreakerConfig, Window};
use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::rules::Policy;
use caio_gateway::RetryPolicy;
use caio_gateway::fixture::{Fault, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, execution_of, outcomes, token};

/// A chat service; a lower `cost` ranks it higher.
fn service(id: &str, endpoint: &str, cost: f64, extra: &str) -> Contract {
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": ["chat", "embeddings"], "cost": {{"per_1k_tokens": {cost}}},
            "privacy": {{"data_locality": "local"}}, "security": {{"required_permissions": ["chat.basic"]}},
            "api": {{"adapter": "openai", "endpoint": "{endpoint}", "model": "m-{id}", "timeout_ms": 1000}}{extra}}}"#
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

async fn server(contracts: Vec<Contract>) -> Server {
    server_reading_history_every(contracts, Duration::ZERO).await
}

async fn server_reading_history_every(contracts: Vec<Contract>, every: Duration) -> Server {
    Server::start_with(contracts, Policy::default(), |config| {
        config.gateway.retry =
            RetryPolicy { retries: 1, base_backoff_ms: 5, max_backoff_ms: 10, max_retry_after_ms: 1_000 };
        config.gateway.breaker = BreakerConfig {
            window: Window::Count { calls: 4 },
            minimum_calls: 4,
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_ms: 10_000,
            open_ms: 60_000,
            half_open_probes: 1,
        };
        config.history_every = every;
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn caller() -> String {
    token("alice", &["chat.basic"])
}

async fn chat(
    server: &Server,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client().post(format!("{}/v1/chat/completions", server.url)).bearer_auth(caller()).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The JSON body of the answer to `request`.
async fn body_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

fn hello() -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hello"}]})
}

/// `GET path` as an auditor: the status and the JSON body.
async fn audit(server: &Server, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token("auditor", &["caio:audit"]))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json::<Value>().await.unwrap_or(Value::Null))
}

async fn trace(server: &Server, seq: u64) -> Value {
    let (status, trace) = audit(server, &format!("/v1/traces/{seq}")).await;
    assert_eq!(status, StatusCode::OK);
    trace["body"].clone()
}


#[tokio::test]
async fn a_chat_completion_falls_back_along_the_decision_and_every_attempt_is_traced() {
    let (cheap, dear) = (Upstream::start("cheap").await, Upstream::start("dear").await);
    cheap.always(Some(Fault::ServerError));
    let server =
        server(vec![service("cheap", &cheap.openai_base(), 0.0, ""), service("dear", &dear.openai_base(), 0.05, "")])
            .await;

    let (status, headers, body) = chat(&server, hello(), &[("x-request-id", "req-1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from upstream (dear)");
    assert_eq!(headers["x-caio-service"], "dear");
    assert_eq!(headers["x-caio-request-id"], "req-1");
    assert_eq!(headers["x-caio-attempts"], "3");

    let decision_seq: u64 = headers["x-caio-trace"].to_str().unwrap().parse().unwrap();
    let decision = trace(&server, decision_seq).await;
    assert_eq!(decision["selected"]["service"], "cheap", "the cheaper service ranked first: {decision}");
    let execution = execution_of(&server, decision_seq).await;
    assert_eq!(outcomes(&execution), ["cheap:server_500", "cheap:server_500", "dear:ok"]);
    assert_eq!(execution["served_by"], "dear");
    assert!(execution["attempts"][0]["latency_ms"].is_number());
    assert_eq!(cheap.hits(), 2);

    // The chain, decisions and executions together, verifies.
    let (status, report) = audit(&server, "/v1/traces/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["checked"].as_u64().unwrap() - report["registry_changes"].as_u64().unwrap(), 2, "{report}");
}

#[tokio::test]
async fn a_service_that_fails_the_contract_is_never_a_fallback() {
    let (local, cloud) = (Upstream::start("local").await, Upstream::start("cloud").await);
    local.always(Some(Fault::ServerError));
    let cloud_contract = {
        let mut c = service("cloud", &cloud.openai_base(), 0.0, "");
        c.privacy.data_locality = caio_calculus::contract::Locality::Cloud;
        c
    };
    let server = server(vec![service("local", &local.openai_base(), 0.01, ""), cloud_contract]).await;
    let (status, _, body) = chat(&server, hello(), &[("x-caio-request", r#"{"sensitivity": "sensitive"}"#)]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "upstream_failed");
    assert_eq!(cloud.hits(), 0, "sensitive data never went to the cloud service, healthy as it was");
    // Without the constraint, the cloud service qualifies and serves.
    let (status, headers, _) = chat(&server, hello(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-caio-service"], "cloud");
}

#[tokio::test]
async fn breakers_and_observed_history_are_visible_per_service_and_in_metrics() {
    let (flaky, spare) = (Upstream::start("flaky").await, Upstream::start("spare").await);
    flaky.always(Some(Fault::ServerError));
    let contracts =
        vec![service("flaky", &flaky.openai_base(), 0.0, ""), service("spare", &spare.openai_base(), 0.05, "")];
    // The score reads no history here, so the failing service keeps ranking first.
    let server = server_reading_history_every(contracts, Duration::from_secs(3600)).await;
    for _ in 0..2 {
        let (status, _, _) = chat(&server, hello(), &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let view = body_of(client().get(format!("{}/v1/services/flaky", server.url)).bearer_auth(caller())).await;
    assert_eq!(view["breaker"]["state"], "open", "{view}");
    assert_eq!(view["observed"]["failures"], 4);
    let hits = flaky.hits();
    let (status, headers, _) = chat(&server, hello(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-caio-service"], "spare");
    assert_eq!(flaky.hits(), hits, "the open breaker kept the call away");
    let metrics = client().get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("caio_breaker_state{service=\"flaky\"} 2"), "{metrics}");
    assert!(metrics.contains("caio_upstream_calls_total{service=\"flaky\",outcome=\"failure\"} 4"), "{metrics}");
}

#[tokio::test]
async fn thin_evidence_moves_nothing_and_an_open_breaker_excludes_its_service() {
    let (flaky, spare) = (Upstream::start("flaky").await, Upstream::start("spare").await);
    flaky.always(Some(Fault::ServerError));
    let server = server(vec![
        service("flaky", &flaky.openai_base(), 0.0, ""),
        service("spare", &spare.openai_base(), 0.0001, ""),
    ])
    .await;
    let route = || async {
        let request = json!({"id": "r", "capabilities": ["chat"], "estimated_tokens": 1000});
        body_of(client().post(format!("{}/v1/route", server.url)).bearer_auth(caller()).json(&request)).await
    };
    assert_eq!(route().await["selected"]["service"], "flaky", "cheaper, and nothing observed yet");
    // Calls as dear as the routed request, so that the price difference is the same.
    let tokens = [("x-caio-request", r#"{"estimated_tokens": 1000}"#)];
    let (status, headers, _) = chat(&server, hello(), &tokens).await;
    assert_eq!((status, headers["x-caio-service"].to_str().unwrap()), (StatusCode::OK, "spare"));
    let decision = route().await;
    assert_eq!(decision["selected"]["service"], "flaky", "two failures are thin evidence: {decision}");
    // Two more failures open its breaker (4 of 4): the decision excludes it.
    chat(&server, hello(), &tokens).await;
    let decision = route().await;
    assert_eq!(decision["selected"]["service"], "spare", "{decision}");
    let excluded = decision["rejected"].as_array().unwrap().iter().find(|r| r["service"] == "flaky").unwrap();
    assert_eq!(excluded["step"], "availability");
    assert!(excluded["reason"].as_str().unwrap().starts_with("circuit breaker open since"), "{excluded}");
    let hits = flaky.hits();
    assert_eq!(chat(&server, hello(), &[]).await.1["x-caio-attempts"], "1", "the spare is called, and only it");
    assert_eq!(flaky.hits(), hits);
}

#[tokio::test]
async fn a_streamed_completion_is_forwarded_as_it_arrives() {
    let up = Upstream::start("s").await;
    up.chunk_gap(Duration::from_millis(200));
    let server = server(vec![service("s", &up.openai_base(), 0.0, "")]).await;
    let started = Instant::now();
    let mut response = client()
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(caller())
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push((started.elapsed(), String::from_utf8(chunk.to_vec()).unwrap()));
    }
    let first = chunks[0].0;
    assert!(first < Duration::from_millis(150), "the first chunk came before the upstream's next one: {first:?}");
    assert!(chunks.last().unwrap().0 >= Duration::from_millis(600), "{chunks:?}");
    let text: String = chunks.iter().map(|(_, c)| c.as_str()).collect();
    let words: Vec<&str> = ["Hello", " from", " upstream"].to_vec();
    let positions: Vec<usize> = words.iter().map(|w| text.find(&format!("\"content\":\"{w}\"")).unwrap()).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "in order: {text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn embeddings_and_orchestrate() {
    let up = Upstream::start("e").await;
    let server = server(vec![service("e", &up.openai_base(), 0.0, "")]).await;
    let response = client()
        .post(format!("{}/v1/embeddings", server.url))
        .bearer_auth(caller())
        .json(&json!({"model": "embeddings", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let response = client()
        .post(format!("{}/v1/orchestrate", server.url))
        .bearer_auth(caller())
        .json(&json!({"request": {"id": "o-1", "capabilities": ["chat"]}, "operation": "chat",
                      "input": {"messages": [{"role": "user", "content": "hi"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["served_by"], "e");
    assert_eq!(body["decision"]["request_id"], "o-1");
    assert_eq!(body["result"]["choices"][0]["message"]["content"], "Hello from upstream (e)");
    assert_eq!(body["attempts"][0]["outcome"], "ok");
    let execution = trace(&server, body["execution"]["seq"].as_u64().unwrap()).await;
    assert_eq!(execution["decision"]["seq"], body["decision"]["trace"]["seq"]);
}

#[tokio::test]
async fn bad_calls_get_one_clear_error_and_call_nothing() {
    let up = Upstream::start("x").await;
    let server = server(vec![service("x", &up.openai_base(), 0.0, "")]).await;
    for (body, headers, status, expected) in [
        (json!({"messages": []}), vec![], 400, "`model` is required"),
        (json!({"model": "gpt 4o", "messages": []}), vec![], 400, "names no route of caio.toml"),
        (json!({"model": "chat"}), vec![], 400, "`messages` is required"),
        (json!({"model": "chat", "messages": [], "stream": "yes"}), vec![], 400, "`stream` must be true or false"),
        (hello(), vec![("x-caio-guarantees", "{not json")], 400, "the x-caio-guarantees header: invalid JSON"),
        (hello(), vec![("x-caio-request", r#"{"token": "t"}"#)], 400, "may not set `token`"),
        (hello(), vec![("x-caio-request", r#"{"sensitivity": "secret"}"#)], 400, "sensitivity"),
        (json!({"model": "vision", "messages": []}), vec![], 422, "no service qualifies"),
    ] {
        let (got, _, answer) = chat(&server, body.clone(), &headers).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let unauthenticated =
        client().post(format!("{}/v1/chat/completions", server.url)).json(&hello()).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.hits(), 0);
}
