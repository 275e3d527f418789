//! Signed checkpoints, in the formats transparency logs share (C2SP):
//! a *checkpoint* (tlog-checkpoint) is the text `origin\nsize\nbase64(root)\n`;
//! a *signed note* (signed-note) is that text, a blank line and one line per
//! signature, `— name base64(key hash || signature)`; a witness's
//! *cosignature* (tlog-cosignature/v1) signs `cosignature/v1\ntime T\n` and
//! the checkpoint, and carries the time. Keys are Ed25519; a verifier key is
//! written `name+hash+base64(algorithm || public key)` as Go's
//! `golang.org/x/mod/sumdb/note` writes it, so tools made for Go's checksum
//! database and for CT-style logs can check caio's checkpoints.
//!
//! This module formats, signs and checks text; it never reads a store and
//! never decides whether a log is consistent (the witness does, with proofs).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use caio_calculus::merkle::Hash;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The algorithm byte of an Ed25519 note signature.
const ED25519: u8 = 0x01;
/// The algorithm byte of a timestamped Ed25519 cosignature.
const COSIGNATURE: u8 = 0x04;

/// What is wrong with a key, a checkpoint or a note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoteError(pub String);

fn error(message: impl Into<String>) -> NoteError {
    NoteError(message.into())
}

/// A log's state: its name, how many entries, and the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (by convention its URL without scheme).
    pub origin: String,
    /// Entries in the tree.
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint's text: the body a note signs.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Reads a checkpoint's text (extension lines after the root are
    /// allowed and ignored, as the format says).
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = body.split('\n');
        let origin =
            lines.next().filter(|o| !o.is_empty()).ok_or_else(|| error("the checkpoint has no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| (s == "0" || !s.starts_with('0')).then(|| s.parse::<u64>().ok()).flatten())
            .ok_or_else(|| error("the checkpoint's second line is not a tree size (a decimal number)"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| error("the checkpoint's third line is not a root hash (32 bytes in base64)"))?;
        if !body.ends_with('\n') {
            return Err(error("the checkpoint does not end with a newline"));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }
}

/// A key name: not empty, no whitespace, no `+`.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(error(format!("`{name}` cannot name a key: it must be non-empty, with no spaces and no `+`")));
    }
    Ok(())
}

/// The key hash: the first four bytes of SHA-256(name, newline, algorithm,
/// public key), big-endian.
fn key_hash(name: &str, algorithm: u8, key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([algorithm]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A key that signs: the log's (checkpoints) or a witness's (cosignatures).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// The key named `name` from a PKCS#8 PEM Ed25519 private key
    /// (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem(name: &str, pem: &str) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| {
            error(format!(
                "is not an Ed25519 private key in PKCS#8 PEM ({e}); make one with `openssl genpkey -algorithm ed25519`"
            ))
        })?;
        Ok(NoteSigner { name: name.to_string(), key })
    }

    /// The key named `name` from its 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        Ok(NoteSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key of the log's checkpoints, as `name+hash+base64`.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), algorithm: ED25519, key: self.key.verifying_key() }
    }

    /// The verifier key of this witness's cosignatures.
    pub fn cosignature_verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), algorithm: COSIGNATURE, key: self.key.verifying_key() }
    }

    /// The signed note of a checkpoint.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let hash = key_hash(&self.name, ED25519, &self.key.verifying_key());
        let mut blob = hash.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }

    /// The note with this witness's cosignature, made at `time` (seconds
    /// since the epoch), added to its signatures.
    pub fn cosign(&self, note: &str, time: u64) -> Result<String, NoteError> {
        let (body, _) = split_note(note)?;
        let message = format!("cosignature/v1\ntime {time}\n{body}");
        let signature = self.key.sign(message.as_bytes());
        let hash = key_hash(&self.name, COSIGNATURE, &self.key.verifying_key());
        let mut blob = hash.to_be_bytes().to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!("{note}\u{2014} {} {}\n", self.name, STANDARD.encode(blob)))
    }
}

/// A key that checks signatures, written `name+hash+base64(algorithm || key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    algorithm: u8,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Reads a verifier key.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let text = text.trim();
        let shape =
            || error(format!("`{text}` is not a verifier key (name+hash+base64 key, as `caio checkpoint key` prints)"));
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(shape());
        };
        check_name(name)?;
        let hash = u32::from_str_radix(hash, 16).ok().filter(|_| hash.len() == 8).ok_or_else(shape)?;
        let bytes = STANDARD.decode(key).map_err(|_| shape())?;
        let (&algorithm, key) = bytes.split_first().ok_or_else(shape)?;
        if algorithm != ED25519 && algorithm != COSIGNATURE {
            return Err(error(format!(
                "verifier key `{name}` has algorithm {algorithm}; caio knows Ed25519 (1) and cosignatures (4)"
            )));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| shape())?;
        let key = VerifyingKey::from_bytes(&key).map_err(|e| error(format!("verifier key `{name}`: {e}")))?;
        let verifier = NoteVerifier { name: name.to_string(), algorithm, key };
        if key_hash(name, algorithm, &verifier.key) != hash {
            return Err(error(format!("verifier key `{name}`: its hash does not match its name and key")));
        }
        Ok(verifier)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text form, `name+hash+base64`.
    pub fn encode(&self) -> String {
        let mut bytes = vec![self.algorithm];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, key_hash(&self.name, self.algorithm, &self.key), STANDARD.encode(bytes))
    }

    /// The signature blobs of this key in a note.
    fn blobs<'a>(&self, signatures: &[(&'a str, Vec<u8>)]) -> Vec<Vec<u8>> {
        let hash = key_hash(&self.name, self.algorithm, &self.key).to_be_bytes();
        signatures
            .iter()
            .filter(|(name, blob)| *name == self.name && blob.len() >= 4 && blob[..4] == hash)
            .map(|(_, blob)| blob[4..].to_vec())
            .collect()
    }
}

