//! Property tests: the Merkle module against a naive reference written straight from RFC 9162
//! §2.1 (MTH, PATH, PROOF/SUBPROOF as recursive functions over leaf ranges), plus tampering
//! checks on the verifiers.
//!
//! Hashing dominates the run time, and SHA-256 is slow in debug builds (about 10 µs a hash), so
//! most properties share one fixture tree of `FIXTURE_LEAVES` leaves built once, and the
//! reference memoises subtree roots. Case counts (fixed, so runs are comparable):
//!
//! | property                                     | cases |
//! |----------------------------------------------|-------|
//! | `push_output_is_the_stored_hash_layout`      |    48 |
//! | `roots_match_reference`                      |   256 |
//! | `inclusion_proofs_match_reference`           |   256 |
//! | `consistency_proofs_match_reference`         |   256 |
//! | `inclusion_tampering_is_detected`            |   128 |
//! | `consistency_tampering_is_detected`          |   128 |
//! | `every_bit_flip_breaks_inclusion`            |     8 |
//! | `every_bit_flip_breaks_consistency`          |     8 |
//!
//! On changing the index or a size by one: the same proof can legitimately verify for other
//! parameters. For example the proof `[h1, h2]` of leaf 0 in a tree of 3 leaves, whose root
//! is `H(H(h0, h1), h2)`, also proves leaf 0 in a tree of 4 leaves with that root, where `h2`
//! stands for the subtree of leaves 2 and 3: RFC 9162 verification does the same two steps.
//! So instead of demanding failure, those properties compare the verifier with a second,
//! independent reference verifier that recomputes the roots from the RFC definitions (bind
//! each proof hash to the range PATH or SUBPROOF says it covers, then evaluate MTH), and
//! require both to agree on every altered input. Single-bit flips of the proof, leaf or roots
//! must always fail.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use sealtrail_core::merkle::{
    HashReader, ReadError, TreeBuilder, consistency_proof, inclusion_proof, root_from_inclusion,
    split_stored_hash_index, stored_hash_count, stored_hash_index, tree_hash, verify_consistency,
    verify_inclusion,
};
use sealtrail_core::{Hash, leaf_hash, node_hash};

/// The fixture tree's size: a little past 2^12, so that sizes near 4096 are covered.
const FIXTURE_LEAVES: u64 = 4100;

// ---------------------------------------------------------------------------------------------
// The reference, from RFC 9162 §2.1. Ranges are [lo, hi) over a list of leaf hashes.

/// RFC 9162's k: the largest power of two smaller than n (n > 1), found the slow way.
fn k_of(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

struct Reference<'a> {
    leaves: &'a [Hash],
    memo: &'a RefCell<HashMap<(u64, u64), Hash>>,
}

impl Reference<'_> {
    /// MTH(D[lo:hi]), §2.1.1.
    fn mth(&self, lo: u64, hi: u64) -> Hash {
        match hi - lo {
            0 => Hash::empty_root(),
            1 => self.leaves[lo as usize],
            n => {
                if let Some(hash) = self.memo.borrow().get(&(lo, hi)) {
                    return *hash;
                }
                let k = k_of(n);
                let hash = node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi));
                self.memo.borrow_mut().insert((lo, hi), hash);
                hash
            }
        }
    }

    fn hashes(&self, ranges: &[(u64, u64)]) -> Vec<Hash> {
        ranges.iter().map(|&(lo, hi)| self.mth(lo, hi)).collect()
    }

    fn inclusion(&self, m: u64, n: u64) -> Vec<Hash> {
        self.hashes(&path_ranges(m, 0, n))
    }

    fn consistency(&self, m: u64, n: u64) -> Vec<Hash> {
        self.hashes(&subproof_ranges(m, 0, n, true))
    }
}

/// The ranges whose MTH make up PATH(m, D[lo:hi]), §2.1.3.1.
fn path_ranges(m: u64, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let n = hi - lo;
    if n == 1 {
        return Vec::new();
    }
    let k = k_of(n);
    if m < k {
        let mut path = path_ranges(m, lo, lo + k);
        path.push((lo + k, hi));
        path
    } else {
        let mut path = path_ranges(m - k, lo + k, hi);
        path.push((lo, lo + k));
        path
    }
}

