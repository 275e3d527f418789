//! Plans through `POST /v1/orchestrate` end to end: caio on 127.0.0.1 over
//! a real SQLite file, in front of fixture model servers on 127.0.0.1 that
//! fail on request. Each test checks which services were called, what a
//! step read of the steps before it, when a fallback was taken or refused,
//! and what the trace log recorded.

mod support;

use std::time::Duration;

use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::rules::Policy;
use caio_gateway::RetryPolicy;
use caio_gateway::fixture::{Fault, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, token};

/// A chat service whose latency bound is `latency_ms` at p99; a lower
/// `cost` ranks it higher.
fn service(id: &str, endpoint: &str, cost: f64, latency_ms: u64) -> Contract {
    offering(id, "chat", endpoint, cost, latency_ms, "local")
}

/// A service of `capability` in `locality`.
fn offering(id: &str, capability: &str, endpoint: &str, cost: f64, latency_ms: u64, locality: &str) -> Contract {
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": ["{capability}"], "cost": {{"per_1k_tokens": {cost}}},
            "guarantees": {{"latency_ms": {{"max": {latency_ms}, "percentile": 99}}}},
            "privacy": {{"data_locality": "{locality}"}}, "security": {{"required_permissions": ["chat.basic"]}},
            "api": {{"adapter": "openai", "endpoint": "{endpoint}", "model": "m-{id}", "timeout_ms": 1000}}}}"#
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

async fn server(contracts: Vec<Contract>) -> Server {
    Server::start_with(contracts, Policy::default(), |config| {
        config.gateway.retry =
            RetryPolicy { retries: 0, base_backoff_ms: 5, max_backoff_ms: 10, max_retry_after_ms: 1_000 };
    })
    .await
}

