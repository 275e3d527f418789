//! The gateway's clock: milliseconds since the epoch, read by the breakers
//! and the observed record. The wall clock in a deployment; tests inject
//! their own so that no assertion depends on the machine's speed.
//!
//! This module must never sleep or schedule: it only tells the time.

use std::sync::Arc;

/// A millisecond clock, cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The wall clock: replicas that share breakers must agree on times.
    pub fn wall() -> Clock {
        Clock(Arc::new(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
        }))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({} ms)", self.now_ms())
    }
}
