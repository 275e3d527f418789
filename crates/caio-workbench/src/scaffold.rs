//! `cargo xtask new-invariant <ID>`: scaffolds an invariant file and its
//! verification notebook. The scaffolded property fails every case until it
//! is replaced, so a scaffold can never pass as evidence.

use caio_notebook::{Cell, CodeCell, Metadata, MultilineText, Notebook, TextCell};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace::Workspace;

/// The files written: (invariant file, notebook).
pub fn new_invariant(ws: &Workspace, id: &str, title: &str) -> Result<(String, String)> {
    if !caio_verify::invariant::is_valid_id(id) {
        return Err(Error::File {
            path: "invariants".into(),
            message: format!("`{id}` is not an invariant id such as INV-CAIO-0001"),
        });
    }
    if title.trim().is_empty() || title.contains(['\n', '\r']) {
        return Err(Error::File { path: "invariants".into(), message: "the title must be one non-empty line".into() });
    }
    let invariant_rel = format!("invariants/{id}.yaml");
    let slug = id.to_lowercase().replace('-', "_");
    let notebook_rel = format!("notebooks/verify/{slug}.ipynb");
    for rel in [&invariant_rel, &notebook_rel] {
        if ws.path(rel).exists() {
            return Err(Error::File {
                path: rel.clone(),
                message: "already exists; pick another id or edit it".into(),
            });
        }
    }
    // A JSON string is a YAML string: colons, quotes and `#` stay text.
    let quoted_title = serde_json::to_string(title).expect("a string serializes");
    let yaml = format!(
        "# {id}: {title}\n\
         id: {id}\n\
         title: {quoted_title}\n\
         claim: >-\n  State precisely what must always hold.\n\
         lemma:\n  assumptions:\n    - What the argument relies on.\n  derivation: >-\n    Why the claim follows from the assumptions.\n\
         severity: critical\n\
         notebook: {notebook_rel}\n\
         checks:\n  - metric: failures\n    op: \"==\"\n    threshold: 0\n    description: No generated case violates the claim.\n"
    );
    // Whatever the title, the file written must be one the workbench reads.
    caio_verify::Invariant::parse(&yaml)
        .map_err(|e| Error::File { path: invariant_rel.clone(), message: format!("would not be valid: {e}") })?;
    let cells = vec![
        markdown(&format!(
            "# {id}: {title}\n\nWhat this notebook checks, on how many generated cases, and what its artifact records.\nThresholds are in `{invariant_rel}`, never here."
        )),
        code(
            ":dep caio-calculus = { path = \"../../crates/caio-calculus\" }\n:dep caio-verify = { path = \"../../crates/caio-verify\" }\n:dep proptest = \"1\"",
        ),
        code(&format!(
            "use caio_verify::{{cases, Artifact}};\n\
             \n\
             const SEED: u64 = 1;\n\
             let inputs = cases::generate(&(0u64..1_000_000), 1000, SEED);\n\
             // Replace this property with the invariant's check: it fails every case until then.\n\
             let tally = cases::tally(&inputs, |_| Err(\"the property of {id} is not written yet\".to_string()));\n\
             Artifact::new(\"{id}\", SEED)\n    .cases(tally.cases, tally.failures)\n    .metric(\"failures\", tally.failures as f64)\n    .evidence(\"failure_examples\", &tally.examples)\n    .write()\n    .unwrap();\n\
             (tally.cases, tally.failures)"
        )),
    ];
    let mut notebook = Notebook {
        cells,
        metadata: serde_json::from_str(r#"{"kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"}, "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""}}"#).expect("valid metadata"),
        nbformat: 4,
        nbformat_minor: 5,
        extra: Metadata::new(),
    };
    crate::clean::clean(&mut notebook);
    fsutil::write_atomic(&ws.path(&notebook_rel), notebook.to_json().as_bytes())?;
    fsutil::write_atomic(&ws.path(&invariant_rel), yaml.as_bytes())?;
    Ok((invariant_rel, notebook_rel))
}

fn markdown(text: &str) -> Cell {
    Cell::Markdown(TextCell {
        id: None,
        source: MultilineText::from_text(text),
        metadata: Metadata::new(),
        extra: Metadata::new(),
    })
}

fn code(text: &str) -> Cell {
    Cell::Code(CodeCell {
        id: None,
        source: MultilineText::from_text(text),
        metadata: Metadata::new(),
        outputs: Vec::new(),
        execution_count: None,
        extra: Metadata::new(),
    })
}
