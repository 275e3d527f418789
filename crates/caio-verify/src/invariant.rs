//! Invariant files: what is claimed, why it should hold, how bad it is if it
//! does not, where it is verified, and the checks its artifact must pass.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much a failure matters: a critical failure makes the scorecard red,
/// an advisory one yellow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informs, blocks only branches that require green.
    Advisory,
    /// Must hold on every branch that is promoted.
    Critical,
}

/// A comparison of a measured value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Op {
    /// `value <= threshold`
    #[serde(rename = "<=")]
    AtMost,
    /// `value < threshold`
    #[serde(rename = "<")]
    Below,
    /// `value >= threshold`
    #[serde(rename = ">=")]
    AtLeast,
    /// `value > threshold`
    #[serde(rename = ">")]
    Above,
    /// `value == threshold`
    #[serde(rename = "==")]
    Equal,
}

impl Op {
    /// Whether `value op threshold` holds (never for NaN).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::AtMost => value <= threshold,
            Op::Below => value < threshold,
            Op::AtLeast => value >= threshold,
            Op::Above => value > threshold,
            Op::Equal => value == threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::AtMost => "<=",
            Op::Below => "<",
            Op::AtLeast => ">=",
            Op::Above => ">",
            Op::Equal => "==",
        })
    }
}

/// One check of an artifact metric against a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The metric in the artifact.
    pub metric: String,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
    /// The check's own severity; the invariant's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What the check means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why the claim should hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lemma {
    /// What the argument assumes.
    pub assumptions: Vec<String>,
    /// A sketch of the derivation.
    pub derivation: String,
}

/// An invariant of the calculus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Invariant {
    /// `INV-CAIO-0001` and the like; the file is `invariants/<id>.yaml`.
    pub id: String,
    /// A short name.
    pub title: String,
    /// What is claimed.
    pub claim: String,
    /// Why it should hold.
    pub lemma: Lemma,
    /// How bad a failure is.
    pub severity: Severity,
    /// What produces its artifact, relative to the workspace root: a
    /// verification notebook under `notebooks/verify/`, or `tests/mutants`
    /// for the mutation score that `cargo xtask mutants` measures.
    pub notebook: String,
    /// What its artifact must show.
    pub checks: Vec<Check>,
}

/// A problem in an invariant file, at a field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct InvariantError {
    /// The field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Whether `id` has the form `INV-<AREA>-<NNNN>` (areas may nest: `INV-CAIO-SEC-0001`).
pub fn is_valid_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() >= 3
        && parts[0] == "INV"
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Invariant {
    /// Parses and validates an invariant file (YAML).
    pub fn parse(text: &str) -> Result<Invariant, InvariantError> {
        let value: serde_json::Value = serde_saphyr::from_str(text)
            .map_err(|e| InvariantError { path: String::new(), message: format!("invalid YAML: {e}") })?;
        let invariant: Invariant = serde_path_to_error::deserialize(value).map_err(|e| InvariantError {
            path: if e.path().to_string() == "." { String::new() } else { e.path().to_string() },
            message: e.into_inner().to_string(),
        })?;
        invariant.validate()?;
        Ok(invariant)
    }

    fn validate(&self) -> Result<(), InvariantError> {
        let at = |path: String, message: String| Err(InvariantError { path, message });
        if !is_valid_id(&self.id) {
            return at("id".into(), format!("`{}` is not an invariant id such as INV-CAIO-0001", self.id));
        }
        let is_notebook = self.notebook.starts_with("notebooks/verify/") && self.notebook.ends_with(".ipynb");
        if !is_notebook && self.notebook != "tests/mutants" {
            return at(
                "notebook".into(),
                format!("`{}` must be a notebook under notebooks/verify/ (or tests/mutants for the mutation score)", self.notebook),
            );
        }
        if self.checks.is_empty() {
            return at("checks".into(), "an invariant needs at least one check".into());
        }
        for (i, check) in self.checks.iter().enumerate() {
            if !check.threshold.is_finite() {
                return at(format!("checks[{i}].threshold"), "must be a finite number".into());
            }
            if check.metric.trim().is_empty() {
                return at(format!("checks[{i}].metric"), "must not be empty".into());
            }
        }
        Ok(())
    }

    /// The severity of a check (its own, or the invariant's).
    pub fn check_severity(&self, check: &Check) -> Severity {
        check.severity.unwrap_or(self.severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "id: INV-CAIO-0001\ntitle: t\nclaim: c\nlemma: {assumptions: [a], derivation: d}\nseverity: critical\nnotebook: notebooks/verify/x.ipynb\nchecks:\n  - {metric: m, op: '==', threshold: 0}\n  - {metric: p99, op: '<=', threshold: 1.5, severity: advisory}\n";

    #[test]
    fn parses_and_judges() {
        let invariant = Invariant::parse(VALID).unwrap();
        assert_eq!(invariant.checks[0].op, Op::Equal);
        assert_eq!(invariant.check_severity(&invariant.checks[0]), Severity::Critical);
        assert_eq!(invariant.check_severity(&invariant.checks[1]), Severity::Advisory);
        assert!(Op::AtMost.holds(1.5, 1.5) && !Op::Below.holds(1.5, 1.5) && !Op::AtMost.holds(f64::NAN, 1.0));
        assert!(is_valid_id("INV-CAIO-SEC-0001") && !is_valid_id("INV-caio-1") && !is_valid_id("X-CAIO-0001"));
    }

    #[test]
    fn problems_name_the_field() {
        let check = |text: &str, expected: &str| assert_eq!(Invariant::parse(text).unwrap_err().to_string(), expected);
        check(
            &VALID.replace("op: '=='", "op: '~'"),
            "checks[0].op: unknown variant `~`, expected one of `<=`, `<`, `>=`, `>`, `==`",
        );
        check(
            &VALID.replace("severity: critical", "severity: major"),
            "severity: unknown variant `major`, expected `advisory` or `critical`",
        );
        check(
            &VALID.replace("notebooks/verify/x.ipynb", "x.ipynb"),
            "notebook: `x.ipynb` must be a notebook under notebooks/verify/ (or tests/mutants for the mutation score)",
        );
        check(&VALID.replace("INV-CAIO-0001", "INV-1"), "id: `INV-1` is not an invariant id such as INV-CAIO-0001");
        let nan = Invariant::parse(&VALID.replace("threshold: 0}", "threshold: .nan}")).unwrap_err().to_string();
        assert!(nan.starts_with("invalid YAML: error: line 8 column 38: non-finite float"), "{nan}");
    }
}
