//! `POST /v1/events` and `POST /v1/events/batch`: validation, then the ledger, then receipts
//! once the entries are durable. Every answer is counted in [`crate::metrics`].

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sealtrail_core::event::{Event, parse_json};
use serde::Serialize;

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::ledger::{Outcome, Receipt, SpoolReceipt, Submission};
use crate::metrics::{self, IngestOutcome};

/// A single event's body may be at most this large (its canonical entry is capped at 64 KiB).
pub const MAX_EVENT_BODY: usize = 1024 * 1024;
/// A batch may hold at most this many events...
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// ...in at most this many bytes.
pub const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;
/// Longest accepted Idempotency-Key header.
const MAX_IDEMPOTENCY_KEY: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/events",
            post(post_event).layer(DefaultBodyLimit::max(MAX_EVENT_BODY)),
        )
        .route(
            "/v1/events/batch",
            post(post_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
}

/// The `_system` log records administrative actions only; producers never write to it, so an
/// event there can always be trusted to be sealtrail's own record.
fn refuse_system_log(caller: &Caller) -> Result<(), ApiError> {
    if caller.tenant == crate::ledger::SYSTEM_TENANT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved_tenant",
            "the _system log records sealtrail's administrative actions only; send events to another tenant",
        )
        .at("X-Tenant-ID", "reserved"));
    }
    Ok(())
}

pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

pub(super) fn unsupported_type(got: Option<String>, want: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "Content-Type must be {want}, got {}",
            got.as_deref().unwrap_or("none")
        ),
    )
    .at("Content-Type", "media_type")
}

/// The `Idempotency-Key` header: 1 to 256 visible ASCII characters (no spaces), or absent.
fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    const FIELD: &str = "Idempotency-Key";
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.as_bytes();
    if key.is_empty() {
        return Err(ApiError::invalid(
            FIELD,
            "min_length",
            "the Idempotency-Key header is empty: send a key of 1-256 characters, or no header",
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(
            FIELD,
            "max_length",
            format!("the Idempotency-Key header must be at most {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    if !key.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            FIELD,
            "pattern",
            "the Idempotency-Key header must be visible ASCII characters (no spaces)",
        ));
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// The event's idempotency key: the header's or the body's, which must agree when both are
/// given (two keys would make a retry's fate depend on which one is looked at).
fn idempotency_key(headers: &HeaderMap, event: &Event) -> Result<Option<String>, ApiError> {
    let header = idempotency_header(headers)?;
    match (header, event.idempotency_key()) {
        (Some(header), Some(body)) if header != body => Err(ApiError::invalid(
            "Idempotency-Key",
            "conflict",
            "the Idempotency-Key header and the body's idempotency_key differ: send one key, or the same in both",
        )),
        (Some(header), _) => Ok(Some(header)),
        (None, body) => Ok(body.map(str::to_string)),
    }
}

/// A body the server would not read to the end: too large for the route, or cut off.
fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than this route takes ({} MiB); send fewer or smaller events",
                limit / (1024 * 1024)
            ),
        )
        .at("", "max_size");
    }
    ApiError::bad_request(format!(
        "the body cannot be read: {}",
        rejection.body_text()
    ))
    .at("", "syntax")
}

fn receipt_response(status: StatusCode, receipt: Receipt) -> Response {
    (status, Json(receipt)).into_response()
}

/// `202`: the store is unreachable and the event is durable in the local spool; it enters
/// the log, in order, once the store is back (`GET /v1/events/{id}` finds it then).
#[derive(Debug, Serialize)]
pub struct SpooledBody {
    /// Always `spooled`.
    pub status: &'static str,
    #[serde(flatten)]
    pub receipt: SpoolReceipt,
}