/// Posts a plan as a caller with `chat.basic`: the status and the body.
async fn orchestrate(server: &Server, plan: &Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orchestrate", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .timeout(Duration::from_secs(30))
        .json(plan)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Entries of a verified log that are not registry changes: decisions and
/// executions.
fn decisions(verified: &Value) -> u64 {
    verified["checked"].as_u64().unwrap() - verified["registry_changes"].as_u64().unwrap()
}

async fn audit(server: &Server, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token("auditor", &["caio:audit"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A draft, then a refinement that reads the draft, under `bound` ms at p95.
fn draft_then_refine(id: &str, bound: u64) -> Value {
    json!({
        "id": id,
        "plan": {"sequential": [{"step": "draft"}, {"step": "refine"}]},
        "steps": {
            "draft": {"request": {"capabilities": ["chat"]}, "operation": "chat",
                      "input": {"messages": [{"role": "user", "content": "Write a haiku."}]}},
            "refine": {"request": {"capabilities": ["chat"]}, "operation": "chat",
                       "input": {"messages": [{"role": "user", "content": "Improve: {{steps.draft.text}}"}]}}
        },
        "end_to_end": {"guarantees": {"latency_ms": {"max": bound, "percentile": 95}}}
    })
}

#[tokio::test]
async fn a_failed_step_falls_back_while_the_plan_keeps_its_bound_and_everything_is_traced() {
    let (cheap, dear) = (Upstream::start("cheap").await, Upstream::start("dear").await);
    cheap.always(Some(Fault::ServerError));
    let server =
        server(vec![service("cheap", &cheap.openai_base(), 0.0, 300), service("dear", &dear.openai_base(), 0.05, 400)])
            .await;

    let (status, body) = orchestrate(&server, &draft_then_refine("plan-1", 2_000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let steps = body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for step in steps {
        assert_eq!(step["planned"], "cheap", "the cheaper service was chosen first: {step}");
        assert_eq!(step["served_by"], "dear", "{step}");
        let outcomes: Vec<&str> =
            step["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["server_500", "ok"], "{step}");
    }
    assert_eq!(body["end_to_end"]["fallbacks"], 2);
    assert_eq!(body["end_to_end"]["guaranteed"]["guarantees"]["latency_ms"]["max"], 600.0);
    assert!(body["end_to_end"]["latency_ms"].as_f64().unwrap() > 0.0, "the whole plan's time is measured");
    // The refinement read the draft's text.
    let seen = dear.seen();
    let refine = &seen.last().unwrap().2;
    assert_eq!(refine["messages"][0]["content"], "Improve: Hello from upstream (dear)", "{refine}");

    // The log: each step's decision, then the plan's naming them, then each
    // step's execution linked to the plan; the chain verifies.
    let plan_seq = body["trace"]["seq"].as_u64().unwrap();
    let plan = audit(&server, &format!("/v1/traces/{plan_seq}")).await;
    for (i, step) in steps.iter().enumerate() {
        let decision = audit(&server, &format!("/v1/traces/{}", step["decision"]["seq"])).await;
        assert_eq!(decision["body"]["request_id"], format!("plan-1/{}", step["step"].as_str().unwrap()));
        assert_eq!(plan["body"]["steps"][i][0], step["step"]);
        let digest = caio_calculus::trace::canonical_digest(&decision["body"]);
        assert_eq!(plan["body"]["steps"][i][2], digest, "the plan names the step's decision");
        let execution = audit(&server, &format!("/v1/traces/{}", step["execution"]["seq"])).await;
        assert_eq!(execution["body"]["decision"]["seq"], plan_seq);
        assert_eq!(execution["body"]["served_by"], "dear");
    }
    let verified = audit(&server, "/v1/traces/verify").await;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(decisions(&verified), 5, "two step decisions, the plan, two executions: {verified}");

    // The dashboard shows the plan as its steps, each linked to its
    // decision, and re-checks the composition proof.
    let client = reqwest::Client::new();
    let cookie = support::viewer_cookie(&server).await;
    let page = |path: String| {
        let (client, cookie) = (client.clone(), cookie.clone());
        async move { client.get(path).header("cookie", cookie).send().await.unwrap().text().await.unwrap() }
    };
    let plan_page = page(format!("{}/ui/decisions/{plan_seq}", server.url)).await;
    assert!(plan_page.contains(&format!("Plan #{plan_seq}")), "{plan_page}");
    assert!(plan_page.contains("<td>draft</td><td><strong>cheap</strong></td>"), "{plan_page}");
    for step in steps {
        assert!(plan_page.contains(&format!("href=\"/ui/decisions/{}\"", step["decision"]["seq"])), "{plan_page}");
    }
    assert!(plan_page.contains("✓ holds"), "{plan_page}");
    let overview = page(format!("{}/ui", server.url)).await;
    assert!(overview.contains("<td>plan</td><td><code>plan-1</code></td><td>cheap → cheap</td>"), "{overview}");
}

#[tokio::test]
async fn a_voice_assistant_runs_end_to_end_on_local_services_and_falls_back_within_its_bound() {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let stt = Upstream::start("stt").await;
    let (fast, slow) = (Upstream::start("fast").await, Upstream::start("slow").await);
    let (tts, cloud) = (Upstream::start("tts").await, Upstream::start("cloud").await);
    fast.always(Some(Fault::ServerError));
    let server = server(vec![
        offering("stt-local", "speech_to_text", &stt.openai_base(), 0.0, 400, "local"),
        offering("chat-fast", "chat", &fast.openai_base(), 0.0, 600, "local"),
        offering("chat-slow", "chat", &slow.openai_base(), 0.05, 700, "local"),
        offering("tts-local", "text_to_speech", &tts.openai_base(), 0.0, 300, "local"),
        // Faster, but the audio must stay local.
        offering("tts-cloud", "text_to_speech", &cloud.openai_base(), 0.0, 100, "cloud"),
    ])
    .await;
    let recording = b"RIFF....WAVEfmt a question".to_vec();
    let plan = json!({
        "id": "voice-1",
        "plan": {"sequential": [{"step": "transcribe"}, {"step": "answer"}, {"step": "speak"}]},
        "steps": {
            "transcribe": {"request": {"capabilities": ["speech_to_text"], "sensitivity": "sensitive"}, "operation": "speech_to_text",
                           "input": {"model": "speech_to_text", "language": "en",
                                     "file": {"data": base64.encode(&recording), "filename": "q.wav", "content_type": "audio/wav"}}},
            "answer": {"request": {"capabilities": ["chat"]}, "operation": "chat",
                       "input": {"messages": [{"role": "user", "content": "{{steps.transcribe.text}}"}]}},
            "speak": {"request": {"capabilities": ["text_to_speech"]}, "operation": "text_to_speech",
                      "input": {"model": "text_to_speech", "input": "{{steps.answer.text}}", "voice": "alloy", "response_format": "wav"}}
        },
        "end_to_end": {"guarantees": {"latency_ms": {"max": 1600, "percentile": 95}}, "max_locality": "local"}
    });
    let (status, body) = orchestrate(&server, &plan).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let served: Vec<&str> =
        body["steps"].as_array().unwrap().iter().map(|s| s["served_by"].as_str().unwrap()).collect();
    assert_eq!(served, ["stt-local", "chat-slow", "tts-local"]);
    assert_eq!(body["steps"][1]["planned"], "chat-fast");
    assert_eq!(body["end_to_end"]["fallbacks"], 1);
    assert_eq!(cloud.hits(), 0, "the cloud voice was never called");
    // The recording reached the transcriber whole, the transcript the chat
    // model, the answer the voice.
    let (path, _, heard) = stt.seen().pop().unwrap();
    assert_eq!(path, "/v1/audio/transcriptions");
    assert_eq!(heard["file_bytes"], recording.len());
    let transcript = format!("heard {} bytes (stt)", recording.len());
    assert_eq!(body["steps"][0]["result"]["text"], transcript);
    assert_eq!(slow.seen().pop().unwrap().2["messages"][0]["content"], transcript);
    assert_eq!(tts.seen().pop().unwrap().2["input"], "Hello from upstream (slow)");
    let audio = base64.decode(body["steps"][2]["result"]["audio"]["base64"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&audio).contains("from tts"), "{}", String::from_utf8_lossy(&audio));
    // Three step decisions, the plan, three executions: one chain.
    let verified = audit(&server, "/v1/traces/verify").await;
    assert_eq!((verified["valid"].clone(), decisions(&verified)), (json!(true), 7), "{verified}");
}

#[tokio::test]
async fn a_fallback_that_would_break_the_bound_is_refused_with_the_bound() {
    let (cheap, dear) = (Upstream::start("cheap").await, Upstream::start("dear").await);
    cheap.always(Some(Fault::ServerError));
    let server =
        server(vec![service("cheap", &cheap.openai_base(), 0.0, 300), service("dear", &dear.openai_base(), 0.05, 400)])
            .await;
    // 300 + 300 fits 700; after the draft's failure, 400 more for the draft
    // and 300 for the refinement do not.
    let (status, body) = orchestrate(&server, &draft_then_refine("plan-2", 700)).await;
    assert!(status.is_server_error(), "{status} {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("step `draft`: cheap failed"), "{message}");
    assert!(message.contains("no fallback keeps the plan's bounds"), "{message}");
    assert!(message.contains("latency_ms"), "{message}");
    assert_eq!(dear.hits(), 0, "the dearer service was never called");
}

#[tokio::test]
async fn the_last_step_streams_to_the_caller() {
    let up = Upstream::start("up").await;
    let server = server(vec![service("up", &up.openai_base(), 0.0, 300)]).await;
    let mut plan = draft_then_refine("plan-s", 2_000);
    plan["steps"]["refine"]["input"]["stream"] = json!(true);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orchestrate", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let plan_seq: u64 = response.headers()["x-caio-trace"].to_str().unwrap().parse().unwrap();
    let events = response.text().await.unwrap();
    assert!(events.contains("\"content\":\"Hello\"") && events.ends_with("data: [DONE]\n\n"), "{events}");
    assert_eq!(up.seen().last().unwrap().2["messages"][0]["content"], "Improve: Hello from upstream (up)");
    let plan = audit(&server, &format!("/v1/traces/{plan_seq}")).await;
    assert_eq!(plan["body"]["request_id"], "plan-s");
    // The streamed step's execution is recorded once its stream has ended:
    // two step decisions, the plan, two executions.
    let mut verified = audit(&server, "/v1/traces/verify").await;
    for _ in 0..500 {
        if decisions(&verified) == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        verified = audit(&server, "/v1/traces/verify").await;
    }
    assert_eq!((verified["valid"].clone(), decisions(&verified)), (json!(true), 5), "{verified}");
    // Only the step that ends the plan may stream.
    let mut early = draft_then_refine("plan-e", 2_000);
    early["steps"]["draft"]["input"]["stream"] = json!(true);
    let (status, body) = orchestrate(&server, &early).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`steps.draft.input.stream`: only a chat step that ends the plan"),
        "{body}"
    );
}

#[tokio::test]
async fn a_fan_out_composes_its_slowest_part() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let server =
        server(vec![service("a", &a.openai_base(), 0.0, 300), service("b", &b.openai_base(), 0.05, 400)]).await;
    let plan = json!({
        "id": "plan-3",
        "plan": {"parallel": [{"step": "one"}, {"step": "two"}]},
        "steps": {
            "one": {"request": {"capabilities": ["chat"]}, "operation": "chat", "input": {"messages": [{"role": "user", "content": "1"}]}},
            "two": {"request": {"capabilities": ["chat"]}, "operation": "chat", "input": {"messages": [{"role": "user", "content": "2"}]}}
        },
        "end_to_end": {"guarantees": {"latency_ms": {"max": 350}}}
    });
    let (status, body) = orchestrate(&server, &plan).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["steps"][0]["served_by"], "a");
    assert_eq!(body["steps"][1]["served_by"], "a");
    // In parallel the slower part counts: 300, not 600.
    assert_eq!(body["end_to_end"]["guaranteed"]["guarantees"]["latency_ms"]["max"], 300.0);
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn bad_plans_get_one_clear_error_and_call_nothing() {
    let up = Upstream::start("x").await;
    let server = server(vec![service("x", &up.openai_base(), 0.0, 300)]).await;
    let mut reads_later = draft_then_refine("p", 2_000);
    reads_later["steps"]["draft"]["input"]["messages"][0]["content"] = json!("{{steps.refine.text}}");
    let mut fan = draft_then_refine("p", 2_000);
    fan["plan"] = json!({"parallel": [{"step": "draft"}, {"step": "refine"}]});
    let mut missing = draft_then_refine("p", 2_000);
    missing["steps"].as_object_mut().unwrap().remove("refine");
    let mut with_id = draft_then_refine("p", 2_000);
    with_id["steps"]["draft"]["request"]["id"] = json!("x");
    let mut bad_field = draft_then_refine("p", 2_000);
    bad_field["steps"]["draft"]["request"]["capabilities"] = json!([]);
    for (plan, status, expected) in [
        (reads_later, 400, "`steps.draft.input` reads step `refine`, which does not finish before it starts"),
        (fan, 400, "reads step `draft`, which does not finish before it starts"),
        (missing, 400, "the plan names step `refine`, which has no entry under `steps`"),
        (with_id, 400, "`steps.draft.request.id` is set by caio"),
        (bad_field, 400, "steps.draft.request.capabilities: must list at least one capability"),
        (
            draft_then_refine("p", 100),
            422,
            "latency_ms: the best any combination guarantees is <= 600 at p98; the plan requires <= 100 at p95",
        ),
    ] {
        let (got, body) = orchestrate(&server, &plan).await;
        assert_eq!(got.as_u16(), status, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/v1/orchestrate", server.url))
        .json(&draft_then_refine("p", 2_000))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.hits(), 0);
}
