//! Pruning a tenant's log (see [`crate::retention`]): in one transaction, under the tenant's
//! and the `_system` log's locks, the archive watermark is recorded, the
//! `sealtrail.retention.pruned` entry is appended to `_system`, and only then the store
//! removes the entries below the mark — refusing, itself, a mark past the watermark, one that
//! does not rise, or one that would take the newest entry. A prune is never without its
//! record, and the record's seq is in the store's prune mark.
//!
//! The plan behind a prune read the legal holds before this transaction began; a hold placed
//! since (its record is an append to `_system`, whose lock this job holds) is found here, and
//! a prune that would remove an entry it covers is refused ([`Refusal::HeldMeanwhile`]).

use sealtrail_store::{ArchiveWatermark, PruneMark, StoreError};

use super::group::GroupWork;
use super::{LedgerError, PruneDone, PruneRequest, Refusal, SYSTEM_TENANT};
use crate::tenant::TenantName;

impl GroupWork<'_> {
    pub(super) fn prune(&mut self, request: &PruneRequest) -> Result<PruneDone, LedgerError> {
        let tenant = request.tenant.as_str();
        TenantName::parse(tenant).map_err(Refusal::from)?;
        if tenant == SYSTEM_TENANT {
            return Err(Refusal::SystemTenantPruned.into());
        }
        if self.store.tenant(tenant)?.is_none() {
            return Err(Refusal::UnknownTenant(tenant.to_string()).into());
        }
        self.check_holds(tenant, request.below)?;
        let at = self.clock.now().to_rfc3339();
        self.store.record_archive_watermark(
            tenant,
            &ArchiveWatermark {
                size: request.watermark,
                archive: request.archive.clone(),
                recorded_at: at.clone(),
            },
        )?;
        let mut details = request.details.clone();
        if let Some(object) = details.as_object_mut() {
            object.insert("tenant".into(), tenant.into());
            object.insert("pruned_below".into(), request.below.into());
            object.insert("archive".into(), request.archive.as_str().into());
            object.insert("archive_watermark".into(), request.watermark.into());
        }
        let system_seq = self.audit_admin_at(
            "sealtrail.retention.pruned",
            &request.actor,
            "tenant",
            tenant,
            details,
        )?;
        let mark = PruneMark {
            below: request.below,
            archive: request.archive.clone(),
            system_seq,
            pruned_at: at,
        };
        let removed = self.store.prune(tenant, &mark)?;
        Ok(PruneDone { mark, removed })
    }

    /// Refuses a prune below `below` when a hold in force covers an entry it would remove
    /// (one from the first entry not pruned yet to the one before `below`).
    fn check_holds(&mut self, tenant: &str, below: u64) -> Result<(), LedgerError> {
        let from = self.store.prune_mark(tenant)?.map_or(0, |mark| mark.below);
        if below <= from {
            return Ok(());
        }
        let holds = crate::holds::holds(self.store)?;
        // The plan's own computation of what each hold covers, so that the two never differ.
        let held = crate::holds::held_ranges(self.store, tenant, from, below, &holds).map_err(
            |e| match e {
                crate::holds::CoverError::Store(e) => LedgerError::Store(e),
                other => LedgerError::Store(StoreError::Corrupt(other.to_string())),
            },
        )?;
        match held.into_iter().next() {
            Some(range) => Err(Refusal::HeldMeanwhile {
                tenant: tenant.to_string(),
                hold_id: range.hold_id,
                reason: range.reason,
                first_seq: range.first_seq,
            }
            .into()),
            None => Ok(()),
        }
    }
}
