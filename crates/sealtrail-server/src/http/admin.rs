//! The admin API: tokens and tenants, for tokens of the `_system` tenant with the `admin`
//! scope.
//!
//! - `POST /v1/admin/tokens` creates a token (and its tenant, if new) and shows its secret
//!   once;
//! - `GET /v1/admin/tokens` lists tokens without secrets (only their hashes are stored);
//! - `DELETE /v1/admin/tokens/{id}` revokes one;
//! - `GET /v1/admin/tenants` lists tenants with their origin, log size, freeze and the events
//!   this instance holds for them while they are frozen (`on_frozen = "spool"`);
//! - `POST /v1/admin/tenants/{tenant}/freeze` and `…/unfreeze` stop and resume a tenant's
//!   ingest (see [`crate::freeze`]); the change takes effect on this instance at once, and an
//!   unfreeze starts the drain of the tenant's held events into its log.
//!
//! Changes go through the ledger, which appends `sealtrail.token.created`,
//! `sealtrail.token.revoked`, `sealtrail.tenant.created`, `sealtrail.tenant.frozen` and
//! `sealtrail.tenant.unfrozen` to the `_system` log in the same transaction as the change,
//! with the calling token's id as the actor: every admin action is itself audited, and names
//! who did it.
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
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use utoipa::ToSchema;

use sealtrail_core::event::parse_json;

use super::body::{limited, refused};
use super::ingest::{content_type, unsupported_type};
use super::{AUTHORIZATION, ApiError, AppState, Caller, refused_attempt};
use crate::auth::{self, Scope};
use crate::freeze::{self, Freeze};
use crate::ledger::{FreezeChange, LedgerError, Refusal, SYSTEM_TENANT};
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
        .route(
            "/v1/admin/tenants/{tenant}/freeze",
            limited(post(freeze_tenant), MAX_ADMIN_BODY),
        )
        .route(
            "/v1/admin/tenants/{tenant}/unfreeze",
            limited(post(unfreeze_tenant), MAX_ADMIN_BODY),
        )
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

/// An admin request's body as JSON, read with the events' JSON reader: it also refuses
/// duplicate keys, which would otherwise let `{"tenant": "a", "tenant": "b"}` mean whichever
/// one a parser keeps.
fn parse_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    parse_json(body).map_err(|error| {
        let mut error = ApiError::from(error);
        if error.status == StatusCode::UNPROCESSABLE_ENTITY {
            error.error = "invalid_request";
        }
        error
    })
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
        let value = parse_body(body)?;
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
    /// Whether its ingest is frozen (POST /v1/admin/tenants/{tenant}/freeze).
    pub frozen: bool,
    /// Why, when and by whom it was frozen; null while it is not.
    pub freeze: Option<FreezeInfo>,
    /// Events this instance holds for it (`on_frozen = "spool"`), accepted with `202 held`
    /// while it was frozen and not yet in its log; they enter it, in order, once it is
    /// unfrozen. Other instances sharing a PostgreSQL database count their own.
    pub held: u64,
}

/// `GET /v1/admin/tenants`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// Every tenant, by name; `_system` holds the log of admin actions.
    pub tenants: Vec<TenantInfo>,
}

/// List tenants with their origin, log size and freeze.
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
            held: state.ledger.held(&tenant.name),
            name: tenant.name,
            origin: tenant.origin,
            created_at: tenant.created_at,
            size: tenant.size,
            checkpoint_size: tenant.checkpoint_size,
            frozen: tenant.freeze.is_some(),
            freeze: tenant.freeze.map(FreezeInfo::from),
        })
        .collect();
    Ok(Json(TenantList { tenants }))
}

/// `POST /v1/admin/tenants/{tenant}/freeze` and `…/unfreeze` body.
#[derive(Debug, ToSchema)]
pub struct FreezeRequest {
    /// Why: recorded in the `_system` log (`details.reason`) and, for a freeze, shown to the
    /// tenant's producers in every refusal. At least one character other than a space, tab,
    /// CR or LF; at most 4096 characters; no U+0000.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\r ][^\\x00]*$",
        example = "chain violation at seq 41 under investigation (INC-1234)"
    )]
    pub reason: String,
}

impl FreezeRequest {
    /// Reads and checks the body field by field, naming the field and rule of any fault.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<FreezeRequest, ApiError> {
        let kind = content_type(headers);
        if kind.as_deref() != Some("application/json") {
            return Err(unsupported_type(kind, "application/json"));
        }
        let serde_json::Value::Object(fields) = parse_body(body)? else {
            return Err(invalid(
                "",
                "type",
                "the body must be an object with a reason",
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "reason") {
            return Err(invalid(
                unknown,
                "unknown_field",
                format!("unknown field {unknown:?}; the only field is reason"),
            ));
        }
        let reason = match fields.get("reason") {
            None | Some(serde_json::Value::Null) => {
                return Err(invalid(
                    "reason",
                    "required",
                    freeze::ReasonError::Missing.to_string(),
                ));
            }
            Some(serde_json::Value::String(reason)) => reason.clone(),
            Some(_) => return Err(invalid("reason", "type", "reason must be a string")),
        };
        freeze::check_reason(&reason)
            .map_err(|error| invalid("reason", error.rule(), error.to_string()))?;
        Ok(FreezeRequest { reason })
    }
}

/// A freeze: why, when and by whom.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeInfo {
    /// The reason given.
    pub reason: String,
    /// When the tenant was frozen, RFC 3339 UTC.
    pub at: String,
    /// Who froze it: an admin token's id, or `cli:<user>` for `sealtrail freeze`.
    #[schema(example = "tok_5f0c2a9d1e7b3c48")]
    pub actor: String,
}

