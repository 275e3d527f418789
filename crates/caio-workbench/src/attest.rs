//! Signed scorecards: `cargo xtask scorecard --sign KEY` writes an
//! attestation, a detached Ed25519 signature over the digest of
//! `scorecard.json`, the commit it judges and the digest of every artifact;
//! `cargo xtask attest verify` checks the signature against a trusted
//! public key, the digests against the files in the tree and the commit
//! against the checkout.
//!
//! The signed statement is canonical JSON (sorted keys, no whitespace) of
//! everything in the attestation but the signature, so anyone can recompute
//! it. The private key is read from a file given on the command line and
//! must never be written anywhere, nor may a signature be made over files
//! that differ from the commit it names.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Workspace;
use crate::error::{Error, Result};
use crate::fsutil;

/// The attestation's format, signed with it.
pub const FORMAT: &str = "caio-scorecard-attestation/1";

/// Where `scorecard --sign` writes the attestation unless told otherwise.
pub const DEFAULT_PATH: &str = "target/attestation/scorecard.attestation.json";

/// What is signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// [`FORMAT`].
    pub format: String,
    /// The commit (full hex id) whose scorecard and artifacts these are.
    pub commit: String,
    /// The scorecard's decision, for people (`green`, ...).
    pub decision: String,
    /// Hex SHA-256 of `scorecard.json`'s bytes.
    pub scorecard_sha256: String,
    /// Hex SHA-256 of each artifact's bytes, by path.
    pub artifacts: BTreeMap<String, String>,
    /// The signer's public key, hex (the verifier trusts its own copy).
    pub public_key: String,
    /// Hex Ed25519 signature over [`Attestation::statement`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

impl Attestation {
    /// The canonical bytes that are signed: the attestation without its
    /// signature, keys sorted, no whitespace.
    pub fn statement(&self) -> Vec<u8> {
        let unsigned = Attestation { signature: String::new(), ..self.clone() };
        // serde_json maps are sorted (no `preserve_order`): a Value's text
        // is canonical.
        serde_json::to_vec(&serde_json::to_value(&unsigned).unwrap_or_default()).unwrap_or_default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str, what: &str, path: &str) -> Result<Vec<u8>> {
    let bad = || Error::File { path: path.into(), message: format!("`{what}` is not hex") };
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad())).collect()
}

fn sha256_file(path: &Path, shown: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(shown, "read", e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// The artifacts of the tree, by path, with their digests.
fn artifacts(ws: &Workspace) -> Result<BTreeMap<String, String>> {
    let dir = ws.path("artifacts");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("artifacts", "list", e))?;
    let mut digests = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io("artifacts", "list", e))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = format!("artifacts/{}", path.file_name().unwrap_or_default().to_string_lossy());
            digests.insert(name.clone(), sha256_file(&path, &name)?);
        }
    }
    Ok(digests)
}

/// The commit the tree's evidence is, refusing evidence that differs from it.
fn committed_evidence(ws: &Workspace) -> Result<String> {
    let changed = crate::git::text(ws, &["status", "--porcelain", "--", "scorecard.json", "artifacts"])?;
    if !changed.is_empty() {
        return Err(Error::File {
            path: "scorecard.json".into(),
            message: format!("the evidence differs from the commit (commit it first, then sign):\n{changed}"),
        });
    }
    crate::git::text(ws, &["rev-parse", "HEAD"])
}

fn read_key(path: &Path) -> Result<String> {
    fsutil::read(path)
}

