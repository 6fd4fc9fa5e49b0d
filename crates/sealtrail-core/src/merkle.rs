//! The RFC 9162 Merkle tree over the log's leaf hashes: tree heads, inclusion and consistency
//! proofs, their verification, and the append-only storage layout the log keeps its hashes in.
//!
//! # The tree
//!
//! The tree is the one of RFC 9162 §2.1.1: the root of `n > 1` leaves is
//! `node_hash(MTH(first k), MTH(rest))` where `k` is the largest power of two below `n`, the
//! root of one leaf is its leaf hash, and the root of no leaves is [`Hash::empty_root`]. Every
//! interior node that is the root of a *complete* subtree of `2^level` leaves is named
//! `(level, n)`: it covers leaves `[n << level, (n + 1) << level)`. The nodes on the right edge
//! of a tree whose size is not a power of two are not complete; they are recomputed from the
//! complete subtrees below them whenever they are needed and never stored.
//!
//! # The stored-hash layout
//!
//! A complete subtree never changes once its last leaf is appended, so the log stores every
//! complete-subtree hash exactly once, in the order they become complete. Appending leaf `n`
//! stores the leaf hash `(0, n)`, then `(1, n / 2)` if `n` is odd, then `(2, n / 4)` if
//! `n % 4 == 3`, and so on: `1 + trailing_ones(n)` hashes, two on average. For eight leaves:
//!
//! ```text
//! level 3:                          14
//! level 2:              6                         13
//! level 1:        2           5            9            12
//! level 0:     0     1     3     4      7     8     10     11
//! leaf:        0     1     2     3      4     5      6      7
//! ```
//!
//! Because a tree's stored hashes are a prefix of every larger tree's, the array is append-only
//! ([`stored_hash_count`] gives its length for `size` leaves, `2 * size - popcount(size)`), and
//! any root or proof for any size up to the current one needs only O(log n) reads from it:
//! a root folds the complete subtrees named by the set bits of the size, and a proof needs at
//! most one incomplete sibling, itself folded from at most 63 complete ones.
//! [`stored_hash_index`] and [`split_stored_hash_index`] convert between `(level, n)` and
//! positions; [`TreeBuilder`] produces the array while appending, without reads.
//!
//! Positions are `u64`, which bounds the trees this module handles at [`MAX_TREE_SIZE`]
//! (2^63) leaves; functions that take a size from their caller reject larger ones.
//!
//! # Proofs
//!
//! Proofs are lists of hashes ordered from the leaf (or the old tree) up towards the root, as
//! RFC 9162 §2.1.3.1 and §2.1.4.1 define them, and are verified with the algorithms of
//! §2.1.3.2 and §2.1.4.2. Verification first checks that the proof has exactly the length the
//! sizes call for, so garbage before or after the real hashes is reported as such rather than
//! as a root mismatch.
//!
//! **Equal sizes.** A consistency proof between two trees of the same size is empty, and
//! verifies exactly when the two roots are equal.
//!
//! **Size 0.** RFC 9162 defines consistency proofs only for `0 < from`. The empty tree is a
//! prefix of every tree, so a proof "from size 0" would prove nothing; sealtrail therefore
//! refuses the question instead of answering it: [`consistency_proof`] and
//! [`verify_consistency`] return a `ConsistencyFromEmpty` error whenever `from == 0`,
//! whatever the other size, roots and proof, including `from == to == 0`. This is what the
//! transparency-dev/merkle test vectors expect (`consistency/additional/`: size1 = 0 with
//! size2 = 1, root1 = the empty root and an empty proof must fail, as must size1 = size2 = 0
//! with equal roots). A caller checking that a tree extends an empty one has nothing to
//! verify and should skip the call; a caller holding a size-0 checkpoint should instead check
//! that its root is [`Hash::empty_root`]. Likewise no leaf is included in the empty tree, so
//! inclusion at size 0 is always an error.

use std::fmt;

use crate::hash::{Hash, node_hash};

/// The largest tree this module handles: 2^63 leaves. Its stored-hash array has 2^64 - 1
/// entries, the most whose positions all fit in a `u64`.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// Errors from a storage backend reading hashes; boxed so the core stays storage-agnostic.
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// A position of the stored-hash array that holds no hash. Readers return it (boxed as a
/// [`ReadError`]) for a hash that is simply not there, so that callers can tell a stored tree
/// that ends early — entries added, or hashes removed, outside the write path — from a read
/// that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored hash {index} is missing")]
pub struct MissingHash {
    pub index: u64,
}

