//! `record-access` — who accessed a given record (the HIPAA runbook's question: every event
//! whose `targets` include one with that `type` and `id`): who (actor id, type, name), when,
//! from where (`context.ip`, `context.user_agent`), what (action, activity) and the outcome —
//! and `user-activity`, the same listing for everything one actor (`actor.id`) did, with the
//! records each event named. Both in seq order, at most [`super::MAX_ROWS`] rows.

use serde_json::{Value, json};

use super::Rows;
use super::entry::{EntryView, text};

pub const RECORD_COLUMNS: &[&str] = &[
    "seq",
    "at",
    "actor_id",
    "actor_type",
    "actor_name",
    "ip",
    "user_agent",
    "action",
    "activity",
    "outcome",
    "outcome_reason",
];

pub const USER_COLUMNS: &[&str] = &[
    "seq",
    "at",
    "action",
    "activity",
    "outcome",
    "outcome_reason",
    "targets",
    "ip",
    "user_agent",
    "session_id",
];

enum Filter {
    Record { kind: String, id: String },
    User { actor: String },
}

pub struct Access {
    filter: Filter,
    rows: Rows,
}

impl Access {
    pub fn record(kind: String, id: String) -> Access {
        Access {
            filter: Filter::Record { kind, id },
            rows: Rows::default(),
        }
    }

    pub fn user(actor: String) -> Access {
        Access {
            filter: Filter::User { actor },
            rows: Rows::default(),
        }
    }

    /// Whether `e` names the record, or was done by the actor.
    pub fn matches(&self, e: &EntryView) -> bool {
        match &self.filter {
            Filter::Record { kind, id } => e.targets.iter().any(|t| {
                t.kind.as_deref() == Some(kind.as_str()) && t.id.as_deref() == Some(id.as_str())
            }),
            Filter::User { actor } => e.actor.id == *actor,
        }
    }

    pub fn visit(&mut self, e: &EntryView) {
        if !self.matches(e) {
            return;
        }
        let row = match self.filter {
            Filter::Record { .. } => json!({
                "seq": e.seq,
                "at": e.event_time(),
                "actor_id": e.actor.id,
                "actor_type": text(e.actor.kind.as_deref()),
                "actor_name": text(e.actor.name.as_deref()),
                "ip": text(e.ip()),
                "user_agent": text(e.user_agent()),
                "action": e.action,
                "activity": text(e.activity.as_deref()),
                "outcome": e.outcome,
                "outcome_reason": text(e.outcome_reason.as_deref()),
            }),
            Filter::User { .. } => json!({
                "seq": e.seq,
                "at": e.event_time(),
                "action": e.action,
                "activity": text(e.activity.as_deref()),
                "outcome": e.outcome,
                "outcome_reason": text(e.outcome_reason.as_deref()),
                "targets": e.target_labels().into_iter().map(Value::String).collect::<Vec<_>>(),
                "ip": text(e.ip()),
                "user_agent": text(e.user_agent()),
                "session_id": text(e.context.as_ref().and_then(|c| c.session_id.as_deref())),
            }),
        };
        self.rows.push(row);
    }

    pub fn finish(self) -> Rows {
        self.rows
    }
}
