//! The HTTP API: shared state, authentication, the router assembled from one module per area,
//! and [`error`], the one place errors become status codes. Handlers extract and check what a
//! request says, call a service (`crate::ingest`, `crate::query`, `crate::verify`,
//! `crate::health`) and shape its answer; the work itself is the services'.
//!
//! **Architecture invariant:** every handler that touches tenant data gets its tenant from
//! [`Caller`], which derives it from the token (and `X-Tenant-ID` only for multi-tenant
//! tokens). No handler reads a tenant from the path or the body on its own.

pub mod access;
pub mod admin;
pub mod alerts;
pub mod body;
pub mod console;
pub mod error;
pub mod export;
pub mod gaps;
pub mod holds;
pub mod ingest;
pub mod log;
pub mod ops;
pub mod query;
pub mod reports;
pub mod retention;
pub mod seals;
pub mod tiles;
pub mod whoami;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

pub use self::body::BodyBudget;
pub use self::error::ApiError;
use crate::auth::{self, Scope};
pub use crate::authn::TokenCache;
use crate::authn::{Authenticator, Credentials, SecretHash};
use crate::config::Resolved;
use crate::directory::Directory;
use crate::health::HealthCheck;
use crate::ingest::Ingest;
use crate::ledger::{Ledger, RefusedAttempt};
use crate::query::Queries;
pub use crate::readers::{MAX_READERS, Readers};
use crate::refusals::Refusals;
use crate::tenant::{SYSTEM_TENANT, TenantName};
use crate::verify::{LogVerifier, VerificationBoard};

/// Everything handlers share, behind one `Arc`.
///
/// axum clones the router's state for every extractor and middleware that takes it, several
/// times per request. Cloned field by field, the components' dozens of reference counts
/// (atomic increments and decrements that bounce between cores) were a fifth of the HTTP
/// workers' CPU for single events; a clone of this is one.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub ledger: Ledger,
    pub readers: Readers,
    pub settings: Arc<Resolved>,
    pub tokens: TokenCache,
    /// Bodies to submissions to the write path (`POST /v1/events[/batch]`).
    pub ingest: Ingest,
    /// The frozen tenants as this instance knows them (shared with `ingest`): the admin
    /// routes that freeze and unfreeze tell it at once.
    pub freezes: crate::freeze::Freezes,
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
    /// Refused attempts at the admin API and the `_system` log, recorded in that log.
    pub refusals: Refusals,
    /// Tenants' retention and the compliance report, for the admin routes (`http::retention`).
    pub retention: crate::retention::RetentionService,
    /// The reports over each tenant's verified log (`http::reports`).
    pub reports: crate::reports::Reports,
}

impl Shared {
    /// The authentication service over this state's token cache, readers and ledger.
    pub fn authenticator(&self) -> Authenticator<'_> {
        Authenticator::new(&self.tokens, &self.readers, &self.ledger)
    }

    /// The listings of tenants and tokens, read through this state's readers.
    pub fn directory(&self) -> Directory {
        Directory::new(self.readers.clone())
    }
}

/// The authenticated caller of a request: which token, for which tenant, with which scopes.
///
/// As an extractor it also holds the caller to the one rule of access that depends on the
/// tenant rather than the route: the `_system` log — sealtrail's record of admin actions —
/// is reached only with the `admin` scope ([`Caller::may_reach_log`]). A `*` token names any
/// tenant in `X-Tenant-ID`, but without `admin` not `_system`; such an attempt is refused
/// with 403 and recorded in the `_system` log ([`crate::refusals`]).
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    /// The hash of the secret presented, to check the token again later in the request
    /// ([`Caller::recheck`]).
    secret: SecretHash,
}

/// A request refused while its caller was being found, with the id of the token it presented
/// when the store holds one with that secret (for the record of a refused admin attempt).
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    pub token_id: Option<String>,
}

impl Refused {
    fn anonymous(error: ApiError) -> Refused {
        Refused {
            error,
            token_id: None,
        }
    }

    fn by(token_id: &str, error: ApiError) -> Refused {
        Refused {
            error,
            token_id: Some(token_id.to_string()),
        }
    }
}

impl Caller {
    /// Whether this caller may reach its tenant's log at all: every tenant's, except that the
    /// `_system` log needs the `admin` scope, whatever tenant the token is bound to (a `*`
    /// token, or a `_system` token made without `admin`). The log records every admin action
    /// with the ids of the tokens involved; reading it is an administrator's business, as
    /// reading a database's settings or an audit device's output is.
    pub fn may_reach_log(&self) -> Result<(), ApiError> {
        if self.tenant != SYSTEM_TENANT || self.scopes.contains(&Scope::Admin) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!(
                "the {SYSTEM_TENANT} log is sealtrail's record of admin actions: it takes no events, and is read only with the admin scope, which this token lacks"
            ),
        )
        .at(AUTHORIZATION, "system_log"))
    }

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
pub(crate) const AUTHORIZATION: &str = "Authorization";
const TENANT_HEADER: &str = "X-Tenant-ID";

