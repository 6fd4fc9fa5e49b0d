//! Freezing and unfreezing a tenant (see [`crate::freeze`]): the `frozen_tenants` row changed
//! in the same transaction as its `_system` audit entry, `sealtrail.tenant.frozen` or
//! `sealtrail.tenant.unfrozen`.
//!
//! The job locks the `_system` log, whose entry it appends; since every change of the row is
//! such a job, that lock also keeps two changes from overwriting each other (each reads the
//! row after taking it). A request that would change nothing — a tenant frozen again, one
//! not frozen unfrozen — writes nothing and records nothing: the standing freeze is kept with
//! its own reason, time and actor.

use super::group::GroupWork;
use super::{FreezeChange, LedgerError, Refusal, SYSTEM_TENANT};
use crate::freeze::{self, FROZEN_SETTING, Freeze};
use crate::tenant::TenantName;

impl GroupWork<'_> {
    /// Freezes (`frozen`) or unfreezes `tenant` for `reason`, on behalf of `actor`.
    pub(super) fn set_frozen(
        &mut self,
        tenant: &str,
        frozen: bool,
        reason: &str,
        actor: &str,
    ) -> Result<FreezeChange, LedgerError> {
        TenantName::parse(tenant).map_err(Refusal::from)?;
        if tenant == SYSTEM_TENANT {
            return Err(Refusal::SystemTenantFrozen.into());
        }
        freeze::check_reason(reason).map_err(Refusal::FreezeReason)?;
        if self.store.tenant(tenant)?.is_none() {
            return Err(Refusal::UnknownTenant(tenant.to_string()).into());
        }
        let mut tenants = freeze::read(self.store)?;
        let standing = tenants.get(tenant).cloned();
        let unchanged = |standing: Option<Freeze>| FreezeChange {
            tenant: tenant.to_string(),
            changed: false,
            standing,
            lifted: None,
        };
        if frozen {
            if standing.is_some() {
                return Ok(unchanged(standing));
            }
            let freeze = Freeze {
                reason: reason.to_string(),
                at: self.clock.now().to_rfc3339(),
                actor: actor.to_string(),
            };
            tenants.insert(tenant, freeze.clone());
            self.store.set_setting(FROZEN_SETTING, &tenants.to_text())?;
            self.audit_admin(
                "sealtrail.tenant.frozen",
                actor,
                "tenant",
                tenant,
                serde_json::json!({"tenant": tenant, "reason": reason}),
            )?;
            return Ok(FreezeChange {
                tenant: tenant.to_string(),
                changed: true,
                standing: Some(freeze),
                lifted: None,
            });
        }
        let Some(lifted) = tenants.remove(tenant) else {
            return Ok(unchanged(None));
        };
        self.store.set_setting(FROZEN_SETTING, &tenants.to_text())?;
        self.audit_admin(
            "sealtrail.tenant.unfrozen",
            actor,
            "tenant",
            tenant,
            serde_json::json!({"tenant": tenant, "reason": reason, "lifted": lifted}),
        )?;
        Ok(FreezeChange {
            tenant: tenant.to_string(),
            changed: true,
            standing: None,
            lifted: Some(lifted),
        })
    }
}
