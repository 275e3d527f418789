//! The SBOM and the licence policy, on this repository's own dependency
//! graph (offline: `cargo fetch` has brought every crate).

use std::collections::BTreeSet;

use caio_workbench::deps::{self, DEFAULT_TARGET};
use caio_workbench::licenses::{self, Exception, Policy};
use caio_workbench::{Workspace, sbom};
use serde_json::Value;

fn repository() -> Workspace {
    Workspace::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap()
}

#[test]
fn the_sbom_lists_what_the_binary_is_built_from_and_nothing_else() {
    let ws = repository();
    let graph = deps::load(&ws, DEFAULT_TARGET).unwrap();
    let (bytes, report) = sbom::document(&graph, "caio", DEFAULT_TARGET).unwrap();
    let (again, _) = sbom::document(&deps::load(&ws, DEFAULT_TARGET).unwrap(), "caio", DEFAULT_TARGET).unwrap();
    assert_eq!(bytes, again, "the same graph gives the same bytes");

    let bom: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((bom["bomFormat"].as_str(), bom["specVersion"].as_str()), (Some("CycloneDX"), Some("1.5")));
    assert!(bom["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(bom["metadata"].get("timestamp").is_none(), "no timestamp: deterministic");
    assert_eq!(bom["metadata"]["component"]["name"], "caio");
    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), report.components);
    let names: BTreeSet<&str> = components.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for shipped in ["caio-calculus", "caio-server", "caio-store", "axum", "rusqlite", "jsonwebtoken", "askama"] {
        assert!(names.contains(shipped), "{shipped} is in the binary");
    }
    for not_shipped in ["caio-testkit", "criterion", "proptest", "tungstenite", "caio-workbench", "spdx", "tempfile"] {
        assert!(!names.contains(not_shipped), "{not_shipped} is a dev-dependency or a tool, not in the binary");
    }
    let refs: BTreeSet<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .chain([bom["metadata"]["component"]["bom-ref"].as_str().unwrap()])
        .collect();
    for component in components {
        let purl = component["purl"].as_str().unwrap();
        assert_eq!(
            purl,
            format!("pkg:cargo/{}@{}", component["name"].as_str().unwrap(), component["version"].as_str().unwrap())
        );
        let expression =
            component["licenses"][0]["expression"].as_str().unwrap_or_else(|| panic!("{purl} has a licence"));
        spdx::Expression::parse(expression).unwrap_or_else(|e| panic!("{purl}: `{expression}` is strict SPDX: {e}"));
        let from_registry = component.get("scope").is_none();
        if from_registry {
            let hash = component["hashes"][0]["content"].as_str().unwrap_or_else(|| panic!("{purl} has a checksum"));
            assert_eq!(hash.len(), 64, "{purl}");
        }
    }
    let dependencies = bom["dependencies"].as_array().unwrap();
    assert_eq!(dependencies.len(), components.len() + 1, "one entry per component and the binary");
    for entry in dependencies {
        for on in entry["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(on.as_str().unwrap()), "{} depends on {on}, which is listed", entry["ref"]);
        }
    }
    let unknown = deps::load(&ws, DEFAULT_TARGET).unwrap();
    assert!(
        sbom::document(&unknown, "no-such-package", DEFAULT_TARGET).unwrap_err().to_string().contains("no package")
    );
}

#[test]
fn every_dependency_is_allowed_by_deny_toml_and_a_narrower_policy_refuses_some() {
    let ws = repository();
    let report = licenses::run(&ws, DEFAULT_TARGET).unwrap();
    assert!(report.refused.is_empty(), "refused: {:#?}", report.refused);
    assert!(report.checked > 100, "{} packages", report.checked);

    let graph = deps::load(&ws, DEFAULT_TARGET).unwrap();
    let without_mit = Policy { allow: vec!["Apache-2.0".into(), "Unicode-3.0".into()], exceptions: Vec::new() };
    let narrow = licenses::check(&graph, &without_mit);
    let refused: BTreeSet<&str> = narrow.refused.iter().map(|r| r.package.split(' ').next().unwrap()).collect();
    assert!(refused.contains("bytes"), "`bytes` is MIT only: {refused:?}");
    assert!(!refused.contains("serde"), "`serde` may be taken under Apache-2.0");
    let excepted = Policy {
        exceptions: vec![Exception { name: "bytes".into(), allow: vec!["MIT".into()] }],
        ..without_mit.clone()
    };
    let with_exception = licenses::check(&graph, &excepted);
    assert!(with_exception.refused.iter().all(|r| !r.package.starts_with("bytes ")));
    assert_eq!(with_exception.refused.len() + 1, narrow.refused.len());
}

#[test]
fn a_policy_naming_no_spdx_licence_is_refused_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(dir.path().join("deny.toml"), "[licenses]\nallow = [\"MIT\", \"Beerware-ish\"]\n").unwrap();
    let ws = Workspace::new(dir.path());
    let error = licenses::policy(&ws).unwrap_err().to_string();
    assert!(error.starts_with("deny.toml: `Beerware-ish` is not an SPDX licence identifier"), "{error}");
    std::fs::write(dir.path().join("deny.toml"), "[advisories]\n").unwrap();
    assert!(licenses::policy(&ws).unwrap_err().to_string().contains("no [licenses] table"));
}
