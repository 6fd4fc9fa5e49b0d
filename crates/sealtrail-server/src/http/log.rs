//! The log API: signed checkpoints, the verifier key, inclusion and consistency proofs, and
//! verification of the caller's log.
//!
//! Proofs are computed from the stored-hash array on a read connection. Any tree size up to
//! the committed size can be proven; without one, the latest signed checkpoint's size is used,
//! since that is the root a client can check the proof against. The writer commits entries and
//! their stored hashes in one transaction, so every size a reader learns of has all its hashes.
//!
//! Consistency proofs start at a tree of at least one entry: RFC 9162 defines none from the
//! empty tree (every tree extends it), and the core refuses `from = 0` rather than invent one.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealtrail_core::Hash;
use sealtrail_core::event::MAX_SAFE_INTEGER;
use sealtrail_core::merkle::{self, MerkleError};
use sealtrail_core::verify::Report;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::keys::KeyResolver;
use crate::tree_cache::TreeCache;
use crate::verification::{self, VerificationError};
use sealtrail_store::{Store, StoreHashes};

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
    let tenant = caller.tenant.clone();
    let latest = state
        .readers
        .with(move |conn| Ok(conn.latest_checkpoint(&tenant)?))
        .await?;
    match latest {
        Some(checkpoint) => Ok(text(checkpoint.note)),
        None => Err(ApiError::not_found(
            "this log has no checkpoint yet; one is signed within a second of the first event",
        )),
    }
}

/// The verifier key of the caller's log.
async fn key(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::LogRead)?;
    let tenant = caller.tenant.clone();
    let data = state.settings.data.clone();
    let vkey = state
        .readers
        .with(move |conn| {
            let record = conn
                .tenant(&tenant)?
                .ok_or_else(|| ApiError::not_found(format!("no tenant {tenant:?}")))?;
            // The key verification trusts; a disputed key is logged (see crate::keys).
            KeyResolver::new(&data)
                .published(&record)
                .map(|vkey| vkey.to_string())
                .map_err(|e| ApiError::internal(format!("cannot read the log key: {e}")))
        })
        .await?;
    Ok(text(format!("{vkey}\n")))
}

/// A query parameter that breaks a rule: 400 naming the parameter.
fn bad_param(name: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        field: Some(name.to_string()),
        rule: Some(rule),
        ..ApiError::bad_request(message)
    }
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

/// How many entries of the caller's log are committed, as the store has them (another process
/// may have appended since this one's writer last did).
fn committed_size(conn: &dyn Store, tenant: &str) -> Result<u64, ApiError> {
    Ok(conn.size(tenant)?)
}

/// The size of the latest signed checkpoint, the default tree size of a proof.
fn latest_checkpoint_size(conn: &dyn Store, tenant: &str, param: &str) -> Result<u64, ApiError> {
    match conn.latest_checkpoint(tenant)? {
        Some(checkpoint) => Ok(checkpoint.size),
        None => Err(ApiError::not_found(format!(
            "this log has no signed checkpoint yet to prove against; pass {param}= or retry within a second"
        ))),
    }
}

/// Fails unless `size` is within the committed tree.
fn check_committed(name: &str, size: u64, committed: u64) -> Result<(), ApiError> {
    if size > committed {
        return Err(bad_param(
            name,
            "range",
            format!("{name}={size} is beyond the committed tree, which has {committed} entries"),
        ));
    }
    Ok(())
}

fn proof_error(error: MerkleError) -> ApiError {
    // The parameters were checked against the committed size, so only the store can fail here.
    tracing::error!(%error, "cannot build a proof from the stored hashes");
    ApiError::internal(format!(
        "cannot build the proof from the stored hashes: {error}"
    ))
}

fn to_hex(hashes: Vec<Hash>) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

#[derive(Debug, Deserialize)]
struct InclusionParams {
    seq: Option<String>,
    size: Option<String>,
}

/// `{"leaf_index", "tree_size", "proof"}`: the RFC 9162 audit path of one entry.
#[derive(Debug, Serialize)]
struct InclusionProof {
    leaf_index: u64,
    tree_size: u64,
    proof: Vec<String>,
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
    let tenant = caller.tenant;
    let readers = state.readers.clone();
    let cache = state.tree_cache.clone();
    let proof = readers
        .with(move |conn| {
            // One read snapshot for the size, the checkpoint and the hashes: one read lock
            // rather than one per statement.
            sealtrail_store::in_snapshot(conn, || inclusion(conn, &cache, &tenant, seq, size))
        })
        .await?;
    Ok(Json(proof))
}

