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
//! What is read, and from which tree, is the query service's ([`crate::query::tiles`]); this
//! module checks paths and access and sets the caching headers.
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
use sealtrail_core::tiles::{self, TilePath};

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::query::tiles::{LogResource, TileAnswer};
use crate::tenant::TenantName;

/// Full tiles and bundles: their content is fixed forever.
const IMMUTABLE: &str = "max-age=31536000, immutable";
/// Partial tiles: valid forever too, but superseded as the log grows, so kept only briefly.
const PARTIAL: &str = "max-age=60";

pub fn routes() -> Router<AppState> {
    Router::new().route("/logs/{tenant}/{*path}", get(serve))
}

/// What a path under `/logs/{tenant}/` names, with what only HTTP needs to know of it.
struct Resource(LogResource);

impl Resource {
    /// A path that is not in its one canonical form is a 400 naming the path parameter as
    /// the OpenAPI document calls it (`tile_path`, `bundle_path`), or `path` when it names no
    /// kind of resource at all.
    fn parse(path: &str) -> Result<Resource, ApiError> {
        if path == "checkpoint" {
            return Ok(Resource(LogResource::Checkpoint));
        }
        let field = if path.starts_with("tile/entries/") {
            "bundle_path"
        } else if path.starts_with("tile/") {
            "tile_path"
        } else {
            "path"
        };
        tiles::parse_tile_path(path)
            .map(|tile| Resource(LogResource::Tile(tile)))
            .map_err(|e| ApiError::bad_request(e.to_string()).at(field, "format"))
    }

    /// Entries are the events themselves: never public.
    fn may_be_public(&self) -> bool {
        !matches!(self.0, LogResource::Tile(TilePath::Entries { .. }))
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
    let public = state.settings.http.public_log && resource.may_be_public();
    if !public {
        let caller = caller?;
        // Checked before the scope, so that a token of another tenant learns nothing.
        if caller.tenant != tenant {
            return Err(no_such_log(&tenant));
        }
        caller.require(Scope::LogRead)?;
    }
    let visibility = if public { "public" } else { "private" };
    let answer = state.queries.tile(&tenant, path, resource.0).await?;
    Ok(match answer {
        TileAnswer::Checkpoint(note) => respond(
            "text/plain; charset=utf-8",
            "no-cache".to_string(),
            note.into_bytes(),
        ),
        TileAnswer::Tile { data, partial } => {
            let cache = if partial { PARTIAL } else { IMMUTABLE };
            respond(
                "application/octet-stream",
                format!("{visibility}, {cache}"),
                data,
            )
        }
    })
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
