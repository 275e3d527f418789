//! The three-way merge of one notebook, cell by cell.
//!
//! Cells are matched by id across the base and the two sides. A cell
//! changed on one side takes that side; a cell changed on both is merged
//! field by field, its source line by line, and lines changed on both sides
//! become git's conflict markers inside that cell's source, with a markdown
//! cell above saying so. Outputs and execution counts never conflict: they
//! come from a side whose code they were computed from, and when the merged
//! code is neither side's, the execution counts are cleared so that the
//! notebook reads as "not run" (in Jupyter and in the scorecard) until
//! `cargo xtask run` computes them again. The result is always a valid
//! notebook.

use std::collections::{BTreeMap, BTreeSet};

use caio_notebook::{Cell, Metadata, MultilineText, Notebook, Output, TextCell};
use serde_json::Value;

use super::lines::{self, Labels};

/// What merging one notebook gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The merged notebook.
    pub notebook: Notebook,
    /// Each conflict, described for the person resolving it.
    pub conflicts: Vec<String>,
    /// Whether its outputs are stale: the merged code is neither side's.
    pub rerun: bool,
}

const LABELS: Labels<'static> = Labels { ours: "ours", theirs: "theirs" };

/// The key a cell is matched by: its id, or for a cell without a usable id,
/// its content (so the same cell still matches across the three versions).
fn keyed(notebook: &Notebook) -> Vec<(String, &Cell)> {
    let mut seen = BTreeSet::new();
    notebook
        .cells
        .iter()
        .map(|cell| {
            let key = match cell.id() {
                Some(id) if !seen.contains(id) => id.to_owned(),
                _ => {
                    let content = serde_json::to_string(&content(cell)).expect("JSON serializes");
                    (0..).map(|n| format!("\u{0}{content}\u{0}{n}")).find(|k| !seen.contains(k)).expect("a free key")
                }
            };
            seen.insert(key.clone());
            (key, cell)
        })
        .collect()
}

/// What a cell says, without what running it produced: its kind, source,
/// metadata and unknown fields (attachments); never outputs or counts.
fn content(cell: &Cell) -> Value {
    let (source, metadata, extra) = parts(cell);
    serde_json::json!([cell.kind(), source.text(), metadata, extra])
}

/// The three-way choice for one value: a side that changed it wins, the
/// same change on both sides is no conflict; `None` when both changed it
/// differently.
fn pick<'a, T: PartialEq>(base: Option<&'a T>, ours: Option<&'a T>, theirs: Option<&'a T>) -> Option<Option<&'a T>> {
    if ours == theirs || theirs == base {
        Some(ours)
    } else if ours == base {
        Some(theirs)
    } else {
        None
    }
}

