//! The record of the last `cargo xtask validate` that passed, so that a
//! validate with nothing changed answers at once.
//!
//! The fingerprint covers every file of the workspace outside `target/` and
//! `.git/` (path, size and modification time), the workbench binary itself,
//! the Rust toolchain (`rustc -vV`), and what the caller says shapes the
//! outcome (check mode, branch). Any difference, a file touched and
//! restored included, means a full validate. Only a pass is recorded, in
//! `target/caio-validate/passed`; a failure is always recomputed.
//!
//! It never decides anything itself: it only says whether this exact state
//! has passed before.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::Workspace;

/// A fingerprint of the workspace's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 of everything covered, hex.
    pub digest: String,
    /// How many files it covers.
    pub files: usize,
}

fn record(ws: &Workspace) -> PathBuf {
    ws.path("target/caio-validate/passed")
}

/// The fingerprint of the workspace now, for `context` (such as the check
/// mode and the branch).
pub fn fingerprint(ws: &Workspace, context: &str) -> Result<Fingerprint> {
    let mut hasher = Sha256::new();
    hasher.update(context.as_bytes());
    hasher.update(b"\0");
    let identity = |path: &std::path::Path| -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!("{} {}", meta.len(), modified.as_nanos()))
    };
    if let Ok(exe) = std::env::current_exe() {
        hasher.update(identity(&exe).unwrap_or_default().as_bytes());
        hasher.update(b"\0");
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Ok(output) = std::process::Command::new(rustc).arg("-vV").output() {
        hasher.update(&output.stdout);
    }
    let root = ws.root();
    let mut files = 0;
    let walker = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || (e.file_name() != "target" && e.file_name() != ".git"));
    for entry in walker {
        let entry =
            entry.map_err(|e| Error::File { path: ".".into(), message: format!("cannot list the workspace: {e}") })?;
        if entry.file_type().is_file() {
            let rel = ws.rel(entry.path());
            hasher.update(format!("{rel}\0{}\n", identity(entry.path()).unwrap_or_default()).as_bytes());
            files += 1;
        }
    }
    let digest = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Fingerprint { digest, files })
}

/// Whether this state passed validate before.
pub fn passed_before(ws: &Workspace, fingerprint: &Fingerprint) -> bool {
    std::fs::read_to_string(record(ws)).is_ok_and(|text| text.trim() == fingerprint.digest)
}

/// Records that this state passed.
pub fn record_pass(ws: &Workspace, fingerprint: &Fingerprint) -> Result<()> {
    let path = record(ws);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(ws.rel(dir), "create", e))?;
    }
    fsutil::write_atomic(&path, format!("{}\n", fingerprint.digest).as_bytes())
}

/// Forgets the last pass (a failed validate, or `--force`).
pub fn forget(ws: &Workspace) {
    let _ = std::fs::remove_file(record(ws));
}
