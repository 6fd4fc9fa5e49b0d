//! Signing checkpoints: which logs are due, and signing each under its tenant's lock.
//!
//! After a commit, a log that grew gets a checkpoint once its latest one (by any process) is
//! older than the interval; at shutdown every grown log gets a final one. Each is signed in a
//! short transaction of its own, from the tail read under the lock, so checkpoints of one log
//! are issued in order of size and time whichever instance signs them, and a timestamp never
//! goes backwards even across instances whose clocks differ.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::note::SignerKey;
use sealtrail_store::Tenant;

use super::writer::{Writer, tenant_state};
use super::{Fault, LedgerError, LogHead, Refusal};
use crate::keys::KeyResolver;

impl Writer {
    /// Signs a checkpoint for every log this writer extended that grew since its latest
    /// checkpoint, when that checkpoint is older than the interval (or regardless of age when
    /// `all`, at shutdown). Each is signed under the tenant's lock from the tail read there.
    pub(super) fn sign_due_checkpoints(&mut self, all: bool) {
        let interval = self.config.checkpoint_interval;
        let candidates: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, state)| {
                let grown = state.size > state.checkpointed_size || state.checkpointed_at.is_none();
                let due = state
                    .checkpointed_at
                    .is_none_or(|at| at.elapsed() >= interval);
                grown && (due || all)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in candidates {
            if let Err(error) = self.sign_checkpoint(&name, all) {
                tracing::error!(tenant = %name, %error, "cannot sign a checkpoint");
                // Look again at the next tick rather than at once.
                if let Some(state) = self.tenants.get_mut(&name) {
                    state.checkpointed_at = Some(Instant::now());
                }
            }
        }
    }

    pub(super) fn sign_checkpoint(&mut self, tenant: &str, all: bool) -> Result<(), LedgerError> {
        self.store.begin_write(&[tenant])?;
        let result = self.sign_checkpoint_locked(tenant, all);
        match result {
            Ok(()) => self.store.commit()?,
            Err(_) => {
                let _ = self.store.rollback();
                self.tenants.remove(tenant);
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
        self.heads
            .lock()
            .expect("heads lock")
            .insert(tenant.to_string(), LogHead { size, root });
        Ok(())
    }
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
