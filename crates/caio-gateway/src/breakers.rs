//! One circuit breaker per service: the calculus's state machine
//! (`caio_calculus::breaker`) fed with real outcomes, on the gateway's
//! millisecond clock ([`crate::Clock`], the wall clock unless a test
//! injects one). Wall clock rather than monotonic, because replicas
//! that share breakers must agree on what a time means: machines kept in
//! step by NTP differ by milliseconds, and a breaker stays open for seconds.
//! Their states at a decision's time are an input of the decision
//! ([`Breakers::health`]); a breaker that closes after its probes marks its
//! service as recovered ([`Breakers::take_recovered`]).
//!
//! **Shared breakers.** Once [`Breakers::share`] is called, every change
//! to a breaker is also kept as an [`Op`] until a synchronizer (the
//! `caio-shared` crate) takes it ([`Breakers::take_pending`]), applies it
//! with the same calculus to the copy all replicas share, and hands the
//! result back ([`Breakers::adopt`]). The breaker a call sees is then the
//! shared one with this replica's newer changes applied on top, so a
//! breaker another replica opened is open here after the next exchange.
//! While the shared copy cannot be reached, each breaker simply goes on as
//! this replica's own; its changes wait (the newest [`MAX_PENDING`]) and
//! are merged when the copy is back.
//!
//! This module must never make a call or reach a network.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use caio_calculus::breaker::{Availability, Breaker, BreakerConfig, Health, Outcome, Refused, State};
use serde::Serialize;

use crate::Clock;

/// Changes of one breaker kept for the synchronizer, at most: beyond, the
/// oldest are dropped (a long outage of the shared copy merges back only
/// its newest outcomes, which are the ones the window would keep).
pub const MAX_PENDING: usize = 1024;

/// A change to a breaker, to apply to the shared copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A call was asked for at `at` while the breaker was not closed (a
    /// closed breaker's admission changes nothing).
    Acquire {
        /// When, in ms since the epoch.
        at: u64,
    },
    /// An admitted call ended at `at`.
    Record {
        /// When, in ms since the epoch.
        at: u64,
        /// How.
        outcome: Outcome,
    },
}

impl Op {
    /// Applies the change with the calculus's transitions.
    pub fn apply(&self, breaker: &mut Breaker) {
        match *self {
            Op::Acquire { at } => {
                let _ = breaker.try_acquire(at);
            }
            Op::Record { at, outcome } => breaker.record(at, outcome),
        }
    }
}

/// What `GET /v1/services/{id}` shows of a breaker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// While open: how long until probes are admitted, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// While half-open: probes admitted and succeeded so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<(usize, usize)>,
    /// How often it has opened since the process started (here, or, for a
    /// shared breaker, on any replica while this one watched).
    pub opened: u64,
}

#[derive(Debug)]
struct Entry {
    breaker: Breaker,
    pending: VecDeque<Op>,
    opened: u64,
}

/// One breaker per service, created closed on first use.
#[derive(Debug)]
pub struct Breakers {
    config: BreakerConfig,
    clock: Clock,
    shared: AtomicBool,
    entries: Mutex<BTreeMap<String, Entry>>,
    recovered: Mutex<Vec<String>>,
}

/// The name of a state, as views and logs show it.
fn state_name(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open { .. } => "open",
        State::HalfOpen { .. } => "half_open",
    }
}