impl From<Freeze> for FreezeInfo {
    fn from(freeze: Freeze) -> FreezeInfo {
        FreezeInfo {
            reason: freeze.reason,
            at: freeze.at,
            actor: freeze.actor,
        }
    }
}

/// A tenant's freeze after a freeze or unfreeze.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantFreeze {
    #[schema(example = "acme")]
    pub tenant: String,
    /// Whether its ingest is frozen now.
    pub frozen: bool,
    /// Whether this request changed that (and appended `sealtrail.tenant.frozen` or
    /// `sealtrail.tenant.unfrozen` to the `_system` log); false when the tenant already was
    /// as asked, in which case nothing was recorded and a standing freeze keeps its reason.
    pub changed: bool,
    /// The freeze standing now; null once unfrozen.
    pub freeze: Option<FreezeInfo>,
    /// Events this instance still held for the tenant (`on_frozen = "spool"`) when it
    /// answered. After an unfreeze they are draining into its log, in order, as this answer
    /// is sent, so the count may already be lower; `GET /v1/admin/tenants` shows how many are
    /// left.
    pub held: u64,
}

impl TenantFreeze {
    fn new(change: FreezeChange, held: u64) -> TenantFreeze {
        TenantFreeze {
            tenant: change.tenant,
            frozen: change.standing.is_some(),
            changed: change.changed,
            freeze: change.standing.map(FreezeInfo::from),
            held,
        }
    }
}

/// Stop a tenant's ingest: from now on its producers get 503 `tenant_frozen` (naming the
/// reason) and nothing they send is kept, until it is unfrozen — or, with `on_frozen =
/// "spool"`, 202 `held`: their events are kept outside the log and enter it, in order, once
/// it is unfrozen. Reads, proofs and verification of its log go on. Effective at once on this instance, and on every other
/// instance and the CLI's store within `token_recheck_ms` (1 s by default).
#[utoipa::path(
    post, path = "/v1/admin/tenants/{tenant}/freeze", tag = "admin",
    params(("tenant" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
        description = "The tenant: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit (`_system` cannot be frozen)")),
    request_body(content = FreezeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Frozen; `changed` is false when it already was (the standing freeze is kept, nothing is recorded)", body = TenantFreeze),
        (status = 400, description = "Malformed JSON, not a tenant name, or `_system` (`rule: reserved`)", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "The body breaks a rule; `field` and `rule` say which", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn freeze_tenant(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TenantFreeze>, ApiError> {
    set_frozen(&state, &caller, tenant, true, &headers, body).await
}

/// Resume a tenant's ingest after a freeze. Effective at once on this instance, and on every
/// other instance within `token_recheck_ms` (1 s by default); each instance then drains the
/// events it held for the tenant into its log, in the order they were accepted, before the
/// tenant's newer events.
#[utoipa::path(
    post, path = "/v1/admin/tenants/{tenant}/unfreeze", tag = "admin",
    params(("tenant" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
        description = "The tenant: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit (`_system` is never frozen)")),
    request_body(content = FreezeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Not frozen any more; `changed` is false when it was not frozen (nothing is recorded)", body = TenantFreeze),
        (status = 400, description = "Malformed JSON, not a tenant name, or `_system` (`rule: reserved`)", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "The body breaks a rule; `field` and `rule` say which", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn unfreeze_tenant(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TenantFreeze>, ApiError> {
    set_frozen(&state, &caller, tenant, false, &headers, body).await
}

/// Freezes (`frozen`) or unfreezes the tenant the path names, through the ledger, and tells
/// this instance's copy of the frozen tenants at once.
async fn set_frozen(
    state: &AppState,
    caller: &Caller,
    tenant: Result<Path<String>, PathRejection>,
    frozen: bool,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TenantFreeze>, ApiError> {
    let Path(tenant) = tenant.map_err(|e| {
        ApiError::bad_request(format!("the path cannot be read: {}", e.body_text()))
            .at("path", "format")
    })?;
    TenantName::parse(&tenant)
        .map_err(|error| ApiError::bad_request(error.to_string()).at("tenant", "format"))?;
    if tenant == SYSTEM_TENANT {
        return Err(
            ApiError::bad_request(Refusal::SystemTenantFrozen.to_string()).at("tenant", "reserved"),
        );
    }
    let body = body.map_err(|rejection| refused(rejection, MAX_ADMIN_BODY))?;
    let request = FreezeRequest::parse(headers, &body)?;
    let result = if frozen {
        state
            .ledger
            .freeze(&tenant, &request.reason, &caller.token_id)
            .await
    } else {
        state
            .ledger
            .unfreeze(&tenant, &request.reason, &caller.token_id)
            .await
    };
    let change = result.map_err(|error| match error {
        LedgerError::Invalid(Refusal::UnknownTenant(_)) => ApiError::not_found(format!(
            "there is no tenant {tenant:?}; see GET /v1/admin/tenants"
        ))
        .at("tenant", "unknown_tenant"),
        other => other.into(),
    })?;
    state.freezes.note(&tenant, change.standing.clone());
    let action = if frozen { "frozen" } else { "unfrozen" };
    tracing::info!(
        actor = %caller.token_id,
        %tenant,
        changed = change.changed,
        reason = %request.reason,
        "tenant {action}"
    );
    let held = state.ledger.held(&tenant);
    Ok(Json(TenantFreeze::new(change, held)))
}
