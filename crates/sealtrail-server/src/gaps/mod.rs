//! Timelines and gap detection: the runbooks' "look for hours with 0 events" made automatic.
//!
//! - **The follower** ([`GapDetector`]) folds every committed entry into `DIR/gaps.db`
//!   ([`sealtrail_store::gaps`]): per-minute counts by event time and by `received_at`,
//!   per action and `source.app`, per producer, each producer's `source.seq` run and the
//!   ranges proven missing, and sealtrail's own start/stop records. Its cursor is stored with
//!   those effects in one transaction; the file is rebuilt from the log when it is missing or
//!   does not match it.
//! - **Timelines** ([`Gaps::timeline`]) are sums of those per-minute counts, never scans of
//!   events: minute, hour or day buckets, zeros included, at most [`MAX_BUCKETS`] per
//!   request (a month by the minute).
//! - **Findings** ([`Gaps::report`]) apply the rules of [`detect`] to the counters of a
//!   window (at most [`MAX_WINDOW_DAYS`] days; by default the last 24 hours).
//! - **Metrics** ([`metrics`]): every minute, the last 24 hours of every tenant are judged
//!   again to set `sealtrail_gaps_open{tenant,kind}` (findings ongoing or ended within the
//!   last hour) and `sealtrail_producer_silent{tenant}`, and to count each finding once in
//!   `sealtrail_gap_findings_total{tenant,kind}`; the follower counts
//!   `sealtrail_producer_missing_events_total{tenant}` as it proves numbers missing.
//!
//! Heartbeats — events with the reserved action `sealtrail.heartbeat` — are kept out of
//! activity counts and timelines, and count as their producer being alive.

pub mod detect;
pub mod metrics;
pub mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_store::gaps::{ActivityFilter, Basis, GapsDb, GapsError, GapsReader};
use sealtrail_store::{DataDir, EntryRow, Location, Store};

pub use self::detect::{Finding, GapRules, Impact, Kind, Producer};
use self::detect::{MINUTE, TenantData, Window};
pub use self::report::{AuditStdout, IncidentReport};
use crate::clock::Clock;
use crate::follower::{Follow, Follower, FollowerError, FollowerOptions, Watermarks};
use crate::recent::RecentEntries;

pub use sealtrail_store::gaps::HEARTBEAT_ACTION;

/// The most buckets one timeline answers: 31 days by the minute.
pub const MAX_BUCKETS: i64 = 31 * 1440;
/// The longest window one gap report covers.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// The window of a gap report that names no `from`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

const BATCH_ENTRIES: usize = 10_000;

/// How each tenant's gaps are judged: its `[tenants.NAME]` settings, else the defaults.
#[derive(Debug, Clone, Default)]
pub struct GapConfig {
    pub default: GapRules,
    pub tenants: HashMap<String, GapRules>,
}

impl GapConfig {
    pub fn rules(&self, tenant: &str) -> GapRules {
        self.tenants.get(tenant).copied().unwrap_or(self.default)
    }
}

/// Why a timeline or a report was not given.
#[derive(Debug, thiserror::Error)]
pub enum GapsRequestError {
    /// The request is wrong: which parameter, which rule.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        rule: &'static str,
        message: String,
    },
    #[error(transparent)]
    Database(#[from] GapsError),
}

fn invalid(field: &'static str, rule: &'static str, message: String) -> GapsRequestError {
    GapsRequestError::Invalid {
        field,
        rule,
        message,
    }
}

/// A timeline's bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "minute" => Some(Bucket::Minute),
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    fn minutes(self) -> i64 {
        match self {
            Bucket::Minute => 1,
            Bucket::Hour => 60,
            Bucket::Day => 1440,
        }
    }
}

/// What a timeline counts and over which window.
#[derive(Debug, Clone)]
pub struct TimelineRequest {
    pub bucket: Bucket,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Count by `received_at` rather than event time.
    pub received: bool,
    pub filter: ActivityFilter,
}

