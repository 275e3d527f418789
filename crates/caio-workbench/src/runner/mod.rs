//! `cargo xtask run`: the native runner for notebooks in the evcxr dialect.
//!
//! Each notebook becomes one generated crate under `target/caio-runner/nb/`
//! ([`program`] says how cells map to code); all of them are members of one
//! runner workspace and are built by a single `cargo build` sharing one
//! target directory, so dependencies compile once. The programs then run in
//! parallel, each in its notebook's directory (as Jupyter's kernel does),
//! and their output is split back into cells ([`capture`]).
//!
//! A notebook whose cells all ran gets its outputs and execution counts
//! written back (atomically, only if they changed); a notebook that failed
//! is left untouched and its error is reported at notebook, cell and line.
//! Cells after a failing cell do not run, because the program stops there.

mod bounded;
pub mod capture;
pub mod cargo;
pub mod evcxr;
pub mod program;
mod runtime;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use caio_notebook::{Cell, CellRef, Notebook};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::workspace::{NotebookFile, Workspace};
use program::Program;

/// Options of `cargo xtask run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Write nothing; fail if any notebook's outputs would change.
    pub check: bool,
    /// How many notebooks run at once.
    pub jobs: usize,
    /// How long one notebook may run.
    pub timeout: Duration,
    /// How many bytes of text one cell may print to each of stdout and
    /// stderr; the rest is dropped, with a note where it was cut.
    pub max_output: usize,
    /// Where runner crates and their target directory live
    /// (default `target/caio-runner` under the workspace root).
    pub runner_dir: Option<PathBuf>,
    /// The cargo target directory of the runner crates (default:
    /// [`build_dir`]`(ws, "caio-runner")`).
    pub target_dir: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
    /// Extra environment variables for the programs of some notebooks, by
    /// root-relative notebook path (used by `verify` to hand over digests).
    pub env: BTreeMap<String, Vec<(String, String)>>,
    /// Build incrementally even where `CARGO_INCREMENTAL=0` says not to:
    /// `mutants` rebuilds the calculus once per mutant, five times faster
    /// with incremental state.
    pub incremental: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            timeout: Duration::from_secs(600),
            max_output: 1 << 20,
            runner_dir: None,
            target_dir: None,
            quiet: false,
            env: BTreeMap::new(),
            incremental: false,
        }
    }
}

/// A notebook that ran to the end.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The notebook, root-relative.
    pub notebook: String,
    /// How many cells executed.
    pub cells: usize,
    /// Whether its outputs changed (were written, or would be with `check`).
    pub changed: bool,
    /// Time the program ran (not counting the build).
    pub elapsed: Duration,
}

struct Prepared {
    file: NotebookFile,
    notebook: Notebook,
    program: Program,
    manifest: PathBuf,
}

