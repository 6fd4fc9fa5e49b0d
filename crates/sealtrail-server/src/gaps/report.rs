//! The gap report: the runbooks' incident write-up ("gap start, gap end, duration, root cause,
//! compliance impact, PHI access during the gap, compensating controls"), filled in from the
//! gap database for each finding of a window.
//!
//! For each finding of [`super::Gaps::report`]:
//!
//! - **expected activity**: the actions seen in the same clock window on up to
//!   [`detect::HISTORY_DAYS`] earlier days the tenant already had events on, and their
//!   average counts (for a producer's finding, of that producer's `source.app` only);
//! - **PHI-access estimate**: the expected events whose action looks like a record access
//!   ([`looks_like_access`]), classed as the HIPAA runbook does (low < 10, medium 10–100,
//!   high > 100);
//! - **cause**, as far as sealtrail knows it: its own downtime from the `_system` start/stop
//!   records ([`server_cause`]: a graceful stop before the gap and a start after it is planned
//!   downtime, a start with no stop before it on its host a crash, each naming the host); a
//!   store outage from the `sealtrail.spool.drained` records whose spool period overlaps the
//!   gap ([`store_outage`]: how many events were spooled and committed later, how many of the
//!   tenant's); a silent producer or a producer's sequence gap, with the numbers missing;
//! - **recovery**: events that occurred in the window but arrived after it (a lower bound from
//!   the event-time and `received_at` counters: the counters are not kept jointly), and, for a
//!   sequence gap, the numbers still missing — provably lost.
//!
//! The report is given as JSON ([`IncidentReport::to_json`]) and as Markdown a privacy officer
//! can read as it is ([`IncidentReport::to_markdown`]).

use std::collections::BTreeMap;

use sealtrail_core::Timestamp;
use sealtrail_core::text::count;
use sealtrail_store::gaps::{
    Basis, GapsError, GapsReader, LifecycleRecord, SERVER_STARTED, SERVER_STOPPED, SpoolDrain,
};

use super::detect::{self, Finding, Impact, Kind, MINUTE};
use crate::tenant::SYSTEM_TENANT;

/// How near a gap a start or stop record must fall to explain it.
const SLACK: i64 = 5 * MINUTE;

/// Words in an action that make it look like a record access (matched case-insensitively).
pub const ACCESS_WORDS: [&str; 5] = ["read", "view", "access", "export", "disclos"];

/// Whether events of `action` count towards the PHI-access estimate.
pub fn looks_like_access(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    ACCESS_WORDS.iter().any(|word| lower.contains(word))
}

/// The HIPAA runbook's class of the PHI accesses in a gap: low below 10, medium 10 to 100,
/// high above 100.
pub fn access_class(estimate: f64) -> Impact {
    if estimate < 10.0 {
        Impact::Low
    } else if estimate <= 100.0 {
        Impact::Medium
    } else {
        Impact::High
    }
}

/// What sealtrail's own start and stop records say about a gap. `host` is the host name the
/// deciding record names (`None` when it names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCause {
    /// A graceful stop before the gap ended, then a start: planned downtime.
    PlannedDowntime {
        stopped_at: i64,
        started_at: i64,
        host: Option<String>,
    },
    /// A start during or right after the gap with no graceful stop before it: the server
    /// before it crashed or was killed.
    Crash {
        started_at: i64,
        host: Option<String>,
    },
    /// A graceful stop near the gap and no start after it.
    Stopped {
        stopped_at: i64,
        host: Option<String>,
    },
    /// No start or stop record in or near the gap, and a start recorded before it: the server
    /// was not restarted.
    NotRestarted,
    /// No start or stop record at all before the gap ends (a store written before sealtrail
    /// recorded them, or a gap before the first start): nothing can be said either way.
    Unknown,
}

impl ServerCause {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServerCause::PlannedDowntime { .. } => "planned_downtime",
            ServerCause::Crash { .. } => "crash",
            ServerCause::Stopped { .. } => "stopped",
            ServerCause::NotRestarted => "not_restarted",
            ServerCause::Unknown => "unknown",
        }
    }

    /// The host the deciding record names.
    pub fn host(&self) -> Option<&str> {
        match self {
            ServerCause::PlannedDowntime { host, .. }
            | ServerCause::Crash { host, .. }
            | ServerCause::Stopped { host, .. } => host.as_deref(),
            ServerCause::NotRestarted | ServerCause::Unknown => None,
        }
    }

    fn detail(&self) -> String {
        let on = match self.host() {
            Some(host) => format!(" on host {}", one_line(host)),
            None => String::new(),
        };
        match self {
            ServerCause::PlannedDowntime {
                stopped_at,
                started_at,
                ..
            } => format!(
                "sealtrail{on} was stopped gracefully at {} and started again at {}: planned downtime",
                ts(*stopped_at),
                ts(*started_at)
            ),
            ServerCause::Crash { started_at, .. } => format!(
                "sealtrail{on} started at {} with no graceful stop recorded before it: the server before it crashed or was killed",
                ts(*started_at)
            ),
            ServerCause::Stopped { stopped_at, .. } => format!(
                "sealtrail{on} was stopped gracefully at {} and no start is recorded after it",
                ts(*stopped_at)
            ),
            ServerCause::NotRestarted => {
                "no sealtrail start or stop record falls in or near the gap: the server was not restarted".to_string()
            }
            ServerCause::Unknown => {
                "sealtrail holds no start or stop record from before the gap ended, so whether the server ran cannot be told from its own records".to_string()
            }
        }
    }
}

