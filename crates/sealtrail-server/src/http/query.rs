//! The query API, served from the index behind the write path (see [`crate::index`]):
//!
//! - `GET /v1/events` — search one tenant's log: filters `from`, `to` (RFC 3339; event time,
//!   `from` inclusive, `to` exclusive), `actor`, `action`, `activity`, `outcome`,
//!   `target_type`, `target_id` (both must hold for the same target), `ip`, `source`
//!   (`source.app`), `q` (words in `details`), with `limit` (default 100, at most 1000),
//!   `order=asc|desc` (seq order, default `asc`) and `cursor` (the `next_cursor` of the
//!   previous page; empty means none). Answers `{"events": [...], "next_cursor": string|null}`;
//!   `next_cursor` is null on the last page.
//! - `GET /v1/events/{id}` — one event and its inclusion proof:
//!   `{"event": {...}, "proof": {"leaf_index", "tree_size", "hashes", "checkpoint"}}`.
//!
//! Each event is the stored canonical entry as a JSON object (with its `id`, `seq`,
//! `received_at` and `prev_hash`) plus `event_hash`, the hex leaf hash of the entry bytes.
//! The handlers parse and check the parameters and call the query service
//! ([`crate::query`]), which reads the index and the log, waits for `wait_for_seq` and builds
//! cursors and proofs; the [`Index`] is found as a request extension, which the application
//! adds next to [`AppState`].
//!
//! ## Decisions
//!
//! - **Strict parameters.** An unknown or repeated parameter is a 400, like a malformed one:
//!   a typo such as `actr=u-1` must not silently widen an audit query to every event. Every
//!   400 names the parameter (`field`) and the broken rule (`rule`).
//! - **Searches share the service.** A tenant runs at most `max_searches_per_tenant`
//!   searches at once (beyond: 429 `too_many_searches`, rule `concurrent_searches`, after a
//!   second's wait), the instance at most `max_searches` (503 `search_busy`, rule
//!   `search_capacity`), both with `Retry-After: 1`; a search running longer than
//!   `query_timeout_ms` is stopped (503 `query_timeout`, field `query`). See
//!   [`crate::query::admission`].
//! - **Read your writes.** `wait_for_seq=N` waits until the tenant's index covers seq `N`, at
//!   most [`MAX_WAIT`] (5 s), then answers 503 `index_lagging`. A seq the log does not hold
//!   yet is a 400 at once: waiting for it could only time out. After waiting, the token is
//!   checked again ([`Caller::recheck`]), so that a token revoked during the wait reads nothing
//!   once the re-check interval has passed.
//! - **Cursors** are opaque (see [`crate::query`]). A cursor from an `asc` listing used with
//!   `order=desc` (or the reverse) is refused.
//! - **Tenants.** The tenant comes only from [`Caller`]. Another tenant's event id gets the
//!   same 404 as an id that does not exist, so ids do not reveal other tenants' events.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use sealtrail_core::Timestamp;
use sealtrail_core::event::{Activity, Outcome};

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::index::{self, Index, Order, Search};
pub use crate::query::MAX_WAIT;
use crate::query::{EventWithProof, Page, decode_cursor};

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Longest accepted value of a name filter (the schema's bound on names).
const MAX_NAME_CHARS: usize = 256;
/// Longest accepted `q`.
const MAX_Q_CHARS: usize = 1024;
/// The largest seq a canonical entry can carry (2^53 − 1).
const MAX_SEQ: u64 = (1 << 53) - 1;

const PARAMETERS: &str = "from, to, actor, action, activity, outcome, target_type, target_id, ip, source, q, limit, cursor, order, wait_for_seq";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
}

/// A 400 naming the parameter and the rule; the message starts with the parameter's name.
pub(super) fn bad_param(
    field: &str,
    rule: &'static str,
    message: impl std::fmt::Display,
) -> ApiError {
    ApiError::bad_request(format!("{field}: {message}")).at(field, rule)
}

/// `GET /v1/events` as parsed.
#[derive(Debug)]
pub(super) struct ListRequest {
    pub(super) search: Search,
    wait_for_seq: Option<u64>,
}

