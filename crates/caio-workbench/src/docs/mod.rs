//! `cargo xtask docs`: a static HTML site built from the notebooks.
//!
//! One page per notebook (markdown, code and outputs, `//| hide` cells left
//! out), a navigation of the calculus, verification and example notebooks,
//! an invariants page linking each invariant to the notebook that verifies
//! it and the artifact it produced, and the committed scorecard. Links are
//! relative and nothing is fetched, so the site opens from the file system;
//! its pages forbid scripts and network access. The output is a function of
//! the notebooks, invariants, artifacts and scorecard: no dates, no absolute
//! paths, sorted everywhere.
//!
//! The site is built in memory, written to a temporary directory beside the
//! output and swapped in whole; a directory that was not built by this
//! command is never replaced.

mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use askama::Template;
use caio_notebook::Notebook;

use crate::error::{Error, Result};
use crate::scorecard::{self, Scorecard};
use crate::verify;
use crate::workspace::Workspace;

pub use render::{Heading, escape};

/// Where the site goes by default.
pub const DEFAULT_OUTPUT: &str = "target/docs";

/// The file that marks a directory as a site this command built.
const MARK: &str = ".caio-docs";

const STYLESHEET: &str = include_str!("../../templates/docs/caio.css");

/// A link in the navigation; `href` is relative to the site's root.
#[derive(Debug, Clone)]
struct NavEntry {
    href: String,
    title: String,
    source: String,
    current: bool,
}

#[derive(Debug, Clone)]
struct NavSection {
    name: String,
    anchor: String,
    entries: Vec<NavEntry>,
}

#[derive(Debug, Clone)]
struct CheckView {
    metric: String,
    op: String,
    threshold: String,
    value: String,
    passed: bool,
    severity: &'static str,
    description: String,
}

#[derive(Debug, Clone)]
struct InvariantView {
    id: String,
    title: String,
    claim: String,
    severity: &'static str,
    status: &'static str,
    notebook: String,
    /// The verification notebook's page, relative to the site's root.
    page: Option<String>,
    /// The artifact's copy, relative to the site's root.
    artifact: Option<String>,
    cases: Option<u64>,
    checks: Vec<CheckView>,
}

#[derive(Template)]
#[template(path = "docs/page.html")]
struct Page<'a> {
    title: &'a str,
    root: &'a str,
    decision: &'a str,
    nav: &'a [NavSection],
    toc: &'a [Heading],
    source: Option<&'a str>,
    body: &'a str,
}

#[derive(Template)]
#[template(path = "docs/index.html")]
struct IndexBody<'a> {
    decision: &'a str,
    nav: &'a [NavSection],
    invariants: &'a [InvariantView],
}

#[derive(Template)]
#[template(path = "docs/invariants.html")]
struct InvariantsBody<'a> {
    invariants: &'a [InvariantView],
}

#[derive(Template)]
#[template(path = "docs/scorecard.html")]
struct ScorecardBody<'a> {
    card: &'a Scorecard,
}

#[derive(Template)]
#[template(path = "docs/verifies.html")]
struct VerifiesBody<'a> {
    root: &'a str,
    invariants: &'a [&'a InvariantView],
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every page, relative to the site's root, sorted.
    pub pages: Vec<String>,
    /// Files written, pages included.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

/// The section a notebook belongs to, by its directory under `notebooks/`.
fn section_of(rel: &str) -> (u8, String) {
    let dir = rel.strip_prefix("notebooks/").and_then(|r| r.split_once('/')).map_or("", |(d, _)| d);
    match dir {
        "calculus" => (0, "Calculus".into()),
        "verify" => (1, "Verification".into()),
        "examples" => (2, "Examples".into()),
        "" => (3, "Notebooks".into()),
        other => (4, other.replace(['-', '_'], " ")),
    }
}

fn page_of(rel: &str) -> String {
    rel.strip_suffix(".ipynb").unwrap_or(rel).to_owned() + ".html"
}

/// `../` once per directory of `page`.
fn root_of(page: &str) -> String {
    "../".repeat(page.matches('/').count())
}

fn render_template(template: &impl Template) -> String {
    template.render().expect("the docs templates render")
}

fn load_scorecard(ws: &Workspace) -> Result<Scorecard> {
    let path = ws.path("scorecard.json");
    if path.exists() {
        scorecard::parse(&crate::fsutil::read(&path)?, "scorecard.json")
    } else {
        scorecard::compute(ws)
    }
}

