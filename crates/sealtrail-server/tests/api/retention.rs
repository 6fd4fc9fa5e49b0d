//! Retention through the admin API and the server's schedule: a tenant's period set, read and
//! removed, each change recorded in the `_system` log; every bad request refused naming the
//! field; and, with an archive, the schedule pruning what is old enough, archived and not held
//! — a clock the test holds moves two days on — while the log still verifies, a kept event
//! still proves its inclusion, and a legal hold keeps what it covers until it is released.
//!
//! Metrics are process-wide and the tests of this binary run in parallel, so each test uses
//! tenant names of its own.

use std::collections::HashMap;
use std::time::Duration;

use sealtrail_core::Hash;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::verify_inclusion;
use sealtrail_core::note::VerifierKey;
use sealtrail_server::clock::{Clock, ManualClock};
use sealtrail_server::config::TenantSettings;
use sealtrail_server::ledger::{LedgerError, PruneRequest, Refusal};
use serde_json::{Value, json};

use crate::helpers::{Database, TestApp, event, spawn_app, spawn_app_in, spawn_app_with_clock};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    send(app, reqwest::Method::GET, token, path, None).await
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    send(app, reqwest::Method::PUT, token, path, Some(body)).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    send(app, reqwest::Method::POST, token, path, Some(body)).await
}

