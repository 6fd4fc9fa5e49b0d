//! The health service: the real checks behind `GET /health`, put together into one typed
//! [`Health`] value. `http::ops` serialises it (and picks 200 or 503); `sealtrail doctor` will
//! run the same checks, so they live here rather than in a handler.
//!
//! | check | how |
//! | --- | --- |
//! | `store` | `ok` or `failing` (with `store_error`): a read of the store through a reader connection, then a write probe — a small file written, fsync'd and removed in the data directory, beside the database. Nothing is ever appended to a log for a health check: the log is evidence, and probes are not events. |
//! | `audit` | `failing` (with `audit_error`) when the store check fails or the latest group commit of the last five minutes failed with none succeeding since; else `active` when events were committed in the last five minutes, `idle` when none were (a quiet system is healthy). |
//! | `audit_log_count_5m` | events created through the API in the last five minutes, across tenants, from counters in memory ([`crate::metrics`]). |
//! | `last_event_age_seconds` | since the last event was created; `null` if none since start. |
//! | `chain` | `valid`, `violated` or `unchecked`, from the application's [`VerificationBoard`]: `violated` if any tenant's latest verification found a violation (it stays so until a whole-log verification finds the log intact), `valid` once verified, `unchecked` before the first run. |
//! | `spool` | `{"depth", "oldest_age_seconds", "bytes"?, "max_bytes"?}`: events accepted into the local spool while a PostgreSQL store was unreachable and not yet drained into the log (see [`crate::spool`]). The embedded store commits directly and has no spool: `{"depth": 0, "oldest_age_seconds": null}`. |
//! | `index_lag_seconds` | how far the query index trails the log; present once the indexer reports it. |
//! | `permissions_warning` | present when the data directory or its databases are open to other local users (wider than 0700 and 0600; see `sealtrail_store::layout`), naming each with its mode. A warning only: the status does not change. |
//!
//! `failing` when the store or audit check fails and nothing takes events durably in its
//! place; `degraded` when the store is unreachable but the spool takes events, when events
//! wait in the spool, when a chain is violated, or when the index lags more than
//! [`INDEX_LAG_DEGRADED`] seconds (the instance still takes events durably, so it stays in
//! rotation, but someone must look); `healthy` otherwise.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

use crate::ledger::Ledger;
use crate::metrics;
use crate::readers::Readers;
use crate::verify::{ChainState, VerificationBoard};
use sealtrail_store::StoreError;

/// Index lag above which the service reports itself degraded, in seconds. Searches then miss
/// recent events (the target at full ingest is 2 s).
pub const INDEX_LAG_DEGRADED: f64 = 60.0;

/// The health service. Cloning is cheap: it holds handles only.
#[derive(Clone)]
pub struct HealthCheck {
    readers: Readers,
    /// Where the write probe goes: beside the embedded store, the spool and the keys.
    data_dir: PathBuf,
    board: VerificationBoard,
    /// The writer, whose local spool (with PostgreSQL) is reported.
    ledger: Ledger,
}

impl HealthCheck {
    pub fn new(
        readers: Readers,
        data_dir: PathBuf,
        board: VerificationBoard,
        ledger: Ledger,
    ) -> HealthCheck {
        HealthCheck {
            readers,
            data_dir,
            board,
            ledger,
        }
    }

    /// Runs every check now and puts them together.
    pub async fn check(&self) -> Health {
        let store = self.check_store().await;
        let mut health = assess(
            store,
            self.ledger.spool_status(),
            metrics::activity(),
            self.board.chain_state().into(),
            metrics::index_lag(),
        );
        health.checks.permissions_warning = self.check_permissions().await;
        health
    }

    /// Reads the store and probes the data directory.
    async fn check_store(&self) -> StoreCheck {
        let data = self.data_dir.clone();
        let disk = tokio::task::spawn_blocking(move || {
            write_probe(&data).map_err(|source| DiskFailure::Write { path: data, source })
        })
        .await
        .unwrap_or_else(|e| Err(DiskFailure::Probe(e)));
        let read = self
            .readers
            .read(|conn| conn.tenants().map(drop))
            .await
            .map_err(|error| {
                tracing::error!(%error, "store error");
                StoreReadFailure(error)
            });
        StoreCheck { read, disk }
    }

