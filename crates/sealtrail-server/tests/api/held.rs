//! A frozen tenant under `on_frozen = "spool"`: its events are accepted durably (`202 held`)
//! but kept out of its log while it is frozen, survive a restart, and enter the log once it
//! is unfrozen — in the order they were accepted, under the ids they were acknowledged with,
//! exactly once — with a `sealtrail.tenant.held_drained` record in `_system`. Other tenants
//! are not affected.
//!
//! Metrics are process-wide and the tests of this binary run in parallel, so each test uses
//! tenant names of its own.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sealtrail_server::config::FrozenPolicy;
use sealtrail_server::ledger::{Ledger, LedgerConfig};

use crate::helpers::{TestApp, event, spawn_app_in};

async fn set_frozen(app: &TestApp, admin: &str, tenant: &str, action: &str) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/{action}")))
        .bearer_auth(admin)
        .json(&json!({"reason": format!("{action} for the held-events test")}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "{action} {tenant}");
    response.json().await.unwrap()
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// `POST /v1/events` with an `Idempotency-Key` header.
async fn post_keyed(app: &TestApp, token: &str, key: &str, event: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(event)
        .send()
        .await
        .expect("request sent")
}

/// The answer of a held event: `202 {"status": "held", "id", "received_at"}`.
async fn held(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "held", "{body}");
    assert!(body.get("seq").is_none(), "{body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["received_at"].as_str().unwrap().to_string(),
    )
}

