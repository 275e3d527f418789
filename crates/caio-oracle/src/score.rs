//! The score of `docs/calculus.md` (section "Score"), computed naively.
//!
//! Vectors are scaled by their largest component, as the specification
//! requires, so that extreme inputs stay finite; everything else is a plain
//! loop. The spectral terms use a direct discrete Fourier transform and
//! Parseval's identity, `|P x|^2 = (1/n) * sum over kept k of |X_k|^2`, not
//! the inverse transform the calculus computes, so the two implementations
//! share no code path. Never used to route: it judges.

use caio_calculus::contract::Contract;
use caio_calculus::request::Request;
use caio_calculus::score::{ScoreConfig, ServiceHistory};

fn scaled(x: &[f64]) -> Option<(Vec<f64>, f64)> {
    if x.is_empty() || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut largest = 0.0_f64;
    for v in x {
        if v.abs() > largest {
            largest = v.abs();
        }
    }
    let out = x.iter().map(|v| if largest > 0.0 { v / largest } else { 0.0 }).collect();
    Some((out, largest))
}

/// Normalized correlation `<x, y> / (|x| |y|)`, 0 when either is zero;
/// `None` when it is undefined (lengths differ, empty or non-finite input).
pub fn correlation(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() {
        return None;
    }
    let (x, _) = scaled(x)?;
    let (y, _) = scaled(y)?;
    let (mut dot, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        dot += x[i] * y[i];
        xx += x[i] * x[i];
        yy += y[i] * y[i];
    }
    if xx == 0.0 || yy == 0.0 {
        return Some(0.0);
    }
    Some((dot / (xx.sqrt() * yy.sqrt())).clamp(-1.0, 1.0))
}

/// `|P_high x|^2` of an already scaled vector: the energy of the frequencies
/// `k` with `min(k, n - k) > (n / 2) * (1 - fraction)`.
fn high_energy_of_scaled(x: &[f64], fraction: f64) -> f64 {
    let n = x.len();
    let cutoff = (n as f64 / 2.0) * (1.0 - fraction.clamp(0.0, 1.0));
    let mut energy = 0.0;
    for k in 0..n {
        if (k.min(n - k) as f64) <= cutoff {
            continue;
        }
        let (mut re, mut im) = (0.0, 0.0);
        for (j, v) in x.iter().enumerate() {
            let angle = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
            re += v * angle.cos();
            im += v * angle.sin();
        }
        energy += re * re + im * im;
    }
    energy / n as f64
}

/// `I(x) = |P_high x|^2`.
pub fn high_band_energy(x: &[f64], fraction: f64) -> Option<f64> {
    let (v, scale) = scaled(x)?;
    let energy = high_energy_of_scaled(&v, fraction) * scale * scale;
    energy.is_finite().then_some(energy)
}

/// `k(x) = |P x| / |x|`, in [0, 1].
pub fn conductivity(x: &[f64], fraction: f64) -> Option<f64> {
    let (v, _) = scaled(x)?;
    let norm: f64 = v.iter().map(|c| c * c).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Some(0.0);
    }
    Some((high_energy_of_scaled(&v, fraction).sqrt() / norm).clamp(0.0, 1.0))
}

/// The price of a request: fixed part plus the per-1,000-token part.
pub fn price(contract: &Contract, tokens: u64) -> f64 {
    contract.cost.per_request + contract.cost.per_1k_tokens * tokens as f64 / 1000.0
}

/// Average over the required properties the service declares of the
/// relative slack of its bound, each clamped to [0, 1].
pub fn margin(contract: &Contract, request: &Request) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    for (property, required) in &request.guarantees {
        let Some(offered) = contract.guarantees.get(property) else { continue };
        let mut slacks = Vec::new();
        if let (Some(r), Some(o)) = (required.max, offered.max) {
            slacks.push((r - o) / r.abs().max(1e-9));
        }
        if let (Some(r), Some(o)) = (required.min, offered.min) {
            slacks.push((o - r) / r.abs().max(1e-9));
        }
        let slack =
            slacks.iter().copied().fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s)))).unwrap_or(0.0);
        total += if slack.is_finite() { slack.clamp(0.0, 1.0) } else { 0.0 };
        count += 1;
    }
    if count == 0 { 0.0 } else { total / count as f64 }
}

/// The request-wide field terms `(I, A, RL)` over the encodings of the
/// admitted services; zeros when the request has no intent vector.
pub fn field_terms<'a>(
    request: &Request,
    encodings: impl Iterator<Item = &'a [f64]>,
    config: &ScoreConfig,
) -> Option<(f64, f64, f64)> {
    let Some(fields) = &request.fields else { return Some((0.0, 0.0, 0.0)) };
    let mut resonance = 0.0_f64;
    for encoding in encodings {
        resonance = resonance.max(correlation(&fields.intent, encoding)?);
    }
    let context = match &fields.context {
        Some(c) => correlation(&fields.intent, c)?,
        None => 0.0,
    };
    Some((high_band_energy(&fields.intent, config.high_band_fraction)?, context, resonance))
}

/// The total score of one admitted service, `None` where the specification
/// gives no finite number.
pub fn total(
    contract: &Contract,
    request: &Request,
    history: Option<&ServiceHistory>,
    field: (f64, f64, f64),
    config: &ScoreConfig,
) -> Option<f64> {
    let latency_scale = config.latency_scale_ms.max(1e-9);
    let calls = history.map_or(0, |h| h.calls);
    let observed = history.and_then(|h| h.latency_p95_ms).filter(|_| calls >= config.min_calls_for_latency);
    let latency_ms = match observed {
        Some(p95) => p95,
        None => match contract.guarantees.get("latency_ms").and_then(|b| b.max) {
            Some(max) => max,
            None => 2.0 * latency_scale,
        },
    };
    let (failures, violations) = history.map_or((0, 0), |h| (h.failures.min(h.calls), h.violations.min(h.calls)));
    let (pf, ps) = (config.prior.failures, config.prior.successes);
    let denominator = (calls as f64 + pf + ps).max(1e-12);
    let risk = (failures as f64 + pf) / denominator + (violations as f64 + pf) / denominator;
    let intent = match (&request.fields, &contract.encoding) {
        (Some(fields), Some(encoding)) => correlation(&fields.intent, encoding)?,
        _ => 0.0,
    };
    let w = &config.weights;
    let value = w.high_band * field.0
        + w.context * field.1
        + w.resonance * field.2
        + w.intent * intent
        + w.margin * margin(contract, request)
        - w.cost * (price(contract, request.estimated_tokens) / config.cost_scale.max(1e-12)).min(1e12)
        - w.latency * (latency_ms / latency_scale).min(1e12)
        - w.risk * risk;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_dft_agrees_with_hand_computed_spectra() {
        // All energy of an alternating vector sits at k = n/2, the top band.
        let alternating: Vec<f64> = (0..8).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert!((high_band_energy(&alternating, 0.25).unwrap() - 8.0).abs() < 1e-9);
        assert!((conductivity(&alternating, 0.25).unwrap() - 1.0).abs() < 1e-12);
        // A constant vector has only k = 0.
        assert!(high_band_energy(&[3.0; 8], 0.25).unwrap().abs() < 1e-9);
        assert_eq!(correlation(&[1.0, 0.0], &[0.0, 0.0]), Some(0.0));
        assert_eq!(correlation(&[1.0], &[1.0, 2.0]), None);
        assert!((correlation(&[f64::MAX, -f64::MAX], &[1.0, -1.0]).unwrap() - 1.0).abs() < 1e-12);
    }
}
