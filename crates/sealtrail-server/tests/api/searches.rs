//! How searches share the service: ingest, `/health` and checkpoints answer while searches
//! take every place searches may take; a tenant beyond its share and an instance beyond its
//! cap are refused after a short wait, with `Retry-After`; a search past its time limit is
//! stopped with `query_timeout`.
//!
//! Searches are kept running for as long as a test needs with the app's search hold (the
//! `test-hooks` feature), which stops every admitted search, once it has read the index, on
//! the store connection it reads its page with: how many run, and what waits for them, is
//! then decided by the service alone, not by timing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{TestApp, event, spawn_app_in};

/// How long a request may take here before it counts as stuck: far more than any answer
/// takes, reached only by a request that waits for the searches the test holds.
const STUCK: Duration = Duration::from_secs(20);

/// A search's answer: its status, body and `Retry-After`.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

/// Sends `count` searches of `query` at once in the background; their answers arrive on
/// `answers` as they come.
fn searches(
    app: &TestApp,
    token: &str,
    query: &str,
    count: usize,
    answers: &mpsc::UnboundedSender<Answer>,
) {
    for _ in 0..count {
        let request = app
            .client
            .get(app.url(&format!("/v1/events?{query}")))
            .bearer_auth(token);
        let answers = answers.clone();
        tokio::spawn(async move {
            let response = request.send().await.expect("request sent");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response.json().await.unwrap_or(Value::Null);
            let _ = answers.send(Answer {
                status,
                body,
                retry_after,
            });
        });
    }
}

/// The next `count` answers; fails the test if they do not all come.
async fn next_answers(answers: &mut mpsc::UnboundedReceiver<Answer>, count: usize) -> Vec<Answer> {
    let mut got = Vec::new();
    while got.len() < count {
        let answer = tokio::time::timeout(STUCK, answers.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} answers came: {got:?}", got.len()))
            .expect("the senders live");
        got.push(answer);
    }
    got
}

/// Waits until at least `count` searches are stopped at the app's hold.
async fn held(app: &TestApp, count: usize) {
    let hold = app.searches.clone();
    let waiting = tokio::task::spawn_blocking(move || hold.wait_for_waiting(count, STUCK))
        .await
        .unwrap();
    assert!(waiting >= count, "{waiting} searches running, not {count}");
}

/// A refusal of a search because too many run: its status, `error` and `rule`, a message,
/// and `Retry-After: 1`.
fn assert_refused(answer: &Answer, status: u16, error: &str, rule: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["error"], error, "{answer:?}");
    assert_eq!(answer.body["rule"], rule, "{answer:?}");
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
}

