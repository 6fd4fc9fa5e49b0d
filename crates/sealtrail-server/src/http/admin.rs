//! The admin API: tokens and tenants, for tokens of the `_system` tenant with the `admin`
//! scope.
//!
//! - `POST /v1/admin/tokens` creates a token (and its tenant, if new) and shows its secret
//!   once;
//! - `GET /v1/admin/tokens` lists tokens without secrets (only their hashes are stored);
//! - `DELETE /v1/admin/tokens/{id}` revokes one;
//! - `GET /v1/admin/tenants` lists tenants with their origin and log size.
//!
//! Changes go through the ledger, which appends `sealtrail.token.created`,
//! `sealtrail.token.revoked` and `sealtrail.tenant.created` to the `_system` log in the same
//! transaction as the change, with the calling token's id as the actor: every admin action is
//! itself audited, and names who did it.
//!
//! The response carrying a new secret is marked `Cache-Control: no-store`, and no secret is
//! ever logged.
//!
//! A request these routes refuse before doing anything — no token, an unknown or revoked
//! one, one without the `admin` scope or of another tenant than `_system` — is itself
//! recorded in the `_system` log as `sealtrail.admin.refused` ([`AdminCaller`], within the
//! limits of [`crate::refusals`]).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Serialize;
use utoipa::ToSchema;

use sealtrail_core::event::parse_json;

use super::body::{limited, refused};
use super::ingest::{content_type, unsupported_type};
use super::{AUTHORIZATION, ApiError, AppState, Caller, refused_attempt};
use crate::auth::{self, Scope};
use crate::ledger::SYSTEM_TENANT;
use crate::tenant::TenantName;

/// An admin request body is a few hundred bytes; refuse anything far larger unread.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/tokens",
            limited(get(list_tokens).post(create_token), MAX_ADMIN_BODY),
        )
        .route("/v1/admin/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/tenants", get(list_tenants))
}

/// Admin actions need the `admin` scope on a token of the `_system` tenant: a tenant's own
/// token must never manage other tenants, whatever scopes it was given.
fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Scope::Admin)?;
    if caller.tenant != SYSTEM_TENANT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_tenant",
            format!("admin actions need a token of the {SYSTEM_TENANT} tenant"),
        )
        .at(AUTHORIZATION, "tenant"));
    }
    Ok(())
}

/// The caller of an admin route: an admin token of the `_system` tenant. Every refusal
/// (401 for a missing, unknown or revoked token; 400, 403 or 404 for anything else that keeps
/// the caller out) is recorded in the `_system` log before it is answered.
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<AdminCaller, ApiError> {
        let (error, token_id) = match Caller::authenticate(parts, state).await {
            Ok(caller) => match require_admin(&caller) {
                Ok(()) => return Ok(AdminCaller(caller)),
                Err(error) => (error, Some(caller.token_id)),
            },
            Err(refused) => (refused.error, refused.token_id),
        };
        state
            .refusals
            .record(refused_attempt(parts, &error, token_id))
            .await;
        Err(error)
    }
}

/// A request field that breaks a rule: 422 naming the field and the rule.
fn invalid(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).at(field, rule)
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, ToSchema)]
pub struct CreateTokenRequest {
    /// The tenant the token is bound to (created if new), or `*` for a multi-tenant token
    /// that names the tenant of each request in `X-Tenant-ID`.
    #[schema(example = "acme")]
    pub tenant: String,
    /// At least one of `events:write`, `events:read`, `log:read`, `verify`, `reports`,
    /// `admin`; `admin` only for the `_system` tenant, `events:write` never for it.
    #[schema(example = json!(["events:write"]))]
    pub scopes: Vec<String>,
}

impl CreateTokenRequest {
    /// Reads and checks the body field by field (rather than with serde's derive) so that
    /// every error names the field at fault and the rule it breaks.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<CreateTokenRequest, ApiError> {
        let kind = content_type(headers);
        if kind.as_deref() != Some("application/json") {
            return Err(unsupported_type(kind, "application/json"));
        }
        // The events' JSON reader: it also refuses duplicate keys, which would otherwise let
        // `{"tenant": "a", "tenant": "b"}` mean whichever one a parser keeps.
        let value = parse_json(body).map_err(|error| {
            let mut error = ApiError::from(error);
            if error.status == StatusCode::UNPROCESSABLE_ENTITY {
                error.error = "invalid_request";
            }
            error
        })?;
        let serde_json::Value::Object(fields) = value else {
            return Err(invalid(
                "",
                "type",
                "the body must be an object with tenant and scopes",
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "tenant" && *k != "scopes") {
            return Err(invalid(
                unknown,
                "unknown_field",
                format!("unknown field {unknown:?}; the fields are tenant and scopes"),
            ));
        }
        let tenant = match fields.get("tenant") {
            None | Some(serde_json::Value::Null) => {
                return Err(invalid("tenant", "required", "tenant is required"));
            }
            Some(serde_json::Value::String(tenant)) => tenant.clone(),
            Some(_) => return Err(invalid("tenant", "type", "tenant must be a string")),
        };
        if tenant != auth::ANY_TENANT {
            TenantName::parse(&tenant).map_err(|e| invalid("tenant", "format", e.to_string()))?;
        }
        let items = match fields.get("scopes") {
            None | Some(serde_json::Value::Null) => {
                return Err(invalid("scopes", "required", "scopes is required"));
            }
            Some(serde_json::Value::Array(items)) => items,
            Some(_) => {
                return Err(invalid(
                    "scopes",
                    "type",
                    "scopes must be an array of strings",
                ));
            }
        };
        if items.is_empty() {
            return Err(invalid(
                "scopes",
                "required",
                "a token needs at least one scope",
            ));
        }
        let mut scopes: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let field = format!("scopes[{index}]");
            let text = item
                .as_str()
                .ok_or_else(|| invalid(&field, "type", "a scope must be a string"))?;
            let scope = Scope::parse(text).map_err(|e| invalid(&field, "enum", e.to_string()))?;
            if scope == Scope::Admin && tenant != SYSTEM_TENANT {
                return Err(invalid(
                    &field,
                    "admin_scope",
                    format!("the admin scope is only for tokens of the {SYSTEM_TENANT} tenant"),
                ));
            }
            // The _system log holds sealtrail's own records of admin actions; an event
            // written there by a producer could pass for one.
            if scope == Scope::EventsWrite && tenant == SYSTEM_TENANT {
                return Err(invalid(
                    &field,
                    "reserved",
                    format!(
                        "the {SYSTEM_TENANT} log records admin actions only; it takes no events"
                    ),
                ));
            }
            // A repeated scope grants nothing more; keep the first.
            if !scopes.iter().any(|s| s == text) {
                scopes.push(text.to_string());
            }
        }
        Ok(CreateTokenRequest { tenant, scopes })
    }
}

