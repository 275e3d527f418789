//! Re-checks the facts recorded in a proof, naively and from the raw values.
//!
//! `proof::verify` in the calculus asks whether a proof's evidence reproduces
//! its recorded verdict. That is not enough for a selected service: a proof
//! whose verdict is `false` verifies too. The reference asks the question
//! that matters: do the recorded facts establish the property? It is written
//! from the specification, kind by kind, and shares no code with `proof`.

use caio_calculus::contract::{Locality, PermissionMode};
use caio_calculus::proof::Evidence;
use caio_calculus::request::CapabilitiesMode;
use caio_calculus::security::AuthConfig;

use crate::reference::{bound_meets, rule_holds};

/// Whether the facts of `evidence` establish the property it is about.
pub fn establishes(evidence: &Evidence) -> bool {
    match evidence {
        Evidence::Capabilities { mode, required, offered } => {
            let present = required.iter().filter(|c| offered.contains(*c)).count();
            match mode {
                CapabilitiesMode::Any => present >= 1,
                CapabilitiesMode::All => present == required.len(),
            }
        }
        Evidence::Bound { offered, required, .. } => offered.as_ref().is_some_and(|o| bound_meets(o, required)),
        Evidence::Latency { offered_max, limit } => matches!(offered_max, Some(m) if m <= limit),
        Evidence::Locality { locality, allowed } => allowed.contains(locality),
        Evidence::Constraint { value, limit, .. } => value <= limit,
        Evidence::Rules { rules, request, service, .. } => {
            rules.iter().all(|(_, when, require)| rule_holds(when, require, request, service))
        }
        // The signature itself needs the token, which a proof never holds:
        // the notebooks re-verify it with the request's token.
        Evidence::Authenticated {
            issuer,
            expected_issuer,
            audience,
            expected_audience,
            expires_at,
            not_before,
            now,
            token_sha256,
            ..
        } => {
            issuer == expected_issuer
                && audience.iter().any(|a| a == expected_audience)
                && now < expires_at
                && not_before.is_none_or(|n| n <= *now)
                && token_sha256.len() == 64
        }
        Evidence::Authorized { mode, required, held } => match mode {
            PermissionMode::All => required.iter().all(|p| held.contains(p)),
            PermissionMode::Any => required.is_empty() || required.iter().any(|p| held.contains(p)),
        },
        Evidence::Privacy { sensitive, locality, encryption } => {
            !sensitive || *encryption || matches!(locality, Locality::OnDevice | Locality::Local)
        }
        Evidence::Trust { level, min } => level >= min,
        Evidence::Tenant { tenant, allowed } => allowed.as_ref().is_none_or(|a| a.contains(tenant)),
        Evidence::Rank { selected, scores, probe } => {
            // `a` ranks above `b`: a higher score; among equal scores the
            // smaller key, then the smaller id.
            let above = |a: (&str, f64, u64), b: (&str, f64, u64)| {
                a.1 > b.1 || (a.1 == b.1 && (a.2 < b.2 || (a.2 == b.2 && a.0 < b.0)))
            };
            let first = |score_of: &dyn Fn(&str, f64) -> f64| {
                let mut first: Option<(&str, f64, u64)> = None;
                for (id, score, key) in scores {
                    let score = score_of(id, *score);
                    if score.is_finite() && first.is_none_or(|f| above((id, score, *key), f)) {
                        first = Some((id, score, *key));
                    }
                }
                first.map(|f| f.0)
            };
            let Some(leader) = first(&|_, score| score) else { return false };
            let Some(probing) = probe else { return leader == selected };
            // The ranking on the contracts alone: a recorded service's
            // score without history, the others' as they are.
            let alone = |id: &str, score: f64| probing.unrecorded.iter().find(|u| u.0 == id).map_or(score, |u| u.1);
            let Some(preferred) = first(&alone) else { return false };
            let due = probing.half_open.iter().any(|h| h == preferred) || probing.draw < probing.share;
            selected == if preferred != leader && due { preferred } else { leader }
        }
        Evidence::Composition { composed, required } => {
            required.iter().all(|(property, bound)| composed.get(property).is_some_and(|c| bound_meets(c, bound)))
        }
    }
}

/// Whether an `Authenticated` proof is about this token (its SHA-256) and
/// the token's signature verifies again, with `jsonwebtoken` directly, at
/// the proof's time. `false` for any other kind of evidence.
pub fn signature_rechecks(evidence: &Evidence, token: &str, auth: &AuthConfig) -> bool {
    use sha2::{Digest, Sha256};
    let Evidence::Authenticated { now, token_sha256, .. } = evidence else { return false };
    let digest: String = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    digest == *token_sha256 && crate::reference::authenticate(token, auth, *now).is_ok()
}
