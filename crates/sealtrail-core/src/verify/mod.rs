//! The streaming verifier: proves that a log's entries, its stored hashes and its signed
//! checkpoints agree, and names the first place they do not.
//!
//! Entries are pushed one at a time in storage order ([`Verifier::push`]), so a log of any size
//! is checked in constant memory: the verifier keeps the Merkle frontier, the previous entry's
//! hash and a bounded chunk of pending comparisons. Stored hashes are read through
//! [`HashReader`] a chunk at a time, in one contiguous read when the log is in order.
//!
//! What each check catches, and the violation kind it reports:
//!
//! | kind | meaning |
//! | --- | --- |
//! | `malformed_entry` | the entry is not a JSON object with an integer `seq` and a hex `prev_hash`, or the store holds no bytes at that seq at all (a value of another type, NULL: [`Verifier::push_unreadable`]) |
//! | `seq_mismatch` | the `seq` inside the entry differs from the seq the store files it under |
//! | `missing_seq` | one or more sequence numbers are absent (a deleted entry) |
//! | `duplicate_seq` | a sequence number occurs twice (an inserted entry) |
//! | `out_of_order` | a sequence number lower than its predecessor (a reordered entry) |
//! | `content_mismatch` | the entry's bytes no longer hash to its stored `event_hash` |
//! | `unhashed_entry` | the stored tree ends before this entry: it has no stored hashes (a row added, or hashes removed, outside the write path) |
//! | `broken_link` | `prev_hash` is not the `event_hash` of the entry before it |
//! | `stored_hash_mismatch` | a stored interior Merkle hash differs from the recomputed one |
//! | `checkpoint_root_mismatch` | the tree over the entries differs from a signed checkpoint's root |
//! | `truncated` | a signed checkpoint commits to more entries than the log holds |
//! | `invalid_signature` | a checkpoint is malformed, not signed by any of the given keys, or not also signed by a required key |
//! | `checkpoint_inconsistent` | two validly signed checkpoints cannot both describe one log (a fork) |
//! | `store_error` | the stored hashes could not be read (a failing read, not a missing hash); checks that need them stopped |
//! | `archive_file_missing` | (archives) a file a manifest lists, or the tree needs, is not in the archive |
//! | `archive_file_mismatch` | (archives) a file's bytes differ from its manifest's SHA-256 or size, or from the tree |
//! | `invalid_manifest` | (archives) a manifest does not verify with the log's key, or does not follow the one before it |
//!
//! Reporting follows one rule: a violation is reported where it starts, and its plain
//! consequences are not reported again. An altered entry is reported as `content_mismatch`, and
//! the next entry's `prev_hash` (which still names the stored hash) is not also called a broken
//! link; a deleted entry is a `missing_seq`, and the link across the gap is not checked.
//!
//! Entries past the end of the stored tree (the store holds no hashes for them) are reported
//! once, as `unhashed_entry` at the first of them; the tree that checkpoints are compared with
//! then goes on over those entries' own hashes, and their links are still checked.
//!
//! A checkpoint only says "the first N entries have this root", so when the entries were
//! rewritten together with their hashes and links (what a database administrator could do),
//! the rewrite is located between checkpoints: the reported seq is the size of the largest
//! checkpoint that still matches, the first entry no matching checkpoint vouches for.
//!
//! This module holds the [`Verifier`], its options, its report and the violation kinds. The
//! scanner that reads `seq` and `prev_hash` from an entry's bytes lives in the private `scan`
//! submodule, because its SIMD fast path and `unsafe` code are best read and tested on their
//! own; [`scan_entry_links`] and [`EntryLinks`] are re-exported here.

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash, node_hash};
use crate::merkle::{self, HashReader, MissingHash, TreeBuilder};
use crate::note::VerifierKey;

mod scan;

pub use scan::{EntryLinks, scan_entry_links};

/// How many violations are kept in a report; the rest are only counted.
pub const DEFAULT_MAX_VIOLATIONS: usize = 1000;

/// Entries whose stored-hash comparisons are batched into one read.
const CHUNK: usize = 4096;

/// Gaps remembered in case their seqs turn up later (a reorder); beyond this many, gaps are
/// reported as missing at once so that memory stays bounded on a badly damaged log.
const MAX_TRACKED_GAPS: usize = 1024;

/// What is wrong at one place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    MalformedEntry,
    SeqMismatch,
    MissingSeq,
    DuplicateSeq,
    OutOfOrder,
    ContentMismatch,
    UnhashedEntry,
    BrokenLink,
    StoredHashMismatch,
    CheckpointRootMismatch,
    Truncated,
    InvalidSignature,
    CheckpointInconsistent,
    StoreError,
    ArchiveFileMissing,
    ArchiveFileMismatch,
    InvalidManifest,
    /// A daily seal that does not open with the log's key, or does not read as a seal.
    InvalidSeal,
    /// A daily seal whose `previous` or `supersedes` link does not name the seal before it,
    /// or a day missing from the chain.
    SealBrokenLink,
    /// A daily seal whose size and root are not those of the log.
    SealCheckpointMismatch,
}

