//! The registry: `GET/POST /v1/services`, `GET /v1/services/{id}` with its
//! versions, and `DELETE /v1/services/{id}`, which deprecates (the versions
//! stay for the audit trail). Changes need the admin permission and take a
//! new routing snapshot.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use caio_calculus::contract::{Format, parse_contracts, quoted};
use caio_store::ServiceRecord;
use schemars::JsonSchema;
use serde::Serialize;

use crate::api::{blocking, read_unauthenticated, text};
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// A service in the registry listing.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceSummary {
    /// The service id.
    pub id: String,
    /// The version routing uses.
    pub active_version: String,
    /// Every registered version, oldest first.
    pub versions: Vec<String>,
    /// What the active version offers.
    pub capabilities: Vec<String>,
    /// When it was deprecated (then routing does not use it).
    pub deprecated_at: Option<u64>,
}

/// One version of a contract.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionView {
    /// Its version.
    pub version: String,
    /// Hex SHA-256 of its canonical form.
    pub digest: String,
    /// When it was registered.
    pub registered_at: u64,
    /// The contract.
    #[schemars(with = "serde_json::Value")]
    pub contract: caio_calculus::contract::Contract,
}

/// A service with every version.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceView {
    /// The service id.
    pub id: String,
    /// When it was deprecated.
    pub deprecated_at: Option<u64>,
    /// Every version, oldest first; the last is active.
    pub versions: Vec<VersionView>,
    /// Its circuit breaker in this process (`closed` until first used).
    #[schemars(with = "serde_json::Value")]
    pub breaker: caio_gateway::BreakerView,
    /// What this process has observed of its calls since it started.
    #[schemars(with = "serde_json::Value")]
    pub observed: caio_gateway::Totals,
    /// What the score reads now: the same calls, each weighing half as
    /// much every `score.half_life_ms`.
    #[schemars(with = "serde_json::Value")]
    pub weighted: caio_calculus::score::ServiceHistory,
}

fn summary(record: &ServiceRecord) -> ServiceSummary {
    let active = record.active();
    ServiceSummary {
        id: record.id.clone(),
        active_version: active.map(|v| v.version.clone()).unwrap_or_default(),
        versions: record.versions.iter().map(|v| v.version.clone()).collect(),
        capabilities: active.map(|v| v.contract.capabilities.iter().cloned().collect()).unwrap_or_default(),
        deprecated_at: record.deprecated_at,
    }
}

fn view(state: &AppState, record: ServiceRecord) -> ServiceView {
    let gateway = state.gateway();
    ServiceView {
        breaker: gateway.breakers().view(&record.id),
        observed: gateway.observed().of(&record.id).unwrap_or_default(),
        weighted: state.router().history().get(&record.id).copied().unwrap_or_default(),
        id: record.id,
        deprecated_at: record.deprecated_at,
        versions: record
            .versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                digest: v.digest,
                registered_at: v.registered_at,
                contract: v.contract,
            })
            .collect(),
    }
}

/// Lists the services.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    auth::caller(&state, auth::bearer(&headers)?.as_deref()).await?;
    let services = blocking(&state, "services", |store| store.services()).await?;
    Ok(Json(services.iter().map(summary).collect()))
}

/// One service with its versions.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    auth::caller(&state, auth::bearer(&headers)?.as_deref()).await?;
    let lookup = id.clone();
    let record = blocking(&state, "service", move |store| store.service(&lookup)).await?;
    record
        .map(|r| view(&state, r))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no service `{}` is registered", quoted(&id))))
}

/// Registers a new version of a contract, sent as JSON or (with
/// `Content-Type: application/yaml`) YAML.
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ServiceView>), ApiError> {
    // An admin only, known before a byte of the body is read.
    let admin = auth::with_permission(&state, &headers, &[&state.0.config.admin_permission]).await?;
    let (body, _reserved) = read_unauthenticated(&state, &headers, body).await?;
    let yaml = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("yaml"));
    let format = if yaml { Format::Yaml } else { Format::Json };
    let mut contracts = parse_contracts(text(&body)?, format).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_contract", format!("the contract: {e}"))
            .with_details(serde_json::json!({"path": e.path}))
    })?;
    if contracts.len() != 1 {
        return Err(ApiError::invalid(format!("send one contract per request, not {}", contracts.len())));
    }
    let contract = contracts.remove(0);
    if let Some(problem) = state.gateway().endpoint_problem(&contract) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_contract",
            format!("the contract: api.endpoint: {problem}"),
        )
        .with_details(serde_json::json!({"path": "api.endpoint"})));
    }
    let at = state.now();
    let record = blocking(&state, "register", move |store| store.register(contract, at, &admin.claims.sub)).await?;
    refresh(&state).await?;
    Ok((StatusCode::CREATED, Json(view(&state, record))))
}

/// Deprecates a service.
pub async fn deprecate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let admin = auth::with_permission(&state, &headers, &[&state.0.config.admin_permission]).await?;
    let at = state.now();
    let record = blocking(&state, "deprecate", move |store| store.deprecate(&id, at, &admin.claims.sub)).await?;
    refresh(&state).await?;
    Ok(Json(view(&state, record)))
}

pub(crate) async fn refresh(state: &AppState) -> Result<(), ApiError> {
    let refreshed = state.clone();
    tokio::task::spawn_blocking(move || refreshed.refresh())
        .await
        .map_err(|e| ApiError::internal(format!("the routing snapshot was not rebuilt: {e}")))?
        .map_err(ApiError::store)
}