/// The ranges whose MTH make up SUBPROOF(m, D[lo:hi], b), §2.1.4.1.
fn subproof_ranges(m: u64, lo: u64, hi: u64, b: bool) -> Vec<(u64, u64)> {
    let n = hi - lo;
    if m == n {
        return if b { Vec::new() } else { vec![(lo, hi)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut proof = subproof_ranges(m, lo, lo + k, b);
        proof.push((lo + k, hi));
        proof
    } else {
        let mut proof = subproof_ranges(m - k, lo + k, hi, false);
        proof.push((lo, lo + k));
        proof
    }
}

/// MTH(D[lo:hi]) where only the ranges in `known` have values: the root a verifier would
/// compute from them, or `None` if they do not determine it.
fn mth_from(lo: u64, hi: u64, known: &HashMap<(u64, u64), Hash>) -> Option<Hash> {
    if let Some(hash) = known.get(&(lo, hi)) {
        return Some(*hash);
    }
    if hi - lo <= 1 {
        return None;
    }
    let k = k_of(hi - lo);
    Some(node_hash(
        &mth_from(lo, lo + k, known)?,
        &mth_from(lo + k, hi, known)?,
    ))
}

/// Inclusion verification from the definitions: the proof hashes are the MTHs of the PATH
/// ranges, so binding them (and the leaf) determines the root.
fn reference_verify_inclusion(m: u64, n: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if m >= n {
        return false;
    }
    let ranges = path_ranges(m, 0, n);
    if ranges.len() != proof.len() {
        return false;
    }
    let mut known: HashMap<_, _> = ranges.into_iter().zip(proof.iter().copied()).collect();
    known.insert((m, m + 1), *leaf);
    mth_from(0, n, &known) == Some(*root)
}

/// Consistency verification from the definitions, with sealtrail's rules for the cases RFC
/// 9162 leaves open: size 0 is refused, equal sizes need an empty proof and equal roots.
fn reference_verify_consistency(m: u64, n: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && r1 == r2;
    }
    let ranges = subproof_ranges(m, 0, n, true);
    if ranges.len() != proof.len() {
        return false;
    }
    let mut known: HashMap<_, _> = ranges.into_iter().zip(proof.iter().copied()).collect();
    // SUBPROOF leaves out D[0:m] exactly when it is a node of the new tree (m a power of two):
    // the verifier holds it as the old root.
    let old_root = if m.is_power_of_two() {
        known.insert((0, m), *r1);
        Some(*r1)
    } else {
        mth_from(0, m, &known)
    };
    old_root == Some(*r1) && mth_from(0, n, &known) == Some(*r2)
}

// ---------------------------------------------------------------------------------------------
// The fixture.

struct Fixture {
    leaves: Vec<Hash>,
    /// Built with TreeBuilder::push; checked against the reference by `fixture_layout`.
    stored: Vec<Hash>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let leaves: Vec<Hash> = (0..FIXTURE_LEAVES)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect();
        let mut builder = TreeBuilder::new();
        let mut stored = Vec::new();
        for leaf in &leaves {
            builder.push(*leaf, &mut stored);
        }
        Fixture { leaves, stored }
    })
}

thread_local! {
    // Per test thread, so no locking; proptest runs each property on one thread.
    static MEMO: RefCell<HashMap<(u64, u64), Hash>> = RefCell::new(HashMap::new());
}

/// Runs `f` with the reference over the fixture's leaves.
fn with_reference<T>(f: impl FnOnce(&Reference) -> T) -> T {
    MEMO.with(|memo| {
        f(&Reference {
            leaves: &fixture().leaves,
            memo,
        })
    })
}

/// The stored hashes of the fixture's first `size` leaves: exactly that tree's array, so any
/// read outside it fails.
fn stored_prefix(size: u64) -> &'static [Hash] {
    &fixture().stored[..stored_hash_count(size) as usize]
}

/// A reader over a slice that counts calls and positions read.
struct Counting<'a> {
    hashes: &'a [Hash],
    calls: RefCell<(usize, usize)>,
}

impl<'a> Counting<'a> {
    fn new(hashes: &'a [Hash]) -> Self {
        Counting {
            hashes,
            calls: RefCell::new((0, 0)),
        }
    }

    /// Asserts one read of at most 2 * ceil(log2(size)) + 2 positions, and resets.
    fn check_logarithmic(&self, size: u64) -> Result<(), TestCaseError> {
        let (calls, positions) = self.calls.replace((0, 0));
        let bound = 2 * (64 - size.saturating_sub(1).leading_zeros() as usize) + 2;
        prop_assert!(calls <= 1, "{calls} reads");
        prop_assert!(
            positions <= bound,
            "{positions} positions read for size {size}"
        );
        Ok(())
    }
}

