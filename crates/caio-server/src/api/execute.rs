//! The front doors that execute: `POST /v1/chat/completions` and
//! `POST /v1/embeddings` in the OpenAI wire format, and `POST /v1/orchestrate`,
//! caio's own request. Each routes with the calculus, records the decision
//! in the trace log, has the gateway call the admitted services in the
//! decision's order, and records every attempt as an `execution` trace
//! linked to the decision.
//!
//! The `model` of the OpenAI formats names a route of the configuration or
//! a capability; `x-caio-guarantees` and `x-caio-request` headers add
//! guarantees and other request fields; the bearer token is the caller's.
//!
//! This module must never call a service itself: the gateway does, and only
//! the services the decision admitted.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caio_calculus::contract::{Contract, Format, InputError, from_value, is_valid_id, quoted, read_value};
use caio_calculus::request::Request;
use caio_calculus::route::Decision;
use caio_gateway::adapter::CallBody;
use caio_gateway::form::FormBody;
use caio_gateway::adapter::answers_bytes;
use caio_gateway::{Attempt, Call, Failed, Operation, Reply};
use caio_store::Pending;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::route::{RouteResponse, TraceRef, check_request_id, decide, respond};
use crate::api::{Admitted, admit, admit_or_read, text};
use crate::error::ApiError;
use crate::state::AppState;

/// A fresh id for a call without `x-request-id`: unique in this process and
/// unlikely to repeat across processes.
fn fresh_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    format!("caio-{start:x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::invalid(format!("the {name} header is not text"))))
        .transpose()
}

/// Reads JSON the one strict way every input is read (a key repeated in
/// an object, a number that is not finite, too many values or too deep a
/// nesting is refused, at its field path), and requires an object.
fn strict_object(text: &str, what: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    match read_value(text, Format::Json) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::invalid(format!("{what} must hold a JSON object"))),
        Err(e) => Err(ApiError::invalid(format!("{what}: {e}")).with_details(json!({"path": e.path}))),
    }
}

fn header_object(headers: &HeaderMap, name: &str) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    let Some(text) = header_text(headers, name)? else { return Ok(None) };
    strict_object(text, &format!("the {name} header")).map(Some)
}

/// Rough token count of the call, for cost and limits: four characters a
/// token, plus the tokens asked for.
fn estimated_tokens(body: &Value) -> u64 {
    fn chars(value: &Value) -> usize {
        match value {
            Value::String(s) => s.chars().count(),
            Value::Array(items) => items.iter().map(chars).sum(),
            Value::Object(fields) => fields.get("content").or_else(|| fields.get("text")).map_or(0, chars),
            _ => 0,
        }
    }
    let input: usize = ["messages", "input", "query", "documents", "prompt"]
        .iter()
        .filter_map(|field| body.get(*field))
        .map(chars)
        .sum();
    let input = input as u64;
    input.div_ceil(4) + body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0)
}

/// Whether a chat's messages hold an image part (`image_url`, or
/// `input_image` of the newer shape).
fn has_image_parts(body: &Value) -> bool {
    let Some(Value::Array(messages)) = body.get("messages") else { return false };
    messages.iter().filter_map(|m| m.get("content").and_then(Value::as_array)).flatten().any(|part| {
        matches!(part.get("type").and_then(Value::as_str), Some("image_url" | "input_image"))
    })
}

