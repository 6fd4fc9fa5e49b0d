//! The rules that turn the gap database's counters into findings. Pure: the data in, the
//! findings out, with "now" given — so each rule is tested on made-up minutes.
//!
//! Everything is measured on event time (`occurred_at`, else `received_at`) to the minute.
//! The rules, with the settings of [`GapRules`]:
//!
//! - **Time gap**: a run of at least `threshold` (5 min by default) of minutes with neither
//!   activity nor heartbeat, after the tenant's first event. Learned from the tenant's own
//!   history: for each of the previous 7 days the tenant already had events on, the same
//!   clock window is looked at; if those windows held on average fewer than
//!   [`QUIET_EXPECTED`] (3) events, silence there is normal (a quiet night) and not reported;
//!   otherwise it is, with confidence `1 − e^(−expected)` — the chance that silence is not
//!   just bad luck for a Poisson stream of that rate. With no history, every run above the
//!   threshold is reported, with confidence 0.5.
//! - **Rate drop**: a complete UTC hour with fewer than `rate_drop_ratio` (0.5) × the events
//!   of the same hour a day earlier *and* a week earlier (each where the tenant had history
//!   then), each of those at least `rate_drop_min_events` (10). Hours that overlap a reported
//!   time gap are left out: the gap explains them. Consecutive hours merge into one finding.
//! - **Producer sequence gap**: each missing `source.seq` range of the gap database, between
//!   the event times of the numbers on either side; confidence 1 (the producer numbered
//!   events that never arrived).
//! - **Silent producer**: a producer (`source.app`, `source.instance`) active in at least
//!   [`REGULAR_MINUTES`] (10) distinct minutes of the day before it was last seen, silent
//!   since for longer than `silent_factor` (10) × its usual interval between active minutes
//!   and at least `threshold`, up to the end of the window. Heartbeats count as being seen. A
//!   silence wholly inside a reported time gap is that gap, not reported again.
//!
//! Impact is by duration: low below 5 minutes, medium 5–30, high above 30.

use std::collections::HashMap;

use sealtrail_store::gaps::{
    LifecycleRecord, Minute, MissingRange, ProducerActivity, ProducerRecord,
};

/// Below this many events expected in a silent window, the silence is normal.
pub const QUIET_EXPECTED: f64 = 3.0;
/// Days of history a time gap is compared with.
pub const HISTORY_DAYS: i64 = 7;
/// Active minutes in a day that make a producer "seen regularly".
pub const REGULAR_MINUTES: i64 = 10;

pub(crate) const MINUTE: i64 = 60_000_000;
const DAY_MINUTES: i64 = 1440;

/// How a tenant's gaps are judged (`[tenants.NAME]` in the config file; see `config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GapRules {
    /// The shortest silence that can be a time gap, in seconds.
    pub threshold_secs: u64,
    /// An hour below this fraction of its day-earlier and week-earlier counts is a drop.
    pub rate_drop_ratio: f64,
    /// A baseline hour with fewer events than this is too small to judge a drop by.
    pub rate_drop_min_events: u64,
    /// A producer is silent after this many of its usual intervals without a sign of life.
    pub silent_factor: u32,
}

