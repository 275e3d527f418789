//! `compose.yaml` is what docs/scale-out.md says it is (three replicas on
//! PostgreSQL and Redis behind a balancer), and the configuration it gives
//! the replicas starts a real `caio serve`. No container engine is needed.

mod replicas;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use caio_calculus::contract::{Format, read_value};
use replicas::root;

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["serve", "--config"])
        .arg(root().join("deploy/caio.toml"))
        .env("CAIO_STORE", dir.path().join("caio.db"))
        .env("CAIO_LISTEN", "127.0.0.1:0")
        .env_remove("CAIO_REDIS")
        .env("CAIO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("caio listening on ").map(str::to_string);
    let ready = url.as_ref().and_then(|url| reqwest::blocking::get(format!("{url}/readyz")).ok());
    let _ = child.kill();
    let _ = child.wait();
    let ready: serde_json::Value = ready.expect("caio serve starts with deploy/caio.toml").json().unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["services"], 9, "the example contracts are registered");
}
