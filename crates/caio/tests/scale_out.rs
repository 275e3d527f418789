//! Three `caio serve` replicas on one PostgreSQL and one Redis, all real
//! servers on loopback, under concurrent traffic: a backend fails and its
//! breaker opens on every replica, through the shared state rather than
//! each replica's own failures; Redis is killed mid-run and the replicas
//! keep serving on their in-memory state, then come back to it; afterwards
//! the one trace chain verifies and every acknowledged decision is in it.
//! Skipped, and saying so, without PostgreSQL or Redis.

mod replicas;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caio_gateway::fixture::{Fault, Upstream};
use caio_store::{PostgresStore, Store};
use replicas::{Replica, chat_contract, root, token};

const MINIMUM_CALLS: u64 = 10;
const SYNC_MS: u64 = 50;

/// An answered call: which replica, its status and what caio said of it.
#[derive(Debug)]
struct Answer {
    #[allow(dead_code, reason = "shown when an assertion prints the answer")]
    replica: usize,
    status: u16,
    request_id: String,
    trace: Option<u64>,
    service: Option<String>,
}

async fn json(client: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    response.json().await.unwrap()
}

/// Polls `check` on every replica until it holds for all; the time each
/// first held, since `since`.
async fn until_all(
    what: &str,
    replicas: &[Replica],
    since: Instant,
    within: Duration,
    check: impl AsyncFn(&Replica) -> bool,
) -> Vec<Duration> {
    let mut when: Vec<Option<Duration>> = vec![None; replicas.len()];
    while when.iter().any(Option::is_none) {
        assert!(since.elapsed() < within, "{what}: not on every replica within {within:?}: {when:?}");
        for (i, replica) in replicas.iter().enumerate() {
            if when[i].is_none() && check(replica).await {
                when[i] = Some(since.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    when.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_chain_and_their_breakers() {
    let Some(postgres) = caio_testkit::postgres("scale_out: three_replicas") else { return };
    let Some(mut redis) = caio_testkit::redis("scale_out: three_replicas") else { return };
    let (primary, backup) = (Upstream::start("primary").await, Upstream::start("backup").await);
    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    // The backup costs a dollar a call: the score prefers the primary even
    // when its failures are known, so only the breaker keeps calls from it.
    std::fs::write(contracts.join("primary.yaml"), chat_contract("primary", &primary.openai_base(), 0.0)).unwrap();
    std::fs::write(contracts.join("backup.yaml"), chat_contract("backup", &backup.openai_base(), 1.0)).unwrap();
    let store_url = postgres.database();
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"{store_url}\"\nregistry = \"contracts\"\nauth = \"{}\"\n\
             [limits]\nrate_per_second = 100000\nburst = 100000\n\
             [gateway.retry]\nretries = 0\n\
             [gateway.breaker]\nminimum_calls = {MINIMUM_CALLS}\nwindow = {{ count = {{ calls = 20 }} }}\nopen_ms = 600000\n\
             [shared]\nredis = \"{}\"\nsync_ms = {SYNC_MS}\n",
            root().join("examples/auth/dev.yaml").display(),
            redis.url()
        ),
    )
    .unwrap();
    let replicas = Arc::new(replicas::start(3, &config, dir.path()));
    let (caller, watcher) = (token("load", &["chat.basic"]), token("watch", &[]));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut timeline: Vec<(Duration, String)> = vec![(Duration::ZERO, "3 replicas up, traffic starts".into())];

    // Traffic: one caller per replica, a call every 20 ms each.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..replicas.len())
        .map(|r| {
            let (client, replicas, caller, stop) = (client.clone(), replicas.clone(), caller.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let request_id = format!("r{r}-{n}");
                    let response = client
                        .post(format!("{}/v1/chat/completions", replicas[r].url))
                        .bearer_auth(&caller)
                        .header("x-request-id", &request_id)
                        .json(&serde_json::json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
                        .send()
                        .await
                        .unwrap();
                    let header =
                        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                    answers.push(Answer {
                        replica: r,
                        status: response.status().as_u16(),
                        trace: header("x-caio-trace").and_then(|v| v.parse().ok()),
                        service: header("x-caio-service"),
                        request_id,
                    });
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    primary.always(Some(Fault::ServerError));
    let (failing, failing_at) = (Instant::now(), started.elapsed());
    timeline.push((started.elapsed(), "the primary backend starts failing (500 on every call)".into()));
    let service_view = |replica: &Replica| json(&client, format!("{}/v1/services/primary", replica.url), &watcher);
    let mut failures_seen = vec![0; replicas.len()];
    let opened =
        until_all("the primary's breaker is open", &replicas, failing, Duration::from_secs(10), async |replica| {
            let view = service_view(replica).await;
            view["breaker"]["state"] == "open"
        })
        .await;
    for (i, replica) in replicas.iter().enumerate() {
        let view = service_view(replica).await;
        failures_seen[i] = view["observed"]["failures"].as_u64().unwrap();
        timeline.push((
            failing_at + opened[i],
            format!("breaker open on replica {i} (its own failed calls: {})", failures_seen[i]),
        ));
    }
    let first = *opened.iter().min().unwrap();
    let spread = *opened.iter().max().unwrap() - first;

    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let (killed, killed_at) = (Instant::now(), started.elapsed());
    timeline.push((started.elapsed(), "Redis killed".into()));
    let fell_back =
        until_all("fallen back to in-memory state", &replicas, killed, Duration::from_secs(5), async |replica| {
            json(&client, format!("{}/readyz", replica.url), &watcher).await["shared"]["connected"] == false
        })
        .await;
    timeline.push((
        killed_at + *fell_back.iter().max().unwrap(),
        "every replica reports the in-memory fallback in /readyz".into(),
    ));
    let metrics = |replica: &Replica| {
        let url = format!("{}/metrics", replica.url);
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(metrics(&replicas[0]).await.contains("caio_shared_state_connected 0\n"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.resume().unwrap();
    let (resumed, resumed_at) = (Instant::now(), started.elapsed());
    timeline.push((started.elapsed(), "Redis back (empty: no persistence)".into()));
    let reconnected = until_all("connected again", &replicas, resumed, Duration::from_secs(5), async |replica| {
        json(&client, format!("{}/readyz", replica.url), &watcher).await["shared"]["connected"] == true
    })
    .await;
    timeline.push((resumed_at + *reconnected.iter().max().unwrap(), "every replica shares its state again".into()));
    let mut fallbacks = 0;
    for replica in replicas.iter() {
        let text = metrics(replica).await;
        let line = text.lines().find(|l| l.starts_with("caio_gateway_fallbacks_total ")).expect("the fallback counter");
        fallbacks += line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert!(fallbacks > 0, "calls the failing primary could not serve fell back, and were counted");
    let after = metrics(&replicas[0]).await;
    assert!(
        after.contains("caio_shared_state_connected 1\n") && after.contains("caio_shared_state_fallbacks_total 1\n"),
        "{after}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Redis came back empty; the breakers stayed open, and the shared copy
    // was written again from what the replicas knew.
    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(service_view(replica).await["breaker"]["state"], "open", "replica {i} after Redis came back");
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers: Vec<Answer> = Vec::new();
    for worker in workers {
        answers.extend(worker.await.unwrap());
    }
    timeline.push((started.elapsed(), format!("traffic stops: {} calls answered", answers.len())));
    eprintln!("timeline:");
    for (at, what) in &timeline {
        eprintln!("  {:>6} ms  {what}", at.as_millis());
    }

    // Every call was served: by the primary, then by the backup once the
    // primary failed (a fallback within the call, or the breaker).
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(failed.is_empty(), "calls not served: {failed:?}");
    let served: BTreeMap<&str, usize> = answers.iter().fold(BTreeMap::new(), |mut count, a| {
        *count.entry(a.service.as_deref().unwrap_or("?")).or_default() += 1;
        count
    });
    assert!(
        served.get("primary").is_some_and(|n| *n > 0) && served.get("backup").is_some_and(|n| *n > 0),
        "{served:?}"
    );

    // The breaker opened everywhere through the shared state: no replica
    // had seen minimum_calls failures of its own.
    for (i, seen) in failures_seen.iter().enumerate() {
        assert!(*seen < MINIMUM_CALLS, "replica {i} saw {seen} failures itself: the breaker was not shared");
    }
    // Within a few exchanges of each other (measured: 14 ms, with exchanges every 50 ms).
    assert!(
        spread < Duration::from_millis(10 * SYNC_MS),
        "opened {first:?} to {:?} after the failures began",
        first + spread
    );

    // Each replica said once that it fell back.
    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(replica.log_lines("Redis is unreachable"), 1, "replica {i}: {}", replica.log.display());
        assert_eq!(replica.log_lines("Redis is reachable again"), 1, "replica {i}");
    }

    // One chain, and every acknowledged decision is in it, as answered.
    let store = PostgresStore::open(&store_url).unwrap();
    for answer in &answers {
        let seq = answer.trace.unwrap_or_else(|| panic!("no x-caio-trace on {answer:?}"));
        let trace = store.trace(seq).unwrap().unwrap_or_else(|| panic!("decision {seq} of {answer:?} is missing"));
        assert_eq!(trace.body.to_value()["request_id"], answer.request_id.as_str(), "trace {seq}");
    }
    let report = store.verify(None, None).unwrap();
    assert!(report.anchored);
    assert!(report.checked as usize >= 2 * answers.len(), "a decision and an execution trace per call");
    drop(replicas);
    let verified =
        std::process::Command::new(env!("CARGO_BIN_EXE_caio")).args(["trace", "verify", &store_url]).output().unwrap();
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(
        out.contains(&format!("ok: {} checked", report.checked)) && out.contains("ending at the recorded head"),
        "{out}"
    );
    eprintln!(
        "{} calls on 3 replicas, {} traces in one chain; breaker open everywhere {} to {} ms after the first failure; served by {served:?}",
        answers.len(),
        report.checked,
        first.as_millis(),
        (first + spread).as_millis()
    );
}

/// Routes `capability` on `replica`: the selected service, if any.
async fn selected(client: &reqwest::Client, replica: &Replica, token: &str, capability: &str) -> Option<String> {
    let body = serde_json::json!({"id": "follow", "capabilities": [capability]});
    let response =
        client.post(format!("{}/v1/route", replica.url)).bearer_auth(token).json(&body).send().await.unwrap();
    let decision: serde_json::Value = response.json().await.unwrap();
    decision["selected"]["service"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_change_on_one_replica_reaches_the_routing_of_the_others() {
    let Some(postgres) = caio_testkit::postgres("scale_out: registry_changes_reach_the_others") else { return };
    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    std::fs::write(contracts.join("chat.yaml"), chat_contract("chat-a", "http://127.0.0.1:9", 0.0)).unwrap();
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"{}\"\nregistry = \"contracts\"\nauth = \"{}\"\n",
            postgres.database(),
            root().join("examples/auth/dev.yaml").display()
        ),
    )
    .unwrap();
    let replicas = replicas::start(2, &config, dir.path());
    let (client, caller, admin) = (reqwest::Client::new(), token("c", &["chat.basic"]), token("a", &["caio:admin"]));
    assert_eq!(selected(&client, &replicas[1], &caller, "summarize").await, None, "nothing summarizes yet");
    let contract = chat_contract("summarizer", "http://127.0.0.1:9", 0.0).replace("[chat]", "[summarize]");
    let registered = client
        .post(format!("{}/v1/services", replicas[0].url))
        .bearer_auth(&admin)
        .header("content-type", "application/yaml")
        .body(contract)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let since = Instant::now();
    while selected(&client, &replicas[1], &caller, "summarize").await.as_deref() != Some("summarizer") {
        assert!(since.elapsed() < Duration::from_secs(5), "the other replica never routed to the new service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deprecated =
        client.delete(format!("{}/v1/services/summarizer", replicas[1].url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(deprecated.status(), 200);
    let since = Instant::now();
    while selected(&client, &replicas[0], &caller, "summarize").await.is_some() {
        assert!(since.elapsed() < Duration::from_secs(5), "the first replica kept routing to a deprecated service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
