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
//! | `malformed_entry` | the entry is not a JSON object with an integer `seq` and a hex `prev_hash` |
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

use std::sync::LazyLock;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash, node_hash};
use crate::merkle::{self, HashReader, MissingHash, TreeBuilder};
use crate::note::VerifierKey;

/// How many violations are kept in a report; the rest are only counted.
pub const DEFAULT_MAX_VIOLATIONS: usize = 1000;

/// Entries whose stored-hash comparisons are batched into one read.
const CHUNK: usize = 4096;

/// Gaps remembered in case their seqs turn up later (a reorder); beyond this many, gaps are
/// reported as missing at once so that memory stays bounded on a badly damaged log.
const MAX_TRACKED_GAPS: usize = 1024;

/// What is wrong at one place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            start_seq: 0,
            max_violations: DEFAULT_MAX_VIOLATIONS,
            required_keys: Vec::new(),
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

/// The two server fields a link check needs, read straight from an entry's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLinks {
    pub seq: u64,
    pub prev_hash: Hash,
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
    leaf: Hash,
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
        verifier.open_checkpoints(signed_checkpoints, keys, &options.required_keys);
        verifier.check_checkpoints_at_current_size();
        Ok(verifier)
    }

    fn open_checkpoints(
        &mut self,
        signed: &[&[u8]],
        keys: &[VerifierKey],
        required: &[VerifierKey],
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
                // It covers only entries before the range being verified: nothing to compare.
                Some(checkpoint) if checkpoint.size < self.start_seq => {}
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
                    self.push_own_leaf(entry.leaf);
                }
                None
            }
        };
        for (i, entry) in pending.iter().enumerate() {
            let stored_leaf = stored_leaves.as_ref().and_then(|leaves| leaves[i]);
            if let Some(stored_leaf) = stored_leaf
                && stored_leaf != entry.leaf
            {
                self.report(
                    Some(entry.seq),
                    ViolationKind::ContentMismatch,
                    format!(
                        "entry bytes hash to {} but its stored event_hash is {stored_leaf}",
                        entry.leaf
                    ),
                );
            }
            self.check_link(entry);
            self.previous = Some(Previous {
                seq: entry.seq,
                leaf: entry.leaf,
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
            self.push_own_leaf(entry.leaf);
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
                "seq {end} has no stored hashes (stored hash {missing} is missing): the store's tree ends after {end} entries, so entries from seq {end} on were added, or their hashes removed, outside sealtrail's write path; they are checked against their links and the checkpoints only"
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
            self.violations.push(Violation { seq, kind, detail });
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
                    "the log ends before seq {log_end} but the checkpoint signed{} commits to {} entries: entries from seq {log_end} are gone",
                    describe_time(cp),
                    cp.size
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
                    "the log's first {} entries do not have the root {} of the checkpoint signed{}: history between seq {vouched} and {} differs from what was signed{}",
                    cp.size,
                    cp.root,
                    describe_time(cp),
                    cp.size - 1,
                    if later > 0 { format!(" ({later} later checkpoints not compared separately)") } else { String::new() }
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

/// Reads the top-level `seq` and `prev_hash` of an entry without building a JSON tree: the
/// verifier's hot path. Nested values are skipped, so a `seq` inside `source` or `details` is
/// never mistaken for the entry's own. Accepts any JSON whitespace; a duplicated key, a
/// missing one or a malformed value is an error.
pub fn scan_entry_links(entry: &[u8]) -> Result<EntryLinks, &'static str> {
    if let Some(links) = fast_links(entry) {
        return Ok(links);
    }
    scan_entry_links_slow(entry)
}

/// The general scanner: a byte-by-byte walk of the top-level object that skips nested values.
/// It handles any JSON and names what is wrong with a malformed entry.
fn scan_entry_links_slow(entry: &[u8]) -> Result<EntryLinks, &'static str> {
    let mut scanner = Scanner {
        bytes: entry,
        at: 0,
    };
    let mut seq = None;
    let mut prev_hash = None;
    scanner.skip_ws();
    scanner.expect(b'{', "entry is not a JSON object")?;
    scanner.skip_ws();
    if scanner.peek() == Some(b'}') {
        return Err("entry has no seq");
    }
    loop {
        scanner.skip_ws();
        let key = scanner.string()?;
        scanner.skip_ws();
        scanner.expect(b':', "expected ':' after a key")?;
        scanner.skip_ws();
        match key {
            b"seq" => {
                if seq.replace(scanner.integer()?).is_some() {
                    return Err("seq appears twice");
                }
            }
            b"prev_hash" => {
                let text = scanner.string()?;
                let text = std::str::from_utf8(text).map_err(|_| "prev_hash is not text")?;
                let hash =
                    Hash::from_hex(text).map_err(|_| "prev_hash is not 64 lowercase hex digits")?;
                if prev_hash.replace(hash).is_some() {
                    return Err("prev_hash appears twice");
                }
            }
            _ => scanner.skip_value()?,
        }
        scanner.skip_ws();
        match scanner.next() {
            Some(b',') => continue,
            Some(b'}') => break,
            _ => return Err("expected ',' or '}' after a value"),
        }
    }
    scanner.skip_ws();
    if scanner.at != entry.len() {
        return Err("trailing bytes after the entry object");
    }
    match (seq, prev_hash) {
        (Some(seq), Some(prev_hash)) => Ok(EntryLinks { seq, prev_hash }),
        (None, _) => Err("entry has no seq"),
        (_, None) => Err("entry has no prev_hash"),
    }
}

/// The bytes that change nesting while skipping a value: quotes and brackets.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'[' as usize] = true;
    table[b'}' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// Substring searchers for the two keys, built once: building one costs more than a search.
static SEQ_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\"seq\":"));
static PREV_HASH_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\"prev_hash\":\""));

