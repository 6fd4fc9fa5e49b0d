//! Idempotency keys over HTTP: a key names one event. A retry of that event gets the original
//! receipt (200); a different event under a key already used is refused with 422
//! `idempotency_conflict`, naming the original, and nothing of it is kept — alone, in a batch
//! (against the log or an earlier element of the same batch), wherever the key was given.

use serde_json::{Value, json};

use crate::helpers::{TestApp, event, spawn_app};

/// A read of a patient record, and a deletion of the same record by someone else: two events a
/// producer could send under one key by mistake, or an attacker on purpose.
fn read() -> Value {
    json!({
        "action": "patient.record.read", "activity": "read", "outcome": "success",
        "actor": {"id": "u-123", "type": "user"},
        "targets": [{"type": "patient", "id": "p-9"}],
    })
}

fn delete() -> Value {
    json!({
        "action": "patient.record.delete", "activity": "delete", "outcome": "success",
        "actor": {"id": "u-666", "type": "user"},
        "targets": [{"type": "patient", "id": "p-9"}],
    })
}

/// `POST /v1/events` with the key in the `Idempotency-Key` header.
async fn post_keyed(app: &TestApp, token: &str, key: &str, event: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(event)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `event` carrying `key` in its body.
fn with_key(mut event: Value, key: &str) -> Value {
    event["idempotency_key"] = key.into();
    event
}

/// Checks that `error` is the 422 body (or batch error) of a conflict at `field` naming
/// `original`.
fn assert_conflict(error: &Value, field: &str, original: &Value) {
    assert_eq!(error["error"], "idempotency_conflict", "{error:#}");
    assert_eq!(error["rule"], "idempotency_conflict", "{error:#}");
    assert_eq!(error["field"], field, "{error:#}");
    assert_eq!(&error["original"], original, "{error:#}");
    let message = error["message"].as_str().unwrap();
    let seq = original["seq"].to_string();
    assert!(
        message.contains(&format!("seq {seq}"))
            && message.contains(original["id"].as_str().unwrap()),
        "the message names the original: {message}"
    );
}

#[tokio::test]
async fn a_different_event_under_a_used_key_is_refused_naming_the_original() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let (status, original) = post_keyed(&app, &token, "K", &read()).await;
    assert_eq!(status, 201, "{original}");

    // The deletion sent under the read's key is not recorded, and the producer is told so.
    let (status, refused) = post_keyed(&app, &token, "K", &delete()).await;
    assert_eq!(status, 422, "{refused}");
    assert_conflict(&refused, "Idempotency-Key", &original);
    // The same with the key in the body: the field names where the key was given.
    let response = app.post_event(&token, &with_key(delete(), "K")).await;
    assert_eq!(response.status(), 422);
    assert_conflict(
        &response.json::<Value>().await.unwrap(),
        "idempotency_key",
        &original,
    );
    assert_eq!(app.log_size("acme"), 1, "nothing of the deletion was kept");

    // A retry of the read is still one, wherever its key is given: the key is not part of
    // what is compared.
    let (status, again) = post_keyed(&app, &token, "K", &read()).await;
    assert_eq!((status, &again), (200, &original));
    let response = app.post_event(&token, &with_key(read(), "K")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), original);
    // So is the same event spelled differently (members reordered, an equal timestamp at
    // another offset), which is stored as the same canonical entry.
    let (status, timed) = post_keyed(
        &app,
        &token,
        "T",
        &json!({"action": "a", "outcome": "success", "actor": {"id": "u"},
                "occurred_at": "2026-01-01T10:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, retried) = post_keyed(
        &app,
        &token,
        "T",
        &json!({"occurred_at": "2026-01-01T11:00:00.000+01:00", "actor": {"id": "u"},
                "outcome": "success", "action": "a"}),
    )
    .await;
    assert_eq!((status, &retried), (200, &timed));
    assert_eq!(app.log_size("acme"), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_refuses_only_the_events_whose_key_names_a_different_event() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let (status, stored) = post_keyed(&app, &token, "K1", &event(1)).await;
    assert_eq!(status, 201);

    let batch = json!([
        with_key(event(2), "K2"),
        // Another event under the key element 0 just used.
        with_key(event(3), "K2"),
        // Another event under the key the log already holds.
        with_key(event(4), "K1"),
        // Retries: of the stored event, and of element 0.
        with_key(event(1), "K1"),
        with_key(event(2), "K2"),
        event(5),
    ]);
    let response = app.post_batch(&token, &batch).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 422, 200, 200, 201], "{results:#?}");
    let receipt = |r: &Value| {
        json!({"id": r["id"], "seq": r["seq"], "event_hash": r["event_hash"],
               "received_at": r["received_at"]})
    };
    let first = receipt(&results[0]);
    assert_conflict(&results[1]["error"], "[1].idempotency_key", &first);
    assert_conflict(&results[2]["error"], "[2].idempotency_key", &stored);
    assert_eq!(receipt(&results[3]), stored);
    assert_eq!(receipt(&results[4]), first);
    assert_eq!(results[5]["seq"], 2);
    assert_eq!(app.log_size("acme"), 3, "the refused events were not kept");
    app.stop().await;
}
