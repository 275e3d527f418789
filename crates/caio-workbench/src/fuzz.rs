//! `cargo xtask fuzz --minutes N`: the fuzz tests of the notebook reader,
//! the directive parser, contract, request and policy files and tokens
//! (`crates/caio-notebook/tests/fuzz.rs`, `crates/caio-calculus/tests/fuzz.rs`),
//! run round after round with a new seed and many more cases than
//! `cargo test` runs, until the time is up. A failing case is kept by
//! proptest in `tests/fixtures/fuzz/` and replayed first by every later run,
//! `cargo test` included: commit it with the fix. This module only runs
//! cargo; it never judges the cases itself.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// How many generated cases one round gives each fuzz property.
pub const CASES_PER_ROUND: u32 = 5_000;
/// Fuzz properties per round (one proptest runner each): three in
/// caio-notebook, seven in caio-calculus.
pub const PROPERTIES: u64 = 10;

/// One round's result.
#[derive(Debug, Clone)]
pub struct Round {
    /// The seed of the round.
    pub seed: u64,
    /// Cases generated, over every property.
    pub cases: u64,
    /// How long it took, build included on the first round.
    pub elapsed: Duration,
}

/// Runs rounds until `budget` is spent (at least one round); `each` sees
/// every round as it ends. Stops at the first failing round.
pub fn run(ws: &Workspace, budget: Duration, mut each: impl FnMut(&Round)) -> Result<Vec<Round>> {
    let started = Instant::now();
    let mut rounds = Vec::new();
    let mut seed = 1u64;
    loop {
        let round_started = Instant::now();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["test", "--release", "--quiet", "-p", "caio-notebook", "-p", "caio-calculus", "--test", "fuzz"])
            .env("CAIO_FUZZ_CASES", CASES_PER_ROUND.to_string())
            .env("CAIO_FUZZ_SEED", seed.to_string())
            .current_dir(ws.root())
            .output()
            .map_err(|e| Error::io("cargo", "start", e))?;
        if !output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let failures: Vec<&str> = stdout
                .lines()
                .filter(|l| l.contains("panicked") || l.contains("minimal failing input"))
                .take(10)
                .collect();
            return Err(Error::File {
                path: "tests/fixtures/fuzz".into(),
                message: format!(
                    "round {seed} found a failing case; proptest kept it here and every later run (cargo test too) replays it first. Fix the code and commit the case:\n{}\n{}",
                    failures.join("\n"),
                    String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join("\n")
                ),
            });
        }
        let round = Round { seed, cases: u64::from(CASES_PER_ROUND) * PROPERTIES, elapsed: round_started.elapsed() };
        each(&round);
        rounds.push(round);
        if started.elapsed() >= budget {
            return Ok(rounds);
        }
        seed += 1;
    }
}
