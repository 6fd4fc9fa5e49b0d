//! The verified prefix a report covers: the tenant's latest signed checkpoint, the entries
//! `[0, size)` verified against it (and every other checkpoint of that size or less, and the
//! stored tree) by the core's verifier through [`crate::verify::verify_tenant`], and then
//! those same entries streamed, in one read snapshot, to the report's collector.
//!
//! Scanning the prefix rather than asking the query index is a choice: the index trails the
//! log and would have to be waited for, and it says only which seqs match, so the entries
//! would be read anyway. A scan reads each entry once, in seq order, in chunks the store
//! hands over ([`sealtrail_store::Store::for_each_entry`]), so memory stays constant in the
//! log's size; what a report keeps is bounded by its collector (aggregates, or at most
//! [`super::MAX_ROWS`] rows with a truncation flag).

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::note;
use sealtrail_store::{PruneMark, Store, StoredCheckpoint};
use serde::Serialize;
use std::path::Path;

use super::ReportError;
use super::entry::EntryView;

/// The signed checkpoint a report was computed against.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRef {
    pub origin: String,
    pub size: u64,
    /// The root hash, lowercase hex.
    pub root: String,
    /// The signed note itself, so that a reader can check its signature with the log's key.
    pub note: String,
}

impl CheckpointRef {
    pub fn of(stored: &StoredCheckpoint) -> Result<CheckpointRef, ReportError> {
        let unreadable = |why: String| ReportError::Checkpoint(why);
        let parsed = note::parse(stored.note.as_bytes()).map_err(|e| unreadable(e.to_string()))?;
        let checkpoint = Checkpoint::parse(&parsed.text).map_err(|e| unreadable(e.to_string()))?;
        Ok(CheckpointRef {
            origin: checkpoint.origin,
            size: checkpoint.size,
            root: checkpoint.root.to_hex(),
            note: stored.note.clone(),
        })
    }
}

/// What the report's verification established.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Entries the verifier checked: every entry of the prefix the store still holds.
    pub entries_verified: u64,
    /// The first seq read: 0, or where retention pruned the log (those entries are in the
    /// archive, not here, and the report does not cover them).
    pub first_seq: u64,
    /// Entries below this seq were pruned after archiving; null when none were.
    pub pruned_below: Option<u64>,
    /// The archive that holds the pruned entries.
    pub pruned_archive: Option<String>,
    /// Violations found and acknowledged by a repair marker (`sealtrail repair`): the log
    /// was damaged there and repaired; 0 for an undamaged log.
    pub acknowledged_violations: u64,
}

/// Verifies `[0, checkpoint.size)` of `tenant`'s log (what the store still holds of it).
/// Refuses with [`ReportError::Unverified`], naming the first broken seq, unless every
/// violation found was acknowledged by a repair.
pub fn verify(
    conn: &dyn Store,
    data_dir: &Path,
    tenant: &str,
    checkpoint: &CheckpointRef,
) -> Result<Coverage, ReportError> {
    let mark: Option<PruneMark> = conn.prune_mark(tenant)?;
    let pruned = mark.filter(|m| m.below > 0);
    let first_seq = pruned.as_ref().map_or(0, |m| m.below.min(checkpoint.size));
    // Nothing of the prefix is left to read: an empty log, or one pruned up to the checkpoint.
    if first_seq >= checkpoint.size {
        return Ok(Coverage {
            entries_verified: 0,
            first_seq,
            pruned_below: pruned.as_ref().map(|m| m.below),
            pruned_archive: pruned.map(|m| m.archive),
            acknowledged_violations: 0,
        });
    }
    let report =
        crate::verify::verify_tenant(conn, data_dir, tenant, &[], None, Some(checkpoint.size - 1))?;
    let mut acknowledged = 0;
    if !report.valid {
        if !report.all_acknowledged() {
            let first = report.violations.first();
            return Err(ReportError::Unverified {
                first_broken_seq: report.first_broken_seq,
                violation_count: report.violation_count,
                first: first.map(|v| format!("{}: {}", v.kind.as_str(), v.detail)),
                size: checkpoint.size,
            });
        }
        acknowledged = report.violation_count;
    }
    Ok(Coverage {
        entries_verified: report.rows_checked,
        first_seq,
        pruned_below: pruned.as_ref().map(|m| m.below),
        pruned_archive: pruned.map(|m| m.archive),
        acknowledged_violations: acknowledged,
    })
}

/// Streams the entries `[first_seq, size)` whose event time is in `[from, to)` (canonical
/// timestamps, compared as text) to `visit`, in seq order.
pub fn scan(
    conn: &dyn Store,
    tenant: &str,
    first_seq: u64,
    size: u64,
    from: &str,
    to: &str,
    visit: &mut dyn FnMut(&EntryView),
) -> Result<(), ReportError> {
    let mut failed: Option<ReportError> = None;
    conn.for_each_entry(tenant, first_seq, size, &mut |seq, entry| {
        if failed.is_some() {
            return;
        }
        let Some(view) = entry.ok().and_then(EntryView::parse) else {
            failed = Some(ReportError::CorruptEntry { seq });
            return;
        };
        let at = view.event_time();
        if at >= from && at < to {
            visit(&view);
        }
    })?;
    failed.map_or(Ok(()), Err)
}
