//! nbdev-style cell directives: `//|` lines at the top of a code cell that
//! say what the cell is for.
//!
//! | directive | meaning |
//! |---|---|
//! | `//| default_exp <crate>` or `<crate>::<module>` | once per notebook: where exported cells go (the crate root or one module) |
//! | `//| cfg <predicate>` | beside `default_exp`: the module is compiled only when the predicate holds (`#[cfg(<predicate>)]` on its declaration), such as `any(test, feature = "examples")` |
//! | `//| export` | the cell's items go to the module, public as written |
//! | `//| exporti` | the same, for items that are internal to the crate |
//! | `//| test [name]` | the cell becomes a `#[test]` function in the module's `tests` |
//! | `//| hide` | the cell's exported items are left out of the docs (`#[doc(hidden)]`) |
//! | `//| eval: false` | the native runner does not execute the cell |
//! | `//| volatile` | the cell's outputs change from run to run (timings): conformance checks compare only their kinds |
//!
//! Directives are comments, so evcxr ignores them and the notebook runs
//! unchanged in Jupyter. The directive block is the run of `//|` lines (and
//! blank lines) at the top of the cell; a directive anywhere else is an error,
//! as is an unknown one, with a suggestion when one is close.

use std::fmt;

/// All directive names, in the order they are documented.
pub const KNOWN: &[&str] = &["default_exp", "cfg", "export", "exporti", "test", "hide", "eval", "volatile"];

/// The prefix that marks a directive line.
pub const PREFIX: &str = "//|";

/// Where a notebook exports to: a crate root, or one module of a crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExportTarget {
    /// The crate, as Rust code names it (`caio_calculus`).
    pub crate_name: String,
    /// The module under the crate root, or `None` for the crate root itself.
    pub module: Option<String>,
}

impl fmt::Display for ExportTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.module {
            Some(module) => write!(f, "{}::{module}", self.crate_name),
            None => f.write_str(&self.crate_name),
        }
    }
}

/// Whether exported items are public or crate-internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// `//| export`
    Public,
    /// `//| exporti`
    Internal,
}

/// The directives of one code cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `//| default_exp ...`
    pub default_exp: Option<ExportTarget>,
    /// `//| cfg <predicate>`: the predicate, as written.
    pub cfg: Option<String>,
    /// `//| export` or `//| exporti`
    pub export: Option<Export>,
    /// `//| test [name]`: `Some(None)` without a name.
    pub test: Option<Option<String>>,
    /// `//| hide`
    pub hide: bool,
    /// `false` after `//| eval: false`.
    pub eval: bool,
    /// `//| volatile`
    pub volatile: bool,
    /// How many lines at the top of the cell belong to the directive block.
    pub block_lines: usize,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            default_exp: None,
            cfg: None,
            export: None,
            test: None,
            hide: false,
            eval: true,
            volatile: false,
            block_lines: 0,
        }
    }
}

/// A directive that cannot be accepted, at a 1-based line of the cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveError {
    /// 1-based line in the cell source.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DirectiveError {}

/// Reads the directive block at the top of a code cell.
pub fn parse(source: &str) -> Result<Directives, DirectiveError> {
    let mut directives = Directives::default();
    let mut in_block = true;
    for (index, line) in source.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim_start();
        let is_directive = trimmed.starts_with(PREFIX);
        if in_block && (is_directive || trimmed.is_empty()) {
            if is_directive {
                apply(&mut directives, &trimmed[PREFIX.len()..])
                    .map_err(|message| DirectiveError { line: line_no, message })?;
                directives.block_lines = line_no;
            }
            continue;
        }
        in_block = false;
        if is_directive {
            let name = split_directive(&trimmed[PREFIX.len()..]).0;
            return Err(DirectiveError {
                line: line_no,
                message: format!(
                    "directive `{name}` is misplaced: directives must be the first lines of the cell, before any code; move it to the top"
                ),
            });
        }
    }
    check_combination(&directives)?;
    Ok(directives)
}