fn spooled_response(receipt: SpoolReceipt) -> Response {
    let body = SpooledBody {
        status: "spooled",
        receipt,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let result = match body {
        Ok(body) => accept_event(&state, &caller, &headers, &body).await,
        Err(rejection) => Err(body_error(rejection, MAX_EVENT_BODY)),
    };
    let outcome = match &result {
        Ok(response) if response.status() == StatusCode::CREATED => IngestOutcome::Created,
        Ok(response) if response.status() == StatusCode::ACCEPTED => IngestOutcome::Spooled,
        Ok(_) => IngestOutcome::Duplicate,
        Err(error) => {
            metrics::ingest_error(error.error);
            failure_outcome(error)
        }
    };
    metrics::events_ingested(metrics_tenant(&state, &caller), outcome, 1);
    result
}

/// The tenant label for metrics: the caller's tenant once the ledger knows it, so that a
/// multi-tenant token naming made-up tenants in `X-Tenant-ID` cannot add series.
fn metrics_tenant<'c>(state: &AppState, caller: &'c Caller) -> &'c str {
    match state.ledger.head(&caller.tenant) {
        Some(_) => &caller.tenant,
        None => "_unknown",
    }
}

/// Whether a refused event is the producer's to fix or the server's to retry.
fn failure_outcome(error: &ApiError) -> IngestOutcome {
    if error.status.is_server_error() {
        IngestOutcome::Failed
    } else {
        IngestOutcome::Rejected
    }
}

async fn accept_event(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    caller.require(Scope::EventsWrite)?;
    refuse_system_log(caller)?;
    let kind = content_type(headers);
    if kind.as_deref() != Some("application/json") {
        return Err(unsupported_type(kind, "application/json"));
    }
    let value = parse_json(body)?;
    if value.is_array() {
        return Err(ApiError::invalid(
            "",
            "type",
            "this route takes one event object; send arrays to /v1/events/batch",
        ));
    }
    let event = Event::from_owned_value(value)?;
    let idempotency_key = idempotency_key(headers, &event)?;
    let outcomes = state
        .ledger
        .append(
            &caller.tenant,
            vec![Submission {
                event,
                idempotency_key,
            }],
        )
        .await?;
    match outcomes.into_iter().next() {
        Some(Outcome::Created(receipt)) => Ok(receipt_response(StatusCode::CREATED, receipt)),
        Some(Outcome::Duplicate(receipt)) => Ok(receipt_response(StatusCode::OK, receipt)),
        Some(Outcome::Rejected(error)) => Err(error.into()),
        Some(Outcome::Spooled(receipt)) => Ok(spooled_response(receipt)),
        None => Err(ApiError::internal("the ledger returned no outcome")),
    }
}

/// One event's result in a batch response.
#[derive(Debug, Serialize)]
pub struct BatchResult {
    pub index: usize,
    /// 201 committed, 200 duplicate of an earlier idempotency key, 202 kept in the local
    /// spool while the store is unreachable, 4xx rejected.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub receipt: Option<Receipt>,
    /// The id and acceptance time of a spooled event (status 202).
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub spooled: Option<SpoolReceipt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

async fn post_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let results = match body {
        Ok(body) => accept_batch(&state, &caller, &headers, &body).await,
        Err(rejection) => Err(body_error(rejection, MAX_BATCH_BODY)),
    }
    .inspect_err(|error| metrics::ingest_error(error.error))?;
    // Counted per outcome, not per event: a batch may hold 10,000 events.
    let mut counts = [0u64; IngestOutcome::ALL.len()];
    for result in &results {
        let outcome = match (result.status, &result.error) {
            (201, _) => IngestOutcome::Created,
            (202, _) => IngestOutcome::Spooled,
            (_, None) => IngestOutcome::Duplicate,
            (_, Some(error)) => {
                metrics::ingest_error(error.error);
                failure_outcome(error)
            }
        };
        counts[outcome as usize] += 1;
    }
    let tenant = metrics_tenant(&state, &caller);
    for (outcome, count) in IngestOutcome::ALL.into_iter().zip(counts) {
        metrics::events_ingested(tenant, outcome, count);
    }
    Ok((StatusCode::OK, Json(results)).into_response())
}

