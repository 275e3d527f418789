//! Reading a service's stream: bytes in, whole events out. An event is
//! forwarded only once it is complete and parsed, so a malformed chunk
//! never reaches the caller as partial JSON; what was said so far is kept,
//! so that a stream cut mid-answer can be continued elsewhere; and the
//! reader knows when a stream is complete: a `finish_reason` (with or
//! without `data: [DONE]`), or `[DONE]` itself. Raw bytes (audio) are
//! passed on as they come, and end with the body.
//!
//! This module must never do I/O: the executor reads and sends.

use bytes::Bytes;
use caio_calculus::contract::Contract;
use serde_json::Value;

use crate::adapter::{self, Call, Framing};
use crate::anthropic::StreamState;

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq)]
pub enum Broken {
    /// A chunk is not what the framing promises.
    Malformed(String),
    /// The service sent an error in the stream.
    Error(Value),
}

/// Longest event or line kept while waiting for its end: a service that
/// never ends one is malformed, not a reason to grow without bound.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One service's stream, as read so far.
#[derive(Debug)]
pub struct Reader {
    framing: Framing,
    tail: Vec<u8>,
    text: String,
    finished: bool,
    done: bool,
    usage: Option<Value>,
    /// This stream continues another: its first chunk that only says who
    /// speaks is dropped, and chunks carry the first stream's id.
    continuation: bool,
    /// What a Messages stream said so far (its prompt's tokens, its tools).
    anthropic: StreamState,
}

impl Reader {
    /// A reader of a stream framed as `framing`; `continuation` when the
    /// caller already received the start of the answer from another service.
    pub fn new(framing: Framing, continuation: bool) -> Reader {
        Reader {
            framing,
            tail: Vec::new(),
            text: String::new(),
            finished: false,
            done: false,
            usage: None,
            continuation,
            anthropic: StreamState::default(),
        }
    }

    /// The text of the answer so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the stream said it was finished (raw bytes say nothing:
    /// a body that ends without an error is complete).
    pub fn complete(&self) -> bool {
        self.finished || self.done || self.framing == Framing::Raw
    }

    /// Whether the stream ended with `data: [DONE]` (or Ollama's `done`).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The usage the service reported, if it did.
    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    /// Takes a chunk as it came off the wire: raw bytes (audio) are passed
    /// on as they are, without a copy; framed ones go through [`Reader::feed`].
    pub fn feed_chunk(&mut self, bytes: Bytes, call: &Call, contract: &Contract) -> Result<Vec<Bytes>, Broken> {
        if self.framing == Framing::Raw {
            return Ok(vec![bytes]);
        }
        self.feed(&bytes, call, contract)
    }

