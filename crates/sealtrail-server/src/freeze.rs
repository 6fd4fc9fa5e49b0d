//! Frozen tenants: the chain-violation runbook's "stop all writes immediately", as one audited
//! command (`sealtrail freeze`, `POST /v1/admin/tenants/{tenant}/freeze`).
//!
//! A frozen tenant's producers are refused: `POST /v1/events` and `/v1/events/batch` answer
//! `503` with `"error": "tenant_frozen"` (naming the reason and how to unfreeze), and nothing
//! of the request is kept. Everything else about the tenant goes on: its log is read,
//! searched, proven and verified as before, its checkpoints and archive are kept up, events
//! already acknowledged (waiting in the spool) are still drained into it, and an operator's
//! own repairs (`sealtrail replay`) still reach it. A freeze stops producers, not the
//! investigation.
//!
//! **Holding instead of refusing.** A producer that cannot keep and retry its events would
//! lose them to a refusal. With `on_frozen = "spool"` (globally, or per tenant in
//! `[tenants.NAME]`), a frozen tenant's events are accepted but kept out of its log: each
//! valid event gets its id and `received_at`, is written to the tenant's hold file
//! (`DIR/spool/frozen/<tenant>.spool`, the spool's format and crash-safety code) and fsync'd,
//! and only then is answered `202 {"status": "held", "id", "received_at"}` (a batch: status
//! 202 with `"held": true` per event). Nothing is acknowledged without that durable copy: a
//! hold file beyond `spool_max_bytes` answers `503 hold_full`, a full disk `507
//! storage_full`. An idempotency key is answered as the log would: a retry of a held event
//! gets the same `202`, a different event under the key is refused with `422`, and a key the
//! log already holds gets the log's answer. The log does not grow while the tenant is frozen
//! (`GET /v1/events` and `/v1/verify` see no held event), and a restart keeps the held
//! events. Once the tenant is unfrozen — at once when through this instance's admin API,
//! otherwise once the writer reads the state again (within `token_recheck_ms`) — the writer
//! drains the file into the log in the order the events were accepted, each under the id it
//! was acknowledged with and exactly once (an id already in the log is skipped), and appends
//! `sealtrail.tenant.held_drained` (the tenant, how many events, when the first and last were
//! held) to the `_system` log. While the file has events, the tenant's newer events go in
//! behind them (also answered `202 held`), so the held events enter the log before any event
//! accepted after them. How many events an instance holds is shown per tenant by `GET
//! /v1/admin/tenants` (`held`), the freeze and unfreeze answers and the gauge
//! `sealtrail_held_events{tenant}`. See `ledger::holding`.
//!
//! **Where the state lives.** In the store, so that it survives restarts and every instance
//! sharing a PostgreSQL database sees the same: one row of the `settings` table,
//! [`FROZEN_SETTING`], holding a JSON object from each frozen tenant's name to its
//! [`Freeze`] (`{"reason", "at", "actor"}`). One row for all tenants, so that an instance
//! learns every tenant's state with one read. The ledger's writer thread changes it
//! (`ledger::freeze`) under the `_system` log's lock and in the same transaction as the
//! `sealtrail.tenant.frozen` / `sealtrail.tenant.unfrozen` entry it appends there, so a freeze
//! never takes effect unrecorded, and two freezes cannot lose each other's change. The
//! `_system` log remains the history (who froze what, when, why); the row is the current
//! state, readable without walking that history.
//!
//! **How quickly it takes effect.** Ingest asks [`Freezes`], an in-memory copy of the row
//! that is read again at most once per re-check interval — the same `token_recheck_ms` that
//! bounds how long a revoked token keeps working (1 s by default) — so the check costs no
//! store read per request. A freeze through an instance's own admin API takes effect there at
//! once ([`Freezes::note`]); one made through the CLI or another instance takes effect within
//! the interval. A request that passed the check just before that (queued for the writer) may
//! still be committed. While the store cannot be read (a PostgreSQL outage), the state last
//! read stands.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::readers::{ReadError, Readers};

