//! `caio route`: one decision, offline, from files: which service, and why
//! every other one was not chosen.

use std::path::PathBuf;

use anyhow::{Context, Result};
use caio_calculus::contract::Format;
use caio_calculus::registry::Registry;
use caio_calculus::request::parse_request;
use caio_calculus::route::{RouteError, Router};

use crate::Outcome;
use crate::config::{Overrides, Settings, Sources};

/// Route a request offline.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request file (YAML or JSON).
    request: PathBuf,
    #[command(flatten)]
    sources: Sources,
    /// The caller's token, if the request file has none.
    #[arg(long)]
    token: Option<String>,
    /// Without a token: permissions of a development token signed for the decision.
    #[arg(long = "permission")]
    permissions: Vec<String>,
    /// Trust level of that development token.
    #[arg(long, default_value_t = 0)]
    trust_level: u8,
    /// The decision time, seconds since the epoch [default: now].
    #[arg(long)]
    now: Option<u64>,
    /// Print the whole decision as JSON.
    #[arg(long)]
    json: bool,
}

/// Routes and prints.
pub fn run(args: Args) -> Result<Outcome> {
    let settings = Settings::load(Overrides { sources: args.sources, ..Overrides::default() })?;
    let dir = settings.registry.clone().context("no registry: pass --registry DIR (a directory of contract files)")?;
    let registry = Registry::from_contracts(crate::config::read_contracts(&dir)?)?;
    let (auth, development) = settings.auth_config()?;
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("{}: cannot read the request", args.request.display()))?;
    let mut request = parse_request(&text, Format::from_file_name(&args.request.to_string_lossy()))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.request.display()))?;
    let now = args.now.unwrap_or_else(super::now);
    if let Some(token) = args.token {
        request.token = token;
    } else if request.token.is_empty() && development {
        request.token = super::token::development_token("offline", &args.permissions, args.trust_level, "local", 3600)?;
        // A token signed now must be valid at the decision time.
        if args.now.is_some() {
            anyhow::bail!("--now needs --token: a development token is signed for the current time");
        }
    }
    let router = Router::new(registry, settings.policy()?, settings.route_config(auth));
    match router.route(&request, now) {
        Ok(decision) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&decision)?);
                return Ok(Outcome::Done);
            }
            println!(
                "{}: selected {} (score {:.4})",
                decision.request_id, decision.selected.service, decision.selected.score
            );
            for (rank, alternative) in decision.alternatives.iter().enumerate() {
                println!(
                    "  {} (ranked {}, score {:.4}): admitted, outranked",
                    alternative.service,
                    rank + 2,
                    alternative.score
                );
            }
            for rejection in
                decision.rejected.iter().filter(|r| !decision.alternatives.iter().any(|a| a.service == r.service))
            {
                println!("  {} (step {}): {}", rejection.service, rejection.step, rejection.reason);
            }
            println!("trace {}", decision.trace.hash);
            Ok(Outcome::Done)
        }
        Err(RouteError::NoService { rejected }) => {
            println!("{}: no service qualifies", request.id);
            for rejection in rejected {
                println!("  {rejection}");
            }
            Ok(Outcome::Problems)
        }
        Err(other) => {
            println!("{}: {other}", request.id);
            Ok(Outcome::Problems)
        }
    }
}
