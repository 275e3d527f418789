//! The evidence side of caio: what verification notebooks use to check an
//! invariant of the calculus and leave an artifact a reviewer can read.
//!
//! - [`invariant`]: the invariant files (`invariants/*.yaml`): claim, lemma,
//!   severity, the notebook that verifies it, and the checks (metric,
//!   operator, threshold) its artifact is judged by.
//! - [`artifact`]: the artifact a notebook writes (`artifacts/<ID>.json`):
//!   finite metrics, evidence, seed, case counts, and the inputs digest the
//!   runner hands over, written atomically.
//! - [`stats`]: confidence bounds on failure rates and percentiles (statrs).
//! - [`cases`]: reproducible generated cases from proptest strategies.
//!
//! Design rule: thresholds never live here or in notebooks. A notebook
//! measures; the invariant file judges; the scorecard applies the judgement.
//! This crate never decides whether an invariant holds.

pub mod artifact;
pub mod cases;
pub mod invariant;
pub mod stats;

pub use artifact::{Artifact, ArtifactError};
pub use invariant::{Check, Invariant, Op, Severity};
