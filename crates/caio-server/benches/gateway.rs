//! Gateway overhead, measured: the latency of a chat completion through
//! caio (route, prove, trace, execute, record) minus the latency of the same
//! call straight to the same model server, under open-loop load at fixed
//! rates (each request is sent at its scheduled time whatever the others
//! do, and its latency counts from that time, so a stall is not hidden),
//! then the time to the first streamed byte through caio and direct.
//!
//! `cargo bench -p caio-server --bench gateway [-- --seconds S --rates 1000,5000]`
//!
//! With `CAIO_BENCH_LITELLM=/path/to/litellm` (the proxy's command, from a
//! virtual environment with `litellm[proxy]`), LiteLLM's proxy is started
//! on the same model server and measured in the same run.
//!
//! Everything shares the machine: the load generator, caio, the model
//! server (which answers at once) and, with it, LiteLLM.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::route::RouteConfig;
use caio_calculus::rules::Policy;
use caio_gateway::fixture::Upstream;
use caio_server::{AppState, ServerConfig};
use caio_store::{SqliteOptions, SqliteStore, Store, Synchronous};
use serde_json::json;

struct Target {
    name: &'static str,
    url: String,
    token: Option<String>,
    model: &'static str,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Run {
    latencies: Vec<Duration>,
    failed: BTreeMap<String, usize>,
}

impl Run {
    fn failures(&self) -> String {
        if self.failed.is_empty() {
            return "0".into();
        }
        self.failed.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>().join(", ")
    }
}

fn post(client: &reqwest::Client, target: &Target, body: &serde_json::Value) -> reqwest::RequestBuilder {
    let request = client.post(format!("{}/chat/completions", target.url)).json(body);
    match &target.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Sends `rate` requests a second for `seconds`, open loop.
async fn open_loop(client: &reqwest::Client, target: &Target, rate: u64, seconds: f64) -> Run {
    let body = json!({"model": target.model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8});
    let count = (rate as f64 * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let request = post(client, target, &body);
        tasks.push(tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => match response.bytes().await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("body: {e}")),
                },
                Ok(response) => Err(format!("status {}", response.status().as_u16())),
                Err(e) if e.is_connect() => Err("connect".into()),
                Err(e) if e.is_timeout() => Err("timeout".into()),
                Err(_) => Err("transport".into()),
            };
            (outcome, scheduled.elapsed())
        }));
    }
    let mut run = Run { latencies: Vec::with_capacity(count), failed: BTreeMap::new() };
    for task in tasks {
        match task.await {
            Ok((Ok(()), took)) => run.latencies.push(took),
            Ok((Err(kind), _)) => *run.failed.entry(kind).or_default() += 1,
            Err(_) => *run.failed.entry("panicked".into()).or_default() += 1,
        }
    }
    run.latencies.sort();
    run
}

/// Time to the first byte of `n` streamed completions, one after another.
async fn first_bytes(client: &reqwest::Client, target: &Target, n: usize) -> Vec<Duration> {
    let body = json!({"model": target.model, "messages": [{"role": "user", "content": "hello"}], "stream": true});
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let Ok(mut response) = post(client, target, &body).send().await else { continue };
        if let Ok(Some(_)) = response.chunk().await {
            times.push(started.elapsed());
        }
        while let Ok(Some(_)) = response.chunk().await {}
    }
    times.sort();
    times
}

async fn start_caio(upstream: &Upstream, dir: &std::path::Path, synchronous: Synchronous) -> (String, String) {
    let contract = format!(
        r#"{{"id": "bench", "version": "1.0.0", "capabilities": ["chat"], "privacy": {{"data_locality": "local"}},
            "security": {{"required_permissions": ["chat.basic"]}},
            "api": {{"adapter": "openai", "endpoint": "{}", "model": "tiny", "timeout_ms": 10000}}}}"#,
        upstream.openai_base()
    );
    let file = format!("caio-{synchronous:?}.db");
    let store =
        SqliteStore::open_with(dir.join(file), SqliteOptions { synchronous, ..SqliteOptions::default() }).unwrap();
    store.register(parse_contracts(&contract, Format::Json).unwrap().remove(0), 1, "bench").unwrap();
    let mut config = ServerConfig::new(RouteConfig::new(caio_calculus::examples::auth_config()), Policy::default());
    config.limits.rate_per_second = 1e9;
    config.limits.burst = 1e9;
    config.limits.max_in_flight = 1 << 16;
    let store: Arc<dyn Store> = Arc::new(store);
    let state = AppState::new(store, config, caio_server::system_clock()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(caio_server::serve(listener, state, std::future::pending()));
    (url, caio_calculus::examples::token(&["chat.basic"], 1))
}

/// The master key the benchmark's LiteLLM proxy is started with (it refuses
/// to start without one).
const LITELLM_KEY: &str = "sk-caio-bench-0000000000000000000000000000000000000000000000000000000000000000";

