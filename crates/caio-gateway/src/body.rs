//! A call's body as the caller sent it: its JSON text and where each
//! top-level field's value lies in it. A field is parsed only when an
//! adapter needs it, and a service's request is written from slices of the
//! text, so a call holds about the size of its text for as long as it
//! lasts, never a tree of values (which costs tens of times the text for a
//! body of many small messages).
//!
//! This module must never check what a body means: the server reads every
//! body strictly (duplicate keys refused) before it becomes a call; this
//! module only finds the fields of text that reading accepted.

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

/// A call's body: JSON text of an object, and its top-level fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBody {
    text: Bytes,
    fields: Vec<(String, Range<usize>)>,
}

impl CallBody {
    /// The body of `text`, which must be a JSON object (as the server's
    /// strict reader accepted it).
    pub fn parse(text: Bytes) -> Result<CallBody, String> {
        let fields = top_level_fields(&text)?;
        Ok(CallBody { text, fields })
    }

    /// The body of a JSON value (its text is written once), which must be
    /// an object.
    pub fn from_value(value: &Value) -> Result<CallBody, String> {
        if !value.is_object() {
            return Err("the body must be a JSON object".into());
        }
        CallBody::parse(Bytes::from(serde_json::to_vec(value).expect("JSON values serialize")))
    }

    /// The body's text.
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// The text of a field's value, if the body has the field.
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(key, _)| key == name).map(|(_, range)| &self.text[range.clone()])
    }

    /// A field's value, parsed now; `None` when absent.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.raw(name).and_then(|raw| serde_json::from_slice(raw).ok())
    }

    /// The same body with `name` set to `value` (added at the end when absent).
    pub fn with(&self, name: &str, value: &Value) -> CallBody {
        let value = Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"));
        let mut pieces = self.pieces(&[(name, value)]);
        let mut text = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
        for piece in pieces.drain(..) {
            text.extend_from_slice(&piece);
        }
        CallBody::parse(Bytes::from(text)).expect("fields joined as an object")
    }

    /// The body's text as pieces, with the fields of `set` replaced (or
    /// added): every other field is a slice of the original text, not a copy.
    pub fn pieces(&self, set: &[(&str, Bytes)]) -> Vec<Bytes> {
        let mut pieces = vec![Bytes::from_static(b"{")];
        let mut first = true;
        let mut separator = |pieces: &mut Vec<Bytes>| {
            if !std::mem::take(&mut first) {
                pieces.push(Bytes::from_static(b","));
            }
        };
        for (key, range) in &self.fields {
            separator(&mut pieces);
            pieces.push(Bytes::from(serde_json::to_vec(key).expect("a string serializes")));
            pieces.push(Bytes::from_static(b":"));
            match set.iter().find(|(name, _)| name == key) {
                Some((_, value)) => pieces.push(value.clone()),
                None => pieces.push(self.text.slice(range.clone())),
            }
        }
        for (name, value) in set.iter().filter(|(name, _)| !self.fields.iter().any(|(key, _)| key == name)) {
            separator(&mut pieces);
            pieces.push(Bytes::from(serde_json::to_vec(name).expect("a string serializes")));
            pieces.push(Bytes::from_static(b":"));
            pieces.push(value.clone());
        }
        pieces.push(Bytes::from_static(b"}"));
        pieces
    }
}

/// The top-level keys of a JSON object's text and the byte ranges of their
/// values, found by skipping over each value (strings with their escapes,
/// nested objects and lists by depth).
fn top_level_fields(text: &[u8]) -> Result<Vec<(String, Range<usize>)>, String> {
    let mut at = skip_space(text, 0);
    if text.get(at) != Some(&b'{') {
        return Err("the body must be a JSON object".into());
    }
    at = skip_space(text, at + 1);
    let mut fields = Vec::new();
    if text.get(at) == Some(&b'}') {
        return Ok(fields);
    }
    loop {
        let key_end = skip_string(text, at)?;
        let key: String =
            serde_json::from_slice(&text[at..key_end]).map_err(|e| format!("a key is not a JSON string: {e}"))?;
        at = skip_space(text, key_end);
        if text.get(at) != Some(&b':') {
            return Err(format!("no `:` after the key `{key}`"));
        }
        let start = skip_space(text, at + 1);
        let end = skip_value(text, start)?;
        fields.push((key, start..end));
        at = skip_space(text, end);
        match text.get(at) {
            Some(b',') => at = skip_space(text, at + 1),
            Some(b'}') => return Ok(fields),
            _ => return Err("the object does not end".into()),
        }
    }
}

fn skip_space(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string starting at `at`.
fn skip_string(text: &[u8], at: usize) -> Result<usize, String> {
    if text.get(at) != Some(&b'"') {
        return Err("expected a string".into());
    }
    let mut i = at + 1;
    while let Some(byte) = text.get(i) {
        match byte {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("a string does not end".into())
}

/// The end (exclusive) of the value starting at `at`.
fn skip_value(text: &[u8], at: usize) -> Result<usize, String> {
    match text.get(at) {
        Some(b'"') => skip_string(text, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(byte) = text.get(i) {
                match byte {
                    b'"' => {
                        i = skip_string(text, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("a value does not end".into())
        }
        Some(_) => {
            let mut i = at;
            while text.get(i).is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace()) {
                i += 1;
            }
            if i == at { Err("expected a value".into()) } else { Ok(i) }
        }
        None => Err("the body ends early".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_in_the_text_and_parsed_on_demand() {
        let text = r#" { "model" : "chat", "messages": [{"role": "user", "content": "a \"quoted\" } ]"}],
            "n": 2, "stream": false, "x\"y": {"deep": [1, {"a": null}]}, "t": true } "#;
        let body = CallBody::parse(Bytes::from(text)).unwrap();
        assert_eq!(body.get("model"), Some(json!("chat")));
        assert_eq!(body.get("messages").unwrap()[0]["content"], "a \"quoted\" } ]");
        assert_eq!((body.get("n"), body.get("stream"), body.get("t")), (Some(json!(2)), Some(json!(false)), Some(json!(true))));
        assert_eq!(body.get("x\"y"), Some(json!({"deep": [1, {"a": null}]})));
        assert_eq!(body.get("absent"), None);
        let whole: Value = serde_json::from_str(text).unwrap();
        assert_eq!(CallBody::from_value(&whole).unwrap().get("messages"), whole.get("messages").cloned());
        assert!(CallBody::from_value(&json!(5)).is_err(), "not an object");
    }

    #[test]
    fn pieces_rewrite_fields_without_copying_the_rest() {
        let body = CallBody::parse(Bytes::from(r#"{"model": "chat", "messages": [1, 2]}"#)).unwrap();
        let pieces = body.pieces(&[("model", Bytes::from_static(b"\"phi3\"")), ("stream", Bytes::from_static(b"true"))]);
        let written: Vec<u8> = pieces.concat();
        let value: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(value, json!({"model": "phi3", "messages": [1, 2], "stream": true}));
        assert_eq!(body.with("messages", &json!([3])).get("messages"), Some(json!([3])));
        assert!(CallBody::parse(Bytes::from("[1]")).is_err());
        assert_eq!(CallBody::parse(Bytes::from("{}")).unwrap().get("x"), None);
    }
}
