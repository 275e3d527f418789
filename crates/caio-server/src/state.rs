//! What the handlers share: the store, the routing snapshot, the
//! configuration, the gateway, the rate limiter, the state shared with
//! other replicas and the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use caio_calculus::route::{RouteConfig, Router};
use caio_calculus::rules::Policy;
use caio_gateway::{Gateway, GatewayConfig, GatewayError};
use caio_shared::{Shared, SharedConfig};
use caio_store::{Store, StoreError};

use crate::limits::RateLimiter;
use crate::metrics::Metrics;

/// Limits on what callers may send and how long a request may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Largest upload (`multipart/form-data`: audio to transcribe), in bytes.
    pub upload_bytes: usize,
    /// Requests per second each caller may make, on average.
    pub rate_per_second: f64,
    /// Requests a caller may make at once, above the average.
    pub burst: f64,
    /// Longest a request may take before it is answered with `timeout`.
    pub timeout: Duration,
    /// Longest an executed call (`/v1/chat/completions`, `/v1/embeddings`,
    /// `/v1/orchestrate`) may take, retries and fallbacks included, until
    /// its answer starts.
    pub call_timeout: Duration,
    /// Most requests served at once, streams until they end; more are
    /// answered at once with `overloaded`, so that a flood cannot grow
    /// memory without bound.
    pub max_in_flight: usize,
    /// Longest a streamed answer may last, from its first byte; then it ends
    /// with an error event (`stream_timeout`).
    pub stream: Duration,
    /// Bytes of request bodies held at once, over every request; a body
    /// that does not fit is refused with `overloaded` before it is read.
    pub body_budget_bytes: usize,
    /// Requests one caller (a token's `sub`) may have in flight.
    pub caller_in_flight: usize,
    /// Longest the requests in flight may take to finish after shutdown is
    /// asked for.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1 << 20,
            upload_bytes: 25 << 20,
            rate_per_second: 100.0,
            burst: 200.0,
            timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(300),
            max_in_flight: 1024,
            stream: Duration::from_secs(600),
            body_budget_bytes: 64 << 20,
            caller_in_flight: 64,
            drain: Duration::from_secs(30),
        }
    }
}

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Token verification, score and control.
    pub route: RouteConfig,
    /// The routing policy.
    pub policy: Policy,
    /// Request limits.
    pub limits: Limits,
    /// The permission a caller needs to change the registry.
    pub admin_permission: String,
    /// The permission a caller needs to read traces (admins may too).
    pub audit_permission: String,
    /// The permission a caller needs to look at the dashboard at `/ui`
    /// (auditors and admins may too; only admins change anything there).
    pub viewer_permission: String,
    /// How routed calls are executed.
    pub gateway: GatewayConfig,
    /// Named routes: a `model` of the front doors that names one is routed
    /// with its request template (capabilities, guarantees, constraints,
    /// sensitivity, attributes) instead of as a capability.
    pub routes: BTreeMap<String, serde_json::Value>,
    /// How often the score's history is refreshed from observed calls.
    pub history_every: Duration,
    /// The state shared with other replicas (breakers, rate limits).
    pub shared: SharedConfig,
    /// How often the store is asked whether another replica changed the
    /// registry.
    pub registry_poll: Duration,
    /// The limits on connections.
    pub connections: crate::connections::ConnectionLimits,
    /// Where people reach this caio (`https://caio.example.com`), for the
    /// dashboard's same-origin check and `Secure` cookie; `None`: `http://`
    /// and the request's `Host`.
    pub public_origin: Option<String>,
    /// Signed checkpoints of the log, when a key is configured.
    pub checkpoints: Option<crate::checkpoints::CheckpointConfig>,
}

impl ServerConfig {
    /// A configuration with the default limits and permissions.
    pub fn new(route: RouteConfig, policy: Policy) -> ServerConfig {
        ServerConfig {
            route,
            policy,
            limits: Limits::default(),
            admin_permission: "caio:admin".into(),
            audit_permission: "caio:audit".into(),
            viewer_permission: "caio:view".into(),
            gateway: GatewayConfig::default(),
            routes: BTreeMap::new(),
            history_every: Duration::from_secs(1),
            shared: SharedConfig::default(),
            registry_poll: Duration::from_secs(1),
            connections: crate::connections::ConnectionLimits::default(),
            public_origin: None,
            checkpoints: None,
        }
    }
}

