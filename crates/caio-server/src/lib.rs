//! # caio-server
//!
//! The caio router as an HTTP service (axum on tokio): routes requests with
//! the generated calculus, keeps the registry and the trace log in a
//! [`caio_store::Store`], and guards them with JWT authentication, admin
//! and audit permissions, body and rate limits, timeouts, metrics and
//! W3C trace context. [`app`] builds the routes from a state, so tests drive
//! it in-process or over a real socket; [`serve`] runs it until shutdown,
//! draining requests in flight.
//!
//! This crate is the imperative shell: it must never decide a route itself
//! (the calculus does), and it sends nothing anywhere but its answers.

pub mod api;
pub mod auth;
pub mod budget;
pub mod checkpoints;
pub mod connections;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod state;
pub mod telemetry;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};

pub use error::ApiError;
pub use state::{AppState, Clock, Limits, ServerConfig, StartError, system_clock};

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at GET /openapi.json")
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// The application: every endpoint, with its middleware.
pub fn app(state: AppState) -> Router {
    let body_limit = state.0.config.limits.body_bytes;
    Router::new()
        .route("/v1/route", post(api::route::route))
        .route("/v1/chat/completions", post(api::execute::chat_completions))
        .route("/v1/embeddings", post(api::execute::embeddings))
        .route("/v1/rerank", post(api::execute::rerank))
        .route("/v1/images/generations", post(api::execute::images))
        .route("/v1/audio/speech", post(api::execute::speech))
        .route("/v1/audio/transcriptions", post(api::execute::transcriptions))
        .route("/v1/audio/translations", post(api::execute::translations))
        .route("/v1/orchestrate", post(api::execute::orchestrate))
        .route("/v1/services", get(api::services::list).post(api::services::register))
        .route("/v1/services/{id}", get(api::services::show).delete(api::services::deprecate))
        .route("/v1/traces/verify", get(api::traces::verify))
        .route("/v1/traces/{seq}", get(api::traces::show))
        .route("/v1/traces/{seq}/proof", get(api::transparency::inclusion))
        .route("/v1/checkpoint", get(api::transparency::checkpoint))
        .route("/v1/checkpoints/consistency", get(api::transparency::consistency))
        .route("/healthz", get(api::health::healthz))
        .route("/readyz", get(api::health::readyz))
        .route("/metrics", get(api::health::metrics))
        .route("/openapi.json", get(openapi))
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see GET /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), telemetry::observe))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` completes, then
/// stops accepting, closes the connections with no request in progress and
/// waits for the requests in flight, at most `limits.drain_ms`. Connections
/// are bounded ([`connections`]). Beside it run the exchange of the shared
/// state (with `[shared]`) and the watch for registry changes other
/// replicas make.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = state.0.connections.clone();
    let listener = connections::Listener::new(listener, registry.clone());
    let drain = state.0.config.limits.drain;
    let draining = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let (registry, draining) = (registry.clone(), draining.clone());
        async move {
            shutdown.await;
            tracing::info!(target: "caio", open = registry.open(), "shutting down: closing idle connections, draining requests");
            registry.shut_down();
            draining.notify_one();
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(());
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
        let _ = stopped.changed().await;
    };
    if let Some(shared) = state.shared().cloned() {
        let gateway = state.gateway().clone();
        let stopped = until_stopped(stopped.clone());
        tokio::spawn(async move { shared.run(gateway.breakers(), stopped).await });
    }
    tokio::spawn(follow_registry(state.clone(), until_stopped(stopped.clone())));
    if state.0.config.checkpoints.is_some() {
        tokio::spawn(checkpoints::run(state.clone(), until_stopped(stopped)));
    }
    let read_buffer = registry.limits().read_buffer;
    let served = http::serve(listener, app(state), read_buffer, shutdown);
    let bounded = async {
        draining.notified().await;
        tokio::time::sleep(drain).await;
    };
    let outcome = tokio::select! {
        () = served => Ok(()),
        () = bounded => {
            tracing::warn!(target: "caio", open = registry.open(), drain_ms = drain.as_millis() as u64, "the drain time is up: stopping with requests still in flight");
            Ok(())
        }
    };
    drop(stop);
    outcome
}

/// Asks the store every `registry_poll` whether the registry changed (on
/// another replica) and takes a new routing snapshot when it did.
async fn follow_registry(state: AppState, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(state.0.config.registry_poll) => {}
            _ = &mut stop => return,
        }
        let watched = state.clone();
        match tokio::task::spawn_blocking(move || watched.follow_registry()).await {
            Ok(Ok(true)) => tracing::info!(target: "caio", "the registry changed: new routing snapshot"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(target: "caio", error = %e, "cannot tell whether the registry changed"),
            Err(e) => tracing::warn!(target: "caio", error = %e, "the registry watch failed"),
        }
    }
}
