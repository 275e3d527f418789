//! An upload as the caller sent it: a `multipart/form-data` body (RFC
//! 7578), its bytes and where each part lies in them. A text field is read
//! when the server needs it (`model`, `language`, ...); a service's request
//! is written from slices of the bytes with the fields caio sets replaced,
//! so an upload of 25 MB is held once for its call, never copied.
//!
//! The reading is strict, as every input's: a part without a name, a name
//! given twice (other than a list's `name[]`), a text field that is not
//! UTF-8, or a body that does not end with its closing delimiter is refused
//! with what is wrong. This module must never look inside a file.

use std::ops::Range;

use bytes::Bytes;
use serde_json::{Map, Value};

/// Most parts one upload may have.
pub const MAX_PARTS: usize = 64;

/// Longest head of one part (its `Content-Disposition` and `Content-Type`).
const MAX_PART_HEAD: usize = 8 << 10;

/// One part of an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Its field name.
    pub name: String,
    /// The file name, for a file.
    pub filename: Option<String>,
    /// Its media type, if it gave one.
    pub media_type: Option<String>,
    /// Where its content lies in the body.
    content: Range<usize>,
}

/// A `multipart/form-data` body and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct FormBody {
    text: Bytes,
    boundary: String,
    parts: Vec<Part>,
    /// Where the closing delimiter starts.
    end: usize,
}

impl FormBody {
    /// Reads `text`, sent with the `Content-Type` header `media_type`.
    pub fn parse(media_type: &str, text: Bytes) -> Result<FormBody, String> {
        let boundary = boundary_of(media_type)?;
        let delimiter = format!("--{boundary}");
        let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
        let mut at = match finder.find(&text) {
            Some(0) => 0,
            _ => return Err(format!("the body does not start with its boundary `{delimiter}`")),
        };
        let mut parts: Vec<Part> = Vec::new();
        loop {
            let after = at + delimiter.len();
            if text[after..].starts_with(b"--") {
                return Ok(FormBody { text, boundary, parts, end: at });
            }
            if !text[after..].starts_with(b"\r\n") {
                return Err("a boundary line does not end with CRLF".into());
            }
            if parts.len() == MAX_PARTS {
                return Err(format!("more than {MAX_PARTS} parts"));
            }
            let start = after + 2;
            let head_end = memchr::memmem::find(&text[start..(start + MAX_PART_HEAD + 4).min(text.len())], b"\r\n\r\n")
                .ok_or_else(|| {
                    format!("part {} has no end of its head within {MAX_PART_HEAD} bytes", parts.len() + 1)
                })?;
            let head = std::str::from_utf8(&text[start..start + head_end])
                .map_err(|_| format!("the head of part {} is not UTF-8", parts.len() + 1))?;
            let content_start = start + head_end + 4;
            let content_len = closing_at(&text[content_start..], &delimiter).ok_or_else(|| {
                format!("part {} is not closed by the boundary: the body is cut short", parts.len() + 1)
            })?;
            let (name, filename, media_type) = read_head(head).map_err(|e| format!("part {}: {e}", parts.len() + 1))?;
            if !name.ends_with("[]") && parts.iter().any(|p| p.name == name) {
                return Err(format!("`{name}` appears twice; keep one"));
            }
            let content = content_start..content_start + content_len;
            if filename.is_none() && std::str::from_utf8(&text[content.clone()]).is_err() {
                return Err(format!("the field `{name}` is not UTF-8 text"));
            }
            parts.push(Part { name, filename, media_type, content });
            at = content_start + content_len + 2;
        }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The text of a field (not a file), if the upload has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        let part = self.parts.iter().find(|p| p.name == name && p.filename.is_none())?;
        std::str::from_utf8(&self.text[part.content.clone()]).ok()
    }

    /// A file part and its bytes.
    pub fn file(&self, name: &str) -> Option<(&Part, &[u8])> {
        let part = self.parts.iter().find(|p| p.name == name && p.filename.is_some())?;
        Some((part, &self.text[part.content.clone()]))
    }

    /// The text fields as a JSON object (each a string; a list's `name[]`
    /// as a list under `name`), for checks and routing.
    pub fn fields(&self) -> Value {
        let mut fields = Map::new();
        for part in self.parts.iter().filter(|p| p.filename.is_none()) {
            let value = Value::String(String::from_utf8_lossy(&self.text[part.content.clone()]).into_owned());
            match part.name.strip_suffix("[]") {
                Some(list) => {
                    if let Value::Array(items) = fields.entry(list).or_insert_with(|| Value::Array(Vec::new())) {
                        items.push(value);
                    }
                }
                None => {
                    fields.insert(part.name.clone(), value);
                }
            }
        }
        Value::Object(fields)
    }

    /// The `Content-Type` of the body: `multipart/form-data` with its boundary.
    pub fn media_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body as pieces, with the text fields of `set` given new values
    /// (added before the closing delimiter when absent): every other part
    /// is a slice of the original bytes, not a copy.
    pub fn pieces(&self, set: &[(&str, &str)]) -> Vec<Bytes> {
        let mut pieces = Vec::new();
        let mut copied_to = 0;
        for part in &self.parts {
            if let Some((_, value)) = set.iter().find(|(name, _)| *name == part.name && part.filename.is_none()) {
                pieces.push(self.text.slice(copied_to..part.content.start));
                pieces.push(Bytes::from(value.to_string()));
                copied_to = part.content.end;
            }
        }
        pieces.push(self.text.slice(copied_to..self.end));
        for (name, value) in set {
            if !self.parts.iter().any(|p| p.name == *name) {
                let name = name.replace('"', "%22");
                pieces.push(Bytes::from(format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                    self.boundary
                )));
            }
        }
        pieces.push(self.text.slice(self.end..));
        pieces
    }
}

