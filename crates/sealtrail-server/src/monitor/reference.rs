//! The engine as first written, keeping every matching event of each group's window: the
//! oracle the compact engine is compared with on random logs (tests only).

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::engine::{Alert, MAX_ALERT_SEQS, Observed, keys, matches};
use super::rules::{Measure, Rule, Severity};

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

pub struct Reference {
    rules: Vec<Rule>,
    groups: Vec<BTreeMap<String, Group>>,
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
        seqs: items[items.len().saturating_sub(MAX_ALERT_SEQS)..]
            .iter()
            .map(|i| i.seq)
            .collect(),
    }
}

fn window(rule: &Rule) -> i64 {
    i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX)
}

impl Reference {
    pub fn new(rules: Vec<Rule>) -> Reference {
        let n = rules.len();
        Reference {
            rules,
            groups: (0..n).map(|_| BTreeMap::new()).collect(),
            preceding: (0..n).map(|_| BTreeMap::new()).collect(),
        }
    }

    pub fn push(&mut self, event: &Observed) -> Vec<Alert> {
        let mut raised = Vec::new();
        for r in 0..self.rules.len() {
            let rule = &self.rules[r];
            let horizon = event.at.saturating_sub(window(rule));
            let item = |weight, distinct| Item {
                at: event.at,
                seq: event.seq,
                weight,
                distinct,
            };
            if let Some(preceded) = &rule.preceded_by {
                if matches(&preceded.matches, event) {
                    for key in keys(&rule.group_by, event) {
                        let group = self.preceding[r].entry(key).or_default();
                        group.evict(horizon);
                        group.push(item(1, None));
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
                            items.push(item(1, None));
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
                            group.push(item(1, Some(value.to_string())));
                        }
                    }
                    None => group.push(item(weight, None)),
                }
                let count = group.count(rule.distinct.is_some());
                if count < rule.thresholds[0].0 {
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

    pub fn flush(&mut self, now: i64) -> Vec<Alert> {
        let mut raised = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let horizon = now.saturating_sub(window(rule));
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

fn end_episode(rule: &Rule, key: &str, group: &mut Group) -> Option<Alert> {
    if group.count(rule.distinct.is_some()) >= rule.thresholds[0].0 {
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
