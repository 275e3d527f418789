//! `cargo xtask licenses`: every package of the workspace's dependency
//! graph (run-time, build and dev, for one target platform) must carry an
//! SPDX licence expression that the policy allows. The policy is the
//! `[licenses]` table of `deny.toml` (the format of `cargo-deny`, so
//! `cargo deny check licenses` reads the same file): `allow`, a list of
//! SPDX identifiers, and `exceptions`, licences allowed for one crate only.
//!
//! It runs offline. It must never pass a package whose licence it cannot
//! read: a missing or unparsable `license` field is a failure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use spdx::{Expression, Licensee, ParseMode};

use crate::Workspace;
use crate::deps::Graph;
use crate::error::{Error, Result};
use crate::fsutil;

/// The policy file, relative to the workspace root.
pub const POLICY: &str = "deny.toml";

/// The licence policy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Policy {
    /// SPDX identifiers allowed for every package.
    pub allow: Vec<String>,
    /// Licences allowed for one crate only.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

/// A licence allowed for one crate.
#[derive(Debug, Clone, Deserialize)]
pub struct Exception {
    /// The crate.
    pub name: String,
    /// The SPDX identifiers allowed for it.
    pub allow: Vec<String>,
}

#[derive(Deserialize)]
struct PolicyFile {
    licenses: Option<Policy>,
}

/// Reads the policy of `deny.toml`.
pub fn policy(ws: &Workspace) -> Result<Policy> {
    let text = fsutil::read(&ws.path(POLICY))?;
    let file: PolicyFile = toml::from_str(&text)
        .map_err(|e| Error::File { path: POLICY.into(), message: format!("does not parse: {e}") })?;
    let policy = file.licenses.ok_or_else(|| Error::File {
        path: POLICY.into(),
        message: "has no [licenses] table; add `[licenses] allow = [\"MIT\", ...]`".into(),
    })?;
    for id in policy.allow.iter().chain(policy.exceptions.iter().flat_map(|e| &e.allow)) {
        Licensee::parse(id).map_err(|e| Error::File {
            path: POLICY.into(),
            message: format!("`{id}` is not an SPDX licence identifier ({e}); see https://spdx.org/licenses/"),
        })?;
    }
    Ok(policy)
}

/// A package the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `name version`.
    pub package: String,
    /// Its licence field, as written.
    pub license: Option<String>,
    /// Why, and what to do.
    pub reason: String,
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Packages checked (the workspace's own included).
    pub checked: usize,
    /// How many packages carry each expression, as written.
    pub expressions: BTreeMap<String, usize>,
    /// The packages refused.
    pub refused: Vec<Refusal>,
}

fn licensees(ids: &[String]) -> Vec<Licensee> {
    ids.iter().filter_map(|id| Licensee::parse(id).ok()).collect()
}

/// Judges every package of `graph` against `policy`.
pub fn check(graph: &Graph, policy: &Policy) -> Report {
    let allowed = licensees(&policy.allow);
    let mut report = Report::default();
    let in_graph: BTreeSet<&String> = graph.all.keys().collect();
    for package in graph.packages.values().filter(|p| in_graph.contains(&p.id)) {
        report.checked += 1;
        let shown = format!("{} {}", package.name, package.version);
        let Some(license) = &package.license else {
            report.refused.push(Refusal {
                package: shown,
                license: None,
                reason: "has no `license` field; read its licence file and add an exception to deny.toml".into(),
            });
            continue;
        };
        *report.expressions.entry(license.clone()).or_insert(0) += 1;
        // LAX: crates.io still has `MIT/Apache-2.0`, an older way to write OR.
        let expression = match Expression::parse_mode(license, ParseMode::LAX) {
            Ok(expression) => expression,
            Err(e) => {
                report.refused.push(Refusal {
                    package: shown,
                    license: Some(license.clone()),
                    reason: format!("its licence is not an SPDX expression ({e})"),
                });
                continue;
            }
        };
        let excepted: Vec<Licensee> =
            policy.exceptions.iter().filter(|e| e.name == package.name).flat_map(|e| licensees(&e.allow)).collect();
        let permitted = expression.evaluate(|req| allowed.iter().chain(&excepted).any(|l| l.satisfies(req)));
        if !permitted {
            report.refused.push(Refusal {
                package: shown,
                license: Some(license.clone()),
                reason: "no choice of its licences is allowed by deny.toml; replace the crate, or allow the licence \
                         (for it alone: [[licenses.exceptions]]) after a legal review"
                    .into(),
            });
        }
    }
    report
}

/// Loads the graph for `target` and the policy, and checks.
pub fn run(ws: &Workspace, target: &str) -> Result<Report> {
    let policy = policy(ws)?;
    let graph = crate::deps::load(ws, target)?;
    Ok(check(&graph, &policy))
}
