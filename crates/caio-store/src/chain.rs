//! The checks of a stored log that do not depend on the engine: the newest
//! link when a store opens, and a streamed verification of a range. Every
//! backend reads its rows and hands them here, so the chain means the same
//! on SQLite and on PostgreSQL.

use caio_calculus::merkle::{Frontier, Hash};
use caio_calculus::trace::{BrokenLink, GENESIS, Trace, hex, verify_chain};

use crate::registry_log::{RegistryState, Replay};
use crate::tree::{TreeHead, leaf};
use crate::{ChainReport, StoreError};

fn broken(index: usize, seq: u64, reason: String) -> StoreError {
    StoreError::Broken(BrokenLink { index, seq, reason })
}

/// Checks the newest link of the log: its hash recomputes, it follows the
/// trace before it (`previous`), and it is the head the store recorded.
pub(crate) fn check_head(
    head: Option<&Trace>,
    previous: Option<Trace>,
    recorded: Option<&str>,
) -> Result<(), StoreError> {
    let Some(head) = head else {
        return match recorded {
            None => Ok(()),
            Some(hash) => {
                Err(broken(0, 0, format!("the log is empty but its recorded head is {hash} (traces were removed)")))
            }
        };
    };
    let window: Vec<Trace> = previous.into_iter().chain([head.clone()]).collect();
    verify_chain(&window).map_err(StoreError::Broken)?;
    if head.seq == 0 && head.prev_hash != GENESIS {
        return Err(broken(0, 0, "the first trace does not follow GENESIS".into()));
    }
    if recorded != Some(head.hash.as_str()) {
        return Err(broken(
            0,
            head.seq,
            format!(
                "the newest trace is not the recorded head {} (traces were added or removed behind the store's back)",
                recorded.unwrap_or("(none)")
            ),
        ));
    }
    Ok(())
}

/// A verification of the traces of a range, fed in sequence order: every
/// hash recomputes and every link holds, checked in windows that overlap by
/// one trace so that memory stays bounded. From the log's first entry, the
/// check also rebuilds the Merkle tree (and compares it with every stored
/// checkpoint as it reaches its size) and replays the registry's changes.
pub(crate) struct RangeCheck {
    from: Option<u64>,
    head_seq: Option<u64>,
    recorded: Option<String>,
    window: Vec<Trace>,
    report: ChainReport,
    frontier: Frontier,
    replay: Replay,
    /// Stored checkpoints (size, root), smallest last, not reached yet.
    checkpoints: Vec<(u64, Hash)>,
}

const WINDOW: usize = 4096;

impl RangeCheck {
    /// A check of the range that starts at `from` (the log's start when
    /// `None`), against the log's newest trace `head_seq` and the head hash
    /// the store recorded.
    pub(crate) fn new(
        from: Option<u64>,
        head_seq: Option<u64>,
        recorded: Option<String>,
        mut checkpoints: Vec<(u64, Hash)>,
    ) -> RangeCheck {
        checkpoints.sort_by(|a, b| b.0.cmp(&a.0));
        RangeCheck {
            from,
            head_seq,
            report: ChainReport {
                first: None,
                last: None,
                checked: 0,
                anchored: false,
                head: recorded.clone(),
                tree_root: None,
                checkpoints: 0,
                registry_changes: 0,
            },
            recorded,
            window: Vec::with_capacity(WINDOW + 1),
            frontier: Frontier::new(),
            replay: Replay::default(),
            checkpoints,
        }
    }

    /// The tree and the registry, from the log's first entry.
    fn follow(&mut self, trace: &Trace) -> Result<(), StoreError> {
        self.frontier.push(leaf(trace.seq, &trace.hash)?);
        self.replay.push(trace).map_err(|reason| broken(0, trace.seq, format!("the registry change {reason}")))?;
        while let Some(&(size, root)) = self.checkpoints.last() {
            if size > self.frontier.size() {
                break;
            }
            self.checkpoints.pop();
            if size == 0 {
                continue;
            }
            let ours = self.frontier.root();
            if ours != root {
                return Err(broken(
                    0,
                    size - 1,
                    format!(
                        "the tree of the first {size} entries has root {}, a checkpoint of that size signed {} (the log was rewritten after it was signed)",
                        hex(&ours),
                        hex(&root)
                    ),
                ));
            }
            self.report.checkpoints += 1;
        }
        Ok(())
    }

    /// The next trace of the range.
    pub(crate) fn push(&mut self, trace: Trace) -> Result<(), StoreError> {
        if self.report.first.is_none() {
            if self.from.is_none() && (trace.seq != 0 || trace.prev_hash != GENESIS) {
                return Err(broken(
                    0,
                    trace.seq,
                    "the log does not start at GENESIS (traces were removed from its start)".into(),
                ));
            }
            self.report.first = Some(trace.seq);
        }
        if self.from.is_none() {
            self.follow(&trace)?;
        }
        self.report.checked += 1;
        self.window.push(trace);
        if self.window.len() > WINDOW {
            verify_chain(&self.window).map_err(StoreError::Broken)?;
            let last = self.window.pop().expect("the window is not empty");
            self.window.clear();
            self.window.push(last);
        }
        Ok(())
    }

    /// Checks the rest and tells what was found; a range that reaches the
    /// newest trace must end at the recorded head, and a check of the whole
    /// log must find the tree the store saved (`saved`), every stored
    /// checkpoint, and the registry the store holds (`registry`).
    pub(crate) fn finish(
        mut self,
        saved: impl FnOnce(u64) -> Result<TreeHead, StoreError>,
        registry: &RegistryState,
    ) -> Result<ChainReport, StoreError> {
        verify_chain(&self.window).map_err(StoreError::Broken)?;
        self.report.last = self.window.last().map(|t| t.seq);
        let reached_head = match (self.head_seq, self.report.last) {
            (Some(head), Some(last)) => last == head,
            (None, None) => true,
            _ => false,
        };
        if reached_head {
            let end = self.window.last().map(|t| t.hash.clone());
            if end != self.recorded {
                return Err(broken(
                    self.report.checked as usize,
                    self.report.last.map_or(0, |s| s.saturating_add(1)),
                    format!(
                        "the log does not end at the recorded head {} (traces were cut off its end)",
                        self.recorded.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
            self.report.anchored = true;
            if self.from.is_none() {
                self.finish_whole(saved, registry)?;
            }
        }
        Ok(self.report)
    }

    /// The checks of a whole log, once its last entry is checked.
    fn finish_whole(
        &mut self,
        saved: impl FnOnce(u64) -> Result<TreeHead, StoreError>,
        registry: &RegistryState,
    ) -> Result<(), StoreError> {
        let size = self.frontier.size();
        if let Some(&(beyond, _)) = self.checkpoints.first() {
            return Err(broken(
                0,
                size,
                format!("a checkpoint signs {beyond} entries but the log has {size} (entries were removed)"),
            ));
        }
        let root = self.frontier.root();
        let kept = saved(size)?;
        if kept.root != root {
            return Err(broken(
                0,
                size.saturating_sub(1),
                format!(
                    "the store's saved Merkle tree has root {}, the entries give {} (saved nodes were edited)",
                    hex(&kept.root),
                    hex(&root)
                ),
            ));
        }
        if let Some(difference) = self.replay.state().differences(registry) {
            return Err(broken(
                0,
                self.replay.last.unwrap_or(0),
                format!("the registry in the store is not the one the log's changes build: {difference}"),
            ));
        }
        self.report.tree_root = Some(hex(&root));
        self.report.registry_changes = self.replay.entries;
        Ok(())
    }
}
