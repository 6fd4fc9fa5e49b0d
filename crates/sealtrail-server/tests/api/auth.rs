//! Authentication over time: how soon a revoked token stops working — at once on the
//! instance that revoked it, within the re-check interval (`token_recheck_ms`) on every other
//! instance of the same store — on every kind of route, including a request that was already
//! waiting when the token was revoked. The instances' token checks read a manual clock, moved
//! by hand, so nothing here sleeps for the interval to pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use sealtrail_core::note::SignerKey;
use sealtrail_server::clock::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::helpers::{Database, TestApp, event, spawn_app_with_clock};

/// A root signing key in `dir`, from which every instance derives the same log keys.
fn root_key(dir: &Path) -> PathBuf {
    let signer = SignerKey::generate("sealtrail-root", &mut rand_core::OsRng).unwrap();
    sealtrail_server::keys::write_key_pair(&dir.join("root-key"), &signer)
        .unwrap()
        .0
}

/// An instance on the PostgreSQL database `url`, whose token checks read `clock`.
async fn instance(url: &str, root: &Path, recheck_ms: u64, clock: Clock) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (url, root) = (url.to_string(), root.to_path_buf());
    spawn_app_with_clock(
        dir,
        move |settings| {
            settings.database_url = Some(url);
            settings.signing_key = Some(root);
            settings.verify_interval_secs = Some(0);
            settings.token_recheck_ms = Some(recheck_ms);
        },
        clock,
    )
    .await
}

/// A request with `token` as the bearer.
async fn send(
    app: &TestApp,
    token: &str,
    (method, path, body): &(Method, String, Option<Value>),
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

/// Every kind of route a tenant's token reaches: ingest (one event, a batch), search, an
/// event by id, the checkpoint, the key, both proofs, verification and the tiles.
fn tenant_routes(event_id: &str) -> Vec<(Method, String, Option<Value>)> {
    let get = |path: &str| (Method::GET, path.to_string(), None);
    vec![
        (Method::POST, "/v1/events".into(), Some(event(1))),
        (
            Method::POST,
            "/v1/events/batch".into(),
            Some(json!([event(2), event(3)])),
        ),
        get("/v1/events"),
        get(&format!("/v1/events/{event_id}")),
        get("/v1/log/checkpoint"),
        get("/v1/log/key"),
        get("/v1/log/proof/inclusion?seq=0"),
        get("/v1/log/proof/consistency?from=1"),
        get("/v1/verify"),
        get("/logs/acme/checkpoint"),
    ]
}

/// Every admin route; `revoke` names a token for the DELETE to revoke. The DELETE comes
/// first: a revocation clears the instance's token cache, and the routes after it put the
/// caller's token back in.
fn admin_routes(revoke: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::DELETE, format!("/v1/admin/tokens/{revoke}"), None),
        (Method::GET, "/v1/admin/tokens".into(), None),
        (Method::GET, "/v1/admin/tenants".into(), None),
        (
            Method::POST,
            "/v1/admin/tokens".into(),
            Some(json!({"tenant": "acme", "scopes": ["events:read"]})),
        ),
    ]
}

/// A token made through `app`'s admin API with its first admin token: (id, secret).
async fn create_token(app: &TestApp, tenant: &str, scopes: &[&str]) -> (String, String) {
    let body = json!({"tenant": tenant, "scopes": scopes});
    let route = (Method::POST, "/v1/admin/tokens".to_string(), Some(body));
    let created: Value = send(app, &app.admin_token, &route)
        .await
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    )
}

/// Waits until the log of `token`'s tenant has a signed checkpoint, as seen through `app`.
async fn wait_for_checkpoint(app: &TestApp, token: &str) {
    for _ in 0..250 {
        let route = (Method::GET, "/v1/log/checkpoint".to_string(), None);
        if send(app, token, &route).await.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint within 5 s");
}

/// Asserts that every route answers `token` with 401, rule `revoked`.
async fn assert_revoked(app: &TestApp, token: &str, routes: &[(Method, String, Option<Value>)]) {
    for route in routes {
        let response = send(app, token, route).await;
        assert_eq!(response.status(), 401, "{} {}", route.0, route.1);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["rule"], "revoked", "{} {}: {error}", route.0, route.1);
    }
}

