//! `extract`, drift detection, hand-edit refusal and `sync`, on temporary
//! copies of the fixture workspace (`tests/fixtures/workspace`).

mod support;

use std::process::Command;

use caio_notebook::{Cell, Notebook};
use caio_workbench::extract::{self, Options};
use caio_workbench::sync;
use support::{assert_snapshot, read, workspace, write};

const SHAPES: &str = "crates/demo/src/shapes.rs";
const LIB: &str = "crates/demo/src/lib.rs";

fn extract(ws: &caio_workbench::Workspace) -> extract::Report {
    extract::run(ws, Options::default()).unwrap_or_else(|e| panic!("extract failed: {e}"))
}

fn check(ws: &caio_workbench::Workspace) -> Result<(), String> {
    extract::run(ws, Options { check: true, force: false }).map(|_| ()).map_err(|e| e.to_string())
}

/// Replaces text in one cell of a notebook, as an edit in Jupyter would.
fn edit_cell(ws: &caio_workbench::Workspace, rel: &str, id: &str, from: &str, to: &str) {
    let mut notebook = Notebook::load(&ws.path(rel)).unwrap();
    let cell = notebook.cells.iter_mut().find(|c| c.id() == Some(id)).unwrap();
    let Cell::Code(code) = cell else { panic!("{id} is not a code cell") };
    let text = code.source.text();
    assert!(text.contains(from), "{id} does not contain {from:?}");
    code.source = caio_notebook::MultilineText::from_text(&text.replace(from, to));
    write(ws, rel, &notebook.to_json());
}

fn cell_source(ws: &caio_workbench::Workspace, rel: &str, id: &str) -> String {
    let notebook = Notebook::load(&ws.path(rel)).unwrap();
    notebook.cells.iter().find(|c| c.id() == Some(id)).unwrap().source().text()
}

