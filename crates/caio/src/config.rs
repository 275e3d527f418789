//! `caio.toml`: where the router listens, its store, registry seed, policy,
//! keys and limits. Every setting can be overridden by an environment
//! variable (`CAIO_LISTEN`, `CAIO_STORE`, `CAIO_REDIS`, `CAIO_REGISTRY`,
//! `CAIO_POLICY`, `CAIO_AUTH`) and by the command line; relative paths in the file are
//! relative to the file. Without a file, caio uses the examples of the
//! repository and the published development keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use caio_calculus::contract::{Contract, Format, is_valid_id, parse_contracts};
use caio_calculus::control::ControlConfig;
use caio_calculus::request::parse_request;
use caio_calculus::route::RouteConfig;
use caio_calculus::rules::{Policy, parse_policy};
use caio_calculus::score::{RequestField, ScoreConfig, ServiceHistory, score};
use caio_calculus::security::{AuthConfig, parse_auth_config};
use caio_gateway::GatewayConfig;
use caio_server::Limits;
use caio_shared::SharedConfig;
use caio_store::is_postgres_url;
use serde::Deserialize;

/// The development key configuration: published keys, for local trials
/// only (`examples/auth/dev.yaml`).
pub const DEV_AUTH: &str = include_str!("../../../examples/auth/dev.yaml");

/// `[limits]` of the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Largest request body, in bytes.
    pub body_bytes: Option<usize>,
    /// Largest upload (audio to transcribe), in bytes.
    pub upload_bytes: Option<usize>,
    /// Requests per second per caller.
    pub rate_per_second: Option<f64>,
    /// Requests at once per caller.
    pub burst: Option<f64>,
    /// Longest a request may take, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Longest an executed call may take until its answer starts, retries
    /// and fallbacks included, in milliseconds.
    pub call_timeout_ms: Option<u64>,
    /// Most requests served at once (streams until they end).
    pub max_in_flight: Option<usize>,
    /// Longest a streamed answer may last, in milliseconds.
    pub stream_ms: Option<u64>,
    /// Bytes of request bodies held at once.
    pub body_budget_bytes: Option<usize>,
    /// Requests one caller may have in flight.
    pub caller_in_flight: Option<usize>,
    /// Longest requests in flight may take to finish at shutdown, in ms.
    pub drain_ms: Option<u64>,
    /// Longest a connection may stay with no request in progress (the time
    /// a request head has to arrive whole), in ms.
    pub header_read_ms: Option<u64>,
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address.
    pub max_connections_per_address: Option<usize>,
    /// Largest read buffer of one connection, in bytes (at least 8192).
    pub read_buffer_bytes: Option<usize>,
}

/// `[checkpoints]` of the file: the transparency log's signed checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsFile {
    /// The log's Ed25519 private key, PKCS#8 PEM (`openssl genpkey
    /// -algorithm ed25519`): never one of the token keys.
    pub key: PathBuf,
    /// The log's name in its checkpoints (by convention the URL without
    /// scheme, such as `caio.example.com/log`); no spaces, no `+`.
    pub origin: String,
    /// Sign when this many entries were appended since the last checkpoint.
    #[serde(default = "default_every_entries")]
    pub every_entries: u64,
    /// Sign at least this often while the log grows, in milliseconds.
    #[serde(default = "default_every_ms")]
    pub every_ms: u64,
}

fn default_every_entries() -> u64 {
    1000
}

fn default_every_ms() -> u64 {
    10_000
}

/// The file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Where people reach this caio (`https://caio.example.com`): the
    /// dashboard's forms must come from it, and its cookie is `Secure` when
    /// it is https. Default: `http://` and `listen`, unless that is a
    /// wildcard address (then the request's `Host`).
    pub public_origin: Option<String>,
    /// Where the store is: a SQLite file, or a `postgres://` URL (`db` is
    /// the older name).
    #[serde(alias = "db")]
    pub store: Option<String>,
    /// A directory of contracts registered when the store has none.
    pub registry: Option<PathBuf>,
    /// The policy file.
    pub policy: Option<PathBuf>,
    /// The key configuration file (issuer, audience, keys).
    pub auth: Option<PathBuf>,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Score weights and scales.
    #[serde(default)]
    pub score: ScoreConfig,
    /// Control bounds.
    #[serde(default)]
    pub control: ControlConfig,
    /// The permission that allows registry changes.
    pub admin_permission: Option<String>,
    /// The permission that allows reading traces.
    pub audit_permission: Option<String>,
    /// The permission that allows looking at the dashboard (`/ui`).
    pub viewer_permission: Option<String>,
    /// How routed calls are executed: allowlist, retries, breakers.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// State shared with other replicas through Redis.
    #[serde(default)]
    pub shared: SharedConfig,
    /// Named routes for the OpenAI front doors: `model = "<name>"` routes
    /// with this request template.
    #[serde(default)]
    pub routes: BTreeMap<String, toml::Table>,
    /// Signed checkpoints of the log (none: no checkpoints are signed).
    pub checkpoints: Option<CheckpointsFile>,
}

