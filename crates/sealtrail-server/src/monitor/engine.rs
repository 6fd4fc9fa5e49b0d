//! Evaluating monitoring rules over a tenant's committed events, in seq order.
//!
//! Windows are over the time sealtrail received each event (`received_at`), which grows with
//! seq, so the same log always gives the same alerts: after a restart the state is rebuilt by
//! reading the log again, and an alert already in the log is recognised by its rule, key and
//! window start rather than raised twice.
//!
//! For each rule and group (the values of its `group_by` fields; an event without one of
//! them is not counted by that rule) the engine counts the matching events of the last window.
//! An **episode** starts when the count reaches the rule's lowest threshold and ends when it
//! falls below it again. Each episode raises exactly one alert: at once when the count reaches
//! the highest threshold (with the events in the window then), otherwise when the episode
//! ends, with the events of its peak and the severity the peak reached. A sequence rule
//! (`preceded_by`) raises when its event arrives after enough preceding ones, and starts
//! again from nothing.
//!
//! ## Memory: per group, not per event
//!
//! A group does not keep every event of its window, only what its decisions can still need:
//!
//! - counting events or targets, the newest events up to the rule's highest threshold (at
//!   most [`EXACT_EVENTS`]): while the count is below it they are all of the window, and
//!   beyond it the alert is raised at once and only the fall below the lowest threshold
//!   matters, which the newest events decide. A rule whose highest threshold is above
//!   [`EXACT_EVENTS`] sums the older events per thousandth of its window
//!   ([`BUCKETS_PER_WINDOW`]), so its count may include an event up to that long past the
//!   window;
//! - counting distinct values, each value's latest event, for as many values as the highest
//!   threshold;
//! - a sequence rule's preceding events, the newest [`EXACT_EVENTS`] (or `at_least`, if
//!   more) exactly and the older ones per thousandth of the window.
//!
//! Every alert of a rule with thresholds up to [`EXACT_EVENTS`] is therefore the same as
//! if every event were kept, except that a rule counting distinct values names, for each
//! value counted, its latest event in the window (not every event of that value). Memory
//! grows with the number of groups with events in their window, not with the events: each
//! holds at most twice its highest threshold (capped at [`EXACT_EVENTS`] unless it counts
//! distinct values), plus [`BUCKETS_PER_WINDOW`] + 1 buckets; [`Engine::held`] counts them.
//!
//! An alert names at most the newest [`MAX_ALERT_SEQS`] (256) of the events behind it, the
//! most an event's `details` array may hold; its `count` is exact whatever it names.
//!
//! [`Engine::flush`] runs after every batch the monitor reads, so it must not cost a visit to
//! every group: each rule keeps its groups in a queue by when their oldest event leaves the
//! window ([`Due`]), and a flush visits only those whose time has come, in key order, so the
//! alerts it raises together always come out in the same order. Nothing else walks a rule's
//! groups, so they are kept in hash maps: a lookup per event and group key is one hash, not
//! a dozen string comparisons down a b-tree.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

#[cfg(test)]
use sealtrail_core::canonical::Entry;
use serde::Serialize;

use sealtrail_core::event::MAX_DETAILS_ITEMS;

use super::rules::{Field, Match, Measure, Rule, Severity};

/// The most seqs an alert lists (the newest); `count` says how many events there were. An
/// alert is an event in the tenant's log, and an event's `details` arrays hold at most
/// [`MAX_DETAILS_ITEMS`] items: an alert naming more would not form an event at all.
pub const MAX_ALERT_SEQS: usize = MAX_DETAILS_ITEMS;

/// The most events of a group kept one by one, which makes every alert of a rule with
/// thresholds up to it exact (see "Memory").
pub const EXACT_EVENTS: usize = 1000;

/// The fields of a committed event the rules read, borrowed from the entry's bytes where the
/// JSON has no escapes: the monitor reads every entry of the log, and building owned strings
/// for each was a tenth of its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<'a> {
    pub seq: u64,
    /// `received_at`, unix microseconds.
    pub at: i64,
    pub action: Cow<'a, str>,
    pub activity: Option<Cow<'a, str>>,
    pub outcome: Cow<'a, str>,
    pub actor: Cow<'a, str>,
    pub actor_type: Option<Cow<'a, str>>,
    pub ip: Option<Cow<'a, str>>,
    /// `(type, id)` of each target (empty strings where the producer sent none).
    pub targets: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub source: Option<Cow<'a, str>>,
}

