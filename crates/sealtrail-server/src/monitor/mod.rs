//! Security monitoring over the committed log: declarative rules ([`rules`]) evaluated in seq
//! order ([`engine`]). The rules, their format and the built-ins with the operations
//! runbook's thresholds are in [`rules`]; how windows, episodes and alerts behave is in
//! [`engine`].

pub mod engine;
pub mod rules;

#[cfg(test)]
mod tests;