/// The calculus request of an OpenAI-format call.
fn request_of(state: &AppState, operation: Operation, body: &Value, headers: &HeaderMap) -> Result<Value, ApiError> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("`model` is required: a route of caio.toml or a capability such as `chat`"))?;
    let mut request = match state.0.config.routes.get(model) {
        Some(Value::Object(template)) => template.clone(),
        Some(_) => return Err(ApiError::internal(format!("the route `{}` is not an object", quoted(model)))),
        None if is_valid_id(model) => {
            let mut fields = serde_json::Map::new();
            fields.insert("capabilities".into(), json!([model]));
            fields
        }
        None => {
            return Err(ApiError::invalid(format!(
                "`model` `{}` names no route of caio.toml and is not a capability name; use one such as `{}`",
                quoted(model),
                operation.capability()
            )));
        }
    };
    if let Some(extra) = header_object(headers, "x-caio-request")? {
        for (field, value) in extra {
            if matches!(field.as_str(), "id" | "token") {
                return Err(ApiError::invalid(format!(
                    "x-caio-request may not set `{field}`; send it as its own header"
                )));
            }
            request.insert(field, value);
        }
    }
    if let Some(guarantees) = header_object(headers, "x-caio-guarantees")? {
        request.insert("guarantees".into(), Value::Object(guarantees));
    }
    let id = match header_text(headers, "x-request-id")? {
        Some(id) if !id.trim().is_empty() => {
            check_request_id(id, "the x-request-id header")?;
            id.to_string()
        }
        _ => fresh_id(),
    };
    request.insert("id".into(), Value::String(id));
    // A chat with images needs a service that sees them, whatever the
    // route or the caller's header says: `vision` beside the capabilities
    // asked, all of them required.
    if operation == Operation::Chat && has_image_parts(body) {
        match request.entry("capabilities").or_insert_with(|| json!([])) {
            Value::Array(capabilities) if !capabilities.contains(&json!("vision")) => capabilities.push(json!("vision")),
            _ => {}
        }
        request.insert("capabilities_mode".into(), json!("all"));
    }
    // The gateway's own estimate is a floor: a caller may say its call is
    // bigger, never smaller (a lower figure would slip a long input past
    // the rules and contracts that limit input sizes).
    let floor = estimated_tokens(body);
    match request.get("estimated_tokens").map(Value::as_u64) {
        Some(Some(given)) if given >= floor => {}
        // Not a number: the request's validation says so, at its path.
        Some(None) => {}
        _ => {
            request.insert("estimated_tokens".into(), json!(floor));
        }
    }
    Ok(Value::Object(request))
}

/// The contracts to try, in the decision's order.
fn candidates(state: &AppState, decision: &Decision) -> Vec<Contract> {
    let router = state.router();
    std::iter::once(&decision.selected)
        .chain(&decision.alternatives)
        .filter_map(|ranked| router.registry().active(&ranked.service).map(|entry| entry.contract.clone()))
        .collect()
}

/// The body of the `execution` trace: what was tried, linked to the
/// decision by its sequence number.
/// The execution trace: who was tried and who served; for an upload, what
/// was sent (`input`: the file's digest, length and media type, never its
/// bytes).
pub(crate) fn execution_body(
    decision: &TraceRef,
    request_id: &str,
    attempts: &[Attempt],
    served_by: Option<&str>,
    input: Option<&Value>,
) -> Value {
    let mut body = json!({
        "kind": "execution",
        "request_id": request_id,
        "decision": {"seq": decision.seq, "hash": decision.hash},
        "served_by": served_by,
        "attempts": attempts,
    });
    if let Some(input) = input {
        body["input"] = input.clone();
    }
    body
}

/// The caller's error when no service served: the service's own error
/// when it refused the call, caio's attempts in the `caio` extension.
pub(crate) fn failed(failure: Failed, attempts: &[Attempt]) -> ApiError {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut error = ApiError::new(status, failure.code, failure.message)
        .with_attempts(serde_json::to_value(attempts).unwrap_or(Value::Null));
    if let Some(wait) = failure.retry_after_ms {
        error.retry_after = Some(wait.div_ceil(1000).max(1));
    }
    // OpenAI's shape (`{"error": {...}}`); a bare string or other JSON is
    // the message.
    match failure.upstream {
        Some(Value::Object(mut body)) if body.get("error").is_some_and(Value::is_object) => {
            error.with_upstream(body.remove("error").unwrap_or_default())
        }
        Some(Value::Object(body)) if body.get("error").is_some_and(Value::is_string) => {
            error.with_upstream(json!({"message": body["error"]}))
        }
        _ => error,
    }
}