    /// Takes more bytes; returns the events now complete, in the OpenAI
    /// format, ready for the caller (never `[DONE]`: the executor ends the
    /// stream itself).
    pub fn feed(&mut self, bytes: &[u8], call: &Call, contract: &Contract) -> Result<Vec<Bytes>, Broken> {
        if self.framing == Framing::Raw {
            return Ok(vec![Bytes::copy_from_slice(bytes)]);
        }
        self.tail.extend_from_slice(bytes);
        let mut out = Vec::new();
        match self.framing {
            Framing::Raw => {} // Passed on above.
            Framing::OpenaiEvents | Framing::AnthropicEvents => {
                while let Some((end, separator)) = event_end(&self.tail) {
                    let block: Vec<u8> = self.tail.drain(..end + separator).collect();
                    // A comment or a keep-alive has no data.
                    let Some(data) = event_data(&block[..end])? else { continue };
                    let event = match self.framing {
                        Framing::AnthropicEvents => self.anthropic_event(&data, call, contract)?,
                        _ => self.openai_event(&block[..end], &data, call)?,
                    };
                    out.extend(event);
                }
            }
            Framing::OllamaLines | Framing::Whole => {
                while let Some(end) = self.tail.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.tail.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let value: Value = serde_json::from_slice(&line)
                        .map_err(|e| Broken::Malformed(format!("a stream line is not JSON: {e}")))?;
                    if let Some(content) = value.pointer("/message/content").and_then(Value::as_str) {
                        self.text.push_str(content);
                    }
                    let (events, done) = adapter::ollama_line(call, contract, &line).map_err(Broken::Malformed)?;
                    self.done |= done;
                    self.finished |= done;
                    // `ollama_line` ends with `[DONE]`: the executor sends it.
                    out.extend(events.into_iter().filter(|e| &e[..] != adapter::DONE));
                }
            }
        }
        if self.tail.len() > MAX_EVENT_BYTES {
            return Err(Broken::Malformed(format!("an event runs past {MAX_EVENT_BYTES} bytes")));
        }
        Ok(out)
    }

    /// One event of a Messages stream, as the OpenAI event the caller sees
    /// (if it says something).
    fn anthropic_event(&mut self, data: &str, call: &Call, contract: &Contract) -> Result<Option<Bytes>, Broken> {
        let data: Value = serde_json::from_str(data)
            .map_err(|e| Broken::Malformed(format!("an event is not JSON: {e}")))?;
        let opening = data.get("type").and_then(Value::as_str) == Some("message_start");
        let model = adapter::model(contract, call);
        let translated = self.anthropic.event(&data, &call.id, call.created, &model).map_err(Broken::Error)?;
        self.text.push_str(&translated.text);
        self.finished |= translated.finished;
        self.done |= translated.done;
        if translated.usage.is_some() {
            self.usage = translated.usage;
        }
        // A continuation's opening only says who speaks: the caller knows.
        if opening && self.continuation {
            return Ok(None);
        }
        Ok(translated.chunk.map(|chunk| adapter::event(&chunk)))
    }

    /// One server-sent event: its data parsed, the answer's text and state
    /// kept, the event itself returned if the caller should see it.
    fn openai_event(&mut self, block: &[u8], data: &str, call: &Call) -> Result<Option<Bytes>, Broken> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let mut chunk: Value =
            serde_json::from_str(data).map_err(|e| Broken::Malformed(format!("a chunk is not JSON: {e}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(Broken::Error(error.clone()));
        }
        let choices = chunk.get("choices").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut says_something = false;
        for choice in &choices {
            if let Some(content) = choice.pointer("/delta/content").and_then(Value::as_str) {
                self.text.push_str(content);
                says_something |= !content.is_empty();
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.finished = true;
                says_something = true;
            }
            says_something |= choice.pointer("/delta/tool_calls").is_some();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
            says_something = true;
        }
        if !self.continuation {
            return Ok(Some(Bytes::copy_from_slice(&[block, b"\n\n"].concat())));
        }
        // A continuation speaks as the first stream did: its role-only
        // opening is dropped, its chunks carry the call's id.
        if !says_something {
            return Ok(None);
        }
        if let Some(fields) = chunk.as_object_mut() {
            fields.insert("id".into(), Value::String(call.id.clone()));
        }
        Ok(Some(adapter::event(&chunk)))
    }
}

/// The data of one server-sent event (its `data:` lines joined), or `None`
/// for an event without data (a comment, a keep-alive).
fn event_data(block: &[u8]) -> Result<Option<String>, Broken> {
    let text = std::str::from_utf8(block).map_err(|_| Broken::Malformed("an event is not UTF-8".into()))?;
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    Ok((!data.is_empty()).then(|| data.join("\n")))
}

