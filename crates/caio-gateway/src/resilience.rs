//! Failures and retries: what went wrong with one try (the service's own
//! refusals keep their meaning: a context too long, a content filter),
//! which failures are worth another try on the same service, and how long
//! to wait before it (exponential backoff with full jitter, or the server's
//! `Retry-After`). The breakers are in [`crate::breakers`].
//!
//! This module must never make a call: the executor does, and reports here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often and how patiently a failing call is retried on one service
/// before the executor falls back to the next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries on the same service after the first try (0: fall back at once).
    pub retries: u32,
    /// The ceiling of the first backoff, in ms; it doubles with each retry
    /// (the wait is drawn uniformly below it: full jitter).
    pub base_backoff_ms: u64,
    /// The longest backoff, in ms.
    pub max_backoff_ms: u64,
    /// The longest `Retry-After` honoured, in ms; a server asking for more
    /// is skipped for the next service instead.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 2, base_backoff_ms: 500, max_backoff_ms: 8_000, max_retry_after_ms: 5_000 }
    }
}

/// What went wrong with one try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// No connection could be made.
    Connect,
    /// No complete answer within the contract's timeout.
    Timeout,
    /// No first chunk of a stream within the contract's `first_token_ms`.
    FirstToken,
    /// The server asked to slow down (429), maybe saying for how long.
    RateLimited {
        /// Its `Retry-After`, in ms.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The server failed (5xx).
    Server {
        /// The status.
        status: u16,
    },
    /// The input is longer than the service's context (400
    /// `context_length_exceeded`): only a service that takes longer inputs
    /// may serve it.
    ContextLength {
        /// The status.
        status: u16,
    },
    /// The service's content filter refused the request: never retried,
    /// never sent elsewhere.
    ContentFilter {
        /// The status.
        status: u16,
    },
    /// The server refused the request's content (400, 413, 422): another
    /// service would likely refuse it too.
    Rejected {
        /// The status.
        status: u16,
    },
    /// The server refused the call for reasons of its own (401, 403, 404
    /// and other 4xx): a wrong key, path or model name, so the service is
    /// unusable as configured.
    Misconfigured {
        /// The status.
        status: u16,
    },
    /// The answer was not what the adapter expects.
    Malformed,
    /// The connection broke before an answer (a reset before any byte).
    Transport,
    /// The stream ended or broke before the server said it was finished.
    Cut,
    /// The stream went silent longer than the contract's `stream_gap_ms`.
    Stalled,
    /// The destination, or a redirect, is not on the egress allowlist.
    Egress,
    /// The environment variable the contract names for the key is not set.
    Credentials,
}

impl Failure {
    /// Whether another try on the same service may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Failure::Connect | Failure::RateLimited { .. } | Failure::Server { .. } | Failure::Transport)
    }
    /// Whether the service is to blame (the breaker counts it): a refused
    /// request is the caller's problem, not the service's health, and a
    /// call never made (no key) says nothing of it. A redirect off the
    /// allowlist does count: the service sent it.
    pub fn counts_against_service(&self) -> bool {
        !matches!(
            self,
            Failure::Rejected { .. }
                | Failure::ContextLength { .. }
                | Failure::ContentFilter { .. }
                | Failure::Credentials
        )
    }
    /// Whether falling back to another service makes sense (a context too
    /// long falls back only to a service that takes longer inputs, which
    /// the executor decides).
    pub fn falls_back(&self) -> bool {
        !matches!(self, Failure::Rejected { .. } | Failure::ContentFilter { .. })
    }

    /// What a refusal of the request's content (400, 413, 422) means, read
    /// from the service's error body: OpenAI's `error.code` and `type`, or
    /// the words servers such as vLLM and llama.cpp use.
    pub fn refusal(status: u16, body: Option<&serde_json::Value>) -> Failure {
        let error = body.and_then(|b| b.get("error"));
        let field = |name: &str| {
            error.and_then(|e| e.get(name)).and_then(serde_json::Value::as_str).unwrap_or_default().to_lowercase()
        };
        let (code, kind, message) = (field("code"), field("type"), field("message"));
        let said = |words: &[&str]| words.iter().any(|w| code.contains(w) || kind.contains(w) || message.contains(w));
        if said(&["context_length", "context length", "maximum context", "too many tokens", "exceeds the context"]) {
            Failure::ContextLength { status }
        } else if said(&["content_filter", "content_policy", "content management policy", "responsibleai"]) {
            Failure::ContentFilter { status }
        } else {
            Failure::Rejected { status }
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::FirstToken => f.write_str("first_token_timeout"),
            Failure::RateLimited { .. } => f.write_str("rate_limited"),
            Failure::Server { status } => write!(f, "server_{status}"),
            Failure::ContextLength { .. } => f.write_str("context_length_exceeded"),
            Failure::ContentFilter { .. } => f.write_str("content_filter"),
            Failure::Rejected { status } => write!(f, "rejected_{status}"),
            Failure::Misconfigured { status } => write!(f, "misconfigured_{status}"),
            Failure::Malformed => f.write_str("malformed"),
            Failure::Transport => f.write_str("transport"),
            Failure::Cut => f.write_str("cut"),
            Failure::Stalled => f.write_str("stalled"),
            Failure::Egress => f.write_str("egress_refused"),
            Failure::Credentials => f.write_str("credentials_missing"),
        }
    }
}

