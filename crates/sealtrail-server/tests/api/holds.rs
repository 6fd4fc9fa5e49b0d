//! Legal holds through the admin API: placed, listed, released, each recorded in the
//! `_system` log with the admin token as actor; every bad request refused naming the field;
//! a tenant's token kept out.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_hold_is_placed_listed_and_released_each_step_recorded() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let tenant_token = app.token("acme", &["events:write", "events:read"]).await;
    let (_, tokens) = get(&app, &admin, "/v1/admin/tokens").await;
    let admin_id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "_system")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, hold) = post(
        &app,
        &admin,
        "/v1/admin/holds",
        &json!({"tenant": "acme", "from": "2026-11-01T00:00:00Z", "reason": "matter 2026-117"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["tenant"], "acme");
    assert_eq!(hold["from"], "2026-11-01T00:00:00.000000Z");
    assert_eq!(hold["to"], Value::Null);
    assert_eq!(hold["reason"], "matter 2026-117");
    assert_eq!(hold["added_by"], admin_id.as_str());
    assert_eq!(hold["released"], Value::Null);
    let id = hold["id"].as_str().unwrap().to_string();

    let (status, list) = get(&app, &admin, "/v1/admin/holds?tenant=acme").await;
    assert_eq!(status, 200);
    assert_eq!(list["holds"], json!([hold]));
    let (_, others) = get(&app, &admin, "/v1/admin/holds?tenant=beta").await;
    assert_eq!(others["holds"], json!([]));

    // Every bad request is refused, naming the field and the rule.
    for (body, status, field, rule) in [
        (
            json!({"tenant": "_system", "reason": "x"}),
            422,
            "tenant",
            "reserved",
        ),
        (
            json!({"tenant": "acme", "reason": "  "}),
            422,
            "reason",
            "required",
        ),
        (json!({"tenant": "acme"}), 422, "reason", "required"),
        (json!({"reason": "x"}), 422, "tenant", "required"),
        (
            json!({"tenant": "acme", "reason": "x", "from": "yesterday"}),
            422,
            "from",
            "timestamp",
        ),
        (
            json!({"tenant": "acme", "reason": "x", "from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}),
            422,
            "from",
            "range",
        ),
        (
            json!({"tenant": "acme", "reason": "x", "until": "soon"}),
            422,
            "until",
            "unknown_field",
        ),
        (
            json!({"tenant": "acme", "reason": 7}),
            422,
            "reason",
            "type",
        ),
    ] {
        let (got, error) = post(&app, &admin, "/v1/admin/holds", &body).await;
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some(field), Some(rule)),
            "{body}: {error}"
        );
    }
    let (status, _) = post(
        &app,
        &admin,
        "/v1/admin/holds",
        &json!({"tenant": "nobody", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    // A tenant's own token is kept out.
    let (status, _) = post(
        &app,
        &tenant_token,
        "/v1/admin/holds",
        &json!({"tenant": "acme", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get(&app, &tenant_token, "/v1/admin/holds").await;
    assert_eq!(status, 403);

    // Released once, with its reason; not twice; an unknown hold is not found.
    let path = format!("/v1/admin/holds/{id}/release");
    let (status, released) = post(&app, &admin, &path, &json!({"reason": "matter closed"})).await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["released"]["reason"], "matter closed");
    assert_eq!(released["released"]["by"], admin_id.as_str());
    let (status, _) = post(&app, &admin, &path, &json!({"reason": "again"})).await;
    assert_eq!(status, 409);
    let (status, _) = post(
        &app,
        &admin,
        "/v1/admin/holds/nope/release",
        &json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, error) = post(&app, &admin, &path, &json!({})).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (409, None),
        "released already wins: {error}"
    );

    // Both steps are in the _system log, the admin token as actor.
    let store = sealtrail_store::Location::new(&app.data, None)
        .open_reader()
        .unwrap();
    let size = store.size("_system").unwrap();
    let entries: Vec<Value> = store
        .entries("_system", 0, size, size as usize)
        .unwrap()
        .into_iter()
        .map(|(_, e)| serde_json::from_slice(&e.unwrap()).unwrap())
        .filter(|e: &Value| e["action"].as_str().unwrap().starts_with("sealtrail.hold."))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["sealtrail.hold.added", "sealtrail.hold.released"]);
    assert!(
        entries
            .iter()
            .all(|e| e["actor"]["id"] == admin_id.as_str())
    );
    assert_eq!(entries[1]["details"]["hold_id"], id.as_str());
    app.stop().await;
}