/// Events per bucket; `from` is the first bucket's start (the request's `from` rounded down
/// to a bucket), `to` the end of the last (rounded up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub tenant: String,
    pub bucket: Bucket,
    pub received: bool,
    pub from: Timestamp,
    pub to: Timestamp,
    /// `(start, count)` per bucket, zeros included.
    pub buckets: Vec<(Timestamp, i64)>,
    pub total: i64,
}

impl Timeline {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant,
            "bucket": self.bucket.as_str(),
            "time": if self.received { "received_at" } else { "occurred_at" },
            "from": self.from.to_rfc3339(),
            "to": self.to.to_rfc3339(),
            "total": self.total,
            "buckets": self.buckets.iter().map(|(start, count)| serde_json::json!({
                "start": start.to_rfc3339(),
                "count": count,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The findings of a window.
#[derive(Debug, Clone)]
pub struct GapReport {
    pub tenant: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub gaps: Vec<Finding>,
}

fn stamp(micros: i64) -> String {
    Timestamp::from_unix_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| micros.to_string())
}

impl GapReport {
    /// The brief's shape, with `confidence`, `ongoing` and `evidence` beside it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant,
            "from": self.from.to_rfc3339(),
            "to": self.to.to_rfc3339(),
            "gaps": self.gaps.iter().map(finding_json).collect::<Vec<_>>(),
        })
    }
}

fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "kind": f.kind.as_str(),
        "start": stamp(f.start),
        "end": stamp(f.end),
        "duration_seconds": f.duration_secs(),
        "producer": f.producer.as_ref().map(|p| serde_json::json!({"app": p.app, "instance": p.instance})),
        "missing": f.missing.as_ref().map(|ranges| ranges.iter().map(|(from, to)| serde_json::json!({"from": from, "to": to})).collect::<Vec<_>>()),
        "impact": f.impact().as_str(),
        "detail": f.detail,
        "confidence": f.confidence,
        "ongoing": f.ongoing,
        "evidence": f.evidence,
    })
}

/// The read side: timelines and reports from `DIR/gaps.db`. Cheap to clone; blocking calls
/// (run them on the blocking pool).
#[derive(Clone)]
pub struct Gaps {
    path: PathBuf,
    config: Arc<GapConfig>,
    clock: Clock,
}

impl Gaps {
    pub fn new(data_dir: &Path, config: GapConfig, clock: Clock) -> Gaps {
        Gaps {
            path: DataDir::new(data_dir).gaps(),
            config: Arc::new(config),
            clock,
        }
    }

    pub fn config(&self) -> &GapConfig {
        &self.config
    }

    /// Events per bucket of `tenant`, from the per-minute counters.
    pub fn timeline(
        &self,
        tenant: &str,
        request: &TimelineRequest,
    ) -> Result<Timeline, GapsRequestError> {
        let size = request.bucket.minutes();
        let (from, to) = (request.from.unix_micros(), request.to.unix_micros());
        if from >= to {
            return Err(invalid(
                "from",
                "range",
                format!(
                    "must be before to ({} is not before {})",
                    request.from, request.to
                ),
            ));
        }
        let first = from.div_euclid(MINUTE).div_euclid(size);
        let last = (to.div_euclid(MINUTE) + i64::from(to.rem_euclid(MINUTE) != 0) + size - 1)
            .div_euclid(size);
        let count = last - first;
        if count > MAX_BUCKETS {
            return Err(invalid(
                "bucket",
                "max_buckets",
                format!(
                    "from..to holds {count} {} buckets, at most {MAX_BUCKETS} are answered at once; use a larger bucket or a shorter range",
                    request.bucket.as_str()
                ),
            ));
        }
        let (lo, hi) = (first * size, last * size);
        let basis = if request.received {
            Basis::Received
        } else {
            Basis::EventTime
        };
        let mut counts = vec![0i64; count as usize];
        if let Some(reader) = GapsReader::open(&self.path)? {
            let minutes: Vec<(i64, i64)> =
                if request.filter.action.is_none() && request.filter.app.is_none() {
                    reader
                        .minutes(tenant, basis, lo, hi)?
                        .into_iter()
                        .map(|m| (m.minute, m.events))
                        .collect()
                } else {
                    reader.filtered_minutes(tenant, basis, lo, hi, &request.filter)?
                };
            for (minute, events) in minutes {
                counts[((minute - lo) / size) as usize] += events;
            }
        }
        let at = |minute: i64| {
            Timestamp::from_unix_micros(minute * MINUTE).expect("within the timestamps' range")
        };
        Ok(Timeline {
            tenant: tenant.to_string(),
            bucket: request.bucket,
            received: request.received,
            from: at(lo),
            to: at(hi),
            total: counts.iter().sum(),
            buckets: counts
                .into_iter()
                .enumerate()
                .map(|(i, c)| (at(lo + i as i64 * size), c))
                .collect(),
        })
    }

