//! The audit trail: `GET /v1/traces/{seq}` and `GET /v1/traces/verify`,
//! for callers with the audit (or admin) permission.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use caio_store::{ChainReport, StoreError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{blocking, query_error};
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// A trace of the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TraceView {
    /// Its sequence number.
    pub seq: u64,
    /// The hash of the trace before it (`GENESIS` for the first).
    pub prev_hash: String,
    /// SHA-256 over the sequence number, `prev_hash` and the canonical body.
    pub hash: String,
    /// The decision.
    pub body: serde_json::Value,
}

/// Which traces to verify.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct VerifyQuery {
    /// First sequence number (default: the start of the log).
    pub from: Option<u64>,
    /// Last sequence number (default: the head).
    pub to: Option<u64>,
}

/// What a verification found, for the API.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyReport {
    /// Whether every checked link holds.
    pub valid: bool,
    /// The first trace checked.
    pub first: Option<u64>,
    /// The last trace checked.
    pub last: Option<u64>,
    /// How many were checked.
    pub checked: u64,
    /// Whether the check reached the recorded head.
    pub anchored: bool,
    /// The head of the log.
    pub head: Option<String>,
    /// From the log's start: the Merkle tree's root recomputed from the
    /// entries (hex).
    pub tree_root: Option<String>,
    /// Stored checkpoints the recomputed tree matched.
    pub checkpoints: u64,
    /// Registry changes replayed against the stored registry.
    pub registry_changes: u64,
}

async fn auditor(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = &state.0.config;
    auth::with_permission(state, headers, &[&config.audit_permission, &config.admin_permission]).await.map(|_| ())
}

/// One trace.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Json<TraceView>, ApiError> {
    auditor(&state, &headers).await?;
    let seq: u64 =
        seq.parse().map_err(|_| ApiError::invalid("a trace is named by its sequence number, such as /v1/traces/42"))?;
    let trace = blocking(&state, "trace", move |store| store.trace(seq)).await?;
    let trace = trace.ok_or_else(|| ApiError::not_found(format!("no trace {seq} in the log")))?;
    Ok(Json(TraceView { seq: trace.seq, prev_hash: trace.prev_hash, hash: trace.hash, body: trace.body.to_value() }))
}

/// Verifies the chain, or a range of it.
pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    range: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Json<VerifyReport>, ApiError> {
    let Query(range) = range.map_err(query_error)?;
    auditor(&state, &headers).await?;
    if let (Some(from), Some(to)) = (range.from, range.to)
        && from > to
    {
        return Err(ApiError::invalid(format!("`from` ({from}) is after `to` ({to})")));
    }
    let outcome = {
        let store = state.store().clone();
        tokio::task::spawn_blocking(move || store.verify(range.from, range.to))
            .await
            .map_err(|e| ApiError::internal(format!("verification did not finish: {e}")))?
    };
    match outcome {
        Ok(ChainReport { first, last, checked, anchored, head, tree_root, checkpoints, registry_changes }) => {
            Ok(Json(VerifyReport {
                valid: true,
                first,
                last,
                checked,
                anchored,
                head,
                tree_root,
                checkpoints,
                registry_changes,
            }))
        }
        Err(StoreError::Broken(link)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "chain_broken", format!("the trace log does not verify: {link}"))
                .with_details(serde_json::json!({"seq": link.seq, "reason": link.reason})))
        }
        Err(tampered @ (StoreError::Corrupt(_) | StoreError::Contradicted { .. })) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "chain_broken",
            format!("the trace log does not verify: {tampered}"),
        )),
        Err(other) => Err(ApiError::store(other)),
    }
}
