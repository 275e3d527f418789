//! The transparency log from the command line: `caio trace prove` (a
//! decision's inclusion proof with the signed checkpoint it is in),
//! `caio trace check-proof` (checks one offline, with the log's public key
//! only), `caio checkpoint key` (the verifier key of a log or witness key)
//! and `caio witness` (follows a running caio's checkpoints, checks each
//! against the last one it saw with a consistency proof, cosigns what is
//! consistent and refuses a fork or a rollback).
//!
//! Checks here use only hashes, signatures and the calculus's verifiers,
//! never the store's word that something holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use caio_calculus::merkle::{Hash, link_bytes, log_leaf, verify_consistency, verify_inclusion};
use caio_calculus::trace::{Trace, hex, link_hash};
use caio_store::Store;
use caio_store::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, cosigned_at, open};
use serde::{Deserialize, Serialize};

use crate::Outcome;

/// A decision's proof of inclusion, self-contained: the trace, the proof
/// and the signed checkpoint whose tree it is in.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// The trace.
    pub trace: Trace,
    /// The size of the tree the proof is for.
    pub size: u64,
    /// The sibling subtrees' roots from the leaf up, hex.
    pub proof: Vec<String>,
    /// The signed checkpoint of that size (C2SP signed note).
    pub checkpoint: String,
}

fn unhex(text: &str, what: &str) -> Result<Hash> {
    link_bytes(text).with_context(|| format!("{what}: `{text}` is not a hash (64 lowercase hex digits)"))
}

/// Reads a verifier key: the text itself, or a file holding it.
pub fn read_verifier(key: &str) -> Result<NoteVerifier> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("{key}: cannot read the verifier key"))?
    } else {
        key.to_string()
    };
    NoteVerifier::parse(&text).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

fn read_signer(path: &Path, name: &str) -> Result<NoteSigner> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the key", path.display()))?;
    NoteSigner::from_pem(name, &pem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `caio trace prove`: prints the inclusion proof of entry `seq` in the
/// tree of the latest signed checkpoint (or of `size`, which must have one).
pub fn prove(store: &dyn Store, seq: u64, size: Option<u64>) -> Result<Outcome> {
    let checkpoint = match size {
        Some(size) => store.checkpoint(Some(size))?.with_context(|| format!("no signed checkpoint of size {size}"))?,
        None => store.checkpoint(None)?.filter(|c| c.size > seq).with_context(|| {
            format!("no signed checkpoint includes entry {seq} yet; the next one will (see [checkpoints] in caio.toml)")
        })?,
    };
    let trace = store.trace(seq)?.with_context(|| format!("no entry {seq} in the log"))?;
    let proof = store.inclusion_proof(seq, checkpoint.size)?;
    let bundle = ProofBundle { trace, size: checkpoint.size, proof: proof.proof, checkpoint: checkpoint.note };
    println!("{}", serde_json::to_string_pretty(&bundle)?);
    Ok(Outcome::Done)
}

/// `caio trace export --tiles`: the log up to a signed checkpoint as tiles.
pub fn export(store: &dyn Store, dir: &Path, size: Option<u64>) -> Result<Outcome> {
    let checkpoint = store.checkpoint(size)?.with_context(|| match size {
        Some(size) => format!("no signed checkpoint of size {size}"),
        None => {
            "no signed checkpoint yet: the tiles are the log at a checkpoint (see [checkpoints] in caio.toml)".into()
        }
    })?;
    let total = checkpoint.size;
    let exported = caio_store::tiles::export(store, &checkpoint, dir, |done| {
        if done % 65_536 < 256 || done == total {
            eprint!("\rexported {done} of {total} entries");
        }
    })?;
    eprintln!();
    println!(
        "{}: {} entries at the signed checkpoint: {} hash tiles, {} entry bundles, traces.jsonl, checkpoint",
        dir.display(),
        exported.size,
        exported.hash_tiles,
        exported.entry_bundles
    );
    Ok(Outcome::Done)
}

/// `caio trace check-proof`: checks a proof bundle offline with the log's
/// verifier key.
pub fn check_proof(file: &Path, key: &str) -> Result<Outcome> {
    let verifier = read_verifier(key)?;
    let shown = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("{shown}: cannot read"))?;
    let bundle: ProofBundle =
        serde_json::from_str(&text).with_context(|| format!("{shown}: not a proof (as `caio trace prove` prints)"))?;
    let refuse = |why: String| {
        println!("{shown}: refused: {why}");
        Ok(Outcome::Problems)
    };
    let checkpoint = match open(&bundle.checkpoint, &verifier) {
        Ok(checkpoint) => checkpoint,
        Err(e) => return refuse(format!("the checkpoint: {e}")),
    };
    let trace = &bundle.trace;
    if trace.hash != link_hash(trace.seq, &trace.prev_hash, &trace.body) {
        return refuse(format!("trace {}: its hash does not match its content (the trace was edited)", trace.seq));
    }
    let Some(leaf) = log_leaf(&trace.hash) else {
        return refuse(format!("trace {}: its hash is not a hash", trace.seq));
    };
    if checkpoint.size != bundle.size {
        return refuse(format!(
            "the proof is for a tree of {} entries, the checkpoint signs {}",
            bundle.size, checkpoint.size
        ));
    }
    let proof = bundle.proof.iter().map(|h| unhex(h, "proof")).collect::<Result<Vec<_>>>()?;
    if !verify_inclusion(&leaf, trace.seq, checkpoint.size, &proof, &checkpoint.root) {
        return refuse(format!(
            "trace {} is not entry {} of the tree of {} entries that `{}` signed",
            trace.seq, trace.seq, checkpoint.size, checkpoint.origin
        ));
    }
    println!(
        "{shown}: ok: trace {} is entry {} of the log `{}` at its signed checkpoint of {} entries (root {})",
        trace.seq,
        trace.seq,
        checkpoint.origin,
        checkpoint.size,
        hex(&checkpoint.root)
    );
    Ok(Outcome::Done)
}

