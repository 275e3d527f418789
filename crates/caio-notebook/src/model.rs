//! The nbformat 4 data model: typed where caio needs the fields, and
//! lossless everywhere else (unknown fields land in `extra` and are written
//! back unchanged).

use std::fmt;
use std::path::Path;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{CellRef, NotebookError, Problem};

/// A JSON object of metadata, kept as it was read.
pub type Metadata = Map<String, Value>;

/// A notebook file (nbformat 4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notebook {
    /// The cells, in order.
    pub cells: Vec<Cell>,
    /// Notebook metadata (`kernelspec`, `language_info`, ...).
    pub metadata: Metadata,
    /// Major format version; always 4 once parsed.
    pub nbformat: u64,
    /// Minor format version; 5 and above means cells carry ids.
    pub nbformat_minor: u64,
    /// Top-level fields caio does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// One cell, tagged by `cell_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cell_type", rename_all = "lowercase")]
pub enum Cell {
    /// Code: for caio, Rust in the evcxr dialect.
    Code(CodeCell),
    /// Markdown prose.
    Markdown(TextCell),
    /// Raw text, passed through untouched.
    Raw(TextCell),
}

/// A code cell and its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeCell {
    /// Cell id (nbformat 4.5+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The code.
    pub source: MultilineText,
    /// Cell metadata.
    pub metadata: Metadata,
    /// Outputs of the last execution.
    pub outputs: Vec<Output>,
    /// Execution counter of the last execution, `null` if never run.
    pub execution_count: Option<u64>,
    /// Fields caio does not know.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// A markdown or raw cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCell {
    /// Cell id (nbformat 4.5+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The text.
    pub source: MultilineText,
    /// Cell metadata.
    pub metadata: Metadata,
    /// Fields caio does not know (`attachments`, ...).
    #[serde(flatten)]
    pub extra: Metadata,
}

/// One output of a code cell, tagged by `output_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "output_type", rename_all = "snake_case")]
pub enum Output {
    /// Text printed to stdout or stderr.
    Stream(StreamOutput),
    /// Rich data displayed during execution.
    DisplayData(DisplayData),
    /// The value of the cell's final expression.
    ExecuteResult(ExecuteResult),
    /// An error that stopped the cell.
    Error(ErrorOutput),
}

/// `stream` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOutput {
    /// `stdout` or `stderr`.
    pub name: String,
    /// The text.
    pub text: MultilineText,
    /// Fields caio does not know.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// `display_data` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayData {
    /// MIME type -> content.
    pub data: Metadata,
    /// Output metadata.
    pub metadata: Metadata,
    /// Fields caio does not know.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// `execute_result` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResult {
    /// MIME type -> content.
    pub data: Metadata,
    /// Output metadata.
    pub metadata: Metadata,
    /// The execution counter of the cell that produced it.
    pub execution_count: Option<u64>,
    /// Fields caio does not know.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// `error` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorOutput {
    /// Error name.
    pub ename: String,
    /// Error value (the message).
    pub evalue: String,
    /// Lines of the traceback.
    pub traceback: Vec<String>,
    /// Fields caio does not know.
    #[serde(flatten)]
    pub extra: Metadata,
}

/// Multi-line text as nbformat stores it: either one string or a list of
/// lines. Which form a file used is kept, so that writing it back changes
/// nothing; new text is stored the way Jupyter stores it (a list of lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultilineText {
    /// A list of lines, each but the last ending in its line break.
    Lines(Vec<String>),
    /// One string.
    Joined(String),
}

impl MultilineText {
    /// The text as Jupyter would store it: split after every line break, the
    /// way Python's `str.splitlines(keepends=True)` splits.
    pub fn from_text(text: &str) -> Self {
        MultilineText::Lines(split_lines_keep_ends(text))
    }

    /// The whole text.
    pub fn text(&self) -> String {
        match self {
            MultilineText::Lines(lines) => lines.concat(),
            MultilineText::Joined(text) => text.clone(),
        }
    }

    /// The same text in Jupyter's list-of-lines form.
    pub fn normalized(&self) -> Self {
        MultilineText::from_text(&self.text())
    }
}

