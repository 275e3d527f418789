//! The checks of a stored log that do not depend on the engine: the newest
//! link when a store opens, and a streamed verification of a range. Every
//! backend reads its rows and hands them here, so the chain means the same
//! on SQLite and on PostgreSQL.

use caio_calculus::trace::{BrokenLink, GENESIS, Trace, verify_chain};

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
/// one trace so that memory stays bounded.
pub(crate) struct RangeCheck {
    from: Option<u64>,
    head_seq: Option<u64>,
    recorded: Option<String>,
    window: Vec<Trace>,
    report: ChainReport,
}

const WINDOW: usize = 4096;

impl RangeCheck {
    /// A check of the range that starts at `from` (the log's start when
    /// `None`), against the log's newest trace `head_seq` and the head hash
    /// the store recorded.
    pub(crate) fn new(from: Option<u64>, head_seq: Option<u64>, recorded: Option<String>) -> RangeCheck {
        RangeCheck {
            from,
            head_seq,
            report: ChainReport { first: None, last: None, checked: 0, anchored: false, head: recorded.clone() },
            recorded,
            window: Vec::with_capacity(WINDOW + 1),
        }
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
    /// newest trace must end at the recorded head.
    pub(crate) fn finish(mut self) -> Result<ChainReport, StoreError> {
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
        }
        Ok(self.report)
    }
}
