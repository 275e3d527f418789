//! The Grafana dashboard and the Prometheus alert rules of `deploy/` ask
//! only for metrics a running `caio serve` exports.

mod replicas;

use std::collections::BTreeSet;

use caio_calculus::contract::{Format, read_value};
use replicas::{Replica, root};

/// The metric names in a PromQL expression (a histogram's series named by
/// the histogram).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(found) = expr[i..].find("caio_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        into.insert(base.to_string());
        i = end;
    }
}

#[test]
fn dashboards_and_alerts_use_only_exported_metrics() {
    let mut wanted = BTreeSet::new();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("deploy/grafana/caio.json")).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels {
        assert!(!panel["title"].as_str().unwrap().is_empty());
        for target in panel["targets"].as_array().unwrap() {
            metric_names(target["expr"].as_str().unwrap(), &mut wanted);
        }
    }
    let rules =
        read_value(&std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap(), Format::Yaml)
            .unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert!(rule["annotations"]["summary"].is_string(), "{}: a summary", rule["alert"]);
            metric_names(rule["expr"].as_str().unwrap(), &mut wanted);
            alerts += 1;
        }
    }
    assert!(alerts >= 5 && wanted.len() >= 10, "{alerts} alerts, metrics {wanted:?}");

    // A server with shared state configured (a Redis that is not there: its
    // metrics are exported all the same).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"caio.db\"\nregistry = \"{}\"\n[shared]\nredis = \"redis://127.0.0.1:1/\"\n",
            root().join("examples/contracts").display()
        ),
    )
    .unwrap();
    let replica = Replica::start(&config, &dir.path().join("caio.log"));
    let client = reqwest::blocking::Client::new();
    // One routed request, so that the store has timed an append.
    let token = replicas::token("metrics", &["chat.basic"]);
    let _ = client
        .post(format!("{}/v1/route", replica.url))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "m", "capabilities": ["chat"]}))
        .send()
        .unwrap();
    let text = client.get(format!("{}/metrics", replica.url)).send().unwrap().text().unwrap();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    assert!(missing.is_empty(), "asked for but not exported: {missing:?}\nexported: {exported:?}");
}
