//! The workspace's dependency graph as cargo resolves it for one target
//! platform (`cargo metadata --locked --offline --filter-platform`), with
//! each registry package's checksum from `Cargo.lock`: what the SBOM lists
//! and the licence policy judges.
//!
//! This module must never reach the network: it reads what `cargo fetch`
//! already brought, and says so when something is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde::Deserialize;

use crate::Workspace;
use crate::error::{Error, Result};
use crate::fsutil;

/// The platform the SBOM describes unless told otherwise (the release
/// binary's, and CI's).
pub const DEFAULT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// One package of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Cargo's package id (unique, stable for a given lock file).
    pub id: String,
    /// The crate name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its `license` field, an SPDX expression (as written).
    pub license: Option<String>,
    /// Whether it comes from crates.io (otherwise: a workspace member).
    pub registry: bool,
    /// SHA-256 of the `.crate` file, from `Cargo.lock`.
    pub checksum: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

impl Package {
    /// Its licence as a strict SPDX expression: crates.io still has
    /// `MIT/Apache-2.0`, an older way to write `MIT OR Apache-2.0`.
    pub fn spdx_license(&self) -> Option<String> {
        let license = self.license.as_deref()?;
        if spdx::Expression::parse(license).is_ok() {
            return Some(license.to_string());
        }
        Some(license.split('/').map(str::trim).collect::<Vec<_>>().join(" OR "))
    }
}

/// The resolved graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every package, by id.
    pub packages: BTreeMap<String, Package>,
    /// Normal (run-time) dependencies, by id.
    pub normal: BTreeMap<String, BTreeSet<String>>,
    /// Every dependency, normal, build and dev, by id.
    pub all: BTreeMap<String, BTreeSet<String>>,
    /// The workspace members.
    pub members: BTreeSet<String>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetaPackage>,
    resolve: Resolve,
    workspace_members: Vec<String>,
}

#[derive(Deserialize)]
struct MetaPackage {
    id: String,
    name: String,
    version: String,
    license: Option<String>,
    source: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Lock {
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    checksum: Option<String>,
}

/// Resolves the graph for `target`.
pub fn load(ws: &Workspace, target: &str) -> Result<Graph> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", target])
        .arg("--manifest-path")
        .arg(ws.path("Cargo.toml"))
        .output()
        .map_err(|e| Error::io(&cargo, "run", e))?;
    if !output.status.success() {
        return Err(Error::File {
            path: "Cargo.toml".into(),
            message: format!(
                "`cargo metadata` failed (offline: run `cargo fetch` first; `--target` must be a platform rustc knows):\n{}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout).map_err(|e| Error::File {
        path: "Cargo.toml".into(),
        message: format!("`cargo metadata` gave JSON this workbench cannot read: {e}"),
    })?;
    let lock: Lock = toml::from_str(&fsutil::read(&ws.path("Cargo.lock"))?)
        .map_err(|e| Error::File { path: "Cargo.lock".into(), message: format!("does not parse: {e}") })?;
    let checksums: BTreeMap<(String, String), String> =
        lock.package.into_iter().filter_map(|p| Some(((p.name, p.version), p.checksum?))).collect();
    let packages = metadata
        .packages
        .into_iter()
        .map(|p| {
            let checksum = checksums.get(&(p.name.clone(), p.version.clone())).cloned();
            let package = Package {
                registry: p.source.as_deref().is_some_and(|s| s.starts_with("registry+")),
                id: p.id.clone(),
                name: p.name,
                version: p.version,
                license: p.license,
                checksum,
                description: p.description.map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
            };
            (p.id, package)
        })
        .collect();
    let mut normal = BTreeMap::new();
    let mut all = BTreeMap::new();
    for node in metadata.resolve.nodes {
        let runtime: BTreeSet<String> =
            node.deps.iter().filter(|d| d.dep_kinds.iter().any(|k| k.kind.is_none())).map(|d| d.pkg.clone()).collect();
        normal.insert(node.id.clone(), runtime);
        all.insert(node.id, node.deps.into_iter().map(|d| d.pkg).collect());
    }
    Ok(Graph { packages, normal, all, members: metadata.workspace_members.into_iter().collect() })
}

impl Graph {
    /// The member called `name`.
    pub fn member(&self, name: &str) -> Result<&Package> {
        self.members.iter().filter_map(|id| self.packages.get(id)).find(|p| p.name == name).ok_or_else(|| Error::File {
            path: "Cargo.toml".into(),
            message: format!("the workspace has no package `{name}`"),
        })
    }

    /// Everything `root` needs at run time, itself included.
    pub fn runtime_closure(&self, root: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![root.to_string()];
        while let Some(id) = todo.pop() {
            if seen.insert(id.clone()) {
                todo.extend(self.normal.get(&id).into_iter().flatten().cloned());
            }
        }
        seen
    }
}
