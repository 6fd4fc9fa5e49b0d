//! A log's C2SP tiles read from a store: hash tiles from the stored-hash array and entry
//! bundles from the entries. The server's tile API and the archive both publish these bytes,
//! so they are made in one place and cannot differ.

use sealtrail_core::tiles::{self, TILE_WIDTH, Tile};

use crate::{Store, StoreError, StoreHashes};

/// Why a tile could not be made from the store.
#[derive(Debug, thiserror::Error)]
pub enum TileReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Entries of a tile the tree covers are not in the store (deleted, or pruned).
    #[error("tenant {tenant}: entries {first}..={last} are missing from the store")]
    MissingEntries {
        tenant: String,
        first: u64,
        last: u64,
    },
    /// The bundle holds entries retention pruned after archiving them: the archive has it.
    #[error(
        "tenant {tenant}: entries below {below} were pruned after they were archived in {archive}; this bundle is there"
    )]
    Pruned {
        tenant: String,
        below: u64,
        archive: String,
    },
    #[error("tenant {tenant}: tile {path}: {message}")]
    Hashes {
        tenant: String,
        path: String,
        message: String,
    },
    #[error("tenant {tenant}: entry bundle {path}: {message}")]
    Encode {
        tenant: String,
        path: String,
        message: String,
    },
}

/// The contents of hash tile `tile` of `tenant`'s log. The caller checks that the tree it
/// publishes covers the tile ([`tiles::tile_exists`]).
pub fn hash_tile(store: &dyn Store, tenant: &str, tile: &Tile) -> Result<Vec<u8>, TileReadError> {
    let hashes = StoreHashes { store, tenant };
    tiles::hash_tile_data(tile, &hashes).map_err(|e| TileReadError::Hashes {
        tenant: tenant.to_string(),
        path: tile.path(),
        message: e.to_string(),
    })
}

/// The entry bundle behind level-0 tile `tile`: its entries, in seq order, as stored. A row
/// without entry bytes fails the bundle with [`StoreError::BadRow`] at its seq; a missing one
/// with [`TileReadError::MissingEntries`].
pub fn entry_bundle(
    store: &dyn Store,
    tenant: &str,
    tile: &Tile,
) -> Result<Vec<u8>, TileReadError> {
    let width = u64::from(tile.width);
    let first = tile.index * TILE_WIDTH;
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(tile.width.into());
    let mut bad_row = None;
    store.for_each_entry(
        tenant,
        first,
        first + width,
        &mut |seq, entry| match entry {
            Ok(entry) => entries.push(entry.to_vec()),
            Err(bad) => {
                bad_row.get_or_insert_with(|| (seq, bad.clone()));
            }
        },
    )?;
    if let Some((seq, source)) = bad_row {
        return Err(StoreError::BadRow {
            tenant: tenant.to_string(),
            seq,
            source,
        }
        .into());
    }
    // Seqs are unique, so as many entries as the width means every one of them is there.
    if entries.len() as u64 != width {
        if let Some(mark) = store.prune_mark(tenant)?
            && first < mark.below
        {
            return Err(TileReadError::Pruned {
                tenant: tenant.to_string(),
                below: mark.below,
                archive: mark.archive,
            });
        }
        return Err(TileReadError::MissingEntries {
            tenant: tenant.to_string(),
            first,
            last: first + width - 1,
        });
    }
    let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    tiles::encode_entry_bundle(&slices).map_err(|e| TileReadError::Encode {
        tenant: tenant.to_string(),
        path: Tile::entries_path(tile.index, tile.width),
        message: e.to_string(),
    })
}
