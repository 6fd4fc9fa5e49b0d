//! The health service: the real checks behind `GET /health`, put together into one typed
//! [`Health`] value. `http::ops` serialises it (and picks 200 or 503); `sealtrail doctor` will
//! run the same checks, so they live here rather than in a handler.
//!
//! | check | how |
//! | --- | --- |
//! | `store` | `ok` or `failing` (with `store_error`): a read of the store through a reader connection, then a write probe — a small file written, fsync'd and removed in the data directory, beside the database. Nothing is ever appended to a log for a health check: the log is evidence, and probes are not events. |
//! | `audit` | `failing` (with `audit_error`) when the store check fails or the latest group commit of the last five minutes failed with none succeeding since; else `active` when events were committed in the last five minutes, `idle` when none were (a quiet system is healthy). |
//! | `audit_log_count_5m` | entries received in the last five minutes, across tenants (not `_system`), read from the store ([`store_activity`]): so it survives a restart and counts what every instance sharing the store wrote. |
//! | `last_event_age_seconds` | since the newest entry of any tenant (not `_system`) was received, from the store; `null` when no tenant has one. |
//! | `chain` | `valid`, `violated` or `unchecked`, from the application's [`VerificationBoard`]: `violated` if any tenant's latest verification found a violation or could not finish (it stays so until a whole-log verification finds the log intact), `valid` once verified, `unchecked` before the first run. |
//! | `protections` | `intact` or `missing` (with `protections_missing` naming each), the store's append-only triggers as the running server finds them (the check `sealtrail verify` makes); `unknown` when the store cannot be read. |
//! | `disk` | `{"used_ratio", "status": "ok\|warning\|critical"}` of the file system holding the data directory: `warning` from [`DISK_WARNING`], `critical` from [`DISK_CRITICAL`] (the thresholds of the operations guide's disk alert); `null` when it cannot be measured. |
//! | `spool` | `{"depth", "oldest_age_seconds", "bytes"?, "max_bytes"?}`: events accepted into the local spool while a PostgreSQL store was unreachable and not yet drained into the log (see [`crate::spool`]). The embedded store commits directly and has no spool: `{"depth": 0, "oldest_age_seconds": null}`. |
//! | `index_lag_seconds` | how far the query index trails the log; present once the indexer reports it. |
//! | `archive` | present when a target is configured (`archive_to`): the background archiver's [`ArchiveCheck`] — `target`, `state` (`ok`, `pending` before its first round, `lagging` when an entry has waited longer than three intervals and at least five minutes, `failing` when its latest round failed), `lease` (`held`: this instance archives; `waiting`: another does), `immutable`, `lag_entries`, `lag_seconds`, `last_success`, `last_error` and `last_error_at`. |
//! | `permissions_warning` | present when the data directory or its databases are open to other local users (wider than 0700 and 0600; see `sealtrail_store::layout`), naming each with its mode. A warning only: the status does not change. |
//!
//! `failing` when the store or audit check fails and nothing takes events durably in its
//! place, when a chain is violated (tampering is an incident, not a slowdown), or when an
//! append-only protection is missing (nothing stops a rewrite of history); `degraded` when
//! the store is unreachable but the spool takes events, when events wait in the spool, when
//! the disk is at or above [`DISK_CRITICAL`], or when the index lags more than
//! [`INDEX_LAG_DEGRADED`] seconds (the instance still takes events durably, so it stays in
//! rotation, but someone must look); `healthy` otherwise.
//!
//! An open gap finding (`gaps_open`, from the gap detector's latest judgement) is
//! `degraded` too, and leaves a worse status as it is; so is an archive `failing` or
//! `lagging` (the log is complete and takes events; its off-site copy is behind).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

use crate::archive::{ArchiveBoard, ArchiveCheck, ArchiveState};
use crate::ledger::Ledger;
use crate::metrics;
use crate::readers::Readers;
use crate::tenant::SYSTEM_TENANT;
use crate::verify::{ChainState, VerificationBoard};
use sealtrail_core::Timestamp;
use sealtrail_store::{Store, StoreError};

/// Index lag above which the service reports itself degraded, in seconds. Searches then miss
/// recent events (the target at full ingest is 2 s).
pub const INDEX_LAG_DEGRADED: f64 = 60.0;

