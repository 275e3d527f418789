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
use std::time::Duration;

use load::{percentile, run, workload};

mod load;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time the process has used, in seconds (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Cumulative histogram buckets of one series of the server's metrics:
/// (upper bound in seconds, count), `+Inf` last.
fn buckets(metrics: &str, series: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The bucket bound below which a share `p` of the observations between
/// two scrapes fall: a server-side percentile at the histogram's resolution.
fn bucket_percentile(before: &[(f64, u64)], after: &[(f64, u64)], p: f64) -> f64 {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(bound, count)| (*bound, count - before.iter().find(|(b, _)| b == bound).map_or(0, |(_, c)| *c)))
        .collect();
    let total = delta.last().map_or(0, |(_, c)| *c) as f64;
    delta.iter().find(|(_, c)| *c as f64 >= p * total).map_or(f64::NAN, |(b, _)| *b)
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap()
}

fn token() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["token", "--sub", "bench", "--trust-level", "2", "--tenant", "acme", "--ttl", "86400"])
        .args(["--permission", "chat.basic", "--permission", "cloud.use"])
        .output()
        .expect("caio token runs");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
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
    workload(dir.path());

    // One caller sends everything: its rate limit must not be what is measured.
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        "db = \"caio.db\"\nregistry = \"contracts\"\npolicy = \"policy.json\"\n[limits]\nrate_per_second = 1e9\nburst = 1e9\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
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
        let (warm, errors, _) = run(std::slice::from_ref(&url), &token, 200, 2).await;
        assert!(!warm.is_empty() && errors == 0, "the warm-up routes: {errors} errors");
        println!(
            "caio serve: 100 services, 20 rules, durable traces (synchronous = FULL), {seconds} s per rate, open-loop"
        );
        println!(
            "{:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>12} {:>12} {:>10}",
            "rate/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "errors", "RSS MiB", "peak MiB", "server p99<=", "append p99<=", "CPU us/req"
        );
        let scraper = reqwest::Client::new();
        for rate in rates {
            let before = scrape(&scraper, &url).await;
            let cpu_before = cpu_seconds(pid);
            let (latencies, errors, elapsed) = run(std::slice::from_ref(&url), &token, rate, seconds).await;
            let cpu = (cpu_seconds(pid) - cpu_before) / (latencies.len() as f64 + errors as f64).max(1.0) * 1e6;
            let after = scrape(&scraper, &url).await;
            let server = "caio_http_request_duration_seconds_bucket{route=\"/v1/route\"";
            let append = "caio_store_duration_seconds_bucket{operation=\"append\"";
            let server_p99 = bucket_percentile(&buckets(&before, server), &buckets(&after, server), 0.99);
            let append_p99 = bucket_percentile(&buckets(&before, append), &buckets(&after, append), 0.99);
            let achieved = latencies.len() as f64 / elapsed.as_secs_f64();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{rate:>8} {achieved:>10.0} {:>9.3} {:>9.3} {:>9.3} {errors:>7} {:>8.1} {:>8.1} {:>12} {:>12} {cpu:>10.0}",
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default()),
                rss_kib(pid, "VmRSS:") as f64 / 1024.0,
                rss_kib(pid, "VmHWM:") as f64 / 1024.0,
                format!("{} ms", server_p99 * 1000.0),
                format!("{} ms", append_p99 * 1000.0),
            );
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