/// The id of the admin token created on first start.
async fn admin_token_id(app: &TestApp) -> String {
    let (_, list) = get(app, &app.admin_token, "/v1/admin/tokens").await;
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "_system")
        .expect("the first admin token is listed")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_period_is_set_read_and_removed_each_change_recorded_and_bad_requests_named() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |settings| settings.retention_days = Some(3650)).await;
    let admin = app.admin_token.clone();
    let admin_id = admin_token_id(&app).await;
    let tenant_token = app.token("ret-api", &["events:write", "events:read"]).await;
    let path = "/v1/admin/tenants/ret-api/retention";

    // The configuration's period, before any is set here.
    let (status, state) = get(&app, &admin, path).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        state,
        json!({"tenant": "ret-api", "period": {"days": 3650, "source": "config"},
               "pruned_below": 0, "archive_watermark": null})
    );

    // Set: it comes first; set again: nothing changes, nothing is recorded.
    let (status, set) = put(&app, &admin, path, &json!({"days": 30})).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["changed"], true);
    assert_eq!(
        (set["days_before"].clone(), set["days_after"].clone()),
        (Value::Null, json!(30))
    );
    assert_eq!(set["period"], json!({"days": 30, "source": "admin_api"}));
    let (_, again) = put(&app, &admin, path, &json!({"days": 30})).await;
    assert_eq!(again["changed"], false, "{again}");
    let (_, state) = get(&app, &admin, path).await;
    assert_eq!(state["period"], json!({"days": 30, "source": "admin_api"}));
    let (_, changed) = put(&app, &admin, path, &json!({"days": 90})).await;
    assert_eq!(
        (
            changed["days_before"].clone(),
            changed["days_after"].clone()
        ),
        (json!(30), json!(90))
    );

    // Removed: the configuration's applies again.
    let (status, removed) = put(&app, &admin, path, &json!({"days": null})).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["changed"], true);
    assert_eq!(removed["days_after"], Value::Null);
    assert_eq!(removed["period"], json!({"days": 3650, "source": "config"}));

    // Each change, and only each change, is in the _system log with the admin token as actor.
    let records: Vec<Value> = app
        .entries("_system")
        .iter()
        .map(|entry| serde_json::from_slice::<Value>(entry).unwrap())
        .filter(|entry| entry["action"] == "sealtrail.retention.period_set")
        .collect();
    let details: Vec<&Value> = records.iter().map(|r| &r["details"]).collect();
    assert_eq!(
        details,
        [
            &json!({"tenant": "ret-api", "days_before": null, "days_after": 30, "actor": admin_id}),
            &json!({"tenant": "ret-api", "days_before": 30, "days_after": 90, "actor": admin_id}),
            &json!({"tenant": "ret-api", "days_before": 90, "days_after": null, "actor": admin_id}),
        ]
    );
    assert!(records.iter().all(|r| r["actor"]["id"] == admin_id.as_str()
        && r["targets"][0] == json!({"type": "tenant", "id": "ret-api"})));

    // Every bad body is refused, naming the field and the rule; nothing is recorded for it.
    for (body, field, rule) in [
        (json!({}), "days", "required"),
        (json!({"days": 0}), "days", "range"),
        (json!({"days": 36501}), "days", "range"),
        (json!({"days": -5}), "days", "range"),
        (json!({"days": "30"}), "days", "type"),
        (json!({"days": 1.5}), "days", "type"),
        (json!({"days": true}), "days", "type"),
        (
            json!({"days": 30, "reason": "x"}),
            "reason",
            "unknown_field",
        ),
        (json!([30]), "", "type"),
    ] {
        let (status, error) = put(&app, &admin, path, &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some(field), Some(rule)),
            "{body}: {error}"
        );
    }
    let response = app
        .client
        .put(app.url(path))
        .bearer_auth(&admin)
        .body("days=30")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let (status, _) = get(&app, &admin, path).await;
    assert_eq!(status, 200);
    let records_after = app
        .entries("_system")
        .iter()
        .filter(|e| String::from_utf8_lossy(e).contains("sealtrail.retention.period_set"))
        .count();
    assert_eq!(records_after, 3);

    // An unknown tenant is not found; _system has no period; a tenant's token is kept out.
    for (status, error) in [
        get(&app, &admin, "/v1/admin/tenants/nobody/retention").await,
        put(
            &app,
            &admin,
            "/v1/admin/tenants/nobody/retention",
            &json!({"days": 1}),
        )
        .await,
        get(&app, &admin, "/v1/admin/tenants/nobody/retention/report").await,
    ] {
        assert_eq!(status, 404, "{error}");
        assert_eq!(error["error"], "not_found");
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some("tenant"), Some("unknown_tenant"))
        );
    }
    for (status, error) in [
        get(&app, &admin, "/v1/admin/tenants/_system/retention").await,
        put(
            &app,
            &admin,
            "/v1/admin/tenants/_system/retention",
            &json!({"days": 1}),
        )
        .await,
        get(&app, &admin, "/v1/admin/tenants/_system/retention/report").await,
    ] {
        assert_eq!(status, 400, "{error}");
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some("tenant"), Some("reserved"))
        );
    }
    let (status, _) = get(&app, &admin, "/v1/admin/tenants/Not-A-Name/retention").await;
    assert_eq!(status, 400);
    let (status, _) = put(&app, &tenant_token, path, &json!({"days": 1})).await;
    assert_eq!(status, 403);
    let (status, _) = get(&app, &tenant_token, path).await;
    assert_eq!(status, 403);

    // The report, without an archive configured: the period, and no prune.
    let (status, report) = get(&app, &admin, &format!("{path}/report")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tenant"], "ret-api");
    assert_eq!(report["period"], json!({"days": 3650, "source": "config"}));
    assert_eq!(report["prunes"], json!([]));
    assert_eq!(report["archive_check"], Value::Null);
    let response = app
        .client
        .get(app.url(&format!("{path}/report?format=md")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("# Retention compliance: ret-api")
    );
    let (status, error) = get(&app, &admin, &format!("{path}/report?format=csv")).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("format")));
    app.stop().await;
}

#[tokio::test]
async fn the_schedule_prunes_what_is_old_archived_and_not_held_on_the_embedded_store() {
    scheduled_prune("ret-embedded", None).await;
}

#[tokio::test]
async fn the_schedule_prunes_what_is_old_archived_and_not_held_on_postgres() {
    let Some(db) = Database::create("the_schedule_prunes_on_postgres") else {
        return;
    };
    scheduled_prune("ret-pg", Some(db.url.clone())).await;
}