impl MissingHash {
    /// The missing position, when `error` says a hash is missing rather than unreadable.
    pub fn in_error(error: &ReadError) -> Option<u64> {
        error.downcast_ref::<MissingHash>().map(|m| m.index)
    }
}

/// Storage of the stored-hash array (every complete-subtree hash in append order; see the
/// module documentation).
pub trait HashReader {
    /// Returns the hashes at the given positions of the stored-hash array, in the order asked
    /// for. Callers ask only for positions below [`stored_hash_count`] of the tree they work
    /// on, and treat an answer of the wrong length as an error.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError>;
}

/// An in-memory stored-hash array: position `i` is `self[i]`.
impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or_else(|| MissingHash { index }.into())
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        self.as_slice().read_hashes(indexes)
    }
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        (**self).read_hashes(indexes)
    }
}

/// Why a root or proof could not be computed from storage.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    #[error("failed to read stored hashes")]
    Read(#[source] ReadError),
    #[error("hash reader returned {got} hashes for {want} positions")]
    ReadCount { want: usize, got: usize },
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("invalid range: tree size {from} is larger than tree size {to}")]
    InvalidRange { from: u64, to: u64 },
    #[error(
        "no consistency proof from tree size 0 to {to}: the empty tree is a prefix of every tree"
    )]
    ConsistencyFromEmpty { to: u64 },
    #[error("tree size {size} is larger than the supported maximum of 2^63 leaves")]
    TreeTooLarge { size: u64 },
    #[error(
        "invalid tile (level {level}, index {index}, width {width}): the width must be 1 to 256 \
         and the tile must lie within 2^63 leaves"
    )]
    InvalidTile { level: u8, index: u64, width: u16 },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("invalid range: tree size {from} is larger than tree size {to}")]
    InvalidRange { from: u64, to: u64 },
    #[error(
        "consistency from tree size 0 to {to} is not verified: the empty tree is a prefix of \
         every tree, so there is nothing to prove"
    )]
    ConsistencyFromEmpty { to: u64 },
    #[error("wrong proof length: got {got} hashes, want {want}")]
    WrongProofLength { got: usize, want: usize },
    #[error("root mismatch at tree size {size}: the proof gives {computed}, expected {expected}")]
    RootMismatch {
        size: u64,
        computed: Hash,
        expected: Hash,
    },
}

/// `2 * size - popcount(size)`, written so that it does not overflow for `size <= 2^63`.
fn count_before(size: u64) -> u64 {
    size + (size - u64::from(size.count_ones()))
}

/// The position of `(level, n)`, or `None` if that subtree does not end within the first
/// [`MAX_TREE_SIZE`] leaves (where positions stop fitting in a `u64`).
pub(crate) fn checked_stored_hash_index(level: u32, n: u64) -> Option<u64> {
    if level > 63 {
        return None;
    }
    let end = n.checked_add(1)?;
    if end > MAX_TREE_SIZE >> level {
        return None;
    }
    // The subtree completes when its last leaf is appended: after everything stored for the
    // leaves before that one, that leaf's own hash and the `level - 1` parents below it.
    let last_leaf = (end << level) - 1;
    Some(count_before(last_leaf) + u64::from(level))
}

/// The position in the stored-hash array of the hash at `level` covering leaves
/// `[n << level, (n + 1) << level)`. For leaves (`level == 0`) this is `2n - popcount(n)`.
///
/// For subtrees that do not end within the first [`MAX_TREE_SIZE`] leaves there is no such
/// position; this returns `u64::MAX` for them, a position no storage holds (the largest real
/// one is `2^64 - 2`), so reading it fails instead of aliasing another hash.
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    checked_stored_hash_index(u32::from(level), n).unwrap_or(u64::MAX)
}

