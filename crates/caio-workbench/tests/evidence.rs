//! Verification, scorecard and gate on the fixture workspace
//! `tests/fixtures/evidence`: a verification notebook that writes two
//! artifacts with the digest the runner hands over. Each way the evidence
//! can go wrong must show in the scorecard and the gate.

mod support;

use caio_workbench::gate::{self, Policy};
use caio_workbench::scorecard::{self, Decision, Status};
use caio_workbench::{Workspace, runner, verify};
use support::{read, workspace, write};

fn verify_options(dir: &tempfile::TempDir) -> verify::Options {
    let runner =
        runner::Options { runner_dir: Some(dir.path().join("runner")), quiet: true, ..runner::Options::default() };
    verify::Options { runner, ..verify::Options::default() }
}

/// A fixture workspace whose notebook has run through `verify`.
fn verified() -> (tempfile::TempDir, Workspace) {
    let (dir, ws) = workspace("evidence");
    let report = verify::run(&ws, &verify_options(&dir)).unwrap_or_else(|e| panic!("verify failed: {e}"));
    assert_eq!(report.ran, ["notebooks/verify/demo.ipynb"]);
    (dir, ws)
}

fn status(card: &scorecard::Scorecard, id: &str) -> Status {
    card.invariants.iter().find(|i| i.id == id).unwrap().status
}

/// Replaces text in a file of the workspace, as a hand edit would.
fn edit(ws: &Workspace, path: &str, from: &str, to: &str) {
    let text = read(ws, path);
    assert!(text.contains(from), "{path} does not contain {from:?}");
    write(ws, path, &text.replace(from, to));
}

fn gate_passes(card: &scorecard::Scorecard, branch: &str) -> bool {
    gate::judge(&Policy::default(), branch, card).unwrap().passed
}

#[test]
fn verified_evidence_is_green_and_passes_main() {
    let (dir, ws) = verified();
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(card.decision, Decision::Green, "{:?}", card.reasons);
    assert!(gate_passes(&card, "main"));
    // Nothing changed: verify is incremental.
    let again = verify::run(&ws, &verify_options(&dir)).unwrap();
    assert!(again.ran.is_empty());
    assert_eq!(again.fresh, ["notebooks/verify/demo.ipynb"]);
    // The scorecard is deterministic and its reports render.
    assert_eq!(scorecard::to_json(&scorecard::compute(&ws).unwrap()), scorecard::to_json(&card));
    assert!(scorecard::to_markdown(&card).contains("| INV-DEMO-0001 Sums are right | critical | pass |"));
    assert!(scorecard::to_html(&card).contains("<span class=\"decision green\">green</span>"));
}

#[test]
fn an_artifact_with_nan_is_invalid_and_red() {
    let (_dir, ws) = verified();
    edit(&ws, "artifacts/INV-DEMO-0001.json", "\"failures\": 0}", "\"failures\": NaN}");
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(status(&card, "INV-DEMO-0001"), Status::Invalid);
    assert_eq!(card.decision, Decision::Red);
    assert!(!gate_passes(&card, "feature/x"), "red blocks every branch");
}

#[test]
fn an_edited_notebook_makes_its_artifacts_stale_which_blocks_main_and_passes_development() {
    let (_dir, ws) = verified();
    edit(&ws, "notebooks/verify/demo.ipynb", "let cases = 2500u64;", "let cases = 2600u64;");
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(status(&card, "INV-DEMO-0001"), Status::Stale);
    assert_eq!(card.decision, Decision::Yellow);
    assert!(!gate_passes(&card, "main"));
    assert!(gate_passes(&card, "development"));
    let check =
        verify::run(&ws, &verify::Options { check: true, ..verify::Options::default() }).unwrap_err().to_string();
    assert!(
        check.starts_with(
            "artifacts/INV-DEMO-0001.json: stale (its inputs changed since it was computed); run `cargo xtask verify`"
        ),
        "{check}"
    );
}

#[test]
fn a_failing_critical_check_is_red() {
    let (_dir, ws) = verified();
    edit(&ws, "artifacts/INV-DEMO-0001.json", "\"failures\": 0}", "\"failures\": 3}");
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(status(&card, "INV-DEMO-0001"), Status::Fail);
    assert_eq!(card.decision, Decision::Red);
    assert!(
        card.reasons.iter().any(|r| r == "red: INV-DEMO-0001 fail: failures == 0 (measured 3)"),
        "{:?}",
        card.reasons
    );
}

