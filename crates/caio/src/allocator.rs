//! The allocator's settings for a server. mimalloc keeps memory a burst of
//! large bodies freed until its threads next allocate, and takes address
//! space in large committed arenas; for a server that idles between bursts
//! that reads as the peak's resident memory long after the load. Returning
//! freed pages at once (`MIMALLOC_PURGE_DELAY=0`) and committing arenas as
//! they are used (`MIMALLOC_ARENA_EAGER_COMMIT=0`) cut the peak of 100
//! concurrent 1 MB calls by a fifth and bring memory back near idle after
//! it, at no measured cost in throughput (docs/limits.md).
//!
//! mimalloc reads its options from the environment as the process starts,
//! before `main`; setting them from Rust would take unsafe code. So `caio
//! serve` starts itself again, in the same process (`exec`), with the
//! options set.
//!
//! This module must never override a setting the operator made: an option
//! already in the environment is kept as it is.

use std::os::unix::process::CommandExt;

/// The options `caio serve` runs with unless the environment says otherwise.
const SERVER_OPTIONS: [(&str, &str); 2] = [("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

/// Replaces this process with itself under the server's allocator options,
/// when one is missing from the environment; returns only when that is not
/// needed or cannot be done (then the server runs with the defaults).
pub fn run_with_server_options() {
    let missing: Vec<(&str, &str)> =
        SERVER_OPTIONS.into_iter().filter(|(name, _)| std::env::var_os(name).is_none()).collect();
    if missing.is_empty() {
        return;
    }
    let Ok(executable) = std::env::current_exe() else { return };
    let error = std::process::Command::new(executable).args(std::env::args_os().skip(1)).envs(missing).exec();
    eprintln!("warning: cannot restart with the server's allocator settings ({error}); running with the defaults");
}
