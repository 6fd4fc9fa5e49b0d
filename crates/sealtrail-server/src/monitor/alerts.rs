//! Alerts as evidence: each alert a rule raises becomes an event in the tenant's own log,
//! `sealtrail.alert.raised`, naming the rule, the group, the window, the count and the seqs of
//! the events behind it — so anyone holding the log can recompute it — and is read back from
//! the log for `GET /v1/alerts`, `sealtrail alerts list` and the security-incidents report.
//!
//! The event:
//!
//! ```json
//! {"action": "sealtrail.alert.raised", "activity": "other", "outcome": "success",
//!  "actor": {"id": "sealtrail-monitor", "type": "system"},
//!  "details": {"alert_id": "alr_…", "rule": "failed-logins-per-user", "severity": "critical",
//!              "key": "actor=u-1", "window_start": "…Z", "window_end": "…Z",
//!              "count": 12, "seqs": [40, 41, …]}}
//! ```
//!
//! `count` is exact. `seqs` names the events behind it: those of the window at the peak (for a
//! rule counting distinct values, each value's latest event; for a sequence rule, the
//! preceding events and its own), the newest 256 when there are more
//! ([`super::engine::MAX_ALERT_SEQS`], the most items a `details` array may hold).
//!
//! `alert_id` is derived from the tenant, the rule, the group and the first and last seq behind
//! the alert, so the same episode always has the same id. It is also the event's idempotency
//! key: appending an alert a second time (after a restart, or by a second instance) returns
//! the first one's receipt and commits nothing.

use sealtrail_core::Timestamp;
use sealtrail_core::canonical::Entry;
use sealtrail_core::event::{Event, EventError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::engine::Alert;

/// The action of an alert's event.
pub const ALERT_ACTION: &str = "sealtrail.alert.raised";
/// The actor of an alert's event.
pub const MONITOR_ACTOR: &str = "sealtrail-monitor";

/// The stable id of an alert of `tenant`.
pub fn alert_id(tenant: &str, alert: &Alert) -> String {
    let mut hash = Sha256::new();
    for part in [tenant, &alert.rule, &alert.key] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(alert.seqs.first().copied().unwrap_or(0).to_be_bytes());
    hash.update(alert.seqs.last().copied().unwrap_or(0).to_be_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("alr_{hex}")
}

fn stamp(micros: i64) -> String {
    Timestamp::from_unix_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| micros.to_string())
}

/// The event that records `alert` in `tenant`'s log.
pub fn alert_event(tenant: &str, alert: &Alert) -> Result<Event, EventError> {
    let id = alert_id(tenant, alert);
    let document = serde_json::json!({
        "action": ALERT_ACTION,
        "activity": "other",
        "outcome": "success",
        "actor": {"id": MONITOR_ACTOR, "type": "system"},
        "idempotency_key": id,
        "details": {
            "alert_id": id,
            "rule": alert.rule,
            "severity": alert.severity.as_str(),
            "key": alert.key,
            "window_start": stamp(alert.window_start),
            "window_end": stamp(alert.window_end),
            "count": alert.count,
            "seqs": alert.seqs,
        },
    });
    Event::from_owned_value(document)
}

/// An alert as the log records it, in the shape of `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    /// `alr_` and 32 hex digits, stable for the episode.
    pub id: String,
    pub rule: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// The group: `field=value` pairs, empty for the whole tenant.
    pub key: String,
    /// `received_at` of the first event behind the alert.
    pub window_start: String,
    /// `received_at` of the last event behind the alert.
    pub window_end: String,
    /// How many events (targets, distinct values) the rule counted.
    pub count: u64,
    /// The seqs of the events behind the alert (the newest 256 at most; for a rule counting
    /// distinct values, each value's latest event).
    pub seqs: Vec<u64>,
    /// The seq of the alert's own event.
    pub seq: u64,
    /// When the alert's event was received.
    pub raised_at: String,
}

impl AlertRecord {
    /// The alert an entry records, if it is an alert's event written by the monitor.
    pub fn from_entry(entry: &Entry) -> Option<AlertRecord> {
        let event = &entry.event;
        read(
            &event.action,
            &event.actor.id,
            &event.details,
            entry.server.seq,
            entry.server.received_at.to_rfc3339(),
        )
    }

    /// The alert a stored entry as a JSON object records (a search result, an entry read
    /// from the store), if it is an alert's event written by the monitor.
    pub fn from_json(entry: &serde_json::Value) -> Option<AlertRecord> {
        fn text(v: Option<&serde_json::Value>) -> Option<&str> {
            v.and_then(|v| v.as_str())
        }
        read(
            text(entry.get("action"))?,
            text(entry.get("actor").and_then(|a| a.get("id")))?,
            entry.get("details")?.as_object()?,
            entry.get("seq")?.as_u64()?,
            text(entry.get("received_at"))?.to_string(),
        )
    }

    /// [`AlertRecord::from_entry`] from a stored entry's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<AlertRecord> {
        AlertRecord::from_entry(&Entry::parse(bytes).ok()?)
    }
}

fn read(
    action: &str,
    actor: &str,
    d: &serde_json::Map<String, serde_json::Value>,
    seq: u64,
    raised_at: String,
) -> Option<AlertRecord> {
    if action != ALERT_ACTION || actor != MONITOR_ACTOR {
        return None;
    }
    let text = |name: &str| d.get(name).and_then(|v| v.as_str()).map(str::to_string);
    Some(AlertRecord {
        id: text("alert_id")?,
        rule: text("rule")?,
        severity: text("severity")?,
        key: text("key").unwrap_or_default(),
        window_start: text("window_start")?,
        window_end: text("window_end")?,
        count: d.get("count").and_then(|v| v.as_u64())?,
        seqs: d
            .get("seqs")
            .and_then(|v| v.as_array())?
            .iter()
            .filter_map(|v| v.as_u64())
            .collect(),
        seq,
        raised_at,
    })
}
