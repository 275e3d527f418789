//! `cargo xtask run --engine evcxr`: whether the notebooks really run
//! unchanged in Jupyter. The notebooks are executed cell by cell through
//! evcxr's own evaluation context, the engine inside `evcxr_jupyter`, by
//! the separate program `tools/evcxr-engine` (built on first use: evcxr,
//! with rust-analyzer inside, takes minutes to compile, so the default
//! commands never build it), and each cell's outputs are compared with the
//! native runner's (the notebook's outputs, which `run --check` keeps
//! current). A cell whose outputs change from run to run (timings) is
//! marked `//| volatile`: only the kinds of its outputs are compared.
//!
//! This module never writes a notebook.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use caio_notebook::{Cell, Notebook, Output, directives};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::workspace::{NotebookFile, Workspace};

/// The engine's manifest, relative to the workspace root.
pub const ENGINE_MANIFEST: &str = "tools/evcxr-engine/Cargo.toml";

/// The prefix of the engine's lines that carry a cell's record.
const RECORD: &str = "caio-evcxr-record ";

/// What the engine reports for one executed cell.
#[derive(Debug, Clone, Deserialize)]
struct Record {
    cell: usize,
    stdout: String,
    stderr: String,
    data: BTreeMap<String, String>,
    error: Option<String>,
}

/// A cell's outputs, reduced to what both engines produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellOutputs {
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
    /// The result, by MIME type.
    pub data: BTreeMap<String, String>,
}

impl CellOutputs {
    fn kinds(&self) -> (bool, bool, Vec<&String>) {
        (!self.stdout.is_empty(), !self.stderr.is_empty(), self.data.keys().collect())
    }
}

fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect(),
        other => other.to_string(),
    }
}

/// The native runner's outputs of a cell, as the notebook holds them.
pub fn native_outputs(outputs: &[Output]) -> CellOutputs {
    let mut cell = CellOutputs::default();
    for output in outputs {
        match output {
            Output::Stream(stream) if stream.name == "stderr" => cell.stderr.push_str(&stream.text.text()),
            Output::Stream(stream) => cell.stdout.push_str(&stream.text.text()),
            Output::ExecuteResult(result) => {
                cell.data.extend(result.data.iter().map(|(k, v)| (k.clone(), text_of(v))));
            }
            Output::DisplayData(display) => {
                cell.data.extend(display.data.iter().map(|(k, v)| (k.clone(), text_of(v))));
            }
            Output::Error(_) => {}
        }
    }
    cell
}

/// How a cell's outputs under evcxr differ from the native runner's, if
/// they do; a volatile cell is compared by the kinds of its outputs only.
pub fn compare(native: &CellOutputs, evcxr: &CellOutputs, volatile: bool) -> Option<String> {
    let differs = if volatile { native.kinds() != evcxr.kinds() } else { native != evcxr };
    differs.then(|| {
        format!(
            "{}: the outputs differ\n  native runner: {native:?}\n  evcxr:         {evcxr:?}",
            if volatile { " (volatile: kinds only)" } else { "" }
        )
    })
}

/// One notebook's conformance.
#[derive(Debug, Clone)]
pub struct NotebookReport {
    /// Root-relative path.
    pub notebook: String,
    /// Cells executed by evcxr.
    pub cells: usize,
    /// Seconds under evcxr.
    pub seconds: f64,
    /// Each difference: the cell, and what differs.
    pub differences: Vec<String>,
}

/// Builds the engine (once; cargo keeps it fresh) and returns its path.
fn build_engine(ws: &Workspace, progress: &Progress) -> Result<PathBuf> {
    let target = crate::runner::build_dir(ws, "caio-evcxr");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    progress.log("building the evcxr engine (tools/evcxr-engine; several minutes the first time)");
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(ws.path(ENGINE_MANIFEST))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .map_err(|e| Error::io("cargo", "start", e))?;
    if !status.success() {
        return Err(Error::File {
            path: ENGINE_MANIFEST.into(),
            message: "cargo could not build the evcxr engine".into(),
        });
    }
    Ok(target.join("release").join("caio-evcxr-engine"))
}

