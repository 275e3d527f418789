//! `POST /v1/route`: decides which service serves a request, proves it,
//! and records the trace durably before answering.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use caio_calculus::contract::{Format, quoted};
use caio_calculus::breaker::Availability;
use caio_calculus::proof::{Proof, Reason};
use caio_calculus::request::{Request, parse_request};
use caio_calculus::route::{Decision, RouteError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{admit_or_read, query_error, text};
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Options of a routing call.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RouteQuery {
    /// `full` returns every proof with its evidence; by default, a summary.
    #[serde(default)]
    pub proofs: Option<String>,
}

/// Where the decision's trace is in the log.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TraceRef {
    /// Its sequence number: `GET /v1/traces/{seq}`.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// A service and its score.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Choice {
    /// The service id.
    pub service: String,
    /// Its score.
    pub score: f64,
}

/// A service that was not selected, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Excluded {
    /// The service id.
    pub service: String,
    /// The step that excluded it.
    pub step: String,
    /// Why, for people.
    pub reason: String,
}

/// One proof, without its evidence.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProofSummary {
    /// The step.
    pub step: String,
    /// The property proven.
    pub property: String,
    /// What is claimed.
    pub statement: String,
    /// The verdict.
    pub valid: bool,
}

/// A routing decision, as `POST /v1/route` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RouteResponse {
    /// The request's id.
    pub request_id: String,
    /// The durable trace of the decision.
    pub trace: TraceRef,
    /// The selected service.
    pub selected: Choice,
    /// The other admitted services, best first, for fallback.
    pub alternatives: Vec<Choice>,
    /// Every service not selected, with the step and the reason.
    pub rejected: Vec<Excluded>,
    /// What the selected service guarantees on the requested properties.
    #[schemars(with = "serde_json::Value")]
    pub guarantees: caio_calculus::compose::Composite,
    /// The control vector.
    pub control: [f64; 4],
    /// One proof per step and property for the selected service.
    pub proofs: Vec<ProofSummary>,
    /// The proofs with their evidence, when asked for with `?proofs=full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub evidence: Option<Vec<Proof>>,
}

pub(crate) fn reason_kind(reason: &caio_calculus::proof::Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .unwrap_or_else(|| "other".into())
}

pub(crate) fn refused(state: &AppState, error: RouteError) -> ApiError {
    let metrics = state.metrics();
    match error {
        RouteError::Unauthenticated(e) => {
            metrics.decision("unauthenticated");
            auth::refused(&e)
        }
        RouteError::InvalidRequest { path, message } => {
            metrics.decision("invalid");
            ApiError::invalid(format!("{path}: {message}"))
        }
        RouteError::NoService { rejected } => {
            metrics.decision("no_service");
            for rejection in &rejected {
                metrics.rejection(&rejection.step.to_string(), &reason_kind(&rejection.reason));
            }
            let details: Vec<_> = rejected
                .iter()
                .map(|r| serde_json::json!({"service": r.service, "step": r.step.to_string(), "reason": r.reason.to_string()}))
                .collect();
            // Services that passed every other step and are kept away only by
            // their breakers: a retry later may succeed.
            let now_ms = state.gateway().clock().now_ms();
            let retry_at = rejected
                .iter()
                .filter_map(|r| match &r.reason {
                    Reason::Unavailable { availability: Availability::Open { retry_at_ms, .. } } => Some(*retry_at_ms),
                    Reason::Unavailable { .. } => Some(now_ms),
                    _ => None,
                })
                .min();
            let error = match retry_at {
                Some(at) => {
                    let mut error = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "breakers_open",
                        "every service that qualifies has an open circuit breaker; retry later (`Retry-After`), `details` says why each was excluded",
                    );
                    error.retry_after = Some(at.saturating_sub(now_ms).div_ceil(1000).max(1));
                    error
                }
                None => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no_service",
                    "no service qualifies for this request; `details` says why each was excluded",
                ),
            };
            error.with_details(serde_json::Value::Array(details))
        }
        RouteError::LogFull(e) => {
            metrics.decision("error");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e.to_string())
        }
        other => {
            metrics.decision("unroutable");
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unroutable", other.to_string())
        }
    }
}