/// Entries up to this size (most of them) are eligible for [`fast_links`].
const FAST_MAX_BYTES: usize = 4096;

/// The fast path of [`scan_entry_links`], for entries as sealtrail writes them: compact JSON
/// without escapes. It classifies the whole entry with word-at-a-time bit masks — quotes,
/// in-string spans, brackets outside strings — instead of walking it token by token (whose
/// branch mispredictions on short strings cost more than hashing the entry), then accepts a
/// `"seq":` and a `"prev_hash":"` key only where a string starts at nesting depth one.
///
/// It answers `None`, leaving the decision to the general scanner, whenever it cannot be sure:
/// a backslash anywhere, whitespace or anything else around the object, unbalanced quotes or
/// brackets, a field missing, found twice at the top level, or with a malformed value. On every
/// well-formed entry it finds exactly what the general scanner finds (a property test checks
/// this).
fn fast_links(entry: &[u8]) -> Option<EntryLinks> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU was just found to have both features.
        return unsafe { fast_links_avx2(entry) };
    }
    fast_links_with(entry, classify_block)
}

/// [`fast_links`] compiled for CPUs with AVX2 and POPCNT (nearly every x86-64 CPU since 2013):
/// the bytes are classified 32 at a time, and the nesting depth is counted with the `popcnt`
/// instruction instead of the dozen instructions the x86-64 baseline needs for a popcount.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn fast_links_avx2(entry: &[u8]) -> Option<EntryLinks> {
    fast_links_with(entry, |bytes| classify_block_avx2(bytes))
}