/// The name and the argument of a directive body (what follows `//|`).
/// Accepts both `name value` and `name: value`.
fn split_directive(body: &str) -> (&str, &str) {
    let body = body.trim();
    let end = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(body.len());
    let (name, rest) = body.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim();
    (name, rest)
}

fn apply(directives: &mut Directives, body: &str) -> Result<(), String> {
    let (name, argument) = split_directive(body);
    if name.is_empty() {
        return Err(format!("empty directive `{PREFIX}{body}`; expected one of: {}", KNOWN.join(", ")));
    }
    let no_argument = |argument: &str| {
        if argument.is_empty() { Ok(()) } else { Err(format!("`{name}` takes no argument, found `{argument}`")) }
    };
    let duplicate = || format!("`{name}` is given twice in this cell");
    match name {
        "default_exp" => {
            if directives.default_exp.is_some() {
                return Err(duplicate());
            }
            directives.default_exp = Some(parse_target(argument)?);
        }
        "cfg" => {
            if directives.cfg.is_some() {
                return Err(duplicate());
            }
            if argument.is_empty() {
                return Err(format!("`cfg` needs a predicate, as in `{PREFIX} cfg feature = \"examples\"`"));
            }
            directives.cfg = Some(argument.to_owned());
        }
        "export" | "exporti" => {
            no_argument(argument)?;
            if directives.export.is_some() {
                return Err("`export` and `exporti` may appear only once per cell, and not together".into());
            }
            directives.export = Some(if name == "export" { Export::Public } else { Export::Internal });
        }
        "test" => {
            if directives.test.is_some() {
                return Err(duplicate());
            }
            directives.test = Some(if argument.is_empty() {
                None
            } else if is_identifier(argument) {
                Some(argument.to_owned())
            } else {
                return Err(format!(
                    "test name `{argument}` is not a Rust identifier; write `{PREFIX} test my_test_name` or just `{PREFIX} test`"
                ));
            });
        }
        "hide" => {
            no_argument(argument)?;
            if directives.hide {
                return Err(duplicate());
            }
            directives.hide = true;
        }
        "volatile" => {
            no_argument(argument)?;
            if directives.volatile {
                return Err(duplicate());
            }
            directives.volatile = true;
        }
        "eval" => {
            directives.eval = match argument {
                "false" => false,
                "true" => true,
                _ => {
                    return Err(format!(
                        "`eval` expects `true` or `false` (as in `{PREFIX} eval: false`), found `{argument}`"
                    ));
                }
            };
        }
        unknown => return Err(unknown_directive(unknown)),
    }
    Ok(())
}

