//! Text-level operations on Rust source that must not lose anything:
//! token positions, rewriting the paths that name a crate, finding comments
//! (which syn and prettyplease drop), and indenting code without touching
//! the inside of multi-line string literals.
//!
//! Everything here works on byte ranges of the original text, so comments
//! and the author's layout survive every transformation.

use std::ops::Range;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// One token of a source text, with its byte range in that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What kind of token it is.
    pub kind: TokenKind,
    /// Byte range in the source text.
    pub range: Range<usize>,
}

/// The kinds of token the rewriting rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// An identifier or keyword.
    Ident(String),
    /// A punctuation character; `joint` when glued to the next one (`::`).
    Punct {
        /// The character.
        ch: char,
        /// Glued to the next punctuation character.
        joint: bool,
    },
    /// A literal, possibly spanning lines.
    Literal,
    /// An opening or closing delimiter.
    Delimiter,
}

/// Lexes `source` into a flat list of tokens with byte ranges. Doc comments
/// become tokens that cover the comment; ordinary comments are the gaps.
pub fn tokens(source: &str) -> Result<Vec<Token>, proc_macro2::LexError> {
    let stream: TokenStream = source.parse()?;
    let mut out = Vec::new();
    flatten(stream, &mut out);
    Ok(out)
}

fn flatten(stream: TokenStream, out: &mut Vec<Token>) {
    for tree in stream {
        match tree {
            TokenTree::Group(group) => {
                let none = group.delimiter() == Delimiter::None;
                if !none {
                    out.push(Token { kind: TokenKind::Delimiter, range: group.span_open().byte_range() });
                }
                flatten(group.stream(), out);
                if !none {
                    out.push(Token { kind: TokenKind::Delimiter, range: group.span_close().byte_range() });
                }
            }
            TokenTree::Ident(ident) => {
                out.push(Token { kind: TokenKind::Ident(ident.to_string()), range: ident.span().byte_range() })
            }
            TokenTree::Punct(punct) => out.push(Token {
                kind: TokenKind::Punct { ch: punct.as_char(), joint: punct.spacing() == proc_macro2::Spacing::Joint },
                range: punct.span().byte_range(),
            }),
            TokenTree::Literal(literal) => {
                out.push(Token { kind: TokenKind::Literal, range: literal.span().byte_range() })
            }
        }
    }
}

fn is_path_sep(tokens: &[Token], at: usize) -> bool {
    matches!(
        (tokens.get(at).map(|t| &t.kind), tokens.get(at + 1).map(|t| &t.kind)),
        (Some(TokenKind::Punct { ch: ':', joint: true }), Some(TokenKind::Punct { ch: ':', .. }))
    )
}

fn is_ident(token: Option<&Token>, name: &str) -> bool {
    matches!(token.map(|t| &t.kind), Some(TokenKind::Ident(i)) if i == name)
}

/// Where a path starts with `head::`, e.g. `caio_calculus::guarantee::Bound`
/// or `crate::x`. Returns the range to replace: the head identifier, plus a
/// leading `::` when the path is written `::head::...`. A `head` in the
/// middle of a path (`other::head::x`) is not a path head and is skipped.
pub fn path_heads(tokens: &[Token], head: &str) -> Vec<Range<usize>> {
    let mut heads = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !is_ident(Some(token), head) || !is_path_sep(tokens, i + 1) {
            continue;
        }
        let preceded_by_sep = i >= 2 && is_path_sep(tokens, i - 2);
        if !preceded_by_sep {
            heads.push(token.range.clone());
            continue;
        }
        // `::head::x` is a leading colon unless the `::` itself follows a path segment.
        let before_sep = i.checked_sub(3).and_then(|j| tokens.get(j));
        let continues_path =
            matches!(before_sep.map(|t| &t.kind), Some(TokenKind::Ident(_)) | Some(TokenKind::Punct { ch: '>', .. }));
        if !continues_path {
            heads.push(tokens[i - 2].range.start..token.range.end);
        }
    }
    heads
}

/// Replaces each range of `source` by `replacement`.
pub fn replace_ranges(source: &str, ranges: &[Range<usize>], replacement: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut last = 0;
    for range in ranges {
        out.push_str(&source[last..range.start]);
        out.push_str(replacement);
        last = range.end;
    }
    out.push_str(&source[last..]);
    out
}

