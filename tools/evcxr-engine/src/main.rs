//! # caio-evcxr-engine
//!
//! Executes notebooks the way Jupyter's evcxr kernel does: one evcxr
//! `CommandContext` per notebook, started in the notebook's directory, each
//! code cell executed as the kernel executes it, in order, stopping at the
//! first error. Prints one JSON object per executed cell on stdout, after the prefix
//! `caio-evcxr-record ` (the
//! notebook, the cell's index and id, what it printed on stdout and stderr,
//! its result by MIME type, its error), for `cargo xtask run --engine
//! evcxr` to compare with the native runner's outputs.
//!
//! This program only executes and reports: it never writes a notebook.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use caio_notebook::{Cell, Notebook, directives};
use serde_json::{Value, json};

/// The prefix of the lines that carry a cell's record.
const RECORD: &str = "caio-evcxr-record ";

/// What one of evcxr's output channels has delivered so far.
type Captured = Arc<Mutex<String>>;

/// Reads a channel on a thread of its own, as the kernel does: evcxr's
/// `execute` waits until its stdout channel has been emptied, so it must be
/// read while the cell runs.
fn capture(channel: crossbeam_channel::Receiver<String>) -> Captured {
    let captured = Captured::default();
    let sink = Arc::clone(&captured);
    std::thread::spawn(move || {
        for line in channel {
            let mut text = sink.lock().expect("the capture lock is never poisoned");
            // The kernel sends each line as a stream message of `line + "\n"`.
            text.push_str(&line);
            text.push('\n');
        }
    });
    captured
}

/// Takes what `captured` holds once it has been quiet for `quiet`: stderr
/// is forwarded by a thread evcxr does not wait for.
fn take_when_quiet(captured: &Captured, quiet: Duration) -> String {
    let mut seen = usize::MAX;
    loop {
        let len = captured.lock().expect("the capture lock is never poisoned").len();
        if len == seen {
            return std::mem::take(&mut *captured.lock().expect("the capture lock is never poisoned"));
        }
        seen = len;
        std::thread::sleep(quiet);
    }
}

fn run(path: &Path) -> Result<()> {
    let notebook = Notebook::load(path).with_context(|| format!("{}: cannot read the notebook", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::env::set_current_dir(dir).with_context(|| format!("cannot enter {}", dir.display()))?;
    let (mut context, outputs) = evcxr::CommandContext::new().map_err(|e| anyhow::anyhow!("evcxr did not start: {e}"))?;
    let (stdout, stderr) = (capture(outputs.stdout), capture(outputs.stderr));
    // What the kernel does when it starts (evcxr_jupyter's core.rs).
    context.execute(":load_config").map_err(|e| anyhow::anyhow!("evcxr could not load its configuration: {e}"))?;
    // The optimization level, as a user's `:opt` would set it: it changes
    // how long cells take to compile and run, never what they print.
    if let Ok(level) = std::env::var("CAIO_EVCXR_OPT") {
        if !matches!(level.as_str(), "0" | "1" | "2" | "3" | "s" | "z") {
            anyhow::bail!("CAIO_EVCXR_OPT must be one of 0, 1, 2, 3, s, z (evcxr's `:opt`), found `{level}`");
        }
        context.execute(&format!(":opt {level}")).map_err(|e| anyhow::anyhow!("evcxr refused `:opt {level}`: {e}"))?;
    }
    let quiet = Duration::from_millis(100);
    let _startup = (take_when_quiet(&stdout, quiet), take_when_quiet(&stderr, quiet));
    let shown = path.display().to_string();
    for (index, cell) in notebook.cells.iter().enumerate() {
        let Cell::Code(code) = cell else { continue };
        let source = code.source.text();
        let eval = directives::parse(&source).map(|d| d.eval).unwrap_or(true);
        if !eval || source.trim().is_empty() {
            continue;
        }
        let started = Instant::now();
        let outcome = context.execute(&source);
        let elapsed = started.elapsed();
        let (printed, warned) = (take_when_quiet(&stdout, quiet), take_when_quiet(&stderr, quiet));
        let (data, error) = match outcome {
            Ok(result) => {
                let mut data: Vec<(String, String)> = result.content_by_mime_type.into_iter().collect();
                data.sort();
                (data.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>(), None)
            }
            Err(e) => (serde_json::Map::new(), Some(e.to_string())),
        };
        let record = json!({
            "notebook": shown,
            "cell": index,
            "id": code.id,
            "stdout": printed,
            "stderr": warned,
            "data": data,
            "error": error,
            "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        });
        // evcxr itself prints on this process's stdout (`:load_config` does): mark ours.
        println!("{RECORD}{record}");
        if record["error"].is_string() {
            break;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    // The same executable is evcxr's subprocess: this must come first.
    evcxr::runtime_hook();
    let mut notebooks: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    for arg in args.by_ref() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("usage: caio-evcxr-engine NOTEBOOK...\n\nRuns each notebook through evcxr as the Jupyter kernel does and prints one JSON line per cell. EVCXR_TMPDIR, if set, is the build directory evcxr keeps between notebooks.");
                return Ok(());
            }
            _ => notebooks.push(std::fs::canonicalize(&arg).with_context(|| format!("{arg}: no such notebook"))?),
        }
    }
    for notebook in &notebooks {
        run(notebook)?;
    }
    Ok(())
}
