//! The `:dep` lines of the notebooks, held to the versions in `Cargo.lock`.
//!
//! evcxr resolves a `:dep` requirement afresh each time a kernel starts, so
//! `serde = "1"` in a notebook can mean another serde in Jupyter than in the
//! workspace. Every registry `:dep` therefore pins the exact version the
//! lock file records (`"=1.0.228"`): `extract --check` reports a line that
//! does not, and `extract` rewrites it. Path dependencies (the workspace's
//! own crates) need no pin.
//!
//! This module never edits anything but the version string of a `:dep` line.

use std::collections::BTreeMap;

use caio_notebook::{Cell, CellRef, MultilineText, Notebook};
use semver::{Version, VersionReq};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::{NotebookFile, Workspace};

/// The registry packages of `Cargo.lock`: every version of each name.
#[derive(Debug, Default)]
pub struct Lock {
    versions: BTreeMap<String, Vec<Version>>,
}

impl Lock {
    /// Reads the workspace's `Cargo.lock`; a workspace not yet built has
    /// none, and then nothing is pinned (cargo writes it on the first build).
    pub fn read(ws: &Workspace) -> Result<Option<Lock>> {
        let path = ws.path("Cargo.lock");
        if !path.exists() {
            return Ok(None);
        }
        let text = fsutil::read(&path)?;
        Lock::parse(&text).map(Some).map_err(|message| Error::File { path: "Cargo.lock".into(), message })
    }

    /// Parses the text of a lock file.
    pub fn parse(text: &str) -> std::result::Result<Lock, String> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            package: Vec<Package>,
        }
        #[derive(serde::Deserialize)]
        struct Package {
            name: String,
            version: Version,
            source: Option<String>,
        }
        let file: File = toml::from_str(text).map_err(|e| format!("cannot be read as a lock file: {e}"))?;
        let mut lock = Lock::default();
        for package in
            file.package.into_iter().filter(|p| p.source.as_deref().is_some_and(|s| s.starts_with("registry+")))
        {
            lock.versions.entry(package.name).or_default().push(package.version);
        }
        Ok(lock)
    }

    /// The locked version a requirement means: the highest locked version
    /// compatible with it (an exact pin counts as its caret requirement, so
    /// that a stale pin finds the version that replaced it).
    fn resolve(&self, name: &str, requirement: &str) -> std::result::Result<&Version, String> {
        let versions = self.versions.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!(
                "`{name}` is not in Cargo.lock, so Jupyter and the workspace cannot be held to one version: \
                 add it to the dependencies of a workspace crate (caio-verify's dev-dependencies will do)"
            )
        })?;
        let caret = requirement.trim().trim_start_matches('=').trim();
        let compatible = VersionReq::parse(caret)
            .map_err(|e| format!("`{name} = \"{requirement}\"` is not a version requirement: {e}"))?;
        versions.iter().filter(|v| compatible.matches(v)).max().ok_or_else(|| {
            let locked: Vec<String> = versions.iter().map(ToString::to_string).collect();
            format!("`{name} = \"{requirement}\"` matches no version in Cargo.lock (it has {})", locked.join(", "))
        })
    }
}

/// One `:dep` line whose version is not the locked one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Root-relative path of the notebook.
    pub notebook: String,
    /// The cell and line of the `:dep`.
    pub cell: CellRef,
    /// The crate.
    pub name: String,
    /// The version string the line has.
    pub found: String,
    /// The version string it should have (`=x.y.z`).
    pub pinned: String,
}

impl From<&Drift> for Error {
    fn from(drift: &Drift) -> Error {
        Error::Cell {
            path: drift.notebook.clone(),
            cell: drift.cell.clone(),
            message: format!(
                "`:dep {}` asks for \"{}\" but Cargo.lock has {}: pin it as \"{}\" (`cargo xtask extract` does)",
                drift.name,
                drift.found,
                drift.pinned.trim_start_matches('='),
                drift.pinned
            ),
        }
    }
}

