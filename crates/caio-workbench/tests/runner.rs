//! The native runner on the fixture notebooks of `tests/fixtures/runner`:
//! outputs as evcxr shows them, written back deterministically, and every
//! failure located at notebook, cell and line with the notebook untouched.

mod support;

use caio_notebook::{Cell, Notebook};
use caio_workbench::Workspace;
use caio_workbench::runner::{self, Options};
use serde_json::{Value, json};
use support::{copy_dir, fixtures, read};

/// A workspace whose `notebooks/` holds the runner fixtures.
fn runner_workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("runner"), &dir.path().join("notebooks"));
    let ws = Workspace::new(dir.path());
    (dir, ws)
}

fn options(dir: &tempfile::TempDir) -> Options {
    Options { runner_dir: Some(dir.path().join("runner")), quiet: true, jobs: 2, ..Options::default() }
}

fn run(
    ws: &Workspace,
    dir: &tempfile::TempDir,
    names: &[&str],
    options_override: Option<Options>,
) -> Result<Vec<runner::Outcome>, String> {
    let files = ws.notebook_args(&names.iter().map(|n| format!("notebooks/{n}").into()).collect::<Vec<_>>()).unwrap();
    runner::run(ws, &files, &options_override.unwrap_or_else(|| options(dir))).map_err(|e| e.to_string())
}

/// Each code cell's execution count and outputs, as JSON for comparison.
fn outputs(ws: &Workspace, name: &str) -> Vec<Value> {
    let notebook = Notebook::load(&ws.path(&format!("notebooks/{name}"))).unwrap();
    notebook
        .cells
        .iter()
        .filter_map(|c| match c {
            Cell::Code(code) => {
                Some(json!({"count": code.execution_count, "outputs": serde_json::to_value(&code.outputs).unwrap()}))
            }
            _ => None,
        })
        .collect()
}

fn result(count: u64, mime: &str, lines: Value) -> Value {
    json!({"data": {mime: lines}, "execution_count": count, "metadata": {}, "output_type": "execute_result"})
}

fn stream(name: &str, lines: Value) -> Value {
    json!({"name": name, "output_type": "stream", "text": lines})
}

#[test]
fn outputs_are_shown_as_evcxr_shows_them_and_written_back() {
    let (dir, ws) = runner_workspace();
    let outcomes = run(&ws, &dir, &["display.ipynb"], None).unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].changed);
    assert_eq!(
        outputs(&ws, "display.ipynb"),
        vec![
            json!({"count": 1, "outputs": [result(1, "text/plain", json!(["42"]))]}),
            json!({"count": 2, "outputs": [result(2, "text/plain", json!(["\"n=42\""]))]}),
            json!({"count": 3, "outputs": [stream("stdout", json!(["to stdout\n"])), stream("stderr", json!(["to stderr\n"])), result(3, "text/plain", json!(["{\"k\": 42}"]))]}),
            json!({"count": 4, "outputs": [result(4, "text/html", json!(["<b>bold</b>"]))]}),
            json!({"count": null, "outputs": []}),
            json!({"count": 5, "outputs": [stream("stdout", json!(["last: 42\n"])), result(5, "text/plain", json!(["()"]))]}),
        ]
    );

    // Running again changes nothing, byte for byte, and --check agrees.
    let written = read(&ws, "notebooks/display.ipynb");
    let again = run(&ws, &dir, &["display.ipynb"], None).unwrap();
    assert!(!again[0].changed);
    assert_eq!(read(&ws, "notebooks/display.ipynb"), written);
    run(&ws, &dir, &["display.ipynb"], Some(Options { check: true, ..options(&dir) })).unwrap();
}

#[test]
fn check_mode_reports_stale_outputs_and_writes_nothing() {
    let (dir, ws) = runner_workspace();
    let before = read(&ws, "notebooks/path_dep.ipynb");
    let message = run(&ws, &dir, &["path_dep.ipynb"], Some(Options { check: true, ..options(&dir) })).unwrap_err();
    assert_eq!(
        message,
        "notebooks/path_dep.ipynb: its outputs are out of date: run `cargo xtask run` on it and commit the result"
    );
    assert_eq!(read(&ws, "notebooks/path_dep.ipynb"), before);
}

#[test]
fn path_dependencies_resolve_from_the_notebook_directory() {
    let (dir, ws) = runner_workspace();
    run(&ws, &dir, &["path_dep.ipynb"], None).unwrap();
    assert_eq!(
        outputs(&ws, "path_dep.ipynb")[1],
        json!({"count": 2, "outputs": [result(2, "text/plain", json!(["42"]))]})
    );
}