/// The body of [`fast_links`], inlined into each variant so that it is compiled with that
/// variant's instruction set; `classify` classifies one block of up to 64 bytes.
#[inline(always)]
fn fast_links_with(entry: &[u8], classify: impl Fn(&[u8]) -> BlockMasks) -> Option<EntryLinks> {
    let n = entry.len();
    if !(2..=FAST_MAX_BYTES).contains(&n) || entry[0] != b'{' || entry[n - 1] != b'}' {
        return None;
    }
    // Candidate keys first (usually one `prev_hash` and two `seq`, the entry's and its
    // source's), merged in position order; the single pass over the blocks below then decides
    // which candidates start a string at depth one, looking only at the blocks that hold one.
    let mut candidates = [(usize::MAX, false); 8];
    let mut count = 0;
    for (finder, is_seq) in [(&*SEQ_KEY, true), (&*PREV_HASH_KEY, false)] {
        for (i, p) in finder.find_iter(entry).enumerate() {
            if i == 4 {
                return None;
            }
            candidates[count] = (p, is_seq);
            count += 1;
        }
    }
    let candidates = &mut candidates[..count];
    candidates.sort_unstable();
    let mut next = 0;
    let mut seq_at = None;
    let mut hash_at = None;
    let mut inside = 0u64; // all ones while a string continues across a block boundary
    let mut depth: i64 = 0;
    let mut previous_in_string = false;
    for start in (0..n).step_by(64) {
        let end = n.min(start + 64);
        let masks = classify(&entry[start..end]);
        if masks.backslashes != 0 {
            return None;
        }
        let strings = prefix_xor(masks.quotes) ^ inside;
        let opens = masks.opens & !strings;
        let closes = masks.closes & !strings;
        while let Some(&(p, is_seq)) = candidates.get(next).filter(|(p, _)| *p < end) {
            next += 1;
            let bit = p - start;
            let before = (1u64 << bit) - 1;
            let starts_string = strings >> bit & 1 == 1
                && if bit == 0 {
                    !previous_in_string
                } else {
                    strings >> (bit - 1) & 1 == 0
                };
            let depth_here = depth + i64::from((opens & before).count_ones())
                - i64::from((closes & before).count_ones());
            let found = if is_seq { &mut seq_at } else { &mut hash_at };
            if starts_string && depth_here == 1 && found.replace(p).is_some() {
                return None;
            }
        }
        depth += i64::from(opens.count_ones()) - i64::from(closes.count_ones());
        previous_in_string = strings >> 63 & 1 == 1;
        inside = 0u64.wrapping_sub(strings >> 63);
    }
    if inside != 0 || depth != 0 {
        return None;
    }

    let seq_at = seq_at? + SEQ_KEY.needle().len();
    let digits = entry[seq_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 20 || !matches!(entry[seq_at + digits], b',' | b'}') {
        return None;
    }
    let seq = entry[seq_at..seq_at + digits]
        .iter()
        .try_fold(0u64, |v, d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;

    let hash_at = hash_at? + PREV_HASH_KEY.needle().len();
    let hex = entry.get(hash_at..hash_at + 64)?;
    if !matches!(entry.get(hash_at + 64..hash_at + 66)?, [b'"', b',' | b'}']) {
        return None;
    }
    let prev_hash = Hash::from_hex(std::str::from_utf8(hex).ok()?).ok()?;
    Some(EntryLinks { seq, prev_hash })
}

/// Bit masks of one block of up to 64 bytes.
struct BlockMasks {
    quotes: u64,
    backslashes: u64,
    opens: u64,
    closes: u64,
}

/// Classifies up to 64 bytes with SSE2 compares, sixteen bytes per instruction. SSE2 is part
/// of the x86-64 baseline, so no run-time feature check is needed.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn classify_block(bytes: &[u8]) -> BlockMasks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut padded = [b' '; 64];
    let block: &[u8] = if bytes.len() == 64 {
        bytes
    } else {
        padded[..bytes.len()].copy_from_slice(bytes);
        &padded
    };
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    // SAFETY: these intrinsics only need SSE2, which this function is compiled for only when
    // the target has it (every x86-64 target does); the one load reads exactly the 16 bytes of
    // `chunk` with no alignment requirement.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let (brace_open, bracket_open) = (_mm_set1_epi8(b'{' as i8), _mm_set1_epi8(b'[' as i8));
        let (brace_close, bracket_close) = (_mm_set1_epi8(b'}' as i8), _mm_set1_epi8(b']' as i8));
        let bits = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16);
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let shift = i * 16;
            masks.quotes |= bits(_mm_cmpeq_epi8(v, quote)) << shift;
            masks.backslashes |= bits(_mm_cmpeq_epi8(v, backslash)) << shift;
            let opens = _mm_or_si128(
                _mm_cmpeq_epi8(v, brace_open),
                _mm_cmpeq_epi8(v, bracket_open),
            );
            masks.opens |= bits(opens) << shift;
            let closes = _mm_or_si128(
                _mm_cmpeq_epi8(v, brace_close),
                _mm_cmpeq_epi8(v, bracket_close),
            );
            masks.closes |= bits(closes) << shift;
        }
    }
    masks
}

