//! Mutation testing of the evidence: `cargo xtask mutants`.
//!
//! Evidence is worth something only if it can fail. A mutant is a small,
//! deliberate bug in a calculus notebook (a flipped comparison, a verdict
//! ignored, a breaker that never half-opens), kept as
//! `tests/mutants/<name>.toml`: the notebook, a text that occurs exactly once
//! in its code cells, its replacement, and the invariants whose evidence must
//! turn red. The command copies the workspace into a scratch directory
//! (`target/caio-mutants/`) and, for each mutant, restores the pristine
//! notebooks, applies the mutant, extracts the crate and runs every
//! verification notebook there, then judges the scratch evidence with the
//! scorecard. Only the verification notebooks judge: `cargo test` is not run.
//! A mutant is killed when one of the invariants it names is not `pass`.
//!
//! The full set writes the mutation score as the artifact of the invariant
//! whose `notebook` is `tests/mutants`; a subset (`--only`) writes nothing.
//! This module never touches the working tree's notebooks, crates or
//! artifacts, except for writing that one artifact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caio_notebook::Cell;
use caio_verify::Artifact;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::scorecard::{self, Status};
use crate::verify::{self, LoadedInvariant};
use crate::workspace::{NotebookFile, Workspace};
use crate::{extract, fsutil, runner};

/// Where mutants live, and the `notebook` of the invariant that records the
/// mutation score.
pub const MUTANTS_DIR: &str = "tests/mutants";

/// A curated mutant: one small edit to one notebook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutant {
    /// The file name without `.toml`.
    #[serde(skip)]
    pub name: String,
    /// What the bug is, in a sentence.
    pub description: String,
    /// The notebook it edits, relative to the workspace root.
    pub notebook: String,
    /// Text that occurs exactly once in the notebook's code cells.
    pub find: String,
    /// What replaces it.
    pub replace: String,
    /// Invariants at least one of which must turn red.
    pub kills: Vec<String>,
}

impl Mutant {
    /// Applies the mutant to a notebook's code cells.
    fn apply(&self, notebook: &mut caio_notebook::Notebook) -> std::result::Result<(), String> {
        let mut hits = 0;
        for cell in &mut notebook.cells {
            if let Cell::Code(code) = cell {
                let text = code.source.text();
                let count = text.matches(&self.find).count();
                if count > 0 {
                    hits += count;
                    code.source = caio_notebook::MultilineText::from_text(&text.replacen(&self.find, &self.replace, 1));
                }
            }
        }
        match hits {
            1 => Ok(()),
            0 => Err(format!(
                "`find` does not occur in the code cells of {}; the code changed: update the mutant",
                self.notebook
            )),
            n => {
                Err(format!("`find` occurs {n} times in {}; make it longer so that it names one place", self.notebook))
            }
        }
    }
}

/// Reads and checks every mutant, sorted by name: each must apply to its
/// notebook exactly once and name known invariants.
pub fn load(ws: &Workspace) -> Result<Vec<Mutant>> {
    let dir = ws.path(MUTANTS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    paths.sort();
    let known: Vec<String> = verify::load_invariants(ws)?.into_iter().map(|i| i.invariant.id).collect();
    let mut mutants = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let rel = ws.rel(&path);
        let problem = |message: String| Error::File { path: rel.clone(), message };
        let mut mutant: Mutant = match toml::from_str(&fsutil::read(&path)?) {
            Ok(m) => m,
            Err(e) => {
                errors.push(problem(format!("invalid mutant: {}", e.message())));
                continue;
            }
        };
        mutant.name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(unknown) = mutant.kills.iter().find(|k| !known.contains(k)) {
            errors.push(problem(format!("kills: `{unknown}` is not an invariant under invariants/")));
            continue;
        }
        if mutant.kills.is_empty() || mutant.find == mutant.replace {
            errors.push(problem(
                "a mutant needs a `find` different from its `replace` and at least one invariant in `kills`".into(),
            ));
            continue;
        }
        match NotebookFile::at(ws, &mutant.notebook).load() {
            Err(e) => errors.push(problem(format!("notebook: {e}"))),
            Ok(mut notebook) => match mutant.apply(&mut notebook) {
                Err(why) => errors.push(problem(why)),
                Ok(()) => mutants.push(mutant),
            },
        }
    }
    Error::from_list(errors)?;
    Ok(mutants)
}

