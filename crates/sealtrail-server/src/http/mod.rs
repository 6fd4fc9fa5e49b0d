//! The HTTP API: shared state, authentication, the router assembled from one module per area,
//! and [`error`], the one place errors become status codes. Handlers extract and check what a
//! request says, call a service (`crate::ingest`, `crate::query`, `crate::verify`,
//! `crate::health`) and shape its answer; the work itself is the services'.
//!
//! **Architecture invariant:** every handler that touches tenant data gets its tenant from
//! [`Caller`], which derives it from the token (and `X-Tenant-ID` only for multi-tenant
//! tokens). No handler reads a tenant from the path or the body on its own.

pub mod admin;
pub mod error;
pub mod ingest;
pub mod log;
pub mod ops;
pub mod query;
pub mod tiles;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

pub use self::error::ApiError;
use crate::auth::{self, Scope};
use crate::config::Resolved;
use crate::health::HealthCheck;
use crate::ingest::Ingest;
use crate::ledger::Ledger;
use crate::query::Queries;
pub use crate::readers::{MAX_READERS, Readers};
use crate::tenant::TenantName;
use crate::verify::{LogVerifier, VerificationBoard};
use sealtrail_store::TokenRecord;

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
}

/// Tokens most recently found in the store, by secret hash, with when the store said so.
///
/// - A token the store confirmed less than [`TOKEN_RECHECK`] ago is taken without asking it
///   again: a store read on the blocking pool for every request was the largest single cost of
///   single-event ingest. A token revoked through this instance's API stops working at once
///   (the cache is cleared); one revoked elsewhere (the CLI, another instance) within
///   [`TOKEN_RECHECK`].
/// - While a PostgreSQL store is unreachable, a token is taken as the store last described it,
///   so that producers can still send events to the spool. A token revoked through another
///   instance during the outage is honoured until the store answers again.
#[derive(Clone, Default)]
pub struct TokenCache {
    known: Arc<Mutex<std::collections::HashMap<[u8; 32], Confirmed>>>,
}

/// A token as the store described it, and when.
type Confirmed = (sealtrail_store::TokenRecord, Instant);

/// How long a token the store confirmed is trusted without asking it again.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// Tokens kept at most; the cache starts over beyond it.
const TOKEN_CACHE_LIMIT: usize = 10_000;

impl TokenCache {
    fn remember(&self, hash: [u8; 32], record: Option<&sealtrail_store::TokenRecord>) {
        let mut known = self.known.lock().expect("token cache lock");
        match record {
            Some(record) => {
                if known.len() >= TOKEN_CACHE_LIMIT && !known.contains_key(&hash) {
                    known.clear();
                }
                known.insert(hash, (record.clone(), Instant::now()));
            }
            None => {
                known.remove(&hash);
            }
        }
    }

    /// The token as the store last described it, however long ago.
    fn recall(&self, hash: &[u8; 32]) -> Option<sealtrail_store::TokenRecord> {
        self.known
            .lock()
            .expect("token cache lock")
            .get(hash)
            .map(|(record, _)| record.clone())
    }

    /// The token, if the store confirmed it within [`TOKEN_RECHECK`].
    fn fresh(&self, hash: &[u8; 32]) -> Option<sealtrail_store::TokenRecord> {
        self.known
            .lock()
            .expect("token cache lock")
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_RECHECK)
            .map(|(record, _)| record.clone())
    }

    /// Forgets every token: after a revocation, so that it takes effect at once here.
    pub fn forget_all(&self) {
        self.known.lock().expect("token cache lock").clear();
    }
}

impl Readers {
    /// [`Readers::read`] for a handler: a failure is already the [`ApiError`] to answer with.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn sealtrail_store::Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.read(f).await
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

/// What the store says about a request's credentials, read in one go.
struct Credentials {
    token: Option<TokenRecord>,
    /// Whether the tenant named in `X-Tenant-ID` exists; asked only for multi-tenant tokens.
    named_tenant_exists: bool,
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
        let hash = auth::secret_hash(&secret);
        let named = requested.clone().flatten();
        // A token confirmed a moment ago, for its own tenant or one this instance knows.
        let recent = state.tokens.fresh(&hash).filter(|token| {
            token.tenant != auth::ANY_TENANT
                || named
                    .as_deref()
                    .is_none_or(|name| state.ledger.head(name).is_some())
        });
        let from_cache = recent.is_some();
        let looked_up = match recent {
            Some(token) => Ok(Credentials {
                named_tenant_exists: token.tenant == auth::ANY_TENANT && named.is_some(),
                token: Some(token),
            }),
            None => {
                state
                    .readers
                    .with(move |conn| {
                        let token = conn.token_by_secret(&hash)?;
                        let multi_tenant =
                            token.as_ref().is_some_and(|t| t.tenant == auth::ANY_TENANT);
                        let named_tenant_exists = match named {
                            Some(name) if multi_tenant && TenantName::parse(&name).is_ok() => {
                                conn.tenant(&name)?.is_some()
                            }
                            _ => false,
                        };
                        Ok(Credentials {
                            token,
                            named_tenant_exists,
                        })
                    })
                    .await
            }
        };
        let Credentials {
            token,
            named_tenant_exists,
        } = match looked_up {
            // Not remembered again: it must be confirmed by the store within TOKEN_RECHECK.
            Ok(credentials) if from_cache => credentials,
            Ok(credentials) => {
                state.tokens.remember(hash, credentials.token.as_ref());
                credentials
            }
            // The store is unreachable (events may be spooling): the token as the store last
            // described it, and the tenants this instance knows to exist.
            Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE => {
                let Some(token) = state.tokens.recall(&hash) else {
                    return Err(error);
                };
                let named_tenant_exists = requested
                    .clone()
                    .flatten()
                    .is_some_and(|name| state.ledger.head(&name).is_some());
                Credentials {
                    token: Some(token),
                    named_tenant_exists,
                }
            }
            Err(error) => return Err(error),
        };
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

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ingest::routes())
        .merge(query::routes())
        .merge(log::routes())
        .merge(tiles::routes())
        .merge(admin::routes())
        .merge(ops::routes())
        .with_state(state)
}