/// Classifies up to 64 bytes with AVX2 compares, 32 bytes per instruction. `[` and `{` differ
/// only in bit 5 (0x5B, 0x7B), as do `]` and `}` (0x5D, 0x7D), so setting that bit finds both
/// of a pair with one compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_block_avx2(bytes: &[u8]) -> BlockMasks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let mut padded = [b' '; 64];
    let block: &[u8] = if bytes.len() == 64 {
        bytes
    } else {
        padded[..bytes.len()].copy_from_slice(bytes);
        &padded
    };
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    let bit5 = _mm256_set1_epi8(0x20);
    let bits = |v: __m256i| u64::from(_mm256_movemask_epi8(v) as u32);
    for (i, chunk) in block.chunks_exact(32).enumerate() {
        // SAFETY: reads exactly the 32 bytes of `chunk`, with no alignment requirement.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
        let folded = _mm256_or_si256(v, bit5);
        let shift = i * 32;
        masks.quotes |= bits(_mm256_cmpeq_epi8(v, quote)) << shift;
        masks.backslashes |= bits(_mm256_cmpeq_epi8(v, backslash)) << shift;
        masks.opens |= bits(_mm256_cmpeq_epi8(folded, open)) << shift;
        masks.closes |= bits(_mm256_cmpeq_epi8(folded, close)) << shift;
    }
    masks
}

/// Classifies up to 64 bytes, a byte at a time, where SSE2 is not available.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify_block(bytes: &[u8]) -> BlockMasks {
    let mut masks = BlockMasks {
        quotes: 0,
        backslashes: 0,
        opens: 0,
        closes: 0,
    };
    for (i, &byte) in bytes.iter().enumerate() {
        let bit = 1u64 << i;
        match byte {
            b'"' => masks.quotes |= bit,
            b'\\' => masks.backslashes |= bit,
            b'{' | b'[' => masks.opens |= bit,
            b'}' | b']' => masks.closes |= bit,
            _ => {}
        }
    }
    masks
}

/// Bit i of the result is the XOR of bits 0..=i of `x`: 1 from an opening quote up to (not
/// including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The position of the first `"` or `\\` at or after `from`, eight bytes at a time: entries
/// are mostly short strings, and testing a word per step instead of a byte per step halves the
/// verifier's scanning cost.
fn find_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Marks the bytes of `word` equal to `byte` (and possibly bytes after the first match,
    // which trailing_zeros never looks at).
    let matches = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = matches(word, b'"') | matches(word, b'\\');
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|offset| i + offset)
}