impl HashReader for Counting<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let mut calls = self.calls.borrow_mut();
        calls.0 += 1;
        calls.1 += indexes.len();
        self.hashes.read_hashes(indexes)
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Tree sizes in 1..=max: small ones, uniform ones, and ones within 2 of a power of two.
fn size(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        1..=max.min(40),
        1..=max,
        (0..=max.ilog2(), -2i64..=2)
            .prop_map(move |(e, d)| { ((1i64 << e) + d).clamp(1, max as i64) as u64 }),
    ]
}

/// (index, size) with index < size, often at the edges.
fn index_and_size(max: u64) -> impl Strategy<Value = (u64, u64)> {
    size(max).prop_flat_map(|n| (prop_oneof![0..n, Just(0), Just(n - 1)], Just(n)))
}

/// (from, to) with 1 <= from <= to, often near powers of two or equal.
fn from_and_to(max: u64) -> impl Strategy<Value = (u64, u64)> {
    size(max).prop_flat_map(|n| {
        let near_pow2 = (0..=n.ilog2(), -1i64..=1)
            .prop_map(move |(e, d)| ((1i64 << e) + d).clamp(1, n as i64) as u64);
        (prop_oneof![1..=n, near_pow2, Just(n), Just(1)], Just(n))
    })
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = hash.0;
    bytes[bit / 8] ^= 1 << (bit % 8);
    Hash(bytes)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The stored-hash layout.

/// Every position of the fixture's array holds the reference hash of the subtree
/// `split_stored_hash_index` names, and the array is exactly `stored_hash_count` long.
#[test]
fn fixture_layout() {
    let f = fixture();
    assert_eq!(f.stored.len() as u64, stored_hash_count(FIXTURE_LEAVES));
    with_reference(|reference| {
        for (index, hash) in f.stored.iter().enumerate() {
            let (level, n) = split_stored_hash_index(index as u64);
            assert_eq!(stored_hash_index(level, n), index as u64);
            let (lo, hi) = (n << level, (n + 1) << level);
            assert!(hi <= FIXTURE_LEAVES);
            assert_eq!(
                *hash,
                reference.mth(lo, hi),
                "position {index} = ({level}, {n})"
            );
        }
    });
}

proptest! {
    #![proptest_config(config(48))]

    /// On fresh random leaves: the concatenated `push` outputs are the array that
    /// `stored_hash_index` describes, each push adding 1 + trailing_ones(n) hashes.
    #[test]
    fn push_output_is_the_stored_hash_layout(
        n in size(2000),
        seed in any::<u64>(),
    ) {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
            .collect();
        let mut builder = TreeBuilder::new();
        let mut out = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let before = out.len();
            builder.push(*leaf, &mut out);
            prop_assert_eq!(out.len() - before, 1 + (i as u64).trailing_ones() as usize);
        }
        prop_assert_eq!(out.len() as u64, stored_hash_count(n));
        let memo = RefCell::new(HashMap::new());
        let reference = Reference { leaves: &leaves, memo: &memo };
        // Every complete subtree, level by level, sits where stored_hash_index says.
        let mut seen = 0u64;
        for level in 0..=n.ilog2() {
            for i in 0..n >> level {
                let index = stored_hash_index(level as u8, i);
                prop_assert_eq!(
                    out[index as usize],
                    reference.mth(i << level, (i + 1) << level),
                    "({}, {}) at {}", level, i, index
                );
                seen += 1;
            }
        }
        prop_assert_eq!(seen, stored_hash_count(n));
        prop_assert_eq!(builder.root(), reference.mth(0, n));
        prop_assert_eq!(builder.size(), n);
    }
}

// ---------------------------------------------------------------------------------------------
// Roots and proofs against the reference.