/// Options of `cargo xtask mutants`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run only these mutants (by name); a subset writes no artifact.
    pub only: Vec<String>,
    /// How many notebooks run at once.
    pub jobs: usize,
    /// How long one verification notebook may run under a mutant.
    pub timeout: Option<Duration>,
    /// No progress output.
    pub quiet: bool,
}

/// What happened to one mutant.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The mutant's name.
    pub name: String,
    /// The invariants it must turn red.
    pub kills: Vec<String>,
    /// The invariants that were not `pass` under it.
    pub red: Vec<String>,
    /// Whether one of `kills` went red.
    pub killed: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// What the run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One outcome per mutant, in name order.
    pub outcomes: Vec<Outcome>,
    /// Whether the artifact was written (the full set ran).
    pub wrote_artifact: bool,
}

/// Runs the mutants in a scratch copy of the workspace.
pub fn run(ws: &Workspace, options: &Options) -> Result<Report> {
    let mut mutants = load(ws)?;
    if let Some(unknown) = options.only.iter().find(|n| !mutants.iter().any(|m| &m.name == *n)) {
        return Err(Error::File {
            path: MUTANTS_DIR.into(),
            message: format!("there is no mutant `{unknown}`; the names are the file names without .toml"),
        });
    }
    if !options.only.is_empty() {
        mutants.retain(|m| options.only.contains(&m.name));
    }
    if mutants.is_empty() {
        return Err(Error::File { path: MUTANTS_DIR.into(), message: "no mutants to run".into() });
    }
    // Without mutants the evidence must pass, or every mutant would look killed.
    let card = scorecard::compute(ws)?;
    let not_passing: Vec<String> = card
        .invariants
        .iter()
        .filter(|i| i.status != Status::Pass && i.notebook != MUTANTS_DIR)
        .map(|i| format!("{} is {}", i.id, i.status.word()))
        .collect();
    if !not_passing.is_empty() {
        return Err(Error::File {
            path: "artifacts".into(),
            message: format!(
                "the evidence must pass before mutants can be judged ({}); run `cargo xtask validate` first",
                not_passing.join(", ")
            ),
        });
    }

    // The digest of what is about to be tested, taken before the copy: the
    // score must describe these inputs, not what the tree holds later.
    let invariants = verify::load_invariants(ws)?;
    let digest = inputs_digest(ws, &invariants)?;
    let scratch_root = ws.path("target/caio-mutants/workspace");
    copy_workspace(ws.root(), &scratch_root)?;
    // The scratch copy judges the verification notebooks only: the mutation
    // score is not evidence about a mutant.
    for invariant in invariants.iter().filter(|i| i.invariant.notebook == MUTANTS_DIR) {
        std::fs::remove_file(scratch_root.join(&invariant.path))
            .map_err(|e| Error::io(&invariant.path, "remove", e))?;
    }
    let scratch = Workspace::new(&scratch_root);
    let runner_options = runner::Options {
        jobs: options.jobs.max(1),
        timeout: options.timeout.unwrap_or(Duration::from_secs(300)),
        runner_dir: Some(scratch_root.join("target").join("caio-runner")),
        // A target directory of its own, kept between runs: cargo names the
        // artifacts of path crates by their path relative to the workspace,
        // so the scratch copy's mutated crates would overwrite the
        // workspace's own in a shared one.
        target_dir: Some(runner::build_dir(ws, "caio-mutants")),
        quiet: true,
        incremental: true,
        ..runner::Options::default()
    };
    let progress = Progress::new("mutants", mutants.len(), options.quiet);
    let mut outcomes = Vec::new();
    let mut invalid = Vec::new();
    for mutant in &mutants {
        progress.message(&mutant.name);
        let started = Instant::now();
        // The scratch copy's own notebook, taken before the mutant is
        // applied: restoring from the working tree would carry edits made
        // there during the run into the next mutants.
        let pristine = std::fs::read(scratch.path(&mutant.notebook))
            .map_err(|e| Error::io(&mutant.notebook, "read the scratch copy of", e))?;
        match judge(&scratch, mutant, &runner_options) {
            Ok(red) => {
                let killed = mutant.kills.iter().any(|k| red.contains(k));
                let status = if killed {
                    format!("killed ({})", red.join(", "))
                } else {
                    format!("SURVIVED (red: {})", if red.is_empty() { "none".to_string() } else { red.join(", ") })
                };
                progress.finished(&mutant.name, &status);
                outcomes.push(Outcome {
                    name: mutant.name.clone(),
                    kills: mutant.kills.clone(),
                    red,
                    killed,
                    elapsed: started.elapsed(),
                });
            }
            Err(e) => {
                progress.finished(&mutant.name, "invalid");
                invalid
                    .push(Error::File { path: format!("{MUTANTS_DIR}/{}.toml", mutant.name), message: e.to_string() });
            }
        }
        // Restore the pristine notebook for the next mutant.
        std::fs::write(scratch.path(&mutant.notebook), &pristine)
            .map_err(|e| Error::io(&mutant.notebook, "restore", e))?;
    }
    progress.finish();
    Error::from_list(invalid)?;
    let mut report = Report { outcomes, wrote_artifact: false };
    if options.only.is_empty() {
        if inputs_digest(ws, &verify::load_invariants(ws)?)? != digest {
            return Err(Error::File {
                path: MUTANTS_DIR.into(),
                message: "the notebooks, invariants or crates changed while the mutants ran, so the score would describe other inputs; run `cargo xtask mutants` again".into(),
            });
        }
        if let Some(owner) = invariants.iter().find(|i| i.invariant.notebook == MUTANTS_DIR) {
            artifact(&owner.invariant.id, digest, &report.outcomes).write_to(&ws.path("artifacts")).map_err(|e| {
                Error::File { path: verify::artifact_path(&owner.invariant.id), message: e.to_string() }
            })?;
            report.wrote_artifact = true;
        }
    }
    Ok(report)
}

