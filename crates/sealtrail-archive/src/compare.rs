//! Comparing an archive with the store it came from, in both directions: every archived entry
//! must be the store's entry at that seq, byte for byte; every store entry up to the archived
//! size must be archived; every archived hash tile must be the store's; and the archived
//! checkpoint's root must be the store's tree root at that size. The first difference is named
//! with its seq and which side holds what.
//!
//! Below the store's prune mark (entries retention removed after archiving them) the store
//! has no bytes to compare; there each archived entry's leaf hash must be the store's stored
//! leaf hash at its seq, which the store keeps for ever.

use sealtrail_core::merkle::{self, HashReader as _};
use sealtrail_core::note::VerifierKey;
use sealtrail_core::tiles::{self, TILE_WIDTH};
use sealtrail_store::tiles::hash_tile;
use sealtrail_store::{Store, StoreHashes, in_snapshot};

use crate::layout;
use crate::run::{ArchiveError, archived_state, read_checkpoint, tiles_of};
use crate::target::Target;

/// One place where archive and store differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub seq: Option<u64>,
    /// `entry_differs`, `missing_in_store`, `missing_in_archive`, `tile_differs`,
    /// `root_differs`.
    pub kind: &'static str,
    pub detail: String,
}

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompareReport {
    pub tenant: String,
    pub valid: bool,
    pub archived_size: u64,
    pub store_size: u64,
    /// Entries of the store beyond the archive (the archive's lag, not a difference).
    pub not_yet_archived: u64,
    pub entries_compared: u64,
    pub first_difference: Option<Difference>,
    /// At most `max` differences, by seq.
    pub differences: Vec<Difference>,
}

/// Compares `tenant`'s archive on `target` with `store`.
pub fn compare(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    key: &VerifierKey,
    max: usize,
) -> Result<CompareReport, ArchiveError> {
    compare_range(store, tenant, target, key, 0, u64::MAX, max)
}

