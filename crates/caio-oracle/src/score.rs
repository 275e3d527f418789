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

/// Gauss-Kronrod 7-15 nodes on [-1, 1] (the Kronrod nodes; every second
/// one, starting at the second, is a Gauss node) and weights.
const KRONROD_NODES: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
const KRONROD_WEIGHTS: [f64; 8] = [
    0.022_935_322_010_529_22,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_2,
    0.140_653_259_715_525_9,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_8,
];
const GAUSS_WEIGHTS: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// `integral of f over [a, b]` by adaptive Gauss-Kronrod (7-15): an interval
/// is split until the two rules agree to `tolerance`.
fn integrate(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tolerance: f64) -> f64 {
    fn rule(f: &dyn Fn(f64) -> f64, a: f64, b: f64) -> (f64, f64) {
        let (center, half) = ((a + b) / 2.0, (b - a) / 2.0);
        let (mut kronrod, mut gauss) = (0.0, 0.0);
        for (i, (x, w)) in KRONROD_NODES.iter().zip(KRONROD_WEIGHTS).enumerate() {
            let values = if *x == 0.0 { f(center) } else { f(center - half * x) + f(center + half * x) };
            kronrod += w * values;
            if i % 2 == 1 {
                gauss += GAUSS_WEIGHTS[i / 2] * values;
            }
        }
        (kronrod * half, gauss * half)
    }
    fn refine(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tolerance: f64, depth: u32) -> f64 {
        let (kronrod, gauss) = rule(f, a, b);
        if depth == 0 || (kronrod - gauss).abs() <= tolerance {
            return kronrod;
        }
        let m = (a + b) / 2.0;
        refine(f, a, m, tolerance / 2.0, depth - 1) + refine(f, m, b, tolerance / 2.0, depth - 1)
    }
    refine(f, a, b, tolerance, 30)
}

/// The density of `Beta(a, b)` for `a, b >= 0.5`, written in `t` with
/// `x = sin^2(t)`: `sin^(2a-1)(t) cos^(2b-1)(t)`, bounded on `[0, pi/2]`,
/// scaled by its peak so that nothing underflows. Integrals are taken
/// numerically (adaptive Gauss-Kronrod), from the density alone.
struct BetaDensity {
    a: f64,
    b: f64,
    peak: f64,
    total: f64,
}

const TOLERANCE: f64 = 1e-14;

impl BetaDensity {
    fn new(a: f64, b: f64) -> BetaDensity {
        let mode = if a + b > 1.0 { ((2.0 * a - 1.0) / (2.0 * a + 2.0 * b - 2.0)).clamp(0.0, 1.0).sqrt().asin() } else { 0.5 };
        let mut density = BetaDensity { a, b, peak: 0.0, total: 1.0 };
        density.peak = density.log_at(mode.clamp(1e-12, std::f64::consts::FRAC_PI_2 - 1e-12));
        density.total = integrate(&|t| density.at(t), 0.0, std::f64::consts::FRAC_PI_2, TOLERANCE);
        density
    }

    fn log_at(&self, t: f64) -> f64 {
        (2.0 * self.a - 1.0) * t.sin().ln() + (2.0 * self.b - 1.0) * t.cos().ln()
    }

    fn at(&self, t: f64) -> f64 {
        if t <= 0.0 || t >= std::f64::consts::FRAC_PI_2 { 0.0 } else { (self.log_at(t) - self.peak).exp() }
    }

    /// The probability of `[t0, t1]`.
    fn mass(&self, t0: f64, t1: f64) -> f64 {
        integrate(&|t| self.at(t), t0, t1, TOLERANCE) / self.total
    }

    /// `P(X <= x)`.
    fn cdf(&self, x: f64) -> f64 {
        self.mass(0.0, x.clamp(0.0, 1.0).sqrt().asin())
    }

