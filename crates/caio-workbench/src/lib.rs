//! The caio workbench: everything `cargo xtask` does, as a library.
//!
//! Notebooks are the source of truth. [`extract`] turns their exported cells
//! into modules of a crate, [`sync`] carries edits made in a generated file
//! back into the notebook, [`clean`] normalizes notebooks so they diff well,
//! and [`runner`] executes notebooks natively (no Jupyter) and writes their
//! outputs back.
//!
//! Design rule: every command first computes its result in memory and
//! writes only when everything succeeded, atomically and only files whose
//! content changes. A failed command leaves the tree as it was. This crate
//! never edits a generated file by hand-made rules: generated files only ever
//! come from rendering notebooks.

pub mod attest;
pub mod clean;
pub mod deps;
pub mod diff;
pub mod docs;
pub mod error;
pub mod extract;
pub mod fsutil;
pub mod fuzz;
pub mod gate;
pub mod git;
pub mod hooks;
pub mod licenses;
pub mod merge;
pub mod mutants;
pub mod pins;
pub mod progress;
pub mod runner;
pub mod rustsrc;
pub mod sbom;
pub mod scaffold;
pub mod scorecard;
pub mod stamp;
pub mod sync;
pub mod verify;
pub mod workspace;

pub use error::{Error, Result};
pub use workspace::Workspace;
