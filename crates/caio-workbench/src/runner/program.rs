//! From a notebook in the evcxr dialect to one Rust program.
//!
//! evcxr compiles every cell on its own and carries variables between them;
//! the native runner compiles the whole notebook once instead:
//!
//! - `:dep` lines become dependencies of the runner crate (path dependencies
//!   are resolved against the notebook's directory, as Jupyter's kernel does);
//!   every other `:command` is an explicit error;
//! - items (`fn`, `struct`, `impl`, `use`, `macro_rules!`, ...) are hoisted to
//!   module level in cell order; `use` declarations are expanded and
//!   de-duplicated, as evcxr does; redefining an item is an explicit error;
//! - statements run in order inside one function, so variables persist from
//!   cell to cell, and `?` stops the notebook with the error printed;
//! - the final expression of a cell (no semicolon) is displayed as evcxr
//!   displays it, through `evcxr_display` or else `Debug`.
//!
//! Every line of user code keeps a mapping back to its cell and line, so
//! compiler errors and panics point into the notebook.

use std::collections::BTreeMap;
use std::path::Path;

use caio_notebook::directives;
use caio_notebook::{Cell, CellRef, Notebook};
use syn::spanned::Spanned;

use super::runtime;

/// The runnable form of a notebook.
#[derive(Debug, Clone)]
pub struct Program {
    /// `[dependencies]` entries of the runner crate.
    pub deps: BTreeMap<String, toml::Value>,
    /// The generated `src/main.rs`.
    pub main_rs: String,
    /// Generated line -> notebook cell and line.
    pub source_map: SourceMap,
    /// Indices of the cells that execute, in order; the n-th gets execution
    /// count n + 1.
    pub executed: Vec<usize>,
}

/// Maps lines of the generated `main.rs` back to notebook cells.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    // (first generated line, number of lines, cell index, first cell line)
    spans: Vec<(usize, usize, usize, usize)>,
}

impl SourceMap {
    /// The cell index and 1-based cell line of a 1-based generated line.
    pub fn lookup(&self, line: usize) -> Option<(usize, usize)> {
        self.spans
            .iter()
            .find(|(start, len, _, _)| (*start..*start + *len).contains(&line))
            .map(|(start, _, cell, cell_line)| (*cell, cell_line + (line - start)))
    }
}

/// A problem found while reading the notebook's cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellProblem {
    /// The cell (and line).
    pub cell: CellRef,
    /// What is wrong and what to do.
    pub message: String,
}

/// A piece of user code with where it came from.
#[derive(Debug, Clone)]
struct Chunk {
    text: String,
    cell: usize,
    line: usize,
}

#[derive(Default)]
struct Writer {
    text: String,
    next_line: usize,
    map: SourceMap,
}

impl Writer {
    fn new() -> Self {
        Writer { next_line: 1, ..Writer::default() }
    }

    fn generated(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
        self.next_line += text.matches('\n').count() + 1;
    }

    fn user(&mut self, chunk: &Chunk) {
        let lines = chunk.text.matches('\n').count() + 1;
        self.map.spans.push((self.next_line, lines, chunk.cell, chunk.line));
        self.generated(&chunk.text);
    }
}

struct CellCode {
    index: usize,
    statements: Vec<Chunk>,
    final_expr: Option<Chunk>,
}