#[test]
fn extract_generates_the_crate_and_it_compiles_and_tests() {
    let (dir, ws) = workspace("workspace");
    let report = extract(&ws);
    assert_eq!(report.written, vec![LIB.to_owned(), SHAPES.to_owned()]);
    assert_snapshot("demo_lib.rs", &read(&ws, LIB));
    assert_snapshot("demo_shapes.rs", &read(&ws, SHAPES));

    // The generated crate is real code: its notebook tests run under cargo.
    let target = dir.path().join("target");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet", "--manifest-path"])
        .arg(ws.path("crates/demo/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("2 passed"), "both notebook tests must run:\n{stdout}");

    // Nothing changed, so nothing is written again.
    let again = extract(&ws);
    assert!(again.written.is_empty());
    assert_eq!(again.unchanged, 2);
    check(&ws).unwrap();
}

#[test]
fn check_lists_every_kind_of_drift() {
    let (_dir, ws) = workspace("workspace");
    assert_eq!(
        check(&ws).unwrap_err(),
        "crates/demo/src/lib.rs: missing; it is generated from notebooks/index.ipynb: run `cargo xtask extract`\n\
         crates/demo/src/shapes.rs: missing; it is generated from notebooks/shapes.ipynb: run `cargo xtask extract`"
    );
    extract(&ws);
    edit_cell(&ws, "notebooks/shapes.ipynb", "shapes-4", "x * 2.0", "x + x");
    let before = read(&ws, SHAPES);
    assert_eq!(
        check(&ws).unwrap_err(),
        "crates/demo/src/shapes.rs: out of date with notebooks/shapes.ipynb: run `cargo xtask extract`"
    );
    assert_eq!(read(&ws, SHAPES), before, "--check writes nothing");

    std::fs::remove_file(ws.path("notebooks/shapes.ipynb")).unwrap();
    assert_eq!(
        check(&ws).unwrap_err(),
        "crates/demo/src/lib.rs: out of date with notebooks/index.ipynb: run `cargo xtask extract`\n\
         crates/demo/src/shapes.rs: generated from notebooks/shapes.ipynb, which no longer exports it: run `cargo xtask extract` to remove it"
    );
    let report = extract(&ws);
    assert_eq!(report.removed, vec![SHAPES.to_owned()]);
    assert!(!read(&ws, LIB).contains("pub mod shapes"));
    check(&ws).unwrap();
}

#[test]
fn hand_edits_are_refused_until_synced_or_forced() {
    let (_dir, ws) = workspace("workspace");
    extract(&ws);
    let edited = read(&ws, SHAPES).replace("x * 2.0", "x + x");
    write(&ws, SHAPES, &edited);
    let message = extract::run(&ws, Options::default()).unwrap_err().to_string();
    assert_eq!(
        message,
        "crates/demo/src/shapes.rs: edited by hand (its checksum no longer matches): carry the edits into notebooks/shapes.ipynb with `cargo xtask sync`, or discard them with `cargo xtask extract --force`"
    );
    assert_eq!(read(&ws, SHAPES), edited, "a refused extract leaves the edit in place");
    assert!(check(&ws).unwrap_err().contains("edited by hand"));

    extract::run(&ws, Options { check: false, force: true }).unwrap();
    assert!(!read(&ws, SHAPES).contains("x + x"), "--force discards the edit");
}

#[test]
fn sync_carries_edits_back_and_leaves_extract_clean() {
    let (_dir, ws) = workspace("workspace");
    extract(&ws);
    let notebook_before = Notebook::load(&ws.path("notebooks/shapes.ipynb")).unwrap();
    let edited = read(&ws, SHAPES).replace("x * 2.0", "x + x + crate::shapes::circle_area(0.0)").replace(
        "assert_eq!(Square { side: 2.0 }.area(), 4.0);",
        "// A unit square.\n        assert_eq!(Square { side: 1.0 }.area(), 1.0);",
    );
    write(&ws, SHAPES, &edited);

    let report = sync::run(&ws).unwrap();
    assert_eq!(
        report.cells,
        vec![
            ("notebooks/shapes.ipynb".to_owned(), "shapes-4".to_owned()),
            ("notebooks/shapes.ipynb".to_owned(), "shapes-7".to_owned())
        ]
    );
    assert_eq!(
        cell_source(&ws, "notebooks/shapes.ipynb", "shapes-4"),
        "//| exporti\npub(crate) fn twice(x: f64) -> f64 {\n    x + x + demo::shapes::circle_area(0.0)\n}"
    );
    assert_eq!(
        cell_source(&ws, "notebooks/shapes.ipynb", "shapes-7"),
        "//| test square_area\n// A unit square.\nassert_eq!(Square { side: 1.0 }.area(), 1.0);"
    );
    check(&ws).unwrap();
    let synced = read(&ws, SHAPES);
    assert!(synced.contains("x + x + crate::shapes::circle_area(0.0)"));

    // Ids, other cells and metadata are untouched.
    let notebook_after = Notebook::load(&ws.path("notebooks/shapes.ipynb")).unwrap();
    assert_eq!(notebook_after.cells.len(), notebook_before.cells.len());
    for (before, after) in notebook_before.cells.iter().zip(&notebook_after.cells) {
        assert_eq!(before.id(), after.id());
        if !matches!(before.id(), Some("shapes-4" | "shapes-5" | "shapes-7")) {
            assert_eq!(before, after);
        }
    }
    // Syncing again finds nothing to do.
    assert!(sync::run(&ws).unwrap().cells.is_empty());
}

#[test]
fn sync_refuses_conflicting_edits_and_writes_nothing() {
    let (_dir, ws) = workspace("workspace");
    extract(&ws);
    write(&ws, SHAPES, &read(&ws, SHAPES).replace("x * 2.0", "x + x"));
    edit_cell(&ws, "notebooks/shapes.ipynb", "shapes-4", "x * 2.0", "2.0 * x");
    let notebook = read(&ws, "notebooks/shapes.ipynb");
    let message = sync::run(&ws).unwrap_err().to_string();
    assert_eq!(
        message,
        "notebooks/shapes.ipynb: cell 5 (id shapes-4): was changed in the notebook and in crates/demo/src/shapes.rs since the last extract; copy your edit from crates/demo/src/shapes.rs into the cell by hand, then run `cargo xtask extract --force`"
    );
    assert_eq!(read(&ws, "notebooks/shapes.ipynb"), notebook);
    assert!(read(&ws, SHAPES).contains("x + x"));
}

#[test]
fn sync_refuses_edits_outside_cell_regions() {
    let (_dir, ws) = workspace("workspace");
    extract(&ws);
    write(&ws, SHAPES, &read(&ws, SHAPES).replace("//! Areas of shapes", "//! Surfaces of shapes"));
    let message = sync::run(&ws).unwrap_err().to_string();
    assert!(
        message.starts_with("crates/demo/src/shapes.rs: the lines above the first cell region differ"),
        "{message}"
    );
}

#[test]
fn notebook_problems_name_notebook_cell_and_line() {
    let check_error = |edit: &dyn Fn(&caio_workbench::Workspace), expected: &str| {
        let (_dir, ws) = workspace("workspace");
        edit(&ws);
        let message = extract::run(&ws, Options::default()).unwrap_err().to_string();
        assert_eq!(message, expected);
        assert!(!ws.path(SHAPES).exists(), "a failed extract writes nothing");
    };
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-2", "//| export", "//| exprt"),
        "notebooks/shapes.ipynb: cell 3 (id shapes-2), line 1: unknown directive `exprt`; did you mean `export`?",
    );
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-3", "pub fn circle_area", "//| hide\npub fn circle_area"),
        "notebooks/shapes.ipynb: cell 4 (id shapes-3), line 3: directive `hide` is misplaced: directives must be the first lines of the cell, before any code; move it to the top",
    );
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-4", "pub(crate) fn", "pub fn"),
        "notebooks/shapes.ipynb: cell 5 (id shapes-4), line 2: `exporti` cells are crate-internal: make this item `pub(crate)` or private, or use `//| export` to make it public",
    );
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-3", "radius * radius", "radius * radius +"),
        "notebooks/shapes.ipynb: cell 4 (id shapes-3), line 6: syntax error: unexpected end of input, expected an expression",
    );
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-1", "demo::shapes", "nosuch::shapes"),
        "notebooks/shapes.ipynb: `default_exp nosuch::shapes` names crate `nosuch`, but no crate under crates/ has that name; create crates/nosuch/Cargo.toml or fix the directive",
    );
    check_error(
        &|ws| edit_cell(ws, "notebooks/shapes.ipynb", "shapes-1", "//| default_exp demo::shapes", "// no target"),
        "notebooks/shapes.ipynb: cell 3 (id shapes-2): cell is exported but the notebook has no `//| default_exp <crate>::<module>` cell saying where to",
    );
    check_error(
        &|ws| {
            write(
                ws,
                "notebooks/index.ipynb",
                &read(ws, "notebooks/index.ipynb")
                    .replace("\"language\": \"rust\"", "\"language\": \"python\"")
                    .replace("\"name\": \"rust\"", "\"name\": \"python3\""),
            )
        },
        "notebooks/index.ipynb: kernel `python3` (language `python`) is not the Rust evcxr kernel; select the Rust kernel of evcxr_jupyter, or set metadata.kernelspec to {\"display_name\": \"Rust\", \"language\": \"rust\", \"name\": \"rust\"}",
    );
}

