//! The retention compliance report (`sealtrail retention report`,
//! `GET /v1/admin/tenants/{tenant}/retention/report`): for the monthly compliance review the
//! operations runbook schedules, one tenant's retention period and where it is set, the
//! oldest entry kept, every prune with the archive that holds what it removed (checked against
//! the stored hashes when the archive is given), the legal holds in force, and what is kept
//! past the period and why — with the latest signed checkpoint it was computed against.

use std::fmt::Write as _;

use sealtrail_archive::Target;
use sealtrail_core::Timestamp;
use sealtrail_core::canonical::Entry;
use sealtrail_core::note::VerifierKey;
use sealtrail_store::{Store, StoreError};
use serde::Serialize;

use super::{Period, Periods, PlanError, RetentionPlan, cutoff, plan};
use crate::holds::{self, Hold};
use crate::ledger::SYSTEM_TENANT;

/// One prune, as the `_system` log records it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PruneRecord {
    /// Its `sealtrail.retention.pruned` entry in `_system`.
    pub system_seq: u64,
    pub at: String,
    pub by: String,
    pub pruned_below: u64,
    pub previously_pruned_below: u64,
    pub archive: String,
    pub cutoff: String,
    pub entries_compared: u64,
}

/// The oldest entry a log keeps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OldestKept {
    pub seq: u64,
    pub received_at: String,
}

/// The pruned range checked against an archive for the report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchiveCheck {
    pub archive: String,
    /// Every pruned entry is in the archive and hashes to the leaf the store keeps.
    pub valid: bool,
    pub entries_compared: u64,
    pub archived_size: u64,
    pub first_difference: Option<String>,
}

/// The signed checkpoint the report was computed against.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckpointRef {
    pub size: u64,
    pub note: String,
}

/// The retention compliance report of one tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ComplianceReport {
    pub tenant: String,
    pub generated_at: String,
    pub checkpoint: Option<CheckpointRef>,
    /// `None`: no period is set, the log is kept for ever.
    pub period: Option<Period>,
    pub log_size: u64,
    pub oldest_kept: Option<OldestKept>,
    pub pruned_below: u64,
    pub prunes: Vec<PruneRecord>,
    pub archive_check: Option<ArchiveCheck>,
    pub holds_in_force: Vec<Hold>,
    /// With a period: what it would prune now, and what keeps more than it.
    pub plan: Option<RetentionPlan>,
    /// Entries older than the period still kept (held, not archived yet, or the newest).
    pub kept_past_period: u64,
    /// Findings a reviewer should act on, in words; empty when there are none.
    pub findings: Vec<String>,
}

