//! `POST /v1/events` and `POST /v1/events/batch`: the body, its content type and the
//! `Idempotency-Key` header go to the ingest service ([`crate::ingest`]), and what it returns
//! becomes a status and a receipt — `201` committed, `200` a duplicate, `202` spooled (the
//! store unreachable) or held (the tenant frozen, `on_frozen = "spool"`), `422` for an
//! idempotency key that names a different event, `503` `tenant_frozen` for a frozen tenant
//! whose events are refused — or, for a batch, one result per event. Every answer is counted in
//! [`crate::metrics`] (a frozen tenant's by the ingest service, apart from write failures).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

use super::body::{limited, refused};
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::ingest::{Accepted, ElementResult, IngestError};
pub use crate::ingest::{MAX_BATCH_BODY, MAX_BATCH_EVENTS, MAX_EVENT_BODY};
use crate::ledger::{Receipt, SpoolReceipt};
use crate::metrics::{self, IngestOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", limited(post(post_event), MAX_EVENT_BODY))
        .route(
            "/v1/events/batch",
            limited(post(post_batch), MAX_BATCH_BODY),
        )
}

/// The media type of the body: lowercase, without parameters.
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

pub(super) fn unsupported_type(got: Option<String>, want: &'static str) -> ApiError {
    IngestError::UnsupportedMediaType { got, want }.into()
}

/// `202`: the event is durable outside the log and enters it, in order, later, getting its
/// seq then (`GET /v1/events/{id}` finds it from that moment). `status` says why:
/// `spooled`, the store is unreachable and the event waits in the local spool until it is
/// back; `held`, the tenant is frozen (`on_frozen = "spool"`) and the event waits in its hold
/// file until it is unfrozen.
#[derive(Debug, Serialize)]
pub struct SpooledBody {
    /// `spooled` or `held`.
    pub status: &'static str,
    #[serde(flatten)]
    pub receipt: SpoolReceipt,
}

/// The `status` of a `202` for a held event.
pub const HELD: &str = "held";

/// The status an accepted event is answered with.
fn accepted_status(accepted: &Accepted) -> StatusCode {
    match accepted {
        Accepted::Created(_) => StatusCode::CREATED,
        Accepted::Duplicate(_) => StatusCode::OK,
        Accepted::Spooled(_) | Accepted::Held(_) => StatusCode::ACCEPTED,
    }
}

/// How an accepted event is counted.
fn accepted_outcome(accepted: &Accepted) -> IngestOutcome {
    match accepted {
        Accepted::Created(_) => IngestOutcome::Created,
        Accepted::Duplicate(_) => IngestOutcome::Duplicate,
        Accepted::Spooled(_) => IngestOutcome::Spooled,
        Accepted::Held(_) => IngestOutcome::Held,
    }
}

fn accepted_response(accepted: Accepted) -> Response {
    let status = accepted_status(&accepted);
    match accepted {
        Accepted::Created(receipt) | Accepted::Duplicate(receipt) => {
            (status, Json(receipt)).into_response()
        }
        Accepted::Spooled(receipt) => {
            let body = SpooledBody {
                status: "spooled",
                receipt,
            };
            (status, Json(body)).into_response()
        }
        Accepted::Held(receipt) => {
            let body = SpooledBody {
                status: HELD,
                receipt,
            };
            (status, Json(body)).into_response()
        }
    }
}

async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let result = match body {
        Ok(body) => accept_event(&state, &caller, &headers, &body).await,
        Err(rejection) => Err(refused(rejection, MAX_EVENT_BODY)),
    };
    let outcome = match &result {
        Ok(accepted) => Some(accepted_outcome(accepted)),
        Err(error) => {
            metrics::ingest_error(error.error);
            failure_outcome(error)
        }
    };
    if let Some(outcome) = outcome {
        metrics::events_ingested(metrics_tenant(&state, &caller), outcome, 1);
    }
    result.map(accepted_response)
}

/// The tenant label for metrics: the caller's tenant once the ledger knows it, so that a
/// multi-tenant token naming made-up tenants in `X-Tenant-ID` cannot add series.
fn metrics_tenant<'c>(state: &AppState, caller: &'c Caller) -> &'c str {
    match state.ledger.head(&caller.tenant) {
        Some(_) => &caller.tenant,
        None => "_unknown",
    }
}

