//! # caio-store
//!
//! Where caio keeps what must outlive a process: the registry (every version
//! of every contract, and deprecations) and the hash-chained trace log of
//! decisions. [`Store`] is the boundary the router uses; [`SqliteStore`] is
//! the embedded backend (one SQLite file in WAL mode) and [`PostgresStore`]
//! the shared one, for several replicas on one registry and one log.
//! [`open`] picks the backend from where the store is: a
//! `postgres://` URL or a file.
//!
//! The chain is the calculus's (`caio_calculus::trace`): the store links each
//! decision's trace body to the head of the log and never rewrites a trace.
//! An append is durable on disk before [`Pending`] resolves: callers answer
//! their clients only after that. Appends that arrive together share one
//! transaction and one disk sync (group commit), so durability does not cap
//! throughput.
//!
//! This crate must never decide anything: validation and routing are the
//! calculus's, and the store only records them.

mod chain;
pub mod checkpoint;
mod error;
pub mod migrations;
mod postgres;
mod records;
pub mod registry_log;
mod sqlite;
pub mod tiles;
mod tree;
mod writer;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use caio_calculus::contract::Contract;
use caio_calculus::registry::{Registry, RegistryError};
use caio_calculus::trace::{Body, Trace};
use serde::Serialize;

pub use error::StoreError;
pub use postgres::{PostgresOptions, PostgresStore, is_postgres_url, redact};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use tree::{ConsistencyProof, InclusionProof, TreeHead};

/// One registered version of a contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRecord {
    /// Its semantic version.
    pub version: String,
    /// Hex SHA-256 of the contract's canonical form.
    pub digest: String,
    /// When it was registered, seconds since the epoch.
    pub registered_at: u64,
    /// The contract.
    pub contract: Contract,
}

/// A service: every registered version, oldest first, and whether it is
/// deprecated (withdrawn from routing, its history kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRecord {
    /// The service id.
    pub id: String,
    /// Every version, in semantic-version order.
    pub versions: Vec<VersionRecord>,
    /// When it was deprecated, if it is.
    pub deprecated_at: Option<u64>,
}

impl ServiceRecord {
    /// The version routing uses: the highest one.
    pub fn active(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }
}

/// What a verification of (part of) the trace log found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Sequence number of the first trace checked.
    pub first: Option<u64>,
    /// Sequence number of the last trace checked.
    pub last: Option<u64>,
    /// How many traces were checked.
    pub checked: u64,
    /// Whether the check reached the head of the log and found it to be the
    /// head the store recorded (so nothing was cut off the end).
    pub anchored: bool,
    /// The hash of the newest trace of the log.
    pub head: Option<String>,
    /// When the check started at the log's first entry: the root of the
    /// Merkle tree of the entries checked, recomputed from them (hex).
    pub tree_root: Option<String>,
    /// Stored checkpoints whose root the recomputed tree matched.
    pub checkpoints: u64,
    /// Registry changes replayed (from the first entry only).
    pub registry_changes: u64,
}

/// A signed checkpoint the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCheckpoint {
    /// Entries in the tree it signs.
    pub size: u64,
    /// The tree's root, hex.
    pub root: String,
    /// The signed note (C2SP signed-note), as served to auditors.
    pub note: String,
    /// When it was signed, seconds since the epoch.
    pub signed_at: u64,
}

/// An append on its way to disk: resolves to the linked trace once it is
/// durable. Await it in async code, or [`Pending::wait`] for it outside an
/// async runtime.
#[derive(Debug)]
pub struct Pending(tokio::sync::oneshot::Receiver<Result<Trace, StoreError>>);

impl Pending {
    /// A pending append that already has its outcome.
    pub fn ready(outcome: Result<Trace, StoreError>) -> Pending {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let _ = sender.send(outcome);
        Pending(receiver)
    }
    /// Blocks until the append is durable. Must not be called from inside an
    /// async runtime (await the `Pending` there).
    pub fn wait(self) -> Result<Trace, StoreError> {
        self.0.blocking_recv().unwrap_or(Err(StoreError::Closed))
    }
}

impl Future for Pending {
    type Output = Result<Trace, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|outcome| outcome.unwrap_or(Err(StoreError::Closed)))
    }
}