    /// The `level` quantile, by Newton's method on `t` kept inside a
    /// shrinking bracket.
    fn quantile(&self, level: f64) -> f64 {
        let (mut low, mut high) = (0.0, std::f64::consts::FRAC_PI_2);
        let mut t = std::f64::consts::FRAC_PI_4;
        let mut below = self.mass(0.0, t);
        for _ in 0..200 {
            if below < level { low = t } else { high = t }
            let slope = self.at(t) / self.total;
            let mut next = if slope > 0.0 { t - (below - level) / slope } else { f64::NAN };
            if !(next > low && next < high) {
                next = (low + high) / 2.0;
            }
            below += if next > t { self.mass(t, next) } else { -self.mass(next, t) };
            let moved = (next - t).abs();
            t = next;
            if moved < 1e-15 {
                break;
            }
        }
        t.sin().powi(2)
    }
}

/// The `level` quantile of `Beta(a, b)`, for `a, b >= 0.5`.
pub fn beta_quantile(a: f64, b: f64, level: f64) -> f64 {
    BetaDensity::new(a, b).quantile(level)
}

/// The risk term by the specification: for failures and for guarantee
/// violations, the lower end of the rate's credible interval at
/// `confidence` (the `1 - confidence` quantile of the Beta posterior of the
/// prior and the weighted counts) beyond the prior mean, 0 when not above it.
pub fn risk(history: Option<&ServiceHistory>, config: &ScoreConfig) -> f64 {
    let Some(h) = history else { return 0.0 };
    let (pf, ps) = (config.prior.failures, config.prior.successes);
    let expected = pf / (pf + ps);
    let level = 1.0 - config.confidence;
    let excess = |events: f64| {
        let events = events.min(h.calls);
        let posterior = BetaDensity::new(pf + events, ps + h.calls - events);
        // At least `level` of the posterior lies below `expected`: the
        // quantile does too.
        if posterior.cdf(expected) >= level { 0.0 } else { (posterior.quantile(level) - expected).max(0.0) }
    };
    excess(h.failures) + excess(h.violations)
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
    let samples = history.map_or(0, |h| h.latency_samples);
    let observed = history.and_then(|h| h.latency_p95_ms).filter(|_| samples >= config.min_calls_for_latency);
    let latency_ms = match observed {
        Some(p95) => p95,
        None => match contract.guarantees.get("latency_ms").and_then(|b| b.max) {
            Some(max) => max,
            None => 2.0 * latency_scale,
        },
    };
    let risk = risk(history, config);
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

    #[test]
    fn beta_quantiles_agree_with_closed_forms() {
        // Beta(1, b): F(x) = 1 - (1 - x)^b, so the quantile is 1 - (1 - level)^(1 / b).
        for (b, level) in [(19.0_f64, 0.1_f64), (3.0, 0.5), (200.0, 0.1), (0.5, 0.9)] {
            let exact = 1.0 - (1.0 - level).powf(1.0 / b);
            let found = beta_quantile(1.0, b, level);
            assert!((found - exact).abs() < 1e-12 * exact.max(1e-3), "Beta(1, {b}) at {level}: {found} vs {exact}");
        }
        // Beta(a, 1): F(x) = x^a.
        let found = beta_quantile(7.5, 1.0, 0.1);
        assert!((found - 0.1f64.powf(1.0 / 7.5)).abs() < 1e-12);
        // Symmetric: the median of Beta(a, a) is 1/2.
        assert!((beta_quantile(40.0, 40.0, 0.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn one_failure_is_no_evidence_and_many_are() {
        let config = ScoreConfig::default();
        let history = |calls: f64, failures: f64| ServiceHistory { calls, failures, violations: 0.0, latency_p95_ms: None, latency_samples: 0 };
        assert_eq!(risk(None, &config), 0.0);
        assert_eq!(risk(Some(&history(1.0, 1.0)), &config), 0.0);
        assert_eq!(risk(Some(&history(50.0, 1.0)), &config), 0.0);
        // Ten of ten: Beta(11, 19); its 10 % quantile is about 0.257.
        let ten = risk(Some(&history(10.0, 10.0)), &config);
        assert!((ten - (0.2567 - 0.05)).abs() < 1e-3, "{ten}");
    }
}
