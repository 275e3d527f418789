//! Progress for long work, on stderr: a bar when stderr is a terminal, and
//! one line per finished item otherwise (CI logs), so users always see that
//! something is happening and what finished.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of a batch of `total` items.
pub struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// Starts reporting `label` over `total` items. `quiet` silences it.
    pub fn new(label: &str, total: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>10.cyan.bold} [{bar:30}] {pos}/{len} {wide_msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { label: label.to_owned(), total, done: AtomicUsize::new(0), bar, quiet }
    }

    /// Shows what is happening now (only on a terminal: logs stay short).
    pub fn message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
        }
    }

    /// A line of detail from the work itself (such as cargo's `Compiling`
    /// lines): the bar's message on a terminal, a log line otherwise.
    pub fn log(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.trim().to_owned()),
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    /// Records one finished item with a short status.
    pub fn finished(&self, item: &str, status: &str) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let line = format!("{:>10} {item}: {status}", self.label);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(line);
            }
            None if !self.quiet => eprintln!("[{done}/{}] {}", self.total, line.trim_start()),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