/// The clock the server reads: seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Why the state could not be built.
#[derive(Debug)]
pub enum StartError {
    /// The store could not give the registry.
    Store(StoreError),
    /// The gateway's settings are wrong.
    Gateway(GatewayError),
    /// The shared state's settings are wrong.
    Shared(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Store(e) => e.fmt(f),
            StartError::Gateway(e) => e.fmt(f),
            StartError::Shared(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub router: RwLock<Arc<Router>>,
    pub config: ServerConfig,
    pub rate: RateLimiter,
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub bodies: crate::budget::BodyBudget,
    pub connections: Arc<crate::connections::Registry>,
    pub callers: Arc<crate::budget::Callers>,
    pub metrics: Metrics,
    pub clock: Clock,
    pub gateway: Arc<Gateway>,
    /// The gateway's record generation the routing snapshot's history has.
    pub history_generation: AtomicU64,
    pub history_at: Mutex<Instant>,
    pub shared: Option<Shared>,
    /// The store's registry generation the routing snapshot was taken at.
    pub registry_generation: AtomicU64,
    /// The newest entry (sequence number, hash) up to which the dashboard
    /// verified the whole log, so that each view checks only what came after.
    pub verified_up_to: Arc<Mutex<Option<(u64, String)>>>,
}

/// The state of the application, cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    /// Builds the state: the routing snapshot is taken from the store's
    /// registry now, and again after every registry change.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig, clock: Clock) -> Result<AppState, StartError> {
        let gateway = Gateway::new(config.gateway.clone()).map_err(StartError::Gateway)?;
        AppState::with_gateway(store, config, clock, gateway)
    }

    /// The same, with a gateway built by the caller (another key source,
    /// say).
    pub fn with_gateway(
        store: Arc<dyn Store>,
        config: ServerConfig,
        clock: Clock,
        gateway: Gateway,
    ) -> Result<AppState, StartError> {
        let shared = Shared::new(&config.shared).map_err(StartError::Shared)?;
        let gateway = gateway.with_half_life(config.route.score.half_life_ms);
        let generation = store.registry_generation().map_err(StartError::Store)?;
        let registry = store.registry().map_err(StartError::Store)?;
        gateway.declare(&registry);
        let router = Router::new(registry, config.policy.clone(), config.route.clone());
        let rate = RateLimiter::new(config.limits.rate_per_second, config.limits.burst).shared(shared.clone());
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight));
        let bodies = crate::budget::BodyBudget::new(config.limits.body_budget_bytes);
        let (connection_limits, lowered) = crate::connections::within_descriptors(
            config.connections,
            crate::connections::descriptor_limit(),
        );
        if let Some(note) = lowered {
            tracing::warn!(target: "caio", "{note}");
        }
        let connections = crate::connections::Registry::new(connection_limits);
        Ok(AppState(Arc::new(Inner {
            store,
            router: RwLock::new(Arc::new(router)),
            config,
            rate,
            in_flight,
            bodies,
            connections,
            callers: Arc::default(),
            metrics: Metrics::default(),
            clock,
            gateway: Arc::new(gateway),
            history_generation: AtomicU64::new(0),
            history_at: Mutex::new(Instant::now()),
            shared,
            registry_generation: AtomicU64::new(generation),
            verified_up_to: Arc::default(),
        })))
    }

    /// The open connections, when served by [`crate::serve`].
    pub fn connections(&self) -> Option<&crate::connections::Registry> {
        Some(&self.0.connections)
    }

    /// The current routing snapshot.
    pub fn router(&self) -> Arc<Router> {
        self.0.router.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a new routing snapshot from the store, with the history
    /// observed so far; the gateway's allowlist follows the registry.
    pub(crate) fn refresh(&self) -> Result<(), StoreError> {
        let generation = self.0.store.registry_generation()?;
        let registry = self.0.store.registry()?;
        self.0.registry_generation.store(generation, Ordering::Relaxed);
        self.0.gateway.declare(&registry);
        self.0.history_generation.store(self.0.gateway.observed().generation(), Ordering::Relaxed);
        let router = Router::new(registry, self.0.config.policy.clone(), self.0.config.route.clone())
            .with_history(self.0.gateway.history());
        *self.0.router.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
        Ok(())
    }

    /// Gives the routing snapshot the history the gateway has observed, at
    /// most once per `history_every`: the score then reads real failure
    /// rates and latencies without a rebuild per call. Also when nothing
    /// new was observed but failures in the snapshot are still fading:
    /// an outranked service gets few calls, and its record must recover
    /// with time alone.
    pub(crate) fn absorb_history(&self) {
        let Ok(mut at) = self.0.history_at.try_lock() else { return };
        if at.elapsed() < self.0.config.history_every {
            return;
        }
        let generation = self.0.gateway.observed().generation();
        let current = self.router();
        let fading = current.history().values().any(|h| h.failures > 1e-3 || h.violations > 1e-3);
        if generation == self.0.history_generation.load(Ordering::Relaxed) && !fading {
            return;
        }
        *at = Instant::now();
        self.0.history_generation.store(generation, Ordering::Relaxed);
        let router = (*current).clone().with_history(self.0.gateway.history());
        *self.0.router.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
    }

    /// Takes a new routing snapshot if another process (another replica on
    /// the same store) changed the registry since the last one.
    pub(crate) fn follow_registry(&self) -> Result<bool, StoreError> {
        let generation = self.0.store.registry_generation()?;
        if generation == self.0.registry_generation.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.refresh().map(|()| true)
    }

    /// The state shared with other replicas, if there is one.
    pub fn shared(&self) -> Option<&Shared> {
        self.0.shared.as_ref()
    }

    /// The gateway.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.0.gateway
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Seconds since the epoch, by the server's clock.
    pub fn now(&self) -> u64 {
        (self.0.clock)()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
}