/// The fields [`Observed`] takes from a stored entry, borrowed where the JSON has no escapes;
/// everything else (`details` above all) is skipped without being built.
#[derive(serde::Deserialize)]
struct StoredFields<'a> {
    seq: u64,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    activity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    actor: StoredActor<'a>,
    #[serde(borrow, default)]
    targets: Vec<StoredTarget<'a>>,
    #[serde(borrow, default)]
    context: Option<StoredContext<'a>>,
    #[serde(borrow, default)]
    source: Option<StoredSource<'a>>,
}

#[derive(serde::Deserialize)]
struct StoredActor<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct StoredTarget<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct StoredContext<'a> {
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct StoredSource<'a> {
    #[serde(borrow, default)]
    app: Option<Cow<'a, str>>,
}

impl<'a> Observed<'a> {
    /// What the rules read of a stored entry, without checking the rest of it: the entry was
    /// checked when it was appended, and damage to it is the verifier's to report. `None` for
    /// bytes that do not hold these fields in their stored form (a damaged row cannot be
    /// evaluated). Reading only these fields is what keeps the monitor cheap per event: the
    /// whole entry's validation would cost several times the rules' own work.
    pub fn from_bytes(bytes: &'a [u8]) -> Option<Observed<'a>> {
        let stored: StoredFields<'a> = sealtrail_core::canonical::read_fields(bytes).ok()?;
        Some(Observed {
            seq: stored.seq,
            at: sealtrail_core::Timestamp::parse(&stored.received_at)
                .ok()?
                .unix_micros(),
            action: stored.action,
            activity: stored.activity,
            outcome: stored.outcome,
            actor: stored.actor.id,
            actor_type: stored.actor.kind,
            ip: stored.context.and_then(|c| c.ip),
            targets: stored
                .targets
                .into_iter()
                .map(|t| (t.kind.unwrap_or_default(), t.id.unwrap_or_default()))
                .collect(),
            source: stored.source.and_then(|s| s.app),
        })
    }

    /// The same fields from an entry parsed and checked in full: what
    /// [`Observed::from_bytes`] must agree with.
    #[cfg(test)]
    pub fn from_entry(entry: &Entry) -> Observed<'static> {
        let event = &entry.event;
        let owned = |text: &str| Cow::Owned(text.to_string());
        Observed {
            seq: entry.server.seq,
            at: entry.server.received_at.unix_micros(),
            action: owned(&event.action),
            activity: event.activity.map(|a| owned(a.as_str())),
            outcome: owned(event.outcome.as_str()),
            actor: owned(&event.actor.id),
            actor_type: event.actor.kind.map(|k| owned(k.as_str())),
            ip: event
                .context
                .as_ref()
                .and_then(|c| c.ip)
                .map(|ip| Cow::Owned(ip.to_string())),
            targets: event
                .targets
                .iter()
                .map(|t| {
                    (
                        owned(t.kind.as_deref().unwrap_or_default()),
                        owned(t.id.as_deref().unwrap_or_default()),
                    )
                })
                .collect(),
            source: event
                .source
                .as_ref()
                .and_then(|s| s.app.as_deref())
                .map(owned),
        }
    }

    pub(super) fn values(&self, field: Field) -> Vec<Cow<'_, str>> {
        fn one<'v>(v: Option<&'v Cow<'_, str>>) -> Vec<Cow<'v, str>> {
            v.into_iter().map(|v| Cow::Borrowed(v.as_ref())).collect()
        }
        match field {
            Field::Action => vec![Cow::Borrowed(self.action.as_ref())],
            Field::Activity => one(self.activity.as_ref()),
            Field::Outcome => vec![Cow::Borrowed(self.outcome.as_ref())],
            Field::Actor => vec![Cow::Borrowed(self.actor.as_ref())],
            Field::ActorType => one(self.actor_type.as_ref()),
            Field::Ip => one(self.ip.as_ref()),
            Field::Target => self
                .targets
                .iter()
                .map(|(kind, id)| {
                    let mut value = String::with_capacity(kind.len() + 1 + id.len());
                    value.push_str(kind);
                    value.push(':');
                    value.push_str(id);
                    Cow::Owned(value)
                })
                .collect(),
            Field::TargetType => self
                .targets
                .iter()
                .map(|(kind, _)| Cow::Borrowed(kind.as_ref()))
                .collect(),
            Field::Source => one(self.source.as_ref()),
        }
    }
}

