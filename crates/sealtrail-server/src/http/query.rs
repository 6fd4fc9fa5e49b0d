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
//! Content always comes from the log; the index only says which seqs match. The handlers find
//! the [`Index`] as a request extension, which the application adds next to [`AppState`].
//!
//! ## Decisions
//!
//! - **Strict parameters.** An unknown or repeated parameter is a 400, like a malformed one:
//!   a typo such as `actr=u-1` must not silently widen an audit query to every event. Every
//!   400 names the parameter (`field`) and the broken rule (`rule`).
//! - **Read your writes.** `wait_for_seq=N` waits until the tenant's index covers seq `N`, at
//!   most [`MAX_WAIT`] (5 s), then answers 503 `index_lagging`. A seq the log does not hold
//!   yet is a 400 at once: waiting for it could only time out.
//! - **Cursors** are opaque to clients; inside they hold the order and the last seq returned.
//!   Pages are keyset pages (`seq > cursor`), so a listing never repeats or skips an event
//!   while the log grows, and a cursor stays valid forever. A cursor from an `asc` listing
//!   used with `order=desc` (or the reverse) is refused.
//! - **Proofs without a checkpoint.** `GET /v1/events/{id}` proves inclusion in the latest
//!   signed checkpoint. An event newer than that checkpoint is proven against the current
//!   committed tree instead, with `"checkpoint": null`, rather than holding the request until
//!   the next checkpoint: the answer is immediate and says plainly that the root is not signed
//!   yet. Checkpoints are signed within the checkpoint interval (1 s by default) of growth, so
//!   asking again then gives the signed proof.
//! - **Tenants.** The tenant comes only from [`Caller`]. Another tenant's event id gets the
//!   same 404 as an id that does not exist, so ids do not reveal other tenants' events.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sealtrail_core::Timestamp;
use sealtrail_core::canonical::event_hash;
use sealtrail_core::event::{Activity, Outcome};
use sealtrail_core::merkle;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::auth::Scope;
use crate::index::{self, Index, IndexError, Order, Search};
use sealtrail_store::{self as store, StoreHashes};

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// How long `wait_for_seq` waits for the index at most.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
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

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> ApiError {
        tracing::error!(%error, "query index error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_unavailable",
            format!("the query index cannot serve this request: {error}"),
        )
    }
}

/// A 400 naming the parameter and the rule; the message starts with the parameter's name.
fn bad_param(field: &str, rule: &'static str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        error: "bad_request",
        message: format!("{field}: {message}"),
        field: Some(field.to_string()),
        rule: Some(rule),
    }
}

/// `GET /v1/events` as parsed.
#[derive(Debug)]
struct ListRequest {
    search: Search,
    wait_for_seq: Option<u64>,
}

fn parse_list_request(pairs: Vec<(String, String)>) -> Result<ListRequest, ApiError> {
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
            "cursor" => cursor = Some(decode_cursor(&value)?),
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

const CURSOR_VERSION: &str = "v1";

fn encode_cursor(order: Order, seq: u64) -> String {
    let order = match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    };
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}:{order}:{seq}"))
}

fn decode_cursor(text: &str) -> Result<(Order, u64), ApiError> {
    let invalid = || {
        bad_param(
            "cursor",
            "cursor",
            "is not a cursor from this API; pass next_cursor of the previous page unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    let (Some(CURSOR_VERSION), Some(order), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let order = match order {
        "asc" => Order::Asc,
        "desc" => Order::Desc,
        _ => return Err(invalid()),
    };
    let seq = seq.parse().map_err(|_| invalid())?;
    Ok((order, seq))
}

/// A stored entry as the API shows it: its JSON object plus `event_hash`.
fn event_json(entry: &[u8]) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(entry)
        .map_err(|e| ApiError::internal(format!("a stored entry is not JSON: {e}")))?;
    let Value::Object(object) = &mut value else {
        return Err(ApiError::internal("a stored entry is not a JSON object"));
    };
    object.insert(
        "event_hash".to_string(),
        Value::String(event_hash(entry).to_hex()),
    );
    Ok(value)
}

