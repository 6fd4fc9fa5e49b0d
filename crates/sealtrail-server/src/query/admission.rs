//! Which searches run now: a share per tenant and a cap for the process, with a short queue
//! in front of both.
//!
//! A search can read far more of the index than the page it returns (a filter that matches
//! little, over millions of events), and it runs on a thread of the blocking pool while it
//! does. Without a limit, one tenant sending many such searches at once takes every thread
//! and every core the searches can get, and everyone else's searches wait behind them. So,
//! as PostgreSQL limits connections per role and Vault rate-limits per namespace:
//!
//! - each tenant runs at most `max_searches_per_tenant` searches at once (its *share*), and
//!   the process at most `max_searches` ([`QuerySettings`]);
//! - a search beyond either waits its turn (first come, first served) for at most
//!   [`QUEUE_WAIT`], then is refused with `Retry-After` — 429 `concurrent_searches` when its
//!   tenant's share is full (the caller can slow down), 503 `search_capacity` when the
//!   process is full (another instance may have room);
//! - a search that runs is stopped after the time limit ([`QuerySettings::time_limit`]).
//!
//! The control path (tokens, `/health`, checkpoints) never passes through here and reads on
//! connections of its own (`crate::readers`), so ingest never waits for a search.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::QueryError;
use crate::config::QuerySettings;
use crate::metrics::{self, SearchRefusal};

/// How long a search waits for its tenant's share or the process's cap before it is refused:
/// long enough to absorb a burst of a few searches, short enough that a client that has sent
/// too many learns so at once rather than at its own timeout.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// What a refused search's `Retry-After` says, in seconds: searches take milliseconds to a
/// few seconds, so a slot is likely free again by then.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The admission of searches; cloning is cheap and shares the limits.
#[derive(Clone)]
pub struct Admission {
    settings: QuerySettings,
    /// `max_searches` permits for the whole process.
    process: Arc<Semaphore>,
    /// Each tenant's `max_searches_per_tenant` permits, made on its first search. Tenants
    /// are only ever authenticated callers' own, so this holds at most one entry per tenant
    /// of the store.
    tenants: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A search's place among the running ones: held while it runs, given back when dropped.
pub struct Admitted {
    _tenant: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(settings: QuerySettings) -> Admission {
        Admission {
            settings,
            process: Arc::new(Semaphore::new(settings.max_searches)),
            tenants: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The limits searches run under.
    pub fn settings(&self) -> QuerySettings {
        self.settings
    }

    /// Waits, at most [`QUEUE_WAIT`] in all, until `tenant` may run one more search: first
    /// for a place in its share, then in the process's.
    pub async fn admit(&self, tenant: &str) -> Result<Admitted, QueryError> {
        let deadline = Instant::now() + QUEUE_WAIT;
        let share = self.share(tenant);
        let Ok(Ok(tenant_permit)) = tokio::time::timeout_at(deadline, share.acquire_owned()).await
        else {
            metrics::search_refused(SearchRefusal::TenantShare);
            return Err(QueryError::TenantShareFull {
                limit: self.settings.max_searches_per_tenant,
            });
        };
        let process = self.process.clone().acquire_owned();
        let Ok(Ok(process_permit)) = tokio::time::timeout_at(deadline, process).await else {
            metrics::search_refused(SearchRefusal::Capacity);
            return Err(QueryError::SearchCapacityFull {
                limit: self.settings.max_searches,
            });
        };
        Ok(Admitted {
            _tenant: tenant_permit,
            _process: process_permit,
        })
    }

    fn share(&self, tenant: &str) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock().expect("search shares lock");
        tenants
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_searches_per_tenant)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_searches: usize, max_searches_per_tenant: usize) -> Admission {
        Admission::new(QuerySettings {
            time_limit: Duration::from_secs(1),
            max_searches,
            max_searches_per_tenant,
        })
    }

    /// A tenant beyond its share waits out the queue and is refused, while another tenant
    /// is admitted; beyond the process's cap every tenant is. The clock is tokio's paused
    /// one, so the queue's second passes without being slept.
    #[tokio::test(start_paused = true)]
    async fn shares_and_the_cap_admit_in_turn_and_refuse_after_the_queue() {
        let admission = admission(3, 2);
        let first = admission.admit("acme").await.unwrap();
        let _second = admission.admit("acme").await.unwrap();
        let started = Instant::now();
        match admission.admit("acme").await {
            Err(QueryError::TenantShareFull { limit: 2 }) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert_eq!(started.elapsed(), QUEUE_WAIT);
        let _globex = admission.admit("globex").await.unwrap();
        match admission.admit("initech").await {
            Err(QueryError::SearchCapacityFull { limit: 3 }) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        // A place given back goes to the next in line within the queue's wait.
        let waiting = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit("acme").await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }
}