/// The inverse of [`stored_hash_index`]: the `(level, n)` of the hash at `index`.
pub fn split_stored_hash_index(index: u64) -> (u8, u64) {
    // Find the leaf m whose append stored `index`: count(m) <= index < count(m + 1), where
    // count is the strictly increasing stored_hash_count. Computed in u128 so that it is
    // total for every u64 position.
    fn count(m: u128) -> u128 {
        2 * m - u128::from(m.count_ones())
    }
    let index = u128::from(index);
    // count(m) <= 2m, so m = index / 2 is not past the answer; count grows by at least one per
    // leaf, so the answer is at most (index - count(lo)) leaves further on.
    let mut lo = index / 2;
    let mut hi = lo + (index - count(lo)) + 1;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if count(mid) <= index {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Leaf lo's append stored (0, lo), (1, lo >> 1), ... in that order.
    let level = index - count(lo);
    // level <= trailing_ones(lo) <= 64 and lo < 2^64, so both fit.
    (level as u8, (lo >> level) as u64)
}

/// The length of the stored-hash array for a tree of `size` leaves: `2 * size - popcount(size)`.
///
/// Sizes above [`MAX_TREE_SIZE`] have no array that `u64` positions can address; for them this
/// saturates at `u64::MAX`. Callers handling untrusted sizes should compare them with
/// [`MAX_TREE_SIZE`] first.
pub fn stored_hash_count(size: u64) -> u64 {
    if size > MAX_TREE_SIZE {
        return u64::MAX;
    }
    count_before(size)
}

fn check_size(size: u64) -> Result<(), MerkleError> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size });
    }
    Ok(())
}

/// Reads `indexes` and checks that the reader kept its side of the contract.
pub(crate) fn read_exact(
    r: &(impl HashReader + ?Sized),
    indexes: &[u64],
) -> Result<Vec<Hash>, MerkleError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = r.read_hashes(indexes).map_err(MerkleError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(MerkleError::ReadCount {
            want: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes)
}

/// Appends the positions of the complete subtrees that make up leaves `[lo, hi)`, largest
/// first. Every range a proof needs starts at a multiple of a power of two at least as large
/// as its length, so these are its binary decomposition.
fn push_range_indexes(lo: u64, hi: u64, out: &mut Vec<u64>) {
    let mut start = lo;
    let len = hi - lo;
    for level in (0..64).rev() {
        if len & (1 << level) != 0 {
            debug_assert_eq!(start % (1 << level), 0, "unaligned range [{lo}, {hi})");
            // start + 2^level <= hi <= MAX_TREE_SIZE, checked by the callers.
            out.push(stored_hash_index(level as u8, start >> level));
            start += 1 << level;
        }
    }
}

/// The root of complete subtrees laid side by side, largest (leftmost) first: each subtree
/// joins the one to its right, which is how RFC 9162 splits a range that is not a power of two.
fn fold_subtrees(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => Hash::empty_root(),
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |right, left| node_hash(left, &right)),
    }
}

/// The largest power of two strictly below `n`, for `n >= 2`: RFC 9162's split point `k`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The hashes of the leaf ranges in `ranges`, read from storage in a single call.
fn range_hashes(
    ranges: impl Iterator<Item = (u64, u64)> + Clone,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    let mut indexes = Vec::new();
    for (lo, hi) in ranges.clone() {
        push_range_indexes(lo, hi, &mut indexes);
    }
    let stored = read_exact(r, &indexes)?;
    let mut rest = stored.as_slice();
    let mut out = Vec::new();
    for (lo, hi) in ranges {
        let (parts, tail) = rest.split_at((hi - lo).count_ones() as usize);
        out.push(fold_subtrees(parts));
        rest = tail;
    }
    Ok(out)
}

/// The root of the tree of the first `size` leaves (RFC 9162 §2.1.1 MTH), from at most 64
/// stored hashes read in one call. Size 0 gives [`Hash::empty_root`] without reading.
pub fn tree_hash(size: u64, r: &(impl HashReader + ?Sized)) -> Result<Hash, MerkleError> {
    Ok(TreeBuilder::from_reader(size, r)?.root())
}

/// The audit path for leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), ordered
/// from the leaf's sibling up to the child of the root. O(log n) stored hashes, one read.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    check_size(size)?;
    // Walk down from the root, keeping the sibling of each node on the way to the leaf.
    let mut siblings = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            siblings.push((mid, hi));
            hi = mid;
        } else {
            siblings.push((lo, mid));
            lo = mid;
        }
    }
    // The proof lists them from the leaf up.
    range_hashes(siblings.into_iter().rev(), r)
}