impl ViolationKind {
    /// The stable name scripts match on, as it appears in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            ViolationKind::MalformedEntry => "malformed_entry",
            ViolationKind::SeqMismatch => "seq_mismatch",
            ViolationKind::MissingSeq => "missing_seq",
            ViolationKind::DuplicateSeq => "duplicate_seq",
            ViolationKind::OutOfOrder => "out_of_order",
            ViolationKind::ContentMismatch => "content_mismatch",
            ViolationKind::UnhashedEntry => "unhashed_entry",
            ViolationKind::BrokenLink => "broken_link",
            ViolationKind::StoredHashMismatch => "stored_hash_mismatch",
            ViolationKind::CheckpointRootMismatch => "checkpoint_root_mismatch",
            ViolationKind::Truncated => "truncated",
            ViolationKind::InvalidSignature => "invalid_signature",
            ViolationKind::CheckpointInconsistent => "checkpoint_inconsistent",
            ViolationKind::StoreError => "store_error",
            ViolationKind::ArchiveFileMissing => "archive_file_missing",
            ViolationKind::ArchiveFileMismatch => "archive_file_mismatch",
            ViolationKind::InvalidManifest => "invalid_manifest",
            ViolationKind::InvalidSeal => "invalid_seal",
            ViolationKind::SealBrokenLink => "seal_broken_link",
            ViolationKind::SealCheckpointMismatch => "seal_checkpoint_mismatch",
        }
    }
}

/// One violation: where (`seq`, absent for problems of a checkpoint as a whole), what, and
/// the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub seq: Option<u64>,
    pub kind: ViolationKind,
    pub detail: String,
    /// The seq of the repair marker (`sealtrail.chain.repaired`) in the same log that
    /// acknowledges this damage: it is still listed, never hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<u64>,
}

impl Violation {
    pub fn new(seq: Option<u64>, kind: ViolationKind, detail: impl Into<String>) -> Violation {
        Violation {
            seq,
            kind,
            detail: detail.into(),
            acknowledged_by: None,
        }
    }
}

/// The action of the event `sealtrail repair` appends to a log to acknowledge damage it could
/// not put back. Its `details` hold `from_seq`, `to_seq` and `kinds` (the violation kinds it
/// acknowledges), with the operator's reason and the evidence.
pub const REPAIR_MARKER_ACTION: &str = "sealtrail.chain.repaired";

/// A repair marker as the verifier applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairMarker {
    /// The marker's own seq.
    pub seq: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    pub kinds: Vec<ViolationKind>,
}

impl RepairMarker {
    /// The marker an entry is, if it is one (its action is [`REPAIR_MARKER_ACTION`] and its
    /// details name a range and kinds).
    pub fn from_entry(seq: u64, entry: &[u8]) -> Option<RepairMarker> {
        // Canonical entries sort their keys, so `action` comes first: a cheap test first.
        if !entry.starts_with(br#"{"action":"sealtrail.chain.repaired""#) {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(entry).ok()?;
        let details = &value["details"];
        let kinds = details["kinds"]
            .as_array()?
            .iter()
            .filter_map(|k| serde_json::from_value::<ViolationKind>(k.clone()).ok())
            .collect();
        Some(RepairMarker {
            seq,
            from_seq: details["from_seq"].as_u64()?,
            to_seq: details["to_seq"].as_u64()?,
            kinds,
        })
    }
}

impl Report {
    /// Marks each violation that a marker acknowledges (its seq in the marker's range, its
    /// kind among the marker's kinds) with the marker's seq.
    pub fn acknowledge(&mut self, markers: &[RepairMarker]) {
        for violation in &mut self.violations {
            let Some(seq) = violation.seq else { continue };
            if let Some(marker) = markers.iter().find(|m| {
                (m.from_seq..=m.to_seq).contains(&seq) && m.kinds.contains(&violation.kind)
            }) {
                violation.acknowledged_by = Some(marker.seq);
            }
        }
    }

    /// Whether every violation (and every one counted, none beyond the kept ones) is
    /// acknowledged by a repair marker.
    pub fn all_acknowledged(&self) -> bool {
        !self.violations.is_empty()
            && self.violation_count == self.violations.len() as u64
            && self.violations.iter().all(|v| v.acknowledged_by.is_some())
    }
}

/// The checkpoint a report vouches for: the largest signed checkpoint the entries match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    pub root_hash: String,
    pub timestamp: Option<String>,
}

/// The verifier's findings, in the shape `sealtrail verify --json` and `GET /v1/verify` print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub valid: bool,
    pub rows_checked: u64,
    /// At most `max_violations` violations, ordered by seq (checkpoint-wide ones last).
    pub violations: Vec<Violation>,
    /// All violations found, including those beyond the kept ones.
    pub violation_count: u64,
    pub first_broken_seq: Option<u64>,
    pub checkpoint: Option<CheckpointSummary>,
    /// Entries the log's retention removed on purpose (verified from the prune mark on); set
    /// by the caller that knows the store's prune record, absent for a log never pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedRange>,
}

/// The start of a log that retention pruned: entries `0..below` were removed after they were
/// archived in `archive` (and verified against the store there); their stored hashes, and so
/// every proof, remain. The `_system` entry at `system_seq` announced the prune.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedRange {
    pub below: u64,
    pub archive: String,
    pub system_seq: u64,
    pub pruned_at: String,
}

