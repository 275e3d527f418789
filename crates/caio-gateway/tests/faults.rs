//! The gateway against real HTTP servers on 127.0.0.1 (the fixture model
//! servers), with every fault the issue names: each test checks the path
//! a call took (the attempts), what the client got, and the breakers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use caio_calculus::breaker::{BreakerConfig, Window};
use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::registry::Registry;
use caio_gateway::fixture::{Fault, Upstream};
use caio_gateway::adapter::CallBody;
use caio_gateway::{Call, Gateway, GatewayConfig, Operation, Reply, RetryPolicy};
use serde_json::{Value, json};

fn contract(id: &str, adapter: &str, endpoint: &str, extra: &str) -> Contract {
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": ["chat", "embeddings"], "guarantees": {{"latency_ms": {{"max": 1000}}}},
            "privacy": {{"data_locality": "local"}}, "api": {{"adapter": "{adapter}", "endpoint": "{endpoint}", "model": "m-{id}", "timeout_ms": 400{extra}}}}}"#
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

fn config() -> GatewayConfig {
    GatewayConfig {
        retry: RetryPolicy { retries: 2, base_backoff_ms: 5, max_backoff_ms: 20, max_retry_after_ms: 2_000 },
        breaker: BreakerConfig {
            window: Window::Count { calls: 4 },
            minimum_calls: 4,
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_ms: 10_000,
            open_ms: 300,
            half_open_probes: 2,
        },
        ..GatewayConfig::default()
    }
}

fn gateway(contracts: &[Contract], config: GatewayConfig) -> Arc<Gateway> {
    let gateway = Gateway::new(config).unwrap();
    gateway.declare(&Registry::from_contracts(contracts.to_vec()).unwrap());
    Arc::new(gateway)
}

fn chat(stream: bool) -> Call {
    Call {
        operation: Operation::Chat,
        body: CallBody::from_value(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream})).unwrap(),
        stream,
        id: "chatcmpl-test".into(),
        created: 1,
        restart: false,
        upload: None,
    }
}

fn path(attempts: &[caio_gateway::Attempt]) -> Vec<String> {
    attempts.iter().map(|a| format!("{}#{}:{}", a.service, a.attempt, a.outcome)).collect()
}

fn content(reply: &Reply) -> String {
    match reply {
        Reply::Complete { body, .. } => body["choices"][0]["message"]["content"].as_str().unwrap().to_string(),
        Reply::Stream(_) => panic!("expected a whole answer"),
    }
}

async fn collect(reply: Reply) -> (Vec<(Duration, String)>, Vec<caio_gateway::Attempt>) {
    let Reply::Stream(mut streamed) = reply else { panic!("expected a stream") };
    let started = Instant::now();
    let mut events = Vec::new();
    while let Some(event) = streamed.events.recv().await {
        events.push((started.elapsed(), String::from_utf8(event.unwrap().to_vec()).unwrap()));
    }
    (events, streamed.finished.await.unwrap())
}

/// A port nothing listens on.
async fn refused_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn a_healthy_service_answers_on_the_first_try() {
    let up = Upstream::start("a").await;
    let contracts = [contract("a", "openai", &up.openai_base(), "")];
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (a)");
    assert_eq!(path(&attempts), ["a#1:ok"]);
    let (_, _, body) = &up.seen()[0];
    assert_eq!(body["model"], "m-a", "the contract's model name is sent");
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    let up = Upstream::start("a").await;
    up.push([Fault::ServerError, Fault::RateLimited(0.05)]);
    let contracts = [contract("a", "openai", &up.openai_base(), "")];
    let started = Instant::now();
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (a)");
    assert_eq!(path(&attempts), ["a#1:server_500", "a#2:rate_limited", "a#3:ok"]);
    assert!(started.elapsed() >= Duration::from_millis(50), "Retry-After was honoured");
    assert!(attempts[2].started_ms >= 50.0, "{attempts:?}");
}

#[tokio::test]
async fn exhausted_retries_fall_back_to_the_next_admitted_service() {
    let (bad, good) = (Upstream::start("bad").await, Upstream::start("good").await);
    bad.always(Some(Fault::ServerError));
    let contracts =
        [contract("bad", "openai", &bad.openai_base(), ""), contract("good", "openai", &good.openai_base(), "")];
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (good)");
    assert_eq!(path(&attempts), ["bad#1:server_500", "bad#2:server_500", "bad#3:server_500", "good#1:ok"]);
}

