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
