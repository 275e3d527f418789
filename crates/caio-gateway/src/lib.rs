//! # caio-gateway
//!
//! Executes routed requests: given the calculus's decision (the selected
//! service, then the other admitted ones, best first), the gateway calls the
//! services through their adapters, retries transient failures with jittered
//! backoff, falls back along the ranked alternatives, keeps a circuit breaker
//! per service (the calculus's state machine, fed with real outcomes), and
//! records every attempt. It connects only to origins the registry declares
//! or the operator allows, redirects included.
//!
//! This crate must never choose a service the decision did not admit, and
//! must never write a credential anywhere: keys are read from the
//! environment at each call and only sent to the service that needs them.

pub mod adapter;
pub mod anthropic;
pub mod body;
pub mod breakers;
mod clock;
pub mod deny;
pub mod egress;
pub mod form;
mod execute;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod observe;
pub mod resilience;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use caio_calculus::breaker::{BreakerConfig, Health};
use caio_calculus::registry::Registry;
use caio_calculus::score::History;
use serde::{Deserialize, Serialize};

pub use adapter::{Call, Operation};
pub use breakers::{BreakerView, Breakers, Op};
pub use clock::Clock;
pub use egress::{Egress, Refusal};
pub use execute::{Attempt, Failed, Reply, Streamed};
pub use observe::{Observed, RecentCall, Totals};
pub use resilience::{Failure, RetryPolicy};

/// The gateway's settings (`[gateway]` of `caio.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Origins the gateway may reach besides the contracts' endpoints,
    /// such as `https://api.openai.com`.
    pub allow: Vec<String>,
    /// Address classes never connected to, whatever a contract or a name
    /// says: `link_local`, `metadata`, `loopback`, `private`.
    pub deny: Vec<deny::AddressClass>,
    /// Retries on one service before falling back.
    pub retry: RetryPolicy,
    /// The breaker of each service; fields left out keep their defaults.
    #[serde(deserialize_with = "partial_breaker")]
    pub breaker: BreakerConfig,
    /// Services tried at most per call, the selected one included.
    pub max_services: usize,
    /// Idle connections kept per host.
    pub pool_idle_per_host: usize,
    /// How long a kept connection may stay idle before it is closed, in ms:
    /// what a burst opened to a model server does not outlive it by more.
    pub pool_idle_ms: u64,
    /// Longest wait to connect, in ms (the contract's `timeout_ms` bounds
    /// the whole call).
    pub connect_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            allow: Vec::new(),
            deny: deny::default_deny(),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_services: 4,
            pool_idle_per_host: 64,
            pool_idle_ms: 30_000,
            connect_timeout_ms: 2_000,
        }
    }
}

/// `[gateway.breaker]` as written: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerFile {
    window: Option<caio_calculus::breaker::Window>,
    minimum_calls: Option<usize>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    slow_call_ms: Option<u64>,
    open_ms: Option<u64>,
    half_open_probes: Option<usize>,
}

