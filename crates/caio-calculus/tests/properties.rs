//! Property tests of the calculus (proptest, fixed seed so runs are
//! reproducible): routing is deterministic and independent of registry
//! order, what it selects is correct, guarantee composition is monotone, and
//! any edit to a stored trace chain is detected.
//!
//! This file is hand-written; `src/` is generated from `notebooks/calculus`.

use std::collections::BTreeSet;

use caio_calculus::breaker::Health;
use caio_calculus::compose::{Shape, compose};
use caio_calculus::contract::{Contract, Format};
use caio_calculus::examples::{NOW, auth_config, hs256_token, synthetic_contracts, synthetic_policy};
use caio_calculus::guarantee::{Bound, unmet};
use caio_calculus::matching::{check_constraints, check_match};
use caio_calculus::proof::{Step, verify};
use caio_calculus::registry::Registry;
use caio_calculus::request::{Request, parse_request};
use caio_calculus::route::{Inputs, RouteConfig, RouteError, route};
use caio_calculus::score::History;
use caio_calculus::trace::{Body, Trace, append, canonical, verify_anchored, verify_chain};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    Config { cases, rng_seed: RngSeed::Fixed(0xCA10), failure_persistence: None, ..Config::default() }
}

/// A request built from generated choices.
fn request(
    capability: usize,
    accuracy: f64,
    max_latency: Option<f64>,
    sensitive: bool,
    permissions: &[&str],
    trust: u8,
) -> Request {
    let capability = caio_calculus::examples::CAPABILITIES[capability % caio_calculus::examples::CAPABILITIES.len()];
    let latency = max_latency.map(|l| format!(", constraints: {{max_latency_ms: {l}}}")).unwrap_or_default();
    let sensitivity = if sensitive { "sensitive" } else { "internal" };
    let text = format!(
        "{{id: r, capabilities: [{capability}], guarantees: {{accuracy: {{min: {accuracy}}}}}, sensitivity: {sensitivity}, estimated_tokens: 2000{latency}}}"
    );
    let mut request = parse_request(&text, Format::Yaml).expect("generated requests are valid");
    request.token = hs256_token(permissions, trust);
    request
}

fn request_strategy() -> impl Strategy<Value = Request> {
    (0usize..6, 0.5f64..0.95, prop::option::of(100.0f64..2000.0), any::<bool>(), (any::<bool>(), any::<bool>()), 0u8..3)
        .prop_map(|(c, a, l, s, (basic, cloud), t)| {
            let permissions: Vec<&str> = [("chat.basic", basic), ("cloud.use", cloud)]
                .iter()
                .filter(|(_, held)| *held)
                .map(|(p, _)| *p)
                .collect();
            request(c, (a * 100.0).round() / 100.0, l.map(f64::round), s, &permissions, t)
        })
}