/// `caio checkpoint key`: the verifier key of a private key.
pub fn key(private: &Path, name: &str, witness: bool) -> Result<Outcome> {
    let signer = read_signer(private, name)?;
    let verifier = if witness { signer.cosignature_verifier() } else { signer.verifier() };
    println!("{}", verifier.encode());
    Ok(Outcome::Done)
}

/// Arguments of `caio witness`.
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// The caio to watch (its base URL, such as http://127.0.0.1:8080).
    #[arg(long)]
    pub log: String,
    /// The log's verifier key (as `caio checkpoint key` prints it), or a file holding it.
    #[arg(long)]
    pub key: String,
    /// Where the witness keeps the last checkpoint it accepted (created on first use).
    #[arg(long)]
    pub state: PathBuf,
    /// The witness's own Ed25519 private key (PKCS#8 PEM), to cosign what is consistent.
    #[arg(long, requires = "name")]
    pub sign: Option<PathBuf>,
    /// The witness's name in its cosignatures.
    #[arg(long)]
    pub name: Option<String>,
}

fn fetch(url: &str) -> Result<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = client.get(url).send().with_context(|| format!("{url}: no answer"))?;
    let status = response.status();
    let text = response.text().with_context(|| format!("{url}: cannot read the answer"))?;
    if !status.is_success() {
        bail!("{url}: answered {status}: {}", text.trim());
    }
    Ok(text)
}

#[derive(Deserialize)]
struct ConsistencyAnswer {
    proof: Vec<String>,
}

fn describe(checkpoint: &Checkpoint) -> String {
    format!("{} entries, root {}", checkpoint.size, hex(&checkpoint.root))
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).with_context(|| format!("{}: cannot write", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// `caio witness`: one look at the log.
pub fn witness(args: WitnessArgs, now: u64) -> Result<Outcome> {
    let verifier = read_verifier(&args.key)?;
    let signer = match (&args.sign, &args.name) {
        (Some(path), Some(name)) => Some(read_signer(path, name)?),
        _ => None,
    };
    let base = args.log.trim_end_matches('/');
    let note = fetch(&format!("{base}/v1/checkpoint"))?;
    let latest = match open(&note, &verifier) {
        Ok(checkpoint) => checkpoint,
        Err(e) => {
            println!("{base}: refused: the checkpoint it serves: {e}");
            return Ok(Outcome::Problems);
        }
    };
    let seen = match std::fs::read_to_string(&args.state) {
        Ok(text) => Some(
            open(&text, &verifier)
                .map_err(|e| anyhow::anyhow!("{}: the checkpoint kept there: {e}", args.state.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", args.state.display())),
    };
    if let Some(seen) = &seen {
        if seen.origin != latest.origin {
            bail!("{base}: its log is `{}`, the state kept is of `{}`", latest.origin, seen.origin);
        }
        let refuse = |what: &str| {
            println!(
                "{base}: refused: {what}: it serves a checkpoint of {} after one of {} was seen",
                describe(&latest),
                describe(seen)
            );
            Ok(Outcome::Problems)
        };
        if latest.size < seen.size {
            return refuse("the log was rolled back");
        }
        let answer: ConsistencyAnswer = serde_json::from_str(&fetch(&format!(
            "{base}/v1/checkpoints/consistency?from={}&to={}",
            seen.size, latest.size
        ))?)
        .with_context(|| format!("{base}: the consistency proof is not one"))?;
        let proof = answer.proof.iter().map(|h| unhex(h, "the consistency proof")).collect::<Result<Vec<_>>>()?;
        if !verify_consistency(seen.size, latest.size, &seen.root, &latest.root, &proof) {
            return refuse("the log forked (its new tree does not extend the one seen)");
        }
    }
    let kept = match &signer {
        Some(signer) => signer.cosign(&note, now).map_err(|e| anyhow::anyhow!("cannot cosign: {e}"))?,
        None => note.clone(),
    };
    write_atomic(&args.state, &kept)?;
    let grown = seen.as_ref().map_or(latest.size, |s| latest.size - s.size);
    let cosigned = signer.as_ref().map(|s| cosigned_at(&kept, &s.cosignature_verifier()).is_ok()).unwrap_or(false);
    println!(
        "{base}: ok: {} ({} new since the last look){}",
        describe(&latest),
        grown,
        if cosigned { ", cosigned" } else { "" }
    );
    Ok(Outcome::Done)
}
