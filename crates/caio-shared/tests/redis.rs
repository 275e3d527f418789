//! Replicas (several `Shared` and `Breakers` in one process) on a real
//! `redis-server`: breakers opened on one are open on the others, buckets
//! hold across them, and a Redis that goes away and comes back is survived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use caio_calculus::breaker::{BreakerConfig, Outcome, Window};
use caio_gateway::Breakers;
use caio_shared::{Shared, SharedConfig};
use tokio::sync::watch;

const FAILED: Outcome = Outcome { success: false, duration_ms: 3 };
const SUCCEEDED: Outcome = Outcome { success: true, duration_ms: 3 };

struct Replica {
    shared: Shared,
    breakers: Arc<Breakers>,
}

fn config(url: &str) -> SharedConfig {
    SharedConfig { redis: Some(url.to_string()), sync_ms: 20, ..SharedConfig::default() }
}

/// Starts `n` replicas exchanging every 20 ms until `stop` changes.
fn replicas(n: usize, url: &str, breaker: BreakerConfig, stop: &watch::Receiver<bool>) -> Vec<Replica> {
    (0..n)
        .map(|_| {
            let shared = Shared::new(&config(url)).unwrap().expect("a Redis URL");
            let breakers = Arc::new(Breakers::new(breaker));
            let (task_shared, task_breakers, mut stop) = (shared.clone(), breakers.clone(), stop.clone());
            tokio::spawn(async move {
                task_shared
                    .run(&task_breakers, async move {
                        let _ = stop.changed().await;
                    })
                    .await
            });
            Replica { shared, breakers }
        })
        .collect()
}

