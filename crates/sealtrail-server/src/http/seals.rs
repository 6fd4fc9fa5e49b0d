//! The daily seals of the caller's log (`crate::seals`): `GET /v1/log/seals[?from=&to=]`
//! lists them, each with its signed note and what it says; `GET /v1/log/seals/{date}` is the
//! day's newest seal, the note itself, as `GET /v1/log/checkpoint` serves a checkpoint.
//! Scope `log:read`, like the checkpoints.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealtrail_core::note;
use sealtrail_core::seal::{Seal, is_day};
use serde::{Deserialize, Serialize};

use super::error::bad_param;
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/log/seals", get(list))
        .route("/v1/log/seals/{date}", get(one))
}

#[derive(Debug, Deserialize)]
struct Window {
    from: Option<String>,
    to: Option<String>,
}

/// One seal as listed: what its note says, and the note.
#[derive(Debug, Serialize)]
pub struct ListedSeal {
    day: String,
    issue: u32,
    size: Option<u64>,
    root: Option<String>,
    previous: Option<String>,
    supersedes: Option<String>,
    created_at: String,
    note: String,
}

#[derive(Debug, Serialize)]
pub struct SealList {
    tenant: String,
    seals: Vec<ListedSeal>,
}

fn day_param(name: &str, value: Option<String>, default: &str) -> Result<String, ApiError> {
    match value {
        None => Ok(default.to_string()),
        Some(day) if is_day(&day) => Ok(day),
        Some(day) => Err(bad_param(
            name,
            "format",
            format!("{name} must be a UTC day written YYYY-MM-DD, got {day:?}"),
        )),
    }
}

/// `GET /v1/log/seals?from=YYYY-MM-DD&to=YYYY-MM-DD`: every seal of the days in the window
/// (both inclusive; by default all), every issue, by day.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<Window>, QueryRejection>,
) -> Result<Json<SealList>, ApiError> {
    caller.require(Scope::LogRead)?;
    let Query(window) = params.map_err(|rejection| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {}", rejection.body_text()),
        )
    })?;
    let from = day_param("from", window.from, "1970-01-01")?;
    let to = day_param("to", window.to, "9999-12-31")?;
    if from > to {
        return Err(bad_param(
            "from",
            "range",
            format!("from ({from}) must not be after to ({to})"),
        ));
    }
    let seals = state.queries.seals(&caller.tenant, &from, &to).await?;
    let seals = seals
        .into_iter()
        .map(|stored| {
            // What the note says, as far as it reads (`verify` says whether it should be trusted).
            let seal = note::parse(stored.note.as_bytes())
                .ok()
                .and_then(|n| Seal::parse(&n.text).ok());
            let b64 = |h: &[u8; 32]| sealtrail_core::Hash(*h).to_base64();
            ListedSeal {
                day: stored.day,
                issue: stored.issue,
                size: seal.as_ref().map(|s| s.size),
                root: seal.as_ref().map(|s| s.root.to_base64()),
                previous: seal.as_ref().and_then(|s| s.previous.as_ref().map(b64)),
                supersedes: seal.as_ref().and_then(|s| s.supersedes.as_ref().map(b64)),
                created_at: stored.created_at,
                note: stored.note,
            }
        })
        .collect();
    Ok(Json(SealList {
        tenant: caller.tenant.clone(),
        seals,
    }))
}

/// `GET /v1/log/seals/{date}`: the day's newest seal (its latest issue), the signed note.
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(date): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::LogRead)?;
    let day = day_param("date", Some(date), "")?;
    let seals = state.queries.seals(&caller.tenant, &day, &day).await?;
    match seals.into_iter().last() {
        Some(seal) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            seal.note,
        )
            .into_response()),
        None => Err(ApiError::not_found(format!(
            "no seal for {day}: a day is sealed shortly after it ends (UTC), from the day the log was created"
        ))),
    }
}
