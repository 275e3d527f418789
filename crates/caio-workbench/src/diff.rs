//! `cargo xtask diff`: notebook changes as a reviewer reads them.
//!
//! A notebook's JSON diff buries a one-line change of code among escaped
//! quotes, execution counts and output blobs. Here cells are matched by id
//! and each change is told as what it is: a cell added, removed or moved,
//! a unified diff of its source, and its outputs summarized (kinds, lines,
//! bytes and a short digest), never dumped. [`textconv`] is the same view
//! for git's diff driver (`diff.caio-notebook.textconv`), so `git diff` and
//! `git log -p` read a notebook as cells.
//!
//! It only reads: files, and git's objects through `git show`.

use std::collections::BTreeMap;
use std::fmt::Write;

use caio_notebook::{Cell, Notebook, Output};
use serde_json::Value;
use sha2::{Digest, Sha256};
use similar::TextDiff;

use crate::error::{Error, Result};
use crate::workspace::Workspace;

fn short_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn lines_word(text: &str) -> String {
    let n = text.lines().count();
    format!("{n} line{}", if n == 1 { "" } else { "s" })
}

/// One output in a line: its kind, its size and a digest of its content.
fn summarize(output: &Output) -> String {
    let data_summary = |data: &serde_json::Map<String, Value>| -> String {
        data.iter()
            .map(|(mime, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
                    other => other.to_string(),
                };
                format!("{mime} {} bytes #{}", text.len(), short_digest(&text))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match output {
        Output::Stream(s) => {
            let text = s.text.text();
            format!("{} {} #{}", s.name, lines_word(&text), short_digest(&text))
        }
        Output::DisplayData(d) => format!("display {}", data_summary(&d.data)),
        Output::ExecuteResult(r) => format!("result {}", data_summary(&r.data)),
        Output::Error(e) => format!("error {}: {}", e.ename, e.evalue.lines().next().unwrap_or("")),
    }
}

fn outputs_of(cell: &Cell) -> Vec<String> {
    match cell {
        Cell::Code(code) => code.outputs.iter().map(summarize).collect(),
        _ => Vec::new(),
    }
}

fn cell_name(index: usize, cell: &Cell) -> String {
    format!("cell {} `{}` ({})", index + 1, cell.id().unwrap_or("no id"), cell.kind())
}

/// A notebook as text for git's diff driver: each cell's kind, id and
/// source, and one summary line per output.
pub fn textconv(notebook: &Notebook) -> String {
    let mut out = String::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        let _ = writeln!(out, "# %% {}", cell_name(index, cell));
        let source = cell.source().text();
        out.push_str(&source);
        if !source.is_empty() && !source.ends_with('\n') {
            out.push('\n');
        }
        for summary in outputs_of(cell) {
            let _ = writeln!(out, "# -> {summary}");
        }
    }
    out
}

/// [`textconv`] of a notebook file.
pub fn textconv_file(path: &std::path::Path) -> Result<String> {
    Ok(textconv(&Notebook::load(path)?))
}

/// The changes from `old` to `new` of one notebook, cell by cell; empty when
/// they say the same.
pub fn notebooks(old: &Notebook, new: &Notebook) -> String {
    let mut out = String::new();
    let position = |notebook: &Notebook| -> BTreeMap<String, usize> {
        notebook.cells.iter().enumerate().filter_map(|(i, c)| c.id().map(|id| (id.to_owned(), i))).collect()
    };
    let (old_at, new_at) = (position(old), position(new));
    // Cells in the new order; removed cells where they were.
    for (index, cell) in new.cells.iter().enumerate() {
        let name = cell_name(index, cell);
        let Some(&before) = cell.id().and_then(|id| old_at.get(id)) else {
            let _ = writeln!(out, "{name}: added");
            for line in cell.source().text().lines() {
                let _ = writeln!(out, "    +{line}");
            }
            continue;
        };
        let previous = &old.cells[before];
        let mut changes = Vec::new();
        if previous.kind() != cell.kind() {
            changes.push(format!("was a {} cell", previous.kind()));
        }
        let moved = old.cells[..before].iter().filter(|c| c.id().is_some_and(|id| new_at.contains_key(id))).count()
            != new.cells[..index].iter().filter(|c| c.id().is_some_and(|id| old_at.contains_key(id))).count();
        if moved {
            changes.push(format!("moved (was cell {})", before + 1));
        }
        let (was, is) = (previous.source().text(), cell.source().text());
        if previous.metadata() != cell.metadata() {
            changes.push("metadata changed".into());
        }
        let (old_outputs, new_outputs) = (outputs_of(previous), outputs_of(cell));
        if old_outputs != new_outputs {
            changes.push(format!("outputs changed: [{}] -> [{}]", old_outputs.join("; "), new_outputs.join("; ")));
        }
        if was != is {
            changes.insert(0, "source changed".into());
        }
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{name}: {}", changes.join(", "));
        if was != is {
            let diff = TextDiff::from_lines(&was, &is);
            for line in diff.unified_diff().context_radius(2).to_string().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for (index, cell) in old.cells.iter().enumerate() {
        if cell.id().is_none_or(|id| !new_at.contains_key(id)) {
            let _ = writeln!(out, "{}: removed", cell_name(index, cell));
        }
    }
    let keys: std::collections::BTreeSet<&String> = old.metadata.keys().chain(new.metadata.keys()).collect();
    for key in keys {
        if old.metadata.get(key) != new.metadata.get(key) {
            let _ = writeln!(out, "notebook metadata `{key}` changed");
        }
    }
    out
}

fn parse(text: &str, label: &str) -> Result<Notebook> {
    Notebook::parse(text).map_err(|problem| Error::File { path: label.to_owned(), message: problem.to_string() })
}

/// Every notebook that differs between `rev` and the working tree, each
/// with its cell-level changes (a path and what happened to it).
pub fn against(ws: &Workspace, rev: &str) -> Result<Vec<(String, String)>> {
    crate::git::output(ws, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).map_err(|_| {
        Error::File {
            path: ".".into(),
            message: format!("`{rev}` is not a commit of this repository: give a branch, tag or commit id"),
        }
    })?;
    let listing = crate::git::output(ws, &["diff", "--name-status", "--no-renames", "-z", rev, "--", "*.ipynb"])?;
    let listing = String::from_utf8_lossy(&listing).into_owned();
    let fields: Vec<&str> = listing.split('\0').filter(|f| !f.is_empty()).collect();
    // `git diff` names paths from the repository's top; the workspace may sit below it.
    let prefix = crate::git::text(ws, &["rev-parse", "--show-prefix"])?;
    let mut changes = Vec::new();
    for pair in fields.chunks(2) {
        let [status, path] = pair else { continue };
        let rel = path.strip_prefix(&prefix).unwrap_or(path).to_owned();
        let old = if status.starts_with('A') {
            None
        } else {
            let text = crate::git::output(ws, &["show", &format!("{rev}:./{rel}")])?;
            Some(parse(&String::from_utf8_lossy(&text), &format!("{rev}:{rel}"))?)
        };
        let new = if status.starts_with('D') {
            None
        } else {
            let file = ws.path(&rel);
            Some(parse(&crate::fsutil::read(&file)?, &rel)?)
        };
        let text = match (&old, &new) {
            (Some(old), Some(new)) => notebooks(old, new),
            (None, Some(new)) => format!("added, {} cells\n{}", new.cells.len(), indent(&textconv(new))),
            (Some(old), None) => format!("removed ({} cells)\n", old.cells.len()),
            (None, None) => continue,
        };
        if !text.is_empty() {
            changes.push((rel, text));
        }
    }
    Ok(changes)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
