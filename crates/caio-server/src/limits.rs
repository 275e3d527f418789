//! Per-caller rate limits: a token bucket for each caller (the token's
//! `sub`), refilled continuously. With shared state (`[shared]`), the
//! buckets are in Redis and hold across replicas; without it, or while
//! Redis is away, they live in this process's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use caio_shared::Shared;

/// Token buckets by caller.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    shared: Option<Shared>,
}

impl RateLimiter {
    /// `rate` requests per second on average, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate: rate.max(0.0), burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()), shared: None }
    }

    /// The same, with the buckets in `shared` while it answers.
    pub fn shared(self, shared: Option<Shared>) -> RateLimiter {
        RateLimiter { shared, ..self }
    }

    /// Takes one request from `caller`'s bucket: `Ok` if there was one, else
    /// the seconds until there will be.
    pub async fn take(&self, caller: &str) -> Result<(), f64> {
        if let Some(shared) = &self.shared
            && let Some(outcome) = shared.take(caller, self.rate, self.burst).await
        {
            return outcome;
        }
        self.take_here(caller)
    }

    /// Takes one request from `caller`'s bucket in this process's memory.
    pub fn take_here(&self, caller: &str) -> Result<(), f64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: forget them.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(caller.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err((1.0 - *tokens) / self.rate)
        } else {
            Err(f64::INFINITY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let limiter = RateLimiter::new(1.0, 3.0);
        for _ in 0..3 {
            assert_eq!(limiter.take_here("a"), Ok(()));
        }
        let wait = limiter.take_here("a").unwrap_err();
        assert!(wait > 0.9 && wait <= 1.0, "{wait}");
        assert_eq!(limiter.take_here("b"), Ok(()), "callers have buckets of their own");
    }
}
