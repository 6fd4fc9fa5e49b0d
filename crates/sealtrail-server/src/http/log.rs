//! The log API: signed checkpoints, the verifier key, inclusion and consistency proofs, and
//! verification of the caller's log.
//!
//! Proofs come from the query service ([`crate::query`]), which computes them from the
//! stored-hash array in one read snapshot. Any tree size up to the committed size can be
//! proven; without one, the latest signed checkpoint's size is used, since that is the root a
//! client can check the proof against. The writer commits entries and their stored hashes in
//! one transaction, so every size a reader learns of has all its hashes. Verification is the
//! verification service's ([`crate::verify`]); its findings go to the application's board.
//!
//! Consistency proofs start at a tree of at least one entry: RFC 9162 defines none from the
//! empty tree (every tree extends it), and the core refuses `from = 0` rather than invent one.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealtrail_core::event::MAX_SAFE_INTEGER;
use sealtrail_core::verify::Report;
use serde::Deserialize;

use super::error::bad_param;
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::query::{ConsistencyProof, InclusionProof};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/key", get(key))
        .route("/v1/log/proof/inclusion", get(inclusion_proof))
        .route("/v1/log/proof/consistency", get(consistency_proof))
        .route("/v1/verify", get(verify))
}

fn text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The latest signed checkpoint of the caller's log, the note itself.
async fn checkpoint(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::LogRead)?;
    match state.queries.latest_checkpoint(&caller.tenant).await? {
        Some(note) => Ok(text(note)),
        None => Err(ApiError::not_found(
            "this log has no checkpoint yet; one is signed within a second of the first event",
        )),
    }
}

/// The verifier key of the caller's log.
async fn key(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::LogRead)?;
    let tenant = &caller.tenant;
    let vkey = state
        .queries
        .log_key(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant {tenant:?}")))?;
    Ok(text(format!("{vkey}\n")))
}

/// A query string that does not fit the route's parameters (say, one given twice), as a JSON
/// error like every other.
fn query_error(rejection: QueryRejection) -> ApiError {
    bad_param(
        "query",
        "syntax",
        format!("the query string cannot be read: {}", rejection.body_text()),
    )
}

/// The largest seq: seqs are exact JSON numbers in canonical entries, so at most 2^53 − 1.
const MAX_SEQ: u64 = MAX_SAFE_INTEGER;
/// The largest tree size, one more than the largest seq.
const MAX_SIZE: u64 = MAX_SAFE_INTEGER + 1;

/// An optional integer parameter from 0 to `max`. Larger numbers are refused rather than
/// clamped or wrapped: no log holds them, and a client that sends one has a bug to learn of.
fn number(name: &str, value: Option<&str>, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(text) = value else {
        return Ok(None);
    };
    let number = text.parse::<u64>().map_err(|e| {
        let rule = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "range",
            _ => "type",
        };
        bad_param(
            name,
            rule,
            format!("{name} must be an integer from 0 to {max}, got {text:?}"),
        )
    })?;
    if number > max {
        return Err(bad_param(
            name,
            "range",
            format!("{name} must be at most {max}, got {number}"),
        ));
    }
    Ok(Some(number))
}

#[derive(Debug, Deserialize)]
struct InclusionParams {
    seq: Option<String>,
    size: Option<String>,
}

/// `GET /v1/log/proof/inclusion?seq=N[&size=M]`: the proof that entry `seq` is in the tree of
/// `size` entries (by default the latest checkpoint's).
async fn inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<InclusionParams>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    caller.require(Scope::LogRead)?;
    let Query(params) = params.map_err(query_error)?;
    let seq = number("seq", params.seq.as_deref(), MAX_SEQ)?.ok_or_else(|| {
        bad_param(
            "seq",
            "required",
            "seq is required: the seq of the entry to prove",
        )
    })?;
    let size = number("size", params.size.as_deref(), MAX_SIZE)?;
    let proof = state.queries.inclusion(&caller.tenant, seq, size).await?;
    Ok(Json(proof))
}

#[derive(Debug, Deserialize)]
struct ConsistencyParams {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /v1/log/proof/consistency?from=M[&to=N]`: the proof that the tree of `from` entries is
/// a prefix of the tree of `to` entries (by default the latest checkpoint's size). Empty when
/// the sizes are equal.
async fn consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    caller.require(Scope::LogRead)?;
    let Query(params) = params.map_err(query_error)?;
    let from = number("from", params.from.as_deref(), MAX_SIZE)?.ok_or_else(|| {
        bad_param(
            "from",
            "required",
            "from is required: the size of the older tree",
        )
    })?;
    if from == 0 {
        return Err(bad_param(
            "from",
            "range",
            "from must be at least 1: RFC 9162 defines no consistency proof from the empty tree, which every tree extends",
        ));
    }
    let to = number("to", params.to.as_deref(), MAX_SIZE)?;
    let proof = state.queries.consistency(&caller.tenant, from, to).await?;
    Ok(Json(proof))
}

#[derive(Debug, Deserialize)]
struct VerifyParams {
    from_seq: Option<String>,
    to_seq: Option<String>,
}

/// `GET /v1/verify[?from_seq=N][&to_seq=M]`: verifies the caller's log (entries `from_seq` to
/// `to_seq`, both inclusive; by default all) against its stored hashes and signed checkpoints,
/// and returns the verifier's report. A damaged log is still a 200: the report is the answer.
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<VerifyParams>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    caller.require(Scope::Verify)?;
    let Query(params) = params.map_err(query_error)?;
    let from_seq = number("from_seq", params.from_seq.as_deref(), MAX_SEQ)?;
    let to_seq = number("to_seq", params.to_seq.as_deref(), MAX_SEQ)?;
    let report = state
        .verifier
        .verify(&caller.tenant, from_seq, to_seq)
        .await?;
    Ok(Json(report))
}