/// Rewrites every path that starts with `from::` so that it starts with
/// `to::` (a leading `::` is dropped), in code and inside macro input alike.
pub fn rewrite_path_heads(source: &str, from: &str, to: &str) -> Result<String, proc_macro2::LexError> {
    let tokens = tokens(source)?;
    Ok(replace_ranges(source, &path_heads(&tokens, from), to))
}

/// Whether the text between tokens inside `range` holds anything but
/// whitespace, i.e. an ordinary comment that syn would drop.
pub fn has_comments(source: &str, tokens: &[Token], range: Range<usize>) -> bool {
    let mut cursor = range.start;
    for token in tokens.iter().filter(|t| t.range.start >= range.start && t.range.end <= range.end) {
        if token.range.start > cursor && !source[cursor..token.range.start].trim().is_empty() {
            return true;
        }
        cursor = cursor.max(token.range.end);
    }
    !source[cursor.min(range.end)..range.end].trim().is_empty()
}

/// 1-based line numbers that lie inside a multi-line literal (after the
/// line the literal starts on): re-indenting them would change a string.
fn literal_continuation_lines(source: &str) -> Vec<bool> {
    let line_count = source.lines().count() + 1;
    let mut inside = vec![false; line_count + 1];
    let Ok(tokens) = tokens(source) else { return inside };
    for token in tokens.iter().filter(|t| t.kind == TokenKind::Literal) {
        let first = source[..token.range.start].matches('\n').count() + 1;
        let last = first + source[token.range.clone()].matches('\n').count();
        inside[first + 1..=last.min(line_count)].fill(true);
    }
    inside
}

/// Adds `prefix` to every non-empty line, except lines inside multi-line
/// literals.
pub fn indent(source: &str, prefix: &str) -> String {
    let inside = literal_continuation_lines(source);
    map_lines(
        source,
        |number, line| {
            if line.is_empty() || inside[number] { line.to_owned() } else { format!("{prefix}{line}") }
        },
    )
}

/// Removes up to `width` leading spaces from every line, except lines inside
/// multi-line literals.
pub fn dedent(source: &str, width: usize) -> String {
    let inside = literal_continuation_lines(source);
    map_lines(source, |number, line| {
        if inside[number] {
            return line.to_owned();
        }
        let spaces = line.len() - line.trim_start_matches(' ').len();
        line[spaces.min(width)..].to_owned()
    })
}

fn map_lines(source: &str, mut f: impl FnMut(usize, &str) -> String) -> String {
    let mut out: Vec<String> = source.split('\n').enumerate().map(|(i, line)| f(i + 1, line)).collect();
    if out.last().is_some_and(String::is_empty) && source.ends_with('\n') {
        out.pop();
        return out.join("\n") + "\n";
    }
    out.join("\n")
}

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_path_heads() {
        let check = |source: &str, expected: &str| {
            assert_eq!(rewrite_path_heads(source, "caio_calculus", "crate").unwrap(), expected, "rewriting {source}");
        };
        check("use caio_calculus::guarantee::Bound;", "use crate::guarantee::Bound;");
        check("let b = ::caio_calculus::Bound::new();", "let b = crate::Bound::new();");
        check("vec![caio_calculus::x(), y]", "vec![crate::x(), y]");
        check("other::caio_calculus::x", "other::caio_calculus::x");
        check("let caio_calculus = 1; caio_calculus", "let caio_calculus = 1; caio_calculus");
        check(
            "// caio_calculus::x in a comment\n\"caio_calculus::x\"",
            "// caio_calculus::x in a comment\n\"caio_calculus::x\"",
        );
        check("<T as caio_calculus::Tr>::f()", "<T as crate::Tr>::f()");
        check("pub(crate) fn f() {}", "pub(crate) fn f() {}");
    }

    #[test]
    fn finds_comments_but_not_doc_comments() {
        let check = |source: &str, expected: bool| {
            let tokens = tokens(source).unwrap();
            assert_eq!(has_comments(source, &tokens, 0..source.len()), expected, "in {source:?}");
        };
        check("fn f() { 1 }", false);
        check("/// doc\nfn f() { 1 }", false);
        check("fn f() { 1 } // why", true);
        check("fn f() { /* why */ 1 }", true);
        check("fn f() { \"// not a comment\" }", false);
    }

    #[test]
    fn indentation_leaves_multiline_literals_alone() {
        let source = "let s = \"a\nb\";\nif x {\n  y\n}\n";
        let indented = indent(source, "    ");
        assert_eq!(indented, "    let s = \"a\nb\";\n    if x {\n      y\n    }\n");
        assert_eq!(dedent(&indented, 4), source);
    }
}