pub(super) fn parse_list_request(pairs: Vec<(String, String)>) -> Result<ListRequest, ApiError> {
    let mut search = Search::unfiltered(DEFAULT_LIMIT);
    let mut wait_for_seq = None;
    let mut cursor = None;
    let mut seen = HashSet::new();
    for (name, value) in pairs {
        if !seen.insert(name.clone()) {
            return Err(bad_param(
                &name,
                "duplicate",
                "given more than once; give each parameter at most once",
            ));
        }
        // No filter can match a NUL (events may not contain one), and the index's text
        // search fails on one; either way the request is the client's mistake, said at once.
        if value.contains('\0') {
            let shown: String = name.chars().take(64).collect();
            return Err(bad_param(
                &shown,
                "nul_character",
                "must not contain a NUL character (U+0000): no event holds one",
            ));
        }
        match name.as_str() {
            "from" => search.from = Some(timestamp(&name, &value)?),
            "to" => search.to = Some(timestamp(&name, &value)?),
            "actor" => search.actor = Some(name_value(&name, value)?),
            "action" => search.action = Some(name_value(&name, value)?),
            "target_type" => search.target_type = Some(name_value(&name, value)?),
            "target_id" => search.target_id = Some(name_value(&name, value)?),
            "source" => search.source = Some(name_value(&name, value)?),
            "activity" => {
                let activity = Activity::from_name(&value).ok_or_else(|| {
                    bad_param(
                        &name,
                        "enum",
                        one_of(Activity::ALL.iter().map(|a| a.as_str())),
                    )
                })?;
                search.activity = Some(activity.as_str().to_string());
            }
            "outcome" => {
                let outcome = Outcome::from_name(&value).ok_or_else(|| {
                    bad_param(
                        &name,
                        "enum",
                        one_of(Outcome::ALL.iter().map(|o| o.as_str())),
                    )
                })?;
                search.outcome = Some(outcome.as_str().to_string());
            }
            "ip" => {
                // The same normal form as `context.ip` in stored entries.
                let ip: IpAddr = value.parse().map_err(|_| {
                    bad_param(
                        &name,
                        "ip",
                        "must be an IPv4 or IPv6 address such as 10.1.2.3",
                    )
                })?;
                search.ip = Some(ip.to_string());
            }
            "q" => {
                if value.chars().count() > MAX_Q_CHARS {
                    return Err(bad_param(
                        &name,
                        "max_length",
                        format!("must be at most {MAX_Q_CHARS} characters"),
                    ));
                }
                search.text = Some(index::text_query(&value).ok_or_else(|| {
                    bad_param(&name, "text", "must contain a word of letters or digits")
                })?);
            }
            "limit" => {
                let limit: usize = value.parse().map_err(|_| {
                    bad_param(
                        &name,
                        "type",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )
                })?;
                if !(1..=MAX_LIMIT).contains(&limit) {
                    return Err(bad_param(
                        &name,
                        "range",
                        format!("must be from 1 to {MAX_LIMIT}"),
                    ));
                }
                search.limit = limit;
            }
            "order" => {
                search.order = match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => return Err(bad_param(&name, "enum", "must be asc or desc")),
                }
            }
            // An empty cursor is the first page, so that clients can always send one.
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
            "wait_for_seq" => {
                let seq: u64 = value
                    .parse()
                    .ok()
                    .filter(|seq| *seq <= MAX_SEQ)
                    .ok_or_else(|| {
                        bad_param(&name, "type", "must be a seq: an integer from 0 to 2^53-1")
                    })?;
                wait_for_seq = Some(seq);
            }
            _ => {
                let shown: String = name.chars().take(64).collect();
                return Err(bad_param(
                    &shown,
                    "unknown_parameter",
                    format!("is not a parameter of this route; the parameters are {PARAMETERS}"),
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
    Ok(ListRequest {
        search,
        wait_for_seq,
    })
}

fn one_of<'a>(values: impl Iterator<Item = &'a str>) -> String {
    format!("must be one of {}", values.collect::<Vec<_>>().join(", "))
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| bad_param(name, "timestamp", e))
}

/// A filter on a name (ids, actions, types, apps): 1 to 256 characters, matched exactly.
fn name_value(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(bad_param(name, "min_length", "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(bad_param(
            name,
            "max_length",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(value)
}

async fn list_events(
    State(state): State<AppState>,
    Extension(index): Extension<Index>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let Query(pairs) = query.map_err(|e| {
        bad_param(
            "query",
            "syntax",
            format!("the query string cannot be read: {e}"),
        )
    })?;
    let ListRequest {
        search,
        wait_for_seq,
    } = parse_list_request(pairs)?;
    if let Some(seq) = wait_for_seq {
        state
            .queries
            .wait_for_seq(&index, &caller.tenant, seq)
            .await?;
        // Up to 5 s may have passed since the token was checked: it may have been revoked
        // meanwhile, and nothing is read with a token revoked for longer than the re-check
        // interval.
        caller.recheck(&state).await?;
    }
    let page = state.queries.search(&index, &caller.tenant, search).await?;
    Ok(Json(page))
}

async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EventWithProof>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let not_found = || ApiError::not_found("no event with this id in this log");
    let Path(id) = id.map_err(|_| not_found())?;
    // Ids are stored lowercase and hyphenated; accept any spelling of the same UUID.
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| bad_param("id", "uuid", "must be an event id (a UUID)"))?
        .hyphenated()
        .to_string();
    let found = state.queries.event(&caller.tenant, id).await?;
    found.map(Json).ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::encode_cursor;
    use axum::http::StatusCode;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A NUL in any filter is a 400 naming the filter: before, `q` with one failed in the
    /// index (a 503) and the other filters silently matched nothing.
    #[test]
    fn a_nul_in_any_filter_is_refused_naming_it() {
        let filters = [
            "from",
            "to",
            "actor",
            "action",
            "activity",
            "outcome",
            "target_type",
            "target_id",
            "ip",
            "source",
            "q",
            "limit",
            "cursor",
            "order",
            "wait_for_seq",
        ];
        for filter in filters {
            let error = parse_list_request(pairs(&[(filter, "a\0b")])).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{filter}");
            assert_eq!(error.field.as_deref(), Some(filter), "{filter}");
            assert_eq!(error.rule, Some("nul_character"), "{filter}");
        }
    }

    #[test]
    fn a_cursor_not_from_this_api_is_refused() {
        for garbage in ["x", "djE6YXNjOg", "!!"] {
            let error = parse_list_request(pairs(&[("cursor", garbage)])).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("cursor"), "{garbage}");
            assert_eq!(error.rule, Some("cursor"), "{garbage}");
        }
    }

    #[test]
    fn parameters_are_checked_one_by_one() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("from", "yesterday")], "from", "timestamp"),
            (&[("to", "2026-13-01T00:00:00Z")], "to", "timestamp"),
            (
                &[
                    ("from", "2026-01-02T00:00:00Z"),
                    ("to", "2026-01-01T00:00:00Z"),
                ],
                "to",
                "range",
            ),
            (&[("activity", "reading")], "activity", "enum"),
            (&[("outcome", "ok")], "outcome", "enum"),
            (&[("ip", "10.1.2.3:80")], "ip", "ip"),
            (&[("limit", "0")], "limit", "range"),
            (&[("limit", "1001")], "limit", "range"),
            (&[("limit", "ten")], "limit", "type"),
            (&[("order", "up")], "order", "enum"),
            (&[("actor", "")], "actor", "min_length"),
            (&[("q", "-- !!")], "q", "text"),
            (&[("wait_for_seq", "-1")], "wait_for_seq", "type"),
            (&[("actr", "u-1")], "actr", "unknown_parameter"),
            (&[("actor", "a"), ("actor", "b")], "actor", "duplicate"),
            (
                &[("order", "desc"), ("cursor", &encode_cursor(Order::Asc, 3))],
                "cursor",
                "cursor",
            ),
        ];
        for (query, field, rule) in cases {
            let error = parse_list_request(pairs(query)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{query:?}");
            assert_eq!(error.field.as_deref(), Some(*field), "{query:?}");
            assert_eq!(error.rule, Some(*rule), "{query:?}");
            assert!(error.message.starts_with(field), "{}", error.message);
        }
    }

    #[test]
    fn parameters_are_normalised() {
        let request = parse_list_request(pairs(&[
            ("ip", "2001:DB8::0:1"),
            ("q", "claim-7 \"x"),
            ("cursor", ""),
            ("order", "desc"),
            ("limit", "1000"),
        ]))
        .unwrap();
        assert_eq!(request.search.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(request.search.text.as_deref(), Some(r#""claim-7" """x""#));
        assert_eq!(request.search.after, None);
        assert_eq!(request.search.order, Order::Desc);
        assert_eq!(request.search.limit, 1000);
    }
}