/// Whether two records can be of the same server host: they name the same host, or one of
/// them names none (a record that does not say cannot be told apart).
fn same_host(a: &LifecycleRecord, b: &LifecycleRecord) -> bool {
    match (&a.hostname, &b.hostname) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Which of sealtrail's own start/stop records explain a silence from `start` to `end`
/// (unix µs). `records` are in time order and should reach back before the gap.
///
/// The first start in the gap (or up to 5 minutes after its end) decides: the record before
/// it from the same host a graceful stop means planned downtime, anything else (another
/// start, or none) a crash. With several servers on one store, another host's stop or start
/// says nothing of this one. Without such a start, a graceful stop near the gap means
/// sealtrail was stopped and not started again; with neither, it was not restarted — when
/// some record before the gap's end shows sealtrail recorded its starts at all, and
/// otherwise nothing can be told ([`ServerCause::Unknown`]).
pub fn server_cause(records: &[LifecycleRecord], start: i64, end: i64) -> ServerCause {
    let restart = records
        .iter()
        .position(|r| r.action == SERVER_STARTED && r.at > start && r.at <= end + SLACK);
    if let Some(i) = restart {
        let started = &records[i];
        let host = started.hostname.clone();
        let before = records[..i].iter().rev().find(|r| same_host(r, started));
        return match before {
            Some(before) if before.action == SERVER_STOPPED => ServerCause::PlannedDowntime {
                stopped_at: before.at,
                started_at: started.at,
                host,
            },
            _ => ServerCause::Crash {
                started_at: started.at,
                host,
            },
        };
    }
    let stop = records
        .iter()
        .rev()
        .find(|r| r.action == SERVER_STOPPED && r.at >= start - SLACK && r.at <= end);
    match stop {
        Some(stop) => ServerCause::Stopped {
            stopped_at: stop.at,
            host: stop.hostname.clone(),
        },
        None if records.iter().any(|r| r.at <= end) => ServerCause::NotRestarted,
        None => ServerCause::Unknown,
    }
}

/// A store outage during which sealtrail spooled events, from the `sealtrail.spool.drained`
/// records whose spool periods overlap a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutage {
    /// When the first and the last spooled event were accepted, unix µs.
    pub first_spooled: i64,
    pub last_spooled: i64,
    /// When the (last) spool was drained into the log.
    pub drained_at: i64,
    /// Events spooled and committed later, across tenants.
    pub events: u64,
    /// Of them, the report's tenant's.
    pub tenant_events: u64,
    /// The hosts whose spools they were.
    pub hosts: Vec<String>,
}

impl StoreOutage {
    fn detail(&self, tenant: &str) -> String {
        let events = count(self.events, "event", "events");
        let theirs = match self.tenant_events {
            0 => format!("none of them {tenant}'s"),
            n if n == self.events => format!("all of them {tenant}'s"),
            n => format!("{n} of them {tenant}'s"),
        };
        let hosts = match self.hosts.as_slice() {
            [] => String::new(),
            [host] => format!(" on host {}", one_line(host)),
            hosts => format!(
                " on hosts {}",
                hosts
                    .iter()
                    .map(|h| one_line(h))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "store outage, {events} spooled and committed later: the store could not be reached and sealtrail{hosts} kept {events} ({theirs}) in its local spool, accepted from {} to {}, then drained them into the log at {}",
            ts(self.first_spooled),
            ts(self.last_spooled),
            ts(self.drained_at)
        )
    }
}

/// Where the store was not reachable: no drained spool's period overlaps the gap.
const NO_STORE_OUTAGE: &str = "no spool period overlaps the gap: sealtrail kept no event in a local spool then (each drained spool is recorded in the _system log as sealtrail.spool.drained; a spool still waiting to drain is recorded once it drains, and the embedded store has none)";

/// The store outage that `drains` (records whose spool periods overlap a gap) show for
/// `tenant`'s gap, if any: their events added up, from the first one's first event to the
/// last one's last.
pub fn store_outage(drains: &[SpoolDrain], tenant: &str) -> Option<StoreOutage> {
    let first = drains.first()?;
    let mut outage = StoreOutage {
        first_spooled: first.first_at,
        last_spooled: first.last_at,
        drained_at: first.at,
        events: 0,
        tenant_events: 0,
        hosts: Vec::new(),
    };
    for drain in drains {
        outage.first_spooled = outage.first_spooled.min(drain.first_at);
        outage.last_spooled = outage.last_spooled.max(drain.last_at);
        outage.drained_at = outage.drained_at.max(drain.at);
        outage.events += drain.events;
        outage.tenant_events += drain.tenants.get(tenant).copied().unwrap_or(0);
        if let Some(host) = &drain.hostname
            && !outage.hosts.contains(host)
        {
            outage.hosts.push(host.clone());
        }
    }
    Some(outage)
}

/// Whether the servers that ran during a silence from `start` to `end` (unix µs) mirrored
/// events to stdout as `AUDIT:` lines, by their start records (in time order): the server
/// in force when the gap began (the last start before it) and any started in it. `Some(true)`
/// when every one of them says so, `Some(false)` when any says not, `None` when a start record
/// does not say (or none is known).
pub fn audit_stdout_during(records: &[LifecycleRecord], start: i64, end: i64) -> Option<bool> {
    let starts = records.iter().filter(|r| r.action == SERVER_STARTED);
    let before = starts.clone().rfind(|r| r.at <= start);
    let during = starts.filter(|r| r.at > start && r.at <= end);
    let settings: Vec<Option<bool>> = before
        .into_iter()
        .chain(during)
        .map(|r| r.audit_stdout)
        .collect();
    if settings.contains(&Some(false)) {
        Some(false)
    } else if !settings.is_empty() && settings.iter().all(|s| *s == Some(true)) {
        Some(true)
    } else {
        None
    }
}

/// An action's average count in the window on earlier days.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedAction {
    pub action: String,
    pub events: f64,
}