/// Used fraction of the data directory's file system from which `disk` is `warning`.
pub const DISK_WARNING: f64 = 0.75;
/// Used fraction from which `disk` is `critical` and the service `degraded`: at the rates the
/// brief plans for, what is left is hours, not days.
pub const DISK_CRITICAL: f64 = 0.85;

/// The health service. Cloning is cheap: it holds handles only.
#[derive(Clone)]
pub struct HealthCheck {
    readers: Readers,
    /// Where the write probe goes: beside the embedded store, the spool and the keys.
    data_dir: PathBuf,
    board: VerificationBoard,
    /// The writer, whose local spool (with PostgreSQL) is reported.
    ledger: Ledger,
    /// The background archiver's findings, when a target is configured.
    archive: Option<ArchiveBoard>,
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
            archive: None,
        }
    }

    /// The same, reporting the background archiver's findings as the `archive` check.
    pub fn with_archive(self, archive: Option<ArchiveBoard>) -> HealthCheck {
        HealthCheck { archive, ..self }
    }

    /// Runs every check now and puts them together.
    pub async fn check(&self) -> Health {
        let (store, facts) = self.check_store().await;
        let mut activity = metrics::activity();
        if let Some(facts) = &facts {
            let now = crate::clock::Clock::system().now();
            activity.events_recent = facts.recent;
            activity.last_event_age = facts.last_received.map(|at| {
                std::time::Duration::from_micros(
                    u64::try_from(now.unix_micros() - at.unix_micros()).unwrap_or(0),
                )
            });
        }
        let disk = self.check_disk().await;
        let mut health = assess(
            store,
            self.ledger.spool_status(),
            activity,
            self.board.chain_state().into(),
            metrics::index_lag(),
            facts.map(|f| f.missing_protections),
            disk,
        );
        health.checks.permissions_warning = self.check_permissions().await;
        let health = with_open_gaps(health, crate::gaps::metrics::open_now());
        with_archive(health, self.archive.as_ref().map(ArchiveBoard::check))
    }

    /// Reads the store (its tenants' latest entries and its protections) and probes the data
    /// directory.
    async fn check_store(&self) -> (StoreCheck, Option<StoreFacts>) {
        let data = self.data_dir.clone();
        let disk = tokio::task::spawn_blocking(move || {
            write_probe(&data).map_err(|source| DiskFailure::Write { path: data, source })
        })
        .await
        .unwrap_or_else(|e| Err(DiskFailure::Probe(e)));
        let now = crate::clock::Clock::system().now();
        // On the control path: a health check that waits for searches tells a load balancer
        // that an instance which takes events durably is down. Its reads are point reads
        // (a binary search per tenant), as short as the control path's others.
        let facts = self
            .readers
            .control(move |conn| store_facts(conn, now))
            .await
            .map_err(|error| {
                tracing::error!(%error, "store error");
                StoreReadFailure(error)
            });
        let (read, facts) = match facts {
            Ok(facts) => (Ok(()), Some(facts)),
            Err(error) => (Err(error), None),
        };
        (StoreCheck { read, disk }, facts)
    }

    /// The data directory's file system usage, recorded for `/metrics` too.
    async fn check_disk(&self) -> Option<DiskCheck> {
        let data = self.data_dir.clone();
        let ratio = tokio::task::spawn_blocking(move || disk_usage(&data))
            .await
            .ok()
            .flatten()?;
        metrics::set_disk_usage(ratio);
        Some(DiskCheck::classify(ratio))
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

/// Whether the store's append-only protections are in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtectionsStatus {
    /// Every trigger the schema installs is present and enabled.
    Intact,
    /// At least one is missing or disabled: see `protections_missing`.
    Missing,
    /// The store could not be read.
    Unknown,
}

/// How full the data directory's file system is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskStatus {
    /// Below [`DISK_WARNING`].
    Ok,
    /// From [`DISK_WARNING`]: plan more space.
    Warning,
    /// From [`DISK_CRITICAL`]: act now (the service reports itself degraded).
    Critical,
}

/// The data directory's file system.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct DiskCheck {
    /// Used fraction, 0 to 1 (as `df` counts it: blocks reserved for root are not free).
    pub used_ratio: f64,
    pub status: DiskStatus,
}

