//! The upper levels of each log's stored-hash array, kept in memory for the proof routes.
//!
//! An inclusion or consistency proof in a tree of n entries reads about log2(n) stored hashes,
//! one per level of the tree; the hashes of the upper levels (subtrees of 2^[`CACHED_LEVEL`]
//! entries and more) are few — one per 1,024 entries — and shared by most proofs, while each
//! read from the store is a b-tree seek (and, on SQLite, page-cache lookups and a copy out of
//! the operating system's cache). [`TreeCache`] keeps those hashes once they have been read.
//!
//! Stored hashes are append-only (the store refuses UPDATE and DELETE, and no code path writes
//! either): the hash at a position, once committed, is that position's hash for good, and a
//! reader only ever asks for positions of a committed tree. So a cached hash never goes stale
//! and needs no invalidation; growing logs simply add positions, which are read from the store
//! the first time a proof needs them. Answers are the same hashes the store holds, so proofs
//! are byte for byte what they would be without the cache.
//!
//! It also keeps, per log, the largest committed size a read of this process has seen. Logs
//! only grow, so a proof of a tree no larger than that is known to fit the committed tree
//! without asking the store again; and since the hashes of a committed tree never change, such
//! a proof needs no read snapshot either — only its hashes, from memory when every one is
//! here, else in one read (see [`crate::query`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sealtrail_core::Hash;
use sealtrail_core::merkle::{HashReader, ReadError, split_stored_hash_index};

/// The lowest level kept: subtrees of 1,024 entries. A log of n entries has about n / 1,024
/// stored hashes at this level and above (32 bytes each, plus the map's overhead): 10 M
/// entries, about 20,000 hashes, well under a megabyte.
pub const CACHED_LEVEL: u8 = 10;

/// Stored hashes at [`CACHED_LEVEL`] and above, by tenant and position, and the largest
/// committed size seen of each log. Cloning is cheap.
#[derive(Clone, Default)]
pub struct TreeCache {
    tenants: Arc<RwLock<HashMap<String, Known>>>,
}

/// What is known of one log.
#[derive(Default)]
struct Known {
    /// The largest committed size a read has reported (0 when none has).
    committed: u64,
    hashes: HashMap<u64, Hash>,
}

/// The error of [`InMemory`] for a position the cache does not hold.
#[derive(Debug, thiserror::Error)]
#[error("stored hash {0} is not in memory")]
pub struct NotCached(pub u64);

impl TreeCache {
    /// A reader of `tenant`'s stored hashes that answers from the cache where it can and asks
    /// `inner` (the store) for the rest, keeping what it reads of the cached levels.
    pub fn reader<'a, R: HashReader + ?Sized>(
        &'a self,
        tenant: &'a str,
        inner: &'a R,
    ) -> CachedHashes<'a, R> {
        CachedHashes {
            cache: self,
            tenant,
            inner,
        }
    }

    /// A reader of `tenant`'s stored hashes that answers from memory only, and fails with
    /// [`NotCached`] when a position is not there.
    pub fn in_memory<'a>(&'a self, tenant: &'a str) -> InMemory<'a> {
        InMemory {
            cache: self,
            tenant,
        }
    }

    /// How many hashes are cached for `tenant`.
    pub fn len(&self, tenant: &str) -> usize {
        self.tenants
            .read()
            .expect("tree cache lock")
            .get(tenant)
            .map_or(0, |known| known.hashes.len())
    }

    /// The largest committed size of `tenant`'s log that a read has reported to
    /// [`TreeCache::saw_committed`]; 0 when none has. The log holds at least this many entries
    /// now: logs only grow.
    pub fn committed(&self, tenant: &str) -> u64 {
        self.tenants
            .read()
            .expect("tree cache lock")
            .get(tenant)
            .map_or(0, |known| known.committed)
    }

    /// Records that the store reported `size` entries committed in `tenant`'s log.
    pub fn saw_committed(&self, tenant: &str, size: u64) {
        if size <= self.committed(tenant) {
            return;
        }
        let mut tenants = self.tenants.write().expect("tree cache lock");
        let known = tenants.entry(tenant.to_string()).or_default();
        known.committed = known.committed.max(size);
    }
}

