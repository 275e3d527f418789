//! `cargo xtask verify`: runs the verification notebooks whose evidence is
//! missing or stale, through the native runner, and checks that each wrote
//! a fresh artifact for every invariant it verifies.
//!
//! Freshness is by inputs digest: SHA-256 over the notebook's code cells
//! (not its outputs), the invariant files it verifies, the sources of the
//! workspace crates it depends on (and theirs), the workspace `Cargo.toml`
//! and `Cargo.lock`. The runner
//! hands the digest to the notebook, which records it in its artifacts; an
//! artifact whose digest differs from the current one is stale. So `verify`
//! is incremental, and a change anywhere a result depends on is noticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use caio_notebook::{Cell, Notebook};
use caio_verify::Invariant;
use caio_verify::artifact::{Artifact, DIGEST_ENV, DIR_ENV, NOTEBOOK_ENV};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::runner;
use crate::workspace::{NotebookFile, Workspace};

/// The environment variable with the directory artifacts are written to.
pub const ARTIFACTS_DIR_ENV: &str = DIR_ENV;

/// An invariant and the file it was read from.
#[derive(Debug, Clone)]
pub struct LoadedInvariant {
    /// Root-relative path of the YAML file.
    pub path: String,
    /// The invariant.
    pub invariant: Invariant,
}

/// Reads every `invariants/*.yaml`, sorted by id. Each file must be named
/// after its id and name an existing verification notebook.
pub fn load_invariants(ws: &Workspace) -> Result<Vec<LoadedInvariant>> {
    let dir = ws.path("invariants");
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(found) };
    let mut paths: Vec<_> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect();
    paths.sort();
    for path in paths {
        let rel = ws.rel(&path);
        let text = fsutil::read(&path)?;
        match Invariant::parse(&text) {
            Err(e) => errors.push(Error::File { path: rel, message: e.to_string() }),
            Ok(invariant) => {
                if path.file_stem().is_some_and(|s| s != invariant.id.as_str()) {
                    errors.push(Error::File {
                        path: rel,
                        message: format!("the file of `{}` must be invariants/{}.yaml", invariant.id, invariant.id),
                    });
                } else if invariant.notebook == crate::mutants::MUTANTS_DIR {
                    if ws.path(&invariant.notebook).is_dir() {
                        found.push(LoadedInvariant { path: rel, invariant });
                    } else {
                        errors.push(Error::File {
                            path: rel,
                            message: format!("`{}` does not exist; mutants live there", invariant.notebook),
                        });
                    }
                } else if !ws.path(&invariant.notebook).is_file() {
                    errors.push(Error::File {
                        path: rel,
                        message: format!("notebook `{}` does not exist; create it (`cargo xtask new-invariant` scaffolds one) or fix `notebook`", invariant.notebook),
                    });
                } else {
                    found.push(LoadedInvariant { path: rel, invariant });
                }
            }
        }
    }
    Error::from_list(errors)?;
    Ok(found)
}

/// What an artifact file says about its invariant.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactStatus {
    /// No file.
    Missing,
    /// Not a valid artifact (broken JSON, NaN or infinity, wrong shape, wrong id).
    Invalid(String),
    /// Valid but computed from other inputs.
    Stale(Artifact),
    /// Valid and computed from the current inputs.
    Fresh(Artifact),
}

/// Root-relative path of an invariant's artifact.
pub fn artifact_path(id: &str) -> String {
    format!("artifacts/{id}.json")
}

/// Reads and checks the artifact of `id` against the current digest.
pub fn artifact_status(ws: &Workspace, id: &str, digest: &str) -> ArtifactStatus {
    let Ok(text) = std::fs::read_to_string(ws.path(&artifact_path(id))) else { return ArtifactStatus::Missing };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        // JSON cannot hold NaN or infinity: a file that does is not JSON.
        Err(e) => {
            return ArtifactStatus::Invalid(format!("not valid JSON (line {}, column {}): {e}", e.line(), e.column()));
        }
    };
    let artifact: Artifact = match serde_path_to_error::deserialize(value) {
        Ok(artifact) => artifact,
        Err(e) => return ArtifactStatus::Invalid(format!("{}: {}", e.path(), e.inner())),
    };
    if artifact.invariant != id {
        return ArtifactStatus::Invalid(format!("it is the artifact of `{}`, not of `{id}`", artifact.invariant));
    }
    if let Some((metric, value)) = artifact.non_finite() {
        return ArtifactStatus::Invalid(format!("metric `{metric}` is {value}"));
    }
    if artifact.inputs_digest == digest { ArtifactStatus::Fresh(artifact) } else { ArtifactStatus::Stale(artifact) }
}

