//! One notebook as an HTML fragment: markdown rendered (CommonMark with
//! tables, headings given anchors), code shown without its `//|` directive
//! lines but with what they mean, and outputs in their richest form (SVG and
//! HTML inline, PNG as a data URI, text escaped).
//!
//! Notebooks are the project's own source, so their HTML outputs are kept as
//! written; the site's Content-Security-Policy forbids scripts and any
//! network access, whatever a page holds. It never reads files.

use std::fmt::Write;

use caio_notebook::directives::{self, Export};
use caio_notebook::{Cell, Notebook, Output};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::Value;

/// A heading of the page, for its table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// 1 to 6.
    pub level: u8,
    /// The anchor.
    pub id: String,
    /// The text.
    pub text: String,
}

/// A rendered notebook.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The first level-1 heading, if any.
    pub title: Option<String>,
    /// The HTML of every shown cell.
    pub body: String,
    /// Headings in order.
    pub headings: Vec<Heading>,
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An anchor from heading text: lower case letters and digits, words
/// joined by `-`, unique within the page.
fn slug(text: &str, taken: &mut Vec<String>) -> String {
    let mut base = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            base.push(c);
        } else if !base.ends_with('-') && !base.is_empty() {
            base.push('-');
        }
    }
    let base = base.trim_end_matches('-').to_owned();
    let base = if base.is_empty() { "section".to_owned() } else { base };
    let id = (0..)
        .map(|n| if n == 0 { base.clone() } else { format!("{base}-{n}") })
        .find(|candidate| !taken.contains(candidate))
        .expect("a free anchor");
    taken.push(id.clone());
    id
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Markdown to HTML; headings get anchors (and are collected), links to
/// notebooks point at their pages.
fn markdown(text: &str, headings: &mut Vec<Heading>, anchors: &mut Vec<String>) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut events: Vec<Event<'_>> = Parser::new_ext(text, options).collect();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { level, id, .. }) = &events[i] {
            let level = *level;
            let mut heading_text = String::new();
            for event in &events[i + 1..] {
                match event {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => heading_text.push_str(t),
                    _ => {}
                }
            }
            let anchor = match id {
                Some(given) => given.to_string(),
                None => slug(&heading_text, anchors),
            };
            headings.push(Heading { level: level_number(level), id: anchor.clone(), text: heading_text });
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(anchor));
            }
        }
        if let Event::Start(Tag::Link { dest_url, .. }) = &mut events[i]
            && !dest_url.contains("://")
            && let Some(stem) = dest_url.strip_suffix(".ipynb")
        {
            *dest_url = CowStr::from(format!("{stem}.html"));
        }
        i += 1;
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Removes ANSI colour codes (tracebacks carry them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        other => other.to_string(),
    }
}

/// One display: the richest representation it carries.
fn display(
    data: &serde_json::Map<String, Value>,
    out: &mut String,
    headings: &mut Vec<Heading>,
    anchors: &mut Vec<String>,
) {
    if let Some(svg) = data.get("image/svg+xml") {
        let _ = write!(out, "<div class=\"output svg\">{}</div>", text_of(svg));
    } else if let Some(html) = data.get("text/html") {
        let _ = write!(out, "<div class=\"output html\">{}</div>", text_of(html));
    } else if let Some(png) = data.get("image/png") {
        let data: String = text_of(png).split_whitespace().collect();
        let _ =
            write!(out, "<div class=\"output image\"><img alt=\"output\" src=\"data:image/png;base64,{data}\"></div>");
    } else if let Some(md) = data.get("text/markdown") {
        let _ = write!(out, "<div class=\"output markdown\">{}</div>", markdown(&text_of(md), headings, anchors));
    } else if let Some(plain) = data.get("text/plain") {
        let _ = write!(out, "<pre class=\"output plain\">{}</pre>", escape(&text_of(plain)));
    }
}

