//! `cargo xtask scorecard`: judges the evidence. For each invariant, its
//! artifact's status (pass, fail, stale, missing, invalid) and each check
//! with the measured value and the threshold from the invariant file; the
//! workbench gates; and a decision with its reasons:
//!
//! - **red**: a critical check fails, an artifact is invalid (broken JSON,
//!   NaN or infinity, wrong shape), or generated code has drifted from its
//!   notebooks: the evidence says the code is wrong or cannot be trusted;
//! - **yellow**: an advisory check fails, an artifact is stale or missing,
//!   or notebooks are not clean or not executed: the evidence is incomplete;
//! - **green**: everything holds on fresh evidence.
//!
//! The scorecard is deterministic (no timestamps, sorted), so `scorecard.json`
//! diffs cleanly between commits.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use askama::Template;
use caio_notebook::Cell;
use caio_verify::Severity;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::verify::{self, ArtifactStatus};
use crate::workspace::Workspace;
use crate::{clean, extract, fsutil, mutants};

/// The overall verdict, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Everything holds on fresh evidence.
    Green,
    /// The evidence is incomplete or an advisory check fails.
    Yellow,
    /// A critical check fails or evidence is broken.
    Red,
}

impl Decision {
    /// `green`, `yellow` or `red`.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::Green => "green",
            Decision::Yellow => "yellow",
            Decision::Red => "red",
        }
    }
}

/// The status of one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fresh artifact, every check holds.
    Pass,
    /// Fresh artifact, a check does not hold.
    Fail,
    /// The artifact was computed from other inputs.
    Stale,
    /// No artifact.
    Missing,
    /// The artifact is not valid.
    Invalid,
}

impl Status {
    /// The status as a word.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Stale => "stale",
            Status::Missing => "missing",
            Status::Invalid => "invalid",
        }
    }
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Advisory => "advisory",
    }
}

/// One check, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The metric.
    pub metric: String,
    /// The comparison.
    pub op: String,
    /// The threshold (from the invariant file).
    pub threshold: f64,
    /// The measured value, if the artifact has it.
    pub value: Option<f64>,
    /// The check's severity.
    pub severity: Severity,
    /// Whether it holds.
    pub passed: bool,
}

impl CheckResult {
    /// The measured value as text.
    pub fn value_text(&self) -> String {
        self.value.map_or_else(|| "no value".to_string(), |v| v.to_string())
    }

    /// The severity as a word.
    pub fn severity_word(&self) -> &'static str {
        severity_word(self.severity)
    }
}

/// One invariant, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantResult {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// The notebook that verifies it.
    pub notebook: String,
    /// Its status.
    pub status: Status,
    /// Why it is not passing, when it is not.
    pub detail: Option<String>,
    /// Cases checked by the artifact, when there is one.
    pub cases: Option<u64>,
    /// The checks.
    pub checks: Vec<CheckResult>,
    /// When it fails: the first counterexamples its notebook recorded
    /// (the artifact's `failure_examples`), so a reviewer sees why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counterexamples: Vec<String>,
}

/// How many counterexamples the scorecard shows per invariant.
const COUNTEREXAMPLES_SHOWN: usize = 5;

impl InvariantResult {
    /// How many of its checks hold.
    pub fn checks_holding(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    /// The severity as a word.
    pub fn severity_word(&self) -> &'static str {
        severity_word(self.severity)
    }
}

/// A workbench gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    /// `extraction`, `clean notebooks`, `notebooks executed` or `artifacts`.
    pub name: String,
    /// Whether it holds.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// The scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The verdict.
    pub decision: Decision,
    /// Why it is not green, one sentence per problem, sorted.
    pub reasons: Vec<String>,
    /// Workbench gates.
    pub gates: Vec<GateResult>,
    /// Invariants, by id.
    pub invariants: Vec<InvariantResult>,
}

/// The HTML report (`templates/scorecard.html`).
#[derive(Template)]
#[template(path = "scorecard.html")]
struct Page<'a> {
    card: &'a Scorecard,
}

