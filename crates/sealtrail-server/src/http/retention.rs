//! The admin API of retention (`crate::retention`), for admin tokens of the `_system` tenant,
//! as the other admin routes ([`super::admin::AdminCaller`], refusals recorded):
//!
//! - `GET /v1/admin/tenants/{tenant}/retention`: the period in force and where it is set,
//!   how far the log is pruned and the archive watermark;
//! - `PUT /v1/admin/tenants/{tenant}/retention` `{"days": N}` sets the tenant's period (1 to
//!   36500 days), before any configured one; `{"days": null}` removes it, so the
//!   configuration's applies again. The writer changes the `retention_periods` row in the same
//!   transaction as `sealtrail.retention.period_set` in the `_system` log, the token's id as
//!   actor; the schedule applies it from its next round;
//! - `GET /v1/admin/tenants/{tenant}/retention/report[?format=json|md]`: the compliance
//!   report, its pruned range compared with the server's archive when `archive_to` is set.
//!
//! `_system` has no period (it is never pruned): its routes answer 400, `rule: reserved`, as
//! the freeze routes do.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealtrail_core::event::parse_json;
use serde::Serialize;

use super::admin::AdminCaller;
use super::body::{limited, refused};
use super::error::bad_param;
use super::ingest::{content_type, unsupported_type};
use super::{ApiError, AppState};
use crate::config::RETENTION_BOUND;
use crate::ledger::{LedgerError, Refusal, SYSTEM_TENANT};
use crate::retention::{ComplianceReport, Period, TenantRetention, Watermark};
use crate::tenant::TenantName;

/// A body of this route is a dozen bytes; refuse anything far larger unread.
const MAX_BODY: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/tenants/{tenant}/retention",
            limited(get(show).put(set), MAX_BODY),
        )
        .route("/v1/admin/tenants/{tenant}/retention/report", get(report))
}

/// `PUT /v1/admin/tenants/{tenant}/retention` body.
#[derive(Debug, utoipa::ToSchema)]
pub struct SetRetentionRequest {
    /// The tenant's retention period in days, from 1 to 36500: entries received longer ago
    /// are pruned once the archive holds them and no legal hold covers them. `null` removes
    /// the period set here, so the configuration's (`[tenants.NAME] retention_days`, else
    /// `retention_days`) applies again. Required.
    #[schema(required = true, minimum = 1, maximum = 36500, example = 2190)]
    pub days: Option<u64>,
}

impl SetRetentionRequest {
    /// Reads and checks the body field by field, naming the field and rule of any fault.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<SetRetentionRequest, ApiError> {
        let kind = content_type(headers);
        if kind.as_deref() != Some("application/json") {
            return Err(unsupported_type(kind, "application/json"));
        }
        let value = parse_json(body).map_err(|error| {
            let mut error = ApiError::from(error);
            if error.status == StatusCode::UNPROCESSABLE_ENTITY {
                error.error = "invalid_request";
            }
            error
        })?;
        let serde_json::Value::Object(fields) = value else {
            return Err(invalid("", "type", "the body must be an object with days"));
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "days") {
            return Err(invalid(
                unknown,
                "unknown_field",
                format!("unknown field {unknown:?}; the only field is days"),
            ));
        }
        let bounds = format!(
            "days is the retention period in days, from {} to {}, or null to remove the period set here",
            RETENTION_BOUND.min, RETENTION_BOUND.max
        );
        let days = match fields.get("days") {
            None => {
                return Err(invalid(
                    "days",
                    "required",
                    format!("{bounds}; it is required"),
                ));
            }
            Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(number)) => {
                let Some(days) = number.as_u64() else {
                    return Err(if number.is_i64() {
                        invalid("days", "range", bounds)
                    } else {
                        invalid("days", "type", format!("{bounds}: a whole number"))
                    });
                };
                if !RETENTION_BOUND.contains(days) {
                    return Err(invalid("days", "range", format!("{bounds}, not {days}")));
                }
                Some(days)
            }
            Some(_) => {
                return Err(invalid(
                    "days",
                    "type",
                    format!("{bounds}: a whole number or null"),
                ));
            }
        };
        Ok(SetRetentionRequest { days })
    }
}

/// A tenant's retention after `PUT /v1/admin/tenants/{tenant}/retention`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionSet {
    #[schema(example = "acme")]
    pub tenant: String,
    /// Whether this request changed the period set through the admin API (and appended
    /// `sealtrail.retention.period_set` to the `_system` log); false when it already was as
    /// asked, in which case nothing was recorded.
    pub changed: bool,
    /// The period set through the admin API before this request; null: none was.
    pub days_before: Option<u64>,
    /// The period set through the admin API now; null: none is.
    pub days_after: Option<u64>,
    /// The period in force now, and where it is set; null: none is, the log is kept for ever.
    pub period: Option<Period>,
    /// Entries below this seq were pruned (0: never pruned).
    pub pruned_below: u64,
    /// The archive's verified size recorded at the latest prune; null before the first.
    pub archive_watermark: Option<Watermark>,
}

fn invalid(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).at(field, rule)
}

