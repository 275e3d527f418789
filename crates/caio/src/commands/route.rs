//! `caio route`: one decision, offline, from files: which service, and why
//! every other one was not chosen; with `--plan`, a plan of several steps:
//! which service for each step, and why the combination keeps the plan's
//! end-to-end bounds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use caio_calculus::breaker::Health;
use caio_calculus::contract::Format;
use caio_calculus::orchestrate::{PlanRequest, PlanRouteError, parse_plan_request, route_plan};
use caio_calculus::plan::PlanError;
use caio_calculus::proof::Reason;
use caio_calculus::registry::Registry;
use caio_calculus::request::parse_request;
use caio_calculus::route::{Inputs, RouteError, Router};

use crate::Outcome;
use crate::config::{Overrides, Settings, Sources};

/// Route a request offline.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request file (YAML or JSON); with `--plan`, a plan request.
    request: PathBuf,
    /// The file is a plan request: a tree of steps, each step's request and
    /// the end-to-end bounds (docs/plans.md).
    #[arg(long)]
    plan: bool,
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
    let format = Format::from_file_name(&args.request.to_string_lossy());
    let now = args.now.unwrap_or_else(super::now);
    // The caller's token for a request that has none.
    let token = |existing: &str| -> Result<Option<String>> {
        if let Some(token) = &args.token {
            return Ok(Some(token.clone()));
        }
        if !existing.is_empty() || !development {
            return Ok(None);
        }
        // A token signed now must be valid at the decision time.
        if args.now.is_some() {
            anyhow::bail!("--now needs --token: a development token is signed for the current time");
        }
        super::token::development_token("offline", &args.permissions, args.trust_level, "local", 3600).map(Some)
    };
    let router = Router::new(registry, settings.policy()?, settings.route_config(auth));
    if args.plan {
        let mut plan =
            parse_plan_request(&text, format).map_err(|e| anyhow::anyhow!("{}: {e}", args.request.display()))?;
        for step in plan.steps.values_mut() {
            if let Some(token) = token(&step.token)? {
                step.token = token;
            }
        }
        return explain_plan(&router, &plan, now, args.json);
    }
    let mut request = parse_request(&text, format).map_err(|e| anyhow::anyhow!("{}: {e}", args.request.display()))?;
    if let Some(token) = token(&request.token)? {
        request.token = token;
    }
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

/// Routes a plan and prints, per step, the service chosen, the others
/// admitted and why the rest were excluded; then the composite against the
/// end-to-end bounds.
fn explain_plan(router: &Router, plan: &PlanRequest, now: u64, json: bool) -> Result<Outcome> {
    let health = Health::new();
    let inputs = Inputs {
        registry: router.registry(),
        policy: router.policy(),
        history: router.history(),
        health: &health,
        config: router.config(),
        seed: router.seed(),
        now,
        previous: None,
    };
    let decision = match route_plan(plan, &inputs) {
        Ok(decision) => decision,
        Err(PlanRouteError::Step { step, error: RouteError::NoService { rejected } }) => {
            println!("{}: step `{step}`: no service qualifies", plan.id);
            for rejection in rejected {
                println!("  {rejection}");
            }
            return Ok(Outcome::Problems);
        }
        Err(PlanRouteError::Plan(PlanError::Unmeetable(shortfalls))) => {
            println!("{}: no combination of services meets the plan", plan.id);
            for shortfall in shortfalls {
                println!("  {shortfall}");
            }
            return Ok(Outcome::Problems);
        }
        Err(other) => {
            println!("{}: {other}", plan.id);
            return Ok(Outcome::Problems);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&decision)?);
        return Ok(Outcome::Done);
    }
    println!("{}: plan score {:.4}", decision.request_id, decision.choice.score);
    for step in &decision.steps {
        let routed = &step.decision;
        let admitted = std::iter::once(&routed.selected).chain(&routed.alternatives);
        let score = admitted.clone().find(|r| r.service == step.chosen).map_or(0.0, |r| r.score);
        let note =
            if step.chosen == routed.selected.service { "" } else { " (not the step's best alone: the plan's bounds)" };
        println!("  {}: {} (score {score:.4}){note}", step.step, step.chosen);
        for other in admitted.filter(|r| r.service != step.chosen) {
            println!("    {} (score {:.4}): admitted, not chosen", other.service, other.score);
        }
        let excluded = routed.rejected.iter().filter(|r| !routed.alternatives.iter().any(|a| a.service == r.service));
        let (unable, other): (Vec<_>, Vec<_>) = excluded.partition(|r| matches!(r.reason, Reason::Capability));
        for rejection in other {
            println!("    {} (step {}): {}", rejection.service, rejection.step, rejection.reason);
        }
        if !unable.is_empty() {
            println!("    {} other services do not offer the step's capabilities", unable.len());
        }
    }
    for (property, required) in &plan.end_to_end.guarantees {
        let composed =
            decision.choice.composite.guarantees.get(property).map_or("none".to_string(), ToString::to_string);
        println!("  end to end {property}: {composed} (required {required})");
    }
    if let Some(max) = plan.end_to_end.max_locality {
        println!("  end to end locality: {} (at most {max})", decision.choice.composite.locality);
    }
    println!(
        "  composition proof {}; trace {}",
        if decision.proof.holds() { "holds" } else { "DOES NOT HOLD" },
        decision.trace.hash
    );
    Ok(Outcome::Done)
}
