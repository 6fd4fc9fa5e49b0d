//! What the archiver knows, for `GET /health`, the metrics and the log: the lease, the target's
//! lock, each log's lag, the last success and the last error.
//!
//! The archiver writes it after each round; the health check reads it ([`ArchiveBoard::check`]).
//! Every change is also recorded in the process's metrics (`crate::metrics`), and an error is
//! logged once when it appears or changes, not at every retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sealtrail_core::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics;
use crate::tenant::SYSTEM_TENANT;

/// The shortest archive lag (seconds) that makes the archive `lagging` (and the service
/// `degraded`), whatever the interval: a run or two may be slow without anyone being paged.
pub const LAG_DEGRADED_MIN: Duration = Duration::from_secs(300);

/// The archive lag, in seconds, from which the archive is `lagging`: three intervals, and at
/// least [`LAG_DEGRADED_MIN`].
pub fn lag_limit(interval: Duration) -> Duration {
    (interval * 3).max(LAG_DEGRADED_MIN)
}

/// Whether this instance archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// This instance holds the archive lease: it is the one that archives.
    Held,
    /// Another instance sharing the database holds it; this one reads the archive to report
    /// the lag, and takes the lease over when that instance stops.
    Waiting,
    /// Not known yet (the store could not be asked).
    Unknown,
}

/// The archive's state as `GET /health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveState {
    /// Up to date, or behind by less than the lag limit.
    Ok,
    /// No round has finished since the start.
    Pending,
    /// The latest round found an entry waiting longer than the lag limit (three intervals, at
    /// least five minutes): the service is `degraded`.
    Lagging,
    /// The latest round failed (see `last_error`): the service is `degraded`, and the
    /// archiver tries again at the next interval.
    Failing,
}

/// One log's place in the archive, from the latest round that could read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TenantLag {
    /// Entries the archive holds (the largest size with a verified manifest on the target).
    pub archived: u64,
    /// The log's size less the archived size.
    pub lag_entries: u64,
    /// How long the oldest signed entry not archived yet has waited since it was received; 0
    /// when every signed entry is archived; `None` when that entry cannot be read.
    pub lag_seconds: Option<f64>,
}

/// The `archive` check of `GET /health`, present when a target is configured.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArchiveCheck {
    /// The target, as configured (`archive_to`).
    pub target: String,
    pub state: ArchiveState,
    pub lease: LeaseState,
    /// Whether the target keeps what it is given immutable (S3 Object Lock); null until the
    /// target was asked.
    pub immutable: Option<bool>,
    /// Entries of all logs not archived yet; null until the archive could be read.
    pub lag_entries: Option<u64>,
    /// How long the oldest signed entry not archived yet has waited since it was received,
    /// the longest across logs; 0 when every signed entry is archived; null until the archive
    /// could be read.
    pub lag_seconds: Option<f64>,
    /// When this instance last finished a round that archived every log up to its latest
    /// checkpoint without an error (RFC 3339); null if none since it started.
    pub last_success: Option<String>,
    /// The latest error (kept after a later success); null if none since the start.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
}

/// What the archiver has found, shared with the health check. Cloning is cheap and every
/// clone is the same board.
#[derive(Clone)]
pub struct ArchiveBoard {
    inner: Arc<Mutex<Board>>,
}

struct Board {
    target: String,
    interval: Duration,
    lease: LeaseState,
    immutable: Option<bool>,
    tenants: BTreeMap<String, TenantLag>,
    rounds: u64,
    failing: bool,
    last_success: Option<Timestamp>,
    last_error: Option<(Timestamp, String)>,
}

/// A round's failure: the tenant it concerns (`None`: all of them, e.g. the store could not
/// be read) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub tenant: Option<String>,
    pub message: String,
}

