//! # caio-testkit
//!
//! Real servers for caio's tests and benchmarks: a PostgreSQL cluster made
//! by `initdb` in a temporary directory and a `redis-server`, each on a free
//! loopback port, and a headless Chromium driven over the DevTools protocol,
//! all stopped and deleted when dropped. The binaries come from the
//! distribution's packages (`postgresql`, `redis-server`, `chromium`);
//! `.ci/run` installs them.
//!
//! Without the binaries a test is skipped, and says so on the terminal
//! (written past the test harness's output capture), so a skip is never a
//! silent pass; with `CAIO_REQUIRE_ENGINES=1` (as in CI) a missing binary
//! fails the test instead. An installed server that does not start is
//! never a skip: the test fails, with the server's log.
//!
//! This crate must never be a dependency of what caio ships: it is for
//! `[dev-dependencies]` only, and it never imitates a server.

mod chromium;
mod postgres;
mod process;
mod redis;

use std::io::Write;

pub use crate::chromium::Chromium;
pub use crate::postgres::Postgres;
pub use crate::redis::Redis;

/// Whether a missing server must fail the test (`CAIO_REQUIRE_ENGINES=1`).
pub fn required() -> bool {
    std::env::var("CAIO_REQUIRE_ENGINES").is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run because `why`: a line on the terminal
/// when servers are optional, a panic when they are required.
pub fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: {why} (CAIO_REQUIRE_ENGINES=1 requires the server)");
    // Straight to the process's stderr: the harness captures `eprintln!`,
    // and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// `start()`'s server when `installed`; a skip (reported) when it is not.
fn started<T>(test: &str, what: &str, installed: bool, start: impl FnOnce() -> Result<T, String>) -> Option<T> {
    if !installed {
        skip(test, &format!("{what} is not installed (Debian: see .ci/run for the packages)"));
        return None;
    }
    match start() {
        Ok(server) => Some(server),
        Err(why) => panic!("{test}: {what} is installed but did not start: {why}"),
    }
}

/// A PostgreSQL server for `test`, or `None` (reported) without one.
pub fn postgres(test: &str) -> Option<Postgres> {
    started(test, "PostgreSQL", Postgres::installed(), Postgres::start)
}

/// A headless Chromium for `test`, or `None` (reported) without one.
pub fn chromium(test: &str) -> Option<Chromium> {
    started(test, "Chromium", Chromium::installed(), Chromium::start)
}

/// A Redis server for `test`, or `None` (reported) without one.
pub fn redis(test: &str) -> Option<Redis> {
    started(test, "Redis", Redis::installed(), Redis::start)
}
