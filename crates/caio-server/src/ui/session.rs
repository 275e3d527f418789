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

/// `; Secure` when the dashboard is served over https (its cookie must
/// then never travel in the clear).
fn secure(public_origin: Option<&str>) -> &'static str {
    if public_origin.is_some_and(|o| o.starts_with("https://")) { "; Secure" } else { "" }
}

/// The `Set-Cookie` value that keeps `token` until it expires at `exp`.
pub fn keep(token: &str, now: u64, exp: u64, public_origin: Option<&str>) -> HeaderValue {
    let max_age = exp.saturating_sub(now);
    let secure = secure(public_origin);
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{secure}; Max-Age={max_age}"))
        .unwrap_or_else(|_| forget(public_origin))
}

/// The `Set-Cookie` value that signs out.
pub fn forget(public_origin: Option<&str>) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict{}; Max-Age=0", secure(public_origin)))
        .expect("a fixed cookie is a header value")
}

/// Refuses a form that may come from another site. The cookie is
/// `SameSite=Strict` already; on top, every state-changing form (sign-in,
/// sign-out, registration) must say where it comes from: an `Origin` equal
/// to the dashboard's public origin (scheme, host and port; `server.
/// public_origin`, or `http://` and the request's `Host` when none is set),
/// or, from a browser that sends no `Origin`, `Sec-Fetch-Site: same-origin`.
pub fn same_origin(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = match public_origin {
        Some(origin) => origin.trim_end_matches('/').to_string(),
        None => format!("http://{}", text(header::HOST.as_str()).unwrap_or_default()),
    };
    let refused = |why: String| {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross_origin",
            format!("{why} may not change this caio; use the dashboard at {expected}/ui"),
        ))
    };
    match (text(header::ORIGIN.as_str()), text("sec-fetch-site")) {
        (Some(origin), _) if origin.eq_ignore_ascii_case(&expected) => Ok(()),
        (Some(origin), _) => refused(format!("a form from `{origin}`")),
        (None, Some("same-origin")) => Ok(()),
        (None, _) => refused("a form that does not say where it comes from (no `Origin`)".into()),
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
    fn forms_must_say_they_come_from_the_dashboards_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(same_origin(&headers, None).unwrap_err().code, "cross_origin", "no Origin at all");
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&headers, None).is_ok(), "a browser's own word");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers, None).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://127.0.0.1:8080"));
        assert!(same_origin(&headers, None).is_err(), "another scheme is another origin");
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(same_origin(&headers, None).unwrap_err().code, "cross_origin");
        // Behind a proxy: the configured origin, not a Host the client sends.
        headers.insert(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(same_origin(&headers, Some("https://caio.example.com")).is_err(), "a forged Host does not help");
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://caio.example.com"));
        assert!(same_origin(&headers, Some("https://caio.example.com/")).is_ok());
    }

    #[test]
    fn the_cookie_lives_as_long_as_the_token_and_is_secure_over_https() {
        let value = keep("t", 100, 160, None);
        assert_eq!(value.to_str().unwrap(), "caio_ui=t; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60");
        assert!(forget(None).to_str().unwrap().contains("Max-Age=0"));
        assert!(keep("t", 100, 160, Some("https://caio.example.com")).to_str().unwrap().contains("; Secure;"));
        assert!(forget(Some("https://caio.example.com")).to_str().unwrap().contains("; Secure;"));
    }
}
