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
//! Entries are pruned from the start of the log only, in whole entry bundles of 256 (the unit
//! the archive keeps and serves: a partial bundle is written again as the log grows, so the
//! store keeps every entry of the bundle its mark would fall in), and the newest entry is
//! always kept (it is the log's head, which the writer resumes from).
//!
//! **Applying a plan** ([`apply`], `sealtrail retention apply`, and the server every
//! `retention_interval`): the range `pruned_below..prunable_below` is compared with the
//! archive once more at prune time — every archived entry byte for byte with the store's, the
//! hash tiles over it, and the archived checkpoint's root with the store's tree root
//! ([`sealtrail_archive::compare::compare_range`]) — and only when nothing differs does the
//! writer prune: in one transaction it records the archive's verified size as the log's
//! archive watermark, appends `sealtrail.retention.pruned` to `_system` (the plan, the
//! comparison, the archive), and asks the store to remove the entries below the mark; the
//! store refuses, by itself, any mark past the watermark (`Store::prune`). Stored hashes and
//! checkpoints stay, so every inclusion and consistency proof about the log stays valid, and
//! `sealtrail verify` reports the range as pruned, naming the archive.
//!
//! **The period** of a tenant is, first found: the one set through the admin API
//! (`PUT /v1/admin/tenants/{tenant}/retention`, kept in the store's
//! [`PERIODS_SETTING`] row), `[tenants.NAME] retention_days` of the configuration the server
//! last started with, its `retention_days`; none of these means the log is kept for ever.
//! Commands read the configuration the server recorded in the store, so the command line and
//! the server agree without sharing a file.
//!
//! **Layout.** This file plans and applies; `report` is the compliance report; `service` what
//! the admin API asks (a tenant's period and prune mark, the report with the server's
//! archive); [`schedule`] the server's rounds; `archive` the server's archive opened for
//! reading only ([`ArchiveReader`]). The period set through the admin API is written by the
//! writer (`ledger::retention`), with its `_system` entry, like every admin change.

use std::collections::BTreeMap;

use sealtrail_archive::Target;
use sealtrail_core::Timestamp;
use sealtrail_core::tiles::TILE_WIDTH;
use sealtrail_store::{Store, StoreError};
use serde::Serialize;

use crate::holds::{CoverError, Hold, first_received_from};
pub use crate::holds::{HeldRange, held_ranges};
use crate::ledger::{Ledger, LedgerError, PruneDone, PruneRequest};

/// The `settings` row holding the periods set through the admin API (a JSON object of tenant
/// names to days), and the `_system` action that records each change of it; the writer
/// changes the row (`ledger::retention`).
pub use crate::ledger::{PERIOD_SET, PERIODS_SETTING};

/// A tenant's retention period and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    pub days: u64,
    /// `admin_api`, `tenant_config` (`[tenants.NAME] retention_days`) or `config`
    /// (`retention_days`).
    pub source: &'static str,
}

/// The periods as the store records them: set through the admin API, and in the
/// configuration the server last started with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Periods {
    pub admin: BTreeMap<String, u64>,
    pub tenants: BTreeMap<String, u64>,
    pub default_days: Option<u64>,
}

impl Periods {
    /// Reads both rows; a row that does not parse is an error, never "keep for ever" or
    /// "prune everything" by accident.
    pub fn read(store: &dyn Store) -> Result<Periods, StoreError> {
        let corrupt = |row: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!(
                "the setting {row} does not parse ({e}); it was changed outside sealtrail"
            ))
        };
        let admin = crate::ledger::admin_periods(store)?;
        let config: serde_json::Value = match store.setting("config")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("config", e))?,
            None => serde_json::Value::Null,
        };
        let tenants = config["retention_tenant_days"]
            .as_object()
            .map(|days| {
                days.iter()
                    .filter_map(|(name, days)| Some((name.clone(), days.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Periods {
            admin,
            tenants,
            default_days: config["retention_days"].as_u64(),
        })
    }

    /// The period of `tenant`, first found: admin API, tenant configuration, default.
    pub fn of(&self, tenant: &str) -> Option<Period> {
        if let Some(&days) = self.admin.get(tenant) {
            return Some(Period {
                days,
                source: "admin_api",
            });
        }
        if let Some(&days) = self.tenants.get(tenant) {
            return Some(Period {
                days,
                source: "tenant_config",
            });
        }
        self.default_days.map(|days| Period {
            days,
            source: "config",
        })
    }
}

/// The time before which entries are older than `period` at `now`.
pub fn cutoff(now: Timestamp, period: std::time::Duration) -> Timestamp {
    let micros = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(now.unix_micros().saturating_sub(micros))
        .unwrap_or_else(|_| Timestamp::from_unix_micros(0).expect("the epoch is a timestamp"))
}

/// What the retention period would prune in one log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RetentionPlan {
    pub tenant: String,
    pub log_size: u64,
    /// Entries below this were pruned already (0: never pruned).
    pub pruned_below: u64,
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

impl From<CoverError> for PlanError {
    fn from(error: CoverError) -> PlanError {
        match error {
            CoverError::Store(e) => PlanError::Store(e),
            CoverError::Unreadable { tenant, seq, why } => {
                PlanError::Unreadable { tenant, seq, why }
            }
        }
    }
}

/// Why a prune did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive does not hold what the store holds in the range to prune: nothing pruned.
    #[error(
        "the archive {archive} differs from the store in entries {from}..{to} ({count} differences; first: {first}); nothing was pruned — `sealtrail archive verify` shows them all; where the store's side is the damaged one, `sealtrail repair --from-archive` puts its entries back first"
    )]
    ArchiveDiffers {
        archive: String,
        from: u64,
        to: u64,
        count: usize,
        first: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What [`apply`] did: the plan it followed and, when it pruned, the mark it set.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub plan: RetentionPlan,
    /// Entries compared with the archive before pruning.
    pub entries_compared: u64,
    /// `None` when there was nothing (more) to prune.
    pub pruned: Option<PrunedNow>,
}