/// Runs `notebooks`. Notebooks that succeed are written back even when
/// others fail; the error then lists every failure.
pub fn run(ws: &Workspace, notebooks: &[NotebookFile], options: &Options) -> Result<Vec<Outcome>> {
    let runner_dir = options.runner_dir.clone().unwrap_or_else(|| ws.root().join("target").join("caio-runner"));
    let mut errors = Vec::new();
    let mut prepared = Vec::new();
    for file in notebooks {
        match prepare(file, &runner_dir) {
            Ok(p) => prepared.push(p),
            Err(e) => errors.push(e),
        }
    }
    if prepared.is_empty() {
        Error::from_list(errors)?;
        return Ok(Vec::new());
    }
    // Every notebook of the workspace gets its crate in the runner
    // workspace, run or not: cargo unifies dependency features over the
    // crates it builds, so building a different subset each time would
    // rebuild the dependencies. Notebooks that do not prepare are left out.
    let selected: std::collections::BTreeSet<&str> = prepared.iter().map(|p| p.file.rel.as_str()).collect();
    // Each member's slug, with its cargo profile.
    let mut members: BTreeMap<String, &str> = prepared.iter().map(|p| (slug(&p.file.rel), profile(&p.file))).collect();
    for other in ws.notebooks()?.iter().filter(|f| !selected.contains(f.rel.as_str())) {
        if prepare(other, &runner_dir).is_ok() {
            members.insert(slug(&other.rel), profile(other));
        }
    }
    write_workspace(ws, &runner_dir, members.keys())?;

    // Each profile builds all of its notebooks, so that its dependency
    // features are the same on every build; a profile none of this run's
    // notebooks needs is not built at all.
    let target_dir = options.target_dir.clone().unwrap_or_else(|| build_dir(ws, "caio-runner"));
    let needed: std::collections::BTreeSet<&str> = prepared.iter().map(|p| profile(&p.file)).collect();
    let mut built = cargo::Built::default();
    for profile_name in needed {
        let packages: Vec<String> =
            members.iter().filter(|(_, p)| **p == profile_name).map(|(slug, _)| format!("nb-{slug}")).collect();
        let build_progress = Progress::new("building", packages.len(), options.quiet);
        built.merge(cargo::build(
            &runner_dir.join("Cargo.toml"),
            &target_dir,
            profile_name,
            &packages,
            options.incremental,
            &build_progress,
        )?);
        build_progress.finish();
    }

    let mut runnable = Vec::new();
    for p in prepared {
        if let Some(diagnostics) = built.errors.get(&p.manifest) {
            let messages: Vec<String> = diagnostics
                .iter()
                .take(8)
                .map(|d| {
                    cargo::describe(d, &p.file.rel, &p.program.source_map, |cell, line| {
                        cell_ref(&p.notebook, cell).at_line(line).to_string()
                    })
                })
                .collect();
            errors.push(Error::File {
                path: p.file.rel.clone(),
                message: format!("does not compile:\n{}", messages.join("\n")),
            });
        } else if let Some(executable) = built.executables.get(&p.manifest) {
            runnable.push((p, executable.clone()));
        } else {
            errors.push(Error::File {
                path: p.file.rel.clone(),
                message: format!(
                    "cargo did not build its runner crate and gave no diagnostic for it (rustc may have crashed or run out of memory; other notebooks are not affected):\n{}",
                    cargo_lines_about(&built.cargo_stderr, &slug(&p.file.rel))
                ),
            });
        }
    }

    let progress = Progress::new("running", runnable.len(), options.quiet);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1).min(runnable.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((p, executable)) = runnable.get(i) else { break };
                    progress.message(&p.file.rel);
                    let result = execute(p, executable, options);
                    let status = match &result {
                        Ok(o) if options.check && o.changed => "outputs out of date".to_owned(),
                        Ok(o) => format!(
                            "{} cells in {:.1}s{}",
                            o.cells,
                            o.elapsed.as_secs_f64(),
                            if o.changed { ", outputs updated" } else { "" }
                        ),
                        Err(_) => "failed".to_owned(),
                    };
                    progress.finished(&p.file.rel, &status);
                    results.lock().expect("no worker panics while holding the lock").push((i, result));
                }
            });
        }
    });
    progress.finish();
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|(i, _)| *i);
    let mut outcomes = Vec::new();
    for (_, result) in results {
        match result {
            Ok(outcome) if options.check && outcome.changed => errors.push(Error::File {
                path: outcome.notebook.clone(),
                message: "its outputs are out of date: run `cargo xtask run` on it and commit the result".into(),
            }),
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => errors.push(e),
        }
    }
    Error::from_list(errors)?;
    Ok(outcomes)
}

fn cell_ref(notebook: &Notebook, index: usize) -> CellRef {
    CellRef::new(index, notebook.cells.get(index).and_then(Cell::id))
}

fn prepare(file: &NotebookFile, runner_dir: &Path) -> Result<Prepared> {
    let notebook = file.load()?;
    notebook.check_rust_kernel().map_err(|p| Error::File { path: file.rel.clone(), message: p.to_string() })?;
    let dir = file.path.parent().unwrap_or(Path::new("."));
    let program = program::build(&notebook, dir).map_err(|problems| {
        Error::Many(
            problems
                .into_iter()
                .map(|p| Error::Cell { path: file.rel.clone(), cell: p.cell, message: p.message })
                .collect(),
        )
    })?;
    let crate_dir = runner_dir.join("nb").join(slug(&file.rel));
    let mut package = toml::Table::new();
    package.insert("name".into(), format!("nb-{}", slug(&file.rel)).into());
    package.insert("version".into(), "0.0.0".into());
    // evcxr (0.22) compiles cells as edition 2024.
    package.insert("edition".into(), "2024".into());
    package.insert("publish".into(), false.into());
    let mut manifest = toml::Table::new();
    manifest.insert("package".into(), package.into());
    manifest.insert("dependencies".into(), program.deps.clone().into_iter().collect::<toml::Table>().into());
    let manifest_text = format!(
        "# Generated by `cargo xtask run` from {}; rewritten on every run.\n{}",
        file.rel,
        toml::to_string(&manifest).map_err(|e| Error::File {
            path: file.rel.clone(),
            message: format!("cannot write its runner manifest: {e}")
        })?
    );
    let manifest = crate_dir.join("Cargo.toml");
    fsutil::write_if_changed(&manifest, &manifest_text)?;
    fsutil::write_if_changed(&crate_dir.join("src").join("main.rs"), &program.main_rs)?;
    let manifest = manifest.canonicalize().map_err(|e| Error::io(manifest.display(), "resolve", e))?;
    Ok(Prepared { file: file.clone(), notebook, program, manifest })
}