async fn list_events(
    State(state): State<AppState>,
    Extension(index): Extension<Index>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let tenant = caller.tenant;

    if let Some(seq) = wait_for_seq {
        let size = state.ledger.head(&tenant).map_or(0, |head| head.size);
        if seq >= size {
            return Err(bad_param(
                "wait_for_seq",
                "range",
                format!("this log holds {size} entries, so seq {seq} does not exist yet"),
            ));
        }
        if let Err(reached) = index.wait_for(&tenant, seq, MAX_WAIT).await {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_lagging",
                format!(
                    "the index covers this log up to {reached} entries after {} s, not yet seq {seq}; retry shortly",
                    MAX_WAIT.as_secs()
                ),
            );
            error.field = Some("wait_for_seq".to_string());
            return Err(error);
        }
    }

    let page = state
        .readers
        .with(move |log| {
            let Some(number) = index.tenant_number(&tenant) else {
                return Ok(json!({"events": [], "next_cursor": null}));
            };
            let limit = search.limit;
            // One more than a page tells whether another page follows.
            let seqs = {
                let reader = index.reader()?;
                index::search(
                    &reader,
                    number,
                    &Search {
                        limit: limit + 1,
                        ..search.clone()
                    },
                )?
            };
            let page = &seqs[..seqs.len().min(limit)];
            let mut events = Vec::with_capacity(page.len());
            for &seq in page {
                // Indexed entries are committed; one can only be missing if retention pruned
                // it after it was indexed, and then it is no longer an event to show.
                if let Some(entry) = log.entry(&tenant, seq)? {
                    events.push(event_json(&entry)?);
                }
            }
            let next_cursor = match page.last() {
                Some(&last) if seqs.len() > limit => Some(encode_cursor(search.order, last)),
                _ => None,
            };
            Ok(json!({"events": events, "next_cursor": next_cursor}))
        })
        .await?;
    Ok(Json(page))
}

async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let not_found = || ApiError::not_found("no event with this id in this log");
    let Path(id) = id.map_err(|_| not_found())?;
    // Ids are stored lowercase and hyphenated; accept any spelling of the same UUID.
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| bad_param("id", "uuid", "must be an event id (a UUID)"))?
        .hyphenated()
        .to_string();
    let tenant = caller.tenant;
    let body = state
        .readers
        .with(move |log| {
            let Some(seq) = log.seq_of_id(&tenant, &id)? else {
                return Ok(None);
            };
            let Some(entry) = log.entry(&tenant, seq)? else {
                return Ok(None);
            };
            // The latest checkpoint covers every seq below its size; if it does not cover
            // this one, no checkpoint does yet.
            let (tree_size, checkpoint) = match log.latest_checkpoint(&tenant)? {
                Some(c) if c.size > seq => (c.size, Some(c.note)),
                _ => (store::tail(log, &tenant)?.size, None),
            };
            let reader = StoreHashes {
                store: log,
                tenant: &tenant,
            };
            let hashes = merkle::inclusion_proof(seq, tree_size, &reader).map_err(|e| {
                ApiError::internal(format!(
                    "cannot build the inclusion proof of seq {seq} in tree size {tree_size}: {e}"
                ))
            })?;
            let hashes: Vec<String> = hashes.iter().map(|h| h.to_hex()).collect();
            Ok(Some(json!({
                "event": event_json(&entry)?,
                "proof": {
                    "leaf_index": seq,
                    "tree_size": tree_size,
                    "hashes": hashes,
                    "checkpoint": checkpoint,
                },
            })))
        })
        .await?;
    body.map(Json).ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for (order, seq) in [(Order::Asc, 0), (Order::Desc, 123_456_789)] {
            let cursor = encode_cursor(order, seq);
            assert_eq!(decode_cursor(&cursor).unwrap(), (order, seq));
        }
        for garbage in ["x", "djE6YXNjOg", "!!", &URL_SAFE_NO_PAD.encode("v2:asc:1")] {
            let error = decode_cursor(garbage).unwrap_err();
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
