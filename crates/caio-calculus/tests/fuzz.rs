//! Fuzzing what crosses the calculus's boundary with generated input:
//! contract, request and policy files (YAML and JSON) and tokens. Whatever
//! the text, the answer is a value or a typed error, never a panic. Cases
//! come from proptest with a fixed seed; `CAIO_FUZZ_CASES` and
//! `CAIO_FUZZ_SEED` widen and move the search (`cargo xtask fuzz`), and a
//! failure is kept in `tests/fixtures/fuzz/` and replayed first from then
//! on.

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::examples::{NOW, auth_config, hs256_token, token};
use caio_calculus::request::parse_request;
use caio_calculus::rules::parse_policy;
use caio_calculus::security::authenticate;
use proptest::prelude::*;

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz_support;
use fuzz_support::{mutated, runner};



fn example(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The same document as JSON, so that both readers are fuzzed.
fn as_json(yaml: &str) -> String {
    let value: serde_json::Value =
        serde_json::to_value(caio_calculus::contract::read_value(yaml, Format::Yaml).unwrap()).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn contract_files_give_contracts_or_typed_errors() {
    let yaml = example("contracts/cloud-gpt.yaml");
    for (name, valid, format) in
        [("contracts_yaml", yaml.clone(), Format::Yaml), ("contracts_json", as_json(&yaml), Format::Json)]
    {
        runner(name)
            .run(&mutated(valid), |text| {
                if let Err(e) = parse_contracts(&text, format) {
                    prop_assert!(!e.to_string().is_empty());
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn request_files_give_requests_or_typed_errors() {
    let yaml = example("requests/chat-sensitive.yaml");
    for (name, valid, format) in
        [("requests_yaml", yaml.clone(), Format::Yaml), ("requests_json", as_json(&yaml), Format::Json)]
    {
        runner(name)
            .run(&mutated(valid), |text| {
                if let Ok(request) = parse_request(&text, format) {
                    // A request that reads is one `route` accepts or refuses
                    // with a typed error; its problems never panic.
                    let _ = request.problems();
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn policy_files_give_policies_or_typed_errors() {
    let yaml = example("policies/default.yaml");
    runner("policies_yaml")
        .run(&mutated(yaml), |text| {
            let _ = parse_policy(&text, Format::Yaml);
            Ok(())
        })
        .unwrap();
}

#[test]
fn tokens_authenticate_or_give_typed_errors() {
    let valid = [token(&["chat.basic"], 1), hs256_token(&["chat.basic", "cloud.use"], 2)];
    let config = auth_config();
    for (name, valid) in ["tokens_eddsa", "tokens_hs256"].into_iter().zip(valid) {
        runner(name)
            .run(&mutated(valid.clone()), |text| {
                if let Ok(caller) = authenticate(&text, &config, NOW) {
                    // Only a token that verifies may authenticate: the claims
                    // part must be the one that was signed.
                    let claims_part = |t: &str| t.split('.').nth(1).map(str::to_string);
                    prop_assert_eq!(claims_part(&text), claims_part(&valid), "{:?}", caller.claims);
                }
                Ok(())
            })
            .unwrap();
    }
}
