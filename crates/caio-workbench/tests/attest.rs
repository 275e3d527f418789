//! Signed scorecards on a real git repository holding this repository's
//! scorecard and artifacts: a signature verifies; one changed byte of an
//! artifact, another key, another commit, an added artifact or an edited
//! attestation make verification fail, each naming what.

use std::path::Path;
use std::process::Command;

use caio_workbench::Workspace;
use caio_workbench::attest::{self, Attestation};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=caio", "-c", "user.email=caio@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(status.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&status.stderr));
}

/// A repository with the evidence of this one, committed.
fn repository() -> (tempfile::TempDir, Workspace) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("artifacts")).unwrap();
    std::fs::copy(source.join("scorecard.json"), dir.path().join("scorecard.json")).unwrap();
    for entry in std::fs::read_dir(source.join("artifacts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join("artifacts").join(path.file_name().unwrap())).unwrap();
    }
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "evidence"]);
    let ws = Workspace::new(dir.path());
    (dir, ws)
}

/// A key pair from `seed`, as PEM files in `dir`: (private, public).
fn keys(dir: &Path, seed: u8) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let (private, public) = (dir.join(format!("key-{seed}.pem")), dir.join(format!("key-{seed}.pub.pem")));
    std::fs::write(&private, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(&public, key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    (private, public)
}

#[test]
fn a_signed_scorecard_verifies_and_every_change_is_caught() {
    let (dir, ws) = repository();
    let secrets = tempfile::tempdir().unwrap();
    let (private, public) = keys(secrets.path(), 7);
    let output = dir.path().join("target/scorecard.attestation.json");
    let signed = attest::sign(&ws, &private, &output).unwrap();
    assert_eq!(signed.format, attest::FORMAT);
    assert_eq!(signed.commit.len(), 40);
    assert!(signed.artifacts.len() >= 10 && signed.artifacts.keys().all(|a| a.ends_with(".json")));
    assert!(!std::fs::read_to_string(&output).unwrap().contains("PRIVATE"), "no key in the attestation");
    let verified = attest::verify(&ws, &output, &public, None).unwrap();
    assert_eq!((verified.commit.as_str(), verified.artifacts), (signed.commit.as_str(), signed.artifacts.len()));

    // Another key is not trusted.
    let (_, stranger) = keys(secrets.path(), 8);
    let error = attest::verify(&ws, &output, &stranger, None).unwrap_err().to_string();
    assert!(error.contains("another key"), "{error}");

    // One byte of one artifact.
    let artifact = dir.path().join("artifacts/INV-CAIO-0001.json");
    let original = std::fs::read(&artifact).unwrap();
    let mut edited = original.clone();
    let at = edited.iter().position(|b| b.is_ascii_digit()).unwrap();
    edited[at] = if edited[at] == b'9' { b'8' } else { edited[at] + 1 };
    std::fs::write(&artifact, &edited).unwrap();
    let error = attest::verify(&ws, &output, &public, None).unwrap_err().to_string();
    assert_eq!(error, "artifacts/INV-CAIO-0001.json: differs from the signed artifact");
    std::fs::write(&artifact, &original).unwrap();

    // An artifact that was not signed, and a scorecard that changed.
    std::fs::write(dir.path().join("artifacts/INV-EXTRA.json"), "{}").unwrap();
    std::fs::write(dir.path().join("scorecard.json"), "{}\n").unwrap();
    let error = attest::verify(&ws, &output, &public, None).unwrap_err().to_string();
    assert!(error.contains("scorecard.json: differs from the signed one"), "{error}");
    assert!(error.contains("artifacts/INV-EXTRA.json: is in the tree but was not signed"), "{error}");
    git(dir.path(), &["checkout", "-q", "scorecard.json"]);
    std::fs::remove_file(dir.path().join("artifacts/INV-EXTRA.json")).unwrap();

    // Another commit: the attestation names the one it was made for.
    std::fs::write(dir.path().join("README"), "later\n").unwrap();
    git(dir.path(), &["add", "README"]);
    git(dir.path(), &["commit", "-q", "-m", "later"]);
    let error = attest::verify(&ws, &output, &public, None).unwrap_err().to_string();
    assert!(error.contains(&format!("attests commit {}", signed.commit)), "{error}");
    attest::verify(&ws, &output, &public, Some("HEAD~1")).unwrap();

    // An attestation edited after signing.
    let mut forged: Attestation = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    forged.decision = "green-ish".into();
    std::fs::write(&output, serde_json::to_string(&forged).unwrap()).unwrap();
    let error = attest::verify(&ws, &output, &public, Some("HEAD~1")).unwrap_err().to_string();
    assert!(error.contains("the signature does not verify"), "{error}");
}

#[test]
fn evidence_that_differs_from_the_commit_is_not_signed_and_bad_keys_are_named() {
    let (dir, ws) = repository();
    let secrets = tempfile::tempdir().unwrap();
    let (private, public) = keys(secrets.path(), 9);
    std::fs::write(dir.path().join("artifacts/INV-CAIO-0002.json"), "{}").unwrap();
    let output = dir.path().join("attestation.json");
    let error = attest::sign(&ws, &private, &output).unwrap_err().to_string();
    assert!(error.contains("the evidence differs from the commit"), "{error}");
    assert!(!output.exists(), "nothing written");
    let error = attest::sign(&ws, &public, &output).unwrap_err().to_string();
    assert!(error.contains("is not an Ed25519 private key in PKCS#8 PEM"), "{error}");
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    let secrets = tempfile::tempdir().unwrap();
    let (private, public) = (secrets.path().join("release.pem"), secrets.path().join("release.pub.pem"));
    // openssl is how docs/verification.md says to make release keys.
    let made = Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&private).status();
    assert!(made.expect("openssl is installed").success());
    let exported =
        Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public).status();
    assert!(exported.unwrap().success());
    let (dir, ws) = repository();
    let output = dir.path().join("attestation.json");
    attest::sign(&ws, &private, &output).unwrap();
    attest::verify(&ws, &output, &public, None).unwrap();
}
