//! `GET /v1/export?format=ndjson|csv|ocsf&<the filters of GET /v1/events>&cursor=|after_seq=`
//! — the caller's log as NDJSON, CSV or OCSF, streamed (see [`crate::export`]).
//!
//! - **Scope and tenant** as for `GET /v1/events`: `events:read`, the tenant from the token.
//! - **Parameters**: `format` (default `ndjson`); the filters `from`, `to`, `actor`,
//!   `action`, `activity`, `outcome`, `target_type`, `target_id`, `ip`, `source`, `q`,
//!   checked exactly as `GET /v1/events` checks them (same 400s); `cursor` (an ascending
//!   cursor of `GET /v1/events`, or the one `sealtrail export` prints) or `after_seq` (the
//!   seq of the last line received), not both. Unknown and repeated parameters are refused.
//! - **Streaming.** The body is sent as the pages are read (chunked), never assembled: an
//!   export of any size holds a few pages in the server. `Sealtrail-Export-End` says the
//!   window's end: the export holds the matching events with seq below it (the log's size when
//!   it started).
//! - **Resuming.** Each line carries its seq (`seq`; the first CSV column; OCSF
//!   `metadata.sequence`). A download that breaks off — the server ends a failed export by
//!   cutting the connection, so an incomplete body is never mistaken for a complete one — is
//!   resumed with `after_seq=` the seq of the last complete line, which repeats and skips
//!   nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body::Frame;
use tokio::sync::mpsc;

use super::query::{bad_param, parse_list_request};
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::export::{self, ExportError, Filter, Format};
use crate::index::Order;
use crate::query::decode_cursor;

/// The largest seq a canonical entry can carry (2^53 − 1).
const MAX_SEQ: u64 = (1 << 53) - 1;

const PARAMETERS: &str = "format, from, to, actor, action, activity, outcome, target_type, target_id, ip, source, q, cursor, after_seq";

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/export", get(export_events))
}

/// `GET /v1/export` as parsed.
#[derive(Debug)]
struct ExportRequest {
    format: Format,
    filter: Filter,
    after: Option<u64>,
}

fn parse_export_request(pairs: Vec<(String, String)>) -> Result<ExportRequest, ApiError> {
    let mut format = Format::Ndjson;
    let mut cursor = None;
    let mut after_seq = None;
    let mut q = None;
    let mut filters = Vec::new();
    let mut own_seen = std::collections::HashSet::new();
    for (name, value) in pairs {
        match name.as_str() {
            "limit" | "order" | "wait_for_seq" => {
                return Err(bad_param(
                    &name,
                    "unknown_parameter",
                    format!("is not a parameter of this route; the parameters are {PARAMETERS}"),
                ));
            }
            "format" | "cursor" | "after_seq" if !own_seen.insert(name.clone()) => {
                return Err(bad_param(
                    &name,
                    "duplicate",
                    "given more than once; give each parameter at most once",
                ));
            }
            _ => {}
        }
        if value.contains('\0') {
            let shown: String = name.chars().take(64).collect();
            return Err(bad_param(
                &shown,
                "nul_character",
                "must not contain a NUL character (U+0000): no event holds one",
            ));
        }
        match name.as_str() {
            "format" => {
                format = Format::from_name(&value)
                    .ok_or_else(|| bad_param(&name, "enum", "must be one of ndjson, csv, ocsf"))?;
            }
            "cursor" => {
                if !value.is_empty() {
                    let decoded = decode_cursor(&value).ok_or_else(|| {
                        bad_param(
                            "cursor",
                            "cursor",
                            "is not a cursor from this API; pass the cursor sealtrail export printed, or next_cursor of GET /v1/events, unchanged",
                        )
                    })?;
                    if decoded.0 != Order::Asc {
                        return Err(bad_param(
                            "cursor",
                            "cursor",
                            "continues a newest-first listing; exports run in seq order",
                        ));
                    }
                    cursor = Some(decoded.1);
                }
            }
            "after_seq" => {
                let seq: u64 = value
                    .parse()
                    .ok()
                    .filter(|seq| *seq <= MAX_SEQ)
                    .ok_or_else(|| {
                        bad_param(&name, "type", "must be a seq: an integer from 0 to 2^53-1")
                    })?;
                after_seq = Some(seq);
            }
            _ => {
                if name == "q" {
                    q = Some(value.clone());
                }
                filters.push((name, value));
            }
        }
    }
    if cursor.is_some() && after_seq.is_some() {
        return Err(bad_param(
            "after_seq",
            "exclusive",
            "cannot be given with cursor: both say where to start",
        ));
    }
    // The filters, checked as GET /v1/events checks them (duplicates and unknown names too).
    let search = parse_list_request(filters)
        .map_err(|error| match error.rule {
            Some("unknown_parameter") => {
                let field = error.field.clone().unwrap_or_default();
                bad_param(
                    &field,
                    "unknown_parameter",
                    format!("is not a parameter of this route; the parameters are {PARAMETERS}"),
                )
            }
            _ => error,
        })?
        .search;
    let mut filter = Filter {
        from: search.from,
        to: search.to,
        actor: search.actor,
        action: search.action,
        activity: search.activity,
        outcome: search.outcome,
        target_type: search.target_type,
        target_id: search.target_id,
        ip: search.ip,
        source: search.source,
        words: Vec::new(),
    };
    if let Some(q) = q {
        // Checked above: it has a word.
        filter
            .set_text(&q)
            .ok_or_else(|| bad_param("q", "text", "must contain a word of letters or digits"))?;
    }
    Ok(ExportRequest {
        format,
        filter,
        after: cursor.or(after_seq),
    })
}

async fn export_events(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::EventsRead)?;
    let Query(pairs) = query.map_err(|e| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {e}"),
        )
    })?;
    let request = parse_export_request(pairs)?;
    let running = export::stream::start(
        &state.readers,
        &caller.tenant,
        request.after,
        request.format,
        request.filter,
    )
    .await
    .map_err(export_error)?;
    let mut response = Body::new(Chunks(running.chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(request.format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "sealtrail-export-end",
        HeaderValue::from(running.window.end),
    );
    Ok(response)
}

fn export_error(error: ExportError) -> ApiError {
    match error {
        ExportError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "export failed");
            ApiError::internal(other.to_string())
        }
    }
}

/// The body: the export's chunks as they come; an error ends the body with an error, which
/// cuts the connection rather than ending the response as if it were complete.
struct Chunks(mpsc::Receiver<Result<Vec<u8>, ExportError>>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = ExportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExportError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(|bytes| Frame::data(Bytes::from(bytes)))))
    }
}