/// A batch's per-event results; an error only when the batch is refused as a whole.
async fn accept_batch(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<BatchResult>, ApiError> {
    caller.require(Scope::EventsWrite)?;
    refuse_system_log(caller)?;
    let values = match content_type(headers).as_deref() {
        Some("application/json") => match parse_json(body)? {
            serde_json::Value::Array(values) => values.into_iter().map(Ok).collect(),
            _ => {
                return Err(ApiError::invalid(
                    "",
                    "type",
                    "a JSON batch must be an array of events",
                ));
            }
        },
        Some("application/x-ndjson") => parse_ndjson(body),
        other => {
            return Err(unsupported_type(
                other.map(str::to_string),
                "application/json or application/x-ndjson",
            ));
        }
    };
    if values.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {MAX_BATCH_EVENTS} events, this one has {}; split it",
                values.len()
            ),
        )
        .at("", "max_items"));
    }
    if values.is_empty() {
        return Err(ApiError::invalid(
            "",
            "required",
            "the batch holds no events",
        ));
    }
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(values.len());
    let mut submissions = Vec::new();
    let mut submitted_index = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        // An NDJSON line that is not JSON is named by its index too, like any other element.
        let parsed = value
            .and_then(Event::from_owned_value)
            .map_err(|e| prefix_field(e, index));
        match parsed {
            Ok(event) => {
                let idempotency_key = event.idempotency_key().map(str::to_string);
                submissions.push(Submission {
                    event,
                    idempotency_key,
                });
                submitted_index.push(index);
                results.push(None);
            }
            Err(error) => {
                let error = ApiError::from(error);
                results.push(Some(BatchResult {
                    index,
                    status: error.status.as_u16(),
                    receipt: None,
                    spooled: None,
                    error: Some(error),
                }));
            }
        }
    }
    if !submissions.is_empty() {
        let submitted = submissions.len() as u64;
        let outcomes = state
            .ledger
            .append(&caller.tenant, submissions)
            .await
            .map_err(ApiError::from)
            .inspect_err(|error| {
                let tenant = metrics_tenant(state, caller);
                metrics::events_ingested(tenant, failure_outcome(error), submitted);
            })?;
        for (index, outcome) in submitted_index.into_iter().zip(outcomes) {
            results[index] = Some(match outcome {
                Outcome::Created(receipt) => BatchResult {
                    index,
                    status: 201,
                    receipt: Some(receipt),
                    spooled: None,
                    error: None,
                },
                Outcome::Duplicate(receipt) => BatchResult {
                    index,
                    status: 200,
                    receipt: Some(receipt),
                    spooled: None,
                    error: None,
                },
                Outcome::Spooled(receipt) => BatchResult {
                    index,
                    status: 202,
                    receipt: None,
                    spooled: Some(receipt),
                    error: None,
                },
                Outcome::Rejected(error) => {
                    let error = ApiError::from(prefix_field(error, index));
                    BatchResult {
                        index,
                        status: error.status.as_u16(),
                        receipt: None,
                        spooled: None,
                        error: Some(error),
                    }
                }
            });
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// Names the batch element in an error's field path: `[3].actor.id`.
fn prefix_field(
    mut error: sealtrail_core::event::EventError,
    index: usize,
) -> sealtrail_core::event::EventError {
    if !error.field.starts_with('[') {
        error.field = if error.field.is_empty() {
            format!("[{index}]")
        } else {
            format!("[{index}].{}", error.field)
        };
    }
    error
}

/// Splits NDJSON into one parse result per non-empty line, so one bad line rejects only itself.
fn parse_ndjson(body: &[u8]) -> Vec<Result<serde_json::Value, sealtrail_core::event::EventError>> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(parse_json)
        .collect()
}