impl Breakers {
    /// Breakers with `config`, on the wall clock.
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers::with_clock(config, Clock::wall())
    }

    /// Breakers with `config`, on `clock`.
    pub fn with_clock(config: BreakerConfig, clock: Clock) -> Breakers {
        Breakers {
            config,
            clock,
            shared: AtomicBool::new(false),
            entries: Mutex::new(BTreeMap::new()),
            recovered: Mutex::new(Vec::new()),
        }
    }

    /// Their settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Milliseconds since the epoch, by the breakers' clock.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Notes a state change of `service`'s breaker; a close (only a
    /// half-open breaker closes) means the service recovered.
    fn changed(&self, service: &str, state: &'static str) -> Option<&'static str> {
        if state == "closed" {
            self.recovered.lock().unwrap_or_else(|p| p.into_inner()).push(service.to_string());
        }
        Some(state)
    }

    /// The services whose breaker closed after its probes since the last
    /// call, here or (adopted) on another replica.
    pub fn take_recovered(&self) -> Vec<String> {
        std::mem::take(&mut *self.recovered.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every breaker that is not closed now, as a decision takes them.
    pub fn health(&self) -> Health {
        let now = self.now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter_map(|(id, entry)| {
                let availability = entry.breaker.availability(now);
                (availability != Availability::Closed).then(|| (id.clone(), availability))
            })
            .collect()
    }

    /// From now on, keeps every change for a synchronizer.
    pub fn share(&self) {
        self.shared.store(true, Ordering::Relaxed);
    }

    fn with<T>(&self, service: &str, f: impl FnOnce(&mut Entry, u64) -> T) -> T {
        let now = self.now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(service.to_string()).or_insert_with(|| Entry {
            breaker: Breaker::new(self.config),
            pending: VecDeque::new(),
            opened: 0,
        });
        f(entry, now)
    }

    fn keep(&self, entry: &mut Entry, op: Op) {
        if self.shared.load(Ordering::Relaxed) {
            if entry.pending.len() == MAX_PENDING {
                entry.pending.pop_front();
            }
            entry.pending.push_back(op);
        }
    }

    /// Asks to call `service` now.
    pub fn acquire(&self, service: &str) -> Result<(), Refused> {
        self.with(service, |entry, now| {
            if entry.breaker.state(now) != State::Closed {
                self.keep(entry, Op::Acquire { at: now });
            }
            entry.breaker.try_acquire(now)
        })
    }

    /// Records how an admitted call to `service` ended; returns the state
    /// name if the call changed it.
    pub fn record(&self, service: &str, outcome: Outcome) -> Option<&'static str> {
        self.with(service, |entry, now| {
            self.keep(entry, Op::Record { at: now, outcome });
            let before = entry.breaker.state(now);
            entry.breaker.record(now, outcome);
            entry.transition(before, now)
        })
        .and_then(|state| self.changed(service, state))
    }

    /// Takes the changes kept since the last call, by service.
    pub fn take_pending(&self) -> Vec<(String, Vec<Op>)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter_mut()
            .filter(|(_, entry)| !entry.pending.is_empty())
            .map(|(id, entry)| (id.clone(), entry.pending.drain(..).collect()))
            .collect()
    }

    /// Gives back changes the synchronizer could not apply, before the ones
    /// kept since.
    pub fn restore_pending(&self, service: &str, ops: Vec<Op>) {
        self.with(service, |entry, _| {
            for op in ops.into_iter().rev() {
                entry.pending.push_front(op);
            }
            // The newest are kept: drop from the front.
            let excess = entry.pending.len().saturating_sub(MAX_PENDING);
            entry.pending.drain(..excess);
        });
    }

    /// Takes the shared copy of `service`'s breaker as this replica's, with
    /// the changes not yet taken applied on top; returns the state name if
    /// that changed the state.
    pub fn adopt(&self, service: &str, shared: &Breaker) -> Option<&'static str> {
        self.with(service, |entry, now| {
            let before = entry.breaker.state(now);
            let mut breaker = shared.clone();
            for op in &entry.pending {
                op.apply(&mut breaker);
            }
            entry.breaker = breaker;
            entry.transition(before, now)
        })
        .and_then(|state| self.changed(service, state))
    }

    /// The breaker of `service` as it is now (closed if it was never used).
    pub fn view(&self, service: &str) -> BreakerView {
        let now = self.now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(service)
            .map_or(BreakerView { state: "closed", retry_in_ms: None, probes: None, opened: 0 }, |entry| {
                entry.view(now)
            })
    }

    /// Every breaker that has been used, by service.
    pub fn views(&self) -> BTreeMap<String, BreakerView> {
        let now = self.now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|(id, entry)| (id.clone(), entry.view(now))).collect()
    }
}