/// LiteLLM's proxy on the same model server, if its command is given.
async fn start_litellm(upstream: &Upstream, dir: &std::path::Path) -> Option<(std::process::Child, String)> {
    let command = std::env::var("CAIO_BENCH_LITELLM").ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let config = dir.join("litellm.yaml");
    let text = format!(
        "model_list:\n  - model_name: chat\n    litellm_params:\n      model: openai/tiny\n      api_base: {}\n      api_key: unused\n\
         litellm_settings:\n  telemetry: false\n  drop_params: true\n",
        upstream.openai_base()
    );
    std::fs::write(&config, text).ok()?;
    let child = std::process::Command::new(command)
        .arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--num_workers", "1"])
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_MASTER_KEY", LITELLM_KEY)
        // No network here: the bundled model cost map, no telemetry.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_TELEMETRY", "False")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..900 {
        if client.get(format!("{url}/health/liveliness")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Some((child, format!("{url}/v1")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("LiteLLM's proxy did not become ready in 90 s; not measured");
    None
}

fn argument(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let seconds: f64 = argument("--seconds").and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let rates = |name: &str, default: &[u64]| -> Vec<u64> {
        argument(name)
            .map(|r| r.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| default.to_vec())
    };
    let (rates, litellm_rates) = (rates("--rates", &[100, 1000, 5000]), rates("--litellm-rates", &[100, 1000]));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Upstream::start("bench").await;
        let (full_url, token) = start_caio(&upstream, dir.path(), Synchronous::Full).await;
        let (normal_url, _) = start_caio(&upstream, dir.path(), Synchronous::Normal).await;
        let targets = vec![
            Target { name: "direct", url: upstream.openai_base(), token: None, model: "tiny" },
            Target { name: "caio", url: full_url, token: Some(token.clone()), model: "chat" },
            Target { name: "caio-nrm", url: normal_url, token: Some(token), model: "chat" },
        ];
        let client = reqwest::Client::builder().pool_max_idle_per_host(4096).tcp_nodelay(true).build().unwrap();
        for target in &targets {
            // Warm up: connections, caches, the store.
            let _ = open_loop(&client, target, 200, 1.0).await;
        }
        println!("gateway overhead: open loop, {seconds} s per rate, a non-streamed chat completion");
        println!("caio: SQLite synchronous=FULL (the default); caio-nrm: synchronous=NORMAL");
        let header = || {
            println!(
                "{:>8} {:>8} {:>8} {:>10} {:>10} {:>10} failed",
                "rate/s", "target", "ok", "p50 ms", "p99 ms", "max ms"
            )
        };
        header();
        let mut measured = BTreeMap::new();
        for rate in &rates {
            for target in &targets {
                measured.insert((*rate, target.name), measure(&client, target, *rate, seconds).await);
            }
            overheads(&measured, *rate, &["caio", "caio-nrm"]);
        }
        println!("time to the first streamed byte, 200 streamed completions one at a time");
        for target in &targets {
            first_byte(&client, target).await;
        }
        // LiteLLM last, so that its backlog cannot slow the others.
        if let Some((mut child, url)) = start_litellm(&upstream, dir.path()).await {
            let litellm = Target { name: "litellm", url, token: Some(LITELLM_KEY.into()), model: "chat" };
            let _ = open_loop(&client, &litellm, 20, 2.0).await;
            println!("LiteLLM's proxy (one worker) on the same model server");
            header();
            for rate in &litellm_rates {
                for target in [&targets[0], &litellm] {
                    measured.insert((*rate, target.name), measure(&client, target, *rate, seconds).await);
                }
                overheads(&measured, *rate, &["litellm"]);
                if let (Some(caio), Some(litellm)) = (measured.get(&(*rate, "caio")), measured.get(&(*rate, "litellm")))
                {
                    let direct = measured[&(*rate, "direct")];
                    let over = |x: Duration, d: Duration| ms(x.saturating_sub(d)).max(1e-3);
                    println!(
                        "{rate:>8} litellm/caio overhead: p50 {:.0}x, p99 {:.0}x",
                        over(litellm.0, direct.0) / over(caio.0, direct.0),
                        over(litellm.1, direct.1) / over(caio.1, direct.1)
                    );
                }
                // Let its backlog drain.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            first_byte(&client, &litellm).await;
            let _ = child.kill();
            let _ = child.wait();
        }
    });
}

async fn measure(client: &reqwest::Client, target: &Target, rate: u64, seconds: f64) -> (Duration, Duration) {
    let run = open_loop(client, target, rate, seconds).await;
    let (p50, p99) = (percentile(&run.latencies, 0.50), percentile(&run.latencies, 0.99));
    let max = run.latencies.last().copied().unwrap_or_default();
    println!(
        "{rate:>8} {:>8} {:>8} {:>10.3} {:>10.3} {:>10.3} {}",
        target.name,
        run.latencies.len(),
        ms(p50),
        ms(p99),
        ms(max),
        run.failures()
    );
    (p50, p99)
}

fn overheads(measured: &BTreeMap<(u64, &str), (Duration, Duration)>, rate: u64, names: &[&str]) {
    let direct = measured[&(rate, "direct")];
    for name in names {
        let (p50, p99) = measured[&(rate, *name)];
        println!(
            "{rate:>8} {name:>8} overhead: p50 {:.3} ms, p99 {:.3} ms",
            ms(p50.saturating_sub(direct.0)),
            ms(p99.saturating_sub(direct.1))
        );
    }
}

async fn first_byte(client: &reqwest::Client, target: &Target) {
    let times = first_bytes(client, target, 200).await;
    println!(
        "{:>8}: p50 {:.3} ms, p99 {:.3} ms",
        target.name,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
}
