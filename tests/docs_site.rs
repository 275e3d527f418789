//! The repository's own docs site (`cargo xtask docs`): every notebook has a
//! page, every link and anchor resolves inside the site, each invariant links
//! to its verification notebook and artifact, nothing points off the
//! machine; then one page in a real headless Chromium, opened from the file
//! system, checked for its structure (not its pixels).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use caio_workbench::{Workspace, docs};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every value of `attribute="..."` in `html`.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// A scratch directory of this test, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn build(name: &str) -> (Scratch, PathBuf, docs::Report) {
    let dir = std::env::temp_dir().join(format!("caio-docs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("site");
    let report = docs::build(&Workspace::new(root()), &out).unwrap();
    (Scratch(dir), out, report)
}

#[test]
fn every_notebook_has_a_page_and_every_link_resolves_inside_the_site() {
    let (_dir, out, report) = build("links");
    let ws = Workspace::new(root());
    for notebook in ws.notebooks().unwrap() {
        let page = notebook.rel.replace(".ipynb", ".html");
        assert!(report.pages.contains(&page), "{} has no page", notebook.rel);
    }
    let pages: BTreeMap<String, String> =
        report.pages.iter().map(|p| (p.clone(), std::fs::read_to_string(out.join(p)).unwrap())).collect();
    let anchors: BTreeMap<&str, BTreeSet<&str>> =
        pages.iter().map(|(p, html)| (p.as_str(), attributes(html, "id").into_iter().collect())).collect();
    let mut checked = 0;
    for (page, html) in &pages {
        let dir = Path::new(page).parent().unwrap();
        for link in attributes(html, "href").into_iter().chain(attributes(html, "src")) {
            assert!(!link.contains("://") && !link.starts_with("//"), "{page} points off the site: {link}");
            if link.starts_with("data:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() { page.clone() } else { normalize(&dir.join(file)) };
            assert!(out.join(&target).is_file(), "{page}: {link} leads nowhere");
            if !anchor.is_empty() {
                assert!(anchors[target.as_str()].contains(anchor), "{page}: {link}: no #{anchor} in {target}");
            }
            checked += 1;
        }
        assert!(html.contains("Content-Security-Policy"), "{page} has no CSP");
    }
    assert!(checked > 500, "only {checked} links checked");
    // Each invariant: on the invariants page, linked to its notebook and its artifact.
    let listing = &pages["invariants.html"];
    for invariant in caio_workbench::verify::load_invariants(&ws).unwrap() {
        let id = &invariant.invariant.id;
        assert!(listing.contains(&format!("<h2 id=\"{id}\">")), "{id} is not on the invariants page");
        let artifact = format!("href=\"artifacts/{id}.json\"");
        assert!(listing.contains(&artifact), "{id} does not link its artifact");
        if invariant.invariant.notebook.ends_with(".ipynb") {
            let page = invariant.invariant.notebook.replace(".ipynb", ".html");
            assert!(listing.contains(&format!("href=\"{page}\"")), "{id} does not link {page}");
            assert!(
                pages[&page].contains(&format!("href=\"../../invariants.html#{id}\"")),
                "{page} does not link back to {id}"
            );
        }
    }
    // Outputs are rendered: the performance notebook's SVG and the tour's HTML table.
    assert!(pages["notebooks/verify/performance.html"].contains("<div class=\"output svg\"><svg"));
    assert!(pages["notebooks/examples/guarantee_tour.html"].contains("<div class=\"output html\"><table>"));
}

/// `a/b/../c` as `a/c`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop().expect("a link climbs out of the site");
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

#[test]
fn a_verification_page_in_chromium_has_the_structure_of_the_site() {
    let Some(mut browser) = caio_testkit::chromium("docs: a page in Chromium") else { return };
    let (_dir, out, report) = build("chromium");
    let url = format!("file://{}", out.join("notebooks/verify/determinism.html").display());
    browser.open(&url).unwrap();
    let structure = browser
        .eval(
            "(() => {
               const box = s => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.top, r.width]; };
               return {
                 title: document.querySelector('main h1').innerText,
                 nav: document.querySelectorAll('nav.site a').length,
                 current: [...document.querySelectorAll('nav.site a[aria-current=page]')].map(a => a.innerText),
                 sections: [...document.querySelectorAll('nav.site h2')].map(h => h.innerText),
                 verifies: [...document.querySelectorAll('aside.verifies td a code')].map(c => c.innerText),
                 code: document.querySelectorAll('section.cell.code pre.source').length,
                 header: box('header'), site: box('nav.site'), main: box('main'), toc: box('nav.toc'),
                 styled: getComputedStyle(document.querySelector('header')).backgroundColor,
               };
             })()",
        )
        .unwrap();
    let notebooks = report.pages.iter().filter(|p| p.starts_with("notebooks/")).count();
    assert_eq!(structure["title"], "INV-CAIO-0001: determinism");
    assert_eq!(structure["nav"], notebooks, "the navigation lists every notebook");
    assert_eq!(structure["current"], serde_json::json!(["INV-CAIO-0001: determinism"]));
    assert_eq!(structure["sections"], serde_json::json!(["CALCULUS", "VERIFICATION", "EXAMPLES"]));
    assert_eq!(structure["verifies"], serde_json::json!(["INV-CAIO-0001"]));
    let notebook = caio_notebook_code_cells(&root().join("notebooks/verify/determinism.ipynb"));
    assert_eq!(structure["code"], notebook, "every code cell is shown");
    assert_eq!(structure["styled"], "rgb(29, 34, 40)", "the stylesheet came from the site");
    let x = |part: &str| structure[part][0].as_f64().unwrap();
    assert!(x("site") < x("main") && x("main") < x("toc"), "navigation, page, contents, left to right: {structure}");
    assert!(structure["header"][1].as_f64().unwrap() < structure["main"][1].as_f64().unwrap());
    // Down the site: the scorecard link works from the file system.
    browser.navigate_by("document.querySelector('nav.top a[href$=\"scorecard.html\"]').click()").unwrap();
    assert!(browser.location().unwrap().ends_with("/site/scorecard.html"));
    let decision = browser.text("main h1 .badge").unwrap().unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("scorecard.json")).unwrap()).unwrap();
    assert_eq!(decision, committed["decision"].as_str().unwrap());
    let shot = out.join("page.png");
    browser.screenshot(&shot).unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    let off_site: Vec<&String> = browser.requests().iter().filter(|u| !u.starts_with("file://")).collect();
    assert!(off_site.is_empty(), "the site asked the network for {off_site:?}");
}

/// The code cells of a notebook that a page shows (all but `//| hide`).
fn caio_notebook_code_cells(path: &Path) -> usize {
    let notebook: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    notebook["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .filter(|c| {
            let source: String = c["source"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
            !source.lines().take_while(|l| l.starts_with("//|")).any(|l| l.trim() == "//| hide")
        })
        .count()
}