/// A routed and executed call, before it is answered.
struct Executed {
    decision: Decision,
    trace: TraceRef,
    reply: Result<Reply, Failed>,
    attempts: Vec<Attempt>,
}

async fn execute(
    state: &AppState,
    request: Value,
    bearer: Option<String>,
    admitted: bool,
    call: Call,
) -> Result<Executed, ApiError> {
    // Already a JSON value: deserialized and checked as `parse_request`
    // would, without printing it to text and reading it back.
    let checked = from_value::<Request>(request, "").and_then(|request| match request.problems().into_iter().next() {
        Some((path, message)) => Err(InputError::at(path, message)),
        None => Ok(request),
    });
    let request = checked.map_err(|e| {
        state.metrics().decision("invalid");
        ApiError::invalid(format!("the request: {e}")).with_details(json!({"path": e.path}))
    })?;
    let decision = decide(state, request, bearer, admitted).await?;
    // The decision is on its way to disk while the services are called;
    // nothing is answered before it is durable.
    let recorded: Pending = state.store().append(decision.trace.body.clone());
    let (reply, attempts) = state.gateway().execute(&candidates(state, &decision), &call).await;
    let linked = recorded.await.map_err(ApiError::store)?;
    state.metrics().decision("selected");
    Ok(Executed { decision, trace: TraceRef { seq: linked.seq, hash: linked.hash }, reply, attempts })
}

/// Appends the execution trace; a failure is logged, never hidden.
pub(crate) async fn record(state: &AppState, body: Value) -> Option<TraceRef> {
    match state.store().append(body.into()).await {
        Ok(linked) => Some(TraceRef { seq: linked.seq, hash: linked.hash }),
        Err(e) => {
            tracing::error!(target: "caio::gateway", error = %e, "could not record an execution trace");
            None
        }
    }
}

/// Appends the execution trace without holding the answer back: the
/// decision is durable before the answer, the record of the attempts
/// follows it by one group commit (`/v1/orchestrate` waits for it).
fn record_later(state: &AppState, body: Value) {
    let state = state.clone();
    tokio::spawn(async move {
        record(&state, body).await;
    });
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    strict_object(text(body)?, "the body").map(Value::Object)
}

/// The call of a body read and checked as `body`, kept as its text
/// (`CallBody`), never as the tree of values it was checked as.
pub(crate) fn call_of(
    operation: Operation,
    body: &Value,
    text: CallBody,
    upload: Option<FormBody>,
    request_id: &str,
    now: u64,
    restart: bool,
) -> Result<Call, ApiError> {
    match operation {
        Operation::Chat if !body.get("messages").is_some_and(Value::is_array) => {
            return Err(ApiError::invalid("`messages` is required: a list of {role, content}"));
        }
        Operation::Embeddings if !body.get("input").is_some_and(|i| i.is_string() || i.is_array()) => {
            return Err(ApiError::invalid("`input` is required: a string or a list of strings"));
        }
        Operation::Rerank if !body.get("query").is_some_and(Value::is_string) => {
            return Err(ApiError::invalid("`query` is required: the text the documents are ranked for"));
        }
        Operation::Rerank if !body.get("documents").is_some_and(Value::is_array) => {
            return Err(ApiError::invalid("`documents` is required: a list of texts to rank"));
        }
        Operation::Images if !body.get("prompt").is_some_and(Value::is_string) => {
            return Err(ApiError::invalid("`prompt` is required: the text of the image to generate"));
        }
        Operation::Speech if !body.get("input").is_some_and(Value::is_string) => {
            return Err(ApiError::invalid("`input` is required: the text to speak"));
        }
        _ => {}
    }
    // Audio and transcripts are passed on as they come, and cannot start
    // over mid-way: the caller would get the start twice.
    let bytes = answers_bytes(operation);
    let stream = match body.get("stream") {
        _ if bytes => true,
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) if operation == Operation::Chat => *stream,
        Some(Value::Bool(false)) => false,
        Some(_) => return Err(ApiError::invalid("`stream` must be true or false (only chat is streamed)")),
    };
    let id = if bytes { format!("audio-{request_id}") } else { format!("chatcmpl-{request_id}") };
    Ok(Call { operation, body: text, stream, id, created: now, restart: restart && !bytes, upload })
}

