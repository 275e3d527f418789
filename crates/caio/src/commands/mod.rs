//! One module per subcommand.

pub mod contracts;
pub mod health;
pub mod route;
pub mod serve;
pub mod token;
pub mod trace;
pub mod transparency;

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
