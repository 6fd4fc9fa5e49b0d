//! Timelines and gap findings of the caller's tenant (scope `events:read`), from the gap
//! detector ([`crate::gaps`]), found as a request extension beside [`AppState`]:
//!
//! - `GET /v1/timeline?bucket=minute|hour|day&from=TS&to=TS[&time=occurred_at|received_at]
//!   [&action=A][&source=APP]` — events per bucket, zeros included:
//!   `{"tenant", "bucket", "time", "from", "to", "total", "buckets": [{"start", "count"}]}`.
//!   `from` is rounded down and `to` up to whole buckets; at most
//!   [`crate::gaps::MAX_BUCKETS`] (44,640: a month by the minute) buckets per request.
//!   Heartbeats are not counted.
//! - `GET /v1/gaps[?from=TS][&to=TS]` — the findings of the window (default: the 24 hours
//!   before `to`, which defaults to now; at most 31 days):
//!   `{"tenant", "from", "to", "gaps": [{"kind", "start", "end", "duration_seconds",
//!   "producer", "missing", "impact", "detail", "confidence", "ongoing", "evidence"}]}`.
//! - `GET /v1/gaps/report?from=TS&to=TS[&format=json|md]` — the gap report of the window
//!   ([`crate::gaps::report`]): per finding the activity expected in it, the PHI-access
//!   estimate, what sealtrail knows of the cause, recovery and loss; `format=md` answers with
//!   the same as Markdown (`text/markdown`).
//!
//! Parameters are strict, as on `GET /v1/events`: an unknown or repeated one is a 400 naming
//! it. Both answer from what the detector has counted so far, which trails the log by up to a
//! second or so.

use std::collections::HashSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use sealtrail_core::Timestamp;
use sealtrail_store::gaps::ActivityFilter;

use super::error::bad_param;
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::gaps::{AuditStdout, Bucket, Gaps, GapsRequestError, TimelineRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/timeline", get(timeline))
        .route("/v1/gaps", get(gaps))
        .route("/v1/gaps/report", get(gap_report))
}

impl From<GapsRequestError> for ApiError {
    fn from(error: GapsRequestError) -> ApiError {
        match error {
            GapsRequestError::Invalid {
                field,
                rule,
                message,
            } => bad_param(field, rule, format!("{field}: {message}")),
            GapsRequestError::Database(error) => {
                tracing::error!(%error, "reading the gap database failed");
                ApiError::internal("the gap database could not be read; see the server's log")
            }
        }
    }
}

/// The query's parameters, refused unless each is one of `allowed`, given once, without NUL.
pub(super) fn pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = query.map_err(|e| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {e}"),
        )
    })?;
    let mut seen = HashSet::new();
    for (name, value) in &pairs {
        let shown: String = name.chars().take(64).collect();
        if !allowed.contains(&name.as_str()) {
            return Err(bad_param(
                &shown,
                "unknown_parameter",
                format!(
                    "{shown}: is not a parameter of this route; the parameters are {}",
                    allowed.join(", ")
                ),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(bad_param(
                &shown,
                "duplicate",
                format!("{shown}: given more than once; give each parameter at most once"),
            ));
        }
        if value.contains('\0') {
            return Err(bad_param(
                &shown,
                "nul_character",
                format!("{shown}: must not contain a NUL character (U+0000)"),
            ));
        }
    }
    Ok(pairs)
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| bad_param(name, "timestamp", format!("{name}: {e}")))
}

fn name_value(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() || value.chars().count() > 256 {
        return Err(bad_param(
            name,
            "length",
            format!("{name}: must be 1 to 256 characters"),
        ));
    }
    Ok(value)
}

const TIMELINE_PARAMETERS: &[&str] = &["bucket", "from", "to", "time", "action", "source"];

/// `GET /v1/timeline` as parsed.
fn parse_timeline(pairs: Vec<(String, String)>) -> Result<TimelineRequest, ApiError> {
    let (mut bucket, mut from, mut to, mut received) = (None, None, None, false);
    let mut filter = ActivityFilter::default();
    for (name, value) in pairs {
        match name.as_str() {
            "bucket" => {
                bucket = Some(Bucket::parse(&value).ok_or_else(|| {
                    bad_param("bucket", "enum", "bucket: must be one of minute, hour, day")
                })?)
            }
            "from" => from = Some(timestamp("from", &value)?),
            "to" => to = Some(timestamp("to", &value)?),
            "time" => {
                received = match value.as_str() {
                    "occurred_at" => false,
                    "received_at" => true,
                    _ => {
                        return Err(bad_param(
                            "time",
                            "enum",
                            "time: must be occurred_at or received_at",
                        ));
                    }
                }
            }
            "action" => filter.action = Some(name_value("action", value)?),
            "source" => filter.app = Some(name_value("source", value)?),
            _ => unreachable!("checked against TIMELINE_PARAMETERS"),
        }
    }
    let required = |field: &str| {
        bad_param(
            field,
            "required",
            format!("{field}: is required (bucket=minute|hour|day, from and to as RFC 3339)"),
        )
    };
    Ok(TimelineRequest {
        bucket: bucket.ok_or_else(|| required("bucket"))?,
        from: from.ok_or_else(|| required("from"))?,
        to: to.ok_or_else(|| required("to"))?,
        received,
        filter,
    })
}