/// Python's `str.splitlines(keepends=True)`, which nbformat uses to store
/// multi-line strings: it also breaks at `\r`, `\x0b`, `\x0c`, `\x1c`-`\x1e`,
/// `\x85`, U+2028 and U+2029.
fn split_lines_keep_ends(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\r' => match chars.peek() {
                Some(&(j, '\n')) => {
                    chars.next();
                    j + 1
                }
                _ => i + 1,
            },
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}' => i + c.len_utf8(),
            _ => continue,
        };
        lines.push(text[start..end].to_owned());
        start = end;
    }
    if start < text.len() {
        lines.push(text[start..].to_owned());
    }
    lines
}

impl Serialize for MultilineText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MultilineText::Lines(lines) => lines.serialize(serializer),
            MultilineText::Joined(text) => text.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MultilineText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = MultilineText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MultilineText::Joined(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut lines = Vec::new();
                while let Some(line) = seq.next_element::<String>()? {
                    lines.push(line);
                }
                Ok(MultilineText::Lines(lines))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

impl Cell {
    /// The cell id, if any.
    pub fn id(&self) -> Option<&str> {
        match self {
            Cell::Code(c) => c.id.as_deref(),
            Cell::Markdown(c) | Cell::Raw(c) => c.id.as_deref(),
        }
    }

    /// Sets the cell id.
    pub fn set_id(&mut self, id: String) {
        match self {
            Cell::Code(c) => c.id = Some(id),
            Cell::Markdown(c) | Cell::Raw(c) => c.id = Some(id),
        }
    }

    /// The cell source.
    pub fn source(&self) -> &MultilineText {
        match self {
            Cell::Code(c) => &c.source,
            Cell::Markdown(c) | Cell::Raw(c) => &c.source,
        }
    }

    /// `code`, `markdown` or `raw`, as nbformat's `cell_type` says.
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Code(_) => "code",
            Cell::Markdown(_) => "markdown",
            Cell::Raw(_) => "raw",
        }
    }

    /// The cell metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Cell::Code(c) => &c.metadata,
            Cell::Markdown(c) | Cell::Raw(c) => &c.metadata,
        }
    }

    /// The cell metadata, mutable.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        match self {
            Cell::Code(c) => &mut c.metadata,
            Cell::Markdown(c) | Cell::Raw(c) => &mut c.metadata,
        }
    }
}

/// MIME types whose string content nbformat stores as a list of lines,
/// besides every `text/*` type.
const SPLIT_MIME_TYPES: &[&str] = &["application/javascript", "image/svg+xml"];

/// The JSON value nbformat stores for `content` of MIME type `mime`: text
/// types as a list of lines, JSON types parsed, everything else a string.
pub fn mime_value(mime: &str, content: &str) -> Value {
    if mime.starts_with("text/") || SPLIT_MIME_TYPES.contains(&mime) {
        return Value::Array(split_lines_keep_ends(content).into_iter().map(Value::String).collect());
    }
    if (mime == "application/json" || mime.ends_with("+json"))
        && let Ok(value) = serde_json::from_str(content)
    {
        return value;
    }
    Value::String(content.to_owned())
}

