//! Per-caller rate limits: a token bucket for each caller (the token's
//! `sub`), refilled continuously. Buckets live in memory; several replicas
//! share them through Redis (a later backend).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets by caller.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second on average, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate: rate.max(0.0), burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `caller`'s bucket: `Ok` if there was one, else
    /// the seconds until there will be.
    pub fn take(&self, caller: &str) -> Result<(), f64> {
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
            assert_eq!(limiter.take("a"), Ok(()));
        }
        let wait = limiter.take("a").unwrap_err();
        assert!(wait > 0.9 && wait <= 1.0, "{wait}");
        assert_eq!(limiter.take("b"), Ok(()), "callers have buckets of their own");
    }
}
