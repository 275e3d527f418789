//! Every request, observed: the W3C `traceparent` it carries (or a new one)
//! is kept and returned with a span of this server, the request is bounded
//! by the configured timeout, and it is counted and logged once, as a JSON
//! event of `tracing` when the binary installs its JSON subscriber. Nothing
//! leaves the process.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::budget::Held;
use crate::error::ApiError;
use crate::state::AppState;

/// A W3C trace context: the trace this request belongs to and its parent span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The caller's span, 16 hex digits, if it sent one.
    pub parent_id: Option<String>,
    /// This server's span for the request.
    pub span_id: String,
    /// Trace flags (`01`: sampled).
    pub flags: String,
}

fn random_hex(digits: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.push_str(&format!("{:016x}", hasher.finish().max(1)));
    }
    out.truncate(digits);
    out
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits
        && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
}

impl TraceContext {
    /// Parses a `traceparent` header (`00-<trace id>-<parent id>-<flags>`);
    /// `None` when it is not one.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version.len() == 2
            && version != "ff"
            && is_hex(trace_id, 32)
            && is_hex(parent_id, 16)
            && flags.len() == 2
            && flags.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && (version != "00" || parts.next().is_none())).then(|| TraceContext {
            trace_id: trace_id.to_string(),
            parent_id: Some(parent_id.to_string()),
            span_id: random_hex(16),
            flags: flags.to_string(),
        })
    }

    /// The context of a request that carried none.
    pub fn fresh() -> TraceContext {
        TraceContext { trace_id: random_hex(32), parent_id: None, span_id: random_hex(16), flags: "01".into() }
    }

    /// The `traceparent` this server propagates: the same trace, its own span.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// The routes that execute calls on model servers: they wait on them, and
/// have their own bound (`limits.call_timeout_ms`).
const EXECUTED: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/rerank",
    "/v1/images/generations",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/orchestrate",
];

/// The route a path belongs to, for metrics and logs: a bounded set of labels.
pub fn route_label(path: &str) -> &'static str {
    // The operations the API serves (one list: `openapi::OPERATIONS`, which
    // a test checks are all routed), less those with a path parameter.
    let fixed = crate::openapi::OPERATIONS.iter().map(|o| o.path).find(|p| *p == path && !p.contains('{'));
    if let Some(fixed) = fixed {
        return fixed;
    }
    if path.starts_with("/v1/services/") {
        "/v1/services/{id}"
    } else if path.starts_with("/v1/traces/") {
        "/v1/traces/{seq}"
    } else {
        "other"
    }
}

fn is_stream(response: &Response) -> bool {
    response.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"text/event-stream")
}

/// A streamed answer keeps its in-flight permit, and what its handler holds
/// (its body's budget, its caller's slot), until its last byte (so streams
/// count against the limits as long as they last) and ends with an error
/// event once it has lasted `limit`.
fn hold_until_the_end(
    response: Response,
    permit: (Option<tokio::sync::OwnedSemaphorePermit>, Option<Held>, Option<crate::connections::Activity>),
    limit: std::time::Duration,
) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = response.into_parts();
    let deadline = tokio::time::Instant::now() + limit;
    let events = futures_util::stream::unfold(Some((body.into_data_stream(), permit)), move |held| async move {
        let (mut events, permit) = held?;
        tokio::select! {
            next = events.next() => next.map(|event| (event, Some((events, permit)))),
            _ = tokio::time::sleep_until(deadline) => {
                let error = serde_json::json!({"error": {
                    "message": format!("the stream lasted longer than {} ms (`limits.stream_ms`)", limit.as_millis()),
                    "type": "server_error", "param": null, "code": "stream_timeout"}});
                // The last item: the permit goes with the stream's state.
                Some((Ok(axum::body::Bytes::from(format!("data: {error}\n\n"))), None))
            }
        }
    });
    Response::from_parts(parts, axum::body::Body::from_stream(events))
}

/// The middleware around every request.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .unwrap_or_else(TraceContext::fresh);
    request.extensions_mut().insert(context.clone());
    let method = request.method().to_string();
    let route = route_label(request.uri().path());
    // Executed calls wait for model servers: they have their own bound.
    let executes = EXECUTED.contains(&route);
    let timeout = if executes { state.0.config.limits.call_timeout } else { state.0.config.limits.timeout };
    // Operators must see a flooded server: health and metrics are never shed.
    let sheddable = !matches!(route, "/healthz" | "/readyz" | "/metrics");
    // The connection has a request in progress until the response's end.
    let activity = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::connections::Peer>>()
        .map(|peer| crate::connections::Activity::start(&peer.0));
    let permit = if sheddable { state.0.in_flight.clone().try_acquire_owned().map(Some) } else { Ok(None) };
    let mut response = match permit {
        Err(_) => ApiError::overloaded(state.0.config.limits.max_in_flight).into_response(),
        Ok(permit) => match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(mut response) if is_stream(&response) => {
                let held = response.extensions_mut().remove::<Held>();
                hold_until_the_end(response, (permit, held, activity), state.0.config.limits.stream)
            }
            Ok(mut response) => {
                response.extensions_mut().remove::<Held>();
                response
            }
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} ms; nothing was acknowledged", timeout.as_millis()),
            )
            .into_response(),
        },
    };
    if let Ok(value) = HeaderValue::from_str(&context.header()) {
        response.headers_mut().insert("traceparent", value);
    }
    let took = started.elapsed();
    let status = response.status().as_u16();
    state.metrics().request(&method, route, status, took);
    tracing::info!(
        target: "caio::http",
        method = %method,
        route,
        status,
        micros = took.as_micros() as u64,
        trace_id = %context.trace_id,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_strictly_and_propagated_with_a_new_span() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        let propagated = context.header();
        assert!(propagated.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && propagated.ends_with("-01"));
        assert_ne!(&propagated[36..52], "00f067aa0ba902b7", "a span of its own");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        let fresh = TraceContext::fresh();
        assert!(is_hex(&fresh.trace_id, 32) && is_hex(&fresh.span_id, 16));
        assert_ne!(TraceContext::fresh().trace_id, fresh.trace_id);
    }

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/v1/services/ollama"), "/v1/services/{id}");
        assert_eq!(route_label("/v1/traces/17"), "/v1/traces/{seq}");
        assert_eq!(route_label("/v1/traces/verify"), "/v1/traces/verify");
        assert_eq!(route_label("/wp-admin"), "other");
        for executed in EXECUTED {
            assert_eq!(route_label(executed), executed, "an executing route is an operation of the API");
        }
    }
}