/// The tenant the path names: a tenant name, not `_system`.
fn tenant_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(tenant) = path.map_err(|e| {
        ApiError::bad_request(format!("the path cannot be read: {}", e.body_text()))
            .at("path", "format")
    })?;
    TenantName::parse(&tenant)
        .map_err(|error| ApiError::bad_request(error.to_string()).at("tenant", "format"))?;
    if tenant == SYSTEM_TENANT {
        return Err(ApiError::bad_request(format!(
            "{}; it has no retention period",
            Refusal::SystemTenantPruned
        ))
        .at("tenant", "reserved"));
    }
    Ok(tenant)
}

/// A tenant's retention: the period in force and where it is set, how far its log is pruned,
/// and the archive watermark recorded at the latest prune.
#[utoipa::path(
    get, path = "/v1/admin/tenants/{tenant}/retention", tag = "admin",
    params(("tenant" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
        description = "The tenant: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit (`_system` is never pruned)")),
    responses(
        (status = 200, description = "The tenant's retention", body = TenantRetention),
        (status = 400, description = "Not a tenant name, or `_system` (`rule: reserved`)", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn show(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
    tenant: Result<Path<String>, PathRejection>,
) -> Result<Json<TenantRetention>, ApiError> {
    let tenant = tenant_of(tenant)?;
    Ok(Json(state.retention.state(&tenant).await?))
}

/// Set (or, with `null`, remove) a tenant's retention period. It comes before the
/// configuration's, and the server's retention schedule applies it from its next round (with
/// `archive_to`: nothing is pruned that the archive does not hold, nor under a legal hold).
/// The change and its `_system` record (`sealtrail.retention.period_set`, with the days
/// before and after) are one transaction.
#[utoipa::path(
    put, path = "/v1/admin/tenants/{tenant}/retention", tag = "admin",
    params(("tenant" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
        description = "The tenant: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit (`_system` is never pruned)")),
    request_body(content = SetRetentionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Set; `changed` is false when it already was (nothing is recorded)", body = RetentionSet),
        (status = 400, description = "Malformed JSON, not a tenant name, or `_system` (`rule: reserved`)", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
        (status = 413, description = "A body over 64 KiB", body = super::error::ApiErrorBody),
        (status = 415, description = "Not application/json", body = super::error::ApiErrorBody),
        (status = 422, description = "The body breaks a rule; `field` and `rule` say which (`days`: `required`, `type`, `range`)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RetentionSet>, ApiError> {
    let tenant = tenant_of(tenant)?;
    let body = body.map_err(|rejection| refused(rejection, MAX_BODY))?;
    let request = SetRetentionRequest::parse(&headers, &body)?;
    let change = state
        .ledger
        .set_retention(&tenant, request.days, &caller.token_id)
        .await
        .map_err(|error| match error {
            LedgerError::Invalid(Refusal::UnknownTenant(_)) => ApiError::not_found(format!(
                "there is no tenant {tenant:?}; see GET /v1/admin/tenants"
            ))
            .at("tenant", "unknown_tenant"),
            other => other.into(),
        })?;
    tracing::info!(
        actor = %caller.token_id,
        %tenant,
        changed = change.changed,
        days_before = ?change.before,
        days_after = ?change.after,
        "retention period set"
    );
    let now = state.retention.state(&tenant).await?;
    Ok(Json(RetentionSet {
        tenant,
        changed: change.changed,
        days_before: change.before,
        days_after: change.after,
        period: now.period,
        pruned_below: now.pruned_below,
        archive_watermark: now.archive_watermark,
    }))
}

/// The retention compliance report of a tenant: its period and where it is set, the oldest
/// entry kept, every prune (from the `_system` log) with the archive that holds what it
/// removed, the legal holds in force, what is kept past the period and why, and findings to
/// act on — with the latest signed checkpoint it was computed against. With `archive_to`
/// configured, the pruned range is compared with the archive (`archive_check`). `format=md`
/// answers with the same report as Markdown.
#[utoipa::path(
    get, path = "/v1/admin/tenants/{tenant}/retention/report", tag = "admin",
    params(
        ("tenant" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$",
            description = "The tenant: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit (`_system` is never pruned)"),
        ("format" = Option<String>, Query, pattern = "^(json|md)$", description = "json (default) or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ComplianceReport = "application/json"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "Not a tenant name, `_system` (`rule: reserved`), or a bad parameter; `field` names it", body = super::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 403, description = "Not an admin token of the _system tenant (recorded in the _system log)", body = super::error::ApiErrorBody),
        (status = 404, description = "No such tenant", body = super::error::ApiErrorBody),
        (status = 503, description = "The store, or the archive the report is checked against, cannot be read (`archive_unavailable`)", body = super::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn report(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
    tenant: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(tenant)?;
    let mut markdown = false;
    for (_, value) in super::gaps::pairs(query, &["format"])? {
        markdown = match value.as_str() {
            "json" => false,
            "md" => true,
            _ => return Err(bad_param("format", "enum", "format: must be json or md")),
        };
    }
    let report: ComplianceReport = state.retention.report(&tenant).await?;
    Ok(if markdown {
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}
