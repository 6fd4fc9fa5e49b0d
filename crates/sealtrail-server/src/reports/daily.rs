//! `daily-activity`: the operations runbook's daily summary (`SELECT action, count(*) …
//! GROUP BY action`), per UTC day and broken down by action, activity, outcome and actor
//! type. Heartbeats (`sealtrail.heartbeat`) are a producer saying it is alive, not activity,
//! and are not counted.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::entry::{EntryView, HEARTBEAT_ACTION};
use super::{MAX_ROWS, Rows};

pub const COLUMNS: &[&str] = &[
    "day",
    "action",
    "activity",
    "outcome",
    "actor_type",
    "count",
];

/// `(day, action, activity, outcome, actor type)`; absent fields are empty.
type Key = (String, String, String, String, String);

/// Counts per key, at most [`MAX_ROWS`] keys; events of keys beyond are counted apart.
#[derive(Default)]
pub struct Daily {
    counts: BTreeMap<Key, u64>,
    events: u64,
    not_in_rows: u64,
}

impl Daily {
    pub fn visit(&mut self, e: &EntryView) {
        if e.action == HEARTBEAT_ACTION {
            return;
        }
        self.events += 1;
        let key = (
            e.event_time()[..10].to_string(),
            e.action.clone(),
            e.activity.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.actor.kind.clone().unwrap_or_default(),
        );
        if let Some(count) = self.counts.get_mut(&key) {
            *count += 1;
        } else if self.counts.len() < MAX_ROWS {
            self.counts.insert(key, 1);
        } else {
            self.not_in_rows += 1;
        }
    }

    pub fn finish(self) -> Rows {
        let optional = |s: String| {
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s)
            }
        };
        let mut rows = Rows {
            truncated: self.not_in_rows > 0,
            ..Rows::default()
        };
        for ((day, action, activity, outcome, actor_type), count) in self.counts {
            rows.total += 1;
            rows.rows.push(json!({
                "day": day,
                "action": action,
                "activity": optional(activity),
                "outcome": outcome,
                "actor_type": optional(actor_type),
                "count": count,
            }));
        }
        rows.extra.insert("events".into(), json!(self.events));
        rows.extra
            .insert("events_not_in_rows".into(), json!(self.not_in_rows));
        rows
    }
}