    /// Whether the data directory or its databases are open to other local users.
    async fn check_permissions(&self) -> Option<String> {
        let data = sealtrail_store::DataDir::new(self.data_dir.clone());
        tokio::task::spawn_blocking(move || data.too_open_warning())
            .await
            .ok()
            .flatten()
    }
}

/// The service's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Failing,
}

/// Whether the store answers reads and the data directory takes durable writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreStatus {
    Ok,
    Failing,
}

/// Whether audit events are being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditStatus {
    /// Events were committed in the last five minutes.
    Active,
    /// None were, and nothing is failing.
    Idle,
    /// Writes fail: see `audit_error`.
    Failing,
}

/// The chain status from the latest background verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    Valid,
    Violated,
    Unchecked,
}

/// The local spool of events accepted while the store is unreachable.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpoolCheck {
    /// Events waiting in the spool.
    pub depth: u64,
    /// Seconds since the oldest waiting event was accepted; null when none waits.
    pub oldest_age_seconds: Option<f64>,
    /// Bytes of spooled events waiting; absent without a spool (the embedded store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The spool's size limit (`spool_max_bytes`); absent without a spool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

impl SpoolCheck {
    fn from_status(status: Option<crate::spool::SpoolStatus>) -> SpoolCheck {
        match status {
            Some(status) => SpoolCheck {
                depth: status.depth,
                oldest_age_seconds: crate::spool::oldest_age_seconds(
                    &status,
                    crate::clock::Clock::system().now(),
                ),
                bytes: Some(status.bytes),
                max_bytes: Some(status.max_bytes),
            },
            None => SpoolCheck {
                depth: 0,
                oldest_age_seconds: None,
                bytes: None,
                max_bytes: None,
            },
        }
    }
}

/// The individual checks of `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthChecks {
    pub store: StoreStatus,
    /// Why the store check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    pub audit: AuditStatus,
    /// Why audit writes are failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// Events created in the last five minutes, across tenants.
    pub audit_log_count_5m: u64,
    /// Seconds since the last event was created; null if none since the server started.
    pub last_event_age_seconds: Option<f64>,
    pub chain: ChainStatus,
    pub spool: SpoolCheck,
    /// How far the query index trails the log; absent until the indexer reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_lag_seconds: Option<f64>,
    /// Present when other local users can reach the data directory or its databases (their
    /// modes are wider than 0700 and 0600), naming them. A warning only: it does not change
    /// the status, because the service works and the operator may have meant it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions_warning: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub checks: HealthChecks,
}

impl From<ChainState> for ChainStatus {
    fn from(state: ChainState) -> ChainStatus {
        match state {
            ChainState::Unchecked => ChainStatus::Unchecked,
            ChainState::Valid => ChainStatus::Valid,
            ChainState::Violated => ChainStatus::Violated,
        }
    }
}