/// Where cargo builds a workbench tool's crates (`name` is `caio-runner`
/// or `caio-mutants`): `target/<name>/target` in the workspace, or, when
/// `CARGO_TARGET_DIR` is set, `$CARGO_TARGET_DIR/<name>/<digest of the
/// workspace root>`. The digest keeps clones that share one target
/// directory apart: cargo names the artifacts of path crates by their path
/// relative to the workspace, so two clones' crates would overwrite each
/// other's in one build directory and cargo would take them for fresh.
pub fn build_dir(ws: &Workspace, name: &str) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(shared) => {
            use sha2::{Digest, Sha256};
            let root = ws.root().canonicalize().unwrap_or_else(|_| ws.root().to_path_buf());
            let digest = Sha256::digest(root.to_string_lossy().as_bytes());
            let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            let shared = PathBuf::from(shared);
            let shared = if shared.is_absolute() { shared } else { ws.root().join(shared) };
            shared.join(name).join(short)
        }
        None => ws.root().join("target").join(name).join("target"),
    }
}

/// The lines of cargo's stderr about one runner crate (at most eight, each
/// cut to 200 characters): a compiler crash prints pages of backtrace that
/// say nothing to a notebook author.
fn cargo_lines_about(stderr: &str, slug: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(slug) || l.trim_start().starts_with("error"))
        .take(8)
        .map(|l| {
            if l.chars().count() > 200 {
                format!("{}...", l.chars().take(200).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect();
    if lines.is_empty() { "(cargo printed nothing about it)".to_string() } else { lines.join("\n") }
}

/// `notebooks/examples/tour.ipynb` -> `examples-tour`.
fn slug(rel: &str) -> String {
    let stem = rel.strip_prefix("notebooks/").unwrap_or(rel);
    let stem = stem.strip_suffix(".ipynb").unwrap_or(stem);
    stem.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The cargo profile of a notebook's runner crate.
///
/// Verification notebooks run thousands of generated
/// cases and measure speed: they build, with their dependencies, at
/// opt-level 2, as evcxr compiles by default. Every other notebook runs in
/// well under a second and builds at opt-level 0, dependencies included,
/// in a profile of its own, so a validate whose evidence is fresh never
/// compiles the optimized dependencies. Outputs do not depend on the level
/// (Rust has no fast-math; debug assertions and overflow checks are on in
/// both). Measured on 2 cores, a cold build of the 18 notebooks that are
/// not verification notebooks: 106 s, against 277 s for all 27 in one
/// optimized build.
fn profile(file: &NotebookFile) -> &'static str {
    if file.is_verification() { VERIFY_PROFILE } else { "dev" }
}

/// The profile of the verification notebooks.
const VERIFY_PROFILE: &str = "verify";

/// The runner workspace: one member per notebook (`slugs`, in order). Its
/// lock file starts from the project's `Cargo.lock`, so notebooks use the
/// versions the project tested, and only what notebooks add on top is
/// resolved afresh.
fn write_workspace<'a>(ws: &Workspace, runner_dir: &Path, slugs: impl Iterator<Item = &'a String>) -> Result<()> {
    let members = toml::Value::Array(slugs.map(|s| toml::Value::String(format!("nb/{s}"))).collect());
    // No debug information: panics still name their line, and the build
    // takes a fifth of the disk (6.8 GB with it). Incremental state is
    // kept where asked for: a mutant rebuilds the calculus and every
    // verification notebook in about 12 s with it, 60 s without.
    let text = format!(
        "# Generated by `cargo xtask run`.\n[workspace]\nresolver = \"2\"\nmembers = {members}\n\n[profile.dev]\nopt-level = 0\ndebug = false\n\n[profile.{VERIFY_PROFILE}]\ninherits = \"dev\"\nopt-level = 2\n"
    );
    fsutil::write_if_changed(&runner_dir.join("Cargo.toml"), &text)?;
    let project_lock = ws.root().join("Cargo.lock");
    if let Ok(lock) = std::fs::read_to_string(&project_lock) {
        let seed = runner_dir.join("Cargo.lock.seed");
        if std::fs::read_to_string(&seed).ok().as_deref() != Some(lock.as_str()) {
            fsutil::write_atomic(&runner_dir.join("Cargo.lock"), lock.as_bytes())?;
            fsutil::write_atomic(&seed, lock.as_bytes())?;
        }
    }
    Ok(())
}

fn execute(p: &Prepared, executable: &Path, options: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let env = options.env.get(&p.file.rel).map(Vec::as_slice).unwrap_or_default();
    let (status, stdout, stderr) = run_with_timeout(
        executable,
        p.file.path.parent().unwrap_or(Path::new(".")),
        env,
        options.timeout,
        options.max_output,
    )
    .map_err(|e| Error::io(&p.file.rel, "run the program of", e))?;
    let elapsed = started.elapsed();
    let runs = capture::split_by_cell(&stdout, &stderr);
    let path = p.file.rel.clone();
    for index in &p.program.executed {
        let run = runs.get(index).cloned().unwrap_or_default();
        let cell = cell_ref(&p.notebook, *index);
        let fail = |cell: CellRef, message: String| Err(Error::Cell { path: path.clone(), cell, message });
        if let Some(panic) = &run.panic {
            return match p.program.source_map.lookup(panic.line).filter(|_| panic.file.ends_with("src/main.rs")) {
                Some((_, line)) => match panic.message.strip_prefix("caio-persist: ") {
                    // Not a panic of the notebook's code: the variable evcxr could not keep.
                    Some(message) => fail(cell.at_line(line), message.to_string()),
                    None => fail(cell.at_line(line), format!("panicked: {}", panic.message)),
                },
                None => {
                    fail(cell, format!("panicked at {}:{}:{}: {}", panic.file, panic.line, panic.column, panic.message))
                }
            };
        }
        if run.user_error {
            return fail(cell, format!("returned an error through `?`: {}", run.stderr.trim_end()));
        }
        if !run.completed {
            let why = match status {
                None => format!(
                    "did not finish within {}s; the runner stopped it (raise --timeout if it needs longer)",
                    options.timeout.as_secs()
                ),
                Some(code) => format!("stopped before the cell finished (exit status {code})"),
            };
            let tail: String =
                run.stderr.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return fail(cell, format!("{why}{}{tail}", if tail.is_empty() { "" } else { ":\n" }));
        }
    }
    let mut updated = p.notebook.clone();
    let mut count = 0;
    for (index, cell) in updated.cells.iter_mut().enumerate() {
        let Cell::Code(code) = cell else { continue };
        if p.program.executed.contains(&index) {
            count += 1;
            code.execution_count = Some(count);
            code.outputs = capture::outputs(runs.get(&index).expect("every executed cell completed"), count);
        } else {
            code.execution_count = None;
        }
    }
    let json = updated.to_json();
    let changed = fsutil::read(&p.file.path)? != json;
    if changed && !options.check {
        fsutil::write_atomic(&p.file.path, json.as_bytes())?;
    }
    Ok(Outcome { notebook: path, cells: p.program.executed.len(), changed, elapsed })
}

/// Runs a program in `dir`, capturing its output. The status is `None` if
/// it was killed after `timeout`.
fn run_with_timeout(
    executable: &Path,
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
    max_output: usize,
) -> std::io::Result<(Option<i32>, String, String)> {
    let mut child = Command::new(executable)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let reader = |stream: Box<dyn Read + Send>| std::thread::spawn(move || bounded::read_bounded(stream, max_output));
    let stdout = reader(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = reader(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok((status, stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiler_crash_is_told_in_a_few_lines() {
        let backtrace: String = (0..500).map(|i| format!("  {i}: 0x7f00 - llvm::SelectionDAG::Combine\n")).collect();
        let stderr = format!(
            "   Compiling nb-verify-big v0.0.0\n{backtrace}error: could not compile `nb-verify-big` (bin \"nb-verify-big\")\nCaused by:\n  process didn't exit successfully: `rustc ...` (signal: 11, SIGSEGV: invalid memory reference)\n{}\n",
            "x".repeat(1000)
        );
        let told = cargo_lines_about(&stderr, "verify-big");
        assert_eq!(told.lines().count(), 2, "{told}");
        assert!(told.contains("could not compile `nb-verify-big`"));
        assert!(!told.contains("SelectionDAG"));
        assert_eq!(cargo_lines_about("", "x"), "(cargo printed nothing about it)");
    }
}
