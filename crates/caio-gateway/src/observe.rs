//! What the gateway has seen of each service: calls, failures, guarantee
//! violations (a call slower than the contract's `latency_ms.max`) and recent
//! latencies, turned into the calculus's `History` that the score reads.
//!
//! This module must never judge a service: the score does, from this record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use caio_calculus::contract::Contract;
use caio_calculus::score::{History, ServiceHistory};

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

#[derive(Debug, Default)]
struct Samples {
    calls: u64,
    failures: u64,
    violations: u64,
    latencies: VecDeque<f64>,
    recent: VecDeque<RecentCall>,
}

impl Samples {
    fn history(&self) -> ServiceHistory {
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p95 = (!sorted.is_empty())
            .then(|| sorted[((sorted.len() as f64 * 0.95).ceil() as usize).clamp(1, sorted.len()) - 1]);
        ServiceHistory { calls: self.calls, failures: self.failures, violations: self.violations, latency_p95_ms: p95 }
    }
}

/// The record, shared by every call.
#[derive(Debug, Default)]
pub struct Observed {
    services: Mutex<BTreeMap<String, Samples>>,
    generation: AtomicU64,
}

impl Observed {
    /// Records one finished call to `contract`'s service.
    pub fn record(&self, contract: &Contract, success: bool, latency_ms: f64) {
        let guaranteed = contract.guarantees.get("latency_ms").and_then(|b| b.max);
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let samples = services.entry(contract.id.clone()).or_default();
        samples.calls += 1;
        if success {
            if guaranteed.is_some_and(|max| latency_ms > max) {
                samples.violations += 1;
            }
            if samples.latencies.len() == WINDOW {
                samples.latencies.pop_front();
            }
            samples.latencies.push_back(latency_ms);
        } else {
            samples.failures += 1;
        }
        if samples.recent.len() == RECENT {
            samples.recent.pop_front();
        }
        samples.recent.push_back(RecentCall { success, latency_ms });
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever something is recorded.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The history the score reads: the 95th percentile of the recent
    /// successful calls (nearest rank).
    pub fn history(&self) -> History {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services.iter().map(|(id, s)| (id.clone(), s.history())).collect()
    }

    /// The history of one service, if it has been called.
    pub fn of(&self, service: &str) -> Option<ServiceHistory> {
        self.services.lock().unwrap_or_else(|p| p.into_inner()).get(service).map(Samples::history)
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
        let observed = Observed::default();
        for ms in 1..=100 {
            observed.record(&contract, true, ms as f64);
        }
        observed.record(&contract, false, 5.0);
        let history = observed.history()["a"];
        assert_eq!((history.calls, history.failures, history.violations), (101, 1, 50));
        assert_eq!(history.latency_p95_ms, Some(95.0));
        assert_eq!(observed.generation(), 101);
        assert_eq!(observed.of("a"), Some(history));
        assert_eq!(observed.of("b"), None);
        let recent = observed.recent("a");
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.last(), Some(&RecentCall { success: false, latency_ms: 5.0 }));
        assert_eq!(recent[0], RecentCall { success: true, latency_ms: (100 - RECENT + 2) as f64 });
        assert!(observed.recent("b").is_empty());
    }
}
