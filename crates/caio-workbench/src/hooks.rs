//! `cargo xtask hooks install|uninstall`: git hooks that keep the promises
//! before work leaves the machine, and git's drivers for notebooks.
//!
//! pre-commit runs the fast checks on what is staged (`cargo xtask check
//! --staged`), since that is what the commit will hold; pre-merge-commit
//! runs the same before git records a merge that had no conflict (git skips
//! pre-commit then); pre-push runs `cargo xtask validate`. The drivers go
//! into the clone's own `.git/config` (`merge.caio-notebook`,
//! `merge.caio-generated`, `diff.caio-notebook`), and `.gitattributes`, which
//! is committed, routes notebooks and generated files to them.
//!
//! Installing twice is harmless. A hook that caio did not write is never
//! overwritten silently: install refuses and says how to proceed
//! (`--force` keeps the old hook as `<name>.orig`). Uninstall removes only
//! caio's hooks and drivers, and leaves `.gitattributes` (it is the
//! repository's, and without the drivers git ignores its entries).

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
fn hooks() -> [(&'static str, String); 3] {
    [
        ("pre-commit", script("check --staged")),
        ("pre-merge-commit", script("check --staged")),
        ("pre-push", script("validate")),
    ]
}

/// (git config key, value) of the drivers.
const DRIVERS: &[(&str, &str)] = &[
    ("merge.caio-notebook.name", "caio: notebooks merged cell by cell"),
    ("merge.caio-notebook.driver", "cargo xtask merge-driver %O %A %B %P"),
    ("merge.caio-generated.name", "caio: generated files are regenerated, never merged as text"),
    ("merge.caio-generated.driver", "cargo xtask merge-driver --generated %O %A %B %P"),
    ("diff.caio-notebook.textconv", "cargo xtask diff --textconv"),
    // Hunk headers name the cell a change is in.
    ("diff.caio-notebook.xfuncname", "^# %% cell .*$"),
];

/// The first line of caio's block in `.gitattributes`.
const ATTRIBUTES_MARK: &str =
    "# Notebooks merge and diff cell by cell; generated files are regenerated (`cargo xtask hooks install`).";

/// The `.gitattributes` lines that route files to the drivers: notebooks,
/// the source directories extract writes, the artifacts and the scorecard.
pub fn attribute_lines(ws: &Workspace) -> Result<Vec<String>> {
    let mut lines = vec!["*.ipynb merge=caio-notebook diff=caio-notebook".to_owned()];
    let plan = crate::extract::plan(ws)?;
    let dirs: std::collections::BTreeSet<String> = plan
        .files
        .iter()
        .filter_map(|f| f.path.find("/src/").map(|at| f.path[..at + "/src".len()].to_owned()))
        .collect();
    lines.extend(dirs.into_iter().map(|dir| format!("{dir}/** merge=caio-generated")));
    lines.push("artifacts/*.json merge=caio-generated".to_owned());
    lines.push("scorecard.json merge=caio-generated".to_owned());
    Ok(lines)
}

fn git_config(ws: &Workspace, args: &[&str]) -> Result<bool> {
    let status = std::process::Command::new("git")
        .arg("config")
        .arg("--local")
        .args(args)
        .current_dir(ws.root())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::io(".", "run git for", e))?;
    Ok(status.success())
}

/// Registers the drivers and makes `.gitattributes` route files to them.
fn install_drivers(ws: &Workspace, report: &mut Report) -> Result<()> {
    let mut changed = false;
    for (key, value) in DRIVERS {
        let current = std::process::Command::new("git")
            .args(["config", "--local", "--get", key])
            .current_dir(ws.root())
            .output()
            .map_err(|e| Error::io(".", "run git for", e))?;
        if String::from_utf8_lossy(&current.stdout).trim_end() != *value {
            if !git_config(ws, &[key, value])? {
                return Err(Error::File { path: ".git/config".into(), message: format!("git config {key} failed") });
            }
            changed = true;
        }
    }
    report.push(("merge and diff drivers".into(), if changed { "installed" } else { "already installed" }));
    let path = ws.path(".gitattributes");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let present: std::collections::BTreeSet<&str> = existing.lines().map(str::trim).collect();
    let missing: Vec<String> = attribute_lines(ws)?.into_iter().filter(|l| !present.contains(l.as_str())).collect();
    if missing.is_empty() {
        report.push((".gitattributes".into(), "already routes notebooks and generated files"));
        return Ok(());
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !present.contains(ATTRIBUTES_MARK) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(ATTRIBUTES_MARK);
        text.push('\n');
    }
    for line in missing {
        text.push_str(&line);
        text.push('\n');
    }
    fsutil::write_atomic(&path, text.as_bytes())?;
    report.push((".gitattributes".into(), "updated (commit it)"));
    Ok(())
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
    let git = |args: &[&str]| crate::git::text(ws, args);
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
    install_drivers(ws, &mut report)?;
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
    let mut removed = false;
    for section in ["merge.caio-notebook", "merge.caio-generated", "diff.caio-notebook"] {
        removed |= git_config(ws, &["--remove-section", section])?;
    }
    report.push(("merge and diff drivers".into(), if removed { "removed" } else { "not installed" }));
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
