//! Liveness, readiness and metrics: `GET /healthz`, `GET /readyz`,
//! `GET /metrics`. None needs a token: they say nothing about callers.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::api::blocking;
use crate::error::ApiError;
use crate::state::AppState;

/// The answer of the health endpoints.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// Active services in the routing snapshot.
    pub services: usize,
    /// Sequence number of the newest trace.
    pub head: Option<u64>,
    /// The state shared with other replicas, when `[shared]` names a Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedView>,
}

/// What readiness shows of the shared state. A replica whose Redis is away
/// stays ready: it serves on its in-memory breakers and rate limits.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SharedView {
    /// `redis`.
    pub backend: String,
    /// Whether breakers and rate limits are shared now (`false`: this
    /// replica's own, in memory, until Redis is back).
    pub connected: bool,
    /// How often this replica fell back to its in-memory state.
    pub fallbacks: u64,
    /// How long ago the breakers were last exchanged, in ms.
    pub last_exchange_ms: Option<u64>,
}

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The store answers: the server can take traffic. The shared state is
/// shown, and does not decide readiness.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let head = blocking(&state, "head", |store| store.head()).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("the store does not answer: {}", e.message))
    })?;
    Ok(Json(Health {
        status: "ready".into(),
        services: state.router().registry().entries().count(),
        head: head.map(|t| t.seq),
        shared: state.shared().map(|shared| {
            let status = shared.status();
            SharedView {
                backend: status.backend.into(),
                connected: status.connected,
                fallbacks: status.fallbacks,
                last_exchange_ms: status.last_exchange_ms,
            }
        }),
    }))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], {
        let mut text = state.metrics().render();
        state.gateway().render_metrics(&mut text);
        if let Some(connections) = state.connections() {
            let (refused, evicted) = connections.turned_away();
            for (name, kind, help, value) in [
                ("caio_connections_open", "gauge", "Client connections open now.", connections.open() as u64),
                (
                    "caio_connections_refused_total",
                    "counter",
                    "Connections closed at once: every slot had a request in progress.",
                    refused,
                ),
                ("caio_connections_evicted_total", "counter", "Idle connections closed to make room for a new one.", evicted),
            ] {
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
            }
        }
        if let Some(shared) = state.shared() {
            let status = shared.status();
            text.push_str(
                "# HELP caio_shared_state_connected Whether breakers and rate limits are shared through Redis now (0: in memory).\n\
                 # TYPE caio_shared_state_connected gauge\n",
            );
            text.push_str(&format!("caio_shared_state_connected {}\n", u8::from(status.connected)));
            text.push_str(
                "# HELP caio_shared_state_fallbacks_total Times this replica fell back to in-memory state.\n\
                 # TYPE caio_shared_state_fallbacks_total counter\n",
            );
            text.push_str(&format!("caio_shared_state_fallbacks_total {}\n", status.fallbacks));
        }
        text
    })
        .into_response()
}
