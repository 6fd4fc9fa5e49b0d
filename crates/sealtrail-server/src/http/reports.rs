//! `GET /v1/reports/{name}` (scope `reports`), one route per report name: a report over the caller's tenant's log
//! ([`crate::reports`]), computed against its latest signed checkpoint after verifying the
//! prefix that checkpoint signs.
//!
//! Parameters: `from`, `to` (RFC 3339; the window of event time), `format` (`json`, the
//! default; `csv`; `md`) and the report's own: `target_type` and `target_id` for
//! `record-access`, `subject` for `disclosures`, `actor` for `user-activity`. Each at most
//! once; one the report does not take is refused (`unknown_parameter`), as on every route.
//! A prefix that does not verify is a 409 `log_unverified` naming the first broken seq.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealtrail_core::Timestamp;

use super::error::bad_param;
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::reports::{ReportName, ReportRequest, render};

/// One route per report, so that the API's description states each one's own parameters;
/// a name that is no report is the router's 404 (`unknown_route`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reports/daily-activity", get(daily_activity))
        .route("/v1/reports/security-incidents", get(security_incidents))
        .route("/v1/reports/record-access", get(record_access))
        .route("/v1/reports/disclosures", get(disclosures))
        .route("/v1/reports/user-activity", get(user_activity))
        .route("/v1/reports/completeness", get(completeness))
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

async fn daily_activity(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::DailyActivity, state, caller, query).await
}

async fn security_incidents(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::SecurityIncidents, state, caller, query).await
}

async fn record_access(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::RecordAccess, state, caller, query).await
}

async fn disclosures(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::Disclosures, state, caller, query).await
}

async fn user_activity(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::UserActivity, state, caller, query).await
}

async fn completeness(
    state: State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    report(ReportName::Completeness, state, caller, query).await
}

/// The answer's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Markdown,
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| bad_param(name, "timestamp", format!("{name}: {e}")))
}

/// The request as parsed: every parameter checked by itself; the rules between them (which
/// are required, the window) are the report service's.
fn parse(
    name: ReportName,
    tenant: &str,
    pairs: Vec<(String, String)>,
) -> Result<(ReportRequest, Format), ApiError> {
    let mut request = ReportRequest::new(name, tenant);
    let mut format = Format::Json;
    for (key, value) in pairs {
        match key.as_str() {
            "from" => request.from = Some(timestamp("from", &value)?),
            "to" => request.to = Some(timestamp("to", &value)?),
            "format" => {
                format = match value.as_str() {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    "md" => Format::Markdown,
                    _ => {
                        return Err(bad_param(
                            "format",
                            "enum",
                            "format: must be json, csv or md",
                        ));
                    }
                }
            }
            "target_type" => request.target_type = Some(value),
            "target_id" => request.target_id = Some(value),
            "subject" => request.subject = Some(value),
            "actor" => request.actor = Some(value),
            _ => unreachable!("checked against the report's parameters"),
        }
    }
    Ok((request, format))
}

async fn report(
    name: ReportName,
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    caller.require(Scope::Reports)?;
    let mut allowed = vec!["from", "to", "format"];
    allowed.extend_from_slice(name.parameters());
    let (request, format) = parse(name, &caller.tenant, super::gaps::pairs(query, &allowed)?)?;
    let report = state.reports.run(request).await?;
    Ok(match format {
        Format::Json => Json(report.to_json()).into_response(),
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            render::csv(&report),
        )
            .into_response(),
        Format::Markdown => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            render::markdown(&report),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: ReportName, query: &[(&str, &str)]) -> Result<ReportRequest, ApiError> {
        let pairs = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(name, "acme", pairs).map(|(request, _)| request)
    }

    #[test]
    fn parameters_are_checked_one_by_one() {
        for (query, field, rule) in [
            (vec![("from", "yesterday")], "from", "timestamp"),
            (vec![("to", "2026-13-01T00:00:00Z")], "to", "timestamp"),
            (vec![("format", "xml")], "format", "enum"),
        ] {
            let error = parsed(ReportName::DailyActivity, &query).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{query:?}");
            assert_eq!(error.rule, Some(rule), "{query:?}");
        }
        let ok = parsed(
            ReportName::RecordAccess,
            &[("target_type", "patient"), ("target_id", "p-9")],
        )
        .unwrap();
        assert_eq!(ok.target_id.as_deref(), Some("p-9"));
    }
}
