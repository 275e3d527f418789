//! What the handlers share: the store, the routing snapshot, the
//! configuration, the rate limiter and the metrics.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use caio_calculus::route::{RouteConfig, Router};
use caio_calculus::rules::Policy;
use caio_store::{Store, StoreError};

use crate::limits::RateLimiter;
use crate::metrics::Metrics;

/// Limits on what callers may send and how long a request may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Requests per second each caller may make, on average.
    pub rate_per_second: f64,
    /// Requests a caller may make at once, above the average.
    pub burst: f64,
    /// Longest a request may take before it is answered with `timeout`.
    pub timeout: Duration,
    /// Most requests served at once; more are answered at once with
    /// `overloaded`, so that a flood cannot grow memory without bound.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1 << 20,
            rate_per_second: 100.0,
            burst: 200.0,
            timeout: Duration::from_secs(10),
            max_in_flight: 1024,
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
        }
    }
}

/// The clock the server reads: seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub router: RwLock<Arc<Router>>,
    pub config: ServerConfig,
    pub rate: RateLimiter,
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub metrics: Metrics,
    pub clock: Clock,
}

/// The state of the application, cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    /// Builds the state: the routing snapshot is taken from the store's
    /// registry now, and again after every registry change.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig, clock: Clock) -> Result<AppState, StoreError> {
        let router = Router::new(store.registry()?, config.policy.clone(), config.route.clone());
        let rate = RateLimiter::new(config.limits.rate_per_second, config.limits.burst);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight));
        Ok(AppState(Arc::new(Inner {
            store,
            router: RwLock::new(Arc::new(router)),
            config,
            rate,
            in_flight,
            metrics: Metrics::default(),
            clock,
        })))
    }

    /// The current routing snapshot.
    pub fn router(&self) -> Arc<Router> {
        self.0.router.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a new routing snapshot from the store.
    pub(crate) fn refresh(&self) -> Result<(), StoreError> {
        let registry = self.0.store.registry()?;
        let router = Router::new(registry, self.0.config.policy.clone(), self.0.config.route.clone());
        *self.0.router.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
        Ok(())
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