    /// The findings of `tenant` in `[from, to)`: `to` defaults to now, `from` to 24 hours
    /// before `to`.
    pub fn report(
        &self,
        tenant: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<GapReport, GapsRequestError> {
        let now = self.clock.now();
        let to = to.unwrap_or(now);
        let from = match from {
            Some(from) => from,
            None => {
                Timestamp::from_unix_micros(to.unix_micros() - DEFAULT_WINDOW.as_micros() as i64)
                    .map_err(|e| invalid("to", "range", e.to_string()))?
            }
        };
        if from >= to {
            return Err(invalid(
                "from",
                "range",
                format!("must be before to ({from} is not before {to})"),
            ));
        }
        if to.unix_micros() - from.unix_micros() > MAX_WINDOW_DAYS * 1440 * MINUTE {
            return Err(invalid(
                "from",
                "max_range",
                format!(
                    "from..to spans more than {MAX_WINDOW_DAYS} days; ask for a shorter window"
                ),
            ));
        }
        let window = Window {
            from: from.unix_micros(),
            to: to.unix_micros(),
            now: now.unix_micros(),
        };
        let gaps = match GapsReader::open(&self.path)? {
            Some(reader) => {
                let data = tenant_data(&reader, tenant, window)?;
                detect::detect(&data, window, &self.config.rules(tenant))
            }
            None => Vec::new(),
        };
        Ok(GapReport {
            tenant: tenant.to_string(),
            from,
            to,
            gaps,
        })
    }

    /// The gap report of `tenant` in `[from, to)`: each finding of [`Gaps::report`] with the
    /// activity expected in it, what sealtrail knows of its cause, what was recovered and
    /// lost (see [`report`]). `audit_stdout` is what the caller knows of `--audit-stdout`.
    pub fn incident_report(
        &self,
        tenant: &str,
        from: Timestamp,
        to: Timestamp,
        audit_stdout: AuditStdout,
    ) -> Result<IncidentReport, GapsRequestError> {
        let findings = self.report(tenant, Some(from), Some(to))?;
        let sections = match GapsReader::open(&self.path)? {
            Some(reader) => report::sections(&reader, tenant, findings.gaps)?,
            None => Vec::new(),
        };
        let previous = self.previous_gaps(tenant, findings.from)?;
        Ok(IncidentReport {
            tenant: tenant.to_string(),
            from: findings.from,
            to: findings.to,
            generated_at: self.clock.now(),
            sections,
            previous,
            audit_stdout,
        })
    }

    /// The gap findings of `tenant` in the [`PREVIOUS_DAYS`] before `before`, by kind: the
    /// HIPAA template's "previous gaps in the last 12 months", where a pattern shows a
    /// systemic issue. Judged window by window (each at most [`MAX_WINDOW_DAYS`] days); a
    /// gap that runs across two windows is found as two findings, one ending where the next
    /// begins, and counted once.
    pub fn previous_gaps(
        &self,
        tenant: &str,
        before: Timestamp,
    ) -> Result<PreviousGaps, GapsRequestError> {
        let to = before.unix_micros();
        let from = to - PREVIOUS_DAYS * 1440 * MINUTE;
        let mut previous = PreviousGaps {
            from: Timestamp::from_unix_micros(from)
                .map_err(|e| invalid("from", "range", e.to_string()))?,
            to: before,
            by_kind: Kind::ALL.iter().map(|k| (k.as_str(), 0)).collect(),
            by_impact: [Impact::Low, Impact::Medium, Impact::High]
                .iter()
                .map(|i| (i.as_str(), 0))
                .collect(),
            without_history: 0,
        };
        let Some(reader) = GapsReader::open(&self.path)? else {
            return Ok(previous);
        };
        let now = self.clock.now().unix_micros();
        let rules = self.config.rules(tenant);
        let step = (MAX_WINDOW_DAYS - 1) * 1440 * MINUTE;
        let mut ended_at_boundary: Vec<(Kind, Option<Producer>)> = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + step).min(to);
            let window = Window {
                from: start,
                to: end,
                now,
            };
            let data = tenant_data(&reader, tenant, window)?;
            let findings = detect::detect(&data, window, &rules);
            for finding in &findings {
                let continued = finding.start <= start
                    && ended_at_boundary.iter().any(|(kind, producer)| {
                        *kind == finding.kind && *producer == finding.producer
                    });
                if !continued {
                    *previous.by_kind.entry(finding.kind.as_str()).or_default() += 1;
                    *previous
                        .by_impact
                        .entry(finding.impact().as_str())
                        .or_default() += 1;
                    if finding.evidence["history_days"] == 0 {
                        previous.without_history += 1;
                    }
                }
            }
            ended_at_boundary = findings
                .into_iter()
                .filter(|f| f.end >= end)
                .map(|f| (f.kind, f.producer))
                .collect();
            start = end;
        }
        Ok(previous)
    }
}