impl Report {
    /// Adds violations found by checks outside the verifier (an archive's files and tiles),
    /// keeping the report's order, counts, first broken seq and at most `max_violations` kept.
    pub fn add_violations(&mut self, extra: Vec<Violation>, max_violations: usize) {
        for v in extra {
            self.violation_count += 1;
            if let Some(seq) = v.seq {
                self.first_broken_seq = Some(self.first_broken_seq.map_or(seq, |f| f.min(seq)));
            }
            self.violations.push(v);
        }
        self.violations
            .sort_by_key(|v| (v.seq.is_none(), v.seq.unwrap_or(u64::MAX), v.kind));
        self.violations.truncate(max_violations);
        self.valid = self.violation_count == 0;
    }
}

/// Where verification starts and how much it reports.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The seq of the first entry that will be pushed. Above 0 (a range check, or a log whose
    /// old entries were pruned after archiving) the stored hashes must be given: the Merkle
    /// frontier and the predecessor's hash are read from them.
    pub start_seq: u64,
    pub max_violations: usize,
    /// Keys every checkpoint must *also* be signed by, besides one of the keys given to
    /// [`Verifier::new`]: when two copies of a log's key disagree (one was replaced), a
    /// checkpoint counts only if both vouch for it.
    pub required_keys: Vec<VerifierKey>,
    /// With `start_seq` above 0 and the stored hashes given: also compare each checkpoint
    /// that ends before `start_seq` with the root the stored hashes give at its size (a log
    /// whose old entries were pruned keeps the hashes those checkpoints commit to).
    pub check_earlier_checkpoints: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            start_seq: 0,
            max_violations: DEFAULT_MAX_VIOLATIONS,
            required_keys: Vec::new(),
            check_earlier_checkpoints: false,
        }
    }
}

/// Why verification could not start at all (as opposed to finding violations).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("verification starting at seq {0} needs the stored hashes to resume the tree")]
    StartNeedsStoredHashes(u64),
    #[error("cannot read the stored hashes to resume at seq {seq}: {source}")]
    Resume {
        seq: u64,
        #[source]
        source: merkle::MerkleError,
    },
}

/// What the verifier needs from an entry's bytes: its leaf hash and its top-level `seq` and
/// `prev_hash` (or why they cannot be read). Computing it is the costly, order-independent part
/// of [`Verifier::push`] — hashing and scanning every byte — so it can run ahead on another
/// thread while [`Verifier::push_checked`] does the rest in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryCheck {
    pub leaf: Hash,
    pub links: Result<EntryLinks, &'static str>,
}

impl EntryCheck {
    /// Hashes and scans one entry's bytes.
    pub fn of(entry: &[u8]) -> EntryCheck {
        EntryCheck {
            leaf: leaf_hash(entry),
            links: scan_entry_links(entry),
        }
    }

    /// [`EntryCheck::of`] for two entries: the same results, in nearly the time of one where
    /// the CPU has the SHA extensions (the two are hashed with their rounds interleaved).
    pub fn of_pair(a: &[u8], b: &[u8]) -> [EntryCheck; 2] {
        let [leaf_a, leaf_b] = crate::hash::leaf_hash_pair(a, b);
        [
            EntryCheck {
                leaf: leaf_a,
                links: scan_entry_links(a),
            },
            EntryCheck {
                leaf: leaf_b,
                links: scan_entry_links(b),
            },
        ]
    }

    /// Checks every entry of `entries`, two at a time.
    pub fn all<'e>(entries: impl IntoIterator<Item = &'e [u8]>, out: &mut Vec<EntryCheck>) {
        let mut entries = entries.into_iter();
        while let Some(a) = entries.next() {
            match entries.next() {
                Some(b) => out.extend(EntryCheck::of_pair(a, b)),
                None => out.push(EntryCheck::of(a)),
            }
        }
    }
}

/// One pushed entry awaiting the comparisons that need stored hashes.
struct Pending {
    seq: u64,
    prev_hash: Option<Hash>,
    /// The entry's own hash; `None` when the store had no bytes for it
    /// ([`Verifier::push_unreadable`]).
    leaf: Option<Hash>,
    /// The entry directly follows its predecessor's seq, so its link is checkable.
    linked: bool,
}

/// The last entry seen, for the next entry's link check.
#[derive(Clone, Copy)]
struct Previous {
    seq: u64,
    leaf: Hash,
    /// What the store says its hash is, when known.
    stored: Option<Hash>,
}

struct OpenCheckpoint {
    checkpoint: Checkpoint,
    /// Whether the tree matched it, once the tree reached its size.
    matched: Option<bool>,
}

