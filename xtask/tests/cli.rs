//! The real `cargo xtask` binary on temporary workspaces: help for every
//! command, exit codes, and one precise message per problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{copy, text};

fn xtask(workspace: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).arg("--workspace").arg(workspace).args(args).output().unwrap()
}

fn fixture_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/workspace");
    copy(&from, dir.path());
    dir
}

#[test]
fn every_command_has_help() {
    for command in [
        "extract",
        "sync",
        "clean",
        "run",
        "verify",
        "scorecard",
        "gate",
        "check",
        "validate",
        "hooks",
        "new-invariant",
        "mutants",
        "fuzz",
        "merge-driver",
        "diff",
        "docs",
        "sbom",
        "licenses",
        "attest",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask")).args([command, "--help"]).output().unwrap();
        assert!(output.status.success(), "{command} --help failed");
        assert!(text(&output.stdout).contains("Usage: cargo xtask"), "{command} --help:\n{}", text(&output.stdout));
    }
}

#[test]
fn usage_errors_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn extract_check_fails_then_extract_fixes_it() {
    let dir = fixture_workspace();
    let output = xtask(dir.path(), &["extract", "--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: crates/demo/src/lib.rs: missing; it is generated from notebooks/index.ipynb: run `cargo xtask extract`\n\
         crates/demo/src/shapes.rs: missing; it is generated from notebooks/shapes.ipynb: run `cargo xtask extract`\n"
    );
    let output = xtask(dir.path(), &["extract"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with(
        "wrote crates/demo/src/lib.rs\nwrote crates/demo/src/shapes.rs\nextract: 2 written, 0 removed, 0 up to date"
    ));
    assert!(xtask(dir.path(), &["extract", "--check"]).status.success());
}

#[test]
fn clean_normalizes_and_check_detects() {
    let dir = fixture_workspace();
    let notebook = dir.path().join("notebooks/index.ipynb");
    let original = std::fs::read_to_string(&notebook).unwrap();
    std::fs::write(
        &notebook,
        original.replace("\"metadata\": {}", "\"metadata\": {\"execution\": {\"iopub.status.busy\": \"2026-01-01\"}}"),
    )
    .unwrap();
    let output = xtask(dir.path(), &["clean", "--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("notebooks/index.ipynb: not clean"), "{}", text(&output.stderr));
    let output = xtask(dir.path(), &["clean", "notebooks/index.ipynb"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(&notebook).unwrap(), original);
}

#[test]
fn invalid_notebooks_fail_with_one_precise_message() {
    let dir = fixture_workspace();
    std::fs::write(dir.path().join("notebooks/broken.ipynb"), "{\n \"cells\": [\n").unwrap();
    let output = xtask(dir.path(), &["extract"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: notebooks/broken.ipynb: line 3, column 0: invalid JSON: EOF while parsing a list; fix the syntax (an unresolved merge conflict?) or restore the file from git\n"
    );
    assert!(!dir.path().join("crates/demo/src/lib.rs").exists(), "nothing is written when any notebook is invalid");
}

fn evidence_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/evidence"), dir.path());
    dir
}

#[test]
fn gate_exit_codes_say_pass_blocked_or_misconfigured() {
    let dir = evidence_workspace();
    // No artifacts yet: yellow, which feature branches accept and main does not.
    let feature = xtask(dir.path(), &["gate", "--branch", "feature/x"]);
    assert_eq!(feature.status.code(), Some(0), "{}", text(&feature.stderr));
    let main = xtask(dir.path(), &["gate", "--branch", "main"]);
    assert_eq!(main.status.code(), Some(1));
    assert!(
        text(&main.stderr)
            .starts_with("error: gate: blocked: branch `main` (rule `main`) accepts green; the scorecard is yellow"),
        "{}",
        text(&main.stderr)
    );
    std::fs::write(dir.path().join("gate.toml"), "[[branch]]\npattern = \"*\"\naccept = \"purple\"\n").unwrap();
    let misconfigured = xtask(dir.path(), &["gate", "--branch", "main"]);
    assert_eq!(misconfigured.status.code(), Some(2));
    assert!(text(&misconfigured.stderr).contains("gate.toml: invalid policy"), "{}", text(&misconfigured.stderr));
}

#[test]
fn an_empty_branch_is_a_usage_error_not_a_match_for_star() {
    let dir = evidence_workspace();
    let output = xtask(dir.path(), &["gate", "--branch", ""]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("--branch: must name a branch"), "{}", text(&output.stderr));
}

#[test]
fn a_zero_timeout_is_refused() {
    let dir = fixture_workspace();
    for command in ["run", "verify", "validate", "mutants"] {
        let output = xtask(dir.path(), &[command, "--timeout", "0"]);
        assert_eq!(output.status.code(), Some(2), "{command}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("--timeout"), "{command}: {}", text(&output.stderr));
    }
}

/// A clone of the fixture that lists `xtask` among its members, as the
/// repository's own manifest does.
fn clone_of_a_caio_workspace() -> tempfile::TempDir {
    let dir = fixture_workspace();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = [\"xtask\"]\nexclude = [\"crates\"]\n")
        .unwrap();
    dir
}

fn xtask_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).current_dir(dir).output().unwrap()
}

#[test]
fn one_xtask_binary_checks_each_clone_it_is_run_in() {
    let (clean, drifted) = (clone_of_a_caio_workspace(), clone_of_a_caio_workspace());
    for clone in [&clean, &drifted] {
        assert!(xtask_in(clone.path(), &["extract"]).status.success());
    }
    let lib = drifted.path().join("crates/demo/src/lib.rs");
    let edited = std::fs::read_to_string(&lib).unwrap() + "// edited by hand\n";
    std::fs::write(&lib, edited).unwrap();
    // From a subdirectory, as cargo finds its workspace.
    let output = xtask_in(&clean.path().join("notebooks"), &["extract", "--check"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = xtask_in(drifted.path(), &["extract", "--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("crates/demo/src/lib.rs"), "{}", text(&output.stderr));
    // Outside any caio workspace, or pointed at something that is not one: a usage error.
    let nowhere = tempfile::tempdir().unwrap();
    let output = xtask_in(nowhere.path(), &["check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("not inside a caio workspace"), "{}", text(&output.stderr));
    for target in [Path::new("/nonexistent"), nowhere.path()] {
        let output = xtask(target, &["check"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert!(text(&output.stderr).contains("not a caio workspace"), "{}", text(&output.stderr));
    }
}

#[test]
fn the_runner_builds_under_cargo_target_dir_one_directory_per_clone() {
    let shared = tempfile::tempdir().unwrap();
    let (first, second) = (evidence_workspace(), evidence_workspace());
    for clone in [&first, &second] {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--workspace")
            .arg(clone.path())
            .args(["--quiet", "run"])
            .env("CARGO_TARGET_DIR", shared.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(!clone.path().join("target/caio-runner/target").exists(), "nothing is built inside the clone");
    }
    let builds: Vec<_> = std::fs::read_dir(shared.path().join("caio-runner")).unwrap().collect();
    assert_eq!(builds.len(), 2, "each clone builds apart, so neither can overwrite the other's crates");
}