/// The registry and the trace log, as the router sees them. Every method is
/// safe to call from several threads; writes are serialized by the store.
pub trait Store: Send + Sync + 'static {
    /// Registers a new version of a contract (validated by the calculus first,
    /// so a store holds only contracts the calculus accepts); a deprecated
    /// service becomes active again. Registering an `id@version` twice is
    /// [`StoreError::Duplicate`].
    /// The registration is an entry of the log too, naming `by` (the
    /// administrator) and the contract's digest.
    fn register(&self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError>;
    /// Withdraws a service from routing; its versions stay. The
    /// deprecation is an entry of the log, naming `by`.
    fn deprecate(&self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError>;
    /// Every service, in id order.
    fn services(&self) -> Result<Vec<ServiceRecord>, StoreError>;
    /// One service.
    fn service(&self, id: &str) -> Result<Option<ServiceRecord>, StoreError>;
    /// Links a decision's trace body to the head of the log and writes it.
    fn append(&self, body: Body) -> Pending;
    /// The trace with this sequence number.
    fn trace(&self, seq: u64) -> Result<Option<Trace>, StoreError>;
    /// The newest trace.
    fn head(&self) -> Result<Option<Trace>, StoreError>;
    /// Verifies the traces whose sequence numbers are in `from..=to` (the
    /// whole log when both are `None`): every hash recomputes and every link
    /// holds; from the start, the log begins at GENESIS; to the end, it ends
    /// at the recorded head.
    fn verify(&self, from: Option<u64>, to: Option<u64>) -> Result<ChainReport, StoreError> {
        self.verify_with(from, to, Vec::new())
    }
    /// [`Store::verify`], checking the whole log's tree also against
    /// checkpoints from elsewhere (size, root), as a signed checkpoint an
    /// auditor holds.
    fn verify_with(
        &self,
        from: Option<u64>,
        to: Option<u64>,
        checkpoints: Vec<(u64, caio_calculus::merkle::Hash)>,
    ) -> Result<ChainReport, StoreError>;
    /// The size and root of the log's Merkle tree now.
    fn tree_head(&self) -> Result<TreeHead, StoreError>;
    /// The proof that entry `seq` is in the tree of the first `size`
    /// entries.
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<InclusionProof, StoreError>;
    /// The proof that the tree of `from` entries is an earlier state of the
    /// tree of `to` entries.
    fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof, StoreError>;
    /// Appends the entry of the configuration a server starts with, and
    /// keeps `texts` (the policy's and the key configuration's) by their
    /// digest, in one transaction.
    fn record_config(&self, change: registry_log::ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError>;
    /// A kept text by its digest.
    fn text(&self, digest: &str) -> Result<Option<String>, StoreError>;
    /// The roots of the perfect subtrees `lo..hi` of `height` (subtree `i`
    /// holds entries `i·2^height` to `(i+1)·2^height - 1`), all within the log.
    fn tree_nodes(&self, height: u32, lo: u64, hi: u64) -> Result<Vec<caio_calculus::merkle::Hash>, StoreError>;
    /// Keeps a signed checkpoint of the tree at `head` (its note signs that
    /// size and root), signed at `signed_at`; a second one of the same size
    /// is ignored.
    fn save_checkpoint(&self, head: TreeHead, note: String, signed_at: u64) -> Result<(), StoreError>;
    /// The checkpoint of this size, or the latest when `size` is `None`.
    fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Where the store is, for messages and logs (never with a password).
    fn location(&self) -> String;
    /// A number that changes whenever the registry changes, by any process
    /// that writes the store: replicas read it to know when to take a new
    /// routing snapshot. A store only one process writes keeps it at 0.
    fn registry_generation(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The registry routing uses: every version of every service that is not
    /// deprecated.
    fn registry(&self) -> Result<Registry, StoreError> {
        let mut registry = Registry::new();
        for service in self.services()? {
            if service.deprecated_at.is_some() {
                continue;
            }
            for version in service.versions {
                registry.register(version.contract).map_err(|e| match e {
                    RegistryError::Invalid { service, path, message } => StoreError::Corrupt(format!(
                        "stored contract `{service}` no longer validates at {path}: {message}"
                    )),
                    other => StoreError::Corrupt(other.to_string()),
                })?;
            }
        }
        Ok(registry)
    }
}

/// Opens the store at `location`: PostgreSQL for a `postgres://` or
/// `postgresql://` URL, else the SQLite file at that path.
pub fn open(location: &str) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres_url(location) {
        Ok(Box::new(PostgresStore::open(location)?))
    } else {
        Ok(Box::new(SqliteStore::open(location)?))
    }
}