impl Default for GapRules {
    fn default() -> GapRules {
        GapRules {
            threshold_secs: 300,
            rate_drop_ratio: 0.5,
            rate_drop_min_events: 10,
            silent_factor: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    TimeGap,
    RateDrop,
    ProducerSeqGap,
    SilentProducer,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::TimeGap,
        Kind::RateDrop,
        Kind::ProducerSeqGap,
        Kind::SilentProducer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TimeGap => "time_gap",
            Kind::RateDrop => "rate_drop",
            Kind::ProducerSeqGap => "producer_seq_gap",
            Kind::SilentProducer => "silent_producer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impact {
    Low,
    Medium,
    High,
}

impl Impact {
    /// Low below 5 minutes, medium from 5 to 30, high above 30.
    pub fn of(duration_secs: i64) -> Impact {
        if duration_secs < 300 {
            Impact::Low
        } else if duration_secs <= 1800 {
            Impact::Medium
        } else {
            Impact::High
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Low => "low",
            Impact::Medium => "medium",
            Impact::High => "high",
        }
    }
}

/// A producer as findings name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Producer {
    pub app: String,
    pub instance: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// Unix µs.
    pub start: i64,
    pub end: i64,
    /// Still going on at the end of the window, which is now.
    pub ongoing: bool,
    pub producer: Option<Producer>,
    /// Inclusive `source.seq` ranges.
    pub missing: Option<Vec<(u64, u64)>>,
    pub confidence: f64,
    pub detail: String,
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn duration_secs(&self) -> i64 {
        (self.end - self.start).max(0) / 1_000_000
    }

    pub fn impact(&self) -> Impact {
        Impact::of(self.duration_secs())
    }

    /// What identifies the finding across evaluations, for counting it once.
    pub fn key(&self) -> String {
        let producer = self
            .producer
            .as_ref()
            .map(|p| format!("{}/{}", p.app, p.instance.as_deref().unwrap_or("")))
            .unwrap_or_default();
        let missing = self
            .missing
            .as_ref()
            .and_then(|m| m.first())
            .map(|(from, _)| from.to_string())
            .unwrap_or_default();
        format!("{}|{producer}|{missing}", self.start)
    }
}

/// What the rules read about one tenant, from the gap database.
#[derive(Debug, Default)]
pub struct TenantData {
    /// Event-time minutes with activity or heartbeats, from at least
    /// [`TenantData::history_start`] of the window on.
    pub minutes: Vec<Minute>,
    pub first_minute: Option<i64>,
    pub producers: Vec<ProducerActivity>,
    pub missing: Vec<MissingRange>,
    pub sequences: Vec<ProducerRecord>,
    pub lifecycle: Vec<LifecycleRecord>,
}

impl TenantData {
    /// The first minute the rules may look at for a window starting at minute `from`: a gap
    /// is followed back at most a week before it, and compared with up to a week before that.
    pub fn history_start(from_minute: i64) -> i64 {
        from_minute - (2 * HISTORY_DAYS + 1) * DAY_MINUTES
    }
}

/// The window findings are asked for, unix µs, `to` no later than `now`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub now: i64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A duration in whole minutes as people write it: `45 min`, `2 h`, `8 h 40 min`, `3 d 2 h`.
pub(super) fn minutes_text(minutes: i64) -> String {
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn ts(micros: i64) -> String {
    sealtrail_core::Timestamp::from_unix_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|_| micros.to_string())
}

/// Every finding of the window, in order of start (then kind).
pub fn detect(data: &TenantData, window: Window, rules: &GapRules) -> Vec<Finding> {
    let by_minute: HashMap<i64, &Minute> = data.minutes.iter().map(|m| (m.minute, m)).collect();
    let events = |m: i64| by_minute.get(&m).map_or(0, |x| x.events);
    let active = |m: i64| {
        by_minute
            .get(&m)
            .is_some_and(|x| x.events + x.heartbeats > 0)
    };
    let lo = window.from.div_euclid(MINUTE);
    let hi = window.to.min(window.now).div_euclid(MINUTE);
    let now_minute = window.now.div_euclid(MINUTE);
    let mut findings = Vec::new();

    // Time gaps.
    let mut gaps: Vec<(i64, i64)> = Vec::new();
    if let Some(first) = data.first_minute {
        let floor = first.max(lo - HISTORY_DAYS * DAY_MINUTES);
        let threshold = (rules.threshold_secs as i64 + 59) / 60;
        let mut m = lo.max(first);
        while m < hi {
            if active(m) {
                m += 1;
                continue;
            }
            let mut start = m;
            while start > floor && !active(start - 1) {
                start -= 1;
            }
            let mut end = m;
            while end < hi && !active(end) {
                end += 1;
            }
            m = end;
            if end - start < threshold.max(1) {
                continue;
            }
            let (mut days, mut sum) = (0i64, 0i64);
            for d in 1..=HISTORY_DAYS {
                let shift = d * DAY_MINUTES;
                if first <= start - shift {
                    days += 1;
                    sum += (start - shift..end - shift).map(events).sum::<i64>();
                }
            }
            let expected = if days > 0 {
                Some(sum as f64 / days as f64)
            } else {
                None
            };
            if expected.is_some_and(|e| e < QUIET_EXPECTED) {
                continue;
            }
            gaps.push((start, end));
            let (s, e) = (start * MINUTE, end * MINUTE);
            let ongoing = end >= now_minute;
            let history = match expected {
                Some(x) => format!(
                    "; the same hours of the {} held {x:.1} events on average",
                    sealtrail_core::text::count(days as u64, "previous day", "previous days")
                ),
                None => "; no earlier days to compare with".to_string(),
            };
            let down: Vec<serde_json::Value> = data
                .lifecycle
                .iter()
                .filter(|r| r.at >= s - 5 * MINUTE && r.at <= e + 5 * MINUTE)
                .map(|r| serde_json::json!({"action": r.action, "at": ts(r.at), "instance": r.instance, "host": r.hostname}))
                .collect();
            let sealtrail_note = if down.is_empty() {
                String::new()
            } else {
                "; sealtrail's own start/stop records fall in it (see evidence)".to_string()
            };
            findings.push(Finding {
                kind: Kind::TimeGap,
                start: s,
                end: e,
                ongoing,
                producer: None,
                missing: None,
                confidence: round3(expected.map_or(0.5, |x| 1.0 - (-x).exp())),
                detail: format!(
                    "no events from {} to {}{} ({}){history}{sealtrail_note}",
                    ts(s),
                    ts(e),
                    if ongoing { " (ongoing)" } else { "" },
                    minutes_text(end - start),
                ),
                evidence: serde_json::json!({
                    "threshold_seconds": rules.threshold_secs,
                    "history_days": days,
                    "expected_events": expected.map(round3),
                    "sealtrail_records": down,
                }),
            });
        }
    }

    // Rate drops, by complete hour.
    if let Some(first) = data.first_minute {
        let hour_events = |h: i64| (h * 60..h * 60 + 60).map(events).sum::<i64>();
        let mut drops: Vec<(i64, i64, Vec<serde_json::Value>)> = Vec::new();
        let first_hour = (lo + 59).div_euclid(60);
        let end_hour = hi.div_euclid(60);
        for h in first_hour..end_hour {
            if h * 60 < first {
                continue;
            }
            if gaps.iter().any(|(s, e)| *s < h * 60 + 60 && *e > h * 60) {
                continue;
            }
            let count = hour_events(h);
            let baselines: Vec<(&str, i64)> = [("day", 24), ("week", 24 * 7)]
                .into_iter()
                .filter(|(_, back)| first <= (h - back) * 60)
                .map(|(name, back)| (name, hour_events(h - back)))
                .collect();
            if baselines.is_empty() {
                continue;
            }
            let dropped = baselines.iter().all(|(_, b)| {
                *b >= rules.rate_drop_min_events as i64
                    && (count as f64) < rules.rate_drop_ratio * *b as f64
            });
            if !dropped {
                continue;
            }
            let mut evidence = serde_json::json!({"hour": ts(h * 60 * MINUTE), "events": count});
            for (name, b) in &baselines {
                evidence[format!("{name}_earlier")] = (*b).into();
            }
            match drops.last_mut() {
                Some(last) if last.1 == h => {
                    last.1 = h + 1;
                    last.2.push(evidence);
                }
                _ => drops.push((h, h + 1, vec![evidence])),
            }
        }
        for (start, end, hours) in drops {
            let count: i64 = hours
                .iter()
                .map(|x| x["events"].as_i64().unwrap_or(0))
                .sum();
            let baseline: i64 = hours
                .iter()
                .map(|x| {
                    ["day_earlier", "week_earlier"]
                        .iter()
                        .filter_map(|k| x[*k].as_i64())
                        .min()
                        .unwrap_or(0)
                })
                .sum();
            let (s, e) = (start * 60 * MINUTE, end * 60 * MINUTE);
            findings.push(Finding {
                kind: Kind::RateDrop,
                start: s,
                end: e,
                ongoing: false,
                producer: None,
                missing: None,
                confidence: round3(if baseline > 0 {
                    1.0 - count as f64 / baseline as f64
                } else {
                    0.0
                }),
                detail: format!(
                    "{count} events from {} to {}, against {baseline} in the same hours a day or a week earlier (rule: below {} × each)",
                    ts(s),
                    ts(e),
                    rules.rate_drop_ratio
                ),
                evidence: serde_json::json!({"hours": hours, "ratio": rules.rate_drop_ratio}),
            });
        }
    }

    // Producer sequence gaps.
    for range in &data.missing {
        let record = data
            .sequences
            .iter()
            .find(|p| p.app == range.app && p.instance == range.instance);
        let count = range.to_seq - range.from_seq + 1;
        let name = match &range.instance {
            Some(instance) => format!("{}/{instance}", range.app),
            None => range.app.clone(),
        };
        findings.push(Finding {
            kind: Kind::ProducerSeqGap,
            start: range.start_at,
            end: range.end_at,
            ongoing: false,
            producer: Some(Producer {
                app: range.app.clone(),
                instance: range.instance.clone(),
            }),
            missing: Some(vec![(range.from_seq, range.to_seq)]),
            confidence: 1.0,
            detail: format!(
                "{name}: source.seq {}–{} never arrived ({count} event{}), between events at {} and {}",
                range.from_seq,
                range.to_seq,
                if count == 1 { "" } else { "s" },
                ts(range.start_at),
                ts(range.end_at)
            ),
            evidence: serde_json::json!({
                "missing_events": count,
                "run": range.run,
                "restarts": record.map_or(0, |r| r.restarts),
                "duplicates": record.map_or(0, |r| r.duplicates),
            }),
        });
    }

    // Silent producers, at the end of the window.
    let threshold = (rules.threshold_secs as i64 + 59) / 60;
    for producer in &data.producers {
        if producer.active_minutes < REGULAR_MINUTES {
            continue;
        }
        let interval = ((producer.last_minute - producer.first_minute) as f64
            / (producer.active_minutes - 1) as f64)
            .max(1.0);
        let allowed = (interval * f64::from(rules.silent_factor))
            .ceil()
            .max(threshold as f64) as i64;
        let since = producer.last_minute + 1;
        if hi - since < allowed || hi <= lo {
            continue;
        }
        if gaps.iter().any(|(s, e)| *s <= since && *e >= hi) {
            continue;
        }
        let (s, e) = (since * MINUTE, hi * MINUTE);
        let ongoing = hi >= now_minute;
        let name = match &producer.instance {
            Some(instance) => format!("{}/{instance}", producer.app),
            None => producer.app.clone(),
        };
        findings.push(Finding {
            kind: Kind::SilentProducer,
            start: s,
            end: e,
            ongoing,
            producer: Some(Producer {
                app: producer.app.clone(),
                instance: producer.instance.clone(),
            }),
            missing: None,
            confidence: round3(1.0 - (-((hi - since) as f64) / interval).exp()),
            detail: format!(
                "{name} last seen in the minute starting {}, usually active every {:.1} min; silent for {}{}",
                ts(producer.last_minute * MINUTE),
                interval,
                minutes_text(hi - since),
                if ongoing { " and counting" } else { "" }
            ),
            evidence: serde_json::json!({
                // Counters are kept by the minute: the minute of its last event.
                "last_seen": ts(producer.last_minute * MINUTE),
                "usual_interval_seconds": round3(interval * 60.0),
                "active_minutes_last_day": producer.active_minutes,
                "allowed_silence_seconds": allowed * 60,
            }),
        });
    }

    findings.sort_by_key(|f| (f.start, f.kind));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(minutes_text(7), "7 min");
        assert_eq!(minutes_text(120), "2 h");
        assert_eq!(minutes_text(520), "8 h 40 min");
        assert_eq!(minutes_text(1440), "1 d");
        assert_eq!(minutes_text(1440 * 3 + 125), "3 d 2 h");
    }

