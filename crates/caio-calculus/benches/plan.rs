//! Benchmark of `plan::plan`: generated plans of 4 steps x 100 candidates
//! and 8 steps x 30, a chain with a fan-out in the middle, random scores
//! and latency, cost and locality, end-to-end bounds that some candidates
//! of every step miss. Prints, per shape, the p50, p99 and largest time of
//! one planning, the partial combinations visited, and how many plans had
//! a combination. The target (4 x 100: p99 <= 1 ms on a 2-core machine)
//! is reported, never asserted.
//!
//! ```sh
//! cargo bench -p caio-calculus --bench plan
//! CAIO_BENCH_PLANS=200 cargo bench -p caio-calculus --bench plan
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use caio_calculus::compose::Composite;
use caio_calculus::contract::Locality;
use caio_calculus::guarantee::{Bound, Guarantees};
use caio_calculus::plan::{Candidate, EndToEnd, Node, PlanLimits, plan};

/// xorshift64: the same plans on every run.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A chain whose middle steps run side by side: s0 -> (s1 | ... | s(n-2)) -> s(n-1).
fn tree(steps: usize) -> Node {
    let step = |i: usize| Node::Step(format!("s{i}"));
    Node::Sequential(vec![step(0), Node::Parallel((1..steps - 1).map(step).collect()), step(steps - 1)])
}

fn candidates(draw: &mut Draw, steps: usize, per_step: usize) -> BTreeMap<String, Vec<Candidate>> {
    (0..steps)
        .map(|s| {
            let list = (0..per_step)
                .map(|i| {
                    let mut guarantees = Guarantees::new();
                    let percentile = [99.0, 99.5, 99.9][(draw.next() % 3) as usize];
                    guarantees.insert("latency_ms".to_string(), Bound::at_most(100.0 + 900.0 * draw.unit()).at_percentile(percentile));
                    guarantees.insert("cost_usd".to_string(), Bound::at_most(0.01 * draw.unit()));
                    Candidate {
                        service: format!("s{s}-service-{i}"),
                        score: draw.unit(),
                        tie_break: draw.next(),
                        offers: Composite {
                            guarantees,
                            locality: [Locality::Local, Locality::Region, Locality::Cloud][(draw.next() % 3) as usize],
                            deterministic: draw.next().is_multiple_of(2),
                        },
                    }
                })
                .collect();
            (format!("s{s}"), list)
        })
        .collect()
}

fn end_to_end(steps: usize) -> EndToEnd {
    EndToEnd {
        guarantees: [
            ("latency_ms".to_string(), Bound::at_most(1_500.0).at_percentile(95.0)),
            ("cost_usd".to_string(), Bound::at_most(0.004 * steps as f64)),
        ]
        .into(),
        max_locality: Some(Locality::Region),
        deterministic: false,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let plans: usize = std::env::var("CAIO_BENCH_PLANS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    println!("{:<14} {:>8} {:>10} {:>10} {:>10} {:>14} {:>10}", "shape", "plans", "p50 us", "p99 us", "max us", "visited (mean)", "planned");
    for (steps, per_step) in [(4, 100), (8, 30)] {
        let mut draw = Draw(0x2545_f491_4f6c_dd1d ^ (steps as u64 * 1_000 + per_step as u64));
        let (root, bounds, limits) = (tree(steps), end_to_end(steps), PlanLimits::default());
        let mut times = Vec::with_capacity(plans);
        let (mut visited, mut planned) = (0u64, 0usize);
        for _ in 0..plans {
            let candidates = candidates(&mut draw, steps, per_step);
            let started = Instant::now();
            let result = black_box(plan(&root, &bounds, &candidates, &limits));
            times.push(started.elapsed().as_secs_f64() * 1e6);
            if let Ok(choice) = &result {
                visited += choice.visited;
                planned += 1;
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<14} {plans:>8} {:>10.1} {:>10.1} {:>10.1} {:>14.0} {planned:>10}",
            format!("{steps} x {per_step}"),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
            visited as f64 / planned.max(1) as f64
        );
    }
}
