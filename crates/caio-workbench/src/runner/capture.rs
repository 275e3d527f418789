//! Reading what a runner program printed: splitting stdout and stderr at the
//! cell records written by [`super::runtime`], and turning each cell's text
//! into notebook outputs the way evcxr_jupyter does: plain text becomes
//! `stream` outputs, and `EVCXR_BEGIN_CONTENT <mime>` ... `EVCXR_END_CONTENT`
//! blocks become the cell's `execute_result`, one entry per MIME type.

use std::collections::BTreeMap;

use caio_notebook::{ExecuteResult, Metadata, MultilineText, Output, StreamOutput, mime_value};

/// What one cell printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellRun {
    /// Everything printed to stdout.
    pub stdout: String,
    /// Everything printed to stderr.
    pub stderr: String,
    /// The cell reached its end.
    pub completed: bool,
    /// A `?` in the cell returned an error.
    pub user_error: bool,
    /// The cell panicked.
    pub panic: Option<Panic>,
}

/// A panic, as the runtime's panic hook reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// Source file of the panic location.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The panic message.
    pub message: String,
}

enum Piece<'a> {
    Text(&'a str),
    Record(&'a str),
}

/// Splits output into text and `\x1ecaio:...\x1e` records.
fn pieces(output: &str) -> Vec<Piece<'_>> {
    const OPEN: &str = "\u{1e}caio:";
    let mut pieces = Vec::new();
    let mut rest = output;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('\u{1e}') else { break };
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        pieces.push(Piece::Record(&after[..end]));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

/// Assigns the program's output to cells, by notebook cell index.
pub fn split_by_cell(stdout: &str, stderr: &str) -> BTreeMap<usize, CellRun> {
    let mut runs: BTreeMap<usize, CellRun> = BTreeMap::new();
    for (stream, is_stdout) in [(stdout, true), (stderr, false)] {
        let mut current: Option<usize> = None;
        for piece in pieces(stream) {
            match piece {
                Piece::Record(record) => {
                    if let Some(cell) = record.strip_prefix("begin:").and_then(|n| n.parse().ok()) {
                        current = Some(cell);
                        runs.entry(cell).or_default();
                    } else if let Some(cell) = record.strip_prefix("end:").and_then(|n| n.parse::<usize>().ok()) {
                        runs.entry(cell).or_default().completed = true;
                        current = None;
                    } else if record == "user-error" {
                        if let Some(cell) = current {
                            runs.entry(cell).or_default().user_error = true;
                        }
                    } else if let (Some(fields), Some(cell), false) =
                        (record.strip_prefix("panic\u{1f}"), current, is_stdout)
                    {
                        let fields: Vec<&str> = fields.splitn(4, '\u{1f}').collect();
                        if let [file, line, column, message] = fields.as_slice() {
                            runs.entry(cell).or_default().panic.get_or_insert(Panic {
                                file: (*file).to_owned(),
                                line: line.parse().unwrap_or(0),
                                column: column.parse().unwrap_or(0),
                                message: (*message).to_owned(),
                            });
                        }
                    }
                }
                Piece::Text(text) => {
                    if let Some(cell) = current {
                        let run = runs.entry(cell).or_default();
                        if is_stdout { run.stdout.push_str(text) } else { run.stderr.push_str(text) }
                    }
                }
            }
        }
    }
    runs
}

/// The outputs Jupyter would show for a completed cell.
pub fn outputs(run: &CellRun, execution_count: u64) -> Vec<Output> {
    let (text, data) = split_content(&run.stdout);
    let mut outputs = Vec::new();
    for (name, text) in [("stdout", text.as_str()), ("stderr", run.stderr.as_str())] {
        if !text.is_empty() {
            outputs.push(Output::Stream(StreamOutput {
                name: name.to_owned(),
                text: MultilineText::from_text(text),
                extra: Metadata::new(),
            }));
        }
    }
    if !data.is_empty() {
        let data = data.iter().map(|(mime, content)| (mime.clone(), mime_value(mime, content))).collect();
        outputs.push(Output::ExecuteResult(ExecuteResult {
            data,
            metadata: Metadata::new(),
            execution_count: Some(execution_count),
            extra: Metadata::new(),
        }));
    }
    outputs
}

/// Separates evcxr content blocks from plain text. Content of the same MIME
/// type is concatenated, as evcxr merges it.
pub fn split_content(stdout: &str) -> (String, BTreeMap<String, String>) {
    let mut text = String::new();
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut block: Option<(String, Vec<&str>)> = None;
    for line in stdout.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        match &mut block {
            None => match bare.strip_prefix("EVCXR_BEGIN_CONTENT") {
                Some(mime) if mime.starts_with(' ') && !mime.trim().is_empty() => {
                    block = Some((mime.trim().to_owned(), Vec::new()))
                }
                _ => text.push_str(line),
            },
            Some((mime, lines)) => {
                if bare == "EVCXR_END_CONTENT" {
                    let content = lines.concat();
                    let content = content.strip_suffix('\n').unwrap_or(&content);
                    data.entry(mime.clone()).or_default().push_str(content);
                    block = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    if let Some((mime, lines)) = block {
        // An unterminated block is shown as the text it is.
        text.push_str(&format!("EVCXR_BEGIN_CONTENT {mime}\n"));
        text.push_str(&lines.concat());
    }
    (text, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_by_cell_records() {
        let stdout = "\u{1e}caio:begin:0\u{1e}hello\n\u{1e}caio:end:0\u{1e}\u{1e}caio:begin:2\u{1e}partial";
        let stderr = "\u{1e}caio:begin:0\u{1e}warn\n\u{1e}caio:end:0\u{1e}\u{1e}caio:begin:2\u{1e}\u{1e}caio:panic\u{1f}src/main.rs\u{1f}12\u{1f}5\u{1f}boom: a\u{1f}b\u{1e}";
        let runs = split_by_cell(stdout, stderr);
        assert_eq!(
            runs[&0],
            CellRun { stdout: "hello\n".into(), stderr: "warn\n".into(), completed: true, ..CellRun::default() }
        );
        assert!(!runs[&2].completed);
        assert_eq!(runs[&2].stdout, "partial");
        assert_eq!(
            runs[&2].panic,
            Some(Panic { file: "src/main.rs".into(), line: 12, column: 5, message: "boom: a\u{1f}b".into() })
        );
    }

    #[test]
    fn content_blocks_become_mime_data() {
        let (text, data) = split_content(
            "before\nEVCXR_BEGIN_CONTENT text/html\n<b>x</b>\nEVCXR_END_CONTENT\nafter\nEVCXR_BEGIN_CONTENT text/plain\n42\nEVCXR_END_CONTENT\n",
        );
        assert_eq!(text, "before\nafter\n");
        assert_eq!(data["text/html"], "<b>x</b>");
        assert_eq!(data["text/plain"], "42");
        let run = CellRun {
            stdout: "EVCXR_BEGIN_CONTENT text/plain\n\"a\"\nEVCXR_END_CONTENT\n".into(),
            completed: true,
            ..CellRun::default()
        };
        let outputs = outputs(&run, 3);
        assert_eq!(outputs.len(), 1);
        let Output::ExecuteResult(result) = &outputs[0] else { panic!("execute_result expected") };
        assert_eq!(result.execution_count, Some(3));
        assert_eq!(result.data["text/plain"], serde_json::json!(["\"a\""]));
    }
}
