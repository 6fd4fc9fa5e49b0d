//! The admin API of legal holds (`crate::holds`), for admin tokens of the `_system` tenant,
//! as the other admin routes ([`super::admin::AdminCaller`], refusals recorded):
//!
//! - `GET /v1/admin/holds[?tenant=T]` lists them, in force and released;
//! - `POST /v1/admin/holds` `{"tenant", "from"?, "to"?, "reason"}` places one (201);
//! - `POST /v1/admin/holds/{id}/release` `{"reason"}` releases one (404 unknown, 409 released).
//!
//! Each change is one append of its record to the `_system` log, the token's id as actor.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sealtrail_core::event::parse_json;
use serde::{Deserialize, Serialize};

use super::admin::AdminCaller;
use super::body::{limited, refused};
use super::error::bad_param;
use super::ingest::{content_type, unsupported_type};
use super::{ApiError, AppState};
use crate::holds::{self, Hold, HoldRefusal};
use crate::ledger::{Outcome, SYSTEM_TENANT, Submission};
use crate::query::QueryError;

const MAX_BODY: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/holds", limited(get(list).post(add), MAX_BODY))
        .route(
            "/v1/admin/holds/{id}/release",
            limited(post(release), MAX_BODY),
        )
}

/// The holds, in the order they were placed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldList {
    holds: Vec<Hold>,
}

/// `POST /v1/admin/holds` body.
#[derive(utoipa::ToSchema)]
pub struct AddHoldRequest {
    /// The tenant whose log is held (not `_system`).
    #[schema(example = "acme")]
    pub tenant: String,
    /// Hold only entries received from this time on (RFC 3339).
    pub from: Option<String>,
    /// Hold only entries received before this time (RFC 3339).
    pub to: Option<String>,
    /// Why (a matter, a request, a regulation); at most 4096 characters.
    #[schema(example = "litigation hold, matter 2026-117")]
    pub reason: String,
}

/// `POST /v1/admin/holds/{id}/release` body.
#[derive(utoipa::ToSchema)]
pub struct ReleaseHoldRequest {
    /// Why the hold is released; at most 4096 characters.
    #[schema(example = "matter 2026-117 closed")]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
struct ListParams {
    tenant: Option<String>,
}

fn invalid(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).at(field, rule)
}

fn refusal(r: HoldRefusal) -> ApiError {
    invalid(r.field, r.rule, r.message)
}

/// The body's fields, each a string or absent, refusing any other field.
fn fields(
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let kind = content_type(headers);
    if kind.as_deref() != Some("application/json") {
        return Err(unsupported_type(kind, "application/json"));
    }
    let value = parse_json(body).map_err(ApiError::from)?;
    let serde_json::Value::Object(fields) = value else {
        return Err(invalid("", "type", "the body must be a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            "unknown_field",
            format!(
                "unknown field {unknown:?}; the fields are {}",
                allowed.join(", ")
            ),
        ));
    }
    for (name, value) in &fields {
        if !(value.is_string() || value.is_null()) {
            return Err(invalid(name, "type", format!("{name} must be a string")));
        }
    }
    Ok(fields)
}

fn text<'a>(fields: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(serde_json::Value::as_str)
}

async fn all(state: &AppState) -> Result<Vec<Hold>, ApiError> {
    Ok(state
        .readers
        .control(|log| Ok::<_, QueryError>(holds::holds(log)?))
        .await?)
}

async fn append(state: &AppState, event: sealtrail_core::event::Event) -> Result<(), ApiError> {
    let outcome = state
        .ledger
        .append(
            SYSTEM_TENANT,
            vec![Submission {
                event,
                idempotency_key: None,
            }],
        )
        .await?;
    match outcome.into_iter().next() {
        Some(Outcome::Created(_)) => Ok(()),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the hold's record was not appended: {other:?}"),
        )),
    }
}

/// The legal holds, in force and released (optionally one tenant's).
#[utoipa::path(
    get, path = "/v1/admin/holds", tag = "admin",
    params(("tenant" = Option<String>, Query, description = "Only this tenant's holds")),
    responses(
        (status = 200, description = "The holds", body = HoldList),
        (status = 400, description = "An unreadable query string", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<HoldList>, ApiError> {
    let Query(params) = params.map_err(|r| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {}", r.body_text()),
        )
    })?;
    let holds = all(&state)
        .await?
        .into_iter()
        .filter(|h| params.tenant.as_ref().is_none_or(|t| &h.tenant == t))
        .collect();
    Ok(Json(HoldList { holds }))
}

/// Places a legal hold on a tenant's log (or a window of it), recorded in the _system log:
/// nothing it covers is pruned until it is released.
#[utoipa::path(
    post, path = "/v1/admin/holds", tag = "admin",
    request_body = AddHoldRequest,
    responses(
        (status = 201, description = "The hold placed", body = Hold),
        (status = 400, description = "A body that is not JSON", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "A field missing or breaking its rule (`field`, `rule`): the _system tenant, an empty reason, a time that is not RFC 3339, from not before to, an unknown field", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn add(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| refused(rejection, MAX_BODY))?;
    let fields = fields(&headers, &body, &["tenant", "from", "to", "reason"])?;
    let tenant = text(&fields, "tenant")
        .ok_or_else(|| invalid("tenant", "required", "tenant is required"))?
        .to_string();
    let reason = text(&fields, "reason").unwrap_or_default().to_string();
    let event = holds::added_event(
        &tenant,
        text(&fields, "from"),
        text(&fields, "to"),
        &reason,
        &caller.token_id,
    )
    .map_err(refusal)?;
    let known = {
        let tenant = tenant.clone();
        state
            .readers
            .control(move |log| Ok::<_, QueryError>(log.tenant(&tenant)?.is_some()))
            .await?
    };
    if !known {
        return Err(ApiError::not_found(format!("no tenant {tenant:?}")));
    }
    append(&state, event).await?;
    // The newest hold of the tenant with this reason is the one just placed.
    let hold = all(&state)
        .await?
        .into_iter()
        .rev()
        .find(|h| h.tenant == tenant && h.added_by == caller.token_id);
    tracing::info!(actor = %caller.token_id, tenant = %tenant, "legal hold placed");
    Ok((StatusCode::CREATED, Json(hold)).into_response())
}

/// Releases a legal hold, recorded in the _system log.
#[utoipa::path(
    post, path = "/v1/admin/holds/{id}/release", tag = "admin",
    params(("id" = String, Path, description = "The hold's id")),
    request_body = ReleaseHoldRequest,
    responses(
        (status = 200, description = "The hold, released", body = Hold),
        (status = 400, description = "A body that is not JSON", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such hold", body = super::error::ApiErrorBody),
        (status = 409, description = "Released already", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "An empty reason, or an unknown field (`field`, `rule`)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn release(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Hold>, ApiError> {
    let body = body.map_err(|rejection| refused(rejection, MAX_BODY))?;
    let fields = fields(&headers, &body, &["reason"])?;
    let reason = text(&fields, "reason").unwrap_or_default().to_string();
    let Some(hold) = all(&state).await?.into_iter().find(|h| h.id == id) else {
        return Err(ApiError::not_found(format!("no hold {id:?}")));
    };
    if let Some(released) = &hold.released {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "hold {id} was released already, at {} by {}",
                released.at, released.by
            ),
        ));
    }
    let event = holds::released_event(&hold, &reason, &caller.token_id).map_err(refusal)?;
    append(&state, event).await?;
    tracing::info!(actor = %caller.token_id, hold = %id, "legal hold released");
    let released = all(&state)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .unwrap_or(hold);
    Ok(Json(released))
}
