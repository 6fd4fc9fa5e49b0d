//! `sealtrail repair`: after verification found damage, put back what can be put back
//! exactly — never rewrite, never recompute.
//!
//! 1. The tenant's log is verified; a valid log is left alone (nothing is written).
//! 2. For each seq a violation names (and the one before a broken link), the original bytes
//!    are looked for in the sources given: the archive (the entry bundle that holds the seq,
//!    at the archived size) and `AUDIT:` lines (`serve --audit-stdout`).
//! 3. Bytes are put back only when they are provably the entry the log committed to: their
//!    leaf hash is the stored leaf at that seq, and the stored tree's inclusion proof for that
//!    leaf gives the root of the latest checkpoint the log's key signed. The store checks the
//!    leaf hash again itself under the log's lock ([`sealtrail_store::Store::repair_entry`]).
//!    Stored hashes and checkpoints are never touched, so nothing is recomputed.
//! 4. Everything put back, and the run itself (tenant, reason, actor, sources, what was
//!    restored and what could not be), is one transaction of the write path, recorded in the
//!    `_system` log as `sealtrail.repair.run`.
//! 5. The log is verified again. What is still wrong (bytes that exist nowhere else) is
//!    acknowledged on request (`acknowledge_lost`), never rewritten: a marker event `sealtrail.chain.repaired` is appended to
//!    the log itself, naming the range, the violation kinds, the operator's reason and the
//!    evidence, and recorded in `_system`; from then on `verify` lists each of those
//!    violations with the marker's seq (`acknowledged_by`), and the report stays invalid
//!    unless the verifier is asked to accept acknowledged damage. The seal of the first sealed
//!    day that covers the damage is re-issued with a `supersedes` link to the seal it
//!    replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sealtrail_archive::{Target, layout};
use sealtrail_core::canonical::Entry;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::merkle::{inclusion_proof, root_from_inclusion};
use sealtrail_core::tiles::decode_entry_bundle;
use sealtrail_core::verify::{REPAIR_MARKER_ACTION, RepairMarker, Report, ViolationKind};
use sealtrail_store::{Restore, StoreError, StoreHashes};
use serde::Serialize;

use crate::ledger::{Ledger, LedgerConfig, LedgerError, RestoreEntry};
use crate::replay::AuditLine;
use crate::verify::{VerificationError, log_keys, verify_tenant};

/// What to repair, from where, and why.
pub struct RepairRequest<'a> {
    pub ledger: LedgerConfig,
    pub tenant: String,
    /// The operator's account of the cause, kept in the run's record.
    pub reason: String,
    pub actor: String,
    pub archive: Option<&'a dyn Target>,
    pub audit_lines: Vec<AuditLine>,
    /// Acknowledge what no source holds (a repair marker, a re-issued seal); without it such
    /// damage is only listed, so that a forgotten `--from-archive` never records a loss.
    pub acknowledge_lost: bool,
}

/// One seq put back.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub seq: u64,
    /// `archive` or `audit_log`.
    pub source: &'static str,
    /// `missing` (the row was gone) or `changed` (it held other bytes).
    pub was: &'static str,
}

/// One damaged seq that could not be put back, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotRestored {
    pub seq: u64,
    pub reason: String,
}

/// What a repair did.
#[derive(Debug, Serialize)]
pub struct RepairReport {
    pub tenant: String,
    /// Violations found before the repair.
    pub violations_before: u64,
    pub restored: Vec<Restored>,
    pub not_restored: Vec<NotRestored>,
    /// Whether the run was recorded in `_system` (it wrote something).
    pub recorded: bool,
    /// The repair marker for what could not be put back, when there was any.
    pub acknowledged: Option<Acknowledged>,
    /// The verification after the repair.
    pub after: Report,
}

/// Why a repair could not run.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("cannot verify the log: {0}")]
    Verify(#[from] VerificationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the archive: {0}")]
    Archive(String),
    #[error(
        "tenant {0}: the log has no checkpoint its key verifies, so no bytes can be proven to be the entries it committed to"
    )]
    NoTrustedCheckpoint(String),
    #[error("acknowledging the damage: {0}")]
    Seal(String),
}

