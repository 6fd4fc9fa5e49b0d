//! Daily seals (`sealtrail_core::seal`): issuing them, and checking a log's chain of them.
//!
//! **Issuing.** For every log, `_system` included, and every UTC day from the day the log was
//! created to yesterday, one seal: the size and root of the last checkpoint signed before the
//! day ended (size 0 and the empty tree's root when none was), linked to the previous day's
//! seal. [`run`] looks every [`CHECK_EVERY`] for days to seal, so each day is sealed within
//! seconds after midnight UTC — by the [`Clock`] the server is given, which tests move by
//! hand. Days missed while no server ran are sealed when one runs again, in order; a day is
//! never sealed twice (the store refuses a second issue 0). With several instances on one
//! PostgreSQL database, only the holder of the `seals` lease issues them
//! ([`sealtrail_store::Store::try_lease`]).
//!
//! The seal is signed with the log's own key, and written through a connection of its own in
//! a write transaction that holds the log's lock, so that it never races a writer of the log.
//!
//! **Checking.** [`check`] runs the core's chain check (`sealtrail_core::seal::check_chain`)
//! on a log's stored seals, with the root of the stored tree at each sealed size as what the
//! log vouches for; `verify` adds what it finds to the log's report.

use std::time::Duration;

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::tree_hash;
use sealtrail_core::note::{self, VerifierKey};
use sealtrail_core::seal::{FiledSeal, Seal, check_chain, next_day, seal_hash};
use sealtrail_core::verify::Violation;
use sealtrail_core::{Hash, Timestamp};
use sealtrail_store::{Location, Store, StoreError, StoreHashes, StoredSeal, Tenant};

use crate::clock::Clock;
use crate::keys::{KeyError, KeyResolver};
use crate::shutdown::Shutdown;

/// How often [`run`] looks for days to seal.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The lease that decides which instance issues seals.
pub const LEASE: &str = "seals";