/// Distinguishes concurrent probes, so that one never removes another's file.
static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Proves the data directory takes durable writes: a small file is written, fsync'd and
/// removed beside the database. It catches a full or read-only file system, or a directory
/// that is gone, without writing to any log.
fn write_probe(data: &Path) -> std::io::Result<()> {
    let n = PROBE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = data.join(format!(".health-probe-{}-{n}", std::process::id()));
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(b"sealtrail health probe\n")?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

/// The store's two halves as `GET /health` sees them.
struct StoreCheck {
    /// A read of the store.
    read: Result<(), StoreReadFailure>,
    /// A durable write in the data directory (the embedded store, the spool, the keys).
    disk: Result<(), DiskFailure>,
}

/// Why the health check's read of the store failed.
#[derive(Debug, thiserror::Error)]
#[error("the store cannot serve this request: {0}")]
struct StoreReadFailure(StoreError);

/// Why the data directory did not take the health check's durable write.
#[derive(Debug, thiserror::Error)]
enum DiskFailure {
    #[error("cannot write to the data directory {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The blocking task that writes the probe did not finish (it panicked).
    #[error("the write probe failed: {0}")]
    Probe(tokio::task::JoinError),
}

impl StoreCheck {
    #[cfg(test)]
    fn ok() -> StoreCheck {
        StoreCheck {
            read: Ok(()),
            disk: Ok(()),
        }
    }

    /// What failed, if anything.
    fn error(&self) -> Option<String> {
        match (&self.read, &self.disk) {
            (Ok(()), Ok(())) => None,
            (Err(e), Ok(())) => Some(e.to_string()),
            (Ok(()), Err(e)) => Some(e.to_string()),
            (Err(read), Err(disk)) => Some(format!("{read}; {disk}")),
        }
    }
}

/// Puts the checks together; pure, so the rules are tested without a failing disk.
fn assess(
    store: StoreCheck,
    spool: Option<crate::spool::SpoolStatus>,
    activity: metrics::Activity,
    chain: ChainStatus,
    index_lag: Option<f64>,
) -> Health {
    // The database is out of reach but events still become durable, in the spool.
    let spooling = store.read.is_err() && store.disk.is_ok() && spool.is_some();
    let store_error = store.error();
    let spool = SpoolCheck::from_status(spool);
    let (audit, audit_error) = match (&store_error, activity.commit_failure) {
        (Some(_), _) if spooling => (
            AuditStatus::Failing,
            Some(format!(
                "the store is unreachable; events are kept in the local spool ({} waiting) and enter the log when it is back",
                spool.depth
            )),
        ),
        (Some(_), _) => (
            AuditStatus::Failing,
            Some("the store is failing; events cannot be committed".to_string()),
        ),
        (None, Some(error)) => (
            AuditStatus::Failing,
            Some(format!("the latest group commit failed: {error}")),
        ),
        (None, None) if activity.events_recent > 0 => (AuditStatus::Active, None),
        (None, None) => (AuditStatus::Idle, None),
    };
    let status = if spooling {
        HealthStatus::Degraded
    } else if store_error.is_some() || audit == AuditStatus::Failing {
        HealthStatus::Failing
    } else if spool.depth > 0
        || chain == ChainStatus::Violated
        || index_lag.is_some_and(|lag| lag > INDEX_LAG_DEGRADED)
    {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let store = match store_error {
        None => StoreStatus::Ok,
        Some(_) => StoreStatus::Failing,
    };
    Health {
        status,
        checks: HealthChecks {
            store,
            store_error,
            audit,
            audit_error,
            audit_log_count_5m: activity.events_recent,
            last_event_age_seconds: activity.last_event_age.map(|age| age.as_secs_f64()),
            chain,
            spool,
            index_lag_seconds: index_lag,
            permissions_warning: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn activity(recent: u64, failure: Option<&str>) -> metrics::Activity {
        metrics::Activity {
            events_recent: recent,
            last_event_age: (recent > 0).then_some(Duration::from_secs(2)),
            commit_failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn the_status_follows_the_checks() {
        let unchecked = ChainStatus::Unchecked;
        let cases = [
            // (store ok, recent, commit failure, chain, lag) → (status, audit)
            (true, 5, None, unchecked, None, "healthy", "active"),
            (true, 0, None, unchecked, None, "healthy", "idle"),
            (
                true,
                0,
                None,
                ChainStatus::Valid,
                Some(1.0),
                "healthy",
                "idle",
            ),
            (
                true,
                3,
                None,
                ChainStatus::Violated,
                None,
                "degraded",
                "active",
            ),
            (true, 3, None, unchecked, Some(120.0), "degraded", "active"),
            (
                true,
                3,
                Some("disk I/O error"),
                unchecked,
                None,
                "failing",
                "failing",
            ),
            (false, 3, None, unchecked, None, "failing", "failing"),
            (
                false,
                0,
                None,
                ChainStatus::Violated,
                None,
                "failing",
                "failing",
            ),
        ];
        for (store_ok, recent, failure, chain, lag, status, audit) in cases {
            let store = StoreCheck {
                read: Ok(()),
                disk: if store_ok {
                    Ok(())
                } else {
                    Err(DiskFailure::Write {
                        path: PathBuf::from("/var/lib/sealtrail"),
                        source: std::io::Error::other("disk I/O error"),
                    })
                },
            };
            let health = assess(store, None, activity(recent, failure), chain, lag);
            let json = serde_json::to_value(&health).unwrap();
            assert_eq!(json["status"], status, "{json}");
            assert_eq!(json["checks"]["audit"], audit, "{json}");
            assert_eq!(json["checks"]["audit_log_count_5m"], recent);
            assert_eq!(json["checks"]["spool"]["depth"], 0);
            assert_eq!(
                json["checks"]["store"],
                if store_ok { "ok" } else { "failing" }
            );
            assert_eq!(json["checks"]["store_error"].is_string(), !store_ok);
            assert_eq!(
                json["checks"]["audit_error"].is_string(),
                audit == "failing"
            );
            assert_eq!(
                json["checks"]["index_lag_seconds"].is_number(),
                lag.is_some()
            );
        }
    }

    #[test]
    fn an_unreachable_store_with_a_spool_is_degraded_not_failing() {
        let unreachable = || StoreCheck {
            read: Err(StoreReadFailure(StoreError::Unavailable(
                "cannot connect to PostgreSQL".to_string(),
            ))),
            disk: Ok(()),
        };
        let waiting = crate::spool::SpoolStatus {
            depth: 7,
            bytes: 4096,
            max_bytes: 1 << 20,
            oldest_received_micros: Some(
                crate::clock::Clock::system().now().unix_micros() - 3_000_000,
            ),
        };
        let failure = Some("cannot connect to PostgreSQL");
        let unchecked = ChainStatus::Unchecked;

        // Spooling: degraded, with the depth and the oldest event's age.
        let health = assess(
            unreachable(),
            Some(waiting),
            activity(0, failure),
            unchecked,
            None,
        );
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["status"], "degraded", "{json}");
        assert_eq!(json["checks"]["store"], "failing");
        assert_eq!(json["checks"]["audit"], "failing");
        assert!(
            json["checks"]["audit_error"]
                .as_str()
                .unwrap()
                .contains("spool (7 waiting)"),
            "{json}"
        );
        assert_eq!(json["checks"]["spool"]["depth"], 7);
        assert_eq!(json["checks"]["spool"]["bytes"], 4096);
        let age = json["checks"]["spool"]["oldest_age_seconds"]
            .as_f64()
            .unwrap();
        assert!((3.0..60.0).contains(&age), "{json}");

        // Without a spool (or with the disk failing too) nothing takes events: failing.
        let health = assess(unreachable(), None, activity(0, failure), unchecked, None);
        assert_eq!(health.status, HealthStatus::Failing);
        let both = StoreCheck {
            read: Err(StoreReadFailure(StoreError::Unavailable(
                "cannot connect".to_string(),
            ))),
            disk: Err(DiskFailure::Write {
                path: PathBuf::from("/var/lib/sealtrail"),
                source: std::io::Error::other("No space left on device"),
            }),
        };
        let health = assess(both, Some(waiting), activity(0, failure), unchecked, None);
        assert_eq!(health.status, HealthStatus::Failing);
        assert!(
            health.checks.store_error.unwrap().contains("No space left"),
            "both failures are named"
        );

        // The store is back and the spool still drains: degraded until it is empty.
        let health = assess(
            StoreCheck::ok(),
            Some(waiting),
            activity(3, None),
            unchecked,
            None,
        );
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.checks.audit, AuditStatus::Active);
        let empty = crate::spool::SpoolStatus {
            depth: 0,
            bytes: 0,
            max_bytes: 1 << 20,
            oldest_received_micros: None,
        };
        let health = assess(
            StoreCheck::ok(),
            Some(empty),
            activity(3, None),
            unchecked,
            None,
        );
        assert_eq!(health.status, HealthStatus::Healthy);
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(
            json["checks"]["spool"]["oldest_age_seconds"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn the_write_probe_leaves_nothing_behind_and_fails_without_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(write_probe(&dir.path().join("gone")).is_err());
    }
}
