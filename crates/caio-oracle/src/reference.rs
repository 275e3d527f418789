//! Brute-force reference of steps 1 to 5 of the master equation.
//!
//! Every service is judged on its own, in the order of `docs/calculus.md`:
//! match (capabilities, each required guarantee, the latency limit, the
//! allowed localities), rules (highest priority first, then by id; a rule
//! that cannot be evaluated fails closed), security (the token once, then
//! permissions, privacy, trust and tenant), constraints (budget, input size).
//! Then availability: a service whose breaker is open, or half-open with no
//! probe left, is excluded. The first step that fails is the service's
//! exclusion; the admitted ones are scored and the best is named, ties going
//! to the smaller key `SHA-256(seed as 8 little-endian bytes || id)[..8]`
//! (big-endian), then to the smaller id. Then the probe rule: the admitted
//! services are ranked again as if nothing had been observed of any; when
//! the best of that ranking is not the best of the first, it is selected
//! instead, as a probe, if its breaker is half-open or the request's draw is
//! below the probe share. Nothing here is shared with `caio-calculus` but
//! its data types.

use std::collections::{BTreeMap, BTreeSet};

use caio_calculus::breaker::{Availability, Health};
use caio_calculus::contract::{Contract, Locality, PermissionMode};
use caio_calculus::guarantee::Bound;
use caio_calculus::request::{CapabilitiesMode, Request, Sensitivity};
use caio_calculus::rules::RuleSpec;
use caio_calculus::score::{History, ScoreConfig};
use caio_calculus::security::{AuthConfig, KeyAlgorithm};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What the reference decides for one service.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Passes steps 1 to 4, with its score.
    Admitted {
        /// The score, `None` when the specification gives no finite number.
        score: Option<f64>,
    },
    /// Excluded by `step` (`match`, `rules`, `security`, `constraints`).
    Excluded {
        /// The step, named as in traces.
        step: &'static str,
        /// What failed: `capability`, a guarantee property, `max_latency_ms`,
        /// `locality`, a rule id, `authorized`, `privacy`, `trust`, `tenant`,
        /// `budget` or `input_tokens`.
        what: String,
    },
}

/// The reference's judgement of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Why the token does not authenticate, if it does not.
    pub unauthenticated: Option<String>,
    /// Each service's verdict, by id (empty when unauthenticated).
    pub verdicts: BTreeMap<String, Verdict>,
    /// The best admitted service by score.
    pub best: Option<String>,
    /// The service to select: the best, or the one the probe rule picks.
    pub selected: Option<String>,
    /// Whether `selected` is a probe.
    pub probe: bool,
}

impl Judgement {
    /// Ids of the admitted services.
    pub fn admitted(&self) -> BTreeSet<&str> {
        self.verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Admitted { .. })).map(|(id, _)| id.as_str()).collect()
    }

    /// The reference score of a service, if admitted and finite.
    pub fn score(&self, id: &str) -> Option<f64> {
        match self.verdicts.get(id)? {
            Verdict::Admitted { score } => *score,
            Verdict::Excluded { .. } => None,
        }
    }
}

/// Everything besides the request, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// The active contracts.
    pub services: &'a [Contract],
    /// The policy's rules, in any order.
    pub rules: &'a [RuleSpec],
    /// Token verification settings.
    pub auth: &'a AuthConfig,
    /// Observations per service.
    pub history: &'a History,
    /// The breakers that are not closed.
    pub health: &'a Health,
    /// Score settings.
    pub score: &'a ScoreConfig,
    /// The tie-break seed.
    pub seed: u64,
    /// The decision time, seconds since the epoch.
    pub now: u64,
}

