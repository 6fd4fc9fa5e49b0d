//! The C2SP tlog-tiles read API (<https://c2sp.org/tlog-tiles>) under `/logs/{tenant}/`:
//! `checkpoint`, hash tiles `tile/<L>/<N>[.p/<W>]` and entry bundles `tile/entries/<N>[.p/<W>]`,
//! so that witnesses, monitors and other C2SP clients can follow a sealtrail log.
//!
//! Tiles are served for the tree of the latest signed checkpoint: a client that has verified
//! that checkpoint can fetch exactly the tiles it determines, and nothing the log has not
//! signed yet. Full tiles never change and are cached for a year; partial tiles and the
//! checkpoint are not cached for long.
//!
//! Access: entry bundles hold the audit events themselves and always need a `log:read` token of
//! the log's tenant. The checkpoint and the hash tiles reveal only hashes and sizes; they are
//! public when the `public_log` setting is on (off by default) and otherwise need the same
//! token. A token of another tenant gets the same 404 as a log that does not exist, so the
//! names of other tenants do not leak. The path's tenant is never trusted on its own: it only
//! selects a log that is public or that the caller's own tenant matches.
//!
//! Bad paths: a tenant that is not a valid tenant name, or a tile path that is not in its one
//! canonical form, is a 400 naming the path parameter (`tenant`, `tile_path`, `bundle_path`)
//! with rule `format`, checked before the token, as it reveals nothing about any log.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sealtrail_core::tiles::{self, Tile, TilePath};

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::tenant::TenantName;
use sealtrail_store::{Store, StoreHashes, StoredCheckpoint};

/// Full tiles and bundles: their content is fixed forever.
const IMMUTABLE: &str = "max-age=31536000, immutable";
/// Partial tiles: valid forever too, but superseded as the log grows, so kept only briefly.
const PARTIAL: &str = "max-age=60";

pub fn routes() -> Router<AppState> {
    Router::new().route("/logs/{tenant}/{*path}", get(serve))
}

/// What a path under `/logs/{tenant}/` names.
enum Resource {
    Checkpoint,
    Tile(TilePath),
}

impl Resource {
    /// A path that is not in its one canonical form is a 400 naming the path parameter as
    /// the OpenAPI document calls it (`tile_path`, `bundle_path`), or `path` when it names no
    /// kind of resource at all.
    fn parse(path: &str) -> Result<Resource, ApiError> {
        if path == "checkpoint" {
            return Ok(Resource::Checkpoint);
        }
        let field = if path.starts_with("tile/entries/") {
            "bundle_path"
        } else if path.starts_with("tile/") {
            "tile_path"
        } else {
            "path"
        };
        tiles::parse_tile_path(path)
            .map(Resource::Tile)
            .map_err(|e| ApiError::bad_request(e.to_string()).at(field, "format"))
    }

    /// Entries are the events themselves: never public.
    fn may_be_public(&self) -> bool {
        !matches!(self, Resource::Tile(TilePath::Entries { .. }))
    }
}

fn no_such_log(tenant: &str) -> ApiError {
    ApiError::not_found(format!("no log named {tenant:?}")).at("tenant", "unknown_tenant")
}

async fn serve(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    let Path((tenant, path)) = path.map_err(|e| {
        ApiError::bad_request(format!("the path cannot be read: {}", e.body_text()))
            .at("path", "format")
    })?;
    TenantName::parse(&tenant)
        .map_err(|error| ApiError::bad_request(error.to_string()).at("tenant", "format"))?;
    let resource = Resource::parse(&path)?;
    let public = state.settings.public_log && resource.may_be_public();
    if !public {
        let caller = caller?;
        // Checked before the scope, so that a token of another tenant learns nothing.
        if caller.tenant != tenant {
            return Err(no_such_log(&tenant));
        }
        caller.require(Scope::LogRead)?;
    }
    let visibility = if public { "public" } else { "private" };
    state
        .readers
        .with(move |conn| {
            if conn.tenant(&tenant)?.is_none() {
                return Err(no_such_log(&tenant));
            }
            let Some(StoredCheckpoint { size, note, .. }) = conn.latest_checkpoint(&tenant)? else {
                return Err(ApiError::not_found(
                    "this log has no signed checkpoint yet; one is signed within a second of the first event",
                ));
            };
            let tile = match resource {
                Resource::Checkpoint => {
                    return Ok(respond(
                        "text/plain; charset=utf-8",
                        "no-cache".to_string(),
                        note.into_bytes(),
                    ));
                }
                Resource::Tile(TilePath::Hashes(tile)) => tile,
                // An entry bundle exists exactly when the level-0 tile over the same entries does.
                Resource::Tile(TilePath::Entries { index, width }) => Tile {
                    level: 0,
                    index,
                    width,
                },
            };
            if !tiles::tile_exists(&tile, size) {
                return Err(ApiError::not_found(format!(
                    "{path} is not part of the log at its latest checkpoint (size {size})"
                )));
            }
            let body = match resource {
                Resource::Tile(TilePath::Entries { .. }) => entry_bundle(conn, &tenant, &tile)?,
                _ => {
                    let hashes = StoreHashes {
                        store: conn,
                        tenant: &tenant,
                    };
                    tiles::hash_tile_data(&tile, &hashes).map_err(|e| {
                        tracing::error!(%tenant, %path, error = %e, "cannot read a tile");
                        ApiError::internal(format!("cannot read {path}: {e}"))
                    })?
                }
            };
            let cache = if tile.is_partial() { PARTIAL } else { IMMUTABLE };
            Ok(respond(
                "application/octet-stream",
                format!("{visibility}, {cache}"),
                body,
            ))
        })
        .await
}

/// The entry bundle behind level-0 tile `tile`: its entries, in seq order, as stored.
fn entry_bundle(conn: &dyn Store, tenant: &str, tile: &Tile) -> Result<Vec<u8>, ApiError> {
    let width = u64::from(tile.width);
    // `tile_exists` held, so the first seq and the end are within the tree's size.
    let first = tile.index * tiles::TILE_WIDTH;
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(tile.width.into());
    conn.for_each_entry(tenant, first, first + width, &mut |_, entry| {
        entries.push(entry.to_vec());
    })?;
    // Seqs are unique, so as many entries as the width means every one of them is there.
    if entries.len() as u64 != width {
        tracing::error!(
            tenant,
            first,
            width,
            found = entries.len(),
            "entries of a checkpointed tile are missing from the store"
        );
        return Err(ApiError::internal(format!(
            "entries {first} to {} are not all in the store; run `sealtrail verify --tenant {tenant}`",
            first + width - 1
        )));
    }
    let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    tiles::encode_entry_bundle(&slices)
        .map_err(|e| ApiError::internal(format!("cannot encode the entry bundle: {e}")))
}

fn respond(content_type: &'static str, cache_control: String, body: Vec<u8>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
