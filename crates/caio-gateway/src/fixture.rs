//! A model server for tests and benchmarks (feature `fixture`): a real HTTP
//! server on 127.0.0.1 that speaks the OpenAI format (`/v1/chat/completions`,
//! `/v1/embeddings`, streamed or not), Ollama's native API (`/api/chat`,
//! `/api/embeddings`) and a generic JSON API (`/generate`), and injects the
//! faults queued with [`Upstream::push`]: every way a provider fails that
//! the fault catalogue knows (statuses, resets, silence, slow first tokens,
//! cut, stalled and malformed streams, streams without `[DONE]`, refusals
//! of the request's content).
//!
//! A streamed answer is [`Upstream::words`] words long; given a last message
//! from the assistant (prefill), it continues that text instead of starting
//! over. It reports usage (in the final chunk when the request asks with
//! `stream_options.include_usage`).
//!
//! It must never be used outside tests and benchmarks: it answers canned
//! text, not a model's.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answers 500.
    ServerError,
    /// Answers 503.
    Unavailable,
    /// Answers 429, with `Retry-After` in seconds when given.
    RateLimited(f64),
    /// Answers 429 without `Retry-After`.
    RateLimitedBare,
    /// Answers after a delay.
    Slow(Duration),
    /// Answers 200 with a body that is not JSON.
    Malformed,
    /// Streams two chunks and closes the connection without finishing.
    CutStream,
    /// Streams `n` chunks, then closes the connection without finishing.
    CutAfter(usize),
    /// Streams `n` chunks, then sends nothing for the duration, then the rest.
    StallAfter(usize, Duration),
    /// Streams `n` chunks, then one that is not JSON, then the rest.
    MalformedChunk(usize),
    /// Streams the whole answer with its `finish_reason`, and ends the body
    /// cleanly without `data: [DONE]`.
    NoDone,
    /// Sends the response head at once and the first chunk after the delay
    /// (the whole answer after it, when not streamed).
    FirstTokenAfter(Duration),
    /// Resets the connection (TCP RST) before sending a byte.
    Reset,
    /// Reads the request and never answers.
    Silent,
    /// Answers 400 `context_length_exceeded`, as OpenAI and vLLM do.
    ContextLength,
    /// Answers 400 `content_filter`, as Azure OpenAI does.
    ContentFilter,
    /// Answers 400 when the last message is the assistant's (no prefill).
    RejectsPrefill,
    /// Answers 400 (the request itself is refused).
    BadRequest,
    /// Answers 404 (a wrong path or model name).
    NotFound,
    /// Redirects (307) to another URL.
    Redirect(String),
    /// Answers 529 `overloaded_error`, as Anthropic's API does.
    Overloaded,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Fault>>,
    always: Mutex<Option<Fault>>,
    hits: AtomicU64,
    arrivals: Mutex<Vec<Instant>>,
    seen: Mutex<Vec<(String, HeaderMap, Value)>>,
    chunk_gap: Mutex<Duration>,
    words: AtomicU64,
    name: String,
}

/// A running fixture server; it stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One accepted connection's switch: a handler that resets its connection
/// sets it, and the connection's next write sends a TCP RST instead.
#[derive(Debug, Clone, Default)]
struct Connection {
    reset: Arc<AtomicBool>,
}

/// A TCP stream that resets instead of writing once its switch is set.
struct Resettable {
    stream: tokio::net::TcpStream,
    connection: Connection,
}

impl Resettable {
    fn reset_if_asked(&self) -> std::io::Result<()> {
        if self.connection.reset.load(Ordering::SeqCst) {
            // With a zero linger time, closing the socket sends a RST.
            let _ = self.stream.set_zero_linger();
            return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        }
        Ok(())
    }
}

