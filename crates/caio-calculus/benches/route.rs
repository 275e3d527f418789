//! Benchmark of `route`: registries of 10 to 10,000 synthetic services and
//! 20 policy rules. Criterion measures the mean; the per-decision p50 and
//! p99 are measured separately and printed, since the targets are about the
//! tail. Targets on a 2-core machine: p99 <= 20 us at 100 services, <= 1 ms
//! at 10,000 (reported, never asserted). Memory is read from the resident
//! set of a fresh process per size and token (this program run again):
//! what a registry adds per service, and what a decision (proofs and trace)
//! holds, measured over up to 1,000 decisions kept alive.
//!
//! Environment: `CAIO_BENCH_ROUTE_SIZES=10,100,100000` picks the registry
//! sizes; `CAIO_BENCH_ROUTE_PERCENTILES_ONLY=1` skips criterion's runs;
//! `CAIO_BENCH_ROUTE_TOKENS=HS256` keeps one token kind (`HS256`, `EdDSA`);
//! `CAIO_BENCH_ROUTE_JSON=FILE` also writes one JSON line per size and token
//! (what `benches/compare/run.sh` reads to set caio beside LiteLLM).

use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use caio_calculus::breaker::Health;
use caio_calculus::examples::{NOW, auth_config, hs256_token, synthetic_policy, synthetic_registry, token};
use caio_calculus::request::Request;
use caio_calculus::route::{Inputs, RouteConfig, route};
use caio_calculus::score::History;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const SIZES: &[usize] = &[10, 100, 1_000, 10_000];

/// Resident memory of this process in bytes (Linux: `/proc/self/statm`,
/// 4 KiB pages), or 0 where that cannot be read. Allocation counting would
/// need a global allocator, which is unsafe code, and the crate forbids it.
fn resident() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// Set in the child process that measures memory: `ALGORITHM:SERVICES`.
const MEMORY_OF: &str = "CAIO_BENCH_ROUTE_MEMORY_OF";

/// Bytes a registry of `n` services adds per service, and bytes one
/// decision holds, from the resident set of this process: exact only in a
/// fresh process, since pages freed by an earlier size stay resident and a
/// later registry would be built in them unseen.
fn memory(request: &Request, n: usize, policy: &caio_calculus::rules::Policy, config: &RouteConfig) -> (usize, usize) {
    let history = History::new();
    let before = resident();
    let registry = synthetic_registry(n, 42);
    let per_service = resident().saturating_sub(before) / n;
    let inputs = Inputs { registry: &registry, policy, history: &history, health: &Health::new(), config, seed: 1, now: NOW, previous: None };
    let kept = (2_000_000 / n).clamp(10, 1_000);
    let before = resident();
    let decisions: Vec<_> = (0..kept).map(|_| route(request, &inputs).expect("the bench request routes")).collect();
    let per_decision = resident().saturating_sub(before) / kept;
    drop(decisions);
    (per_service, per_decision)
}

/// [`memory`] measured in a fresh run of this program.
fn memory_in_fresh_process(algorithm: &str, n: usize) -> (usize, usize) {
    let exe = std::env::current_exe().expect("the bench knows its executable");
    let output = Command::new(exe)
        .arg("--bench")
        .env(MEMORY_OF, format!("{algorithm}:{n}"))
        .env_remove("CAIO_BENCH_ROUTE_JSON")
        .output()
        .expect("the bench can run itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("caio-bench-memory ")).unwrap_or_else(|| {
        panic!("the memory measurement printed no result: {}", String::from_utf8_lossy(&output.stderr))
    });
    let mut numbers = line.split(' ').map(|v| v.parse().expect("the child prints numbers"));
    (numbers.next().expect("bytes per service"), numbers.next().expect("bytes per decision"))
}

/// The comma-separated items of the environment variable `name`, each
/// read by `parse`, or `None` when it is unset. A value that does not read
/// stops the bench with one message: a misspelt size or token kind must not
/// quietly measure something else, or nothing.
fn list_from_env<T>(name: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let value = std::env::var(name).ok()?;
    let items: Option<Vec<T>> = value.split(',').map(|item| parse(item.trim())).collect();
    match items {
        Some(items) if !items.is_empty() => Some(items),
        _ => {
            eprintln!("error: {name}={value:?}: expected {expected}, separated by commas");
            std::process::exit(2);
        }
    }
}

fn sizes() -> Vec<usize> {
    list_from_env("CAIO_BENCH_ROUTE_SIZES", "numbers of services (for example 100,10_000)", |n| {
        n.replace('_', "").parse().ok().filter(|&n| n > 0)
    })
    .unwrap_or_else(|| SIZES.to_vec())
}

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
    let kinds = ["HS256", "EdDSA"];
    let only = list_from_env("CAIO_BENCH_ROUTE_TOKENS", "token kinds (HS256, EdDSA)", |kind| {
        kinds.into_iter().find(|known| *known == kind)
    });
    let tokens: Vec<_> = [("HS256", hs256_token(&permissions, 2)), ("EdDSA", token(&permissions, 2))]
        .into_iter()
        .filter(|(kind, _)| only.as_ref().is_none_or(|only| only.contains(kind)))
        .collect();
    if let Ok(which) = std::env::var(MEMORY_OF) {
        let (algorithm, n) = which.split_once(':').expect("ALGORITHM:SERVICES");
        let token = tokens.iter().find(|(kind, _)| *kind == algorithm).expect("a known token kind");
        let n = n.parse().expect("a number of services");
        let (per_service, per_decision) = memory(&request(token.1.clone()), n, &policy, &config);
        println!("caio-bench-memory {per_service} {per_decision}");
        std::process::exit(0);
    }
    let mut group = c.benchmark_group("route");
    let percentiles_only = std::env::var_os("CAIO_BENCH_ROUTE_PERCENTILES_ONLY").is_some();
    let mut json = std::env::var_os("CAIO_BENCH_ROUTE_JSON")
        .map(|path| std::fs::File::create(&path).expect("CAIO_BENCH_ROUTE_JSON names a writable file"));
    let sizes = sizes();
    for ((algorithm, token), &n) in tokens.iter().flat_map(|t| sizes.iter().map(move |n| (t, n))) {
        let request = request(token.clone());
        let (per_service, per_decision) = memory_in_fresh_process(algorithm, n);
        let registry = synthetic_registry(n, 42);
        let inputs = Inputs {
            registry: &registry,
            policy: &policy,
            history: &history,
            health: &Health::new(),
            config: &config,
            seed: 1,
            now: NOW,
            previous: None,
        };
        let admitted = route(&request, &inputs).expect("the bench request routes").alternatives.len() + 1;
        if !percentiles_only {
            group.bench_with_input(BenchmarkId::new(*algorithm, n), &n, |b, _| {
                b.iter(|| route(black_box(&request), black_box(&inputs)))
            });
        }
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
            "route, {algorithm} token, {n:>6} services ({admitted} admitted), 20 rules: p50 {p50:>10.1?}  p99 {p99:>10.1?}  ({rounds} decisions); \
             registry {per_service} B/service, decision {per_decision} B"
        );
        if let Some(file) = json.as_mut() {
            let line = format!(
                "{{\"system\":\"caio\",\"strategy\":\"route ({algorithm} token, 20 rules, proofs, trace)\",\"services\":{n},\"admitted\":{admitted},\"p50_us\":{:.3},\"p99_us\":{:.3},\"decisions\":{rounds},\"bytes_per_service\":{per_service},\"bytes_per_decision\":{per_decision}}}",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
            writeln!(file, "{line}").expect("the JSON file is writable");
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_route
}
criterion_main!(benches);
