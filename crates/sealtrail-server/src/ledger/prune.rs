//! Pruning a tenant's log (see [`crate::retention`]): in one transaction, under the tenant's
//! and the `_system` log's locks, the archive watermark is recorded, the
//! `sealtrail.retention.pruned` entry is appended to `_system`, and only then the store
//! removes the entries below the mark — refusing, itself, a mark past the watermark, one that
//! does not rise, or one that would take the newest entry. A prune is never without its
//! record, and the record's seq is in the store's prune mark.

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
