//! Freezing a tenant through the admin API: its ingest is refused whole (503
//! `tenant_frozen`, nothing kept) while its log is still read, proven and verified, other
//! tenants go on, and every freeze and unfreeze — and every refused attempt at one — is in the
//! `_system` log. A freeze made elsewhere (the CLI, another instance) reaches an instance
//! within the re-check interval; one made through its own API at once; and it survives a
//! restart.
//!
//! Metrics are process-wide and the tests of this binary run in parallel, so each test uses
//! tenant names of its own.

use std::time::Duration;

use serde_json::{Value, json};

use sealtrail_core::Timestamp;
use sealtrail_server::clock::ManualClock;

use crate::helpers::{TestApp, event, spawn_app, spawn_app_in, spawn_app_with_clock};

async fn freeze(app: &TestApp, token: &str, tenant: &str, body: &Value) -> reqwest::Response {
    set_frozen(app, token, tenant, "freeze", body).await
}

async fn unfreeze(app: &TestApp, token: &str, tenant: &str, body: &Value) -> reqwest::Response {
    set_frozen(app, token, tenant, "unfreeze", body).await
}

async fn set_frozen(
    app: &TestApp,
    token: &str,
    tenant: &str,
    action: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/{action}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

/// The `_system` log's entries with `action`, parsed, oldest first.
fn system_records(app: &TestApp, action: &str) -> Vec<Value> {
    app.entries("_system")
        .iter()
        .map(|entry| serde_json::from_slice::<Value>(entry).expect("JSON"))
        .filter(|entry| entry["action"] == action)
        .collect()
}

/// The id of the admin token created on first start.
async fn admin_token_id(app: &TestApp) -> String {
    let list: Value = get(app, "/v1/admin/tokens", &app.admin_token)
        .await
        .json()
        .await
        .unwrap();
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

/// Asserts that `response` is the refusal of a frozen tenant's ingest, naming `reason`.
async fn assert_frozen(response: reqwest::Response, tenant: &str, reason: &str) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_none());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "tenant_frozen", "{error}");
    assert_eq!(error["rule"], "tenant_frozen", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
    assert!(
        message.contains(&format!("sealtrail unfreeze --tenant {tenant}"))
            && message.contains(&format!("POST /v1/admin/tenants/{tenant}/unfreeze")),
        "{message}"
    );
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

#[tokio::test]
async fn a_frozen_tenant_takes_nothing_while_its_log_is_read_and_both_actions_are_audited() {
    let app = spawn_app().await;
    let (acme, beta) = ("freeze-acme", "freeze-beta");
    let writer = app.token(acme, &["events:write"]).await;
    let reader = app
        .token(acme, &["events:read", "log:read", "verify"])
        .await;
    let other = app.token(beta, &["events:write"]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let response = app.post_event(&writer, &event(n)).await;
        assert_eq!(response.status(), 201);
        let receipt: Value = response.json().await.unwrap();
        ids.push(receipt["id"].as_str().unwrap().to_string());
    }
    let admin_id = admin_token_id(&app).await;

    let reason = "chain violation at seq 41 under investigation (INC-1234)";
    let response = freeze(&app, &app.admin_token, acme, &json!({"reason": reason})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tenant"], acme);
    assert_eq!(body["frozen"], true);
    assert_eq!(body["changed"], true);
    assert_eq!(body["freeze"]["reason"], reason);
    assert_eq!(body["freeze"]["actor"], admin_id.as_str());
    let at = body["freeze"]["at"].as_str().unwrap().to_string();
    assert!(Timestamp::parse(&at).is_ok(), "{at}");

    // Effective at once on this instance: a single event and a batch are refused whole, and
    // nothing of them reaches the log.
    assert_frozen(app.post_event(&writer, &event(10)).await, acme, reason).await;
    assert_frozen(
        app.post_batch(&writer, &json!([event(11), event(12)]))
            .await,
        acme,
        reason,
    )
    .await;
    assert_eq!(app.log_size(acme), 3);
    // Another tenant is not affected.
    assert_eq!(app.post_event(&other, &event(13)).await.status(), 201);

    // Its log is still read, proven and verified.
    let page: Value = get(&app, "/v1/events?limit=10&wait_for_seq=2", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 3, "{page}");
    let by_id = get(&app, &format!("/v1/events/{}", ids[1]), &reader).await;
    assert_eq!(by_id.status(), 200);
    let proof = get(&app, "/v1/log/proof/inclusion?seq=0&size=3", &reader).await;
    assert_eq!(proof.status(), 200);
    let verified: Value = get(&app, "/v1/verify", &reader).await.json().await.unwrap();
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["rows_checked"], 3, "{verified}");

    // The listing shows the freeze.
    let listing: Value = get(&app, "/v1/admin/tenants", &app.admin_token)
        .await
        .json()
        .await
        .unwrap();
    let listed = |name: &str| {
        listing["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(listed(acme)["frozen"], true);
    assert_eq!(listed(acme)["freeze"]["reason"], reason);
    assert_eq!(listed(acme)["freeze"]["at"], at.as_str());
    assert_eq!(listed(beta)["frozen"], false);
    assert_eq!(listed(beta)["freeze"], Value::Null);

    // Frozen again: the standing freeze is kept, with its own reason; nothing is recorded.
    let again: Value = freeze(&app, &app.admin_token, acme, &json!({"reason": "again"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);
    assert_eq!(again["frozen"], true);
    assert_eq!(again["freeze"]["reason"], reason);

    // Refusals are counted apart, not as failed writes.
    let refused = format!("sealtrail_frozen_refusals_total{{tenant=\"{acme}\"}}");
    assert_eq!(sample(&app, &refused).await, Some(2.0));
    let failed = format!("sealtrail_events_ingested_total{{tenant=\"{acme}\",outcome=\"failed\"}}");
    assert_eq!(sample(&app, &failed).await, None);

    let lifted = "seq 41 restored from the archive; verified";
    let response = unfreeze(&app, &app.admin_token, acme, &json!({"reason": lifted})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["frozen"], &body["changed"], &body["freeze"]),
        (&json!(false), &json!(true), &Value::Null)
    );
    assert_eq!(app.post_event(&writer, &event(14)).await.status(), 201);
    assert_eq!(app.log_size(acme), 4);
    let again: Value = unfreeze(&app, &app.admin_token, acme, &json!({"reason": "again"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);

    // One record of each, with the admin token as actor, the tenant as target and the reason.
    let frozen = system_records(&app, "sealtrail.tenant.frozen");
    let unfrozen = system_records(&app, "sealtrail.tenant.unfrozen");
    assert_eq!(
        (frozen.len(), unfrozen.len()),
        (1, 1),
        "{frozen:?} {unfrozen:?}"
    );
    for (record, why) in [(&frozen[0], reason), (&unfrozen[0], lifted)] {
        assert_eq!(record["actor"], json!({"id": admin_id, "type": "api_key"}));
        assert_eq!(record["targets"], json!([{"type": "tenant", "id": acme}]));
        assert_eq!(record["details"]["tenant"], acme);
        assert_eq!(record["details"]["reason"], why);
        assert_eq!(record["outcome"], "success");
    }
    assert_eq!(unfrozen[0]["details"]["lifted"]["reason"], reason);
    assert_eq!(unfrozen[0]["details"]["lifted"]["at"], at.as_str());
    app.stop().await;
}

#[tokio::test]
async fn only_admins_freeze_their_refusals_are_recorded_and_bad_requests_are_named() {
    let app = spawn_app().await;
    let tenant = "freeze-gamma";
    let producer = app
        .ledger
        .create_token(tenant, vec!["events:write".into()], "test")
        .await
        .unwrap();
    let tenant_admin = app.token(tenant, &["events:read", "admin"]).await;
    let body = json!({"reason": "not yours to freeze"});

    // A tenant's own token, even one holding `admin`, and no token at all: refused, and each
    // refusal is recorded in the _system log with the route and the token.
    let forbidden = freeze(&app, &producer.token, tenant, &body).await;
    assert_eq!(forbidden.status(), 403);
    let forbidden = freeze(&app, &tenant_admin, tenant, &body).await;
    assert_eq!(forbidden.status(), 403);
    let anonymous = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/unfreeze")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let records = app.refusal_records();
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_eq!(
        records[0]["targets"],
        json!([{"type": "route", "id": "POST /v1/admin/tenants/{tenant}/freeze"}])
    );
    assert_eq!(
        records[0]["details"]["path"],
        format!("/v1/admin/tenants/{tenant}/freeze")
    );
    assert_eq!(records[0]["details"]["reason"], "scope");
    assert_eq!(
        records[0]["actor"],
        json!({"id": producer.id, "type": "api_key"})
    );
    assert_eq!(records[1]["details"]["reason"], "tenant");
    assert_eq!(
        records[2]["targets"],
        json!([{"type": "route", "id": "POST /v1/admin/tenants/{tenant}/unfreeze"}])
    );
    assert_eq!(records[2]["actor"]["type"], "anonymous");
    // None of them froze anything.
    assert_eq!(
        app.post_event(&producer.token, &event(1)).await.status(),
        201
    );

    // An admin's requests that cannot be done, each naming the field and the rule.
    let long = "x".repeat(4097);
    let cases = [
        ("_system", json!({"reason": "r"}), 400, "tenant", "reserved"),
        ("Gamma", json!({"reason": "r"}), 400, "tenant", "format"),
        (
            "nobody",
            json!({"reason": "r"}),
            404,
            "tenant",
            "unknown_tenant",
        ),
        (tenant, json!({}), 422, "reason", "required"),
        (
            tenant,
            json!({"reason": " \t\r\n"}),
            422,
            "reason",
            "required",
        ),
        (tenant, json!({"reason": 7}), 422, "reason", "type"),
        (
            tenant,
            json!({"reason": "a\u{0}b"}),
            422,
            "reason",
            "nul_character",
        ),
        (tenant, json!({"reason": long}), 422, "reason", "max_length"),
        (
            tenant,
            json!({"reason": "r", "until": "x"}),
            422,
            "until",
            "unknown_field",
        ),
        (tenant, json!(["r"]), 422, "", "type"),
    ];
    for (name, body, status, field, rule) in cases {
        for action in ["freeze", "unfreeze"] {
            let response = set_frozen(&app, &app.admin_token, name, action, &body).await;
            assert_eq!(response.status(), status, "{action} {name} {body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(
                (error["field"].as_str(), error["rule"].as_str()),
                (Some(field), Some(rule)),
                "{action} {name} {body}: {error}"
            );
        }
    }
    let plain = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/freeze")))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/plain")
        .body("{\"reason\": \"r\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    assert!(system_records(&app, "sealtrail.tenant.frozen").is_empty());
    assert_eq!(
        app.post_event(&producer.token, &event(2)).await.status(),
        201
    );
    app.stop().await;
}

#[tokio::test]
async fn a_freeze_survives_a_restart() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    let tenant = "freeze-delta";
    let writer = app.token(tenant, &["events:write"]).await;
    let response = freeze(
        &app,
        &app.admin_token,
        tenant,
        &json!({"reason": "kept across restarts"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    app.stop().await;

    let app = spawn_app_in(dir, |_| {}).await;
    assert_frozen(
        app.post_event(&writer, &event(1)).await,
        tenant,
        "kept across restarts",
    )
    .await;
    assert_eq!(app.log_size(tenant), 0);
    app.stop().await;
}

/// A freeze written to the store by another process is not this instance's to be told of:
/// it is seen once the re-check interval since the last read has passed, and not before. The
/// interval is measured by the application's clock, moved here by hand.
#[tokio::test]
async fn a_freeze_made_elsewhere_takes_effect_once_the_recheck_interval_has_passed() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let hand = ManualClock::new(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
    let app = spawn_app_with_clock(dir, |s| s.token_recheck_ms = Some(1000), hand.clock()).await;
    let tenant = "freeze-epsilon";
    let writer = app.token(tenant, &["events:write"]).await;
    assert_eq!(app.post_event(&writer, &event(1)).await.status(), 201);

    // Through the write path, as `sealtrail freeze` or another instance does it: this
    // instance's copy of the frozen tenants is not told.
    let change = app
        .ledger
        .freeze(tenant, "frozen elsewhere", "cli:ops")
        .await
        .unwrap();
    assert!(change.changed);
    hand.advance(Duration::from_millis(999));
    assert_eq!(
        app.post_event(&writer, &event(2)).await.status(),
        201,
        "the state read less than the interval ago stands"
    );
    hand.advance(Duration::from_millis(1));
    assert_frozen(
        app.post_event(&writer, &event(3)).await,
        tenant,
        "frozen elsewhere",
    )
    .await;
    assert_eq!(app.log_size(tenant), 2);

    app.ledger
        .unfreeze(tenant, "lifted elsewhere", "cli:ops")
        .await
        .unwrap();
    hand.advance(Duration::from_millis(1000));
    assert_eq!(app.post_event(&writer, &event(4)).await.status(), 201);
    app.stop().await;
}