/// Judges every service for a request.
pub fn judge(request: &Request, world: &World) -> Judgement {
    let claims = match authenticate(&request.token, world.auth, world.now) {
        Ok(claims) => claims,
        Err(why) => {
            return Judgement {
                unauthenticated: Some(why),
                verdicts: BTreeMap::new(),
                best: None,
                selected: None,
                probe: false,
            };
        }
    };
    let mut verdicts = BTreeMap::new();
    for contract in world.services {
        let excluded = first_failure(contract, request, world.rules, &claims).or_else(|| {
            match world.health.get(&contract.id) {
                Some(Availability::Open { .. }) => Some(("availability", "open".to_string())),
                Some(Availability::HalfOpen { probes_left: 0 }) => Some(("availability", "half_open".to_string())),
                _ => None,
            }
        });
        let verdict = match excluded {
            Some((step, what)) => Verdict::Excluded { step, what },
            None => Verdict::Admitted { score: None },
        };
        verdicts.insert(contract.id.clone(), verdict);
    }
    let admitted: Vec<&Contract> =
        world.services.iter().filter(|c| verdicts[&c.id] == Verdict::Admitted { score: None }).collect();
    let field = crate::score::field_terms(request, admitted.iter().filter_map(|c| c.encoding.as_deref()), world.score);
    // `a` ranks above `b`: a higher score, then the smaller key, then the smaller id.
    let above = |a: &(f64, u64, String), b: &(f64, u64, String)| {
        a.0 > b.0 || (a.0 == b.0 && (a.1 < b.1 || (a.1 == b.1 && a.2 < b.2)))
    };
    let mut best: Option<(f64, u64, String)> = None;
    // The same ranking as if no service had been observed.
    let mut best_unobserved: Option<(f64, u64, String)> = None;
    for contract in admitted {
        let key = tie_key(world.seed, &contract.id);
        let score = field
            .and_then(|f| crate::score::total(contract, request, world.history.get(&contract.id), f, world.score));
        verdicts.insert(contract.id.clone(), Verdict::Admitted { score });
        if let Some(score) = score {
            let candidate = (score, key, contract.id.clone());
            if best.as_ref().is_none_or(|b| above(&candidate, b)) {
                best = Some(candidate);
            }
        }
        if let Some(alone) = field.and_then(|f| crate::score::total(contract, request, None, f, world.score)) {
            let candidate = (alone, key, contract.id.clone());
            if best_unobserved.as_ref().is_none_or(|b| above(&candidate, b)) {
                best_unobserved = Some(candidate);
            }
        }
    }
    let best = best.map(|b| b.2);
    let preferred = best_unobserved.map(|b| b.2);
    let due = |id: &str| {
        matches!(world.health.get(id), Some(Availability::HalfOpen { .. }))
            || probe_draw(world.seed, request) < world.score.probe_share
    };
    let probe = best.is_some() && preferred.is_some() && preferred != best && due(preferred.as_deref().unwrap_or_default());
    Judgement {
        unauthenticated: None,
        verdicts,
        selected: if probe { preferred } else { best.clone() },
        probe,
        best,
    }
}

/// The request's probe draw in [0, 1): the first 8 bytes (big-endian) of
/// `SHA-256("probe" || seed as 8 little-endian bytes || request digest)`,
/// keeping their top 53 bits, over 2^53; the request digest is the hex
/// SHA-256 of the request's canonical JSON.
pub fn probe_draw(seed: u64, request: &Request) -> f64 {
    let text = crate::trace::canonical(&serde_json::to_value(request).expect("a request is JSON"));
    let request_digest: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mut hasher = Sha256::new();
    hasher.update(b"probe");
    hasher.update(seed.to_le_bytes());
    hasher.update(request_digest.as_bytes());
    (leading_u64(&hasher.finalize()) >> 11) as f64 / 9_007_199_254_740_992.0
}

/// The first 8 bytes of a digest as a big-endian number.
fn leading_u64(digest: &[u8]) -> u64 {
    let mut value = 0u64;
    for byte in &digest[..8] {
        value = (value << 8) | u64::from(*byte);
    }
    value
}

/// The tie-break key of the specification.
pub fn tie_key(seed: u64, id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(id.as_bytes());
    leading_u64(&hasher.finalize())
}

/// Whether an offered bound is at least as strong as a required one: on
/// every side the requirement limits, the offer limits too and no looser
/// (`offered.min >= required.min`, `offered.max <= required.max`), at the
/// same or a higher percentile.
pub fn bound_meets(offered: &Bound, required: &Bound) -> bool {
    if let Some(r) = required.min {
        match offered.min {
            Some(o) if o >= r => {}
            _ => return false,
        }
    }
    if let Some(r) = required.max {
        match offered.max {
            Some(o) if o <= r => {}
            _ => return false,
        }
    }
    if let Some(r) = required.percentile {
        match offered.percentile {
            Some(o) if o >= r => {}
            _ => return false,
        }
    }
    true
}

