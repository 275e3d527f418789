//! What a notebook exports: its target module, its documentation (the first
//! markdown cell) and its `export`, `exporti` and `test` cells, checked for
//! the notebook-level rules (one `default_exp`, ids present and unique,
//! nothing exported without a target).

use std::collections::BTreeMap;

use caio_notebook::directives::{self, Export, ExportTarget};
use caio_notebook::{Cell, CellRef, Notebook};

use crate::error::{Error, Result};

/// The exported content of one notebook.
#[derive(Debug, Clone)]
pub struct ModuleSource {
    /// The notebook, root-relative.
    pub notebook: String,
    /// Where its cells go.
    pub target: ExportTarget,
    /// `//| cfg`: when the module is compiled (`None`: always).
    pub cfg: Option<String>,
    /// The module documentation: the notebook's first markdown cell.
    pub doc: String,
    /// Exported and test cells, in notebook order.
    pub cells: Vec<ExportCell>,
}

/// One cell that extract writes into the module.
#[derive(Debug, Clone)]
pub struct ExportCell {
    /// 0-based index in the notebook.
    pub index: usize,
    /// The cell id (required for markers).
    pub id: String,
    /// What the cell becomes.
    pub kind: CellKind,
    /// The directive lines, exactly as written, which `sync` keeps.
    pub directive_text: String,
    /// The code with directive lines blanked, so line numbers match the cell.
    pub code: String,
}

/// What an exported cell becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellKind {
    /// Items in the module.
    Items {
        /// `exporti`: items must not be `pub`.
        internal: bool,
        /// `hide`: items are `#[doc(hidden)]`.
        hide: bool,
    },
    /// A `#[test]` function with this name.
    Test {
        /// The function name.
        name: String,
    },
}

impl ExportCell {
    /// A reference to this cell for messages.
    pub fn cell_ref(&self) -> CellRef {
        CellRef::new(self.index, Some(&self.id))
    }
}

/// Reads what `notebook` exports; `None` if it has no `default_exp`.
pub fn read(rel: &str, notebook: &Notebook) -> Result<Option<ModuleSource>> {
    let cell_error = |index: usize, line: Option<usize>, message: String| {
        let mut cell = CellRef::new(index, notebook.cells[index].id());
        cell.line = line;
        Error::Cell { path: rel.to_owned(), cell, message }
    };
    let mut target: Option<(usize, ExportTarget)> = None;
    let mut cfg: Option<String> = None;
    let mut cells = Vec::new();
    let mut doc = None;
    let mut seen_ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        if let Some(id) = cell.id()
            && let Some(first) = seen_ids.insert(id, index)
        {
            errors.push(cell_error(
                index,
                None,
                format!(
                    "duplicate cell id `{id}` (also cell {}); run `cargo xtask clean` to give each cell its own id",
                    first + 1
                ),
            ));
        }
        let code = match cell {
            Cell::Markdown(markdown) => {
                doc.get_or_insert_with(|| markdown.source.text());
                continue;
            }
            Cell::Raw(_) => continue,
            Cell::Code(code) => code.source.text(),
        };
        let parsed = match directives::parse(&code) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(cell_error(index, Some(e.line), e.message));
                continue;
            }
        };
        if let Some(exp) = parsed.default_exp.clone() {
            if let Some((first, _)) = &target {
                errors.push(cell_error(
                    index,
                    None,
                    format!(
                        "second `default_exp` (the first is in cell {}); a notebook exports to one module",
                        first + 1
                    ),
                ));
            } else {
                target = Some((index, exp));
                cfg = parsed.cfg.clone();
                if let Some(predicate) = &cfg
                    && syn::parse_str::<syn::Meta>(predicate).is_err()
                {
                    errors.push(cell_error(
                        index,
                        None,
                        format!("`cfg {predicate}` is not a cfg predicate; write one as in `#[cfg(...)]`, such as `feature = \"examples\"`"),
                    ));
                }
            }
        }
        let kind = match (&parsed.export, &parsed.test) {
            (Some(export), _) => CellKind::Items { internal: *export == Export::Internal, hide: parsed.hide },
            (None, Some(name)) => CellKind::Test {
                name: name.clone().unwrap_or_else(|| default_test_name(cell.id().unwrap_or(""), index)),
            },
            (None, None) => continue,
        };
        let Some(id) = cell.id() else {
            errors.push(cell_error(
                index,
                None,
                "exported cell has no id (nbformat below 4.5); run `cargo xtask clean` to assign ids".into(),
            ));
            continue;
        };
        let block_end: usize = code.split_inclusive('\n').take(parsed.block_lines).map(str::len).sum();
        let directive_text = code[..block_end].to_owned();
        let blanked = "\n".repeat(directive_text.matches('\n').count()) + &code[block_end..];
        cells.push(ExportCell { index, id: id.to_owned(), kind, directive_text, code: blanked });
    }
    let Some((_, target)) = target else {
        if let Some(first) = cells.first() {
            errors.push(cell_error(
                first.index,
                None,
                "cell is exported but the notebook has no `//| default_exp <crate>::<module>` cell saying where to"
                    .into(),
            ));
        }
        Error::from_list(errors)?;
        return Ok(None);
    };
    let mut test_names: BTreeMap<&str, usize> = BTreeMap::new();
    for cell in &cells {
        if let CellKind::Test { name } = &cell.kind
            && let Some(first) = test_names.insert(name, cell.index)
        {
            errors.push(cell_error(
                cell.index,
                None,
                format!("test name `{name}` is already used by cell {}; name one of them differently", first + 1),
            ));
        }
    }
    Error::from_list(errors)?;
    let doc = doc.filter(|d| !d.trim().is_empty()).ok_or_else(|| Error::File {
        path: rel.to_owned(),
        message: "no markdown cell to document the module; add one at the top saying what the module is for and what it must never do".into(),
    })?;
    Ok(Some(ModuleSource { notebook: rel.to_owned(), target, cfg, doc, cells }))
}

/// `cell_<id>` with the id made into an identifier.
fn default_test_name(id: &str, index: usize) -> String {
    if id.is_empty() {
        return format!("cell_{}", index + 1);
    }
    let cleaned: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("cell_{cleaned}")
}
