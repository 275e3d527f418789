//! `compose.yaml` is what docs/scale-out.md says it is (three replicas on
//! PostgreSQL and Redis behind a balancer), and the configuration it gives
//! the replicas starts a real `caio serve`. No container engine is needed.

mod replicas;

use caio_calculus::contract::{Format, read_value};
use replicas::{Replica, root};

#[test]
fn compose_runs_three_replicas_on_postgres_and_redis_behind_a_balancer() {
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let compose = read_value(&text, Format::Yaml).unwrap_or_else(|e| panic!("compose.yaml: {e}"));
    let services = compose["services"].as_object().expect("services");
    let replicas: Vec<&String> = services.keys().filter(|name| name.starts_with("caio-")).collect();
    assert_eq!(replicas, ["caio-1", "caio-2", "caio-3"]);
    for name in &replicas {
        let replica = &services[name.as_str()];
        let environment = &replica["environment"];
        assert!(environment["CAIO_STORE"].as_str().unwrap().starts_with("postgres://"), "{name}");
        assert!(environment["CAIO_REDIS"].as_str().unwrap().starts_with("redis://"), "{name}");
        for dependency in ["postgres", "redis"] {
            assert_eq!(replica["depends_on"][dependency]["condition"], "service_healthy", "{name}: {dependency}");
        }
        for volume in replica["volumes"].as_array().unwrap() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(root().join(source).exists(), "{name} mounts {source}, which the repository has");
        }
    }
    for engine in ["postgres", "redis"] {
        assert!(services[engine]["healthcheck"]["test"].is_array(), "{engine} has a health check");
    }
    let nginx = std::fs::read_to_string(root().join("deploy/nginx.conf")).unwrap();
    for name in &replicas {
        assert!(nginx.contains(&format!("server {name}:8080")), "the balancer sends to {name}");
    }
    assert!(root().join("Dockerfile").exists(), "`build: .` has a Dockerfile");
}

#[test]
fn the_replicas_configuration_starts_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("caio.db").display().to_string();
    let replica = Replica::start_with(
        &root().join("deploy/caio.toml"),
        &dir.path().join("caio.log"),
        &[("CAIO_STORE", Some(&store)), ("CAIO_LISTEN", Some("127.0.0.1:0")), ("CAIO_REDIS", None)],
    );
    let ready: serde_json::Value = reqwest::blocking::get(format!("{}/readyz", replica.url)).unwrap().json().unwrap();
    assert_eq!(ready["status"], "ready");
    let examples = std::fs::read_dir(root().join("examples/contracts")).unwrap().count();
    assert_eq!(ready["services"], examples, "the example contracts are registered");
}
