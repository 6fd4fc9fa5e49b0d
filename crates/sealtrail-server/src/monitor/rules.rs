//! Monitoring rules: what an operator writes to be alerted of a pattern in a tenant's log,
//! and the built-in rules with the operations runbook's thresholds.
//!
//! A rule is declarative: which events it counts (`match`), how they are grouped (`group_by`),
//! over how long (`window`), what is counted (events, their targets, or distinct values of a
//! field), and the counts at which it is a `warning` or `critical`. A sequence rule also names
//! what must precede the event it matches (`preceded_by`: at least N events of another match in
//! the same group within the window), for "a successful login after a burst of failures".
//!
//! ```toml
//! [[monitor.rules]]
//! name = "failed-logins-per-user"
//! match = { activity = "login", outcome = "failure" }
//! group_by = ["actor"]
//! window = "1m"
//! warning = 5
//! critical = 10
//! ```
//!
//! Fields a rule can match on, group by or count distinct values of: `action` (exact, or a
//! prefix ending in `*`), `activity`, `outcome`, `actor`, `actor_type`, `ip`, `target`
//! (`type:id`, each target of an event), `target_type`, `source` (`source.app`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A field of an event a rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Action,
    Activity,
    Outcome,
    Actor,
    ActorType,
    Ip,
    Target,
    TargetType,
    Source,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Action => "action",
            Field::Activity => "activity",
            Field::Outcome => "outcome",
            Field::Actor => "actor",
            Field::ActorType => "actor_type",
            Field::Ip => "ip",
            Field::Target => "target",
            Field::TargetType => "target_type",
            Field::Source => "source",
        }
    }
}

/// Which events a rule counts: every condition given must hold (an absent one always does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Exact, or a prefix ending in `*` (`"patient.*"`).
    pub action: Option<String>,
    /// Any of these activities.
    #[serde(default, deserialize_with = "one_or_many")]
    pub activity: Vec<String>,
    pub outcome: Option<String>,
    pub actor_type: Option<String>,
}

/// What a rule counts in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Matching events.
    #[default]
    Events,
    /// The targets of matching events (records exported or disclosed).
    Targets,
}

/// A sequence rule's condition: at least `at_least` events matching `match` in the same group
/// within the window before the event the rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preceded {
    #[serde(rename = "match")]
    pub matches: Match,
    pub at_least: u64,
}

/// A rule as the configuration writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// Empty: one group, the whole tenant.
    #[serde(default)]
    pub group_by: Vec<Field>,
    /// A duration: `30s`, `1m`, `1h`.
    pub window: String,
    #[serde(default)]
    pub measure: Measure,
    /// Count distinct values of this field instead.
    #[serde(default)]
    pub distinct: Option<Field>,
    #[serde(default)]
    pub preceded_by: Option<Preceded>,
    pub warning: Option<u64>,
    pub critical: Option<u64>,
    /// `false` turns a built-in rule off.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

/// A rule ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub matches: Match,
    pub group_by: Vec<Field>,
    pub window: Duration,
    pub measure: Measure,
    pub distinct: Option<Field>,
    pub preceded_by: Option<Preceded>,
    /// `(count, severity)` by count, lowest first; at least one.
    pub thresholds: Vec<(u64, Severity)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Why a rule cannot be used; names the rule and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("monitoring rule {rule:?}: {setting} {problem}")]
pub struct RuleError {
    pub rule: String,
    pub setting: &'static str,
    pub problem: String,
}

/// The longest rule name. An alert's event carries the rule's name, and what it carries
/// must fit an event (see `alerts`).
pub const MAX_RULE_NAME_CHARS: usize = 128;

/// The longest window a rule may have: its events are kept in memory for that long.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