/// The consistency proof that the tree of `from` leaves is a prefix of the tree of `to`
/// leaves (RFC 9162 §2.1.4.1). Empty when `from == to`; an error when `from == 0` (see the
/// module documentation). O(log n) stored hashes, one read.
pub fn consistency_proof(
    from: u64,
    to: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if from > to {
        return Err(MerkleError::InvalidRange { from, to });
    }
    if from == 0 {
        return Err(MerkleError::ConsistencyFromEmpty { to });
    }
    check_size(to)?;
    // RFC 9162 SUBPROOF(m, D[lo:hi], b), unrolled: each step keeps one subtree and records the
    // other; the recursion's output lists the deepest record first.
    let mut parts = Vec::with_capacity(64);
    let (mut lo, mut hi, mut m, mut known) = (0, to, from, true);
    loop {
        let n = hi - lo;
        if m == n {
            // The old tree's last complete subtree. Omitted when it is the whole old tree,
            // whose root the verifier already has.
            if !known {
                parts.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            parts.push((lo + k, hi));
            hi = lo + k;
        } else {
            parts.push((lo, lo + k));
            lo += k;
            m -= k;
            known = false;
        }
    }
    range_hashes(parts.into_iter().rev(), r)
}

/// Bit length: the number of bits needed to write `x`.
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The length of the audit path for leaf `index` in a tree of `size > index` leaves: every
/// level below the point where the paths to `index` and to the last leaf part (`inner`), plus
/// the levels above it where the shared path takes a right turn.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The length of the consistency proof for `0 < from < to`: the audit path, in the tree of
/// `to` leaves, of the old tree's last complete subtree (of `2^shift` leaves), preceded by that
/// subtree's own hash unless it is the whole old tree.
fn consistency_proof_len(from: u64, to: u64) -> usize {
    let shift = from.trailing_zeros();
    // At level `shift` the new tree has ((to - 1) >> shift) + 1 nodes, the rightmost possibly
    // incomplete, and the old tree's last complete subtree is node (from - 1) >> shift.
    let path = inclusion_proof_len((from - 1) >> shift, ((to - 1) >> shift) + 1);
    path + usize::from(!from.is_power_of_two())
}

/// The root that `proof` gives for a tree of `size` leaves in which leaf `index` has hash
/// `leaf` (RFC 9162 §2.1.3.2, without the final comparison).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(wrong_length);
    }
    // `f` is the node on the path, `s` the last node of the tree at the same level.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // On the right edge, skip the levels where the node has no sibling.
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            size,
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `from` leaves with root `from_root` to be a prefix of
/// the tree of `to` leaves with root `to_root` (RFC 9162 §2.1.4.2). With `from == to` the proof
/// must be empty and the roots equal; `from == 0` is always an error (see the module
/// documentation).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if from > to {
        return Err(ProofError::InvalidRange { from, to });
    }
    if from == 0 {
        return Err(ProofError::ConsistencyFromEmpty { to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        if from_root != to_root {
            return Err(ProofError::RootMismatch {
                size: to,
                computed: *from_root,
                expected: *to_root,
            });
        }
        return Ok(());
    }
    let want = consistency_proof_len(from, to);
    let wrong_length = ProofError::WrongProofLength {
        got: proof.len(),
        want,
    };
    if proof.len() != want {
        return Err(wrong_length);
    }
    // When `from` is a power of two the old root is itself the starting subtree and the RFC
    // prepends it to the path; taking it as the seed avoids copying the proof.
    let (seed, rest) = if from.is_power_of_two() {
        (*from_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    let (mut f, mut s) = (from - 1, to - 1);
    // Start at the level of the seed subtree.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // `fr` rebuilds the old root (left siblings only), `sr` the new one.
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *from_root {
        return Err(ProofError::RootMismatch {
            size: from,
            computed: fr,
            expected: *from_root,
        });
    }
    if sr != *to_root {
        return Err(ProofError::RootMismatch {
            size: to,
            computed: sr,
            expected: *to_root,
        });
    }
    Ok(())
}

/// An incremental tree: the "frontier" of complete subtrees, one per set bit of the size,
/// largest (leftmost) first. Appending needs no reads and produces the stored hashes, so a
/// writer can keep the stored-hash array and a verifier can rebuild and check it in one pass.
#[derive(Clone)]
pub struct TreeBuilder {
    size: u64,
    /// `frontier[..size.count_ones()]` is live; entries past it are stale.
    frontier: [Hash; 64],
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        TreeBuilder {
            size: 0,
            frontier: [Hash::ZERO; 64],
        }
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the complete subtrees the tree is made of, largest (leftmost) first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier[..self.size.count_ones() as usize]
    }

    /// Appends a leaf and pushes onto `out` exactly the stored hashes that record `size` adds to
    /// the stored-hash array, in stored-index order: the leaf hash, then each parent the leaf
    /// completes. O(1) amortised; allocates only if `out` has to grow.
    pub fn push(&mut self, leaf: Hash, out: &mut Vec<Hash>) {
        out.push(leaf);
        let mut hash = leaf;
        let mut len = self.size.count_ones() as usize;
        // Each trailing one bit of the size is a complete subtree as large as `hash` standing
        // immediately to its left, so they merge.
        for _ in 0..self.size.trailing_ones() {
            len -= 1;
            hash = node_hash(&self.frontier[len], &hash);
            out.push(hash);
        }
        self.frontier[len] = hash;
        self.size += 1;
    }

    /// The root of all leaves pushed so far; [`Hash::empty_root`] when there are none.
    pub fn root(&self) -> Hash {
        fold_subtrees(self.frontier())
    }

    /// Rebuilds the frontier of a tree of `size` leaves from storage: the at most 64 hashes of
    /// the complete subtrees named by the set bits of `size`, in one read. Used to resume
    /// appending after a restart.
    pub fn from_reader(size: u64, r: &(impl HashReader + ?Sized)) -> Result<Self, MerkleError> {
        check_size(size)?;
        let mut indexes = [0u64; 64];
        let mut len = 0;
        let mut start = 0u64;
        for level in (0..64).rev() {
            if size & (1 << level) != 0 {
                indexes[len] = stored_hash_index(level as u8, start >> level);
                len += 1;
                start += 1 << level;
            }
        }
        let hashes = read_exact(r, &indexes[..len])?;
        let mut builder = TreeBuilder::new();
        builder.frontier[..len].copy_from_slice(&hashes);
        builder.size = size;
        Ok(builder)
    }
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder::new()
    }
}

impl PartialEq for TreeBuilder {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.frontier() == other.frontier()
    }
}

