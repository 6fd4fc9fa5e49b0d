//! API tokens and scopes.
//!
//! A token is `st_` followed by 32 random bytes in base64url. Only its SHA-256 is stored: the
//! secret has 256 bits of entropy, so a fast hash is enough to make a leaked database useless
//! for authentication (a slow password hash protects low-entropy secrets, which these are not).
//! Each token is bound to one tenant, or to `*` for operators: a `*` token names the tenant of
//! each request in the `X-Tenant-ID` header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::RngCore as _;
use sha2::{Digest, Sha256};

/// The tenant of a multi-tenant token.
pub const ANY_TENANT: &str = "*";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    EventsWrite,
    EventsRead,
    LogRead,
    Verify,
    Reports,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::LogRead,
        Scope::Verify,
        Scope::Reports,
        Scope::Admin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::LogRead => "log:read",
            Scope::Verify => "verify",
            Scope::Reports => "reports",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `text`; the names are exactly those of [`Scope::as_str`].
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| ScopeError {
                name: text.to_string(),
            })
    }
}

/// A scope name that is not one of [`Scope::ALL`]. The message lists the valid names, so that
/// whoever sent it can correct it without looking them up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {name:?}; scopes are {}", scope_names())]
pub struct ScopeError {
    /// The name that was refused.
    pub name: String,
}

fn scope_names() -> String {
    let names: Vec<&str> = Scope::ALL.iter().map(Scope::as_str).collect();
    names.join(", ")
}

/// A new random token secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("st_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new token id: public, shown in listings and audit events.
pub fn new_token_id() -> String {
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!(
        "tok_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// What is stored for a secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("st_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert!(new_token_id().starts_with("tok_"));
    }

    #[test]
    fn scopes_parse_by_their_names_only() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
        let error = Scope::parse("events:delete").unwrap_err();
        assert_eq!(error.name, "events:delete");
        assert_eq!(
            error.to_string(),
            "unknown scope \"events:delete\"; scopes are events:write, events:read, log:read, verify, reports, admin"
        );
    }
}
