//! Statistics for evidence: how sure a run of `n` cases makes us.

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF};

/// The one-sided upper confidence bound on a failure rate after `failures`
/// failures in `cases` cases (Clopper-Pearson, exact). With 0 failures it is
/// `1 - (1 - confidence)^(1 / cases)`: about `3 / cases` at 95 %.
pub fn failure_rate_upper_bound(failures: u64, cases: u64, confidence: f64) -> f64 {
    if cases == 0 || failures >= cases {
        return 1.0;
    }
    let beta = Beta::new(failures as f64 + 1.0, (cases - failures) as f64).expect("positive shape parameters");
    beta.inverse_cdf(confidence).clamp(0.0, 1.0)
}

/// The `q`-quantile (0 <= q <= 1) of samples, nearest rank. `None` when empty
/// or when a sample is not finite.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    let sorted = sorted_finite(samples)?;
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// A distribution-free confidence interval for the `q`-quantile, from order
/// statistics: the ranks between which the true quantile lies with at least
/// `confidence` probability, by the binomial distribution of how many
/// samples fall below it.
pub fn percentile_interval(samples: &[f64], q: f64, confidence: f64) -> Option<(f64, f64)> {
    let sorted = sorted_finite(samples)?;
    let n = sorted.len() as u64;
    let binomial = Binomial::new(q.clamp(0.0, 1.0), n).ok()?;
    let tail = (1.0 - confidence) / 2.0;
    let lower = binomial.inverse_cdf(tail).min(n - 1) as usize;
    let upper = (binomial.inverse_cdf(1.0 - tail) as usize).min(sorted.len() - 1);
    Some((sorted[lower], sorted[upper]))
}

fn sorted_finite(samples: &[f64]) -> Option<Vec<f64>> {
    if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_failures_gives_the_rule_of_three() {
        let bound = failure_rate_upper_bound(0, 1000, 0.95);
        let closed_form = 1.0 - 0.05f64.powf(1.0 / 1000.0);
        assert!((bound - closed_form).abs() < 1e-9, "{bound} vs {closed_form}");
        assert!((bound - 0.003).abs() < 1e-4);
        assert!(failure_rate_upper_bound(10, 1000, 0.95) > 0.01);
        assert_eq!(failure_rate_upper_bound(0, 0, 0.95), 1.0);
    }

    #[test]
    fn percentiles_and_their_intervals() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        let (lo, hi) = percentile_interval(&samples, 0.5, 0.95).unwrap();
        assert!(lo <= 50.0 && 50.0 <= hi && hi - lo < 25.0, "({lo}, {hi})");
        assert_eq!(percentile(&[1.0, f64::NAN], 0.5), None);
        assert_eq!(percentile(&[], 0.5), None);
    }
}
