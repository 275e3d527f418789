//! # caio-shared
//!
//! What several replicas of the router share through Redis: the circuit
//! breakers (so that a backend failing on one replica is kept away from all
//! of them) and the per-caller rate-limit buckets (so that a limit holds
//! however the load balancer spreads a caller's requests).
//!
//! Redis helps the replicas agree; it is never needed to serve. When it
//! cannot be reached, each replica goes on with its in-memory state, says
//! so once in its log, and shows it in [`Shared::status`] (`/readyz`,
//! `/metrics`); a background task keeps trying and, when Redis answers
//! again, merges the breakers' changes made meanwhile and goes back to the
//! shared buckets.
//!
//! This crate must never decide a breaker transition itself: the shared
//! copy is changed only by the calculus's transitions
//! (`caio_calculus::breaker`), applied here; the bucket arithmetic, which
//! is not the calculus's, runs in Redis as one atomic script.

mod breakers;
mod buckets;
mod config;
mod link;

use std::sync::Arc;

use caio_gateway::Breakers;

pub use config::SharedConfig;
pub use link::SharedStatus;

use crate::link::Link;

/// The shared state of one replica: a Redis connection kept alive in the
/// background, the breakers' synchronizer and the buckets.
#[derive(Clone)]
pub struct Shared {
    link: Arc<Link>,
    breakers: Arc<breakers::Synchronizer>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("status", &self.status()).finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state `config` describes, or `None` when it names no
    /// Redis (each replica alone). A URL that does not parse is an error
    /// now; a server that does not answer is not (the replica starts on its
    /// in-memory state).
    pub fn new(config: &SharedConfig) -> Result<Option<Shared>, String> {
        let Some(url) = config.redis.as_deref() else { return Ok(None) };
        config.check()?;
        let link = Arc::new(Link::new(url, config)?);
        Ok(Some(Shared { breakers: Arc::new(breakers::Synchronizer::new(&config.prefix)), link }))
    }

    /// Whether Redis answers, and how often this replica fell back.
    pub fn status(&self) -> SharedStatus {
        self.link.status()
    }

    /// Takes one request from `caller`'s shared bucket: `Some(Ok)` if there
    /// was one, `Some(Err(seconds))` until there will be, `None` when Redis
    /// cannot be asked (the caller uses its in-memory bucket).
    pub async fn take(&self, caller: &str, rate: f64, burst: f64) -> Option<Result<(), f64>> {
        buckets::take(&self.link, caller, rate, burst).await
    }

    /// Keeps `breakers` in step with the shared copy, every `sync` period,
    /// until `stop` resolves: sends this replica's changes, adopts the
    /// others', and reconnects when Redis was away.
    pub async fn run(self, breakers: &Breakers, stop: impl std::future::Future<Output = ()>) {
        breakers.share();
        let every = self.link.sync_every();
        let mut stop = std::pin::pin!(stop);
        loop {
            if self.link.ensure().await {
                let exchanged = self.breakers.exchange(&self.link, breakers).await;
                self.link.report(exchanged);
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = &mut stop => return,
            }
        }
    }
}
