//! `GET /v1/alerts`: the alerts the monitoring rules raised in the caller's log
//! (`crate::monitor`), read back from their `sealtrail.alert.raised` events through the query
//! index, newest first. Scope `reports` or `events:read`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use sealtrail_core::Timestamp;
use serde::Serialize;

use super::error::bad_param;
use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::index::{Index, Order, Search};
use crate::monitor::alerts::{ALERT_ACTION, AlertRecord, MONITOR_ACTOR};
use crate::query::decode_cursor;

/// The most alerts one page holds.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/alerts", get(list))
}

/// A page of alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    alerts: Vec<AlertRecord>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The alerts raised in the caller's log, newest first (`order=asc` for oldest first).
///
/// Each is the `sealtrail.alert.raised` event the monitor appended: the rule, the group
/// (`key`), the window, the count and the seqs of the events behind it, and `seq`, the
/// alert's own entry — which has an inclusion proof like any event.
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    params(
        ("from" = Option<crate::http::ops::TimestampSchema>, Query, description = "Alerts raised at or after (RFC 3339)"),
        ("to" = Option<crate::http::ops::TimestampSchema>, Query, description = "Alerts raised before (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
        ("order" = Option<String>, Query, pattern = "^(asc|desc)$", description = "`desc` (default, newest first) or `asc`"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The alerts", body = AlertPage),
        (status = 400, description = "A parameter that does not read; `field` names it", body = crate::http::error::ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = crate::http::error::ApiErrorBody),
        (status = 403, description = "The token has neither reports nor events:read", body = crate::http::error::ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(index): Extension<Index>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    if caller.require(Scope::Reports).is_err() {
        caller.require(Scope::EventsRead)?;
    }
    let Query(pairs) = query.map_err(|e| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {e}"),
        )
    })?;
    let mut search = Search::unfiltered(DEFAULT_LIMIT);
    search.action = Some(ALERT_ACTION.to_string());
    search.actor = Some(MONITOR_ACTOR.to_string());
    search.order = Order::Desc;
    let mut cursor = None;
    for (name, value) in pairs {
        match name.as_str() {
            "from" => search.from = Some(timestamp("from", &value)?),
            "to" => search.to = Some(timestamp("to", &value)?),
            "limit" => {
                search.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad_param("limit", "range", "must be an integer from 1 to 1000")
                    })?
            }
            "order" => {
                search.order = match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => return Err(bad_param("order", "enum", "must be asc or desc")),
                }
            }
            "cursor" if value.is_empty() => {}
            "cursor" => {
                cursor = Some(decode_cursor(&value).ok_or_else(|| {
                    bad_param(
                        "cursor",
                        "cursor",
                        "is not a cursor from this API; pass next_cursor of the previous page unchanged",
                    )
                })?)
            }
            _ => {
                let shown: String = name.chars().take(64).collect();
                return Err(bad_param(
                    &shown,
                    "unknown_parameter",
                    "is not a parameter of this route; the parameters are from, to, limit, order, cursor",
                ));
            }
        }
    }
    if let (Some(from), Some(to)) = (search.from, search.to)
        && from > to
    {
        return Err(bad_param("to", "range", "must not be earlier than from"));
    }
    if let Some((order, seq)) = cursor {
        if order != search.order {
            return Err(bad_param(
                "cursor",
                "cursor",
                "continues a listing in the other order; ask with the order it came from",
            ));
        }
        search.after = Some(seq);
    }
    let page = state.queries.search(&index, &caller.tenant, search).await?;
    Ok(Json(AlertPage {
        alerts: page
            .events
            .iter()
            .filter_map(AlertRecord::from_json)
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| bad_param(name, "timestamp", e.to_string()))
}