/// The report on one finding.
#[derive(Debug, Clone)]
pub struct GapSection {
    pub finding: Finding,
    /// Earlier days the expected counts are averaged over.
    pub history_days: i64,
    /// The `source.app` the expected counts are of (a producer's finding), else every one.
    /// Counts are kept per app, not per instance: an app's other instances are in them.
    pub app: Option<String>,
    /// Largest first.
    pub expected: Vec<ExpectedAction>,
    pub server: ServerCause,
    /// A store outage during which events were spooled, overlapping the gap.
    pub store_outage: Option<StoreOutage>,
    /// Whether the servers running during it mirrored events as `AUDIT:` lines, by their
    /// start records ([`audit_stdout_during`]).
    pub audit_stdout: Option<bool>,
    /// Events that occurred in the window and arrived after it: at least this many.
    pub late_arrivals: i64,
}

impl GapSection {
    pub fn expected_events(&self) -> f64 {
        self.expected.iter().fold(0.0, |sum, a| sum + a.events)
    }

    pub fn access_estimate(&self) -> f64 {
        self.expected
            .iter()
            .filter(|a| looks_like_access(&a.action))
            .fold(0.0, |sum, a| sum + a.events)
    }

    /// `source.seq` numbers still missing.
    pub fn lost(&self) -> Option<u64> {
        self.finding
            .missing
            .as_ref()
            .map(|ranges| ranges.iter().map(|(from, to)| to - from + 1).sum())
    }

    fn store_outage_detail(&self, tenant: &str) -> String {
        match &self.store_outage {
            Some(outage) => outage.detail(tenant),
            None => NO_STORE_OUTAGE.to_string(),
        }
    }

    fn producer_name(&self) -> Option<String> {
        self.finding.producer.as_ref().map(|p| match &p.instance {
            Some(instance) => format!("{}/{instance}", p.app),
            None => p.app.clone(),
        })
    }

    fn producer_cause(&self) -> Option<(&'static str, String)> {
        let name = self.producer_name()?;
        match self.finding.kind {
            Kind::SilentProducer => Some((
                "silent",
                format!(
                    "{name} sent nothing (not even a heartbeat) from {}",
                    ts(self.finding.start)
                ),
            )),
            Kind::ProducerSeqGap => Some((
                "sequence_gap",
                format!("{name} numbered {} that never arrived", self.missing_text()),
            )),
            _ => None,
        }
    }

    fn missing_text(&self) -> String {
        let ranges = self.finding.missing.as_deref().unwrap_or_default();
        let list: Vec<String> = ranges
            .iter()
            .map(|(from, to)| {
                if from == to {
                    format!("{from}")
                } else {
                    format!("{from}–{to}")
                }
            })
            .collect();
        format!(
            "source.seq {} ({})",
            list.join(", "),
            count(self.lost().unwrap_or(0), "event", "events")
        )
    }
}

/// Whether the server that writes the report mirrors every event to stdout as `AUDIT:` lines:
/// what the report says when the start records of the servers that ran during the gaps do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStdout {
    On,
    Off,
    /// The report is made without a running server (the command line).
    Unknown,
}

/// A window's gap report.
#[derive(Debug, Clone)]
pub struct IncidentReport {
    pub tenant: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub generated_at: Timestamp,
    pub sections: Vec<GapSection>,
    /// The gaps of the 12 months before `from`.
    pub previous: super::PreviousGaps,
    pub audit_stdout: AuditStdout,
}

fn ts(micros: i64) -> String {
    Timestamp::from_unix_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| micros.to_string())
}

/// Producer-given text as one line of Markdown: control characters (line breaks above all)
/// become spaces, so a name cannot start a heading or a list of its own.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn duration_text(seconds: i64) -> String {
    detect::minutes_text(seconds / 60)
}

fn kind_title(kind: Kind) -> &'static str {
    match kind {
        Kind::TimeGap => "Time gap: no events",
        Kind::RateDrop => "Rate drop",
        Kind::ProducerSeqGap => "Producer sequence gap: events lost",
        Kind::SilentProducer => "Silent producer",
    }
}

