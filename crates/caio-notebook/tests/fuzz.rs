//! Fuzzing the notebook reader and the directive parser with generated
//! input: whatever the bytes, the answer is a value or a typed error, never
//! a panic, and a notebook that reads writes back to text that reads the
//! same. Cases come from proptest with a fixed seed; `CAIO_FUZZ_CASES` and
//! `CAIO_FUZZ_SEED` widen and move the search (`cargo xtask fuzz`), and a
//! failure is kept in `tests/fixtures/fuzz/` and replayed first from then
//! on.

use caio_notebook::{Notebook, directives};
use proptest::prelude::*;

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz_support;
use fuzz_support::{mutated, runner};


/// A small notebook as Jupyter writes it, to be mutated.
const VALID: &str = r##"{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "id": "a1",
   "metadata": {},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}],
   "source": ["//| export\n", "pub fn f() -> u8 { 1 }"]
  },
  {"cell_type": "markdown", "id": "b2", "metadata": {}, "source": "# Title"}
 ],
 "metadata": {"kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
"##;


fn reads_or_refuses(text: &str) -> Result<(), TestCaseError> {
    if let Ok(notebook) = Notebook::parse(text) {
        let written = notebook.to_json();
        let again = Notebook::parse(&written).map_err(|e| TestCaseError::fail(format!("rewritten text does not read: {e}")))?;
        prop_assert_eq!(again.to_json(), written, "writing is stable");
    }
    Ok(())
}

#[test]
fn the_reader_never_panics_on_mutated_notebooks() {
    runner("notebook_mutations").run(&mutated(VALID.to_string()), |text| reads_or_refuses(&text)).unwrap();
}

#[test]
fn the_reader_never_panics_on_arbitrary_text() {
    runner("notebook_text").run(&any::<String>(), |text| reads_or_refuses(&text)).unwrap();
}

#[test]
fn the_directive_parser_never_panics() {
    let piece = prop_oneof![
        Just("//| ".to_string()),
        Just("//|".to_string()),
        Just("default_exp ".to_string()),
        Just("export".to_string()),
        Just("exporti".to_string()),
        Just("test ".to_string()),
        Just("hide".to_string()),
        Just("eval: false".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("caio_calculus::x".to_string()),
        any::<String>(),
    ];
    let source = proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat());
    runner("directives").run(&source, |source| {
        if let Err(e) = directives::parse(&source) {
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(())
    }).unwrap();
}