/// See [`TreeCache::in_memory`].
pub struct InMemory<'a> {
    cache: &'a TreeCache,
    tenant: &'a str,
}

impl HashReader for InMemory<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let tenants = self.cache.tenants.read().expect("tree cache lock");
        let hashes = tenants.get(self.tenant).map(|known| &known.hashes);
        indexes
            .iter()
            .map(|index| {
                hashes
                    .and_then(|h| h.get(index))
                    .copied()
                    .ok_or_else(|| NotCached(*index).into())
            })
            .collect()
    }
}

/// See [`TreeCache::reader`].
pub struct CachedHashes<'a, R: HashReader + ?Sized> {
    cache: &'a TreeCache,
    tenant: &'a str,
    inner: &'a R,
}

impl<R: HashReader + ?Sized> HashReader for CachedHashes<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let mut found: Vec<Option<Hash>> = vec![None; indexes.len()];
        let mut missing = Vec::new();
        {
            let tenants = self.cache.tenants.read().expect("tree cache lock");
            let cached = tenants.get(self.tenant).map(|known| &known.hashes);
            for (slot, index) in found.iter_mut().zip(indexes) {
                *slot = cached.and_then(|c| c.get(index)).copied();
                if slot.is_none() {
                    missing.push(*index);
                }
            }
        }
        if !missing.is_empty() {
            let read = self.inner.read_hashes(&missing)?;
            if read.len() != missing.len() {
                return Err(format!(
                    "asked for {} stored hashes, read {}",
                    missing.len(),
                    read.len()
                )
                .into());
            }
            let keep: Vec<(u64, Hash)> = missing
                .iter()
                .zip(&read)
                .filter(|(index, _)| split_stored_hash_index(**index).0 >= CACHED_LEVEL)
                .map(|(index, hash)| (*index, *hash))
                .collect();
            if !keep.is_empty() {
                let mut tenants = self.cache.tenants.write().expect("tree cache lock");
                tenants
                    .entry(self.tenant.to_string())
                    .or_default()
                    .hashes
                    .extend(keep);
            }
            let mut read = read.into_iter();
            for slot in found.iter_mut().filter(|slot| slot.is_none()) {
                *slot = read.next();
            }
        }
        Ok(found
            .into_iter()
            .map(|hash| hash.expect("every position found or read"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealtrail_core::merkle::{self, TreeBuilder, stored_hash_count, stored_hash_index};
    use std::cell::RefCell;

    /// The stored-hash array of a tree of `size` leaves.
    fn stored(size: u64) -> Vec<Hash> {
        let mut tree = TreeBuilder::new();
        let mut out = Vec::new();
        for i in 0..size {
            tree.push(sealtrail_core::leaf_hash(&i.to_be_bytes()), &mut out);
        }
        assert_eq!(out.len() as u64, stored_hash_count(size));
        out
    }

    /// A reader that records what it is asked for.
    struct Counting<'a> {
        hashes: &'a [Hash],
        asked: RefCell<Vec<u64>>,
    }

    impl HashReader for Counting<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
            self.asked.borrow_mut().extend_from_slice(indexes);
            self.hashes.read_hashes(indexes)
        }
    }

    #[test]
    fn proofs_through_the_cache_are_the_stores_and_upper_levels_are_read_once() {
        let size = 5_000u64;
        let hashes = stored(size);
        let store = Counting {
            hashes: &hashes,
            asked: RefCell::new(Vec::new()),
        };
        let cache = TreeCache::default();
        for round in 0..2 {
            for (i, index) in (0..size).step_by(37).enumerate() {
                let tree = 1 + (index * 7 + 11 * i as u64) % size;
                let cached = cache.reader("acme", &store);
                if index < tree {
                    assert_eq!(
                        merkle::inclusion_proof(index, tree, &cached).unwrap(),
                        merkle::inclusion_proof(index, tree, hashes.as_slice()).unwrap(),
                        "inclusion of {index} in {tree}"
                    );
                }
                let from = 1 + index % tree;
                assert_eq!(
                    merkle::consistency_proof(from, tree, &cached).unwrap(),
                    merkle::consistency_proof(from, tree, hashes.as_slice()).unwrap(),
                    "consistency from {from} to {tree}"
                );
            }
            let asked = std::mem::take(&mut *store.asked.borrow_mut());
            let upper = asked
                .iter()
                .filter(|&&i| split_stored_hash_index(i).0 >= CACHED_LEVEL)
                .count();
            if round == 0 {
                assert!(
                    upper > 0,
                    "the first round reads upper levels from the store"
                );
            } else {
                // The same proofs again: the upper levels come from memory, the rest from the
                // store as before.
                assert_eq!(upper, 0, "upper levels read again: {asked:?}");
                assert!(!asked.is_empty());
            }
        }
        // Only upper levels are kept, and only this tenant has any.
        assert!(cache.len("acme") > 0);
        assert!(cache.len("acme") as u64 <= (2 * size) >> CACHED_LEVEL);
        assert_eq!(cache.len("other"), 0);
        // Another tenant's positions are its own: the cache answers nothing for it.
        let other = stored(size + 1);
        let other_store = Counting {
            hashes: &other,
            asked: RefCell::new(Vec::new()),
        };
        let top = stored_hash_index(CACHED_LEVEL, 0);
        assert_eq!(
            cache
                .reader("other", &other_store)
                .read_hashes(&[top])
                .unwrap(),
            vec![other[top as usize]]
        );
        assert_eq!(*other_store.asked.borrow(), vec![top]);
    }

    #[test]
    fn a_failed_read_is_an_error_and_caches_nothing() {
        let hashes = stored(2_048);
        let cache = TreeCache::default();
        let short = &hashes[..hashes.len() - 1];
        let last = hashes.len() as u64 - 1;
        let top = stored_hash_index(CACHED_LEVEL, 0);
        assert!(
            cache
                .reader("acme", short)
                .read_hashes(&[top, last])
                .is_err()
        );
        assert_eq!(cache.len("acme"), 0);
        assert_eq!(
            cache
                .reader("acme", hashes.as_slice())
                .read_hashes(&[last, top])
                .unwrap(),
            vec![hashes[last as usize], hashes[top as usize]]
        );
        assert_eq!(cache.len("acme"), 2);
    }

    #[test]
    fn memory_answers_only_what_was_read_and_committed_sizes_only_grow_per_tenant() {
        let size = 4_096u64;
        let hashes = stored(size);
        let cache = TreeCache::default();
        // Nothing read yet: no proof from memory, and no size known.
        assert!(
            merkle::consistency_proof(1_024, 2_048, &cache.in_memory("acme")).is_err(),
            "an empty cache answered"
        );
        assert_eq!(cache.committed("acme"), 0);
        // One read through the store fills the upper levels that proof needs.
        let want = merkle::consistency_proof(1_024, 2_048, hashes.as_slice()).unwrap();
        assert_eq!(
            merkle::consistency_proof(1_024, 2_048, &cache.reader("acme", hashes.as_slice()))
                .unwrap(),
            want
        );
        assert_eq!(
            merkle::consistency_proof(1_024, 2_048, &cache.in_memory("acme")).unwrap(),
            want
        );
        // Lower levels are never kept: a leaf's inclusion proof still needs the store.
        merkle::inclusion_proof(5, size, &cache.reader("acme", hashes.as_slice())).unwrap();
        match merkle::inclusion_proof(5, size, &cache.in_memory("acme")) {
            Err(merkle::MerkleError::Read(source)) => {
                assert!(source.downcast_ref::<NotCached>().is_some(), "{source}")
            }
            other => panic!("a leaf's proof from memory: {other:?}"),
        }
        // Another tenant sees none of it.
        assert!(merkle::consistency_proof(1_024, 2_048, &cache.in_memory("other")).is_err());

        cache.saw_committed("acme", 2_000);
        cache.saw_committed("acme", 1_500);
        assert_eq!(cache.committed("acme"), 2_000, "a smaller size lowered it");
        cache.saw_committed("acme", 4_096);
        assert_eq!(cache.committed("acme"), 4_096);
        assert_eq!(cache.committed("other"), 0);
        cache.saw_committed("other", 3);
        assert_eq!(
            (cache.committed("acme"), cache.committed("other")),
            (4_096, 3)
        );
    }
}