impl Entry {
    /// Counts an opening and names the new state, if the state changed.
    fn transition(&mut self, before: State, now: u64) -> Option<&'static str> {
        let after = self.breaker.state(now);
        if matches!(after, State::Open { .. }) && !matches!(before, State::Open { .. }) {
            self.opened += 1;
        }
        let (before, after) = (state_name(before), state_name(after));
        (after != before).then_some(after)
    }

    fn view(&self, now: u64) -> BreakerView {
        let state = self.breaker.state(now);
        BreakerView {
            state: state_name(state),
            retry_in_ms: match state {
                State::Open { until } => Some(until.saturating_sub(now)),
                _ => None,
            },
            probes: match state {
                State::HalfOpen { admitted, succeeded } => Some((admitted, succeeded)),
                _ => None,
            },
            opened: self.opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: Outcome = Outcome { success: false, duration_ms: 1 };

    #[test]
    fn breakers_open_and_count_openings() {
        let config = BreakerConfig { minimum_calls: 2, open_ms: 60_000, ..BreakerConfig::default() };
        let breakers = Breakers::new(config);
        assert_eq!(breakers.record("a", FAILED), None);
        assert_eq!(breakers.record("a", FAILED), Some("open"));
        assert!(breakers.acquire("a").is_err());
        let view = breakers.view("a");
        assert_eq!((view.state, view.opened), ("open", 1));
        assert!(view.retry_in_ms.unwrap() > 59_000);
        assert_eq!(breakers.view("b").state, "closed");
        assert!(breakers.acquire("b").is_ok());
        assert!(breakers.take_pending().is_empty(), "nothing is kept unless shared");
    }

    #[test]
    fn shared_changes_are_kept_until_taken_and_adoption_applies_the_newer_ones() {
        let config = BreakerConfig { minimum_calls: 2, open_ms: 60_000, ..BreakerConfig::default() };
        let (here, there) = (Breakers::new(config), Breakers::new(config));
        here.share();
        assert!(here.acquire("a").is_ok());
        here.record("a", FAILED);
        let taken = here.take_pending();
        assert_eq!(taken.len(), 1);
        assert!(matches!(taken[0].1[..], [Op::Record { outcome: FAILED, .. }]), "closed admissions are not kept");
        // The other replica's copy with this one's failure applied: one
        // more failure here, not yet taken, opens the adopted breaker.
        let mut shared = Breaker::new(config);
        for op in &taken[0].1 {
            op.apply(&mut shared);
        }
        here.record("a", FAILED);
        assert_eq!(here.view("a").state, "open", "two local failures opened it already");
        assert_eq!(there.adopt("a", &shared), None, "one failure: still closed there");
        assert_eq!(here.adopt("a", &shared), None, "the pending failure keeps it open here");
        here.restore_pending("a", taken[0].1.clone());
        assert_eq!(here.take_pending()[0].1.len(), 2, "restored before the newer change");
    }

    #[test]
    fn pending_changes_are_bounded() {
        let breakers = Breakers::new(BreakerConfig { minimum_calls: usize::MAX, ..BreakerConfig::default() });
        breakers.share();
        for _ in 0..MAX_PENDING + 10 {
            breakers.record("a", FAILED);
        }
        let taken = breakers.take_pending().remove(0).1;
        assert_eq!(taken.len(), MAX_PENDING);
        // Given back while newer changes arrived: the newest stay.
        breakers.record("a", Outcome { success: true, duration_ms: 1 });
        breakers.restore_pending("a", taken);
        let kept = breakers.take_pending().remove(0).1;
        assert_eq!(kept.len(), MAX_PENDING);
        assert!(
            matches!(kept.last(), Some(Op::Record { outcome: Outcome { success: true, .. }, .. })),
            "the newest change survives the bound"
        );
    }
}