impl DiskCheck {
    /// The status for a used fraction, by the thresholds of the operations guide.
    pub fn classify(used_ratio: f64) -> DiskCheck {
        let status = if used_ratio >= DISK_CRITICAL {
            DiskStatus::Critical
        } else if used_ratio >= DISK_WARNING {
            DiskStatus::Warning
        } else {
            DiskStatus::Ok
        };
        DiskCheck { used_ratio, status }
    }
}

/// The used fraction of the file system holding `path`, as `df` computes its use%: used
/// blocks over used and available ones. `None` when it cannot be measured.
pub fn disk_usage(path: &Path) -> Option<f64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let used = stat.f_blocks.checked_sub(stat.f_bfree)?;
    let total = used.checked_add(stat.f_bavail)?;
    (total > 0).then(|| used as f64 / total as f64)
}

/// What the health check reads from the store in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFacts {
    /// Entries received in the last [`metrics::RECENT_WINDOW`], across tenants but `_system`.
    pub recent: u64,
    /// When the newest of them (or of any older entry) was received.
    pub last_received: Option<Timestamp>,
    /// Append-only protections missing or disabled, by name.
    pub missing_protections: Vec<String>,
}

/// Reads [`StoreFacts`] at `now`.
fn store_facts(conn: &dyn Store, now: Timestamp) -> Result<StoreFacts, StoreError> {
    let (recent, last_received) = store_activity(conn, now)?;
    let missing_protections = conn
        .protections()?
        .into_iter()
        .filter(|p| !p.active)
        .map(|p| p.name)
        .collect();
    Ok(StoreFacts {
        recent,
        last_received,
        missing_protections,
    })
}

