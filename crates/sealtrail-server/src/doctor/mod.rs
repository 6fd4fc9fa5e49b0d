//! `sealtrail doctor`: the operational runbooks' triage as one list of checks, each `ok`,
//! `warn` or `fail` with a one-line detail and the one command (or step) that remedies it.
//!
//! Two ways in:
//!
//! - [`run_local`], against a store the caller can open (a data directory or a PostgreSQL
//!   URL): every check below. The checks that need the store are skipped when it cannot be
//!   opened, and the `store` check says so; the rest still run, so the table is always
//!   printed.
//! - [`remote::assess`], against a running server, from what it publishes (`GET /health` and
//!   `GET /metrics`): fewer checks — see that module for what it can and cannot tell.
//!
//! | check | fails or warns when |
//! | --- | --- |
//! | `store` | the store cannot be opened for reading (fail) |
//! | `schema` | the store's integrity check finds damage — SQLite's `integrity_check`; on PostgreSQL a table, key, unique constraint or index missing or invalid in the catalog, or a b-tree `amcheck` finds damaged where that extension is installed (fail); its schema is older than this build's (warn) |
//! | `protections` | an append-only trigger is missing or disabled (fail) |
//! | `permissions` | a database or key file is readable by other users, or a key file is not 0600 (fail); the data directory or a database is otherwise open to others (warn) |
//! | `disk` | the data directory's file system is 75 % full (warn) or 85 % (fail) |
//! | `checkpoints` | a log has grown past its latest checkpoint for more than [`CHECKPOINT_STALE_SECS`], or has none (warn) |
//! | `clock` | the latest checkpoint of a log is dated in the future (fail: the clock went back); PostgreSQL's clock differs from this machine's by more than [`CLOCK_SKEW_WARN_SECS`] (warn) or [`CLOCK_SKEW_FAIL_SECS`] (fail) |
//! | `keys` | a log's key file is missing or unreadable, or differs from the verifier key the store recorded (fail) |
//! | `index` | the query index trails a log by more than [`INDEX_LAG_WARN_ENTRIES`] entries (warn) |
//! | `gaps` | a tenant's log has a gap finding open (ongoing, or ended within the last hour) in the last 24 hours, judged with the default rules (warn) |
//! | `seals` | a log created before today has no seal of yesterday (UTC), ten minutes after midnight (warn) |
//! | `archive` | only with an archive target (`--archive-to`): the target cannot be opened or does not answer (fail); it does not keep objects immutable (S3 Object Lock) and `--archive-allow-unlocked` is not given (fail); a log's archive cannot be read with the log's key (fail); the oldest signed entry not archived has waited longer than three archive intervals, and at least five minutes (warn) |
//! | `spool` | events wait in the local spool (warn), the oldest for more than [`SPOOL_AGE_FAIL_SECS`] (fail) |
//! | `write_probe` | appending `sealtrail.doctor.probe` to the `_system` log through the write path, reading it back and checking it against its receipt and stored hash fails (fail) |
//! | `chain` | verification of each log's latest [`RECENT_ENTRIES`] entries finds a violation, or the running server's background verifier recorded one in `DIR/verification.json` (fail); the detail says when that verifier last ran |
//!
//! The write probe is a real, audited event in `_system` (never a row in a tenant's log),
//! appended through [`crate::ledger::Ledger`] exactly as `sealtrail tokens create` appends its
//! admin events: safe while a server runs, because both writers take the store's append lock
//! and the server's writer reloads a tail another process extended. It runs after the
//! checkpoint and index checks (which it would otherwise disturb: the ledger signs the logs it
//! finds unsigned when it stops) and before the chain check, which then covers it.
//!
//! The `gaps` check brings `DIR/gaps.db` up to date with the log first, as `sealtrail gaps
//! list` does, and judges with the rules the server's settings give (each tenant's
//! `[tenants.NAME]` thresholds, from `--config FILE`).

mod archive;
mod checks;
pub mod remote;
mod seals;

use std::path::PathBuf;

use sealtrail_core::Timestamp;
use sealtrail_store::{Location, Store};
use serde::Serialize;

use crate::ledger::LedgerConfig;

