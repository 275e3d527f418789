//! Anthropic's Messages API, for `adapter: anthropic`: an OpenAI chat call
//! written as a Messages request (system prompt apart, content blocks with
//! images, `max_tokens`, stop sequences, tools), its answer and its event
//! stream (`message_start`, `content_block_delta`, ..., `message_stop`)
//! read back as an OpenAI completion and OpenAI chunks, usage carried over.
//!
//! This module must never do I/O: it only translates.

use serde_json::{Map, Value, json};

/// The API version caio speaks (the `anthropic-version` header): the one
/// the official `anthropic` package 2.17 sends, whose requests caio's are
/// checked against (`tests/anthropic_wire.rs`).
pub const VERSION: &str = "2026-10-21";

/// The path of the Messages API under the endpoint (`https://api.anthropic.com`).
pub const PATH: &str = "/v1/messages";

/// `max_tokens` when the caller gives none: the Messages API requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Messages request for an OpenAI chat body (`body`, its fields
/// parsed), for `model`, streamed or not.
pub fn request(body: &Map<String, Value>, model: &Value, stream: bool) -> Result<Value, String> {
    let messages = body.get("messages").and_then(Value::as_array).ok_or("`messages` must be a list")?;
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_of(message.get("content")));
                continue;
            }
            "user" => ("user", blocks(message.get("content")).map_err(|e| format!("messages[{index}]: {e}"))?),
            "assistant" => {
                let mut content = blocks(message.get("content")).map_err(|e| format!("messages[{index}]: {e}"))?;
                for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = serde_json::from_str(arguments)
                        .map_err(|e| format!("messages[{index}].tool_calls: the arguments are not JSON: {e}"))?;
                    content.push(json!({
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": call.pointer("/function/name"),
                        "input": input,
                    }));
                }
                ("assistant", content)
            }
            "tool" => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id"),
                    "content": text_of(message.get("content")),
                })],
            ),
            other => return Err(format!("messages[{index}].role: `{other}` is not a role of a chat")),
        };
        // The API takes turns that alternate: consecutive messages of one
        // role become one turn of their blocks.
        match turns.last_mut() {
            Some((last, content)) if last == role => content.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let mut request = Map::new();
    request.insert("model".into(), model.clone());
    let max_tokens = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Value::as_u64);
    request.insert("max_tokens".into(), json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        request.insert("system".into(), Value::String(system.join("\n\n")));
    }
    let turns: Vec<Value> =
        turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    request.insert("messages".into(), Value::Array(turns));
    // `temperature` and `top_p` are not sent: the current Messages API
    // takes neither (the official `anthropic` package has no such
    // parameter), and a field it does not take could have the call refused.
    match body.get("stop") {
        Some(Value::String(stop)) => {
            request.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) => {
            request.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|tool| tool.get("function"))
            .map(|function| {
                json!({
                    "name": function.get("name"),
                    "description": function.get("description"),
                    "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        request.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice") {
        let choice = match choice {
            Value::String(mode) if mode == "required" => json!({"type": "any"}),
            Value::String(mode) => json!({"type": mode}),
            other => json!({"type": "tool", "name": other.pointer("/function/name")}),
        };
        request.insert("tool_choice".into(), choice);
    }
    if stream {
        request.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(request))
}

/// A message's content as text (a string, or its text parts joined).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// A message's content as content blocks: text, and images (a `data:` URL
/// as base64, any other as a URL).
fn blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![json!({"type": "text", "text": text})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": part.get("text")})),
                Some("image_url") => {
                    let url = part.pointer("/image_url/url").and_then(Value::as_str).unwrap_or_default();
                    Ok(image(url))
                }
                other => Err(format!("a content part of type {other:?} has no Messages API equivalent")),
            })
            .collect(),
        Some(_) => Err("`content` must be text or a list of parts".into()),
    }
}

fn image(url: &str) -> Value {
    if let Some((media_type, data)) = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// OpenAI's finish reason for a Messages API stop reason.
fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

/// A complete Messages reply as an OpenAI chat completion of `id`.
pub fn answer(reply: &Value, id: &str, created: u64, model: &Value) -> Result<Value, String> {
    let content = reply.get("content").and_then(Value::as_array).ok_or("the reply has no `content` list")?;
    let text: String = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let calls: Vec<Value> = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| {
            json!({
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": b.get("input").map(Value::to_string).unwrap_or_default()},
            })
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let stop = reply.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let tokens = |field: &str| reply.pointer(&format!("/usage/{field}")).and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(stop)}],
        "usage": usage(tokens("input_tokens"), tokens("output_tokens")),
    }))
}

/// What one event of a Messages stream means for the caller.
#[derive(Debug, Default, PartialEq)]
pub struct Translated {
    /// The OpenAI chunk to send, if the event says something.
    pub chunk: Option<Value>,
    /// Text the answer gained.
    pub text: String,
    /// The stream finished (`message_delta` with a stop reason).
    pub finished: bool,
    /// The stream ended (`message_stop`).
    pub done: bool,
    /// The usage, once known.
    pub usage: Option<Value>,
}

