//! `completeness`: the runbook's data completeness check (`date_trunc('hour', created_at),
//! count(*)`), per hour and producer (`source.app`, `source.instance`), zeros included so
//! that a silent hour shows, with the gap detector's findings of the window
//! ([`crate::gaps::Gaps::report`]: time gaps, rate drops, producer sequence gaps, silent
//! producers).
//!
//! Counts come from the verified prefix; findings from the detector's counters, which it
//! keeps for the whole log: the report waits until the detector has counted at least the
//! checkpoint's entries and says how far it had (`gaps_counted_through`,
//! `gaps_cover_checkpoint`). Each row carries how many findings overlap its hour and
//! concern its producer or the whole tenant (`gap_findings`). Events without a `source` are
//! the producer with `app` and `instance` null; heartbeats are counted apart (`heartbeats`).

use std::collections::{BTreeMap, HashMap};

use sealtrail_core::Timestamp;
use serde_json::{Value, json};

use super::entry::{EntryView, HEARTBEAT_ACTION, text};
use super::{GapFindings, Rows, Window};

pub const COLUMNS: &[&str] = &[
    "hour",
    "app",
    "instance",
    "events",
    "heartbeats",
    "gap_findings",
];

const HOUR: i64 = 3_600_000_000;
/// The most producers told apart; events of others are counted together.
const MAX_PRODUCERS: usize = 1_000;

type Producer = (Option<String>, Option<String>);

pub struct Completeness {
    /// Each hour's start, and its text prefix (`YYYY-MM-DDTHH`) to index it by.
    hours: Vec<Timestamp>,
    index: HashMap<String, usize>,
    /// Per producer, per hour: (events, heartbeats).
    counts: BTreeMap<Producer, Vec<(u64, u64)>>,
    other_producers: u64,
}

impl Completeness {
    pub fn new(window: Window) -> Completeness {
        let first = window.from.unix_micros().div_euclid(HOUR) * HOUR;
        let mut hours = Vec::new();
        let mut at = first;
        while at < window.to.unix_micros() {
            hours.push(Timestamp::from_unix_micros(at).expect("inside the window"));
            at += HOUR;
        }
        let index = hours
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_rfc3339()[..13].to_string(), i))
            .collect();
        Completeness {
            hours,
            index,
            counts: BTreeMap::new(),
            other_producers: 0,
        }
    }

    pub fn visit(&mut self, e: &EntryView) {
        let Some(&hour) = self.index.get(&e.event_time()[..13]) else {
            return;
        };
        let producer = (
            e.source.as_ref().and_then(|s| s.app.clone()),
            e.source.as_ref().and_then(|s| s.instance.clone()),
        );
        let hours = self.hours.len();
        if !self.counts.contains_key(&producer) && self.counts.len() >= MAX_PRODUCERS {
            self.other_producers += 1;
            return;
        }
        let slots = self.counts.entry(producer).or_insert(vec![(0, 0); hours]);
        if e.action == HEARTBEAT_ACTION {
            slots[hour].1 += 1;
        } else {
            slots[hour].0 += 1;
        }
    }

    pub fn finish(mut self, gaps: Option<GapFindings>, size: u64) -> Rows {
        if self.counts.is_empty() {
            self.counts
                .insert((None, None), vec![(0, 0); self.hours.len()]);
        }
        let (findings, counted_through) = match gaps {
            Some(found) => (found.gaps, found.counted_through),
            None => (Vec::new(), 0),
        };
        let mut rows = Rows::default();
        for (i, start) in self.hours.iter().enumerate() {
            let (from, to) = (
                start.to_rfc3339(),
                Timestamp::from_unix_micros(start.unix_micros() + HOUR)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            );
            for ((app, instance), slots) in &self.counts {
                let overlapping = findings
                    .iter()
                    .filter(|f| {
                        let (s, e) = (f["start"].as_str(), f["end"].as_str());
                        s.is_some_and(|s| s < to.as_str()) && e.is_some_and(|e| e > from.as_str())
                    })
                    .filter(|f| match &f["producer"] {
                        Value::Null => true,
                        p => {
                            p["app"].as_str() == app.as_deref()
                                && p["instance"].as_str() == instance.as_deref()
                        }
                    })
                    .count();
                rows.push(json!({
                    "hour": from,
                    "app": text(app.as_deref()),
                    "instance": text(instance.as_deref()),
                    "events": slots[i].0,
                    "heartbeats": slots[i].1,
                    "gap_findings": overlapping,
                }));
            }
        }
        rows.extra.insert("gaps".into(), Value::Array(findings));
        rows.extra
            .insert("gaps_counted_through".into(), json!(counted_through));
        rows.extra.insert(
            "gaps_cover_checkpoint".into(),
            json!(counted_through >= size),
        );
        rows.extra.insert(
            "events_of_other_producers".into(),
            json!(self.other_producers),
        );
        rows
    }
}
