//! Reports over a tenant's log (`sealtrail report NAME`, `GET /v1/reports/{name}`), each in
//! JSON, CSV or Markdown:
//!
//! - `daily-activity` ([`daily`]): events per UTC day by action, activity, outcome and actor
//!   type;
//! - `security-incidents` ([`incidents`]): the alerts the monitor raised
//!   (`sealtrail.alert.raised` entries in the tenant's own log) and the events behind each;
//! - `record-access` and `user-activity` ([`access`]): every event naming one record among
//!   its targets, or done by one actor: who, when, from where, what, with what outcome;
//! - `disclosures` ([`disclosures`]): the HIPAA accounting of disclosures of one subject
//!   (45 CFR 164.528), six years back by default, with the excluded disclosures counted apart;
//! - `completeness` ([`completeness`]): events per hour and producer, zeros included, with the
//!   gap detector's findings of the window.
//!
//! ## The guarantee
//!
//! Every report is computed against the tenant's latest signed checkpoint and says which
//! (`checkpoint`: origin, size, root and the signed note). Before answering, the entries
//! `[0, size)` are verified by the core's verifier against the stored tree and every signed
//! checkpoint up to that size ([`prefix::verify`], over [`crate::verify::verify_tenant`]); a
//! violation refuses the report with [`ReportError::Unverified`], naming the first broken seq
//! — never a silent answer over damaged data. Only entries below the checkpoint's size are
//! read, in the same read snapshot as the verification, by a streamed scan ([`prefix`]).
//! Entries retention pruned are not covered, and the report says so (`coverage`).
//!
//! ## Windows and bounds
//!
//! `from`/`to` select events by event time (`occurred_at`, else `received_at`), `from`
//! inclusive and `to` exclusive. `to` defaults to now, `from` to 24 hours before `to` (six
//! years for `disclosures`); `completeness` covers at most [`crate::gaps::MAX_WINDOW_DAYS`]
//! days. Aggregates keep one counter per row; listings keep at most [`MAX_ROWS`] rows, and
//! any report that has more says `truncated: true` with `total_rows`.

pub mod access;
pub mod completeness;
pub mod daily;
pub mod disclosures;
pub mod entry;
pub mod incidents;
pub mod prefix;
pub mod render;
pub mod window;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_store::{Store, StoreError, StoredCheckpoint};
use serde_json::{Map, Value, json};

pub use self::prefix::{CheckpointRef, Coverage};
pub use self::window::Window;
use crate::follower::Watermarks;
use crate::gaps::{Gaps, GapsRequestError};
use crate::readers::{ReadFailure, Readers};
use crate::verify::VerificationError;

/// The most rows a report lists; beyond it `truncated` is true and `total_rows` says how
/// many there were.
pub const MAX_ROWS: usize = 10_000;

/// How long a completeness report waits for the gap detector to count up to the checkpoint.
pub const GAPS_WAIT: Duration = Duration::from_secs(5);

/// The reports there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportName {
    DailyActivity,
    SecurityIncidents,
    RecordAccess,
    Disclosures,
    UserActivity,
    Completeness,
}

impl ReportName {
    pub const ALL: [ReportName; 6] = [
        ReportName::DailyActivity,
        ReportName::SecurityIncidents,
        ReportName::RecordAccess,
        ReportName::Disclosures,
        ReportName::UserActivity,
        ReportName::Completeness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::DailyActivity => "daily-activity",
            ReportName::SecurityIncidents => "security-incidents",
            ReportName::RecordAccess => "record-access",
            ReportName::Disclosures => "disclosures",
            ReportName::UserActivity => "user-activity",
            ReportName::Completeness => "completeness",
        }
    }

    pub fn parse(text: &str) -> Option<ReportName> {
        ReportName::ALL.into_iter().find(|n| n.as_str() == text)
    }

    /// The parameters this report takes beyond `from`, `to` and `format`, each required.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            ReportName::RecordAccess => &["target_type", "target_id"],
            ReportName::Disclosures => &["subject"],
            ReportName::UserActivity => &["actor"],
            _ => &[],
        }
    }

    /// The columns of the report's table (CSV and Markdown), in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            ReportName::DailyActivity => daily::COLUMNS,
            ReportName::SecurityIncidents => incidents::COLUMNS,
            ReportName::RecordAccess => access::RECORD_COLUMNS,
            ReportName::UserActivity => access::USER_COLUMNS,
            ReportName::Disclosures => disclosures::COLUMNS,
            ReportName::Completeness => completeness::COLUMNS,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ReportName::DailyActivity => "Daily activity",
            ReportName::SecurityIncidents => "Security incidents",
            ReportName::RecordAccess => "Record access",
            ReportName::Disclosures => "Accounting of disclosures (45 CFR 164.528)",
            ReportName::UserActivity => "User activity",
            ReportName::Completeness => "Data completeness",
        }
    }
}

