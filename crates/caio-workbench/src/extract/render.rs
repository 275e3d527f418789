//! Turning exported cells into module source: crate paths rewritten to
//! `crate::`, items formatted with prettyplease, comments kept, and each cell
//! in its own marked region.
//!
//! prettyplease drops ordinary comments, and comments are where code says
//! why. So an item that contains a comment is kept as the author wrote it
//! (with only its paths rewritten), and comments between items are carried
//! over as they are; every other item is formatted by prettyplease. Test
//! cells keep their layout too (indented into the `#[test]` function): they
//! are mostly macro calls, whose input prettyplease prints as raw tokens.

use syn::spanned::Spanned;

use super::header::{Marker, RegionKind};
use super::source::{CellKind, ExportCell, ModuleSource};
use crate::rustsrc;

/// A problem in a cell's code at a 1-based line of the cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeProblem {
    /// 1-based line in the cell.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

fn problem(line: usize, message: impl Into<String>) -> CodeProblem {
    CodeProblem { line, message: message.into() }
}

/// The code of one cell as it appears in its region (not indented).
pub fn render_cell(cell: &ExportCell, crate_name: &str) -> Result<String, CodeProblem> {
    let code = prepare(&cell.code, crate_name)?;
    match &cell.kind {
        CellKind::Items { internal, hide } => render_items(&code, *internal, *hide),
        CellKind::Test { name } => render_test(&code, name),
    }
}

/// Checks what may not appear in exported code and rewrites
/// `<crate_name>::` to `crate::`. Newlines are kept, so lines still match.
fn prepare(code: &str, crate_name: &str) -> Result<String, CodeProblem> {
    for (i, line) in code.lines().enumerate() {
        if let Some((command, _)) = crate::runner::program::evcxr_command(line) {
            return Err(problem(
                i + 1,
                format!(
                    "evcxr command `{command}` cannot be exported; put `:dep` and other commands in a cell without `//| export`"
                ),
            ));
        }
    }
    let tokens = rustsrc::tokens(code).map_err(lex_problem)?;
    if let Some(range) = rustsrc::path_heads(&tokens, "crate").first() {
        return Err(problem(
            rustsrc::line_of(code, range.start),
            format!(
                "write `{crate_name}::...` instead of `crate::...` in notebooks: the notebook uses the crate through `:dep`, and extract rewrites the paths to `crate::`"
            ),
        ));
    }
    Ok(rustsrc::replace_ranges(code, &rustsrc::path_heads(&tokens, crate_name), "crate"))
}

fn lex_problem(error: proc_macro2::LexError) -> CodeProblem {
    problem(error.span().start().line, "syntax error: unbalanced brackets, or an unterminated string or comment")
}

fn syn_problem(error: &syn::Error, what: &str) -> CodeProblem {
    problem(error.span().start().line, format!("{what}: {error}"))
}

fn render_items(code: &str, internal: bool, hide: bool) -> Result<String, CodeProblem> {
    let file = syn::parse_file(code).map_err(|e| {
        let statements = syn::parse::Parser::parse_str(syn::Block::parse_within, code).is_ok();
        if statements {
            syn_problem(&e, "an exported cell may hold only items (fn, struct, enum, impl, use, const, ...); move statements to a cell without `//| export`")
        } else {
            syn_problem(&e, "syntax error")
        }
    })?;
    if let Some(attr) = file.attrs.first() {
        return Err(problem(
            attr.span().start().line,
            "inner attributes (`#![...]`) cannot be exported from a cell; put crate-wide settings in the crate's Cargo.toml `[lints]`",
        ));
    }
    if internal && let Some(item) = file.items.iter().find(|item| is_pub(item)) {
        return Err(problem(
            item.span().start().line,
            "`exporti` cells are crate-internal: make this item `pub(crate)` or private, or use `//| export` to make it public",
        ));
    }
    let tokens = rustsrc::tokens(code).map_err(lex_problem)?;
    let mut out = String::new();
    let mut cursor = 0;
    let mut previous_was_use = false;
    for item in &file.items {
        let range = item.span().byte_range();
        let is_use = matches!(item, syn::Item::Use(_));
        let gap = &code[cursor..range.start];
        if previous_was_use && is_use && gap.trim().is_empty() && !hide {
            out.push('\n');
        } else {
            push_gap(&mut out, gap);
        }
        previous_was_use = is_use;
        let text = if rustsrc::has_comments(code, &tokens, range.clone()) {
            code[range.clone()].to_owned()
        } else {
            let single = syn::File { shebang: None, frontmatter: None, attrs: Vec::new(), items: vec![item.clone()] };
            prettyplease::unparse(&single).trim_end().to_owned()
        };
        if hide {
            out.push_str("#[doc(hidden)]\n");
        }
        out.push_str(&text);
        cursor = range.end;
    }
    push_gap(&mut out, &code[cursor..]);
    Ok(out.trim_end().to_owned())
}