/// Two instances on one PostgreSQL database. Tokens revoked through A's admin API stop
/// working on A at once, and on B once B's clock has moved by the re-check interval — on
/// every route, tenant and admin alike.
#[tokio::test]
async fn a_token_revoked_through_one_instance_stops_working_on_another_within_the_interval() {
    let Some(db) = Database::create("a_token_revoked_through_one_instance") else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let root = root_key(keys.path());
    let a = instance(&db.url, &root, 1000, Clock::system()).await;
    let hand = ManualClock::new(Clock::system().now());
    let recheck = Duration::from_millis(2500);
    let b = instance(&db.url, &root, recheck.as_millis() as u64, hand.clock()).await;
    assert!(
        !a.admin_token.is_empty(),
        "the first instance made the admin token"
    );

    let (producer_id, producer) = create_token(
        &a,
        "acme",
        &["events:write", "events:read", "log:read", "verify"],
    )
    .await;
    let (operator_id, operator) = create_token(&a, "_system", &["admin"]).await;
    let receipt: Value = send(&b, &producer, &tenant_routes("x")[0])
        .await
        .json()
        .await
        .unwrap();
    let event_id = receipt["id"].as_str().unwrap().to_string();
    wait_for_checkpoint(&b, &producer).await;

    // Both tokens work on B on every route; B now holds them as the store confirmed them
    // (the admin routes first, as their DELETE clears B's cache).
    let mut spare_ids = Vec::new();
    for _ in 0..3 {
        // Tokens for the admin routes' DELETE to revoke, one per round.
        spare_ids.push(create_token(&a, "acme", &["events:read"]).await.0);
    }
    let admin = admin_routes(&spare_ids[0]);
    for route in &admin {
        let response = send(&b, &operator, route).await;
        assert!(response.status().is_success(), "{} {}", route.0, route.1);
    }
    let tenant = tenant_routes(&event_id);
    for route in &tenant {
        let response = send(&b, &producer, route).await;
        assert!(response.status().is_success(), "{} {}", route.0, route.1);
    }

    // Revoked through A's admin API: A refuses them at once.
    for id in [&producer_id, &operator_id] {
        let route = (Method::DELETE, format!("/v1/admin/tokens/{id}"), None);
        assert_eq!(send(&a, &a.admin_token, &route).await.status(), 204);
    }
    assert_revoked(&a, &producer, &tenant).await;
    assert_revoked(&a, &operator, &admin_routes(&spare_ids[1])).await;

    // B has not asked the store since: within the interval it still takes them.
    hand.advance(recheck - Duration::from_millis(1));
    assert_eq!(send(&b, &producer, &tenant[2]).await.status(), 200);
    assert_eq!(send(&b, &operator, &admin[1]).await.status(), 200);
    // Once the interval has passed, B asks again, and refuses them on every route.
    hand.advance(Duration::from_millis(1));
    assert_revoked(&b, &producer, &tenant).await;
    assert_revoked(&b, &operator, &admin_routes(&spare_ids[2])).await;

    b.stop().await;
    a.stop().await;
    drop(db);
}

/// A search that waits for the index (`wait_for_seq`) checks its token again after
/// waiting: a token revoked while the request waited reads nothing once the interval has
/// passed, rather than the page it asked for up to 5 s later.
#[tokio::test]
async fn a_request_waiting_for_the_index_checks_its_token_again_before_it_reads() {
    let hand = ManualClock::new(Clock::system().now());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with_clock(dir, |_| {}, hand.clock()).await;
    let created = app
        .ledger
        .create_token(
            "acme",
            vec!["events:write".into(), "events:read".into()],
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        app.post_event(&created.token, &event(0)).await.status(),
        201
    );
    let search = (Method::GET, "/v1/events?wait_for_seq=0".to_string(), None);
    assert_eq!(send(&app, &created.token, &search).await.status(), 200);

    // Hold the query index's write lock, so that the next entry is committed to the log but
    // not indexed, and a search waiting for it waits until the lock is let go.
    let index = rusqlite::Connection::open(app.data.join("index.db")).unwrap();
    index.busy_timeout(Duration::from_secs(10)).unwrap();
    index.execute_batch("BEGIN IMMEDIATE").unwrap();
    let receipt: Value = app
        .post_event(&created.token, &event(1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["seq"], 1);
    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/v1/events?wait_for_seq=1"),
            created.token.clone(),
        );
        tokio::spawn(async move { client.get(url).bearer_auth(token).send().await })
    };
    // The search is let in (the clock has not moved, so its token needs no store read) and
    // waits for the index.
    for _ in 0..2000 {
        if app.index.waiting() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.index.waiting(), 1, "the search waits for the index");
    // Revoked elsewhere (as `sealtrail tokens revoke` does, through the store), and the
    // interval passes while the search waits.
    assert!(app.ledger.revoke_token(&created.id, "test").await.unwrap());
    hand.advance(Duration::from_secs(1));
    index.execute_batch("ROLLBACK").unwrap();

    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["rule"], "revoked", "{error}");
    app.stop().await;
}
