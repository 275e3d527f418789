//! Building the runner crates with one `cargo build` (so dependencies are
//! compiled once, in parallel, for all notebooks), and mapping compiler
//! errors back to notebook cells.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::program::SourceMap;
use crate::error::{Error, Result};
use crate::progress::Progress;

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    message: Option<Diagnostic>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    /// The target's name (the runner crate's binary).
    name: String,
}

/// A compiler diagnostic, as cargo's JSON messages carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct Diagnostic {
    /// The message.
    pub message: String,
    /// Error code such as `E0308`.
    #[serde(default)]
    pub code: Option<Code>,
    /// `error`, `warning`, ...
    pub level: String,
    /// Where it points.
    #[serde(default)]
    pub spans: Vec<Span>,
    /// Notes and help.
    #[serde(default)]
    pub children: Vec<Diagnostic>,
    /// The compiler's own rendering.
    #[serde(default)]
    pub rendered: Option<String>,
}

/// A diagnostic code.
#[derive(Debug, Clone, Deserialize)]
pub struct Code {
    /// `E0308` and the like.
    pub code: String,
}

/// A source span of a diagnostic.
#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    /// File, relative to the crate or absolute.
    pub file_name: String,
    /// 1-based first line.
    pub line_start: usize,
    /// 1-based column.
    pub column_start: usize,
    /// Whether this is where the error is.
    pub is_primary: bool,
    /// A note on the span.
    #[serde(default)]
    pub label: Option<String>,
    /// The source lines the span covers.
    #[serde(default)]
    pub text: Vec<SpanText>,
}

/// A source line of a span.
#[derive(Debug, Clone, Deserialize)]
pub struct SpanText {
    /// The line.
    pub text: String,
    /// 1-based first column of the span on it.
    pub highlight_start: usize,
    /// 1-based column after the span.
    pub highlight_end: usize,
}

/// The variable whose persistence check (`__caio_rt::persist`, inserted
/// after every top-level `let`) a diagnostic is about, if it is about one:
/// the compiler then says a borrow or a closure is not `'static`, and the
/// notebook needs evcxr's explanation instead.
fn persisted_variable(diagnostic: &Diagnostic) -> Option<String> {
    const CALL: &str = "__caio_rt::persist(&";
    let spans: Vec<&Span> =
        diagnostic.spans.iter().chain(diagnostic.children.iter().flat_map(|c| c.spans.iter())).collect();
    let calls = |line: &SpanText| -> Vec<String> {
        line.text
            .match_indices(CALL)
            .filter_map(|(at, _)| line.text[at + CALL.len()..].split(',').next().map(str::to_string))
            .collect()
    };
    // The span the compiler highlights in a persistence call names the
    // variable; other spans only share its line.
    let highlighted = spans.iter().flat_map(|s| &s.text).find_map(|line| {
        let highlight = line.text.get(line.highlight_start.saturating_sub(1)..line.highlight_end.saturating_sub(1))?;
        let argument = highlight.strip_prefix(CALL)?.split(',').next()?;
        calls(line).into_iter().find(|c| c == argument)
    });
    highlighted.or_else(|| {
        let needs_static = diagnostic.children.iter().any(|c| c.message.contains("'static"))
            || spans.iter().any(|s| s.label.as_deref().is_some_and(|l| l.contains("'static")));
        let mut found = spans.iter().flat_map(|s| &s.text).flat_map(calls);
        needs_static.then(|| found.next()).flatten()
    })
}

/// evcxr's explanation of a variable it cannot keep.
fn persistence_message(diagnostic: &Diagnostic, name: &str) -> String {
    // A closure that borrows: E0373, or E0597 on a value the closure captured.
    let closure = diagnostic.code.as_ref().is_some_and(|c| c.code == "E0373")
        || diagnostic.spans.iter().any(|s| s.label.as_deref().is_some_and(|l| l.contains("captured")));
    if closure {
        format!(
            "The variable `{name}` is a closure, which cannot be persisted (evcxr keeps every top-level variable of a cell for the next cells, and this one borrows local data: {}). Move the data into it, as in `let {name}: Box<dyn Fn(..)> = Box::new(move |..| ..);`, make it a `fn`, or wrap the code in braces so the variable is not kept.",
            diagnostic.message
        )
    } else {
        format!(
            "The variable `{name}` contains a reference with a non-static lifetime, so it can't be persisted (evcxr keeps every top-level variable of a cell for the next cells; {}). Make it own its data, or wrap the code that uses it in braces so it goes out of scope.",
            diagnostic.message
        )
    }
}