/// A token just created. `token` is the secret: shown here once, stored only as a hash.
/// Deliberately not `Debug`, so that it cannot end up in a log line.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[schema(example = "tok_5f0c2a9d1e7b3c48")]
    pub id: String,
    /// The bearer secret; it cannot be shown again.
    #[schema(example = "st_…")]
    pub token: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    /// True when this request created the tenant.
    pub tenant_created: bool,
}

/// Create a token (and its tenant, if new). The secret is shown once.
#[utoipa::path(
    post, path = "/v1/admin/tokens", tag = "admin",
    request_body(content = CreateTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `token` is the secret, shown only here", body = CreatedToken),
        (status = 400, description = "Malformed JSON", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "A field breaks a rule; `field` and `rule` say which", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_token(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| refused(rejection, MAX_ADMIN_BODY))?;
    let request = CreateTokenRequest::parse(&headers, &body)?;
    let created = state
        .ledger
        .create_token(&request.tenant, request.scopes, &caller.token_id)
        .await?;
    tracing::info!(
        actor = %caller.token_id,
        token = %created.id,
        tenant = %created.tenant,
        "token created"
    );
    let body = CreatedToken {
        id: created.id,
        token: created.token,
        tenant: created.tenant,
        scopes: created.scopes,
        tenant_created: created.tenant_created,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    /// The tenant it is bound to, or `*`.
    pub tenant: String,
    pub scopes: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When it was revoked; null while it is active.
    pub revoked_at: Option<String>,
}

/// `GET /v1/admin/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Every token, active and revoked, oldest first.
    pub tokens: Vec<TokenInfo>,
}

/// List tokens, active and revoked, without their secrets.
#[utoipa::path(
    get, path = "/v1/admin/tokens", tag = "admin",
    responses(
        (status = 200, description = "Every token", body = TokenList),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_tokens(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
) -> Result<Json<TokenList>, ApiError> {
    let records = state.directory().tokens().await?;
    let tokens = records
        .into_iter()
        .map(|record| TokenInfo {
            id: record.id,
            tenant: record.tenant,
            scopes: record.scopes,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// Revoke a token; requests with it fail with 401 from then on.
#[utoipa::path(
    delete, path = "/v1/admin/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "The token's id (`tok_…`), not its secret")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such token, or already revoked", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn revoke_token(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.ledger.revoke_token(&id, &caller.token_id).await? {
        return Err(ApiError::not_found(format!(
            "no active token {id:?}; see GET /v1/admin/tokens"
        ))
        .at("id", "unknown_token"));
    }
    // Effective at once on this instance (others re-check within `token_recheck_ms`).
    state.tokens.forget_all();
    tracing::info!(actor = %caller.token_id, token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant and its log.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    #[schema(example = "acme")]
    pub name: String,
    /// The origin line of its checkpoints, which is also its signing key's name.
    #[schema(example = "sealtrail.local/acme")]
    pub origin: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Entries in its log.
    pub size: u64,
    /// The tree size of its latest signed checkpoint; null before the first.
    pub checkpoint_size: Option<u64>,
}

/// `GET /v1/admin/tenants`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// Every tenant, by name; `_system` holds the log of admin actions.
    pub tenants: Vec<TenantInfo>,
}

/// List tenants with their origin and log size.
#[utoipa::path(
    get, path = "/v1/admin/tenants", tag = "admin",
    responses(
        (status = 200, description = "Every tenant", body = TenantList),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_tenants(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
) -> Result<Json<TenantList>, ApiError> {
    let tenants = state
        .directory()
        .tenants()
        .await?
        .into_iter()
        .map(|tenant| TenantInfo {
            name: tenant.name,
            origin: tenant.origin,
            created_at: tenant.created_at,
            size: tenant.size,
            checkpoint_size: tenant.checkpoint_size,
        })
        .collect();
    Ok(Json(TenantList { tenants }))
}
