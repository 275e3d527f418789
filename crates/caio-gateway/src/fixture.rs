//! A model server for tests and benchmarks (feature `fixture`): a real HTTP
//! server on 127.0.0.1 that speaks the OpenAI format (`/v1/chat/completions`,
//! `/v1/embeddings`, streamed or not), Ollama's native API (`/api/chat`,
//! `/api/embeddings`) and a generic JSON API (`/generate`), and injects the
//! faults queued with [`Upstream::push`]: 500s, 429 with `Retry-After`,
//! slow answers, malformed JSON, a stream cut mid-way, a redirect.
//!
//! It must never be used outside tests and benchmarks: it answers canned
//! text, not a model's.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answers 500.
    ServerError,
    /// Answers 429 with `Retry-After` in seconds.
    RateLimited(f64),
    /// Answers after a delay.
    Slow(Duration),
    /// Answers 200 with a body that is not JSON.
    Malformed,
    /// Streams two chunks and closes the connection without finishing.
    CutStream,
    /// Answers 400 (the request itself is refused).
    BadRequest,
    /// Answers 404 (a wrong path or model name).
    NotFound,
    /// Redirects (307) to another URL.
    Redirect(String),
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<Fault>>,
    always: Mutex<Option<Fault>>,
    hits: AtomicU64,
    seen: Mutex<Vec<(String, HeaderMap, Value)>>,
    chunk_gap: Mutex<Duration>,
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

impl Upstream {
    /// Starts a server whose answers say `name`, on a free loopback port.
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        Upstream::on(listener, name)
    }

    /// Starts a server on `listener`.
    pub fn on(listener: tokio::net::TcpListener, name: &str) -> Upstream {
        let addr = listener.local_addr().expect("a bound listener has an address");
        let shared = Arc::new(Shared { name: name.to_string(), ..Shared::default() });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/api/chat", post(ollama_chat))
            .route("/api/embeddings", post(ollama_embeddings))
            .route("/generate", post(generic))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
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

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Every request received: path, headers, body.
    pub fn seen(&self) -> Vec<(String, HeaderMap, Value)> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn arrive(shared: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) -> (Option<Fault>, Value) {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push((path.to_string(), headers.clone(), body.clone()));
    let fault = shared.queue.lock().unwrap().pop_front().or_else(|| shared.always.lock().unwrap().clone());
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
        return (None, body);
    }
    (fault, body)
}

fn fail(fault: &Fault) -> Option<Response> {
    Some(match fault {
        Fault::ServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"message": "injected failure"}})))
                .into_response()
        }
        Fault::RateLimited(seconds) => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, seconds.to_string())], "slow down").into_response()
        }
        Fault::Malformed => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"choices\": [").into_response()
        }
        Fault::BadRequest => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "injected refusal"}}))).into_response()
        }
        Fault::NotFound => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "no such model"}}))).into_response()
        }
        Fault::Redirect(to) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to.clone())]).into_response(),
        Fault::Slow(_) | Fault::CutStream => return None,
    })
}

const WORDS: [&str; 3] = ["Hello", " from", " upstream"];

fn stream_body(events: Vec<Bytes>, gap: Duration, cut: bool) -> Body {
    let stream = futures_util::stream::unfold((events.into_iter(), 0usize), move |(mut events, sent)| async move {
        if cut && sent == 2 {
            // After a pause, so that the chunks before are flushed first.
            tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
            return Some((Err(std::io::Error::other("injected cut")), (events, usize::MAX)));
        }
        if sent == usize::MAX {
            return None;
        }
        let next = events.next()?;
        if sent > 0 {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::io::Error>(next), (events, sent + 1)))
    });
    Body::from_stream(stream)
}

async fn openai_chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, request) = arrive(&shared, "/v1/chat/completions", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(fail) {
        return response;
    }
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let name = &shared.name;
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let mut events: Vec<Bytes> = WORDS
            .iter()
            .map(|w| {
                let chunk = json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]});
                Bytes::from(format!("data: {chunk}\n\n"))
            })
            .collect();
        let last = json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {"content": format!(" ({name})")}, "finish_reason": "stop"}]});
        events.push(Bytes::from(format!("data: {last}\n\n")));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let gap = *shared.chunk_gap.lock().unwrap();
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            stream_body(events, gap, fault == Some(Fault::CutStream)),
        )
            .into_response();
    }
    axum::Json(json!({
        "id": "up-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{} ({name})", WORDS.concat())}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    }))
    .into_response()
}

fn vector(name: &str) -> Vec<f64> {
    vec![name.len() as f64, 0.5, -0.25]
}

async fn openai_embeddings(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, request) = arrive(&shared, "/v1/embeddings", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(fail) {
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

async fn ollama_chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, request) = arrive(&shared, "/api/chat", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(fail) {
        return response;
    }
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    if request.get("stream").and_then(Value::as_bool) != Some(false) {
        let mut lines: Vec<Bytes> = WORDS
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
        return (
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            stream_body(lines, gap, fault == Some(Fault::CutStream)),
        )
            .into_response();
    }
    axum::Json(json!({"model": model, "message": {"role": "assistant", "content": format!("{} ({})", WORDS.concat(), shared.name)},
        "done": true, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 3}))
    .into_response()
}

async fn ollama_embeddings(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, _) = arrive(&shared, "/api/embeddings", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(fail) {
        return response;
    }
    axum::Json(json!({"embedding": vector(&shared.name)})).into_response()
}

async fn generic(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (fault, request) = arrive(&shared, "/generate", &headers, &body).await;
    if let Some(response) = fault.as_ref().and_then(fail) {
        return response;
    }
    let text = request.get("text").and_then(Value::as_str).unwrap_or_default();
    axum::Json(json!({"output": [{"text": format!("echo: {text} ({})", shared.name)}], "vector": vector(&shared.name)}))
        .into_response()
}