/// Carries the comments between items over: a comment on the line where the
/// previous item ends stays on that line; other comment lines go above the
/// next item; runs of blank lines shrink to one separating blank line.
fn push_gap(out: &mut String, gap: &str) {
    let (same_line, rest) = match gap.split_once('\n') {
        Some((first, rest)) => (first, Some(rest)),
        None => (gap, None),
    };
    if !out.is_empty() && !same_line.trim().is_empty() {
        out.push(' ');
        out.push_str(same_line.trim());
    }
    let rest = if out.is_empty() { gap } else { rest.unwrap_or("") };
    let comment_lines: Vec<&str> = rest.lines().map(str::trim_end).skip_while(|l| l.trim().is_empty()).collect();
    let comment_lines: Vec<&str> = {
        let mut lines = comment_lines;
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines
    };
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    let mut previous_blank = false;
    for line in comment_lines {
        let blank = line.trim().is_empty();
        if !(blank && previous_blank) {
            out.push_str(line);
            out.push('\n');
        }
        previous_blank = blank;
    }
}

fn is_pub(item: &syn::Item) -> bool {
    let vis = match item {
        syn::Item::Const(i) => &i.vis,
        syn::Item::Enum(i) => &i.vis,
        syn::Item::ExternCrate(i) => &i.vis,
        syn::Item::Fn(i) => &i.vis,
        syn::Item::Mod(i) => &i.vis,
        syn::Item::Static(i) => &i.vis,
        syn::Item::Struct(i) => &i.vis,
        syn::Item::Trait(i) => &i.vis,
        syn::Item::TraitAlias(i) => &i.vis,
        syn::Item::Type(i) => &i.vis,
        syn::Item::Union(i) => &i.vis,
        syn::Item::Use(i) => &i.vis,
        _ => return false,
    };
    matches!(vis, syn::Visibility::Public(_))
}

/// A test cell keeps its author's layout, indented into the function:
/// tests are mostly macro calls (`assert_eq!`), whose input prettyplease can
/// only print as raw tokens.
fn render_test(code: &str, name: &str) -> Result<String, CodeProblem> {
    syn::parse::Parser::parse_str(syn::Block::parse_within, code).map_err(|e| syn_problem(&e, "syntax error"))?;
    rustsrc::tokens(code).map_err(lex_problem)?;
    Ok(format!("#[test]\nfn {name}() {{\n{}\n}}", rustsrc::indent(trim_blank_lines(code), "    ")))
}

/// The text without its leading blank lines and trailing whitespace.
pub fn trim_blank_lines(text: &str) -> &str {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    text[start..].trim_end()
}