impl AsyncRead for Resettable {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.reset_if_asked()?;
        Pin::new(&mut self.stream).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.reset_if_asked()?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

struct Listener(tokio::net::TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Resettable;
    type Addr = Connection;

    async fn accept(&mut self) -> (Resettable, Connection) {
        loop {
            if let Ok((stream, _)) = self.0.accept().await {
                let connection = Connection::default();
                return (Resettable { stream, connection: connection.clone() }, connection);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Connection> {
        Ok(Connection::default())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Connection {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Connection {
        stream.remote_addr().clone()
    }
}

impl Upstream {
    /// Starts a server whose answers say `name`, on a free loopback port.
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        Upstream::on(listener, name)
    }

    /// Starts a server on `listener`.
    pub fn on(listener: tokio::net::TcpListener, name: &str) -> Upstream {
        let addr = listener.local_addr().expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            always: Mutex::default(),
            hits: AtomicU64::new(0),
            arrivals: Mutex::default(),
            seen: Mutex::default(),
            chunk_gap: Mutex::default(),
            words: AtomicU64::new(0),
            name: name.to_string(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/v1/rerank", post(openai_rerank))
            .route("/v1/images/generations", post(openai_images))
            .route("/v1/audio/speech", post(openai_speech))
            .route("/v1/audio/transcriptions", post(openai_transcription))
            .route("/v1/audio/translations", post(openai_transcription))
            .route("/api/chat", post(ollama_chat))
            .route("/api/embeddings", post(ollama_embeddings))
            .route("/generate", post(generic))
            .route("/v1/messages", post(anthropic_messages))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<Connection>();
            let _ = axum::serve(Listener(listener), service).await;
        });
        Upstream { addr, shared, task }
    }

    /// The base URL of the OpenAI-compatible API (`http://127.0.0.1:port/v1`).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults for the next requests, in order.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.queue.lock().unwrap().extend(faults);
    }

    /// Applies `fault` to every request once the queue is empty (`None`: answer well).
    pub fn always(&self, fault: Option<Fault>) {
        *self.shared.always.lock().unwrap() = fault;
    }

    /// The pause between streamed chunks.
    pub fn chunk_gap(&self, gap: Duration) {
        *self.shared.chunk_gap.lock().unwrap() = gap;
    }

    /// Answers `n` words (`w1 w2 ...`), one streamed chunk each, instead of
    /// "Hello from upstream".
    pub fn words(&self, n: usize) {
        self.shared.words.store(n as u64, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// When each request arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.shared.arrivals.lock().unwrap().clone()
    }

    /// Every request received: path, headers, body.
    pub fn seen(&self) -> Vec<(String, HeaderMap, Value)> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Shared {
    /// The answer's chunks of text.
    fn answer(&self) -> Vec<String> {
        match self.words.load(Ordering::SeqCst) {
            0 => ["Hello", " from", " upstream"].iter().map(|w| w.to_string()).chain([format!(" ({})", self.name)]).collect(),
            n => (1..=n).map(|i| if i == 1 { "w1".to_string() } else { format!(" w{i}") }).collect(),
        }
    }
}

async fn arrive(
    shared: &Shared,
    connection: &Connection,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Option<Fault>, Value) {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    shared.arrivals.lock().unwrap().push(Instant::now());
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push((path.to_string(), headers.clone(), body.clone()));
    let fault = shared.queue.lock().unwrap().pop_front().or_else(|| shared.always.lock().unwrap().clone());
    match fault {
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            (None, body)
        }
        Some(Fault::Reset) => {
            connection.reset.store(true, Ordering::SeqCst);
            (Some(Fault::Reset), body)
        }
        Some(Fault::Silent) => std::future::pending().await,
        Some(Fault::FirstTokenAfter(delay)) if body.get("stream").and_then(Value::as_bool) != Some(true) => {
            tokio::time::sleep(delay).await;
            (None, body)
        }
        fault => (fault, body),
    }
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: Value, param: Value) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": kind, "param": param, "code": code}}))).into_response()
}

fn fail(fault: &Fault, request: &Value) -> Option<Response> {
    Some(match fault {
        Fault::ServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"message": "injected failure"}})))
                .into_response()
        }
        Fault::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": {"message": "injected outage"}}))).into_response()
        }
        Fault::RateLimited(seconds) => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, seconds.to_string())], "slow down").into_response()
        }
        Fault::RateLimitedBare => openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests",
            "requests",
            json!("rate_limit_exceeded"),
            Value::Null,
        ),
        Fault::Malformed => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"choices\": [").into_response()
        }
        Fault::ContextLength => openai_error(
            StatusCode::BAD_REQUEST,
            "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens.",
            "invalid_request_error",
            json!("context_length_exceeded"),
            json!("messages"),
        ),
        Fault::ContentFilter => openai_error(
            StatusCode::BAD_REQUEST,
            "The response was filtered due to the prompt triggering the content management policy.",
            "invalid_request_error",
            json!("content_filter"),
            json!("prompt"),
        ),
        Fault::RejectsPrefill if prefill(request).is_some() => openai_error(
            StatusCode::BAD_REQUEST,
            "the last message must be the user's",
            "invalid_request_error",
            Value::Null,
            json!("messages"),
        ),
        Fault::BadRequest => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "injected refusal"}}))).into_response()
        }
        Fault::NotFound => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "no such model"}}))).into_response()
        }
        Fault::Redirect(to) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to.clone())]).into_response(),
        Fault::Overloaded => (
            StatusCode::from_u16(529).expect("a valid status"),
            axum::Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        )
            .into_response(),
        // The handler's response is never written: the connection resets.
        Fault::Reset => StatusCode::OK.into_response(),
        _ => return None,
    })
}