/// Streaming verifier of one log. See the module docs.
///
/// With stored hashes, the Merkle tree that checkpoints are compared with is built over the
/// *stored* leaf hashes in seq order, and each entry is compared with its stored leaf. This
/// keeps the three questions apart — do the entries match their hashes, is the stored tree
/// consistent, does the stored tree match what was signed — so each damage is reported once.
/// Without stored hashes the tree is built over the entries' own hashes in the order given.
pub struct Verifier<'a> {
    stored: Option<&'a dyn HashReader>,
    /// The tree over stored leaves (or entry hashes without a store), for checkpoint roots.
    builder: TreeBuilder,
    /// Scratch space for the hashes each append produces.
    emitted: Vec<Hash>,
    /// Per level, the stored hash of the latest even-indexed (left) node: the left child the
    /// next node one level up is checked against.
    left_stored: Vec<Hash>,
    pending: Vec<Pending>,
    /// The highest seq seen so far; the next entry should be one more.
    last_seq: Option<u64>,
    /// The number of leaves the stored tree holds, once its hashes were found to end before
    /// the entries do; the tree goes on over the entries' own hashes from there.
    stored_end: Option<u64>,
    previous: Option<Previous>,
    /// Gaps in the seqs seen so far, as half-open ranges, until they are filled or reported.
    missing: Vec<(u64, u64)>,
    checkpoints: Vec<OpenCheckpoint>,
    next_checkpoint: usize,
    start_seq: u64,
    rows_checked: u64,
    violations: Vec<Violation>,
    violation_count: u64,
    first_broken_seq: Option<u64>,
    /// Seqs of entry-level violations (bounded), to place checkpoint mismatches precisely.
    entry_violation_seqs: Vec<u64>,
    max_violations: usize,
}