/// The module documentation as `//!` lines. Code fences without a language
/// are marked `text`, since rustdoc would otherwise compile them as Rust.
pub fn doc_comment(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_fence = false;
    for line in markdown.trim().lines() {
        let trimmed = line.trim_start();
        let line = if trimmed.starts_with("```") {
            let opening = !in_fence;
            in_fence = !in_fence;
            if opening && trimmed.trim_end() == "```" { line.replacen("```", "```text", 1) } else { line.to_owned() }
        } else {
            line.to_owned()
        };
        if line.trim_end().is_empty() {
            out.push_str("//!\n");
        } else {
            out.push_str("//! ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// The body of a generated file (everything below the header): docs,
/// module declarations (for a crate root), item regions, test regions.
pub fn render_body(module: &ModuleSource, rendered: &[(usize, String)], submodules: &[super::Submodule]) -> String {
    let mut out = doc_comment(&module.doc);
    if !submodules.is_empty() {
        out.push('\n');
        for submodule in submodules {
            if let Some(predicate) = &submodule.cfg {
                out.push_str(&format!("#[cfg({predicate})]\n"));
            }
            // Generated modules are formatted by prettyplease and kept as written.
            out.push_str(&format!("#[rustfmt::skip]\npub mod {};\n", submodule.name));
        }
    }
    let region =
        |i: usize| (&module.cells[i], rendered.iter().find(|(j, _)| *j == i).map(|(_, t)| t.as_str()).unwrap_or(""));
    for i in 0..module.cells.len() {
        let (cell, text) = region(i);
        if matches!(cell.kind, CellKind::Items { .. }) {
            out.push('\n');
            out.push_str(&Marker::line(RegionKind::Cell, &cell.id, text));
            out.push('\n');
            if !text.is_empty() {
                out.push_str(text);
                out.push('\n');
            }
        }
    }
    let tests: Vec<usize> =
        (0..module.cells.len()).filter(|i| matches!(module.cells[*i].kind, CellKind::Test { .. })).collect();
    if !tests.is_empty() {
        out.push_str("\n#[cfg(test)]\nmod tests {\n    use super::*;\n");
        for i in tests {
            let (cell, text) = region(i);
            out.push('\n');
            out.push_str("    ");
            out.push_str(&Marker::line(RegionKind::Test, &cell.id, text));
            out.push('\n');
            out.push_str(&rustsrc::indent(text, "    "));
            out.push('\n');
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(code: &str) -> String {
        render_items(&prepare(code, "caio_calculus").unwrap(), false, false).unwrap()
    }

    #[test]
    fn items_are_formatted_and_paths_rewritten() {
        assert_eq!(
            items("use caio_calculus::guarantee::Bound;\nuse std::fmt;\npub fn f(b:Bound)->f64{b.max}"),
            "use crate::guarantee::Bound;\nuse std::fmt;\n\npub fn f(b: Bound) -> f64 {\n    b.max\n}"
        );
    }

    #[test]
    fn comments_are_kept() {
        let code = "// Why the bound is closed.\npub fn f()->u8{\n    // because\n    1\n} // trailing\n\n\n/// Doc.\npub struct S;";
        assert_eq!(
            items(code),
            "// Why the bound is closed.\npub fn f()->u8{\n    // because\n    1\n} // trailing\n\n/// Doc.\npub struct S;"
        );
    }

    #[test]
    fn hidden_items_get_doc_hidden() {
        let code = prepare("pub fn f() {}", "c").unwrap();
        assert_eq!(render_items(&code, false, true).unwrap(), "#[doc(hidden)]\npub fn f() {}");
    }

    #[test]
    fn exported_cells_reject_what_cannot_be_exported() {
        let check = |code: &str, internal: bool, expected_line: usize, needle: &str| {
            let result = prepare(code, "caio_calculus").and_then(|c| render_items(&c, internal, false));
            let problem = result.expect_err("should be rejected");
            assert_eq!(problem.line, expected_line, "{problem:?}");
            assert!(problem.message.contains(needle), "{problem:?} should mention {needle}");
        };
        check("\n:dep serde = \"1\"", false, 2, "evcxr command `:dep` cannot be exported");
        check("fn f() {}\nlet x = 1;", false, 2, "may hold only items");
        check("fn f() {\n  crate::g()\n}", false, 2, "instead of `crate::...`");
        check("#![allow(dead_code)]\nfn f() {}", false, 1, "inner attributes");
        check("\npub fn f() {}", true, 2, "crate-internal");
        check("fn f( {}", false, 1, "syntax error");
    }

    #[test]
    fn tests_become_test_functions() {
        assert_eq!(
            render_test("\n\nassert_eq!(1+1,2);", "adds").unwrap(),
            "#[test]\nfn adds() {\n    assert_eq!(1+1,2);\n}"
        );
        assert_eq!(
            render_test("// checks addition\nassert_eq!(1+1, 2);", "adds").unwrap(),
            "#[test]\nfn adds() {\n    // checks addition\n    assert_eq!(1+1, 2);\n}"
        );
    }

    #[test]
    fn docs_come_from_markdown() {
        assert_eq!(
            doc_comment("# Title\n\nText.\n```\nyaml: 1\n```\n"),
            "//! # Title\n//!\n//! Text.\n//! ```text\n//! yaml: 1\n//! ```\n"
        );
    }
}