fn partial_breaker<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BreakerConfig, D::Error> {
    let file = BreakerFile::deserialize(deserializer)?;
    let d = BreakerConfig::default();
    let config = BreakerConfig {
        window: file.window.unwrap_or(d.window),
        minimum_calls: file.minimum_calls.unwrap_or(d.minimum_calls),
        failure_rate: file.failure_rate.unwrap_or(d.failure_rate),
        slow_call_rate: file.slow_call_rate.unwrap_or(d.slow_call_rate),
        slow_call_ms: file.slow_call_ms.unwrap_or(d.slow_call_ms),
        open_ms: file.open_ms.unwrap_or(d.open_ms),
        half_open_probes: file.half_open_probes.unwrap_or(d.half_open_probes),
    };
    for (field, rate) in [("failure_rate", config.failure_rate), ("slow_call_rate", config.slow_call_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(serde::de::Error::custom(format!("`{field}` must be in [0, 1], found {rate}")));
        }
    }
    if config.half_open_probes == 0 {
        return Err(serde::de::Error::custom("`half_open_probes` must be at least 1"));
    }
    Ok(config)
}

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A setting is wrong.
    #[error("gateway.{field}: {message}")]
    Config {
        /// Which.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Reads an environment variable: the process environment by default; tests
/// and embedders may supply another source of keys.
pub type Environment = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The gateway: one pooled HTTP client, the allowlist, the breakers and the
/// record of outcomes. Cheap to share behind an `Arc`.
pub struct Gateway {
    client: reqwest::Client,
    egress: Arc<Egress>,
    breakers: Breakers,
    observed: Observed,
    clock: Clock,
    config: GatewayConfig,
    jitter: resilience::Jitter,
    environment: Environment,
    /// Calls served by another service than the decision's selected one.
    fallbacks: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `config`; call [`Gateway::declare`] with the registry
    /// before the first call.
    pub fn new(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let egress = Egress::new(&config.allow).map_err(|message| GatewayError::Config { field: "allow", message })?;
        if config.max_services == 0 {
            return Err(GatewayError::Config { field: "max_services", message: "must be at least 1".into() });
        }
        let client = reqwest::Client::builder()
            .redirect(egress.redirect_policy(5))
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .pool_idle_timeout(Duration::from_millis(config.pool_idle_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .tcp_nodelay(true)
            .dns_resolver(deny::Resolver::new(&config.deny))
            .no_proxy()
            .build()?;
        Ok(Gateway {
            client,
            egress,
            breakers: Breakers::new(config.breaker),
            observed: Observed::new(caio_calculus::score::ScoreConfig::default().half_life_ms),
            clock: Clock::wall(),
            config,
            jitter: resilience::Jitter::from_clock(),
            environment: Arc::new(|name| std::env::var(name).ok()),
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The same gateway, reading keys from `environment` instead of the
    /// process environment.
    pub fn with_environment(mut self, environment: Environment) -> Gateway {
        self.environment = environment;
        self
    }

    /// The same gateway on `clock` (breakers and observed record alike),
    /// before any call.
    pub fn with_clock(mut self, clock: Clock) -> Gateway {
        self.breakers = Breakers::with_clock(self.config.breaker, clock.clone());
        self.clock = clock;
        self
    }

    /// The same gateway, weighing observed calls half as much every
    /// `half_life_ms` (the score's `half_life_ms`), before any call.
    pub fn with_half_life(mut self, half_life_ms: u64) -> Gateway {
        self.observed = Observed::new(half_life_ms);
        self
    }

    /// The gateway's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The breakers' states now, as a decision takes them.
    pub fn health(&self) -> Health {
        self.breakers.health()
    }

    /// The history the score reads now: services whose breaker closed
    /// after its probes start afresh first, so the score and the breaker
    /// agree on what recovered means.
    pub fn history(&self) -> History {
        for service in self.breakers.take_recovered() {
            self.observed.recovered(&service);
        }
        self.observed.history(self.clock.now_ms())
    }

    /// Why this gateway would never call `contract`'s endpoint: it does not
    /// parse as calls parse it, or it is an address of a denied class.
    /// Registration refuses such a contract.
    pub fn endpoint_problem(&self, contract: &caio_calculus::contract::Contract) -> Option<String> {
        if let Some(problem) = adapter::endpoint_problem(contract) {
            return Some(problem);
        }
        let url = url::Url::parse(&contract.api.endpoint).ok()?;
        let ip = match url.host()? {
            url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
            url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
            url::Host::Domain(_) => return None,
        };
        deny::denied(ip, &self.config.deny)
            .map(|class| format!("`{ip}` is {} ({}); see gateway.deny", deny::DENIED, class.name()))
    }

    /// Declares the registry's endpoints as the allowed destinations.
    pub fn declare(&self, registry: &Registry) {
        self.egress.declare(registry);
    }

    /// The allowlist.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// What has been observed of the services.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The gateway's metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ =
            writeln!(out, "# HELP caio_breaker_state Circuit breaker state by service: 0 closed, 1 half-open, 2 open.");
        let _ = writeln!(out, "# TYPE caio_breaker_state gauge");
        let views = self.breakers.views();
        for (service, view) in &views {
            let value = match view.state {
                "open" => 2,
                "half_open" => 1,
                _ => 0,
            };
            let _ = writeln!(out, "caio_breaker_state{{service=\"{service}\"}} {value}");
        }
        let _ = writeln!(out, "# HELP caio_breaker_opened_total Times a service's breaker opened.");
        let _ = writeln!(out, "# TYPE caio_breaker_opened_total counter");
        for (service, view) in &views {
            let _ = writeln!(out, "caio_breaker_opened_total{{service=\"{service}\"}} {}", view.opened);
        }
        let _ = writeln!(out, "# HELP caio_upstream_calls_total Calls to services by outcome.");
        let _ = writeln!(out, "# TYPE caio_upstream_calls_total counter");
        for (service, history) in self.observed.totals() {
            let _ = writeln!(
                out,
                "caio_upstream_calls_total{{service=\"{service}\",outcome=\"success\"}} {}",
                history.calls - history.failures
            );
            let _ = writeln!(
                out,
                "caio_upstream_calls_total{{service=\"{service}\",outcome=\"failure\"}} {}",
                history.failures
            );
        }
        let _ =
            writeln!(out, "# HELP caio_gateway_fallbacks_total Calls served by another service than the selected one.");
        let _ = writeln!(out, "# TYPE caio_gateway_fallbacks_total counter");
        let _ =
            writeln!(out, "caio_gateway_fallbacks_total {}", self.fallbacks.load(std::sync::atomic::Ordering::Relaxed));
        let _ = writeln!(out, "# HELP caio_egress_refused_total Connections refused by the egress allowlist.");
        let _ = writeln!(out, "# TYPE caio_egress_refused_total counter");
        let refusals = self.egress.refusals();
        for ((reason, origin), count) in &refusals {
            let _ =
                writeln!(out, "caio_egress_refused_total{{reason=\"{}\",origin=\"{origin}\"}} {count}", reason.label());
        }
        if refusals.is_empty() {
            let _ = writeln!(out, "caio_egress_refused_total{{reason=\"undeclared\",origin=\"\"}} 0");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caio_calculus::breaker::Window;

    #[test]
    fn breaker_settings_may_be_partial_and_are_checked() {
        let config: GatewayConfig = serde_json::from_value(
            serde_json::json!({"breaker": {"open_ms": 5000, "window": {"time": {"millis": 60000}}}}),
        )
        .unwrap();
        assert_eq!(config.breaker.open_ms, 5000);
        assert_eq!(config.breaker.window, Window::Time { millis: 60_000 });
        assert_eq!(config.breaker.minimum_calls, BreakerConfig::default().minimum_calls, "the rest keeps its defaults");
        let bad = serde_json::from_value::<GatewayConfig>(serde_json::json!({"breaker": {"half_open_probes": 0}}));
        assert!(bad.unwrap_err().to_string().contains("`half_open_probes` must be at least 1"));
        let unknown = serde_json::from_value::<GatewayConfig>(serde_json::json!({"breaker": {"open": 1}}));
        assert!(unknown.unwrap_err().to_string().contains("unknown field `open`"));
    }
}
