//! Who is calling: the bearer token of the `Authorization` header, verified
//! with the calculus's own authentication (the same keys, issuer, audience
//! and clock rules as routing), then the caller's rate limit.

use axum::http::HeaderMap;
use caio_calculus::security::{AuthError, Caller, authenticate};

use crate::error::ApiError;
use crate::state::AppState;

/// The token of `Authorization: Bearer <token>`, if the header is there.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")),
    }
}

/// Why a token does not authenticate, as the API says it.
pub fn refused(error: &AuthError) -> ApiError {
    ApiError::unauthenticated(format!("the token does not authenticate: {error}"))
}

/// Authenticates the caller of `token` now and takes one request from its
/// rate limit.
pub async fn caller(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(|| ApiError::unauthenticated("send a token: `Authorization: Bearer <token>`"))?;
    let caller = authenticate(token, &state.0.config.route.auth, state.now()).map_err(|e| refused(&e))?;
    state.0.rate.take(&caller.claims.sub).await.map_err(ApiError::rate_limited)?;
    Ok(caller)
}

/// The caller, who must hold one of `permissions` (the first is the one
/// an error names).
pub async fn with_permission(state: &AppState, headers: &HeaderMap, permissions: &[&str]) -> Result<Caller, ApiError> {
    let caller = caller(state, bearer(headers)?.as_deref()).await?;
    if permissions.iter().any(|p| caller.claims.permissions.contains(*p)) {
        Ok(caller)
    } else {
        Err(ApiError::forbidden(permissions.first().copied().unwrap_or_default()))
    }
}
