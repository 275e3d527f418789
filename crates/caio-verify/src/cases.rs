//! Reproducible generated cases: values drawn from a proptest strategy by a
//! runner seeded with a fixed seed, so the same notebook gives the same
//! cases on every machine, and each case is counted (a verification run
//! reports how many failed rather than stopping at the first).

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A proptest configuration with a fixed seed and no failure persistence.
pub fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `count` values of `strategy`, the same for the same seed.
pub fn generate<S: Strategy>(strategy: &S, count: usize, seed: u64) -> Vec<S::Value> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(config(count as u32, seed), rng);
    (0..count).map(|_| strategy.new_tree(&mut runner).expect("the strategy generates values").current()).collect()
}

/// The outcome of checking a property over generated cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// Cases checked.
    pub cases: u64,
    /// Cases that failed.
    pub failures: u64,
    /// The first few failures, described.
    pub examples: Vec<String>,
}

/// Checks `property` on every case; keeps up to 5 failure descriptions.
pub fn tally<T>(cases: &[T], mut property: impl FnMut(&T) -> Result<(), String>) -> Tally {
    let mut tally = Tally { cases: cases.len() as u64, failures: 0, examples: Vec::new() };
    for case in cases {
        if let Err(why) = property(case) {
            tally.failures += 1;
            if tally.examples.len() < 5 {
                tally.examples.push(why);
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let strategy = (0u32..1000, proptest::bool::ANY);
        assert_eq!(generate(&strategy, 50, 9), generate(&strategy, 50, 9));
        assert_ne!(generate(&strategy, 50, 9), generate(&strategy, 50, 10));
        let t = tally(&generate(&(0u32..10), 100, 1), |x| if *x < 9 { Ok(()) } else { Err(format!("{x}")) });
        assert_eq!(t.cases, 100);
        assert!(t.failures > 0 && t.examples.iter().all(|e| e == "9"));
    }
}