proptest! {
    #![proptest_config(config(256))]

    /// tree_hash, TreeBuilder::from_reader and the builder fed leaf by leaf agree with MTH on
    /// sampled prefixes, reading only the prefix's own stored hashes, O(log n) of them.
    #[test]
    fn roots_match_reference(
        n in size(FIXTURE_LEAVES),
        samples in prop::collection::vec(any::<prop::sample::Index>(), 4),
    ) {
        let mut sizes: Vec<u64> = samples.iter().map(|s| s.index(n as usize + 1) as u64).collect();
        sizes.push(n);
        for m in sizes {
            let expected = with_reference(|r| r.mth(0, m));
            let reader = Counting::new(stored_prefix(m));
            prop_assert_eq!(tree_hash(m, &reader).unwrap(), expected, "size {}", m);
            reader.check_logarithmic(m)?;
            let builder = TreeBuilder::from_reader(m, stored_prefix(m)).unwrap();
            prop_assert_eq!(builder.root(), expected);
            prop_assert_eq!(builder.size(), m);
        }
    }

    /// inclusion_proof equals PATH, verifies, and satisfies the reference verifier too.
    #[test]
    fn inclusion_proofs_match_reference((m, n) in index_and_size(FIXTURE_LEAVES)) {
        let (expected, root) = with_reference(|r| (r.inclusion(m, n), r.mth(0, n)));
        let reader = Counting::new(stored_prefix(n));
        let proof = inclusion_proof(m, n, &reader).unwrap();
        reader.check_logarithmic(n)?;
        prop_assert_eq!(&proof, &expected);
        let leaf = fixture().leaves[m as usize];
        prop_assert_eq!(verify_inclusion(m, n, &leaf, &proof, &root), Ok(()));
        prop_assert_eq!(root_from_inclusion(m, n, &leaf, &proof), Ok(root));
        prop_assert!(reference_verify_inclusion(m, n, &leaf, &proof, &root));
    }

    /// consistency_proof equals PROOF(m, D[n]), verifies, and satisfies the reference verifier.
    #[test]
    fn consistency_proofs_match_reference((m, n) in from_and_to(FIXTURE_LEAVES)) {
        let (expected, r1, r2) = with_reference(|r| (r.consistency(m, n), r.mth(0, m), r.mth(0, n)));
        let reader = Counting::new(stored_prefix(n));
        let proof = consistency_proof(m, n, &reader).unwrap();
        reader.check_logarithmic(n)?;
        prop_assert_eq!(&proof, &expected);
        prop_assert_eq!(verify_consistency(m, n, &r1, &r2, &proof), Ok(()));
        prop_assert!(reference_verify_consistency(m, n, &r1, &r2, &proof));
    }
}

// ---------------------------------------------------------------------------------------------
// Tampering.

/// Checks inclusion of leaf m in tree n with `proof` altered in every way listed in the module
/// documentation; `bits` chooses which bits to flip (all 256 of each hash, or one).
fn check_inclusion_tampering(
    m: u64,
    n: u64,
    bits: &dyn Fn(usize) -> Vec<usize>,
) -> Result<(), TestCaseError> {
    let (proof, root) = with_reference(|r| (r.inclusion(m, n), r.mth(0, n)));
    let leaf = fixture().leaves[m as usize];
    prop_assert_eq!(verify_inclusion(m, n, &leaf, &proof, &root), Ok(()));
    for i in 0..proof.len() {
        for bit in bits(i) {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(
                verify_inclusion(m, n, &leaf, &bad, &root).is_err(),
                "proof[{}] bit {}",
                i,
                bit
            );
        }
    }
    for bit in bits(proof.len()) {
        prop_assert!(
            verify_inclusion(m, n, &flip(&leaf, bit), &proof, &root).is_err(),
            "leaf bit {}",
            bit
        );
    }
    for bit in bits(proof.len() + 1) {
        prop_assert!(
            verify_inclusion(m, n, &leaf, &proof, &flip(&root, bit)).is_err(),
            "root bit {}",
            bit
        );
    }
    // Missing, extra and swapped hashes.
    if let Some((_, shorter)) = proof.split_last() {
        prop_assert!(verify_inclusion(m, n, &leaf, shorter, &root).is_err());
        prop_assert!(verify_inclusion(m, n, &leaf, &proof[1..], &root).is_err());
    }
    let mut longer = proof.clone();
    longer.push(root);
    prop_assert!(verify_inclusion(m, n, &leaf, &longer, &root).is_err());
    longer.rotate_right(1);
    prop_assert!(verify_inclusion(m, n, &leaf, &longer, &root).is_err());
    if proof.len() >= 2 {
        let mut swapped = proof.clone();
        swapped.swap(0, 1);
        prop_assert!(verify_inclusion(m, n, &leaf, &swapped, &root).is_err());
    }
    // Index or size off by one: the verifier must agree with the reference verifier, which
    // rejects unless the same computation happens to prove the altered claim (see the module
    // documentation).
    let altered = [(m.wrapping_sub(1), n), (m + 1, n), (m, n - 1), (m, n + 1)];
    for (m2, n2) in altered {
        let ours = verify_inclusion(m2, n2, &leaf, &proof, &root).is_ok();
        let reference = reference_verify_inclusion(m2, n2, &leaf, &proof, &root);
        prop_assert_eq!(
            ours,
            reference,
            "index {} size {} (from {}, {})",
            m2,
            n2,
            m,
            n
        );
    }
    Ok(())
}

