//! Ingest over HTTP: receipts, idempotency, batches, validation errors.

use crate::helpers::{event, spawn_app};

#[tokio::test]
async fn an_event_gets_a_receipt_once_durable_and_a_retry_gets_the_same_one() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write", "log:read"]).await;
    let created = app.post_event(&token, &event(1)).await;
    assert_eq!(created.status(), 201);
    let receipt: serde_json::Value = created.json().await.unwrap();
    assert_eq!(receipt["seq"], 0);
    assert_eq!(receipt["event_hash"].as_str().unwrap().len(), 64);

    let keyed = |n| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "req-77")
            .json(&event(n))
    };
    let first = keyed(2).send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let retry = keyed(2).send().await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.json::<serde_json::Value>().await.unwrap(), first);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_entry() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, token) = (app.client.clone(), app.url("/v1/events"), token.clone());
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "same-key")
                .json(&event(5))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }));
    }
    let mut created = 0;
    let mut receipts = Vec::new();
    for task in tasks {
        let (status, receipt) = task.await.unwrap();
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        receipts.push(receipt);
    }
    assert_eq!(created, 1, "exactly one request created the entry");
    assert!(receipts.iter().all(|r| r == &receipts[0]));
    // The next event lands right after it: no second entry was made.
    let next: serde_json::Value = app
        .post_event(&token, &event(6))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["seq"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_commits_valid_events_and_rejects_invalid_ones_one_by_one() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let mut bad = event(2);
    bad["outcome"] = "maybe".into();
    let batch = serde_json::json!([event(1), bad, event(3)]);
    let response = app
        .client
        .post(app.url("/v1/events/batch"))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let results: serde_json::Value = response.json().await.unwrap();
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[0]["seq"], 0);
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["error"]["field"], "[1].outcome");
    assert_eq!(results[1]["error"]["rule"], "enum");
    assert_eq!(results[2]["status"], 201);
    assert_eq!(results[2]["seq"], 1);

    let ndjson = format!("{}\n{}\n", event(4), event(5));
    let response = app
        .client
        .post(app.url("/v1/events/batch"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let results: serde_json::Value = response.json().await.unwrap();
    assert_eq!(results[1]["seq"], 3);
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_json_error_naming_the_problem() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    let send = |token: &str, content_type: &str, body: &str| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
    };
    let cases = [
        (
            token.as_str(),
            "application/json",
            "{",
            400,
            "malformed_json",
        ),
        (
            token.as_str(),
            "text/plain",
            "{}",
            415,
            "unsupported_media_type",
        ),
        (
            token.as_str(),
            "application/json",
            "[]",
            422,
            "invalid_event",
        ),
        (
            token.as_str(),
            "application/json",
            r#"{"action":"a","outcome":"success"}"#,
            422,
            "invalid_event",
        ),
        (
            reader.as_str(),
            "application/json",
            r#"{"action":"a","actor":{"id":"u"},"outcome":"success"}"#,
            403,
            "missing_scope",
        ),
        (
            "st_not-a-token",
            "application/json",
            "{}",
            401,
            "unauthorized",
        ),
    ];
    for (token, content_type, body, status, code) in cases {
        let response = send(token, content_type, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"], code, "{body}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    app.stop().await;
}

#[tokio::test]
async fn nobody_writes_producer_events_into_the_system_log() {
    let app = spawn_app().await;
    let operator = app.token("*", &["events:write"]).await;
    let response = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&operator)
        .header("X-Tenant-ID", "_system")
        .json(&event(1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"], "reserved_tenant");
    // The same operator token may write to a real tenant it names.
    app.token("acme", &["log:read"]).await;
    let response = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&operator)
        .header("X-Tenant-ID", "acme")
        .json(&event(2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    app.stop().await;
}
