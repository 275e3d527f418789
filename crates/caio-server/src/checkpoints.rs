//! Signed checkpoints of the log: every `every_entries` new entries, or
//! every `every` when the log grew less, the server signs the tree's size
//! and root with the log's Ed25519 key (C2SP signed-note) and keeps the
//! note in the store, where `GET /v1/checkpoint` serves it to auditors and
//! witnesses.
//!
//! The log key is its own key, never one of the token keys. This module
//! never decides what a checkpoint says: the store's tree does.

use std::future::Future;
use std::time::{Duration, Instant};

use caio_store::StoredCheckpoint;
use caio_store::checkpoint::{Checkpoint, NoteSigner};

use crate::state::AppState;

/// How checkpoints are made.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The log's key; its name is the log's origin.
    pub signer: NoteSigner,
    /// Sign when this many entries were appended since the last checkpoint.
    pub every_entries: u64,
    /// Sign at least this often when the log grew at all.
    pub every: Duration,
    /// How often the log's size is looked at.
    pub poll: Duration,
}

/// Signs a checkpoint of the log as it is now if it grew since the last
/// one and `due(size now, latest checkpoint)` says it is time. Returns the
/// checkpoint kept, if one was made.
pub fn sign_if(
    state: &AppState,
    due: impl FnOnce(u64, Option<&StoredCheckpoint>) -> bool,
) -> Result<Option<StoredCheckpoint>, caio_store::StoreError> {
    let Some(config) = state.0.config.checkpoints.as_ref() else { return Ok(None) };
    let store = state.store();
    let head = store.tree_head()?;
    let latest = store.checkpoint(None)?;
    let grown = head.size > latest.as_ref().map_or(0, |c| c.size);
    if !grown || !due(head.size, latest.as_ref()) {
        return Ok(None);
    }
    let checkpoint = Checkpoint { origin: config.signer.name().to_string(), size: head.size, root: head.root };
    store.save_checkpoint(head, config.signer.sign(&checkpoint), state.now())?;
    store.checkpoint(Some(head.size))
}

/// Signs a checkpoint now if the log grew since the last one.
pub fn sign_now(state: &AppState) -> Result<Option<StoredCheckpoint>, caio_store::StoreError> {
    sign_if(state, |_, _| true)
}

/// Looks at the log every `poll` and signs when `every_entries` entries
/// were appended or `every` passed, until `stop`.
pub async fn run(state: AppState, stop: impl Future<Output = ()>) {
    let Some(config) = state.0.config.checkpoints.clone() else { return };
    let mut stop = std::pin::pin!(stop);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = &mut stop => return,
        }
        let (watched, overdue) = (state.clone(), last.elapsed() >= config.every);
        let every_entries = config.every_entries;
        let signed = tokio::task::spawn_blocking(move || {
            sign_if(&watched, |size, latest| overdue || size - latest.map_or(0, |c| c.size) >= every_entries)
        })
        .await;
        match signed {
            Ok(Ok(Some(checkpoint))) => {
                last = Instant::now();
                tracing::info!(target: "caio", size = checkpoint.size, root = %checkpoint.root, "signed a checkpoint of the log");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(target: "caio", error = %e, "cannot sign a checkpoint of the log"),
            Err(e) => tracing::warn!(target: "caio", error = %e, "the checkpoint task failed"),
        }
    }
}
