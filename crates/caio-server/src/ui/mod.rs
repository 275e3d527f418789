//! The operator's dashboard at `/ui`: the registry with each service's
//! contract, breaker and recent calls; the latest decisions with "why this
//! service, why not the others" drawn from their recorded proofs; the trace
//! chain's verification; and the scorecard the running build was compiled
//! with. Server-rendered HTML (askama), one stylesheet served by caio
//! itself, no script, and a content security policy that lets the browser
//! fetch nothing from anywhere else.
//!
//! Viewing needs the viewer, audit or admin permission; registering a
//! contract needs the admin one and goes through the same parsing and store
//! as `POST /v1/services`, with the contract's field path shown beside the
//! form. This module must never decide a route or show a token.

mod pages;
pub mod scorecard;
mod session;
pub mod sparkline;
mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// Headers of every dashboard response: nothing may be loaded from another
/// origin, framed or cached, and no referrer leaves for another site (same-origin: a
/// browser then names this origin when it posts a form, which the form
/// handlers check).
async fn guard(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The dashboard's routes, to merge into the application.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/scorecard", get(pages::scorecard))
        .route("/ui/services", post(pages::register))
        .route("/ui/services/new", get(pages::new_service))
        .route("/ui/services/{id}", get(pages::service))
        .route("/ui/decisions/{seq}", get(pages::decision))
        .route("/ui/assets/caio.css", get(pages::stylesheet))
        .layer(middleware::map_response(guard))
}