fn unknown_directive(name: &str) -> String {
    let closest = KNOWN
        .iter()
        .map(|known| (strsim::damerau_levenshtein(name, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match closest {
        Some((_, known)) => format!("unknown directive `{name}`; did you mean `{known}`?"),
        None => format!("unknown directive `{name}`; known directives are {}", KNOWN.join(", ")),
    }
}

fn check_combination(d: &Directives) -> Result<(), DirectiveError> {
    let at = |message: &str| DirectiveError { line: 1, message: message.to_owned() };
    if d.export.is_some() && d.test.is_some() {
        return Err(at("a cell is either exported or a test, not both; split it into two cells"));
    }
    if d.cfg.is_some() && d.default_exp.is_none() {
        return Err(at(
            "`cfg` says when the module is compiled, so it belongs in the cell with `default_exp`; move it there",
        ));
    }
    if d.hide && d.export.is_none() {
        return Err(at(
            "`hide` applies to exported cells (it marks their items `#[doc(hidden)]`); add `export` or remove `hide`",
        ));
    }
    Ok(())
}

fn parse_target(argument: &str) -> Result<ExportTarget, String> {
    let usage =
        format!("write `{PREFIX} default_exp my_crate` for the crate root or `{PREFIX} default_exp my_crate::module`");
    if argument.is_empty() {
        return Err(format!("`default_exp` needs a target; {usage}"));
    }
    let parts: Vec<&str> = argument.split("::").collect();
    if let Some(bad) = parts.iter().find(|p| !is_identifier(p)) {
        return Err(format!("`{bad}` in `{argument}` is not a Rust identifier; {usage}"));
    }
    match parts.as_slice() {
        [krate] => Ok(ExportTarget { crate_name: (*krate).to_owned(), module: None }),
        [krate, module] => Ok(ExportTarget { crate_name: (*krate).to_owned(), module: Some((*module).to_owned()) }),
        _ => Err(format!(
            "nested modules (`{argument}`) are not supported; export to a module directly under the crate root"
        )),
    }
}

/// A plain (non-keyword) Rust identifier in snake or camel case.
fn is_identifier(text: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
    ];
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text != "_"
        && !KEYWORDS.contains(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(source: &str) -> Directives {
        parse(source).unwrap_or_else(|e| panic!("{source:?} should parse, got {e}"))
    }

    fn err(source: &str) -> String {
        parse(source).expect_err("should be rejected").to_string()
    }

    #[test]
    fn each_directive_is_read() {
        assert_eq!(
            ok("//| default_exp caio_calculus::guarantee").default_exp,
            Some(ExportTarget { crate_name: "caio_calculus".into(), module: Some("guarantee".into()) })
        );
        assert_eq!(ok("//| default_exp caio_calculus").default_exp.unwrap().module, None);
        assert_eq!(ok("//| export\nfn f() {}").export, Some(Export::Public));
        assert_eq!(ok("//| exporti\nfn f() {}").export, Some(Export::Internal));
        assert_eq!(ok("//| test\nassert!(true);").test, Some(None));
        assert_eq!(ok("//| test bounds_hold\nassert!(true);").test, Some(Some("bounds_hold".into())));
        assert!(ok("//| export\n//| hide\nfn f() {}").hide);
        assert!(!ok("//| eval: false\nloop {}").eval);
        assert!(ok("//| eval: true").eval);
        assert!(ok("let x = 1;").eval);
    }

    #[test]
    fn cfg_goes_with_default_exp() {
        let directives = ok("//| default_exp a::examples\n//| cfg: any(test, feature = \"examples\")");
        assert_eq!(directives.cfg.as_deref(), Some("any(test, feature = \"examples\")"));
    }

    #[test]
    fn block_covers_directives_and_blank_lines_only() {
        assert_eq!(ok("\n//| export\n\nfn f() {}\n").block_lines, 2);
        assert_eq!(ok("fn f() {}\n// | not a directive").block_lines, 0);
    }

    #[test]
    fn unknown_directive_suggests_the_closest() {
        assert_eq!(err("//| exprt"), "line 1: unknown directive `exprt`; did you mean `export`?");
        assert_eq!(err("//| defualt_exp x"), "line 1: unknown directive `defualt_exp`; did you mean `default_exp`?");
        assert!(err("//| frobnicate").contains("known directives are default_exp, cfg, export"));
    }

    #[test]
    fn misplaced_directive_names_its_line() {
        assert_eq!(
            err("//| export\nfn f() {}\n//| hide"),
            "line 3: directive `hide` is misplaced: directives must be the first lines of the cell, before any code; move it to the top"
        );
    }

    #[test]
    fn malformed_arguments_are_rejected() {
        assert!(err("//| default_exp").contains("needs a target"));
        assert!(err("//| default_exp a::b::c").contains("nested modules"));
        assert!(err("//| default_exp caio-calculus").contains("not a Rust identifier"));
        assert!(err("//| export now").contains("takes no argument"));
        assert!(err("//| eval: maybe").contains("expects `true` or `false`"));
        assert!(err("//| test two words").contains("not a Rust identifier"));
        assert!(err("//| export\n//| export").contains("only once"));
        assert!(err("//| export\n//| test").contains("either exported or a test"));
        assert!(err("//| hide\nlet x = 1;").contains("applies to exported cells"));
        assert!(err("//|").contains("empty directive"));
        assert!(err("//| cfg").contains("needs a predicate"));
        assert!(err("//| export\n//| cfg test").contains("belongs in the cell with `default_exp`"));
        assert!(err("//| default_exp a::b\n//| cfg test\n//| cfg test").contains("given twice"));
    }
}
