//! Retention: what a tenant's retention period would prune, and why not more
//! (`sealtrail retention plan`).
//!
//! An entry may be pruned only when all of these hold, and the plan says which one stops it:
//!
//! - it is **older than the period**: received before `now - period` (the tenant's
//!   `[tenants.NAME] retention_days`, or `--older-than`);
//! - it is **archived**: below the largest size whose manifest the log's key verifies in the
//!   archive given (no archive, nothing is prunable);
//! - **no legal hold in force covers it** (`crate::holds`).
//!
//! Entries are pruned from the start of the log only, so the plan is one number: the seq below
//! which every entry passes all three, `prunable_below`. Received times grow with seqs in a
//! log (the writer stamps them in order), so each bound is found by a binary search over the
//! entries' `received_at`, a handful of reads on any log.
//!
//! Pruning itself (`retention apply`) is not built yet: the plan only reads.

use sealtrail_archive::Target;
use sealtrail_core::Timestamp;
use sealtrail_core::canonical::Entry;
use sealtrail_store::{Store, StoreError};
use serde::Serialize;

use crate::holds::Hold;

/// A hold that stops pruning, and where.
#[derive(Debug, Clone, Serialize)]
pub struct HeldRange {
    pub hold_id: String,
    pub reason: String,
    /// The first seq it covers.
    pub first_seq: u64,
}

/// What the retention period would prune in one log.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionPlan {
    pub tenant: String,
    pub log_size: u64,
    /// Entries received before this time are old enough.
    pub cutoff: String,
    /// The first seq received at or after the cutoff (the log's size when all are older).
    pub older_below: u64,
    /// The archive's verified size; `None` when no archive was given.
    pub archived_below: Option<u64>,
    pub archive: Option<String>,
    /// Holds in force that cover entries older than the cutoff.
    pub held: Vec<HeldRange>,
    /// Every entry below this seq could be pruned.
    pub prunable_below: u64,
    /// What keeps `prunable_below` where it is, in words.
    pub limited_by: String,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    #[error("entry {seq} of {tenant} cannot be read ({why}); `sealtrail verify` first")]
    Unreadable {
        tenant: String,
        seq: u64,
        why: String,
    },
    #[error("the archive: {0}")]
    Archive(String),
}

/// The first seq in `[0, size)` whose entry was received at or after `at` (`size` when none).
fn first_received_from(
    store: &dyn Store,
    tenant: &str,
    size: u64,
    at: &Timestamp,
) -> Result<u64, PlanError> {
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let unreadable = |why: String| PlanError::Unreadable {
            tenant: tenant.to_string(),
            seq: mid,
            why,
        };
        let bytes = store
            .entry(tenant, mid)?
            .ok_or_else(|| unreadable("it is missing".into()))?;
        let entry = Entry::parse(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if entry.server.received_at < *at {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The plan for `tenant` with entries received before `cutoff` old enough, `archive` the
/// archive that would hold them (its manifests checked with the log's key), and `holds` the
/// holds the `_system` log records.
pub fn plan(
    store: &dyn Store,
    tenant: &str,
    cutoff: Timestamp,
    archive: Option<(&dyn Target, &sealtrail_core::note::VerifierKey)>,
    holds: &[Hold],
) -> Result<RetentionPlan, PlanError> {
    if store.tenant(tenant)?.is_none() {
        return Err(PlanError::UnknownTenant(tenant.to_string()));
    }
    let size = store.size(tenant)?;
    let older_below = first_received_from(store, tenant, size, &cutoff)?;
    let (archived_below, archive_name) = match archive {
        Some((target, key)) => {
            let state = sealtrail_archive::run::archived_state(target, tenant, key)
                .map_err(|e| PlanError::Archive(e.to_string()))?;
            (Some(state.size), Some(target.describe()))
        }
        None => (None, None),
    };
    let mut held = Vec::new();
    for hold in holds
        .iter()
        .filter(|h| h.tenant == tenant && h.released.is_none())
    {
        let start = match &hold.from {
            Some(from) => Timestamp::parse(from)
                .map(|t| first_received_from(store, tenant, older_below, &t))
                .unwrap_or(Ok(0))?,
            None => 0,
        };
        let end = match &hold.to {
            Some(to) => Timestamp::parse(to)
                .map(|t| first_received_from(store, tenant, older_below, &t))
                .unwrap_or(Ok(older_below))?,
            None => older_below,
        };
        if start < end {
            held.push(HeldRange {
                hold_id: hold.id.clone(),
                reason: hold.reason.clone(),
                first_seq: start,
            });
        }
    }
    let mut prunable_below = older_below;
    let mut limited_by = if older_below == size {
        "every entry is older than the period".to_string()
    } else {
        format!("entry {older_below} is the first received after the cutoff")
    };
    match archived_below {
        None => {
            prunable_below = 0;
            limited_by = "no archive was given: only archived entries are ever pruned".into();
        }
        Some(archived) if archived < prunable_below => {
            prunable_below = archived;
            limited_by = format!("the archive holds entries below {archived} only");
        }
        Some(_) => {}
    }
    if let Some(first) = held.iter().min_by_key(|h| h.first_seq)
        && first.first_seq < prunable_below
    {
        prunable_below = first.first_seq;
        limited_by = format!(
            "legal hold {} covers entries from {} ({})",
            first.hold_id, first.first_seq, first.reason
        );
    }
    Ok(RetentionPlan {
        tenant: tenant.to_string(),
        log_size: size,
        cutoff: cutoff.to_rfc3339(),
        older_below,
        archived_below,
        archive: archive_name,
        held,
        prunable_below,
        limited_by,
    })
}