/// Applies one mutant in the scratch workspace, verifies, and returns the
/// invariants that are not `pass`.
fn judge(scratch: &Workspace, mutant: &Mutant, runner_options: &runner::Options) -> Result<Vec<String>> {
    // The scratch copy's notebook: what the digest of the run describes.
    let file = NotebookFile::at(scratch, &mutant.notebook);
    let mut notebook = file.load()?;
    mutant.apply(&mut notebook).map_err(|message| Error::File { path: mutant.notebook.clone(), message })?;
    fsutil::write_atomic(&scratch.path(&mutant.notebook), notebook.to_json().as_bytes())?;
    extract::run(scratch, extract::Options { check: false, force: true })?;
    let artifacts = scratch.path("artifacts");
    for entry in std::fs::read_dir(&artifacts).map_err(|e| Error::io("artifacts", "list", e))?.flatten() {
        if entry.path().extension().is_some_and(|x| x == "json") {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path().display(), "remove", e))?;
        }
    }
    let verified = verify::run(scratch, &verify::Options { check: false, force: true, runner: runner_options.clone() });
    if let Err(e) = verified {
        // A notebook that panics or times out under the mutant leaves no
        // artifact, which the scorecard counts against its invariants; a
        // mutant that does not compile is not a semantic mutant at all.
        let text = e.to_string();
        if text.contains("does not compile") || text.contains("cargo did not build") {
            return Err(Error::File {
                path: mutant.notebook.clone(),
                message: format!("the mutant does not compile:\n{text}"),
            });
        }
    }
    let card = scorecard::compute(scratch)?;
    Ok(card.invariants.iter().filter(|i| i.status != Status::Pass).map(|i| i.id.clone()).collect())
}