/// As `check_inclusion_tampering`, for the consistency proof from m to n.
fn check_consistency_tampering(
    m: u64,
    n: u64,
    bits: &dyn Fn(usize) -> Vec<usize>,
) -> Result<(), TestCaseError> {
    let (proof, r1, r2) = with_reference(|r| (r.consistency(m, n), r.mth(0, m), r.mth(0, n)));
    prop_assert_eq!(verify_consistency(m, n, &r1, &r2, &proof), Ok(()));
    for i in 0..proof.len() {
        for bit in bits(i) {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(
                verify_consistency(m, n, &r1, &r2, &bad).is_err(),
                "proof[{}] bit {}",
                i,
                bit
            );
        }
    }
    for bit in bits(proof.len()) {
        prop_assert!(
            verify_consistency(m, n, &flip(&r1, bit), &r2, &proof).is_err(),
            "old root bit {}",
            bit
        );
    }
    for bit in bits(proof.len() + 1) {
        prop_assert!(
            verify_consistency(m, n, &r1, &flip(&r2, bit), &proof).is_err(),
            "new root bit {}",
            bit
        );
    }
    if let Some((_, shorter)) = proof.split_last() {
        prop_assert!(verify_consistency(m, n, &r1, &r2, shorter).is_err());
        prop_assert!(verify_consistency(m, n, &r1, &r2, &proof[1..]).is_err());
    }
    let mut longer = proof.clone();
    longer.push(r1);
    prop_assert!(verify_consistency(m, n, &r1, &r2, &longer).is_err());
    longer.rotate_right(1);
    prop_assert!(verify_consistency(m, n, &r1, &r2, &longer).is_err());
    if proof.len() >= 2 {
        let mut swapped = proof.clone();
        swapped.swap(0, 1);
        prop_assert!(verify_consistency(m, n, &r1, &r2, &swapped).is_err());
    }
    if m < n {
        prop_assert!(
            verify_consistency(m, n, &r2, &r1, &proof).is_err(),
            "swapped roots"
        );
    }
    // Sizes off by one (including from = 0, always refused): agree with the reference.
    let altered = [(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)];
    for (m2, n2) in altered {
        let ours = verify_consistency(m2, n2, &r1, &r2, &proof).is_ok();
        let reference = reference_verify_consistency(m2, n2, &r1, &r2, &proof);
        prop_assert_eq!(
            ours,
            reference,
            "sizes {} -> {} (from {} -> {})",
            m2,
            n2,
            m,
            n
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    /// One random bit flipped per proof hash, leaf and root; structural damage; off-by-one.
    #[test]
    fn inclusion_tampering_is_detected(
        (m, n) in index_and_size(FIXTURE_LEAVES),
        bits in prop::collection::vec(0..256usize, 66),
    ) {
        check_inclusion_tampering(m, n, &|i| vec![bits[i]])?;
    }

    /// One random bit flipped per proof hash and root; structural damage; off-by-one.
    #[test]
    fn consistency_tampering_is_detected(
        (m, n) in from_and_to(FIXTURE_LEAVES),
        bits in prop::collection::vec(0..256usize, 130),
    ) {
        check_consistency_tampering(m, n, &|i| vec![bits[i]])?;
    }
}

proptest! {
    // Each case verifies some thousands of altered proofs.
    #![proptest_config(config(8))]

    /// Every single-bit flip of every proof hash, of the leaf and of the root.
    #[test]
    fn every_bit_flip_breaks_inclusion((m, n) in index_and_size(1100)) {
        check_inclusion_tampering(m, n, &|_| (0..256).collect())?;
    }

    /// Every single-bit flip of every proof hash and of both roots.
    #[test]
    fn every_bit_flip_breaks_consistency((m, n) in from_and_to(1100)) {
        check_consistency_tampering(m, n, &|_| (0..256).collect())?;
    }
}