/// The prunes of `tenant` the `_system` log records, in order.
fn prune_records(store: &dyn Store, tenant: &str) -> Result<Vec<PruneRecord>, StoreError> {
    const BATCH: usize = 4096;
    let size = store.size(SYSTEM_TENANT)?;
    let mut out = Vec::new();
    let mut from = 0;
    while from < size {
        let rows = store.entries(SYSTEM_TENANT, from, size, BATCH)?;
        let Some(&(last, _)) = rows.last() else { break };
        for (seq, entry) in &rows {
            let Ok(bytes) = entry else { continue };
            if !bytes.starts_with(br#"{"action":"sealtrail.retention.pruned""#) {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            let details = &value["details"];
            if details["tenant"].as_str() != Some(tenant) {
                continue;
            }
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            out.push(PruneRecord {
                system_seq: *seq,
                at: text(&value["received_at"]),
                by: text(&value["actor"]["id"]),
                pruned_below: details["pruned_below"].as_u64().unwrap_or(0),
                previously_pruned_below: details["previously_pruned_below"].as_u64().unwrap_or(0),
                archive: text(&details["archive"]),
                cutoff: text(&details["cutoff"]),
                entries_compared: details["entries_compared"].as_u64().unwrap_or(0),
            });
        }
        from = last + 1;
    }
    Ok(out)
}

/// Computes the report at `now`; with `archive`, the pruned range is compared with it.
pub fn compliance_report(
    store: &dyn Store,
    tenant: &str,
    now: Timestamp,
    archive: Option<(&dyn Target, &VerifierKey)>,
) -> Result<ComplianceReport, PlanError> {
    sealtrail_store::in_snapshot(store, || {
        if store.tenant(tenant)?.is_none() {
            return Err(PlanError::UnknownTenant(tenant.to_string()));
        }
        let size = store.size(tenant)?;
        let mark = store.prune_mark(tenant)?;
        let pruned_below = mark.as_ref().map_or(0, |m| m.below);
        let oldest_kept = match store.entries(tenant, pruned_below, size, 1)?.first() {
            Some((seq, Ok(bytes))) => Entry::parse(bytes).ok().map(|entry| OldestKept {
                seq: *seq,
                received_at: entry.server.received_at.to_rfc3339(),
            }),
            _ => None,
        };
        let period = Periods::read(store)?.of(tenant);
        let holds: Vec<Hold> = holds::holds(store)?
            .into_iter()
            .filter(|h| h.tenant == tenant && h.released.is_none())
            .collect();
        let plan = match &period {
            Some(period) => Some(plan(
                store,
                tenant,
                cutoff(now, std::time::Duration::from_secs(period.days * 86_400)),
                archive,
                &holds,
            )?),
            None => None,
        };
        let archive_check = match (archive, pruned_below) {
            (Some((target, key)), below) if below > 0 => {
                let compared = sealtrail_archive::compare::compare_range(
                    store, tenant, target, key, 0, below, 10,
                )
                .map_err(|e| PlanError::Archive(e.to_string()))?;
                Some(ArchiveCheck {
                    archive: target.describe(),
                    valid: compared.valid && compared.archived_size >= below,
                    entries_compared: compared.entries_compared,
                    archived_size: compared.archived_size,
                    first_difference: compared.first_difference.map(|d| d.detail),
                })
            }
            _ => None,
        };
        let kept_past_period = plan
            .as_ref()
            .map_or(0, |p| p.older_below.saturating_sub(p.prunable_below));
        let mut findings = Vec::new();
        if period.is_none() {
            findings.push(format!(
                "no retention period is set: the log is kept for ever (set retention_days, or PUT /v1/admin/tenants/{tenant}/retention)"
            ));
        }
        if let Some(plan) = &plan
            && kept_past_period > 0
        {
            findings.push(format!(
                "{kept_past_period} entries older than the period are still kept; limited by: {}",
                plan.limited_by
            ));
        }
        if let Some(check) = &archive_check
            && !check.valid
        {
            findings.push(format!(
                "the archive {} does not hold every pruned entry as the store's hashes commit to it: {}",
                check.archive,
                check.first_difference.as_deref().unwrap_or("it holds fewer entries")
            ));
        }
        if pruned_below > 0 && archive.is_none() {
            findings.push(
                "the pruned range was not checked against an archive for this report (give --archive, or run the server with archive_to)".to_string(),
            );
        }
        let checkpoint = store.latest_checkpoint(tenant)?.map(|c| CheckpointRef {
            size: c.size,
            note: c.note,
        });
        Ok(ComplianceReport {
            tenant: tenant.to_string(),
            generated_at: now.to_rfc3339(),
            checkpoint,
            period,
            log_size: size,
            oldest_kept,
            pruned_below,
            prunes: prune_records(store, tenant)?,
            archive_check,
            holds_in_force: holds,
            plan,
            kept_past_period,
            findings,
        })
    })
}

impl ComplianceReport {
    /// The report as Markdown, for the review's minutes.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Retention compliance: {}\n", self.tenant);
        let _ = writeln!(md, "Generated {}.", self.generated_at);
        if let Some(cp) = &self.checkpoint {
            let first = cp.note.lines().take(3).collect::<Vec<_>>().join(" / ");
            let _ = writeln!(
                md,
                "Computed against the signed checkpoint of size {} ({first}).",
                cp.size
            );
        }
        let _ = writeln!(md, "\n## Policy\n");
        match &self.period {
            Some(p) => {
                let _ = writeln!(
                    md,
                    "- Retention period: {} days (set by {})",
                    p.days, p.source
                );
            }
            None => {
                let _ = writeln!(md, "- Retention period: none (kept for ever)");
            }
        }
        let _ = writeln!(md, "- Entries in the log: {}", self.log_size);
        match &self.oldest_kept {
            Some(o) => {
                let _ = writeln!(
                    md,
                    "- Oldest entry kept: seq {}, received {}",
                    o.seq, o.received_at
                );
            }
            None => {
                let _ = writeln!(md, "- Oldest entry kept: none");
            }
        }
        let _ = writeln!(
            md,
            "- Entries older than the period still kept: {}",
            self.kept_past_period
        );
        let _ = writeln!(md, "\n## Pruned\n");
        if self.prunes.is_empty() {
            let _ = writeln!(md, "Nothing was ever pruned.");
        } else {
            let _ = writeln!(
                md,
                "| _system seq | at | by | entries | archive | compared |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for p in &self.prunes {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {}–{} | {} | {} |",
                    p.system_seq,
                    p.at,
                    p.by,
                    p.previously_pruned_below,
                    p.pruned_below.saturating_sub(1),
                    p.archive,
                    p.entries_compared
                );
            }
        }
        if let Some(check) = &self.archive_check {
            let _ = writeln!(
                md,
                "\nArchive check: {} — {} pruned entries compared with the stored hashes in {}.",
                if check.valid { "passed" } else { "FAILED" },
                check.entries_compared,
                check.archive
            );
        }
        let _ = writeln!(md, "\n## Legal holds in force\n");
        if self.holds_in_force.is_empty() {
            let _ = writeln!(md, "None.");
        } else {
            let _ = writeln!(md, "| id | from | to | reason | added |");
            let _ = writeln!(md, "|---|---|---|---|---|");
            for h in &self.holds_in_force {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} by {} |",
                    h.id,
                    h.from.as_deref().unwrap_or("start"),
                    h.to.as_deref().unwrap_or("end"),
                    h.reason.replace('|', "\\|"),
                    h.added_at,
                    h.added_by
                );
            }
        }
        let _ = writeln!(md, "\n## Findings\n");
        if self.findings.is_empty() {
            let _ = writeln!(md, "None.");
        }
        for f in &self.findings {
            let _ = writeln!(md, "- {f}");
        }
        md
    }
}