impl RuleDef {
    /// Checks the definition and makes the rule.
    pub fn compile(&self) -> Result<Rule, RuleError> {
        let fail = |setting: &'static str, problem: String| RuleError {
            rule: self.name.clone(),
            setting,
            problem,
        };
        if self.name.is_empty()
            || self.name.len() > MAX_RULE_NAME_CHARS
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(fail(
                "name",
                format!("must be 1 to {MAX_RULE_NAME_CHARS} lowercase letters, digits and '-'"),
            ));
        }
        // A field twice would multiply the groups of an event with several targets, and
        // lengthen its key past what an alert's event may hold.
        for (i, field) in self.group_by.iter().enumerate() {
            if self.group_by[..i].contains(field) {
                return Err(fail(
                    "group_by",
                    format!("lists {:?} twice", field.as_str()),
                ));
            }
        }
        let window = crate::duration::parse_duration(&self.window)
            .filter(|w| !w.is_zero() && *w <= MAX_WINDOW)
            .ok_or_else(|| {
                fail(
                    "window",
                    format!(
                        "{:?} is not a duration from 1s to 24h (e.g. 1m)",
                        self.window
                    ),
                )
            })?;
        let mut thresholds = Vec::new();
        if let Some(n) = self.warning {
            thresholds.push((n, Severity::Warning));
        }
        if let Some(n) = self.critical {
            thresholds.push((n, Severity::Critical));
        }
        if thresholds.is_empty() {
            return Err(fail("warning", "or critical must be given".into()));
        }
        if thresholds.iter().any(|(n, _)| *n == 0) {
            return Err(fail("warning", "and critical must be at least 1".into()));
        }
        if let (Some(w), Some(c)) = (self.warning, self.critical)
            && w >= c
        {
            return Err(fail("critical", format!("{c} must be above warning {w}")));
        }
        for outcome in self.matches.outcome.iter() {
            if !["success", "failure", "unknown"].contains(&outcome.as_str()) {
                return Err(fail(
                    "match.outcome",
                    format!("{outcome:?} is not success, failure or unknown"),
                ));
            }
        }
        if let Some(p) = &self.preceded_by
            && p.at_least == 0
        {
            return Err(fail("preceded_by.at_least", "must be at least 1".into()));
        }
        if self.preceded_by.is_some()
            && (self.distinct.is_some() || self.measure != Measure::Events)
        {
            return Err(fail(
                "preceded_by",
                "counts the preceding events: it cannot be combined with distinct or measure"
                    .into(),
            ));
        }
        Ok(Rule {
            name: self.name.clone(),
            matches: self.matches.clone(),
            group_by: self.group_by.clone(),
            window,
            measure: self.measure,
            distinct: self.distinct,
            preceded_by: self.preceded_by.clone(),
            thresholds,
        })
    }
}

fn def(name: &str, description: &str, window: &str) -> RuleDef {
    RuleDef {
        name: name.into(),
        description: Some(description.into()),
        matches: Match::default(),
        group_by: Vec::new(),
        window: window.into(),
        measure: Measure::Events,
        distinct: None,
        preceded_by: None,
        warning: None,
        critical: None,
        enabled: true,
    }
}

fn failed_logins() -> Match {
    Match {
        activity: vec!["login".into()],
        outcome: Some("failure".into()),
        ..Match::default()
    }
}

/// The built-in rules, with the operations runbook's thresholds. A configured rule of the
/// same name replaces one (`enabled = false` turns it off).
pub fn builtin() -> Vec<RuleDef> {
    vec![
        RuleDef {
            matches: failed_logins(),
            group_by: vec![Field::Actor],
            warning: Some(5),
            critical: Some(10),
            ..def(
                "failed-logins-per-user",
                "failed logins of one user in a minute",
                "1m",
            )
        },
        RuleDef {
            matches: failed_logins(),
            warning: Some(50),
            critical: Some(100),
            ..def(
                "failed-logins-system-wide",
                "failed logins of the whole tenant in a minute",
                "1m",
            )
        },
        RuleDef {
            matches: failed_logins(),
            group_by: vec![Field::Ip],
            distinct: Some(Field::Actor),
            warning: Some(5),
            critical: Some(20),
            ..def(
                "credential-stuffing",
                "distinct accounts failing to log in from one address in ten minutes",
                "10m",
            )
        },
        RuleDef {
            matches: Match {
                activity: vec!["login".into()],
                outcome: Some("success".into()),
                ..Match::default()
            },
            group_by: vec![Field::Actor],
            preceded_by: Some(Preceded {
                matches: failed_logins(),
                at_least: 5,
            }),
            warning: Some(1),
            ..def(
                "login-after-failures",
                "a successful login after at least five failures of the same user in ten minutes",
                "10m",
            )
        },
        RuleDef {
            matches: Match {
                activity: vec!["export".into(), "disclose".into()],
                ..Match::default()
            },
            group_by: vec![Field::Actor],
            measure: Measure::Targets,
            warning: Some(100),
            critical: Some(500),
            ..def(
                "bulk-export",
                "records exported or disclosed by one actor in an hour",
                "1h",
            )
        },
        RuleDef {
            matches: Match {
                activity: vec!["admin".into()],
                ..Match::default()
            },
            group_by: vec![Field::Actor],
            warning: Some(20),
            critical: Some(50),
            ..def(
                "admin-burst",
                "administrative actions of one actor in five minutes",
                "5m",
            )
        },
        RuleDef {
            matches: Match {
                activity: vec![
                    "read".into(),
                    "update".into(),
                    "export".into(),
                    "disclose".into(),
                ],
                ..Match::default()
            },
            group_by: vec![Field::Target],
            distinct: Some(Field::Actor),
            warning: Some(10),
            critical: Some(25),
            ..def(
                "record-many-actors",
                "distinct actors accessing one record in an hour",
                "1h",
            )
        },
    ]
}

/// The rules in force: the built-ins, each replaced by a configured rule of its name, then the
/// other configured rules; disabled ones left out.
pub fn effective(configured: &[RuleDef]) -> Result<Vec<Rule>, RuleError> {
    let mut defs = builtin();
    for rule in configured {
        match defs.iter_mut().find(|d| d.name == rule.name) {
            Some(slot) => *slot = rule.clone(),
            None => defs.push(rule.clone()),
        }
    }
    defs.iter()
        .filter(|d| d.enabled)
        .map(RuleDef::compile)
        .collect()
}