/// Settings after the file, the environment and the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the store is: a SQLite file or a `postgres://` URL.
    pub store: String,
    /// Contracts to seed an empty store with.
    pub registry: Option<PathBuf>,
    /// The policy file (none: no rules).
    pub policy: Option<PathBuf>,
    /// The key configuration file (none: the development keys).
    pub auth: Option<PathBuf>,
    /// The file, for the rest.
    pub file: ConfigFile,
}

/// Where the registry, the policy and the keys come from (`serve` and
/// `route` take the same flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Sources {
    /// A directory of contracts [default without a configuration file: examples/contracts]; `serve` registers them when its store is empty.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// The policy file [default without a configuration file: examples/policies/default.yaml].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The key configuration file: issuer, audience, keys [default: the development keys of examples/auth/dev.yaml].
    #[arg(long)]
    pub auth: Option<PathBuf>,
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--store`.
    pub store: Option<String>,
    /// `--registry`, `--policy`, `--auth`.
    pub sources: Sources,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Checks `[score]` once, at start, by scoring a plain service with a
/// failing record (the calculus names the setting that is wrong), so that a
/// bad value stops `serve` instead of failing every decision.
fn check_score(config: &ScoreConfig) -> Result<()> {
    let contract = parse_contracts(
        "{id: check, version: 1.0.0, capabilities: [chat], privacy: {data_locality: local}, api: {adapter: openai, endpoint: 'http://127.0.0.1:1'}}",
        Format::Yaml,
    )
    .expect("a valid contract")
    .remove(0);
    let request = parse_request("{id: check, capabilities: [chat]}", Format::Yaml).expect("a valid request");
    let failing = ServiceHistory { calls: 10.0, failures: 10.0, ..ServiceHistory::default() };
    score(&contract, &request, Some(&failing), &RequestField::default(), config)
        .map_err(|e| anyhow::anyhow!("[score]: {e}"))?;
    if !(0.0..=1.0).contains(&config.probe_share) {
        bail!("[score]: `probe_share` must be in [0, 1], found {}", config.probe_share);
    }
    Ok(())
}

impl Settings {
    /// Reads the file (if any) and applies the environment and `overrides`.
    pub fn load(overrides: Overrides) -> Result<Settings> {
        let (file, base) = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read the configuration", path.display()))?;
                let file: ConfigFile = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim()))?;
                (file, path.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None => (ConfigFile::default(), PathBuf::new()),
        };
        let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let no_file = overrides.config.is_none();
        let listen = overrides
            .listen
            .or_else(|| std::env::var("CAIO_LISTEN").ok().filter(|v| !v.is_empty()))
            .or(file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr =
            listen.parse().with_context(|| format!("`{listen}` is not an address such as 127.0.0.1:8080"))?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file_store = file.store.clone().map(|s| match is_postgres_url(&s) {
            true => s,
            false => relative(PathBuf::from(s)).display().to_string(),
        });
        let store = overrides
            .store
            .or_else(|| env("CAIO_STORE"))
            .or_else(|| env("CAIO_DB"))
            .or(file_store)
            .unwrap_or_else(|| "caio.db".into());
        let mut file = file;
        if let Some(url) = env("CAIO_REDIS") {
            file.shared.redis = Some(url);
        }
        let example = |rel: &str| no_file.then(|| PathBuf::from(rel)).filter(|p| p.exists());
        let registry = overrides
            .sources
            .registry
            .or_else(|| env_path("CAIO_REGISTRY"))
            .or(file.registry.clone().map(relative))
            .or_else(|| example("examples/contracts"));
        let policy = overrides
            .sources
            .policy
            .or_else(|| env_path("CAIO_POLICY"))
            .or(file.policy.clone().map(relative))
            .or_else(|| example("examples/policies/default.yaml"));
        let auth = overrides.sources.auth.or_else(|| env_path("CAIO_AUTH")).or(file.auth.clone().map(relative));
        check_score(&file.score)?;
        let mut file = file;
        if let Some(checkpoints) = file.checkpoints.as_mut() {
            checkpoints.key = relative(checkpoints.key.clone());
        }
        Ok(Settings { listen, store, registry, policy, auth, file })
    }

    /// How checkpoints are signed, if `[checkpoints]` is set.
    pub fn checkpoints(&self) -> Result<Option<caio_server::checkpoints::CheckpointConfig>> {
        let Some(file) = &self.file.checkpoints else { return Ok(None) };
        let pem = std::fs::read_to_string(&file.key)
            .with_context(|| format!("[checkpoints] key: {}: cannot read the log key", file.key.display()))?;
        let signer = caio_store::checkpoint::NoteSigner::from_pem(&file.origin, &pem)
            .map_err(|e| anyhow::anyhow!("[checkpoints] key: {}: {e}", file.key.display()))?;
        if file.every_entries == 0 || file.every_ms == 0 {
            bail!("[checkpoints]: every_entries and every_ms must be > 0");
        }
        let every = Duration::from_millis(file.every_ms);
        Ok(Some(caio_server::checkpoints::CheckpointConfig {
            signer,
            every_entries: file.every_entries,
            every,
            poll: every.min(Duration::from_millis(250)),
        }))
    }

    /// The key configuration, and whether it is the development one.
    pub fn auth_config(&self) -> Result<(AuthConfig, bool)> {
        self.auth_source().map(|(config, development, _)| (config, development))
    }

    /// The key configuration, whether it is the development one, and the
    /// text it was read from (recorded in the log by digest).
    pub fn auth_source(&self) -> Result<(AuthConfig, bool, String)> {
        match &self.auth {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read the key configuration", path.display()))?;
                let config = parse_auth_config(&text, Format::from_file_name(&path.to_string_lossy()))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok((config, false, text))
            }
            None => Ok((
                parse_auth_config(DEV_AUTH, Format::Yaml).expect("the development keys are valid"),
                true,
                DEV_AUTH.to_string(),
            )),
        }
    }

    /// The routing configuration: `auth` with the file's score and control.
    pub fn route_config(&self, auth: AuthConfig) -> RouteConfig {
        RouteConfig { auth, score: self.file.score, control: self.file.control }
    }

    /// The policy (no rules without a policy file).
    pub fn policy(&self) -> Result<Policy> {
        self.policy_source().map(|(policy, _)| policy)
    }

    /// The policy and the text it was read from (empty without a file).
    pub fn policy_source(&self) -> Result<(Policy, String)> {
        match &self.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read the policy", path.display()))?;
                let policy = parse_policy(&text, Format::from_file_name(&path.to_string_lossy()))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok((policy, text))
            }
            None => Ok((Policy::default(), String::new())),
        }
    }

    /// The request limits.
    pub fn limits(&self) -> Result<Limits> {
        let defaults = Limits::default();
        let file = &self.file.limits;
        let limits = Limits {
            body_bytes: file.body_bytes.unwrap_or(defaults.body_bytes),
            // Unset, it stays within a smaller budget of bodies.
            upload_bytes: file.upload_bytes.unwrap_or_else(|| {
                defaults.upload_bytes.min(file.body_budget_bytes.unwrap_or(defaults.body_budget_bytes))
            }),
            rate_per_second: file.rate_per_second.unwrap_or(defaults.rate_per_second),
            burst: file.burst.unwrap_or(defaults.burst),
            timeout: file.timeout_ms.map(Duration::from_millis).unwrap_or(defaults.timeout),
            call_timeout: file.call_timeout_ms.map(Duration::from_millis).unwrap_or(defaults.call_timeout),
            max_in_flight: file.max_in_flight.unwrap_or(defaults.max_in_flight),
            stream: file.stream_ms.map(Duration::from_millis).unwrap_or(defaults.stream),
            body_budget_bytes: file.body_budget_bytes.unwrap_or(defaults.body_budget_bytes),
            caller_in_flight: file.caller_in_flight.unwrap_or(defaults.caller_in_flight),
            drain: file.drain_ms.map(Duration::from_millis).unwrap_or(defaults.drain),
        };
        if limits.body_bytes == 0
            || limits.max_in_flight == 0
            || limits.timeout.is_zero()
            || limits.call_timeout.is_zero()
            || limits.stream.is_zero()
            || limits.caller_in_flight == 0
            || limits.drain.is_zero()
            || limits.body_budget_bytes < limits.body_bytes
            || limits.upload_bytes == 0
            || limits.body_budget_bytes < limits.upload_bytes
            || !limits.rate_per_second.is_finite()
            || limits.rate_per_second <= 0.0
            || !limits.burst.is_finite()
            || limits.burst < 1.0
        {
            bail!(
                "[limits]: body_bytes, max_in_flight, timeout_ms, call_timeout_ms, stream_ms, caller_in_flight and drain_ms must be > 0, body_budget_bytes at least body_bytes and upload_bytes (> 0), rate_per_second a finite number > 0 and burst a finite number >= 1"
            );
        }
        Ok(limits)
    }

    /// The dashboard's public origin: the setting, checked, or `http://`
    /// and the address listened on (`bound`) when it names one host.
    pub fn public_origin(&self, bound: SocketAddr) -> Result<Option<String>> {
        match &self.file.public_origin {
            Some(origin) => checked_origin(origin).map(Some),
            None if bound.ip().is_unspecified() => Ok(None),
            None => Ok(Some(format!("http://{bound}"))),
        }
    }

    /// The limits on connections (`[limits]` too).
    pub fn connections(&self) -> Result<caio_server::connections::ConnectionLimits> {
        let defaults = caio_server::connections::ConnectionLimits::default();
        let file = &self.file.limits;
        let limits = caio_server::connections::ConnectionLimits {
            header_read: file.header_read_ms.map(Duration::from_millis).unwrap_or(defaults.header_read),
            max_connections: file.max_connections.unwrap_or(defaults.max_connections),
            max_per_address: file.max_connections_per_address.unwrap_or(defaults.max_per_address),
            read_buffer: file.read_buffer_bytes.unwrap_or(defaults.read_buffer),
        };
        if limits.header_read.is_zero() || limits.max_connections == 0 || limits.max_per_address == 0 {
            bail!("[limits]: header_read_ms, max_connections and max_connections_per_address must be > 0");
        }
        if limits.read_buffer < caio_server::http::MIN_READ_BUFFER {
            bail!(
                "[limits]: read_buffer_bytes must be at least {} (found {})",
                caio_server::http::MIN_READ_BUFFER,
                limits.read_buffer
            );
        }
        Ok(limits)
    }

    /// The named routes, each checked as a request (with a placeholder id).
    pub fn routes(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut routes = BTreeMap::new();
        for (name, table) in &self.file.routes {
            if !is_valid_id(name) {
                bail!("[routes.{name}]: a route name uses lowercase letters, digits, `.`, `_` and `-`");
            }
            let mut template = serde_json::to_value(table).context("a route template")?;
            for field in ["id", "token"] {
                if template.get(field).is_some() {
                    bail!("[routes.{name}].{field}: set by each call, not by the route");
                }
            }
            let mut probe = template.clone();
            probe["id"] = serde_json::Value::String("probe".into());
            parse_request(&probe.to_string(), Format::Json).map_err(|e| anyhow::anyhow!("[routes.{name}].{e}"))?;
            if let Some(fields) = template.as_object_mut() {
                fields.remove("id");
            }
            routes.insert(name.clone(), template);
        }
        Ok(routes)
    }
}

/// The contract files of a directory (`.yaml`, `.yml`, `.json`), sorted.
pub fn contract_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}: cannot read the directory", dir.display()))? {
        let path = entry?.path();
        let contract_like =
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if path.is_file() && contract_like {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every contract of a directory; the first bad file is an error naming it.
pub fn read_contracts(dir: &Path) -> Result<Vec<Contract>> {
    let mut contracts = Vec::new();
    for path in contract_files(dir)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let parsed = parse_contracts(&text, Format::from_file_name(&path.to_string_lossy()))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        contracts.extend(parsed);
    }
    Ok(contracts)
}

/// A public origin as written: `http://` or `https://`, a host, maybe a
/// port, and nothing after it.
fn checked_origin(origin: &str) -> Result<String> {
    let trimmed = origin.trim_end_matches('/');
    let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']) => Ok(trimmed.to_string()),
        _ => bail!(
            "public_origin: `{origin}` must be an origin such as https://caio.example.com (scheme, host, port, no path)"
        ),
    }
}
