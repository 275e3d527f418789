//! The transparency log, for auditors and witnesses: `GET /v1/checkpoint`
//! (the latest signed checkpoint, as a C2SP signed note),
//! `GET /v1/traces/{seq}/proof?size=N` (an inclusion proof) and
//! `GET /v1/checkpoints/consistency?from=N&to=M` (a consistency proof).
//!
//! They carry hashes and the log's size only, never a decision's content,
//! so they need no token, as certificate-transparency logs serve theirs.
//! They never sign anything: checkpoints are made by [`crate::checkpoints`].

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{blocking, query_error};
use crate::error::ApiError;
use crate::state::AppState;

/// The latest signed checkpoint, `text/plain`: origin, size and root, a
/// blank line, the log's signature.
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let latest = blocking(&state, "checkpoint", |store| store.checkpoint(None)).await?;
    let latest = latest.ok_or_else(|| {
        let why = if state.0.config.checkpoints.is_some() {
            "no checkpoint is signed yet: the log is empty or the first one is due"
        } else {
            "this caio signs no checkpoints: give it a log key ([checkpoints] in caio.toml)"
        };
        ApiError::new(axum::http::StatusCode::NOT_FOUND, "no_checkpoint", why)
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], latest.note).into_response())
}

/// Which tree an inclusion proof is for.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// The tree's size (default: the latest checkpoint's, if it includes the
    /// entry, else the log's size now).
    pub size: Option<u64>,
}

/// An inclusion proof (RFC 9162's PATH over caio's log, docs/calculus.md,
/// "Merkle tree"), with the signed checkpoint of that size if there is one.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InclusionView {
    /// The entry's sequence number (its index in the tree).
    pub seq: u64,
    /// The tree's size.
    pub size: u64,
    /// The entry's leaf hash, hex: SHA-256(0x00 || its link hash's bytes).
    pub leaf: String,
    /// The tree's root at that size, hex.
    pub root: String,
    /// The sibling subtrees' roots from the leaf up, hex.
    pub proof: Vec<String>,
    /// The signed checkpoint of the proof's size, if one was signed.
    pub checkpoint: Option<String>,
}

/// A consistency proof (RFC 9162's PROOF).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConsistencyView {
    /// The earlier size.
    pub from: u64,
    /// The later size.
    pub to: u64,
    /// The root at `from`, hex.
    pub from_root: String,
    /// The root at `to`, hex.
    pub to_root: String,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

fn sequence_number(seq: &str) -> Result<u64, ApiError> {
    seq.parse().map_err(|_| ApiError::invalid("a trace is named by its sequence number, such as /v1/traces/42/proof"))
}

/// The proof that entry `seq` is in the tree.
pub async fn inclusion(
    State(state): State<AppState>,
    Path(seq): Path<String>,
    query: Result<Query<ProofQuery>, QueryRejection>,
) -> Result<Json<InclusionView>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let seq = sequence_number(&seq)?;
    let view = blocking(&state, "inclusion proof", move |store| {
        // The latest checkpoint that includes the entry, unless a size is asked.
        let checkpoint = match query.size {
            Some(size) => store.checkpoint(Some(size))?,
            None => store.checkpoint(None)?.filter(|latest| latest.size > seq),
        };
        let size = match (query.size, &checkpoint) {
            (Some(size), _) => size,
            (None, Some(latest)) => latest.size,
            (None, None) => store.tree_head()?.size,
        };
        let proof = store.inclusion_proof(seq, size)?;
        let checkpoint = checkpoint.map(|c| c.note);
        Ok(InclusionView {
            seq: proof.seq,
            size: proof.size,
            leaf: proof.leaf,
            root: proof.root,
            proof: proof.proof,
            checkpoint,
        })
    })
    .await?;
    Ok(Json(view))
}

/// Between which sizes a consistency proof is asked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The earlier size.
    pub from: u64,
    /// The later size.
    pub to: u64,
}

/// The proof that the tree of `from` entries is an earlier state of the
/// tree of `to` entries.
pub async fn consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyView>, ApiError> {
    let Query(ConsistencyQuery { from, to }) = query.map_err(query_error)?;
    if from > to {
        return Err(ApiError::invalid(format!("`from` ({from}) is after `to` ({to})")));
    }
    let proof = blocking(&state, "consistency proof", move |store| store.consistency_proof(from, to)).await?;
    Ok(Json(ConsistencyView {
        from: proof.from,
        to: proof.to,
        from_root: proof.from_root,
        to_root: proof.to_root,
        proof: proof.proof,
    }))
}
