//! Tenant names, parsed once at the edge.
//!
//! A tenant name becomes part of a log's origin (`<origin_prefix>/<tenant>`), of its key file
//! names, of URL paths (`/logs/{tenant}/`) and of metric labels, so it is held to a narrow
//! rule: 1–64 lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit.
//! `_system`, the log of sealtrail's own administrative actions, is the one name that starts
//! with `_`, which is why no producer's tenant can ever be mistaken for it.
//!
//! A [`TenantName`] can only be made by [`TenantName::parse`] (or [`TenantName::system`]), so
//! code that holds one need not check it again.

use std::fmt;
use std::ops::Deref;

/// The tenant whose log records administrative actions.
pub const SYSTEM_TENANT: &str = "_system";

/// The longest tenant name, in bytes (all of them ASCII).
const MAX_LEN: usize = 64;

/// A tenant name that follows the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantName(String);

/// Why a text is not a tenant name. The message states the whole rule, so that whoever sent
/// the name learns what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {name:?} is not a valid name: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
)]
pub struct TenantNameError {
    /// The text that was refused.
    pub name: String,
}

impl TenantName {
    /// Checks `text` against the naming rule.
    pub fn parse(text: &str) -> Result<TenantName, TenantNameError> {
        let allowed =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
        let valid = !text.is_empty()
            && text.len() <= MAX_LEN
            && text.bytes().all(allowed)
            && (text.as_bytes()[0].is_ascii_alphanumeric() || text == SYSTEM_TENANT);
        if valid {
            Ok(TenantName(text.to_string()))
        } else {
            Err(TenantNameError {
                name: text.to_string(),
            })
        }
    }

    /// The `_system` tenant.
    pub fn system() -> TenantName {
        TenantName(SYSTEM_TENANT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `_system` tenant.
    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM_TENANT
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for TenantName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TenantName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TenantName> for String {
    fn from(name: TenantName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_follow_the_rule_parse() {
        for name in [
            "a",
            "acme",
            "acme-eu_2",
            "0day",
            &"x".repeat(64),
            SYSTEM_TENANT,
        ] {
            let parsed = TenantName::parse(name).unwrap();
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.to_string(), name);
        }
        assert_eq!(TenantName::system(), TenantName::parse("_system").unwrap());
        assert!(TenantName::system().is_system());
    }

    #[test]
    fn names_that_break_the_rule_are_refused_with_the_rule() {
        for name in [
            "",
            "Acme",
            "acme corp",
            "-acme",
            "_acme",
            "_System",
            "acmé",
            "acme/eu",
            "*",
            &"x".repeat(65),
        ] {
            let error = TenantName::parse(name).unwrap_err();
            assert_eq!(error.name, name);
            assert_eq!(
                error.to_string(),
                format!(
                    "tenant {name:?} is not a valid name: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
                )
            );
        }
    }
}
