//! `cargo xtask extract`: every notebook with a `default_exp` becomes one
//! module of its crate (the crate root for `default_exp <crate>`), with
//! `pub mod` declarations generated in the root.
//!
//! Extraction is all-or-nothing: every notebook is read and rendered in
//! memory first; files are written only if everything succeeded, only when
//! their content changes, and atomically. A generated file that was edited by
//! hand is never overwritten silently: `sync` carries the edit back, or
//! `--force` discards it.

pub mod header;
pub mod render;
pub mod source;

use std::collections::BTreeMap;
use std::fmt;

use caio_notebook::CellRef;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::Workspace;
use source::ModuleSource;

/// One file extract would write.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    /// Root-relative path of the generated file.
    pub path: String,
    /// Root-relative path of the notebook it comes from.
    pub notebook: String,
    /// The full content.
    pub content: String,
}

/// Everything extract would produce from the current notebooks.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The modules read from notebooks, with the name of their crate.
    pub modules: Vec<ModuleSource>,
    /// The files, sorted by path.
    pub files: Vec<GeneratedFile>,
}

/// Reads every notebook and renders every generated file in memory.
pub fn plan(ws: &Workspace) -> Result<Plan> {
    let crates = ws.crates()?;
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for notebook_file in ws.notebooks()? {
        let result = notebook_file.load().and_then(|notebook| {
            notebook
                .check_rust_kernel()
                .map_err(|p| Error::File { path: notebook_file.rel.clone(), message: p.to_string() })?;
            source::read(&notebook_file.rel, &notebook)
        });
        match result {
            Ok(Some(module)) => modules.push(module),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Error::from_list(errors)?;

    // Group by crate, checking targets.
    let mut by_crate: BTreeMap<String, Vec<&ModuleSource>> = BTreeMap::new();
    let mut errors = Vec::new();
    for module in &modules {
        if !crates.contains_key(&module.target.crate_name) {
            errors.push(Error::File {
                path: module.notebook.clone(),
                message: format!(
                    "`default_exp {}` names crate `{}`, but no crate under crates/ has that name; create crates/{}/Cargo.toml or fix the directive",
                    module.target,
                    module.target.crate_name,
                    module.target.crate_name.replace('_', "-")
                ),
            });
            continue;
        }
        by_crate.entry(module.target.crate_name.clone()).or_default().push(module);
    }
    let mut files = Vec::new();
    for (crate_name, members) in &by_crate {
        let crate_dir = &crates[crate_name];
        let mut targets: BTreeMap<Option<&str>, &ModuleSource> = BTreeMap::new();
        for module in members {
            if let Some(other) = targets.insert(module.target.module.as_deref(), module) {
                errors.push(Error::File {
                    path: module.notebook.clone(),
                    message: format!(
                        "exports to `{}`, which {} already exports to; each module comes from one notebook",
                        module.target, other.notebook
                    ),
                });
            }
        }
        let submodules: Vec<Submodule> = targets
            .iter()
            .filter_map(|(name, module)| name.map(|name| Submodule { name: name.to_string(), cfg: module.cfg.clone() }))
            .collect();
        if !targets.contains_key(&None) {
            errors.push(Error::File {
                path: format!("{crate_dir}/src/lib.rs"),
                message: format!(
                    "crate `{crate_name}` has modules from notebooks but no root notebook; add a notebook with `//| default_exp {crate_name}` whose first markdown cell documents the crate"
                ),
            });
            continue;
        }
        for (module_name, module) in &targets {
            let path = match module_name {
                Some(name) => format!("{crate_dir}/src/{name}.rs"),
                None => format!("{crate_dir}/src/lib.rs"),
            };
            let declared: &[Submodule] = if module_name.is_none() { &submodules } else { &[] };
            match render_module(module, crate_name, declared) {
                Ok(content) => files.push(GeneratedFile { path, notebook: module.notebook.clone(), content }),
                Err(e) => errors.push(e),
            }
        }
    }
    Error::from_list(errors)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Plan { modules, files })
}

/// A module the crate root declares, and when it is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submodule {
    /// Its name.
    pub name: String,
    /// `//| cfg` of its notebook.
    pub cfg: Option<String>,
}

/// The full text of the generated file for one module.
pub fn render_module(module: &ModuleSource, crate_name: &str, submodules: &[Submodule]) -> Result<String> {
    let mut rendered = Vec::new();
    let mut errors = Vec::new();
    for (i, cell) in module.cells.iter().enumerate() {
        match render::render_cell(cell, crate_name) {
            Ok(text) => rendered.push((i, text)),
            Err(problem) => errors.push(Error::Cell {
                path: module.notebook.clone(),
                cell: CellRef::new(cell.index, Some(&cell.id)).at_line(problem.line),
                message: problem.message,
            }),
        }
    }
    Error::from_list(errors)?;
    Ok(header::assemble(&module.notebook, &render::render_body(module, &rendered, submodules)))
}

/// How a generated file differs from what the notebooks say it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftKind {
    /// The file does not exist.
    Missing,
    /// The notebook changed since the file was generated.
    Stale,
    /// Someone edited the generated file.
    HandEdited,
    /// A hand-written file stands where extract would write.
    NotGenerated,
    /// No notebook exports to this file any more; `edited` if it was also
    /// edited by hand, in which case it is not removed without `--force`.
    Orphan {
        /// Whether the orphan was edited by hand.
        edited: bool,
    },
}

