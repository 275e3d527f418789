//! `cargo xtask merge-driver`: git's merge of notebooks and of the files
//! the workbench generates.
//!
//! git calls it with the base, ours and theirs of one path (`%O %A %B %P`)
//! and takes what it leaves in ours as the result; exit 0 means merged,
//! anything else a conflict. Notebooks merge cell by cell ([`notebook`]),
//! always into a valid notebook. Generated files (crate modules, artifacts,
//! `scorecard.json`) are never merged as text: the driver keeps ours,
//! reports a conflict and names the command that regenerates the file from
//! the merged notebooks. `cargo xtask hooks install` registers both drivers.
//!
//! It never writes anything but the ours file git handed it, and that
//! atomically.

pub mod lines;
pub mod notebook;

use std::path::Path;

use caio_notebook::Notebook;

use crate::error::{Error, Result};
use crate::fsutil;

/// The three versions git hands a merge driver, and the path they are of.
#[derive(Debug, Clone, Copy)]
pub struct Versions<'a> {
    /// The common ancestor (`%O`; empty when there is none).
    pub base: &'a Path,
    /// Ours (`%A`): read, then overwritten with the result.
    pub ours: &'a Path,
    /// Theirs (`%B`).
    pub theirs: &'a Path,
    /// The path in the repository (`%P`), for messages.
    pub path: &'a str,
}

/// What the driver did with one path.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each conflict, for the person resolving it; empty when merged.
    pub conflicts: Vec<String>,
    /// What to run after the merge, if anything.
    pub then: Option<String>,
}

impl Report {
    /// Whether git should see a clean merge.
    pub fn merged(&self) -> bool {
        self.conflicts.is_empty()
    }
}

fn load(file: &Path, side: &str, path: &str) -> Result<Notebook> {
    let text = fsutil::read(file)?;
    if side == "base" && text.trim().is_empty() {
        // Added on both sides: there is no ancestor.
        return Ok(Notebook {
            cells: Vec::new(),
            metadata: Default::default(),
            nbformat: 4,
            nbformat_minor: 5,
            extra: Default::default(),
        });
    }
    Notebook::parse(&text).map_err(|problem| Error::File {
        path: path.to_owned(),
        message: format!(
            "{side} is not a valid notebook ({problem}); nothing was merged: resolve it by hand, e.g. `git checkout --ours {path}` or `--theirs`"
        ),
    })
}

/// Merges a notebook cell by cell and writes the result over ours.
pub fn notebook(versions: Versions<'_>) -> Result<Report> {
    let base = load(versions.base, "base", versions.path)?;
    let ours = load(versions.ours, "ours", versions.path)?;
    let theirs = load(versions.theirs, "theirs", versions.path)?;
    let outcome = notebook::merge(&base, &ours, &theirs);
    fsutil::write_atomic(versions.ours, outcome.notebook.to_json().as_bytes())?;
    let then = outcome.rerun.then(|| {
        format!(
            "its code now combines both sides, so its outputs are stale: run `cargo xtask run {}` (then `cargo xtask extract`)",
            versions.path
        )
    });
    Ok(Report { conflicts: outcome.conflicts, then })
}

/// The command that writes a generated file, by where it lives.
pub fn regenerating_command(path: &str) -> &'static str {
    if path.starts_with("artifacts/") || path.contains("/artifacts/") {
        "cargo xtask verify"
    } else if path == "scorecard.json" || path.ends_with("/scorecard.json") {
        "cargo xtask scorecard"
    } else {
        "cargo xtask extract"
    }
}

/// A generated file changed on both sides: keep ours untouched and report
/// a conflict that names the command to regenerate it, since a textual
/// merge of generated code or evidence is never what the notebooks say.
pub fn generated(versions: Versions<'_>) -> Report {
    let command = regenerating_command(versions.path);
    Report {
        conflicts: vec![format!(
            "generated, so not merged as text; ours is left in place: once the notebooks are merged, run `{command}` and `git add {}`",
            versions.path
        )],
        then: None,
    }
}