struct Scanner<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Scanner<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8, error: &'static str) -> Result<(), &'static str> {
        if self.next() == Some(byte) {
            Ok(())
        } else {
            Err(error)
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string's raw bytes between its quotes (escapes left as they are).
    fn string(&mut self) -> Result<&'b [u8], &'static str> {
        self.expect(b'"', "expected a string")?;
        let start = self.at;
        let mut i = start;
        while let Some(at) = find_quote_or_backslash(self.bytes, i) {
            if self.bytes[at] == b'"' {
                self.at = at + 1;
                return Ok(&self.bytes[start..at]);
            }
            i = at + 2;
            if i > self.bytes.len() {
                break;
            }
        }
        Err("unterminated string")
    }

    fn integer(&mut self) -> Result<u64, &'static str> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .ok_or("seq does not fit in 64 bits")?;
            self.at += 1;
        }
        if self.at == start {
            return Err("seq is not a non-negative integer");
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err("seq is not an integer");
        }
        Ok(value)
    }

    fn skip_value(&mut self) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    // Only quotes and brackets matter inside a nested value.
                    let rest = &self.bytes[self.at..];
                    let Some(offset) = rest.iter().position(|&b| STRUCTURAL[b as usize]) else {
                        return Err("unterminated object or array");
                    };
                    self.at += offset;
                    match self.bytes[self.at] {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Ok(());
                            }
                        }
                    }
                    self.at += 1;
                }
            }
            Some(_) => {
                let start = self.at;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                if self.at == start {
                    Err("expected a value")
                } else {
                    Ok(())
                }
            }
            None => Err("entry ends inside an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn scanner_reads_only_top_level_fields() {
        let entry = format!(
            r#"{{"details":{{"seq":5,"a":["}}",{{"prev_hash":"x"}}],"s":"\"seq\":9"}},"prev_hash":"{ZEROS}","seq":12,"source":{{"seq":99}}}}"#
        );
        assert_eq!(
            scan_entry_links(entry.as_bytes()),
            Ok(EntryLinks {
                seq: 12,
                prev_hash: Hash::ZERO
            })
        );
        let spaced = format!("  {{ \"seq\" : 3 ,\n \"prev_hash\" : \"{ZEROS}\" }} ");
        assert_eq!(scan_entry_links(spaced.as_bytes()).map(|l| l.seq), Ok(3));
    }

    #[test]
    fn fast_path_takes_compact_entries_and_leaves_the_rest_to_the_general_scanner() {
        let compact = format!(
            r#"{{"a":["{{",{{"seq":1}}],"details":{{"prev_hash":"x"}},"prev_hash":"{ZEROS}","seq":12,"source":{{"seq":99}}}}"#
        );
        let want = EntryLinks {
            seq: 12,
            prev_hash: Hash::ZERO,
        };
        assert_eq!(fast_links(compact.as_bytes()), Some(want));
        // Escapes, whitespace and duplicates are the general scanner's to judge.
        let escaped = compact.replace("\"x\"", "\"\\\"\"");
        assert_eq!(fast_links(escaped.as_bytes()), None);
        assert_eq!(scan_entry_links(escaped.as_bytes()), Ok(want));
        assert_eq!(fast_links(format!(" {compact}").as_bytes()), None);
        let twice = compact.replace(r#""seq":12"#, r#""seq":12,"seq":13"#);
        assert_eq!(fast_links(twice.as_bytes()), None);
        assert_eq!(scan_entry_links(twice.as_bytes()), Err("seq appears twice"));
    }

    /// Every variant of the fast path this machine can run: the portable one and, where the
    /// CPU has them, the AVX2 one (which `fast_links` picks at run time).
    fn fast_variants(entry: &[u8]) -> Vec<Option<EntryLinks>> {
        let mut answers = vec![fast_links_with(entry, classify_block)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU was just found to have both features.
            answers.push(unsafe { fast_links_avx2(entry) });
        }
        answers
    }

    /// Byte-at-a-time classification, the definition both block classifiers must match.
    fn reference_masks(bytes: &[u8]) -> [u64; 4] {
        let mut masks = [0u64; 4];
        for (i, &byte) in bytes.iter().enumerate() {
            let slot = match byte {
                b'"' => 0,
                b'\\' => 1,
                b'{' | b'[' => 2,
                b'}' | b']' => 3,
                _ => continue,
            };
            masks[slot] |= 1 << i;
        }
        masks
    }

    fn mask_array(masks: BlockMasks) -> [u64; 4] {
        [masks.quotes, masks.backslashes, masks.opens, masks.closes]
    }

    #[test]
    fn block_classifiers_mark_exactly_the_structural_bytes() {
        // Every byte value at every position of blocks of every length: the AVX2 classifier
        // folds `[`/`{` and `]`/`}` together by setting bit 5, so their neighbours in that bit
        // (`;` `=` `Û` `Ý` `û` `ý` …) and UTF-8 bytes must not be taken for brackets.
        let mut block = [b'a'; 64];
        for len in 1..=64 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    block[at] = byte;
                    let bytes = &block[..len];
                    let want = reference_masks(bytes);
                    assert_eq!(
                        mask_array(classify_block(bytes)),
                        want,
                        "{byte:#x} at {at}/{len}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU was just found to have AVX2.
                        let avx2 = unsafe { classify_block_avx2(bytes) };
                        assert_eq!(mask_array(avx2), want, "avx2: {byte:#x} at {at}/{len}");
                    }
                }
                block[at] = b'a';
            }
        }
    }

    #[test]
    fn every_fast_path_variant_reads_brackets_and_quotes_across_block_boundaries() {
        // Decoy keys and brackets inside strings and nested values, placed so that strings and
        // nesting cross the 32- and 64-byte boundaries the classifiers work in.
        for pad in 0..96 {
            let filler = "x".repeat(pad);
            let entry = format!(
                r#"{{"a":"{filler}[{{seq:7","b":[{{"seq":5,"prev_hash":"{ZEROS}"}},"]"],"prev_hash":"{ZEROS}","s":"}}]{filler}","seq":12,"t":{{"seq":[99]}}}}"#
            );
            let want = Ok(EntryLinks {
                seq: 12,
                prev_hash: Hash::ZERO,
            });
            assert_eq!(scan_entry_links_slow(entry.as_bytes()), want, "{entry}");
            for fast in fast_variants(entry.as_bytes()) {
                assert_eq!(fast.ok_or("declined"), want, "{entry}");
            }
            // The top-level seq changed while a nested decoy keeps the old value: read as the
            // new one, by every path.
            let altered = entry.replace(r#""seq":12,"#, r#""seq":13,"#);
            for fast in fast_variants(altered.as_bytes()) {
                assert_eq!(fast.map(|l| l.seq), Some(13), "{altered}");
            }
            // An unbalanced bracket inside what is no longer a string (a quote removed) is
            // never accepted by a fast path; the general scanner names the problem.
            let broken = entry.replacen(r#""s":"}]"#, r#""s":}]"#, 1);
            assert_ne!(broken, entry);
            for fast in fast_variants(broken.as_bytes()) {
                assert_eq!(fast, None, "{broken}");
            }
            assert!(scan_entry_links(broken.as_bytes()).is_err(), "{broken}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// On any well-formed JSON object every variant of the fast path, when it answers,
        /// agrees with the general scanner.
        #[test]
        fn fast_path_agrees_with_the_general_scanner(value in json_object(), seq in 0u64..u64::MAX) {
            let mut object = value;
            let members = object.as_object_mut().expect("an object");
            // The fields land among the others (keys are sorted), with decoys around them.
            members.insert("seq".into(), serde_json::json!(seq));
            members.insert("prev_hash".into(), serde_json::json!(ZEROS));
            let text = serde_json::to_string(&object).unwrap();
            let general = scan_entry_links_slow(text.as_bytes());
            proptest::prop_assert_eq!(general, Ok(EntryLinks { seq, prev_hash: Hash::ZERO }));
            let answers = fast_variants(text.as_bytes());
            for fast in answers.iter().flatten() {
                proptest::prop_assert_eq!(Ok(*fast), general);
            }
            // The variants decline the same entries, too.
            proptest::prop_assert!(answers.windows(2).all(|w| w[0] == w[1]));
        }

        /// On arbitrary bytes the variants of the fast path give the same answer.
        #[test]
        fn fast_path_variants_agree_on_any_bytes(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"{}[]\"\\,:;=[]{}seqprev_hash0123456789abcdef \x5b\x7b\xdb\xfb".to_vec()),
                0..300,
            )
        ) {
            let mut entry = b"{".to_vec();
            entry.extend_from_slice(&bytes);
            entry.extend_from_slice(format!(r#","seq":1,"prev_hash":"{ZEROS}"}}"#).as_bytes());
            let answers = fast_variants(&entry);
            proptest::prop_assert!(answers.windows(2).all(|w| w[0] == w[1]));
        }
    }

    fn json_object() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("seq".to_string()),
            Just("prev_hash".to_string()),
            "[a-z{}\\[\\]\",:]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u32>().prop_map(serde_json::Value::from),
            "[a-z{}\\[\\],:\"\\\\]{0,12}".prop_map(serde_json::Value::from),
        ];
        let nested = leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z\"{}]{0,4}|seq|prev_hash", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map(key, nested, 0..6)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    #[test]
    fn scanner_rejects_what_is_not_a_readable_entry() {
        let cases = [
            ("", "entry is not a JSON object"),
            ("[]", "entry is not a JSON object"),
            ("{}", "entry has no seq"),
            (r#"{"seq":1}"#, "entry has no prev_hash"),
            (
                r#"{"prev_hash":"00"}"#,
                "prev_hash is not 64 lowercase hex digits",
            ),
            (r#"{"seq":-1}"#, "seq is not a non-negative integer"),
            (r#"{"seq":1.5}"#, "seq is not an integer"),
            (
                r#"{"seq":99999999999999999999}"#,
                "seq does not fit in 64 bits",
            ),
            (r#"{"seq":1,"seq":2}"#, "seq appears twice"),
            (r#"{"a":"unterminated"#, "unterminated string"),
            (r#"{"a":{"b":1}"#, "expected ',' or '}' after a value"),
            (r#"{"a":[1,2"#, "unterminated object or array"),
        ];
        for (entry, want) in cases {
            assert_eq!(scan_entry_links(entry.as_bytes()), Err(want), "{entry:?}");
        }
        let trailing = format!(r#"{{"seq":1,"prev_hash":"{ZEROS}"}}x"#);
        assert_eq!(
            scan_entry_links(trailing.as_bytes()),
            Err("trailing bytes after the entry object")
        );
    }
}