/// How many events `GET /v1/admin/tenants` says this instance holds for `tenant`.
async fn listed_held(app: &TestApp, admin: &str, tenant: &str) -> u64 {
    let listing = get(app, "/v1/admin/tenants", admin).await;
    listing["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tenant)
        .expect("the tenant is listed")["held"]
        .as_u64()
        .unwrap()
}

/// One sample of `/metrics`, if it is exposed.
async fn sample(app: &TestApp, series: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// The entries of `tenant`'s log, parsed, once it holds `size` of them (the drain runs on the
/// writer thread, just after the unfreeze).
async fn wait_for_log(app: &TestApp, tenant: &str, size: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.log_size(tenant) < size {
        assert!(
            Instant::now() < deadline,
            "{tenant}'s log holds {} entries, not {size}",
            app.log_size(tenant)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.entries(tenant)
        .iter()
        .map(|entry| serde_json::from_slice(entry).expect("JSON"))
        .collect()
}

/// The `_system` log's entries with `action`, parsed, oldest first.
fn system_records(app: &TestApp, action: &str) -> Vec<Value> {
    app.entries("_system")
        .iter()
        .map(|entry| serde_json::from_slice::<Value>(entry).expect("JSON"))
        .filter(|entry| entry["action"] == action)
        .collect()
}

fn hold_file(app: &TestApp, tenant: &str) -> std::path::PathBuf {
    app.data
        .join("spool")
        .join("frozen")
        .join(format!("{tenant}.spool"))
}

#[tokio::test]
async fn a_frozen_tenants_events_are_held_across_a_restart_and_drain_in_order_on_unfreeze() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let spool =
        |s: &mut sealtrail_server::config::Settings| s.on_frozen = Some(FrozenPolicy::Spool);
    let app = spawn_app_in(dir.clone(), spool).await;
    let admin = app.admin_token.clone();
    let (acme, beta) = ("held-acme", "held-beta");
    let writer = app.token(acme, &["events:write"]).await;
    let reader = app
        .token(acme, &["events:read", "log:read", "verify"])
        .await;
    let other = app.token(beta, &["events:write"]).await;
    assert_eq!(app.post_event(&writer, &event(0)).await.status(), 201);
    let first = post_keyed(&app, &writer, "k-1", &event(1)).await;
    assert_eq!(first.status(), 201);
    let committed: Value = first.json().await.unwrap();

    let frozen = set_frozen(&app, &admin, acme, "freeze").await;
    assert_eq!(
        (&frozen["frozen"], &frozen["held"]),
        (&json!(true), &json!(0))
    );

    // Accepted, durably, and answered with the id and time the entry will have.
    let mut acknowledged = Vec::new();
    acknowledged.push(held(app.post_event(&writer, &event(10)).await).await);
    let keyed = held(post_keyed(&app, &writer, "k-11", &event(11)).await).await;
    acknowledged.push(keyed.clone());
    // A retry while held gets the same answer; a different event under the key is refused
    // as the log would refuse it, naming the held event.
    assert_eq!(
        held(post_keyed(&app, &writer, "k-11", &event(11)).await).await,
        keyed
    );
    let conflict = post_keyed(&app, &writer, "k-11", &event(99)).await;
    assert_eq!(conflict.status(), 422);
    let error: Value = conflict.json().await.unwrap();
    assert_eq!(error["rule"], "idempotency_conflict", "{error}");
    assert_eq!(error["original"]["id"], keyed.0.as_str(), "{error}");
    // A key the log already holds gets the log's answer: the original receipt.
    let retry = post_keyed(&app, &writer, "k-1", &event(1)).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.json::<Value>().await.unwrap(), committed);
    // A batch: each valid event held, an invalid one refused on its own.
    let mut keyed_in_body = event(13);
    keyed_in_body["idempotency_key"] = json!("k-13");
    let batch = app
        .post_batch(&writer, &json!([event(12), keyed_in_body, {"action": "x"}]))
        .await;
    assert_eq!(batch.status(), 200);
    let results: Value = batch.json().await.unwrap();
    for i in 0..2 {
        let result = &results[i];
        assert_eq!(
            (&result["status"], &result["held"]),
            (&json!(202), &json!(true))
        );
        assert!(result.get("seq").is_none(), "{result}");
        acknowledged.push((
            result["id"].as_str().unwrap().to_string(),
            result["received_at"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(results[2]["status"], 422, "{results}");
    assert!(results[2].get("held").is_none(), "{results}");

    // Nothing of it is in the log: not in its size, not in a search.
    assert_eq!(app.log_size(acme), 2);
    let page = get(&app, "/v1/events?limit=100&wait_for_seq=1", &reader).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(listed_held(&app, &admin, acme).await, 4);
    let gauge = format!("sealtrail_held_events{{tenant=\"{acme}\"}}");
    assert_eq!(sample(&app, &gauge).await, Some(4.0));
    let counted = format!("sealtrail_events_ingested_total{{tenant=\"{acme}\",outcome=\"held\"}}");
    assert_eq!(
        sample(&app, &counted).await,
        Some(5.0),
        "4 held and 1 retry"
    );
    assert!(hold_file(&app, acme).exists());
    // Another tenant is not affected.
    assert_eq!(app.post_event(&other, &event(20)).await.status(), 201);
    assert_eq!(app.log_size(beta), 1);
    app.stop().await;

    // A restart keeps the held events, and the tenant stays frozen.
    let app = spawn_app_in(dir, spool).await;
    assert_eq!(listed_held(&app, &admin, acme).await, 4);
    acknowledged.push(held(app.post_event(&writer, &event(14)).await).await);
    assert_eq!(listed_held(&app, &admin, acme).await, 5);
    assert_eq!(app.log_size(acme), 2);

    // Unfrozen through this instance: the held events drain at once, in the order they were
    // accepted, each under the id and time it was acknowledged with, exactly once.
    let unfrozen = set_frozen(&app, &admin, acme, "unfreeze").await;
    assert_eq!(unfrozen["frozen"], false);
    assert!(unfrozen["held"].as_u64().unwrap() <= 5, "{unfrozen}");
    let entries = wait_for_log(&app, acme, 7).await;
    let drained: Vec<(String, String)> = entries[2..]
        .iter()
        .map(|entry| {
            (
                entry["id"].as_str().unwrap().to_string(),
                entry["received_at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(drained, acknowledged);
    let sources: Vec<&Value> = entries.iter().map(|e| &e["source"]["seq"]).collect();
    assert_eq!(
        sources,
        [
            &json!(0),
            &json!(1),
            &json!(10),
            &json!(11),
            &json!(12),
            &json!(13),
            &json!(14)
        ]
    );
    assert_eq!(entries[5]["idempotency_key"], "k-13");
    // Newer events come after them, and the log verifies whole.
    assert_eq!(app.post_event(&writer, &event(15)).await.status(), 201);
    assert_eq!(app.log_size(acme), 8);
    let verified = get(&app, "/v1/verify", &reader).await;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["rows_checked"], 8, "{verified}");

    // The drain is recorded in _system, once, with the count; nothing is held any more.
    let records = system_records(&app, "sealtrail.tenant.held_drained");
    assert_eq!(records.len(), 1, "{records:?}");
    let details = &records[0]["details"];
    assert_eq!(details["tenant"], acme);
    assert_eq!(details["events"], 5);
    assert_eq!(details["first_held_at"], acknowledged[0].1.as_str());
    assert_eq!(details["last_held_at"], acknowledged[4].1.as_str());
    assert_eq!(
        records[0]["targets"],
        json!([{"type": "tenant", "id": acme}])
    );
    assert_eq!(listed_held(&app, &admin, acme).await, 0);
    assert_eq!(sample(&app, &gauge).await, Some(0.0));
    assert!(!hold_file(&app, acme).exists());
    app.stop().await;
}

/// An unfreeze made elsewhere — by `sealtrail unfreeze` on the store, here its write path in
/// this process — is not this instance's to be told of: its writer reads the frozen tenants
/// again within the re-check interval and drains then. Events sent meanwhile, which this
/// instance may still see as frozen or already as unfrozen, enter the log after the held ones.
#[tokio::test]
async fn an_unfreeze_made_elsewhere_drains_the_held_events_within_the_recheck_interval() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| {
        s.on_frozen = Some(FrozenPolicy::Spool);
        s.token_recheck_ms = Some(300);
    })
    .await;
    let admin = app.admin_token.clone();
    let tenant = "held-gamma";
    let writer = app.token(tenant, &["events:write"]).await;
    set_frozen(&app, &admin, tenant, "freeze").await;
    let mut acknowledged = Vec::new();
    for n in 0..3 {
        acknowledged.push(held(app.post_event(&writer, &event(n)).await).await.0);
    }
    assert_eq!(app.log_size(tenant), 0);

    let elsewhere = Ledger::start(LedgerConfig {
        data_dir: app.data.clone(),
        store: sealtrail_store::Location::new(&app.data, None),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(60),
        origin_prefix: "sealtrail.local".into(),
        audit_stdout: false,
    })
    .unwrap();
    let change = elsewhere
        .unfreeze(tenant, "lifted from the command line", "cli:ops")
        .await
        .unwrap();
    assert!(change.changed);
    elsewhere.shutdown();
    // Sent at once: held behind the others, or appended after their drain.
    let status = app.post_event(&writer, &event(3)).await.status();
    assert!(status == 202 || status == 201, "{status}");

    let entries = wait_for_log(&app, tenant, 4).await;
    let ids: Vec<&str> = entries[..3]
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, acknowledged);
    assert_eq!(entries[3]["source"]["seq"], 3);
    assert_eq!(
        system_records(&app, "sealtrail.tenant.held_drained").len(),
        1
    );
    app.stop().await;
}