/// What a report is asked for, before its window is settled.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub name: ReportName,
    pub tenant: String,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub subject: Option<String>,
    pub actor: Option<String>,
}

impl ReportRequest {
    pub fn new(name: ReportName, tenant: &str) -> ReportRequest {
        ReportRequest {
            name,
            tenant: tenant.to_string(),
            from: None,
            to: None,
            target_type: None,
            target_id: None,
            subject: None,
            actor: None,
        }
    }

    /// The report's own parameters as given, by name.
    fn parameter(&self, name: &str) -> Option<&str> {
        match name {
            "target_type" => self.target_type.as_deref(),
            "target_id" => self.target_id.as_deref(),
            "subject" => self.subject.as_deref(),
            "actor" => self.actor.as_deref(),
            _ => None,
        }
    }

    /// Checks the parameters against the report's rules and settles the window at `now`.
    pub fn window(&self, now: Timestamp) -> Result<Window, ReportError> {
        for name in ["target_type", "target_id", "subject", "actor"] {
            let given = self.parameter(name);
            let takes = self.name.parameters().contains(&name);
            match given {
                Some(_) if !takes => {
                    return Err(ReportError::invalid(
                        name,
                        "unknown_parameter",
                        format!(
                            "{name}: is not a parameter of the {} report",
                            self.name.as_str()
                        ),
                    ));
                }
                None if takes => {
                    return Err(ReportError::invalid(
                        name,
                        "required",
                        format!(
                            "{name}: is required by the {} report (it takes {})",
                            self.name.as_str(),
                            self.name.parameters().join(" and ")
                        ),
                    ));
                }
                Some(value) if value.is_empty() || value.chars().count() > 256 => {
                    return Err(ReportError::invalid(
                        name,
                        "length",
                        format!("{name}: must be 1 to 256 characters"),
                    ));
                }
                _ => {}
            }
        }
        window::settle(self.name, self.from, self.to, now)
    }
}

/// Why a report was not given.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter breaks a rule: which one, which rule.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        rule: &'static str,
        message: String,
    },
    #[error("no tenant {0:?} in this store")]
    UnknownTenant(String),
    /// Nothing is signed yet, so there is no verified prefix to report on.
    #[error(
        "the log of tenant {0:?} has no signed checkpoint yet, so there is no verified prefix to report on; one is signed within a second of the first event"
    )]
    NoCheckpoint(String),
    #[error("the stored checkpoint cannot be read: {0}")]
    Checkpoint(String),
    /// The prefix failed verification: the report refuses rather than answer over damage.
    #[error(
        "refused: the log's first {size} entries (the signed checkpoint this report would cover) do not verify: {violation_count} violation(s){}{}; run `sealtrail verify --tenant` for the full report",
        .first_broken_seq.map(|s| format!(", the first at seq {s}")).unwrap_or_default(),
        .first.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()
    )]
    Unverified {
        first_broken_seq: Option<u64>,
        violation_count: u64,
        first: Option<String>,
        size: u64,
    },
    /// An entry of the verified prefix is not an event sealtrail wrote.
    #[error("entry {seq} is not a sealtrail event entry; run `sealtrail verify`")]
    CorruptEntry { seq: u64 },
    #[error(transparent)]
    Verification(#[from] VerificationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gaps(#[from] GapsRequestError),
    /// The reader pool failed.
    #[error("{0}")]
    Pool(String),
}

impl ReportError {
    pub fn invalid(field: &'static str, rule: &'static str, message: String) -> ReportError {
        ReportError::Invalid {
            field,
            rule,
            message,
        }
    }
}

impl ReadFailure for ReportError {
    fn pool_failure(message: String) -> Self {
        ReportError::Pool(message)
    }