/// What the execution trace says of an upload: its file's SHA-256, length
/// and media type, never its bytes. Hashed off the async workers: a file
/// may be `limits.upload_bytes` long.
async fn upload_record(upload: &FormBody) -> Option<Value> {
    let upload = upload.clone(); // Shares the bytes.
    tokio::task::spawn_blocking(move || {
        let (part, bytes) = upload.file("file")?;
        Some(json!({"file": {
            "sha256": caio_calculus::trace::hex(&Sha256::digest(bytes)),
            "bytes": bytes.len(),
            "media_type": part.media_type,
        }}))
    })
    .await
    .ok()
    .flatten()
}

fn caio_headers(response: &mut Response, request_id: &str, service: Option<&str>, trace: &TraceRef, attempts: usize) {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-caio-request-id", request_id.to_string());
    if let Some(service) = service {
        set("x-caio-service", service.to_string());
    }
    set("x-caio-trace", trace.seq.to_string());
    set("x-caio-attempts", attempts.to_string());
}

/// An OpenAI front door: the caller is let in (authenticated, counted, its
/// body read within the budget) before anything else.
async fn front_door(state: AppState, headers: HeaderMap, body: Body, operation: Operation) -> Result<Response, ApiError> {
    let limit = state.0.config.limits.body_bytes;
    let Admitted { bearer, body: raw, held } = admit(&state, &headers, body, limit).await?;
    let body = parse_body(&raw)?;
    let text = CallBody::parse(raw).map_err(|e| ApiError::invalid(format!("the body: {e}")))?;
    let mut response = answer(state, headers, body, text, None, bearer, operation).await?;
    response.extensions_mut().insert(held);
    Ok(response)
}

/// A front door that takes an upload (`multipart/form-data`): let in like
/// the others, its body bounded by `limits.upload_bytes`; the file is
/// passed on as it came, never parsed, logged or traced (its digest and
/// length are).
async fn upload_door(state: AppState, headers: HeaderMap, body: Body, operation: Operation) -> Result<Response, ApiError> {
    let limit = state.0.config.limits.upload_bytes;
    let Admitted { bearer, body: raw, held } = admit(&state, &headers, body, limit).await?;
    let media_type = header_text(&headers, "content-type")?.unwrap_or_default();
    let upload = FormBody::parse(media_type, raw).map_err(|e| ApiError::invalid(format!("the upload: {e}")))?;
    if upload.file("file").is_none() {
        return Err(ApiError::invalid("`file` is required: the audio, as a file part of the form"));
    }
    let fields = upload.fields();
    let text = CallBody::from_value(&fields).map_err(|e| ApiError::invalid(format!("the upload: {e}")))?;
    let mut response = answer(state, headers, fields, text, Some(upload), bearer, operation).await?;
    response.extensions_mut().insert(held);
    Ok(response)
}

