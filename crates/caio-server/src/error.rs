//! The one error shape of the API, OpenAI's: `{"error": {"message", "type",
//! "param", "code"}}` with a stable, machine-readable code and the HTTP
//! status that goes with it. When a service refused a call, its own
//! `code`, `type`, `param` and `message` are the error's (an OpenAI client
//! sees `context_length_exceeded`), and caio's own code, message and
//! attempts are in the `caio` extension.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

/// An API error: its status, stable code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (see `docs/api.md`).
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured details (such as why each service was excluded).
    pub details: Option<serde_json::Value>,
    /// Seconds after which the caller may try again (`Retry-After`).
    pub retry_after: Option<u64>,
    /// What the services said, when services were called (boxed: most
    /// errors carry none, and every result carries the error's size).
    pub services: Option<Box<ServicesSaid>>,
}

/// What the services said of a call that failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicesSaid {
    /// The service's own error object, when a service refused the call.
    pub upstream: Option<serde_json::Value>,
    /// Every attempt.
    pub attempts: Option<serde_json::Value>,
}

/// The body of an error response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error, as the API reports it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// The stable code (a service's own, when it refused the call).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// The kind, as OpenAI names them: `invalid_request_error`,
    /// `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error` (a service's own, when it refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The parameter at fault, when known.
    pub param: Option<serde_json::Value>,
    /// Structured details, for some codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// caio's own code, message and attempts, when services were called.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub caio: Option<serde_json::Value>,
}

/// OpenAI's name for the kind of an error with this status.
fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, retry_after: None, services: None }
    }
    /// The same, from a service's refusal: `error` is the service's error
    /// object (`{"message", "type", "param", "code"}`), whose fields the
    /// caller sees.
    pub fn with_upstream(mut self, error: serde_json::Value) -> ApiError {
        self.services.get_or_insert_default().upstream = Some(error);
        self
    }
    /// The same, with the attempts made.
    pub fn with_attempts(mut self, attempts: serde_json::Value) -> ApiError {
        self.services.get_or_insert_default().attempts = Some(attempts);
        self
    }
    /// The same, with structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
    /// 400 `invalid_request`: the body or a parameter is invalid.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    /// 403 `forbidden`: authenticated, without the permission.
    pub fn forbidden(permission: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the permission `{permission}` in the caller's token"),
        )
    }
    /// 429 `rate_limited`, with the seconds to wait.
    pub fn rate_limited(wait_seconds: f64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this caller; retry in {wait_seconds:.2} s"),
        );
        error.retry_after = Some(wait_seconds.ceil().clamp(1.0, 86_400.0) as u64);
        error
    }
    /// 503 `overloaded`: every slot for requests in flight is taken.
    pub fn overloaded(slots: usize) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("the server is serving {slots} requests already (`limits.max_in_flight`); retry shortly"),
        );
        error.retry_after = Some(1);
        error
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 500 `store_error`: the store failed; nothing was acknowledged.
    pub fn store(error: caio_store::StoreError) -> ApiError {
        match error {
            caio_store::StoreError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_contract", error.to_string())
            }
            caio_store::StoreError::Duplicate { .. } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_version", error.to_string())
            }
            caio_store::StoreError::UnknownService(_) | caio_store::StoreError::NoProof(_) => {
                ApiError::not_found(error.to_string())
            }
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", other.to_string()),
        }
    }
    /// 500 `internal`: a bug; the message says what failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let said = self.services.as_deref();
        let upstream = said.and_then(|s| s.upstream.as_ref()).and_then(|u| u.as_object());
        let text = |field: &str| match upstream.and_then(|u| u.get(field)) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let caio = said.map(|said| {
            let mut caio = serde_json::json!({"code": self.code, "message": self.message});
            if let Some(attempts) = &said.attempts {
                caio["attempts"] = attempts.clone();
            }
            caio
        });
        let body = ErrorBody {
            error: ErrorDetail {
                code: text("code").unwrap_or_else(|| self.code.to_string()),
                kind: text("type").unwrap_or_else(|| kind_of(self.status).to_string()),
                param: Some(upstream.and_then(|u| u.get("param")).cloned().unwrap_or(serde_json::Value::Null)),
                message: text("message").unwrap_or_else(|| self.message.clone()),
                details: self.details,
                caio,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