/// The assistant's partial answer, when the request ends with one: its
/// text, or its text blocks (the Messages API's shape).
fn prefill(request: &Value) -> Option<String> {
    let last = request.get("messages")?.as_array()?.last()?;
    if last.get("role")?.as_str()? != "assistant" {
        return None;
    }
    match last.get("content")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => Some(blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect()),
        _ => None,
    }
}

/// The answer's words left once the request's partial answer (prefill) is
/// said: a service that continues it answers only the rest.
fn continuing(mut words: Vec<String>, request: &Value) -> Vec<String> {
    let Some(partial) = prefill(request) else { return words };
    if words.concat().starts_with(&partial) {
        let mut covered = String::new();
        let said = words
            .iter()
            .take_while(|w| {
                covered.push_str(w);
                partial.starts_with(&covered)
            })
            .count();
        words.drain(..said);
    }
    words
}

/// How a stream goes wrong, if it does.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    cut_after: Option<usize>,
    stall: Option<(usize, Duration)>,
    malformed_at: Option<usize>,
    first_delay: Option<Duration>,
    done: bool,
}

impl Shape {
    fn of(fault: Option<&Fault>) -> Shape {
        let mut shape = Shape { done: true, ..Shape::default() };
        match fault {
            Some(Fault::CutStream) => shape.cut_after = Some(2),
            Some(Fault::CutAfter(n)) => shape.cut_after = Some(*n),
            Some(Fault::StallAfter(n, pause)) => shape.stall = Some((*n, *pause)),
            Some(Fault::MalformedChunk(n)) => shape.malformed_at = Some(*n),
            Some(Fault::FirstTokenAfter(delay)) => shape.first_delay = Some(*delay),
            Some(Fault::NoDone) => shape.done = false,
            _ => {}
        }
        shape
    }
}

/// The events of a stream, sent with `gap` between them and the faults of
/// `shape`. Counting starts at the first chunk of text.
fn stream_body(events: Vec<Bytes>, gap: Duration, shape: Shape) -> Body {
    let stream = futures_util::stream::unfold((events.into_iter(), 0usize), move |(mut events, sent)| async move {
        if sent == usize::MAX {
            return None;
        }
        if shape.cut_after == Some(sent) {
            // After a pause, so that the chunks before are flushed first.
            tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
            return Some((Err(std::io::Error::other("injected cut")), (events, usize::MAX)));
        }
        if shape.malformed_at == Some(sent) {
            return Some((Ok(Bytes::from_static(b"data: {\"choices\": [{\"delta\": {\"content\": \"broken\n\n")), (events, sent + 1)));
        }
        let next = events.next()?;
        match (sent, shape.first_delay, shape.stall) {
            (0, Some(delay), _) => tokio::time::sleep(delay).await,
            (_, _, Some((at, pause))) if at == sent => tokio::time::sleep(pause).await,
            (0, _, _) => {}
            _ => tokio::time::sleep(gap).await,
        }
        Some((Ok::<_, std::io::Error>(next), (events, sent + 1)))
    });
    Body::from_stream(stream)
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

async fn openai_chat(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/chat/completions", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let words = continuing(shared.answer(), &request);
    let prompt_tokens = request.get("messages").and_then(Value::as_array).map_or(0, Vec::len) * 3;
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let last = words.len().saturating_sub(1);
        let mut events: Vec<Bytes> = words
            .iter()
            .enumerate()
            .map(|(i, w)| chunk(json!({"content": w}), if i == last { json!("stop") } else { Value::Null }))
            .collect();
        if request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
            let usage = json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [], "usage": usage(prompt_tokens, words.len())});
            events.push(Bytes::from(format!("data: {usage}\n\n")));
        }
        let shape = Shape::of(fault.as_ref());
        if shape.done {
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        let gap = *shared.chunk_gap.lock().unwrap();
        return ([(header::CONTENT_TYPE, "text/event-stream")], stream_body(events, gap, shape)).into_response();
    }
    axum::Json(json!({
        "id": "up-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": words.concat()}, "finish_reason": "stop"}],
        "usage": usage(prompt_tokens, words.len())
    }))
    .into_response()
}

