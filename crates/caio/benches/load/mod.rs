//! The open-loop load of the `caio` benchmarks: `POST /v1/route` at a fixed
//! rate, each request sent at its scheduled time whether or not earlier ones
//! were answered, its latency counted from that time (a slow server cannot
//! hide its queueing), spread round-robin over one or more replicas.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use caio_calculus::rules::PolicyFile;

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Sends `rate` requests per second for `seconds` to `urls` in turn; the
/// sorted latencies of the answered ones, the errors, and the time taken.
pub async fn run(urls: &[String], token: &str, rate: u64, seconds: u64) -> (Vec<Duration>, u64, Duration) {
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(10)).build().unwrap();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, url, token) = (client.clone(), urls[i as usize % urls.len()].clone(), token.to_string());
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

/// The benchmarks' registry and policy in `dir`: 100 synthetic services in
/// `contracts/` and 20 rules in `policy.json`.
pub fn workload(dir: &Path) {
    let contracts = dir.join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    for contract in caio_calculus::examples::synthetic_contracts(100, 7) {
        std::fs::write(contracts.join(format!("{}.json", contract.id)), serde_json::to_string(&contract).unwrap())
            .unwrap();
    }
    let rules = caio_calculus::examples::synthetic_policy(20).rules().iter().map(|r| r.spec.clone()).collect();
    std::fs::write(
        dir.join("policy.json"),
        serde_json::to_string(&PolicyFile { rules, limits: Default::default() }).unwrap(),
    )
    .unwrap();
}