/// Runs a notebook that must fail; returns the message, after checking the
/// notebook file was not touched.
fn failure(name: &str) -> String {
    let (dir, ws) = runner_workspace();
    let before = read(&ws, &format!("notebooks/{name}"));
    let message = run(&ws, &dir, &[name], None).unwrap_err();
    assert_eq!(read(&ws, &format!("notebooks/{name}")), before, "a failed run must leave {name} untouched");
    message
}

#[test]
fn compile_errors_point_at_cell_and_line() {
    let message = failure("compile_error.ipynb");
    assert!(
        message.starts_with("notebooks/compile_error.ipynb: does not compile:\nnotebooks/compile_error.ipynb: cell 2 (id compil-1), line 1: error[E0308]: mismatched types"),
        "{message}"
    );
}

#[test]
fn panics_point_at_cell_and_line_and_stop_the_notebook() {
    let message = failure("panic.ipynb");
    assert_eq!(
        message,
        "notebooks/panic.ipynb: cell 2 (id panic-1), line 3: panicked: index out of bounds: the len is 0 but the index is 3"
    );
}

#[test]
fn question_mark_errors_stop_the_notebook() {
    assert_eq!(
        failure("question_mark.ipynb"),
        "notebooks/question_mark.ipynb: cell 2 (id questi-1): returned an error through `?`: invalid digit found in string"
    );
}

#[test]
fn unsupported_evcxr_commands_are_explicit_errors() {
    assert_eq!(
        failure("unsupported.ipynb"),
        "notebooks/unsupported.ipynb: cell 1 (id unsupp-0), line 2: evcxr command `:vars` is not supported by the native runner (it supports `:dep`); remove it or mark the cell `//| eval: false`"
    );
}

#[test]
fn a_batch_runs_every_notebook_and_reports_every_failure() {
    let (dir, ws) = runner_workspace();
    let message =
        run(&ws, &dir, &["display.ipynb", "panic.ipynb", "path_dep.ipynb", "unsupported.ipynb"], None).unwrap_err();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(lines[0].starts_with("notebooks/unsupported.ipynb: cell 1"), "{message}");
    assert!(lines[1].starts_with("notebooks/panic.ipynb: cell 2"), "{message}");
    // The notebooks that succeeded were written.
    let path_dep = &outputs(&ws, "path_dep.ipynb")[1];
    assert_eq!(path_dep["count"], json!(2), "path_dep.ipynb succeeded, so its outputs are written");
}

#[test]
fn timeouts_stop_runaway_notebooks() {
    let (dir, ws) = runner_workspace();
    let notebook = read(&ws, "notebooks/panic.ipynb")
        .replace("println!(\\\"first\\\");", "loop { std::thread::sleep(std::time::Duration::from_millis(50)); }");
    std::fs::write(ws.path("notebooks/panic.ipynb"), notebook).unwrap();
    let options = Options { timeout: std::time::Duration::from_secs(1), ..options(&dir) };
    let message = run(&ws, &dir, &["panic.ipynb"], Some(options)).unwrap_err();
    assert_eq!(
        message,
        "notebooks/panic.ipynb: cell 1 (id panic-0): did not finish within 1s; the runner stopped it (raise --timeout if it needs longer)"
    );
}

#[test]
fn a_cell_that_prints_without_end_is_cut_and_stopped_promptly() {
    let (dir, ws) = runner_workspace();
    // Prints as fast as it can, forever: megabytes a second.
    let notebook = read(&ws, "notebooks/panic.ipynb")
        .replace("println!(\\\"first\\\");", "loop { println!(\\\"{}\\\", \\\"spam \\\".repeat(200)); }");
    std::fs::write(ws.path("notebooks/panic.ipynb"), notebook).unwrap();
    let options = Options { timeout: std::time::Duration::from_secs(2), max_output: 10_000, ..options(&dir) };
    let started = std::time::Instant::now();
    let message = run(&ws, &dir, &["panic.ipynb"], Some(options)).unwrap_err();
    // Building the notebook program is not part of the limit; running is.
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "took {:?}", started.elapsed());
    assert!(message.contains("did not finish within 2s"), "{message}");
}

#[test]
fn long_output_is_cut_with_a_visible_note() {
    let (dir, ws) = runner_workspace();
    let notebook = read(&ws, "notebooks/panic.ipynb")
        .replace("println!(\\\"first\\\");", "for i in 0..10_000 { println!(\\\"line {i}\\\"); }")
        .replace("let x = v[i];", "let x = v.len() + i;");
    std::fs::write(ws.path("notebooks/panic.ipynb"), notebook).unwrap();
    let options = Options { max_output: 1_000, ..options(&dir) };
    run(&ws, &dir, &["panic.ipynb"], Some(options)).unwrap();
    let first = serde_json::to_string(&outputs(&ws, "panic.ipynb")[0]).unwrap();
    assert!(first.contains("line 0"), "{first}");
    assert!(!first.contains("line 9999"), "the rest is dropped");
    assert!(first.contains("[output truncated: the cell printed more than 1000 bytes"), "{first}");
}