/// The inputs digest of a verification notebook.
pub fn inputs_digest(ws: &Workspace, notebook_rel: &str, invariants: &[&LoadedInvariant]) -> Result<String> {
    let path = ws.path(notebook_rel);
    let notebook = NotebookFile::at(ws, notebook_rel).load()?;
    let mut hasher = Sha256::new();
    let mut section = |label: &str, bytes: &[u8]| {
        hasher.update(format!("\n--- {label} {}\n", bytes.len()).as_bytes());
        hasher.update(bytes);
    };
    for (i, cell) in notebook.cells.iter().enumerate() {
        if let Cell::Code(code) = cell {
            section(&format!("cell {i}"), code.source.text().as_bytes());
        }
    }
    let mut invariant_files: Vec<&str> = invariants.iter().map(|i| i.path.as_str()).collect();
    invariant_files.sort();
    for file in invariant_files {
        section(file, fsutil::read(&ws.path(file))?.as_bytes());
    }
    for crate_dir in crate_dependencies(ws, &notebook, &path)? {
        for entry in walkdir::WalkDir::new(ws.path(&crate_dir)).sort_by_file_name().into_iter().flatten() {
            let rel = ws.rel(entry.path());
            let is_source = rel.ends_with("/Cargo.toml") || rel.contains("/src/");
            if entry.file_type().is_file() && is_source {
                let bytes = std::fs::read(entry.path()).map_err(|e| Error::io(&rel, "read", e))?;
                section(&rel, &bytes);
            }
        }
    }
    // The workspace manifest decides dependency versions and features (a
    // feature of serde_json changes how numbers parse), and the lock file
    // pins what was resolved.
    for file in ["Cargo.toml", "Cargo.lock"] {
        if let Ok(bytes) = std::fs::read(ws.path(file)) {
            section(file, &bytes);
        }
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{digest}"))
}

/// Workspace crates a notebook uses through `:dep` path dependencies, and
/// the workspace crates those depend on, as root-relative directories.
fn crate_dependencies(ws: &Workspace, notebook: &Notebook, path: &Path) -> Result<BTreeSet<String>> {
    let program = runner::program::build(notebook, path.parent().unwrap_or(Path::new("."))).map_err(|problems| {
        Error::Many(
            problems
                .into_iter()
                .map(|p| Error::Cell { path: ws.rel(path), cell: p.cell, message: p.message })
                .collect(),
        )
    })?;
    let root = ws.root().canonicalize().map_err(|e| Error::io(ws.root().display(), "resolve", e))?;
    let mut pending: Vec<String> = program
        .deps
        .values()
        .filter_map(|spec| spec.get("path").and_then(|p| p.as_str()))
        .filter_map(|p| Path::new(p).strip_prefix(&root).ok().map(|r| ws.rel(&ws.path(&r.to_string_lossy()))))
        .collect();
    let workspace_paths = workspace_dependency_paths(ws)?;
    let mut seen = BTreeSet::new();
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let manifest: toml::Table = toml::from_str(&fsutil::read(&ws.path(&format!("{dir}/Cargo.toml")))?)
            .map_err(|e| Error::File { path: format!("{dir}/Cargo.toml"), message: format!("invalid TOML: {e}") })?;
        for table in
            ["dependencies", "dev-dependencies"].iter().filter_map(|t| manifest.get(*t).and_then(|v| v.as_table()))
        {
            for (name, spec) in table {
                let local = spec.get("path").and_then(|p| p.as_str()).map(|p| ws.rel(&ws.path(&format!("{dir}/{p}"))));
                let inherited = spec
                    .get("workspace")
                    .and_then(|w| w.as_bool())
                    .filter(|w| *w)
                    .and_then(|_| workspace_paths.get(name).cloned());
                if let Some(dep) = local.or(inherited) {
                    pending.push(dep);
                }
            }
        }
    }
    Ok(seen)
}

/// `[workspace.dependencies]` entries with a `path`, by name.
fn workspace_dependency_paths(ws: &Workspace) -> Result<BTreeMap<String, String>> {
    let manifest: toml::Table = toml::from_str(&fsutil::read(&ws.path("Cargo.toml"))?)
        .map_err(|e| Error::File { path: "Cargo.toml".into(), message: format!("invalid TOML: {e}") })?;
    let deps = manifest.get("workspace").and_then(|w| w.get("dependencies")).and_then(|d| d.as_table());
    Ok(deps
        .into_iter()
        .flatten()
        .filter_map(|(name, spec)| {
            spec.get("path").and_then(|p| p.as_str()).map(|p| (name.clone(), p.trim_end_matches('/').to_string()))
        })
        .collect())
}

