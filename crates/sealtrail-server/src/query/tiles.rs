//! The C2SP tlog-tiles reads of the query service: a log's latest signed checkpoint, its hash
//! tiles and its entry bundles, all for the tree of that checkpoint, so that a client that
//! verified the checkpoint can fetch exactly the tiles it determines and nothing the log has
//! not signed yet. `http::tiles` decides who may ask and how long answers may be cached.

use sealtrail_core::tiles::{self, Tile, TilePath};
use sealtrail_store::{Store, StoreError, StoreHashes, StoredCheckpoint};

use super::{Queries, QueryError};

/// What a path under `/logs/{tenant}/` names.
#[derive(Debug, Clone)]
pub enum LogResource {
    Checkpoint,
    Tile(TilePath),
}

/// A tile-API answer.
#[derive(Debug, Clone)]
pub enum TileAnswer {
    /// The latest signed checkpoint, the note itself.
    Checkpoint(String),
    /// A hash tile or an entry bundle; `partial` when the tree will still grow past it.
    Tile { data: Vec<u8>, partial: bool },
}

impl Queries {
    /// `resource` of `tenant`'s log (named `path` in errors), at its latest checkpoint.
    pub async fn tile(
        &self,
        tenant: &str,
        path: String,
        resource: LogResource,
    ) -> Result<TileAnswer, QueryError> {
        let tenant = tenant.to_string();
        self.readers
            .read(move |log| read_tile(log, &tenant, &path, resource))
            .await
    }
}

fn read_tile(
    log: &dyn Store,
    tenant: &str,
    path: &str,
    resource: LogResource,
) -> Result<TileAnswer, QueryError> {
    if log.tenant(tenant)?.is_none() {
        return Err(QueryError::NoSuchLog(tenant.to_string()));
    }
    let Some(StoredCheckpoint { size, note, .. }) = log.latest_checkpoint(tenant)? else {
        return Err(QueryError::NoSignedCheckpoint);
    };
    let tile = match resource {
        LogResource::Checkpoint => return Ok(TileAnswer::Checkpoint(note)),
        LogResource::Tile(TilePath::Hashes(tile)) => tile,
        // An entry bundle exists exactly when the level-0 tile over the same entries does.
        LogResource::Tile(TilePath::Entries { index, width }) => Tile {
            level: 0,
            index,
            width,
        },
    };
    if !tiles::tile_exists(&tile, size) {
        return Err(QueryError::NotAtCheckpoint {
            path: path.to_string(),
            size,
        });
    }
    let data = match resource {
        LogResource::Tile(TilePath::Entries { .. }) => entry_bundle(log, tenant, &tile)?,
        _ => {
            let hashes = StoreHashes { store: log, tenant };
            tiles::hash_tile_data(&tile, &hashes).map_err(|e| {
                tracing::error!(%tenant, %path, error = %e, "cannot read a tile");
                QueryError::TileRead {
                    path: path.to_string(),
                    message: e.to_string(),
                }
            })?
        }
    };
    Ok(TileAnswer::Tile {
        data,
        partial: tile.is_partial(),
    })
}

/// The entry bundle behind level-0 tile `tile`: its entries, in seq order, as stored.
fn entry_bundle(log: &dyn Store, tenant: &str, tile: &Tile) -> Result<Vec<u8>, QueryError> {
    let width = u64::from(tile.width);
    // `tile_exists` held, so the first seq and the end are within the tree's size.
    let first = tile.index * tiles::TILE_WIDTH;
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(tile.width.into());
    // A row without entry bytes cannot go into a bundle; the first one fails the tile.
    let mut bad_row = None;
    log.for_each_entry(
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
        tracing::error!(
            tenant,
            first,
            width,
            found = entries.len(),
            "entries of a checkpointed tile are missing from the store"
        );
        return Err(QueryError::MissingEntries {
            tenant: tenant.to_string(),
            first,
            last: first + width - 1,
        });
    }
    let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    tiles::encode_entry_bundle(&slices).map_err(|e| QueryError::BundleEncode(e.to_string()))
}