/// Builds the program for `notebook`, whose file is in `notebook_dir`.
pub fn build(notebook: &Notebook, notebook_dir: &Path) -> Result<Program, Vec<CellProblem>> {
    let mut problems = Vec::new();
    let mut deps = BTreeMap::new();
    let mut crate_attrs = Vec::new();
    let mut imports = Imports::default();
    let mut items = Vec::new();
    let mut item_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut cells = Vec::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        let Cell::Code(code_cell) = cell else { continue };
        let source = code_cell.source.text();
        let at = |line: Option<usize>, message: String| CellProblem {
            cell: CellRef { index, id: code_cell.id.clone(), line },
            message,
        };
        let parsed = match directives::parse(&source) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(at(Some(e.line), e.message));
                continue;
            }
        };
        if !parsed.eval || source.trim().is_empty() {
            continue;
        }
        let code = match take_commands(&source, notebook_dir, &mut deps) {
            Ok(code) => code,
            Err((line, message)) => {
                problems.push(at(Some(line), message));
                continue;
            }
        };
        let parser = |input: syn::parse::ParseStream| {
            let attrs = input.call(syn::Attribute::parse_inner)?;
            let stmts = input.call(syn::Block::parse_within)?;
            Ok((attrs, stmts))
        };
        let (attrs, stmts) = match syn::parse::Parser::parse_str(parser, &code) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(at(Some(e.span().start().line), format!("syntax error: {e}")));
                continue;
            }
        };
        let chunk = |node: &dyn Spanned| {
            let range = node.span().byte_range();
            Chunk {
                text: code[range.clone()].to_owned(),
                cell: index,
                line: crate::rustsrc::line_of(&code, range.start),
            }
        };
        for attr in &attrs {
            crate_attrs.push(chunk(attr));
        }
        let mut cell_code = CellCode { index, statements: Vec::new(), final_expr: None };
        let count = stmts.len();
        for (position, stmt) in stmts.iter().enumerate() {
            let last = position + 1 == count;
            match stmt {
                syn::Stmt::Item(syn::Item::Use(use_item)) if use_item.attrs.is_empty() => {
                    if let Err(message) = imports.add(use_item, index) {
                        problems.push(at(Some(use_item.span().start().line), message));
                    }
                }
                syn::Stmt::Item(item) if hoisted(item) => {
                    if let Some(name) = item_name(item) {
                        if name == "main" {
                            problems.push(at(Some(item.span().start().line), "a notebook cannot define `main`: the native runner's program has its own; rename the function".into()));
                        } else if let Some(first) = item_names.insert(name.clone(), index) {
                            problems.push(at(
                                Some(item.span().start().line),
                                format!("`{name}` is already defined in cell {}; evcxr would replace it, the native runner does not support redefinition: rename one of them", first + 1),
                            ));
                        }
                    }
                    items.push(chunk(item));
                }
                syn::Stmt::Expr(syn::Expr::Verbatim(tokens), Some(_)) if tokens.is_empty() => {}
                stmt if top_level_await(stmt) => {
                    problems.push(at(
                        Some(stmt.span().start().line),
                        "top-level `.await` (evcxr's async mode) is not supported by the native runner; run the future inside an async runtime's `block_on`".into(),
                    ));
                }
                syn::Stmt::Expr(expr, None) if last => cell_code.final_expr = Some(chunk(expr)),
                syn::Stmt::Macro(mac)
                    if last
                        && mac.semi_token.is_none()
                        && !matches!(mac.mac.delimiter, syn::MacroDelimiter::Brace(_)) =>
                {
                    cell_code.final_expr = Some(chunk(mac))
                }
                syn::Stmt::Local(local) => {
                    // evcxr keeps every top-level variable for the next
                    // cells: check each binding as it would, on the line
                    // the `let` ends, so a failure points there.
                    let mut statement = chunk(local);
                    let names = if local.init.is_some() { bindings(&local.pat) } else { Vec::new() };
                    for name in names {
                        statement.text.push_str(&format!(" __caio_rt::persist(&{name}, \"{name}\");"));
                    }
                    cell_code.statements.push(statement);
                }
                other => cell_code.statements.push(chunk(other)),
            }
        }
        cells.push(cell_code);
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut w = Writer::new();
    w.generated(
        "#![allow(unused_imports, unused_mut, unused_variables, unused_assignments, dead_code, unreachable_code)]",
    );
    for attr in &crate_attrs {
        w.user(attr);
    }
    for chunk in imports.chunks() {
        w.user(&chunk);
    }
    for item in &items {
        w.user(item);
    }
    w.generated(runtime::SOURCE);
    w.generated("fn main() {\n__caio_rt::install();\nlet __caio_outcome = (|| -> ::std::result::Result<(), __caio_rt::UserError> {");
    for cell in &cells {
        w.generated(&format!("__caio_rt::begin({});", cell.index));
        for statement in &cell.statements {
            w.user(statement);
        }
        if let Some(expr) = &cell.final_expr {
            w.generated("{\nuse __caio_rt::DebugFallback as _;\n__caio_rt::begin_result();\n(&(");
            w.user(expr);
            w.generated(")).evcxr_display();\n__caio_rt::end_result();\n}");
        }
        w.generated(&format!("__caio_rt::end({});", cell.index));
    }
    w.generated("Ok(())\n})();\n__caio_rt::finish(__caio_outcome);\n}");
    Ok(Program { deps, main_rs: w.text, source_map: w.map, executed: cells.iter().map(|c| c.index).collect() })
}

/// The evcxr command on a line (`:dep`, `:vars`, ...) with the rest of the
/// line, or `None` for code (a leading `::` is a path, not a command).
pub fn evcxr_command(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim();
    if !trimmed.starts_with(':') || trimmed.starts_with("::") {
        return None;
    }
    Some(trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, "")))
}

