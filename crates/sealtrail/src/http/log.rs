//! The log API: signed checkpoints and the verifier key.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::store;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/key", get(key))
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
        .with(move |conn| Ok(store::latest_checkpoint(conn, &tenant)?))
        .await?;
    match latest {
        Some((_, note)) => Ok(text(note)),
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
            let record = store::tenant(conn, &tenant)?
                .ok_or_else(|| ApiError::not_found(format!("no tenant {tenant:?}")))?;
            let (_, vkey_path) = crate::keyfiles::key_paths(&data.join("keys"), &record.origin);
            let path = vkey_path.to_string_lossy().into_owned();
            crate::keyfiles::read_verifier(&path)
                .map_err(|e| ApiError::internal(format!("cannot read the log key: {e}")))
        })
        .await?;
    Ok(text(format!("{vkey}\n")))
}