async fn timeline(
    Extension(gaps): Extension<Gaps>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let request = parse_timeline(pairs(query, TIMELINE_PARAMETERS)?)?;
    let tenant = caller.tenant.clone();
    let timeline = tokio::task::spawn_blocking(move || gaps.timeline(&tenant, &request))
        .await
        .map_err(|e| ApiError::internal(format!("the timeline failed: {e}")))??;
    Ok(Json(timeline.to_json()))
}

async fn gaps(
    Extension(gaps): Extension<Gaps>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let (mut from, mut to) = (None, None);
    for (name, value) in pairs(query, &["from", "to"])? {
        match name.as_str() {
            "from" => from = Some(timestamp("from", &value)?),
            _ => to = Some(timestamp("to", &value)?),
        }
    }
    let tenant = caller.tenant.clone();
    let report = tokio::task::spawn_blocking(move || gaps.report(&tenant, from, to))
        .await
        .map_err(|e| ApiError::internal(format!("the gap report failed: {e}")))??;
    Ok(Json(report.to_json()))
}

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Markdown,
}

/// `GET /v1/gaps/report` as parsed: `from` and `to` are required.
fn parse_report(pairs: Vec<(String, String)>) -> Result<(Timestamp, Timestamp, Format), ApiError> {
    let (mut from, mut to, mut format) = (None, None, Format::Json);
    for (name, value) in pairs {
        match name.as_str() {
            "from" => from = Some(timestamp("from", &value)?),
            "to" => to = Some(timestamp("to", &value)?),
            "format" => {
                format = match value.as_str() {
                    "json" => Format::Json,
                    "md" => Format::Markdown,
                    _ => {
                        return Err(bad_param("format", "enum", "format: must be json or md"));
                    }
                }
            }
            _ => unreachable!("checked against the report's parameters"),
        }
    }
    let required = |field: &str| {
        bad_param(
            field,
            "required",
            format!("{field}: is required (from and to as RFC 3339; the report covers [from, to))"),
        )
    };
    Ok((
        from.ok_or_else(|| required("from"))?,
        to.ok_or_else(|| required("to"))?,
        format,
    ))
}

async fn gap_report(
    State(state): State<AppState>,
    Extension(gaps): Extension<Gaps>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::EventsRead)?;
    let (from, to, format) = parse_report(pairs(query, &["from", "to", "format"])?)?;
    let audit_stdout = if state.settings.log.audit_stdout {
        AuditStdout::On
    } else {
        AuditStdout::Off
    };
    let tenant = caller.tenant.clone();
    let report =
        tokio::task::spawn_blocking(move || gaps.incident_report(&tenant, from, to, audit_stdout))
            .await
            .map_err(|e| ApiError::internal(format!("the gap report failed: {e}")))??;
    Ok(match format {
        Format::Json => Json(report.to_json()).into_response(),
        Format::Markdown => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &[(&str, &str)]) -> Result<TimelineRequest, ApiError> {
        parse_timeline(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn timeline_parameters_are_checked_one_by_one() {
        let from = ("from", "2026-01-01T00:00:00Z");
        let to = ("to", "2026-01-02T00:00:00Z");
        for (query, field, rule) in [
            (vec![("bucket", "week"), from, to], "bucket", "enum"),
            (vec![from, to], "bucket", "required"),
            (vec![("bucket", "hour"), to], "from", "required"),
            (
                vec![("bucket", "hour"), ("from", "today"), to],
                "from",
                "timestamp",
            ),
            (
                vec![("bucket", "hour"), from, to, ("time", "seen_at")],
                "time",
                "enum",
            ),
            (
                vec![("bucket", "hour"), from, to, ("source", "")],
                "source",
                "length",
            ),
        ] {
            let error = request(&query).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{query:?}");
            assert_eq!(error.rule, Some(rule), "{query:?}");
        }
        let ok = request(&[
            ("bucket", "day"),
            from,
            to,
            ("time", "received_at"),
            ("action", "a.b"),
        ])
        .unwrap();
        assert_eq!(ok.bucket, Bucket::Day);
        assert!(ok.received);
        assert_eq!(ok.filter.action.as_deref(), Some("a.b"));
    }
}
