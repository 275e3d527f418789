//! `cargo xtask clean`: normalizes notebooks so that they diff well and are
//! byte-stable, keeping their outputs.
//!
//! What it changes: volatile metadata (execution timings, scroll and
//! collapse state, widget state) is removed; execution counts are renumbered
//! 1, 2, 3... in document order (cells never run stay `null`); cells get ids
//! where they have none or share one (nbformat 4.5); multi-line strings are
//! stored as Jupyter stores them; the file is written in Jupyter's layout.
//! What it never changes: sources, outputs, and metadata it does not know.

use std::collections::BTreeSet;

use caio_notebook::{Cell, Notebook, Output};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::{NotebookFile, Workspace};

/// Cell metadata that records a moment of a session, not the notebook.
const VOLATILE_CELL_METADATA: &[&str] = &["execution", "ExecuteTime", "collapsed", "scrolled", "trusted"];
/// Notebook metadata of the same kind.
const VOLATILE_NOTEBOOK_METADATA: &[&str] = &["widgets"];

/// Cleans one notebook in memory.
pub fn clean(notebook: &mut Notebook) {
    for key in VOLATILE_NOTEBOOK_METADATA {
        notebook.metadata.remove(*key);
    }
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for (index, cell) in notebook.cells.iter_mut().enumerate() {
        for key in VOLATILE_CELL_METADATA {
            cell.metadata_mut().remove(*key);
        }
        let id = match cell.id() {
            Some(id) if valid_id(id) && !seen.contains(id) => id.to_owned(),
            _ => fresh_id(index, &cell.source().text(), &seen),
        };
        seen.insert(id.clone());
        cell.set_id(id);
        if let Cell::Code(code) = cell {
            if code.execution_count.is_some() {
                count += 1;
                code.execution_count = Some(count);
            }
            for output in &mut code.outputs {
                if let Output::ExecuteResult(result) = output {
                    result.execution_count = code.execution_count;
                }
            }
        }
    }
    notebook.nbformat_minor = notebook.nbformat_minor.max(5);
    notebook.split_lines();
}

/// nbformat 4.5: 1 to 64 letters, digits, `-` and `_`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A new id derived from the cell's position and content, so that cleaning
/// the same notebook twice gives the same ids.
fn fresh_id(index: usize, source: &str, taken: &BTreeSet<String>) -> String {
    (0u32..)
        .map(|salt| {
            let digest = Sha256::digest(format!("{index}\u{0}{salt}\u{0}{source}").as_bytes());
            digest.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>()
        })
        .find(|id| !taken.contains(id))
        .expect("some salt gives a free id")
}

/// Options of `cargo xtask clean`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Write nothing; fail if any notebook is not clean.
    pub check: bool,
}

/// The notebooks (all of the workspace if `notebooks` is empty) that
/// cleaning would change, each with its cleaned text.
fn cleaned(ws: &Workspace, notebooks: &[NotebookFile]) -> Result<Vec<(NotebookFile, String)>> {
    let all;
    let notebooks = if notebooks.is_empty() {
        all = ws.notebooks()?;
        &all
    } else {
        notebooks
    };
    let mut cleaned = Vec::new();
    let mut errors = Vec::new();
    for file in notebooks {
        let text = fsutil::read(&file.path)?;
        let mut notebook = match file.load() {
            Ok(notebook) => notebook,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        clean(&mut notebook);
        let json = notebook.to_json();
        if json != text {
            cleaned.push((file.clone(), json));
        }
    }
    Error::from_list(errors)?;
    Ok(cleaned)
}

/// Root-relative paths of the notebooks that are not clean.
pub fn unclean(ws: &Workspace) -> Result<Vec<String>> {
    Ok(cleaned(ws, &[])?.into_iter().map(|(file, _)| file.rel).collect())
}

/// Cleans `notebooks` (all notebooks of the workspace if empty). Returns
/// the notebooks that changed (or, with `check`, would change).
pub fn run(ws: &Workspace, notebooks: &[NotebookFile], options: Options) -> Result<Vec<String>> {
    let cleaned = cleaned(ws, notebooks)?;
    if options.check {
        let errors = cleaned
            .iter()
            .map(|(file, _)| Error::File {
                path: file.rel.clone(),
                message: "not clean (volatile metadata, execution counts, ids or layout): run `cargo xtask clean`"
                    .into(),
            })
            .collect();
        Error::from_list(errors)?;
    } else {
        for (file, json) in &cleaned {
            fsutil::write_atomic(&file.path, json.as_bytes())?;
        }
    }
    Ok(cleaned.into_iter().map(|(file, _)| file.rel).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_is_idempotent_and_keeps_outputs() {
        let source = r#"{"cells": [
          {"cell_type": "code", "execution_count": 7, "metadata": {"execution": {"t": 1}, "tags": ["x"]}, "outputs": [{"output_type": "execute_result", "data": {"text/plain": "1\n2"}, "metadata": {}, "execution_count": 7}], "source": "1"},
          {"cell_type": "code", "execution_count": null, "id": "dup", "metadata": {}, "outputs": [], "source": ""},
          {"cell_type": "code", "execution_count": 3, "id": "dup", "metadata": {"scrolled": true}, "outputs": [], "source": "x"}
        ], "metadata": {"widgets": {}, "kernelspec": {"name": "rust"}}, "nbformat": 4, "nbformat_minor": 4}"#;
        let mut notebook = Notebook::parse(source).unwrap();
        clean(&mut notebook);
        let once = notebook.to_json();
        let mut again = Notebook::parse(&once).unwrap();
        clean(&mut again);
        assert_eq!(again.to_json(), once, "clean must be idempotent");

        assert_eq!(notebook.nbformat_minor, 5);
        assert!(!notebook.metadata.contains_key("widgets"));
        let ids: Vec<_> = notebook.cells.iter().map(|c| c.id().unwrap().to_owned()).collect();
        assert_eq!(ids[1], "dup");
        assert_ne!(ids[2], "dup");
        let Cell::Code(first) = &notebook.cells[0] else { panic!() };
        assert_eq!(first.execution_count, Some(1));
        assert_eq!(first.metadata.get("tags"), Some(&serde_json::json!(["x"])));
        assert!(!first.metadata.contains_key("execution"));
        let Output::ExecuteResult(result) = &first.outputs[0] else { panic!() };
        assert_eq!(result.execution_count, Some(1));
        assert_eq!(result.data["text/plain"], serde_json::json!(["1\n", "2"]));
        let Cell::Code(third) = &notebook.cells[2] else { panic!() };
        assert_eq!(third.execution_count, Some(2));
    }
}
