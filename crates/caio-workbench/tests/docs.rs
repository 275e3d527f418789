//! `cargo xtask docs` on the fixture workspace: hidden cells left out,
//! byte-identical builds, and a directory it did not build never replaced.
//! (The repository's own site, its links and a look in Chromium are tested
//! in tests/docs_site.rs.)

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use caio_workbench::docs;
use support::{workspace, write};

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().display().to_string(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn every_notebook_gets_a_page_without_its_hidden_cells() {
    let (dir, ws) = workspace("workspace");
    let out = dir.path().join("site");
    let report = docs::build(&ws, &out).unwrap();
    assert_eq!(
        report.pages,
        ["index.html", "invariants.html", "notebooks/index.html", "notebooks/shapes.html", "scorecard.html"]
    );
    let page = std::fs::read_to_string(out.join("notebooks/shapes.html")).unwrap();
    assert!(page.contains("<h1 id=\"shapes\">Shapes</h1>"), "{page}");
    assert!(page.contains("circle_area"), "exported cells are shown");
    assert!(!page.contains("internal_detail"), "the `//| hide` cell is left out");
    assert!(!page.contains("//|"), "directive lines are not shown");
    assert!(page.contains("<p class=\"labels\">test <code>square_area</code></p>"), "what a directive means is");
    assert!(page.contains("href=\"../caio.css\""), "links are relative to the page");
    assert!(!page.contains(&dir.path().display().to_string()), "no absolute path");
}

#[test]
fn two_builds_are_byte_identical_and_replace_each_other_whole() {
    let (dir, ws) = workspace("evidence");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    docs::build(&ws, &a).unwrap();
    docs::build(&ws, &b).unwrap();
    assert_eq!(files(&a), files(&b));
    // A stale page of an earlier build does not survive the next one.
    std::fs::write(a.join("stale.html"), "old").unwrap();
    docs::build(&ws, &a).unwrap();
    assert!(!a.join("stale.html").exists());
    assert_eq!(files(&a), files(&b));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".caio-docs"))
        .collect();
    assert!(leftovers.is_empty(), "no staging directory is left: {leftovers:?}");
}

#[test]
fn a_directory_it_did_not_build_is_never_replaced() {
    let (dir, ws) = workspace("workspace");
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let error = docs::build(&ws, &mine).unwrap_err().to_string();
    assert_eq!(
        error,
        "mine: exists and is not a site built by `cargo xtask docs`; nothing was written: choose another --output"
    );
    assert_eq!(std::fs::read_to_string(mine.join("notes.txt")).unwrap(), "keep me");
}

#[test]
fn a_broken_notebook_is_named_and_nothing_is_written() {
    let (dir, ws) = workspace("workspace");
    write(&ws, "notebooks/broken.ipynb", "{\"cells\": [}");
    let out = dir.path().join("site");
    let error = docs::build(&ws, &out).unwrap_err().to_string();
    assert!(error.starts_with("notebooks/broken.ipynb: "), "{error}");
    assert!(!out.exists());
}