async fn until(what: &str, within: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

async fn connected(all: &[Replica]) {
    until("connected", Duration::from_secs(5), || all.iter().all(|r| r.shared.status().connected)).await;
}

fn opening() -> BreakerConfig {
    BreakerConfig { window: Window::Count { calls: 10 }, minimum_calls: 4, open_ms: 60_000, ..BreakerConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_on_one_replica_is_open_on_all() {
    let Some(redis) = caio_testkit::redis("shared: a_breaker_opened_on_one_replica_is_open_on_all") else { return };
    let (_stop, stop) = watch::channel(false);
    let all = replicas(3, &redis.url(), opening(), &stop);
    connected(&all).await;
    // Two failures on each of two replicas: four in the shared window,
    // where neither replica alone reached minimum_calls.
    for replica in &all[..2] {
        for _ in 0..2 {
            replica.breakers.acquire("llm").unwrap();
            replica.breakers.record("llm", FAILED);
        }
    }
    let took =
        until("open everywhere", Duration::from_secs(2), || all.iter().all(|r| r.breakers.view("llm").state == "open"))
            .await;
    assert!(all[2].breakers.acquire("llm").is_err(), "the replica that saw no failure refuses calls");
    assert!(took < Duration::from_millis(500), "within a few exchanges of 20 ms: {took:?}");
    assert_eq!(all[1].breakers.view("other").state, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_from_every_replica_all_reach_the_shared_window() {
    let Some(redis) = caio_testkit::redis("shared: concurrent_changes_reach_the_shared_window") else { return };
    let (_stop, stop) = watch::channel(false);
    let never_opens =
        BreakerConfig { window: Window::Count { calls: 1000 }, minimum_calls: usize::MAX, ..BreakerConfig::default() };
    let all = replicas(3, &redis.url(), never_opens, &stop);
    connected(&all).await;
    let writers: Vec<_> = all
        .iter()
        .map(|replica| {
            let breakers = replica.breakers.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    breakers.record("llm", if i % 2 == 0 { FAILED } else { SUCCEEDED });
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    let window_len = || {
        let mut connection = connection.clone();
        async move {
            let keys: Vec<String> =
                redis::cmd("KEYS").arg("caio:breakers:*").query_async(&mut connection).await.unwrap();
            let text: Option<String> =
                redis::cmd("HGET").arg(&keys[0]).arg("llm").query_async(&mut connection).await.unwrap();
            let copy: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
            copy["window"].as_array().unwrap().len()
        }
    };
    let started = Instant::now();
    while window_len().await != 300 {
        assert!(started.elapsed() < Duration::from_secs(3), "lost changes: {} of 300", window_len().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_hold_across_replicas() {
    let Some(redis) = caio_testkit::redis("shared: buckets_hold_across_replicas") else { return };
    let (_stop, stop) = watch::channel(false);
    let all = replicas(2, &redis.url(), opening(), &stop);
    connected(&all).await;
    let mut taken = 0;
    for i in 0..10 {
        match all[i % 2].shared.take("alice", 0.5, 5.0).await.expect("Redis answers") {
            Ok(()) => taken += 1,
            Err(wait) => assert!(wait > 0.0 && wait <= 2.0, "{wait}"),
        }
    }
    assert_eq!(taken, 5, "one burst of five across both replicas, not five each");
    assert_eq!(all[0].shared.take("bob", 0.5, 5.0).await, Some(Ok(())), "callers have buckets of their own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_replicas_go_on_alone_and_merge_when_it_is_back() {
    let Some(mut redis) = caio_testkit::redis("shared: without_redis_replicas_go_on_alone") else { return };
    let (_stop, stop) = watch::channel(false);
    let all = replicas(2, &redis.url(), opening(), &stop);
    connected(&all).await;
    redis.kill();
    // The first command after the kill fails and falls back; the rest are
    // not even tried.
    assert_eq!(all[0].shared.take("alice", 1.0, 5.0).await, None);
    until("fallen back", Duration::from_secs(2), || all.iter().all(|r| !r.shared.status().connected)).await;
    assert_eq!(all[0].shared.status().fallbacks, 1);
    assert_eq!(all[0].shared.take("alice", 1.0, 5.0).await, None, "no Redis command while fallen back");
    // Replica 0 sees the backend fail while Redis is away: its own breaker
    // opens; replica 1 knows nothing of it.
    for _ in 0..4 {
        all[0].breakers.record("llm", FAILED);
    }
    assert_eq!(all[0].breakers.view("llm").state, "open");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(all[1].breakers.view("llm").state, "closed");
    redis.resume().unwrap();
    let took = until("merged", Duration::from_secs(5), || all[1].breakers.view("llm").state == "open").await;
    assert!(all.iter().all(|r| r.shared.status().connected));
    assert_eq!(all[0].shared.status().fallbacks, 1, "one outage, one fall back");
    assert_eq!(all[0].shared.take("alice", 1.0, 5.0).await, Some(Ok(())), "shared buckets again");
    eprintln!("merged {took:?} after Redis came back");
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let bad_url = SharedConfig { redis: Some("http://example".into()), ..SharedConfig::default() };
    let err = Shared::new(&bad_url).unwrap_err();
    assert!(err.starts_with("[shared].redis: `http://example`"), "{err}");
    let bad_period = SharedConfig { redis: Some("redis://127.0.0.1:1/".into()), sync_ms: 1, ..SharedConfig::default() };
    assert!(Shared::new(&bad_period).unwrap_err().starts_with("[shared].sync_ms: 1 is out of range"));
    assert!(Shared::new(&SharedConfig::default()).unwrap().is_none(), "no Redis: each replica alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_loses_no_open_breaker() {
    let Some(mut redis) = caio_testkit::redis("shared: a_redis_that_comes_back_empty") else { return };
    let (_stop, stop) = watch::channel(false);
    let all = replicas(2, &redis.url(), opening(), &stop);
    connected(&all).await;
    for _ in 0..4 {
        all[0].breakers.record("llm", FAILED);
    }
    until("open on both", Duration::from_secs(2), || all.iter().all(|r| r.breakers.view("llm").state == "open")).await;
    redis.kill();
    until("fallen back", Duration::from_secs(2), || all.iter().all(|r| !r.shared.status().connected)).await;
    redis.resume().unwrap();
    until("connected", Duration::from_secs(5), || all.iter().all(|r| r.shared.status().connected)).await;
    // A late result while open: a change to send to a copy Redis no longer has.
    all[0].breakers.record("llm", SUCCEEDED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (i, replica) in all.iter().enumerate() {
        assert_eq!(replica.breakers.view("llm").state, "open", "replica {i}");
    }
}