#[test]
fn a_failing_advisory_check_is_yellow_blocking_main_and_passing_development() {
    let (_dir, ws) = verified();
    edit(&ws, "artifacts/INV-DEMO-0002.json", "\"cases\": 2500, \"failures\"", "\"cases\": 1500, \"failures\"");
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(status(&card, "INV-DEMO-0002"), Status::Fail);
    assert_eq!(card.decision, Decision::Yellow, "{:?}", card.reasons);
    assert!(!gate_passes(&card, "main"));
    assert!(gate_passes(&card, "development"));
}

#[test]
fn a_missing_artifact_blocks_main() {
    let (_dir, ws) = verified();
    std::fs::remove_file(ws.path("artifacts/INV-DEMO-0002.json")).unwrap();
    let card = scorecard::compute(&ws).unwrap();
    assert_eq!(status(&card, "INV-DEMO-0002"), Status::Missing);
    assert!(!gate_passes(&card, "main"));
    assert!(!card.gates.iter().find(|g| g.name == "artifacts").unwrap().passed);
}

#[test]
fn scorecard_diff_names_what_changed() {
    let (_dir, ws) = verified();
    let before = scorecard::compute(&ws).unwrap();
    edit(&ws, "artifacts/INV-DEMO-0001.json", "\"failures\": 0}", "\"failures\": 3}");
    let after = scorecard::compute(&ws).unwrap();
    assert_eq!(
        scorecard::diff(&before, &after),
        ["decision: green -> red", "INV-DEMO-0001: pass -> fail", "INV-DEMO-0001 failures: 0 -> 3 (threshold == 0)"]
    );
}

#[test]
fn invalid_invariant_files_name_the_field() {
    let (_dir, ws) = workspace("evidence");
    edit(&ws, "invariants/INV-DEMO-0002.yaml", "op: \">=\", threshold: 1000", "op: \"=>\", threshold: 1000");
    let error = scorecard::compute(&ws).unwrap_err().to_string();
    assert_eq!(
        error,
        "invariants/INV-DEMO-0002.yaml: checks[0].op: unknown variant `=>`, expected one of `<=`, `<`, `>=`, `>`, `==`"
    );
}

#[test]
fn an_unclean_notebook_is_yellow() {
    let (_dir, ws) = verified();
    edit(&ws, "notebooks/verify/demo.ipynb", "\"metadata\": {},", "\"metadata\": {\"scrolled\": true},");
    let card = scorecard::compute(&ws).unwrap();
    assert!(!card.gates.iter().find(|g| g.name == "clean notebooks").unwrap().passed);
    assert!(
        card.reasons.contains(
            &"yellow: clean notebooks: notebooks/verify/demo.ipynb: not clean; run `cargo xtask clean`".to_string()
        ),
        "{:?}",
        card.reasons
    );
    assert!(!gate_passes(&card, "main"));
}

#[test]
fn a_failing_invariant_shows_its_counterexamples() {
    let (_dir, ws) = verified();
    let path = "artifacts/INV-DEMO-0001.json";
    let mut artifact: serde_json::Value = serde_json::from_str(&read(&ws, path)).unwrap();
    artifact["metrics"]["failures"] = serde_json::json!(3);
    let examples: Vec<String> = (0..8).map(|i| format!("seed {i}: 1 + 1 gave 3")).collect();
    artifact["evidence"]["failure_examples"] = serde_json::json!(examples);
    write(&ws, path, &serde_json::to_string_pretty(&artifact).unwrap());
    let card = scorecard::compute(&ws).unwrap();
    let failing = card.invariants.iter().find(|i| i.id == "INV-DEMO-0001").unwrap();
    assert_eq!(failing.counterexamples, examples[..5], "the first five are shown");
    assert!(scorecard::to_markdown(&card).contains("- `seed 0: 1 + 1 gave 3`"));
    assert!(scorecard::to_html(&card).contains("<li><code>seed 4: 1 + 1 gave 3</code></li>"));
    // A passing invariant shows none, whatever its artifact holds.
    let passing = card.invariants.iter().find(|i| i.id != "INV-DEMO-0001").unwrap();
    assert!(passing.counterexamples.is_empty());
}
