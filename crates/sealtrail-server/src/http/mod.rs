//! The HTTP API: shared state, authentication, the router assembled from one module per area,
//! and [`error`], the one place errors become status codes. Handlers extract and check what a
//! request says, call a service (`crate::ingest`, `crate::query`, `crate::verify`,
//! `crate::health`) and shape its answer; the work itself is the services'.
//!
//! **Architecture invariant:** every handler that touches tenant data gets its tenant from
//! [`Caller`], which derives it from the token (and `X-Tenant-ID` only for multi-tenant
//! tokens). No handler reads a tenant from the path or the body on its own.

pub mod admin;
pub mod body;
pub mod error;
pub mod ingest;
pub mod log;
pub mod ops;
pub mod query;
pub mod tiles;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

pub use self::body::BodyBudget;
pub use self::error::ApiError;
use crate::auth::{self, Scope};
use crate::authn::{Authenticator, Credentials};
pub use crate::authn::{TOKEN_RECHECK, TokenCache};
use crate::config::Resolved;
use crate::directory::Directory;
use crate::health::HealthCheck;
use crate::ingest::Ingest;
use crate::ledger::Ledger;
use crate::query::Queries;
pub use crate::readers::{MAX_READERS, Readers};
use crate::tenant::TenantName;
use crate::verify::{LogVerifier, VerificationBoard};

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub readers: Readers,
    pub settings: Arc<Resolved>,
    pub tokens: TokenCache,
    /// Bodies to submissions to the write path (`POST /v1/events[/batch]`).
    pub ingest: Ingest,
    /// Searches, events with their proofs, and the proof routes.
    pub queries: Queries,
    /// What verification has found about each log: written by `GET /v1/verify` and the
    /// background verifier, read by the health check.
    pub board: VerificationBoard,
    /// Verification of the caller's log (`GET /v1/verify`), recorded on `board`.
    pub verifier: LogVerifier,
    /// The checks behind `GET /health`.
    pub health: HealthCheck,
    /// The memory request bodies may hold at once (`http::body`).
    pub bodies: BodyBudget,
}

impl AppState {
    /// The authentication service over this state's token cache, readers and ledger.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(
            self.tokens.clone(),
            self.readers.clone(),
            self.ledger.clone(),
        )
    }

    /// The listings of tenants and tokens, read through this state's readers.
    pub fn directory(&self) -> Directory {
        Directory::new(self.readers.clone())
    }
}

/// The authenticated caller of a request: which token, for which tenant, with which scopes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Fails with 403 unless the token has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!(
                "this token lacks the {} scope; create one with `sealtrail tokens create --scope {}`",
                scope.as_str(),
                scope.as_str()
            ),
        )
        .at(AUTHORIZATION, "scope"))
    }
}

/// The request headers a [`Caller`] comes from, as error fields name them.
const AUTHORIZATION: &str = "Authorization";
const TENANT_HEADER: &str = "X-Tenant-ID";

/// A 401 naming the `Authorization` header and why it does not authenticate.
fn unauthorized(rule: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).at(AUTHORIZATION, rule)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized("required", "missing Authorization: Bearer <token> header")
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                unauthorized(
                    "format",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?
            .to_string();
        // Read before the token is looked up, checked after: a request that does not
        // authenticate learns nothing about tenants.
        let requested = parts
            .headers
            .get("x-tenant-id")
            .map(|v| v.to_str().ok().map(str::to_string));
        let Credentials {
            token,
            named_tenant_exists,
        } = state
            .authenticator()
            .credentials(&secret, requested.clone().flatten())
            .await?;
        let record =
            token.ok_or_else(|| unauthorized("unknown_token", "the token is not valid"))?;
        if record.revoked_at.is_some() {
            return Err(unauthorized("revoked", "the token has been revoked"));
        }
        let requested = requested
            .map(|name| {
                name.ok_or_else(|| {
                    ApiError::bad_request("X-Tenant-ID is not valid text: send a tenant name")
                        .at(TENANT_HEADER, "format")
                })
            })
            .transpose()?;
        let tenant = match (record.tenant.as_str(), requested) {
            (auth::ANY_TENANT, Some(tenant)) => {
                TenantName::parse(&tenant).map_err(|error| {
                    ApiError::bad_request(error.to_string()).at(TENANT_HEADER, "format")
                })?;
                if !named_tenant_exists {
                    return Err(ApiError::not_found(format!(
                        "there is no tenant {tenant:?}; check X-Tenant-ID (a tenant is created with its first token)"
                    ))
                    .at(TENANT_HEADER, "unknown_tenant"));
                }
                tenant
            }
            (auth::ANY_TENANT, None) => {
                return Err(ApiError::bad_request(
                    "this token serves several tenants: name one in the X-Tenant-ID header",
                )
                .at(TENANT_HEADER, "required"));
            }
            (own, Some(other)) if own != other => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_tenant",
                    format!("this token belongs to another tenant than {other:?}"),
                )
                .at(TENANT_HEADER, "tenant"));
            }
            (own, _) => own.to_string(),
        };
        let scopes = record
            .scopes
            .iter()
            .filter_map(|s| Scope::parse(s).ok())
            .collect();
        Ok(Caller {
            token_id: record.id,
            tenant,
            scopes,
        })
    }
}

/// The longest request target (path and query) served, in bytes. A search with every filter
/// at its longest, percent-encoded, stays below it; hyper refuses targets from 64 KiB on by
/// itself, with an empty body, so this limit lies below that one and answers in JSON.
pub const MAX_URI_BYTES: usize = 48 * 1024;
/// The most request header bytes (names and values) served.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most request headers served; below hyper's own limit of 100, for the same reason.
pub const MAX_HEADERS: usize = 64;

/// The whole API.
///
/// Every answer that is an error has the JSON error shape ([`ApiError`]), including those
/// no handler gives: a path no route serves (404), a method its route does not (405), a
/// request target or headers over the limits (414, 431; see [`MAX_URI_BYTES`]), and a body
/// over its route's limit (413, [`body`]).
pub fn router(state: AppState) -> Router {
    // Routes that read a body reserve room for it here (`body::limited`).
    let bodies = axum::Extension(state.bodies.clone());
    Router::new()
        .merge(ingest::routes())
        .merge(query::routes())
        .merge(log::routes())
        .merge(tiles::routes())
        .merge(admin::routes())
        .merge(ops::routes())
        .fallback(unknown_route)
        // After the routes: it applies to the routes registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(bodies)
        .with_state(state)
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::unknown_route(uri.path())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// Refuses a request whose target or headers are over the limits before any handler (or
/// authentication) runs.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match oversized(request.uri(), request.headers()) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

/// Why a request's target or headers are over the limits, if they are.
fn oversized(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Option<ApiError> {
    let target = uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::uri_too_long(MAX_URI_BYTES));
    }
    if headers.len() > MAX_HEADERS {
        return Some(ApiError::headers_too_large(
            "",
            format!("more than {MAX_HEADERS} request headers; send fewer"),
        ));
    }
    let mut total = 0;
    for (name, value) in headers {
        let size = name.as_str().len() + value.len();
        if size > MAX_HEADER_BYTES {
            return Some(ApiError::headers_too_large(
                name.as_str(),
                format!("the {name} header is longer than {MAX_HEADER_BYTES} bytes"),
            ));
        }
        total += size;
    }
    (total > MAX_HEADER_BYTES).then(|| {
        ApiError::headers_too_large(
            "",
            format!("the request headers add up to more than {MAX_HEADER_BYTES} bytes"),
        )
    })
}
