//! Adapters: how one call in the OpenAI wire format becomes a request to a
//! service, and its reply an answer in that format again. `openai` speaks
//! the format already (Ollama's `/v1`, llama.cpp's server, vLLM, LM Studio,
//! cloud APIs): the body passes through with the contract's model name.
//! `ollama` maps to Ollama's native `/api/chat` and `/api/embeddings`;
//! `anthropic` to the Messages API (module [`crate::anthropic`]).
//! `http` builds the body from the contract's template and reads the
//! answer at the contract's JSON pointers.
//!
//! This module must never do I/O: it only translates.

use base64::Engine;

pub use crate::body::CallBody;
use crate::anthropic;
use crate::form::FormBody;
use caio_calculus::contract::{Adapter, Contract, HttpMapping};
use serde_json::{Value, json};
use url::Url;

/// The media type of JSON bodies.
const JSON: &str = "application/json";

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/rerank`, in the shape vLLM and Infinity serve (`query`,
    /// `documents`, `top_n`; `results` of `index` and `relevance_score`).
    Rerank,
    /// `POST /v1/images/generations`.
    Images,
    /// `POST /v1/audio/speech`: text in, audio bytes out, streamed as they
    /// come.
    Speech,
    /// `POST /v1/audio/transcriptions`: an upload of audio in, its text out.
    Transcription,
    /// `POST /v1/audio/translations`: an upload of audio in, its text in
    /// English out.
    Translation,
}

impl Operation {
    /// The capability a service needs for it by default.
    pub fn capability(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
            Operation::Rerank => "rerank",
            Operation::Images => "image_generation",
            Operation::Speech => "text_to_speech",
            Operation::Transcription | Operation::Translation => "speech_to_text",
        }
    }

    /// The path of its OpenAI-compatible API, under the base URL.
    pub fn openai_path(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Rerank => "/rerank",
            Operation::Images => "/images/generations",
            Operation::Speech => "/audio/speech",
            Operation::Transcription => "/audio/transcriptions",
            Operation::Translation => "/audio/translations",
        }
    }

    /// The list of results an answer of its API must have; `None` for the
    /// answers passed on as bytes, never read as JSON ([`answers_bytes`]).
    fn answer_list(self) -> Option<&'static str> {
        match self {
            Operation::Chat => Some("choices"),
            Operation::Embeddings | Operation::Images => Some("data"),
            Operation::Rerank => Some("results"),
            Operation::Speech | Operation::Transcription | Operation::Translation => None,
        }
    }
}

/// One call, as the client sent it in the OpenAI wire format.
#[derive(Debug, Clone)]
pub struct Call {
    /// What is asked.
    pub operation: Operation,
    /// The body: `messages` for chat, `input` for embeddings, `query` and
    /// `documents` for rerank, `prompt` for images, and options,
    /// as the caller sent it ([`CallBody`]).
    pub body: CallBody,
    /// Whether the answer is streamed as server-sent events.
    pub stream: bool,
    /// The id answers carry (`chatcmpl-...`).
    pub id: String,
    /// Seconds since the epoch, for `created`.
    pub created: u64,
    /// Whether the caller allows a stream cut mid-answer to start over on
    /// another service (it is told in the stream) when no service can
    /// continue it.
    pub restart: bool,
    /// The upload of a transcription or translation, as it came; `body`
    /// then holds its text fields.
    pub upload: Option<FormBody>,
}

/// The operations that answer bytes passed on as they come: audio, and
/// transcripts in whatever format the caller asked (`json`, `text`, `srt`,
/// `vtt`, `verbose_json`).
pub fn answers_bytes(operation: Operation) -> bool {
    matches!(operation, Operation::Speech | Operation::Transcription | Operation::Translation)
}

impl Call {
    /// The same chat call with `partial` as the assistant's last message
    /// (prefill): a service that continues it finishes the answer.
    pub fn continuing(&self, partial: &str) -> Call {
        let mut call = self.clone();
        if let Some(Value::Array(mut messages)) = self.body.get("messages") {
            messages.push(json!({"role": "assistant", "content": partial}));
            call.body = self.body.with("messages", &Value::Array(messages));
        }
        call
    }
}

/// Whether the service can take `call` as its contract describes it
/// (`api.audio`: the recording's format and size, the voice and the audio
/// format asked); why not. A call it cannot take is not sent to it.
pub fn takes(contract: &Contract, call: &Call) -> Result<(), String> {
    let Some(audio) = &contract.api.audio else { return Ok(()) };
    let listed = |list: &[String], item: &str| list.is_empty() || list.iter().any(|l| l == item);
    match call.operation {
        Operation::Transcription | Operation::Translation => {
            let Some((part, bytes)) = call.upload.as_ref().and_then(|u| u.file("file")) else { return Ok(()) };
            if let Some(max) = audio.max_upload_bytes
                && bytes.len() as u64 > max
            {
                return Err(format!("the recording has {} bytes; its contract takes at most {max}", bytes.len()));
            }
            let format = part.filename.as_deref().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
            let format = format.unwrap_or_default();
            if !listed(&audio.input_formats, &format) {
                return Err(format!(
                    "its contract takes recordings in {}, not `{format}`",
                    audio.input_formats.join(", ")
                ));
            }
        }
        Operation::Speech => {
            let text = |name: &str| call.body.get(name).and_then(|v| v.as_str().map(str::to_string));
            if let Some(voice) = text("voice")
                && !listed(&audio.voices, &voice)
            {
                return Err(format!("its contract speaks with {}, not `{voice}`", audio.voices.join(", ")));
            }
            let format = text("response_format").unwrap_or_else(|| "mp3".into());
            if !listed(&audio.output_formats, &format) {
                return Err(format!("its contract speaks in {}, not `{format}`", audio.output_formats.join(", ")));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The request to send to a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Where.
    pub url: Url,
    /// The JSON body, in pieces written once (retries send the same
    /// bytes): slices of the caller's text where it passes through.
    pub body: Vec<bytes::Bytes>,
    /// How the service streams, when the call is streamed.
    pub framing: Framing,
    /// The body's media type (`Content-Type`).
    pub media_type: String,
    /// Other headers the service's API requires.
    pub headers: Vec<(&'static str, &'static str)>,
}

/// How a service's stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events in the OpenAI format: passed through unchanged.
    OpenaiEvents,
    /// Ollama's JSON lines, translated into OpenAI events.
    OllamaLines,
    /// Anthropic's Messages events, translated into OpenAI events.
    AnthropicEvents,
    /// No stream: the whole answer is sent as one event.
    Whole,
    /// Bytes that are not events (audio): passed on as they arrive; the
    /// end of the body is the end of the answer.
    Raw,
}

fn join(endpoint: &str, path: &str) -> Result<Url, String> {
    let joined = format!("{}{}", endpoint.trim_end_matches('/'), path);
    Url::parse(&joined).map_err(|e| format!("`{joined}` is not a URL: {e}"))
}

/// The model name sent to the service: its contract's, else the caller's.
pub(crate) fn model(contract: &Contract, call: &Call) -> Value {
    contract
        .api
        .model
        .clone()
        .map(Value::String)
        .unwrap_or_else(|| call.body.get("model").unwrap_or(Value::Null))
}

/// The text of the last user message, for APIs that take one prompt.
fn prompt(body: &CallBody) -> String {
    let messages = body.get("messages").and_then(|m| m.as_array().cloned()).unwrap_or_default();
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| content_text(m.get("content")?))
        .unwrap_or_default()
}

/// A message's content as text: a string, or the text parts of a list.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        }
        _ => None,
    }
}

/// Ollama's options from OpenAI's sampling parameters.
fn ollama_options(body: &CallBody) -> Value {
    let mut options = serde_json::Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("max_tokens", "num_predict"),
    ] {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            options.insert(to.into(), value);
        }
    }
    Value::Object(options)
}

fn substitute(template: &Value, values: &[(&str, Value)]) -> Value {
    match template {
        Value::String(s) => {
            if let Some((_, value)) = values.iter().find(|(name, _)| s == name) {
                return value.clone();
            }
            let mut text = s.clone();
            for (name, value) in values {
                if text.contains(name) {
                    let shown = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                    text = text.replace(name, &shown);
                }
            }
            Value::String(text)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, values)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), substitute(v, values))).collect())
        }
        other => other.clone(),
    }
}

fn http_prepare(contract: &Contract, mapping: &HttpMapping, call: &Call) -> Result<Prepared, String> {
    let model = model(contract, call);
    let values = [
        ("{prompt}", Value::String(prompt(&call.body))),
        ("{messages}", call.body.get("messages").unwrap_or(Value::Null)),
        ("{input}", call.body.get("input").unwrap_or(Value::Null)),
        ("{model}", model.clone()),
    ];
    let path = mapping.path.replace("{model}", model.as_str().unwrap_or_default());
    let wanted = match call.operation {
        Operation::Chat => &mapping.response.content,
        Operation::Embeddings => &mapping.response.embedding,
        Operation::Rerank
        | Operation::Images
        | Operation::Speech
        | Operation::Transcription
        | Operation::Translation => {
            return Err("the `http` adapter maps chat and embeddings only; use `adapter: openai`".into());
        }
    };
    if wanted.is_none() {
        let field = if call.operation == Operation::Chat { "content" } else { "embedding" };
        return Err(format!("its contract maps no `api.http.response.{field}`"));
    }
    Ok(Prepared {
        url: join(&contract.api.endpoint, &path)?,
        body: vec![serialized(&substitute(&mapping.request, &values))],
        framing: Framing::Whole,
        media_type: JSON.into(),
        headers: Vec::new(),
    })
}

/// Why the gateway could never call `contract`'s endpoint, parsed as every
/// call parses it: registration refuses such a contract, so that it is not
/// accepted and then refused at each call.
pub fn endpoint_problem(contract: &Contract) -> Option<String> {
    join(&contract.api.endpoint, "").err()
}

/// JSON text of `value` (a JSON value or a body view: never fails).
fn serialized(value: &impl serde::Serialize) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// The request for `contract`'s service, or why its adapter cannot make one.
pub fn prepare(contract: &Contract, call: &Call) -> Result<Prepared, String> {
    let api = &contract.api;
    match (api.adapter, call.operation) {
        (Adapter::Openai, operation) => {
            let url = join(&api.endpoint, operation.openai_path())?;
            let framing = if answers_bytes(operation) { Framing::Raw } else { Framing::OpenaiEvents };
            // The caller's body as it came, with the contract's model: slices
            // of the caller's bytes, not a copy (a body can be megabytes).
            if let Some(upload) = &call.upload {
                let body = match &api.model {
                    Some(model) => upload.pieces(&[("model", model)]),
                    None => upload.pieces(&[]),
                };
                return Ok(Prepared { url, body, framing, media_type: upload.media_type(), headers: Vec::new() });
            }
            let body = match &api.model {
                Some(model) => call.body.pieces(&[("model", serialized(model))]),
                None => vec![call.body.text().clone()],
            };
            Ok(Prepared { url, body, framing, media_type: JSON.into(), headers: Vec::new() })
        }
        (Adapter::Ollama, Operation::Chat) => Ok(Prepared {
            url: join(&api.endpoint, "/api/chat")?,
            body: vec![serialized(&json!({
                "model": model(contract, call),
                "messages": call.body.get("messages").unwrap_or(Value::Null),
                "stream": call.stream,
                "options": ollama_options(&call.body),
            }))],
            framing: Framing::OllamaLines,
            media_type: JSON.into(),
            headers: Vec::new(),
        }),
        (Adapter::Ollama, Operation::Embeddings) => {
            let Some(Value::String(input)) = call.body.get("input") else {
                return Err("Ollama's `/api/embeddings` embeds one string: send `input` as a string".into());
            };
            Ok(Prepared {
                url: join(&api.endpoint, "/api/embeddings")?,
                body: vec![serialized(&json!({"model": model(contract, call), "prompt": input}))],
                framing: Framing::Whole,
                media_type: JSON.into(),
                headers: Vec::new(),
            })
        }
        (Adapter::Ollama, _) => {
            Err(format!("Ollama's API serves no `{}`; use `adapter: openai`", call.operation.capability()))
        }
        (Adapter::Anthropic, Operation::Chat) => {
            let Some(Value::Object(body)) = serde_json::from_slice::<Value>(call.body.text()).ok() else {
                return Err("the body is not a JSON object".into());
            };
            let request = anthropic::request(&body, &model(contract, call), call.stream)?;
            Ok(Prepared {
                url: join(&api.endpoint, anthropic::PATH)?,
                body: vec![serialized(&request)],
                framing: Framing::AnthropicEvents,
                media_type: JSON.into(),
                headers: vec![("anthropic-version", anthropic::VERSION)],
            })
        }
        (Adapter::Anthropic, _) => {
            Err(format!("Anthropic's Messages API serves no `{}`; use another service", call.operation.capability()))
        }
        (Adapter::Http, _) => {
            let mapping = api.http.as_ref().ok_or("its contract has no `api.http`")?;
            http_prepare(contract, mapping, call)
        }
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens})
}

fn chat_completion(call: &Call, model: &Value, content: &str, finish: &str, usage: Value) -> Value {
    json!({
        "id": call.id,
        "object": "chat.completion",
        "created": call.created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": usage,
    })
}

fn embedding_list(call: &Call, model: &Value, vector: &[Value]) -> Result<Value, String> {
    let numbers: Option<Vec<f64>> = vector.iter().map(Value::as_f64).collect();
    let numbers = numbers.ok_or("the embedding holds something other than numbers")?;
    let embedding = if call.body.get("encoding_format").is_some_and(|f| f == "base64") {
        let bytes: Vec<u8> = numbers.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Value::from(numbers)
    };
    Ok(json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }))
}

fn pointer<'a>(reply: &'a Value, pointer: &str) -> Result<&'a Value, String> {
    reply.pointer(pointer).ok_or_else(|| format!("the reply has nothing at `{pointer}`"))
}

/// The service's complete reply as an answer in the OpenAI format, or why
/// the reply is not what the adapter expects.
pub fn answer(contract: &Contract, call: &Call, reply: Value) -> Result<Value, String> {
    let model = model(contract, call);
    match (contract.api.adapter, call.operation) {
        (Adapter::Openai, operation) => {
            let list = operation
                .answer_list()
                .ok_or_else(|| format!("`{}` answers are bytes, not JSON", operation.capability()))?;
            reply.get(list).and_then(Value::as_array).ok_or_else(|| format!("the reply has no `{list}` list"))?;
            Ok(reply)
        }
        (Adapter::Ollama, Operation::Chat) => {
            let content = reply
                .pointer("/message/content")
                .and_then(Value::as_str)
                .ok_or("the reply has no `message.content`")?;
            let tokens = |field: &str| reply.get(field).and_then(Value::as_u64).unwrap_or(0);
            let finish = reply.get("done_reason").and_then(Value::as_str).unwrap_or("stop");
            Ok(chat_completion(call, &model, content, finish, usage(tokens("prompt_eval_count"), tokens("eval_count"))))
        }
        (Adapter::Ollama, Operation::Embeddings) => {
            let vector = reply.get("embedding").and_then(Value::as_array).ok_or("the reply has no `embedding` list")?;
            embedding_list(call, &model, vector)
        }
        (Adapter::Anthropic, Operation::Chat) => anthropic::answer(&reply, &call.id, call.created, &model),
        (Adapter::Anthropic, Operation::Embeddings) => Err("the anthropic adapter reads no `embeddings` answers".into()),
        (
            _,
            Operation::Rerank
            | Operation::Images
            | Operation::Speech
            | Operation::Transcription
            | Operation::Translation,
        ) => {
            let adapter = serde_json::to_value(contract.api.adapter).unwrap_or_default();
            Err(format!("the {adapter} adapter reads no `{}` answers", call.operation.capability()))
        }
        (Adapter::Http, operation) => {
            let response = &contract.api.http.as_ref().ok_or("its contract has no `api.http`")?.response;
            if operation == Operation::Chat {
                let at = response.content.as_deref().ok_or("its contract maps no `api.http.response.content`")?;
                let content =
                    pointer(&reply, at)?.as_str().ok_or_else(|| format!("`{at}` of the reply is not text"))?;
                Ok(chat_completion(call, &model, content, "stop", usage(0, 0)))
            } else {
                let at = response.embedding.as_deref().ok_or("its contract maps no `api.http.response.embedding`")?;
                let vector =
                    pointer(&reply, at)?.as_array().ok_or_else(|| format!("`{at}` of the reply is not a list"))?;
                embedding_list(call, &model, vector)
            }
        }
    }
}

/// One server-sent event.
pub fn event(data: &Value) -> bytes::Bytes {
    bytes::Bytes::from(format!("data: {data}\n\n"))
}

/// The last event of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// A chunk of a streamed chat completion.
pub fn chunk(call: &Call, model: &Value, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": call.id,
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The events of a whole answer sent as a stream (for services that do
/// not stream): the role and content, then the finish, then `[DONE]`.
pub fn whole_as_events(call: &Call, answer: &Value) -> Vec<bytes::Bytes> {
    let model = answer.get("model").cloned().unwrap_or(Value::Null);
    let content = answer.pointer("/choices/0/message/content").cloned().unwrap_or(Value::String(String::new()));
    let finish = answer.pointer("/choices/0/finish_reason").and_then(Value::as_str).unwrap_or("stop");
    vec![
        event(&chunk(call, &model, json!({"role": "assistant", "content": content}), None)),
        event(&chunk(call, &model, json!({}), Some(finish))),
        bytes::Bytes::from_static(DONE),
    ]
}

/// Translates one of Ollama's stream lines into OpenAI events; the flag
/// says whether it was the last (`done: true`).
pub fn ollama_line(call: &Call, contract: &Contract, line: &[u8]) -> Result<(Vec<bytes::Bytes>, bool), String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("a stream line is not JSON: {e}"))?;
    let model = model(contract, call);
    let mut events = Vec::new();
    if let Some(content) = value.pointer("/message/content").and_then(Value::as_str).filter(|c| !c.is_empty()) {
        events.push(event(&chunk(call, &model, json!({"role": "assistant", "content": content}), None)));
    }
    let done = value.get("done").and_then(Value::as_bool).unwrap_or(false);
    if done {
        let finish = value.get("done_reason").and_then(Value::as_str).unwrap_or("stop");
        events.push(event(&chunk(call, &model, json!({}), Some(finish))));
        events.push(bytes::Bytes::from_static(DONE));
    }
    Ok((events, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caio_calculus::contract::{Format, parse_contracts};

    fn contract(api: &str) -> Contract {
        let text = format!(
            r#"{{"id": "s", "version": "1.0.0", "capabilities": ["chat", "embeddings"], "privacy": {{"data_locality": "local"}}, "api": {api}}}"#
        );
        parse_contracts(&text, Format::Json).unwrap().remove(0)
    }

    fn json_of(prepared: &Prepared) -> Value {
        serde_json::from_slice(&prepared.body.concat()).unwrap()
    }

    fn call(operation: Operation, body: Value) -> Call {
        Call {
            operation,
            stream: false,
            body: CallBody::from_value(&body).unwrap(),
            id: "chatcmpl-1".into(),
            created: 7,
            restart: false,
            upload: None,
        }
    }

    #[test]
    fn an_endpoint_every_call_would_refuse_is_found_before() {
        assert_eq!(endpoint_problem(&contract(r#"{"adapter": "openai", "endpoint": "http://127.0.0.1:8000/v1"}"#)), None);
        let encoded = contract(r#"{"adapter": "openai", "endpoint": "http://127.0.0.1%3A18491/v1"}"#);
        assert!(endpoint_problem(&encoded).unwrap().contains("is not a URL"));
    }

    #[test]
    fn openai_passes_the_body_through_with_the_contract_model() {
        let c = contract(r#"{"adapter": "openai", "endpoint": "http://127.0.0.1:9/v1/", "model": "phi3"}"#);
        let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2});
        let prepared = prepare(&c, &call(Operation::Chat, body)).unwrap();
        assert_eq!(prepared.url.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(
            json_of(&prepared),
            json!({"model": "phi3", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2})
        );
        assert!(answer(&c, &call(Operation::Chat, json!({})), json!({"error": "x"})).unwrap_err().contains("choices"));
    }

    #[test]
    fn rerank_and_images_go_to_the_openai_paths_and_nowhere_else() {
        let c = contract(r#"{"adapter": "openai", "endpoint": "http://127.0.0.1:9/v1", "model": "bge"}"#);
        let rerank = call(Operation::Rerank, json!({"model": "rerank", "query": "q", "documents": ["a"], "top_n": 1}));
        let prepared = prepare(&c, &rerank).unwrap();
        assert_eq!(prepared.url.as_str(), "http://127.0.0.1:9/v1/rerank");
        assert_eq!(json_of(&prepared), json!({"model": "bge", "query": "q", "documents": ["a"], "top_n": 1}));
        assert!(answer(&c, &rerank, json!({"data": []})).unwrap_err().contains("`results`"));
        let images = call(Operation::Images, json!({"prompt": "fox"}));
        assert_eq!(prepare(&c, &images).unwrap().url.as_str(), "http://127.0.0.1:9/v1/images/generations");
        assert!(answer(&c, &images, json!({"data": [{"url": "u"}]})).is_ok());
        let ollama = contract(r#"{"adapter": "ollama", "endpoint": "http://127.0.0.1:11434", "model": "m"}"#);
        assert!(prepare(&ollama, &rerank).unwrap_err().contains("serves no `rerank`"));
        assert_eq!(answer(&ollama, &images, json!({})).unwrap_err(), "the \"ollama\" adapter reads no `image_generation` answers");
        let http = contract(r#"{"adapter": "http", "endpoint": "http://127.0.0.1:9", "http": {"path": "/x", "request": {}, "response": {"content": "/t"}}}"#);
        assert!(prepare(&http, &images).unwrap_err().contains("chat and embeddings only"));
    }

    #[test]
    fn ollama_maps_chat_and_embeddings_both_ways() {
        let c = contract(r#"{"adapter": "ollama", "endpoint": "http://127.0.0.1:11434", "model": "llama3:8b"}"#);
        let chat = call(
            Operation::Chat,
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        );
        let prepared = prepare(&c, &chat).unwrap();
        assert_eq!(prepared.url.as_str(), "http://127.0.0.1:11434/api/chat");
        assert_eq!(json_of(&prepared)["options"], json!({"num_predict": 5}));
        let reply = json!({"message": {"role": "assistant", "content": "hello"}, "done": true, "prompt_eval_count": 3, "eval_count": 2});
        let answered = answer(&c, &chat, reply).unwrap();
        assert_eq!(answered["choices"][0]["message"]["content"], "hello");
        assert_eq!(answered["usage"], json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}));
        let embed =
            call(Operation::Embeddings, json!({"model": "embeddings", "input": "text", "encoding_format": "base64"}));
        assert_eq!(json_of(&prepare(&c, &embed).unwrap()), json!({"model": "llama3:8b", "prompt": "text"}));
        let answered = answer(&c, &embed, json!({"embedding": [1.0, -2.0]})).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answered["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        let many = call(Operation::Embeddings, json!({"input": ["a", "b"]}));
        assert!(prepare(&c, &many).unwrap_err().contains("one string"));
    }

    #[test]
    fn ollama_stream_lines_become_openai_events() {
        let c = contract(r#"{"adapter": "ollama", "endpoint": "http://127.0.0.1:11434", "model": "m"}"#);
        let chat = call(Operation::Chat, json!({}));
        let (events, done) = ollama_line(&chat, &c, br#"{"message": {"content": "he"}, "done": false}"#).unwrap();
        assert!(!done);
        assert!(std::str::from_utf8(&events[0]).unwrap().contains(r#""delta":{"content":"he","role":"assistant"}"#));
        let (events, done) = ollama_line(&chat, &c, br#"{"message": {"content": ""}, "done": true}"#).unwrap();
        assert!(done);
        assert_eq!(events.len(), 2);
        assert_eq!(&events[1][..], DONE);
        assert!(ollama_line(&chat, &c, b"{not json").is_err());
    }

    #[test]
    fn http_builds_the_template_and_reads_the_pointers() {
        let c = contract(
            r#"{"adapter": "http", "endpoint": "http://127.0.0.1:9", "model": "tiny",
                "http": {"path": "/models/{model}/generate", "request": {"text": "{prompt}", "history": "{messages}", "note": "model {model}"},
                         "response": {"content": "/output/0/text"}}}"#,
        );
        let chat = call(
            Operation::Chat,
            json!({"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "last"}]}]}),
        );
        let prepared = prepare(&c, &chat).unwrap();
        assert_eq!(prepared.url.as_str(), "http://127.0.0.1:9/models/tiny/generate");
        let sent = json_of(&prepared);
        assert_eq!(sent["text"], "last");
        assert_eq!(Some(sent["history"].clone()), chat.body.get("messages"));
        assert_eq!(sent["note"], "model tiny");
        let answered = answer(&c, &chat, json!({"output": [{"text": "ok"}]})).unwrap();
        assert_eq!(answered["choices"][0]["message"]["content"], "ok");
        assert_eq!(answer(&c, &chat, json!({"output": []})).unwrap_err(), "the reply has nothing at `/output/0/text`");
        let embed = call(Operation::Embeddings, json!({"input": "x"}));
        assert_eq!(prepare(&c, &embed).unwrap_err(), "its contract maps no `api.http.response.embedding`");
    }
}
