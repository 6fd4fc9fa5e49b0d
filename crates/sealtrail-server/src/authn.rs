//! Authentication of API callers: from a bearer secret to the token the store holds for it,
//! through a short-lived cache.
//!
//! It is a service of its own, apart from [`crate::auth`] (what tokens and scopes are), because
//! it reads the store and asks the ledger which tenants exist, while the ledger itself uses
//! `auth` to create tokens: kept in `auth`, the two modules would depend on each other. The
//! HTTP edge (`http::Caller`) only parses the headers, calls [`Authenticator::credentials`] and
//! turns what it finds into the caller or a 401/403.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_store::{StoreError, TokenRecord};

use crate::auth::{self, ANY_TENANT};
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::readers::{ReadError, Readers};
use crate::tenant::TenantName;

/// Tokens most recently found in the store, by secret hash, with when the store was asked.
///
/// - A token the store confirmed less than the re-check interval ago (`token_recheck_ms`,
///   [`crate::config::AuthSettings`]) is taken without asking it again: a store read on the
///   blocking pool for every request was the largest single cost of single-event ingest. A
///   token revoked through this instance's API stops working at once (the cache is cleared);
///   one revoked elsewhere (the CLI, another instance) within the interval, on every route:
///   every route authenticates through here, and a request that waits before it reads
///   (`wait_for_seq`) checks its token again after waiting ([`Authenticator::recheck`]).
/// - The interval runs from when the store was *asked*, not from when it answered, so a slow
///   read does not stretch it; and an answer to a lookup begun before the cache was cleared is
///   not kept, so a revocation through this instance cannot be undone by a lookup that was in
///   flight when it happened.
/// - Time comes from the application's [`Clock`], so that tests can move it by hand. It is the
///   wall clock, which can jump: a confirmation that seems to lie in the future (the clock was
///   set back) counts as stale, as does one more than the interval ago (set forward), so a
///   jump either way costs at most one extra store read and never extends trust.
/// - While a PostgreSQL store is unreachable, a token is taken as the store last described it,
///   so that producers can still send events to the spool. A token revoked through another
///   instance during the outage is honoured until the store answers again.
#[derive(Clone)]
pub struct TokenCache {
    known: Arc<Mutex<Known>>,
    recheck: Duration,
    clock: Clock,
}

#[derive(Default)]
struct Known {
    /// Raised by every [`TokenCache::forget_all`]: answers to lookups begun under an older
    /// generation are not remembered.
    generation: u64,
    tokens: HashMap<[u8; 32], Confirmed>,
}

/// A token as the store described it, and when the store was asked.
struct Confirmed {
    record: TokenRecord,
    asked_at: Timestamp,
}

/// A store lookup about to begin: when, and under which generation of the cache.
#[derive(Debug, Clone, Copy)]
struct Lookup {
    generation: u64,
    asked_at: Timestamp,
}

/// Tokens kept at most; the cache starts over beyond it.
const TOKEN_CACHE_LIMIT: usize = 10_000;

impl TokenCache {
    /// A cache that trusts a confirmation for `recheck` (zero: never), by `clock`.
    pub fn new(recheck: Duration, clock: Clock) -> TokenCache {
        TokenCache {
            known: Arc::new(Mutex::new(Known::default())),
            recheck,
            clock,
        }
    }

    /// How long a confirmation is trusted.
    pub fn recheck_interval(&self) -> Duration {
        self.recheck
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().expect("token cache lock")
    }

    /// Notes that a store lookup begins now.
    fn begin(&self) -> Lookup {
        Lookup {
            generation: self.lock().generation,
            asked_at: self.clock.now(),
        }
    }

    /// Keeps what the store answered to `lookup` (`None`: it holds no such token).
    fn remember(&self, hash: [u8; 32], record: Option<&TokenRecord>, lookup: Lookup) {
        let mut known = self.lock();
        let Some(record) = record else {
            known.tokens.remove(&hash);
            return;
        };
        if known.generation != lookup.generation {
            // Begun before a revocation through this instance: possibly out of date.
            return;
        }
        if known.tokens.len() >= TOKEN_CACHE_LIMIT && !known.tokens.contains_key(&hash) {
            known.tokens.clear();
        }
        known.tokens.insert(
            hash,
            Confirmed {
                record: record.clone(),
                asked_at: lookup.asked_at,
            },
        );
    }

    /// The token as the store last described it, however long ago.
    fn recall(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        self.lock().tokens.get(hash).map(|c| c.record.clone())
    }