/// Key by key; a key both sides changed differently keeps ours and is
/// reported.
fn merge_map(base: &Metadata, ours: &Metadata, theirs: &Metadata, what: &str, conflicts: &mut Vec<String>) -> Metadata {
    let keys: BTreeSet<&String> = base.keys().chain(ours.keys()).chain(theirs.keys()).collect();
    let mut merged = Metadata::new();
    for key in keys {
        let chosen = pick(base.get(key), ours.get(key), theirs.get(key)).unwrap_or_else(|| {
            conflicts.push(format!("{what} `{key}`: changed on both sides; kept ours"));
            ours.get(key)
        });
        if let Some(value) = chosen {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

fn parts(cell: &Cell) -> (&MultilineText, &Metadata, &Metadata) {
    match cell {
        Cell::Code(c) => (&c.source, &c.metadata, &c.extra),
        Cell::Markdown(c) | Cell::Raw(c) => (&c.source, &c.metadata, &c.extra),
    }
}

fn parts_mut(cell: &mut Cell) -> (&mut MultilineText, &mut Metadata, &mut Metadata) {
    match cell {
        Cell::Code(c) => (&mut c.source, &mut c.metadata, &mut c.extra),
        Cell::Markdown(c) | Cell::Raw(c) => (&mut c.source, &mut c.metadata, &mut c.extra),
    }
}

/// One merged cell, and whether its source holds conflict markers.
struct MergedCell {
    cell: Cell,
    marked: bool,
}

/// Merges a cell both sides kept and at least one changed.
fn merge_both(key: &str, base: Option<&Cell>, ours: &Cell, theirs: &Cell, conflicts: &mut Vec<String>) -> MergedCell {
    let (b, o, t) = (base.map(content), content(ours), content(theirs));
    if let Some(side) = pick(b.as_ref(), Some(&o), Some(&t)) {
        let cell = if side == Some(&o) { ours } else { theirs };
        return MergedCell { cell: cell.clone(), marked: false };
    }
    let name = format!("cell `{}`", display_key(key));
    // The kind: both sides turned it into something else is a conflict.
    let base_kind = base.map(Cell::kind);
    let mut cell = match pick(base_kind.as_ref(), Some(&ours.kind()), Some(&theirs.kind())) {
        Some(Some(k)) if *k == theirs.kind() && *k != ours.kind() => theirs.clone(),
        Some(_) => ours.clone(),
        None => {
            conflicts.push(format!(
                "{name}: made a {} cell on ours and a {} cell on theirs; kept ours",
                ours.kind(),
                theirs.kind()
            ));
            ours.clone()
        }
    };
    let empty = Metadata::new();
    let empty_text = MultilineText::Joined(String::new());
    let (base_source, base_metadata, base_extra) = base.map_or((&empty_text, &empty, &empty), parts);
    let (ours_source, ours_metadata, ours_extra) = parts(ours);
    let (theirs_source, theirs_metadata, theirs_extra) = parts(theirs);
    let metadata = merge_map(base_metadata, ours_metadata, theirs_metadata, &format!("{name} metadata"), conflicts);
    let extra = merge_map(base_extra, ours_extra, theirs_extra, &format!("{name} field"), conflicts);
    let merged = lines::merge(&base_source.text(), &ours_source.text(), &theirs_source.text(), LABELS);
    if merged.conflicts > 0 {
        conflicts.push(format!(
            "{name}: both sides changed the same lines of its source ({} region{} marked)",
            merged.conflicts,
            if merged.conflicts == 1 { "" } else { "s" }
        ));
    }
    let (source, cell_metadata, cell_extra) = parts_mut(&mut cell);
    *source = MultilineText::from_text(&merged.text);
    *cell_metadata = metadata;
    *cell_extra = extra;
    MergedCell { cell, marked: merged.conflicts > 0 }
}

/// Cell ids as people see them (a cell without an id is named by content).
fn display_key(key: &str) -> &str {
    if key.starts_with('\u{0}') { "(no id)" } else { key }
}

/// The order of the merged cells: the order of the side that reordered
/// (ours if both did), with each cell only the other side has placed after
/// its nearest predecessor there.
fn order(base: &[String], ours: &[String], theirs: &[String], kept: &BTreeSet<String>) -> Vec<String> {
    let relative = |side: &[String]| -> Vec<String> {
        let others: BTreeSet<&String> = side.iter().collect();
        base.iter().filter(|k| others.contains(k)).cloned().collect()
    };
    let common = |side: &[String], other: &[String]| -> Vec<String> {
        let other: BTreeSet<&String> = other.iter().collect();
        side.iter().filter(|k| other.contains(k)).cloned().collect()
    };
    let ours_reordered = common(ours, base) != relative(ours);
    let (primary, secondary) =
        if ours_reordered || common(theirs, base) == relative(theirs) { (ours, theirs) } else { (theirs, ours) };
    let mut result: Vec<String> = primary.iter().filter(|k| kept.contains(*k)).cloned().collect();
    let mut placed: BTreeSet<String> = result.iter().cloned().collect();
    for (index, key) in secondary.iter().enumerate() {
        if !kept.contains(key) || placed.contains(key) {
            continue;
        }
        let after = secondary[..index].iter().rev().find(|k| placed.contains(*k));
        let at = after.and_then(|k| result.iter().position(|r| r == k)).map_or(0, |p| p + 1);
        result.insert(at, key.clone());
        placed.insert(key.clone());
    }
    result
}

/// The code of a notebook: the key and source of each code cell, in order.
fn code_of<'a>(cells: impl Iterator<Item = (&'a str, &'a Cell)>) -> Vec<(&'a str, String)> {
    cells
        .filter_map(|(key, cell)| match cell {
            Cell::Code(code) => Some((key, code.source.text())),
            _ => None,
        })
        .collect()
}

fn pairs<'a>(side: &'a [(String, &'a Cell)]) -> impl Iterator<Item = (&'a str, &'a Cell)> {
    side.iter().map(|(key, cell)| (key.as_str(), *cell))
}

/// Gives every code cell the outputs of a side whose code they came from.
fn settle_outputs(cells: &mut [(String, Cell)], ours: &[(String, &Cell)], theirs: &[(String, &Cell)]) -> bool {
    let code = code_of(cells.iter().map(|(key, cell)| (key.as_str(), cell)));
    let from = if code == code_of(pairs(ours)) {
        Some(ours)
    } else if code == code_of(pairs(theirs)) {
        Some(theirs)
    } else {
        None
    };
    let find = |side: &[(String, &Cell)], key: &str, source: &str| {
        side.iter().find_map(|(k, c)| match c {
            Cell::Code(code) if k == key && code.source.text() == source => Some(code.clone()),
            _ => None,
        })
    };
    for (key, cell) in cells.iter_mut() {
        let Cell::Code(code) = cell else { continue };
        let source = code.source.text();
        let donor = match from {
            Some(side) => find(side, key, &source),
            None => find(ours, key, &source).or_else(|| find(theirs, key, &source)),
        };
        match donor {
            Some(donor) => {
                code.outputs = donor.outputs;
                code.execution_count = donor.execution_count;
            }
            None => {
                code.outputs.clear();
                code.execution_count = None;
            }
        }
        if from.is_none() {
            code.execution_count = None;
            for output in &mut code.outputs {
                if let Output::ExecuteResult(result) = output {
                    result.execution_count = None;
                }
            }
        }
    }
    from.is_none()
}

/// The markdown cell placed above a cell with a conflict.
fn notice(id: &str, message: &str, taken: &BTreeSet<String>) -> Cell {
    let stem: String = format!("merge-conflict-{id}").chars().take(60).collect();
    let id = (0..)
        .map(|n| if n == 0 { stem.clone() } else { format!("{stem}-{n}") })
        .find(|candidate| !taken.contains(candidate))
        .expect("a free id");
    let text = format!(
        "**Merge conflict** in the next cell: {message}. Edit it to keep what is right, remove the \
         `<<<<<<< ours`, `=======` and `>>>>>>> theirs` lines and this cell, then run `cargo xtask run` \
         on this notebook and `cargo xtask extract`.\n"
    );
    Cell::Markdown(TextCell {
        id: Some(id),
        source: MultilineText::from_text(&text),
        metadata: Metadata::new(),
        extra: Metadata::new(),
    })
}

fn lookup<'a>(side: &[(String, &'a Cell)]) -> BTreeMap<String, &'a Cell> {
    side.iter().map(|(k, c)| (k.clone(), *c)).collect()
}