/// The kinds of violation that name an entry whose bytes may be put back.
fn names_an_entry(kind: ViolationKind) -> bool {
    matches!(
        kind,
        ViolationKind::ContentMismatch
            | ViolationKind::MissingSeq
            | ViolationKind::MalformedEntry
            | ViolationKind::SeqMismatch
            | ViolationKind::BrokenLink
            | ViolationKind::UnhashedEntry
            | ViolationKind::OutOfOrder
            | ViolationKind::DuplicateSeq
            | ViolationKind::StoreError
    )
}

/// Runs a repair (see the module docs).
pub fn repair(request: RepairRequest<'_>) -> Result<RepairReport, RepairError> {
    let data_dir: PathBuf = request.ledger.data_dir.clone();
    let conn = request.ledger.store.open_reader()?;
    let tenant = request.tenant.as_str();
    let before = verify_tenant(conn.as_ref(), &data_dir, tenant, &[], None, None)?;
    if before.valid {
        return Ok(RepairReport {
            tenant: tenant.to_string(),
            violations_before: 0,
            restored: Vec::new(),
            not_restored: Vec::new(),
            recorded: false,
            acknowledged: None,
            after: before,
        });
    }
    let mut damaged: BTreeSet<u64> = BTreeSet::new();
    for violation in before.violations.iter().filter(|v| names_an_entry(v.kind)) {
        if let Some(seq) = violation.seq {
            damaged.insert(seq);
            if violation.kind == ViolationKind::BrokenLink && seq > 0 {
                damaged.insert(seq - 1);
            }
        }
    }

    // The root the log's key vouches for, and the stored tree that must prove each leaf in it.
    let record = conn
        .tenant(tenant)?
        .ok_or_else(|| VerificationError::UnknownTenant(tenant.to_string()))?;
    let key = log_keys(&data_dir, &record)?.key;
    let trusted = conn
        .checkpoints(tenant)?
        .iter()
        .rev()
        .find_map(|note| Checkpoint::open(note.as_bytes(), &key).ok())
        .ok_or_else(|| RepairError::NoTrustedCheckpoint(tenant.to_string()))?;
    let hashes = StoreHashes {
        store: conn.as_ref(),
        tenant,
    };
    let proven = |seq: u64, bytes: &[u8]| -> bool {
        if seq >= trusted.size {
            return false;
        }
        let Ok(proof) = inclusion_proof(seq, trusted.size, &hashes) else {
            return false;
        };
        root_from_inclusion(seq, trusted.size, &leaf_hash(bytes), &proof)
            .is_ok_and(|root| root == trusted.root)
    };

    // The candidate bytes of each damaged seq, from each source.
    let mut candidates: BTreeMap<u64, Vec<(&'static str, Vec<u8>)>> = BTreeMap::new();
    if let Some(archive) = request.archive {
        for (seq, bytes) in from_archive(archive, tenant, &key, &damaged)? {
            candidates.entry(seq).or_default().push(("archive", bytes));
        }
    }
    for line in request.audit_lines.iter().filter(|l| l.tenant == tenant) {
        if let Ok(entry) = Entry::parse(&line.entry)
            && damaged.contains(&entry.server.seq)
        {
            candidates
                .entry(entry.server.seq)
                .or_default()
                .push(("audit_log", line.entry.clone()));
        }
    }

    let mut plan: Vec<(RestoreEntry, &'static str, &'static str)> = Vec::new();
    let mut not_restored = Vec::new();
    for &seq in &damaged {
        let current = conn.entry(tenant, seq).ok().flatten();
        let found = candidates.get(&seq).and_then(|list| {
            list.iter()
                .find(|(_, bytes)| proven(seq, bytes))
                .map(|(source, bytes)| (*source, bytes.clone()))
        });
        match found {
            Some((_, bytes)) if current.as_deref() == Some(bytes.as_slice()) => {
                // The row is intact; its violation comes from another one.
            }
            Some((source, bytes)) => {
                let id = Entry::parse(&bytes)
                    .map(|e| e.server.id.to_string())
                    .unwrap_or_default();
                let was = if current.is_some() { "changed" } else { "missing" };
                plan.push((
                    RestoreEntry {
                        tenant: tenant.to_string(),
                        seq,
                        id,
                        entry: bytes,
                        replace: true,
                    },
                    source,
                    was,
                ));
            }
            None => not_restored.push(NotRestored {
                seq,
                reason: match candidates.get(&seq) {
                    Some(_) => format!(
                        "the bytes the sources hold for seq {seq} are not the entry the log's signed tree commits to"
                    ),
                    None if request.archive.is_none() && request.audit_lines.is_empty() => {
                        "no source was given (--from-archive TARGET, --audit-log FILE)".to_string()
                    }
                    None => format!("no source given holds the entry at seq {seq}"),
                },
            }),
        }
    }
    drop(conn);

    let mut restored = Vec::new();
    let recorded = !plan.is_empty();
    if recorded {
        let run = serde_json::json!({
            "tenant": tenant,
            "reason": request.reason,
            "violations_before": before.violation_count,
            "sources": {
                "archive": request.archive.map(|a| a.describe()),
                "audit_lines": request.audit_lines.len(),
            },
            "restoring": plan.iter().map(|(e, source, was)| serde_json::json!({"seq": e.seq, "source": source, "was": was})).collect::<Vec<_>>(),
            "not_restored": not_restored.iter().map(|n| n.seq).collect::<Vec<_>>(),
        });
        let ledger = Ledger::start(request.ledger.clone())?;
        let entries: Vec<RestoreEntry> = plan.iter().map(|(e, _, _)| e.clone()).collect();
        let results = ledger.repair_blocking(entries, run, &request.actor);
        ledger.shutdown();
        for ((entry, source, was), result) in plan.iter().zip(results?) {
            match result {
                Restore::Restored => restored.push(Restored {
                    seq: entry.seq,
                    source,
                    was,
                }),
                Restore::Present => {}
                other => not_restored.push(NotRestored {
                    seq: entry.seq,
                    reason: format!("the store refused it: {other:?}"),
                }),
            }
        }
    }
    let conn = request.ledger.store.open_reader()?;
    let mut after = verify_tenant(conn.as_ref(), &data_dir, tenant, &[], None, None)?;
    drop(conn);
    // What could not be put back is acknowledged, never rewritten: a marker in the log itself
    // names the damage, and the day's seal is re-issued linked to the one it replaces.
    let mut acknowledged = None;
    let unacknowledged: Vec<&sealtrail_core::verify::Violation> = after
        .violations
        .iter()
        .filter(|v| v.seq.is_some() && v.acknowledged_by.is_none())
        .collect();
    if request.acknowledge_lost && !unacknowledged.is_empty() {
        let marker = acknowledge(&request, &after, &unacknowledged)?;
        let now = crate::clock::Clock::system().now();
        let root_key = match &request.ledger.signing_key {
            Some(path) => Some(
                crate::keys::read_signer(path)
                    .map_err(|e| RepairError::Seal(format!("cannot read the signing key: {e}")))?,
            ),
            None => None,
        };
        let keys = crate::keys::KeyResolver::new(&data_dir).with_root_key(root_key);
        let writer = request.ledger.store.open_writer()?;
        let reissued =
            crate::seals::reissue_covering(writer.as_ref(), &keys, &record, marker.from_seq, now)
                .map_err(|e| RepairError::Seal(e.to_string()))?;
        drop(writer);
        acknowledged = Some(Acknowledged {
            marker_seq: marker.seq,
            from_seq: marker.from_seq,
            to_seq: marker.to_seq,
            kinds: marker.kinds.iter().map(|k| k.as_str()).collect(),
            reissued_seal: reissued.map(|s| format!("{} #{}", s.day, s.issue)),
        });
        let conn = request.ledger.store.open_reader()?;
        after = verify_tenant(conn.as_ref(), &data_dir, tenant, &[], None, None)?;
    }
    Ok(RepairReport {
        tenant: tenant.to_string(),
        violations_before: before.violation_count,
        restored,
        not_restored,
        recorded: recorded || acknowledged.is_some(),
        acknowledged,
        after,
    })
}

/// Appends the repair marker for `damage` to the log and records it in `_system`.
fn acknowledge(
    request: &RepairRequest<'_>,
    after: &Report,
    damage: &[&sealtrail_core::verify::Violation],
) -> Result<RepairMarker, RepairError> {
    let tenant = request.tenant.as_str();
    let seqs: Vec<u64> = damage.iter().filter_map(|v| v.seq).collect();
    let (from_seq, to_seq) = (
        seqs.iter().copied().min().unwrap_or(0),
        seqs.iter().copied().max().unwrap_or(0),
    );
    let kinds: BTreeSet<ViolationKind> = damage.iter().map(|v| v.kind).collect();
    let listed: Vec<serde_json::Value> = damage
        .iter()
        .take(MAX_LISTED)
        .map(|v| serde_json::json!({"seq": v.seq, "kind": v.kind.as_str()}))
        .collect();
    let document = serde_json::json!({
        "action": REPAIR_MARKER_ACTION,
        "activity": "admin",
        "outcome": "success",
        "outcome_reason": request.reason,
        "actor": {"id": request.actor, "type": "user"},
        "details": {
            "from_seq": from_seq,
            "to_seq": to_seq,
            "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "violations": listed,
            "violation_count": damage.len(),
            "reason": request.reason,
            "evidence": {
                "verified_rows": after.rows_checked,
                "first_broken_seq": after.first_broken_seq,
                "sources": {
                    "archive": request.archive.map(|a| a.describe()),
                    "audit_lines": request.audit_lines.len(),
                },
                "why_not_restored": "no source given holds bytes the log's signed tree commits to",
            },
        },
    });
    let event = sealtrail_core::event::Event::from_value(&document)
        .map_err(|e| RepairError::Seal(format!("the repair marker does not form an event: {e}")))?;
    let ledger = Ledger::start(request.ledger.clone())?;
    let appended = ledger.append_blocking(
        tenant,
        vec![crate::ledger::Submission {
            event,
            idempotency_key: None,
        }],
    );
    let marker_seq = match appended {
        Ok(outcomes) => match outcomes.into_iter().next() {
            Some(crate::ledger::Outcome::Created(receipt)) => Ok(receipt.seq),
            other => Err(RepairError::Seal(format!(
                "the repair marker was not appended: {other:?}"
            ))),
        },
        Err(error) => Err(error.into()),
    };
    let marker_seq = match marker_seq {
        Ok(seq) => seq,
        Err(error) => {
            ledger.shutdown();
            return Err(error);
        }
    };
    let run = serde_json::json!({
        "tenant": tenant,
        "reason": request.reason,
        "acknowledged": {"marker_seq": marker_seq, "from_seq": from_seq, "to_seq": to_seq,
            "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
    });
    let recorded = ledger.repair_blocking(Vec::new(), run, &request.actor);
    ledger.shutdown();
    recorded?;
    Ok(RepairMarker {
        seq: marker_seq,
        from_seq,
        to_seq,
        kinds: kinds.into_iter().collect(),
    })
}

/// At most this many violations are listed in a marker's details (an event's arrays are
/// bounded); `violation_count` says how many it acknowledges.
const MAX_LISTED: usize = 200;

/// The marker a repair appended for damage it could not put back.
#[derive(Debug, Serialize)]
pub struct Acknowledged {
    pub marker_seq: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    pub kinds: Vec<&'static str>,
    /// The day's seal re-issued for it, as `<day> #<issue>`; `None` when no sealed day covers
    /// the damage yet.
    pub reissued_seal: Option<String>,
}

/// The archived bytes of each of `seqs` that the archive holds (below its archived size).
fn from_archive(
    target: &dyn Target,
    tenant: &str,
    key: &sealtrail_core::note::VerifierKey,
    seqs: &BTreeSet<u64>,
) -> Result<Vec<(u64, Vec<u8>)>, RepairError> {
    let archived = sealtrail_archive::run::archived_state(target, tenant, key)
        .map_err(|e| RepairError::Archive(e.to_string()))?
        .size;
    let mut out = Vec::new();
    let tiles = layout::tiles_at(0, archived);
    for &seq in seqs.iter().filter(|&&s| s < archived) {
        let Some(tile) = tiles.iter().find(|t| {
            let first = t.index * sealtrail_core::tiles::TILE_WIDTH;
            (first..first + u64::from(t.width)).contains(&seq)
        }) else {
            continue;
        };
        let key = layout::in_tenant(tenant, &layout::bundle(tile));
        let Some(bundle) = target
            .get(&key)
            .map_err(|e| RepairError::Archive(e.to_string()))?
        else {
            continue;
        };
        let entries = decode_entry_bundle(&bundle)
            .map_err(|e| RepairError::Archive(format!("{key}: {e}")))?;
        let at = (seq - tile.index * sealtrail_core::tiles::TILE_WIDTH) as usize;
        if let Some(bytes) = entries.get(at) {
            out.push((seq, bytes.to_vec()));
        }
    }
    Ok(out)
}
