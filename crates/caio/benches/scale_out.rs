//! Scale-out benchmark: `POST /v1/route` at fixed rates (open-loop, see
//! `load`) on one, two and three `caio serve` replicas sharing one
//! PostgreSQL (durable commits: `fsync` and `synchronous_commit` on) and one
//! Redis (shared rate limits and breakers), against one replica on SQLite
//! (`synchronous = FULL`) in the same run, and one replica on PostgreSQL
//! without Redis to tell the two costs apart. 100 services, 20 rules, as in
//! the `serve` benchmark. Prints throughput, p50 and p99 per configuration
//! and rate.
//!
//! ```sh
//! cargo bench -p caio --bench scale_out
//! CAIO_BENCH_RATES=500,1000 CAIO_BENCH_SECONDS=10 cargo bench -p caio --bench scale_out
//! ```
//!
//! On one machine this shows what sharing costs, not how it scales: every
//! replica, PostgreSQL, Redis and the load generator take turns on the same
//! cores (two, on the project's CI machines), so more replicas cannot add
//! capacity there. Needs PostgreSQL and Redis installed (as for the tests).

use std::time::Duration;

use load::{percentile, run, workload};
use replicas::Replica;

mod load;
#[path = "../tests/replicas/mod.rs"]
mod replicas;

struct Setup {
    name: &'static str,
    replicas: usize,
    postgres: bool,
    redis: bool,
}

const SETUPS: &[Setup] = &[
    Setup { name: "sqlite", replicas: 1, postgres: false, redis: false },
    Setup { name: "postgres", replicas: 1, postgres: true, redis: false },
    Setup { name: "postgres+redis", replicas: 1, postgres: true, redis: true },
    Setup { name: "postgres+redis", replicas: 2, postgres: true, redis: true },
    Setup { name: "postgres+redis", replicas: 3, postgres: true, redis: true },
];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("scale_out: bench");
        return;
    }
    let rates: Vec<u64> = std::env::var("CAIO_BENCH_RATES")
        .unwrap_or_else(|_| "250,500,1000".into())
        .split(',')
        .map(|r| r.trim().parse().expect("CAIO_BENCH_RATES: requests per second, comma-separated"))
        .collect();
    let seconds: u64 = std::env::var("CAIO_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let postgres = caio_testkit::Postgres::start_with(true).expect("PostgreSQL for the benchmark");
    let redis = caio_testkit::Redis::start().expect("Redis for the benchmark");
    let token = replicas::token("bench", &["chat.basic", "cloud.use"]);
    let dir = tempfile::tempdir().unwrap();
    workload(dir.path());
    // The generator gets one thread: the servers keep the rest.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    println!(
        "POST /v1/route, 100 services, 20 rules, durable traces, {seconds} s per rate, open-loop; 2 cores share everything"
    );
    println!(
        "{:<16} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "store", "replicas", "rate/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (i, setup) in SETUPS.iter().enumerate() {
        let store = if setup.postgres { postgres.database() } else { format!("caio-{i}.db") };
        let shared = if setup.redis {
            format!("[shared]\nredis = \"{}\"\nprefix = \"bench{i}\"\n", redis.url())
        } else {
            String::new()
        };
        let config = dir.path().join(format!("caio-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nstore = \"{store}\"\nregistry = \"contracts\"\npolicy = \"policy.json\"\n\
                 auth = \"{}\"\n[limits]\nrate_per_second = 1e9\nburst = 1e9\n{shared}",
                replicas::root().join("examples/auth/dev.yaml").display()
            ),
        )
        .unwrap();
        let running: Vec<Replica> = replicas::start(setup.replicas, &config, dir.path());
        let urls: Vec<String> = running.iter().map(|r| r.url.clone()).collect();
        runtime.block_on(async {
            let (warm, errors, _) = run(&urls, &token, 100, 2).await;
            assert!(!warm.is_empty() && errors == 0, "{}: the warm-up routes: {errors} errors", setup.name);
            for &rate in &rates {
                let (latencies, errors, elapsed) = run(&urls, &token, rate, seconds).await;
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                println!(
                    "{:<16} {:>8} {rate:>7} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {errors:>7}",
                    setup.name,
                    setup.replicas,
                    latencies.len() as f64 / elapsed.as_secs_f64(),
                    ms(percentile(&latencies, 0.50)),
                    ms(percentile(&latencies, 0.99)),
                    ms(latencies.last().copied().unwrap_or_default()),
                );
            }
        });
        drop(running);
    }
}