/// Answers a front door's call: `body` is the strict reading of `text`
/// (or an upload's fields), used to check the call and route it, then
/// dropped; the call keeps `text` and the upload.
async fn answer(
    state: AppState,
    headers: HeaderMap,
    body: Value,
    text: CallBody,
    upload: Option<FormBody>,
    bearer: String,
    operation: Operation,
) -> Result<Response, ApiError> {
    let request = request_of(&state, operation, &body, &headers)?;
    let request_id = request["id"].as_str().unwrap_or_default().to_string();
    let restart = match header_text(&headers, "x-caio-stream-restart")? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "the x-caio-stream-restart header must be `true` or `false`, found `{}`",
                quoted(other)
            )));
        }
    };
    let call = call_of(operation, &body, text, upload, &request_id, state.now(), restart)?;
    drop(body);
    let input = match &call.upload {
        Some(upload) => upload_record(upload).await,
        None => None,
    };
    let Executed { trace, reply, attempts, .. } = execute(&state, request, Some(bearer), true, call).await?;
    match reply {
        Ok(Reply::Complete { service, body }) => {
            record_later(&state, execution_body(&trace, &request_id, &attempts, Some(&service), input.as_ref()));
            let mut response = Json(body).into_response();
            caio_headers(&mut response, &request_id, Some(&service), &trace, attempts.len());
            Ok(response)
        }
        Ok(Reply::Stream(streamed)) => {
            let service = streamed.service.clone();
            let events = futures_util::stream::unfold(streamed.events, |mut events| async move {
                events.recv().await.map(|event| (event, events))
            });
            let (finished, recorder, trace_ref, id) =
                (streamed.finished, state.clone(), trace.clone(), request_id.clone());
            let mut tried = attempts.clone();
            tokio::spawn(async move {
                // The last attempt is the streaming one: its final outcome,
                // and every attempt to go on with the answer, replace it.
                if let Ok(last) = finished.await {
                    tried.pop();
                    tried.extend(last);
                }
                let served = tried.iter().rev().find(|a| a.outcome.starts_with("ok")).map(|a| a.service.clone());
                record(&recorder, execution_body(&trace_ref, &id, &tried, served.as_deref(), input.as_ref())).await;
            });
            let media_type = match &streamed.media_type {
                Some(media_type) => HeaderValue::from_str(media_type)
                    .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
                None => HeaderValue::from_static("text/event-stream"),
            };
            let mut response = Response::new(Body::from_stream(events));
            response.headers_mut().insert(header::CONTENT_TYPE, media_type);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            caio_headers(&mut response, &request_id, Some(&service), &trace, attempts.len());
            Ok(response)
        }
        Err(failure) => {
            record_later(&state, execution_body(&trace, &request_id, &attempts, None, input.as_ref()));
            let mut response = failed(failure, &attempts).into_response();
            caio_headers(&mut response, &request_id, None, &trace, attempts.len());
            Ok(response)
        }
    }
}

/// `POST /v1/chat/completions`: a chat completion in the OpenAI format,
/// streamed as server-sent events with `stream: true`.
pub async fn chat_completions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    front_door(state, headers, body, Operation::Chat).await
}

/// `POST /v1/embeddings`: embeddings in the OpenAI format.
pub async fn embeddings(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    front_door(state, headers, body, Operation::Embeddings).await
}

/// `POST /v1/rerank`: documents ranked for a query, in the shape vLLM and
/// Infinity serve.
pub async fn rerank(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    front_door(state, headers, body, Operation::Rerank).await
}

/// `POST /v1/images/generations`: images in the OpenAI format.
pub async fn images(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    front_door(state, headers, body, Operation::Images).await
}

/// `POST /v1/audio/speech`: speech in the OpenAI format, its audio bytes
/// passed on as the service sends them.
pub async fn speech(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    front_door(state, headers, body, Operation::Speech).await
}

/// `POST /v1/audio/transcriptions`: the text of an uploaded recording, in
/// the format asked (`response_format`), as the service wrote it.
pub async fn transcriptions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    upload_door(state, headers, body, Operation::Transcription).await
}

/// `POST /v1/audio/translations`: an uploaded recording's text in English.
pub async fn translations(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    upload_door(state, headers, body, Operation::Translation).await
}

