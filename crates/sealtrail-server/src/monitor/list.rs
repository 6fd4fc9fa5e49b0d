//! Reading a tenant's alerts straight from its log, without the query index: what
//! `sealtrail alerts list` does against a store no server serves.

use sealtrail_store::{Store, StoreError};

use super::alerts::{ALERT_ACTION, AlertRecord};

/// Every alert in `tenant`'s log, oldest first. Streams the log (constant memory besides the
/// alerts) and parses only the entries that mention the alert action.
pub fn scan(log: &dyn Store, tenant: &str) -> Result<Vec<AlertRecord>, StoreError> {
    let first = log.prune_mark(tenant)?.map_or(0, |m| m.below);
    let size = log.size(tenant)?;
    let needle = ALERT_ACTION.as_bytes();
    let mut alerts = Vec::new();
    log.for_each_entry(tenant, first, size, &mut |_, entry| {
        if let Ok(bytes) = entry
            && bytes.windows(needle.len()).any(|w| w == needle)
            && let Some(alert) = AlertRecord::from_bytes(bytes)
        {
            alerts.push(alert);
        }
    })?;
    Ok(alerts)
}