/// Merges `ours` and `theirs`, both descended from `base`.
pub fn merge(base: &Notebook, ours: &Notebook, theirs: &Notebook) -> Outcome {
    let mut conflicts = Vec::new();
    let (b, o, t) = (keyed(base), keyed(ours), keyed(theirs));
    let (bm, om, tm) = (lookup(&b), lookup(&o), lookup(&t));
    let keys = |side: &[(String, &Cell)]| -> Vec<String> { side.iter().map(|(k, _)| k.clone()).collect() };

    let mut merged: BTreeMap<String, MergedCell> = BTreeMap::new();
    let mut notices: BTreeMap<String, String> = BTreeMap::new();
    let all: BTreeSet<&String> = bm.keys().chain(om.keys()).chain(tm.keys()).collect();
    for key in all {
        let (base_cell, ours_cell, theirs_cell) = (bm.get(key).copied(), om.get(key).copied(), tm.get(key).copied());
        let name = format!("cell `{}`", display_key(key));
        let cell = match (ours_cell, theirs_cell) {
            (Some(ours_cell), Some(theirs_cell)) => {
                let cell = merge_both(key, base_cell, ours_cell, theirs_cell, &mut conflicts);
                if cell.marked {
                    notices.insert(key.clone(), "both branches changed the same lines".into());
                }
                Some(cell)
            }
            (Some(kept), None) | (None, Some(kept)) => {
                let (kept_by, deleted_by) = if ours_cell.is_some() { ("ours", "theirs") } else { ("theirs", "ours") };
                match base_cell {
                    // Added by one side.
                    None => Some(MergedCell { cell: kept.clone(), marked: false }),
                    // Deleted by one side, untouched by the other.
                    Some(base_cell) if content(base_cell) == content(kept) => None,
                    Some(_) => {
                        let message = format!("{deleted_by} deleted it and {kept_by} changed it; it is kept");
                        conflicts.push(format!("{name}: {message}"));
                        notices.insert(key.clone(), message);
                        Some(MergedCell { cell: kept.clone(), marked: false })
                    }
                }
            }
            (None, None) => None,
        };
        if let Some(cell) = cell {
            merged.insert(key.clone(), cell);
        }
    }
    let kept: BTreeSet<String> = merged.keys().cloned().collect();
    let mut cells: Vec<(String, Cell)> = order(&keys(&b), &keys(&o), &keys(&t), &kept)
        .into_iter()
        .map(|key| {
            let cell = merged.remove(&key).expect("every kept key was merged").cell;
            (key, cell)
        })
        .collect();
    let rerun = settle_outputs(&mut cells, &o, &t);

    let mut taken: BTreeSet<String> = cells.iter().filter_map(|(_, c)| c.id().map(str::to_owned)).collect();
    let mut result = Vec::with_capacity(cells.len() + notices.len());
    for (key, cell) in cells {
        if let Some(message) = notices.get(&key) {
            let note = notice(display_key(&key), message, &taken);
            taken.insert(note.id().expect("notices have ids").to_owned());
            result.push(note);
        }
        result.push(cell);
    }
    let metadata = merge_map(&base.metadata, &ours.metadata, &theirs.metadata, "notebook metadata", &mut conflicts);
    let extra = merge_map(&base.extra, &ours.extra, &theirs.extra, "notebook field", &mut conflicts);
    let notebook = Notebook {
        cells: result,
        metadata,
        nbformat: ours.nbformat,
        nbformat_minor: ours.nbformat_minor.max(theirs.nbformat_minor),
        extra,
    };
    Outcome { notebook, conflicts, rerun: rerun || !notices.is_empty() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notebook of `(id, kind, source)` cells.
    fn nb(cells: &[(&str, &str, &str)]) -> Notebook {
        let cells: Vec<Value> = cells
            .iter()
            .map(|(id, kind, source)| {
                let mut cell = serde_json::json!({"cell_type": kind, "id": id, "metadata": {}, "source": source});
                if *kind == "code" {
                    cell["outputs"] = serde_json::json!([]);
                    cell["execution_count"] = Value::Null;
                }
                cell
            })
            .collect();
        let value = serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
        Notebook::parse(&value.to_string()).unwrap()
    }

    fn ids(notebook: &Notebook) -> Vec<&str> {
        notebook.cells.iter().map(|c| c.id().unwrap()).collect()
    }

    #[test]
    fn cells_added_on_both_sides_land_after_their_neighbours() {
        let base = nb(&[("a", "code", "1"), ("b", "code", "2")]);
        let ours = nb(&[("a", "code", "1"), ("x", "markdown", "mine"), ("b", "code", "2")]);
        let theirs = nb(&[("a", "code", "1"), ("b", "code", "2"), ("y", "code", "theirs")]);
        let outcome = merge(&base, &ours, &theirs);
        assert!(outcome.conflicts.is_empty(), "{:?}", outcome.conflicts);
        assert_eq!(ids(&outcome.notebook), ["a", "x", "b", "y"]);
    }

    #[test]
    fn a_reorder_on_one_side_is_kept_with_the_other_sides_edits() {
        let base = nb(&[("a", "code", "1"), ("b", "code", "2"), ("c", "code", "3")]);
        let ours = nb(&[("a", "code", "1 changed"), ("b", "code", "2"), ("c", "code", "3")]);
        let theirs = nb(&[("c", "code", "3"), ("a", "code", "1"), ("b", "code", "2")]);
        let outcome = merge(&base, &ours, &theirs);
        assert_eq!(ids(&outcome.notebook), ["c", "a", "b"]);
        assert_eq!(outcome.notebook.cells[1].source().text(), "1 changed");
        assert!(outcome.rerun, "neither side ran this code in this order");
    }

    #[test]
    fn deleting_a_cell_the_other_side_changed_keeps_it_with_a_notice() {
        let base = nb(&[("a", "code", "1"), ("b", "code", "2")]);
        let ours = nb(&[("a", "code", "1")]);
        let theirs = nb(&[("a", "code", "1"), ("b", "code", "2 changed")]);
        let outcome = merge(&base, &ours, &theirs);
        assert_eq!(ids(&outcome.notebook), ["a", "merge-conflict-b", "b"]);
        assert_eq!(outcome.conflicts, ["cell `b`: ours deleted it and theirs changed it; it is kept"]);
        // A deletion of an untouched cell is simply applied.
        let outcome = merge(&base, &ours, &base);
        assert_eq!(ids(&outcome.notebook), ["a"]);
        assert!(outcome.conflicts.is_empty());
    }

    #[test]
    fn metadata_merges_key_by_key_and_a_clash_keeps_ours() {
        let mut base = nb(&[("a", "code", "1")]);
        base.metadata.insert("k".into(), serde_json::json!(1));
        let mut ours = base.clone();
        ours.metadata.insert("k".into(), serde_json::json!(2));
        ours.metadata.insert("mine".into(), serde_json::json!(true));
        let mut theirs = base.clone();
        theirs.metadata.insert("k".into(), serde_json::json!(3));
        theirs.metadata.insert("theirs".into(), serde_json::json!(true));
        let outcome = merge(&base, &ours, &theirs);
        assert_eq!(outcome.notebook.metadata["k"], 2);
        assert!(outcome.notebook.metadata.contains_key("mine") && outcome.notebook.metadata.contains_key("theirs"));
        assert_eq!(outcome.conflicts, ["notebook metadata `k`: changed on both sides; kept ours"]);
    }

    #[test]
    fn the_result_is_always_a_notebook_that_reads_back() {
        let base = nb(&[("a", "code", "fn f() {}\n")]);
        let ours = nb(&[("a", "code", "fn f() { 1 }\n")]);
        let theirs = nb(&[("a", "markdown", "prose\n")]);
        let outcome = merge(&base, &ours, &theirs);
        let text = outcome.notebook.to_json();
        assert_eq!(Notebook::parse(&text).unwrap(), outcome.notebook);
        assert!(outcome.rerun);
        assert_eq!(outcome.notebook.cells.len(), 2, "a notice and the cell");
    }
}