/// Disk usage at which the `disk` check warns, in percent: health's warning threshold.
pub const DISK_WARN_PERCENT: f64 = crate::health::DISK_WARNING * 100.0;
/// Disk usage at which the `disk` check fails, in percent: health's critical threshold.
pub const DISK_FAIL_PERCENT: f64 = crate::health::DISK_CRITICAL * 100.0;
/// A log whose latest checkpoint is smaller than the log and older than this is flagged.
pub const CHECKPOINT_STALE_SECS: i64 = 5 * 60;
/// Clock difference with the database that warns, in seconds.
pub const CLOCK_SKEW_WARN_SECS: f64 = 5.0;
/// Clock difference with the database that fails, in seconds.
pub const CLOCK_SKEW_FAIL_SECS: f64 = 60.0;
/// A checkpoint dated this far ahead of this machine's clock means the clock went back.
pub const FUTURE_CHECKPOINT_TOLERANCE_SECS: i64 = 5;
/// Entries the query index may trail a log by before the `index` check warns.
pub const INDEX_LAG_WARN_ENTRIES: u64 = 10_000;
/// Age of the oldest spooled event at which the `spool` check fails, in seconds.
pub const SPOOL_AGE_FAIL_SECS: f64 = 15.0 * 60.0;
/// Each log's latest entries that the `chain` check verifies afresh.
pub const RECENT_ENTRIES: u64 = crate::verify::RECENT_WINDOW;
/// The action of the write probe's `_system` event.
pub const PROBE_ACTION: &str = "sealtrail.doctor.probe";

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One row of the table: `{"name", "status", "detail", "remedy"}`. `remedy` is empty when
/// the check is `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub remedy: String,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            remedy: String::new(),
        }
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, remedy: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, remedy: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }
}

/// The whole diagnosis: `{"status", "checks"}`, the status being the worst of the checks'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub status: Status,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    pub fn new(checks: Vec<Check>) -> Diagnosis {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
        Diagnosis { status, checks }
    }
}

/// What [`run_local`] diagnoses.
#[derive(Debug, Clone)]
pub struct LocalRequest {
    /// The write path's configuration, as `serve` would resolve it: the store, the data
    /// directory (keys, spool, index, and the embedded store) and the signing key.
    pub ledger: LedgerConfig,
    /// Who runs the probe, as its `_system` event's actor (`cli:<user>`).
    pub actor: String,
    /// How the store is named in remedies: `--data DIR` or `--database-url URL`.
    pub store_args: String,
    /// The archive target to check, when one is configured.
    pub archive: Option<ArchiveRequest>,
    /// The gap rules, as `serve` resolves them (each tenant's `[tenants.NAME]` thresholds).
    pub gaps: crate::gaps::GapConfig,
}

/// The archive target `doctor` checks: the archive settings as `serve` resolves them, and how
/// the binary opens targets (see `crate::archive::TargetOpener`).
#[derive(Clone)]
pub struct ArchiveRequest {
    pub settings: crate::config::ArchiveSettings,
    pub opener: crate::archive::TargetOpener,
}

impl std::fmt::Debug for ArchiveRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveRequest")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Runs every local check, in the order of the module's table.
pub fn run_local(request: &LocalRequest) -> Diagnosis {
    let now = crate::clock::Clock::system().now();
    let location = &request.ledger.store;
    let data_dir = &request.ledger.data_dir;
    let mut out = Vec::new();
    let store = checks::open_store(location, request);
    match &store {
        Ok(_) => out.push(Check::ok(
            "store",
            format!("{} store {location} is reachable", location.kind()),
        )),
        Err(check) => out.push(check.clone()),
    }
    let conn: Option<&dyn Store> = store.as_ref().ok().map(|s| s.as_ref());
    if let Some(conn) = conn {
        out.push(checks::schema(conn, request));
        out.push(checks::protections(conn, location, request));
    }
    out.push(checks::permissions(data_dir, location));
    out.push(checks::disk(data_dir));
    if let Some(conn) = conn {
        out.push(checks::checkpoints(conn, now));
        out.push(checks::clock(conn, now));
        out.push(checks::keys(conn, data_dir));
        out.push(checks::index(conn, data_dir, request));
        out.push(checks::gaps(conn, location, data_dir, request, now));
        out.push(seals::check(conn, request, now));
    }
    if let (Some(conn), Some(archive)) = (conn, &request.archive) {
        out.push(archive::check(conn, data_dir, archive, now));
    }
    out.push(checks::spool(location, data_dir, now));
    if let Some(conn) = conn {
        // The probe's own writer must not wait behind this reader's snapshot.
        out.push(checks::write_probe(conn, request));
        out.push(checks::chain(conn, data_dir, request));
    }
    Diagnosis::new(out)
}

