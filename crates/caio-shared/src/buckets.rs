//! Per-caller token buckets in Redis: one hash per caller (`tokens`, `at`)
//! changed by one script, so that concurrent requests of one caller on
//! several replicas take from one bucket atomically. The script reads the
//! clock of the Redis server, the one clock all replicas share. A bucket
//! expires when it would be full again: a full bucket carries nothing.

use std::sync::LazyLock;

use crate::link::Link;

/// KEYS[1]: the bucket; ARGV: rate per second, burst, expiry in ms.
/// Returns {1, "0"} for a request taken, {0, seconds to wait} otherwise.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000000 * rate)
local taken, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {taken, string.format('%.17g', wait)}
",
    )
});

/// Takes a request from `caller`'s bucket; `None` when Redis cannot be
/// asked (not connected, or the command failed: then the link falls back).
pub(crate) async fn take(link: &Link, caller: &str, rate: f64, burst: f64) -> Option<Result<(), f64>> {
    let mut connection = link.connection()?;
    // Refilled to `burst` after burst / rate seconds; a second of margin.
    let expiry_ms = (burst / rate * 1000.0).ceil().min(1e12) as u64 + 1000;
    let outcome: redis::RedisResult<(i64, String)> = TAKE
        .key(format!("{}:rate:{caller}", link.prefix()))
        .arg(rate)
        .arg(burst)
        .arg(expiry_ms)
        .invoke_async(&mut connection)
        .await;
    match outcome {
        Ok((1, _)) => Some(Ok(())),
        Ok((_, wait)) => Some(Err(wait.parse().unwrap_or(1.0 / rate))),
        Err(e) => {
            link.fall_back(&e);
            None
        }
    }
}
