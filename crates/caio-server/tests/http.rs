//! The server over a real socket on 127.0.0.1 with a real SQLite file:
//! every endpoint, every authentication failure, the limits, and the
//! metrics after traffic.

mod support;

use std::time::Duration;

use base64::Engine as _;
use caio_server::Limits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, chat_request, claims, sign_with, token};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn route(server: &Server, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = client().post(format!("{}/v1/route", server.url)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_routed_request_is_decided_proven_and_traced() {
    let server = Server::start(Limits::default()).await;
    let caller = token("alice", &["chat.basic"]);
    let auditor = token("auditor", &["caio:audit"]);
    // The log opens with the seeded registry's entries; decisions follow.
    let verify = client().get(format!("{}/v1/traces/verify", server.url)).bearer_auth(&auditor).send().await.unwrap();
    let (_, before) = json_of(verify).await;
    let registered = before["registry_changes"].as_u64().unwrap();
    assert!(registered > 0 && before["checked"] == registered, "{before}");
    let (status, first) = route(&server, Some(&caller), &chat_request("r-1")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["request_id"], "r-1");
    assert_eq!(first["trace"]["seq"], registered);
    assert!(first["selected"]["service"].is_string());
    assert!(first["proofs"].as_array().unwrap().iter().all(|p| p["valid"] == true), "{first}");
    assert!(first.get("evidence").is_none(), "evidence only on request");
    assert!(!first["rejected"].as_array().unwrap().is_empty(), "why the others were not chosen");
    let (status, second) = route(&server, Some(&caller), &chat_request("r-2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["trace"]["seq"], registered + 1);
    let full = client()
        .post(format!("{}/v1/route?proofs=full", server.url))
        .bearer_auth(&caller)
        .json(&chat_request("r-3"))
        .send()
        .await
        .unwrap();
    let (_, full) = json_of(full).await;
    assert!(full["evidence"].as_array().unwrap().iter().all(|p| p.get("evidence").is_some()), "{full}");

    // The audit trail: one trace, and the whole chain.
    let trace = client()
        .get(format!("{}/v1/traces/{}", server.url, registered + 1))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    let (status, trace) = json_of(trace).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    assert_eq!(trace["hash"], second["trace"]["hash"]);
    assert_eq!(trace["prev_hash"], first["trace"]["hash"]);
    assert_eq!(trace["body"]["request_id"], "r-2");
    let verify = client().get(format!("{}/v1/traces/verify", server.url)).bearer_auth(&auditor).send().await.unwrap();
    let (status, report) = json_of(verify).await;
    assert_eq!(
        (status, report["valid"].clone(), report["checked"].clone(), report["anchored"].clone()),
        (StatusCode::OK, json!(true), json!(registered + 3), json!(true))
    );
    let range = client()
        .get(format!("{}/v1/traces/verify?from={1}&to={1}", server.url, registered + 1))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(range).await.1["checked"], 1);
    let denied = client().get(format!("{}/v1/traces/0", server.url)).bearer_auth(&caller).send().await.unwrap();
    assert_eq!(json_of(denied).await.1["error"]["code"], "forbidden");
    let garbled =
        client().get(format!("{}/v1/traces/verify?from=first", server.url)).bearer_auth(&auditor).send().await.unwrap();
    assert_eq!(json_of(garbled).await.1["error"]["code"], "invalid_request", "query errors have the one shape too");
    let backwards = client()
        .get(format!("{}/v1/traces/verify?from=2&to=1", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(backwards).await.1["error"]["code"], "invalid_request");
    let missing = client().get(format!("{}/v1/traces/99", server.url)).bearer_auth(&auditor).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}

#[tokio::test]
async fn every_authentication_failure_is_refused_with_its_reason() {
    let server = Server::start(Limits::default()).await;
    let body = chat_request("r");
    let expired = sign_with(&caio_calculus::security::Claims { exp: 1_000, ..claims("alice", &["chat.basic"]) }, None);
    let wrong_audience = sign_with(
        &caio_calculus::security::Claims {
            aud: caio_calculus::security::Audience::One("someone-else".into()),
            ..claims("alice", &["chat.basic"])
        },
        None,
    );
    let forged = sign_with(&claims("alice", &["chat.basic"]), Some("a guessed secret that is long enough to sign"));
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        engine.encode(br#"{"alg":"none","typ":"JWT"}"#),
        engine.encode(serde_json::to_vec(&claims("alice", &["chat.basic"])).unwrap())
    );
    for (token, why) in [
        (None, "send a token"),
        (Some(expired.as_str()), "expired"),
        (Some(wrong_audience.as_str()), "audience"),
        (Some(forged.as_str()), "signature"),
        (Some(unsigned.as_str()), "malformed"),
        (Some("not-a-jwt"), "malformed"),
    ] {
        let (status, answer) = route(&server, token, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated");
        let message = answer["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(why), "{why}: {message}");
    }
    let header = client()
        .post(format!("{}/v1/route", server.url))
        .header("Authorization", "Basic abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), StatusCode::UNAUTHORIZED);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let server = Server::start(Limits { body_bytes: 4096, ..Limits::default() }).await;
    let caller = token("alice", &["chat.basic"]);
    let (status, answer) = route(
        &server,
        Some(&caller),
        &json!({"id": "r", "capabilities": ["chat"], "guarantees": {"latency_ms": {"max": -1}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    assert_eq!(answer["error"]["details"]["path"], "guarantees.latency_ms.max");
    let huge = json!({"id": "r", "capabilities": ["chat"], "attributes": {"pad": "x".repeat(10_000)}});
    let (status, answer) = route(&server, Some(&caller), &huge).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("body_too_large")),
        "{answer}"
    );
    let (status, answer) = route(&server, Some(&caller), &json!({"id": "r", "capabilities": ["teleport"]})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("no_service")),
        "{answer}"
    );
    let nowhere = client().get(format!("{}/v2/nothing", server.url)).send().await.unwrap();
    assert_eq!(json_of(nowhere).await.1["error"]["code"], "not_found");
    let wrong_method = client().put(format!("{}/v1/route", server.url)).send().await.unwrap();
    assert_eq!(json_of(wrong_method).await.1["error"]["code"], "method_not_allowed");
    server.shutdown().await;
}

#[tokio::test]
async fn callers_are_rate_limited_one_by_one() {
    let server = Server::start(Limits { rate_per_second: 0.5, burst: 2.0, ..Limits::default() }).await;
    let alice = token("alice", &["chat.basic"]);
    for i in 0..2 {
        assert_eq!(route(&server, Some(&alice), &chat_request(&format!("a{i}"))).await.0, StatusCode::OK);
    }
    let limited = client()
        .post(format!("{}/v1/route", server.url))
        .bearer_auth(&alice)
        .json(&chat_request("a3"))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(json_of(limited).await.1["error"]["code"], "rate_limited");
    let bob = token("bob", &["chat.basic"]);
    assert_eq!(route(&server, Some(&bob), &chat_request("b0")).await.0, StatusCode::OK, "bob has a bucket of his own");
    server.shutdown().await;
}

#[tokio::test]
async fn the_registry_changes_only_for_admins_and_routing_follows() {
    let server = Server::start(Limits::default()).await;
    let admin = token("admin", &["caio:admin", "chat.basic"]);
    let caller = token("alice", &["chat.basic"]);
    let contract = std::fs::read_to_string(support::root().join("examples/contracts/ollama-llama3-8b.yaml")).unwrap();
    let newer = contract.replace("version: 1.2.0", "version: 1.3.0");
    let post = |token: &str, body: String, yaml: bool| {
        client()
            .post(format!("{}/v1/services", server.url))
            .bearer_auth(token)
            .header("Content-Type", if yaml { "application/yaml" } else { "application/json" })
            .body(body)
            .send()
    };
    let denied = post(&caller, newer.clone(), true).await.unwrap();
    assert_eq!(json_of(denied).await, (StatusCode::FORBIDDEN, json_of_forbidden()));
    let created = post(&admin, newer.clone(), true).await.unwrap();
    let (status, created) = json_of(created).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect::<Vec<_>>(),
        ["1.2.0", "1.3.0"]
    );
    let again = post(&admin, newer.clone(), true).await.unwrap();
    assert_eq!(json_of(again).await.1["error"]["code"], "duplicate_version");
    let bad =
        newer.replace("version: 1.3.0", "version: 1.4.0").replace("latency_ms: { max: 1500", "latency_ms: { max: -5");
    let (status, answer) = json_of(post(&admin, bad, true).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_contract");
    assert_eq!(answer["error"]["details"]["path"], "guarantees.latency_ms.max");
    let (status, answer) = json_of(post(&admin, "{\"id\": ".into(), false).await.unwrap()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invalid_contract"))
    );

    let shown =
        client().get(format!("{}/v1/services/ollama-llama3-8b", server.url)).bearer_auth(&caller).send().await.unwrap();
    let (_, shown) = json_of(shown).await;
    assert_eq!(shown["versions"][1]["contract"]["version"], "1.3.0");
    let listed = client().get(format!("{}/v1/services", server.url)).bearer_auth(&caller).send().await.unwrap();
    let (_, listed) = json_of(listed).await;
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"ollama-llama3-8b") && ids.len() >= 9, "{ids:?}");

    // Deprecating every chat service but one leaves that one to route to.
    let chat: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["capabilities"].as_array().unwrap().iter().any(|c| c == "chat"))
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let keep = "ollama-llama3-8b";
    for id in chat.iter().filter(|id| *id != keep) {
        let deprecated =
            client().delete(format!("{}/v1/services/{id}", server.url)).bearer_auth(&admin).send().await.unwrap();
        let (status, body) = json_of(deprecated).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["deprecated_at"].is_u64());
    }
    let (status, decision) = route(&server, Some(&caller), &chat_request("after")).await;
    assert_eq!((status, decision["selected"]["service"].clone()), (StatusCode::OK, json!(keep)), "{decision}");
    let unknown = client().delete(format!("{}/v1/services/nope", server.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}

fn json_of_forbidden() -> Value {
    json!({"error": {"code": "forbidden", "message": "this needs the permission `caio:admin` in the caller's token", "type": "permission_error", "param": null}})
}

#[tokio::test]
async fn health_metrics_openapi_and_trace_context() {
    let server = Server::start(Limits::default()).await;
    let caller = token("alice", &["chat.basic"]);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let routed = client()
        .post(format!("{}/v1/route", server.url))
        .bearer_auth(&caller)
        .header("traceparent", parent)
        .json(&chat_request("m"))
        .send()
        .await
        .unwrap();
    let propagated = routed.headers()["traceparent"].to_str().unwrap().to_string();
    assert!(
        propagated.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !propagated.contains("00f067aa0ba902b7"),
        "{propagated}"
    );
    let (_, routed) = json_of(routed).await;
    route(&server, None, &chat_request("n")).await;
    route(&server, Some(&caller), &json!({"id": "x", "capabilities": ["teleport"]})).await;
    let (status, health) = json_of(client().get(format!("{}/healthz", server.url)).send().await.unwrap()).await;
    assert_eq!((status, health["status"].clone()), (StatusCode::OK, json!("ok")));
    let (status, ready) = json_of(client().get(format!("{}/readyz", server.url)).send().await.unwrap()).await;
    assert_eq!((status, ready["head"].clone()), (StatusCode::OK, routed["trace"]["seq"].clone()), "{ready}");
    let metrics = client().get(format!("{}/metrics", server.url)).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let metrics = metrics.text().await.unwrap();
    for expected in [
        "caio_http_requests_total{method=\"POST\",route=\"/v1/route\",status=\"200\"} 1",
        "caio_http_requests_total{method=\"POST\",route=\"/v1/route\",status=\"401\"} 1",
        "caio_decisions_total{outcome=\"selected\"} 1",
        "caio_decisions_total{outcome=\"unauthenticated\"} 1",
        "caio_decisions_total{outcome=\"no_service\"} 1",
        "caio_rejections_total{step=\"match\",reason=\"capability\"}",
        "caio_store_duration_seconds_count{operation=\"append\"} 1",
        "caio_http_request_duration_seconds_bucket{route=\"/v1/route\",le=\"+Inf\"} 3",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    let (status, document) = json_of(client().get(format!("{}/openapi.json", server.url)).send().await.unwrap()).await;
    assert_eq!((status, document["openapi"].clone()), (StatusCode::OK, json!("3.1.0")));
    assert!(document["components"]["schemas"]["Request"].is_object(), "the calculus's request schema is a component");
    let upload = &document["paths"]["/v1/audio/transcriptions"]["post"];
    assert!(upload["requestBody"]["content"]["multipart/form-data"].is_object(), "{upload}");
    assert!(document["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"]["audio/*"].is_object());
    assert!(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object());
    for operation in caio_server::openapi::OPERATIONS {
        assert!(
            document["paths"][operation.path][operation.method].is_object(),
            "{} {}",
            operation.method,
            operation.path
        );
        let url = format!("{}{}", server.url, operation.path.replace("{id}", "ollama-llama3-8b").replace("{seq}", "0"));
        let response = client().request(operation.method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
        let (_, body) = json_of(response).await;
        assert!(
            body["error"]["code"] != "not_found" && body["error"]["code"] != "method_not_allowed",
            "{} {} is routed: {body}",
            operation.method,
            operation.path
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_app_is_driven_in_process_too() {
    use tower::ServiceExt as _;
    let server = Server::start(Limits::default()).await;
    let app = caio_server::app(server.state.clone());
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/route")
        .header("Authorization", format!("Bearer {}", token("alice", &["chat.basic"])))
        .header("Content-Type", "application/json")
        .body(axum::body::Body::from(chat_request("in-process").to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_over_its_time_is_answered_with_timeout() {
    // Routing waits for the trace to be synced to disk: far longer than a
    // nanosecond.
    let server = Server::start(Limits { timeout: Duration::from_nanos(1), ..Limits::default() }).await;
    let (status, answer) = route(&server, Some(&token("alice", &["chat.basic"])), &chat_request("slow")).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("timeout")),
        "{answer}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_flooded_server_sheds_load_but_still_answers_its_operators() {
    let server = Server::start(Limits { max_in_flight: 0, ..Limits::default() }).await;
    let routed = client()
        .post(format!("{}/v1/route", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&chat_request("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(routed.headers()["retry-after"], "1");
    assert_eq!(json_of(routed).await.1["error"]["code"], "overloaded");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            client().get(format!("{}{path}", server.url)).send().await.unwrap().status(),
            StatusCode::OK,
            "{path}"
        );
    }
    server.shutdown().await;
}