/// The finding: 17 concurrent slow searches of one tenant made another tenant's ingest,
/// `/health` and checkpoint wait 16–33 s, because every read shared 16 connections and a
/// token's re-check and the health check needed one too. Now searches take at most their
/// tenant's share (4) and the instance's cap (8), and the control path reads on connections
/// of its own: with every place held, a token re-checked in the store (`token_recheck_ms` 0:
/// at every request) and one never seen before can ingest, `/health` and the checkpoint
/// answer, and the searches beyond the share are told so after the queue's second.
#[tokio::test]
async fn ingest_health_and_checkpoints_answer_while_searches_take_every_place() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |settings| settings.token_recheck_ms = Some(0)).await;
    let clinic = app.token("clinic", &["events:write", "log:read"]).await;
    assert_eq!(app.post_event(&clinic, &event(0)).await.status(), 201);
    // The first checkpoint, signed within the test interval of 50 ms.
    let checkpoint = |token: String| {
        let request = app
            .client
            .get(app.url("/v1/log/checkpoint"))
            .bearer_auth(token);
        async move { request.send().await.expect("request sent") }
    };
    let signed = async {
        while checkpoint(clinic.clone()).await.status() != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(STUCK, signed)
        .await
        .expect("a checkpoint is signed");
    let busy = app.token("busy", &["events:read"]).await;
    let other = app.token("other", &["events:read"]).await;

    let held_searches = app.searches.hold();
    let (sender, mut answers) = mpsc::unbounded_channel();
    searches(
        &app,
        &busy,
        "ip=10.1.2.3&outcome=failure&order=desc",
        17,
        &sender,
    );
    held(&app, 4).await;
    searches(&app, &other, "actor=u-1", 4, &sender);
    held(&app, 8).await;

    // Nothing cached helps: a token re-checked in the store, and a new one.
    let rechecked = tokio::time::timeout(STUCK, app.post_event(&clinic, &event(1)))
        .await
        .expect("ingest with a re-checked token answers while searches run");
    assert_eq!(rechecked.status(), 201);
    let fresh = app.token("clinic", &["events:write", "log:read"]).await;
    let ingest = tokio::time::timeout(STUCK, app.post_event(&fresh, &event(2)))
        .await
        .expect("ingest answers while searches run");
    assert_eq!(ingest.status(), 201);
    let health = tokio::time::timeout(STUCK, app.client.get(app.url("/health")).send())
        .await
        .expect("/health answers while searches run")
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["checks"]["store"], "ok", "{health}");
    let note = tokio::time::timeout(STUCK, checkpoint(fresh.clone()))
        .await
        .expect("the checkpoint answers while searches run");
    assert_eq!(note.status(), 200);
    assert!(
        note.text()
            .await
            .unwrap()
            .starts_with("sealtrail.local/clinic\n")
    );
    // All that while, the eight searches were still running: none had to end first.
    assert_eq!(app.searches.waiting(), 8);

    // The 13 searches beyond busy's share waited their second and were refused.
    for answer in next_answers(&mut answers, 13).await {
        assert_refused(&answer, 429, "too_many_searches", "concurrent_searches");
        assert_eq!(answer.body["field"], "Authorization");
    }
    held_searches.release();
    for answer in next_answers(&mut answers, 8).await {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, json!({"events": [], "next_cursor": null}));
    }
    app.stop().await;
}

/// The control path reads on store connections of its own: even with every other
/// connection taken — limits raised so that 20 searches are let in, 12 of them holding the
/// 12 general connections and 8 waiting for one — a new token, `/health` and the checkpoint
/// are read at once.
#[tokio::test]
async fn the_control_path_keeps_connections_no_other_read_can_take() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |settings| {
        settings.max_searches = Some(64);
        settings.max_searches_per_tenant = Some(64);
    })
    .await;
    let busy = app.token("busy", &["events:read"]).await;
    let held_searches = app.searches.hold();
    let (sender, mut answers) = mpsc::unbounded_channel();
    searches(&app, &busy, "actor=u-1", 20, &sender);
    held(&app, sealtrail_server::readers::GENERAL_READERS).await;

    let fresh = app.token("clinic", &["events:write", "log:read"]).await;
    let ingest = tokio::time::timeout(STUCK, app.post_event(&fresh, &event(0)))
        .await
        .expect("ingest answers while every general connection is taken");
    assert_eq!(ingest.status(), 201);
    let health = tokio::time::timeout(STUCK, app.client.get(app.url("/health")).send())
        .await
        .expect("/health answers while every general connection is taken")
        .unwrap();
    assert_eq!(health.status(), 200);
    let key = app.client.get(app.url("/v1/log/key")).bearer_auth(&fresh);
    let key = tokio::time::timeout(STUCK, key.send())
        .await
        .expect("the log key answers while every general connection is taken")
        .unwrap();
    assert_eq!(key.status(), 200);
    assert_eq!(
        app.searches.waiting(),
        sealtrail_server::readers::GENERAL_READERS
    );

    held_searches.release();
    for answer in next_answers(&mut answers, 20).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    app.stop().await;
}

