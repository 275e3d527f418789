//! Checks on the repository itself, so that `cargo test` fails the moment
//! a promise of the project is broken: generated code in step with the
//! notebooks, notebooks clean, every module documented, the calculus pure.

use std::path::{Path, PathBuf};

use caio_workbench::{Workspace, clean, extract};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[test]
fn generated_code_is_in_step_with_the_notebooks() {
    let result = extract::run(&Workspace::new(root()), extract::Options { check: true, force: false });
    if let Err(e) = result {
        panic!("generated code is stale; run `cargo xtask extract` (or `cargo xtask sync`):\n{e}");
    }
}

#[test]
fn notebooks_are_clean() {
    if let Err(e) = clean::run(&Workspace::new(root()), &[], clean::Options { check: true }) {
        panic!("{e}");
    }
}

#[test]
fn gitattributes_route_notebooks_and_generated_files_to_the_drivers() {
    let attributes = std::fs::read_to_string(root().join(".gitattributes")).unwrap();
    for line in caio_workbench::hooks::attribute_lines(&Workspace::new(root())).unwrap() {
        assert!(
            attributes.lines().any(|l| l == line),
            ".gitattributes lacks `{line}`: run `cargo xtask hooks install` and commit .gitattributes"
        );
    }
}

fn rust_files(dirs: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(root().join(dir)).sort_by_file_name().into_iter().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "rs")
                && !path.components().any(|c| c.as_os_str() == "fixtures" || c.as_os_str() == "target")
            {
                files.push(path.to_owned());
            }
        }
    }
    files
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

/// Every crate root and module opens with a `//!` doc saying what it is for
/// (generated files: right after their `@generated` header).
#[test]
fn every_module_starts_with_a_doc_comment() {
    let mut undocumented = Vec::new();
    for file in rust_files(&["crates", "xtask", "tests"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().find(|l| !(l.starts_with("// ") || l.trim().is_empty() || *l == "//"));
        let is_test_or_support = file.components().any(|c| c.as_os_str() == "tests") && !file.ends_with("tests/lib.rs");
        if !first.is_some_and(|l| l.starts_with("//!")) && !is_test_or_support {
            undocumented.push(rel(&file));
        }
    }
    assert!(undocumented.is_empty(), "these files do not start with a `//!` doc comment: {undocumented:?}");
}

/// The calculus is the functional core: no I/O, no clock, no environment, no
/// global randomness. Time and seeds are always arguments.
#[test]
fn the_calculus_does_no_io_and_reads_no_clock() {
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::net",
        "std::io",
        "std::env",
        "std::process",
        "std::time",
        "SystemTime",
        "Instant::now",
        "thread_rng",
        "rand::random",
        "tokio",
        "println!",
        "eprintln!",
        "print!",
        "unsafe",
    ];
    let mut found = Vec::new();
    for file in rust_files(&["crates/caio-calculus/src"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN.iter().filter(|w| code.contains(*w)) {
                found.push(format!("{}:{}: uses `{word}`", rel(&file), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the calculus must stay pure (pass time, seeds and data in as arguments):\n{}",
        found.join("\n")
    );
}

/// The oracle judges the calculus, so it may read the calculus's data types
/// but must never call its decision functions: a bug in `check_match` must
/// not be re-used by the judge of `check_match`.
#[test]
fn the_oracle_uses_only_the_calculus_data_types() {
    const ALLOWED: &[&str] = &[
        // Modules.
        "contract",
        "guarantee",
        "request",
        "rules",
        "score",
        "security",
        "proof",
        "breaker",
        // Types, read as data.
        "Contract",
        "Locality",
        "PermissionMode",
        "Bound",
        "CapabilitiesMode",
        "Request",
        "Sensitivity",
        "RuleSpec",
        "History",
        "ScoreConfig",
        "ServiceHistory",
        "AuthConfig",
        "KeyAlgorithm",
        "Evidence",
        "BreakerConfig",
        "Window",
        "Availability",
        "Health",
        "Weights",
    ];
    let mut found = Vec::new();
    for file in rust_files(&["crates/caio-oracle/src"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        for (at, _) in code.match_indices("caio_calculus::") {
            let rest = &code[at + "caio_calculus::".len()..];
            let path = &rest[..rest.find(';').unwrap_or(rest.len())];
            for word in path.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
                if !ALLOWED.contains(&word) {
                    found.push(format!("{}: caio_calculus::{}", rel(&file), path.trim()));
                    break;
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the oracle may use only the calculus's data types, not its functions:\n{}",
        found.join("\n")
    );
}

/// The shell depends on the core, never the reverse: the calculus's
/// manifest names none of the runtime crates.
#[test]
fn the_core_does_not_depend_on_the_shell() {
    let manifest = std::fs::read_to_string(root().join("crates/caio-calculus/Cargo.toml")).unwrap();
    for shell in ["caio-store", "caio-server", "\"caio\"", "tokio", "axum", "rusqlite", "reqwest"] {
        assert!(
            !manifest.contains(shell),
            "crates/caio-calculus/Cargo.toml depends on `{shell}`: the core must not depend on the shell"
        );
    }
}

/// The test keys and synthetic generators stay out of the runtime: the
/// `examples` module is compiled only for tests and with the `examples`
/// feature, which no runtime crate enables outside its dev-dependencies.
#[test]
fn the_runtime_never_carries_the_example_keys() {
    let lib = std::fs::read_to_string(root().join("crates/caio-calculus/src/lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(any(test, feature = \"examples\"))]\n#[rustfmt::skip]\npub mod examples;"),
        "the examples module must be gated"
    );
    for runtime in ["crates/caio/Cargo.toml", "crates/caio-server/Cargo.toml", "crates/caio-store/Cargo.toml"] {
        let manifest = std::fs::read_to_string(root().join(runtime)).unwrap();
        let dependencies = manifest.split("[dev-dependencies]").next().unwrap();
        assert!(
            !dependencies.contains("examples"),
            "{runtime} enables the examples feature outside its dev-dependencies"
        );
    }
}