/// A `:dep` line's crate and version string, and where that string is.
struct DepLine {
    name: String,
    version: String,
    /// Byte range of the version string's contents in the line.
    span: std::ops::Range<usize>,
}

/// Parses `:dep name = "1"` or `:dep name = { version = "1", ... }`;
/// `None` for anything without a registry version (paths, git).
fn parse_dep(line: &str) -> std::result::Result<Option<DepLine>, String> {
    let Some(spec) = line.strip_prefix(":dep").filter(|s| s.starts_with(char::is_whitespace)) else { return Ok(None) };
    let table: toml::Table =
        toml::from_str(spec.trim()).map_err(|e| format!("`{}` is not `:dep name = spec`: {e}", line.trim()))?;
    let Some((key, value)) = table.into_iter().next() else { return Ok(None) };
    let (name, version) = match &value {
        toml::Value::String(version) => (key, version.clone()),
        toml::Value::Table(fields) => {
            if fields.contains_key("path") || fields.contains_key("git") {
                return Ok(None);
            }
            let Some(toml::Value::String(version)) = fields.get("version") else { return Ok(None) };
            let name = fields.get("package").and_then(toml::Value::as_str).map_or(key, str::to_owned);
            (name, version.clone())
        }
        _ => return Ok(None),
    };
    // The version string as written: after `version =` in a table, else the first string.
    let from = line.find("version").filter(|_| value.is_table()).unwrap_or(0);
    let quoted = format!("\"{version}\"");
    let start = line[from..]
        .find(&quoted)
        .map(|at| from + at + 1)
        .ok_or_else(|| format!("write the version of `{}` as a basic string (\"...\")", line.trim()))?;
    Ok(Some(DepLine { name, version: version.clone(), span: start..start + version.len() }))
}

/// Every `:dep` line of `notebook` whose version differs from the lock's pin.
pub fn drifts_of(rel: &str, notebook: &Notebook, lock: &Lock) -> Result<Vec<Drift>> {
    let mut drifts = Vec::new();
    let mut errors = Vec::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        let Cell::Code(code) = cell else { continue };
        for (number, line) in code.source.text().lines().enumerate() {
            let at = CellRef::new(index, code.id.as_deref()).at_line(number + 1);
            let dep = match parse_dep(line) {
                Ok(Some(dep)) => dep,
                Ok(None) => continue,
                Err(message) => {
                    errors.push(Error::Cell { path: rel.into(), cell: at, message });
                    continue;
                }
            };
            match lock.resolve(&dep.name, &dep.version) {
                Ok(locked) => {
                    let pinned = format!("={locked}");
                    if dep.version != pinned {
                        drifts.push(Drift {
                            notebook: rel.into(),
                            cell: at,
                            name: dep.name,
                            found: dep.version,
                            pinned,
                        });
                    }
                }
                Err(message) => errors.push(Error::Cell { path: rel.into(), cell: at, message }),
            }
        }
    }
    Error::from_list(errors)?;
    Ok(drifts)
}

/// The drifts of every notebook of the workspace.
pub fn check(ws: &Workspace) -> Result<Vec<Drift>> {
    let Some(lock) = Lock::read(ws)? else { return Ok(Vec::new()) };
    let mut drifts = Vec::new();
    let mut errors = Vec::new();
    for file in ws.notebooks()? {
        match file.load().and_then(|notebook| drifts_of(&file.rel, &notebook, &lock)) {
            Ok(found) => drifts.extend(found),
            Err(e) => errors.push(e),
        }
    }
    Error::from_list(errors)?;
    Ok(drifts)
}