    fn minute(minute: i64, events: i64) -> Minute {
        Minute {
            minute,
            events,
            heartbeats: 0,
        }
    }

    /// Three days of two events a minute, silent every night from minute 0 to 360 of the day;
    /// `today` is changed by the caller.
    fn history(days: i64, skip: impl Fn(i64) -> bool) -> TenantData {
        let mut minutes = Vec::new();
        for m in 0..days * DAY_MINUTES {
            if m % DAY_MINUTES < 360 || skip(m) {
                continue;
            }
            minutes.push(minute(m, 2));
        }
        TenantData {
            first_minute: minutes.first().map(|m| m.minute),
            minutes,
            ..TenantData::default()
        }
    }

    const DAY: i64 = DAY_MINUTES * MINUTE;

    #[test]
    fn a_quiet_night_is_not_a_gap_but_the_same_silence_at_noon_is() {
        let data = history(4, |m| {
            (3 * DAY_MINUTES + 720..3 * DAY_MINUTES + 760).contains(&m)
        });
        let window = Window {
            from: 3 * DAY,
            to: 4 * DAY,
            now: 4 * DAY,
        };
        let found = detect(&data, window, &GapRules::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        let gap = &found[0];
        assert_eq!(gap.kind, Kind::TimeGap);
        assert_eq!(gap.start, 3 * DAY + 720 * MINUTE);
        assert_eq!(gap.end, 3 * DAY + 760 * MINUTE);
        assert_eq!(gap.impact(), Impact::High);
        assert_eq!(gap.evidence["expected_events"], 80.0);
        assert_eq!(gap.confidence, 1.0);
    }

    #[test]
    fn without_history_a_silence_above_the_threshold_is_reported_with_low_confidence() {
        let data = history(1, |m| (600..606).contains(&m));
        let window = Window {
            from: 0,
            to: DAY,
            now: DAY,
        };
        let found = detect(&data, window, &GapRules::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].start, found[0].end), (600 * MINUTE, 606 * MINUTE));
        assert_eq!(found[0].confidence, 0.5);
        assert_eq!(found[0].impact(), Impact::Medium);
        // Below the threshold it is nothing.
        let rules = GapRules {
            threshold_secs: 420,
            ..GapRules::default()
        };
        assert!(detect(&data, window, &rules).is_empty());
    }

    #[test]
    fn impact_classes_follow_the_duration() {
        assert_eq!(Impact::of(299), Impact::Low);
        assert_eq!(Impact::of(300), Impact::Medium);
        assert_eq!(Impact::of(1800), Impact::Medium);
        assert_eq!(Impact::of(1801), Impact::High);
    }
}
