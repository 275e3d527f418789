//! Gateway overhead per modality, measured: for each front door, the
//! latency of calls through caio (route, prove, trace, execute, record)
//! and of the same calls straight to the same model server, one after
//! another, and the difference. Rerank, image generation, speech (to its
//! last byte), transcription of a 100 KB WAV upload, and a chat on a
//! service that speaks Anthropic's Messages API (translated both ways).
//!
//! `cargo bench -p caio-server --bench modalities [-- --calls N]`
//!
//! Everything shares the machine: the client, caio and the model server
//! (which answers at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::route::RouteConfig;
use caio_calculus::rules::Policy;
use caio_gateway::fixture::Upstream;
use caio_server::{AppState, ServerConfig};
use caio_store::{SqliteStore, Store};
use serde_json::{Value, json};

const BOUNDARY: &str = "caio-bench-boundary";

/// One kind of call: its path and body, through caio and direct.
struct Modality {
    name: &'static str,
    caio_path: &'static str,
    direct_path: &'static str,
    caio_body: Body,
    direct_body: Body,
}

#[derive(Clone)]
enum Body {
    Json(Value),
    Form(Vec<u8>),
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn wav(bytes: usize) -> Vec<u8> {
    let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
    wav.resize(bytes, 0);
    wav
}

fn form(model: &str, file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `calls` calls one after another; their latencies, sorted (to the last
/// byte of the answer).
async fn run(client: &reqwest::Client, url: &str, token: Option<&str>, body: &Body, calls: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let mut request = client.post(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::Json(value) => request.json(value),
            Body::Form(bytes) => {
                request.header("content-type", format!("multipart/form-data; boundary={BOUNDARY}")).body(bytes.clone())
            }
        };
        let started = Instant::now();
        let response = request.send().await.expect("the call is answered");
        assert!(response.status().is_success(), "{url}: {}", response.status());
        response.bytes().await.expect("the whole answer");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn argument(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let calls: usize = argument("--calls").and_then(|c| c.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let upstream = Upstream::start("bench").await;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("caio.db")).unwrap();
        let services = [
            ("rerank", "openai", upstream.openai_base()),
            ("image_generation", "openai", upstream.openai_base()),
            ("text_to_speech", "openai", upstream.openai_base()),
            ("speech_to_text", "openai", upstream.openai_base()),
            ("chat", "anthropic", upstream.base()),
        ];
        for (capability, adapter, endpoint) in &services {
            let contract = format!(
                r#"{{"id": "{}", "version": "1.0.0", "capabilities": ["{capability}"], "privacy": {{"data_locality": "local"}},
                    "security": {{"required_permissions": ["chat.basic"]}},
                    "api": {{"adapter": "{adapter}", "endpoint": "{endpoint}", "model": "tiny", "timeout_ms": 10000}}}}"#,
                capability.replace('_', "-")
            );
            store.register(parse_contracts(&contract, Format::Json).unwrap().remove(0), 1, "bench").unwrap();
        }
        let mut config = ServerConfig::new(RouteConfig::new(caio_calculus::examples::auth_config()), Policy::default());
        config.limits.rate_per_second = 1e9;
        config.limits.burst = 1e9;
        let store: Arc<dyn Store> = Arc::new(store);
        let state = AppState::new(store, config, caio_server::system_clock()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let caio = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(caio_server::serve(listener, state, std::future::pending()));
        let token = caio_calculus::examples::token(&["chat.basic"], 1);
        let recording = wav(100_000);
        let messages = json!([{"role": "user", "content": "hello"}]);
        let modalities = [
            Modality {
                name: "rerank",
                caio_path: "/v1/rerank",
                direct_path: "/v1/rerank",
                caio_body: Body::Json(json!({"model": "rerank", "query": "a b", "documents": ["a", "b c", "d"]})),
                direct_body: Body::Json(json!({"model": "tiny", "query": "a b", "documents": ["a", "b c", "d"]})),
            },
            Modality {
                name: "images",
                caio_path: "/v1/images/generations",
                direct_path: "/v1/images/generations",
                caio_body: Body::Json(json!({"model": "image_generation", "prompt": "a fox"})),
                direct_body: Body::Json(json!({"model": "tiny", "prompt": "a fox"})),
            },
            Modality {
                name: "speech",
                caio_path: "/v1/audio/speech",
                direct_path: "/v1/audio/speech",
                caio_body: Body::Json(json!({"model": "text_to_speech", "input": "hello", "voice": "alloy"})),
                direct_body: Body::Json(json!({"model": "tiny", "input": "hello", "voice": "alloy"})),
            },
            Modality {
                name: "transcribe",
                caio_path: "/v1/audio/transcriptions",
                direct_path: "/v1/audio/transcriptions",
                caio_body: Body::Form(form("speech_to_text", &recording)),
                direct_body: Body::Form(form("tiny", &recording)),
            },
            Modality {
                name: "anthropic",
                caio_path: "/v1/chat/completions",
                direct_path: "/v1/messages",
                caio_body: Body::Json(json!({"model": "chat", "messages": messages})),
                direct_body: Body::Json(json!({"model": "tiny", "max_tokens": 16, "messages": messages})),
            },
        ];
        let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
        println!("overhead per modality: {calls} calls one after another, to the last byte of the answer");
        println!(
            "{:>10} {:>12} {:>12} {:>12} {:>12} {:>14} {:>14}",
            "modality", "direct p50", "direct p99", "caio p50", "caio p99", "overhead p50", "overhead p99"
        );
        for modality in &modalities {
            let direct_url = format!("http://{}{}", upstream.addr, modality.direct_path);
            let caio_url = format!("{caio}{}", modality.caio_path);
            // Warm up: connections, caches, the store.
            run(&client, &direct_url, None, &modality.direct_body, 20).await;
            run(&client, &caio_url, Some(&token), &modality.caio_body, 20).await;
            let direct = run(&client, &direct_url, None, &modality.direct_body, calls).await;
            let through = run(&client, &caio_url, Some(&token), &modality.caio_body, calls).await;
            let (d50, d99, c50, c99) =
                (percentile(&direct, 0.5), percentile(&direct, 0.99), percentile(&through, 0.5), percentile(&through, 0.99));
            println!(
                "{:>10} {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>11.3} ms {:>11.3} ms",
                modality.name,
                ms(d50),
                ms(d99),
                ms(c50),
                ms(c99),
                ms(c50.saturating_sub(d50)),
                ms(c99.saturating_sub(d99))
            );
        }
    });
}
