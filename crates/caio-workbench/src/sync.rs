//! `cargo xtask sync`: carries edits made in generated files back into the
//! notebook cells they came from (like nbdev's `nbdev_update`), then
//! regenerates, so that `extract --check` is clean afterwards.
//!
//! Each region of a generated file records the digest of the code extract
//! wrote there. A region whose text no longer matches its digest was edited;
//! if the notebook cell also changed since (its rendering no longer matches
//! the digest either), the two edits conflict and sync stops rather than
//! lose one of them. Directive lines, cell ids and outputs stay as they are
//! in the notebook. Nothing is written unless every edit can be carried back
//! and still extracts.

use std::collections::BTreeMap;

use caio_notebook::{Cell, CellRef, MultilineText};

use crate::error::{Error, Result};
use crate::extract::header::{self, Marker, RegionKind};
use crate::extract::render::trim_blank_lines;
use crate::extract::source::{CellKind, ExportCell, ModuleSource};
use crate::extract::{self, Plan};
use crate::fsutil;
use crate::rustsrc;
use crate::workspace::{NotebookFile, Workspace};

/// What sync did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Notebook cells updated, as (notebook, cell id).
    pub cells: Vec<(String, String)>,
    /// What the extract that followed wrote.
    pub extract: extract::Report,
}

/// A generated file body split into the part above the first region and
/// the regions, each with its marker and its (unindented) text.
struct Regions {
    preamble: String,
    regions: Vec<(Marker, String)>,
}

fn split_regions(body: &str) -> Regions {
    let lines: Vec<&str> = body.lines().collect();
    let mut preamble = Vec::new();
    let mut regions: Vec<(Marker, Vec<&str>)> = Vec::new();
    let mut in_tests = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(marker) = Marker::parse(line) {
            regions.push((marker, Vec::new()));
        } else if line == "#[cfg(test)]" && lines.get(i + 1) == Some(&"mod tests {") {
            in_tests = true;
            i += 2;
            continue;
        } else if in_tests && (line == "}" || line == "    use super::*;") {
            // The tests module's own lines belong to no region.
        } else if let Some((_, text)) = regions.last_mut() {
            text.push(line);
        } else {
            preamble.push(line);
        }
        i += 1;
    }
    let regions = regions
        .into_iter()
        .map(|(marker, lines)| {
            let text = trim_blank_lines(&lines.join("\n")).to_owned();
            let text = if marker.kind == RegionKind::Test { rustsrc::dedent(&text, 4) } else { text };
            (marker, text)
        })
        .collect();
    Regions { preamble: preamble.join("\n").trim_end().to_owned(), regions }
}

/// Turns the code of an edited region back into notebook cell code.
fn unrender(cell: &ExportCell, text: &str, crate_name: &str) -> std::result::Result<String, String> {
    let code = match &cell.kind {
        CellKind::Items { hide, .. } => {
            if *hide {
                text.lines().filter(|l| l.trim() != "#[doc(hidden)]").collect::<Vec<_>>().join("\n")
            } else {
                text.to_owned()
            }
        }
        CellKind::Test { .. } => {
            let file = syn::parse_file(text).map_err(|e| format!("the test function no longer parses: {e}"))?;
            let Some(syn::Item::Fn(function)) = file.items.first() else {
                return Err("the region must hold exactly the `#[test]` function".into());
            };
            let open = function.block.brace_token.span.open().byte_range().end;
            let close = function.block.brace_token.span.close().byte_range().start;
            rustsrc::dedent(trim_blank_lines(&text[open..close]), 4)
        }
    };
    rustsrc::rewrite_path_heads(&code, "crate", crate_name).map_err(|e| format!("cannot tokenize the edited code: {e}"))
}

