//! What the gateway has seen of each service: calls, failures, guarantee
//! violations (a call slower than the contract's `latency_ms.max`) and recent
//! latencies. Two records of the same calls: lifetime totals, for people
//! and counters, and the calculus's age-weighted `Tally`, turned into the
//! `History` that the score reads, so that old failures stop counting.
//!
//! This module must never judge a service: the score does, from this record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use caio_calculus::contract::Contract;
use caio_calculus::score::{History, Tally};
use serde::Serialize;

/// Latencies kept per service for the 95th percentile.
const WINDOW: usize = 512;

/// Calls kept per service, in order, for people to look at (the dashboard's
/// sparkline); the score never reads them.
pub const RECENT: usize = 60;

/// One finished call, as the dashboard draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentCall {
    /// Whether it succeeded.
    pub success: bool,
    /// How long it took, in ms.
    pub latency_ms: f64,
}

/// What this process has seen of one service since it started.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Totals {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Successful calls slower than the contract's `latency_ms.max`.
    pub violations: u64,
    /// The 95th percentile latency of the recent successful calls, in ms
    /// (filled in when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Samples {
    totals: Totals,
    tally: Tally,
    latencies: VecDeque<f64>,
    recent: VecDeque<RecentCall>,
}

impl Samples {
    /// The 95th percentile of the recent successful calls (nearest rank),
    /// computed when read: calls are many, reads once a second.
    fn p95(&self) -> Option<f64> {
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        (!sorted.is_empty())
            .then(|| sorted[((sorted.len() as f64 * 0.95).ceil() as usize).clamp(1, sorted.len()) - 1])
    }

    fn totals(&self) -> Totals {
        Totals { latency_p95_ms: self.p95(), ..self.totals }
    }
}

/// The record, shared by every call.
#[derive(Debug, Default)]
pub struct Observed {
    services: Mutex<BTreeMap<String, Samples>>,
    generation: AtomicU64,
    half_life_ms: AtomicU64,
}

impl Observed {
    /// A record whose calls weigh half as much every `half_life_ms` (0:
    /// never less).
    pub fn new(half_life_ms: u64) -> Observed {
        Observed { half_life_ms: AtomicU64::new(half_life_ms), ..Observed::default() }
    }

    /// The half-life of an observation, in ms.
    pub fn half_life_ms(&self) -> u64 {
        self.half_life_ms.load(Ordering::Relaxed)
    }

    /// Records one finished call to `contract`'s service, ended at `now_ms`.
    pub fn record(&self, contract: &Contract, success: bool, latency_ms: f64, now_ms: u64) {
        let guaranteed = contract.guarantees.get("latency_ms").and_then(|b| b.max);
        let violated = success && guaranteed.is_some_and(|max| latency_ms > max);
        let half_life = self.half_life_ms();
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let samples = services.entry(contract.id.clone()).or_default();
        samples.totals.calls += 1;
        samples.tally.observe(now_ms, success, violated, half_life);
        if success {
            samples.totals.violations += u64::from(violated);
            if samples.latencies.len() == WINDOW {
                samples.latencies.pop_front();
            }
            samples.latencies.push_back(latency_ms);
        } else {
            samples.totals.failures += 1;
        }
        if samples.recent.len() == RECENT {
            samples.recent.pop_front();
        }
        samples.recent.push_back(RecentCall { success, latency_ms });
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The service has recovered (its breaker closed after every probe
    /// succeeded): its weighted record starts afresh, as the breaker's
    /// window does, so that the score and the breaker agree.
    pub fn recovered(&self, service: &str) {
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(samples) = services.get_mut(service) {
            samples.tally = Tally::default();
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Changes whenever something is recorded.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The history the score reads at `now_ms`: the weighted counts and
    /// the 95th percentile of the recent successful calls (nearest rank).
    pub fn history(&self, now_ms: u64) -> History {
        let half_life = self.half_life_ms();
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services
            .iter()
            .map(|(id, s)| (id.clone(), s.tally.history(now_ms, half_life, s.p95(), s.latencies.len() as u64)))
            .collect()
    }

    /// Every service's totals.
    pub fn totals(&self) -> BTreeMap<String, Totals> {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services.iter().map(|(id, s)| (id.clone(), s.totals())).collect()
    }

    /// The totals of one service, if it has been called.
    pub fn of(&self, service: &str) -> Option<Totals> {
        self.services.lock().unwrap_or_else(|p| p.into_inner()).get(service).map(Samples::totals)
    }

    /// The last [`RECENT`] calls to one service, oldest first.
    pub fn recent(&self, service: &str) -> Vec<RecentCall> {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services.get(service).map(|s| s.recent.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caio_calculus::contract::{Format, parse_contracts};

    #[test]
    fn slow_successes_are_violations_and_p95_is_nearest_rank() {
        let contract = parse_contracts(
            r#"{"id": "a", "version": "1.0.0", "capabilities": ["chat"], "guarantees": {"latency_ms": {"max": 50}},
                "privacy": {"data_locality": "local"}, "api": {"adapter": "openai", "endpoint": "http://127.0.0.1:1"}}"#,
            Format::Json,
        )
        .unwrap()
        .remove(0);
        let observed = Observed::new(0);
        for ms in 1..=100 {
            observed.record(&contract, true, ms as f64, 0);
        }
        observed.record(&contract, false, 5.0, 0);
        let totals = observed.totals()["a"];
        assert_eq!((totals.calls, totals.failures, totals.violations), (101, 1, 50));
        assert_eq!(totals.latency_p95_ms, Some(95.0));
        let history = observed.history(0)["a"];
        assert_eq!((history.calls, history.failures, history.violations), (101.0, 1.0, 50.0));
        assert_eq!(observed.generation(), 101);
        assert_eq!(observed.of("a"), Some(totals));
        assert_eq!(observed.of("b"), None);
        let recent = observed.recent("a");
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.last(), Some(&RecentCall { success: false, latency_ms: 5.0 }));
        assert_eq!(recent[0], RecentCall { success: true, latency_ms: (100 - RECENT + 2) as f64 });
        assert!(observed.recent("b").is_empty());
    }

    #[test]
    fn the_weighted_record_forgets_and_starts_afresh_on_recovery() {
        let contract = parse_contracts(
            r#"{"id": "a", "version": "1.0.0", "capabilities": ["chat"], "privacy": {"data_locality": "local"},
                "api": {"adapter": "openai", "endpoint": "http://127.0.0.1:1"}}"#,
            Format::Json,
        )
        .unwrap()
        .remove(0);
        let observed = Observed::new(1_000);
        for _ in 0..8 {
            observed.record(&contract, false, 1.0, 5_000);
        }
        assert_eq!(observed.history(5_000)["a"].failures, 8.0);
        assert_eq!(observed.history(7_000)["a"].failures, 2.0, "two half-lives later");
        assert_eq!(observed.totals()["a"].failures, 8, "the totals never forget");
        let generation = observed.generation();
        observed.recovered("a");
        assert_eq!(observed.history(7_000)["a"].calls, 0.0);
        assert!(observed.generation() > generation, "the routing snapshot takes the fresh record");
        assert_eq!(observed.totals()["a"].calls, 8);
    }
}
