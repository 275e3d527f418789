//! Artifacts: the evidence a verification notebook leaves for one invariant,
//! as `artifacts/<INVARIANT>.json`.
//!
//! The runner hands each notebook the inputs digest it computed (notebook
//! code, invariant files, crate sources, `Cargo.lock`) and where artifacts
//! go, in the environment; the artifact records the digest, so the scorecard
//! can tell a fresh artifact from a stale one. Metrics must be finite: a
//! NaN or an infinity is refused here, and an artifact file holding one is
//! invalid for the scorecard. Writing is atomic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Environment variable with the inputs digest of the running notebook.
pub const DIGEST_ENV: &str = "CAIO_INPUTS_DIGEST";
/// Environment variable with the directory artifacts are written to.
pub const DIR_ENV: &str = "CAIO_ARTIFACTS_DIR";
/// Environment variable with the running notebook, root-relative.
pub const NOTEBOOK_ENV: &str = "CAIO_NOTEBOOK";
/// The digest recorded when a notebook runs outside `cargo xtask verify`
/// (in Jupyter, say): such an artifact is always stale.
pub const UNKNOWN_DIGEST: &str = "unknown: not run by cargo xtask verify";

/// The evidence for one invariant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// The invariant id.
    pub invariant: String,
    /// The notebook that wrote it.
    pub notebook: String,
    /// Digest of everything the result depends on.
    pub inputs_digest: String,
    /// Seed of the generated cases.
    pub seed: u64,
    /// Cases checked.
    pub cases: u64,
    /// Cases that failed.
    pub failures: u64,
    /// Measured values, judged by the invariant's checks. Always finite.
    pub metrics: BTreeMap<String, f64>,
    /// Whatever helps a reviewer: tables, counterexamples, parameters.
    pub evidence: BTreeMap<String, serde_json::Value>,
}

/// Why an artifact cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A metric is NaN or infinite.
    #[error("artifact {invariant}: metric `{metric}` is {value}, not a finite number")]
    NonFinite {
        /// The invariant.
        invariant: String,
        /// The metric.
        metric: String,
        /// Its value.
        value: f64,
    },
    /// The file could not be written.
    #[error("artifact {path}: cannot write: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Artifact {
    /// An empty artifact for `invariant`, with the digest and notebook the
    /// runner handed over (or [`UNKNOWN_DIGEST`] outside the runner).
    pub fn new(invariant: &str, seed: u64) -> Artifact {
        Artifact {
            invariant: invariant.to_string(),
            notebook: std::env::var(NOTEBOOK_ENV).unwrap_or_default(),
            inputs_digest: std::env::var(DIGEST_ENV).unwrap_or_else(|_| UNKNOWN_DIGEST.to_string()),
            seed,
            cases: 0,
            failures: 0,
            metrics: BTreeMap::new(),
            evidence: BTreeMap::new(),
        }
    }

    /// Records the case counts.
    pub fn cases(mut self, cases: u64, failures: u64) -> Artifact {
        self.cases = cases;
        self.failures = failures;
        self
    }

    /// Records a metric.
    pub fn metric(mut self, name: &str, value: f64) -> Artifact {
        self.metrics.insert(name.to_string(), value);
        self
    }

    /// Records a piece of evidence (anything serializable to JSON; JSON has
    /// no NaN, so a non-finite float becomes `null`).
    pub fn evidence(mut self, name: &str, value: impl Serialize) -> Artifact {
        self.evidence.insert(name.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        self
    }

    /// The first metric that is not finite.
    pub fn non_finite(&self) -> Option<(&str, f64)> {
        self.metrics.iter().find(|(_, v)| !v.is_finite()).map(|(k, v)| (k.as_str(), *v))
    }

    /// The artifact as written: pretty JSON with sorted keys and a final newline.
    pub fn to_json(&self) -> String {
        let value = serde_json::to_value(self).expect("an artifact serializes");
        serde_json::to_string_pretty(&value).expect("a JSON value serializes") + "\n"
    }

    /// Writes `artifacts/<invariant>.json` atomically, refusing non-finite
    /// metrics. Returns the path.
    pub fn write(&self) -> Result<PathBuf, ArtifactError> {
        let path = self.write_to(&artifacts_dir())?;
        if std::env::var_os(DIR_ENV).is_none() {
            eprintln!(
                "{}: written to {} (scratch): only `cargo xtask verify` writes the evidence in artifacts/",
                self.invariant,
                path.display()
            );
        }
        Ok(path)
    }

    /// Writes into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, ArtifactError> {
        if let Some((metric, value)) = self.non_finite() {
            return Err(ArtifactError::NonFinite {
                invariant: self.invariant.clone(),
                metric: metric.to_string(),
                value,
            });
        }
        let path = dir.join(format!("{}.json", self.invariant));
        let io = |source| ArtifactError::Io { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        temp.write_all(self.to_json().as_bytes()).map_err(io)?;
        temp.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }
}

/// Where artifacts go: as `cargo xtask verify` says (`CAIO_ARTIFACTS_DIR`),
/// else a scratch directory, `target/caio-jupyter/artifacts` in the nearest
/// directory above the current one that has `invariants/`. A notebook run
/// in Jupyter (or anywhere but `verify`) cannot know the digest of its
/// inputs, so its evidence must never replace the committed one.
pub fn artifacts_dir() -> PathBuf {
    artifacts_dir_from(std::env::var_os(DIR_ENV), &std::env::current_dir().unwrap_or_default())
}

fn artifacts_dir_from(configured: Option<std::ffi::OsString>, cwd: &Path) -> PathBuf {
    if let Some(dir) = configured {
        return PathBuf::from(dir);
    }
    let root = cwd.ancestors().find(|d| d.join("invariants").is_dir()).unwrap_or(cwd);
    root.join("target").join("caio-jupyter").join("artifacts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_refuses_non_finite_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = Artifact::new("INV-TEST-0001", 7).cases(1000, 0).metric("rate", 0.0).evidence("note", "ok");
        let path = artifact.write_to(dir.path()).unwrap();
        let back: Artifact = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, artifact);
        let bad = artifact.clone().metric("p99", f64::INFINITY);
        let error = bad.write_to(dir.path()).unwrap_err().to_string();
        assert_eq!(error, "artifact INV-TEST-0001: metric `p99` is inf, not a finite number");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing half written");
    }

    #[test]
    fn outside_verify_evidence_goes_to_scratch_never_to_artifacts() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("invariants")).unwrap();
        let notebooks = root.path().join("notebooks/verify");
        std::fs::create_dir_all(&notebooks).unwrap();
        let scratch = artifacts_dir_from(None, &notebooks);
        assert_eq!(scratch, root.path().join("target/caio-jupyter/artifacts"));
        Artifact::new("INV-TEST-0001", 7).cases(10, 0).write_to(&scratch).unwrap();
        assert!(!root.path().join("artifacts").exists(), "the committed evidence is untouched");
        let configured = artifacts_dir_from(Some("elsewhere".into()), &notebooks);
        assert_eq!(configured, PathBuf::from("elsewhere"));
    }
}
