//! Security monitoring over the committed log: declarative rules ([`rules`]) evaluated in seq
//! order ([`engine`]) by a follower of the log (`crate::alerting`), each alert recorded as an event in
//! the tenant's own log ([`alerts`]), counted in `sealtrail_alerts_total` ([`metrics`]) and
//! read back for `GET /v1/alerts` and `sealtrail alerts list` ([`list`]). The rules, their
//! format and the built-ins with the operations runbook's thresholds are in [`rules`]; how
//! windows, episodes and alerts behave is in [`engine`]; restarts and several instances in
//! `crate::alerting::watch`.

pub mod alerts;
pub mod engine;
pub mod list;
pub mod metrics;
pub mod rules;
pub mod webhook;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use self::rules::{Rule, RuleDef, RuleError};

/// The rules configured: `[monitor] rules` for every tenant, and `[tenants.NAME.monitor]
/// rules` on top for one. Each layer replaces the rules of the same name below it (the
/// built-ins at the bottom) and adds the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorSettings {
    pub default: Vec<RuleDef>,
    pub tenants: HashMap<String, Vec<RuleDef>>,
}

impl MonitorSettings {
    /// The rules in force for `tenant`.
    pub fn rules_for(&self, tenant: &str) -> Result<Vec<Rule>, RuleError> {
        let mut defs = self.default.clone();
        for rule in self.tenants.get(tenant).into_iter().flatten() {
            match defs.iter_mut().find(|d| d.name == rule.name) {
                Some(slot) => *slot = rule.clone(),
                None => defs.push(rule.clone()),
            }
        }
        rules::effective(&defs)
    }

    /// Checks every rule of every layer; the first problem, naming the rule and the setting.
    pub fn check(&self) -> Result<(), RuleError> {
        self.rules_for("")?;
        for tenant in self.tenants.keys() {
            self.rules_for(tenant)?;
        }
        Ok(())
    }
}
