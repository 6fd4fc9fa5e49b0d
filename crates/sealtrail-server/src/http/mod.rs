//! The HTTP API: shared state, authentication, the one place errors become status codes, and
//! the router assembled from one module per area.
//!
//! **Architecture invariant:** every handler that touches tenant data gets its tenant from
//! [`Caller`], which derives it from the token (and `X-Tenant-ID` only for multi-tenant
//! tokens). No handler reads a tenant from the path or the body on its own.

pub mod admin;
pub mod ingest;
pub mod log;
pub mod ops;
pub mod query;
pub mod tiles;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::{self, Scope};
use crate::config::Resolved;
use crate::ledger::{Ledger, LedgerError};
use crate::tenant::TenantName;
use sealtrail_store::{Location, Store, StoreError, TokenRecord};

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub readers: Readers,
    pub settings: Arc<Resolved>,
    pub tokens: TokenCache,
    /// The upper levels of every log's stored-hash array, for the proof routes.
    pub tree_cache: crate::tree_cache::TreeCache,
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

/// Read connections open at once per process, at most: enough to keep both cores busy with
/// reads, and few enough that several instances stay well inside PostgreSQL's default
/// `max_connections` (100).
pub const MAX_READERS: usize = 16;

/// A small pool of read connections to the store; reads never wait for the writer.
#[derive(Clone)]
pub struct Readers {
    location: Location,
    idle: Arc<Mutex<Vec<Box<dyn Store>>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub fn new(location: Location) -> Readers {
        Readers {
            location,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let readers = self.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the reader pool is closed"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match readers.idle.lock().expect("readers lock").pop() {
                Some(conn) => conn,
                None => readers.location.open_reader().map_err(ApiError::from)?,
            };
            let result = f(conn.as_ref());
            // A connection that failed may be broken (a database restart): open a new one
            // next time rather than pool it.
            let failed = matches!(&result, Err(e) if e.status.is_server_error());
            if !failed {
                readers.idle.lock().expect("readers lock").push(conn);
            }
            result
        })
        .await
        .map_err(|e| ApiError::internal(format!("reader task failed: {e}")))?
    }
}

/// An error as the API reports it: a status and `{"error": code, "message", "field"?, "rule"?}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
            field: None,
            rule: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error, naming the part of the request at fault (a JSON path, a parameter or a
    /// header) and the rule it broke, so that a client can act on it without reading prose.
    pub fn at(mut self, field: &str, rule: &'static str) -> ApiError {
        self.field = Some(field.to_string());
        self.rule = Some(rule);
        self
    }

    /// A field of the request that breaks a rule.
    pub fn invalid(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "invalid_event",
            message: message.into(),
            field: Some(field.to_string()),
            rule: Some(rule),
        }
    }
}

impl From<sealtrail_core::event::EventError> for ApiError {
    fn from(error: sealtrail_core::event::EventError) -> ApiError {
        let code = error.rule.code();
        let status = match code {
            "syntax" => StatusCode::BAD_REQUEST,
            "max_size" => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError {
            status,
            error: if status == StatusCode::BAD_REQUEST {
                "malformed_json"
            } else {
                "invalid_event"
            },
            message: error.message.clone(),
            field: Some(error.field.clone()),
            rule: Some(code),
        }
    }
}

impl ApiError {
    /// 507: the store's disk is full, so nothing was committed. Distinct from a 503 because
    /// what cures it is freeing space, not waiting for the store to come back.
    fn storage_full() -> ApiError {
        ApiError {
            rule: Some("storage_full"),
            ..ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "nothing was committed: the store's disk is full; free space there and retry with the same Idempotency-Key (no restart needed)",
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "store error");
        if let StoreError::Full(_) = error {
            return ApiError::storage_full();
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the store cannot serve this request: {error}"),
        )
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            LedgerError::Invalid(refusal) => ApiError::bad_request(refusal.to_string()),
            LedgerError::Internal(fault) => {
                tracing::error!(error = %fault, "ledger fault");
                ApiError::internal(format!("the server failed: {fault}"))
            }
            LedgerError::Spool(crate::spool::SpoolError::DiskFull { .. }) => {
                tracing::error!(%error, "cannot spool");
                ApiError {
                    rule: Some("storage_full"),
                    ..ApiError::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "storage_full",
                        format!(
                            "nothing was kept: the store is unreachable and {error}; free space, then retry with the same Idempotency-Key"
                        ),
                    )
                }
            }
            LedgerError::Spool(spool_error) => {
                tracing::error!(error = %spool_error, "cannot spool");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!(
                        "nothing was kept: the store is unreachable and {spool_error}; retry with the same Idempotency-Key"
                    ),
                )
            }
            LedgerError::StorageFull(_) | LedgerError::Store(StoreError::Full(_)) => {
                tracing::error!(%error, "ledger error");
                ApiError::storage_full()
            }
            other => {
                tracing::error!(error = %other, "ledger error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_durable",
                    format!("nothing was committed: {other}; retry with the same Idempotency-Key"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
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
