//! The notebook model against real files: Jupyter-written notebooks round
//! trip byte for byte, and every kind of broken file gets one precise message.

use std::path::PathBuf;

use caio_notebook::{Cell, MultilineText, Notebook};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/notebooks").join(name)
}

fn load_error(name: &str) -> String {
    let path = fixture(name);
    let message = Notebook::load(&path).expect_err("fixture is invalid").to_string();
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or_else(|| panic!("error must name the file: {message}")).to_owned()
}

#[test]
fn jupyter_written_notebooks_round_trip_byte_for_byte() {
    for name in ["jupyter_written.ipynb", "minor4_without_ids.ipynb"] {
        let original = std::fs::read_to_string(fixture(name)).unwrap();
        let notebook = Notebook::parse(&original).unwrap();
        assert_eq!(notebook.to_json(), original, "{name} changed on a read/write round trip");
    }
}

#[test]
fn the_form_of_multiline_text_is_kept() {
    // Not Jupyter's layout, so only the content is compared: the source
    // stays one string instead of becoming a list of lines.
    let notebook = Notebook::load(&fixture("string_sources.ipynb")).unwrap();
    let Cell::Code(cell) = &notebook.cells[0] else { panic!("code cell expected") };
    assert_eq!(cell.source, MultilineText::Joined("let a = 1;\nlet b = 2;".into()));
    let again = Notebook::parse(&notebook.to_json()).unwrap();
    assert_eq!(again, notebook);
}

#[test]
fn unknown_fields_survive() {
    let notebook = Notebook::load(&fixture("jupyter_written.ipynb")).unwrap();
    let Cell::Code(cell) = &notebook.cells[1] else { panic!("code cell expected") };
    assert_eq!(cell.extra["custom_field"], serde_json::json!({"kept": true}));
    assert_eq!(notebook.metadata["custom"]["ratio"], serde_json::json!(1e-05));
}

#[test]
fn invalid_json_reports_line_and_column() {
    assert_eq!(
        load_error("invalid_json.ipynb"),
        "line 4, column 2: invalid JSON: expected `,` or `}`; fix the syntax (an unresolved merge conflict?) or restore the file from git"
    );
}

#[test]
fn old_nbformat_is_rejected_with_the_fix() {
    assert_eq!(
        load_error("nbformat3.ipynb"),
        "nbformat 3 is not supported; caio reads nbformat 4 (open and save the notebook in a current Jupyter to upgrade it)"
    );
}

#[test]
fn malformed_cell_is_named() {
    assert_eq!(load_error("malformed_cell.ipynb"), "cell 2 (id broken): malformed cell: missing field `source`");
}

#[test]
fn non_rust_kernel_is_rejected() {
    let notebook = Notebook::load(&fixture("python_kernel.ipynb")).unwrap();
    let message = notebook.check_rust_kernel().unwrap_err().to_string();
    assert!(message.starts_with("kernel `python3` (language `python`) is not the Rust evcxr kernel;"), "{message}");
    let without = Notebook::parse(r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#).unwrap();
    assert!(without.check_rust_kernel().unwrap_err().to_string().starts_with("metadata.kernelspec is missing"));
    Notebook::load(&fixture("jupyter_written.ipynb")).unwrap().check_rust_kernel().unwrap();
}

#[test]
fn structural_problems_are_precise() {
    let check = |json: &str, expected: &str| {
        assert_eq!(Notebook::parse(json).unwrap_err().to_string(), expected, "for {json}");
    };
    check("[]", "the top level must be a JSON object with `cells`, `metadata`, `nbformat` and `nbformat_minor`");
    check(
        r#"{"cells": [], "metadata": {}, "nbformat_minor": 5}"#,
        "`nbformat` is missing; is this a Jupyter notebook?",
    );
    check(
        r#"{"cells": [], "nbformat": 4, "nbformat_minor": 5}"#,
        "`metadata` is missing; a notebook needs at least `\"metadata\": {}`",
    );
    check(
        r#"{"cells": [{"cell_type": "sql", "source": "", "metadata": {}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
        "cell 1: malformed cell: unknown variant `sql`, expected one of `code`, `markdown`, `raw`",
    );
    check(
        r#"{"cells": [{"cell_type": "code", "source": 5, "metadata": {}, "outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
        "cell 1: malformed cell: invalid type: integer `5`, expected a string or a list of strings",
    );
}
