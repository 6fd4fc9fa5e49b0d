//! Tenant isolation on every route: a token reaches only its own tenant's data.

use std::time::Duration;

use crate::helpers::{event, spawn_app};

#[tokio::test]
async fn a_token_never_reaches_another_tenants_log() {
    let app = spawn_app().await;
    let scopes = ["events:write", "events:read", "log:read", "verify"];
    let alice = app.token("alice", &scopes).await;
    let bob = app.token("bob", &scopes).await;
    let mut alice_ids = Vec::new();
    for n in 0..5 {
        let receipt: serde_json::Value = app
            .post_event(&alice, &event(n))
            .await
            .json()
            .await
            .unwrap();
        alice_ids.push(receipt["id"].as_str().unwrap().to_string());
    }
    let bob_receipt: serde_json::Value =
        app.post_event(&bob, &event(99)).await.json().await.unwrap();
    assert_eq!(
        bob_receipt["seq"], 0,
        "each tenant has its own log from seq 0"
    );

    let get = |token: &str, path: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(token.to_string())
            .send()
    };
    // Wait until both logs have a checkpoint covering their events.
    for _ in 0..100 {
        let a = get(&alice, "/v1/log/checkpoint")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let b = get(&bob, "/v1/log/checkpoint")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if a.lines().nth(1) == Some("5") && b.lines().nth(1) == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Each sees its own checkpoint and key, under its own origin.
    let alice_cp = get(&alice, "/v1/log/checkpoint")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bob_cp = get(&bob, "/v1/log/checkpoint")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        alice_cp.starts_with("sealtrail.local/alice\n5\n"),
        "{alice_cp}"
    );
    assert!(bob_cp.starts_with("sealtrail.local/bob\n1\n"), "{bob_cp}");
    let alice_key = get(&alice, "/v1/log/key")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bob_key = get(&bob, "/v1/log/key")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(alice_key, bob_key);

    // Proofs are about the caller's own tree: bob's has one entry.
    let proof = get(&bob, "/v1/log/proof/inclusion?seq=3&size=5")
        .await
        .unwrap();
    assert_eq!(proof.status(), 400);

    // Entry bundles of alice's log are not found with bob's token.
    let bundle = get(&bob, "/logs/alice/tile/entries/000.p/5").await.unwrap();
    assert_eq!(bundle.status(), 404);
    let own = get(&alice, "/logs/alice/tile/entries/000.p/5")
        .await
        .unwrap();
    assert_eq!(own.status(), 200);

    // Naming another tenant in X-Tenant-ID is refused for a single-tenant token.
    let crossed = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&bob)
        .header("X-Tenant-ID", "alice")
        .json(&event(7))
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), 403);

    // Verification covers only the caller's log.
    let report: serde_json::Value = get(&bob, "/v1/verify").await.unwrap().json().await.unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["rows_checked"], 1);

    // Queries and lookups by id see only the caller's events.
    let page: serde_json::Value = get(&bob, "/v1/events?wait_for_seq=0")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    for id in &alice_ids {
        let response = get(&bob, &format!("/v1/events/{id}")).await.unwrap();
        assert_eq!(response.status(), 404, "bob must not see alice's {id}");
    }
    app.stop().await;
}

/// The `_system` log records every admin action; only tokens with the `admin` scope read it.
/// A `*` token reaches every tenant it names in `X-Tenant-ID` except that one, and a
/// `_system` token made without `admin` does not reach it either. Each refused attempt is
/// itself recorded there.
#[tokio::test]
async fn the_system_log_is_read_only_with_the_admin_scope() {
    let app = spawn_app().await;
    let reads = ["events:read", "log:read", "verify"];
    let operator = app
        .ledger
        .create_token("*", reads.map(String::from).to_vec(), "test")
        .await
        .unwrap();
    let system_reader = app.token("_system", &reads).await;
    // An operator token with the admin scope, as `sealtrail tokens create --tenant '*'
    // --scope admin` makes one.
    let mut with_admin = reads.map(String::from).to_vec();
    with_admin.push("admin".into());
    let operator_admin = app
        .ledger
        .create_token("*", with_admin, "test")
        .await
        .unwrap()
        .token;
    // The operator still reaches an ordinary tenant.
    let acme = app.token("acme", &["events:write"]).await;
    assert_eq!(app.post_event(&acme, &event(1)).await.status(), 201);

    // Every read route, on a _system log with a signed checkpoint over its entries.
    let size = app.log_size("_system");
    let id = wait_for_system_checkpoint(&app, size).await;
    let routes = [
        format!("/v1/events?wait_for_seq={}", size - 1),
        format!("/v1/events/{id}"),
        "/v1/log/checkpoint".to_string(),
        "/v1/log/key".to_string(),
        "/v1/log/proof/inclusion?seq=0".to_string(),
        format!("/v1/log/proof/consistency?from=1&to={size}"),
        "/v1/verify".to_string(),
        "/logs/_system/checkpoint".to_string(),
        format!("/logs/_system/tile/0/000.p/{size}"),
        format!("/logs/_system/tile/entries/000.p/{size}"),
    ];
    let get = |token: &str, path: &str, tenant: Option<&str>| {
        let mut request = app.client.get(app.url(path)).bearer_auth(token.to_string());
        if let Some(tenant) = tenant {
            request = request.header("X-Tenant-ID", tenant);
        }
        request.send()
    };
    // Allowed first: each refusal below adds a record to the log read here.
    for path in &routes {
        for (who, token, tenant) in [
            ("the admin token", app.admin_token.as_str(), None),
            (
                "a * token with admin",
                operator_admin.as_str(),
                Some("_system"),
            ),
        ] {
            let response = get(token, path, tenant).await.unwrap();
            assert_eq!(response.status(), 200, "{who}: GET {path}");
        }
    }
    for path in &routes {
        for (who, token, tenant) in [
            ("a * token", operator.token.as_str(), Some("_system")),
            (
                "a _system token without admin",
                system_reader.as_str(),
                None,
            ),
        ] {
            let response = get(token, path, tenant).await.unwrap();
            assert_eq!(response.status(), 403, "{who}: GET {path}");
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["error"], "missing_scope", "{who}: GET {path}");
            assert_eq!(error["field"], "Authorization", "{who}: GET {path}");
            assert_eq!(error["rule"], "system_log", "{who}: GET {path}");
        }
    }
    // The same operator token reads a tenant of its own choosing.
    for path in ["/v1/log/key", "/v1/verify"] {
        let response = get(&operator.token, path, Some("acme")).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path} for acme");
    }

    // The first refusal was recorded, naming the operator token and the route.
    let records = app.refusal_records();
    let first = records.first().expect("refused reads are recorded");
    assert_eq!(first["actor"]["id"], operator.id.as_str());
    assert_eq!(first["details"]["route"], "/v1/events");
    assert_eq!(first["details"]["reason"], "system_log");
    assert_eq!(first["details"]["status"], 403);
    app.stop().await;
}

/// Waits until the `_system` log has a signed checkpoint of `size` entries; returns the id
/// of its first event.
async fn wait_for_system_checkpoint(app: &crate::helpers::TestApp, size: u64) -> String {
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(app.admin_token.clone())
            .send()
    };
    for _ in 0..250 {
        let note = get("/v1/log/checkpoint")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if note.lines().nth(1) == Some(size.to_string().as_str()) {
            let page: serde_json::Value = get(&format!("/v1/events?wait_for_seq={}", size - 1))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            return page["events"][0]["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of the _system log's {size} entries within 5 s");
}