impl<'a> Verifier<'a> {
    /// Prepares to verify a log whose stored hashes are `stored` (if available) against
    /// `signed_checkpoints`, each of which must be signed by one of `keys`.
    pub fn new(
        stored: Option<&'a dyn HashReader>,
        signed_checkpoints: &[&[u8]],
        keys: &[VerifierKey],
        options: VerifyOptions,
    ) -> Result<Verifier<'a>, VerifyError> {
        let start = options.start_seq;
        let mut left_stored = vec![Hash::ZERO; 64];
        let (builder, previous) = if start == 0 {
            (TreeBuilder::new(), None)
        } else {
            let reader = stored.ok_or(VerifyError::StartNeedsStoredHashes(start))?;
            let resume = |source| VerifyError::Resume { seq: start, source };
            let builder = TreeBuilder::from_reader(start, reader).map_err(resume)?;
            // The left siblings still waiting for a right one: one per set bit of `start`.
            let levels: Vec<u8> = (0..64u8).filter(|l| start >> l & 1 == 1).collect();
            let indexes: Vec<u64> = levels
                .iter()
                .map(|&l| merkle::stored_hash_index(l, (start >> l) - 1))
                .chain([merkle::stored_hash_index(0, start - 1)])
                .collect();
            let hashes = reader
                .read_hashes(&indexes)
                .map_err(|e| resume(merkle::MerkleError::Read(e)))?;
            for (&level, hash) in levels.iter().zip(&hashes) {
                left_stored[level as usize] = *hash;
            }
            let leaf = hashes[levels.len()];
            let previous = Previous {
                seq: start - 1,
                leaf,
                stored: Some(leaf),
            };
            (builder, Some(previous))
        };
        let mut verifier = Verifier {
            stored,
            builder,
            emitted: Vec::with_capacity(64),
            left_stored,
            pending: Vec::with_capacity(CHUNK),
            last_seq: start.checked_sub(1),
            stored_end: None,
            previous,
            missing: Vec::new(),
            checkpoints: Vec::new(),
            next_checkpoint: 0,
            start_seq: start,
            rows_checked: 0,
            violations: Vec::new(),
            violation_count: 0,
            first_broken_seq: None,
            entry_violation_seqs: Vec::new(),
            max_violations: options.max_violations,
        };
        verifier.open_checkpoints(
            signed_checkpoints,
            keys,
            &options.required_keys,
            options.check_earlier_checkpoints,
        );
        verifier.check_checkpoints_at_current_size();
        Ok(verifier)
    }

    fn open_checkpoints(
        &mut self,
        signed: &[&[u8]],
        keys: &[VerifierKey],
        required: &[VerifierKey],
        check_earlier: bool,
    ) {
        for (i, note) in signed.iter().enumerate() {
            let mut last_error = String::from("no verifier key was given");
            let mut opened = None;
            for key in keys {
                match Checkpoint::open(note, key) {
                    Ok(checkpoint) => {
                        opened = Some(checkpoint);
                        break;
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            if opened.is_some()
                && let Some(missing) = required
                    .iter()
                    .find(|key| Checkpoint::open(note, key).is_err())
            {
                self.report(
                    None,
                    ViolationKind::InvalidSignature,
                    format!(
                        "checkpoint #{} is not signed by {missing}, which must also sign it",
                        i + 1
                    ),
                );
                continue;
            }
            match opened {
                // It covers only entries before the range being verified: nothing to compare
                // them with but the stored hashes, when asked to.
                Some(checkpoint) if checkpoint.size < self.start_seq => {
                    if check_earlier && let Some(reader) = self.stored {
                        self.compare_with_stored(&checkpoint, reader);
                    }
                }
                Some(checkpoint) => self.checkpoints.push(OpenCheckpoint {
                    checkpoint,
                    matched: None,
                }),
                None => self.report(
                    None,
                    ViolationKind::InvalidSignature,
                    format!("checkpoint #{} does not verify: {last_error}", i + 1),
                ),
            }
        }
        self.checkpoints.sort_by_key(|c| c.checkpoint.size);
    }

    /// Checks one entry. `seq` is the sequence number the store files it under and `entry` its
    /// canonical bytes. Entries must be pushed in the store's order.
    pub fn push(&mut self, seq: u64, entry: &[u8]) {
        self.push_checked(seq, &EntryCheck::of(entry));
    }

    /// [`Verifier::push`] for an entry whose bytes were already hashed and scanned by
    /// [`EntryCheck::of`] (possibly on another thread): the same checks, in the same order.
    pub fn push_checked(&mut self, seq: u64, check: &EntryCheck) {
        self.rows_checked += 1;
        let leaf = check.leaf;
        let prev_hash = match check.links {
            Ok(links) => {
                if links.seq != seq {
                    self.report(
                        Some(seq),
                        ViolationKind::SeqMismatch,
                        format!("entry stored as seq {seq} says it is seq {}", links.seq),
                    );
                }
                Some(links.prev_hash)
            }
            Err(reason) => {
                self.report(
                    Some(seq),
                    ViolationKind::MalformedEntry,
                    format!("entry is not readable: {reason}"),
                );
                None
            }
        };

        self.enqueue(seq, prev_hash, Some(leaf));
    }

    /// Records that the store holds a row at `seq` but could not hand over entry bytes for it
    /// (`why`: its value is of another type, or NULL), in storage order like [`Verifier::push`].
    /// That is `malformed_entry` at `seq`. With stored hashes the row's stored leaf stands in
    /// for it in the tree and in the next entry's link check, so that the one damaged row is
    /// reported once; without them there is nothing to stand in, the tree goes on over a zero
    /// leaf (any checkpoint over it then mismatches, placed at this seq) and the next link is
    /// not checked.
    pub fn push_unreadable(&mut self, seq: u64, why: &str) {
        self.rows_checked += 1;
        self.report(
            Some(seq),
            ViolationKind::MalformedEntry,
            format!("the store holds no entry bytes at this seq: {why}"),
        );
        self.enqueue(seq, None, None);
    }

    /// Checks `seq` against the previous one (reporting a gap, a repeat or a step back) and
    /// queues the entry for the checks that need its successors and the stored hashes.
    fn enqueue(&mut self, seq: u64, prev_hash: Option<Hash>, leaf: Option<Hash>) {
        let expected = self.last_seq.map_or(0, |last| last + 1);
        let linked = seq == expected;
        if !linked {
            self.report_sequence_break(seq, expected);
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        self.pending.push(Pending {
            seq,
            prev_hash,
            leaf,
            linked,
        });
        if self.pending.len() >= CHUNK {
            self.flush();
        }
    }

    fn report_sequence_break(&mut self, seq: u64, expected: u64) {
        let Some(last) = self.last_seq else {
            // The very first entry is not the first seq: everything before it is missing.
            self.note_missing(expected, seq);
            return;
        };
        if seq == last {
            self.report(
                Some(seq),
                ViolationKind::DuplicateSeq,
                format!("seq {seq} occurs twice"),
            );
        } else if seq > last {
            self.note_missing(expected, seq);
        } else if self.fill_missing(seq) {
            self.report(
                Some(seq),
                ViolationKind::OutOfOrder,
                format!("seq {seq} is stored after seq {last}"),
            );
        } else {
            self.report(
                Some(seq),
                ViolationKind::DuplicateSeq,
                format!("seq {seq} occurs again after seq {last}"),
            );
        }
    }

    /// Remembers that seqs `from..to` have not been seen. They are reported as missing at the
    /// end unless they turn up later, which makes them reordered rather than deleted.
    fn note_missing(&mut self, from: u64, to: u64) {
        if self.missing.len() >= MAX_TRACKED_GAPS {
            self.report_missing(from, to);
            return;
        }
        self.missing.push((from, to));
    }

    /// Takes `seq` out of the remembered gaps; false if it was not missing.
    fn fill_missing(&mut self, seq: u64) -> bool {
        let Some(at) = self
            .missing
            .iter()
            .position(|&(from, to)| (from..to).contains(&seq))
        else {
            return false;
        };
        let (from, to) = self.missing.remove(at);
        if from < seq {
            self.missing.push((from, seq));
        }
        if seq + 1 < to {
            self.missing.push((seq + 1, to));
        }
        true
    }

    fn report_missing(&mut self, from: u64, to: u64) {
        let detail = if to - from == 1 {
            format!("seq {from} is missing (the next entry is seq {to})")
        } else {
            format!("seqs {from} to {} are missing", to - 1)
        };
        self.report(Some(from), ViolationKind::MissingSeq, detail);
    }

    /// Records, for every checkpoint of exactly the tree's current size, whether it matches.
    /// Compares a checkpoint that ends before the entries verified with the root of the
    /// stored hashes at its size.
    fn compare_with_stored(&mut self, checkpoint: &Checkpoint, reader: &dyn HashReader) {
        match merkle::tree_hash(checkpoint.size, reader) {
            Ok(root) if root == checkpoint.root => {}
            Ok(root) => self.report(
                None,
                ViolationKind::CheckpointRootMismatch,
                format!(
                    "the stored hashes give root {} at size {}, but the checkpoint signed for it says {}",
                    root.to_hex(),
                    checkpoint.size,
                    checkpoint.root.to_hex()
                ),
            ),
            Err(error) => self.report(
                None,
                ViolationKind::CheckpointRootMismatch,
                format!(
                    "the stored hashes cannot give the root at size {} that a checkpoint commits to: {error}",
                    checkpoint.size
                ),
            ),
        }
    }

    fn check_checkpoints_at_current_size(&mut self) {
        let size = self.builder.size();
        while let Some(open) = self.checkpoints.get_mut(self.next_checkpoint) {
            if open.checkpoint.size != size {
                break;
            }
            open.matched = Some(self.builder.root() == open.checkpoint.root);
            self.next_checkpoint += 1;
        }
    }

    /// Runs the comparisons for the pending chunk.
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let stored_leaves = match self.stored {
            Some(reader) => self.advance_stored_tree(reader, &pending),
            None => {
                for entry in &pending {
                    self.push_own_leaf(entry.leaf.unwrap_or(Hash::ZERO));
                }
                None
            }
        };
        for (i, entry) in pending.iter().enumerate() {
            let stored_leaf = stored_leaves.as_ref().and_then(|leaves| leaves[i]);
            // A row without bytes was reported when pushed; its stored leaf, if any, stands
            // for it in the next link check.
            let Some(leaf) = entry.leaf else {
                self.previous = stored_leaf.map(|stored| Previous {
                    seq: entry.seq,
                    leaf: stored,
                    stored: Some(stored),
                });
                continue;
            };
            if let Some(stored_leaf) = stored_leaf
                && stored_leaf != leaf
            {
                self.report(
                    Some(entry.seq),
                    ViolationKind::ContentMismatch,
                    format!(
                        "entry bytes hash to {leaf} but its stored event_hash is {stored_leaf}",
                    ),
                );
            }
            self.check_link(entry);
            self.previous = Some(Previous {
                seq: entry.seq,
                leaf,
                stored: stored_leaf,
            });
        }
        let mut pending = pending;
        pending.clear();
        self.pending = pending;
    }

    /// Grows the tree that checkpoints are compared with by an entry's own hash, where no
    /// stored leaf stands for it.
    fn push_own_leaf(&mut self, leaf: Hash) {
        self.emitted.clear();
        self.builder.push(leaf, &mut self.emitted);
        self.check_checkpoints_at_current_size();
    }

    /// Grows the tree over stored leaves up to the highest seq seen, checking every stored
    /// interior hash on the way, and returns the stored leaf of each pending entry (by its
    /// seq; `None` past the end of the stored tree). Where the stored hashes end early, that is
    /// reported once and the tree goes on over the entries' own hashes. `None` when the stored
    /// hashes cannot be read; that is reported and stored-hash checks stop.
    fn advance_stored_tree(
        &mut self,
        reader: &dyn HashReader,
        pending: &[Pending],
    ) -> Option<Vec<Option<Hash>>> {
        let first_seq = pending.first()?.seq;
        let wanted = self.last_seq.map_or(0, |last| last + 1);
        let from = self.builder.size();
        let mut fresh_leaves = Vec::new();
        let mut at = from;
        while at < wanted && self.stored_end.is_none() {
            // Bounded reads, so a wildly wrong seq cannot ask for the whole store at once.
            let until = wanted.min(at + 2 * CHUNK as u64);
            let base = merkle::stored_hash_count(at);
            let indexes: Vec<u64> = (base..merkle::stored_hash_count(until)).collect();
            let (range, until) = match read_exact(reader, &indexes) {
                Ok(range) => (range, until),
                Err(error) => match MissingHash::in_error(&error) {
                    // The stored tree ends (or has a hole) at the leaf that hash belongs to:
                    // take the leaves before it, and say where it ends.
                    Some(index) if index >= base && index < merkle::stored_hash_count(until) => {
                        let end = (at..until)
                            .find(|&p| merkle::stored_hash_count(p + 1) > index)
                            .expect("the missing hash belongs to a leaf of the range");
                        let indexes = &indexes[..(merkle::stored_hash_count(end) - base) as usize];
                        match read_exact(reader, indexes) {
                            Ok(range) => {
                                self.end_stored_tree(end, index);
                                (range, end)
                            }
                            Err(error) => return self.stop_stored_checks(at, &error),
                        }
                    }
                    _ => return self.stop_stored_checks(at, &error),
                },
            };
            for position in at..until {
                let offset = (merkle::stored_hash_index(0, position) - base) as usize;
                let leaf = range[offset];
                fresh_leaves.push(leaf);
                self.emitted.clear();
                self.builder.push(leaf, &mut self.emitted);
                self.check_stored_nodes(position, &range[offset..offset + self.emitted.len()]);
                self.check_checkpoints_at_current_size();
            }
            at = until;
        }

        // Past the stored tree's end, each entry's own hash stands for it, in storage order.
        let stored_end = self.stored_end.unwrap_or(u64::MAX);
        for entry in pending.iter().filter(|p| p.seq >= stored_end) {
            self.push_own_leaf(entry.leaf.unwrap_or(Hash::ZERO));
        }
        // In order, every pending entry's stored leaf was just read; otherwise read by seq.
        let in_fresh = |seq: u64| seq >= from && seq < at;
        let mut leaves: Vec<Option<Hash>> = pending
            .iter()
            .map(|p| in_fresh(p.seq).then(|| fresh_leaves[(p.seq - from) as usize]))
            .collect();
        let unread: Vec<usize> = (0..pending.len())
            .filter(|&i| leaves[i].is_none() && pending[i].seq < stored_end)
            .collect();
        if unread.is_empty() {
            return Some(leaves);
        }
        let indexes: Vec<u64> = unread
            .iter()
            .map(|&i| merkle::stored_hash_index(0, pending[i].seq))
            .collect();
        match read_exact(reader, &indexes) {
            Ok(read) => {
                for (i, leaf) in unread.into_iter().zip(read) {
                    leaves[i] = Some(leaf);
                }
                Some(leaves)
            }
            Err(error) => self.stop_stored_checks(first_seq, &error),
        }
    }

    /// Records that the stored tree holds only `end` leaves (stored hash `missing` is absent),
    /// while the log has entries from seq `end` on.
    fn end_stored_tree(&mut self, end: u64, missing: u64) {
        self.stored_end = Some(end);
        self.report(
            Some(end),
            ViolationKind::UnhashedEntry,
            format!(
                "seq {end} has no stored hashes (stored hash {missing} is missing): the store's tree ends after {}, so entries from seq {end} on were added, or their hashes removed, outside sealtrail's write path; they are checked against their links and the checkpoints only",
                crate::text::entries(end)
            ),
        );
    }

    /// Checks the stored hashes one append produced: `stored[0]` is the leaf at `position`,
    /// `stored[k]` its ancestor at level k, which must hash from its stored children. Only
    /// runs the hashing when the stored value differs from the one recomputed from stored
    /// leaves, since equal values are consistent by construction.
    fn check_stored_nodes(&mut self, position: u64, stored: &[Hash]) {
        for level in 0..stored.len() {
            let hash = stored[level];
            if level > 0 && hash != self.emitted[level] {
                let left = self.left_stored[level - 1];
                let right = stored[level - 1];
                if node_hash(&left, &right) != hash {
                    let n = position >> level;
                    self.report(
                        Some(n << level),
                        ViolationKind::StoredHashMismatch,
                        format!(
                            "stored hash at level {level} index {n} is {hash} but its stored children hash to {}",
                            node_hash(&left, &right)
                        ),
                    );
                }
            }
            if (position >> level) & 1 == 0 {
                self.left_stored[level] = hash;
            }
        }
    }

    fn stop_stored_checks<T>(&mut self, seq: u64, error: &merkle::ReadError) -> Option<T> {
        self.report(
            Some(seq),
            ViolationKind::StoreError,
            format!(
                "cannot read stored hashes from seq {seq}: {error}; stored-hash checks stopped"
            ),
        );
        self.stored = None;
        None
    }

    fn check_link(&mut self, entry: &Pending) {
        let Some(prev_hash) = entry.prev_hash else {
            return;
        };
        if entry.seq == 0 {
            if prev_hash != Hash::ZERO {
                self.report(
                    Some(0),
                    ViolationKind::BrokenLink,
                    format!("seq 0 has prev_hash {prev_hash}, expected all zeros"),
                );
            }
            return;
        }
        let Some(previous) = self.previous else {
            return;
        };
        if !entry.linked || previous.seq + 1 != entry.seq || prev_hash == previous.leaf {
            return;
        }
        // The predecessor's content changed but this link still names its stored hash: that is
        // the predecessor's content_mismatch, already reported, not a second break.
        let explained =
            previous.stored == Some(prev_hash) && previous.stored != Some(previous.leaf);
        if !explained {
            self.report(
                Some(entry.seq),
                ViolationKind::BrokenLink,
                format!(
                    "prev_hash is {prev_hash} but seq {} hashes to {}",
                    previous.seq, previous.leaf
                ),
            );
        }
    }

    fn report(&mut self, seq: Option<u64>, kind: ViolationKind, detail: String) {
        self.violation_count += 1;
        if let Some(seq) = seq {
            self.first_broken_seq = Some(self.first_broken_seq.map_or(seq, |f| f.min(seq)));
            let entry_level = !matches!(
                kind,
                ViolationKind::CheckpointRootMismatch
                    | ViolationKind::CheckpointInconsistent
                    | ViolationKind::Truncated
                    | ViolationKind::InvalidSignature
            );
            if entry_level && self.entry_violation_seqs.len() < self.max_violations {
                self.entry_violation_seqs.push(seq);
            }
        }
        if self.violations.len() < self.max_violations {
            self.violations.push(Violation::new(seq, kind, detail));
        }
    }

    /// Finishes the last chunk, judges the checkpoints and returns the report.
    pub fn finish(mut self) -> Report {
        self.flush();
        let mut missing = std::mem::take(&mut self.missing);
        missing.sort_unstable();
        for (from, to) in missing {
            self.report_missing(from, to);
        }
        let checkpoints = std::mem::take(&mut self.checkpoints);
        self.judge_checkpoints(&checkpoints);

        // Deterministic order: by seq (checkpoint-wide problems last), then by kind.
        self.violations
            .sort_by_key(|v| (v.seq.is_none(), v.seq.unwrap_or(u64::MAX), v.kind));
        let checkpoint = checkpoints
            .iter()
            .rev()
            .find(|c| c.matched == Some(true))
            .map(|c| CheckpointSummary {
                origin: c.checkpoint.origin.clone(),
                size: c.checkpoint.size,
                root_hash: c.checkpoint.root.to_hex(),
                timestamp: c.checkpoint.timestamp.map(|t| t.to_rfc3339()),
            });
        Report {
            valid: self.violation_count == 0,
            rows_checked: self.rows_checked,
            violations: self.violations,
            violation_count: self.violation_count,
            first_broken_seq: self.first_broken_seq,
            checkpoint,
            pruned: None,
        }
    }

    fn judge_checkpoints(&mut self, checkpoints: &[OpenCheckpoint]) {
        let log_end = self.last_seq.map_or(self.start_seq, |last| last + 1);
        self.entry_violation_seqs.sort_unstable();

        if let Some(beyond) = checkpoints.iter().find(|c| c.checkpoint.size > log_end) {
            let cp = &beyond.checkpoint;
            self.report(
                Some(log_end),
                ViolationKind::Truncated,
                format!(
                    "the log ends before seq {log_end} but the checkpoint signed{} commits to {}: entries from seq {log_end} are gone",
                    describe_time(cp),
                    crate::text::entries(cp.size)
                ),
            );
        }

        // Later mismatches follow from the first one, so only the first is reported.
        let first_mismatch = checkpoints.iter().position(|c| c.matched == Some(false));
        if let Some(i) = first_mismatch {
            let cp = &checkpoints[i].checkpoint;
            let vouched = checkpoints[..i]
                .iter()
                .rev()
                .find(|c| c.matched == Some(true) && c.checkpoint.size < cp.size)
                .map_or(self.start_seq, |c| c.checkpoint.size);
            // Where an entry-level violation explains the mismatch, point at it; otherwise the
            // change lies somewhere after the last checkpoint that still matches.
            let at = self
                .entry_violation_seqs
                .iter()
                .find(|&&seq| seq >= vouched && seq < cp.size)
                .copied()
                .unwrap_or(vouched);
            let later = checkpoints.len() - i - 1;
            self.report(
                Some(at),
                ViolationKind::CheckpointRootMismatch,
                format!(
                    "the log's first {} do not have the root {} of the checkpoint signed{}: history between seq {vouched} and {} differs from what was signed{}",
                    crate::text::entries(cp.size),
                    cp.root,
                    describe_time(cp),
                    cp.size - 1,
                    if later > 0 { format!(" ({} not compared separately)", crate::text::count(later as u64, "later checkpoint", "later checkpoints")) } else { String::new() }
                ),
            );
            if let Some(newer) = checkpoints[i..]
                .iter()
                .find(|c| c.matched == Some(true) && c.checkpoint.size >= cp.size)
            {
                self.report(
                    Some(at),
                    ViolationKind::CheckpointInconsistent,
                    format!(
                        "checkpoints of sizes {} and {} are both validly signed but cannot describe one log: the log was forked or its history rewritten",
                        cp.size, newer.checkpoint.size
                    ),
                );
                return;
            }
        }
        for pair in checkpoints.windows(2) {
            let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
            if a.size == b.size && a.root != b.root && pair.iter().all(|c| c.matched.is_none()) {
                self.report(
                    Some(a.size.saturating_sub(1)),
                    ViolationKind::CheckpointInconsistent,
                    format!(
                        "two validly signed checkpoints of size {} have different roots ({} and {}): the log was forked",
                        a.size, a.root, b.root
                    ),
                );
                break;
            }
        }
    }
}

/// Verifies a whole log in one call: `entries` yields `(seq, entry bytes)` in storage order and
/// is consumed as a stream, so it may read from disk or a database cursor without the log ever
/// being in memory.
pub fn verify_log<I, B>(
    entries: I,
    stored: Option<&dyn HashReader>,
    signed_checkpoints: &[&[u8]],
    keys: &[VerifierKey],
    options: VerifyOptions,
) -> Result<Report, VerifyError>
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    let mut verifier = Verifier::new(stored, signed_checkpoints, keys, options)?;
    for (seq, entry) in entries {
        verifier.push(seq, entry.as_ref());
    }
    Ok(verifier.finish())
}

fn read_exact(reader: &dyn HashReader, indexes: &[u64]) -> Result<Vec<Hash>, merkle::ReadError> {
    let hashes = reader.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(short_read(indexes.len(), hashes.len()));
    }
    Ok(hashes)
}

fn short_read(wanted: usize, got: usize) -> merkle::ReadError {
    format!("asked for {wanted} stored hashes, got {got}").into()
}

fn describe_time(checkpoint: &Checkpoint) -> String {
    checkpoint
        .timestamp
        .map(|t| format!(" at {t}"))
        .unwrap_or_default()
}