/// Removes `:command` lines (keeping line numbers) and records `:dep`s.
fn take_commands(
    source: &str,
    notebook_dir: &Path,
    deps: &mut BTreeMap<String, toml::Value>,
) -> Result<String, (usize, String)> {
    let mut code = String::with_capacity(source.len());
    for (i, line) in source.split_inclusive('\n').enumerate() {
        let Some((command, rest)) = evcxr_command(line) else {
            code.push_str(line);
            continue;
        };
        if command != ":dep" {
            return Err((
                i + 1,
                format!(
                    "evcxr command `{command}` is not supported by the native runner (it supports `:dep`); remove it or mark the cell `//| eval: false`"
                ),
            ));
        }
        let (name, value) = parse_dep(rest.trim(), notebook_dir).map_err(|message| (i + 1, message))?;
        if let Some(existing) = deps.get(&name)
            && existing != &value
        {
            return Err((i + 1, format!("`:dep {name}` is declared twice with different settings; keep one")));
        }
        deps.insert(name, value);
        code.push_str(if line.ends_with('\n') { "\n" } else { "" });
    }
    Ok(code)
}

/// Parses `name = "1"` or `name = { path = "..", features = [..] }`.
fn parse_dep(spec: &str, notebook_dir: &Path) -> Result<(String, toml::Value), String> {
    let usage = "write `:dep name = \"version\"` or `:dep name = { path = \"../crate\", features = [...] }`";
    if !spec.contains('=') {
        return Err(format!("`:dep {spec}` has no version or path; {usage}"));
    }
    let table: toml::Table =
        toml::from_str(spec).map_err(|e| format!("`:dep {spec}` is not valid TOML ({}); {usage}", e.message()))?;
    let Some((name, mut value)) = table.into_iter().next() else {
        return Err(format!("`:dep` needs a crate; {usage}"));
    };
    if let Some(toml::Value::String(path)) = value.get_mut("path") {
        let resolved = notebook_dir.join(&*path);
        let resolved = resolved
            .canonicalize()
            .map_err(|e| format!("`:dep {name}` path `{path}` (relative to the notebook's directory): {e}"))?;
        *path = resolved.to_string_lossy().into_owned();
    }
    if !(value.is_str() || value.is_table()) {
        return Err(format!("`:dep {name}` must be a version string or an inline table; {usage}"));
    }
    Ok((name, value))
}

/// The variables a `let` pattern binds.
fn bindings(pat: &syn::Pat) -> Vec<String> {
    struct Names(Vec<String>);
    impl<'ast> syn::visit::Visit<'ast> for Names {
        fn visit_pat_ident(&mut self, ident: &'ast syn::PatIdent) {
            self.0.push(ident.ident.to_string());
            syn::visit::visit_pat_ident(self, ident);
        }
        // A path in a pattern (`None`, `Enum::Variant`) binds nothing.
        fn visit_expr(&mut self, _: &'ast syn::Expr) {}
    }
    let mut names = Names(Vec::new());
    syn::visit::Visit::visit_pat(&mut names, pat);
    names.0.retain(|n| n != "_");
    names.0
}

/// Whether a statement awaits outside any `async` block or closure, which
/// evcxr runs in its implicit async mode.
fn top_level_await(stmt: &syn::Stmt) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
            if closure.asyncness.is_none() {
                syn::visit::visit_expr_closure(self, closure);
            }
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_stmt(&mut finder, stmt);
    finder.0
}