/// The inclusion proof of `seq` in the tree of `size` entries (by default the latest
/// checkpoint's), read from `conn` and the cache of the upper levels.
fn inclusion(
    conn: &dyn Store,
    cache: &TreeCache,
    tenant: &str,
    seq: u64,
    size: Option<u64>,
) -> Result<InclusionProof, ApiError> {
    let committed = committed_size(conn, tenant)?;
    let size = match size {
        Some(size) => size,
        None => latest_checkpoint_size(conn, tenant, "size")?,
    };
    if size == 0 {
        return Err(bad_param(
            "size",
            "range",
            "size must be at least 1: the empty tree holds no entry",
        ));
    }
    check_committed("size", size, committed)?;
    if seq >= size {
        return Err(bad_param(
            "seq",
            "range",
            format!(
                "seq={seq} is not in the tree of size {size} (seqs 0 to {})",
                size - 1
            ),
        ));
    }
    let store = StoreHashes {
        store: conn,
        tenant,
    };
    let hashes = cache.reader(tenant, &store);
    let proof = merkle::inclusion_proof(seq, size, &hashes).map_err(proof_error)?;
    Ok(InclusionProof {
        leaf_index: seq,
        tree_size: size,
        proof: to_hex(proof),
    })
}

#[derive(Debug, Deserialize)]
struct ConsistencyParams {
    from: Option<String>,
    to: Option<String>,
}

/// `{"from", "to", "proof"}`: the RFC 9162 proof that one tree is a prefix of another.
#[derive(Debug, Serialize)]
struct ConsistencyProof {
    from: u64,
    to: u64,
    proof: Vec<String>,
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
    let tenant = caller.tenant;
    let readers = state.readers.clone();
    let cache = state.tree_cache.clone();
    let proof = readers
        .with(move |conn| {
            sealtrail_store::in_snapshot(conn, || consistency(conn, &cache, &tenant, from, to))
        })
        .await?;
    Ok(Json(proof))
}

/// The consistency proof from the tree of `from` entries to that of `to` (by default the
/// latest checkpoint's), read from `conn` and the cache of the upper levels.
fn consistency(
    conn: &dyn Store,
    cache: &TreeCache,
    tenant: &str,
    from: u64,
    to: Option<u64>,
) -> Result<ConsistencyProof, ApiError> {
    let committed = committed_size(conn, tenant)?;
    let to = match to {
        Some(to) => to,
        None => latest_checkpoint_size(conn, tenant, "to")?,
    };
    check_committed("to", to, committed)?;
    if from > to {
        return Err(bad_param(
            "from",
            "range",
            format!(
                "from={from} is larger than to={to}: a tree can only be proven to extend a smaller one"
            ),
        ));
    }
    let store = StoreHashes {
        store: conn,
        tenant,
    };
    let hashes = cache.reader(tenant, &store);
    let proof = merkle::consistency_proof(from, to, &hashes).map_err(proof_error)?;
    Ok(ConsistencyProof {
        from,
        to,
        proof: to_hex(proof),
    })
}

#[derive(Debug, Deserialize)]
struct VerifyParams {
    from_seq: Option<String>,
    to_seq: Option<String>,
}

fn verification_error(error: VerificationError) -> ApiError {
    match error {
        VerificationError::Store(error) => error.into(),
        VerificationError::UnknownTenant(tenant) => {
            ApiError::not_found(format!("no log for tenant {tenant:?}"))
        }
        VerificationError::EmptyRange { .. } => bad_param("from_seq", "range", error.to_string()),
        other => {
            tracing::error!(error = %other, "cannot verify a log");
            ApiError::internal(format!("cannot verify the log: {other}"))
        }
    }
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
    let tenant = caller.tenant;
    let data = state.settings.data.clone();
    let readers = state.readers.clone();
    let report = readers
        .with(move |conn| {
            if let Some(from) = from_seq {
                // Verification resumes from the stored hashes at from_seq, which must exist.
                let committed = committed_size(conn, &tenant)?;
                if from > committed {
                    return Err(bad_param(
                        "from_seq",
                        "range",
                        format!("from_seq={from} is beyond the end of the log, which has {committed} entries"),
                    ));
                }
            }
            let report = verification::verify_tenant(conn, &data, &tenant, &[], from_seq, to_seq)
                .map_err(verification_error)?;
            let whole_log = from_seq.unwrap_or(0) == 0 && to_seq.is_none();
            verification::record(&data, &tenant, &report, whole_log);
            Ok(report)
        })
        .await?;
    Ok(Json(report))
}