impl ArchiveBoard {
    /// The board of an archiver writing to `target` every `interval`.
    pub fn new(target: &str, interval: Duration) -> ArchiveBoard {
        ArchiveBoard {
            inner: Arc::new(Mutex::new(Board {
                target: target.to_string(),
                interval,
                lease: LeaseState::Unknown,
                immutable: None,
                tenants: BTreeMap::new(),
                rounds: 0,
                failing: false,
                last_success: None,
                last_error: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this instance holds the lease, as last found.
    pub fn lease(&self) -> LeaseState {
        self.lock().lease
    }

    /// Whether the latest round failed.
    pub fn failing(&self) -> bool {
        self.lock().failing
    }

    /// Records whether this instance holds the lease; a change is logged.
    pub fn set_lease(&self, lease: LeaseState) {
        let mut board = self.lock();
        if board.lease != lease {
            match lease {
                LeaseState::Held => tracing::info!(
                    target_url = %board.target,
                    "this instance holds the archive lease: it archives every log"
                ),
                LeaseState::Waiting => tracing::info!(
                    target_url = %board.target,
                    "another instance holds the archive lease and archives; this one waits to take over"
                ),
                LeaseState::Unknown => {}
            }
        }
        board.lease = lease;
        metrics::set_archive_lease(lease == LeaseState::Held);
    }

    /// Records what the target says of its lock.
    pub fn set_immutable(&self, immutable: bool) {
        self.lock().immutable = Some(immutable);
    }

    /// Records where a log stands.
    pub fn set_tenant(&self, tenant: &str, lag: TenantLag) {
        metrics::set_archive_lag(tenant, lag.archived, lag.lag_entries, lag.lag_seconds);
        self.lock().tenants.insert(tenant.to_string(), lag);
    }

    /// Records the end of a round: `archiving` when this instance held the lease (only then
    /// is a round without failures a success), and what failed. An error is logged when it
    /// appears or changes, a recovery once.
    pub fn finish_round(&self, archiving: bool, failures: &[Failure], at: Timestamp) {
        let mut board = self.lock();
        board.rounds += 1;
        if failures.is_empty() {
            if board.failing {
                tracing::info!(target_url = %board.target, "the archive works again");
            }
            board.failing = false;
            if archiving {
                board.last_success = Some(at);
                metrics::archive_succeeded(at);
            }
            return;
        }
        for failure in failures {
            match &failure.tenant {
                Some(tenant) => metrics::archive_failed(tenant),
                None if board.tenants.is_empty() => metrics::archive_failed(SYSTEM_TENANT),
                None => {
                    for tenant in board.tenants.keys() {
                        metrics::archive_failed(tenant);
                    }
                }
            }
        }
        let mut messages: Vec<String> = Vec::new();
        for failure in failures {
            let message = match &failure.tenant {
                Some(tenant) => format!("tenant {tenant}: {}", failure.message),
                None => failure.message.clone(),
            };
            // A refusal of the target is the same for every tenant: said once.
            if !messages
                .iter()
                .any(|m| m.ends_with(failure.message.as_str()))
            {
                messages.push(message);
            }
        }
        let message = match messages.len() {
            1 => messages.remove(0),
            n => format!("{} (and {} more)", messages[0], n - 1),
        };
        let changed =
            !board.failing || board.last_error.as_ref().is_none_or(|(_, m)| *m != message);
        if changed {
            tracing::error!(
                target_url = %board.target,
                error = %message,
                "archiving failed; retried every interval"
            );
        } else {
            tracing::debug!(error = %message, "archiving still fails");
        }
        board.failing = true;
        board.last_error = Some((at, message));
    }

    /// The `archive` check of `GET /health`.
    pub fn check(&self) -> ArchiveCheck {
        let board = self.lock();
        let known = !board.tenants.is_empty();
        let lag_entries = known.then(|| board.tenants.values().map(|t| t.lag_entries).sum());
        let lag_seconds = board
            .tenants
            .values()
            .filter_map(|t| t.lag_seconds)
            .fold(None, |worst: Option<f64>, s| {
                Some(worst.map_or(s, |w| w.max(s)))
            });
        let state = if board.rounds == 0 {
            ArchiveState::Pending
        } else if board.failing {
            ArchiveState::Failing
        } else if lag_seconds.is_some_and(|s| s > lag_limit(board.interval).as_secs_f64()) {
            ArchiveState::Lagging
        } else {
            ArchiveState::Ok
        };
        ArchiveCheck {
            target: board.target.clone(),
            state,
            lease: board.lease,
            immutable: board.immutable,
            lag_entries,
            lag_seconds,
            last_success: board.last_success.map(|t| t.to_rfc3339()),
            last_error: board.last_error.as_ref().map(|(_, m)| m.clone()),
            last_error_at: board.last_error.as_ref().map(|(t, _)| t.to_rfc3339()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_795_000_000_000_000 + secs * 1_000_000).unwrap()
    }

    fn lag(archived: u64, entries: u64, seconds: f64) -> TenantLag {
        TenantLag {
            archived,
            lag_entries: entries,
            lag_seconds: Some(seconds),
        }
    }

    #[test]
    fn the_check_follows_the_rounds() {
        let board = ArchiveBoard::new("/srv/archive", Duration::from_secs(60));
        let check = board.check();
        assert_eq!(check.state, ArchiveState::Pending);
        assert_eq!((check.lag_entries, check.lag_seconds), (None, None));

        board.set_lease(LeaseState::Held);
        board.set_tenant("acme", lag(100, 3, 0.0));
        board.set_tenant("_system", lag(10, 1, 0.0));
        board.finish_round(true, &[], at(0));
        let check = board.check();
        assert_eq!(check.state, ArchiveState::Ok);
        assert_eq!(check.lease, LeaseState::Held);
        assert_eq!(check.lag_entries, Some(4));
        assert_eq!(
            check.last_success.as_deref(),
            Some(at(0).to_rfc3339().as_str())
        );
        assert_eq!(check.last_error, None);

        // A target refused for every tenant is one error, said once; the success stays.
        let refused = "archive target /srv/archive does not keep what it is given immutable";
        let failures: Vec<Failure> = ["acme", "_system"]
            .iter()
            .map(|t| Failure {
                tenant: Some(t.to_string()),
                message: refused.into(),
            })
            .collect();
        board.finish_round(true, &failures, at(60));
        let check = board.check();
        assert_eq!(check.state, ArchiveState::Failing);
        assert_eq!(
            check.last_error.as_deref(),
            Some(format!("tenant acme: {refused}").as_str())
        );
        assert_eq!(
            check.last_success.as_deref(),
            Some(at(0).to_rfc3339().as_str())
        );

        // Recovered, but an entry waits longer than three intervals: lagging.
        board.set_tenant("acme", lag(100, 500, 181.0));
        board.finish_round(true, &[], at(120));
        let check = board.check();
        assert_eq!(check.state, ArchiveState::Ok, "five minutes at least");
        board.set_tenant("acme", lag(100, 500, 301.0));
        board.finish_round(true, &[], at(180));
        let check = board.check();
        assert_eq!(check.state, ArchiveState::Lagging);
        assert_eq!(check.lag_seconds, Some(301.0));
        assert_eq!(
            check.last_error_at.as_deref(),
            Some(at(60).to_rfc3339().as_str()),
            "the last error is kept after a success"
        );

        // A waiting instance's round is no success of its own.
        board.set_lease(LeaseState::Waiting);
        board.set_tenant("acme", lag(200, 0, 0.0));
        board.finish_round(false, &[], at(240));
        let check = board.check();
        assert_eq!(
            (check.state, check.lease),
            (ArchiveState::Ok, LeaseState::Waiting)
        );
        assert_eq!(
            check.last_success.as_deref(),
            Some(at(180).to_rfc3339().as_str())
        );
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["lease"], "waiting");
        assert_eq!(json["state"], "ok");
        assert_eq!(json["immutable"], serde_json::Value::Null);
    }

    #[test]
    fn the_lag_limit_is_three_intervals_and_at_least_five_minutes() {
        assert_eq!(lag_limit(Duration::from_secs(1)), LAG_DEGRADED_MIN);
        assert_eq!(
            lag_limit(Duration::from_secs(600)),
            Duration::from_secs(1800)
        );
    }
}