/// The four ways a notebook the runner used to accept failed in Jupyter,
/// each rejected now with evcxr's reason, naming cell, line and variable.
#[test]
fn a_closure_kept_as_a_variable_is_refused_as_evcxr_refuses_it() {
    let message = failure("persist_closure.ipynb");
    assert!(
        message.starts_with("notebooks/persist_closure.ipynb: cell 1 (id persis-0), line 1: The variable `double` is a closure, which cannot be persisted"),
        "{message}"
    );
    assert!(message.contains("Box<dyn Fn(..)>") && message.contains("wrap the code in braces"), "{message}");
}

#[test]
fn a_boxed_closure_borrowing_a_local_is_refused_as_evcxr_refuses_it() {
    let message = failure("persist_closure_borrow.ipynb");
    assert!(message.contains("notebooks/persist_closure_borrow.ipynb: cell 1 (id persis-0), line 2: The variable `size` is a closure, which cannot be persisted"), "{message}");
    assert!(message.contains("borrows local data") && message.contains("move"), "{message}");
}

#[test]
fn a_variable_holding_a_borrow_is_refused_as_evcxr_refuses_it() {
    let message = failure("persist_reference.ipynb");
    assert!(
        message.contains("notebooks/persist_reference.ipynb: cell 1 (id persis-0), line 2: The variable `first` contains a reference with a non-static lifetime, so it can't be persisted"),
        "{message}"
    );
    assert!(message.contains("`words` does not live long enough") && message.contains("wrap the code"), "{message}");
}

#[test]
fn a_borrow_of_a_variable_from_an_earlier_cell_is_refused_as_evcxr_refuses_it() {
    let message = failure("persist_borrow_across_cells.ipynb");
    assert!(
        message.contains("notebooks/persist_borrow_across_cells.ipynb: cell 2 (id persis-1), line 1: The variable `best` contains a reference with a non-static lifetime"),
        "{message}"
    );
    assert!(message.contains("`verdicts` does not live long enough"), "{message}");
}

#[test]
fn the_same_programs_written_for_evcxr_run() {
    let (dir, ws) = runner_workspace();
    run(&ws, &dir, &["persist_fixed.ipynb"], None).expect("owned data, a boxed closure and a braced block persist");
    let shown = outputs(&ws, "persist_fixed.ipynb");
    assert_eq!(shown[0]["outputs"][0]["data"]["text/plain"], json!(["42"]));
    assert_eq!(shown[1]["outputs"][0]["data"]["text/plain"], json!(["Some(3)"]));
    assert_eq!(shown[2]["outputs"][0]["text"], json!(["1\n"]));
}

#[test]
fn verification_notebooks_build_optimized_apart_and_only_when_run() {
    let (dir, ws) = runner_workspace();
    std::fs::create_dir_all(ws.path("notebooks/verify")).unwrap();
    std::fs::copy(ws.path("notebooks/display.ipynb"), ws.path("notebooks/verify/display.ipynb")).unwrap();
    let target = dir.path().join("runner-target");
    let opts = || Options { target_dir: Some(target.clone()), ..options(&dir) };

    // A run without verification notebooks builds nothing optimized (a
    // name that starts like one does not make a notebook one).
    std::fs::copy(ws.path("notebooks/display.ipynb"), ws.path("notebooks/verify-speed.ipynb")).unwrap();
    run(&ws, &dir, &["display.ipynb", "verify-speed.ipynb"], Some(opts())).unwrap();
    assert!(target.join("debug").join("nb-display").is_file());
    assert!(target.join("debug").join("nb-verify-speed").is_file());
    assert!(!target.join("verify").exists(), "the optimized profile was built for a run that needs none");

    // A verification notebook builds in its own profile; outputs agree.
    run(&ws, &dir, &["verify/display.ipynb"], Some(opts())).unwrap();
    assert!(target.join("verify").join("nb-verify-display").is_file());
    assert!(!target.join("debug").join("nb-verify-display").exists());
    assert_eq!(outputs(&ws, "verify/display.ipynb"), outputs(&ws, "display.ipynb"));
    let manifest = read(&ws, "runner/Cargo.toml");
    assert!(manifest.contains("[profile.verify]\ninherits = \"dev\"\nopt-level = 2"), "{manifest}");
}
