//! Load benchmark of a real `caio serve` process: `POST /v1/route` over
//! real sockets at fixed rates, open-loop (each request is sent at its
//! scheduled time whether or not earlier ones were answered, and its latency
//! counts from that time, so a slow server cannot hide its queueing), with
//! 100 registered services and 20 policy rules, durable traces
//! (`synchronous = FULL`). Prints p50, p99 and max latency, achieved
//! throughput, errors and the server's resident memory per rate.
//!
//! ```sh
//! cargo bench -p caio --bench serve
//! CAIO_BENCH_RATES=1000,2000 CAIO_BENCH_SECONDS=10 cargo bench -p caio --bench serve
//! ```
//!
//! The load generator runs on the same machine (one thread of its own), so
//! on 2 cores it takes CPU from the server: the figures are an upper bound
//! of what the server needs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caio_calculus::rules::PolicyFile;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn token() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["token", "--sub", "bench", "--trust-level", "2", "--tenant", "acme", "--ttl", "86400"])
        .args(["--permission", "chat.basic", "--permission", "cloud.use"])
        .output()
        .expect("caio token runs");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Sends `rate` requests per second for `seconds`, open-loop.
async fn run(url: &str, token: &str, rate: u64, seconds: u64) -> (Vec<Duration>, u64, Duration) {
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(10)).build().unwrap();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"id": format!("bench-{rate}-{i}"), "capabilities": ["chat"], "estimated_tokens": 500});
            let outcome = client.post(format!("{url}/v1/route")).bearer_auth(token).json(&body).send().await;
            let ok = match outcome {
                Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for task in tasks {
        let (ok, latency) = task.await.unwrap();
        if ok {
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (latencies, errors, elapsed)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("serve: bench");
        return;
    }
    let rates: Vec<u64> = std::env::var("CAIO_BENCH_RATES")
        .unwrap_or_else(|_| "1000,2000,5000".into())
        .split(',')
        .map(|r| r.trim().parse().expect("CAIO_BENCH_RATES: requests per second, comma-separated"))
        .collect();
    let seconds: u64 = std::env::var("CAIO_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);

    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    for contract in caio_calculus::examples::synthetic_contracts(100, 7) {
        std::fs::write(contracts.join(format!("{}.json", contract.id)), serde_json::to_string(&contract).unwrap())
            .unwrap();
    }
    let rules = caio_calculus::examples::synthetic_policy(20).rules().iter().map(|r| r.spec.clone()).collect();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, serde_json::to_string(&PolicyFile { rules, limits: Default::default() }).unwrap()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("caio.db"))
        .arg("--registry")
        .arg(&contracts)
        .arg("--policy")
        .arg(&policy)
        .env("CAIO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("caio serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("caio listening on ").expect("caio serve says where it listens").to_string();
    let pid = child.id();
    let token = Arc::new(token());

    // The generator gets one thread: the server keeps the rest.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let (warm, errors, _) = run(&url, &token, 200, 2).await;
        assert!(!warm.is_empty() && errors == 0, "the warm-up routes: {errors} errors");
        println!(
            "caio serve: 100 services, 20 rules, durable traces (synchronous = FULL), {seconds} s per rate, open-loop"
        );
        println!(
            "{:>8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10}",
            "rate/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "errors", "RSS MiB", "peak MiB"
        );
        for rate in rates {
            let (latencies, errors, elapsed) = run(&url, &token, rate, seconds).await;
            let achieved = latencies.len() as f64 / elapsed.as_secs_f64();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{rate:>8} {achieved:>10.0} {:>10.3} {:>10.3} {:>10.3} {errors:>8} {:>10.1} {:>10.1}",
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default()),
                rss_kib(pid, "VmRSS:") as f64 / 1024.0,
                rss_kib(pid, "VmHWM:") as f64 / 1024.0,
            );
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
