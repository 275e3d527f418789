//! `caio trace verify`: checks the hash chain of a store (a SQLite file or
//! a PostgreSQL database), or of traces exported one per line (JSON Lines).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use caio_calculus::trace::{GENESIS, Trace, verify_chain};
use caio_store::{PostgresStore, SqliteStore, Store, StoreError, is_postgres_url, redact};

use crate::Outcome;

fn is_sqlite(path: &Path) -> bool {
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header)).is_ok()
        && &header == b"SQLite format 3\0"
}

/// Verifies and prints one line of outcome.
pub fn verify(log: &str, from: Option<u64>, to: Option<u64>) -> Result<Outcome> {
    if is_postgres_url(log) {
        let opened = PostgresStore::open(log).map(|store| Box::new(store) as Box<dyn Store>);
        return verify_store(&redact(log), opened, from, to);
    }
    let log = Path::new(log);
    if !log.exists() {
        anyhow::bail!("{}: no such file", log.display());
    }
    if is_sqlite(log) {
        let opened = SqliteStore::open(log).map(|store| Box::new(store) as Box<dyn Store>);
        return verify_store(&log.display().to_string(), opened, from, to);
    }
    let file = std::fs::File::open(log).with_context(|| format!("{}: cannot read", log.display()))?;
    let mut traces: Vec<Trace> = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read line {}", log.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let trace: Trace =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not a trace", log.display(), i + 1))?;
        if from.is_none_or(|f| trace.seq >= f) && to.is_none_or(|t| trace.seq <= t) {
            traces.push(trace);
        }
    }
    let starts_at_genesis = traces.first().is_none_or(|t| t.seq != 0 || t.prev_hash == GENESIS);
    match verify_chain(&traces) {
        Ok(()) if starts_at_genesis => {
            println!("{}: ok: {} checked", log.display(), traces.len());
            Ok(Outcome::Done)
        }
        Ok(()) => {
            println!("{}: broken: the first trace does not follow GENESIS", log.display());
            Ok(Outcome::Problems)
        }
        Err(link) => {
            println!("{}: broken: {link}", log.display());
            Ok(Outcome::Problems)
        }
    }
}

/// Verifies an opened store: one line, `<where>: ok: ...` or `<where>: broken: ...`.
fn verify_store(
    location: &str,
    opened: Result<Box<dyn Store>, StoreError>,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Outcome> {
    // Tampering is a finding (exit 1), not a usage error: a broken link,
    // or a stored entry that no longer reads as one.
    let store = match opened {
        Ok(store) => store,
        Err(StoreError::Broken(link)) => {
            println!("{location}: broken: {link}");
            return Ok(Outcome::Problems);
        }
        Err(StoreError::Corrupt(what)) => {
            println!("{location}: broken: {what}");
            return Ok(Outcome::Problems);
        }
        Err(e) => return Err(e.into()),
    };
    match store.verify(from, to) {
        Ok(report) => {
            let range = match (report.first, report.last) {
                (Some(first), Some(last)) => format!("traces {first} to {last}"),
                _ => "no traces".to_string(),
            };
            let anchor = if report.anchored { ", ending at the recorded head" } else { "" };
            println!("{location}: ok: {} checked ({range}){anchor}", report.checked);
            Ok(Outcome::Done)
        }
        Err(StoreError::Broken(link)) => {
            println!("{location}: broken: {link}");
            Ok(Outcome::Problems)
        }
        Err(StoreError::Corrupt(what)) => {
            println!("{location}: broken: {what}");
            Ok(Outcome::Problems)
        }
        Err(e) => Err(e.into()),
    }
}
