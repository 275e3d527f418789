//! Repository-wide checks for caio, run by `cargo test --workspace`; the
//! tests are in `repo.rs`. This crate has no code of its own and must never
//! grow any: it exists so that the tidy rules are ordinary tests.