fn vector(name: &str) -> Vec<f64> {
    vec![name.len() as f64, 0.5, -0.25]
}

async fn openai_embeddings(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/embeddings", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let inputs = match request.get("input") {
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> =
        (0..inputs).map(|i| json!({"object": "embedding", "index": i, "embedding": vector(&shared.name)})).collect();
    axum::Json(json!({"object": "list", "data": data, "model": request.get("model"), "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
        .into_response()
}

async fn ollama_chat(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/api/chat", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let words = shared.answer();
    if request.get("stream").and_then(Value::as_bool) != Some(false) {
        let mut lines: Vec<Bytes> = words
            .iter()
            .map(|w| {
                Bytes::from(format!(
                    "{}\n",
                    json!({"model": model, "message": {"role": "assistant", "content": w}, "done": false})
                ))
            })
            .collect();
        lines.push(Bytes::from(format!("{}\n", json!({"model": model, "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"}))));
        let gap = *shared.chunk_gap.lock().unwrap();
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], stream_body(lines, gap, Shape::of(fault.as_ref())))
            .into_response();
    }
    axum::Json(json!({"model": model, "message": {"role": "assistant", "content": words.concat()},
        "done": true, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": words.len()}))
    .into_response()
}

async fn ollama_embeddings(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/api/embeddings", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    axum::Json(json!({"embedding": vector(&shared.name)})).into_response()
}

/// Ranks documents by the share of the query's words they contain (the
/// shape vLLM and Infinity answer), best first, `top_n` of them.
async fn openai_rerank(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/rerank", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let query: Vec<String> = request
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let documents = request.get("documents").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut results: Vec<(usize, f64)> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let text = document.as_str().unwrap_or_default().to_lowercase();
            let found = query.iter().filter(|word| text.contains(word.as_str())).count();
            (index, found as f64 / query.len().max(1) as f64)
        })
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = request.get("top_n").and_then(Value::as_u64).map_or(results.len(), |n| n as usize);
    let results: Vec<Value> =
        results.into_iter().take(top).map(|(index, score)| json!({"index": index, "relevance_score": score})).collect();
    axum::Json(json!({"id": format!("rerank-{}", shared.name), "model": request.get("model"), "results": results, "usage": {"total_tokens": 0}}))
        .into_response()
}

/// Answers `n` images: a URL naming the server, or a few bytes as base64.
async fn openai_images(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/images/generations", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let n = request.get("n").and_then(Value::as_u64).unwrap_or(1);
    let base64 = request.get("response_format").and_then(Value::as_str) == Some("b64_json");
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if base64 {
                json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(format!("image {i} from {}", shared.name))})
            } else {
                json!({"url": format!("https://images.example/{}/{i}.png", shared.name)})
            }
        })
        .collect();
    axum::Json(json!({"created": 0, "data": data})).into_response()
}

/// The audio of a speech request: four chunks (`audio 1/4 from NAME `,
/// ...) sent with the chunk gap, of the media type `response_format` names;
/// stream faults (a cut, a stall, a late first chunk) apply.
async fn openai_speech(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/audio/speech", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let media_type = match request.get("response_format").and_then(Value::as_str).unwrap_or("mp3") {
        "wav" => "audio/wav",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "pcm" => "audio/pcm",
        _ => "audio/mpeg",
    };
    let chunks: Vec<Bytes> = (1..=4).map(|i| Bytes::from(format!("audio {i}/4 from {} ", shared.name))).collect();
    let gap = *shared.chunk_gap.lock().unwrap();
    ([(header::CONTENT_TYPE, media_type)], stream_body(chunks, gap, Shape::of(fault.as_ref()))).into_response()
}