/// The `settings` row that holds every frozen tenant.
pub const FROZEN_SETTING: &str = "frozen_tenants";

/// The longest reason, in characters: the event schema's bound on free text.
pub const MAX_REASON_CHARS: usize = 4096;

/// The API error code of a refused ingest.
pub const FROZEN_ERROR: &str = "tenant_frozen";

/// Why, when and by whom a tenant was frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// What the operator gave as the reason.
    pub reason: String,
    /// When it was frozen, RFC 3339 UTC (the writer's clock).
    pub at: String,
    /// Who froze it: the admin token's id, or `cli:<user>`.
    pub actor: String,
}

/// Every frozen tenant, by name: the content of [`FROZEN_SETTING`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrozenTenants(BTreeMap<String, Freeze>);

impl FrozenTenants {
    /// The state as the row holds it; no row is no frozen tenant.
    pub fn parse(text: Option<&str>) -> Result<FrozenTenants, StoreError> {
        let Some(text) = text else {
            return Ok(FrozenTenants::default());
        };
        serde_json::from_str(text).map(FrozenTenants).map_err(|error| {
            StoreError::Corrupt(format!(
                "the setting {FROZEN_SETTING} is not a JSON object of tenants to {{reason, at, actor}} ({error}); it was changed outside sealtrail"
            ))
        })
    }

    /// The row's text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings serialises")
    }

    pub fn get(&self, tenant: &str) -> Option<&Freeze> {
        self.0.get(tenant)
    }

    pub fn insert(&mut self, tenant: &str, freeze: Freeze) {
        self.0.insert(tenant.to_string(), freeze);
    }

    /// Lifts a tenant's freeze; the freeze it lifted, if it was frozen.
    pub fn remove(&mut self, tenant: &str) -> Option<Freeze> {
        self.0.remove(tenant)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The frozen tenants as the store holds them now.
pub fn read(store: &dyn Store) -> Result<FrozenTenants, StoreError> {
    FrozenTenants::parse(store.setting(FROZEN_SETTING)?.as_deref())
}

/// Why a reason was refused. Each names the rule, as the API's `rule` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error(
        "a reason is required: say why (it is recorded in the _system log and shown to the tenant's producers)"
    )]
    Missing,
    #[error("the reason is longer than {MAX_REASON_CHARS} characters; shorten it")]
    TooLong,
    #[error("the reason contains a NUL character (U+0000); remove it")]
    Nul,
}

impl ReasonError {
    /// The API's rule code for it.
    pub fn rule(self) -> &'static str {
        match self {
            ReasonError::Missing => "required",
            ReasonError::TooLong => "max_length",
            ReasonError::Nul => "nul_character",
        }
    }
}

/// Checks the reason of a freeze or unfreeze: at least one character other than a space, tab,
/// CR or LF (exactly what the OpenAPI document's pattern says), at most [`MAX_REASON_CHARS`]
/// characters, no NUL (which the event schema refuses in the audit record).
pub fn check_reason(reason: &str) -> Result<(), ReasonError> {
    if reason.contains('\0') {
        return Err(ReasonError::Nul);
    }
    if !reason
        .chars()
        .any(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
    {
        return Err(ReasonError::Missing);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ReasonError::TooLong);
    }
    Ok(())
}

/// An ingest refused because its tenant is frozen: what the producer is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant} is frozen (since {}, by {}: {}): it takes no events, and nothing of this request was kept; an administrator lifts the freeze with `sealtrail unfreeze --tenant {tenant} --reason TEXT` or POST /v1/admin/tenants/{tenant}/unfreeze",
    freeze.at, freeze.actor, freeze.reason
)]
pub struct TenantFrozen {
    pub tenant: String,
    pub freeze: Freeze,
}

