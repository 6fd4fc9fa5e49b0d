//! Evaluating monitoring rules over a tenant's committed events, in seq order.
//!
//! Windows are over the time sealtrail received each event (`received_at`), which grows with
//! seq, so the same log always gives the same alerts: after a restart the state is rebuilt by
//! reading the log again, and an alert already in the log is recognised by its rule, key and
//! window start rather than raised twice.
//!
//! For each rule and group (the values of its `group_by` fields; an event without one of
//! them is not counted by that rule) the engine keeps the matching events of the last window.
//! An **episode** starts when the count reaches the rule's lowest threshold and ends when it
//! falls below it again. Each episode raises exactly one alert: at once when the count reaches
//! the highest threshold (with the events in the window then), otherwise when the episode
//! ends, with the events of its peak and the severity the peak reached. A sequence rule
//! (`preceded_by`) raises when its event arrives after enough preceding ones, and starts
//! again from nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sealtrail_core::canonical::Entry;
use serde::Serialize;

use super::rules::{Field, Match, Measure, Rule, Severity};

/// The most seqs an alert lists; `count` says how many events there were.
pub const MAX_ALERT_SEQS: usize = 1000;

/// The fields of a committed event the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub seq: u64,
    /// `received_at`, unix microseconds.
    pub at: i64,
    pub action: String,
    pub activity: Option<String>,
    pub outcome: String,
    pub actor: String,
    pub actor_type: Option<String>,
    pub ip: Option<String>,
    /// `(type, id)` of each target (empty strings where the producer sent none).
    pub targets: Vec<(String, String)>,
    pub source: Option<String>,
}