/// Signs the tree's scorecard and artifacts with the PKCS#8 PEM private key
/// at `key` (`openssl genpkey -algorithm ed25519`); writes the attestation
/// to `output` and returns it.
pub fn sign(ws: &Workspace, key: &Path, output: &Path) -> Result<Attestation> {
    let shown = key.display().to_string();
    let signing = SigningKey::from_pkcs8_pem(&read_key(key)?).map_err(|e| Error::File {
        path: shown,
        message: format!(
            "is not an Ed25519 private key in PKCS#8 PEM ({e}); make one with `openssl genpkey -algorithm ed25519`"
        ),
    })?;
    let commit = committed_evidence(ws)?;
    let card = crate::scorecard::parse(&fsutil::read(&ws.path("scorecard.json"))?, "scorecard.json")?;
    let mut attestation = Attestation {
        format: FORMAT.into(),
        commit,
        decision: card.decision.word().to_string(),
        scorecard_sha256: sha256_file(&ws.path("scorecard.json"), "scorecard.json")?,
        artifacts: artifacts(ws)?,
        public_key: hex(signing.verifying_key().as_bytes()),
        signature: String::new(),
    };
    attestation.signature = hex(&signing.sign(&attestation.statement()).to_bytes());
    let mut text = serde_json::to_string_pretty(&attestation).unwrap_or_default();
    text.push('\n');
    fsutil::write_atomic(output, text.as_bytes())?;
    Ok(attestation)
}

/// What a verification checked.
#[derive(Debug)]
pub struct Verified {
    /// The commit attested.
    pub commit: String,
    /// The decision attested.
    pub decision: String,
    /// Artifacts whose digests matched.
    pub artifacts: usize,
}

/// Verifies the attestation at `path` with the trusted public key at `key`
/// (PEM, `openssl pkey -pubout`), against the tree and its `HEAD` (or
/// `commit`). Every problem is reported, each naming its file.
pub fn verify(ws: &Workspace, path: &Path, key: &Path, commit: Option<&str>) -> Result<Verified> {
    let shown = path.display().to_string();
    let attestation: Attestation = serde_json::from_str(&fsutil::read(path)?)
        .map_err(|e| Error::File { path: shown.clone(), message: format!("is not an attestation: {e}") })?;
    if attestation.format != FORMAT {
        return Err(Error::File {
            path: shown,
            message: format!("format `{}`, this workbench reads `{FORMAT}`", attestation.format),
        });
    }
    let trusted = VerifyingKey::from_public_key_pem(&read_key(key)?).map_err(|e| Error::File {
        path: key.display().to_string(),
        message: format!("is not an Ed25519 public key in PEM ({e}); make it with `openssl pkey -in KEY -pubout`"),
    })?;
    let signature = unhex(&attestation.signature, "signature", &shown)?;
    let signature = Signature::from_slice(&signature)
        .map_err(|_| Error::File { path: shown.clone(), message: "the signature is not 64 bytes".into() })?;
    if hex(trusted.as_bytes()) != attestation.public_key {
        return Err(Error::File { path: shown, message: "it was signed with another key than the one trusted".into() });
    }
    trusted.verify(&attestation.statement(), &signature).map_err(|_| Error::File {
        path: shown.clone(),
        message: "the signature does not verify: the attestation was changed after signing".into(),
    })?;
    let mut problems = Vec::new();
    let expected = match commit {
        Some(rev) => crate::git::text(ws, &["rev-parse", &format!("{rev}^{{commit}}")])?,
        None => crate::git::text(ws, &["rev-parse", "HEAD"])?,
    };
    if attestation.commit != expected {
        problems.push(Error::File {
            path: shown.clone(),
            message: format!("attests commit {}, the checkout is {expected}", attestation.commit),
        });
    }
    if sha256_file(&ws.path("scorecard.json"), "scorecard.json")? != attestation.scorecard_sha256 {
        problems.push(Error::File { path: "scorecard.json".into(), message: "differs from the signed one".into() });
    }
    let tree = artifacts(ws)?;
    for (name, digest) in &attestation.artifacts {
        match tree.get(name) {
            Some(found) if found == digest => {}
            Some(_) => {
                problems.push(Error::File { path: name.clone(), message: "differs from the signed artifact".into() })
            }
            None => {
                problems.push(Error::File { path: name.clone(), message: "was signed but is not in the tree".into() })
            }
        }
    }
    for name in tree.keys().filter(|name| !attestation.artifacts.contains_key(*name)) {
        problems.push(Error::File { path: name.clone(), message: "is in the tree but was not signed".into() });
    }
    Error::from_list(problems)?;
    Ok(Verified { commit: attestation.commit, decision: attestation.decision, artifacts: attestation.artifacts.len() })
}
