//! Authentication of API callers: from a bearer secret to the token the store holds for it,
//! through a short-lived cache.
//!
//! It is a service of its own, apart from [`crate::auth`] (what tokens and scopes are), because
//! it reads the store and asks the ledger which tenants exist, while the ledger itself uses
//! `auth` to create tokens: kept in `auth`, the two modules would depend on each other. The
//! HTTP edge (`http::Caller`) only parses the headers, calls [`Authenticator::credentials`] and
//! turns what it finds into the caller or a 401/403.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealtrail_store::{StoreError, TokenRecord};

use crate::auth::{self, ANY_TENANT};
use crate::ledger::Ledger;
use crate::readers::{ReadError, Readers};
use crate::tenant::TenantName;

/// Tokens most recently found in the store, by secret hash, with when the store said so.
///
/// - A token the store confirmed less than [`TOKEN_RECHECK`] ago is taken without asking it
///   again: a store read on the blocking pool for every request was the largest single cost of
///   single-event ingest. A token revoked through this instance's API stops working at once
///   (the cache is cleared); one revoked elsewhere (the CLI, another instance) within
///   [`TOKEN_RECHECK`].
/// - While a PostgreSQL store is unreachable, a token is taken as the store last described it,
///   so that producers can still send events to the spool. A token revoked through another
///   instance during the outage is honoured until the store answers again.
#[derive(Clone, Default)]
pub struct TokenCache {
    known: Arc<Mutex<HashMap<[u8; 32], Confirmed>>>,
}

/// A token as the store described it, and when.
type Confirmed = (TokenRecord, Instant);

/// How long a token the store confirmed is trusted without asking it again.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// Tokens kept at most; the cache starts over beyond it.
const TOKEN_CACHE_LIMIT: usize = 10_000;

impl TokenCache {
    fn remember(&self, hash: [u8; 32], record: Option<&TokenRecord>) {
        let mut known = self.known.lock().expect("token cache lock");
        match record {
            Some(record) => {
                if known.len() >= TOKEN_CACHE_LIMIT && !known.contains_key(&hash) {
                    known.clear();
                }
                known.insert(hash, (record.clone(), Instant::now()));
            }
            None => {
                known.remove(&hash);
            }
        }
    }

    /// The token as the store last described it, however long ago.
    fn recall(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        self.known
            .lock()
            .expect("token cache lock")
            .get(hash)
            .map(|(record, _)| record.clone())
    }

    /// The token, if the store confirmed it within [`TOKEN_RECHECK`].
    fn fresh(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        self.known
            .lock()
            .expect("token cache lock")
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_RECHECK)
            .map(|(record, _)| record.clone())
    }

    /// Forgets every token: after a revocation, so that it takes effect at once here.
    pub fn forget_all(&self) {
        self.known.lock().expect("token cache lock").clear();
    }
}

/// What the store says about a request's credentials, read in one go.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The token with the request's secret; `None` when no token has it.
    pub token: Option<TokenRecord>,
    /// Whether the tenant the request names exists; asked only for multi-tenant tokens.
    pub named_tenant_exists: bool,
}

/// Looks up the token behind a bearer secret, through the [`TokenCache`]. Cheap to build:
/// every part is a handle shared with the rest of the service.
#[derive(Clone)]
pub struct Authenticator {
    cache: TokenCache,
    readers: Readers,
    /// The tenants this instance has appended to, which are known to exist without asking
    /// the store.
    ledger: Ledger,
}

impl Authenticator {
    pub fn new(cache: TokenCache, readers: Readers, ledger: Ledger) -> Authenticator {
        Authenticator {
            cache,
            readers,
            ledger,
        }
    }

    /// The token whose secret is `secret`, and whether the tenant `named` (the request's
    /// `X-Tenant-ID`, when it is text) exists.
    ///
    /// Fails only when the store cannot be read and the token was never seen before, or when
    /// the store's disk is full (which says nothing about reachability, so nothing is
    /// assumed), or when the reader pool itself fails.
    pub async fn credentials(
        &self,
        secret: &str,
        named: Option<String>,
    ) -> Result<Credentials, ReadError> {
        let hash = auth::secret_hash(secret);
        // A token confirmed a moment ago, for its own tenant or one this instance knows.
        let recent = self.cache.fresh(&hash).filter(|token| {
            token.tenant != ANY_TENANT || named.as_deref().is_none_or(|name| self.knows(name))
        });
        if let Some(token) = recent {
            // Not remembered again: it must be confirmed by the store within TOKEN_RECHECK.
            return Ok(Credentials {
                named_tenant_exists: token.tenant == ANY_TENANT && named.is_some(),
                token: Some(token),
            });
        }
        let asked = named.clone();
        // On the control path: every request may need this read, ingest included, and none
        // may wait for searches to finish (see `crate::readers`).
        let looked_up = self
            .readers
            .control(move |conn| {
                let token = conn.token_by_secret(&hash)?;
                let multi_tenant = token.as_ref().is_some_and(|t| t.tenant == ANY_TENANT);
                let named_tenant_exists = match asked {
                    Some(name) if multi_tenant && TenantName::parse(&name).is_ok() => {
                        conn.tenant(&name)?.is_some()
                    }
                    _ => false,
                };
                Ok(Credentials {
                    token,
                    named_tenant_exists,
                })
            })
            .await;
        match looked_up {
            Ok(credentials) => {
                self.cache.remember(hash, credentials.token.as_ref());
                Ok(credentials)
            }
            // The store is unreachable (events may be spooling): the token as the store last
            // described it, and the tenants this instance knows to exist.
            Err(ReadError::Store(error)) if !matches!(error, StoreError::Full(_)) => {
                let Some(token) = self.cache.recall(&hash) else {
                    return Err(ReadError::Store(error));
                };
                tracing::error!(%error, "store error");
                Ok(Credentials {
                    token: Some(token),
                    named_tenant_exists: named.is_some_and(|name| self.knows(&name)),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Whether this instance knows the tenant `name` to exist, without asking the store.
    fn knows(&self, name: &str) -> bool {
        self.ledger.head(name).is_some()
    }
}
