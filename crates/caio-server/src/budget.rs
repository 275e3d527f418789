//! What a request may hold while it is served, bounded by configuration
//! and not by the clients' good manners: the bytes of request bodies in
//! flight (one budget for the whole server), and the requests of one caller
//! in flight. A body is read only after its caller is authenticated and its
//! bytes are reserved; a streamed answer keeps what it holds until its last
//! byte ([`Held`]).
//!
//! This module must never read a body itself or decide anything about a
//! route: it counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1024;

/// The bytes of request bodies the server holds at once.
#[derive(Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget { units: Arc::new(Semaphore::new(units)), bytes }
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// Reserves room for a body whose `Content-Length` is in `headers`, or
    /// `limit` bytes when it is not, then reads it: at most `limit` bytes,
    /// all of them `within` the time given. A full budget is `503
    /// overloaded` with `Retry-After`; nothing is read.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
        within: std::time::Duration,
    ) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large(limit));
        }
        let units = declared.unwrap_or(limit).max(1).div_ceil(UNIT) as u32;
        let permit = self.units.clone().try_acquire_many_owned(units).map_err(|_| {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "the server holds {} bytes of request bodies already (`limits.body_budget_bytes`); retry shortly",
                    self.bytes
                ),
            );
            error.retry_after = Some(1);
            error
        })?;
        let read = async {
            let mut chunks = body.into_data_stream();
            let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| ApiError::invalid(format!("the body could not be read: {e}")))?;
                if bytes.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Bytes::from(bytes))
        };
        let bytes = tokio::time::timeout(within, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} ms (`limits.timeout_ms`)", within.as_millis()),
            )
        })??;
        Ok((bytes, permit))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {limit} bytes; send less or raise `limits.body_bytes`"),
    )
}

/// The requests each caller has in flight.
#[derive(Debug, Default)]
pub struct Callers {
    counts: Mutex<HashMap<String, usize>>,
}

/// One request of a caller in flight; counted until dropped.
#[derive(Debug)]
pub struct CallerSlot {
    callers: Arc<Callers>,
    caller: String,
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut counts = self.callers.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}

impl Callers {
    /// Counts one more request of `caller`, unless it has `limit` in flight
    /// (`429 rate_limited` with `Retry-After`).
    pub fn enter(self: &Arc<Self>, caller: &str, limit: usize) -> Result<CallerSlot, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(caller.to_string()).or_insert(0);
        if *count >= limit {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this caller has {limit} requests in flight already (`limits.caller_in_flight`); retry when one ends"),
            );
            error.retry_after = Some(1);
            return Err(error);
        }
        *count += 1;
        Ok(CallerSlot { callers: self.clone(), caller: caller.to_string() })
    }
}

/// What a response holds until its last byte is sent (a reserved body, a
/// caller's slot): a streamed answer keeps it as long as it streams.
#[derive(Clone)]
pub struct Held(pub Arc<dyn std::any::Any + Send + Sync>);

impl Held {
    /// Holds `things` with the response.
    pub fn new(things: impl std::any::Any + Send + Sync) -> Held {
        Held(Arc::new(things))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

    #[tokio::test]
    async fn bodies_are_read_within_the_budget_and_their_limit() {
        let budget = BodyBudget::new(4 * UNIT);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "3000".parse().unwrap());
        let (bytes, held) = budget.read(&headers, Body::from(vec![b'x'; 3000]), 4096, SECOND).await.unwrap();
        assert_eq!(bytes.len(), 3000);
        assert_eq!(budget.available(), UNIT, "3 of 4 units reserved");
        let full = budget.read(&headers, Body::from(vec![b'x'; 3000]), 4096, SECOND).await.unwrap_err();
        assert_eq!((full.status, full.code), (StatusCode::SERVICE_UNAVAILABLE, "overloaded"));
        drop(held);
        assert_eq!(budget.available(), 4 * UNIT);
        let lying = budget.read(&HeaderMap::new(), Body::from(vec![b'x'; 5000]), 4096, SECOND).await.unwrap_err();
        assert_eq!(lying.code, "body_too_large", "no Content-Length: the limit still holds");
        headers.insert(header::CONTENT_LENGTH, "5000".parse().unwrap());
        assert_eq!(budget.read(&headers, Body::empty(), 4096, SECOND).await.unwrap_err().code, "body_too_large");
    }

    #[test]
    fn a_caller_has_at_most_its_limit_in_flight() {
        let callers = Arc::new(Callers::default());
        let first = callers.enter("a", 2).unwrap();
        let _second = callers.enter("a", 2).unwrap();
        assert_eq!(callers.enter("a", 2).unwrap_err().code, "rate_limited");
        assert!(callers.enter("b", 2).is_ok(), "callers count apart");
        drop(first);
        assert!(callers.enter("a", 2).is_ok());
    }
}