pub(super) fn matches(m: &Match, event: &Observed) -> bool {
    let action = match &m.action {
        None => true,
        Some(want) => match want.strip_suffix('*') {
            Some(prefix) => event.action.starts_with(prefix),
            None => event.action == *want,
        },
    };
    action
        && (m.activity.is_empty()
            || event
                .activity
                .as_ref()
                .is_some_and(|a| m.activity.iter().any(|w| w == a)))
        && m.outcome.as_ref().is_none_or(|o| *o == event.outcome)
        && m.actor_type
            .as_ref()
            .is_none_or(|t| event.actor_type.as_deref() == Some(t.as_str()))
}

/// The group keys of an event for a rule: one per combination of its group_by values
/// (`actor=u-1`, `ip=10.0.0.1,actor=u-1`); the tenant's one group (`""`) without group_by.
pub(super) fn keys(group_by: &[Field], event: &Observed) -> Vec<String> {
    let mut keys = vec![String::new()];
    for field in group_by {
        let values = event.values(*field);
        let name = field.as_str();
        let mut next = Vec::with_capacity(keys.len() * values.len());
        for key in &keys {
            for value in &values {
                let mut combined = String::with_capacity(key.len() + name.len() + value.len() + 2);
                if !key.is_empty() {
                    combined.push_str(key);
                    combined.push(',');
                }
                combined.push_str(name);
                combined.push('=');
                combined.push_str(value);
                next.push(combined);
            }
        }
        keys = next;
    }
    keys
}

/// An alert a rule raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub rule: String,
    pub severity: Severity,
    /// The group: `field=value` pairs, `""` for the whole tenant.
    pub key: String,
    /// `received_at` of the first and last event behind it, unix microseconds.
    pub window_start: i64,
    pub window_end: i64,
    pub count: u64,
    /// The events behind it, the newest [`MAX_ALERT_SEQS`] of those the engine can name.
    pub seqs: Vec<u64>,
}

/// A counted event: when it was received, its seq and what it counts for (1, or its number
/// of targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    at: i64,
    seq: u64,
    weight: u64,
}

/// Counted events too old to be named in an alert, summed per bucket of `received_at` (a
/// [`BUCKETS_PER_WINDOW`]th of the window, aligned on the epoch).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i64,
    first_at: i64,
    last_at: i64,
    weight: u64,
}

/// How finely counts older than a group's exact tail are kept: the window in this many
/// buckets, so such a count may include an event up to a thousandth of the window past it.
pub const BUCKETS_PER_WINDOW: i64 = 1000;

/// The events one group counts within its window: the newest exactly, as long as they are
/// needed (up to `keep` of weight), the older ones either summed per bucket or, when
/// nothing can ask for them any more, dropped.
///
/// Why dropping is exact: the tail is the newest events, and it is only cut while what
/// remains weighs at least `keep`. So while the group's true count is below `keep`, the tail
/// holds every event of the window; when the true count is at least `keep`, so is the
/// tail's. Every decision that compares the count with a threshold up to `keep` therefore
/// comes out as if every event were kept.
#[derive(Debug)]
struct Tally {
    exact: VecDeque<Item>,
    exact_weight: u64,
    older: VecDeque<Bucket>,
    older_weight: u64,
    /// The tail's weight once cut.
    keep: u64,
    /// Whether events cut from the tail still count (summed per bucket) or are dropped.
    spill: bool,
    /// Bucket width, microseconds.
    width: i64,
}

impl Tally {
    fn new(keep: u64, spill: bool, window: i64) -> Tally {
        Tally {
            exact: VecDeque::new(),
            exact_weight: 0,
            older: VecDeque::new(),
            older_weight: 0,
            keep: keep.max(1),
            spill,
            width: (window / BUCKETS_PER_WINDOW).max(1),
        }
    }

    fn push(&mut self, item: Item) {
        self.exact_weight += item.weight;
        self.exact.push_back(item);
    }