/// Where the delimiter that closes a part's content starts in `rest`: a
/// line of the boundary, followed by the end of the line or by `--`.
fn closing_at(rest: &[u8], delimiter: &str) -> Option<usize> {
    let closing = format!("\r\n{delimiter}");
    let finder = memchr::memmem::Finder::new(closing.as_bytes());
    let mut from = 0;
    while let Some(found) = finder.find(&rest[from..]) {
        let at = from + found;
        let after = &rest[at + closing.len()..];
        if after.starts_with(b"\r\n") || after.starts_with(b"--") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The boundary of a `multipart/form-data` media type.
fn boundary_of(media_type: &str) -> Result<String, String> {
    let mut params = media_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("send the upload as `multipart/form-data`, not `{kind}`"));
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .ok_or("the `Content-Type` names no boundary")?;
    // RFC 2046: 1 to 70 characters.
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("the boundary must have 1 to 70 characters".into());
    }
    Ok(boundary)
}

/// A part's name, file name and media type, from its head.
fn read_head(head: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let mut disposition = None;
    let mut media_type = None;
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("`{line}` is not a header"))?;
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.trim());
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            media_type = Some(value.trim().to_string());
        }
    }
    let disposition = disposition.ok_or("it has no `Content-Disposition`")?;
    let mut params = split_params(disposition).into_iter();
    if !params.next().is_some_and(|(kind, _)| kind.eq_ignore_ascii_case("form-data")) {
        return Err("its `Content-Disposition` is not `form-data`".into());
    }
    let (mut name, mut filename) = (None, None);
    for (key, value) in params {
        match key.to_ascii_lowercase().as_str() {
            "name" => name = value,
            "filename" => filename = value,
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("it has no field name")?;
    Ok((name, filename, media_type))
}

/// `form-data; name="a;b"; filename=x.wav` as (key, value) pairs; quoted
/// values may hold `;` and escaped quotes.
fn split_params(text: &str) -> Vec<(String, Option<String>)> {
    let mut params = Vec::new();
    let mut rest = text;
    while !rest.trim().is_empty() {
        let end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..end].trim().to_string();
        rest = &rest[end..];
        let mut value = None;
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if let Some(quoted) = after.strip_prefix('"') {
                let mut text = String::new();
                let mut consumed = quoted.len();
                let mut chars = quoted.char_indices();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next().map(|(_, next)| next)),
                        '"' => {
                            consumed = at + 1;
                            break;
                        }
                        c => text.push(c),
                    }
                }
                let after_quote = &quoted[consumed..];
                rest = after_quote.find(';').map_or("", |at| &after_quote[at..]);
                value = Some(text);
            } else {
                let end = after.find(';').unwrap_or(after.len());
                value = Some(after[..end].trim().to_string());
                rest = &after[end..];
            }
        }
        rest = rest.strip_prefix(';').unwrap_or(rest);
        params.push((key, value));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn upload() -> Bytes {
        Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nspeech_to_text\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XyZnot-a-boundary\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"timestamp_granularities[]\"\r\n\r\nword\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"timestamp_granularities[]\"\r\n\r\nsegment\r\n\
--XyZ--\r\n",
        )
    }

    #[test]
    fn parts_are_found_and_fields_read() {
        let form = FormBody::parse(TYPE, upload()).unwrap();
        assert_eq!(form.parts().len(), 4);
        assert_eq!(form.field("model"), Some("speech_to_text"));
        let (file, bytes) = form.file("file").unwrap();
        assert_eq!(file.filename.as_deref(), Some("a;b.wav"));
        assert_eq!(file.media_type.as_deref(), Some("audio/wav"));
        assert_eq!(bytes, b"RIFF\r\n--XyZnot-a-boundary", "a boundary inside a line is content");
        assert_eq!(
            form.fields(),
            serde_json::json!({"model": "speech_to_text", "timestamp_granularities": ["word", "segment"]})
        );
    }

    #[test]
    fn fields_are_replaced_or_added_and_the_rest_is_sliced() {
        let form = FormBody::parse(TYPE, upload()).unwrap();
        let pieces = form.pieces(&[("model", "whisper-1"), ("stream", "false")]);
        let again = FormBody::parse(TYPE, Bytes::from(pieces.concat())).unwrap();
        assert_eq!(again.field("model"), Some("whisper-1"));
        assert_eq!(again.field("stream"), Some("false"));
        assert_eq!(again.file("file").unwrap().1, form.file("file").unwrap().1);
        // The file's bytes are a slice of the upload, not a copy.
        let file_piece = pieces.iter().find(|p| p.windows(4).any(|w| w == b"RIFF")).unwrap();
        assert!(form.text.as_ptr_range().contains(&file_piece.as_ptr()));
    }

    #[test]
    fn bad_uploads_are_refused_with_what_is_wrong() {
        let refused =
            |media_type: &str, body: &'static [u8]| FormBody::parse(media_type, Bytes::from_static(body)).unwrap_err();
        assert!(refused("application/json", b"{}").contains("multipart/form-data"));
        assert!(refused("multipart/form-data", b"").contains("no boundary"));
        assert!(refused(TYPE, b"junk--XyZ--").contains("does not start"));
        assert!(
            refused(TYPE, b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end").contains("cut short")
        );
        assert!(
            refused(TYPE, b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--").contains("no field name")
        );
        let twice = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\na\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nb\r\n--XyZ--";
        assert!(refused(TYPE, twice).contains("`model` appears twice"));
        let binary = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\xff\r\n--XyZ--";
        assert!(refused(TYPE, binary).contains("not UTF-8"));
    }
}