/// Polls `tenant`'s retention until its log is pruned below `below`; returns the state.
async fn pruned_until(app: &TestApp, tenant: &str, below: u64) -> Value {
    let path = format!("/v1/admin/tenants/{tenant}/retention");
    for _ in 0..300 {
        let (status, state) = get(app, &app.admin_token, &path).await;
        assert_eq!(status, 200, "{state}");
        let now = state["pruned_below"].as_u64().unwrap();
        assert!(now <= below, "pruned past {below}: {state}");
        if now == below {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{tenant} not pruned below {below} within 15 s");
}

/// The latest checkpoint once it covers `size` entries.
async fn checkpoint_at(app: &TestApp, token: &str, key: &VerifierKey, size: u64) -> Checkpoint {
    for _ in 0..250 {
        let response = app
            .client
            .get(app.url("/v1/log/checkpoint"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let note = response.text().await.unwrap();
            let checkpoint = Checkpoint::open(note.as_bytes(), key).unwrap();
            if checkpoint.size == size {
                return checkpoint;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of size {size} within 5 s");
}

/// Asserts that the event `receipt` names is served with an inclusion proof that verifies.
async fn proven(app: &TestApp, token: &str, key: &VerifierKey, receipt: &Value) {
    let (status, body) = get(
        app,
        token,
        &format!("/v1/events/{}", receipt["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let proof = &body["proof"];
    let checkpoint =
        Checkpoint::open(proof["checkpoint"].as_str().unwrap().as_bytes(), key).unwrap();
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let leaf = Hash::from_hex(body["event"]["event_hash"].as_str().unwrap()).unwrap();
    verify_inclusion(
        receipt["seq"].as_u64().unwrap(),
        checkpoint.size,
        &leaf,
        &hashes,
        &checkpoint.root,
    )
    .expect("a kept event still proves its inclusion");
}

/// 600 events of `tenant` in two batches (period: one day, from `[tenants.NAME]`), a hold
/// from the second batch (seq 300) on, and the clock moved two days on: the schedule prunes
/// the first whole bundle of 256, then, once the hold is released, the second (the third is
/// partial: the archive still rewrites it).
async fn scheduled_prune(tenant: &str, database_url: Option<String>) {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let archive = dir.path().join("archive");
    let hand = ManualClock::new(Clock::system().now());
    let name = tenant.to_string();
    let app = spawn_app_with_clock(
        dir.clone(),
        move |settings| {
            settings.database_url = database_url;
            settings.archive_to = Some(archive.display().to_string());
            settings.archive_allow_unlocked = Some(true);
            settings.archive_interval = Some("1s".into());
            settings.retention_interval = Some("1s".into());
            settings.tenants = Some(HashMap::from([(
                name,
                TenantSettings {
                    retention_days: Some(1),
                    ..TenantSettings::default()
                },
            )]));
        },
        hand.clock(),
    )
    .await;
    let admin = app.admin_token.clone();
    let token = app
        .token(
            tenant,
            &["events:write", "events:read", "log:read", "verify"],
        )
        .await;
    let (_, key_text) = {
        let response = app
            .client
            .get(app.url("/v1/log/key"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    let key = VerifierKey::parse(key_text.trim()).unwrap();
    let mut receipts: Vec<Value> = Vec::new();
    for batch in [0..300u64, 300..600] {
        let events: Vec<Value> = batch.map(event).collect();
        let response = app.post_batch(&token, &events).await;
        assert_eq!(response.status(), 200);
        let results: Vec<Value> = response.json().await.unwrap();
        assert!(results.iter().all(|r| r["status"] == 201));
        receipts.extend(results);
    }
    assert_eq!(receipts[300]["seq"], 300);
    let (status, hold) = post(
        &app,
        &admin,
        "/v1/admin/holds",
        &json!({"tenant": tenant, "from": receipts[300]["received_at"], "reason": "matter 7"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    checkpoint_at(&app, &token, &key, 600).await;
    let path = format!("/v1/admin/tenants/{tenant}/retention");
    let (_, state) = get(&app, &admin, &path).await;
    assert_eq!(
        state["period"],
        json!({"days": 1, "source": "tenant_config"})
    );
    // Nothing is a day old yet: rounds pass and nothing is pruned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, state) = get(&app, &admin, &path).await;
    assert_eq!(state["pruned_below"], 0, "{state}");

    // Two days on: the first whole bundle goes; the hold keeps the rest.
    hand.advance(DAY * 2);
    let state = pruned_until(&app, tenant, 256).await;
    let watermark = &state["archive_watermark"];
    assert!(watermark["size"].as_u64().unwrap() >= 256, "{state}");
    assert_eq!(
        watermark["archive"],
        dir.path().join("archive").display().to_string()
    );
    let (status, verified) = get(&app, &token, "/v1/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["pruned"]["below"], 256, "{verified}");
    let (status, _) = get(
        &app,
        &token,
        &format!("/v1/events/{}", receipts[2]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "a pruned event is no longer served");
    proven(&app, &token, &key, &receipts[270]).await;
    // Later rounds keep to the hold.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, state) = get(&app, &admin, &path).await;
    assert_eq!(state["pruned_below"], 256, "{state}");

    // Released: the next whole bundle goes.
    let (status, released) = post(
        &app,
        &admin,
        &format!("/v1/admin/holds/{}/release", hold["id"].as_str().unwrap()),
        &json!({"reason": "matter closed"}),
    )
    .await;
    assert_eq!(status, 200, "{released}");
    pruned_until(&app, tenant, 512).await;
    let (_, verified) = get(&app, &token, "/v1/verify").await;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["pruned"]["below"], 512, "{verified}");
    let (status, _) = get(
        &app,
        &token,
        &format!("/v1/events/{}", receipts[270]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404);
    proven(&app, &token, &key, &receipts[599]).await;

    // The report lists both prunes (read from the _system log, by sealtrail), and finds the
    // pruned range in the archive.
    let (status, report) = get(&app, &admin, &format!("{path}/report")).await;
    assert_eq!(status, 200, "{report}");
    let prunes = report["prunes"].as_array().unwrap();
    let marks: Vec<(u64, u64)> = prunes
        .iter()
        .map(|p| {
            (
                p["previously_pruned_below"].as_u64().unwrap(),
                p["pruned_below"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(marks, [(0, 256), (256, 512)], "{report:#}");
    assert!(prunes.iter().all(|p| p["by"] == "sealtrail"));
    assert_eq!(report["archive_check"]["valid"], true, "{report:#}");
    assert_eq!(report["archive_check"]["entries_compared"], 512);
    assert_eq!(report["oldest_kept"]["seq"], 512);
    assert_eq!(report["holds_in_force"], json!([]));

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "sealtrail_retention_pruned_entries_total{{tenant=\"{tenant}\"}} 512"
        )),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_an_archive_nothing_is_scheduled_and_the_report_says_why_not() {
    let app = spawn_app().await;
    let token = app.token("ret-noarchive", &["events:write"]).await;
    let response = app.post_event(&token, &event(1)).await;
    assert_eq!(response.status(), 201);
    let path = "/v1/admin/tenants/ret-noarchive/retention";
    let (_, set) = put(&app, &app.admin_token, path, &json!({"days": 1})).await;
    assert_eq!(set["period"]["source"], "admin_api", "{set}");
    let (_, report) = get(&app, &app.admin_token, &format!("{path}/report")).await;
    assert_eq!(report["plan"]["prunable_below"], 0, "{report:#}");
    assert!(
        report["plan"]["limited_by"]
            .as_str()
            .unwrap()
            .contains("no archive"),
        "{report:#}"
    );
    app.stop().await;
}

/// The writer checks the holds again inside the prune's transaction: a hold placed after the
/// plan was made (here: no plan at all) stops a prune of what it covers, and only that.
#[tokio::test]
async fn a_hold_placed_after_the_plan_stops_the_prune_in_the_writer() {
    let app = spawn_app().await;
    let token = app.token("ret-race", &["events:write"]).await;
    let mut receipts = Vec::new();
    for n in 0..5 {
        let response = app.post_event(&token, &event(n)).await;
        assert_eq!(response.status(), 201);
        receipts.push(response.json::<Value>().await.unwrap());
    }
    let (status, hold) = post(
        &app,
        &app.admin_token,
        "/v1/admin/holds",
        &json!({"tenant": "ret-race", "from": receipts[2]["received_at"], "reason": "matter 9"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let request = |below| PruneRequest {
        tenant: "ret-race".into(),
        below,
        archive: "test-archive".into(),
        watermark: 5,
        details: json!({}),
        actor: "test".into(),
    };
    match app.ledger.prune(request(4)).await {
        Err(LedgerError::Invalid(Refusal::HeldMeanwhile { hold_id, .. })) => {
            assert_eq!(hold_id, hold["id"].as_str().unwrap())
        }
        other => panic!("a prune through the hold went ahead: {other:?}"),
    }
    let path = "/v1/admin/tenants/ret-race/retention";
    let (_, state) = get(&app, &app.admin_token, path).await;
    assert_eq!(state["pruned_below"], 0, "nothing was pruned: {state}");
    let done = app
        .ledger
        .prune(request(2))
        .await
        .expect("entries before the hold go");
    assert_eq!(done.removed, 2);
    let (_, state) = get(&app, &app.admin_token, path).await;
    assert_eq!(state["pruned_below"], 2, "{state}");
    app.stop().await;
}
