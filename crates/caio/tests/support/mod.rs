//! What the `caio` command's tests share: the repository's root and the
//! built binary, run there.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the built `caio` with `args` in the repository's root.
pub fn caio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caio")).args(args).current_dir(root()).output().unwrap()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