impl Notebook {
    /// Reads and parses a notebook file. Errors name the file.
    pub fn load(path: &Path) -> Result<Notebook, NotebookError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| NotebookError::Read { path: path.to_owned(), source })?;
        Notebook::parse(&text).map_err(|problem| NotebookError::Invalid { path: path.to_owned(), problem })
    }

    /// Parses notebook JSON. Each cell is checked on its own, so an error
    /// names the cell that is malformed.
    pub fn parse(text: &str) -> Result<Notebook, Problem> {
        let value: Value = serde_json::from_str(text).map_err(|e| Problem::Json {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string(), e.line(), e.column()),
        })?;
        let Value::Object(mut top) = value else {
            return Err(Problem::Structure(
                "the top level must be a JSON object with `cells`, `metadata`, `nbformat` and `nbformat_minor`".into(),
            ));
        };
        let nbformat = take_version(&mut top, "nbformat")?;
        if nbformat != 4 {
            return Err(Problem::UnsupportedFormat { found: nbformat });
        }
        let nbformat_minor = take_version(&mut top, "nbformat_minor")?;
        let metadata = match top.remove("metadata") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Problem::Structure("`metadata` must be a JSON object".into())),
            None => {
                return Err(Problem::Structure(
                    "`metadata` is missing; a notebook needs at least `\"metadata\": {}`".into(),
                ));
            }
        };
        let cells = match top.remove("cells") {
            Some(Value::Array(cells)) => cells,
            Some(_) => return Err(Problem::Structure("`cells` must be a list".into())),
            None => return Err(Problem::Structure("`cells` is missing".into())),
        };
        let cells = cells
            .into_iter()
            .enumerate()
            .map(|(index, value)| parse_cell(index, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notebook { cells, metadata, nbformat, nbformat_minor, extra: top })
    }

    /// The notebook in Jupyter's on-disk layout, byte for byte.
    pub fn to_json(&self) -> String {
        let value = serde_json::to_value(self).expect("a notebook always serializes to JSON");
        crate::json::to_jupyter_json(&value)
    }

    /// Stores every multi-line string the way Jupyter does when it saves
    /// (nbformat's `split_lines`): sources, stream text and text-like output
    /// data as lists of lines.
    pub fn split_lines(&mut self) {
        for cell in &mut self.cells {
            match cell {
                Cell::Markdown(c) | Cell::Raw(c) => c.source = c.source.normalized(),
                Cell::Code(c) => {
                    c.source = c.source.normalized();
                    for output in &mut c.outputs {
                        match output {
                            Output::Stream(s) => s.text = s.text.normalized(),
                            Output::DisplayData(DisplayData { data, .. })
                            | Output::ExecuteResult(ExecuteResult { data, .. }) => {
                                for (mime, value) in data.iter_mut() {
                                    if let Value::String(text) = value
                                        && (mime.starts_with("text/") || SPLIT_MIME_TYPES.contains(&mime.as_str()))
                                    {
                                        *value = mime_value(mime, text);
                                    }
                                }
                            }
                            Output::Error(_) => {}
                        }
                    }
                }
            }
        }
    }

    /// Checks that the notebook is meant for the Rust (evcxr) kernel, which
    /// every caio notebook must be so that it runs unchanged in Jupyter.
    pub fn check_rust_kernel(&self) -> Result<(), Problem> {
        const FIX: &str = "select the Rust kernel of evcxr_jupyter, or set metadata.kernelspec to {\"display_name\": \"Rust\", \"language\": \"rust\", \"name\": \"rust\"}";
        let Some(spec) = self.metadata.get("kernelspec") else {
            return Err(Problem::Kernel(format!("metadata.kernelspec is missing; {FIX}")));
        };
        let field = |key: &str| spec.get(key).and_then(Value::as_str).unwrap_or("");
        let (name, language) = (field("name"), field("language"));
        if language.eq_ignore_ascii_case("rust") || name.eq_ignore_ascii_case("rust") {
            Ok(())
        } else {
            Err(Problem::Kernel(format!("kernel `{name}` (language `{language}`) is not the Rust evcxr kernel; {FIX}")))
        }
    }
}

fn take_version(top: &mut Metadata, key: &str) -> Result<u64, Problem> {
    match top.remove(key) {
        Some(v) => {
            v.as_u64().ok_or_else(|| Problem::Structure(format!("`{key}` must be a non-negative integer, found {v}")))
        }
        None => Err(Problem::Structure(format!("`{key}` is missing; is this a Jupyter notebook?"))),
    }
}

fn parse_cell(index: usize, value: Value) -> Result<Cell, Problem> {
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let cell_ref = CellRef { index, id, line: None };
    if !value.is_object() {
        return Err(Problem::Cell { cell: cell_ref, message: "a cell must be a JSON object".into() });
    }
    serde_json::from_value(value).map_err(|e| Problem::Cell { cell: cell_ref, message: format!("malformed cell: {e}") })
}

/// serde_json appends " at line L column C" to its messages; the position is
/// reported separately, so drop it from the text.
fn strip_position(message: &str, line: usize, column: usize) -> String {
    let suffix = format!(" at line {line} column {column}");
    message.strip_suffix(&suffix).unwrap_or(message).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python_splitlines() {
        let check = |text: &str, expected: &[&str]| {
            assert_eq!(split_lines_keep_ends(text), expected, "splitting {text:?}");
        };
        check("", &[]);
        check("a", &["a"]);
        check("a\n", &["a\n"]);
        check("a\nb", &["a\n", "b"]);
        check("a\r\nb\rc", &["a\r\n", "b\r", "c"]);
        check("a\u{2028}b\x0cc", &["a\u{2028}", "b\x0c", "c"]);
        check("\n\n", &["\n", "\n"]);
    }
}