impl Eq for TreeBuilder {}

impl fmt::Debug for TreeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeBuilder")
            .field("size", &self.size)
            .field("frontier", &self.frontier())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use std::cell::Cell;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The stored-hash array of `n` leaves, built by appending.
    fn stored(n: u64) -> Vec<Hash> {
        let mut builder = TreeBuilder::new();
        let mut out = Vec::new();
        for leaf in leaves(n) {
            builder.push(leaf, &mut out);
        }
        out
    }

    #[test]
    fn stored_hash_index_matches_the_documented_layout() {
        // The eight-leaf picture in the module documentation.
        let expected = [
            ((0, 0), 0),
            ((0, 1), 1),
            ((1, 0), 2),
            ((0, 2), 3),
            ((0, 3), 4),
            ((1, 1), 5),
            ((2, 0), 6),
            ((0, 4), 7),
            ((0, 5), 8),
            ((1, 2), 9),
            ((0, 6), 10),
            ((0, 7), 11),
            ((1, 3), 12),
            ((2, 1), 13),
            ((3, 0), 14),
        ];
        for ((level, n), index) in expected {
            assert_eq!(stored_hash_index(level, n), index, "({level}, {n})");
            assert_eq!(split_stored_hash_index(index), (level, n), "{index}");
        }
        assert_eq!(stored_hash_count(8), 15);
        assert_eq!(stored_hash_count(0), 0);
        assert_eq!(stored_hash_count(7), 11);
    }

    #[test]
    fn split_inverts_stored_hash_index() {
        for index in 0..200_000u64 {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index, "index {index}");
        }
        // Near the top of the u64 range.
        for index in (u64::MAX - 5000..u64::MAX - 1).chain([1 << 63, (1 << 63) - 1, 1 << 62]) {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index, "index {index}");
        }
        for level in 0..64u8 {
            let limit = MAX_TREE_SIZE >> level;
            for n in [0, 1, 2, 3, 1000, limit / 2, limit - 1]
                .into_iter()
                .filter(|&n| n < limit)
            {
                let index = stored_hash_index(level, n);
                assert_eq!(split_stored_hash_index(index), (level, n));
            }
        }
    }

    #[test]
    fn positions_beyond_the_largest_tree_saturate() {
        assert_eq!(stored_hash_count(MAX_TREE_SIZE), u64::MAX);
        assert_eq!(stored_hash_count(MAX_TREE_SIZE + 1), u64::MAX);
        assert_eq!(stored_hash_index(63, 0), u64::MAX - 1);
        assert_eq!(stored_hash_index(63, 1), u64::MAX);
        assert_eq!(stored_hash_index(0, MAX_TREE_SIZE), u64::MAX);
        assert_eq!(stored_hash_index(64, 0), u64::MAX);
        assert_eq!(stored_hash_index(255, 7), u64::MAX);
    }

    #[test]
    fn push_emits_one_record_per_leaf_in_stored_order() {
        let mut builder = TreeBuilder::new();
        let mut out = Vec::new();
        for (i, leaf) in leaves(300).into_iter().enumerate() {
            let before = out.len();
            builder.push(leaf, &mut out);
            let i = i as u64;
            assert_eq!(out.len() - before, 1 + i.trailing_ones() as usize);
            assert_eq!(out.len() as u64, stored_hash_count(i + 1));
            assert_eq!(out[stored_hash_index(0, i) as usize], leaf);
        }
    }

    #[test]
    fn resuming_from_storage_equals_building_continuously() {
        let all = leaves(320);
        let array = stored(320);
        let mut continuous = TreeBuilder::new();
        let mut scratch = Vec::new();
        for size in 0..=300u64 {
            let prefix = &array[..stored_hash_count(size) as usize];
            let mut resumed = TreeBuilder::from_reader(size, prefix).unwrap();
            assert_eq!(resumed, continuous, "size {size}");
            assert_eq!(resumed.root(), continuous.root(), "size {size}");
            assert_eq!(tree_hash(size, prefix).unwrap(), continuous.root());
            // Appending after the restart writes exactly what the uninterrupted run wrote.
            let mut out = Vec::new();
            for leaf in &all[size as usize..size as usize + 20] {
                resumed.push(*leaf, &mut out);
            }
            let written = stored_hash_count(size) as usize..stored_hash_count(size + 20) as usize;
            assert_eq!(out, array[written], "size {size}");
            continuous.push(all[size as usize], &mut scratch);
        }
    }

    #[test]
    fn empty_tree() {
        let builder = TreeBuilder::default();
        assert_eq!(builder.size(), 0);
        assert_eq!(builder.root(), Hash::empty_root());
        let nothing: &[Hash] = &[];
        assert_eq!(tree_hash(0, nothing).unwrap(), Hash::empty_root());
        assert!(matches!(
            inclusion_proof(0, 0, nothing),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        ));
    }

    #[test]
    fn small_roots_follow_rfc_9162() {
        let l = leaves(3);
        let array = stored(3);
        assert_eq!(tree_hash(1, &array).unwrap(), l[0]);
        assert_eq!(tree_hash(2, &array).unwrap(), node_hash(&l[0], &l[1]));
        assert_eq!(
            tree_hash(3, &array).unwrap(),
            node_hash(&node_hash(&l[0], &l[1]), &l[2])
        );
        assert_eq!(
            inclusion_proof(2, 3, &array).unwrap(),
            vec![node_hash(&l[0], &l[1])]
        );
        assert_eq!(inclusion_proof(0, 3, &array).unwrap(), vec![l[1], l[2]]);
        assert_eq!(consistency_proof(2, 3, &array).unwrap(), vec![l[2]]);
        assert_eq!(consistency_proof(1, 3, &array).unwrap(), vec![l[1], l[2]]);
        assert_eq!(consistency_proof(3, 3, &array).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn size_zero_consistency_is_refused() {
        let array = stored(4);
        let empty = Hash::empty_root();
        let root = tree_hash(4, &array).unwrap();
        assert!(matches!(
            consistency_proof(0, 4, &array),
            Err(MerkleError::ConsistencyFromEmpty { to: 4 })
        ));
        assert!(matches!(
            consistency_proof(0, 0, &array),
            Err(MerkleError::ConsistencyFromEmpty { to: 0 })
        ));
        for (to, to_root, proof) in [(4, root, vec![]), (0, empty, vec![]), (4, root, vec![root])] {
            assert_eq!(
                verify_consistency(0, to, &empty, &to_root, &proof),
                Err(ProofError::ConsistencyFromEmpty { to })
            );
        }
    }

    #[test]
    fn verification_rejects_bad_arguments_with_clear_errors() {
        let array = stored(5);
        let root = tree_hash(5, &array).unwrap();
        let leaf = array[0];
        let proof = inclusion_proof(0, 5, &array).unwrap();
        assert_eq!(verify_inclusion(0, 5, &leaf, &proof, &root), Ok(()));
        assert_eq!(
            verify_inclusion(5, 5, &leaf, &proof, &root),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            verify_inclusion(0, 5, &leaf, &proof[1..], &root),
            Err(ProofError::WrongProofLength { got: 2, want: 3 })
        );
        let err = verify_inclusion(0, 5, &leaf, &proof, &leaf).unwrap_err();
        assert!(matches!(err, ProofError::RootMismatch { size: 5, .. }));
        assert!(err.to_string().starts_with("root mismatch at tree size 5"));

        let root3 = tree_hash(3, &array).unwrap();
        assert_eq!(
            verify_consistency(5, 3, &root, &root3, &[]),
            Err(ProofError::InvalidRange { from: 5, to: 3 })
        );
        assert_eq!(verify_consistency(3, 3, &root3, &root3, &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &root3, &root3, &[root3]),
            Err(ProofError::WrongProofLength { got: 1, want: 0 })
        );
        assert!(matches!(
            verify_consistency(3, 3, &root3, &root, &[]),
            Err(ProofError::RootMismatch { size: 3, .. })
        ));
        let proof = consistency_proof(3, 5, &array).unwrap();
        assert_eq!(verify_consistency(3, 5, &root3, &root, &proof), Ok(()));
        assert!(matches!(
            verify_consistency(3, 5, &root, &root, &proof),
            Err(ProofError::RootMismatch { size: 3, .. })
        ));
        assert!(matches!(
            verify_consistency(3, 5, &root3, &root3, &proof),
            Err(ProofError::RootMismatch { size: 5, .. })
        ));
        assert!(matches!(
            consistency_proof(5, 3, &array),
            Err(MerkleError::InvalidRange { from: 5, to: 3 })
        ));
    }

    #[test]
    fn proofs_read_only_inside_the_tree() {
        let array = stored(1000);
        for size in [1u64, 2, 3, 255, 256, 257, 999] {
            let prefix = &array[..stored_hash_count(size) as usize];
            for index in [0, size / 2, size - 1] {
                inclusion_proof(index, size, prefix).unwrap();
            }
            for from in [1, size / 2 + 1, size] {
                consistency_proof(from.min(size), size, prefix).unwrap();
            }
        }
        assert!(matches!(tree_hash(1001, &array), Err(MerkleError::Read(_))));
    }

    struct Misbehaving;
    impl HashReader for Misbehaving {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
            Ok(vec![Hash::ZERO; indexes.len() + 1])
        }
    }

    struct Counting<'a>(&'a [Hash], Cell<usize>);
    impl HashReader for Counting<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
            self.1.set(self.1.get() + 1);
            self.0.read_hashes(indexes)
        }
    }

    #[test]
    fn reader_contract_is_enforced_and_reads_are_batched() {
        assert!(matches!(
            tree_hash(3, &Misbehaving),
            Err(MerkleError::ReadCount { want: 2, got: 3 })
        ));
        let array = stored(700);
        let counting = Counting(&array, Cell::new(0));
        tree_hash(699, &counting).unwrap();
        inclusion_proof(300, 699, &counting).unwrap();
        consistency_proof(301, 699, &counting).unwrap();
        assert_eq!(counting.1.get(), 3);
    }

    #[test]
    fn oversized_trees_are_rejected() {
        let nothing: &[Hash] = &[];
        assert!(matches!(
            tree_hash(MAX_TREE_SIZE + 1, nothing),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        assert!(matches!(
            inclusion_proof(0, u64::MAX, nothing),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        assert!(matches!(
            consistency_proof(1, u64::MAX, nothing),
            Err(MerkleError::TreeTooLarge { .. })
        ));
        // The largest tree is addressable: its reads fail in storage, not in arithmetic.
        assert!(matches!(
            tree_hash(MAX_TREE_SIZE, nothing),
            Err(MerkleError::Read(_))
        ));
        // Verification is pure arithmetic and handles any size.
        let h = Hash::ZERO;
        assert!(matches!(
            verify_inclusion(0, u64::MAX, &h, &[h; 3], &h),
            Err(ProofError::WrongProofLength { got: 3, want: 64 })
        ));
    }
}
