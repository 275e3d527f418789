//! `caio serve`: the router over HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use caio_server::{AppState, ServerConfig, system_clock};
use caio_store::{Store, StoreError};

use crate::Outcome;
use crate::config::{Overrides, Settings, Sources, read_contracts};

/// Who the log names for contracts registered from the `registry` seed
/// directory when a store starts empty.
const SEED_ACTOR: &str = "caio serve (registry seed)";

/// Who the log names for the configuration entry each start appends.
const CONFIG_ACTOR: &str = "caio serve (start)";

/// Run the router.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (`caio.toml`); without one, the repository's examples and the development keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Where the store is: a SQLite file, or a `postgres://user:password@host:port/database` URL shared by replicas [default: caio.db].
    #[arg(long, visible_alias = "db")]
    store: Option<String>,
    #[command(flatten)]
    sources: Sources,
}

/// Logs as JSON lines on stderr; `CAIO_LOG` (or `RUST_LOG`) sets the filter.
fn init_logging() {
    let filter = std::env::var("CAIO_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!(target: "caio", "shutting down: draining requests in flight");
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: Args) -> Result<Outcome> {
    init_logging();
    let settings = Settings::load(Overrides {
        config: args.config,
        listen: args.listen,
        store: args.store,
        sources: args.sources,
    })?;
    let (auth, development, auth_text) = settings.auth_source()?;
    if development {
        tracing::warn!(target: "caio", "trusting the published development keys (examples/auth/dev.yaml): for local trials only; pass --auth or set `auth` in caio.toml");
    }
    match caio_server::connections::raise_descriptor_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(target: "caio", before, after, "raised the limit on open descriptors to the hard limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(target: "caio", "{e}"),
    }
    let (policy, policy_text) = settings.policy_source()?;
    let limits = settings.limits()?;
    let connections = settings.connections()?;
    let store = caio_store::open(&settings.store).context("cannot open the store")?;
    let now = super::now();
    if let Some(dir) = settings.registry.as_ref().filter(|_| store.services().is_ok_and(|s| s.is_empty())) {
        let contracts = read_contracts(dir)?;
        let mut registered = 0;
        for contract in contracts {
            match store.register(contract, now, SEED_ACTOR) {
                Ok(_) => registered += 1,
                // Replicas that start together on one empty store all seed
                // it: the first registration of each version wins.
                Err(StoreError::Duplicate { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(target: "caio", services = registered, registry = %dir.display(), "registered the seed contracts in the empty store");
    }
    let checkpoints = settings.checkpoints()?;
    // The configuration this server decides under, as an entry of the log.
    let log_key = checkpoints.as_ref().map(|c| c.signer.verifier().encode());
    let change = caio_store::registry_log::ConfigChange::of(&policy_text, &auth_text, log_key, CONFIG_ACTOR, now);
    let recorded =
        store.record_config(change, vec![policy_text, auth_text]).context("cannot record the configuration")?;
    tracing::info!(target: "caio", entry = recorded.seq, "recorded the policy and key configuration in the log");
    let mut config = ServerConfig::new(settings.route_config(auth), policy);
    config.limits = limits;
    config.connections = connections;
    // Bound before the state is built: the dashboard's origin names the port.
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    config.public_origin = settings.public_origin(listener.local_addr()?)?;
    config.routes = settings.routes()?;
    config.gateway = settings.file.gateway.clone();
    config.checkpoints = checkpoints;
    config.shared = settings.file.shared.clone();
    if let Some(permission) = &settings.file.admin_permission {
        config.admin_permission = permission.clone();
    }
    if let Some(permission) = &settings.file.audit_permission {
        config.audit_permission = permission.clone();
    }
    if let Some(permission) = &settings.file.viewer_permission {
        config.viewer_permission = permission.clone();
    }
    let location = store.location();
    let store: Arc<dyn Store> = Arc::from(store);
    let state = AppState::new(store, config, system_clock())?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let address = listener.local_addr()?;
        // The one line on stdout: where to reach the server (tests read it).
        println!("caio listening on http://{address}");
        tracing::info!(target: "caio", %address, store = %location, "listening");
        caio_server::serve(listener, state, shutdown_signal()).await.context("the server stopped")
    })?;
    Ok(Outcome::Done)
}