/// The value of a form field, found by plain search (independent of the
/// gateway's own form reader): the text between the field's head and the
/// next line of the boundary.
fn form_field<'a>(body: &'a [u8], head_contains: &str) -> Option<&'a [u8]> {
    let text = body;
    let at = text.windows(head_contains.len()).position(|w| w == head_contains.as_bytes())?;
    let start = at + text[at..].windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let end = start + text[start..].windows(4).position(|w| w == b"\r\n--")?;
    Some(&text[start..end])
}

/// Hears an upload: answers `heard N bytes of FILE (NAME)` in the format
/// asked (`json`, `text`, `srt`, `vtt`, `verbose_json`). The request is
/// recorded with its fields: `model`, `language`, `response_format` and
/// `file_bytes`.
async fn openai_transcription(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |head: &str| form_field(&body, head).map(|v| String::from_utf8_lossy(v).into_owned());
    let file = form_field(&body, "name=\"file\"").map_or(0, <[u8]>::len);
    let seen = json!({
        "model": text("name=\"model\""),
        "language": text("name=\"language\""),
        "response_format": text("name=\"response_format\""),
        "file_bytes": file,
        "content_type": headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
    });
    let (fault, _) = arrive(&shared, &connection, uri.path(), &headers, &Bytes::from(seen.to_string())).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &seen)) {
        return response;
    }
    let heard = format!("heard {file} bytes ({})", shared.name);
    match text("name=\"response_format\"").as_deref().unwrap_or("json") {
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], heard).into_response(),
        "srt" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("1\n00:00:00,000 --> 00:00:01,000\n{heard}\n")).into_response(),
        "vtt" => ([(header::CONTENT_TYPE, "text/vtt")], format!("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{heard}\n")).into_response(),
        "verbose_json" => axum::Json(json!({"task": "transcribe", "language": "english", "duration": 1.0, "text": heard, "segments": []})).into_response(),
        _ => axum::Json(json!({"text": heard})).into_response(),
    }
}

/// Anthropic's Messages API: the answer's words as a `message` or as its
/// event stream; a last assistant turn is continued (prefill). Stream
/// faults apply, counted from the first text delta; `NoDone` leaves out
/// `message_stop`.
async fn anthropic_messages(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/v1/messages", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let words = continuing(shared.answer(), &request);
    let input_tokens = request.get("messages").and_then(Value::as_array).map_or(0, Vec::len) * 3;
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
        let opening = event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        );
        let block = event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
        let mut events: Vec<Bytes> = words
            .iter()
            .map(|w| event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})))
            .collect();
        // The opening goes with the first delta, so that faults count deltas.
        if let Some(first) = events.first_mut() {
            *first = Bytes::from([&opening[..], &block[..], &first[..]].concat());
        }
        events.push(Bytes::from(
            [
                &event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))[..],
                &event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": words.len()}}))[..],
            ]
            .concat(),
        ));
        let shape = Shape::of(fault.as_ref());
        if shape.done {
            events.push(event("message_stop", json!({"type": "message_stop"})));
        }
        let gap = *shared.chunk_gap.lock().unwrap();
        return ([(header::CONTENT_TYPE, "text/event-stream")], stream_body(events, gap, shape)).into_response();
    }
    axum::Json(json!({
        "id": "msg_up", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": words.concat()}],
        "stop_reason": "end_turn", "usage": {"input_tokens": input_tokens, "output_tokens": words.len()},
    }))
    .into_response()
}

async fn generic(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = arrive(&shared, &connection, "/generate", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(|f| fail(f, &request)) {
        return response;
    }
    let text = request.get("text").and_then(Value::as_str).unwrap_or_default();
    axum::Json(json!({"output": [{"text": format!("echo: {text} ({})", shared.name)}], "vector": vector(&shared.name)}))
        .into_response()
}