/// The prune [`apply`] made.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedNow {
    pub below: u64,
    pub removed: u64,
    pub archive: String,
    /// The seq of `sealtrail.retention.pruned` in the `_system` log.
    pub system_seq: u64,
    pub pruned_at: String,
}

impl From<PruneDone> for PrunedNow {
    fn from(done: PruneDone) -> PrunedNow {
        PrunedNow {
            below: done.mark.below,
            removed: done.removed,
            archive: done.mark.archive,
            system_seq: done.mark.system_seq,
            pruned_at: done.mark.pruned_at,
        }
    }
}

/// Plans, compares the range with the archive, and prunes it through `ledger` (see the module
/// documentation). `store` is a reader of the same store the ledger writes.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &dyn Store,
    ledger: &Ledger,
    tenant: &str,
    cutoff: Timestamp,
    target: &dyn Target,
    key: &sealtrail_core::note::VerifierKey,
    holds: &[Hold],
    actor: &str,
) -> Result<Applied, ApplyError> {
    let plan = plan(store, tenant, cutoff, Some((target, key)), holds)?;
    if plan.prunable_below <= plan.pruned_below {
        return Ok(Applied {
            plan,
            entries_compared: 0,
            pruned: None,
        });
    }
    let compared = sealtrail_archive::compare::compare_range(
        store,
        tenant,
        target,
        key,
        plan.pruned_below,
        plan.prunable_below,
        10,
    )
    .map_err(|e| PlanError::Archive(e.to_string()))?;
    if !compared.valid || compared.archived_size < plan.prunable_below {
        let first = compared
            .first_difference
            .as_ref()
            .map(|d| d.detail.clone())
            .unwrap_or_else(|| {
                format!("the archive holds {} entries only", compared.archived_size)
            });
        return Err(ApplyError::ArchiveDiffers {
            archive: target.describe(),
            from: plan.pruned_below,
            to: plan.prunable_below,
            count: compared.differences.len().max(1),
            first,
        });
    }
    let details = serde_json::json!({
        "cutoff": plan.cutoff,
        "older_below": plan.older_below,
        "previously_pruned_below": plan.pruned_below,
        "limited_by": plan.limited_by,
        "held": plan.held,
        "entries_compared": compared.entries_compared,
    });
    let done = ledger.prune_blocking(PruneRequest {
        tenant: tenant.to_string(),
        below: plan.prunable_below,
        archive: target.describe(),
        watermark: compared.archived_size,
        details,
        actor: actor.to_string(),
    })?;
    Ok(Applied {
        plan,
        entries_compared: compared.entries_compared,
        pruned: Some(done.into()),
    })
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
    let pruned_below = store.prune_mark(tenant)?.map_or(0, |mark| mark.below);
    let older_below = first_received_from(store, tenant, pruned_below, size, &cutoff)?;
    let (archived_below, archive_name) = match archive {
        Some((target, key)) => {
            let state = sealtrail_archive::run::archived_state(target, tenant, key)
                .map_err(|e| PlanError::Archive(e.to_string()))?;
            (Some(state.size), Some(target.describe()))
        }
        None => (None, None),
    };
    let held = held_ranges(store, tenant, pruned_below, older_below, holds)?;
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
    if size > 0 && prunable_below >= size {
        prunable_below = size - 1;
        limited_by = format!(
            "the newest entry ({}) is always kept: it is the log's head",
            size - 1
        );
    }
    // Whole entry bundles only: the archive stores and serves the log in bundles of 256, and
    // a partial bundle is written again as the log grows, so the store keeps every entry of
    // the bundle its mark falls in.
    let whole = prunable_below / TILE_WIDTH * TILE_WIDTH;
    if whole < prunable_below {
        prunable_below = whole;
        limited_by = format!(
            "pruning goes by whole bundles of {TILE_WIDTH} entries, as the archive keeps them; {limited_by}"
        );
    }
    if prunable_below <= pruned_below {
        prunable_below = pruned_below;
        if pruned_below > 0 {
            limited_by = format!("entries below {pruned_below} are pruned already; {limited_by}");
        }
    }
    Ok(RetentionPlan {
        tenant: tenant.to_string(),
        log_size: size,
        pruned_below,
        cutoff: cutoff.to_rfc3339(),
        older_below,
        archived_below,
        archive: archive_name,
        held,
        prunable_below,
        limited_by,
    })
}

mod archive;
mod report;
pub mod schedule;
mod service;
pub use archive::{ArchiveReader, ArchiveUnusable, ReadOnly};
pub use report::{ComplianceReport, PruneRecord, compliance_report};
pub use service::{RetentionService, TenantRetention, Watermark, tenant_retention};