fn first_failure(
    contract: &Contract,
    request: &Request,
    rules: &[RuleSpec],
    claims: &Claims,
) -> Option<(&'static str, String)> {
    // Step 1: match.
    let offered_count = request.capabilities.iter().filter(|c| contract.capabilities.contains(*c)).count();
    let capable = match request.capabilities_mode {
        CapabilitiesMode::Any => offered_count >= 1,
        CapabilitiesMode::All => offered_count == request.capabilities.len(),
    };
    if !capable {
        return Some(("match", "capability".into()));
    }
    for (property, required) in &request.guarantees {
        let met = contract.guarantees.get(property).is_some_and(|offered| bound_meets(offered, required));
        if !met {
            return Some(("match", property.clone()));
        }
    }
    if let Some(limit) = request.constraints.max_latency_ms {
        let within = matches!(contract.guarantees.get("latency_ms").and_then(|b| b.max), Some(max) if max <= limit);
        if !within {
            return Some(("match", "max_latency_ms".into()));
        }
    }
    if let Some(allowed) = &request.constraints.allowed_localities
        && !allowed.contains(&contract.privacy.data_locality)
    {
        return Some(("match", "locality".into()));
    }
    // Step 2: rules.
    if let Some(rule) = first_failing_rule(rules, request, contract) {
        return Some(("rules", rule));
    }
    // Step 3: security, authentication having held.
    let access = &contract.security;
    let authorized = match access.permission_mode {
        PermissionMode::All => access.required_permissions.iter().all(|p| claims.permissions.contains(p)),
        PermissionMode::Any => {
            access.required_permissions.is_empty()
                || access.required_permissions.iter().any(|p| claims.permissions.contains(p))
        }
    };
    if !authorized {
        return Some(("security", "authorized".into()));
    }
    let sensitive = request.sensitivity == Sensitivity::Sensitive;
    let near = matches!(contract.privacy.data_locality, Locality::OnDevice | Locality::Local);
    if sensitive && !near && !contract.privacy.encryption {
        return Some(("security", "privacy".into()));
    }
    if claims.trust_level < access.min_trust_level {
        return Some(("security", "trust".into()));
    }
    if let Some(tenants) = &access.tenants
        && !tenants.contains(&claims.tenant)
    {
        return Some(("security", "tenant".into()));
    }
    // Step 4: constraints.
    if let Some(max_cost) = request.constraints.max_cost
        && crate::score::price(contract, request.estimated_tokens) > max_cost
    {
        return Some(("constraints", "budget".into()));
    }
    if let Some(max_tokens) = contract.constraints.max_input_tokens
        && request.estimated_tokens > max_tokens
    {
        return Some(("constraints", "input_tokens".into()));
    }
    None
}

/// The id of the most important rule that does not hold for the service
/// (priority descending, then id), or `None` when all hold. A predicate
/// that fails to evaluate or is not a boolean does not hold.
pub fn first_failing_rule(rules: &[RuleSpec], request: &Request, contract: &Contract) -> Option<String> {
    let mut ordered: Vec<&RuleSpec> = rules.iter().collect();
    ordered.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    let mut request_json = serde_json::to_value(request).ok()?;
    if let Some(map) = request_json.as_object_mut() {
        map.remove("token");
    }
    let service_json = serde_json::to_value(contract).ok()?;
    for rule in ordered {
        if !rule_holds(&rule.when, &rule.require, &request_json, &service_json) {
            return Some(rule.id.clone());
        }
    }
    None
}