/// The mutation score as an artifact.
fn artifact(invariant: &str, digest: String, outcomes: &[Outcome]) -> Artifact {
    let killed = outcomes.iter().filter(|o| o.killed).count() as u64;
    let total = outcomes.len() as u64;
    let survivors: Vec<&str> = outcomes.iter().filter(|o| !o.killed).map(|o| o.name.as_str()).collect();
    let by_mutant: BTreeMap<&str, serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            (o.name.as_str(), serde_json::json!({ "must_turn_red": o.kills, "went_red": o.red, "killed": o.killed }))
        })
        .collect();
    Artifact {
        invariant: invariant.to_string(),
        notebook: MUTANTS_DIR.to_string(),
        inputs_digest: digest,
        seed: 0,
        cases: total,
        failures: total - killed,
        metrics: BTreeMap::from([
            ("mutants".to_string(), total as f64),
            ("killed".to_string(), killed as f64),
            ("survivors".to_string(), (total - killed) as f64),
            ("kill_rate".to_string(), if total == 0 { 0.0 } else { killed as f64 / total as f64 }),
        ]),
        evidence: BTreeMap::from([
            ("survivors".to_string(), serde_json::json!(survivors)),
            ("mutants".to_string(), serde_json::json!(by_mutant)),
        ]),
    }
}

/// The inputs of the mutation score: the inputs of every verification
/// notebook (their code, invariants, crate sources, lock file), the code
/// cells of the notebooks the mutants edit, and the mutants themselves.
pub fn inputs_digest(ws: &Workspace, invariants: &[LoadedInvariant]) -> Result<String> {
    let mut notebook_digests = BTreeMap::new();
    for (notebook, verified) in verify::notebooks(invariants) {
        notebook_digests.insert(notebook.clone(), verify::inputs_digest(ws, &notebook, &verified)?);
    }
    digest_from(ws, &notebook_digests)
}

/// [`inputs_digest`] from the verification notebooks' digests, for a
/// caller that has computed them already (the scorecard).
pub fn digest_from(ws: &Workspace, notebook_digests: &BTreeMap<String, String>) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut section = |label: &str, bytes: &[u8]| {
        hasher.update(format!("\n--- {label} {}\n", bytes.len()).as_bytes());
        hasher.update(bytes);
    };
    for (notebook, digest) in notebook_digests {
        section(notebook, digest.as_bytes());
    }
    // The mutant files as they are, valid or not: a digest must not fail
    // because a mutant no longer applies (the score is then simply stale).
    let mut files: Vec<PathBuf> = std::fs::read_dir(ws.path(MUTANTS_DIR))
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut notebooks = std::collections::BTreeSet::new();
    for path in &files {
        let text = fsutil::read(path)?;
        if let Some(notebook) =
            toml::from_str::<toml::Table>(&text).ok().and_then(|t| t.get("notebook")?.as_str().map(str::to_string))
        {
            notebooks.insert(notebook);
        }
        section(&ws.rel(path), text.as_bytes());
    }
    for rel in notebooks {
        let Ok(notebook) = NotebookFile::at(ws, &rel).load() else { continue };
        for cell in notebook.cells {
            if let Cell::Code(code) = cell {
                section(&rel, code.source.text().as_bytes());
            }
        }
    }
    Ok(format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Copies the workspace (without `target/`, `.git/` and artifacts) to
/// `to`, replacing what was there.
fn copy_workspace(from: &Path, to: &Path) -> Result<()> {
    // Keep the scratch's own runner directory: its crates are regenerated
    // anyway, and keeping them saves cargo some work.
    if to.exists() {
        for entry in std::fs::read_dir(to).map_err(|e| Error::io(to.display(), "list", e))?.flatten() {
            if entry.file_name() == "target" {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| Error::io(path.display(), "remove", e))?;
        }
    }
    let walker = walkdir::WalkDir::new(from).into_iter().filter_entry(|e| {
        // `target` holds the scratch copy itself, and build products.
        let name = e.file_name().to_string_lossy();
        !(e.depth() == 1 && (name == "target" || name == ".git"))
    });
    for entry in walker {
        let entry = entry.map_err(|e| Error::File { path: from.display().to_string(), message: e.to_string() })?;
        let rel = entry.path().strip_prefix(from).expect("walked under the root");
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(target.display(), "create", e))?;
        } else if entry.file_type().is_file()
            && !(rel.starts_with("artifacts") && rel.extension().is_some_and(|x| x == "json"))
        {
            std::fs::copy(entry.path(), &target).map_err(|e| Error::io(target.display(), "copy to", e))?;
        }
    }
    Ok(())
}