/// How far back [`Gaps::previous_gaps`] looks: 12 months.
pub const PREVIOUS_DAYS: i64 = 365;

/// The gap findings of the 12 months before a report's window, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousGaps {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Every kind, with 0 where none was found.
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Every impact class (`low`, `medium`, `high`), with 0 where none was found.
    pub by_impact: std::collections::BTreeMap<&'static str, u64>,
    /// Time gaps judged with no earlier day to learn from (the tenant's first day): any
    /// silence over the threshold counts there, a quiet night included.
    pub without_history: u64,
}

impl PreviousGaps {
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// What the rules read for `tenant` and `window`.
fn tenant_data(reader: &GapsReader, tenant: &str, window: Window) -> Result<TenantData, GapsError> {
    let lo = window.from.div_euclid(MINUTE);
    let hi = window.to.min(window.now).div_euclid(MINUTE);
    Ok(TenantData {
        minutes: reader.minutes(
            tenant,
            Basis::EventTime,
            TenantData::history_start(lo),
            hi.max(lo),
        )?,
        first_minute: reader.first_minute(tenant)?,
        producers: reader.producer_activity(tenant, hi)?,
        missing: reader.missing(tenant, window.from, window.to)?,
        sequences: reader.producers(tenant)?,
        lifecycle: reader.lifecycle(
            crate::tenant::SYSTEM_TENANT,
            window.from - detect::HISTORY_DAYS * 1440 * MINUTE,
            window.to,
        )?,
    })
}

/// The gap database as a follower of the log.
struct GapsFollower {
    db: GapsDb,
}

impl Follow for GapsFollower {
    type Error = GapsError;

    fn name(&self) -> &str {
        "gaps"
    }

    fn cursors(&self) -> HashMap<String, u64> {
        self.db.cursors().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot read the gap database's cursors; starting from the log's beginning");
            HashMap::new()
        })
    }

    fn apply(
        &mut self,
        log: &dyn Store,
        tenant: &str,
        entries: &[(u64, EntryRow)],
    ) -> Result<u64, GapsError> {
        let applied = self.db.apply(tenant, entries, log)?;
        metrics::missing_found(tenant, applied.missing_found, applied.ranges_found);
        Ok(applied.next_seq)
    }
}

/// The running gap detector's follower; [`GapDetector::stop`] ends it.
pub struct GapDetector {
    follower: Follower,
}