fn hoisted(item: &syn::Item) -> bool {
    match item {
        syn::Item::Macro(m) => m.ident.is_some(),
        syn::Item::Verbatim(_) => false,
        _ => true,
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::ExternCrate(i) => i.rename.as_ref().map(|(_, r)| r).unwrap_or(&i.ident),
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Mod(i) => &i.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    let name = ident.to_string();
    (name != "_").then_some(name)
}

/// `use` declarations, expanded into one import per name and
/// de-duplicated: the same import in several cells is common in notebooks.
#[derive(Default)]
struct Imports {
    // (visibility, path, binding) -> chunk; binding is the name or `*`.
    seen: BTreeMap<String, (String, usize)>,
    ordered: Vec<Chunk>,
}

impl Imports {
    fn add(&mut self, item: &syn::ItemUse, cell: usize) -> Result<(), String> {
        use quote::ToTokens;
        let vis = item.vis.to_token_stream().to_string();
        let leading = if item.leading_colon.is_some() { "::" } else { "" };
        let mut flat = Vec::new();
        flatten_use(&item.tree, String::new(), &mut flat);
        for (path, binding) in flat {
            let statement = format!("{vis} use {leading}{path};").trim_start().to_owned();
            let key = if binding == "*" { format!("*{leading}{path}") } else { binding.clone() };
            match self.seen.get(&key) {
                Some((existing, _)) if *existing == statement => continue,
                Some((existing, first)) if binding != "*" && binding != "_" => {
                    return Err(format!(
                        "`{statement}` imports `{binding}`, which cell {} already imports (`{existing}`); evcxr would replace it, the native runner does not: rename one with `as`",
                        first + 1
                    ));
                }
                _ => {}
            }
            if binding != "_" {
                self.seen.insert(key, (statement.clone(), cell));
            }
            self.ordered.push(Chunk { text: statement, cell, line: item.span().start().line });
        }
        Ok(())
    }

    fn chunks(&self) -> Vec<Chunk> {
        self.ordered.clone()
    }
}

fn flatten_use(tree: &syn::UseTree, prefix: String, out: &mut Vec<(String, String)>) {
    let join = |segment: &str| if prefix.is_empty() { segment.to_owned() } else { format!("{prefix}::{segment}") };
    match tree {
        syn::UseTree::Path(p) => flatten_use(&p.tree, join(&p.ident.to_string()), out),
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                // `a::b::{self}` imports the module `a::b` itself.
                let binding = prefix.rsplit("::").next().unwrap_or("").to_owned();
                out.push((prefix.clone(), binding));
            } else {
                out.push((join(&name), name));
            }
        }
        syn::UseTree::Rename(r) => {
            out.push((format!("{} as {}", join(&r.ident.to_string()), r.rename), r.rename.to_string()))
        }
        syn::UseTree::Glob(_) => out.push((join("*"), "*".to_owned())),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                flatten_use(tree, prefix.clone(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notebook(cells: &[&str]) -> Notebook {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({"cell_type": "code", "id": format!("c{i}"), "metadata": {}, "outputs": [], "execution_count": null, "source": s}))
            .collect();
        Notebook::parse(
            &serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).to_string(),
        )
        .unwrap()
    }

    fn problems(cells: &[&str]) -> Vec<String> {
        build(&notebook(cells), Path::new("."))
            .expect_err("should be rejected")
            .iter()
            .map(|p| format!("{}: {}", p.cell, p.message))
            .collect()
    }

    #[test]
    fn items_are_hoisted_and_lines_mapped() {
        let program = build(
            &notebook(&["use std::fmt;\nlet a = 1;\nfn double(x: i32) -> i32 { x * 2 }", "use std::fmt;\ndouble(a)"]),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(program.main_rs.matches("use std::fmt;").count(), 1, "duplicate imports are merged");
        let groups = build(&notebook(&["use std::io::{self, Write};\nuse std::io;"]), Path::new(".")).unwrap();
        assert!(groups.main_rs.contains("use std::io;\nuse std::io::Write;\n"), "{}", groups.main_rs);
        let main_at = program.main_rs.find("fn main()").unwrap();
        assert!(program.main_rs.find("fn double").unwrap() < main_at, "items are hoisted before main");
        let line_of = |needle: &str| program.main_rs[..program.main_rs.find(needle).unwrap()].matches('\n').count() + 1;
        assert_eq!(program.source_map.lookup(line_of("let a = 1;")), Some((0, 2)));
        assert_eq!(program.source_map.lookup(line_of("double(a)")), Some((1, 2)));
        assert_eq!(program.executed, vec![0, 1]);
    }

    #[test]
    fn unsupported_evcxr_features_are_explicit_errors() {
        assert_eq!(
            problems(&["let a = 1;\n:vars"]),
            vec![
                "cell 1 (id c0), line 2: evcxr command `:vars` is not supported by the native runner (it supports `:dep`); remove it or mark the cell `//| eval: false`"
            ]
        );
        assert!(
            problems(&["fn f() {}", "fn f() {}"])[0]
                .starts_with("cell 2 (id c1), line 1: `f` is already defined in cell 1")
        );
        assert!(problems(&["use a::X;", "use b::X;"])[0].contains("already imports"));
        assert!(problems(&["fn main() {}"])[0].contains("cannot define `main`"));
        assert!(problems(&[":dep serde"])[0].contains("has no version or path"));
        assert!(problems(&["let x = ;"])[0].starts_with("cell 1 (id c0), line 1: syntax error"));
        assert!(
            problems(&["let a = 1;\nlet v = fetch().await;"])[0]
                .starts_with("cell 1 (id c0), line 2: top-level `.await`")
        );
        build(&notebook(&["let f = async { g().await };\nlet h = async || g().await;"]), Path::new(".")).unwrap();
    }

    #[test]
    fn deps_are_collected_and_skipped_cells_do_not_run() {
        let program =
            build(&notebook(&[":dep itoa = \"1\"\nlet x = 1;", "//| eval: false\nloop {}", ""]), Path::new("."))
                .unwrap();
        assert_eq!(program.deps["itoa"], toml::Value::String("1".into()));
        assert_eq!(program.executed, vec![0]);
        assert!(!program.main_rs.contains("loop {}"));
    }
}