/// What the build produced, by runner crate manifest.
#[derive(Debug, Default)]
pub struct Built {
    /// Executables that were built.
    pub executables: BTreeMap<PathBuf, PathBuf>,
    /// Error diagnostics.
    pub errors: BTreeMap<PathBuf, Vec<Diagnostic>>,
    /// Cargo's own output, for failures no diagnostic explains.
    pub cargo_stderr: String,
}

/// Builds `packages` of the runner workspace at `manifest` with cargo's
/// `profile` (with `incremental`, incrementally whatever
/// `CARGO_INCREMENTAL` says).
pub fn build(
    manifest: &Path,
    target_dir: &Path,
    profile: &str,
    packages: &[String],
    incremental: bool,
    progress: &Progress,
) -> Result<Built> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    if incremental {
        command.env("CARGO_INCREMENTAL", "1");
    }
    let mut child = command
        .args(["build", "--profile", profile, "--keep-going", "--message-format=json"])
        .args(packages.iter().flat_map(|p| ["--package", p.as_str()]))
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_TERM_PROGRESS_WHEN", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cargo", "start", e))?;
    let stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr_reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(std::result::Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut built = Built::default();
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut cargo_stderr = String::new();
    let forward = |progress: &Progress, cargo_stderr: &mut String| {
        for line in lines_rx.try_iter() {
            progress.log(&line);
            cargo_stderr.push_str(&line);
            cargo_stderr.push('\n');
        }
    };
    for line in stdout.lines() {
        forward(progress, &mut cargo_stderr);
        let line = line.map_err(|e| Error::io("cargo", "read the output of", e))?;
        let Ok(message) = serde_json::from_str::<Message>(&line) else { continue };
        match message.reason.as_str() {
            "compiler-artifact" => {
                if let (Some(manifest), Some(executable)) = (message.manifest_path, message.executable) {
                    let name = message.target.map(|t| t.name).unwrap_or_default();
                    progress.finished(&name, "compiled");
                    built.executables.insert(manifest, executable);
                }
            }
            "compiler-message" => {
                if let (Some(manifest), Some(diagnostic)) = (message.manifest_path, message.message)
                    && diagnostic.level == "error"
                {
                    built.errors.entry(manifest).or_default().push(diagnostic);
                }
            }
            _ => {}
        }
    }
    child.wait().map_err(|e| Error::io("cargo", "wait for", e))?;
    let _ = stderr_reader.join();
    forward(progress, &mut cargo_stderr);
    built.cargo_stderr = cargo_stderr;
    Ok(built)
}

impl Built {
    /// Adds what another build produced.
    pub fn merge(&mut self, other: Built) {
        self.executables.extend(other.executables);
        self.errors.extend(other.errors);
        self.cargo_stderr.push_str(&other.cargo_stderr);
    }
}

/// One line per error, located in the notebook where possible.
pub fn describe(
    diagnostic: &Diagnostic,
    notebook: &str,
    map: &SourceMap,
    cell_ref: impl Fn(usize, usize) -> String,
) -> String {
    let code = diagnostic.code.as_ref().map(|c| format!("[{}]", c.code)).unwrap_or_default();
    let primary = diagnostic.spans.iter().find(|s| s.is_primary).or(diagnostic.spans.first());
    let mut text = match primary {
        Some(span)
            if span.file_name == "src/main.rs"
                || span.file_name.ends_with("/src/main.rs") && span.file_name.starts_with("nb/") =>
        {
            match map.lookup(span.line_start) {
                Some((cell, line)) => match persisted_variable(diagnostic) {
                    Some(name) => {
                        return format!(
                            "{notebook}: {}: {}",
                            cell_ref(cell, line),
                            persistence_message(diagnostic, &name)
                        );
                    }
                    None => format!("{notebook}: {}: error{code}: {}", cell_ref(cell, line), diagnostic.message),
                },
                None => format!(
                    "{notebook}: error{code} in code the runner generated around your cells (is a cell's last expression, or a `?`, of an unexpected type?): {}",
                    diagnostic.rendered.as_deref().unwrap_or(&diagnostic.message).trim_end()
                ),
            }
        }
        Some(span) => {
            format!("{notebook}: error{code} in {}:{}: {}", span.file_name, span.line_start, diagnostic.message)
        }
        None => format!("{notebook}: error{code}: {}", diagnostic.message),
    };
    if let Some(label) = primary.and_then(|s| s.label.as_deref()) {
        text.push_str(&format!(" ({label})"));
    }
    for child in &diagnostic.children {
        text.push_str(&format!("\n  {}: {}", child.level, child.message));
    }
    text
}