/// Runs `notebooks` through evcxr and compares every cell with the native
/// runner's outputs, `jobs` notebooks at a time (each worker has its own
/// evcxr build directory). `env` holds each notebook's environment (by
/// root-relative path), as the native runner gets it. Reports come back in
/// the order of `notebooks`.
pub fn conformance(
    ws: &Workspace,
    notebooks: &[NotebookFile],
    env: &BTreeMap<String, Vec<(String, String)>>,
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<NotebookReport>> {
    let engine = build_engine(ws, progress)?;
    // An empty configuration directory: a user's `init.evcxr` must not change the verdict.
    let config = crate::runner::build_dir(ws, "caio-evcxr").join("config");
    std::fs::create_dir_all(&config).map_err(|e| Error::io(config.display(), "create", e))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<NotebookReport>>>> =
        std::sync::Mutex::new(notebooks.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for worker in 0..jobs.clamp(1, notebooks.len().max(1)) {
            let (engine, config, next, results) = (&engine, &config, &next, &results);
            scope.spawn(move || {
                // One evcxr build directory per worker, kept between its
                // notebooks and runs, so that a dependency compiled for one
                // notebook is reused by the next (what `:cache` does for a user).
                let tmpdir = crate::runner::build_dir(ws, "caio-evcxr").join(format!("context-{worker}"));
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(file) = notebooks.get(index) else { return };
                    let worker = Worker { engine, tmpdir: &tmpdir, config };
                    let report =
                        worker.conform(file, env.get(&file.rel).map(Vec::as_slice).unwrap_or_default(), progress);
                    results.lock().expect("no worker panics holding the lock")[index] = Some(report);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|r| r.expect("every notebook was taken"))
        .collect()
}

/// What one worker runs notebooks with.
struct Worker<'a> {
    engine: &'a std::path::Path,
    tmpdir: &'a std::path::Path,
    config: &'a std::path::Path,
}

/// The last lines the engine printed on stderr (evcxr's and cargo's own
/// messages), shown only when it fails.
const STDERR_TAIL_LINES: usize = 40;

impl Worker<'_> {
    /// Runs one notebook through the engine and compares its cells.
    fn conform(&self, file: &NotebookFile, env: &[(String, String)], progress: &Progress) -> Result<NotebookReport> {
        let notebook =
            Notebook::load(&file.path).map_err(|e| Error::File { path: file.rel.clone(), message: e.to_string() })?;
        std::fs::create_dir_all(self.tmpdir).map_err(|e| Error::io(self.tmpdir.display(), "create", e))?;
        progress.message(&format!("{} (evcxr)", file.rel));
        let started = Instant::now();
        let mut child = Command::new(self.engine)
            .arg(&file.path)
            .env("EVCXR_TMPDIR", self.tmpdir)
            .env("EVCXR_CONFIG_DIR", self.config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(self.engine.display(), "start", e))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail.into_iter().collect::<Vec<_>>().join("\n")
        });
        let mut records: BTreeMap<usize, Record> = BTreeMap::new();
        for line in BufReader::new(child.stdout.take().expect("stdout is piped")).lines() {
            let line = line.map_err(|e| Error::io(&file.rel, "read the evcxr engine's report on", e))?;
            let Some(line) = line.strip_prefix(RECORD) else {
                // evcxr's own chatter ("No configuration file found, ..."): not a cell's output.
                continue;
            };
            let record: Record = serde_json::from_str(line).map_err(|e| Error::File {
                path: file.rel.clone(),
                message: format!("the evcxr engine said something unreadable ({e}): {line}"),
            })?;
            records.insert(record.cell, record);
        }
        let status = child.wait().map_err(|e| Error::io(self.engine.display(), "wait for", e))?;
        let stderr_tail = tail.join().unwrap_or_default();
        let mut report = NotebookReport {
            notebook: file.rel.clone(),
            cells: records.len(),
            seconds: started.elapsed().as_secs_f64(),
            differences: Vec::new(),
        };
        if !status.success() {
            report
                .differences
                .push(format!("the evcxr engine stopped ({status}); the end of what it said:\n{stderr_tail}"));
        }
        for (index, cell) in notebook.cells.iter().enumerate() {
            let Cell::Code(code) = cell else { continue };
            let source = code.source.text();
            let parsed = directives::parse(&source).unwrap_or_default();
            if !parsed.eval || source.trim().is_empty() {
                continue;
            }
            let at = format!("cell {} (id {})", index + 1, code.id.as_deref().unwrap_or("-"));
            let Some(record) = records.get(&index) else {
                report.differences.push(format!("{at}: evcxr did not run it (an earlier cell failed)"));
                break;
            };
            if let Some(error) = &record.error {
                report.differences.push(format!("{at}: evcxr refused or failed it:\n{}", error.trim_end()));
                break;
            }
            let native = native_outputs(&code.outputs);
            let evcxr =
                CellOutputs { stdout: record.stdout.clone(), stderr: record.stderr.clone(), data: record.data.clone() };
            if let Some(difference) = compare(&native, &evcxr, parsed.volatile) {
                report.differences.push(format!("{at}{difference}"));
            }
        }
        progress.finished(
            &file.rel,
            &format!(
                "{} cells in {:.0} s under evcxr, {} differences",
                report.cells,
                report.seconds,
                report.differences.len()
            ),
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(stdout: &str, plain: Option<&str>) -> CellOutputs {
        CellOutputs {
            stdout: stdout.into(),
            stderr: String::new(),
            data: plain.map(|p| ("text/plain".to_string(), p.to_string())).into_iter().collect(),
        }
    }

    #[test]
    fn notebook_outputs_reduce_to_what_evcxr_reports() {
        let notebook = Notebook::parse(
            &serde_json::json!({"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "source": "x", "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["one\n", "two\n"]},
                {"output_type": "stream", "name": "stderr", "text": "warn\n"},
                {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": ["4", "2"]}}
            ]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
            .to_string(),
        )
        .expect("a notebook");
        let Cell::Code(code) = &notebook.cells[0] else { panic!("a code cell") };
        let outputs = native_outputs(&code.outputs);
        assert_eq!(outputs.stdout, "one\ntwo\n");
        assert_eq!(outputs.stderr, "warn\n");
        assert_eq!(outputs.data["text/plain"], "42");
    }

    #[test]
    fn any_difference_is_reported_and_volatile_cells_compare_kinds() {
        assert_eq!(compare(&cell("p50 12 us\n", None), &cell("p50 12 us\n", None), false), None);
        let differs = compare(&cell("p50 12 us\n", None), &cell("p50 15 us\n", None), false).expect("differs");
        assert!(differs.contains("p50 12 us") && differs.contains("p50 15 us"), "{differs}");
        assert_eq!(compare(&cell("p50 12 us\n", None), &cell("p50 15 us\n", None), true), None);
        assert!(compare(&cell("p50 12 us\n", None), &cell("p50 12 us\n", Some("()")), true).is_some());
        assert!(compare(&cell("", Some("1")), &cell("", Some("2")), false).is_some());
    }
}