    /// Cuts the tail down to `keep` (after the decisions and alerts of the latest event, which
    /// see the whole window).
    fn trim(&mut self) {
        while let Some(front) = self.exact.front().copied() {
            if self.exact.len() == 1 || self.exact_weight - front.weight < self.keep {
                break;
            }
            self.exact.pop_front();
            self.exact_weight -= front.weight;
            if !self.spill {
                continue;
            }
            self.older_weight += front.weight;
            let index = front.at.div_euclid(self.width);
            match self.older.back_mut() {
                Some(bucket) if bucket.index == index => {
                    bucket.last_at = front.at;
                    bucket.weight += front.weight;
                }
                _ => self.older.push_back(Bucket {
                    index,
                    first_at: front.at,
                    last_at: front.at,
                    weight: front.weight,
                }),
            }
        }
    }

    /// Forgets the events received at or before `horizon`; a bucket once all of its are.
    fn evict(&mut self, horizon: i64) {
        while let Some(bucket) = self.older.front().filter(|b| b.last_at <= horizon) {
            self.older_weight -= bucket.weight;
            self.older.pop_front();
        }
        while let Some(item) = self.exact.front().filter(|i| i.at <= horizon) {
            self.exact_weight -= item.weight;
            self.exact.pop_front();
        }
    }

    fn count(&self) -> u64 {
        self.exact_weight + self.older_weight
    }

    /// The time at which [`Tally::evict`] would first forget something: the oldest bucket's
    /// last event, else the oldest exact event.
    fn next_eviction(&self) -> Option<i64> {
        self.older
            .front()
            .map(|b| b.last_at)
            .or_else(|| self.exact.front().map(|i| i.at))
    }

    fn first_at(&self) -> Option<i64> {
        self.older
            .front()
            .map(|b| b.first_at)
            .or_else(|| self.exact.front().map(|i| i.at))
    }

    fn held(&self) -> usize {
        self.exact.len() + self.older.len()
    }
}

/// The distinct values one group counts within its window: each value's latest event, for
/// the `keep` values seen most recently. A value is in the window exactly when its latest
/// event is; and a value not among the `keep` most recent can only be in the window when
/// all of those are too, so while the true count is below `keep` every value of the window
/// is held, and when it is not, `keep` are.
///
/// `keep` is the rule's highest threshold (25 for the built-ins), so the values are found by
/// a scan of their fingerprints rather than through a map per group.
#[derive(Debug)]
struct Distinct {
    /// By their latest event, oldest first.
    values: VecDeque<Value>,
    keep: usize,
}

#[derive(Debug)]
struct Value {
    /// `(received_at, seq, place among the event's values)` of its latest event.
    place: (i64, u64, u32),
    fingerprint: u64,
    value: Box<str>,
}

/// FNV-1a: a quick first comparison of two values.
fn fingerprint(value: &str) -> u64 {
    value.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Distinct {
    fn new(keep: u64) -> Distinct {
        Distinct {
            values: VecDeque::new(),
            keep: usize::try_from(keep).unwrap_or(usize::MAX).max(1),
        }
    }

    fn find(&self, value: &str, fingerprint: u64) -> Option<usize> {
        self.values
            .iter()
            .position(|v| v.fingerprint == fingerprint && *v.value == *value)
    }

    fn contains(&self, value: &str) -> bool {
        self.find(value, fingerprint(value)).is_some()
    }

    fn push(&mut self, value: &str, place: (i64, u64, u32)) {
        let print = fingerprint(value);
        let held = match self.find(value, print) {
            Some(at) => {
                let mut held = self.values.remove(at).expect("found");
                held.place = place;
                held
            }
            None => Value {
                place,
                fingerprint: print,
                value: value.into(),
            },
        };
        self.values.push_back(held);
    }

    fn trim(&mut self) {
        while self.values.len() > self.keep {
            self.values.pop_front();
        }
    }

    fn evict(&mut self, horizon: i64) {
        while self.values.front().is_some_and(|v| v.place.0 <= horizon) {
            self.values.pop_front();
        }
    }

    fn items(&self) -> impl Iterator<Item = Item> + '_ {
        self.values.iter().map(|v| Item {
            at: v.place.0,
            seq: v.place.1,
            weight: 1,
        })
    }
}

#[derive(Debug)]
enum Counter {
    Events(Tally),
    Distinct(Distinct),
}

impl Counter {
    fn evict(&mut self, horizon: i64) {
        match self {
            Counter::Events(tally) => tally.evict(horizon),
            Counter::Distinct(distinct) => distinct.evict(horizon),
        }
    }

