//! The writer thread every backend has: one thread owns the connection
//! that writes, commands reach it over a channel, and appends that queued
//! up while a transaction committed go to disk together (group commit: one
//! transaction for the group, each caller answered only after the commit).
//! Registrations and deprecations go between groups, in arrival order.
//!
//! Backends differ only in how a group, a registration and a deprecation
//! are written ([`Engine`]).

use std::sync::Mutex;
use std::sync::mpsc;

use caio_calculus::contract::Contract;
use caio_calculus::trace::{Body, Trace};

use crate::registry_log::ConfigChange;
use crate::{Pending, ServiceRecord, StoreError, TreeHead};

type Reply<T> = mpsc::Sender<Result<T, StoreError>>;

/// What the writer is asked to do.
pub(crate) enum Command {
    Append(Queued),
    Register { contract: Box<Contract>, at: u64, by: String, reply: Reply<ServiceRecord> },
    Deprecate { id: String, at: u64, by: String, reply: Reply<ServiceRecord> },
    SaveCheckpoint { head: TreeHead, note: String, signed_at: u64, reply: Reply<()> },
    RecordConfig { change: ConfigChange, texts: Vec<String>, reply: Reply<Trace> },
}

/// An append waiting for the writer: the body (already canonical text,
/// so the writer only hashes and writes it) and the caller to answer.
pub(crate) struct Queued {
    body: Body,
    reply: tokio::sync::oneshot::Sender<Result<Trace, StoreError>>,
}

/// How one engine writes.
pub(crate) trait Engine {
    /// Links the bodies to the head of the log and commits them in one
    /// transaction.
    fn write(&mut self, work: Vec<Body>) -> Result<Vec<Trace>, StoreError>;
    /// Registers a version, with its entry in the log.
    fn register(&mut self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError>;
    /// Deprecates a service, with its entry in the log.
    fn deprecate(&mut self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError>;
    /// Keeps a signed checkpoint.
    fn save_checkpoint(&mut self, head: TreeHead, note: &str, signed_at: u64) -> Result<(), StoreError>;
    /// Keeps the texts and appends the configuration's entry.
    fn record_config(&mut self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError>;
}

/// Serves `commands` until every sender is gone.
pub(crate) fn run(engine: &mut impl Engine, commands: mpsc::Receiver<Command>, max_batch: usize) {
    while let Ok(first) = commands.recv() {
        let mut appends: Vec<Queued> = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(queued) => appends.push(queued),
                Command::Register { contract, at, by, reply } => {
                    flush(engine, &mut appends);
                    let _ = reply.send(engine.register(*contract, at, &by));
                }
                Command::Deprecate { id, at, by, reply } => {
                    flush(engine, &mut appends);
                    let _ = reply.send(engine.deprecate(&id, at, &by));
                }
                Command::SaveCheckpoint { head, note, signed_at, reply } => {
                    flush(engine, &mut appends);
                    let _ = reply.send(engine.save_checkpoint(head, &note, signed_at));
                }
                Command::RecordConfig { change, texts, reply } => {
                    flush(engine, &mut appends);
                    let _ = reply.send(engine.record_config(change, texts));
                }
            }
            if appends.len() < max_batch {
                next = commands.try_recv().ok();
            }
        }
        flush(engine, &mut appends);
    }
}

/// Commits the queued appends in one transaction, then answers them.
fn flush(engine: &mut impl Engine, appends: &mut Vec<Queued>) {
    if appends.is_empty() {
        return;
    }
    let (replies, work): (Vec<_>, Vec<_>) = appends.drain(..).map(|q| (q.reply, q.body)).unzip();
    match engine.write(work) {
        Ok(linked) => {
            for (reply, trace) in replies.into_iter().zip(linked) {
                let _ = reply.send(Ok(trace));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The callers' end of the channel; closed once, after which every write
/// is [`StoreError::Closed`].
pub(crate) struct Handle(Mutex<Option<mpsc::Sender<Command>>>);

impl Handle {
    pub(crate) fn new(sender: mpsc::Sender<Command>) -> Handle {
        Handle(Mutex::new(Some(sender)))
    }

    /// Lets the writer finish what is queued and stop.
    pub(crate) fn close(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sender.as_ref().ok_or(StoreError::Closed)?.send(command).map_err(|_| StoreError::Closed)
    }

    fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, outcome) = mpsc::channel();
        self.send(make(reply))?;
        outcome.recv().unwrap_or(Err(StoreError::Closed))
    }

    pub(crate) fn register(&self, contract: Contract, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.request(|reply| Command::Register { contract: Box::new(contract), at, by: by.to_string(), reply })
    }

    pub(crate) fn deprecate(&self, id: &str, at: u64, by: &str) -> Result<ServiceRecord, StoreError> {
        self.request(|reply| Command::Deprecate { id: id.to_string(), at, by: by.to_string(), reply })
    }

    pub(crate) fn record_config(&self, change: ConfigChange, texts: Vec<String>) -> Result<Trace, StoreError> {
        self.request(|reply| Command::RecordConfig { change, texts, reply })
    }

    pub(crate) fn save_checkpoint(&self, head: TreeHead, note: String, signed_at: u64) -> Result<(), StoreError> {
        self.request(|reply| Command::SaveCheckpoint { head, note, signed_at, reply })
    }

    pub(crate) fn append(&self, body: Body) -> Pending {
        let (reply, pending) = tokio::sync::oneshot::channel();
        match self.send(Command::Append(Queued { body, reply })) {
            Ok(()) => Pending(pending),
            Err(e) => Pending::ready(Err(e)),
        }
    }
}
