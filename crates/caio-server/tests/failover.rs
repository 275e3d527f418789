//! The fault catalogue: every way a provider fails, each injected by a
//! fixture model server on 127.0.0.1 behind caio on 127.0.0.1 (a real
//! SQLite file), a cheap primary on the faulty server and a dearer
//! fallback on a healthy one. Each scenario checks what the caller got, how
//! many requests each provider saw and how far apart, what the trace
//! recorded, and that caio is healthy afterwards.
//!
//! The waits are short so that the suite runs in seconds; with
//! `CAIO_FAULTS_REAL_WAITS=1` they are the ones providers really take (a
//! first token after 20 s, a stream that stalls 30 s, contracts with the
//! default 30 s timeouts). Recovery is driven by a clock the test moves, so
//! no scenario waits for breakers or history to age.

mod support;

use std::time::Duration;

use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::rules::Policy;
use caio_gateway::RetryPolicy;
use caio_gateway::fixture::{Fault, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ManualClock, Server, execution_of, outcomes, token};

/// The waits of one run: short, or as providers take them.
struct Waits {
    /// The primary's first token arrives after this.
    first_token: Duration,
    /// The primary's stream stalls this long.
    stall: Duration,
    /// Contracts' `timeout_ms`, `first_token_ms` and `stream_gap_ms`.
    timeout_ms: u64,
    first_token_ms: u64,
    stream_gap_ms: u64,
    /// The retry policy's base backoff.
    base_backoff_ms: u64,
    /// A 429's `Retry-After`, in seconds.
    retry_after_s: f64,
}

fn waits() -> Waits {
    if std::env::var_os("CAIO_FAULTS_REAL_WAITS").is_some() {
        Waits {
            first_token: Duration::from_secs(20),
            stall: Duration::from_secs(30),
            timeout_ms: 30_000,
            first_token_ms: 10_000,
            stream_gap_ms: 10_000,
            base_backoff_ms: RetryPolicy::default().base_backoff_ms,
            retry_after_s: 1.0,
        }
    } else {
        Waits {
            first_token: Duration::from_millis(1_500),
            stall: Duration::from_millis(1_500),
            timeout_ms: 1_000,
            first_token_ms: 400,
            stream_gap_ms: 300,
            base_backoff_ms: 50,
            retry_after_s: 0.2,
        }
    }
}

/// A chat service; `api` adds fields to its `api`, `extra` to the contract.
fn service(id: &str, endpoint: &str, price: f64, api: &str, extra: &str) -> Contract {
    let w = waits();
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": ["chat"], "cost": {{"per_request": {price}}},
            "privacy": {{"data_locality": "local"}}, "security": {{"required_permissions": ["chat.basic"]}},
            "api": {{"adapter": "openai", "endpoint": "{endpoint}", "model": "m-{id}", "timeout_ms": {}, "first_token_ms": {},
                     "stream_gap_ms": {}{api}}}{extra}}}"#,
        w.timeout_ms, w.first_token_ms, w.stream_gap_ms
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

/// caio with a cheap primary and a dearer fallback, each on its own fixture.
struct Pair {
    primary: Upstream,
    fallback: Upstream,
    server: Server,
}

async fn pair_with(primary_api: &str, fallback_api: &str, extra: (&str, &str), clock: Option<&ManualClock>) -> Pair {
    let (primary, fallback) = (Upstream::start("primary").await, Upstream::start("fallback").await);
    let contracts = vec![
        service("primary", &primary.openai_base(), 0.001, primary_api, extra.0),
        service("fallback", &fallback.openai_base(), 0.002, fallback_api, extra.1),
    ];
    let base = waits().base_backoff_ms;
    let server = Server::start_on(
        contracts,
        Policy::default(),
        |config| {
            config.gateway.retry =
                RetryPolicy { retries: 2, base_backoff_ms: base, max_backoff_ms: 8 * base, max_retry_after_ms: 5_000 };
            config.history_every = Duration::ZERO;
        },
        clock,
    )
    .await;
    Pair { primary, fallback, server }
}

