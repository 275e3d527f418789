//! `cargo xtask sbom`: a CycloneDX 1.5 bill of materials (JSON) of the
//! `caio` binary: every package it is built from at run time (normal
//! dependencies, for one target platform), with version, package URL,
//! licence expression and the SHA-256 of its `.crate`, and the dependency
//! edges between them.
//!
//! Deterministic: no timestamp, sorted components, a serial number derived
//! from the content, so the same `Cargo.lock` gives the same bytes. It must
//! never list a dev-dependency or a build-only tool as part of the binary.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Workspace;
use crate::deps::{Graph, Package};
use crate::error::Result;
use crate::fsutil;

/// What `sbom` wrote.
#[derive(Debug)]
pub struct Report {
    /// Components listed (the binary's own package excluded).
    pub components: usize,
    /// How many components carry each licence expression.
    pub licenses: BTreeMap<String, usize>,
    /// Bytes written.
    pub bytes: usize,
}

fn purl(package: &Package) -> String {
    format!("pkg:cargo/{}@{}", package.name, package.version)
}

fn component(package: &Package, kind: &str) -> Value {
    let mut component = json!({
        "type": kind,
        "bom-ref": purl(package),
        "name": package.name,
        "version": package.version,
        "purl": purl(package),
    });
    if let Some(description) = &package.description {
        component["description"] = json!(description);
    }
    if let Some(license) = package.spdx_license() {
        component["licenses"] = json!([{"expression": license}]);
    }
    if let Some(checksum) = &package.checksum {
        component["hashes"] = json!([{"alg": "SHA-256", "content": checksum}]);
    }
    if !package.registry {
        component["scope"] = json!("required");
        component["properties"] = json!([{"name": "caio:workspace-member", "value": "true"}]);
    }
    component
}

/// The SBOM of `binary` (a workspace package) for `target`, as bytes.
pub fn document(graph: &Graph, binary: &str, target: &str) -> Result<(Vec<u8>, Report)> {
    let root = graph.member(binary)?;
    let closure = graph.runtime_closure(&root.id);
    let mut listed: Vec<&Package> =
        closure.iter().filter(|id| **id != root.id).filter_map(|id| graph.packages.get(id)).collect();
    listed.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let mut licenses = BTreeMap::new();
    for package in &listed {
        *licenses.entry(package.spdx_license().unwrap_or_else(|| "(none)".into())).or_insert(0) += 1;
    }
    let mut dependencies: Vec<Value> = std::iter::once(root)
        .chain(listed.iter().copied())
        .map(|package| {
            let mut on: Vec<String> = graph
                .normal
                .get(&package.id)
                .into_iter()
                .flatten()
                .filter_map(|id| graph.packages.get(id))
                .map(purl)
                .collect();
            on.sort();
            json!({"ref": purl(package), "dependsOn": on})
        })
        .collect();
    dependencies.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "cargo xtask sbom", "version": env!("CARGO_PKG_VERSION")}]},
            "component": component(root, "application"),
            "properties": [{"name": "cargo:target", "value": target}],
        },
        "components": listed.iter().map(|p| component(p, "library")).collect::<Vec<_>>(),
        "dependencies": dependencies,
    });
    // A serial number (RFC 4122 form) from the content: the same graph, the
    // same document.
    let digest = Sha256::digest(serde_json::to_vec(&bom).unwrap_or_default());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    bom["serialNumber"] =
        json!(format!("urn:uuid:{}-{}-5{}-8{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32]));
    let mut bytes = serde_json::to_vec_pretty(&bom).unwrap_or_default();
    bytes.push(b'\n');
    let report = Report { components: listed.len(), licenses, bytes: bytes.len() };
    Ok((bytes, report))
}

/// Writes the SBOM of `binary` for `target` to `output` (atomically).
pub fn write(ws: &Workspace, binary: &str, target: &str, output: &Path) -> Result<Report> {
    let graph = crate::deps::load(ws, target)?;
    let (bytes, report) = document(&graph, binary, target)?;
    fsutil::write_atomic(output, &bytes)?;
    Ok(report)
}