/// A tenant with its share of searches running waits the queue's second for one more, then
/// gets 429, while another tenant's search is admitted; with the instance's cap reached, a
/// third tenant's search gets 503 `search_capacity`. Both say when to retry. Once the
/// searches end, their places are free again.
#[tokio::test]
async fn a_tenant_beyond_its_share_gets_429_and_an_instance_beyond_its_cap_503() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |settings| {
        settings.max_searches = Some(3);
        settings.max_searches_per_tenant = Some(2);
    })
    .await;
    let acme = app.token("acme", &["events:read"]).await;
    let globex = app.token("globex", &["events:read"]).await;
    let initech = app.token("initech", &["events:read"]).await;

    let held_searches = app.searches.hold();
    let (sender, mut answers) = mpsc::unbounded_channel();
    searches(&app, &acme, "outcome=failure", 2, &sender);
    held(&app, 2).await;
    searches(&app, &acme, "outcome=failure", 1, &sender);
    let [beyond_share] = <[Answer; 1]>::try_from(next_answers(&mut answers, 1).await).unwrap();
    assert_refused(
        &beyond_share,
        429,
        "too_many_searches",
        "concurrent_searches",
    );
    assert_eq!(beyond_share.body["field"], "Authorization");
    assert!(
        beyond_share.body["message"]
            .as_str()
            .unwrap()
            .contains("2 searches at once"),
        "{beyond_share:?}"
    );

    // Another tenant is not held back by acme's share.
    searches(&app, &globex, "outcome=failure", 1, &sender);
    held(&app, 3).await;
    searches(&app, &initech, "outcome=failure", 1, &sender);
    let [beyond_cap] = <[Answer; 1]>::try_from(next_answers(&mut answers, 1).await).unwrap();
    assert_refused(&beyond_cap, 503, "search_busy", "search_capacity");
    assert_eq!(app.searches.waiting(), 3);

    held_searches.release();
    for answer in next_answers(&mut answers, 3).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    searches(&app, &acme, "outcome=failure", 2, &sender);
    for answer in next_answers(&mut answers, 2).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    app.stop().await;
}

/// Words that every event of [`heavy_event`] holds in its details.
const WORDS: usize = 100;

/// An event whose details hold [`WORDS`] words: a search for all of them reads every
/// event's entry in each word's list of the full-text index.
fn heavy_event(n: u64) -> Value {
    let words: Vec<String> = (0..WORDS).map(|w| format!("w{w}")).collect();
    json!({
        "action": "patient.record.read",
        "outcome": "success",
        "actor": {"id": format!("u-{}", n % 7)},
        "details": {"note": words.join(" ")},
    })
}

/// A search that runs past `query_timeout_ms` is stopped inside SQLite and answered 503
/// `query_timeout`, naming the query as what to change; a short search on the same instance
/// is answered as usual. The limit is 1 ms, and the slow search is a real one: every word of
/// 5,000 events' details, and an actor none of them has, so the full-text index walks all
/// 5,000 entries of each of 100 words' lists (half a million list entries) and finds
/// nothing — work no machine does in a millisecond. The short search reads one row of the
/// index, fewer steps than SQLite takes between two looks at the clock, so it is never
/// stopped. Nothing else is affected: ingest and `/health` answer as before.
#[tokio::test]
async fn a_search_past_the_time_limit_gets_query_timeout() {
    const EVENTS: u64 = 5_000;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |settings| settings.query_timeout_ms = Some(1)).await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    for batch in 0..EVENTS / 1_000 {
        let events: Vec<Value> = (batch * 1_000..(batch + 1) * 1_000)
            .map(heavy_event)
            .collect();
        assert_eq!(app.post_batch(&writer, &events).await.status(), 200);
    }
    let get = |query: String| {
        let request = app
            .client
            .get(app.url(&format!("/v1/events?{query}")))
            .bearer_auth(&reader);
        async move {
            let response = request.send().await.expect("request sent");
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = get(format!("limit=1&wait_for_seq={}", EVENTS - 1)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["seq"], 0);

    let words: Vec<String> = (0..WORDS).map(|w| format!("w{w}")).collect();
    let (status, body) = get(format!("q={}&actor=nobody", words.join("+"))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "query_timeout");
    assert_eq!(body["rule"], "query_timeout");
    assert_eq!(body["field"], "query");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("1 ms (query_timeout_ms)"), "{message}");

    let (status, page) = get("limit=1&order=desc".to_string()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["seq"], EVENTS - 1);
    assert_eq!(
        app.post_event(&writer, &heavy_event(EVENTS)).await.status(),
        201
    );
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}
