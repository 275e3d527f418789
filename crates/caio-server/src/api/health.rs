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
}

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The store answers: the server can take traffic.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let head = blocking(&state, "head", |store| store.head()).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("the store does not answer: {}", e.message))
    })?;
    Ok(Json(Health {
        status: "ready".into(),
        services: state.router().registry().entries().count(),
        head: head.map(|t| t.seq),
    }))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], {
        let mut text = state.metrics().render();
        state.gateway().render_metrics(&mut text);
        text
    })
        .into_response()
}
