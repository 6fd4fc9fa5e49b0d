//! Setting a tenant's retention period through the admin API (see [`crate::retention`]): the
//! `retention_periods` settings row changed in the same transaction as its `_system` audit
//! entry, `sealtrail.retention.period_set`.
//!
//! The row is a JSON object of tenant names to days; it holds only the periods set here, which
//! come before the configuration's (`crate::retention::Periods`). As with freezes, the job
//! locks the `_system` log, whose entry it appends, so two changes of the row cannot overwrite
//! each other (each reads the row after taking the lock). A request that would change nothing
//! — the same days again, or removing an override that is not there — writes nothing and
//! records nothing.

use std::collections::BTreeMap;

use sealtrail_store::{Store, StoreError};

use super::group::GroupWork;
use super::{LedgerError, Refusal, RetentionChange, SYSTEM_TENANT};
use crate::config::RETENTION_BOUND;
use crate::tenant::TenantName;

/// The `settings` row holding the periods set through the admin API: a JSON object of tenant
/// names to days.
pub const PERIODS_SETTING: &str = "retention_periods";

/// The `_system` action that records a change of a tenant's period.
pub const PERIOD_SET: &str = "sealtrail.retention.period_set";

/// The periods the admin API set, by tenant, as the row holds them; no row, none. A row that
/// does not parse is an error — never "keep for ever" or "prune everything" by accident.
pub fn admin_periods(store: &dyn Store) -> Result<BTreeMap<String, u64>, StoreError> {
    let Some(text) = store.setting(PERIODS_SETTING)? else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_str(&text).map_err(|error| {
        StoreError::Corrupt(format!(
            "the setting {PERIODS_SETTING} is not a JSON object of tenants to days ({error}); it was changed outside sealtrail"
        ))
    })
}

impl GroupWork<'_> {
    /// Sets `tenant`'s period to `days` (`None`: removes the override, so the configuration's
    /// period applies again), on behalf of `actor`.
    pub(super) fn set_retention(
        &mut self,
        tenant: &str,
        days: Option<u64>,
        actor: &str,
    ) -> Result<RetentionChange, LedgerError> {
        TenantName::parse(tenant).map_err(Refusal::from)?;
        if tenant == SYSTEM_TENANT {
            return Err(Refusal::SystemTenantPruned.into());
        }
        if let Some(days) = days
            && !RETENTION_BOUND.contains(days)
        {
            return Err(Refusal::RetentionDays(days).into());
        }
        if self.store.tenant(tenant)?.is_none() {
            return Err(Refusal::UnknownTenant(tenant.to_string()).into());
        }
        let mut periods = admin_periods(self.store)?;
        let before = periods.get(tenant).copied();
        let change = |changed| RetentionChange {
            tenant: tenant.to_string(),
            changed,
            before,
            after: days,
        };
        if before == days {
            return Ok(change(false));
        }
        match days {
            Some(days) => periods.insert(tenant.to_string(), days),
            None => periods.remove(tenant),
        };
        let text = serde_json::to_string(&periods).expect("a map of strings to numbers serialises");
        self.store.set_setting(PERIODS_SETTING, &text)?;
        self.audit_admin(
            PERIOD_SET,
            actor,
            "tenant",
            tenant,
            serde_json::json!({
                "tenant": tenant,
                "days_before": before,
                "days_after": days,
                "actor": actor,
            }),
        )?;
        Ok(change(true))
    }
}