/// Renders a notebook; `//| hide` cells are left out.
pub fn notebook(notebook: &Notebook) -> Rendered {
    let mut body = String::new();
    let mut headings = Vec::new();
    let mut anchors = Vec::new();
    for cell in &notebook.cells {
        match cell {
            Cell::Markdown(text) => {
                let _ = writeln!(
                    body,
                    "<section class=\"cell markdown\">{}</section>",
                    markdown(&text.source.text(), &mut headings, &mut anchors)
                );
            }
            Cell::Raw(text) => {
                let _ =
                    writeln!(body, "<section class=\"cell raw\"><pre>{}</pre></section>", escape(&text.source.text()));
            }
            Cell::Code(code) => {
                let source = code.source.text();
                let parsed = directives::parse(&source).unwrap_or_default();
                if parsed.hide {
                    continue;
                }
                let mut labels = Vec::new();
                if let Some(target) = &parsed.default_exp {
                    labels.push(format!("module <code>{}</code>", escape(&target.to_string())));
                }
                match parsed.export {
                    Some(Export::Public) => labels.push("exported".to_owned()),
                    Some(Export::Internal) => labels.push("exported, crate-internal".to_owned()),
                    None => {}
                }
                if let Some(name) = &parsed.test {
                    labels.push(match name {
                        Some(name) => format!("test <code>{}</code>", escape(name)),
                        None => "test".to_owned(),
                    });
                }
                if !parsed.eval {
                    labels.push("not run".to_owned());
                }
                let shown: String = source.split_inclusive('\n').skip(parsed.block_lines).collect();
                let _ = write!(body, "<section class=\"cell code\">");
                if !labels.is_empty() {
                    let _ = write!(body, "<p class=\"labels\">{}</p>", labels.join(" · "));
                }
                if !shown.trim().is_empty() {
                    let _ = write!(
                        body,
                        "<pre class=\"source\"><code class=\"language-rust\">{}</code></pre>",
                        escape(shown.trim_end())
                    );
                }
                for output in &code.outputs {
                    match output {
                        Output::Stream(stream) => {
                            let _ = write!(
                                body,
                                "<pre class=\"output {}\">{}</pre>",
                                if stream.name == "stderr" { "stderr" } else { "stdout" },
                                escape(&stream.text.text())
                            );
                        }
                        Output::DisplayData(d) => display(&d.data, &mut body, &mut headings, &mut anchors),
                        Output::ExecuteResult(r) => display(&r.data, &mut body, &mut headings, &mut anchors),
                        Output::Error(e) => {
                            let trace = strip_ansi(&e.traceback.join("\n"));
                            let _ = write!(
                                body,
                                "<pre class=\"output error\">{}: {}\n{}</pre>",
                                escape(&e.ename),
                                escape(&e.evalue),
                                escape(&trace)
                            );
                        }
                    }
                }
                body.push_str("</section>\n");
            }
        }
    }
    let title = headings.iter().find(|h| h.level == 1).map(|h| h.text.clone());
    Rendered { title, body, headings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(cells: serde_json::Value) -> Rendered {
        let value = serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
        notebook(&Notebook::parse(&value.to_string()).unwrap())
    }

    #[test]
    fn markdown_headings_get_anchors_and_notebook_links_their_pages() {
        let r = render(serde_json::json!([
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# The `route` step\n\nSee [rules](rules.ipynb) and [site](https://example.com/x.ipynb).\n\n## Why\n\n## Why\n"}
        ]));
        assert_eq!(r.title.as_deref(), Some("The route step"));
        assert!(r.body.contains("<h1 id=\"the-route-step\">"), "{}", r.body);
        assert!(r.body.contains("href=\"rules.html\""));
        assert!(r.body.contains("href=\"https://example.com/x.ipynb\""), "an absolute link is kept");
        let ids: Vec<_> = r.headings.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["the-route-step", "why", "why-1"]);
    }

    #[test]
    fn code_is_shown_without_directives_and_hidden_cells_are_left_out() {
        let r = render(serde_json::json!([
            {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 1, "source": "//| export\npub fn f() -> u8 { 1 < 2 }",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "<b>\n"}]},
            {"cell_type": "code", "id": "h", "metadata": {}, "execution_count": 2, "source": "//| export\n//| hide\npub fn secret() {}", "outputs": []},
            {"cell_type": "code", "id": "e", "metadata": {}, "execution_count": 3, "source": "1",
             "outputs": [{"output_type": "execute_result", "execution_count": 3, "metadata": {},
                          "data": {"text/plain": "1", "image/svg+xml": "<svg></svg>"}}]}
        ]));
        assert_eq!(r.body.matches("<section class=\"cell code\">").count(), 2);
        assert!(!r.body.contains("secret"));
        assert!(!r.body.contains("//|"));
        assert!(r.body.contains("<p class=\"labels\">exported</p>"));
        assert!(r.body.contains("pub fn f() -&gt; u8 { 1 &lt; 2 }"), "{}", r.body);
        assert!(r.body.contains("<pre class=\"output stdout\">&lt;b&gt;\n</pre>"));
        assert!(r.body.contains("<div class=\"output svg\"><svg></svg></div>"), "the richest form is shown");
        assert!(!r.body.contains(">1</pre>"));
    }

    #[test]
    fn tracebacks_lose_their_colour_codes() {
        assert_eq!(strip_ansi("\u{1b}[31merror\u{1b}[0m: x"), "error: x");
    }
}
