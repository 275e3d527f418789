//! `[shared]` of `caio.toml`: which Redis the replicas share, and how
//! often and how patiently they talk to it.

use serde::Deserialize;

/// Settings of the shared state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// The Redis URL (`redis://host:port/db`); none: each replica alone.
    pub redis: Option<String>,
    /// How often the breakers are exchanged with the shared copy, in ms: a
    /// breaker one replica opens is open on the others within about this.
    pub sync_ms: u64,
    /// Longest a Redis command may take before the replica falls back to
    /// its in-memory state, in ms.
    pub timeout_ms: u64,
    /// The prefix of every key caio writes, so that several deployments
    /// can share one Redis.
    pub prefix: String,
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig { redis: None, sync_ms: 100, timeout_ms: 50, prefix: "caio".into() }
    }
}

impl SharedConfig {
    /// One message for the first setting that is out of range.
    pub fn check(&self) -> Result<(), String> {
        if !(10..=60_000).contains(&self.sync_ms) {
            return Err(format!("[shared].sync_ms: {} is out of range; use 10 to 60000", self.sync_ms));
        }
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(format!("[shared].timeout_ms: {} is out of range; use 1 to 10000", self.timeout_ms));
        }
        if self.prefix.is_empty() || self.prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("[shared].prefix: use a non-empty name without spaces, such as \"caio\"".into());
        }
        Ok(())
    }
}
