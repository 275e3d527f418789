//! Guarantee composition, from the specification: for a sequential chain,
//! latency and cost add up, quality (accuracy and the like) is the weakest
//! part's; for a parallel fan-out, latency is the slowest part's and cost
//! still adds up. A limit that some part does not declare is not
//! guaranteed. Percentiles compose by the union bound: if each part holds
//! its bound at `p_i`, all of them hold together at `100 - sum(100 - p_i)`
//! (a part without a percentile holds always, 100), and a property whose
//! combined percentile is not positive is not guaranteed. Locality is the
//! weakest (`on_device < local < region < cloud`), determinism holds when
//! every part is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use caio_calculus::guarantee::Bound;

/// The composite guarantees of `parts` (each a map from property to bound)
/// on `properties`.
pub fn compose(
    sequential: bool,
    parts: &[&BTreeMap<String, Bound>],
    properties: &BTreeSet<String>,
) -> BTreeMap<String, Bound> {
    let mut out = BTreeMap::new();
    if parts.is_empty() {
        return out;
    }
    for property in properties {
        let mut bounds = Vec::new();
        for part in parts {
            match part.get(property) {
                Some(bound) => bounds.push(*bound),
                None => break,
            }
        }
        if bounds.len() != parts.len() {
            continue; // Some part does not declare it at all.
        }
        let mins: Option<Vec<f64>> = bounds.iter().map(|b| b.min).collect();
        let maxs: Option<Vec<f64>> = bounds.iter().map(|b| b.max).collect();
        let sum = |v: Vec<f64>| v.iter().sum::<f64>();
        let largest = |v: Vec<f64>| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let smallest = |v: Vec<f64>| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (min, max) = match property.as_str() {
            "cost_usd" => (mins.map(sum), maxs.map(sum)),
            "latency_ms" if sequential => (mins.map(sum), maxs.map(sum)),
            "latency_ms" => (mins.map(largest), maxs.map(largest)),
            _ => (mins.map(smallest), maxs.map(largest)),
        };
        if min.is_none() && max.is_none() {
            continue;
        }
        let percentile = if bounds.iter().any(|b| b.percentile.is_some()) {
            let missing: f64 = bounds.iter().map(|b| 100.0 - b.percentile.unwrap_or(100.0)).sum();
            let p = 100.0 - missing;
            if p <= 0.0 {
                continue;
            }
            Some(p)
        } else {
            None
        };
        out.insert(property.clone(), Bound { min, max, percentile });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(min: Option<f64>, max: Option<f64>, percentile: Option<f64>) -> Bound {
        Bound { min, max, percentile }
    }

    #[test]
    fn chains_add_latency_and_cost_and_keep_the_weakest_quality() {
        let a = BTreeMap::from([
            ("latency_ms".to_string(), bound(None, Some(100.0), Some(99.0))),
            ("cost_usd".to_string(), bound(None, Some(0.01), None)),
            ("accuracy".to_string(), bound(Some(0.9), None, None)),
        ]);
        let b = BTreeMap::from([
            ("latency_ms".to_string(), bound(None, Some(300.0), Some(95.0))),
            ("cost_usd".to_string(), bound(None, Some(0.02), None)),
            ("accuracy".to_string(), bound(Some(0.8), None, None)),
        ]);
        let all: BTreeSet<String> = a.keys().cloned().collect();
        let chain = compose(true, &[&a, &b], &all);
        assert_eq!(chain["latency_ms"], bound(None, Some(400.0), Some(94.0)));
        assert_eq!(chain["cost_usd"], bound(None, Some(0.03), None));
        assert_eq!(chain["accuracy"], bound(Some(0.8), None, None));
        let fan = compose(false, &[&a, &b], &all);
        assert_eq!(fan["latency_ms"], bound(None, Some(300.0), Some(94.0)));
        assert_eq!(fan["cost_usd"], bound(None, Some(0.03), None));
        let missing = BTreeMap::from([("accuracy".to_string(), bound(Some(0.99), None, None))]);
        assert!(
            !compose(true, &[&a, &missing], &all).contains_key("latency_ms"),
            "a part without it guarantees nothing"
        );
    }
}