pub(crate) fn respond(decision: Decision, trace: TraceRef, full: bool) -> RouteResponse {
    RouteResponse {
        request_id: decision.request_id,
        trace,
        selected: Choice { service: decision.selected.service, score: decision.selected.score },
        alternatives: decision
            .alternatives
            .into_iter()
            .map(|r| Choice { service: r.service, score: r.score })
            .collect(),
        rejected: decision
            .rejected
            .iter()
            .map(|r| Excluded { service: r.service.clone(), step: r.step.to_string(), reason: r.reason.to_string() })
            .collect(),
        guarantees: decision.guarantees,
        control: decision.control,
        proofs: decision
            .proofs
            .iter()
            .map(|p| ProofSummary {
                step: p.step.to_string(),
                property: p.property.clone(),
                statement: p.statement.clone(),
                valid: p.valid,
            })
            .collect(),
        evidence: full.then_some(decision.proofs),
    }
}

/// The longest request id, in characters.
pub(crate) const MAX_REQUEST_ID: usize = 128;

/// Whether `id` may name a request: at most [`MAX_REQUEST_ID`] characters,
/// none of them a control character or a bidirectional formatting one (which
/// would make an id read differently in a log or on the dashboard).
pub(crate) fn check_request_id(id: &str, field: &str) -> Result<(), ApiError> {
    let bidi = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if id.chars().count() > MAX_REQUEST_ID {
        return Err(ApiError::invalid(format!("{field}: a request id has at most {MAX_REQUEST_ID} characters")));
    }
    if id.chars().any(|c| c.is_control() || bidi(c)) {
        return Err(ApiError::invalid(format!(
            "{field}: a request id may not hold control or bidirectional formatting characters"
        )));
    }
    Ok(())
}

/// Authenticates the caller (the body's token or the bearer token, sent
/// once) unless `admitted` says it was before the body was read, routes
/// `request`, and counts the outcome.
pub(crate) async fn decide(
    state: &AppState,
    mut request: Request,
    bearer: Option<String>,
    admitted: bool,
) -> Result<Decision, ApiError> {
    check_request_id(&request.id, "id")?;
    match bearer {
        Some(token) if request.token.is_empty() => request.token = token,
        Some(token) if token != request.token => {
            return Err(ApiError::invalid(
                "the body's `token` and the Authorization header differ; send the token once",
            ));
        }
        _ => {}
    }
    if !admitted {
        let token = (!request.token.is_empty()).then_some(request.token.as_str());
        auth::caller(state, token).await.inspect_err(|e| {
            if e.code == "unauthenticated" {
                state.metrics().decision("unauthenticated");
            }
        })?;
    }
    state.absorb_history();
    let health = state.gateway().health();
    let decision = state.router().route_after(&request, state.now(), &health, None).map_err(|e| refused(state, e))?;
    for rejection in &decision.rejected {
        state.metrics().rejection(&rejection.step.to_string(), &reason_kind(&rejection.reason));
    }
    Ok(decision)
}

/// Routes a request.
pub async fn route(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let full = match query.proofs.as_deref() {
        None | Some("summary") => false,
        Some("full") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("`proofs` must be `full` or `summary`, found `{}`", quoted(other))));
        }
    };
    let (bearer, body, held, admitted) = admit_or_read(&state, &headers, body).await?;
    let request = parse_request(text(&body)?, Format::Json).map_err(|e| {
        state.metrics().decision("invalid");
        ApiError::invalid(format!("the request: {e}")).with_details(serde_json::json!({"path": e.path}))
    })?;
    drop(body);
    let decision = decide(&state, request, bearer, admitted).await?;
    let started = std::time::Instant::now();
    let linked = state.store().append(decision.trace.body.clone()).await.map_err(ApiError::store)?;
    state.metrics().store("append", started.elapsed());
    state.metrics().decision("selected");
    let mut response = Json(respond(decision, TraceRef { seq: linked.seq, hash: linked.hash }, full)).into_response();
    response.extensions_mut().insert(held);
    Ok(response)
}
