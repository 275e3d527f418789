//! `cargo xtask mutants` on the fixture workspace `tests/fixtures/evidence`:
//! a mutant that breaks the sums is killed, one that changes nothing the
//! checks can see survives, the full set records the score that the
//! scorecard judges, and broken mutant files are refused with their file.

mod support;

use caio_workbench::mutants::{self, MUTANTS_DIR};
use caio_workbench::scorecard::{self, Decision, Status};
use caio_workbench::{Workspace, runner, verify};
use support::{read, workspace, write};

const NOTEBOOK: &str = "notebooks/verify/demo.ipynb";

/// The fixture, verified, with two mutants and the mutation invariant.
fn with_mutants() -> (tempfile::TempDir, Workspace) {
    let (dir, ws) = workspace("evidence");
    std::fs::create_dir_all(ws.path(MUTANTS_DIR)).unwrap();
    write(
        &ws,
        "tests/mutants/wrong-sum.toml",
        "description = \"One addend is off by one.\"\nnotebook = \"notebooks/verify/demo.ipynb\"\nfind = \"(i % 7) + (i % 50))\"\nreplace = \"(i % 7) + (i % 51))\"\nkills = [\"INV-DEMO-0001\"]\n",
    );
    write(
        &ws,
        "tests/mutants/fewer-cases.toml",
        "description = \"Fewer cases, still above every minimum.\"\nnotebook = \"notebooks/verify/demo.ipynb\"\nfind = \"let cases = 2500u64;\"\nreplace = \"let cases = 2400u64;\"\nkills = [\"INV-DEMO-0002\"]\n",
    );
    write(
        &ws,
        "invariants/INV-DEMO-0003.yaml",
        "id: INV-DEMO-0003\ntitle: Evidence that can fail\nclaim: Every mutant is killed.\nlemma: {assumptions: [Mutants are semantic.], derivation: The notebooks notice them.}\nseverity: critical\nnotebook: tests/mutants\nchecks:\n  - {metric: survivors, op: \"==\", threshold: 0}\n",
    );
    let runner = runner::Options { quiet: true, ..runner::Options::default() };
    verify::run(&ws, &verify::Options { runner, ..verify::Options::default() }).unwrap_or_else(|e| panic!("{e}"));
    (dir, ws)
}

fn options(only: &[&str]) -> mutants::Options {
    mutants::Options { only: only.iter().map(|s| s.to_string()).collect(), jobs: 2, quiet: true, ..Default::default() }
}

#[test]
fn mutants_are_judged_by_the_evidence_and_the_score_by_the_scorecard() {
    let (_dir, ws) = with_mutants();
    let before = read(&ws, NOTEBOOK);
    let subset = mutants::run(&ws, &options(&["wrong-sum"])).unwrap();
    assert_eq!(subset.outcomes.len(), 1);
    assert!(subset.outcomes[0].killed, "{:?}", subset.outcomes);
    assert_eq!(subset.outcomes[0].red, ["INV-DEMO-0001"]);
    assert!(!subset.wrote_artifact, "a subset writes nothing");
    assert!(!ws.path("artifacts/INV-DEMO-0003.json").exists());

    let full = mutants::run(&ws, &options(&[])).unwrap();
    let survived: Vec<&str> = full.outcomes.iter().filter(|o| !o.killed).map(|o| o.name.as_str()).collect();
    assert_eq!(survived, ["fewer-cases"]);
    assert!(full.wrote_artifact);
    assert_eq!(read(&ws, NOTEBOOK), before, "the working tree's notebook is never touched");

    let card = scorecard::compute(&ws).unwrap();
    let score = card.invariants.iter().find(|i| i.id == "INV-DEMO-0003").unwrap();
    assert_eq!(score.status, Status::Fail, "one survivor fails `survivors == 0`");
    assert_eq!(card.decision, Decision::Red);

    // Editing a mutated notebook makes the score stale.
    write(&ws, NOTEBOOK, &before.replace("let cases = 2500u64;", "let cases = 2600u64;"));
    let card = scorecard::compute(&ws).unwrap();
    let score = card.invariants.iter().find(|i| i.id == "INV-DEMO-0003").unwrap();
    assert_eq!(score.status, Status::Stale);
    assert!(score.detail.as_deref().unwrap().contains("cargo xtask mutants"), "{:?}", score.detail);
}

#[test]
fn broken_mutants_are_refused_with_their_file() {
    let (_dir, ws) = workspace("evidence");
    std::fs::create_dir_all(ws.path(MUTANTS_DIR)).unwrap();
    let mutant = |find: &str, kills: &str| {
        format!(
            "description = \"x\"\nnotebook = \"notebooks/verify/demo.ipynb\"\nfind = \"{find}\"\nreplace = \"y\"\nkills = [\"{kills}\"]\n"
        )
    };
    write(&ws, "tests/mutants/gone.toml", &mutant("no such text", "INV-DEMO-0001"));
    write(&ws, "tests/mutants/ambiguous.toml", &mutant("cases", "INV-DEMO-0001"));
    write(&ws, "tests/mutants/unknown.toml", &mutant("let cases = 2500u64;", "INV-NOPE-0001"));
    write(&ws, "tests/mutants/typo.toml", "description = \"x\"\nnotebok = \"a\"\n");
    let error = mutants::load(&ws).unwrap_err().to_string();
    for expected in [
        "tests/mutants/gone.toml: `find` does not occur in the code cells of notebooks/verify/demo.ipynb",
        "tests/mutants/ambiguous.toml: `find` occurs",
        "tests/mutants/unknown.toml: kills: `INV-NOPE-0001` is not an invariant",
        "tests/mutants/typo.toml: invalid mutant: unknown field `notebok`",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
    }
    let error = mutants::run(&ws, &options(&["nope"])).unwrap_err().to_string();
    assert!(error.contains("gone.toml"), "a broken mutant stops the run before anything runs: {error}");
}