/// Rewrites the version string of each drifted `:dep` line to its pin;
/// returns the notebooks written (each written once, atomically).
pub fn apply(ws: &Workspace, drifts: &[Drift]) -> Result<Vec<String>> {
    let mut by_notebook: BTreeMap<&str, Vec<&Drift>> = BTreeMap::new();
    for drift in drifts {
        by_notebook.entry(&drift.notebook).or_default().push(drift);
    }
    let mut written = Vec::new();
    for (rel, drifts) in by_notebook {
        let mut notebook = NotebookFile::at(ws, rel).load()?;
        for drift in drifts {
            let Some(Cell::Code(code)) = notebook.cells.get_mut(drift.cell.index) else { continue };
            let text = code.source.text();
            let line_number = drift.cell.line.unwrap_or(1);
            let lines: Vec<String> = text
                .split_inclusive('\n')
                .enumerate()
                .map(|(number, line)| match parse_dep(line.trim_end_matches(['\n', '\r'])) {
                    Ok(Some(dep)) if number + 1 == line_number => {
                        format!("{}{}{}", &line[..dep.span.start], drift.pinned, &line[dep.span.end..])
                    }
                    _ => line.to_string(),
                })
                .collect();
            code.source = MultilineText::from_text(&lines.concat());
        }
        fsutil::write_atomic(&ws.path(rel), notebook.to_json().as_bytes())?;
        written.push(rel.to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "serde"
version = "1.0.228"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "sha2"
version = "0.10.9"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "sha2"
version = "0.11.1"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "caio-calculus"
version = "0.1.0"
"#;

    fn notebook(source: &str) -> Notebook {
        let cell = serde_json::json!({"cell_type": "code", "id": "c1", "metadata": {}, "source": source, "outputs": [], "execution_count": null});
        Notebook::parse(
            &serde_json::json!({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).to_string(),
        )
        .expect("a valid notebook")
    }

    fn drifts(source: &str) -> Result<Vec<Drift>> {
        drifts_of("n.ipynb", &notebook(source), &Lock::parse(LOCK).expect("a lock file"))
    }

    #[test]
    fn loose_and_stale_versions_drift_to_the_locked_pin() {
        let found = drifts(":dep serde = { version = \"1\", features = [\"derive\"] }\n:dep sha2 = \"0.10\"\n:dep sha2 = \"=0.11.0\"\n")
            .expect("all are in the lock");
        let pins: Vec<(&str, &str, usize)> =
            found.iter().map(|d| (d.found.as_str(), d.pinned.as_str(), d.cell.line.expect("a line"))).collect();
        assert_eq!(pins, [("1", "=1.0.228", 1), ("0.10", "=0.10.9", 2), ("=0.11.0", "=0.11.1", 3)]);
    }

    #[test]
    fn pinned_lines_and_path_dependencies_do_not_drift() {
        let found = drifts(
            ":dep serde = \"=1.0.228\"\n:dep caio-calculus = { path = \"../../crates/caio-calculus\" }\nlet x = 1;\n",
        )
        .expect("pinned");
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_crate_missing_from_the_lock_is_an_error_naming_the_line() {
        let error = drifts("let a = 1;\n:dep rand = \"0.9\"\n").expect_err("rand is not locked").to_string();
        assert!(
            error.contains("n.ipynb") && error.contains("line 2") && error.contains("`rand` is not in Cargo.lock"),
            "{error}"
        );
    }

    #[test]
    fn a_requirement_no_locked_version_meets_is_an_error() {
        let error = drifts(":dep serde = \"2\"\n").expect_err("no serde 2").to_string();
        assert!(error.contains("matches no version in Cargo.lock (it has 1.0.228)"), "{error}");
    }

    #[test]
    fn the_rewrite_changes_only_the_version_string() {
        let line = ":dep serde = { version = \"1\", features = [\"derive\"] }";
        let dep = parse_dep(line).expect("parses").expect("a registry dep");
        assert_eq!(
            format!("{}=1.0.228{}", &line[..dep.span.start], &line[dep.span.end..]),
            ":dep serde = { version = \"=1.0.228\", features = [\"derive\"] }"
        );
        let renamed =
            parse_dep(":dep json = { package = \"serde_json\", version = \"1\" }").expect("parses").expect("a dep");
        assert_eq!(renamed.name, "serde_json");
    }
}