/// The shown path of the data directory, for remedies.
fn shown(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Seconds from `earlier` to `later`.
fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.unix_micros() - earlier.unix_micros()) as f64 / 1e6
}

/// How a location is named on the command line.
pub fn store_args(location: &Location, data_dir: &std::path::Path) -> String {
    match location {
        Location::Embedded { .. } => format!("--data {}", shown(data_dir)),
        Location::Postgres { url } => {
            format!(
                "--database-url {}",
                sealtrail_store::postgres::redact_url(url)
            )
        }
    }
}

/// The data directory, made absolute for messages.
pub fn data_dir_shown(data_dir: &std::path::Path) -> PathBuf {
    std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::checks::classify_disk;
    use super::{Status, remote};

    #[test]
    fn disk_usage_is_classified_at_75_and_85_percent() {
        // 1,000 bytes, no root reserve: used = total - free.
        let at = |free: u64| classify_disk("/d", 1000, free, free).status;
        assert_eq!(at(260), Status::Ok); // 74 %
        assert_eq!(at(250), Status::Warn); // 75 %
        assert_eq!(at(151), Status::Warn); // 84.9 %
        assert_eq!(at(150), Status::Fail); // 85 %
        assert_eq!(at(0), Status::Fail);
        // The root reserve counts as used: 100 free, none of it available, is full.
        let reserved = classify_disk("/d", 1000, 0, 100);
        assert_eq!(reserved.status, Status::Fail);
        assert!(reserved.detail.starts_with("100 % used"), "{reserved:?}");
        assert!(reserved.remedy.contains("df -h /d"));
    }

    #[test]
    fn a_server_that_does_not_answer_is_one_failing_check() {
        let diagnosis = remote::assess(
            "http://127.0.0.1:1",
            Err("connection refused".into()),
            Err("connection refused".into()),
        );
        assert_eq!(diagnosis.status, Status::Fail);
        assert_eq!(diagnosis.checks.len(), 1);
        assert!(diagnosis.checks[0].remedy.contains("sealtrail serve"));
    }

    #[test]
    fn an_old_checkpoint_warns_only_when_the_log_grew_past_it() {
        let check = |metrics: &str| remote::checkpoint_ages(metrics);
        // A quiet log: its checkpoint is 15 minutes old and covers every entry.
        let quiet = check(
            "sealtrail_checkpoint_age_seconds{tenant=\"acme\"} 900.0\n\
             sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"} 0\n\
             sealtrail_checkpoint_age_seconds{tenant=\"_system\"} 2.0\n\
             sealtrail_checkpoint_unsigned_entries{tenant=\"_system\"} 0\n",
        );
        assert_eq!(quiet.status, Status::Ok, "{quiet:?}");
        assert!(quiet.detail.starts_with("2 logs"), "{quiet:?}");
        // A growing one: entries beyond an old checkpoint.
        let growing = check(
            "sealtrail_checkpoint_age_seconds{tenant=\"acme\"} 900.0\n\
             sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"} 3\n",
        );
        assert_eq!(growing.status, Status::Warn, "{growing:?}");
        assert!(
            growing
                .detail
                .contains("acme: 3 entries beyond a checkpoint 900 s old"),
            "{growing:?}"
        );
        // Entries beyond a recent checkpoint are about to be signed.
        let recent = check(
            "sealtrail_checkpoint_age_seconds{tenant=\"acme\"} 20.0\n\
             sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"} 3\n",
        );
        assert_eq!(recent.status, Status::Ok, "{recent:?}");
        // Entries and no checkpoint at all, as the local check says.
        let never = check("sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"} 4\n");
        assert_eq!(never.status, Status::Warn, "{never:?}");
        assert!(
            never.detail.contains("acme: 4 entries and no checkpoint"),
            "{never:?}"
        );
    }

    #[test]
    fn a_failing_archive_in_the_health_answer_is_reported() {
        let health = serde_json::json!({"status": "degraded", "checks": {
            "store": "ok", "audit": "idle", "audit_log_count_5m": 0, "chain": "valid",
            "spool": {"depth": 0, "oldest_age_seconds": null},
            "archive": {"target": "s3://audit/x", "state": "failing", "lease": "held",
                "immutable": false, "lag_entries": 12, "lag_seconds": 30.0,
                "last_success": null, "last_error": "Object Lock is not enabled on bucket audit",
                "last_error_at": "2026-12-01T00:00:00Z"}}});
        let diagnosis = remote::assess("http://h", Ok(health.clone()), Ok(String::new()));
        let archive = diagnosis
            .checks
            .iter()
            .find(|c| c.name == "archive")
            .unwrap();
        assert_eq!(archive.status, Status::Fail);
        assert!(
            archive.detail.contains("Object Lock is not enabled"),
            "{archive:?}"
        );
        // No archive section: no archive row.
        let mut without = health;
        without["checks"].as_object_mut().unwrap().remove("archive");
        let diagnosis = remote::assess("http://h", Ok(without), Ok(String::new()));
        assert!(diagnosis.checks.iter().all(|c| c.name != "archive"));
    }

    #[test]
    fn a_failing_health_answer_and_old_checkpoints_are_reported() {
        let health = serde_json::json!({"status": "degraded", "checks": {
            "store": "ok", "audit": "active", "audit_log_count_5m": 3, "chain": "violated",
            "spool": {"depth": 2, "oldest_age_seconds": 12.0}, "index_lag_seconds": 0.5}});
        let metrics = "sealtrail_checkpoint_age_seconds{tenant=\"acme\"} 900.0\n\
                       sealtrail_checkpoint_age_seconds{tenant=\"_system\"} 3.0\n";
        let diagnosis = remote::assess("http://h", Ok(health), Ok(metrics.into()));
        let status = |name: &str| {
            diagnosis
                .checks
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.status)
        };
        assert_eq!(status("store"), Some(Status::Ok));
        assert_eq!(status("chain"), Some(Status::Fail));
        assert_eq!(status("spool"), Some(Status::Warn));
        assert_eq!(status("checkpoints"), Some(Status::Warn));
        assert_eq!(status("index"), Some(Status::Ok));
        assert_eq!(diagnosis.status, Status::Fail);
    }

    #[test]
    fn a_degraded_server_is_not_a_table_of_oks() {
        // Degraded by an open gap and a nearly full disk: the server row warns, and the rows
        // that say why are there.
        let health = serde_json::json!({"status": "degraded", "checks": {
            "store": "ok", "audit": "active", "audit_log_count_5m": 3, "chain": "valid",
            "protections": "intact", "disk": {"used_ratio": 0.8, "status": "warning"},
            "spool": {"depth": 0, "oldest_age_seconds": null}, "gaps_open": 2}});
        let diagnosis = remote::assess("http://h", Ok(health), Ok(String::new()));
        let row = |name: &str| diagnosis.checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(row("server").status, Status::Warn);
        assert_eq!(row("gaps").status, Status::Warn);
        assert!(
            row("gaps").detail.starts_with("2 gap findings open"),
            "{:?}",
            row("gaps")
        );
        assert_eq!(row("disk").status, Status::Warn);
        assert!(
            row("disk").detail.contains("80 % used"),
            "{:?}",
            row("disk")
        );
        assert_eq!(row("protections").status, Status::Ok);
        assert_eq!(diagnosis.status, Status::Warn);

        // A dropped trigger and a full disk: the server is failing, and so are those rows.
        let health = serde_json::json!({"status": "failing", "checks": {
            "store": "ok", "audit": "active", "audit_log_count_5m": 3, "chain": "valid",
            "protections": "missing", "protections_missing": ["entries_no_delete"],
            "disk": {"used_ratio": 0.9, "status": "critical"},
            "spool": {"depth": 0, "oldest_age_seconds": null}, "gaps_open": 0}});
        let diagnosis = remote::assess("http://h", Ok(health), Ok(String::new()));
        let row = |name: &str| diagnosis.checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(row("server").status, Status::Fail);
        assert_eq!(row("protections").status, Status::Fail);
        assert!(row("protections").detail.contains("entries_no_delete"));
        assert_eq!(row("disk").status, Status::Fail);
        assert_eq!(row("gaps").status, Status::Ok);
    }
}
