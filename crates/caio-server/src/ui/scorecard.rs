//! The scorecard of the build that is running: `scorecard.json` of the
//! repository, embedded when the binary was compiled, so the dashboard says
//! whether the code serving requests passed its gate.
//!
//! This module must never read a scorecard from disk at run time: what the
//! dashboard shows is what was compiled in.

use serde::Deserialize;

/// The embedded file, as committed beside the code it judges.
pub const EMBEDDED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scorecard.json"));

/// The parts of the scorecard the dashboard shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Scorecard {
    /// `green`, `yellow` or `red`.
    pub decision: String,
    /// Why it is not green.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The workbench's own gates.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// One entry per invariant.
    #[serde(default)]
    pub invariants: Vec<Invariant>,
}

/// A workbench gate.
#[derive(Debug, Clone, Deserialize)]
pub struct Gate {
    /// Its name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it found.
    #[serde(default)]
    pub detail: Option<String>,
}

/// An invariant's verdict.
#[derive(Debug, Clone, Deserialize)]
pub struct Invariant {
    /// `INV-CAIO-0001`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// `pass`, `fail`, ...
    pub status: String,
    /// `critical` or `advisory`.
    pub severity: String,
    /// The verification notebook.
    pub notebook: String,
    /// Cases generated.
    #[serde(default)]
    pub cases: Option<u64>,
    /// Its checks.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// One threshold check.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// The metric.
    pub metric: String,
    /// The comparison.
    pub op: String,
    /// The threshold (from `invariants/*.yaml`).
    pub threshold: f64,
    /// What the artifact measured.
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
    /// `critical` or `advisory`.
    pub severity: String,
}

impl Invariant {
    /// The checks that did not hold.
    pub fn failing(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

/// The embedded scorecard, or why it cannot be read (shown on the page,
/// never a crash).
pub fn embedded() -> Result<Scorecard, String> {
    serde_json::from_str(EMBEDDED).map_err(|e| format!("the embedded scorecard.json does not parse: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_scorecard_is_embedded_and_read() {
        let card = super::embedded().unwrap();
        assert!(["green", "yellow", "red"].contains(&card.decision.as_str()));
        assert!(card.invariants.iter().any(|i| i.id == "INV-CAIO-0001"));
        assert!(!card.gates.is_empty());
    }
}
