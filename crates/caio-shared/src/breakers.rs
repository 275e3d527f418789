//! The breakers' exchange with the shared copy. All breakers of one
//! deployment and one breaker configuration live in one Redis hash: per
//! service a field with the serialized calculus breaker and a field
//! `<service>#v` with its version. A replica sends its changes as a
//! compare-and-set on the version (a script: applied only if nobody wrote
//! since the replica read it, else the current copy comes back and the
//! changes are applied to that, again with the calculus), then reads the
//! whole hash and adopts every copy it has not seen.
//!
//! Replicas with different breaker settings use different hashes (the key
//! carries a digest of the settings): a breaker is only ever judged by the
//! settings it was built with.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use caio_calculus::breaker::{Breaker, BreakerConfig};
use caio_gateway::Breakers;
use tokio::sync::Mutex;

use crate::link::Link;

/// KEYS[1]: the hash; ARGV: service, expected version ("" for none), new
/// copy, expiry in ms. Returns {1, new version, ""} when written, else
/// {0, current version, current copy}.
static COMPARE_AND_SET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local version_field = ARGV[1] .. '#v'
local version = redis.call('HGET', KEYS[1], version_field) or ''
if version ~= ARGV[2] then
  return {0, version, redis.call('HGET', KEYS[1], ARGV[1]) or ''}
end
local next = tostring((tonumber(version) or 0) + 1)
redis.call('HSET', KEYS[1], version_field, next, ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, next, ''}
",
    )
});

/// A shared copy lives a day after its last change.
const EXPIRY_MS: u64 = 24 * 3600 * 1000;
/// Compare-and-set attempts per service and exchange; the rest waits for
/// the next exchange.
const ATTEMPTS: usize = 8;

/// FNV-1a: a digest of the settings that is the same in every build.
fn digest(config: &BreakerConfig) -> u64 {
    let text = serde_json::to_string(config).unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// The shared copies this replica has seen: version and breaker.
pub(crate) struct Synchronizer {
    prefix: String,
    seen: Mutex<BTreeMap<String, (String, Breaker)>>,
}

impl Synchronizer {
    pub(crate) fn new(prefix: &str) -> Synchronizer {
        Synchronizer { prefix: prefix.to_string(), seen: Mutex::new(BTreeMap::new()) }
    }

    /// One exchange: this replica's changes out, everyone's copies in.
    pub(crate) async fn exchange(&self, link: &Link, breakers: &Breakers) -> redis::RedisResult<()> {
        let Some(mut connection) = link.connection() else { return Ok(()) };
        let config = *breakers.config();
        let key = format!("{}:breakers:{:016x}", self.prefix, digest(&config));
        let decode = |text: &str| match serde_json::from_str::<Breaker>(text) {
            Ok(breaker) if breaker.config() == &config => breaker,
            // Unreadable (written by another version of caio): start over.
            _ => Breaker::new(config),
        };
        let mut seen = self.seen.lock().await;
        let mut pending = breakers.take_pending().into_iter();
        while let Some((service, ops)) = pending.next() {
            let (mut version, mut base) =
                seen.get(&service).cloned().unwrap_or_else(|| (String::new(), Breaker::new(config)));
            let mut written = false;
            for _ in 0..ATTEMPTS {
                let mut next = base.clone();
                for op in &ops {
                    op.apply(&mut next);
                }
                let text = serde_json::to_string(&next).expect("a breaker serializes");
                let reply: redis::RedisResult<(i64, String, String)> = COMPARE_AND_SET
                    .key(&key)
                    .arg(&service)
                    .arg(&version)
                    .arg(text)
                    .arg(EXPIRY_MS)
                    .invoke_async(&mut connection)
                    .await;
                match reply {
                    Ok((1, new_version, _)) => {
                        // The copy may hold other replicas' changes too.
                        if let Some(state) = breakers.adopt(&service, &next) {
                            tracing::info!(target: "caio", service = %service, state, "breaker changed on another replica");
                        }
                        seen.insert(service.clone(), (new_version, next));
                        written = true;
                        break;
                    }
                    Ok((_, current, copy)) => {
                        // No copy at all: Redis lost it (restarted empty),
                        // and what this replica saw last is the best there is.
                        if !copy.is_empty() {
                            base = decode(&copy);
                        }
                        version = current;
                    }
                    Err(e) => {
                        breakers.restore_pending(&service, ops);
                        for (service, ops) in pending {
                            breakers.restore_pending(&service, ops);
                        }
                        return Err(e);
                    }
                }
            }
            if !written {
                breakers.restore_pending(&service, ops);
            }
        }
        let copies: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut connection).await?;
        for (service, text) in &copies {
            if service.ends_with("#v") {
                continue;
            }
            let Some(version) = copies.get(&format!("{service}#v")) else { continue };
            if seen.get(service).is_some_and(|(v, _)| v == version) {
                continue;
            }
            let breaker = decode(text);
            if let Some(state) = breakers.adopt(service, &breaker) {
                tracing::info!(target: "caio", service = %service, state, "breaker changed on another replica");
            }
            seen.insert(service.clone(), (version.clone(), breaker));
        }
        Ok(())
    }
}