/// Runs sync over every hand-edited generated file.
pub fn run(ws: &Workspace) -> Result<Report> {
    let plan = extract::plan(ws)?;
    let mut updates: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut report = Report::default();
    let mut errors = Vec::new();
    for (path, file_header) in extract::generated_files(ws)? {
        if file_header.intact {
            continue;
        }
        match edits_of_file(ws, &plan, &path, &file_header) {
            Ok((notebook, edits)) => {
                for (index, id, source) in edits {
                    report.cells.push((notebook.clone(), id));
                    updates.entry(notebook.clone()).or_default().push((index, source));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Error::from_list(errors)?;

    // Everything carried back must still extract before anything is written.
    let mut notebooks = Vec::new();
    for (rel, edits) in &updates {
        let mut notebook = NotebookFile::at(ws, rel).load()?;
        for (index, source) in edits {
            if let Cell::Code(code) = &mut notebook.cells[*index] {
                code.source = MultilineText::from_text(source);
            }
        }
        let module = extract::source::read(rel, &notebook)?.expect("a notebook with a generated file exports");
        let crate_name = module.target.crate_name.clone();
        extract::render_module(&module, &crate_name, &[])?;
        notebooks.push((rel, notebook));
    }
    for (rel, notebook) in notebooks {
        fsutil::write_atomic(&ws.path(rel), notebook.to_json().as_bytes())?;
    }
    report.extract = extract::run(ws, extract::Options { check: false, force: true })?;
    Ok(report)
}

type CellEdit = (usize, String, String);

/// The cell edits found in one hand-edited file.
fn edits_of_file(
    ws: &Workspace,
    plan: &Plan,
    path: &str,
    file_header: &header::Header,
) -> Result<(String, Vec<CellEdit>)> {
    let file_error = |message: String| Error::File { path: path.to_owned(), message };
    let planned = plan.files.iter().find(|f| f.path == path).ok_or_else(|| {
        file_error(format!("edited by hand, but {} no longer exports it, so there is no cell to carry the edits to; move them into a notebook by hand", file_header.notebook))
    })?;
    let module: &ModuleSource =
        plan.modules.iter().find(|m| m.notebook == planned.notebook).expect("planned files come from modules");
    let actual_text = fsutil::read(&ws.path(path))?;
    let actual = split_regions(&actual_text[file_header.body_start..]);
    let expected_header = header::parse(&planned.content).expect("extract writes a header");
    let expected = split_regions(&planned.content[expected_header.body_start..]);
    if actual.preamble != expected.preamble {
        return Err(file_error(format!(
            "the lines above the first cell region differ from what {} generates; they come from the notebook (its first markdown cell is the module documentation), so edit them there and undo the edit here",
            module.notebook
        )));
    }
    let keys = |r: &Regions| r.regions.iter().map(|(m, _)| (m.kind, m.cell_id.clone())).collect::<Vec<_>>();
    if keys(&actual) != keys(&expected) {
        return Err(file_error(format!(
            "cell region markers (`// %% ...`) were added, removed or reordered; keep one region per exported cell of {} in its order, and add or remove cells in the notebook",
            module.notebook
        )));
    }
    let mut edits = Vec::new();
    for ((marker, text), (_, expected_text)) in actual.regions.iter().zip(&expected.regions) {
        if header::digest(text) == marker.digest {
            continue;
        }
        let cell = module.cells.iter().find(|c| c.id == marker.cell_id).expect("markers match the module's cells");
        let cell_ref = CellRef::new(cell.index, Some(&cell.id));
        if header::digest(expected_text) != marker.digest {
            return Err(Error::Cell {
                path: module.notebook.clone(),
                cell: cell_ref,
                message: format!(
                    "was changed in the notebook and in {path} since the last extract; copy your edit from {path} into the cell by hand, then run `cargo xtask extract --force`"
                ),
            });
        }
        let code = unrender(cell, text, &module.target.crate_name).map_err(|message| Error::File {
            path: path.to_owned(),
            message: format!("region of {cell_ref}: {message}"),
        })?;
        let source = format!("{}{}", cell.directive_text, code);
        edits.push((cell.index, cell.id.clone(), source));
    }
    Ok((module.notebook.clone(), edits))
}
