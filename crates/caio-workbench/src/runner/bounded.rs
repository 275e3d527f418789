//! Reading a runner program's output with a bound on what one cell may
//! print. A cell that prints in a loop must not take the workbench's memory
//! with it: text between two of the runtime's records (`\x1ecaio:...\x1e`,
//! which delimit cells) is kept up to a limit, then dropped, with one
//! visible note where it was cut. Records are always kept, so the cells
//! after a noisy one are still told apart. Everything is read to the end,
//! so the program never blocks on a full pipe.

use std::io::Read;

/// The record separator that opens and closes the runtime's records.
const SEPARATOR: u8 = 0x1e;
/// What a record starts with, after its separator.
const RECORD: &[u8] = b"caio:";
/// Longest record the runtime writes; a longer run after a separator is text.
const MAX_RECORD: usize = 4096;

/// The note left where a cell's output was cut.
pub fn truncation_note(limit: usize) -> String {
    format!("\n[output truncated: the cell printed more than {limit} bytes; raise --max-output to see more]\n")
}

/// Reads `stream` to its end, keeping at most `limit` bytes of text
/// between records.
pub fn read_bounded(mut stream: impl Read, limit: usize) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut text_in_segment = 0usize;
    let mut truncated = false;
    // A record being read: from its opening separator, not yet closed.
    let mut record: Option<Vec<u8>> = None;
    let keep_text = |out: &mut Vec<u8>, bytes: &[u8], text_in_segment: &mut usize, truncated: &mut bool| {
        let room = limit.saturating_sub(*text_in_segment);
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        *text_in_segment += bytes.len();
        if bytes.len() > room && !*truncated {
            *truncated = true;
            out.extend_from_slice(truncation_note(limit).as_bytes());
        }
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..read];
        while !rest.is_empty() {
            match record.as_mut() {
                None => match rest.iter().position(|b| *b == SEPARATOR) {
                    None => {
                        keep_text(&mut out, rest, &mut text_in_segment, &mut truncated);
                        rest = &[];
                    }
                    Some(at) => {
                        keep_text(&mut out, &rest[..at], &mut text_in_segment, &mut truncated);
                        record = Some(vec![SEPARATOR]);
                        rest = &rest[at + 1..];
                    }
                },
                Some(open) => {
                    let end = rest.iter().position(|b| *b == SEPARATOR);
                    let take = end.map_or(rest.len(), |e| e + 1);
                    open.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    let closed = end.is_some();
                    if closed || open.len() > MAX_RECORD {
                        let bytes = record.take().expect("a record is open");
                        if closed && bytes[1..].starts_with(RECORD) {
                            out.extend_from_slice(&bytes);
                            text_in_segment = 0;
                            truncated = false;
                        } else {
                            keep_text(&mut out, &bytes, &mut text_in_segment, &mut truncated);
                        }
                    }
                }
            }
        }
    }
    if let Some(bytes) = record {
        keep_text(&mut out, &bytes, &mut text_in_segment, &mut truncated);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time, so records are
    /// split across reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn text_is_cut_per_cell_and_records_are_kept() {
        let noisy = "x".repeat(50);
        let input = format!(
            "\u{1e}caio:begin:1\u{1e}{noisy}\u{1e}caio:end:1\u{1e}\u{1e}caio:begin:2\u{1e}short\u{1e}caio:end:2\u{1e}"
        );
        let out = read_bounded(Trickle(input.as_bytes()), 10);
        let expected = format!(
            "\u{1e}caio:begin:1\u{1e}{}{}\u{1e}caio:end:1\u{1e}\u{1e}caio:begin:2\u{1e}short\u{1e}caio:end:2\u{1e}",
            "x".repeat(10),
            truncation_note(10)
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn a_stray_separator_is_text() {
        let out = read_bounded(Trickle("a\u{1e}b\u{1e}c".as_bytes()), 100);
        assert_eq!(out, "a\u{1e}b\u{1e}c");
        let out = read_bounded(Trickle("a\u{1e}bcd".as_bytes()), 100);
        assert_eq!(out, "a\u{1e}bcd", "an unclosed separator at the end is text");
    }

    #[test]
    fn output_under_the_limit_is_untouched() {
        let input = "\u{1e}caio:begin:0\u{1e}hello\nworld\n\u{1e}caio:end:0\u{1e}";
        assert_eq!(read_bounded(Trickle(input.as_bytes()), 1 << 20), input);
    }
}