impl Observed {
    pub fn from_entry(entry: &Entry) -> Observed {
        let event = &entry.event;
        Observed {
            seq: entry.server.seq,
            at: entry.server.received_at.unix_micros(),
            action: event.action.clone(),
            activity: event.activity.map(|a| a.as_str().to_string()),
            outcome: event.outcome.as_str().to_string(),
            actor: event.actor.id.clone(),
            actor_type: event.actor.kind.map(|k| k.as_str().to_string()),
            ip: event
                .context
                .as_ref()
                .and_then(|c| c.ip)
                .map(|ip| ip.to_string()),
            targets: event
                .targets
                .iter()
                .map(|t| {
                    (
                        t.kind.clone().unwrap_or_default(),
                        t.id.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            source: event.source.as_ref().and_then(|s| s.app.clone()),
        }
    }

    fn values(&self, field: Field) -> Vec<String> {
        let one = |v: Option<&String>| v.into_iter().cloned().collect();
        match field {
            Field::Action => vec![self.action.clone()],
            Field::Activity => one(self.activity.as_ref()),
            Field::Outcome => vec![self.outcome.clone()],
            Field::Actor => vec![self.actor.clone()],
            Field::ActorType => one(self.actor_type.as_ref()),
            Field::Ip => one(self.ip.as_ref()),
            Field::Target => self
                .targets
                .iter()
                .map(|(kind, id)| format!("{kind}:{id}"))
                .collect(),
            Field::TargetType => self.targets.iter().map(|(kind, _)| kind.clone()).collect(),
            Field::Source => one(self.source.as_ref()),
        }
    }
}

fn matches(m: &Match, event: &Observed) -> bool {
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
            .is_none_or(|t| event.actor_type.as_ref() == Some(t))
}

/// The group keys of an event for a rule: one per combination of its group_by values
/// (`actor=u-1`, `ip=10.0.0.1,actor=u-1`); the tenant's one group (`""`) without group_by.
fn keys(group_by: &[Field], event: &Observed) -> Vec<String> {
    let mut keys = vec![String::new()];
    for field in group_by {
        let values = event.values(*field);
        let mut next = Vec::with_capacity(keys.len() * values.len());
        for key in &keys {
            for value in &values {
                let sep = if key.is_empty() { "" } else { "," };
                next.push(format!("{key}{sep}{}={value}", field.as_str()));
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
    /// The events behind it, at most [`MAX_ALERT_SEQS`].
    pub seqs: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Item {
    at: i64,
    seq: u64,
    weight: u64,
    distinct: Option<String>,
}

#[derive(Debug, Clone)]
struct Episode {
    peak: u64,
    peak_items: Vec<Item>,
    raised: bool,
}

#[derive(Debug, Default)]
struct Group {
    items: VecDeque<Item>,
    total: u64,
    distinct: HashMap<String, u64>,
    episode: Option<Episode>,
}

impl Group {
    fn push(&mut self, item: Item) {
        self.total += item.weight;
        if let Some(value) = &item.distinct {
            *self.distinct.entry(value.clone()).or_default() += 1;
        }
        self.items.push_back(item);
    }

    fn evict(&mut self, before_or_at: i64) {
        while self.items.front().is_some_and(|i| i.at <= before_or_at) {
            let item = self.items.pop_front().expect("checked");
            self.total -= item.weight;
            if let Some(value) = &item.distinct
                && let Some(n) = self.distinct.get_mut(value)
            {
                *n -= 1;
                if *n == 0 {
                    self.distinct.remove(value);
                }
            }
        }
    }

    fn count(&self, distinct: bool) -> u64 {
        if distinct {
            self.distinct.len() as u64
        } else {
            self.total
        }
    }
}

/// The state of every rule over one tenant's log.
pub struct Engine {
    rules: Vec<Rule>,
    /// Per rule: its groups by key.
    groups: Vec<BTreeMap<String, Group>>,
    /// Per sequence rule: the preceding events of each group.
    preceding: Vec<BTreeMap<String, Group>>,
}

fn severity_at(rule: &Rule, count: u64) -> Option<Severity> {
    rule.thresholds
        .iter()
        .rev()
        .find(|(n, _)| count >= *n)
        .map(|(_, s)| *s)
}

fn alert(rule: &Rule, key: &str, severity: Severity, count: u64, items: &[Item]) -> Alert {
    Alert {
        rule: rule.name.clone(),
        severity,
        key: key.to_string(),
        window_start: items.first().map_or(0, |i| i.at),
        window_end: items.last().map_or(0, |i| i.at),
        count,
        seqs: items.iter().take(MAX_ALERT_SEQS).map(|i| i.seq).collect(),
    }
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Engine {
        let n = rules.len();
        Engine {
            rules,
            groups: (0..n).map(|_| BTreeMap::new()).collect(),
            preceding: (0..n).map(|_| BTreeMap::new()).collect(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Takes the next event of the log (in seq order); returns the alerts it raises.
    pub fn push(&mut self, event: &Observed) -> Vec<Alert> {
        let mut raised = Vec::new();
        for r in 0..self.rules.len() {
            let rule = &self.rules[r];
            let window = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX);
            let horizon = event.at.saturating_sub(window);
            if let Some(preceded) = &rule.preceded_by {
                if matches(&preceded.matches, event) {
                    for key in keys(&rule.group_by, event) {
                        let group = self.preceding[r].entry(key).or_default();
                        group.evict(horizon);
                        group.push(Item {
                            at: event.at,
                            seq: event.seq,
                            weight: 1,
                            distinct: None,
                        });
                    }
                }
                if matches(&rule.matches, event) {
                    for key in keys(&rule.group_by, event) {
                        let Some(group) = self.preceding[r].get_mut(&key) else {
                            continue;
                        };
                        group.evict(horizon);
                        if group.total >= preceded.at_least {
                            let mut items: Vec<Item> = group.items.iter().cloned().collect();
                            items.push(Item {
                                at: event.at,
                                seq: event.seq,
                                weight: 1,
                                distinct: None,
                            });
                            let severity = severity_at(rule, 1).unwrap_or(Severity::Warning);
                            raised.push(alert(rule, &key, severity, group.total, &items));
                            self.preceding[r].remove(&key);
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
            for key in keys(&rule.group_by, event) {
                let group = self.groups[r].entry(key.clone()).or_default();
                group.evict(horizon);
                if let Some(ended) = end_episode(rule, &key, group) {
                    raised.push(ended);
                }
                match &distinct_values {
                    Some(values) => {
                        for value in values {
                            group.push(Item {
                                at: event.at,
                                seq: event.seq,
                                weight: 1,
                                distinct: Some(value.clone()),
                            });
                        }
                    }
                    None => group.push(Item {
                        at: event.at,
                        seq: event.seq,
                        weight,
                        distinct: None,
                    }),
                }
                let count = group.count(rule.distinct.is_some());
                let lowest = rule.thresholds[0].0;
                if count < lowest {
                    continue;
                }
                let episode = group.episode.get_or_insert(Episode {
                    peak: 0,
                    peak_items: Vec::new(),
                    raised: false,
                });
                if episode.raised {
                    continue;
                }
                if count > episode.peak {
                    episode.peak = count;
                    episode.peak_items = group.items.iter().cloned().collect();
                }
                let top = rule.thresholds.last().expect("a rule has thresholds");
                if count >= top.0 {
                    episode.raised = true;
                    raised.push(alert(rule, &key, top.1, count, &episode.peak_items));
                }
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
            let window = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX);
            let horizon = now.saturating_sub(window);
            self.groups[r].retain(|key, group| {
                group.evict(horizon);
                if let Some(ended) = end_episode(rule, key, group) {
                    raised.push(ended);
                }
                !group.items.is_empty() || group.episode.is_some()
            });
            self.preceding[r].retain(|_, group| {
                group.evict(horizon);
                !group.items.is_empty()
            });
        }
        raised
    }
}

/// Ends the group's episode if its count fell below the lowest threshold; its alert if it
/// had not raised one yet.
fn end_episode(rule: &Rule, key: &str, group: &mut Group) -> Option<Alert> {
    let count = group.count(rule.distinct.is_some());
    if count >= rule.thresholds[0].0 {
        return None;
    }
    let episode = group.episode.take()?;
    if episode.raised {
        return None;
    }
    let severity = severity_at(rule, episode.peak)?;
    Some(alert(
        rule,
        key,
        severity,
        episode.peak,
        &episode.peak_items,
    ))
}
