//! `cargo xtask hooks install|uninstall`: git hooks that keep the promises
//! before work leaves the machine. pre-commit runs the fast checks
//! on what is staged (`cargo xtask check --staged`), since that is what
//! the commit will hold; pre-push runs `cargo xtask validate`.
//!
//! Installing twice is harmless. A hook that caio did not write is never
//! overwritten silently: install refuses and says how to proceed
//! (`--force` keeps the old hook as `<name>.orig`). Uninstall removes only
//! caio's hooks.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::Workspace;

/// The line that marks a hook as caio's.
const MARK: &str = "# installed by `cargo xtask hooks install`";

fn script(command: &str) -> String {
    format!("#!/bin/sh\n{MARK}; remove with `cargo xtask hooks uninstall`.\nexec cargo xtask {command}\n")
}

/// (hook name, its script)
fn hooks() -> [(&'static str, String); 2] {
    [("pre-commit", script("check --staged")), ("pre-push", script("validate"))]
}

fn hooks_dir(ws: &Workspace) -> Result<PathBuf> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .current_dir(ws.root())
        .output()
        .map_err(|e| Error::io(".", "run git for", e))?;
    if !output.status.success() {
        return Err(Error::File { path: ".".into(), message: "not a git checkout: hooks need one".into() });
    }
    Ok(ws.root().join(String::from_utf8_lossy(&output.stdout).trim()))
}

/// A copy of what is staged for the next commit (git's index), written by
/// `git checkout-index` under `target/caio-staged/`, so that pre-commit
/// judges what the commit will hold rather than the working tree (a
/// notebook staged without its regenerated file is drift in the commit,
/// even if the working tree has the file).
pub fn staged_copy(ws: &Workspace) -> Result<Workspace> {
    let git = |args: &[&str]| -> Result<String> {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(ws.root())
            .output()
            .map_err(|e| Error::io(".", "run git for", e))?;
        if !output.status.success() {
            return Err(Error::File {
                path: ".".into(),
                message: format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    // Where the workspace sits inside the repository (empty at its root).
    let prefix = git(&["rev-parse", "--show-prefix"])?;
    let dir = ws.path("target/caio-staged");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display(), "remove", e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), "create", e))?;
    // checkout-index writes paths relative to the repository root.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let output = std::process::Command::new("git")
        .args(["checkout-index", "--all", "--force"])
        .arg(format!("--prefix={}/", dir.display()))
        .current_dir(&top)
        .output()
        .map_err(|e| Error::io(".", "run git for", e))?;
    if !output.status.success() {
        return Err(Error::File {
            path: ".".into(),
            message: format!("cannot copy the staged files: {}", String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(Workspace::new(dir.join(prefix)))
}

/// What happened to each hook.
pub type Report = Vec<(String, &'static str)>;

/// Installs the hooks.
pub fn install(ws: &Workspace, force: bool) -> Result<Report> {
    let dir = hooks_dir(ws)?;
    let mut report = Vec::new();
    let mut foreign = Vec::new();
    for (name, _) in hooks() {
        let path = dir.join(name);
        if let Ok(existing) = std::fs::read_to_string(&path)
            && !existing.contains(MARK)
            && !force
        {
            foreign.push(Error::File {
                    path: ws.rel(&path),
                    message: "is a hook caio did not write; merge `cargo xtask ...` into it yourself, or run `cargo xtask hooks install --force` to keep it as a .orig file and install caio's".into(),
                });
        }
    }
    Error::from_list(foreign)?;
    for (name, script) in hooks() {
        let path = dir.join(name);
        let existing = std::fs::read_to_string(&path).ok();
        if existing.as_deref() == Some(script.as_str()) {
            report.push((name.to_string(), "already installed"));
            continue;
        }
        if let Some(old) = existing.filter(|e| !e.contains(MARK)) {
            fsutil::write_atomic(&dir.join(format!("{name}.orig")), old.as_bytes())?;
        }
        fsutil::write_atomic(&path, script.as_bytes())?;
        make_executable(&path)?;
        report.push((name.to_string(), "installed"));
    }
    Ok(report)
}

/// Removes caio's hooks (and only those).
pub fn uninstall(ws: &Workspace) -> Result<Report> {
    let dir = hooks_dir(ws)?;
    let mut report = Vec::new();
    for (name, _) in hooks() {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.contains(MARK) => {
                std::fs::remove_file(&path).map_err(|e| Error::io(ws.rel(&path), "remove", e))?;
                report.push((name.to_string(), "removed"));
            }
            Ok(_) => report.push((name.to_string(), "left alone (not caio's)")),
            Err(_) => report.push((name.to_string(), "not installed")),
        }
    }
    Ok(report)
}

#[cfg(unix)]
fn make_executable(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(path.display(), "make executable", e))
}

#[cfg(not(unix))]
fn make_executable(_: &std::path::Path) -> Result<()> {
    Ok(())
}
