//! Shared by the fuzz tests of caio-notebook and caio-calculus (included
//! with `#[path]`): a proptest runner with a fixed seed whose failures are
//! kept in `tests/fixtures/fuzz/`, and byte-level mutations of valid text.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

/// A runner for the property `name`: `CAIO_FUZZ_CASES` cases (256 by
/// default) from `CAIO_FUZZ_SEED` (0 by default). A failing case is saved
/// in `tests/fixtures/fuzz/<name>.txt` and replayed first by later runs.
pub fn runner(name: &'static str) -> TestRunner {
    let cases = std::env::var("CAIO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let seed: u64 = std::env::var("CAIO_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
    let config = Config {
        cases,
        // Relative to the manifest directory of the crate under test.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(Box::leak(
            format!("../../tests/fixtures/fuzz/{name}.txt").into_boxed_str(),
        )))),
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Byte-level mutations of a valid text: cut a range, insert a string,
/// repeat a range.
pub fn mutated(valid: String) -> impl Strategy<Value = String> {
    let len = valid.len();
    (0..len, 0..len, any::<String>(), 0u8..3).prop_map(move |(a, b, insert, kind)| {
        let (start, end) = (a.min(b), a.max(b));
        let bytes = valid.as_bytes();
        let mut out: Vec<u8> = Vec::new();
        match kind {
            0 => {
                out.extend_from_slice(&bytes[..start]);
                out.extend_from_slice(&bytes[end..]);
            }
            1 => {
                out.extend_from_slice(&bytes[..start]);
                out.extend_from_slice(insert.as_bytes());
                out.extend_from_slice(&bytes[start..]);
            }
            _ => {
                out.extend_from_slice(&bytes[..end]);
                out.extend_from_slice(&bytes[start..]);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}