/// Builds the sections of `findings` from the gap database.
pub(crate) fn sections(
    reader: &GapsReader,
    tenant: &str,
    findings: Vec<Finding>,
) -> Result<Vec<GapSection>, GapsError> {
    let first = reader.first_minute(tenant)?;
    let mut out = Vec::with_capacity(findings.len());
    for finding in findings {
        let lo = finding.start.div_euclid(MINUTE);
        let hi = (finding.end + MINUTE - 1).div_euclid(MINUTE).max(lo + 1);
        let app = match finding.kind {
            Kind::ProducerSeqGap | Kind::SilentProducer => {
                finding.producer.as_ref().map(|p| p.app.clone())
            }
            _ => None,
        };
        let (mut days, mut sums) = (0i64, BTreeMap::<String, i64>::new());
        if let Some(first) = first {
            for d in 1..=detect::HISTORY_DAYS {
                let shift = d * 1440;
                if first > lo - shift {
                    continue;
                }
                days += 1;
                for (action, events) in reader.actions(
                    tenant,
                    Basis::EventTime,
                    lo - shift,
                    hi - shift,
                    app.as_deref(),
                )? {
                    *sums.entry(action).or_default() += events;
                }
            }
        }
        let mut expected: Vec<ExpectedAction> = sums
            .into_iter()
            .map(|(action, events)| ExpectedAction {
                action,
                events: round1(events as f64 / days.max(1) as f64),
            })
            .filter(|a| a.events > 0.0)
            .collect();
        expected.sort_by(|a, b| b.events.total_cmp(&a.events).then(a.action.cmp(&b.action)));
        let records = reader.lifecycle(SYSTEM_TENANT, i64::MIN, finding.end + SLACK + 1)?;
        let server = server_cause(&records, finding.start, finding.end);
        let audit_stdout = audit_stdout_during(&records, finding.start, finding.end);
        // A gap's first silent minute follows the minute of the last event before it, so a
        // spool period that ended in that minute is taken as overlapping it.
        let drains = reader.spool_drains(SYSTEM_TENANT, finding.start - MINUTE, finding.end)?;
        let store_outage = store_outage(&drains, tenant);
        let sum = |basis| -> Result<i64, GapsError> {
            Ok(reader
                .actions(tenant, basis, lo, hi, app.as_deref())?
                .iter()
                .map(|(_, n)| n)
                .sum())
        };
        let late_arrivals = (sum(Basis::EventTime)? - sum(Basis::Received)?).max(0);
        out.push(GapSection {
            finding,
            history_days: days,
            app,
            expected,
            server,
            store_outage,
            audit_stdout,
            late_arrivals,
        });
    }
    Ok(out)
}

impl IncidentReport {
    fn impacts(&self) -> [(Impact, usize); 3] {
        [Impact::High, Impact::Medium, Impact::Low].map(|impact| {
            (
                impact,
                self.sections
                    .iter()
                    .filter(|s| s.finding.impact() == impact)
                    .count(),
            )
        })
    }

    /// Whether `AUDIT:` lines of the gaps' events may exist, where that is known from, and
    /// what to do about it.
    fn compensating(&self) -> (Option<bool>, &'static str, String) {
        const SHIPPER: &str = "check the log shipper's copy of AUDIT: lines; `sealtrail replay --audit-log FILE` puts back what they hold";
        const OTHER_LOGS: &str = "look for the producers' own logs (application, load balancer, database query logs) instead";
        let known: Vec<Option<bool>> = self.sections.iter().map(|s| s.audit_stdout).collect();
        if !known.is_empty() && known.contains(&Some(false)) {
            return (
                Some(false),
                "start_records",
                format!(
                    "a sealtrail server that ran during a gap did not mirror events to stdout (no --audit-stdout, by its start record), so there are no AUDIT: lines of its events; {OTHER_LOGS}"
                ),
            );
        }
        if !known.is_empty() && known.iter().all(|k| *k == Some(true)) {
            return (
                Some(true),
                "start_records",
                format!(
                    "the sealtrail servers that ran during the gaps mirrored every event to stdout as AUDIT: lines (--audit-stdout, by their start records); {SHIPPER}"
                ),
            );
        }
        match self.audit_stdout {
            AuditStdout::On => (
                Some(true),
                "this_server",
                format!(
                    "sealtrail's start records do not say how the server ran during the gaps; this server mirrors every event to stdout as AUDIT: lines (--audit-stdout): {SHIPPER}"
                ),
            ),
            AuditStdout::Off => (
                Some(false),
                "this_server",
                format!(
                    "sealtrail's start records do not say how the server ran during the gaps; this server runs without --audit-stdout, so there may be no AUDIT: lines to put back: {SHIPPER} if one was kept, else {OTHER_LOGS}"
                ),
            ),
            AuditStdout::Unknown => (None, "unknown", SHIPPER.to_string()),
        }
    }

