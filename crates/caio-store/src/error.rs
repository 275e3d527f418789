//! Errors of the store: one type for every backend.

use caio_calculus::merkle::ProofError;
use caio_calculus::trace::BrokenLink;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("the store at {location}: {message}")]
    Database {
        /// The file or URL.
        location: String,
        /// What the engine said.
        message: String,
    },
    /// The contract is not valid.
    #[error("service `{service}`: {path}: {message}")]
    Invalid {
        /// The service id.
        service: String,
        /// The field.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// This version of the service is already registered.
    #[error("service `{service}` version {version} is already registered; publish a new version")]
    Duplicate {
        /// The service id.
        service: String,
        /// The version.
        version: String,
    },
    /// No service has this id.
    #[error("no service `{0}` is registered")]
    UnknownService(String),
    /// The trace log does not verify.
    #[error("the trace log does not verify at entry {}: {}", .0.seq, .0.reason)]
    Broken(BrokenLink),
    /// A registry row is not what the log entry that recorded it says.
    #[error("the registry row of `{service}` version {version} contradicts log entry {entry}: {reason}")]
    Contradicted {
        /// The service.
        service: String,
        /// The version.
        version: String,
        /// The log entry that registered it.
        entry: u64,
        /// What differs.
        reason: String,
    },
    /// No proof can be made for what was asked (an entry or a size beyond
    /// the log).
    #[error("{0}")]
    NoProof(#[from] ProofError),
    /// The stored data cannot be read back as what it should be.
    #[error("the store holds unreadable data: {0}")]
    Corrupt(String),
    /// The log cannot take another trace.
    #[error("the trace log is full at sequence number {0}; start a new log")]
    Full(u64),
    /// The store's writer has stopped (the store was closed).
    #[error("the store is closed")]
    Closed,
}
