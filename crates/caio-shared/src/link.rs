//! The connection to Redis and what is known of its health: connected or
//! fallen back, how often, and when the last exchange succeeded. Commands
//! are sent only while connected, so that a replica whose Redis is away
//! pays no timeout per request; the background task reconnects.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::SharedConfig;

/// What `/readyz` and `/metrics` show of the shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedStatus {
    /// `redis`.
    pub backend: &'static str,
    /// Where, without a password.
    pub location: String,
    /// Whether the replica shares its state now; `false`: it serves on its
    /// in-memory breakers and buckets.
    pub connected: bool,
    /// How often it fell back to the in-memory state.
    pub fallbacks: u64,
    /// How long ago the breakers were last exchanged, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exchange_ms: Option<u64>,
}

pub(crate) struct Link {
    client: redis::Client,
    location: String,
    prefix: String,
    timeout: Duration,
    sync_every: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    connected: AtomicBool,
    /// Whether the fall back of the current outage was logged already.
    logged: AtomicBool,
    fallbacks: AtomicU64,
    last_exchange: Mutex<Option<Instant>>,
}

/// The URL without its password.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl Link {
    pub(crate) fn new(url: &str, config: &SharedConfig) -> Result<Link, String> {
        let location = redacted(url);
        let client = redis::Client::open(url)
            .map_err(|e| format!("[shared].redis: `{location}`: {e}; write it as redis://host:port/"))?;
        Ok(Link {
            client,
            location,
            prefix: config.prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            sync_every: Duration::from_millis(config.sync_ms),
            connection: Mutex::new(None),
            connected: AtomicBool::new(false),
            logged: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            last_exchange: Mutex::new(None),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn sync_every(&self) -> Duration {
        self.sync_every
    }

    /// The connection, while connected.
    pub(crate) fn connection(&self) -> Option<MultiplexedConnection> {
        if !self.connected.load(Ordering::Relaxed) {
            return None;
        }
        self.connection.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Connects if it is not connected; whether it is now.
    pub(crate) async fn ensure(&self) -> bool {
        if self.connected.load(Ordering::Relaxed) {
            return true;
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.timeout));
        match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(connection) => {
                *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection);
                self.connected.store(true, Ordering::Relaxed);
                let again = self.logged.swap(false, Ordering::Relaxed);
                tracing::info!(
                    target: "caio",
                    redis = %self.location,
                    "{}",
                    if again {
                        "Redis is reachable again: merging the breakers and sharing the rate limits"
                    } else {
                        "sharing breakers and rate limits through Redis"
                    }
                );
                true
            }
            Err(e) => {
                self.fall_back(&e);
                false
            }
        }
    }

    /// Falls back to the in-memory state after `error`; logged once per
    /// outage.
    pub(crate) fn fall_back(&self, error: &redis::RedisError) {
        let was_connected = self.connected.swap(false, Ordering::Relaxed);
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if was_connected || !self.logged.load(Ordering::Relaxed) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "caio",
                redis = %self.location,
                error = %error,
                "Redis is unreachable: serving on in-memory breakers and rate limits until it is back"
            );
        }
    }

    /// Notes how an exchange went.
    pub(crate) fn report(&self, outcome: Result<(), redis::RedisError>) {
        match outcome {
            Ok(()) => *self.last_exchange.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now()),
            Err(e) => self.fall_back(&e),
        }
    }

    pub(crate) fn status(&self) -> SharedStatus {
        SharedStatus {
            backend: "redis",
            location: self.location.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            last_exchange_ms: self
                .last_exchange
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map(|at| at.elapsed().as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(super::redacted("redis://:s3cret@cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(super::redacted("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
