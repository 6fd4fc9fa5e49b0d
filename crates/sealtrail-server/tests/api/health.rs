//! `/health` as the runbooks need it: what it says survives a restart (it is read from the
//! store), a dropped append-only trigger and a violated chain make the service `failing`.
//!
//! Metrics and the in-memory activity counters are process-wide and the tests of this binary
//! run in parallel, so the counts asserted here are exact counts of one data directory's
//! store, which no counter in memory could produce.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, event, spawn_app_in};
use sealtrail_core::event::Event;
use sealtrail_server::config::Settings;
use sealtrail_server::ledger::Submission;

async fn health(app: &TestApp) -> (u16, Value) {
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn post_events(app: &TestApp, token: &str, count: u64) {
    for n in 0..count {
        assert_eq!(app.post_event(token, &event(n)).await.status(), 201);
    }
}

fn open_db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(sealtrail_store::DataDir::new(&app.data).database())
        .expect("the database opens")
}

#[tokio::test]
async fn after_a_restart_health_reports_the_events_from_before_it() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    let token = app.token("health-restart", &["events:write"]).await;
    post_events(&app, &token, 4).await;
    // A second tenant's events count too, here appended through the ledger in process, which
    // no counter in memory sees; the `_system` log's (tokens, configuration) do not count.
    let other = app.token("health-restart-b", &["events:write"]).await;
    let submissions = (0..3)
        .map(|n| Submission {
            event: Event::parse(event(n).to_string().as_bytes()).unwrap(),
            idempotency_key: None,
        })
        .collect();
    app.ledger
        .append("health-restart-b", submissions)
        .await
        .unwrap();
    drop(other);
    app.stop().await;

    let app = spawn_app_in(dir, |_| {}).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    let checks = &body["checks"];
    assert_eq!(checks["audit_log_count_5m"], 7, "{body}");
    assert_eq!(checks["audit"], "active", "{body}");
    let age = checks["last_event_age_seconds"]
        .as_f64()
        .expect("the last event's age is known after the restart");
    assert!((0.0..300.0).contains(&age), "{body}");
    assert_eq!(checks["protections"], "intact", "{body}");
    let used = checks["disk"]["used_ratio"].as_f64().expect("disk usage");
    assert!((0.0..=1.0).contains(&used), "{body}");
    assert!(
        ["ok", "warning", "critical"].contains(&checks["disk"]["status"].as_str().unwrap()),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_append_only_trigger_makes_health_failing() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |_| {}).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["protections"], "intact", "{body}");

    open_db(&app)
        .execute_batch("DROP TRIGGER hashes_append_only_delete")
        .unwrap();
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failing", "{body}");
    assert_eq!(body["checks"]["protections"], "missing", "{body}");
    let missing = body["checks"]["protections_missing"].to_string();
    assert!(missing.contains("hashes_append_only_delete"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_violated_chain_answers_503_failing_even_with_the_triggers_back() {
    let every_second = |settings: &mut Settings| settings.verify_interval_secs = Some(1);
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, every_second).await;
    let token = app.token("health-chain", &["events:write"]).await;
    post_events(&app, &token, 3).await;

    // Damage one entry the way someone with write access would, then put the trigger back
    // exactly as it was, so that only the chain can tell.
    let db = open_db(&app);
    let trigger: String = db
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'entries_append_only_update'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    db.execute_batch("DROP TRIGGER entries_append_only_update")
        .unwrap();
    db.execute(
        "UPDATE entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'success', 'failure') AS BLOB) WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'health-chain') | 1",
        [],
    )
    .unwrap();
    db.execute_batch(&trigger).unwrap();
    drop(db);

    let mut body = Value::Null;
    let mut status = 0;
    for _ in 0..100 {
        (status, body) = health(&app).await;
        if body["checks"]["chain"] == "violated" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["checks"]["chain"], "violated", "{body}");
    assert_eq!(body["checks"]["protections"], "intact", "{body}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failing", "{body}");
    app.stop().await;
}
