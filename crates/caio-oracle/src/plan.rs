//! Plans by brute force, from the specification (docs/calculus.md,
//! "Plans"): every combination of one candidate per step is composed under
//! the plan's tree with [`crate::compose`], checked against the end-to-end
//! requirements with [`crate::reference::bound_meets`], and the best is the
//! highest sum of scores (summed in step order), ties going step by step to
//! the lower tie-break key, then the lower service id. Nothing is pruned.
//!
//! A fallback is judged by pricing what happened: a finished step is what
//! it took, a failed step's new service counts after the time and money its
//! failed tries spent.
//!
//! What it must never do: share code or types with `caio_calculus::plan`.

use std::collections::{BTreeMap, BTreeSet};

use caio_calculus::guarantee::Bound;

/// A plan's tree; a step is its index in tree order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// One step.
    Step(usize),
    /// Parts one after the other.
    Chain(Vec<Tree>),
    /// Parts at once.
    FanOut(Vec<Tree>),
}

/// What a service offers for a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The service id.
    pub service: String,
    /// Its score for the step.
    pub score: f64,
    /// Its tie-break key.
    pub tie_break: u64,
    /// Its bounds by property.
    pub bounds: BTreeMap<String, Bound>,
    /// Its locality as a rank: 0 on_device, 1 local, 2 region, 3 cloud.
    pub locality: u8,
    /// Whether it is deterministic.
    pub deterministic: bool,
}

/// What the whole plan must guarantee.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirements {
    /// Bounds by property.
    pub bounds: BTreeMap<String, Bound>,
    /// The least contained locality rank allowed, if any.
    pub max_locality: Option<u8>,
    /// Whether every step must be deterministic.
    pub deterministic: bool,
}

/// What a combination guarantees.
#[derive(Debug, Clone, PartialEq)]
pub struct Whole {
    /// Bounds by property.
    pub bounds: BTreeMap<String, Bound>,
    /// The least contained locality rank.
    pub locality: u8,
    /// Whether every part is deterministic.
    pub deterministic: bool,
}

/// The composite of `parts` (one per step, in tree order) under `tree`.
pub fn composite(tree: &Tree, parts: &[&Offer], properties: &BTreeSet<String>) -> Whole {
    match tree {
        Tree::Step(i) => Whole {
            bounds: parts[*i].bounds.clone(),
            locality: parts[*i].locality,
            deterministic: parts[*i].deterministic,
        },
        Tree::Chain(children) | Tree::FanOut(children) => {
            let wholes: Vec<Whole> = children.iter().map(|c| composite(c, parts, properties)).collect();
            let maps: Vec<&BTreeMap<String, Bound>> = wholes.iter().map(|w| &w.bounds).collect();
            Whole {
                bounds: crate::compose::compose(matches!(tree, Tree::Chain(_)), &maps, properties),
                locality: wholes.iter().map(|w| w.locality).max().unwrap_or(0),
                deterministic: wholes.iter().all(|w| w.deterministic),
            }
        }
    }
}

/// Whether `whole` meets every requirement.
pub fn meets(required: &Requirements, whole: &Whole) -> bool {
    required
        .bounds
        .iter()
        .all(|(property, bound)| whole.bounds.get(property).is_some_and(|offered| crate::reference::bound_meets(offered, bound)))
        && required.max_locality.is_none_or(|max| whole.locality <= max)
        && (!required.deterministic || whole.deterministic)
}

/// The best combination (its score and one index per step), or none when
/// no combination meets the requirements; and how many were enumerated.
pub fn best(tree: &Tree, steps: &[Vec<Offer>], required: &Requirements) -> (Option<(f64, Vec<usize>)>, u64) {
    let properties: BTreeSet<String> = required.bounds.keys().cloned().collect();
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut picks = vec![0usize; steps.len()];
    let mut enumerated = 0u64;
    if steps.iter().any(Vec::is_empty) {
        return (None, 0);
    }
    loop {
        enumerated += 1;
        let parts: Vec<&Offer> = picks.iter().enumerate().map(|(s, i)| &steps[s][*i]).collect();
        if meets(required, &composite(tree, &parts, &properties)) {
            let score: f64 = parts.iter().map(|p| p.score).sum();
            let better = match &best {
                None => true,
                Some((best_score, best_picks)) => {
                    score > *best_score
                        || (score == *best_score && {
                            let key = |picks: &[usize]| -> Vec<(u64, String)> {
                                picks.iter().enumerate().map(|(s, i)| (steps[s][*i].tie_break, steps[s][*i].service.clone())).collect()
                            };
                            key(&picks) < key(best_picks)
                        })
                }
            };
            if better {
                best = Some((score, picks.clone()));
            }
        }
        // The next combination, the last step counting fastest.
        let mut s = steps.len();
        loop {
            if s == 0 {
                return (best, enumerated);
            }
            s -= 1;
            picks[s] += 1;
            if picks[s] < steps[s].len() {
                break;
            }
            picks[s] = 0;
        }
    }
}

/// `offer` as it counts after a step's failed tries spent `latency_ms` and
/// `cost_usd`: both added to each side of its latency and cost bounds.
pub fn after_spending(offer: &Offer, latency_ms: f64, cost_usd: f64) -> Offer {
    let mut offer = offer.clone();
    for (property, spent) in [("latency_ms", latency_ms), ("cost_usd", cost_usd)] {
        if let Some(bound) = offer.bounds.get_mut(property) {
            bound.min = bound.min.map(|v| v + spent);
            bound.max = bound.max.map(|v| v + spent);
        }
    }
    offer
}

/// A finished step: its service, with latency and cost exactly what it took.
pub fn finished(offer: &Offer, latency_ms: f64, cost_usd: f64) -> Offer {
    let mut offer = offer.clone();
    for (property, value) in [("latency_ms", latency_ms), ("cost_usd", cost_usd)] {
        offer.bounds.insert(property.to_string(), Bound { min: Some(value), max: Some(value), percentile: None });
    }
    offer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(service: &str, score: f64, latency: f64) -> Offer {
        Offer {
            service: service.to_string(),
            score,
            tie_break: 0,
            bounds: [("latency_ms".to_string(), Bound { min: None, max: Some(latency), percentile: None })].into(),
            locality: 1,
            deterministic: true,
        }
    }

    #[test]
    fn the_best_combination_meets_the_bound_and_scores_highest() {
        let steps = vec![vec![offer("a1", 1.0, 300.0), offer("a2", 0.5, 100.0)], vec![offer("b1", 1.0, 300.0), offer("b2", 0.9, 150.0)]];
        let required = Requirements {
            bounds: [("latency_ms".to_string(), Bound { min: None, max: Some(450.0), percentile: None })].into(),
            max_locality: None,
            deterministic: false,
        };
        let chain = Tree::Chain(vec![Tree::Step(0), Tree::Step(1)]);
        // 300 + 150 = 450 fits with score 1.9; 300 + 300 does not.
        assert_eq!(best(&chain, &steps, &required), (Some((1.9, vec![0, 1])), 4));
        // At once, the slowest counts: 300 and 300 fit.
        let fan = Tree::FanOut(vec![Tree::Step(0), Tree::Step(1)]);
        assert_eq!(best(&fan, &steps, &required).0, Some((2.0, vec![0, 0])));
        let spent = after_spending(&steps[1][1], 200.0, 0.0);
        assert_eq!(spent.bounds["latency_ms"].max, Some(350.0));
        let strict = Requirements { max_locality: Some(0), ..required };
        assert_eq!(best(&chain, &steps, &strict).0, None);
    }
}
