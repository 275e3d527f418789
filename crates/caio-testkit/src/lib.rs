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
//! fails the test instead.
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

/// A PostgreSQL server for `test`, or `None` (reported) without one.
pub fn postgres(test: &str) -> Option<Postgres> {
    match Postgres::start() {
        Ok(server) => Some(server),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// A headless Chromium for `test`, or `None` (reported) without one.
pub fn chromium(test: &str) -> Option<Chromium> {
    match Chromium::start() {
        Ok(browser) => Some(browser),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// A Redis server for `test`, or `None` (reported) without one.
pub fn redis(test: &str) -> Option<Redis> {
    match Redis::start() {
        Ok(server) => Some(server),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}