/// A 401 naming the `Authorization` header and why it does not authenticate.
fn unauthorized(rule: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).at(AUTHORIZATION, rule)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let caller = Caller::authenticate(parts, state)
            .await
            .map_err(|refused| refused.error)?;
        if let Err(error) = caller.may_reach_log() {
            let attempt = refused_attempt(parts, &error, Some(caller.token_id.clone()));
            state.refusals.record(attempt).await;
            return Err(error);
        }
        Ok(caller)
    }
}

impl Caller {
    /// The caller of a request, from its `Authorization: Bearer` header (and `X-Tenant-ID`
    /// for a multi-tenant token): 401 without a valid, unrevoked token; 400, 403 or 404 when
    /// `X-Tenant-ID` is malformed, names another tenant than the token's, or names none.
    pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, Refused> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Refused::anonymous(unauthorized(
                    "required",
                    "missing Authorization: Bearer <token> header",
                ))
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Refused::anonymous(unauthorized(
                    "format",
                    "the Authorization header must be `Bearer <token>`",
                ))
            })?
            .to_string();
        let secret = SecretHash::of(&secret);
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
            .await
            .map_err(|error| Refused::anonymous(error.into()))?;
        let record = token.ok_or_else(|| {
            Refused::anonymous(unauthorized("unknown_token", "the token is not valid"))
        })?;
        if record.revoked_at.is_some() {
            return Err(Refused::by(
                &record.id,
                unauthorized("revoked", "the token has been revoked"),
            ));
        }
        let tenant = Caller::tenant_of(&record, requested, named_tenant_exists)
            .map_err(|error| Refused::by(&record.id, error))?;
        let scopes = record
            .scopes
            .iter()
            .filter_map(|s| Scope::parse(s).ok())
            .collect();
        if let Some(slot) = parts.extensions.get::<access::TenantSlot>() {
            slot.set(&tenant);
        }
        Ok(Caller {
            token_id: record.id,
            tenant,
            scopes,
            secret,
        })
    }

    /// Checks the caller's token again (with the store, unless the store confirmed it within
    /// the re-check interval): for a request that has waited since it was authenticated, so
    /// that a token revoked meanwhile reads nothing more than the interval after its
    /// revocation. 401 when it has been revoked or is gone.
    pub async fn recheck(&self, state: &AppState) -> Result<(), ApiError> {
        match state.authenticator().recheck(&self.secret).await? {
            None => Err(unauthorized("unknown_token", "the token is not valid")),
            Some(token) if token.revoked_at.is_some() => {
                Err(unauthorized("revoked", "the token has been revoked"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The tenant a request with `record`'s token acts for: the token's own, or for a `*`
    /// token the one `X-Tenant-ID` (`requested`; `Some(None)` when it is not text) names.
    fn tenant_of(
        record: &sealtrail_store::TokenRecord,
        requested: Option<Option<String>>,
        named_tenant_exists: bool,
    ) -> Result<String, ApiError> {
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
        Ok(tenant)
    }
}

/// What the record of a refused request says of it: method, route, path and the address it
/// came from, with the error it was answered with and the token's id when known. Nothing of
/// the credential it presented.
pub(crate) fn refused_attempt(
    parts: &Parts,
    error: &ApiError,
    token_id: Option<String>,
) -> RefusedAttempt {
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| parts.uri.path().to_string(), |m| m.as_str().to_string());
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<wire::Peer>>()
        .map(|info| info.0.0.ip().to_canonical());
    RefusedAttempt {
        method: parts.method.as_str().to_string(),
        route,
        path: parts.uri.path().to_string(),
        status: error.status.as_u16(),
        error: error.error.to_string(),
        reason: error.rule.unwrap_or(error.error).to_string(),
        token_id,
        client,
    }
}

/// The longest request target (path and query) served, in bytes. A search with every filter
/// at its longest, percent-encoded, stays below it. hyper refuses targets from 64 KiB on by
/// itself; [`wire`] gives those refusals the JSON error shape too.
pub const MAX_URI_BYTES: usize = 48 * 1024;
/// The most request header bytes (names and values) served.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most request headers served; below hyper's own limit of 100, so that the refusal names
/// the rule here (beyond 100, [`wire`] rewrites hyper's own refusal).
pub const MAX_HEADERS: usize = 64;

/// The whole API.
///
/// Every answer that is an error has the JSON error shape ([`ApiError`]), including those
/// no handler gives: a path no route serves (404), a method its route does not (405), a
/// request target or headers over the limits (414, 431; see [`MAX_URI_BYTES`]), a body over
/// its route's limit (413, [`body`]), and requests the HTTP parser refuses before routing
/// (400, 414, 431; see [`wire`]).
pub fn router(state: AppState) -> Router {
    // Routes that read a body reserve room for it here (`body::limited`).
    let bodies = axum::Extension(state.bodies.clone());
    Router::new()
        .merge(ingest::routes())
        .merge(query::routes())
        .merge(alerts::routes())
        .merge(export::routes())
        .merge(gaps::routes())
        .merge(log::routes())
        .merge(seals::routes())
        .merge(tiles::routes())
        .merge(admin::routes())
        .merge(holds::routes())
        .merge(retention::routes())
        .merge(reports::routes())
        .merge(ops::routes())
        .merge(whoami::routes())
        .merge(console::routes())
        .fallback(unknown_route)
        // After the routes: it applies to the routes registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(bodies)
        .layer(axum::middleware::from_fn(access::log_request))
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
