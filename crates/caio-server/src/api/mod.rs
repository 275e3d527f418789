//! The handlers, one module per resource.

pub mod execute;
pub mod health;
pub mod plan;
pub mod route;
pub mod services;
pub mod traces;
pub mod transparency;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;

use crate::auth;
use crate::budget::Held;
use crate::error::ApiError;
use crate::state::AppState;

/// A call let in: its caller authenticated from the bearer token (and its
/// rate limit taken), counted in its slots, then its body read within the
/// budget of bodies in flight, in that order: nobody unauthenticated makes
/// the server read a byte of a body.
pub(crate) struct Admitted {
    /// The bearer token.
    pub bearer: String,
    /// The body.
    pub body: Bytes,
    /// The caller's slot and the body's reservation, for the response.
    pub held: Held,
}

/// Lets a caller in, then reads at most `limit` bytes of its body.
pub(crate) async fn admit(state: &AppState, headers: &HeaderMap, body: Body, limit: usize) -> Result<Admitted, ApiError> {
    let bearer = auth::bearer(headers)?
        .ok_or_else(|| ApiError::unauthenticated("send a token: `Authorization: Bearer <token>`"))?;
    let caller = auth::caller(state, Some(&bearer)).await?;
    let limits = &state.0.config.limits;
    let slot = state.0.callers.enter(&caller.claims.sub, limits.caller_in_flight)?;
    let (body, reserved) = state.0.bodies.read(headers, body, limit, limits.timeout).await?;
    Ok(Admitted { bearer, body, held: Held::new((slot, reserved)) })
}

/// A body of a call that may carry its token in the body (a routing
/// request's `token`): with a bearer token the caller is let in first
/// ([`admit`]); without one the body is read within the budget and its token
/// verified once it is parsed. Returns the bearer token, the body, what the
/// response holds, and whether the caller was let in already.
pub(crate) async fn admit_or_read(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Option<String>, Bytes, Held, bool), ApiError> {
    match auth::bearer(headers)? {
        Some(_) => {
            let admitted = admit(state, headers, body, state.0.config.limits.body_bytes).await?;
            Ok((Some(admitted.bearer), admitted.body, admitted.held, true))
        }
        None => {
            let (body, held) = read_unauthenticated(state, headers, body).await?;
            Ok((None, body, held, false))
        }
    }
}

/// A body read within the budget of bodies in flight, for the calls whose
/// caller is known only from the body (a routing request's `token`).
pub(crate) async fn read_unauthenticated(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Held), ApiError> {
    let limits = &state.0.config.limits;
    let (body, reserved) = state.0.bodies.read(headers, body, limits.body_bytes, limits.timeout).await?;
    Ok((body, Held::new(reserved)))
}

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

/// Query parameters that do not parse.
pub(crate) fn query_error(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::invalid(format!("the query parameters: {}", rejection.body_text()))
}

/// The body as text.
pub(crate) fn text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| ApiError::invalid(format!("the body is not UTF-8 text: {e}")))
}