/// Splits a signed note into its text and its signatures (name, blob).
fn split_note(note: &str) -> Result<(&str, Vec<(&str, Vec<u8>)>), NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(error("the note holds control characters"));
    }
    let split = note.rfind("\n\n").ok_or_else(|| error("the note has no signatures (no blank line after its text)"))?;
    let (body, signatures) = (&note[..=split], &note[split + 2..]);
    if !signatures.ends_with('\n') {
        return Err(error("the note's signatures do not end with a newline"));
    }
    let mut parsed = Vec::new();
    for line in signatures.lines() {
        let bad = || error(format!("`{line}` is not a signature line (\u{2014} name base64)"));
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(bad)?;
        let (name, blob) = rest.split_once(' ').ok_or_else(bad)?;
        let blob = STANDARD.decode(blob).map_err(|_| bad())?;
        parsed.push((name, blob));
    }
    if parsed.is_empty() {
        return Err(error("the note has no signatures"));
    }
    Ok((body, parsed))
}

/// Checks that `note` is signed by the log key `verifier` and reads its
/// checkpoint; other keys' signatures are left alone.
pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    if verifier.algorithm != ED25519 {
        return Err(error(format!("`{}` is a witness's key, not a log's", verifier.name)));
    }
    let (body, signatures) = split_note(note)?;
    let signed = verifier
        .blobs(&signatures)
        .iter()
        .any(|blob| Signature::from_slice(blob).is_ok_and(|s| verifier.key.verify(body.as_bytes(), &s).is_ok()));
    if !signed {
        return Err(error(format!(
            "the checkpoint is not signed by `{}` (a signature is missing or wrong)",
            verifier.name
        )));
    }
    Checkpoint::parse(body)
}

/// The time of the witness `verifier`'s valid cosignature on `note`.
pub fn cosigned_at(note: &str, verifier: &NoteVerifier) -> Result<u64, NoteError> {
    let (body, signatures) = split_note(note)?;
    for blob in verifier.blobs(&signatures) {
        if blob.len() != 8 + 64 {
            continue;
        }
        let time = u64::from_be_bytes(blob[..8].try_into().expect("eight bytes"));
        let message = format!("cosignature/v1\ntime {time}\n{body}");
        if Signature::from_slice(&blob[8..]).is_ok_and(|s| verifier.key.verify(message.as_bytes(), &s).is_ok()) {
            return Ok(time);
        }
    }
    Err(error(format!("the checkpoint has no valid cosignature of `{}`", verifier.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, [seed; 32]).unwrap()
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let log = signer("caio.example/log", 1);
        let checkpoint = Checkpoint { origin: "caio.example/log".into(), size: 42, root: [7; 32] };
        let note = log.sign(&checkpoint);
        assert!(note.starts_with(
            "caio.example/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} caio.example/log "
        ));
        let verifier = NoteVerifier::parse(&log.verifier().encode()).unwrap();
        assert_eq!(open(&note, &verifier).unwrap(), checkpoint);
        assert!(open(&note, &signer("caio.example/log", 2).verifier()).is_err(), "another key of the same name");
        // Any change to the signed text is refused.
        let edited = note.replacen("\n42\n", "\n43\n", 1);
        assert!(open(&edited, &verifier).unwrap_err().0.contains("not signed"));
        let mut bytes = note.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(open(&String::from_utf8(bytes).unwrap(), &verifier).is_err());
    }

    #[test]
    fn a_cosignature_carries_its_time_and_binds_the_checkpoint() {
        let log = signer("log", 1);
        let witness = signer("witness", 9);
        let note = log.sign(&Checkpoint { origin: "log".into(), size: 3, root: [1; 32] });
        let cosigned = witness.cosign(&note, 1_700_000_000).unwrap();
        assert_eq!(open(&cosigned, &log.verifier()).unwrap().size, 3, "the log's signature still opens");
        let verifier = NoteVerifier::parse(&witness.cosignature_verifier().encode()).unwrap();
        assert_eq!(cosigned_at(&cosigned, &verifier), Ok(1_700_000_000));
        assert!(cosigned_at(&cosigned.replacen("\n3\n", "\n4\n", 1), &verifier).is_err());
        assert!(cosigned_at(&note, &verifier).is_err());
        assert!(open(&cosigned, &verifier).is_err(), "a witness key does not open checkpoints");
    }

    #[test]
    fn malformed_keys_and_checkpoints_say_what_is_wrong() {
        assert!(NoteVerifier::parse("nope").unwrap_err().0.contains("not a verifier key"));
        let good = signer("log", 1).verifier().encode();
        let wrong_hash = format!("log+00000000+{}", good.rsplit('+').next().unwrap());
        assert!(NoteVerifier::parse(&wrong_hash).unwrap_err().0.contains("hash does not match"));
        assert!(Checkpoint::parse("log\n012\nAA==\n").unwrap_err().0.contains("tree size"));
        assert!(Checkpoint::parse("log\n1\nAA==\n").unwrap_err().0.contains("root hash"));
        assert!(NoteSigner::from_seed("two words", [0; 32]).is_err());
    }
}
