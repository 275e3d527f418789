//! Memory of a real `caio serve` process under large concurrent calls: 100
//! chat completions of about 1 MB each, sent at once to the front door
//! while the model server (a fixture on 127.0.0.1) takes 2 s to answer, so
//! that every call holds what it holds at the same time. Two shapes of body:
//! one long message, and many small messages (the worst case for a parsed
//! JSON tree). Prints the server's resident memory at idle, its peak
//! (`VmHWM`), and after the load, the calls admitted and refused, and the
//! peak memory per call in flight.
//!
//! ```sh
//! cargo bench -p caio --bench memory
//! CAIO_BENCH_CALLS=200 CAIO_BENCH_BODY_KIB=512 cargo bench -p caio --bench memory
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use caio_gateway::fixture::{Fault, Upstream};

fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a whole number, found `{text}`");
            std::process::exit(2)
        }),
    }
}

fn token() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_caio"))
        .args(["token", "--sub", "bench", "--permission", "chat.basic", "--ttl", "86400"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A chat body of about `bytes`: one message, or messages of 40 characters.
fn body(bytes: usize, small_messages: bool) -> String {
    let messages: Vec<serde_json::Value> = if small_messages {
        (0..bytes / 64).map(|i| serde_json::json!({"role": "user", "content": format!("message {i:>30}")})).collect()
    } else {
        vec![serde_json::json!({"role": "user", "content": "x".repeat(bytes)})]
    };
    serde_json::json!({"model": "chat", "messages": messages}).to_string()
}

fn main() {
    let calls = setting("CAIO_BENCH_CALLS", 100);
    let body_kib = setting("CAIO_BENCH_BODY_KIB", 1024);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let upstream = Upstream::start("slow").await;
        upstream.always(Some(Fault::Slow(Duration::from_secs(2))));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("contracts")).unwrap();
        std::fs::write(
            dir.path().join("contracts/slow.yaml"),
            format!(
                "id: slow\nversion: 1.0.0\ncapabilities: [chat]\nprivacy: {{data_locality: local}}\nsecurity: {{required_permissions: [chat.basic]}}\napi: {{adapter: openai, endpoint: \"{}\", model: m, timeout_ms: 30000}}\n",
                upstream.openai_base()
            ),
        )
        .unwrap();
        let budget = 2 * calls * (body_kib + 64) * 1024;
        std::fs::write(
            dir.path().join("caio.toml"),
            format!(
                "db = \"caio.db\"\nregistry = \"contracts\"\n[limits]\nrate_per_second = 1e9\nburst = 1e9\nbody_bytes = {}\nbody_budget_bytes = {budget}\ncaller_in_flight = {}\nmax_in_flight = {}\n",
                (body_kib + 64) * 1024,
                calls + 1,
                calls + 8
            ),
        )
        .unwrap();
        let token = token();
        println!("{calls} concurrent chat calls of about {body_kib} KiB against a model server that answers after 2 s");
        println!(
            "{:<22} {:>9} {:>9} {:>10} {:>10} {:>7} {:>8} {:>12}",
            "body", "idle MiB", "peak MiB", "after MiB", "light MiB", "served", "refused", "KiB per call"
        );
        // Each shape on a server of its own: what one load leaves in the
        // allocator is not counted in the next one's peak.
        for (shape, small) in [("one long message", false), ("many small messages", true)] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_caio"))
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(dir.path().join("caio.toml"))
                .env("CAIO_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let url = line.trim().strip_prefix("caio listening on ").expect("caio prints its address").to_string();
            let pid = child.id();
            let text = body(body_kib * 1024, small);
            // Idle is a server that has served: one small call first, so that
            // what the first call sets up (the store's cache, the
            // connection pool) is not counted as the load's.
            let warm = reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .map(|r| r.status().as_u16());
            assert_eq!(warm.ok(), Some(200), "the warm-up call is served");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = kib(pid, "VmRSS:");
            // The peak since the start: reset it where the system allows.
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
            let mut sends = tokio::task::JoinSet::new();
            for _ in 0..calls {
                let (client, url, token, text) = (client.clone(), url.clone(), token.clone(), text.clone());
                sends.spawn(async move {
                    client
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(text)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                });
            }
            let statuses = sends.join_all().await;
            let peak = kib(pid, "VmHWM:");
            // The load is over: its connections close too.
            drop(client);
            let client = reqwest::Client::new();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = kib(pid, "VmRSS:");
            // A little traffic: the allocator returns freed memory to the
            // system when its threads next allocate, not while all sleep.
            for _ in 0..20 {
                let _ = client.get(format!("{url}/healthz")).send().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let light = kib(pid, "VmRSS:");
            let served = statuses.iter().filter(|s| **s == 200).count();
            let refused = statuses.len() - served;
            let per_call = peak.saturating_sub(idle) / served.max(1) as u64;
            println!(
                "{shape:<22} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {served:>7} {refused:>8} {per_call:>12}",
                idle as f64 / 1024.0,
                peak as f64 / 1024.0,
                after as f64 / 1024.0,
                light as f64 / 1024.0
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    });
}
