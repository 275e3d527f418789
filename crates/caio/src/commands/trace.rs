//! `caio trace verify`: checks the hash chain of a store (a SQLite file or
//! a PostgreSQL database), or of traces exported one per line (JSON Lines).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use caio_calculus::trace::{GENESIS, Trace, verify_chain};
use caio_store::{PostgresStore, SqliteStore, Store, StoreError, is_postgres_url, redact};

use crate::Outcome;

fn is_sqlite(path: &Path) -> bool {
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header)).is_ok()
        && &header == b"SQLite format 3\0"
}

/// Opens the store at `location` (a SQLite file or a `postgres://` URL),
/// with the name to show for it.
pub fn open_store(location: &str) -> Result<(String, Result<Box<dyn Store>, StoreError>)> {
    if is_postgres_url(location) {
        return Ok((redact(location), PostgresStore::open(location).map(|store| Box::new(store) as Box<dyn Store>)));
    }
    let path = Path::new(location);
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    if !is_sqlite(path) {
        anyhow::bail!("{}: not a SQLite store", path.display());
    }
    Ok((path.display().to_string(), SqliteStore::open(path).map(|store| Box::new(store) as Box<dyn Store>)))
}

/// A signed checkpoint to verify a store against: the note's file and the
/// log's verifier key.
pub struct SignedCheckpoint {
    /// The note's file.
    pub file: PathBuf,
    /// The verifier key, or a file holding it.
    pub key: String,
}

/// Verifies and prints one line of outcome.
pub fn verify(log: &str, from: Option<u64>, to: Option<u64>, signed: Option<SignedCheckpoint>) -> Result<Outcome> {
    let mut against = Vec::new();
    if let Some(signed) = &signed {
        if from.is_some() || to.is_some() {
            anyhow::bail!("--checkpoint checks the whole log: leave out --from and --to");
        }
        let verifier = crate::commands::transparency::read_verifier(&signed.key)?;
        let note = std::fs::read_to_string(&signed.file)
            .with_context(|| format!("{}: cannot read the checkpoint", signed.file.display()))?;
        match caio_store::checkpoint::open(&note, &verifier) {
            Ok(checkpoint) => against.push((checkpoint.size, checkpoint.root)),
            Err(e) => {
                println!("{}: refused: {e}", signed.file.display());
                return Ok(Outcome::Problems);
            }
        }
    }
    let path = Path::new(log);
    if is_postgres_url(log) || (path.exists() && is_sqlite(path)) {
        let (location, opened) = open_store(log)?;
        return verify_store(&location, opened, from, to, against);
    }
    if signed.is_some() {
        anyhow::bail!("{log}: --checkpoint needs a store (a SQLite file or a postgres:// URL)");
    }
    let log = Path::new(log);
    if !log.exists() {
        anyhow::bail!("{}: no such file", log.display());
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
    against: Vec<(u64, caio_calculus::merkle::Hash)>,
) -> Result<Outcome> {
    // Tampering is a finding (exit 1), not a usage error: a broken link,
    // a stored entry that no longer reads as one, a registry row the log
    // contradicts.
    let store = match opened {
        Ok(store) => store,
        Err(tampered @ (StoreError::Broken(_) | StoreError::Corrupt(_) | StoreError::Contradicted { .. })) => {
            println!("{location}: broken: {}", finding(&tampered));
            return Ok(Outcome::Problems);
        }
        Err(e) => return Err(e.into()),
    };
    let signed = against.first().map(|(size, _)| *size);
    match store.verify_with(from, to, against) {
        Ok(report) => {
            let range = match (report.first, report.last) {
                (Some(first), Some(last)) => format!("traces {first} to {last}"),
                _ => "no traces".to_string(),
            };
            let anchor = if report.anchored { ", ending at the recorded head" } else { "" };
            let mut extra = String::new();
            if let Some(root) = &report.tree_root {
                extra.push_str(&format!(
                    "; Merkle root {root}; {} registry change(s) replayed; {} checkpoint(s) matched",
                    report.registry_changes, report.checkpoints
                ));
            }
            if let Some(size) = signed {
                extra.push_str(&format!(", the signed checkpoint of {size} entries among them"));
            }
            println!("{location}: ok: {} checked ({range}){anchor}{extra}", report.checked);
            Ok(Outcome::Done)
        }
        Err(tampered @ (StoreError::Broken(_) | StoreError::Corrupt(_) | StoreError::Contradicted { .. })) => {
            println!("{location}: broken: {}", finding(&tampered));
            Ok(Outcome::Problems)
        }
        Err(e) => Err(e.into()),
    }
}

/// What tampering was found, without the store's framing.
fn finding(error: &StoreError) -> String {
    match error {
        StoreError::Broken(link) => link.to_string(),
        StoreError::Corrupt(what) => what.clone(),
        other => other.to_string(),
    }
}
