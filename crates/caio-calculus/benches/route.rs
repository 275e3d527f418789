//! Benchmark of `route`: registries of 10 to 10,000 synthetic services and
//! 20 policy rules. Criterion measures the mean; the per-decision p50 and
//! p99 are measured separately and printed, since the targets are about the
//! tail. Targets on a 2-core machine: p99 <= 20 us at 100 services, <= 1 ms
//! at 10,000 (reported, never asserted).

use std::hint::black_box;
use std::time::{Duration, Instant};

use caio_calculus::examples::{NOW, auth_config, hs256_token, synthetic_policy, synthetic_registry, token};
use caio_calculus::request::Request;
use caio_calculus::route::{Inputs, RouteConfig, route};
use caio_calculus::score::History;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const SIZES: &[usize] = &[10, 100, 1_000, 10_000];

fn request(token: String) -> Request {
    let mut request = caio_calculus::request::parse_request(
        "{id: bench, capabilities: [chat], guarantees: {accuracy: {min: 0.7}}, estimated_tokens: 1000}",
        caio_calculus::contract::Format::Yaml,
    )
    .expect("the bench request is valid");
    request.token = token;
    request
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn bench_route(c: &mut Criterion) {
    let config = RouteConfig { auth: auth_config(), score: Default::default(), control: Default::default() };
    let policy = synthetic_policy(20);
    let history = History::new();
    let permissions = ["chat.basic", "cloud.use"];
    let tokens = [("HS256", hs256_token(&permissions, 2)), ("EdDSA", token(&permissions, 2))];
    let mut group = c.benchmark_group("route");
    for ((algorithm, token), &n) in tokens.iter().flat_map(|t| SIZES.iter().map(move |n| (t, n))) {
        let request = request(token.clone());
        let registry = synthetic_registry(n, 42);
        let inputs = Inputs {
            registry: &registry,
            policy: &policy,
            history: &history,
            config: &config,
            seed: 1,
            now: NOW,
            previous: None,
        };
        route(&request, &inputs).expect("the bench request routes");
        group.bench_with_input(BenchmarkId::new(*algorithm, n), &n, |b, _| {
            b.iter(|| route(black_box(&request), black_box(&inputs)))
        });
        let rounds = (200_000 / n).clamp(200, 5_000);
        let samples: Vec<Duration> = (0..rounds)
            .map(|_| {
                let started = Instant::now();
                black_box(route(black_box(&request), black_box(&inputs)).ok());
                started.elapsed()
            })
            .collect();
        let (p50, p99) = percentiles(samples);
        println!(
            "route, {algorithm} token, {n:>6} services, 20 rules: p50 {p50:>10.1?}  p99 {p99:>10.1?}  ({rounds} decisions)"
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_route
}
criterion_main!(benches);
