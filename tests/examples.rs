//! The example contracts, policy and requests under `examples/` are real
//! inputs: they parse, every request routes (or fails) the way the snapshot
//! says, and the published JSON Schemas match the types.
//! `UPDATE_EXPECT=1` rewrites the snapshot and the schemas.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use caio_calculus::breaker::Health;
use caio_calculus::contract::{Contract, ContractFile, Format, parse_contracts};
use caio_calculus::examples::{NOW, auth_config, token};
use caio_calculus::registry::Registry;
use caio_calculus::request::{Request, parse_request};
use caio_calculus::route::{Inputs, RouteConfig, route};
use caio_calculus::rules::parse_policy;
use caio_calculus::score::History;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares with a committed file; `UPDATE_EXPECT=1` rewrites it.
fn check_file(rel: &str, actual: &str) {
    let path = root().join(rel);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{rel} is out of date (run with UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn contracts() -> Vec<Contract> {
    files("examples/contracts")
        .iter()
        .flat_map(|path| {
            parse_contracts(&read(path), Format::Yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[test]
fn example_contracts_are_valid_and_realistic() {
    let contracts = contracts();
    assert!(contracts.len() >= 8, "at least 8 example contracts");
    let registry = Registry::from_contracts(contracts).unwrap();
    let adapters: std::collections::BTreeSet<String> =
        registry.entries().map(|e| format!("{:?}", e.contract.api.adapter)).collect();
    assert_eq!(adapters.len(), 2, "both adapters are exemplified");
}

#[test]
fn example_requests_route_as_the_snapshot_says() {
    let registry = Registry::from_contracts(contracts()).unwrap();
    let policy = parse_policy(&read(&root().join("examples/policies/default.yaml")), Format::Yaml).unwrap();
    let config = RouteConfig { auth: auth_config(), score: Default::default(), control: Default::default() };
    let history = History::new();
    let inputs = Inputs {
        registry: &registry,
        policy: &policy,
        history: &history,
        health: &Health::new(),
        config: &config,
        seed: 42,
        now: NOW,
        previous: None,
    };
    let caller = token(&["chat.basic", "cloud.use", "embed.basic", "audio.transcribe", "audio.speak"], 2);
    let mut report = String::new();
    for path in files("examples/requests") {
        let mut request: Request =
            parse_request(&read(&path), Format::Yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        request.token = caller.clone();
        let name = path.file_name().unwrap().to_string_lossy();
        match route(&request, &inputs) {
            Ok(decision) => {
                writeln!(
                    report,
                    "{name}: selected {} (score {:.4})",
                    decision.selected.service, decision.selected.score
                )
                .unwrap();
                for rejection in &decision.rejected {
                    writeln!(report, "  {rejection}").unwrap();
                }
                assert!(decision.proofs.iter().all(caio_calculus::proof::verify));
            }
            Err(error) => writeln!(report, "{name}: {error}").unwrap(),
        }
    }
    check_file("tests/fixtures/expected/example_decisions.txt", &report);
}

#[test]
fn published_json_schemas_match_the_types() {
    let schema = |value: schemars::Schema| serde_json::to_string_pretty(&value).unwrap() + "\n";
    check_file("docs/contract.schema.json", &schema(schemars::schema_for!(Contract)));
    check_file("docs/contract-file.schema.json", &schema(schemars::schema_for!(ContractFile)));
    check_file("docs/request.schema.json", &schema(schemars::schema_for!(Request)));
}
