//! The hash chain of traces, from the specification: a trace's hash is
//! `SHA-256(seq as 8 big-endian bytes || prev_hash || canonical(body))`, the
//! canonical form being JSON with object keys sorted and nothing else
//! changed; the first trace follows the all-zero hash.
//!
//! The canonical encoder here sorts keys itself instead of relying on the
//! map's order, and the chain walk is written out step by step.

use sha2::{Digest, Sha256};

/// The hash before the first trace.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// JSON with every object's keys sorted, no whitespace.
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*key).clone()).to_string());
                out.push(':');
                write(&map[*key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The hash a trace must carry.
pub fn link_hash(seq: u64, prev_hash: &str, body: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(seq.to_be_bytes());
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical(body).as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `(seq, prev_hash, body, hash)` links, in order, form an intact
/// log from GENESIS whose last hash is `head`.
pub fn intact(links: &[(u64, &str, &serde_json::Value, &str)], head: &str) -> bool {
    let mut expected_prev = GENESIS.to_string();
    for (position, (seq, prev_hash, body, hash)) in links.iter().enumerate() {
        if *seq != position as u64 || *prev_hash != expected_prev || link_hash(*seq, prev_hash, body) != *hash {
            return false;
        }
        expected_prev = hash.to_string();
    }
    !links.is_empty() && expected_prev == head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": [{"z": 1, "a": 2.5}], "a": "x"});
        assert_eq!(canonical(&value), r#"{"a":"x","b":[{"a":2.5,"z":1}]}"#);
    }

    #[test]
    fn a_log_is_intact_only_as_written() {
        let body = serde_json::json!({"n": 1});
        let h0 = link_hash(0, GENESIS, &body);
        let h1 = link_hash(1, &h0, &body);
        let log = [(0, GENESIS, &body, h0.as_str()), (1, h0.as_str(), &body, h1.as_str())];
        assert!(intact(&log, &h1));
        assert!(!intact(&log[1..], &h1), "cut at the start");
        assert!(!intact(&log[..1], &h1), "cut at the end");
    }
}