    fn count(&self) -> u64 {
        match self {
            Counter::Events(tally) => tally.count(),
            Counter::Distinct(distinct) => distinct.values.len() as u64,
        }
    }

    fn trim(&mut self) {
        match self {
            Counter::Events(tally) => tally.trim(),
            Counter::Distinct(distinct) => distinct.trim(),
        }
    }

    /// `received_at` of the oldest event held.
    fn oldest_at(&self) -> Option<i64> {
        match self {
            Counter::Events(tally) => tally.next_eviction(),
            Counter::Distinct(distinct) => distinct.values.front().map(|v| v.place.0),
        }
    }

    fn held(&self) -> usize {
        match self {
            Counter::Events(tally) => tally.held(),
            Counter::Distinct(distinct) => distinct.values.len(),
        }
    }

    /// The events behind the count now: the first one's `received_at` and the events that
    /// can be named (the newest).
    fn behind(&self) -> Behind {
        match self {
            Counter::Events(tally) => Behind {
                first_at: tally.first_at().unwrap_or(0),
                items: tally.exact.iter().copied().collect(),
            },
            Counter::Distinct(distinct) => {
                let items: Vec<Item> = distinct.items().collect();
                Behind {
                    first_at: items.first().map_or(0, |i| i.at),
                    items,
                }
            }
        }
    }
}

/// The events behind an alert.
#[derive(Debug, Clone, Default)]
struct Behind {
    /// `received_at` of the first event counted.
    first_at: i64,
    /// The events that can be named, oldest first.
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
struct Episode {
    peak: u64,
    /// The events of the peak, once the group has moved on from it; `None` while the group's
    /// state is the peak (so a rising count does not copy its events at every step).
    peak_behind: Option<Behind>,
    raised: bool,
}

#[derive(Debug)]
struct Group {
    counter: Counter,
    episode: Option<Episode>,
}

impl Group {
    fn new(rule: &Rule) -> Group {
        let window = window_micros(rule);
        let top = rule.thresholds.last().map_or(1, |(n, _)| *n);
        let counter = match rule.distinct {
            Some(_) => Counter::Distinct(Distinct::new(top)),
            // Up to the highest threshold every decision is exact with the tail alone, and
            // beyond it nothing asks for the count; past EXACT_EVENTS the older events are
            // summed per bucket.
            None => {
                let cap = EXACT_EVENTS as u64;
                Counter::Events(Tally::new(top.min(cap), top > cap, window))
            }
        };
        Group {
            counter,
            episode: None,
        }
    }

    fn held(&self) -> usize {
        self.counter.held()
            + self
                .episode
                .as_ref()
                .and_then(|e| e.peak_behind.as_ref())
                .map_or(0, |b| b.items.len())
    }

    /// Before the group's events change without its count rising: the peak's events, if
    /// the group is at its episode's peak.
    fn keep_peak(&mut self) {
        if let Some(episode) = &mut self.episode
            && !episode.raised
            && episode.peak_behind.is_none()
        {
            episode.peak_behind = Some(self.counter.behind());
        }
    }

    fn evict(&mut self, horizon: i64) {
        if self.counter.oldest_at().is_some_and(|at| at <= horizon) {
            self.keep_peak();
            self.counter.evict(horizon);
        }
    }
}

/// A sequence rule's preceding events of a group: all are counted (the alert says how many),
/// the newest [`EXACT_EVENTS`] (or `at_least`, if more) exactly.
fn preceding_tally(rule: &Rule) -> Tally {
    let at_least = rule.preceded_by.as_ref().map_or(1, |p| p.at_least);
    Tally::new(at_least.max(EXACT_EVENTS as u64), true, window_micros(rule))
}

fn window_micros(rule: &Rule) -> i64 {
    i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX)
}

/// The keys of one rule's groups by when each may next have something to forget: every group
/// held has an entry no later than the `received_at` of its oldest event (the oldest bucket's
/// last, for a counter's older buckets), which only grows while the group lives, since events
/// come in `received_at` order. Entries of groups removed since are passed over when they come
/// due.
#[derive(Default)]
struct Due {
    queue: BinaryHeap<Reverse<(i64, String)>>,
}

impl Due {
    fn track(&mut self, at: i64, key: &str) {
        self.queue.push(Reverse((at, key.to_string())));
    }