/// Where the first complete event of `bytes` ends, and the length of its
/// separator (a blank line, `\n\n` or `\r\n\r\n`).
fn event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2));
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Operation;
    use caio_calculus::contract::{Format, parse_contracts};
    use serde_json::json;

    fn setup() -> (Call, Contract) {
        let call = Call {
            operation: Operation::Chat,
            body: crate::body::CallBody::from_value(&json!({})).unwrap(),
            stream: true,
            id: "chatcmpl-1".into(),
            created: 1,
            restart: false,
            upload: None,
        };
        let contract = parse_contracts(
            r#"{"id": "s", "version": "1.0.0", "capabilities": ["chat"], "privacy": {"data_locality": "local"}, "api": {"adapter": "openai", "endpoint": "http://127.0.0.1:1/v1"}}"#,
            Format::Json,
        )
        .unwrap()
        .remove(0);
        (call, contract)
    }

    #[test]
    fn a_messages_stream_in_any_pieces_becomes_openai_events() {
        let (call, contract) = setup();
        let stream = concat!(
            "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"usage\": {\"input_tokens\": 4}}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hel\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"lo\"}}\n\n",
            "event: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\"}, \"usage\": {\"output_tokens\": 2}}\n\n",
            "event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n",
        );
        for split in [1, 7, 64, stream.len()] {
            let mut reader = Reader::new(Framing::AnthropicEvents, false);
            let mut events = Vec::new();
            for piece in stream.as_bytes().chunks(split) {
                events.extend(reader.feed(piece, &call, &contract).unwrap());
            }
            assert_eq!(events.len(), 4, "the opening, two deltas and the finish; split {split}");
            assert_eq!((reader.text(), reader.complete(), reader.done()), ("Hello", true, true));
            assert_eq!(reader.usage(), Some(&json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})));
            let last: Value = serde_json::from_slice(&events[3][6..]).unwrap();
            assert_eq!((last["id"].as_str(), last["choices"][0]["finish_reason"].as_str()), (Some("chatcmpl-1"), Some("stop")));
        }
        // A continuation drops its opening; an error event breaks the stream.
        let mut reader = Reader::new(Framing::AnthropicEvents, true);
        assert!(reader.feed(&stream.as_bytes()[..100], &call, &contract).unwrap().is_empty());
        let error = b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\"}}\n\n";
        let broken = Reader::new(Framing::AnthropicEvents, false).feed(error, &call, &contract).unwrap_err();
        assert_eq!(broken, Broken::Error(json!({"type": "overloaded_error"})));
    }

    fn chunk(content: &str, finish: Option<&str>) -> String {
        format!(
            "data: {}\n\n",
            json!({"id": "up", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
        )
    }

    #[test]
    fn events_are_forwarded_whole_however_the_bytes_are_split() {
        let (call, contract) = setup();
        let text = format!("{}{}: keep-alive\n\n{}data: [DONE]\n\n", chunk("He", None), chunk("llo", None), chunk("", Some("stop")));
        let mut reader = Reader::new(Framing::OpenaiEvents, false);
        let mut events = Vec::new();
        for piece in text.as_bytes().chunks(7) {
            events.extend(reader.feed(piece, &call, &contract).unwrap());
        }
        assert_eq!(events.len(), 3, "the comment and [DONE] are not forwarded");
        assert_eq!(events.concat(), [chunk("He", None), chunk("llo", None), chunk("", Some("stop"))].concat().as_bytes());
        assert_eq!(reader.text(), "Hello");
        assert!(reader.complete() && reader.done());
    }

    #[test]
    fn a_finish_reason_completes_a_stream_without_done() {
        let (call, contract) = setup();
        let mut reader = Reader::new(Framing::OpenaiEvents, false);
        reader.feed(chunk("Hi", None).as_bytes(), &call, &contract).unwrap();
        assert!(!reader.complete());
        reader.feed(chunk("", Some("length")).as_bytes(), &call, &contract).unwrap();
        assert!(reader.complete() && !reader.done());
        let usage = format!("data: {}\r\n\r\n", json!({"choices": [], "usage": {"total_tokens": 5}}));
        assert_eq!(reader.feed(usage.as_bytes(), &call, &contract).unwrap().len(), 1, "CRLF framing too");
        assert_eq!(reader.usage(), Some(&json!({"total_tokens": 5})));
    }

    #[test]
    fn malformed_chunks_and_in_band_errors_break_the_stream_and_nothing_leaks() {
        let (call, contract) = setup();
        let mut reader = Reader::new(Framing::OpenaiEvents, false);
        let broken = reader.feed(b"data: {\"choices\": [{\"delta\": {\"content\": \"bro\n\n", &call, &contract);
        assert!(matches!(broken, Err(Broken::Malformed(_))), "{broken:?}");
        let mut reader = Reader::new(Framing::OpenaiEvents, false);
        assert!(reader.feed(b"data: {\"choices\": [{\"delta\": {}", &call, &contract).unwrap().is_empty(), "a partial event waits");
        let error = reader.feed(b"}]}\n\ndata: {\"error\": {\"message\": \"overloaded\"}}\n\n", &call, &contract);
        assert_eq!(error, Err(Broken::Error(json!({"message": "overloaded"}))));
        let mut reader = Reader::new(Framing::OpenaiEvents, false);
        let endless = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(matches!(reader.feed(&endless, &call, &contract), Err(Broken::Malformed(_))));
    }

    #[test]
    fn a_continuation_drops_its_opening_and_speaks_with_the_call_id() {
        let (call, contract) = setup();
        let mut reader = Reader::new(Framing::OpenaiEvents, true);
        let opening = format!("data: {}\n\n", json!({"id": "other", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}));
        assert!(reader.feed(opening.as_bytes(), &call, &contract).unwrap().is_empty());
        let events = reader.feed(chunk(" world", Some("stop")).as_bytes(), &call, &contract).unwrap();
        let sent: Value = serde_json::from_str(std::str::from_utf8(&events[0]).unwrap().trim().trim_start_matches("data: ")).unwrap();
        assert_eq!((sent["id"].as_str(), sent["choices"][0]["delta"]["content"].as_str()), (Some("chatcmpl-1"), Some(" world")));
    }

    #[test]
    fn ollama_lines_are_translated_and_tracked() {
        let (call, contract) = setup();
        let mut reader = Reader::new(Framing::OllamaLines, false);
        let events = reader
            .feed(b"{\"message\": {\"content\": \"he\"}, \"done\": false}\n{\"message\": {\"content\": \"\"}, \"done\": true}\n", &call, &contract)
            .unwrap();
        assert_eq!(events.len(), 2, "the text and the finish; [DONE] is the executor's");
        assert_eq!(reader.text(), "he");
        assert!(reader.complete());
        assert!(matches!(reader.feed(b"{oops\n", &call, &contract), Err(Broken::Malformed(_))));
    }
}