/// The state of one Messages stream: the prompt's tokens (from
/// `message_start`, counted in the final usage) and which tool call each
/// content block is.
#[derive(Debug, Default)]
pub struct StreamState {
    input_tokens: u64,
    tool_blocks: Vec<(u64, usize)>,
}

impl StreamState {
    /// Translates one event's data; an `error` event is the API's error.
    pub fn event(&mut self, data: &Value, id: &str, created: u64, model: &Value) -> Result<Translated, Value> {
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        };
        let mut out = Translated::default();
        match data.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                self.input_tokens = data.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
                out.chunk = Some(chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" if data.pointer("/content_block/type") == Some(&json!("tool_use")) => {
                let block = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let index = self.tool_blocks.len();
                self.tool_blocks.push((block, index));
                out.chunk = Some(chunk(
                    json!({"tool_calls": [{
                        "index": index,
                        "id": data.pointer("/content_block/id"),
                        "type": "function",
                        "function": {"name": data.pointer("/content_block/name"), "arguments": ""},
                    }]}),
                    None,
                ));
            }
            "content_block_delta" => match data.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => {
                    let text = data.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default();
                    out.text = text.to_string();
                    out.chunk = Some(chunk(json!({"content": text}), None));
                }
                Some("input_json_delta") => {
                    let block = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let index = self.tool_blocks.iter().find(|(b, _)| *b == block).map_or(0, |(_, i)| *i);
                    let partial = data.pointer("/delta/partial_json").and_then(Value::as_str).unwrap_or_default();
                    out.chunk = Some(chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": partial}}]}),
                        None,
                    ));
                }
                _ => {}
            },
            "message_delta" => {
                let output = data.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0);
                out.usage = Some(usage(self.input_tokens, output));
                if let Some(stop) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.finished = true;
                    out.chunk = Some(chunk(json!({}), Some(finish_reason(stop))));
                }
            }
            "message_stop" => out.done = true,
            "error" => return Err(data.get("error").cloned().unwrap_or(Value::Null)),
            // `ping`, `content_block_stop`, and events added later.
            _ => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_chat_becomes_a_messages_request() {
        let body = object(json!({
            "model": "chat",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                ]},
                {"role": "user", "content": "And this?"},
                {"role": "assistant", "content": "A", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{\"at\": 1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "seen"},
            ],
            "max_tokens": 50,
            "stop": "END",
            "temperature": 0.3,
            "tools": [{"type": "function", "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
        }));
        let request = request(&body, &json!("claude-x"), true).unwrap();
        assert_eq!(
            request,
            json!({
                "model": "claude-x",
                "max_tokens": 50,
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                        {"type": "text", "text": "And this?"},
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "A"},
                        {"type": "tool_use", "id": "t1", "name": "look", "input": {"at": 1}},
                    ]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "seen"}]},
                ],
                "stop_sequences": ["END"],
                "tools": [{"name": "look", "description": "Look", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "stream": true,
            })
        );
        let plain = request_without_max(&json!({"messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(plain["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(
            super::request(&object(json!({"messages": [{"role": "robot", "content": "x"}]})), &json!("m"), false)
                .unwrap_err()
                .contains("messages[0].role")
        );
    }

    fn request_without_max(body: &Value) -> Value {
        request(&object(body.clone()), &json!("m"), false).unwrap()
    }

    #[test]
    fn a_reply_becomes_a_completion() {
        let reply = json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3},
        });
        let answer = answer(&reply, "chatcmpl-1", 9, &json!("claude-x")).unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
        assert_eq!(answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(answer["usage"], json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}));
        assert!(super::answer(&json!({"type": "error"}), "x", 0, &json!("m")).is_err());
    }

    #[test]
    fn stream_events_become_chunks_with_usage() {
        let mut state = StreamState::default();
        let model = json!("claude-x");
        let mut event = |data: Value| state.event(&data, "chatcmpl-1", 1, &model);
        let start =
            event(json!({"type": "message_start", "message": {"usage": {"input_tokens": 12, "output_tokens": 1}}}))
                .unwrap();
        assert_eq!(start.chunk.unwrap()["choices"][0]["delta"]["role"], "assistant");
        let delta =
            event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}))
                .unwrap();
        assert_eq!(delta.text, "Hi");
        assert_eq!(delta.chunk.unwrap()["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(event(json!({"type": "ping"})).unwrap(), Translated::default());
        let tool = event(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}})).unwrap();
        assert_eq!(tool.chunk.unwrap()["choices"][0]["delta"]["tool_calls"][0]["id"], "t");
        let args = event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}})).unwrap();
        assert_eq!(args.chunk.unwrap()["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"a\"");
        let end = event(
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 5}}),
        )
        .unwrap();
        assert!(end.finished);
        assert_eq!(end.chunk.unwrap()["choices"][0]["finish_reason"], "length");
        assert_eq!(end.usage.unwrap(), json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}));
        assert!(event(json!({"type": "message_stop"})).unwrap().done);
        let error = event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        assert_eq!(error.unwrap_err()["type"], "overloaded_error");
    }
}
