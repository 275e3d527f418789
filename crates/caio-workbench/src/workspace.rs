//! The layout of a caio workspace: where notebooks and crates are, and how
//! paths are shown (relative to the root, with `/`, so that messages and
//! generated files are the same on every machine).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use caio_notebook::Notebook;

use crate::error::{Error, Result};

/// A caio workspace rooted at a directory holding `notebooks/` and `crates/`.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

/// A notebook found in the workspace.
#[derive(Debug, Clone)]
pub struct NotebookFile {
    /// Path relative to the root, with `/` separators.
    pub rel: String,
    /// Absolute path.
    pub path: PathBuf,
}

impl NotebookFile {
    /// A notebook by its root-relative path.
    pub fn at(ws: &Workspace, rel: &str) -> NotebookFile {
        NotebookFile { rel: rel.to_owned(), path: ws.path(rel) }
    }

    /// Whether it is a verification notebook (under `notebooks/verify/`):
    /// `verify` runs it with the digest of its inputs, and its evidence is
    /// what the scorecard judges.
    pub fn is_verification(&self) -> bool {
        self.rel.starts_with("notebooks/verify/")
    }

    /// Loads and parses the notebook; errors name the root-relative path.
    pub fn load(&self) -> Result<Notebook> {
        Notebook::load(&self.path).map_err(|e| rename_path(e, &self.rel))
    }
}

/// Errors from caio-notebook name the absolute path; show the relative one.
fn rename_path(error: caio_notebook::NotebookError, rel: &str) -> Error {
    use caio_notebook::NotebookError::*;
    match error {
        Read { source, .. } => Error::io(rel, "read the notebook", source),
        Invalid { problem, .. } => Error::File { path: rel.to_owned(), message: problem.to_string() },
    }
}

impl Workspace {
    /// A workspace rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace { root: root.into() }
    }

    /// The caio workspace that holds `start`, found as cargo finds its
    /// workspace: the nearest directory, `start` or above, whose
    /// `Cargo.toml` declares a `[workspace]` whose members include `xtask`.
    /// Never a path fixed when xtask was compiled: one xtask binary may
    /// serve several clones that share a target directory.
    pub fn discover(start: &Path) -> Result<Workspace> {
        for dir in start.ancestors() {
            if workspace_members(dir).is_some_and(|members| members.iter().any(|m| m == "xtask")) {
                return Ok(Workspace::new(dir));
            }
        }
        Err(Error::File {
            path: start.display().to_string(),
            message: "not inside a caio workspace: no Cargo.toml here or above declares a [workspace] with the member `xtask`; run from inside a caio checkout or pass --workspace DIR".into(),
        })
    }

    /// The workspace rooted at `dir`, which must exist and hold a
    /// `Cargo.toml` declaring a `[workspace]` and a `notebooks/` directory.
    pub fn open(dir: &Path) -> Result<Workspace> {
        if workspace_members(dir).is_none() || !dir.join("notebooks").is_dir() {
            return Err(Error::File {
                path: dir.display().to_string(),
                message:
                    "not a caio workspace: it needs a Cargo.toml declaring a [workspace] and a notebooks/ directory"
                        .into(),
            });
        }
        Ok(Workspace::new(dir))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An absolute path for a root-relative one.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A root-relative display form of `path`.
    pub fn rel(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
    }

    /// Every notebook under `notebooks/`, sorted, skipping Jupyter's
    /// `.ipynb_checkpoints`.
    pub fn notebooks(&self) -> Result<Vec<NotebookFile>> {
        let dir = self.root.join("notebooks");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let walker = walkdir::WalkDir::new(&dir)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.file_name() != ".ipynb_checkpoints");
        for entry in walker {
            let entry = entry
                .map_err(|e| Error::File { path: self.rel(&dir), message: format!("cannot list notebooks: {e}") })?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|x| x == "ipynb") {
                found.push(NotebookFile { rel: self.rel(entry.path()), path: entry.path().to_owned() });
            }
        }
        Ok(found)
    }

    /// Resolves notebook arguments given on the command line (paths
    /// relative to the current directory or to the root).
    pub fn notebook_args(&self, args: &[PathBuf]) -> Result<Vec<NotebookFile>> {
        args.iter()
            .map(|arg| {
                let path = if arg.is_absolute() || arg.exists() { arg.clone() } else { self.root.join(arg) };
                let path = path.canonicalize().map_err(|e| Error::io(arg.display(), "find the notebook", e))?;
                let root = self.root.canonicalize().map_err(|e| Error::io(self.root.display(), "resolve", e))?;
                let rel = path
                    .strip_prefix(&root)
                    .map(|p| self.rel(&self.root.join(p)))
                    .unwrap_or_else(|_| path.display().to_string());
                Ok(NotebookFile { rel, path })
            })
            .collect()
    }

    /// The library crates under `crates/`, by the name Rust code uses for
    /// them (`caio_calculus`), with their root-relative directories.
    pub fn crates(&self) -> Result<BTreeMap<String, String>> {
        let dir = self.root.join("crates");
        let mut crates = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(crates) };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            let rel = self.rel(&manifest);
            let text = crate::fsutil::read(&manifest)?;
            let value: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::File { path: rel.clone(), message: format!("invalid TOML: {e}") })?;
            let package = value.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
            let lib = value.get("lib").and_then(|l| l.get("name")).and_then(|n| n.as_str());
            if let Some(name) = lib.or(package) {
                crates.insert(name.replace('-', "_"), self.rel(&entry.path()));
            }
        }
        Ok(crates)
    }
}

/// The members of the `[workspace]` that `dir/Cargo.toml` declares, or
/// `None` when there is no such manifest or table.
fn workspace_members(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let manifest: toml::Table = toml::from_str(&text).ok()?;
    let workspace = manifest.get("workspace")?.as_table()?;
    let members = workspace.get("members").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    Some(members.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
}