/// Why a seal could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot sign the seal: {0}")]
    Key(#[from] KeyError),
    #[error("cannot sign the seal: {0}")]
    Seal(#[from] sealtrail_core::seal::SealError),
    #[error("the stored checkpoint of size {size} does not read: {why}")]
    Checkpoint { size: u64, why: String },
}

/// The UTC day of a time, `YYYY-MM-DD`.
pub fn day_of(time: Timestamp) -> String {
    time.to_rfc3339()[..10].to_string()
}

/// The first instant of `day`, in the spelling the store keeps times in (so that it compares
/// as text with `created_at`).
fn day_start(day: &str) -> String {
    format!("{day}T00:00:00.000000Z")
}

/// The root a signed checkpoint note names.
fn checkpoint_root(size: u64, note_text: &str) -> Result<Hash, SealingError> {
    let bad = |why: String| SealingError::Checkpoint { size, why };
    let note = note::parse(note_text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| bad(e.to_string()))?;
    if checkpoint.size != size {
        return Err(bad(format!("it names size {}", checkpoint.size)));
    }
    Ok(checkpoint.root)
}

/// Seals every day of `tenant`'s log not sealed yet, up to the day before `today`; returns the
/// days sealed. Each seal is committed on its own, so an interruption loses nothing sealed.
pub fn issue_due(
    store: &dyn Store,
    keys: &KeyResolver,
    tenant: &Tenant,
    today: &str,
    now: Timestamp,
) -> Result<Vec<String>, SealingError> {
    let latest = store.latest_seal(&tenant.name)?;
    let mut day = match &latest {
        Some(seal) => next_day(&seal.day),
        None => Some(tenant.created_at.chars().take(10).collect()),
    };
    let mut previous = latest.as_ref().map(|s| seal_hash(s.note.as_bytes()));
    let mut signer = None;
    let mut sealed = Vec::new();
    while let Some(current) = day.filter(|d| d.as_str() < today) {
        let Some(following) = next_day(&current) else {
            break;
        };
        let (size, root) = match store.checkpoint_before(&tenant.name, &day_start(&following))? {
            Some(checkpoint) => (
                checkpoint.size,
                checkpoint_root(checkpoint.size, &checkpoint.note)?,
            ),
            None => (0, Hash::empty_root()),
        };
        let signer = match &signer {
            Some(signer) => signer,
            None => signer.insert(keys.signer(tenant)?),
        };
        let note = Seal {
            origin: tenant.origin.clone(),
            day: current.clone(),
            size,
            root,
            previous,
            supersedes: None,
        }
        .sign(signer)?;
        store.begin_write(&[&tenant.name])?;
        let inserted = store.insert_seal(
            &tenant.name,
            &StoredSeal {
                day: current.clone(),
                issue: 0,
                note: note.clone(),
                created_at: now.to_rfc3339(),
            },
        );
        match inserted.and_then(|()| store.commit()) {
            Ok(()) => {}
            Err(error) => {
                let _ = store.rollback();
                return Err(error.into());
            }
        }
        metrics::issued(&tenant.name);
        previous = Some(seal_hash(note.as_bytes()));
        sealed.push(current.clone());
        day = Some(following);
    }
    Ok(sealed)
}

/// Re-issues the seal of the first sealed day whose size covers `seq` (the day a repair
/// acknowledged damage in): the next issue of that day, with the same day, size, root and
/// previous link, and `supersedes` naming the hash of the issue it replaces, so whoever holds
/// the old seal finds the new one linked to it. `None` when no sealed day covers `seq` yet
/// (the day it was received in is sealed after it ends, with the acknowledgement already in
/// the log).
pub fn reissue_covering(
    store: &dyn Store,
    keys: &KeyResolver,
    tenant: &Tenant,
    seq: u64,
    now: Timestamp,
) -> Result<Option<StoredSeal>, SealingError> {
    let seals = store.seals(&tenant.name, "0000-00-00", "9999-99-99")?;
    let mut latest_of_day: Vec<&StoredSeal> = Vec::new();
    for seal in &seals {
        match latest_of_day.last_mut() {
            Some(last) if last.day == seal.day => *last = seal,
            _ => latest_of_day.push(seal),
        }
    }
    let signer = keys.signer(tenant)?;
    let key = signer.verifier();
    let covering = latest_of_day
        .into_iter()
        .find(|stored| Seal::open(stored.note.as_bytes(), &key).is_ok_and(|seal| seal.size > seq));
    let Some(old) = covering else {
        return Ok(None);
    };
    let replaced = Seal::open(old.note.as_bytes(), &key)?;
    let note = Seal {
        supersedes: Some(seal_hash(old.note.as_bytes())),
        ..replaced
    }
    .sign(&signer)?;
    let new = StoredSeal {
        day: old.day.clone(),
        issue: old.issue + 1,
        note,
        created_at: now.to_rfc3339(),
    };
    store.begin_write(&[&tenant.name])?;
    match store
        .insert_seal(&tenant.name, &new)
        .and_then(|()| store.commit())
    {
        Ok(()) => Ok(Some(new)),
        Err(error) => {
            let _ = store.rollback();
            Err(error.into())
        }
    }
}

/// One look for days to seal, over every log; errors are per log and logged.
fn round(store: &dyn Store, keys: &KeyResolver, clock: &Clock) -> Result<(), StoreError> {
    if !store.try_lease(LEASE)? {
        return Ok(());
    }
    let now = clock.now();
    let today = day_of(now);
    for tenant in store.tenants()? {
        // The series exist from the first round on, so that `increase()` starts at zero.
        metrics::seen(&tenant.name);
        match issue_due(store, keys, &tenant, &today, now) {
            Ok(days) if !days.is_empty() => {
                tracing::info!(tenant = %tenant.name, first = %days[0], last = %days[days.len() - 1], "sealed {} day(s)", days.len());
            }
            Ok(_) => {}
            Err(error) => {
                metrics::failed(&tenant.name);
                tracing::error!(tenant = %tenant.name, %error, "cannot seal the log's past days");
            }
        }
    }
    Ok(())
}

/// Seals past days every [`CHECK_EVERY`] until shutdown (see the module docs).
pub async fn run(location: Location, keys: KeyResolver, clock: Clock, mut stop: Shutdown) {
    let mut store: Option<Box<dyn Store>> = None;
    loop {
        let (taken, keys_now, clock_now, location_now) =
            (store.take(), keys.clone(), clock.clone(), location.clone());
        let done = tokio::task::spawn_blocking(move || {
            // Never a new, empty embedded store where the server's went missing.
            if let Location::Embedded { data_dir } = &location_now
                && !sealtrail_store::DataDir::new(data_dir).database().exists()
            {
                tracing::error!(data = %data_dir.display(), "the store to seal days in is gone");
                return None;
            }
            let store = match taken {
                Some(store) => store,
                None => match location_now.open_writer() {
                    Ok(store) => store,
                    Err(error) => {
                        tracing::error!(%error, "cannot open the store to seal days");
                        return None;
                    }
                },
            };
            match round(store.as_ref(), &keys_now, &clock_now) {
                Ok(()) => Some(store),
                // The connection may be gone: opened again next time.
                Err(error) => {
                    tracing::error!(%error, "sealing days failed");
                    None
                }
            }
        })
        .await;
        store = done.unwrap_or_else(|error| {
            tracing::error!(%error, "sealing days panicked");
            None
        });
        tokio::select! {
            () = stop.signalled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

/// The violations in `tenant`'s chain of seals, opened with `key`, with the root of the stored
/// tree at each sealed size (which the log's own verification checks against the entries and
/// the signed checkpoints) as what the log vouches for.
pub fn check(
    store: &dyn Store,
    tenant: &str,
    key: &VerifierKey,
) -> Result<Vec<Violation>, StoreError> {
    let seals = store.seals(tenant, "0000-00-00", "9999-99-99")?;
    if seals.is_empty() {
        return Ok(Vec::new());
    }
    let size = store.size(tenant)?;
    let hashes = StoreHashes { store, tenant };
    Ok(check_filed(&seals, key, |sealed| {
        (sealed <= size)
            .then(|| tree_hash(sealed, &hashes).ok())
            .flatten()
    }))
}

/// [`check_chain`] over stored seals.
pub fn check_filed(
    seals: &[StoredSeal],
    key: &VerifierKey,
    root_at: impl Fn(u64) -> Option<Hash>,
) -> Vec<Violation> {
    let filed: Vec<FiledSeal<'_>> = seals
        .iter()
        .map(|s| FiledSeal {
            day: &s.day,
            issue: s.issue,
            note: s.note.as_bytes(),
        })
        .collect();
    check_chain(&filed, key, root_at)
}

/// The sealer's metrics, registered in the process's one registry (`crate::metrics`):
///
/// | metric | type | meaning |
/// | --- | --- | --- |
/// | `sealtrail_seals_issued_total{tenant}` | counter | seals this instance issued |
/// | `sealtrail_seal_errors_total{tenant}` | counter | rounds in which a log's past days could not be sealed |
pub mod metrics {
    use std::sync::LazyLock;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct TenantLabel {
        tenant: String,
    }

    struct SealMetrics {
        issued: Family<TenantLabel, Counter>,
        errors: Family<TenantLabel, Counter>,
    }

    static SEAL_METRICS: LazyLock<SealMetrics> = LazyLock::new(|| SealMetrics {
        issued: Family::default(),
        errors: Family::default(),
    });

    /// Adds the sealer's metrics to the process's registry.
    pub fn register(registry: &mut Registry) {
        let m = &*SEAL_METRICS;
        registry.register(
            "sealtrail_seals_issued",
            "Daily seals this instance issued, by tenant",
            m.issued.clone(),
        );
        registry.register(
            "sealtrail_seal_errors",
            "Rounds in which a log's past days could not be sealed, by tenant",
            m.errors.clone(),
        );
    }

    pub(super) fn seen(tenant: &str) {
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        let _ = SEAL_METRICS.issued.get_or_create(&label);
        let _ = SEAL_METRICS.errors.get_or_create(&label);
    }

    pub(super) fn issued(tenant: &str) {
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        SEAL_METRICS.issued.get_or_create(&label).inc();
    }

    pub(super) fn failed(tenant: &str) {
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        SEAL_METRICS.errors.get_or_create(&label).inc();
    }
}