/// Judges the workspace's evidence.
pub fn compute(ws: &Workspace) -> Result<Scorecard> {
    let mut reasons: Vec<(Decision, String)> = Vec::new();
    let gates =
        vec![gate_extraction(ws, &mut reasons)?, gate_clean(ws, &mut reasons)?, gate_executed(ws, &mut reasons)?];
    let invariants = verify::load_invariants(ws)?;
    let mut digests = BTreeMap::new();
    for (notebook, verified) in verify::notebooks(&invariants) {
        digests.insert(notebook.clone(), verify::inputs_digest(ws, &notebook, &verified)?);
    }
    if invariants.iter().any(|i| i.invariant.notebook == mutants::MUTANTS_DIR) {
        let score_digest = mutants::digest_from(ws, &digests)?;
        digests.insert(mutants::MUTANTS_DIR.to_string(), score_digest);
    }
    let mut results = Vec::new();
    for loaded in &invariants {
        let invariant = &loaded.invariant;
        let status = verify::artifact_status(ws, &invariant.id, &digests[&invariant.notebook]);
        let artifact = match &status {
            ArtifactStatus::Fresh(a) | ArtifactStatus::Stale(a) => Some(a),
            _ => None,
        };
        let checks: Vec<CheckResult> = invariant
            .checks
            .iter()
            .map(|check| {
                let value = artifact.and_then(|a| a.metrics.get(&check.metric).copied());
                CheckResult {
                    metric: check.metric.clone(),
                    op: check.op.to_string(),
                    threshold: check.threshold,
                    value,
                    severity: invariant.check_severity(check),
                    passed: value.is_some_and(|v| check.op.holds(v, check.threshold)),
                }
            })
            .collect();
        let (status, detail) = match &status {
            ArtifactStatus::Missing => (
                Status::Missing,
                Some(format!(
                    "no {}; run `cargo xtask {}`",
                    verify::artifact_path(&invariant.id),
                    if invariant.notebook == mutants::MUTANTS_DIR { "mutants" } else { "verify" }
                )),
            ),
            ArtifactStatus::Invalid(why) => (Status::Invalid, Some(why.clone())),
            ArtifactStatus::Stale(_) => (
                Status::Stale,
                Some(format!(
                    "computed from other inputs; run `cargo xtask {}`",
                    if invariant.notebook == mutants::MUTANTS_DIR { "mutants" } else { "verify" }
                )),
            ),
            ArtifactStatus::Fresh(_) if checks.iter().all(|c| c.passed) => (Status::Pass, None),
            ArtifactStatus::Fresh(_) => {
                let failed: Vec<String> = checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| format!("{} {} {} (measured {})", c.metric, c.op, c.threshold, c.value_text()))
                    .collect();
                (Status::Fail, Some(failed.join("; ")))
            }
        };
        let level = match status {
            Status::Pass => None,
            Status::Invalid => {
                Some(if invariant.severity == Severity::Critical { Decision::Red } else { Decision::Yellow })
            }
            Status::Missing | Status::Stale => Some(Decision::Yellow),
            Status::Fail => Some(if checks.iter().any(|c| !c.passed && c.severity == Severity::Critical) {
                Decision::Red
            } else {
                Decision::Yellow
            }),
        };
        if let Some(level) = level {
            reasons
                .push((level, format!("{} {}: {}", invariant.id, status.word(), detail.clone().unwrap_or_default())));
        }
        let counterexamples = match (&status, artifact) {
            (Status::Fail, Some(a)) => a
                .evidence
                .get("failure_examples")
                .and_then(|v| v.as_array())
                .map(|list| {
                    list.iter()
                        .take(COUNTEREXAMPLES_SHOWN)
                        .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        results.push(InvariantResult {
            counterexamples,
            id: invariant.id.clone(),
            title: invariant.title.clone(),
            severity: invariant.severity,
            notebook: invariant.notebook.clone(),
            status,
            detail,
            cases: artifact.map(|a| a.cases),
            checks,
        });
    }
    let bad_artifacts: Vec<&str> = results
        .iter()
        .filter(|r| r.status != Status::Pass && r.status != Status::Fail)
        .map(|r| r.id.as_str())
        .collect();
    let gates = gates
        .into_iter()
        .chain([GateResult {
            name: "artifacts".into(),
            passed: bad_artifacts.is_empty(),
            detail: if bad_artifacts.is_empty() {
                format!("{} artifacts present, valid and fresh", results.len())
            } else {
                format!("not present, valid and fresh: {}", bad_artifacts.join(", "))
            },
        }])
        .collect();
    reasons.sort();
    let decision = reasons.iter().map(|(level, _)| *level).max().unwrap_or(Decision::Green);
    Ok(Scorecard {
        decision,
        reasons: reasons.into_iter().map(|(level, r)| format!("{}: {r}", level.word())).collect(),
        gates,
        invariants: results,
    })
}

fn gate_extraction(ws: &Workspace, reasons: &mut Vec<(Decision, String)>) -> Result<GateResult> {
    let plan = extract::plan(ws)?;
    let drifts = extract::drift(ws, &plan)?;
    for d in &drifts {
        reasons.push((Decision::Red, format!("extraction: {d}")));
    }
    Ok(GateResult {
        name: "extraction".into(),
        passed: drifts.is_empty(),
        detail: if drifts.is_empty() {
            format!("{} generated files match their notebooks", plan.files.len())
        } else {
            format!("{} files drifted", drifts.len())
        },
    })
}

fn gate_clean(ws: &Workspace, reasons: &mut Vec<(Decision, String)>) -> Result<GateResult> {
    let unclean: Vec<String> =
        clean::unclean(ws)?.into_iter().map(|rel| format!("{rel}: not clean; run `cargo xtask clean`")).collect();
    for problem in &unclean {
        reasons.push((Decision::Yellow, format!("clean notebooks: {problem}")));
    }
    Ok(GateResult {
        name: "clean notebooks".into(),
        passed: unclean.is_empty(),
        detail: if unclean.is_empty() {
            "every notebook is clean".into()
        } else {
            format!("{} notebooks are not clean", unclean.len())
        },
    })
}

/// Every code cell that the runner executes has an execution count, and
/// counts run 1, 2, 3... (a notebook was run top to bottom). A static check:
/// `cargo xtask run --check` re-executes to compare outputs.
fn gate_executed(ws: &Workspace, reasons: &mut Vec<(Decision, String)>) -> Result<GateResult> {
    let mut not_executed = Vec::new();
    let notebooks = ws.notebooks()?;
    for file in &notebooks {
        let notebook = file.load()?;
        let mut expected = 1;
        for (index, cell) in notebook.cells.iter().enumerate() {
            let Cell::Code(code) = cell else { continue };
            let source = code.source.text();
            let runs =
                caio_notebook::directives::parse(&source).map(|d| d.eval).unwrap_or(true) && !source.trim().is_empty();
            if !runs {
                continue;
            }
            if code.execution_count != Some(expected) {
                not_executed.push(format!("{}: cell {} has not been executed in order", file.rel, index + 1));
                break;
            }
            expected += 1;
        }
    }
    for problem in &not_executed {
        reasons.push((Decision::Yellow, format!("notebooks executed: {problem}; run `cargo xtask run`")));
    }
    Ok(GateResult {
        name: "notebooks executed".into(),
        passed: not_executed.is_empty(),
        detail: if not_executed.is_empty() {
            format!("{} notebooks executed top to bottom", notebooks.len())
        } else {
            format!("{} notebooks not executed", not_executed.len())
        },
    })
}

/// The scorecard as `scorecard.json` holds it.
pub fn to_json(card: &Scorecard) -> String {
    let value = serde_json::to_value(card).expect("a scorecard serializes");
    serde_json::to_string_pretty(&value).expect("JSON serializes") + "\n"
}

/// The scorecard as Markdown, for review.
pub fn to_markdown(card: &Scorecard) -> String {
    let mut out = format!("# caio scorecard: {}\n\n", card.decision.word());
    if !card.reasons.is_empty() {
        out.push_str("## Why\n\n");
        for reason in &card.reasons {
            let _ = writeln!(out, "- {reason}");
        }
        out.push('\n');
    }
    out.push_str("## Workbench gates\n\n| gate | status | detail |\n|---|---|---|\n");
    for gate in &card.gates {
        let _ = writeln!(out, "| {} | {} | {} |", gate.name, if gate.passed { "pass" } else { "fail" }, gate.detail);
    }
    out.push_str("\n## Invariants\n\n| invariant | severity | status | checks |\n|---|---|---|---|\n");
    for inv in &card.invariants {
        let checks: Vec<String> = inv
            .checks
            .iter()
            .map(|c| {
                format!(
                    "`{} {} {}`: {} {}",
                    c.metric,
                    c.op,
                    c.threshold,
                    c.value_text(),
                    if c.passed { "✓" } else { "✗" }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {} |",
            inv.id,
            inv.title,
            inv.severity_word(),
            inv.status.word(),
            checks.join("<br>")
        );
    }
    for inv in card.invariants.iter().filter(|i| !i.counterexamples.is_empty()) {
        let _ = writeln!(out, "\n### Counterexamples of {}\n", inv.id);
        for example in &inv.counterexamples {
            let _ = writeln!(out, "- `{example}`");
        }
    }
    out
}

/// The scorecard as an HTML page.
pub fn to_html(card: &Scorecard) -> String {
    Page { card }.render().expect("the scorecard template renders")
}

/// What changed between two scorecards, one line per change.
pub fn diff(old: &Scorecard, new: &Scorecard) -> Vec<String> {
    let mut changes = Vec::new();
    if old.decision != new.decision {
        changes.push(format!("decision: {} -> {}", old.decision.word(), new.decision.word()));
    }
    let old_by_id: BTreeMap<&str, &InvariantResult> = old.invariants.iter().map(|i| (i.id.as_str(), i)).collect();
    let new_by_id: BTreeMap<&str, &InvariantResult> = new.invariants.iter().map(|i| (i.id.as_str(), i)).collect();
    for (id, new_inv) in &new_by_id {
        match old_by_id.get(id) {
            None => changes.push(format!("{id}: new ({})", new_inv.status.word())),
            Some(old_inv) => {
                if old_inv.status != new_inv.status {
                    changes.push(format!("{id}: {} -> {}", old_inv.status.word(), new_inv.status.word()));
                }
                // Checks are compared in order: an invariant may check one metric twice.
                for (before, check) in old_inv.checks.iter().zip(&new_inv.checks) {
                    if before.metric == check.metric
                        && (before.value != check.value || before.threshold != check.threshold)
                    {
                        changes.push(format!(
                            "{id} {}: {} -> {} (threshold {} {})",
                            check.metric,
                            before.value_text(),
                            check.value_text(),
                            check.op,
                            check.threshold
                        ));
                    }
                }
            }
        }
    }
    for id in old_by_id.keys().filter(|id| !new_by_id.contains_key(*id)) {
        changes.push(format!("{id}: removed"));
    }
    for gate in &new.gates {
        if let Some(before) = old.gates.iter().find(|g| g.name == gate.name)
            && before.passed != gate.passed
        {
            changes.push(format!("gate {}: {} -> {}", gate.name, pass_word(before.passed), pass_word(gate.passed)));
        }
    }
    changes
}

fn pass_word(passed: bool) -> &'static str {
    if passed { "pass" } else { "fail" }
}

/// Reads a scorecard from JSON text.
pub fn parse(text: &str, origin: &str) -> Result<Scorecard> {
    serde_json::from_str(text)
        .map_err(|e| Error::File { path: origin.to_string(), message: format!("not a scorecard: {e}") })
}

/// Writes `scorecard.json` (only if it changed). Returns whether it changed.
pub fn write(ws: &Workspace, card: &Scorecard) -> Result<bool> {
    fsutil::write_if_changed(&ws.path("scorecard.json"), &to_json(card))
}

/// Fails unless `scorecard.json` is exactly what the evidence gives.
pub fn check(ws: &Workspace, card: &Scorecard) -> Result<()> {
    let committed = std::fs::read_to_string(ws.path("scorecard.json")).unwrap_or_default();
    if committed == to_json(card) {
        Ok(())
    } else {
        Err(Error::File {
            path: "scorecard.json".into(),
            message: "does not match the evidence: run `cargo xtask scorecard` and commit it".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_ordered_from_best_to_worst() {
        assert!(Decision::Green < Decision::Yellow && Decision::Yellow < Decision::Red);
    }
}