fn route_config() -> RouteConfig {
    RouteConfig { auth: auth_config(), score: Default::default(), control: Default::default() }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn routing_is_deterministic_and_independent_of_registry_order(
        request in request_strategy(),
        seed in any::<u64>(),
        size in 1usize..60,
        rotation in 0usize..60,
    ) {
        let contracts = synthetic_contracts(size, 7);
        let mut rotated = contracts.clone();
        rotated.rotate_left(rotation % size);
        rotated.reverse();
        let (a, b) = (Registry::from_contracts(contracts).unwrap(), Registry::from_contracts(rotated).unwrap());
        let policy = synthetic_policy(20);
        let (history, config) = (History::new(), route_config());
        let inputs = Inputs { registry: &a, policy: &policy, history: &history, health: &Health::new(), config: &config, seed, now: NOW, previous: None };
        let first = route(&request, &inputs);
        prop_assert_eq!(&route(&request, &inputs), &first);
        let other_order = route(&request, &Inputs { registry: &b, ..inputs });
        match (&first, &other_order) {
            (Ok(x), Ok(y)) => prop_assert_eq!(&x.trace.hash, &y.trace.hash),
            (x, y) => prop_assert_eq!(x, y),
        }
    }

    #[test]
    fn the_selected_service_is_correct_and_every_other_is_explained(
        request in request_strategy(),
        seed in any::<u64>(),
        size in 1usize..80,
    ) {
        let registry = Registry::from_contracts(synthetic_contracts(size, 11)).unwrap();
        let policy = synthetic_policy(20);
        let (history, config) = (History::new(), route_config());
        let inputs = Inputs { registry: &registry, policy: &policy, history: &history, health: &Health::new(), config: &config, seed, now: NOW, previous: None };
        match route(&request, &inputs) {
            Ok(decision) => {
                let selected = &registry.active(&decision.selected.service).unwrap().contract;
                prop_assert!(check_match(selected, &request).is_ok());
                prop_assert!(check_constraints(selected, &request).is_ok());
                prop_assert!(unmet(&selected.guarantees, &request.guarantees).is_empty());
                for step in [Step::Match, Step::Rules, Step::Security, Step::Rank, Step::Guarantees] {
                    prop_assert!(decision.proofs.iter().any(|p| p.step == step), "no proof for step {}", step);
                }
                prop_assert!(decision.proofs.iter().all(|p| p.valid && verify(p)));
                prop_assert_eq!(decision.rejected.len() + 1, registry.len());
                prop_assert!(decision.rejected.windows(2).all(|w| w[0].service < w[1].service), "rejections in id order");
                prop_assert!(decision.alternatives.iter().all(|a| a.score <= decision.selected.score));
                prop_assert!(decision.control.iter().all(|u| u.is_finite() && u.abs() <= config.control.u_max));
            }
            Err(RouteError::NoService { rejected }) => prop_assert_eq!(rejected.len(), registry.len()),
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
    }

    #[test]
    fn composition_is_monotone(
        parts in prop::collection::vec((50.0f64..500.0, 0.5f64..0.99, 80.0f64..100.0), 1..5),
        which in 0usize..5,
        faster in 0.0f64..50.0,
        better in 0.0f64..0.01,
        higher in 0.0f64..1.0,
        parallel in any::<bool>(),
    ) {
        let contract = |latency: f64, accuracy: f64, percentile: f64| -> Contract {
            let mut c = synthetic_contracts(1, 1).remove(0);
            c.guarantees.insert("latency_ms".into(), Bound::at_most(latency).at_percentile(percentile));
            c.guarantees.insert("accuracy".into(), Bound::at_least(accuracy));
            c
        };
        let base: Vec<Contract> = parts.iter().map(|&(l, a, p)| contract(l, a, p)).collect();
        let mut stronger = base.clone();
        let i = which % base.len();
        let (l, a, p) = parts[i];
        stronger[i] = contract(l - faster, (a + better).min(1.0), (p + higher).min(100.0));
        let properties: BTreeSet<String> = ["latency_ms".to_string(), "accuracy".to_string()].into();
        let shape = if parallel { Shape::Parallel } else { Shape::Sequential };
        let old = compose(shape, &base.iter().collect::<Vec<_>>(), &properties);
        let new = compose(shape, &stronger.iter().collect::<Vec<_>>(), &properties);
        for (property, old_bound) in &old.guarantees {
            let new_bound = new.guarantees.get(property);
            prop_assert!(new_bound.is_some_and(|b| b.satisfies(old_bound)), "{property}: {new_bound:?} is weaker than {old_bound:?}");
        }
    }

    #[test]
    fn any_edit_to_a_stored_chain_is_detected(
        length in 2usize..12,
        target in 0usize..12,
        edit in 0u8..5,
        value in any::<i64>(),
    ) {
        let mut chain: Vec<Trace> = Vec::new();
        for i in 0..length {
            let next = append(chain.last(), serde_json::json!({"decision": i, "selected": format!("svc-{i}")}).into()).unwrap();
            chain.push(next);
        }
        prop_assert!(verify_chain(&chain).is_ok());
        let t = target % length;
        let mut tampered = chain.clone();
        let edited = |body: &Body, key: &str, new: serde_json::Value| {
            let mut edited = body.to_value();
            edited[key] = new;
            Body::from(edited)
        };
        match edit {
            0 => tampered[t].body = edited(&tampered[t].body, "decision", serde_json::json!(value.wrapping_add(1_000))),
            1 => tampered[t].body = edited(&tampered[t].body, "extra", serde_json::json!(value)),
            2 => { tampered.remove(t); }
            3 => tampered.swap(t, (t + 1) % length),
            _ => tampered[t].prev_hash = format!("{:064x}", value.unsigned_abs()),
        }
        // The head is kept outside the log, so cutting off its end is seen too.
        let head = &chain.last().unwrap().hash;
        prop_assert!(verify_anchored(&chain, head).is_ok());
        prop_assert!(verify_anchored(&tampered, head).is_err(), "edit {} at {} went unnoticed", edit, t);
    }

    /// The trace encoder against serde_json's own path (a value tree, then
    /// its text): any JSON value, keys with escapes and non-ASCII text,
    /// every kind of number.
    #[test]
    fn the_encoder_writes_what_canonical_writes(value in json_value()) {
        let encoded = Body::encode(&value).unwrap();
        prop_assert_eq!(encoded.as_str(), canonical(&value));
    }
}

/// Any JSON value, up to a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let text = || proptest::string::string_regex("[a-c\"\\\u{0}-\u{1f}é😀 #]{0,4}").expect("a valid pattern");
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}