    /// The token, if the store confirmed it within the re-check interval.
    fn fresh(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        let now = self.clock.now().unix_micros();
        let recheck = i64::try_from(self.recheck.as_micros()).unwrap_or(i64::MAX);
        self.lock()
            .tokens
            .get(hash)
            .filter(|c| {
                let age = now - c.asked_at.unix_micros();
                (0..recheck).contains(&age)
            })
            .map(|c| c.record.clone())
    }

    /// Forgets every token: after a revocation, so that it takes effect at once here.
    pub fn forget_all(&self) {
        let mut known = self.lock();
        known.generation += 1;
        known.tokens.clear();
    }
}

/// The SHA-256 of a request's bearer secret, kept with its caller so that the token can be
/// checked again later in the request. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> SecretHash {
        SecretHash(auth::secret_hash(secret))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
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

/// Looks up the token behind a bearer secret, through the [`TokenCache`]. Free to build: it
/// borrows the service's parts rather than cloning their handles for every request.
#[derive(Clone, Copy)]
pub struct Authenticator<'a> {
    cache: &'a TokenCache,
    readers: &'a Readers,
    /// The tenants this instance has appended to, which are known to exist without asking
    /// the store.
    ledger: &'a Ledger,
}

impl<'a> Authenticator<'a> {
    pub fn new(
        cache: &'a TokenCache,
        readers: &'a Readers,
        ledger: &'a Ledger,
    ) -> Authenticator<'a> {
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
        secret: &SecretHash,
        named: Option<String>,
    ) -> Result<Credentials, ReadError> {
        let hash = secret.0;
        // A token confirmed a moment ago, for its own tenant or one this instance knows.
        let recent = self.cache.fresh(&hash).filter(|token| {
            token.tenant != ANY_TENANT || named.as_deref().is_none_or(|name| self.knows(name))
        });
        if let Some(token) = recent {
            // Not remembered again: it must be confirmed by the store within the interval.
            return Ok(Credentials {
                named_tenant_exists: token.tenant == ANY_TENANT && named.is_some(),
                token: Some(token),
            });
        }
        let lookup = self.cache.begin();
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
                self.cache
                    .remember(hash, credentials.token.as_ref(), lookup);
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

    /// The token whose secret hashes to `secret` as the store holds it now, or as it did
    /// within the re-check interval: for a request that has waited since it was authenticated
    /// (`wait_for_seq` holds one for up to 5 s), so that what it reads is never read with a
    /// token revoked for longer than the interval. Fails like [`Authenticator::credentials`].
    pub async fn recheck(&self, secret: &SecretHash) -> Result<Option<TokenRecord>, ReadError> {
        let hash = secret.0;
        if let Some(token) = self.cache.fresh(&hash) {
            return Ok(Some(token));
        }
        let lookup = self.cache.begin();
        // On the control path like every token look-up: one row, and never behind searches.
        let looked_up = self
            .readers
            .control(move |conn| Ok::<_, ReadError>(conn.token_by_secret(&hash)?))
            .await;
        match looked_up {
            Ok(token) => {
                self.cache.remember(hash, token.as_ref(), lookup);
                Ok(token)
            }
            Err(ReadError::Store(error)) if !matches!(error, StoreError::Full(_)) => {
                match self.cache.recall(&hash) {
                    Some(token) => {
                        tracing::error!(%error, "store error");
                        Ok(Some(token))
                    }
                    None => Err(ReadError::Store(error)),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Whether this instance knows the tenant `name` to exist, without asking the store.
    fn knows(&self, name: &str) -> bool {
        self.ledger.head(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn token(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.to_string(),
            tenant: "acme".to_string(),
            scopes: vec!["events:write".to_string()],
            created_at: "2026-11-23T10:00:00.000000Z".to_string(),
            revoked_at: None,
        }
    }

    fn cache(recheck: Duration) -> (TokenCache, ManualClock) {
        let hand = ManualClock::new(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
        (TokenCache::new(recheck, hand.clock()), hand)
    }

    #[test]
    fn a_confirmation_is_trusted_for_the_interval_from_when_the_store_was_asked() {
        let (cache, hand) = cache(Duration::from_secs(1));
        let lookup = cache.begin();
        // The store takes its time to answer; the interval runs from the question.
        hand.advance(Duration::from_millis(300));
        cache.remember([1; 32], Some(&token("tok_a")), lookup);
        hand.advance(Duration::from_millis(699));
        assert_eq!(cache.fresh(&[1; 32]).unwrap().id, "tok_a");
        hand.advance(Duration::from_millis(1));
        assert!(cache.fresh(&[1; 32]).is_none(), "due for a re-check");
        // While the store cannot be asked, the last answer is still known.
        assert_eq!(cache.recall(&[1; 32]).unwrap().id, "tok_a");
    }

    #[test]
    fn an_answer_to_a_lookup_begun_before_the_cache_was_cleared_is_not_kept() {
        let (cache, _hand) = cache(Duration::from_secs(1));
        let in_flight = cache.begin();
        // A revocation through this instance clears the cache while the lookup runs.
        cache.forget_all();
        cache.remember([1; 32], Some(&token("tok_a")), in_flight);
        assert!(cache.fresh(&[1; 32]).is_none());
        assert!(cache.recall(&[1; 32]).is_none());
        // A lookup begun afterwards is kept.
        let next = cache.begin();
        cache.remember([1; 32], Some(&token("tok_a")), next);
        assert!(cache.fresh(&[1; 32]).is_some());
        // The store saying there is no such token forgets it, whatever the generation.
        cache.remember([1; 32], None, in_flight);
        assert!(cache.recall(&[1; 32]).is_none());
    }

    #[test]
    fn a_clock_set_back_makes_a_confirmation_stale_rather_than_trusted_longer() {
        let (cache, hand) = cache(Duration::from_secs(1));
        let start = hand.clock().now();
        cache.remember([1; 32], Some(&token("tok_a")), cache.begin());
        hand.set(Timestamp::from_unix_micros(start.unix_micros() - 1).unwrap());
        assert!(cache.fresh(&[1; 32]).is_none());
    }

    #[test]
    fn a_zero_interval_asks_the_store_every_time() {
        let (cache, _hand) = cache(Duration::ZERO);
        cache.remember([1; 32], Some(&token("tok_a")), cache.begin());
        assert!(cache.fresh(&[1; 32]).is_none());
        assert_eq!(
            format!("{:?}", SecretHash::of("st_secret")),
            "SecretHash(..)"
        );
    }

    /// Every token look-up — a request's, and a re-check after a request has waited — reads
    /// on the control path: with every other read connection taken by reads that do not end
    /// (as many slow searches take them), a token due for a re-check is still confirmed. Before,
    /// all reads shared one pool, and a producer's request waited for a search to finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_lookups_never_wait_for_other_reads() {
        use std::sync::Condvar;

        use crate::readers::GENERAL_READERS;

        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let secret = ledger
            .create_token("acme", vec!["events:read".into()], "test")
            .await
            .unwrap()
            .token;
        let readers = Readers::new(sealtrail_store::Location::new(dir.path(), None));
        let (cache, _hand) = cache(Duration::ZERO);
        let authenticator = Authenticator::new(&cache, &readers, &ledger);

        /// Opens the gate when dropped, so that a failing test does not leave reads blocked.
        struct Gate(Arc<(Mutex<bool>, Condvar)>);
        impl Drop for Gate {
            fn drop(&mut self) {
                *self.0.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                self.0.1.notify_all();
            }
        }

        // Reads that hold a general connection each until the gate opens.
        let gate = Gate(Arc::new((Mutex::new(false), Condvar::new())));
        let (started, starts) = std::sync::mpsc::channel();
        let mut holders = Vec::new();
        for _ in 0..GENERAL_READERS {
            let (gate, started, readers) = (gate.0.clone(), started.clone(), readers.clone());
            holders.push(tokio::spawn(async move {
                readers
                    .read(move |_conn| {
                        started.send(()).unwrap();
                        let (open, opened) = &*gate;
                        let mut open = open.lock().unwrap();
                        while !*open {
                            open = opened.wait(open).unwrap();
                        }
                        Ok::<_, ReadError>(())
                    })
                    .await
            }));
        }
        for _ in 0..GENERAL_READERS {
            starts.recv_timeout(Duration::from_secs(20)).unwrap();
        }

        let hash = SecretHash::of(&secret);
        let stuck = Duration::from_secs(20);
        let credentials = tokio::time::timeout(stuck, authenticator.credentials(&hash, None))
            .await
            .expect("a request's token look-up does not wait for the other reads")
            .unwrap();
        assert_eq!(credentials.token.unwrap().tenant, "acme");
        let rechecked = tokio::time::timeout(stuck, authenticator.recheck(&hash))
            .await
            .expect("a re-check does not wait for the other reads")
            .unwrap();
        assert_eq!(rechecked.unwrap().tenant, "acme");
        // All that while, the other reads held every general connection.
        assert!(holders.iter().all(|holder| !holder.is_finished()));

        drop(gate);
        for holder in holders {
            holder.await.unwrap().unwrap();
        }
    }
}
