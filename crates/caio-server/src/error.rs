//! The one error shape of the API: `{"error": {"code": "...", "message": "..."}}`
//! with a stable, machine-readable code and the HTTP status that goes with it.

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
    /// The stable code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured details, for some codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
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
            caio_store::StoreError::UnknownService(_) => ApiError::not_found(error.to_string()),
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
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_string(), message: self.message, details: self.details },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