/// The verification notebooks and the invariants each verifies.
pub fn notebooks(invariants: &[LoadedInvariant]) -> BTreeMap<String, Vec<&LoadedInvariant>> {
    let mut by_notebook: BTreeMap<String, Vec<&LoadedInvariant>> = BTreeMap::new();
    // The mutation score is measured by `cargo xtask mutants`, not by a notebook.
    for invariant in invariants.iter().filter(|i| i.invariant.notebook != crate::mutants::MUTANTS_DIR) {
        by_notebook.entry(invariant.invariant.notebook.clone()).or_default().push(invariant);
    }
    by_notebook
}

/// The environment a verification notebook runs with: its digest, where
/// artifacts go, and its name. `None` for a notebook that verifies nothing.
pub fn environment(
    ws: &Workspace,
    invariants: &[LoadedInvariant],
    notebook: &str,
) -> Result<Option<Vec<(String, String)>>> {
    let verified: Vec<&LoadedInvariant> = invariants.iter().filter(|i| i.invariant.notebook == notebook).collect();
    if verified.is_empty() {
        return Ok(None);
    }
    Ok(Some(environment_for(ws, notebook, inputs_digest(ws, notebook, &verified)?)))
}

fn environment_for(ws: &Workspace, notebook: &str, digest: String) -> Vec<(String, String)> {
    vec![
        (DIGEST_ENV.to_string(), digest),
        (DIR_ENV.to_string(), ws.path("artifacts").to_string_lossy().into_owned()),
        (NOTEBOOK_ENV.to_string(), notebook.to_string()),
    ]
}

/// Options of `cargo xtask verify`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run nothing; fail if any artifact is missing, invalid or stale.
    pub check: bool,
    /// Run every verification notebook, fresh or not.
    pub force: bool,
    /// How the notebooks run.
    pub runner: runner::Options,
}

/// What verify did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Notebooks that ran.
    pub ran: Vec<String>,
    /// Notebooks whose artifacts were all fresh.
    pub fresh: Vec<String>,
}

/// Runs verify.
pub fn run(ws: &Workspace, options: &Options) -> Result<Report> {
    let invariants = load_invariants(ws)?;
    let mut report = Report::default();
    let mut to_run = Vec::new();
    let mut digests = BTreeMap::new();
    let mut problems = Vec::new();
    for (notebook, verified) in notebooks(&invariants) {
        let digest = inputs_digest(ws, &notebook, &verified)?;
        let stale: Vec<(&LoadedInvariant, ArtifactStatus)> = verified
            .iter()
            .map(|i| (*i, artifact_status(ws, &i.invariant.id, &digest)))
            .filter(|(_, status)| !matches!(status, ArtifactStatus::Fresh(_)))
            .collect();
        if stale.is_empty() && !options.force {
            report.fresh.push(notebook);
            continue;
        }
        for (invariant, status) in &stale {
            let what = match status {
                ArtifactStatus::Missing => "missing".to_string(),
                ArtifactStatus::Invalid(why) => format!("invalid ({why})"),
                _ => "stale (its inputs changed since it was computed)".to_string(),
            };
            problems.push(Error::File {
                path: artifact_path(&invariant.invariant.id),
                message: format!("{what}; run `cargo xtask verify` to recompute it with {notebook}"),
            });
        }
        digests.insert(notebook.clone(), digest);
        to_run.push(notebook);
    }
    if options.check {
        Error::from_list(problems)?;
        return Ok(report);
    }
    if to_run.is_empty() {
        return Ok(report);
    }
    let mut runner_options = options.runner.clone();
    for notebook in &to_run {
        runner_options.env.insert(notebook.clone(), environment_for(ws, notebook, digests[notebook].clone()));
    }
    let files: Vec<NotebookFile> =
        to_run.iter().map(|rel| NotebookFile { rel: rel.clone(), path: ws.path(rel) }).collect();
    runner::run(ws, &files, &runner_options)?;
    let mut missing = Vec::new();
    for notebook in &to_run {
        for invariant in invariants.iter().filter(|i| &i.invariant.notebook == notebook) {
            if !matches!(artifact_status(ws, &invariant.invariant.id, &digests[notebook]), ArtifactStatus::Fresh(_)) {
                missing.push(Error::File {
                    path: notebook.clone(),
                    message: format!("ran, but left no fresh artifact for {}: it must write one with `caio_verify::Artifact::new(\"{}\", seed)...write()`", invariant.invariant.id, invariant.invariant.id),
                });
            }
        }
    }
    Error::from_list(missing)?;
    report.ran = to_run;
    Ok(report)
}
