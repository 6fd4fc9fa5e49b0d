//! Operations and administration: the admin API, `/health`, `/metrics` and `/openapi.json`.
//!
//! Metrics are process-wide and the tests of this binary run in parallel, so assertions on
//! counters use a tenant name no other test uses, and process-wide figures are checked as
//! lower bounds.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, event, spawn_app};

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = app.client.get(app.url(path));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("request sent")
}

async fn create_token(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/admin/tokens"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// The `_system` log's entries, parsed.
fn system_log(app: &TestApp) -> Vec<Value> {
    let conn = sealtrail_store::Location::new(&app.data, None)
        .open_reader()
        .expect("the store opens");
    let mut entries = Vec::new();
    conn.for_each_entry("_system", 0, u64::MAX, &mut |_, entry| {
        let entry = entry.expect("every row holds an entry");
        entries.push(serde_json::from_slice(entry).expect("entries are JSON"));
    })
    .expect("the log reads");
    entries
}

/// The id of the admin token created on first start.
async fn admin_token_id(app: &TestApp) -> String {
    let list: Value = get(app, "/v1/admin/tokens", Some(&app.admin_token))
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

#[tokio::test]
async fn an_admin_creates_a_token_that_works_until_it_is_revoked() {
    let app = spawn_app().await;
    let response = create_token(
        &app,
        &app.admin_token,
        &json!({"tenant": "acme", "scopes": ["events:write"]}),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["scopes"], json!(["events:write"]));
    assert_eq!(created["tenant_created"], true);
    let (id, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    );
    assert!(
        id.starts_with("tok_") && secret.starts_with("st_"),
        "{created}"
    );

    assert_eq!(app.post_event(&secret, &event(1)).await.status(), 201);

    // Listed, without its secret.
    let listing = get(&app, "/v1/admin/tokens", Some(&app.admin_token)).await;
    assert_eq!(listing.status(), 200);
    let text = listing.text().await.unwrap();
    assert!(!text.contains(&secret), "a listing never shows a secret");
    let listing: Value = serde_json::from_str(&text).unwrap();
    let listed = listing["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("the new token is listed")
        .clone();
    assert_eq!(listed["tenant"], "acme");
    assert!(listed["revoked_at"].is_null());
    assert!(listed.get("token").is_none());

    let revoke = |token: String| {
        app.client
            .delete(app.url(&format!("/v1/admin/tokens/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(revoke(app.admin_token.clone()).await.unwrap().status(), 204);
    let refused = app.post_event(&secret, &event(2)).await;
    assert_eq!(refused.status(), 401);
    let again = revoke(app.admin_token.clone()).await.unwrap();
    assert_eq!(
        again.status(),
        404,
        "a revoked token cannot be revoked twice"
    );
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "not_found");

    // The _system log names the admin token as the actor of both actions.
    let actor = admin_token_id(&app).await;
    let system = system_log(&app);
    for action in ["sealtrail.token.created", "sealtrail.token.revoked"] {
        let entry = system
            .iter()
            .find(|e| e["action"] == action && e["targets"][0]["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{action} for {id} is in the _system log"));
        assert_eq!(entry["actor"]["id"], actor.as_str(), "{entry}");
    }
    assert!(
        system
            .iter()
            .any(|e| e["action"] == "sealtrail.tenant.created" && e["targets"][0]["id"] == "acme")
    );
    app.stop().await;
}

#[tokio::test]
async fn only_admin_tokens_of_the_system_tenant_reach_the_admin_api() {
    let app = spawn_app().await;
    let writer = app.token("acme", &["events:write"]).await;
    let tenant_admin = app.token("acme", &["admin"]).await;
    let body = json!({"tenant": "acme", "scopes": ["events:read"]});
    for (token, status, code) in [
        (Some(writer.as_str()), 403, "missing_scope"),
        (Some(tenant_admin.as_str()), 403, "wrong_tenant"),
        (None, 401, "unauthorized"),
    ] {
        let mut requests = vec![
            app.client.post(app.url("/v1/admin/tokens")).json(&body),
            app.client.get(app.url("/v1/admin/tokens")),
            app.client.get(app.url("/v1/admin/tenants")),
            app.client
                .delete(app.url("/v1/admin/tokens/tok_0000000000000000")),
        ];
        for request in requests.drain(..) {
            let request = match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.json::<Value>().await.unwrap()["error"], code);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_token_requests_name_the_field_and_the_rule() {
    let app = spawn_app().await;
    let cases = [
        (json!({"scopes": ["events:write"]}), "tenant", "required"),
        (
            json!({"tenant": 7, "scopes": ["events:write"]}),
            "tenant",
            "type",
        ),
        (
            json!({"tenant": "Acme Corp", "scopes": ["events:write"]}),
            "tenant",
            "format",
        ),
        (json!({"tenant": "acme"}), "scopes", "required"),
        (
            json!({"tenant": "acme", "scopes": []}),
            "scopes",
            "required",
        ),
        (
            json!({"tenant": "acme", "scopes": "events:write"}),
            "scopes",
            "type",
        ),
        (
            json!({"tenant": "acme", "scopes": ["events:write", "events:delete"]}),
            "scopes[1]",
            "enum",
        ),
        (
            json!({"tenant": "acme", "scopes": ["admin"]}),
            "scopes[0]",
            "admin_scope",
        ),
        (
            json!({"tenant": "_system", "scopes": ["admin", "events:write"]}),
            "scopes[1]",
            "reserved",
        ),
        (
            json!({"tenant": "acme", "scopes": ["verify"], "expires": 1}),
            "expires",
            "unknown_field",
        ),
        (json!(["acme"]), "", "type"),
    ];
    for (body, field, rule) in cases {
        let response = create_token(&app, &app.admin_token, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
        assert_eq!(error["rule"], rule, "{body}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let send = |content_type: &'static str, body: &'static str| {
        app.client
            .post(app.url("/v1/admin/tokens"))
            .bearer_auth(&app.admin_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = send("application/json", "{\"tenant\":").await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"],
        "malformed_json"
    );
    let twice = send(
        "application/json",
        r#"{"tenant": "acme", "tenant": "beta", "scopes": ["verify"]}"#,
    )
    .await
    .unwrap();
    assert_eq!(twice.status(), 422);
    assert_eq!(
        twice.json::<Value>().await.unwrap()["rule"],
        "duplicate_key"
    );
    let wrong_type = send("text/plain", "{}").await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    // Nothing was created by any of them.
    assert!(
        !system_log(&app)
            .iter()
            .any(|e| e["targets"][0]["id"] == "acme"),
        "refused requests leave no trace in the _system log"
    );
    app.stop().await;
}

#[tokio::test]
async fn tenants_are_listed_with_their_origin_and_log_size() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    for n in 0..3 {
        assert_eq!(app.post_event(&token, &event(n)).await.status(), 201);
    }
    let response = get(&app, "/v1/admin/tenants", Some(&app.admin_token)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let tenants = body["tenants"].as_array().unwrap();
    let names: Vec<&str> = tenants
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_system", "acme"]);
    let acme = &tenants[1];
    assert_eq!(acme["origin"], "sealtrail.local/acme");
    assert_eq!(acme["size"], 3);
    // _system holds at least the admin token's creation, acme's tenant and its token.
    assert!(tenants[0]["size"].as_u64().unwrap() >= 3, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn health_reports_real_checks_and_counts_recent_events() {
    let app = spawn_app().await;
    let response = get(&app, "/health", None).await;
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert!(
        ["healthy", "degraded"].contains(&health["status"].as_str().unwrap()),
        "{health}"
    );
    let checks = &health["checks"];
    assert_eq!(checks["store"], "ok", "{health}");
    // The embedded store has no spool.
    assert_eq!(
        checks["spool"],
        json!({"depth": 0, "oldest_age_seconds": null})
    );
    assert!(
        ["valid", "violated", "unchecked"].contains(&checks["chain"].as_str().unwrap()),
        "{health}"
    );
    assert!(checks["audit_log_count_5m"].is_u64());

    let token = app.token("health-acme", &["events:write"]).await;
    for n in 0..3 {
        assert_eq!(app.post_event(&token, &event(n)).await.status(), 201);
    }
    let health: Value = get(&app, "/health", None).await.json().await.unwrap();
    let checks = &health["checks"];
    assert_eq!(checks["audit"], "active", "{health}");
    assert!(
        checks["audit_log_count_5m"].as_u64().unwrap() >= 3,
        "{health}"
    );
    assert!(checks["last_event_age_seconds"].as_f64().unwrap() < 60.0);
    // The write probe leaves nothing in the data directory.
    let leftovers: Vec<_> = std::fs::read_dir(&app.data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("health-probe"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    app.stop().await;
}

/// A data directory or database other local users can reach is warned about, by name, but
/// does not change the status: the service still works, and the operator may have meant it.
#[cfg(unix)]
#[tokio::test]
async fn health_warns_about_a_data_directory_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = spawn_app().await;
    let health: Value = get(&app, "/health", None).await.json().await.unwrap();
    assert!(
        health["checks"].get("permissions_warning").is_none(),
        "the service creates its files private: {health}"
    );
    let status = health["status"].clone();

    std::fs::set_permissions(&app.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let response = get(&app, "/health", None).await;
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(
        health["status"], status,
        "a warning, not a failure: {health}"
    );
    let warning = health["checks"]["permissions_warning"].as_str().unwrap();
    assert!(
        warning.contains(&format!("{} is 0755", app.data.display())),
        "{warning}"
    );
    assert!(warning.contains("chmod 700"), "{warning}");
    app.stop().await;
}

#[tokio::test]
async fn health_is_failing_with_503_when_the_data_directory_is_gone() {
    let app = spawn_app().await;
    // The server writes into its data directory as it runs (the background verifier records
    // each pass there): removing it can meet a file being created, so it is tried again.
    let mut removed = std::fs::remove_dir_all(&app.data);
    for _ in 0..20 {
        if removed.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        removed = std::fs::remove_dir_all(&app.data);
    }
    removed.expect("the data directory is removed");
    let response = get(&app, "/health", None).await;
    assert_eq!(response.status(), 503);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "failing", "{health}");
    assert_eq!(health["checks"]["store"], "failing");
    assert_eq!(health["checks"]["audit"], "failing");
    // Whichever check meets it first (the store read, or the fsync'd probe file) names where.
    let error = health["checks"]["store_error"].as_str().unwrap();
    let data = app.data.display().to_string();
    assert!(error.contains(&data), "{error}");
    app.stop().await;
}

/// The value of one sample line of the exposition, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_ingest_commits_and_checkpoints() {
    let app = spawn_app().await;
    let token = app.token("metrics-acme", &["events:write"]).await;
    for n in 0..2 {
        assert_eq!(app.post_event(&token, &event(n)).await.status(), 201);
    }
    let mut bad = event(3);
    bad["outcome"] = "maybe".into();
    assert_eq!(app.post_event(&token, &bad).await.status(), 422);
    let batch = app
        .client
        .post(app.url("/v1/events/batch"))
        .bearer_auth(&token)
        .json(&json!([event(4), bad, event(5)]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);

    // A checkpoint is signed within the test interval (50 ms) of the first commit.
    let mut text = String::new();
    for _ in 0..100 {
        let response = get(&app, "/metrics", None).await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        text = response.text().await.unwrap();
        if text.contains("sealtrail_checkpoint_age_seconds{tenant=\"metrics-acme\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingested = |outcome: &str| {
        let series = format!(
            "sealtrail_events_ingested_total{{tenant=\"metrics-acme\",outcome=\"{outcome}\"}}"
        );
        sample(&text, &series)
    };
    assert_eq!(ingested("created"), Some(4.0), "{text}");
    assert_eq!(ingested("rejected"), Some(2.0), "{text}");
    assert!(
        sample(
            &text,
            "sealtrail_ingest_errors_total{kind=\"invalid_event\"}"
        )
        .unwrap()
            >= 2.0
    );
    assert!(sample(&text, "sealtrail_batch_size_count").unwrap() >= 3.0);
    assert!(sample(&text, "sealtrail_commit_latency_seconds_count").unwrap() >= 3.0);
    let age = sample(
        &text,
        "sealtrail_checkpoint_age_seconds{tenant=\"metrics-acme\"}",
    )
    .expect("the tenant's checkpoint age is exported");
    assert!((0.0..60.0).contains(&age), "{age}");
    // The size of the embedded store's WAL and the query index's, as on disk (0 once the
    // keepers truncated them).
    for file in ["sealtrail.db", "index.db"] {
        let series = format!("sealtrail_store_wal_bytes{{file=\"{file}\"}}");
        let bytes = sample(&text, &series).unwrap_or_else(|| panic!("{series} in\n{text}"));
        assert!(bytes >= 0.0 && bytes.fract() == 0.0, "{series} is {bytes}");
    }
    for family in [
        "sealtrail_index_lag_seconds",
        "sealtrail_verification_runs",
        "sealtrail_chain_violations",
        "sealtrail_commit_failures",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} in\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// The OpenAPI document.

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn openapi(app: &TestApp) -> Value {
    let response = get(app, "/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

/// Resolves a local `$ref`.
fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{reference} is a local schema reference"));
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "{reference} resolves");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Checks `value` against `schema` as far as the document describes it: types, enums,
/// required properties, and no property the schema does not name.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return options
                .iter()
                .find(|option| conforms(doc, option, value, at).is_ok())
                .map(|_| ())
                .ok_or_else(|| format!("{at}: {value} matches no option of {schema}"));
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // JSON Schema counts every integer as a number too.
    let allowed = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !allowed {
        return Err(format!(
            "{at}: {value} is {kind}, the document says {types:?}"
        ));
    }
    match value {
        Value::Object(fields) if schema["properties"].is_object() => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required {name} is missing"));
                }
            }
            for (name, field) in fields {
                let property = &schema["properties"][name];
                if property.is_null() {
                    return Err(format!("{at}: {name} is not documented"));
                }
                conforms(doc, property, field, &format!("{at}.{name}"))?;
            }
            Ok(())
        }
        Value::Array(items) if schema["items"].is_object() => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

/// Checks a live response against the document's schema for it.
async fn matches_document(doc: &Value, method: &str, path: &str, response: reqwest::Response) {
    let status = response.status().as_u16().to_string();
    let body: Value = response.json().await.expect("a JSON body");
    let documented = &doc["paths"][path][method]["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let schema = &documented["content"]["application/json"]["schema"];
    if let Err(problem) = conforms(doc, schema, &body, "body") {
        panic!("{method} {path} {status} does not match the document: {problem}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_1() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let operations: Vec<_> = METHODS.iter().filter(|m| item.get(**m).is_some()).collect();
        assert!(!operations.is_empty(), "{path} has no operation");
        for method in operations {
            let operation = &item[*method];
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        doc["components"]["securitySchemes"][scheme].is_object(),
                        "{method} {path} names an undeclared security scheme {scheme}"
                    );
                }
            }
            // Every templated path segment is declared as a path parameter.
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true);
                assert!(
                    declared,
                    "{method} {path}: path parameter {name} is not declared"
                );
            }
        }
    }
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let reference = &reference[..reference.find('"').unwrap()];
        resolve(&doc, &json!({"$ref": reference}));
    }
    // Routes that need a token say so; the operations endpoints do not.
    assert_eq!(
        paths["/v1/events"]["post"]["security"],
        json!([{"bearer": []}])
    );
    for open in ["/health", "/metrics", "/openapi.json"] {
        assert!(
            paths[open]["get"]["security"].is_null(),
            "{open} needs no token"
        );
    }
    app.stop().await;
}

/// A batch's elements are the one `Event` schema, by reference, as the single-event route's
/// body is: a generated client then sends a batch as a list of the typed events it already
/// has (an `anyOf` of an inlined copy and "anything else" gave it a second, untyped event).
#[tokio::test]
async fn a_batch_is_described_as_an_array_of_the_event_schema() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let json_body = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let event = json!({"$ref": "#/components/schemas/Event"});
    assert_eq!(json_body("/v1/events"), event);
    let batch = json_body("/v1/events/batch");
    let array = resolve(&doc, &batch);
    assert_eq!(array["type"], "array", "{array}");
    assert_eq!(array["items"], event, "{array}");
    assert_eq!(array["minItems"], 1, "{array}");
    assert_eq!(array["maxItems"], 10_000, "{array}");
    // The schema of an event as sent is stated once in the whole document, in its component
    // (a stored event, with its `event_hash`, is another schema).
    fn event_copies(value: &Value) -> usize {
        let properties = &value["properties"];
        let own = properties["action"].is_object()
            && properties["actor"].is_object()
            && properties["event_hash"].is_null();
        let nested: usize = match value {
            Value::Object(map) => map.values().map(event_copies).sum(),
            Value::Array(items) => items.iter().map(event_copies).sum(),
            _ => 0,
        };
        usize::from(own) + nested
    }
    assert_eq!(event_copies(&doc), 1);
    assert!(resolve(&doc, &event)["properties"]["actor"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn responses_match_their_documented_schemas() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let token = app.token("acme", &["events:write"]).await;
    matches_document(
        &doc,
        "post",
        "/v1/events",
        app.post_event(&token, &event(1)).await,
    )
    .await;
    let mut bad = event(2);
    bad["actor"] = json!({});
    matches_document(
        &doc,
        "post",
        "/v1/events",
        app.post_event(&token, &bad).await,
    )
    .await;
    let batch = app
        .client
        .post(app.url("/v1/events/batch"))
        .bearer_auth(&token)
        .json(&json!([event(3), bad]))
        .send()
        .await
        .unwrap();
    matches_document(&doc, "post", "/v1/events/batch", batch).await;
    // A key reused for another event: the error names the original receipt, alone and in a
    // batch.
    let keyed = |n| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "doc-key")
            .json(&event(n))
            .send()
    };
    assert_eq!(keyed(20).await.unwrap().status(), 201);
    let conflict = keyed(21).await.unwrap();
    assert_eq!(conflict.status(), 422);
    matches_document(&doc, "post", "/v1/events", conflict).await;
    let mut reused = event(22);
    reused["idempotency_key"] = "doc-key".into();
    let batch = app.post_batch(&token, &json!([reused])).await;
    matches_document(&doc, "post", "/v1/events/batch", batch).await;
    matches_document(&doc, "get", "/health", get(&app, "/health", None).await).await;
    let admin = Some(app.admin_token.as_str());
    let created = create_token(
        &app,
        &app.admin_token,
        &json!({"tenant": "beta", "scopes": ["events:read"]}),
    )
    .await;
    matches_document(&doc, "post", "/v1/admin/tokens", created).await;
    let invalid = create_token(&app, &app.admin_token, &json!({"tenant": "beta"})).await;
    matches_document(&doc, "post", "/v1/admin/tokens", invalid).await;
    let tokens = get(&app, "/v1/admin/tokens", admin).await;
    matches_document(&doc, "get", "/v1/admin/tokens", tokens).await;
    let tenants = get(&app, "/v1/admin/tenants", admin).await;
    matches_document(&doc, "get", "/v1/admin/tenants", tenants).await;
    let forbidden = get(&app, "/v1/admin/tenants", Some(&token)).await;
    matches_document(&doc, "get", "/v1/admin/tenants", forbidden).await;
    // A freeze, the listing with a frozen tenant, the refusals and the unfreeze.
    let set_frozen = |action: &str, tenant: &str, body: Value| {
        app.client
            .post(app.url(&format!("/v1/admin/tenants/{tenant}/{action}")))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let freeze = "/v1/admin/tenants/{tenant}/freeze";
    let unfreeze = "/v1/admin/tenants/{tenant}/unfreeze";
    let frozen = set_frozen("freeze", "acme", json!({"reason": "doc"}))
        .await
        .unwrap();
    assert_eq!(frozen.status(), 200);
    matches_document(&doc, "post", freeze, frozen).await;
    let refused = app.post_event(&token, &event(30)).await;
    assert_eq!(refused.status(), 503);
    matches_document(&doc, "post", "/v1/events", refused).await;
    let tenants = get(&app, "/v1/admin/tenants", admin).await;
    matches_document(&doc, "get", "/v1/admin/tenants", tenants).await;
    for (tenant, body) in [
        ("nobody", json!({"reason": "doc"})),
        ("_system", json!({"reason": "doc"})),
        ("acme", json!({"reason": ""})),
    ] {
        let response = set_frozen("freeze", tenant, body).await.unwrap();
        assert!(response.status().is_client_error());
        matches_document(&doc, "post", freeze, response).await;
    }
    let unfrozen = set_frozen("unfreeze", "acme", json!({"reason": "doc"}))
        .await
        .unwrap();
    assert_eq!(unfrozen.status(), 200);
    matches_document(&doc, "post", unfreeze, unfrozen).await;
    let forbidden = app
        .client
        .post(app.url("/v1/admin/tenants/acme/unfreeze"))
        .bearer_auth(&token)
        .json(&json!({"reason": "doc"}))
        .send()
        .await
        .unwrap();
    matches_document(&doc, "post", unfreeze, forbidden).await;

    // The read side: an event with its proof (before and after a checkpoint covers it, when
    // `checkpoint` is null and then the note), proofs, verification, pages and refusals.
    let reader = app
        .token("acme", &["events:read", "log:read", "verify"])
        .await;
    let receipt: Value = app
        .post_event(&token, &event(4))
        .await
        .json()
        .await
        .unwrap();
    let by_id = format!("/v1/events/{}", receipt["id"].as_str().unwrap());
    let seq = receipt["seq"].as_u64().unwrap();
    let fresh = get(&app, &by_id, Some(&reader)).await;
    matches_document(&doc, "get", "/v1/events/{id}", fresh).await;
    for _ in 0..200 {
        let proof: Value = get(&app, &by_id, Some(&reader)).await.json().await.unwrap();
        if proof["proof"]["checkpoint"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let signed = get(&app, &by_id, Some(&reader)).await;
    matches_document(&doc, "get", "/v1/events/{id}", signed).await;
    for (path, documented) in [
        (
            format!("/v1/log/proof/inclusion?seq={seq}&size={}", seq + 1),
            "/v1/log/proof/inclusion",
        ),
        (
            "/v1/log/proof/inclusion?seq=0&size=0".to_string(),
            "/v1/log/proof/inclusion",
        ),
        (
            format!("/v1/log/proof/consistency?from=1&to={}", seq + 1),
            "/v1/log/proof/consistency",
        ),
        ("/v1/verify".to_string(), "/v1/verify"),
        (
            "/v1/verify?to_seq=9007199254740992".to_string(),
            "/v1/verify",
        ),
        ("/v1/events?limit=2".to_string(), "/v1/events"),
        ("/v1/events?limit=0".to_string(), "/v1/events"),
        ("/v1/events/not-a-uuid".to_string(), "/v1/events/{id}"),
        (
            "/logs/acme/tile/0/1".to_string(),
            "/logs/{tenant}/tile/{tile_path}",
        ),
        (
            "/logs/Acme/checkpoint".to_string(),
            "/logs/{tenant}/checkpoint",
        ),
    ] {
        let response = get(&app, &path, Some(&reader)).await;
        matches_document(&doc, "get", documented, response).await;
    }
    app.stop().await;
}

/// A path with every parameter written `{}`, so that names may differ between the router
/// and the document; a trailing catch-all (`{*rest}`) is kept as `{*}`.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            s if s.starts_with("{*") => "{*}",
            s if s.starts_with('{') => "{}",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (method, path) the router serves, read from the `.route("…", …)` calls under
/// `src/http/`. The router cannot list its routes, and reading the source keeps this test
/// independent of who adds a route where.
fn served_routes() -> BTreeSet<(String, String)> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")];
    let mut routes = BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".nest(") && !source.contains(".route_service("),
            "{}: this test reads .route(\"…\", …) calls only; teach it nested routers",
            path.display()
        );
        for (start, _) in source.match_indices(".route(") {
            let rest = source[start + ".route(".len()..].trim_start();
            let Some(literal) = rest.strip_prefix('"') else {
                continue; // Not a call with a literal path (prose in a comment).
            };
            let route = &literal[..literal.find('"').unwrap()];
            // The method routers of this route: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let call = &rest[..end];
            for method in METHODS {
                let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || {
                        let before = call.as_bytes()[i - 1];
                        !(before.is_ascii_alphanumeric() || before == b'_')
                    }
                });
                if called {
                    routes.insert((method.to_string(), normalize(route)));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), normalize(path)))
        })
        .collect();
    let pending: BTreeSet<(String, String)> = sealtrail_server::http::ops::PENDING_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), normalize(path)))
        .collect();
    let served = served_routes();
    assert!(
        served.len() >= 10,
        "the route scan found too little: {served:?}"
    );
    // The console's routes serve a web page, not the JSON API: they are left out of the
    // document on purpose, and the scan must find exactly those routes of `http/console.rs`.
    let console: BTreeSet<(String, String)> = sealtrail_server::http::console::ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), normalize(path)))
        .collect();
    for route in &console {
        assert!(
            served.contains(route),
            "{} {} is listed in console::ROUTES but not served",
            route.0,
            route.1
        );
        assert!(
            !documented.contains(route),
            "{} {} is a console page: keep it out of the API document",
            route.0,
            route.1
        );
    }
    let api_routes: BTreeSet<(String, String)> = served.difference(&console).cloned().collect();

    // A catch-all route serves every documented path below it.
    let covers = |served: &(String, String), documented: &(String, String)| {
        served.0 == documented.0
            && match served.1.strip_suffix("{*}") {
                Some(prefix) => documented.1.starts_with(prefix),
                None => served.1 == documented.1,
            }
    };
    for route in &api_routes {
        assert!(
            documented.iter().any(|d| covers(route, d)),
            "{} {} is served but not in the OpenAPI document: describe it in \
             http/ops/openapi.rs",
            route.0,
            route.1
        );
    }
    for route in &documented {
        let is_served = served.iter().any(|s| covers(s, route));
        let is_pending = pending.contains(route);
        assert!(
            is_served || is_pending,
            "{} {} is documented but not served",
            route.0,
            route.1
        );
        assert!(
            !(is_served && is_pending),
            "{} {} is served now: remove it from PENDING_ROUTES in http/ops/openapi.rs",
            route.0,
            route.1
        );
    }

    // The scan found real routes: each answers something other than the router's own
    // 404 (empty body) or 405.
    for (method, path) in &served {
        let url = app.url(&path.replace("{*}", "0/x000").replace("{}", "x"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        assert!(
            status != 405 && !(status == 404 && body.is_empty()),
            "{method} {path} is not routed ({status})"
        );
    }
    app.stop().await;
}