    /// Steps to take, as `sealtrail` commands where there is one.
    pub fn what_to_do(&self) -> Vec<String> {
        let t = &self.tenant;
        let mut steps = Vec::new();
        if self.sections.is_empty() {
            steps.push("nothing: the window holds no gap".to_string());
            return steps;
        }
        steps.push(format!(
            "Check that the log itself is intact: `sealtrail verify --data DIR --tenant {t}`."
        ));
        if self.compensating().0 != Some(false) {
            steps.push(
                "Put back what the log shipper's copy of AUDIT: lines holds: `sealtrail replay --data DIR --audit-log FILE`.".to_string(),
            );
        }
        for s in &self.sections {
            if let (Kind::ProducerSeqGap, Some(name)) = (s.finding.kind, s.producer_name()) {
                steps.push(format!(
                    "Ask {name} to resend {} from its own spool or log, if it kept them.",
                    s.missing_text()
                ));
            }
            if let (Kind::SilentProducer, Some(name)) = (s.finding.kind, s.producer_name()) {
                steps.push(format!(
                    "Find out why {name} stopped sending; if it is idle on purpose, have it send `sealtrail.heartbeat` events."
                ));
            }
        }
        if self
            .sections
            .iter()
            .any(|s| matches!(s.server, ServerCause::Crash { .. }))
        {
            steps.push(
                "Find out why the sealtrail server stopped without a graceful stop (its own log, the service manager); run `sealtrail doctor --data DIR`.".to_string(),
            );
        }
        if self.sections.iter().any(|s| s.store_outage.is_some()) {
            steps.push(
                "Find out why the store could not be reached during the spool period (PostgreSQL's own log, the network; `sealtrail doctor --database-url URL`). The spooled events are in the log; a tenant set to `on_store_failure = \"reject\"` had its events refused meanwhile: ask its producers to send them again.".to_string(),
            );
        }
        steps.push(
            "Record each gap in the incident record with its impact class and PHI-access estimate, for the privacy officer to assess (the HIPAA runbook asks whether HHS notification is needed when a gap lasts over 24 hours or recurs).".to_string(),
        );
        steps.push(format!(
            "Look at the minutes around each gap: `sealtrail gaps timeline --data DIR --tenant {t} --bucket minute --from START --to END`."
        ));
        steps.push(format!(
            "Run this report again once events are put back: `sealtrail gaps report --data DIR --tenant {t} --from {} --to {}`; what is still missing goes into the incident record with its impact class.",
            self.from, self.to
        ));
        steps
    }

