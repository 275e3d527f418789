//! A real server on 127.0.0.1 over a real SQLite file, and tokens for it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use caio_calculus::contract::{Format, parse_contracts};
use caio_calculus::route::RouteConfig;
use caio_calculus::rules::parse_policy;
use caio_calculus::security::{Audience, Claims, KeyAlgorithm, SigningKey, parse_auth_config, sign};
use caio_server::{AppState, Limits, ServerConfig};
use caio_store::{SqliteStore, Store};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The development keys of `examples/auth/dev.yaml`.
pub fn auth() -> caio_calculus::security::AuthConfig {
    parse_auth_config(&read("examples/auth/dev.yaml"), Format::Yaml).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Claims of a caller with permissions, valid for an hour.
pub fn claims(sub: &str, permissions: &[&str]) -> Claims {
    let auth = auth();
    Claims {
        sub: sub.into(),
        iss: auth.issuer,
        aud: Audience::One(auth.audience),
        exp: now() + 3600,
        nbf: None,
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        trust_level: 1,
        tenant: "acme".into(),
    }
}

/// Signs claims with the development HS256 key, or another secret.
pub fn sign_with(claims: &Claims, secret: Option<&str>) -> String {
    let auth = auth();
    let key = auth.keys.iter().find(|k| k.algorithm == KeyAlgorithm::Hs256).unwrap();
    let key = SigningKey {
        kid: key.kid.clone(),
        algorithm: KeyAlgorithm::Hs256,
        key: secret.map_or(key.key.clone(), str::to_string),
    };
    sign(claims, &key).unwrap()
}

/// A token of a caller with permissions.
pub fn token(sub: &str, permissions: &[&str]) -> String {
    sign_with(&claims(sub, permissions), None)
}

/// A clock a test moves by hand: milliseconds since the epoch, starting at
/// the wall clock's now (tokens are checked against it).
#[derive(Clone)]
pub struct ManualClock(Arc<std::sync::atomic::AtomicU64>);

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(std::sync::atomic::AtomicU64::new(now() * 1000)))
    }
    pub fn ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
    /// The server's clock: seconds.
    pub fn seconds(&self) -> caio_server::Clock {
        let clock = self.clone();
        Arc::new(move || clock.ms() / 1000)
    }
    /// The gateway's clock: milliseconds.
    pub fn gateway(&self) -> caio_gateway::Clock {
        let clock = self.clone();
        caio_gateway::Clock::from_fn(move || clock.ms())
    }
}

/// A server on a free port of 127.0.0.1 with the example registry and
/// policy in a fresh SQLite file; stopped when dropped.
pub struct Server {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The example contracts and policy.
pub fn examples() -> (Vec<caio_calculus::contract::Contract>, caio_calculus::rules::Policy) {
    let mut contracts = Vec::new();
    for entry in std::fs::read_dir(root().join("examples/contracts")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        contracts.extend(parse_contracts(&text, Format::Yaml).unwrap());
    }
    (contracts, parse_policy(&read("examples/policies/default.yaml"), Format::Yaml).unwrap())
}

impl Server {
    pub async fn start(limits: Limits) -> Server {
        let (contracts, policy) = examples();
        Server::start_with(contracts, policy, |config| config.limits = limits).await
    }

    /// A server over `contracts` and `policy`, its configuration adjusted.
    pub async fn start_with(
        contracts: Vec<caio_calculus::contract::Contract>,
        policy: caio_calculus::rules::Policy,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        Server::start_on(contracts, policy, adjust, None).await
    }

    /// The same, on a clock the test moves (the server's and the gateway's).
    pub async fn start_on(
        contracts: Vec<caio_calculus::contract::Contract>,
        policy: caio_calculus::rules::Policy,
        adjust: impl FnOnce(&mut ServerConfig),
        clock: Option<&ManualClock>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("caio.db")).unwrap();
        for contract in contracts {
            store.register(contract, 1, "test").unwrap();
        }
        let mut config = ServerConfig::new(
            RouteConfig { auth: auth(), score: Default::default(), control: Default::default() },
            policy,
        );
        adjust(&mut config);
        let store: Arc<dyn Store> = Arc::new(store);
        let state = match clock {
            None => AppState::new(store, config, caio_server::system_clock()).unwrap(),
            Some(clock) => {
                let gateway = caio_gateway::Gateway::new(config.gateway.clone()).unwrap().with_clock(clock.gateway());
                AppState::with_gateway(store, config, clock.seconds(), gateway).unwrap()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(caio_server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Server { url, dir, state, stop: Some(stop), task: Some(task) }
    }

    /// Stops accepting and waits for requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A routing request for chat, as JSON.
pub fn chat_request(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "capabilities": ["chat"], "sensitivity": "internal", "estimated_tokens": 500})
}

/// The execution trace that follows the decision `seq` (appends may land
/// in any order with other traffic: look a few ahead).
pub async fn execution_of(server: &Server, decision: u64) -> serde_json::Value {
    let client = reqwest::Client::new();
    let auditor = token("auditor", &["caio:audit"]);
    for _ in 0..100 {
        for seq in decision + 1..decision + 6 {
            let response =
                client.get(format!("{}/v1/traces/{seq}", server.url)).bearer_auth(&auditor).send().await.unwrap();
            if response.status() == reqwest::StatusCode::OK {
                let body = response.json::<serde_json::Value>().await.unwrap()["body"].clone();
                if body["kind"] == "execution" && body["decision"]["seq"] == decision {
                    return body;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no execution trace for decision {decision}");
}

/// `service:outcome` of each attempt of an execution trace.
pub fn outcomes(execution: &serde_json::Value) -> Vec<String> {
    execution["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}:{}", a["service"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect()
}

/// A dashboard session of a viewer (`caio:view`): the cookie to send.
pub async fn viewer_cookie(server: &Server) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = client
        .post(format!("{}/ui/login", server.url))
        .header("origin", server.url.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", token("viewer", &["caio:view"])))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), reqwest::StatusCode::SEE_OTHER);
    signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}
