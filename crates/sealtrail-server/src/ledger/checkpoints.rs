//! Signing checkpoints: which logs are due, and signing each under its tenant's lock.
//!
//! After a commit, a log that grew gets a checkpoint once its latest one (by any process) is
//! older than the interval; at shutdown every log whose latest checkpoint is smaller than the
//! log gets a final one, and at start every such log is signed without waiting for a write
//! (a crash can leave acknowledged entries outside every checkpoint; so can a signing that
//! failed at the last shutdown). A signing that fails is retried, with a delay that doubles
//! up to a minute, until it succeeds: a log is never left unsigned because one attempt
//! failed. Each is signed in a
//! short transaction of its own, from the tail read under the lock, so checkpoints of one log
//! are issued in order of size and time whichever instance signs them, and a timestamp never
//! goes backwards even across instances whose clocks differ.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::note::SignerKey;
use sealtrail_store::{self as store, StoreError, Tenant};

use super::writer::{TenantState, Writer, tenant_state};
use super::{Fault, LedgerError, LogHead, Refusal};
use crate::keys::KeyResolver;

impl Writer {
    /// Signs a checkpoint for every log this writer knows that grew since its latest
    /// checkpoint, when that checkpoint is older than the interval (or regardless of age when
    /// `all`, at shutdown). Each is signed under the tenant's lock from the tail read there.
    ///
    /// A log whose signing failed (its key file unreadable, the store refusing the insert)
    /// stays a candidate and is tried again after a delay that doubles with each failure, up
    /// to [`MAX_SIGN_RETRY_DELAY`], until a checkpoint covers it; every failure is logged
    /// with the attempt number and the delay. At shutdown every candidate is tried once more
    /// whatever its delay; what still fails is signed by the next start.
    pub(super) fn sign_due_checkpoints(&mut self, all: bool) {
        let interval = self.config.checkpoint_interval;
        let now = Instant::now();
        let candidates: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, state)| {
                let grown = state.size > state.checkpointed_size || state.checkpointed_at.is_none();
                let due = state
                    .checkpointed_at
                    .is_none_or(|at| at.elapsed() >= interval);
                let retry_due = state.retry_signing_at.is_none_or(|at| now >= at);
                grown && (all || (due && retry_due))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in candidates {
            let Err(error) = self.sign_checkpoint(&name, all) else {
                continue;
            };
            let Some(state) = self.tenants.get_mut(&name) else {
                continue;
            };
            state.sign_failures = state.sign_failures.saturating_add(1);
            let delay = retry_delay(interval, state.sign_failures);
            state.retry_signing_at = Some(Instant::now() + delay);
            if all {
                tracing::error!(
                    tenant = %name,
                    %error,
                    attempt = state.sign_failures,
                    "cannot sign the final checkpoint; the next start signs it"
                );
            } else {
                tracing::error!(
                    tenant = %name,
                    %error,
                    attempt = state.sign_failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot sign a checkpoint; will retry"
                );
            }
        }
    }

    /// Makes every log whose latest checkpoint (by any process) is smaller than the log a
    /// candidate for signing, whether or not this writer has appended to it: at start, for
    /// entries a crash (or a failed signing before the last stop) left outside every
    /// checkpoint, and at shutdown, for the final checkpoints.
    pub(super) fn track_unsigned_logs(&mut self) -> Result<(), LedgerError> {
        let store = self.store.as_ref();
        let lagging = store::in_snapshot(store, || {
            let mut lagging = Vec::new();
            for tenant in store.tenants()? {
                let size = store.size(&tenant.name)?;
                let checkpointed = store.latest_checkpoint(&tenant.name)?.map(|c| c.size);
                if checkpointed.is_none_or(|checkpointed| checkpointed < size) {
                    lagging.push((tenant, checkpointed.unwrap_or(0)));
                }
            }
            Ok::<_, StoreError>(lagging)
        })?;
        for (tenant, checkpointed_size) in lagging {
            if let Some(state) = self.tenants.get_mut(&tenant.name) {
                // The tail is re-read under the lock before signing, should it be behind.
                state.checkpointed_size = state.checkpointed_size.min(checkpointed_size);
                continue;
            }
            let state = TenantState::read(store, &tenant.name, tenant.origin, checkpointed_size)?;
            self.tenants.insert(tenant.name, state);
        }
        Ok(())
    }