/// Parses `Retry-After` as seconds (the HTTP-date form is not used by model
/// servers and is ignored).
pub fn retry_after_ms(value: Option<&str>) -> Option<u64> {
    let seconds: f64 = value?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// A small, fast source of jitter (SplitMix64): jitter needs to spread
/// retries, not to be unpredictable.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    /// Seeded from the clock, so replicas do not retry in step.
    pub fn from_clock() -> Jitter {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Jitter(AtomicU64::new(seed))
    }
    /// A number in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (1 for the first) after
    /// `failure`, or `None` if it is not worth retrying on this service.
    pub fn backoff(&self, retry: u32, failure: &Failure, jitter: &Jitter) -> Option<Duration> {
        if retry > self.retries || !failure.retryable() {
            return None;
        }
        // A reset before any byte is tried once more: twice is the
        // service's state, not chance.
        if *failure == Failure::Transport && retry > 1 {
            return None;
        }
        if let Failure::RateLimited { retry_after_ms: Some(wait) } = failure {
            return (*wait <= self.max_retry_after_ms).then(|| Duration::from_millis(*wait));
        }
        // Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1))].
        let ceiling = self.base_backoff_ms.saturating_mul(1u64 << (retry - 1).min(30)).min(self.max_backoff_ms);
        Some(Duration::from_millis((ceiling as f64 * jitter.unit()) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        let policy = RetryPolicy::default();
        let jitter = Jitter(AtomicU64::new(7));
        for failure in
            [Failure::Connect, Failure::Server { status: 503 }, Failure::RateLimited { retry_after_ms: None }]
        {
            assert!(policy.backoff(1, &failure, &jitter).is_some(), "{failure} is retried");
            assert!(policy.backoff(3, &failure, &jitter).is_none(), "{failure}: two retries at most");
        }
        assert!(policy.backoff(1, &Failure::Transport, &jitter).is_some(), "a reset is retried once");
        assert!(policy.backoff(2, &Failure::Transport, &jitter).is_none(), "and only once");
        for failure in [
            Failure::Timeout,
            Failure::FirstToken,
            Failure::Rejected { status: 400 },
            Failure::ContextLength { status: 400 },
            Failure::ContentFilter { status: 400 },
            Failure::Malformed,
            Failure::Cut,
            Failure::Stalled,
        ] {
            assert!(policy.backoff(1, &failure, &jitter).is_none(), "{failure} is not retried on the same service");
        }
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_ceiling() {
        let policy =
            RetryPolicy { retries: 10, base_backoff_ms: 100, max_backoff_ms: 1_000, max_retry_after_ms: 5_000 };
        let jitter = Jitter(AtomicU64::new(42));
        let waits: Vec<u64> =
            (0..200).map(|_| policy.backoff(2, &Failure::Connect, &jitter).unwrap().as_millis() as u64).collect();
        assert!(waits.iter().all(|w| *w < 200), "the second retry waits below 2 x base");
        assert!(waits.iter().any(|w| *w < 50) && waits.iter().any(|w| *w > 150), "the waits spread: {waits:?}");
        assert!(policy.backoff(9, &Failure::Connect, &jitter).unwrap() < Duration::from_millis(1_000), "capped");
    }

    #[test]
    fn refusals_keep_the_providers_meaning() {
        use serde_json::json;
        let openai = json!({"error": {"message": "This model's maximum context length is 4096 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}});
        assert_eq!(Failure::refusal(400, Some(&openai)), Failure::ContextLength { status: 400 });
        let vllm = json!({"error": {"object": "error", "message": "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens", "type": "BadRequestError", "code": 400}});
        assert_eq!(Failure::refusal(400, Some(&vllm)), Failure::ContextLength { status: 400 });
        let azure = json!({"error": {"message": "The response was filtered", "code": "content_filter", "status": 400}});
        assert_eq!(Failure::refusal(400, Some(&azure)), Failure::ContentFilter { status: 400 });
        assert_eq!(Failure::refusal(422, Some(&json!({"error": "bad"}))), Failure::Rejected { status: 422 });
        assert_eq!(Failure::refusal(400, None), Failure::Rejected { status: 400 });
        assert!(!Failure::ContentFilter { status: 400 }.falls_back());
        assert!(Failure::ContextLength { status: 400 }.falls_back());
        assert!(!Failure::ContextLength { status: 400 }.counts_against_service());
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_limit() {
        let policy = RetryPolicy::default();
        let jitter = Jitter(AtomicU64::new(1));
        let limited = |s: &str| Failure::RateLimited { retry_after_ms: retry_after_ms(Some(s)) };
        assert_eq!(policy.backoff(1, &limited("1"), &jitter), Some(Duration::from_millis(1_000)));
        assert_eq!(policy.backoff(1, &limited("0.25"), &jitter), Some(Duration::from_millis(250)));
        assert_eq!(policy.backoff(1, &limited("60"), &jitter), None, "too long: fall back instead");
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after_ms(Some("-1")), None);
    }
}
