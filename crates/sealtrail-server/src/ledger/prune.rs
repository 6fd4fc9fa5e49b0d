//! Pruning a tenant's log (see [`crate::retention`]): in one transaction, under the tenant's
//! and the `_system` log's locks, the archive watermark is recorded, the
//! `sealtrail.retention.pruned` entry is appended to `_system`, and only then the store
//! removes the entries below the mark — refusing, itself, a mark past the watermark, one that
//! does not rise, or one that would take the newest entry. A prune is never without its
//! record, and the record's seq is in the store's prune mark. The legal holds are read again
//! inside the transaction, so a hold added after the plan was made still stops the prune.

use sealtrail_store::{ArchiveWatermark, PruneMark};

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
        // A hold added since the plan was made is seen here: every hold is an entry of the
        // `_system` log, whose lock this job holds.
        let from = self.store.prune_mark(tenant)?.map_or(0, |mark| mark.below);
        let holds = crate::holds::holds(self.store)?;
        let held = crate::retention::held_ranges(self.store, tenant, from, request.below, &holds)
            .map_err(|e| match e {
            crate::retention::PlanError::Store(e) => LedgerError::Store(e),
            other => LedgerError::Store(sealtrail_store::StoreError::Corrupt(other.to_string())),
        })?;
        if let Some(first) = held.first() {
            return Err(Refusal::Held {
                hold_id: first.hold_id.clone(),
                first_seq: first.first_seq,
            }
            .into());
        }
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
}