async fn pair(primary_api: &str, fallback_api: &str) -> Pair {
    pair_with(primary_api, fallback_api, ("", ""), None).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// What the caller got.
struct Got {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    /// The whole answer, or the error.
    body: Value,
    /// For a stream: every event's data, in order (`[DONE]` as a string).
    events: Vec<Value>,
    /// For a stream: the text of the answer.
    text: String,
}

impl Got {
    fn service(&self) -> &str {
        self.headers.get("x-caio-service").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    fn trace(&self) -> u64 {
        self.headers["x-caio-trace"].to_str().unwrap().parse().unwrap()
    }
}

async fn chat(server: &Server, stream: bool, headers: &[(&str, &str)]) -> Got {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "count"}], "stream": stream,
        "stream_options": {"include_usage": true}});
    let body = if stream { body } else { json!({"model": "chat", "messages": body["messages"]}) };
    let mut request =
        client().post(format!("{}/v1/chat/completions", server.url)).bearer_auth(token("alice", &["chat.basic"])).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let raw = response.text().await.unwrap();
    let mut got = Got { status, headers, body: Value::Null, events: Vec::new(), text: String::new() };
    if !stream || !status.is_success() {
        got.body = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
        return got;
    }
    for block in raw.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let data = block.strip_prefix("data: ").unwrap_or_else(|| panic!("not an event: {block:?}"));
        if data == "[DONE]" {
            got.events.push(Value::String("[DONE]".into()));
            continue;
        }
        let event: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("partial JSON reached the caller: {data:?}: {e}"));
        if let Some(content) = event.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            got.text.push_str(content);
        }
        got.events.push(event);
    }
    got
}