/// The operation `/v1/orchestrate` names: those answered as JSON.
pub(crate) fn operation_of(name: &str) -> Result<Operation, ApiError> {
    Ok(match name {
        "chat" => Operation::Chat,
        "embeddings" => Operation::Embeddings,
        "rerank" => Operation::Rerank,
        "image_generation" => Operation::Images,
        "text_to_speech" | "speech_to_text" => {
            return Err(ApiError::invalid(
                "`operation`: /v1/orchestrate answers JSON; use /v1/audio/speech or /v1/audio/transcriptions",
            ));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "`operation` must be `chat`, `embeddings`, `rerank` or `image_generation`, found `{}`",
                quoted(other)
            )));
        }
    })
}

/// caio's own call: a routing request and what to execute.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrchestrateRequest {
    /// The routing request, as `POST /v1/route` takes it.
    #[schemars(with = "Value")]
    pub request: Value,
    /// `chat`, `embeddings`, `rerank` or `image_generation`.
    pub operation: String,
    /// The call in the OpenAI format: `messages` for chat, `input` for
    /// embeddings, `query` and `documents` for rerank, `prompt` for image
    /// generation, and options (not streamed).
    #[schemars(with = "Value")]
    pub input: Value,
}

/// What `POST /v1/orchestrate` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrchestrateResponse {
    /// The routing decision, as `POST /v1/route` answers it.
    pub decision: RouteResponse,
    /// The service that served the call.
    pub served_by: String,
    /// Its answer, in the OpenAI format.
    #[schemars(with = "Value")]
    pub result: Value,
    /// Every attempt, in order.
    #[schemars(with = "Vec<Value>")]
    pub attempts: Vec<Attempt>,
    /// The `execution` trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<TraceRef>,
}

/// `POST /v1/orchestrate`: routes caio's own request, executes it, and
/// returns the result with the decision and its traces.
pub async fn orchestrate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (bearer, body, held, admitted) = admit_or_read(&state, &headers, body).await?;
    let parsed = parse_body(&body)?;
    drop(body);
    let mut response = orchestrated(state, parsed, bearer, admitted).await?;
    response.extensions_mut().insert(held);
    Ok(response)
}

async fn orchestrated(state: AppState, body: Value, bearer: Option<String>, admitted: bool) -> Result<Response, ApiError> {
    if crate::api::plan::is_plan(&body) {
        return crate::api::plan::run_plan(state, body, bearer, admitted).await;
    }
    let orchestrated: OrchestrateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("the body: {e}; it takes `request`, `operation` and `input`")))?;
    let operation = operation_of(&orchestrated.operation)?;
    if orchestrated.input.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::invalid(
            "`input.stream`: /v1/orchestrate answers whole; stream with /v1/chat/completions",
        ));
    }
    let request_id = orchestrated.request.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    let text = CallBody::from_value(&orchestrated.input).map_err(|e| ApiError::invalid(format!("`input`: {e}")))?;
    let call = call_of(operation, &orchestrated.input, text, None, &request_id, state.now(), false)?;
    let Executed { decision, trace, reply, attempts } =
        execute(&state, orchestrated.request, bearer, admitted, call).await?;
    let served_by = match &reply {
        Ok(Reply::Complete { service, .. }) => Some(service.as_str()),
        _ => None,
    };
    let execution = record(&state, execution_body(&trace, &request_id, &attempts, served_by, None)).await;
    match reply {
        Ok(Reply::Complete { service, body }) => {
            let tried = attempts.len();
            let mut response = Json(OrchestrateResponse {
                decision: respond(decision, trace.clone(), false),
                served_by: service.clone(),
                result: body,
                attempts,
                execution,
            })
            .into_response();
            caio_headers(&mut response, &request_id, Some(&service), &trace, tried);
            Ok(response)
        }
        Ok(Reply::Stream(_)) => Err(ApiError::internal("a whole answer was asked for, and a stream came")),
        Err(failure) => {
            let mut error = failed(failure, &attempts);
            error.details = Some(json!({"decision_trace": trace.seq}));
            Err(error)
        }
    }
}