    fn may_break_connection(&self) -> bool {
        matches!(
            self,
            ReportError::Store(_) | ReportError::Pool(_) | ReportError::Verification(_)
        )
    }
}

/// What a report's collector hands back: its rows, and anything it says beside them.
#[derive(Debug, Default)]
pub struct Rows {
    pub rows: Vec<Value>,
    /// How many rows the report has in all (more than `rows.len()` when a listing is
    /// truncated).
    pub total: u64,
    /// Rows were left out to stay within [`MAX_ROWS`].
    pub truncated: bool,
    /// Fields beside `rows`, at the top level of the JSON (e.g. `excluded`, `gaps`).
    pub extra: Map<String, Value>,
}

impl Rows {
    /// A listing: rows kept up to [`MAX_ROWS`], every one counted.
    pub fn push(&mut self, row: Value) {
        self.total += 1;
        if self.rows.len() < MAX_ROWS {
            self.rows.push(row);
        } else {
            self.truncated = true;
        }
    }
}

/// A computed report.
#[derive(Debug)]
pub struct Report {
    pub name: ReportName,
    pub tenant: String,
    pub window: Window,
    pub generated_at: Timestamp,
    pub checkpoint: CheckpointRef,
    pub coverage: Coverage,
    /// The report's own parameters, by name.
    pub parameters: Map<String, Value>,
    pub rows: Rows,
}

impl Report {
    pub fn truncated(&self) -> bool {
        self.rows.truncated
    }

    /// `{"report", "tenant", "from", "to", "checkpoint": {"origin", "size", "root", "note"},
    /// "rows": […]}` with `generated_at`, `parameters`, `coverage`, `truncated`, `total_rows`
    /// and the report's own fields beside them.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "report": self.name.as_str(),
            "tenant": self.tenant,
            "from": self.window.from.to_rfc3339(),
            "to": self.window.to.to_rfc3339(),
            "generated_at": self.generated_at.to_rfc3339(),
            "checkpoint": self.checkpoint,
            "coverage": self.coverage,
            "parameters": self.parameters,
            "truncated": self.truncated(),
            "total_rows": self.rows.total,
            "rows": self.rows.rows,
        });
        if let Value::Object(map) = &mut out {
            for (key, value) in &self.rows.extra {
                map.insert(key.clone(), value.clone());
            }
        }
        out
    }
}

/// The gap findings a completeness report lists, found before the prefix is read.
#[derive(Debug, Clone)]
pub struct GapFindings {
    /// The findings, as `GET /v1/gaps` shows them.
    pub gaps: Vec<Value>,
    /// How many of the log's entries the detector had counted (at least the checkpoint's
    /// size, unless it lagged).
    pub counted_through: u64,
}

/// Computes the report `request` over `window` against `checkpoint` (a signed checkpoint of
/// the tenant's log), on `conn`, in one read snapshot: verification first, then the scan.
pub fn compute(
    conn: &dyn Store,
    data_dir: &Path,
    request: &ReportRequest,
    window: Window,
    checkpoint: &StoredCheckpoint,
    gaps: Option<GapFindings>,
    now: Timestamp,
) -> Result<Report, ReportError> {
    sealtrail_store::in_snapshot(conn, || {
        if conn.tenant(&request.tenant)?.is_none() {
            return Err(ReportError::UnknownTenant(request.tenant.clone()));
        }
        let checkpoint = CheckpointRef::of(checkpoint)?;
        let coverage = prefix::verify(conn, data_dir, &request.tenant, &checkpoint)?;
        let (from, to) = (window.from.to_rfc3339(), window.to.to_rfc3339());
        let scan = |visit: &mut dyn FnMut(&entry::EntryView)| {
            prefix::scan(
                conn,
                &request.tenant,
                coverage.first_seq,
                checkpoint.size,
                &from,
                &to,
                visit,
            )
        };
        let rows = match request.name {
            ReportName::DailyActivity => {
                let mut daily = daily::Daily::default();
                scan(&mut |e| daily.visit(e))?;
                daily.finish()
            }
            ReportName::SecurityIncidents => {
                let mut alerts = incidents::Incidents::default();
                scan(&mut |e| alerts.visit(e))?;
                alerts.finish(conn, &request.tenant, &coverage, checkpoint.size)?
            }
            ReportName::RecordAccess => {
                let mut access = access::Access::record(
                    request.target_type.clone().unwrap_or_default(),
                    request.target_id.clone().unwrap_or_default(),
                );
                scan(&mut |e| access.visit(e))?;
                access.finish()
            }
            ReportName::UserActivity => {
                let mut access = access::Access::user(request.actor.clone().unwrap_or_default());
                scan(&mut |e| access.visit(e))?;
                access.finish()
            }
            ReportName::Disclosures => {
                let mut found =
                    disclosures::Disclosures::new(request.subject.clone().unwrap_or_default());
                scan(&mut |e| found.visit(e))?;
                found.finish()
            }
            ReportName::Completeness => {
                let mut counts = completeness::Completeness::new(window);
                scan(&mut |e| counts.visit(e))?;
                counts.finish(gaps, checkpoint.size)
            }
        };
        let parameters = request
            .name
            .parameters()
            .iter()
            .map(|name| (name.to_string(), entry::text(request.parameter(name))))
            .collect();
        Ok(Report {
            name: request.name,
            tenant: request.tenant.clone(),
            window,
            generated_at: now,
            checkpoint,
            coverage,
            parameters,
            rows,
        })
    })
}

