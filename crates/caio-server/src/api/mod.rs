//! The handlers, one module per resource.

pub mod execute;
pub mod health;
pub mod route;
pub mod services;
pub mod traces;

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Runs a blocking store call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    operation: &'static str,
    f: impl FnOnce(&dyn caio_store::Store) -> Result<T, caio_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store().clone();
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError::internal(format!("the store call {operation} did not finish: {e}")))?;
    state.metrics().store(operation, started.elapsed());
    outcome.map_err(ApiError::store)
}

/// A body that could not be read: too large (413), or broken.
pub(crate) fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes; send less or raise `limits.body_bytes`"),
        )
    } else {
        ApiError::invalid(format!("the body could not be read: {rejection}"))
    }
}

/// Query parameters that do not parse.
pub(crate) fn query_error(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::invalid(format!("the query parameters: {}", rejection.body_text()))
}

/// The body as text.
pub(crate) fn text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| ApiError::invalid(format!("the body is not UTF-8 text: {e}")))
}