#[tokio::test]
async fn timeouts_refused_connections_and_malformed_replies_fall_back_without_retry() {
    let (slow, broken, good) =
        (Upstream::start("slow").await, Upstream::start("broken").await, Upstream::start("good").await);
    slow.always(Some(Fault::Slow(Duration::from_millis(1_000))));
    broken.always(Some(Fault::Malformed));
    let refused = refused_endpoint().await;
    let contracts = [
        contract("slow", "openai", &slow.openai_base(), ""),
        contract("refused", "openai", &refused, ""),
        contract("broken", "openai", &broken.openai_base(), ""),
        contract("good", "openai", &good.openai_base(), ""),
    ];
    let started = Instant::now();
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (good)");
    assert_eq!(
        path(&attempts),
        [
            "slow#1:timeout",
            "refused#1:connect",
            "refused#2:connect",
            "refused#3:connect",
            "broken#1:malformed",
            "good#1:ok"
        ]
    );
    let timeout = attempts[0].latency_ms;
    assert!((400.0..900.0).contains(&timeout), "the contract's 400 ms timeout cut the slow call: {timeout} ms");
    assert!(started.elapsed() < Duration::from_millis(1_000));
}

#[tokio::test]
async fn a_refused_request_is_not_retried_nor_sent_elsewhere() {
    let (picky, other) = (Upstream::start("picky").await, Upstream::start("other").await);
    picky.push([Fault::BadRequest]);
    let contracts =
        [contract("picky", "openai", &picky.openai_base(), ""), contract("other", "openai", &other.openai_base(), "")];
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    let failed = reply.unwrap_err();
    assert_eq!((failed.status, failed.code), (400, "upstream_rejected"));
    assert_eq!(failed.upstream, Some(json!({"error": {"message": "injected refusal"}})));
    assert_eq!(path(&attempts), ["picky#1:rejected_400"]);
    assert_eq!(other.hits(), 0);
}

#[tokio::test]
async fn a_misconfigured_service_is_skipped_for_the_next() {
    let (wrong, right) = (Upstream::start("wrong").await, Upstream::start("right").await);
    wrong.always(Some(Fault::NotFound));
    let contracts =
        [contract("wrong", "openai", &wrong.openai_base(), ""), contract("right", "openai", &right.openai_base(), "")];
    let gateway = gateway(&contracts, config());
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (right)");
    assert_eq!(path(&attempts), ["wrong#1:misconfigured_404", "right#1:ok"], "not retried: it will not fix itself");
    assert_eq!(gateway.observed().totals()["wrong"].failures, 1, "it counts against the service");
}

#[tokio::test]
async fn no_candidate_means_no_call() {
    let up = Upstream::start("a").await;
    let contracts = [contract("a", "openai", &up.openai_base(), "")];
    let (reply, attempts) = gateway(&contracts, config()).execute(&[], &chat(false)).await;
    assert_eq!(reply.unwrap_err().code, "upstream_failed");
    assert!(attempts.is_empty());
    assert_eq!(up.hits(), 0, "only the decision's services are called");
}

