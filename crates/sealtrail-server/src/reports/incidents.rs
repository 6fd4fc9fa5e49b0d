//! `security-incidents`: the alerts raised in the window and the events behind each.
//!
//! An alert is an entry of the tenant's own log with action [`ALERT_ACTION`], written by
//! sealtrail's monitor (producers cannot write `sealtrail.` actions), whose `details` are
//! `{"alert_id", "rule", "severity", "key", "window_start", "window_end", "count", "seqs"}`.
//! The window selects alerts by their own time; the events behind an alert (its `seqs`) are
//! then read from the same verified prefix, whatever their time. A seq the prefix does not
//! hold (pruned, or not below the checkpoint's size) is listed in `unavailable_seqs`. At most
//! [`MAX_EVENTS_PER_ALERT`] events are listed per alert (`events_truncated` says when more).

use serde_json::{Map, Value, json};

use super::entry::{EntryView, text};
use super::{Coverage, ReportError, Rows};
use sealtrail_store::Store;

/// The action of an alert raised by the monitor.
pub const ALERT_ACTION: &str = "sealtrail.alert.raised";

/// The most events listed behind one alert.
pub const MAX_EVENTS_PER_ALERT: usize = 1_000;

/// Entries read at once when looking up the events behind alerts.
const LOOKUP_BATCH: usize = 1_000;

/// One line per event behind an alert (an alert without events is one line of its own).
pub const COLUMNS: &[&str] = &[
    "alert_seq",
    "alert_id",
    "rule",
    "severity",
    "key",
    "window_start",
    "window_end",
    "count",
    "raised_at",
    "event_seq",
    "event_at",
    "event_action",
    "event_actor_id",
    "event_actor_type",
    "event_ip",
    "event_outcome",
];

#[derive(Default)]
pub struct Incidents {
    rows: Rows,
    /// Per alert kept, the seqs behind it (at most [`MAX_EVENTS_PER_ALERT`]).
    seqs: Vec<Vec<u64>>,
}

impl Incidents {
    pub fn visit(&mut self, e: &EntryView) {
        if e.action != ALERT_ACTION {
            return;
        }
        let details = e.details.clone().unwrap_or_default();
        let field = |name: &str| details.get(name).cloned().unwrap_or(Value::Null);
        let all: Vec<u64> = details
            .get("seqs")
            .and_then(Value::as_array)
            .map(|seqs| seqs.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let truncated = all.len() > MAX_EVENTS_PER_ALERT;
        let row = json!({
            "seq": e.seq,
            "alert_id": field("alert_id"),
            "rule": field("rule"),
            "severity": field("severity"),
            "key": field("key"),
            "window_start": field("window_start"),
            "window_end": field("window_end"),
            "count": field("count"),
            "raised_at": e.event_time(),
            "events_truncated": truncated,
        });
        let before = self.rows.rows.len();
        self.rows.push(row);
        if self.rows.rows.len() > before {
            self.seqs
                .push(all.into_iter().take(MAX_EVENTS_PER_ALERT).collect());
        }
    }

    /// Reads the events behind each alert kept from `[coverage.first_seq, size)`.
    pub fn finish(
        mut self,
        conn: &dyn Store,
        tenant: &str,
        coverage: &Coverage,
        size: u64,
    ) -> Result<Rows, ReportError> {
        for (row, seqs) in self.rows.rows.iter_mut().zip(&self.seqs) {
            let (held, unavailable): (Vec<u64>, Vec<u64>) = seqs
                .iter()
                .partition(|&&seq| seq >= coverage.first_seq && seq < size);
            let mut events = Vec::with_capacity(held.len());
            for chunk in held.chunks(LOOKUP_BATCH) {
                for (seq, bytes) in conn.entries_at(tenant, chunk)? {
                    let e = EntryView::parse(&bytes).ok_or(ReportError::CorruptEntry { seq })?;
                    events.push(json!({
                        "seq": e.seq,
                        "at": e.event_time(),
                        "action": e.action,
                        "actor_id": e.actor.id,
                        "actor_type": text(e.actor.kind.as_deref()),
                        "ip": text(e.ip()),
                        "outcome": e.outcome,
                    }));
                }
            }
            row["events"] = Value::Array(events);
            row["unavailable_seqs"] = json!(unavailable);
        }
        Ok(self.rows)
    }
}

/// The report's rows as table lines: one per event behind an alert.
pub fn table_rows(rows: &[Value]) -> Vec<Map<String, Value>> {
    let mut lines = Vec::new();
    for alert in rows {
        let mut base = Map::new();
        base.insert("alert_seq".into(), alert["seq"].clone());
        for name in [
            "alert_id",
            "rule",
            "severity",
            "key",
            "window_start",
            "window_end",
            "count",
            "raised_at",
        ] {
            base.insert(name.into(), alert[name].clone());
        }
        let events = alert["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            lines.push(base);
            continue;
        }
        for event in events {
            let mut line = base.clone();
            for (column, field) in [
                ("event_seq", "seq"),
                ("event_at", "at"),
                ("event_action", "action"),
                ("event_actor_id", "actor_id"),
                ("event_actor_type", "actor_type"),
                ("event_ip", "ip"),
                ("event_outcome", "outcome"),
            ] {
                line.insert(column.into(), event[field].clone());
            }
            lines.push(line);
        }
    }
    lines
}