/// A generated file that is not what extract would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Root-relative path of the generated file.
    pub path: String,
    /// The notebook it comes from (or came from, for an orphan).
    pub notebook: String,
    /// How it differs.
    pub kind: DriftKind,
}

impl Drift {
    /// What is wrong and what to do, without the file name.
    pub fn message(&self) -> String {
        let notebook = &self.notebook;
        match self.kind {
            DriftKind::Missing => format!("missing; it is generated from {notebook}: run `cargo xtask extract`"),
            DriftKind::Stale => format!("out of date with {notebook}: run `cargo xtask extract`"),
            DriftKind::HandEdited => format!(
                "edited by hand (its checksum no longer matches): carry the edits into {notebook} with `cargo xtask sync`, or discard them with `cargo xtask extract --force`"
            ),
            DriftKind::NotGenerated => format!(
                "is a hand-written file, but {notebook} generates this path: move its content into the notebook, then replace it with `cargo xtask extract --force`"
            ),
            DriftKind::Orphan { edited: false } => {
                format!("generated from {notebook}, which no longer exports it: run `cargo xtask extract` to remove it")
            }
            DriftKind::Orphan { edited: true } => format!(
                "generated from {notebook}, which no longer exports it, and edited by hand since: move what you want to keep into a notebook, then remove it with `cargo xtask extract --force`"
            ),
        }
    }
}

impl From<&Drift> for Error {
    fn from(drift: &Drift) -> Self {
        Error::File { path: drift.path.clone(), message: drift.message() }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message())
    }
}

/// Compares the plan with the files on disk.
pub fn drift(ws: &Workspace, plan: &Plan) -> Result<Vec<Drift>> {
    let mut drifts = Vec::new();
    for file in &plan.files {
        let full = ws.path(&file.path);
        let kind = match std::fs::read_to_string(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(DriftKind::Missing),
            Err(e) => return Err(Error::io(&file.path, "read", e)),
            Ok(existing) if existing == file.content => None,
            Ok(existing) => Some(match header::parse(&existing) {
                Some(h) if h.intact => DriftKind::Stale,
                Some(_) => DriftKind::HandEdited,
                None => DriftKind::NotGenerated,
            }),
        };
        if let Some(kind) = kind {
            drifts.push(Drift { path: file.path.clone(), notebook: file.notebook.clone(), kind });
        }
    }
    for (path, header) in generated_files(ws)? {
        if !plan.files.iter().any(|f| f.path == path) {
            drifts.push(Drift { path, notebook: header.notebook, kind: DriftKind::Orphan { edited: !header.intact } });
        }
    }
    drifts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(drifts)
}

/// Every file under `crates/*/src` that extract wrote, with its header.
pub fn generated_files(ws: &Workspace) -> Result<Vec<(String, header::Header)>> {
    let mut found = Vec::new();
    for crate_dir in ws.crates()?.values() {
        let src = ws.path(&format!("{crate_dir}/src"));
        for entry in walkdir::WalkDir::new(&src).sort_by_file_name().into_iter().flatten() {
            if !entry.file_type().is_file() || entry.path().extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = fsutil::read(entry.path())?;
            if let Some(h) = header::parse(&text) {
                found.push((ws.rel(entry.path()), h));
            }
        }
    }
    Ok(found)
}

/// Options of `cargo xtask extract`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Write nothing; fail if any file would change.
    pub check: bool,
    /// Overwrite files that were edited by hand.
    pub force: bool,
}

/// What extract did (or, with `check`, found).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Files written.
    pub written: Vec<String>,
    /// Orphaned generated files removed.
    pub removed: Vec<String>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Notebooks whose `:dep` versions were pinned to `Cargo.lock`.
    pub pinned: Vec<String>,
}

/// Runs extract. With `check`, drift is an error listing every file.
pub fn run(ws: &Workspace, options: Options) -> Result<Report> {
    let plan = plan(ws)?;
    let drifts = drift(ws, &plan)?;
    let mut report = Report { unchanged: plan.files.len(), ..Report::default() };
    let pins = crate::pins::check(ws)?;
    if options.check {
        Error::from_list(drifts.iter().map(Error::from).chain(pins.iter().map(Error::from)).collect())?;
        return Ok(report);
    }
    report.pinned = crate::pins::apply(ws, &pins)?;
    if !options.force {
        Error::from_list(
            drifts
                .iter()
                .filter(|d| {
                    matches!(
                        d.kind,
                        DriftKind::HandEdited | DriftKind::NotGenerated | DriftKind::Orphan { edited: true }
                    )
                })
                .map(Error::from)
                .collect(),
        )?;
    }
    for file in &plan.files {
        if fsutil::write_if_changed(&ws.path(&file.path), &file.content)? {
            report.written.push(file.path.clone());
            report.unchanged -= 1;
        }
    }
    for drift in drifts.iter().filter(|d| matches!(d.kind, DriftKind::Orphan { .. })) {
        std::fs::remove_file(ws.path(&drift.path)).map_err(|e| Error::io(&drift.path, "remove", e))?;
        report.removed.push(drift.path.clone());
    }
    Ok(report)
}