#[test]
fn a_cfg_directive_gates_the_module_declaration() {
    let (_dir, ws) = workspace("workspace");
    edit_cell(
        &ws,
        "notebooks/shapes.ipynb",
        "shapes-1",
        "//| default_exp demo::shapes",
        "//| default_exp demo::shapes\n//| cfg any(test, feature = \"shapes\")",
    );
    extract(&ws);
    assert!(
        read(&ws, LIB).contains("#[cfg(any(test, feature = \"shapes\"))]\n#[rustfmt::skip]\npub mod shapes;\n"),
        "{}",
        read(&ws, LIB)
    );
    assert_eq!(check(&ws), Ok(()));
    let (_dir, ws) = workspace("workspace");
    edit_cell(
        &ws,
        "notebooks/shapes.ipynb",
        "shapes-1",
        "//| default_exp demo::shapes",
        "//| default_exp demo::shapes\n//| cfg feature = ",
    );
    assert_eq!(
        extract::run(&ws, Options::default()).unwrap_err().to_string(),
        "notebooks/shapes.ipynb: cell 2 (id shapes-1): `cfg feature =` is not a cfg predicate; write one as in `#[cfg(...)]`, such as `feature = \"examples\"`"
    );
}

#[test]
fn dep_versions_are_held_to_the_lock_file() {
    let (_dir, ws) = workspace("workspace");
    extract(&ws);
    write(
        &ws,
        "Cargo.lock",
        "version = 4\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.228\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    );
    edit_cell(
        &ws,
        "notebooks/shapes.ipynb",
        "shapes-6",
        "let s",
        ":dep serde = { version = \"1\", features = [\"derive\"] }\nlet s",
    );
    let before = read(&ws, "notebooks/shapes.ipynb");
    assert_eq!(
        check(&ws).unwrap_err(),
        "notebooks/shapes.ipynb: cell 7 (id shapes-6), line 1: `:dep serde` asks for \"1\" but Cargo.lock has 1.0.228: pin it as \"=1.0.228\" (`cargo xtask extract` does)"
    );
    assert_eq!(read(&ws, "notebooks/shapes.ipynb"), before, "--check writes nothing");

    let report = extract(&ws);
    assert_eq!(report.pinned, ["notebooks/shapes.ipynb"]);
    assert!(
        cell_source(&ws, "notebooks/shapes.ipynb", "shapes-6")
            .starts_with(":dep serde = { version = \"=1.0.228\", features = [\"derive\"] }\nlet s")
    );
    check(&ws).unwrap();
}