#[tokio::test]
async fn the_breaker_opens_skips_the_service_and_recovers_through_half_open_probes() {
    let (flaky, spare) = (Upstream::start("flaky").await, Upstream::start("spare").await);
    flaky.always(Some(Fault::ServerError));
    let contracts =
        [contract("flaky", "openai", &flaky.openai_base(), ""), contract("spare", "openai", &spare.openai_base(), "")];
    let mut settings = config();
    settings.retry.retries = 0;
    let gateway = gateway(&contracts, settings);
    // The timeline of the run, printed with --nocapture.
    let started = Instant::now();
    let mut timeline = Vec::new();
    let mut call = async |label: &str| {
        let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
        let view = gateway.breakers().view("flaky");
        timeline.push(format!(
            "{:>7.1} ms  {label:<24} {:<40} breaker {}",
            started.elapsed().as_secs_f64() * 1e3,
            path(&attempts).join(" "),
            view.state
        ));
        (reply, attempts)
    };
    for _ in 0..4 {
        let (reply, _) = call("flaky failing").await;
        assert_eq!(content(&reply.unwrap()), "Hello from upstream (spare)");
    }
    assert_eq!(gateway.breakers().view("flaky").state, "open", "4 failures of 4 calls open it");
    let hits = flaky.hits();
    let (reply, attempts) = call("breaker open").await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (spare)");
    assert_eq!(path(&attempts), ["flaky#1:breaker_open", "spare#1:ok"]);
    assert_eq!(flaky.hits(), hits, "an open breaker sends nothing");

    flaky.always(None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gateway.breakers().view("flaky").state, "half_open");
    for _ in 0..2 {
        let (reply, attempts) = call("flaky healed: probe").await;
        assert_eq!(content(&reply.unwrap()), "Hello from upstream (flaky)");
        assert_eq!(path(&attempts), ["flaky#1:ok"]);
    }
    let view = gateway.breakers().view("flaky");
    assert_eq!((view.state, view.opened), ("closed", 1), "two good probes close it");
    let mut metrics = String::new();
    gateway.render_metrics(&mut metrics);
    assert!(metrics.contains("caio_breaker_opened_total{service=\"flaky\"} 1"), "{metrics}");
    println!("{}", timeline.join("\n"));
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let flaky = Upstream::start("flaky").await;
    flaky.always(Some(Fault::ServerError));
    let contracts = [contract("flaky", "openai", &flaky.openai_base(), "")];
    let mut settings = config();
    settings.retry.retries = 0;
    let gateway = gateway(&contracts, settings);
    for _ in 0..4 {
        let _ = gateway.execute(&contracts, &chat(false)).await;
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(path(&attempts), ["flaky#1:server_500"]);
    assert_eq!(reply.unwrap_err().code, "upstream_failed");
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(path(&attempts), ["flaky#1:breaker_open"]);
    assert_eq!(reply.unwrap_err().code, "breakers_open");
    assert_eq!(gateway.breakers().view("flaky").opened, 2);
}

#[tokio::test]
async fn slow_calls_open_the_breaker() {
    let slowish = Upstream::start("slowish").await;
    slowish.always(Some(Fault::Slow(Duration::from_millis(60))));
    let contracts = [contract("slowish", "openai", &slowish.openai_base(), "")];
    let mut settings = config();
    settings.breaker.slow_call_ms = 40;
    settings.breaker.slow_call_rate = 0.5;
    let gateway = gateway(&contracts, settings);
    for _ in 0..4 {
        let (reply, _) = gateway.execute(&contracts, &chat(false)).await;
        assert!(reply.is_ok(), "slow calls still answer");
    }
    assert_eq!(gateway.breakers().view("slowish").state, "open");
}

#[tokio::test]
async fn a_stream_is_forwarded_chunk_by_chunk_as_it_arrives() {
    let up = Upstream::start("a").await;
    up.chunk_gap(Duration::from_millis(150));
    let mut patient = contract("a", "openai", &up.openai_base(), "");
    patient.api.timeout_ms = 2_000;
    let contracts = [patient];
    let started = Instant::now();
    let (reply, attempts) = gateway(&contracts, config()).execute(&contracts, &chat(true)).await;
    let first_byte = started.elapsed();
    assert_eq!(path(&attempts), ["a#1:streaming"]);
    let (events, finished) = collect(reply.unwrap()).await;
    assert_eq!(finished[0].outcome, "ok");
    let texts: Vec<String> = events
        .iter()
        .flat_map(|(_, e)| e.split("\n\n").filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    let deltas: Vec<String> = texts
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t.strip_prefix("data: ")?).ok())
        .map(|v| v["choices"][0]["delta"]["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(deltas.concat(), "Hello from upstream (a)", "chunks in order");
    assert_eq!(texts.last().unwrap(), "data: [DONE]");
    assert!(first_byte < Duration::from_millis(120), "the first chunk is not held back: {first_byte:?}");
    let (first_at, _) = events[0];
    let (last_at, _) = events.last().unwrap();
    assert!(
        *last_at - first_at >= Duration::from_millis(400),
        "later chunks arrive as the server sends them: {events:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event_and_counts_as_a_failure() {
    let up = Upstream::start("a").await;
    up.push([Fault::CutStream]);
    up.chunk_gap(Duration::from_millis(30));
    let contracts = [contract("a", "openai", &up.openai_base(), "")];
    let gateway = gateway(&contracts, config());
    let (reply, _) = gateway.execute(&contracts, &chat(true)).await;
    let (events, finished) = collect(reply.unwrap()).await;
    assert_eq!(finished[0].outcome, "cut");
    assert_eq!(events.len(), 3, "two chunks, then the error: {events:?}");
    assert!(events[2].1.contains("\"error\"") && events[2].1.contains("ended early"), "{events:?}");
    assert_eq!(gateway.observed().totals()["a"].failures, 1);
}

#[tokio::test]
async fn ollama_streams_are_translated_into_openai_events() {
    let up = Upstream::start("o").await;
    let contracts = [contract("o", "ollama", &up.base(), "")];
    let (reply, _) = gateway(&contracts, config()).execute(&contracts, &chat(true)).await;
    let (events, finished) = collect(reply.unwrap()).await;
    assert_eq!(finished[0].outcome, "ok");
    let all: String = events.iter().map(|(_, e)| e.as_str()).collect();
    assert!(all.contains("\"object\":\"chat.completion.chunk\""), "{all}");
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
    let (reply, _) = gateway(&contracts, config()).execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (o)");
    assert_eq!(up.seen()[1].2["stream"], false);
}

#[tokio::test]
async fn the_generic_adapter_and_embeddings() {
    let up = Upstream::start("g").await;
    let mapping = r#", "http": {"path": "/generate", "request": {"text": "{prompt}"}, "response": {"content": "/output/0/text", "embedding": "/vector"}}"#;
    let contracts = [contract("g", "http", &up.base(), mapping), contract("e", "ollama", &up.base(), "")];
    let gateway = gateway(&contracts, config());
    let (reply, _) = gateway.execute(&contracts[..1], &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "echo: hi (g)");
    let embed = Call {
        operation: Operation::Embeddings,
        body: CallBody::from_value(&json!({"model": "embeddings", "input": "x"})).unwrap(),
        stream: false,
        id: "e".into(),
        created: 1,
        restart: false,
        upload: None,
    };
    for service in &contracts {
        let (reply, _) = gateway.execute(std::slice::from_ref(service), &embed).await;
        let Reply::Complete { body, .. } = reply.unwrap() else { panic!() };
        assert_eq!(body["data"][0]["embedding"], json!([1.0, 0.5, -0.25]), "{}", service.id);
    }
    let (reply, _) = gateway.execute(&contracts[..1], &chat(true)).await;
    let (events, _) = collect(reply.unwrap()).await;
    assert!(events[0].1.contains("echo: hi (g)"), "a service that cannot stream is sent as one event");
}

#[tokio::test]
async fn a_redirect_to_an_undeclared_host_is_not_followed() {
    let (redirecting, elsewhere) = (Upstream::start("r").await, Upstream::start("elsewhere").await);
    redirecting.push([Fault::Redirect(format!("{}/chat/completions", elsewhere.openai_base()))]);
    let contracts = [contract("r", "openai", &redirecting.openai_base(), "")];
    let gateway = gateway(&contracts, config());
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(path(&attempts), ["r#1:egress_refused"]);
    assert_eq!(reply.unwrap_err().code, "upstream_failed");
    assert_eq!(elsewhere.hits(), 0, "the undeclared host saw nothing");
    let refused: u64 = gateway.egress().refusals().values().sum();
    assert_eq!(refused, 1);
    // A redirect within the declared origins is followed.
    redirecting.push([Fault::Redirect(format!("{}/chat/completions", redirecting.openai_base()))]);
    let (reply, _) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (r)");
}

#[tokio::test]
async fn an_undeclared_endpoint_is_never_contacted() {
    let up = Upstream::start("a").await;
    let declared = [contract("other", "openai", "http://127.0.0.1:9/v1", "")];
    let gateway = gateway(&declared, config());
    let sneaky = [contract("a", "openai", &up.openai_base(), "")];
    let (reply, attempts) = gateway.execute(&sneaky, &chat(false)).await;
    assert_eq!(path(&attempts), ["a#1:egress_refused"]);
    assert!(reply.is_err());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn credentials_come_from_the_environment_and_go_only_to_their_service() {
    let up = Upstream::start("a").await;
    let contracts = [
        contract("keyed", "openai", &up.openai_base(), r#", "credentials_env": "CAIO_TEST_UPSTREAM_KEY""#),
        contract("unset", "openai", &up.openai_base(), r#", "credentials_env": "CAIO_TEST_UNSET_KEY""#),
        contract("open", "openai", &up.openai_base(), ""),
    ];
    let gateway = Gateway::new(config())
        .unwrap()
        .with_environment(Arc::new(|name| (name == "CAIO_TEST_UPSTREAM_KEY").then(|| "sk-test-123".to_string())));
    gateway.declare(&Registry::from_contracts(contracts.to_vec()).unwrap());
    let gateway = Arc::new(gateway);
    let (reply, _) = gateway.execute(&contracts[..1], &chat(false)).await;
    assert!(reply.is_ok());
    let (reply, attempts) = gateway.execute(&contracts[1..], &chat(false)).await;
    assert!(reply.is_ok());
    assert_eq!(path(&attempts), ["unset#1:credentials_missing", "open#1:ok"]);
    let seen = up.seen();
    assert_eq!(seen[0].1.get("authorization").unwrap(), "Bearer sk-test-123");
    assert!(seen[1].1.get("authorization").is_none(), "a service without credentials_env gets no key");
}

#[tokio::test]
async fn denied_address_classes_are_never_contacted() {
    let up = Upstream::start("up").await;
    // Cloud metadata is denied by default, by its literal address.
    let metadata = contract("meta", "openai", "http://169.254.169.254/v1", "");
    let open = gateway(std::slice::from_ref(&metadata), config());
    let (reply, attempts) = open.execute(std::slice::from_ref(&metadata), &chat(false)).await;
    assert_eq!(reply.unwrap_err().code, "upstream_failed");
    assert_eq!(path(&attempts), ["meta#1:egress_refused"]);
    assert!(open.endpoint_problem(&metadata).unwrap().contains("denied address class (link_local)"), "refused at registration too");
    // Loopback when the operator denies it: by literal, and by a name that resolves to it.
    let strict = GatewayConfig { deny: vec![caio_gateway::deny::AddressClass::Loopback], ..config() };
    let by_name = contract("named", "openai", &format!("http://localhost:{}/v1", up.addr.port()), "");
    let by_address = contract("literal", "openai", &up.openai_base(), "");
    let strict = gateway(&[by_name.clone(), by_address.clone()], strict);
    let (reply, attempts) = strict.execute(&[by_name, by_address], &chat(false)).await;
    assert!(reply.is_err());
    assert_eq!(path(&attempts), ["named#1:egress_refused", "literal#1:egress_refused"]);
    assert_eq!(up.hits(), 0, "nothing reached the server");
}

#[tokio::test]
async fn anthropic_answers_and_streams_in_the_openai_format_and_overload_falls_back() {
    let (claude, spare) = (Upstream::start("claude").await, Upstream::start("spare").await);
    let contracts = [
        contract("claude", "anthropic", &claude.base(), r#", "credentials_env": "CAIO_TEST_ANTHROPIC_KEY""#),
        contract("spare", "openai", &spare.openai_base(), ""),
    ];
    let gateway = Gateway::new(config())
        .unwrap()
        .with_environment(Arc::new(|name| (name == "CAIO_TEST_ANTHROPIC_KEY").then(|| "sk-ant-test".to_string())));
    gateway.declare(&Registry::from_contracts(contracts.to_vec()).unwrap());
    let gateway = Arc::new(gateway);
    // A whole answer: the request as the Messages API takes it, the reply as OpenAI's.
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(path(&attempts), ["claude#1:ok"]);
    let reply = reply.unwrap();
    assert_eq!(content(&reply), "Hello from upstream (claude)");
    let Reply::Complete { body, .. } = &reply else { unreachable!() };
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let (path_seen, headers, sent) = claude.seen().pop().unwrap();
    assert_eq!(path_seen, "/v1/messages");
    assert_eq!(headers.get("authorization").unwrap(), "Bearer sk-ant-test");
    assert_eq!(headers.get("anthropic-version").unwrap(), "2026-10-21");
    assert_eq!(sent["model"], "m-claude");
    assert_eq!(sent["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
    assert_eq!(sent["max_tokens"], 4096);
    // A stream: OpenAI chunks, ending in [DONE], with the usage recorded.
    let (reply, _) = gateway.execute(&contracts, &chat(true)).await;
    let (events, attempts) = collect(reply.unwrap()).await;
    let text: String = events
        .iter()
        .filter_map(|(_, e)| e.strip_prefix("data: ")?.trim().parse::<Value>().ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Hello from upstream (claude)");
    assert_eq!(events.last().unwrap().1, "data: [DONE]\n\n");
    assert_eq!(attempts.last().unwrap().usage, Some(json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})));
    // A refused request (400) is the caller's answer: neither retried nor sent on.
    claude.push([Fault::BadRequest]);
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(reply.unwrap_err().status, 400);
    assert_eq!(path(&attempts), ["claude#1:rejected_400"]);
    // 529 overloaded is retried (until the breaker opens), then the next
    // service serves.
    claude.always(Some(Fault::Overloaded));
    let (reply, attempts) = gateway.execute(&contracts, &chat(false)).await;
    assert_eq!(content(&reply.unwrap()), "Hello from upstream (spare)");
    assert_eq!(path(&attempts), ["claude#1:server_529", "claude#2:server_529", "claude#3:breaker_open", "spare#1:ok"]);
}