/// The reports as the server answers them: on its read pool, against the latest signed
/// checkpoint, with the gap detector's findings for `completeness`. Cheap to clone.
#[derive(Clone)]
pub struct Reports {
    readers: Readers,
    data_dir: PathBuf,
    gaps: Gaps,
    gap_marks: Watermarks,
    clock: crate::clock::Clock,
}

impl Reports {
    pub fn new(
        readers: Readers,
        data_dir: PathBuf,
        gaps: Gaps,
        gap_marks: Watermarks,
        clock: crate::clock::Clock,
    ) -> Reports {
        Reports {
            readers,
            data_dir,
            gaps,
            gap_marks,
            clock,
        }
    }

    pub async fn run(&self, request: ReportRequest) -> Result<Report, ReportError> {
        let now = self.clock.now();
        let window = request.window(now)?;
        let tenant = request.tenant.clone();
        let checkpoint = self
            .readers
            .read(
                move |conn| -> Result<Option<StoredCheckpoint>, ReportError> {
                    Ok(conn.latest_checkpoint(&tenant)?)
                },
            )
            .await?
            .ok_or_else(|| ReportError::NoCheckpoint(request.tenant.clone()))?;
        let gaps = match request.name {
            ReportName::Completeness => {
                Some(self.gap_findings(&request, window, &checkpoint).await?)
            }
            _ => None,
        };
        let data_dir = self.data_dir.clone();
        self.readers
            .read(move |conn| compute(conn, &data_dir, &request, window, &checkpoint, gaps, now))
            .await
    }

    /// The gap findings of the window, once the detector has counted the checkpoint's
    /// entries (or after [`GAPS_WAIT`], saying how far it got).
    async fn gap_findings(
        &self,
        request: &ReportRequest,
        window: Window,
        checkpoint: &StoredCheckpoint,
    ) -> Result<GapFindings, ReportError> {
        let tenant = request.tenant.clone();
        if checkpoint.size > 0 {
            let _ = self
                .gap_marks
                .wait_for(&tenant, checkpoint.size - 1, GAPS_WAIT)
                .await;
        }
        let counted_through = self.gap_marks.watermark(&tenant);
        let gaps = self.gaps.clone();
        let report = tokio::task::spawn_blocking(move || {
            gaps.report(&tenant, Some(window.from), Some(window.to))
        })
        .await
        .map_err(|e| ReportError::Pool(format!("the gap findings failed: {e}")))??;
        Ok(GapFindings {
            gaps: report.to_json()["gaps"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            counted_through,
        })
    }
}

/// [`Reports::gap_findings`] for a caller without a running detector (the command line):
/// `gaps` brought up to date with the log beforehand.
pub fn gap_findings_now(
    gaps: &Gaps,
    tenant: &str,
    window: Window,
    counted_through: u64,
) -> Result<GapFindings, ReportError> {
    let report = gaps.report(tenant, Some(window.from), Some(window.to))?;
    Ok(GapFindings {
        gaps: report.to_json()["gaps"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        counted_through,
    })
}