impl GapDetector {
    /// Opens `DIR/gaps.db` (rebuilding it when it cannot be trusted) and starts following
    /// the log.
    /// With the writer's latest entries (`recent`), batches that start within them are taken
    /// from memory.
    pub fn start(
        data_dir: &Path,
        log: &Location,
        recent: Option<RecentEntries>,
    ) -> Result<GapDetector, FollowerError> {
        let log = log.open_reader()?;
        let db = GapsDb::open(&DataDir::new(data_dir).gaps(), log.as_ref())
            .map_err(|e| FollowerError::State(Box::new(e)))?;
        let options = FollowerOptions {
            batch: BATCH_ENTRIES,
            poll_interval: Duration::from_millis(200),
            round_pace: Duration::from_millis(500),
            appended: None,
            recent,
            clock: Clock::system(),
        };
        let follower = Follower::start(GapsFollower { db }, log, options)?;
        Ok(GapDetector { follower })
    }

    /// How far the detector has counted, per tenant.
    pub fn watermarks(&self) -> Watermarks {
        self.follower.watermarks()
    }

    pub fn stop(self) {
        self.follower.stop();
    }
}

/// Brings `DIR/gaps.db` up to date with the log in this process (the command line's way to
/// answer while no server runs, or ahead of it): the same folding as the follower, from the
/// stored cursors, safe beside a running server's follower (see `sealtrail_store::gaps`).
pub fn catch_up(data_dir: &Path, log: &Location) -> Result<(), CatchUpError> {
    let log = log.open_reader()?;
    DataDir::new(data_dir)
        .create()
        .map_err(|e| CatchUpError::DataDir(data_dir.to_path_buf(), e))?;
    let mut db = GapsDb::open(&DataDir::new(data_dir).gaps(), log.as_ref())?;
    for tenant in log.tenants()? {
        let mut cursor = db.cursors()?.get(&tenant.name).copied().unwrap_or(0);
        loop {
            let entries = log.entries(&tenant.name, cursor, u64::MAX, BATCH_ENTRIES)?;
            if entries.is_empty() {
                break;
            }
            let next = db.apply(&tenant.name, &entries, log.as_ref())?.next_seq;
            if next <= cursor {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// Why [`catch_up`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Store(#[from] sealtrail_store::StoreError),
    #[error(transparent)]
    Gaps(#[from] GapsError),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
}

#[cfg(test)]
mod tests {
    use sealtrail_core::event::Event;

    use super::*;
    use crate::ledger::Submission;

    fn numbered(seq: u64, occurred_at: &str) -> Submission {
        let json = format!(
            r#"{{"action":"billing.claim.submit","outcome":"success","actor":{{"id":"w"}},"occurred_at":"{occurred_at}","source":{{"app":"billing","seq":{seq}}}}}"#
        );
        Submission {
            event: Event::parse(json.as_bytes()).unwrap(),
            idempotency_key: None,
        }
    }

    /// A backfill of events that occurred days ago still reveals its sequence gap as a new
    /// finding (what `sealtrail_gap_findings_total` counts), and a late number that splits the
    /// missing range is not a second one.
    #[tokio::test]
    async fn a_sequence_gap_in_old_events_is_a_new_finding_when_it_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let old = "2026-11-01T10:00:00Z";
        let batch = |seqs: &[u64]| seqs.iter().map(|&n| numbered(n, old)).collect::<Vec<_>>();
        ledger.append("acme", batch(&[0, 1, 2, 10])).await.unwrap();
        ledger.append("acme", batch(&[5])).await.unwrap();

        let log = Location::new(dir.path(), None).open_reader().unwrap();
        let mut db = GapsDb::open(&DataDir::new(dir.path()).gaps(), log.as_ref()).unwrap();
        let first = log.entries("acme", 0, 4, 100).unwrap();
        let applied = db.apply("acme", &first, log.as_ref()).unwrap();
        assert_eq!((applied.missing_found, applied.ranges_found), (7, 1));
        let late = log.entries("acme", 4, 5, 100).unwrap();
        let applied = db.apply("acme", &late, log.as_ref()).unwrap();
        assert_eq!((applied.missing_found, applied.ranges_found), (0, 0));
        // The follower hands both figures to the metrics (`metrics::missing_found`).
        assert_eq!(db.cursors().unwrap()["acme"], 5);
        ledger.shutdown();
    }
}