/// The frozen tenants as this instance knows them: the store's [`FROZEN_SETTING`] row, read
/// again at most once per re-check interval (see the module docs). Cheap to clone; clones
/// share what they know.
#[derive(Clone)]
pub struct Freezes {
    readers: Readers,
    clock: Clock,
    recheck: Duration,
    known: Arc<Mutex<Known>>,
    /// One read of the row at a time: requests that find the copy stale while a read runs
    /// wait for it rather than each reading.
    turn: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct Known {
    tenants: FrozenTenants,
    /// When the store was last asked, answered or not; `None` before the first read.
    asked_at: Option<Timestamp>,
    /// Reads begun so far: a request that finds a read begun after it arrived takes that
    /// read's answer instead of reading again.
    started: u64,
    /// Raised by every [`Freezes::note`]: the answer to a read begun before a change made
    /// here may be older than that change, and is not kept.
    generation: u64,
}

impl Freezes {
    /// Reads through `readers`' control path, trusting a read for `recheck` by `clock`.
    pub fn new(readers: Readers, recheck: Duration, clock: Clock) -> Freezes {
        Freezes {
            readers,
            clock,
            recheck,
            known: Arc::new(Mutex::new(Known::default())),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().expect("freezes lock")
    }

    /// The tenant's freeze, if it is frozen: from memory while the last read is younger than
    /// the re-check interval, else read again first.
    pub async fn of(&self, tenant: &str) -> Option<Freeze> {
        let arrived = {
            let known = self.lock();
            if self.is_fresh(&known) {
                return known.tenants.get(tenant).cloned();
            }
            known.started
        };
        let _turn = self.turn.lock().await;
        let begun = {
            let mut known = self.lock();
            if known.started > arrived {
                // A read begun after this request arrived has just finished: its answer is
                // at least as recent as one this request would get.
                return known.tenants.get(tenant).cloned();
            }
            known.started += 1;
            (known.generation, self.clock.now())
        };
        let read = self
            .readers
            .control(|conn| Ok::<_, ReadError>(read(conn)?))
            .await;
        let mut known = self.lock();
        known.asked_at = Some(begun.1);
        match read {
            Ok(tenants) if known.generation == begun.0 => known.tenants = tenants,
            Ok(_) => {}
            // The store cannot say (an outage, or a row changed by hand): the state last read
            // stands, and the store is asked again after the interval.
            Err(error) => {
                tracing::error!(%error, "cannot read the frozen tenants; keeping the state last read")
            }
        }
        known.tenants.get(tenant).cloned()
    }

    /// Whether the last read is younger than the re-check interval. A read that seems to lie
    /// in the future (the clock was set back) is stale, as the token cache judges it.
    fn is_fresh(&self, known: &Known) -> bool {
        let Some(asked_at) = known.asked_at else {
            return false;
        };
        let age = self.clock.now().unix_micros() - asked_at.unix_micros();
        let recheck = i64::try_from(self.recheck.as_micros()).unwrap_or(i64::MAX);
        (0..recheck).contains(&age)
    }

    /// Takes a change this instance has just committed (through its admin API): effective
    /// here at once, without waiting for the next read.
    pub fn note(&self, tenant: &str, freeze: Option<Freeze>) {
        let mut known = self.lock();
        known.generation += 1;
        match freeze {
            Some(freeze) => known.tenants.insert(tenant, freeze),
            None => {
                known.tenants.remove(tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn freeze(reason: &str) -> Freeze {
        Freeze {
            reason: reason.to_string(),
            at: "2026-11-23T10:00:00.000000Z".to_string(),
            actor: "cli:ops".to_string(),
        }
    }

    #[test]
    fn the_row_reads_back_what_was_written_and_a_damaged_one_is_named() {
        assert!(FrozenTenants::parse(None).unwrap().is_empty());
        let mut tenants = FrozenTenants::default();
        tenants.insert("acme", freeze("chain violation at seq 41"));
        let text = tenants.to_text();
        assert_eq!(
            text,
            r#"{"acme":{"reason":"chain violation at seq 41","at":"2026-11-23T10:00:00.000000Z","actor":"cli:ops"}}"#
        );
        let back = FrozenTenants::parse(Some(&text)).unwrap();
        assert_eq!(back, tenants);
        assert_eq!(back.get("acme").unwrap().actor, "cli:ops");
        assert!(back.get("other").is_none());
        for damaged in [
            "[]",
            "{\"acme\": true}",
            "{\"acme\": {\"reason\": \"x\"}}",
            "{",
        ] {
            let error = FrozenTenants::parse(Some(damaged)).unwrap_err().to_string();
            assert!(error.contains(FROZEN_SETTING), "{damaged}: {error}");
        }
    }

    #[test]
    fn a_reason_says_something_within_the_bound() {
        assert_eq!(check_reason(""), Err(ReasonError::Missing));
        assert_eq!(check_reason(" \t\r\n"), Err(ReasonError::Missing));
        assert_eq!(check_reason("a\0b"), Err(ReasonError::Nul));
        let longest = "é".repeat(MAX_REASON_CHARS);
        assert_eq!(check_reason(&longest), Ok(()));
        assert_eq!(
            check_reason(&format!("{longest}x")),
            Err(ReasonError::TooLong)
        );
        assert_eq!(check_reason(" x "), Ok(()));
        assert_eq!(ReasonError::Nul.rule(), "nul_character");
    }

    /// A store with `acme` frozen or not, as another process would leave it, and the cache
    /// over it.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Box<dyn Store>,
        freezes: Freezes,
        hand: ManualClock,
    }

    impl Fixture {
        fn new(recheck: Duration) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let location = sealtrail_store::Location::new(dir.path(), None);
            let store = location.open_writer().unwrap();
            let hand = ManualClock::new(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
            let freezes = Freezes::new(Readers::new(location), recheck, hand.clock());
            Fixture {
                _dir: dir,
                store,
                freezes,
                hand,
            }
        }

        /// Writes the row as another instance would: the cache is not told.
        fn set_elsewhere(&self, frozen: bool) {
            let mut tenants = FrozenTenants::default();
            if frozen {
                tenants.insert("acme", freeze("elsewhere"));
            }
            self.store.begin_write(&["_system"]).unwrap();
            self.store
                .set_setting(FROZEN_SETTING, &tenants.to_text())
                .unwrap();
            self.store.commit().unwrap();
        }
    }

    #[tokio::test]
    async fn a_change_elsewhere_is_seen_once_the_interval_has_passed_and_not_before() {
        let fixture = Fixture::new(Duration::from_secs(1));
        assert_eq!(fixture.freezes.of("acme").await, None);
        fixture.set_elsewhere(true);
        fixture.hand.advance(Duration::from_millis(999));
        assert_eq!(fixture.freezes.of("acme").await, None, "still trusted");
        fixture.hand.advance(Duration::from_millis(1));
        assert_eq!(
            fixture.freezes.of("acme").await.unwrap().reason,
            "elsewhere"
        );
        fixture.set_elsewhere(false);
        assert!(fixture.freezes.of("acme").await.is_some(), "still trusted");
        fixture.hand.advance(Duration::from_secs(1));
        assert_eq!(fixture.freezes.of("acme").await, None);
    }

    #[tokio::test]
    async fn a_change_made_here_takes_effect_at_once_and_a_clock_set_back_rereads() {
        let fixture = Fixture::new(Duration::from_secs(60));
        assert_eq!(fixture.freezes.of("acme").await, None);
        fixture.freezes.note("acme", Some(freeze("here")));
        assert_eq!(fixture.freezes.of("acme").await.unwrap().reason, "here");
        fixture.freezes.note("acme", None);
        assert_eq!(fixture.freezes.of("acme").await, None);
        // The store says frozen; a clock set back makes the last read stale, not trusted.
        fixture.set_elsewhere(true);
        let now = fixture.hand.clock().now().unix_micros();
        fixture
            .hand
            .set(Timestamp::from_unix_micros(now - 1).unwrap());
        assert!(fixture.freezes.of("acme").await.is_some());
    }

    #[tokio::test]
    async fn a_zero_interval_reads_the_store_for_every_request() {
        let fixture = Fixture::new(Duration::ZERO);
        assert_eq!(fixture.freezes.of("acme").await, None);
        fixture.set_elsewhere(true);
        assert!(fixture.freezes.of("acme").await.is_some());
    }
}