/// The answer of `n` words the fixture streams: `w1 w2 ... wn`.
fn words(n: usize) -> String {
    (1..=n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

/// Milliseconds between the provider's consecutive arrivals.
fn gaps(upstream: &Upstream) -> Vec<u128> {
    upstream.arrivals().windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
}

/// caio is healthy after the fault: alive, and a plain call is served.
async fn still_healthy(pair: &Pair) {
    pair.primary.always(None);
    pair.fallback.always(None);
    let health = client().get(format!("{}/healthz", pair.server.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let got = chat(&pair.server, false, &[]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_it() {
    let p = pair("", "").await;
    let wait = waits().retry_after_s;
    p.primary.push([Fault::RateLimited(wait)]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "primary"));
    assert_eq!(p.primary.hits(), 2);
    assert!(gaps(&p.primary)[0] >= (wait * 1000.0) as u128, "waited {:?} ms for a Retry-After of {wait} s", gaps(&p.primary));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:rate_limited", "primary:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_with_jitter_then_falls_back() {
    let p = pair("", "").await;
    p.primary.always(Some(Fault::RateLimitedBare));
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "fallback"));
    assert_eq!(p.primary.hits(), 3, "the first try and two retries");
    // The waits themselves are drawn below base x 2^(n-1) (full jitter, a
    // unit test of `RetryPolicy::backoff`): the trace shows each retry
    // starting after the try before it ended, never overlapping it.
    let trace = execution_of(&p.server, got.trace()).await;
    let attempts = trace["attempts"].as_array().unwrap();
    for pair in attempts[..3].windows(2) {
        let ended = pair[0]["started_ms"].as_f64().unwrap() + pair[0]["latency_ms"].as_f64().unwrap();
        assert!(pair[1]["started_ms"].as_f64().unwrap() >= ended, "{trace}");
    }
    // Every service rate limiting: the caller is told to slow down, in OpenAI's words.
    p.fallback.always(Some(Fault::RateLimitedBare));
    let got = chat(&p.server, false, &[]).await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.body);
    assert_eq!(got.body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(got.body["error"]["caio"]["code"], "rate_limit_exceeded");
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_500_once_is_retried_and_moves_no_traffic() {
    let p = pair("", "").await;
    p.primary.push([Fault::ServerError]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "primary"));
    assert_eq!(p.primary.hits(), 2);
    for _ in 0..5 {
        assert_eq!(chat(&p.server, false, &[]).await.service(), "primary", "a single failure moves nothing");
    }
    assert_eq!(p.fallback.hits(), 0);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_persistent_503_falls_back_after_the_retries() {
    let p = pair("", "").await;
    p.primary.always(Some(Fault::Unavailable));
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "fallback"));
    assert_eq!((p.primary.hits(), p.fallback.hits()), (3, 1));
    assert_eq!(
        outcomes(&execution_of(&p.server, got.trace()).await),
        ["primary:server_503", "primary:server_503", "primary:server_503", "fallback:ok"]
    );
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_reset_before_any_byte_is_retried_once_on_the_same_service() {
    let p = pair("", "").await;
    p.primary.push([Fault::Reset]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "primary"), "{}", got.body);
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:transport", "primary:ok"]);
    // Reset twice: once more only, then the fallback.
    p.primary.push([Fault::Reset, Fault::Reset]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!(got.service(), "fallback");
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:transport", "primary:transport", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn no_response_times_out_once_and_falls_back() {
    let p = pair("", "").await;
    p.primary.push([Fault::Silent]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "fallback"));
    assert_eq!(p.primary.hits(), 1, "a timeout has cost a full timeout: not retried");
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:timeout", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_late_first_token_falls_back_before_anything_is_sent() {
    let p = pair("", "").await;
    p.primary.push([Fault::FirstTokenAfter(waits().first_token)]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text, "Hello from upstream (fallback)", "one answer, from the start, from the fallback");
    assert_eq!(got.events.last(), Some(&Value::String("[DONE]".into())));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:first_token_timeout", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_stream_cut_mid_answer_continues_on_a_service_that_takes_the_partial_answer() {
    let p = pair("", r#", "prefill": true"#).await;
    p.primary.words(60);
    p.fallback.words(60);
    p.primary.push([Fault::CutAfter(40)]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.text, words(60), "one answer, each word once");
    assert_eq!(got.events.last(), Some(&Value::String("[DONE]".into())));
    let continued = &p.fallback.seen()[0].2["messages"];
    assert_eq!(continued[1], json!({"role": "assistant", "content": words(40)}), "the partial answer as prefill");
    let trace = execution_of(&p.server, got.trace()).await;
    assert_eq!(outcomes(&trace), ["primary:cut", "fallback:ok"]);
    assert_eq!(trace["attempts"][1]["stream"], "continued");
    assert_eq!(trace["served_by"], "fallback");
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_stalled_stream_continues_on_the_fallback() {
    let p = pair("", r#", "prefill": true"#).await;
    p.primary.words(60);
    p.fallback.words(60);
    p.primary.push([Fault::StallAfter(40, waits().stall)]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.text, words(60));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:stalled", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_malformed_chunk_never_reaches_the_caller_and_the_answer_goes_on() {
    let p = pair("", r#", "prefill": true"#).await;
    p.primary.words(60);
    p.fallback.words(60);
    p.primary.push([Fault::MalformedChunk(20)]);
    // `chat` fails the test on any event that is not whole JSON.
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.text, words(60));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:malformed", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_complete_stream_without_done_is_complete() {
    let p = pair("", "").await;
    p.primary.words(60);
    p.primary.push([Fault::NoDone]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.text, words(60));
    assert_eq!(got.events.last(), Some(&Value::String("[DONE]".into())), "caio ends the stream as OpenAI does");
    let trace = execution_of(&p.server, got.trace()).await;
    assert_eq!(outcomes(&trace), ["primary:ok"], "not a failure of the service");
    assert_eq!(trace["attempts"][0]["usage"]["completion_tokens"], 60);
    let view: Value = client()
        .get(format!("{}/v1/services/primary", p.server.url))
        .bearer_auth(token("auditor", &["caio:audit"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["observed"]["failures"], 0, "{view}");
    still_healthy(&p).await;
}

#[tokio::test]
async fn context_length_falls_back_only_to_a_service_that_takes_longer_inputs() {
    // The fallback takes longer inputs: it serves.
    let longer = pair_with(
        "",
        "",
        (r#", "constraints": {"max_input_tokens": 4096}"#, r#", "constraints": {"max_input_tokens": 32768}"#),
        None,
    )
    .await;
    longer.primary.push([Fault::ContextLength]);
    let got = chat(&longer.server, false, &[]).await;
    assert_eq!((got.status, got.service()), (StatusCode::OK, "fallback"));
    assert_eq!(longer.primary.hits(), 1, "not retried");
    // The fallback takes no longer inputs: the caller gets the provider's error, as OpenAI words it.
    let shorter = pair_with(
        "",
        "",
        (r#", "constraints": {"max_input_tokens": 4096}"#, r#", "constraints": {"max_input_tokens": 4096}"#),
        None,
    )
    .await;
    shorter.primary.push([Fault::ContextLength]);
    let got = chat(&shorter.server, false, &[]).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);
    let error = &got.body["error"];
    assert_eq!((error["code"].as_str(), error["type"].as_str(), error["param"].as_str()), (Some("context_length_exceeded"), Some("invalid_request_error"), Some("messages")));
    assert!(error["message"].as_str().unwrap().contains("maximum context length"));
    assert_eq!(error["caio"]["code"], "upstream_rejected");
    let attempts: Vec<&str> = error["caio"]["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(attempts, ["context_length_exceeded", "context_too_short"]);
    assert_eq!(shorter.fallback.hits(), 0);
    still_healthy(&longer).await;
    still_healthy(&shorter).await;
}

#[tokio::test]
async fn a_content_filter_is_the_providers_answer_never_retried_nor_sent_elsewhere() {
    let p = pair("", "").await;
    p.primary.push([Fault::ContentFilter]);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(got.body["error"]["code"], "content_filter");
    assert_eq!((p.primary.hits(), p.fallback.hits()), (1, 0));
    // Not the service's health: the next call goes to it as before.
    assert_eq!(chat(&p.server, false, &[]).await.service(), "primary");
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_cut_stream_with_no_service_to_continue_ends_cleanly_or_restarts_when_allowed() {
    // The fallback takes no partial answer: a clear error event, and the trace says why.
    let p = pair("", "").await;
    p.primary.words(60);
    p.fallback.words(60);
    p.primary.push([Fault::CutAfter(40)]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.text, words(40));
    let last = got.events.last().unwrap();
    assert_eq!(last["error"]["code"], "cut", "{last}");
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:cut", "fallback:no_prefill"]);
    // The caller allows a restart: it is told, and gets the whole answer after the notice.
    p.primary.push([Fault::CutAfter(40)]);
    let got = chat(&p.server, true, &[("x-caio-stream-restart", "true")]).await;
    let notice = got.events.iter().position(|e| e.get("caio").is_some()).expect("a restart notice");
    assert_eq!(got.events[notice]["caio"]["restarted"], json!({"service": "fallback", "after": "cut"}));
    let after: String = got.events[notice..].iter().filter_map(|e| e.pointer("/choices/0/delta/content")?.as_str()).collect();
    assert_eq!(after, words(60));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:cut", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_fallback_that_refuses_the_partial_answer_restarts_when_the_caller_allows() {
    // Its contract says it takes a partial answer; its server refuses one.
    let p = pair("", r#", "prefill": true"#).await;
    p.primary.words(60);
    p.fallback.words(60);
    p.fallback.always(Some(Fault::RejectsPrefill));
    p.primary.push([Fault::CutAfter(40)]);
    let got = chat(&p.server, true, &[]).await;
    assert_eq!(got.events.last().unwrap()["error"]["code"], "cut");
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:cut", "fallback:rejected_400"]);
    p.primary.push([Fault::CutAfter(40)]);
    let got = chat(&p.server, true, &[("x-caio-stream-restart", "true")]).await;
    let notice = got.events.iter().position(|e| e.get("caio").is_some()).expect("a restart notice");
    let after: String = got.events[notice..].iter().filter_map(|e| e.pointer("/choices/0/delta/content")?.as_str()).collect();
    assert_eq!(after, words(60));
    assert_eq!(outcomes(&execution_of(&p.server, got.trace()).await), ["primary:cut", "fallback:rejected_400", "fallback:ok"]);
    still_healthy(&p).await;
}

#[tokio::test]
async fn usage_comes_from_the_service_that_served() {
    let p = pair("", "").await;
    p.primary.always(Some(Fault::ServerError));
    p.fallback.words(7);
    let got = chat(&p.server, false, &[]).await;
    assert_eq!(got.service(), "fallback");
    assert_eq!(got.body["usage"]["completion_tokens"], 7, "{}", got.body);
    let trace = execution_of(&p.server, got.trace()).await;
    let billed: Vec<&Value> = trace["attempts"].as_array().unwrap().iter().filter(|a| a.get("usage").is_some()).collect();
    assert_eq!(billed.len(), 1, "failed attempts are not billed: {trace}");
    assert_eq!((billed[0]["service"].as_str(), billed[0]["usage"]["completion_tokens"].as_u64()), (Some("fallback"), Some(7)));
    // Streamed too: the usage chunk of the service that served.
    let got = chat(&p.server, true, &[]).await;
    let usage = got.events.iter().find_map(|e| e.get("usage").filter(|u| !u.is_null())).expect("a usage chunk");
    assert_eq!(usage["completion_tokens"], 7);
    still_healthy(&p).await;
}

/// Sends `count` calls, `step_ms` apart on the test's clock; returns the
/// service that served each.
async fn calls(p: &Pair, clock: &ManualClock, count: usize, step_ms: u64) -> Vec<String> {
    let mut served = Vec::new();
    for _ in 0..count {
        let got = chat(&p.server, false, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        served.push(got.service().to_string());
        clock.advance(step_ms);
    }
    served
}

#[tokio::test]
async fn a_primary_down_for_a_minute_gets_its_traffic_back_when_it_recovers() {
    let clock = ManualClock::new();
    let p = pair_with("", "", ("", ""), Some(&clock)).await;
    // Healthy for a while: its latency is measured.
    let healthy = calls(&p, &clock, 30, 1_000).await;
    assert!(healthy.iter().all(|s| s == "primary"));
    let before = p.primary.hits();
    // Down for 60 s, a call a second.
    p.primary.always(Some(Fault::Unavailable));
    let down = calls(&p, &clock, 60, 1_000).await;
    assert!(down.iter().all(|s| s == "fallback"), "every call served: {down:?}");
    let probes = p.primary.hits() - before;
    // Its breaker opened after the first calls: after that, only probes reach it.
    assert!(probes < 20, "the primary was called {probes} times while down");
    // Recovered: traffic returns within open_ms + 2 half-lives (30 s + 120 s
    // by default), measured on the test's clock.
    p.primary.always(None);
    let recovered_at = clock.ms();
    let mut returned = None;
    for _ in 0..200 {
        let got = chat(&p.server, false, &[]).await;
        if got.service() == "primary" && got.headers["x-caio-attempts"] == "1" {
            returned = Some(clock.ms() - recovered_at);
            break;
        }
        clock.advance(1_000);
    }
    let returned = returned.expect("traffic never returned to the recovered primary");
    assert!(returned <= 150_000, "traffic returned after {returned} ms");
    let after = calls(&p, &clock, 20, 1_000).await;
    assert!(after.iter().all(|s| s == "primary"), "and it stays: {after:?}");
    eprintln!("recovery: traffic back on the primary {returned} ms after it recovered ({probes} calls reached it while down)");
    still_healthy(&p).await;
}

#[tokio::test]
async fn a_primary_that_stays_down_gets_only_probes() {
    let clock = ManualClock::new();
    let p = pair_with("", "", ("", ""), Some(&clock)).await;
    p.primary.always(Some(Fault::Unavailable));
    calls(&p, &clock, 30, 1_000).await;
    let before = p.primary.hits();
    // Five more minutes down: its breaker admits a probe every open period (30 s).
    let served = calls(&p, &clock, 300, 1_000).await;
    assert!(served.iter().all(|s| s == "fallback"));
    let probes = p.primary.hits() - before;
    assert!(probes <= 10 + 3, "{probes} calls reached a primary that stayed down in 300 s");
    still_healthy(&p).await;
}