/// `when => require`, with both predicates evaluated by the CEL interpreter
/// on the views rules see. `false` when either cannot be evaluated.
pub fn rule_holds(when: &str, require: &str, request: &serde_json::Value, service: &serde_json::Value) -> bool {
    let evaluate = |source: &str| -> Option<bool> {
        let program = cel::Program::compile(source).ok()?;
        let mut context = cel::Context::default();
        context.add_variable_from_value("request", cel::to_value(request).ok()?);
        context.add_variable_from_value("service", cel::to_value(service).ok()?);
        match program.execute(&context).ok()? {
            cel::Value::Bool(b) => Some(b),
            _ => None,
        }
    };
    match evaluate(when) {
        Some(false) => true,
        Some(true) => evaluate(require) == Some(true),
        None => false,
    }
}

/// The claims the reference reads from a token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// One audience or several.
    pub aud: serde_json::Value,
    /// Expiry, seconds.
    pub exp: u64,
    /// Not before, seconds.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Permissions held.
    #[serde(default)]
    pub permissions: BTreeSet<String>,
    /// Trust level.
    #[serde(default)]
    pub trust_level: u8,
    /// Tenant.
    pub tenant: String,
}

/// Verifies a token against the configured keys at `now`, with
/// `jsonwebtoken` directly: the key is the one named by `kid` (or the only
/// one), its algorithm must be the token's, and the signature, issuer,
/// audience, `exp > now` and `nbf <= now` must all hold.
pub fn authenticate(token: &str, auth: &AuthConfig, now: u64) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed: {e}"))?;
    let key = match &header.kid {
        Some(kid) => auth.keys.iter().find(|k| &k.kid == kid).ok_or("unknown key")?,
        None if auth.keys.len() == 1 => &auth.keys[0],
        None => return Err("no kid".into()),
    };
    let (algorithm, decoding) = match key.algorithm {
        KeyAlgorithm::Hs256 => {
            (jsonwebtoken::Algorithm::HS256, jsonwebtoken::DecodingKey::from_secret(key.key.as_bytes()))
        }
        KeyAlgorithm::EdDsa => (
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::DecodingKey::from_ed_pem(key.key.as_bytes()).map_err(|e| e.to_string())?,
        ),
    };
    if header.alg != algorithm {
        return Err("algorithm differs from the key's".into());
    }
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|e| format!("signature or claims: {e}"))?
        .claims;
    if claims.iss != auth.issuer {
        return Err("issuer".into());
    }
    let audience_ok = match &claims.aud {
        serde_json::Value::String(a) => *a == auth.audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(auth.audience.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err("audience".into());
    }
    if now >= claims.exp {
        return Err("expired".into());
    }
    if claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err("not yet valid".into());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_the_corrected_rule() {
        let at_least = |min| Bound { min: Some(min), max: None, percentile: None };
        let at_most = |max| Bound { min: None, max: Some(max), percentile: None };
        assert!(bound_meets(&at_least(0.9), &at_least(0.8)));
        assert!(!bound_meets(&at_least(0.7), &at_least(0.8)));
        assert!(bound_meets(&at_most(100.0), &at_most(200.0)));
        assert!(!bound_meets(&at_most(300.0), &at_most(200.0)));
        assert!(!bound_meets(&at_least(0.9), &at_most(200.0)), "a missing side never satisfies");
        let p = |b: Bound, p| Bound { percentile: Some(p), ..b };
        assert!(bound_meets(&p(at_most(100.0), 99.0), &p(at_most(100.0), 95.0)));
        assert!(!bound_meets(&p(at_most(100.0), 90.0), &p(at_most(100.0), 95.0)));
        assert!(!bound_meets(&at_most(100.0), &p(at_most(100.0), 95.0)));
    }

    #[test]
    fn rules_fail_closed() {
        let request = serde_json::json!({"tier": "gold"});
        let service = serde_json::json!({"cost": 5});
        assert!(rule_holds("request.tier == 'silver'", "false", &request, &service), "vacuous");
        assert!(rule_holds("true", "service.cost < 10", &request, &service));
        assert!(!rule_holds("true", "service.cost < 1", &request, &service));
        assert!(!rule_holds("true", "service.missing", &request, &service), "an evaluation error fails closed");
        assert!(!rule_holds("true", "service.cost", &request, &service), "a non-boolean fails closed");
        assert!(
            !rule_holds("request.nothing", "true", &request, &service),
            "so does a `when` that cannot be evaluated"
        );
    }
}