/// [`compare`] for the entries `from..to` of the archive (clamped to its size), the hash
/// tiles that cover them, and the root at the archived size: what a prune of that range
/// relies on.
pub fn compare_range(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    key: &VerifierKey,
    from: u64,
    to: u64,
    max: usize,
) -> Result<CompareReport, ArchiveError> {
    let state = archived_state(target, tenant, key)?;
    let size = state.size;
    let to = to.min(size);
    let store_size = store.size(tenant)?;
    let pruned_below = store.prune_mark(tenant)?.map_or(0, |mark| mark.below);
    let hashes = StoreHashes { store, tenant };
    let mut diffs: Vec<Difference> = Vec::new();
    let push = |d: Difference, diffs: &mut Vec<Difference>| {
        if diffs.len() < max.max(1) {
            diffs.push(d);
        }
    };
    let mut compared = 0;
    let covers = |first: u64, width: u64| first < to && first + width > from;
    for tile in layout::tiles_at(0, size) {
        let first = tile.index * TILE_WIDTH;
        let width = u64::from(tile.width);
        if !covers(first, width) {
            continue;
        }
        let key_name = layout::in_tenant(tenant, &layout::bundle(&tile));
        let archived = match target.get(&key_name)? {
            Some(bytes) => match tiles::decode_entry_bundle(&bytes) {
                Ok(entries) => entries.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                Err(e) => {
                    push(
                        Difference {
                            seq: Some(first),
                            kind: "entry_differs",
                            detail: format!("{key_name} cannot be read as an entry bundle: {e}"),
                        },
                        &mut diffs,
                    );
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let mut stored: Vec<Option<Vec<u8>>> = vec![None; width as usize];
        store.for_each_entry(tenant, first, first + width, &mut |seq, entry| {
            if let Ok(entry) = entry {
                stored[(seq - first) as usize] = Some(entry.to_vec());
            }
        })?;
        // Stored leaf hashes stand for the entries retention pruned.
        let pruned: Vec<u64> = (first..(first + width).min(pruned_below)).collect();
        let leaves = if pruned.is_empty() {
            Vec::new()
        } else {
            let indexes: Vec<u64> = pruned
                .iter()
                .map(|&seq| merkle::stored_hash_index(0, seq))
                .collect();
            hashes
                .read_hashes(&indexes)
                .map_err(|e| ArchiveError::Merkle {
                    tenant: tenant.to_string(),
                    message: e.to_string(),
                })?
        };
        for (i, stored) in stored.iter().enumerate() {
            let seq = first + i as u64;
            if seq < from || seq >= to {
                continue;
            }
            compared += 1;
            if let Some(leaf) = leaves.get(i) {
                match archived.get(i) {
                    Some(a) if sealtrail_core::hash::leaf_hash(a) == *leaf => continue,
                    Some(_) => push(
                        Difference {
                            seq: Some(seq),
                            kind: "entry_differs",
                            detail: format!(
                                "the entry at seq {seq} in {key_name} does not hash to the store's leaf (the store pruned the entry and keeps its hash)"
                            ),
                        },
                        &mut diffs,
                    ),
                    None => push(
                        Difference {
                            seq: Some(seq),
                            kind: "missing_in_archive",
                            detail: format!(
                                "seq {seq} was pruned from the store but is not in the archive ({key_name})"
                            ),
                        },
                        &mut diffs,
                    ),
                }
                continue;
            }
            let difference = match (archived.get(i), stored) {
                (Some(a), Some(s)) if a == s => continue,
                (Some(_), Some(_)) => Difference {
                    seq: Some(seq),
                    kind: "entry_differs",
                    detail: format!(
                        "the entry at seq {seq} in {key_name} differs from the store's"
                    ),
                },
                (Some(_), None) => Difference {
                    seq: Some(seq),
                    kind: "missing_in_store",
                    detail: format!(
                        "seq {seq} is archived in {key_name} but the store has no entry there"
                    ),
                },
                (None, Some(_)) => Difference {
                    seq: Some(seq),
                    kind: "missing_in_archive",
                    detail: format!(
                        "the store's entry at seq {seq} is not in the archive ({key_name})"
                    ),
                },
                (None, None) => Difference {
                    seq: Some(seq),
                    kind: "missing_in_archive",
                    detail: format!("seq {seq} is in neither the archive nor the store"),
                },
            };
            push(difference, &mut diffs);
        }
    }
    // Hash tiles of the archived size, against the store's.
    for tile in tiles_of(size) {
        let key_name = layout::in_tenant(tenant, &layout::tile(&tile));
        let first_leaf = (tile.index * TILE_WIDTH) << (8 * u32::from(tile.level));
        let leaves = u64::from(tile.width) << (8 * u32::from(tile.level));
        if !covers(first_leaf, leaves) {
            continue;
        }
        let ours = in_snapshot(store, || hash_tile(store, tenant, &tile));
        match (target.get(&key_name)?, ours) {
            (Some(a), Ok(s)) if a == s => {}
            (Some(_), Ok(_)) => push(
                Difference {
                    seq: Some(first_leaf),
                    kind: "tile_differs",
                    detail: format!("{key_name} differs from the store's hashes"),
                },
                &mut diffs,
            ),
            (None, _) => push(
                Difference {
                    seq: Some(first_leaf),
                    kind: "missing_in_archive",
                    detail: format!("{key_name} is not in the archive"),
                },
                &mut diffs,
            ),
            (Some(_), Err(e)) => push(
                Difference {
                    seq: Some(first_leaf),
                    kind: "missing_in_store",
                    detail: format!("{key_name}: the store cannot give this tile: {e}"),
                },
                &mut diffs,
            ),
        }
    }
    if size > 0 {
        let (archived, _) = read_checkpoint(target, tenant, size, key)?;
        if store_size >= size {
            let root = merkle::tree_hash(size, &hashes).map_err(|e| ArchiveError::Merkle {
                tenant: tenant.to_string(),
                message: e.to_string(),
            })?;
            if root != archived.root {
                push(
                    Difference {
                        seq: None,
                        kind: "root_differs",
                        detail: format!(
                            "at size {size} the archived checkpoint's root is {} and the store's tree root is {}",
                            archived.root.to_base64(),
                            root.to_base64()
                        ),
                    },
                    &mut diffs,
                );
            }
        }
    }
    diffs.sort_by_key(|d| (d.seq.is_none(), d.seq.unwrap_or(u64::MAX)));
    Ok(CompareReport {
        tenant: tenant.to_string(),
        valid: diffs.is_empty(),
        archived_size: size,
        store_size,
        not_yet_archived: store_size.saturating_sub(size),
        entries_compared: compared,
        first_difference: diffs.first().cloned(),
        differences: diffs,
    })
}