    pub fn to_json(&self) -> serde_json::Value {
        let [(_, high), (_, medium), (_, low)] = self.impacts();
        let (audit_stdout, source, compensating) = self.compensating();
        serde_json::json!({
            "tenant": self.tenant,
            "from": self.from.to_rfc3339(),
            "to": self.to.to_rfc3339(),
            "generated_at": self.generated_at.to_rfc3339(),
            "summary": {
                "gaps": self.sections.len(),
                "high": high,
                "medium": medium,
                "low": low,
                "expected_events": round1(self.sections.iter().fold(0.0, |sum, s| sum + s.expected_events())),
                "phi_access_estimate": round1(self.sections.iter().fold(0.0, |sum, s| sum + s.access_estimate())),
                "provably_lost": self.sections.iter().filter_map(|s| s.lost()).sum::<u64>(),
            },
            "gaps": self.sections.iter().map(|s| section_json(s, &self.tenant)).collect::<Vec<_>>(),
            "previous_gaps": {
                "from": self.previous.from.to_rfc3339(),
                "to": self.previous.to.to_rfc3339(),
                "total": self.previous.total(),
                "by_kind": self.previous.by_kind,
                "by_impact": self.previous.by_impact,
                "without_history": self.previous.without_history,
            },
            "compensating_records": {"audit_stdout": audit_stdout, "known_from": source, "detail": compensating},
            "what_to_do": self.what_to_do(),
        })
    }

    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut md = String::new();
        let _ = writeln!(md, "# Audit log gap report: {}\n", self.tenant);
        let _ = writeln!(
            md,
            "Window: {} to {} (UTC). Generated by sealtrail at {} from its gap counters.\n",
            self.from, self.to, self.generated_at
        );
        let _ = writeln!(md, "## Summary\n");
        if self.sections.is_empty() {
            let _ = writeln!(md, "No gap was found in this window.\n");
        } else {
            let classes: Vec<String> = self
                .impacts()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(impact, n)| format!("{n} {}", impact.as_str()))
                .collect();
            let _ = writeln!(
                md,
                "{} found ({}).\n",
                count(self.sections.len() as u64, "gap", "gaps"),
                classes.join(", ")
            );
            let _ = writeln!(
                md,
                "| # | kind | start | end | duration | impact | events expected | PHI-access estimate | provably lost |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
            for (i, s) in self.sections.iter().enumerate() {
                let f = &s.finding;
                let (expected, access) = if s.history_days == 0 {
                    ("unknown".to_string(), "unknown".to_string())
                } else {
                    (
                        format!("{:.1}", s.expected_events()),
                        format!("{:.1}", s.access_estimate()),
                    )
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {expected} | {access} | {} |",
                    i + 1,
                    f.kind.as_str(),
                    ts(f.start),
                    ts(f.end),
                    duration_text(f.duration_secs()),
                    f.impact().as_str(),
                    s.lost().map_or("–".to_string(), |n| n.to_string()),
                );
            }
            md.push('\n');
        }
        let earlier: Vec<String> = self
            .previous
            .by_kind
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let impacts: Vec<String> = self
            .previous
            .by_impact
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(impact, n)| format!("{n} {impact}"))
            .collect();
        let _ = write!(
            md,
            "**Previous gaps** in the 12 months before this window ({} to {}): {}",
            self.previous.from,
            self.previous.to,
            self.previous.total(),
        );
        if !earlier.is_empty() {
            let _ = write!(
                md,
                " ({}; impact {})",
                earlier.join(", "),
                impacts.join(", ")
            );
        }
        if self.previous.without_history > 0 {
            let _ = write!(
                md,
                ", of which {} on days with no earlier day to learn from (every silence over the threshold counts there)",
                count(
                    self.previous.without_history,
                    "time gap was judged",
                    "time gaps were judged"
                )
            );
        }
        let _ = writeln!(
            md,
            ".{}\n",
            if earlier.is_empty() {
                ""
            } else {
                " A recurring pattern indicates a systemic issue."
            }
        );
        for (i, s) in self.sections.iter().enumerate() {
            let f = &s.finding;
            let _ = writeln!(
                md,
                "## Gap {}: {} ({} impact)\n",
                i + 1,
                kind_title(f.kind),
                f.impact().as_str()
            );
            let _ = writeln!(md, "- **Start:** {}", ts(f.start));
            let _ = writeln!(
                md,
                "- **End:** {}{}",
                ts(f.end),
                if f.ongoing { " (ongoing)" } else { "" }
            );
            let _ = writeln!(
                md,
                "- **Duration:** {} ({} s)",
                duration_text(f.duration_secs()),
                f.duration_secs()
            );
            let _ = writeln!(
                md,
                "- **Compliance impact:** {} (low < 5 min, medium 5–30 min, high > 30 min)",
                f.impact().as_str()
            );
            if let Some(name) = s.producer_name() {
                let _ = writeln!(md, "- **Producer:** {}", one_line(&name));
            }
            let _ = writeln!(md, "- **Finding:** {}", one_line(&f.detail));
            let scope = match &s.app {
                Some(app) => format!(" of source.app {app} (all its instances)"),
                None => String::new(),
            };
            if s.history_days == 0 {
                let _ = writeln!(
                    md,
                    "- **Expected activity:** unknown: no earlier day to compare with"
                );
            } else if s.expected.is_empty() {
                let _ = writeln!(
                    md,
                    "- **Expected activity:** none{scope} in the same clock window of the {}",
                    count(s.history_days as u64, "earlier day", "earlier days")
                );
            } else {
                let _ = writeln!(
                    md,
                    "- **Expected activity**{scope} (average of the same clock window on the {}): {:.1} events\n",
                    count(s.history_days as u64, "earlier day", "earlier days"),
                    s.expected_events()
                );
                let _ = writeln!(md, "  | action | events expected |");
                let _ = writeln!(md, "  |---|---|");
                for a in &s.expected {
                    let _ = writeln!(md, "  | {} | {:.1} |", a.action, a.events);
                }
                md.push('\n');
            }
            if s.history_days == 0 {
                let _ = writeln!(
                    md,
                    "- **PHI-access estimate:** unknown: no earlier day to estimate from"
                );
            } else {
                let _ = writeln!(
                    md,
                    "- **PHI-access estimate:** {:.1} record accesses expected in the window ({} class: low < 10, medium 10–100, high > 100; actions containing {})",
                    s.access_estimate(),
                    access_class(s.access_estimate()).as_str(),
                    ACCESS_WORDS.join(", ")
                );
            }
            let _ = writeln!(md, "- **Cause, as far as sealtrail knows:**");
            let _ = writeln!(md, "  - sealtrail server: {}", s.server.detail());
            let _ = writeln!(
                md,
                "  - store outage: {}",
                s.store_outage_detail(&self.tenant)
            );
            match s.producer_cause() {
                Some((_, text)) => {
                    let _ = writeln!(md, "  - producer: {}", one_line(&text));
                }
                None => {
                    let _ = writeln!(
                        md,
                        "  - producer: no single producer is named by this finding"
                    );
                }
            }
            if s.late_arrivals > 0 {
                let _ = writeln!(
                    md,
                    "- **Recovery:** at least {}{scope} that occurred in the window arrived after it (spooled, replayed or sent late)",
                    count(s.late_arrivals as u64, "event", "events")
                );
            } else {
                let _ = writeln!(
                    md,
                    "- **Recovery:** no event{scope} that occurred in the window is known to have arrived after it"
                );
            }
            if s.lost().is_some() {
                let _ = writeln!(
                    md,
                    "- **Provably lost:** {} never arrived",
                    s.missing_text()
                );
            }
            md.push('\n');
        }
        let (_, _, compensating) = self.compensating();
        let _ = writeln!(md, "## Compensating records\n");
        let mut chars = compensating.chars();
        let capital: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        let _ = writeln!(md, "{capital}.\n");
        let _ = writeln!(md, "## What to do\n");
        for (i, step) in self.what_to_do().iter().enumerate() {
            let _ = writeln!(md, "{}. {step}", i + 1);
        }
        md
    }
}