    pub(super) fn sign_checkpoint(&mut self, tenant: &str, all: bool) -> Result<(), LedgerError> {
        self.store.begin_write(&[tenant])?;
        let result = self.sign_checkpoint_locked(tenant, all);
        match result {
            Ok(()) => self.store.commit()?,
            Err(_) => {
                let _ = self.store.rollback();
                // Kept, not dropped: the log still needs its checkpoint, and a retry reloads
                // the tail from the store.
                if let Some(state) = self.tenants.get_mut(tenant) {
                    state.stale = true;
                }
            }
        }
        result
    }

    pub(super) fn sign_checkpoint_locked(
        &mut self,
        tenant: &str,
        all: bool,
    ) -> Result<(), LedgerError> {
        let store = self.store.as_ref();
        tenant_state(store, &mut self.tenants, tenant)?;
        let latest = store.latest_checkpoint(tenant)?;
        let state = self.tenants.get_mut(tenant).expect("loaded by state()");
        // Read once, so that the freshness test and the timestamp issued agree.
        let now = self.clock.now();
        let latest_at = latest
            .as_ref()
            .and_then(|c| Timestamp::parse(&c.created_at).ok());
        if let Some(latest) = &latest {
            // Another process may have signed meanwhile.
            let age = latest_at.map(|at| now.unix_micros().saturating_sub(at.unix_micros()));
            let fresh =
                age.is_some_and(|age| age < interval_micros(self.config.checkpoint_interval));
            if latest.size >= state.size || (fresh && !all) {
                state.checkpointed_size = latest.size;
                state.checkpointed_at = Some(Instant::now());
                if latest.size >= state.size {
                    signed(tenant, state);
                }
                return Ok(());
            }
        }
        let record = store
            .tenant(tenant)?
            .ok_or_else(|| Refusal::UnknownTenant(tenant.to_string()))?;
        // Checkpoint times never go backwards, even across instances whose clocks differ.
        let issued = match latest_at {
            Some(at) if at.unix_micros() > now.unix_micros() => at,
            _ => now,
        };
        let checkpoint = Checkpoint {
            origin: state.origin.clone(),
            size: state.size,
            root: state.tree.root(),
            timestamp: Some(issued),
            extensions: vec![],
        };
        let (size, root) = (state.size, state.tree.root());
        let signer = signer(&self.keys, &mut self.signers, &record)?;
        let note = checkpoint.sign(signer).map_err(Fault::SignCheckpoint)?;
        store.insert_checkpoint(tenant, size, &note, &issued.to_rfc3339())?;
        crate::metrics::checkpoint_signed(tenant, issued);
        let state = self.tenants.get_mut(tenant).expect("loaded by state()");
        state.checkpointed_size = size;
        state.checkpointed_at = Some(Instant::now());
        signed(tenant, state);
        self.heads
            .lock()
            .expect("heads lock")
            .insert(tenant.to_string(), LogHead { size, root });
        Ok(())
    }
}

/// The longest wait between two attempts to sign a log whose signing keeps failing.
pub(super) const MAX_SIGN_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How long to wait before the next attempt after `failures` failed ones: the interval,
/// doubled with each further failure, at most [`MAX_SIGN_RETRY_DELAY`] (or the interval, when
/// that is longer). The log stays unsigned meanwhile, so the wait is short at first; it grows
/// so that a lasting fault (a key file gone) does not fill the log with errors.
fn retry_delay(interval: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    interval
        .saturating_mul(1 << doublings)
        .min(MAX_SIGN_RETRY_DELAY.max(interval))
}

/// Records that a checkpoint now covers the log, ending any retrying.
fn signed(tenant: &str, state: &mut TenantState) {
    if state.sign_failures > 0 {
        tracing::info!(
            %tenant,
            failed_attempts = state.sign_failures,
            "signed the checkpoint after failed attempts"
        );
    }
    state.sign_failures = 0;
    state.retry_signing_at = None;
}

pub(super) fn interval_micros(interval: Duration) -> i64 {
    i64::try_from(interval.as_micros()).unwrap_or(i64::MAX)
}

/// The signing key of an existing tenant's log, as the resolver decides it (it refuses one that
/// is not the recorded key); kept in `found` once found, since a log's key never changes.
fn signer<'k>(
    keys: &KeyResolver,
    found: &'k mut HashMap<String, SignerKey>,
    tenant: &Tenant,
) -> Result<&'k SignerKey, LedgerError> {
    if !found.contains_key(&tenant.origin) {
        let signer = keys.signer(tenant)?;
        found.insert(tenant.origin.clone(), signer);
    }
    Ok(&found[&tenant.origin])
}
