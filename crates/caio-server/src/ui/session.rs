//! Who is looking at the dashboard: the bearer token a person pasted into
//! the sign-in form, kept in an `HttpOnly`, `SameSite=Strict` cookie scoped
//! to `/ui`, and verified on every page with the same authentication as the
//! API. Viewing needs the viewer, audit or admin permission; changing the
//! registry needs the admin one.
//!
//! This module must never accept a token from anywhere but the cookie or
//! the sign-in form, and never put a token in a page or a URL.

use axum::http::{HeaderMap, HeaderValue, header};
use caio_calculus::security::Caller;

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "caio_ui";

/// A signed-in person.
pub struct Viewer {
    /// Who (the token's subject).
    pub subject: String,
    /// Whether they may change the registry.
    pub admin: bool,
}

/// The token in the dashboard's cookie, if there is one.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

/// Authenticates `token` (as the API does, rate limit included) and checks
/// that it may view the dashboard.
pub async fn viewer(state: &AppState, token: &str) -> Result<(Viewer, Caller), ApiError> {
    let config = &state.0.config;
    let caller = crate::auth::caller(state, Some(token)).await?;
    let permissions = &caller.claims.permissions;
    let admin = permissions.contains(&config.admin_permission);
    let may_view =
        admin || permissions.contains(&config.audit_permission) || permissions.contains(&config.viewer_permission);
    if !may_view {
        return Err(ApiError::forbidden(&config.viewer_permission));
    }
    Ok((Viewer { subject: caller.claims.sub.clone(), admin }, caller))
}

/// The `Set-Cookie` value that keeps `token` until it expires at `exp`.
pub fn keep(token: &str, now: u64, exp: u64) -> HeaderValue {
    let max_age = exp.saturating_sub(now);
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}"))
        .unwrap_or_else(|_| forget())
}

/// The `Set-Cookie` value that signs out.
pub fn forget() -> HeaderValue {
    HeaderValue::from_static("caio_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Refuses a form posted from another site: the cookie is `SameSite=Strict`
/// already, and a browser's `Origin` must name this host too.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host == host {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross_origin",
            format!("a form from `{origin}` may not change this caio; use the dashboard at http://{host}/ui"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; caio_ui=tok.en.x; b=2"));
        assert_eq!(token(&headers).as_deref(), Some("tok.en.x"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("caio_ui="));
        assert_eq!(token(&empty), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn forms_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(same_origin(&headers).unwrap_err().code, "cross_origin");
    }

    #[test]
    fn the_cookie_lives_as_long_as_the_token() {
        let value = keep("t", 100, 160);
        assert_eq!(value.to_str().unwrap(), "caio_ui=t; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60");
        assert!(forget().to_str().unwrap().contains("Max-Age=0"));
    }
}