    /// The keys with an entry at or before `horizon`, in key order and each once; their
    /// entries are taken off.
    fn take(&mut self, horizon: i64) -> Vec<String> {
        let mut keys = Vec::new();
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= horizon)
        {
            let Reverse((_, key)) = self.queue.pop().expect("peeked");
            keys.push(key);
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// The state of every rule over one tenant's log.
pub struct Engine {
    rules: Vec<Rule>,
    /// Per rule: its groups by key, and when each may next lose an event.
    groups: Vec<HashMap<String, Group>>,
    groups_due: Vec<Due>,
    /// Per sequence rule: the preceding events of each group, and when each may next lose one.
    preceding: Vec<HashMap<String, Tally>>,
    preceding_due: Vec<Due>,
}

fn severity_at(rule: &Rule, count: u64) -> Option<Severity> {
    rule.thresholds
        .iter()
        .rev()
        .find(|(n, _)| count >= *n)
        .map(|(_, s)| *s)
}

fn alert(rule: &Rule, key: &str, severity: Severity, count: u64, behind: &Behind) -> Alert {
    let named = &behind.items[behind.items.len().saturating_sub(MAX_ALERT_SEQS)..];
    Alert {
        rule: rule.name.clone(),
        severity,
        key: key.to_string(),
        window_start: behind.first_at,
        window_end: behind.items.last().map_or(0, |i| i.at),
        count,
        seqs: named.iter().map(|i| i.seq).collect(),
    }
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Engine {
        let n = rules.len();
        Engine {
            rules,
            groups: (0..n).map(|_| HashMap::new()).collect(),
            groups_due: (0..n).map(|_| Due::default()).collect(),
            preceding: (0..n).map(|_| HashMap::new()).collect(),
            preceding_due: (0..n).map(|_| Due::default()).collect(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many events, buckets and distinct values the engine holds for all its groups
    /// (and the events an open episode's peak names): what its memory grows with.
    pub fn held(&self) -> usize {
        let groups: usize = self
            .groups
            .iter()
            .flat_map(|groups| groups.values())
            .map(Group::held)
            .sum();
        let preceding: usize = self
            .preceding
            .iter()
            .flat_map(|groups| groups.values())
            .map(Tally::held)
            .sum();
        groups + preceding
    }

    /// How many groups the engine holds (sequence rules' preceding tallies included), and how
    /// many entries wait in their queues.
    #[cfg(test)]
    pub(super) fn groups_held(&self) -> (usize, usize) {
        let groups = self.groups.iter().map(HashMap::len).sum::<usize>()
            + self.preceding.iter().map(HashMap::len).sum::<usize>();
        let queued = self
            .groups_due
            .iter()
            .chain(&self.preceding_due)
            .map(|due| due.queue.len())
            .sum();
        (groups, queued)
    }

    /// Takes the next event of the log (in seq order); returns the alerts it raises.
    pub fn push(&mut self, event: &Observed) -> Vec<Alert> {
        let mut raised = Vec::new();
        for r in 0..self.rules.len() {
            let rule = &self.rules[r];
            let horizon = event.at.saturating_sub(window_micros(rule));
            let item = Item {
                at: event.at,
                seq: event.seq,
                weight: 1,
            };
            if let Some(preceded) = &rule.preceded_by {
                let preceding = &mut self.preceding[r];
                if matches(&preceded.matches, event) {
                    for key in keys(&rule.group_by, event) {
                        let tally = preceding.entry(key).or_insert_with_key(|key| {
                            self.preceding_due[r].track(event.at, key);
                            preceding_tally(rule)
                        });
                        tally.evict(horizon);
                        tally.push(item);
                        tally.trim();
                    }
                }
                if matches(&rule.matches, event) {
                    for key in keys(&rule.group_by, event) {
                        let Some(tally) = preceding.get_mut(&key) else {
                            continue;
                        };
                        tally.evict(horizon);
                        let count = tally.count();
                        if count >= preceded.at_least {
                            let mut behind = Behind {
                                first_at: tally.first_at().unwrap_or(event.at),
                                items: tally.exact.iter().copied().collect(),
                            };
                            behind.items.push(item);
                            let severity = severity_at(rule, 1).unwrap_or(Severity::Warning);
                            raised.push(alert(rule, &key, severity, count, &behind));
                            preceding.remove(&key);
                        }
                    }
                }
                continue;
            }
            if !matches(&rule.matches, event) {
                continue;
            }
            let weight = match rule.measure {
                Measure::Events => 1,
                Measure::Targets => event.targets.len().max(1) as u64,
            };
            let distinct_values = rule.distinct.map(|f| event.values(f));
            let groups = &mut self.groups[r];
            for key in keys(&rule.group_by, event) {
                let group = groups.entry(key.clone()).or_insert_with_key(|key| {
                    self.groups_due[r].track(event.at, key);
                    Group::new(rule)
                });
                group.evict(horizon);
                if let Some(ended) = end_episode(rule, &key, group) {
                    raised.push(ended);
                }
                if let (Counter::Distinct(distinct), Some(values)) =
                    (&group.counter, &distinct_values)
                    && values.iter().any(|v| distinct.contains(v))
                {
                    group.keep_peak();
                }
                match (&mut group.counter, &distinct_values) {
                    (Counter::Distinct(distinct), Some(values)) => {
                        for (place, value) in values.iter().enumerate() {
                            let place = u32::try_from(place).unwrap_or(u32::MAX);
                            distinct.push(value, (event.at, event.seq, place));
                        }
                    }
                    (Counter::Events(tally), _) => tally.push(Item { weight, ..item }),
                    (Counter::Distinct(_), None) => unreachable!("a distinct rule has values"),
                }
                let count = group.counter.count();
                raised.extend(decide(rule, &key, group, count));
                group.counter.trim();
            }
        }
        raised
    }

    /// Ends the episodes whose window has passed by `now` (unix microseconds) — the time of
    /// the log's latest event, or the clock's while the log is quiet — and returns their
    /// alerts; forgets groups with nothing left in their window.
    pub fn flush(&mut self, now: i64) -> Vec<Alert> {
        let mut raised = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let horizon = now.saturating_sub(window_micros(rule));
            // Only a group with an event at or before the horizon changes here: in any other
            // the count is what the last push left, so its episode goes on (or it has none).
            let (groups, due) = (&mut self.groups[r], &mut self.groups_due[r]);
            for key in due.take(horizon) {
                let Some(group) = groups.get_mut(&key) else {
                    continue;
                };
                group.evict(horizon);
                if let Some(ended) = end_episode(rule, &key, group) {
                    raised.push(ended);
                }
                match group.counter.oldest_at() {
                    Some(at) => due.track(at, &key),
                    None if group.episode.is_some() => due.track(horizon, &key),
                    None => {
                        groups.remove(&key);
                    }
                }
            }
            let (preceding, due) = (&mut self.preceding[r], &mut self.preceding_due[r]);
            for key in due.take(horizon) {
                let Some(tally) = preceding.get_mut(&key) else {
                    continue;
                };
                tally.evict(horizon);
                match tally.next_eviction() {
                    Some(at) => due.track(at, &key),
                    None => {
                        preceding.remove(&key);
                    }
                }
            }
        }
        raised
    }
}

/// After an event of the group: starts its episode if the count reached the lowest threshold,
/// follows its peak, and raises its alert at once if the count reached the highest.
fn decide(rule: &Rule, key: &str, group: &mut Group, count: u64) -> Option<Alert> {
    if count < rule.thresholds[0].0 {
        return None;
    }
    let episode = group.episode.get_or_insert(Episode {
        peak: 0,
        peak_behind: None,
        raised: false,
    });
    if episode.raised {
        return None;
    }
    if count > episode.peak {
        episode.peak = count;
        episode.peak_behind = None;
    }
    let top = rule.thresholds.last().expect("a rule has thresholds");
    if count < top.0 {
        return None;
    }
    episode.raised = true;
    let behind = episode
        .peak_behind
        .take()
        .unwrap_or_else(|| group.counter.behind());
    Some(alert(rule, key, top.1, count, &behind))
}

/// Ends the group's episode if its count fell below the lowest threshold; its alert if it
/// had not raised one yet.
fn end_episode(rule: &Rule, key: &str, group: &mut Group) -> Option<Alert> {
    if group.counter.count() >= rule.thresholds[0].0 {
        return None;
    }
    let episode = group.episode.take()?;
    if episode.raised {
        return None;
    }
    let severity = severity_at(rule, episode.peak)?;
    let behind = episode
        .peak_behind
        .unwrap_or_else(|| group.counter.behind());
    Some(alert(rule, key, severity, episode.peak, &behind))
}
