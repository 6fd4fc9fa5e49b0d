//! The C2SP tlog-tiles reads of the query service: a log's latest signed checkpoint, its hash
//! tiles and its entry bundles, all for the tree of that checkpoint, so that a client that
//! verified the checkpoint can fetch exactly the tiles it determines and nothing the log has
//! not signed yet. `http::tiles` decides who may ask and how long answers may be cached.

use sealtrail_core::tiles::{self, Tile, TilePath};
use sealtrail_store::tiles::{self as store_tiles, TileReadError};
use sealtrail_store::{Store, StoredCheckpoint};

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
    let read = match resource {
        LogResource::Tile(TilePath::Entries { .. }) => {
            store_tiles::entry_bundle(log, tenant, &tile)
        }
        _ => store_tiles::hash_tile(log, tenant, &tile),
    };
    let data = read.map_err(|e| match e {
        TileReadError::Store(e) => QueryError::from(e),
        TileReadError::MissingEntries {
            tenant,
            first,
            last,
        } => {
            tracing::error!(%tenant, first, last, "entries of a checkpointed tile are missing from the store");
            QueryError::MissingEntries {
                tenant,
                first,
                last,
            }
        }
        TileReadError::Pruned { below, archive, .. } => QueryError::Pruned { below, archive },
        TileReadError::Hashes { message, .. } => {
            tracing::error!(%tenant, %path, error = %message, "cannot read a tile");
            QueryError::TileRead {
                path: path.to_string(),
                message,
            }
        }
        TileReadError::Encode { message, .. } => QueryError::BundleEncode(message),
    })?;
    Ok(TileAnswer::Tile {
        data,
        partial: tile.is_partial(),
    })
}