fn section_json(s: &GapSection, tenant: &str) -> serde_json::Value {
    let f = &s.finding;
    serde_json::json!({
        "kind": f.kind.as_str(),
        "start": ts(f.start),
        "end": ts(f.end),
        "duration_seconds": f.duration_secs(),
        "impact": f.impact().as_str(),
        "ongoing": f.ongoing,
        "producer": f.producer.as_ref().map(|p| serde_json::json!({"app": p.app, "instance": p.instance})),
        "detail": f.detail,
        "expected": {
            "history_days": s.history_days,
            "app": s.app,
            "events": round1(s.expected_events()),
            "actions": s.expected.iter().map(|a| serde_json::json!({"action": a.action, "events": a.events})).collect::<Vec<_>>(),
        },
        "phi_access_estimate": if s.history_days == 0 {
            serde_json::json!({"events": null, "class": "unknown"})
        } else {
            serde_json::json!({
                "events": round1(s.access_estimate()),
                "class": access_class(s.access_estimate()).as_str(),
            })
        },
        "cause": {
            "server": {"state": s.server.as_str(), "detail": s.server.detail(), "host": s.server.host()},
            "store_outage": {
                "state": if s.store_outage.is_some() { "spooled" } else { "none_recorded" },
                "detail": s.store_outage_detail(tenant),
            },
            "producer": s.producer_cause().map(|(state, detail)| serde_json::json!({"state": state, "detail": detail})),
        },
        "recovery": {
            "late_arrivals_at_least": s.late_arrivals,
            "lost": s.lost(),
            "lost_ranges": f.missing.as_ref().map(|ranges| ranges.iter().map(|(from, to)| serde_json::json!({"from": from, "to": to})).collect::<Vec<_>>()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_minute: i64, action: &str) -> LifecycleRecord {
        LifecycleRecord {
            at: at_minute * MINUTE,
            action: action.to_string(),
            instance: format!("i-{at_minute}"),
            audit_stdout: None,
            hostname: None,
        }
    }

    fn started(at_minute: i64, audit_stdout: Option<bool>) -> LifecycleRecord {
        LifecycleRecord {
            audit_stdout,
            ..record(at_minute, SERVER_STARTED)
        }
    }

    #[test]
    fn the_start_records_of_the_servers_running_in_a_gap_say_whether_audit_lines_exist() {
        // The server in force at the gap's start mirrored; an earlier one that did not is
        // irrelevant.
        let records = [started(5, Some(false)), started(10, Some(true))];
        assert_eq!(audit_stdout_during(&records, GAP.0, GAP.1), Some(true));
        // A server started during the gap without it: some events have no AUDIT: line.
        let records = [started(10, Some(true)), started(120, Some(false))];
        assert_eq!(audit_stdout_during(&records, GAP.0, GAP.1), Some(false));
        // A start record that does not say, or none at all: unknown.
        let records = [started(10, None)];
        assert_eq!(audit_stdout_during(&records, GAP.0, GAP.1), None);
        assert_eq!(audit_stdout_during(&[], GAP.0, GAP.1), None);
        // Stops say nothing of it; a start after the gap is not in force during it.
        let records = [
            started(10, Some(true)),
            record(99, SERVER_STOPPED),
            started(200, Some(false)),
        ];
        assert_eq!(audit_stdout_during(&records, GAP.0, GAP.1), Some(true));
    }

    const GAP: (i64, i64) = (100 * MINUTE, 140 * MINUTE);

    #[test]
    fn a_graceful_stop_then_a_start_is_planned_downtime() {
        let records = [
            record(10, SERVER_STARTED),
            record(99, SERVER_STOPPED),
            record(139, SERVER_STARTED),
        ];
        assert_eq!(
            server_cause(&records, GAP.0, GAP.1),
            ServerCause::PlannedDowntime {
                stopped_at: 99 * MINUTE,
                started_at: 139 * MINUTE,
                host: None,
            }
        );
    }

    #[test]
    fn a_start_without_a_stop_before_it_is_a_crash() {
        let records = [record(10, SERVER_STARTED), record(141, SERVER_STARTED)];
        assert_eq!(
            server_cause(&records, GAP.0, GAP.1),
            ServerCause::Crash {
                started_at: 141 * MINUTE,
                host: None,
            }
        );
        // The first start ever, after the gap, has no stop before it either.
        assert_eq!(
            server_cause(&records[1..], GAP.0, GAP.1),
            ServerCause::Crash {
                started_at: 141 * MINUTE,
                host: None,
            }
        );
    }

    fn on(host: &str, record: LifecycleRecord) -> LifecycleRecord {
        LifecycleRecord {
            hostname: Some(host.to_string()),
            ..record
        }
    }

    #[test]
    fn the_record_before_a_start_is_looked_for_on_its_own_host() {
        // Host a is stopped for a deploy; host b, sharing the store, crashes and comes back
        // first: b's start follows a's stop in time, but b stopped without a record.
        let records = [
            on("a", record(10, SERVER_STARTED)),
            on("b", record(11, SERVER_STARTED)),
            on("a", record(99, SERVER_STOPPED)),
            on("b", record(120, SERVER_STARTED)),
            on("a", record(130, SERVER_STARTED)),
        ];
        let cause = server_cause(&records, GAP.0, GAP.1);
        assert_eq!(
            cause,
            ServerCause::Crash {
                started_at: 120 * MINUTE,
                host: Some("b".into()),
            }
        );
        assert!(
            cause
                .detail()
                .starts_with("sealtrail on host b started at "),
            "{}",
            cause.detail()
        );
        // Had b been stopped gracefully too, it is planned downtime on b.
        let mut records = records.to_vec();
        records.insert(3, on("b", record(100, SERVER_STOPPED)));
        let cause = server_cause(&records, GAP.0, GAP.1);
        assert_eq!(
            cause,
            ServerCause::PlannedDowntime {
                stopped_at: 100 * MINUTE,
                started_at: 120 * MINUTE,
                host: Some("b".into()),
            }
        );
        assert!(
            cause
                .detail()
                .starts_with("sealtrail on host b was stopped gracefully at "),
            "{}",
            cause.detail()
        );
        // A record that names no host is not told apart from any other.
        let records = [
            record(99, SERVER_STOPPED),
            on("b", record(120, SERVER_STARTED)),
        ];
        assert!(matches!(
            server_cause(&records, GAP.0, GAP.1),
            ServerCause::PlannedDowntime { .. }
        ));
    }

    #[test]
    fn records_far_from_the_gap_explain_nothing() {
        // Stopped and started again long before the gap; started again long after it.
        let records = [
            record(10, SERVER_STOPPED),
            record(11, SERVER_STARTED),
            record(200, SERVER_STARTED),
        ];
        assert_eq!(
            server_cause(&records, GAP.0, GAP.1),
            ServerCause::NotRestarted
        );
        // A graceful stop at the gap's start, no start since.
        let records = [record(10, SERVER_STARTED), record(98, SERVER_STOPPED)];
        assert_eq!(
            server_cause(&records, GAP.0, GAP.1),
            ServerCause::Stopped {
                stopped_at: 98 * MINUTE,
                host: None,
            }
        );
        // No record at all before the gap's end: sealtrail cannot tell, and says so.
        assert_eq!(server_cause(&[], GAP.0, GAP.1), ServerCause::Unknown);
        let only_later = [record(200, SERVER_STARTED)];
        assert_eq!(
            server_cause(&only_later, GAP.0, GAP.1),
            ServerCause::Unknown
        );
    }

    fn drain(first_minute: i64, last_minute: i64, tenants: &[(&str, u64)]) -> SpoolDrain {
        SpoolDrain {
            at: (last_minute + 1) * MINUTE,
            first_at: first_minute * MINUTE,
            last_at: last_minute * MINUTE,
            events: tenants.iter().map(|(_, n)| n).sum(),
            tenants: tenants.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            hostname: Some("audit-1".into()),
        }
    }

    #[test]
    fn a_spool_period_over_the_gap_is_a_store_outage_with_its_events() {
        assert_eq!(store_outage(&[], "acme"), None);
        let drains = [
            drain(100, 110, &[("acme", 4), ("billing", 2)]),
            drain(115, 120, &[("billing", 3)]),
        ];
        let outage = store_outage(&drains, "acme").unwrap();
        assert_eq!(
            outage,
            StoreOutage {
                first_spooled: 100 * MINUTE,
                last_spooled: 120 * MINUTE,
                drained_at: 121 * MINUTE,
                events: 9,
                tenant_events: 4,
                hosts: vec!["audit-1".into()],
            }
        );
        let detail = outage.detail("acme");
        assert!(
            detail.starts_with("store outage, 9 events spooled and committed later: "),
            "{detail}"
        );
        assert!(
            detail.contains("sealtrail on host audit-1 kept 9 events (4 of them acme's)"),
            "{detail}"
        );
        // A tenant that spooled nothing (it refuses events while the store is down) still had
        // its gap in the outage.
        let strict = store_outage(&drains, "strict").unwrap();
        assert_eq!(strict.tenant_events, 0);
        assert!(strict.detail("strict").contains("(none of them strict's)"));
    }

    #[test]
    fn producer_text_stays_on_its_line() {
        assert_eq!(one_line("billing\n# pwned\r\tx"), "billing # pwned  x");
    }

    #[test]
    fn record_accesses_are_recognised_by_their_action() {
        for action in [
            "patient.record.read",
            "chart.VIEW",
            "phi.accessed",
            "report.export",
            "record.disclosed",
        ] {
            assert!(looks_like_access(action), "{action}");
        }
        for action in [
            "patient.record.update",
            "billing.claim.submit",
            "user.login",
        ] {
            assert!(!looks_like_access(action), "{action}");
        }
        assert_eq!(access_class(9.9), Impact::Low);
        assert_eq!(access_class(10.0), Impact::Medium);
        assert_eq!(access_class(100.0), Impact::Medium);
        assert_eq!(access_class(100.5), Impact::High);
    }
}
