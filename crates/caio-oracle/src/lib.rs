//! # caio-oracle: the calculus, naively, from its specification
//!
//! Verification notebooks must not judge the calculus with its own functions:
//! a bug in `check_match` would then be judged by `check_match` and pass. This
//! crate is a second, deliberately naive implementation of the specification
//! in `docs/calculus.md`, written apart from `caio-calculus`, that the
//! notebooks compare the calculus against:
//!
//! - [`reference`]: brute force over every service: matching, rules (the CEL
//!   predicates evaluated directly by the `cel` interpreter), security,
//!   constraints and the order-independent tie-break; it says why each
//!   service is excluded and which one is best.
//! - [`score`]: the score with plain loops, and the spectral terms by a direct
//!   DFT and Parseval's identity instead of nalgebra and an FFT.
//! - [`evidence`]: re-checks the facts of a proof from their raw values.
//! - [`compose`]: guarantee composition with union-bound percentiles.
//! - [`plan`]: plans by enumerating every combination, and fallbacks priced
//!   with what was spent.
//! - [`trace`]: the hash chain, with its own canonical encoder.
//! - [`merkle`]: the log's Merkle tree level by level.
//! - [`breaker`]: an explicit table of breaker states and events, run in
//!   lockstep with the real breaker.
//!
//! What it must never do: call a decision function of `caio-calculus`
//! (matching, rules, security, score, proof, route, breaker logic). It uses
//! the calculus's types as data only; `tests/repo.rs` checks its imports. It
//! is slow on purpose: clarity over speed, it judges, it does not route.

pub mod breaker;
pub mod compose;
pub mod evidence;
pub mod merkle;
pub mod plan;
pub mod reference;
pub mod score;
pub mod trace;