/// Entries received since `now` less [`metrics::RECENT_WINDOW`] and when the newest was
/// received, across every tenant but `_system` (the server's own record of admin actions is
/// not producer traffic), read from the store.
///
/// Per tenant: the last entry's `received_at`; when it falls in the window, a binary search
/// over seqs for the first entry that does, reading O(log n) entries. Received times follow
/// seq order (the writer assigns both under the tenant's lock); across instances whose clocks
/// disagree the count is as good as their clocks. An entry that cannot be read or parsed
/// counts as older than the window here: verification reports it.
pub fn store_activity(
    conn: &dyn Store,
    now: Timestamp,
) -> Result<(u64, Option<Timestamp>), StoreError> {
    let window = i64::try_from(metrics::RECENT_WINDOW.as_micros()).unwrap_or(i64::MAX);
    let since = now.unix_micros().saturating_sub(window);
    let received = |tenant: &str, seq: u64| -> Result<Option<Timestamp>, StoreError> {
        let entry = match conn.entry(tenant, seq) {
            Ok(entry) => entry,
            Err(StoreError::BadRow { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(entry
            .and_then(|bytes| sealtrail_core::canonical::Entry::parse(&bytes).ok())
            .map(|entry| entry.server.received_at))
    };
    let mut recent = 0;
    let mut last: Option<Timestamp> = None;
    for tenant in conn.tenants()? {
        if tenant.name == SYSTEM_TENANT {
            continue;
        }
        let size = conn.size(&tenant.name)?;
        let Some(newest) = size.checked_sub(1) else {
            continue;
        };
        let Some(at) = received(&tenant.name, newest)? else {
            continue;
        };
        last = Some(last.map_or(at, |l| l.max(at)));
        if at.unix_micros() < since {
            continue;
        }
        // The first seq received at or after `since`, in 0..=newest (newest is).
        let (mut lo, mut hi) = (0, newest);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match received(&tenant.name, mid)? {
                Some(at) if at.unix_micros() >= since => hi = mid,
                _ => lo = mid + 1,
            }
        }
        recent += size - lo;
    }
    Ok((recent, last))
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
    /// The store's append-only protections.
    pub protections: ProtectionsStatus,
    /// The protections missing or disabled, while `protections` is `missing`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protections_missing: Vec<String>,
    /// The data directory's file system; null when it cannot be measured.
    pub disk: Option<DiskCheck>,
    pub spool: SpoolCheck,
    /// How far the query index trails the log; absent until the indexer reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_lag_seconds: Option<f64>,
    /// Present when other local users can reach the data directory or its databases (their
    /// modes are wider than 0700 and 0600), naming them. A warning only: it does not change
    /// the status, because the service works and the operator may have meant it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions_warning: Option<String>,
    /// Gap findings open across tenants (ongoing, or ended within the last hour) at the gap
    /// detector's latest judgement, made once a minute; `GET /v1/gaps` lists them.
    pub gaps_open: u64,
    /// The background archiver; absent when no archive target is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveCheck>,
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
/// `missing_protections` is `None` when the store could not be read.
fn assess(
    store: StoreCheck,
    spool: Option<crate::spool::SpoolStatus>,
    activity: metrics::Activity,
    chain: ChainStatus,
    index_lag: Option<f64>,
    missing_protections: Option<Vec<String>>,
    disk: Option<DiskCheck>,
) -> Health {
    let protections = match &missing_protections {
        None => ProtectionsStatus::Unknown,
        Some(missing) if missing.is_empty() => ProtectionsStatus::Intact,
        Some(_) => ProtectionsStatus::Missing,
    };
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
    let status = if chain == ChainStatus::Violated || protections == ProtectionsStatus::Missing {
        HealthStatus::Failing
    } else if spooling {
        HealthStatus::Degraded
    } else if store_error.is_some() || audit == AuditStatus::Failing {
        HealthStatus::Failing
    } else if spool.depth > 0
        || disk.is_some_and(|d| d.status == DiskStatus::Critical)
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
            protections,
            protections_missing: missing_protections.unwrap_or_default(),
            disk,
            spool,
            index_lag_seconds: index_lag,
            permissions_warning: None,
            gaps_open: 0,
            archive: None,
        },
    }
}

/// An open gap in a log is `degraded`: events may be missing and someone must look, but the
/// instance takes events durably, so it stays in rotation. A worse status stays as it is.
fn with_open_gaps(mut health: Health, open: u64) -> Health {
    health.checks.gaps_open = open;
    if open > 0 && health.status == HealthStatus::Healthy {
        health.status = HealthStatus::Degraded;
    }
    health
}

/// An archive that fails or lags is `degraded`: the log itself is complete and the instance
/// takes events, but its off-site copy is behind. A worse status stays as it is.
fn with_archive(mut health: Health, archive: Option<ArchiveCheck>) -> Health {
    if archive
        .as_ref()
        .is_some_and(|a| matches!(a.state, ArchiveState::Failing | ArchiveState::Lagging))
        && health.status == HealthStatus::Healthy
    {
        health.status = HealthStatus::Degraded;
    }
    health.checks.archive = archive;
    health
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
    fn an_open_gap_is_degraded_and_a_worse_status_stays() {
        let healthy = || StoreCheck {
            read: Ok(()),
            disk: Ok(()),
        };
        let assessed = |chain| {
            assess(
                healthy(),
                None,
                activity(3, None),
                chain,
                None,
                Some(vec![]),
                None,
            )
        };
        let quiet = with_open_gaps(assessed(ChainStatus::Valid), 0);
        assert_eq!(quiet.status, HealthStatus::Healthy);
        let gap = with_open_gaps(assessed(ChainStatus::Valid), 2);
        assert_eq!(gap.status, HealthStatus::Degraded);
        let json = serde_json::to_value(&gap).unwrap();
        assert_eq!(json["checks"]["gaps_open"], 2, "{json}");
        let violated = with_open_gaps(assessed(ChainStatus::Violated), 2);
        assert_eq!(violated.status, HealthStatus::Failing);
    }

    #[test]
    fn a_failing_archive_is_degraded_and_no_archive_is_absent() {
        let healthy = || {
            assess(
                StoreCheck::ok(),
                None,
                activity(3, None),
                ChainStatus::Valid,
                None,
                Some(vec![]),
                None,
            )
        };
        let none = with_archive(healthy(), None);
        assert_eq!(none.status, HealthStatus::Healthy);
        let json = serde_json::to_value(&none).unwrap();
        assert!(json["checks"].get("archive").is_none(), "{json}");

        let board = ArchiveBoard::new("/srv/archive", Duration::from_secs(60));
        board.set_lease(crate::archive::LeaseState::Held);
        board.finish_round(true, &[], Timestamp::from_unix_micros(0).unwrap());
        let ok = with_archive(healthy(), Some(board.check()));
        assert_eq!(ok.status, HealthStatus::Healthy);
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["checks"]["archive"]["state"], "ok", "{json}");
        assert_eq!(json["checks"]["archive"]["lease"], "held", "{json}");

        let failure = crate::archive::Failure {
            tenant: None,
            message: "the archive target is unreachable".into(),
        };
        board.finish_round(true, &[failure], Timestamp::from_unix_micros(60).unwrap());
        let failing = with_archive(healthy(), Some(board.check()));
        assert_eq!(failing.status, HealthStatus::Degraded);
        let json = serde_json::to_value(&failing).unwrap();
        assert_eq!(
            json["checks"]["archive"]["last_error"],
            "the archive target is unreachable"
        );
        // A violated chain stays failing.
        let violated = assess(
            StoreCheck::ok(),
            None,
            activity(3, None),
            ChainStatus::Violated,
            None,
            Some(vec![]),
            None,
        );
        assert_eq!(
            with_archive(violated, Some(board.check())).status,
            HealthStatus::Failing
        );
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
            // A violated chain is an incident: failing, whatever else holds.
            (
                true,
                3,
                None,
                ChainStatus::Violated,
                None,
                "failing",
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
            let health = assess(
                store,
                None,
                activity(recent, failure),
                chain,
                lag,
                Some(vec![]),
                None,
            );
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
            Some(vec![]),
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
        let health = assess(
            unreachable(),
            None,
            activity(0, failure),
            unchecked,
            None,
            None,
            None,
        );
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
        let health = assess(
            both,
            Some(waiting),
            activity(0, failure),
            unchecked,
            None,
            None,
            None,
        );
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
            Some(vec![]),
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
            Some(vec![]),
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
    fn disk_usage_is_classified_by_the_alert_thresholds() {
        for (ratio, want) in [
            (0.0, DiskStatus::Ok),
            (0.7499, DiskStatus::Ok),
            (0.75, DiskStatus::Warning),
            (0.8499, DiskStatus::Warning),
            (0.85, DiskStatus::Critical),
            (1.0, DiskStatus::Critical),
        ] {
            assert_eq!(DiskCheck::classify(ratio).status, want, "{ratio}");
        }
        let at = |ratio: f64| {
            assess(
                StoreCheck::ok(),
                None,
                activity(1, None),
                ChainStatus::Valid,
                None,
                Some(vec![]),
                Some(DiskCheck::classify(ratio)),
            )
        };
        // A warning is said in the check only; critical makes the service degraded.
        let warning = at(0.8);
        assert_eq!(warning.status, HealthStatus::Healthy);
        let json = serde_json::to_value(&warning).unwrap();
        assert_eq!(json["checks"]["disk"]["status"], "warning", "{json}");
        assert_eq!(json["checks"]["disk"]["used_ratio"], 0.8, "{json}");
        assert_eq!(at(0.9).status, HealthStatus::Degraded);
        // The real file system of a temporary directory measures as a fraction.
        let dir = tempfile::tempdir().unwrap();
        let ratio = disk_usage(dir.path()).expect("a tmp directory can be measured");
        assert!((0.0..=1.0).contains(&ratio), "{ratio}");
        assert_eq!(disk_usage(&dir.path().join("gone")), None);
    }

    #[test]
    fn a_missing_protection_makes_the_service_failing_and_is_named() {
        let health = assess(
            StoreCheck::ok(),
            None,
            activity(1, None),
            ChainStatus::Valid,
            None,
            Some(vec!["trigger entries_no_update on entries".into()]),
            None,
        );
        assert_eq!(health.status, HealthStatus::Failing);
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["checks"]["protections"], "missing");
        assert_eq!(
            json["checks"]["protections_missing"][0],
            "trigger entries_no_update on entries"
        );
        let intact = assess(
            StoreCheck::ok(),
            None,
            activity(1, None),
            ChainStatus::Valid,
            None,
            Some(vec![]),
            None,
        );
        let json = serde_json::to_value(&intact).unwrap();
        assert_eq!(json["checks"]["protections"], "intact");
        assert!(
            json["checks"].get("protections_missing").is_none(),
            "{json}"
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