/// Whether a refused event is the producer's to fix or the server's to retry; `None` for a
/// frozen tenant's, which the ingest service counts apart (`sealtrail_frozen_refusals_total`):
/// an operator's decision, not a write that failed (which `SealtrailWriteFailures` pages for).
fn failure_outcome(error: &ApiError) -> Option<IngestOutcome> {
    if error.error == crate::freeze::FROZEN_ERROR {
        None
    } else if error.status.is_server_error() {
        Some(IngestOutcome::Failed)
    } else {
        Some(IngestOutcome::Rejected)
    }
}

async fn accept_event(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, ApiError> {
    caller.require(Scope::EventsWrite)?;
    let kind = content_type(headers);
    let key = headers.get("idempotency-key").map(|v| v.as_bytes());
    Ok(state
        .ingest
        .event(&caller.tenant, kind.as_deref(), key, body)
        .await?)
}

/// One event's result in a batch response.
#[derive(Debug, Serialize)]
pub struct BatchResult {
    pub index: usize,
    /// 201 committed, 200 duplicate of an earlier idempotency key, 202 kept in the local
    /// spool while the store is unreachable or (with `held: true`) held while the tenant is
    /// frozen, 4xx refused (422 `idempotency_conflict` for a key that already names a
    /// different event).
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub receipt: Option<Receipt>,
    /// The id and acceptance time of a spooled or held event (status 202).
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub spooled: Option<SpoolReceipt>,
    /// `true` for an event held for its frozen tenant (status 202), absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<bool>,
    /// How the event is counted in the metrics.
    #[serde(skip)]
    outcome: Option<IngestOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl BatchResult {
    fn new(index: usize, result: ElementResult) -> BatchResult {
        let mut answer = BatchResult {
            index,
            status: 0,
            receipt: None,
            spooled: None,
            held: None,
            outcome: None,
            error: None,
        };
        match result {
            Ok(accepted) => {
                answer.status = accepted_status(&accepted).as_u16();
                answer.outcome = Some(accepted_outcome(&accepted));
                match accepted {
                    Accepted::Created(receipt) | Accepted::Duplicate(receipt) => {
                        answer.receipt = Some(receipt)
                    }
                    Accepted::Spooled(receipt) => answer.spooled = Some(receipt),
                    Accepted::Held(receipt) => {
                        answer.spooled = Some(receipt);
                        answer.held = Some(true);
                    }
                }
            }
            Err(error) => {
                let error = ApiError::from(error);
                answer.status = error.status.as_u16();
                answer.error = Some(error);
            }
        }
        answer
    }
}

async fn post_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let results = match body {
        Ok(body) => accept_batch(&state, &caller, &headers, &body).await,
        Err(rejection) => Err(refused(rejection, MAX_BATCH_BODY)),
    }
    .inspect_err(|error| metrics::ingest_error(error.error))?;
    // Counted per outcome, not per event: a batch may hold 10,000 events.
    let mut counts = [0u64; IngestOutcome::ALL.len()];
    for result in &results {
        let outcome = match (result.outcome, &result.error) {
            (Some(outcome), _) => outcome,
            (None, Some(error)) => {
                metrics::ingest_error(error.error);
                failure_outcome(error).unwrap_or(IngestOutcome::Failed)
            }
            (None, None) => IngestOutcome::Failed,
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
    let kind = content_type(headers);
    let results = match state
        .ingest
        .batch(&caller.tenant, kind.as_deref(), body)
        .await
    {
        Ok(results) => results,
        Err(error) => {
            // Events the write path did not keep are counted as such, not as one request.
            let submitted = match &error {
                IngestError::NotKept { submitted, .. } => Some(*submitted),
                _ => None,
            };
            let error = ApiError::from(error);
            if let (Some(submitted), Some(outcome)) = (submitted, failure_outcome(&error)) {
                let tenant = metrics_tenant(state, caller);
                metrics::events_ingested(tenant, outcome, submitted);
            }
            return Err(error);
        }
    };
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(index, result)| BatchResult::new(index, result))
        .collect())
}