/// Renders the whole site in memory: relative path -> content.
pub fn site(ws: &Workspace) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut notebooks: Vec<(String, Notebook, render::Rendered)> = Vec::new();
    for file in ws.notebooks()? {
        match file.load() {
            Ok(notebook) => {
                let rendered = render::notebook(&notebook);
                notebooks.push((file.rel.clone(), notebook, rendered));
            }
            Err(e) => errors.push(e),
        }
    }
    Error::from_list(errors)?;
    // Index notebooks first in their section, then by path.
    notebooks.sort_by_key(|(rel, _, _)| (section_of(rel), !rel.ends_with("/index.ipynb"), rel.clone()));

    let mut sections: Vec<NavSection> = Vec::new();
    for (rel, _, rendered) in &notebooks {
        let (_, name) = section_of(rel);
        let stem = Path::new(rel).file_stem().map_or(rel.clone(), |s| s.to_string_lossy().into_owned());
        let entry = NavEntry {
            href: page_of(rel),
            title: rendered.title.clone().unwrap_or(stem),
            source: rel.clone(),
            current: false,
        };
        match sections.last_mut() {
            Some(section) if section.name == name => section.entries.push(entry),
            _ => {
                let anchor = name.to_lowercase().replace(' ', "-");
                sections.push(NavSection { name, anchor, entries: vec![entry] });
            }
        }
    }

    let card = load_scorecard(ws)?;
    let decision = card.decision.word();
    let loaded = verify::load_invariants(ws)?;
    let pages: std::collections::BTreeSet<String> = notebooks.iter().map(|(rel, _, _)| rel.clone()).collect();
    let mut invariants = Vec::new();
    for result in &card.invariants {
        let declared = loaded.iter().find(|l| l.invariant.id == result.id).map(|l| &l.invariant);
        let artifact_rel = format!("artifacts/{}.json", result.id);
        let artifact = match std::fs::read(ws.path(&artifact_rel)) {
            Ok(bytes) => {
                files.insert(artifact_rel.clone(), bytes);
                Some(artifact_rel)
            }
            Err(_) => None,
        };
        let checks = result
            .checks
            .iter()
            .map(|check| CheckView {
                metric: check.metric.clone(),
                op: check.op.clone(),
                threshold: check.threshold.to_string(),
                value: check.value_text(),
                passed: check.passed,
                severity: check.severity_word(),
                description: declared
                    .and_then(|d| d.checks.iter().find(|c| c.metric == check.metric))
                    .and_then(|c| c.description.clone())
                    .unwrap_or_default(),
            })
            .collect();
        invariants.push(InvariantView {
            id: result.id.clone(),
            title: result.title.clone(),
            claim: declared.map(|d| d.claim.clone()).unwrap_or_default(),
            severity: result.severity_word(),
            status: result.status.word(),
            notebook: result.notebook.clone(),
            page: pages.contains(&result.notebook).then(|| page_of(&result.notebook)),
            artifact,
            cases: result.cases,
            checks,
        });
    }

    let page = |path: &str, title: &str, toc: &[Heading], source: Option<&str>, body: &str| -> Vec<u8> {
        let mut nav = sections.clone();
        for entry in nav.iter_mut().flat_map(|s| s.entries.iter_mut()) {
            entry.current = entry.href == path;
        }
        let root = root_of(path);
        render_template(&Page { title, root: &root, decision, nav: &nav, toc, source, body }).into_bytes()
    };
    for (rel, _, rendered) in &notebooks {
        let path = page_of(rel);
        let root = root_of(&path);
        let verified: Vec<&InvariantView> = invariants.iter().filter(|i| &i.notebook == rel).collect();
        let mut body = String::new();
        if let Some(first_heading_end) = rendered.body.find("</h1>").filter(|_| !verified.is_empty()) {
            // The box of what this notebook verifies goes right under its title.
            let (head, rest) = rendered.body.split_at(first_heading_end + "</h1>".len());
            body.push_str(head);
            body.push_str(&render_template(&VerifiesBody { root: &root, invariants: &verified }));
            body.push_str(rest);
        } else {
            if !verified.is_empty() {
                body.push_str(&render_template(&VerifiesBody { root: &root, invariants: &verified }));
            }
            body.push_str(&rendered.body);
        }
        let title = rendered.title.clone().unwrap_or_else(|| rel.clone());
        files.insert(path.clone(), page(&path, &title, &rendered.headings, Some(rel), &body));
    }
    let index = render_template(&IndexBody { decision, nav: &sections, invariants: &invariants });
    files.insert("index.html".into(), page("index.html", "Overview", &[], None, &index));
    let listing = render_template(&InvariantsBody { invariants: &invariants });
    let toc: Vec<Heading> =
        invariants.iter().map(|i| Heading { level: 2, id: i.id.clone(), text: i.id.clone() }).collect();
    files.insert("invariants.html".into(), page("invariants.html", "Invariants", &toc, None, &listing));
    let scorecard_body = render_template(&ScorecardBody { card: &card });
    files.insert(
        "scorecard.html".into(),
        page("scorecard.html", "Scorecard", &[], Some("scorecard.json"), &scorecard_body),
    );
    files.insert("caio.css".into(), STYLESHEET.as_bytes().to_vec());
    files.insert(MARK.into(), b"built by `cargo xtask docs`; replaced whole by the next build\n".to_vec());
    Ok(files)
}

/// Builds the site into `out`, replacing an earlier build there.
pub fn build(ws: &Workspace, out: &Path) -> Result<Report> {
    let files = site(ws)?;
    let shown = out.strip_prefix(ws.root()).unwrap_or(out).display().to_string();
    if out.exists() && !out.join(MARK).exists() {
        return Err(Error::File {
            path: shown,
            message:
                "exists and is not a site built by `cargo xtask docs`; nothing was written: choose another --output"
                    .into(),
        });
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), "create", e))?;
    let staging = tempfile::Builder::new()
        .prefix(".caio-docs-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent.display(), "create a directory in", e))?;
    let mut bytes = 0;
    for (rel, content) in &files {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), "create", e))?;
        }
        std::fs::write(&path, content).map_err(|e| Error::io(path.display(), "write", e))?;
        bytes += content.len() as u64;
    }
    let staged: PathBuf = staging.keep();
    if out.exists() {
        let old = parent.join(format!(".caio-docs-old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(|e| Error::io(&shown, "move aside", e))?;
        std::fs::rename(&staged, out).map_err(|e| Error::io(&shown, "write", e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(old.display(), "remove", e))?;
    } else {
        std::fs::rename(&staged, out).map_err(|e| Error::io(&shown, "write", e))?;
    }
    let pages = files.keys().filter(|k| k.ends_with(".html")).cloned().collect();
    Ok(Report { pages, files: files.len(), bytes })
}
