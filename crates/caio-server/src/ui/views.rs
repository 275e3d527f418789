//! What each dashboard page shows, read from the store, the gateway and the
//! routing snapshot and flattened into plain strings for the templates.
//!
//! This module must never change anything: it reads. A decision's
//! "why" is taken from its recorded trace, and each recorded proof is
//! re-checked here with the calculus's own `proof::verify`, so the page
//! shows both what was claimed and whether it still holds.

use caio_calculus::plan::CompositionProof;
use caio_calculus::proof::{Evidence, Proof, verify};
use caio_calculus::trace::Trace;
use caio_gateway::BreakerView;
use caio_store::ServiceRecord;
use serde_json::Value;

use crate::state::AppState;
use crate::ui::sparkline::{Sparkline, draw};

/// How many of the newest traces the overview lists.
pub const LATEST: u64 = 20;

/// A service row of the registry table.
pub struct ServiceRow {
    pub id: String,
    pub version: String,
    pub versions: usize,
    pub capabilities: String,
    pub locality: String,
    pub cost: String,
    pub latency: String,
    pub deprecated: bool,
    pub breaker: String,
    pub breaker_detail: String,
    pub calls: u64,
    pub failures: u64,
    pub p95: String,
    pub sparkline: Option<Sparkline>,
}

/// A row of the latest decisions.
pub struct DecisionRow {
    pub seq: u64,
    pub kind: String,
    pub request_id: String,
    pub selected: String,
    pub summary: String,
    pub proofs_hold: Option<bool>,
}

/// What the overview says about the trace chain.
pub struct ChainStatus {
    pub valid: bool,
    pub message: String,
}

fn breaker_words(view: &BreakerView) -> (String, String) {
    let detail = match (view.retry_in_ms, view.probes) {
        (Some(ms), _) => format!("probes in {}; opened {}", wait(ms), count(view.opened as usize, "time", "times")),
        (_, Some((admitted, succeeded))) => format!("{succeeded} of {admitted} probes succeeded"),
        _ if view.opened > 0 => format!("opened {}", count(view.opened as usize, "time", "times")),
        _ => String::new(),
    };
    (view.state.replace('_', "-"), detail)
}

/// `1 call`, `2 calls`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A wait for people: `850 ms`, `42 s`, `10 min`.
fn wait(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1_000),
        _ => format!("{} min", ms / 60_000),
    }
}

fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The registry, one row per service, with what this process saw of it.
pub fn services(state: &AppState, records: &[ServiceRecord]) -> Vec<ServiceRow> {
    let gateway = state.gateway();
    records
        .iter()
        .map(|record| {
            let active = record.active().map(|v| &v.contract);
            let observed = gateway.observed().of(&record.id).unwrap_or_default();
            let (breaker, breaker_detail) = breaker_words(&gateway.breakers().view(&record.id));
            ServiceRow {
                id: record.id.clone(),
                version: record.active().map(|v| v.version.clone()).unwrap_or_default(),
                versions: record.versions.len(),
                capabilities: active
                    .map(|c| c.capabilities.iter().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                locality: active.map(|c| format!("{:?}", c.privacy.data_locality).to_lowercase()).unwrap_or_default(),
                cost: active
                    .map(|c| format!("${} + ${}/1k tokens", number(c.cost.per_request), number(c.cost.per_1k_tokens)))
                    .unwrap_or_default(),
                latency: active
                    .and_then(|c| c.guarantees.get("latency_ms").and_then(|b| b.max))
                    .map(|max| format!("≤ {} ms", number(max)))
                    .unwrap_or_else(|| "—".into()),
                deprecated: record.deprecated_at.is_some(),
                breaker,
                breaker_detail,
                calls: observed.calls,
                failures: observed.failures,
                p95: observed.latency_p95_ms.map(|ms| format!("{} ms", number(ms))).unwrap_or_else(|| "—".into()),
                sparkline: draw(&gateway.observed().recent(&record.id)),
            }
        })
        .collect()
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn proofs(body: &Value) -> Option<Vec<Proof>> {
    serde_json::from_value(body.get("proofs")?.clone()).ok()
}

/// A plan's trace, explained: its steps, and the composition proof
/// re-checked as the page is drawn.
pub struct PlanDetail {
    pub seq: u64,
    pub hash: String,
    pub request_id: String,
    pub score: String,
    /// Each step: its name, the service chosen, what that service
    /// guarantees, and the step decision's trace if it was found.
    pub steps: Vec<PlanStepRow>,
    /// Each end-to-end requirement beside what the combination guarantees.
    pub bounds: Vec<(String, String, String)>,
    pub locality: String,
    pub proof_holds: bool,
    pub raw: String,
}

/// One step of a plan.
pub struct PlanStepRow {
    pub step: String,
    pub chosen: String,
    pub offers: String,
    pub digest: String,
    pub decision: Option<u64>,
}

/// The plan's composition proof in a trace body, if it is a plan's.
fn plan_proof(body: &Value) -> Option<CompositionProof> {
    body.get("plan")?;
    serde_json::from_value(body.get("proof")?.clone()).ok()
}

/// A plan's trace, explained; `None` for any other trace. `steps` are the
/// step decisions' sequence numbers by the digest of their bodies.
pub fn plan(trace: &Trace, decisions: &std::collections::BTreeMap<String, u64>) -> Option<PlanDetail> {
    let body = &trace.body.to_value();
    let proof = plan_proof(body)?;
    let steps = body.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    Some(PlanDetail {
        seq: trace.seq,
        hash: trace.hash.clone(),
        request_id: text(body, "/request_id"),
        score: score(body.get("score")),
        steps: steps
            .iter()
            .map(|row| {
                let (step, digest) = (text(row, "/0"), text(row, "/2"));
                let offers = proof.parts.iter().find(|p| p.0 == step).map(|p| &p.2);
                PlanStepRow {
                    chosen: text(row, "/1"),
                    offers: offers
                        .map(|o| o.guarantees.iter().map(|(k, b)| format!("{k} {b}")).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                    decision: decisions.get(&digest).copied(),
                    step,
                    digest,
                }
            })
            .collect(),
        bounds: proof
            .end_to_end
            .guarantees
            .iter()
            .map(|(k, required)| {
                let composed = proof.composite.guarantees.get(k).map_or("none".to_string(), ToString::to_string);
                (k.clone(), required.to_string(), composed)
            })
            .collect(),
        locality: proof.composite.locality.to_string(),
        proof_holds: proof.holds(),
        raw: pretty(Some(body)),
    })
}

/// The digests a plan's trace names its step decisions by.
pub fn plan_step_digests(trace: &Trace) -> Vec<String> {
    let body = trace.body.to_value();
    body.get("plan").map_or_else(Vec::new, |_| {
        body.get("steps").and_then(Value::as_array).into_iter().flatten().map(|row| text(row, "/2")).collect()
    })
}

/// A trace as a row of the latest decisions.
pub fn decision_row(trace: &Trace) -> DecisionRow {
    let body = &trace.body.to_value();
    if let Some(proof) = plan_proof(body) {
        let steps = body.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
        return DecisionRow {
            seq: trace.seq,
            kind: "plan".into(),
            request_id: text(body, "/request_id"),
            selected: proof.parts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join(" → "),
            summary: format!("{}, score {}", count(steps, "step", "steps"), score(body.get("score"))),
            proofs_hold: Some(proof.holds()),
        };
    }
    if let Some(change) = caio_store::registry_log::RegistryChange::of(trace) {
        return DecisionRow {
            seq: trace.seq,
            kind: "registry".into(),
            request_id: String::new(),
            selected: change.service.clone(),
            summary: match change.version {
                Some(version) => format!("{} {version} by {}", change.event, change.by),
                None => format!("{} by {}", change.event, change.by),
            },
            proofs_hold: None,
        };
    }
    if let Some(change) = caio_store::registry_log::ConfigChange::read(trace) {
        return DecisionRow {
            seq: trace.seq,
            kind: "configuration".into(),
            request_id: String::new(),
            selected: String::new(),
            summary: format!("policy {}, keys {}, by {}", &change.policy[..12], &change.auth[..12], change.by),
            proofs_hold: None,
        };
    }
    if body.get("kind").and_then(Value::as_str) == Some("execution") {
        let attempts = body.get("attempts").and_then(Value::as_array).map_or(0, Vec::len);
        let served = text(body, "/served_by");
        return DecisionRow {
            seq: trace.seq,
            kind: "execution".into(),
            request_id: text(body, "/request_id"),
            selected: if served.is_empty() { "none".into() } else { served },
            summary: format!(
                "{} for decision #{}",
                count(attempts, "attempt", "attempts"),
                text(body, "/decision/seq")
            ),
            proofs_hold: None,
        };
    }
    let alternatives = body.get("alternatives").and_then(Value::as_array).map_or(0, Vec::len);
    let rejected = body.pointer("/rejected/capability").and_then(Value::as_array).map_or(0, Vec::len)
        + body.pointer("/rejected/other").and_then(Value::as_array).map_or(0, Vec::len);
    DecisionRow {
        seq: trace.seq,
        kind: "decision".into(),
        request_id: text(body, "/request_id"),
        selected: text(body, "/selected/service"),
        summary: format!("{}, {rejected} excluded", count(alternatives, "alternative", "alternatives")),
        proofs_hold: proofs(body).map(|proofs| proofs.iter().all(verify)),
    }
}

/// The newest traces, newest first.
pub fn latest(store: &dyn caio_store::Store) -> Result<Vec<Trace>, caio_store::StoreError> {
    let Some(head) = store.head()? else { return Ok(Vec::new()) };
    let first = head.seq.saturating_sub(LATEST - 1);
    let mut traces = vec![head.clone()];
    for seq in (first..head.seq).rev() {
        traces.extend(store.trace(seq)?);
    }
    Ok(traces)
}

/// Verifies the whole log up to `head` (the newest of [`latest`]) against
/// the recorded head, incrementally: the first view checks every entry
/// (links, the Merkle tree, stored checkpoints, the registry's replay),
/// later views only the entries after the last one verified, starting at
/// that entry, whose hash must not have changed. Says also which signed
/// checkpoint is the latest and how old it is.
pub fn chain(
    store: &dyn caio_store::Store,
    head: Option<&Trace>,
    verified: &std::sync::Mutex<Option<(u64, String)>>,
    now: u64,
) -> ChainStatus {
    let checkpoint = match store.checkpoint(None) {
        Ok(Some(c)) => format!(
            "; the latest signed checkpoint covers {} entries (signed {} ago)",
            c.size,
            wait(now.saturating_sub(c.signed_at).saturating_mul(1000))
        ),
        Ok(None) => "; no checkpoint is signed".into(),
        Err(e) => format!("; the checkpoints cannot be read: {e}"),
    };
    let Some(head) = head else { return ChainStatus { valid: true, message: format!("the log is empty{checkpoint}") } };
    let known = verified.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let outcome = store.verify(known.as_ref().map(|(seq, _)| *seq), None).and_then(|report| match &known {
        Some((seq, hash)) if store.trace(*seq)?.is_none_or(|t| t.hash != *hash) => {
            Err(caio_store::StoreError::Corrupt(format!("entry {seq} changed after it was verified")))
        }
        _ => Ok(report),
    });
    match outcome {
        Ok(report) if report.anchored => {
            let last = report.last.unwrap_or(head.seq);
            *verified.lock().unwrap_or_else(|p| p.into_inner()) = report.head.clone().map(|hash| (last, hash));
            ChainStatus {
                valid: true,
                message: format!(
                    "all {} entries verify and end at the recorded head {} ({} checked now){checkpoint}",
                    last + 1,
                    report.head.as_deref().map_or("", |h| &h[..h.len().min(16)]),
                    report.checked
                ),
            }
        }
        Ok(report) => ChainStatus {
            valid: false,
            message: format!("{} entries verify but do not reach the recorded head{checkpoint}", report.checked),
        },
        Err(e) => ChainStatus { valid: false, message: format!("the trace log does not verify: {e}{checkpoint}") },
    }
}

/// One proof of a decision, with its re-check.
pub struct ProofRow {
    pub step: String,
    pub service: String,
    pub property: String,
    pub statement: String,
    pub facts: String,
    pub recorded: bool,
    pub holds: bool,
    pub evidence: String,
}

/// A service that was not selected.
pub struct Excluded {
    pub service: String,
    pub step: String,
    pub reason: String,
}

/// An admitted service that was not selected: its score, rounded for
/// people, and its breaker at decision time.
pub struct Alternative {
    pub service: String,
    pub score: String,
    pub breaker: String,
}

/// A decision, for its page.
pub struct DecisionDetail {
    pub seq: u64,
    pub hash: String,
    pub prev_hash: String,
    pub request_id: String,
    pub selected: String,
    pub score: String,
    /// The selected service's breaker at decision time.
    pub breaker: String,
    /// Whether the selected service was a probe.
    pub probe: bool,
    pub proofs: Vec<ProofRow>,
    pub alternatives: Vec<Alternative>,
    pub excluded: Vec<Excluded>,
    pub not_capable: Vec<String>,
    pub guarantees: String,
    pub control: String,
    pub raw: String,
}

/// A score for people: three decimals (the trace keeps every digit).
fn score(value: Option<&Value>) -> String {
    value.and_then(Value::as_f64).map_or_else(String::new, |v| format!("{v:.3}"))
}

/// A list of names for people, or `none`.
fn names<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// What a proof's evidence says, in words for people: absent values are
/// named (`any tenant`, `no guarantee`), numbers rounded.
pub fn plain(evidence: &Evidence) -> String {
    match evidence {
        Evidence::Capabilities { required, offered, .. } => {
            format!("requested {}; offered {}", names(required), names(offered))
        }
        Evidence::Bound { property, offered, required } => match offered {
            Some(offered) => format!("{property}: offers {offered}, needs {required}"),
            None => format!("{property}: no guarantee offered, needs {required}"),
        },
        Evidence::Latency { offered_max: Some(max), limit } => {
            format!("guarantees at most {max} ms; the limit is {limit} ms")
        }
        Evidence::Latency { offered_max: None, limit } => format!("no latency guarantee; the limit is {limit} ms"),
        Evidence::Locality { locality, allowed } => {
            let allowed: Vec<String> = allowed.iter().map(|l| l.to_string()).collect();
            format!("processes data at {locality}; allowed: {}", names(&allowed))
        }
        Evidence::Constraint { name, value, limit } => {
            format!("{name}: {} of at most {}", number(*value), number(*limit))
        }
        Evidence::Rules { rules, .. } => match rules.len() {
            0 => "no policy rules".into(),
            n => format!("{} hold", count(n, "rule", "rules")),
        },
        Evidence::Authenticated { issuer, algorithm, key_id, .. } => {
            format!("token from {issuer}, signed with {algorithm} key {key_id}")
        }
        Evidence::Authorized { required, held, .. } => {
            format!("needs {}; the caller holds {}", names(required), names(held))
        }
        Evidence::Privacy { sensitive, locality, encryption } => format!(
            "{} data; processed at {locality}{}",
            if *sensitive { "sensitive" } else { "not sensitive" },
            if *encryption { ", encrypted" } else { "" }
        ),
        Evidence::Trust { level, min } => format!("trust level {level}, at least {min} needed"),
        Evidence::Tenant { tenant, allowed: None } => format!("tenant {tenant}; any tenant allowed"),
        Evidence::Tenant { tenant, allowed: Some(allowed) } => format!("tenant {tenant}; allowed: {}", names(allowed)),
        Evidence::Rank { selected, scores, probe } => {
            let best = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
            let admitted = count(scores.len(), "admitted service", "admitted services");
            match probe {
                Some(p) if scores.iter().any(|s| &s.0 == selected && s.1 < best) => format!(
                    "{selected} probed among {admitted} ({}; draw {:.3}, share {:.3})",
                    if p.half_open.contains(selected) { "its breaker is half-open" } else { "its record held it back" },
                    p.draw,
                    p.share
                ),
                _ => format!("{selected} scores best among {admitted} ({best:.3})"),
            }
        }
        Evidence::Composition { composed, required } => {
            format!("{} guaranteed of {} required", count(composed.len(), "property", "properties"), required.len())
        }
    }
}

fn pretty(value: Option<&Value>) -> String {
    value.map(|v| serde_json::to_string_pretty(v).unwrap_or_default()).unwrap_or_default()
}

/// A routing decision's trace, explained; `None` for an execution trace.
pub fn decision(trace: &Trace) -> Option<DecisionDetail> {
    let body = &trace.body.to_value();
    body.get("selected")?;
    let proofs = proofs(body).unwrap_or_default();
    let strings =
        |pointer: &str| -> Vec<Value> { body.pointer(pointer).and_then(Value::as_array).cloned().unwrap_or_default() };
    // The breakers as the decision took them: half-open services are in the
    // rank proof's probe facts, open ones among the exclusions.
    let half_open: Vec<String> = proofs
        .iter()
        .find_map(|p| match &p.evidence {
            Evidence::Rank { probe: Some(probe), .. } => Some(probe.half_open.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let breaker =
        |service: &str| if half_open.iter().any(|h| h == service) { "half-open" } else { "closed" }.to_string();
    let selected = text(body, "/selected/service");
    Some(DecisionDetail {
        seq: trace.seq,
        hash: trace.hash.clone(),
        prev_hash: trace.prev_hash.clone(),
        request_id: text(body, "/request_id"),
        breaker: breaker(&selected),
        probe: body.get("probe").and_then(Value::as_bool).unwrap_or(false),
        selected,
        score: score(body.pointer("/selected/score")),
        proofs: proofs
            .iter()
            .map(|proof| ProofRow {
                step: proof.step.to_string(),
                service: proof.service.clone().unwrap_or_default(),
                property: proof.property.clone(),
                statement: proof.statement.clone(),
                facts: plain(&proof.evidence),
                recorded: proof.valid,
                holds: verify(proof),
                evidence: serde_json::to_string_pretty(&proof.evidence).unwrap_or_default(),
            })
            .collect(),
        alternatives: strings("/alternatives")
            .iter()
            .map(|pair| Alternative {
                service: text(pair, "/0"),
                score: score(pair.get(1)),
                breaker: breaker(&text(pair, "/0")),
            })
            .collect(),
        excluded: strings("/rejected/other")
            .iter()
            .map(|row| Excluded { service: text(row, "/0"), step: text(row, "/1"), reason: text(row, "/2") })
            .collect(),
        not_capable: strings("/rejected/capability").iter().map(|v| text(v, "")).collect(),
        guarantees: pretty(body.get("guarantees")),
        control: strings("/control").iter().map(|v| score(Some(v))).collect::<Vec<_>>().join(", "),
        raw: pretty(Some(body)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_people() {
        assert_eq!(count(1, "time", "times"), "1 time");
        assert_eq!(count(0, "time", "times"), "0 times");
        assert_eq!((wait(850), wait(42_000), wait(600_000)), ("850 ms".into(), "42 s".into(), "10 min".into()));
        assert_eq!((number(1.0), number(0.0025), number(0.5)), ("1".into(), "0.0025".into(), "0.5".into()));
        assert_eq!(score(Some(&serde_json::json!(-0.7428971428571429))), "-0.743");
        let tenant = Evidence::Tenant { tenant: "local".into(), allowed: None };
        assert_eq!(plain(&tenant), "tenant local; any tenant allowed");
    }
}
