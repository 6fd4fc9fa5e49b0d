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
    let response = app.post_batch(&token, &batch).await;
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

// ---------------------------------------------------------------------------------------
// Bad input: every refusal is a 4xx with a JSON error naming the field and the rule, and
// nothing else is affected — the log keeps its size, and a batch's valid events are still
// committed, at consecutive seqs.

/// A valid event as JSON text.
fn valid() -> String {
    event(0).to_string()
}

/// `valid()` with `extra` (`"key": value, …`) added to its top-level object.
fn valid_with(extra: &str) -> String {
    let text = valid();
    format!("{},{extra}}}", &text[..text.len() - 1])
}

/// `{"a": {"a": … 1 …}}`, `levels` objects deep.
fn nested(levels: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels))
}

/// A body the event schema refuses, with the status, field and rule it is refused with.
struct BadEvent {
    what: &'static str,
    body: Vec<u8>,
    status: u16,
    field: &'static str,
    rule: &'static str,
    /// Refused while the JSON document is read (syntax, duplicate keys, nesting), before any
    /// event is looked at: in a JSON array batch it refuses the whole document, so it is
    /// checked one by one only in NDJSON, where each line is a document of its own.
    whole_document: bool,
}

fn bad_events() -> Vec<BadEvent> {
    let schema = |what, body: String, status, field, rule| BadEvent {
        what,
        body: body.into_bytes(),
        status,
        field,
        rule,
        whole_document: false,
    };
    let document = |what, body: Vec<u8>, status, field, rule| BadEvent {
        what,
        body,
        status,
        field,
        rule,
        whole_document: true,
    };
    let huge_details = (0..20)
        .map(|n| format!(r#""k{n}": "{}""#, "x".repeat(4000)))
        .collect::<Vec<_>>()
        .join(",");
    let many_targets = vec![r#"{"id": "p-1"}"#; 65].join(",");
    vec![
        document(
            "malformed JSON",
            br#"{"action": "a", "outcome": "#.to_vec(),
            400,
            "",
            "syntax",
        ),
        document(
            "not JSON at all",
            b"action=a&outcome=success".to_vec(),
            400,
            "",
            "syntax",
        ),
        document(
            "invalid UTF-8",
            b"{\"action\": \"a\xff\", \"outcome\": \"success\", \"actor\": {\"id\": \"u\"}}".to_vec(),
            400,
            "",
            "syntax",
        ),
        document(
            "a raw NUL byte in a string",
            b"{\"action\": \"a\", \"outcome\": \"success\", \"actor\": {\"id\": \"u\0\"}}".to_vec(),
            400,
            "",
            "syntax",
        ),
        document(
            "a duplicate key",
            br#"{"action": "a", "action": "b", "outcome": "success", "actor": {"id": "u"}}"#
                .to_vec(),
            422,
            "action",
            "duplicate_key",
        ),
        document(
            "a document nested more than 16 levels",
            valid_with(&format!(r#""details": {}"#, nested(20))).into_bytes(),
            422,
            "details.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
            "max_depth",
        ),
        schema(
            "a JSON string instead of an event",
            r#""patient.record.read""#.into(),
            422,
            "",
            "type",
        ),
        schema(
            "an escaped NUL character",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u\u0000"}}"#.into(),
            422,
            "actor.id",
            "nul_character",
        ),
        schema(
            "a NUL character inside details",
            valid_with(r#""details": {"note": "a\u0000b"}"#),
            422,
            "details.note",
            "nul_character",
        ),
        schema(
            "a number where a string belongs",
            r#"{"action": 5, "outcome": "success", "actor": {"id": "u"}}"#.into(),
            422,
            "action",
            "type",
        ),
        schema(
            "a string where an object belongs",
            r#"{"action": "a", "outcome": "success", "actor": "u-1"}"#.into(),
            422,
            "actor",
            "type",
        ),
        schema(
            "an object where an array belongs",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "targets": {"id": "p-1"}}"#
                .into(),
            422,
            "targets",
            "type",
        ),
        schema(
            "no action",
            r#"{"outcome": "success", "actor": {"id": "u"}}"#.into(),
            422,
            "action",
            "required",
        ),
        schema(
            "no actor",
            r#"{"action": "a", "outcome": "success"}"#.into(),
            422,
            "actor",
            "required",
        ),
        schema(
            "no actor.id",
            r#"{"action": "a", "outcome": "success", "actor": {"type": "user"}}"#.into(),
            422,
            "actor.id",
            "required",
        ),
        schema(
            "a null outcome",
            r#"{"action": "a", "outcome": null, "actor": {"id": "u"}}"#.into(),
            422,
            "outcome",
            "required",
        ),
        schema(
            "an empty action",
            r#"{"action": "", "outcome": "success", "actor": {"id": "u"}}"#.into(),
            422,
            "action",
            "empty",
        ),
        schema(
            "an action with a space",
            r#"{"action": "read record", "outcome": "success", "actor": {"id": "u"}}"#.into(),
            422,
            "action",
            "pattern",
        ),
        schema(
            "an unknown outcome",
            r#"{"action": "a", "outcome": "maybe", "actor": {"id": "u"}}"#.into(),
            422,
            "outcome",
            "enum",
        ),
        schema(
            "an unknown activity",
            r#"{"action": "a", "activity": "browse", "outcome": "success", "actor": {"id": "u"}}"#
                .into(),
            422,
            "activity",
            "enum",
        ),
        schema(
            "an unknown actor type",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u", "type": "robot"}}"#
                .into(),
            422,
            "actor.type",
            "enum",
        ),
        schema(
            "a timestamp that is not RFC 3339",
            valid_with(r#""occurred_at": "yesterday""#),
            422,
            "occurred_at",
            "timestamp",
        ),
        schema(
            "a timestamp without an offset",
            valid_with(r#""occurred_at": "2026-11-23T10:00:00""#),
            422,
            "occurred_at",
            "timestamp",
        ),
        schema(
            "a timestamp before 1970",
            valid_with(r#""occurred_at": "1969-12-31T23:59:59Z""#),
            422,
            "occurred_at",
            "timestamp",
        ),
        schema(
            "an IP address with a port",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "context": {"ip": "10.1.2.3:80"}}"#.into(),
            422,
            "context.ip",
            "ip",
        ),
        schema(
            "an IP address with a leading zero",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "context": {"ip": "10.01.2.3"}}"#.into(),
            422,
            "context.ip",
            "ip",
        ),
        schema(
            "a host name for an IP address",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "context": {"ip": "localhost"}}"#.into(),
            422,
            "context.ip",
            "ip",
        ),
        schema(
            "an unknown field",
            valid_with(r#""outcom": "success""#),
            422,
            "outcom",
            "unknown_field",
        ),
        schema(
            "a server-assigned field",
            valid_with(r#""seq": 5"#),
            422,
            "seq",
            "unknown_field",
        ),
        schema(
            "a string longer than its bound",
            valid_with(&format!(r#""outcome_reason": "{}""#, "x".repeat(4097))),
            422,
            "outcome_reason",
            "max_length",
        ),
        schema(
            "more than 64 targets",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "targets": [T]}"#
                .replace('T', &many_targets),
            422,
            "targets",
            "max_items",
        ),
        schema(
            "details nested more than 8 levels",
            valid_with(&format!(r#""details": {}"#, nested(9))),
            422,
            "details.a.a.a.a.a.a.a.a",
            "max_depth",
        ),
        schema(
            "an integer beyond 2^53",
            valid_with(r#""details": {"n": 9007199254740993}"#),
            422,
            "details.n",
            "number_precision",
        ),
        schema(
            "a number beyond the doubles",
            valid_with(r#""details": {"n": 1e400}"#),
            422,
            "details.n",
            "number_precision",
        ),
        schema(
            "a decimal a double cannot hold",
            valid_with(r#""details": {"n": 0.1000000000000000000001}"#),
            422,
            "details.n",
            "number_precision",
        ),
        schema(
            "a source.seq beyond 2^53 - 1",
            r#"{"action": "a", "outcome": "success", "actor": {"id": "u"}, "source": {"seq": 9007199254740992}}"#.into(),
            422,
            "source.seq",
            "range",
        ),
        schema(
            "a canonical entry over 64 KiB",
            valid_with(&format!(r#""details": {{{huge_details}}}"#)),
            413,
            "",
            "max_size",
        ),
    ]
}

/// The JSON error of a refused request, after checking it names `field` and `rule`.
async fn refusal(
    response: reqwest::Response,
    status: u16,
    field: &str,
    rule: &str,
    what: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "{what}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{what}"
    );
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["field"], field, "{what}: {error}");
    assert_eq!(error["rule"], rule, "{what}: {error}");
    assert!(
        !error["error"].as_str().unwrap().is_empty()
            && !error["message"].as_str().unwrap().is_empty(),
        "{what}: {error}"
    );
    error
}

#[tokio::test]
async fn a_bad_event_is_refused_naming_the_field_and_the_rule_and_the_log_is_untouched() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    assert_eq!(app.post_event(&token, &event(0)).await.status(), 201);
    for bad in bad_events() {
        let response = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(bad.body)
            .send()
            .await
            .unwrap();
        refusal(response, bad.status, bad.field, bad.rule, bad.what).await;
        assert_eq!(app.log_size("acme"), 1, "{}: the log grew", bad.what);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_event_in_a_batch_rejects_only_itself_and_its_neighbours_are_committed() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let batch = |content_type: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url("/v1/events/batch"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for bad in bad_events() {
        let field = match bad.field {
            "" => "[1]".to_string(),
            field => format!("[1].{field}"),
        };
        let mut bodies = vec![("application/x-ndjson", b"\n".as_slice(), b"".as_slice())];
        if !bad.whole_document {
            bodies.push(("application/json", b",".as_slice(), b"[".as_slice()));
        }
        for (content_type, separator, open) in bodies {
            let mut body = open.to_vec();
            for (n, element) in [valid().as_bytes(), &bad.body, valid().as_bytes()]
                .into_iter()
                .enumerate()
            {
                if n > 0 {
                    body.extend_from_slice(separator);
                }
                body.extend_from_slice(element);
            }
            if content_type == "application/json" {
                body.push(b']');
            }
            let what = format!("{} in {content_type}", bad.what);
            let before = app.log_size("acme");
            let response = batch(content_type, body).await.unwrap();
            assert_eq!(response.status(), 200, "{what}");
            let results: serde_json::Value = response.json().await.unwrap();
            let results = results.as_array().unwrap();
            assert_eq!(results.len(), 3, "{what}: {results:?}");
            let rejected = &results[1];
            assert_eq!(rejected["index"], 1, "{what}");
            assert_eq!(rejected["status"], bad.status, "{what}: {rejected}");
            assert_eq!(
                rejected["error"]["field"],
                field.as_str(),
                "{what}: {rejected}"
            );
            assert_eq!(rejected["error"]["rule"], bad.rule, "{what}: {rejected}");
            assert!(rejected.get("seq").is_none(), "{what}: {rejected}");
            for (n, result) in [(0, &results[0]), (2, &results[2])] {
                assert_eq!(result["index"], n, "{what}");
                assert_eq!(result["status"], 201, "{what}: {result}");
            }
            assert_eq!(results[0]["seq"], before, "{what}");
            assert_eq!(results[2]["seq"], before + 1, "{what}: consecutive seqs");
            assert_eq!(app.log_size("acme"), before + 2, "{what}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_request_is_refused_whole_naming_the_field_and_the_rule() {
    let app = spawn_app().await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    let operator = app.token("*", &["events:write"]).await;
    // As `sealtrail tokens create --tenant '*' --scope admin …` makes one.
    let operator_admin = app.token("*", &["events:write", "admin"]).await;
    app.token("other", &["events:write"]).await;
    let revoked = app
        .ledger
        .create_token("acme", vec!["events:write".into()], "test")
        .await
        .unwrap();
    assert!(app.ledger.revoke_token(&revoked.id, "test").await.unwrap());
    assert_eq!(app.post_event(&writer, &event(0)).await.status(), 201);

    struct Request {
        what: String,
        path: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        status: u16,
        field: &'static str,
        rule: &'static str,
    }
    let bearer = |token: &str| format!("Bearer {token}");
    let one_event = valid().into_bytes();
    let two_events = format!("[{},{}]", valid(), valid()).into_bytes();
    // (what, headers as (name, value); None removes the default, status, field, rule)
    type Headers = Vec<(&'static str, Option<String>)>;
    let for_both_routes: Vec<(&str, Headers, u16, &str, &str)> = vec![
        (
            "no token",
            vec![("authorization", None)],
            401,
            "Authorization",
            "required",
        ),
        (
            "not a bearer token",
            vec![("authorization", Some(format!("Basic {writer}")))],
            401,
            "Authorization",
            "format",
        ),
        (
            "an unknown token",
            vec![("authorization", Some(bearer("st_not-a-token")))],
            401,
            "Authorization",
            "unknown_token",
        ),
        (
            "a revoked token",
            vec![("authorization", Some(bearer(&revoked.token)))],
            401,
            "Authorization",
            "revoked",
        ),
        (
            "a token without events:write",
            vec![("authorization", Some(bearer(&reader)))],
            403,
            "Authorization",
            "scope",
        ),
        (
            "a tenant-bound token naming another tenant",
            vec![("x-tenant-id", Some("other".into()))],
            403,
            "X-Tenant-ID",
            "tenant",
        ),
        (
            "a multi-tenant token naming no tenant",
            vec![("authorization", Some(bearer(&operator)))],
            400,
            "X-Tenant-ID",
            "required",
        ),
        (
            "a multi-tenant token naming a tenant that does not exist",
            vec![
                ("authorization", Some(bearer(&operator))),
                ("x-tenant-id", Some("nobody".into())),
            ],
            404,
            "X-Tenant-ID",
            "unknown_tenant",
        ),
        (
            "a multi-tenant token naming no valid tenant",
            vec![
                ("authorization", Some(bearer(&operator))),
                ("x-tenant-id", Some("Acme Corp".into())),
            ],
            400,
            "X-Tenant-ID",
            "format",
        ),
        (
            "a multi-tenant token without admin naming the _system log",
            vec![
                ("authorization", Some(bearer(&operator))),
                ("x-tenant-id", Some("_system".into())),
            ],
            403,
            "Authorization",
            "system_log",
        ),
        (
            "a multi-tenant admin token naming the _system log",
            vec![
                ("authorization", Some(bearer(&operator_admin))),
                ("x-tenant-id", Some("_system".into())),
            ],
            403,
            "X-Tenant-ID",
            "reserved",
        ),
        (
            "text/plain",
            vec![("content-type", Some("text/plain".into()))],
            415,
            "Content-Type",
            "media_type",
        ),
        (
            "form data",
            vec![(
                "content-type",
                Some("application/x-www-form-urlencoded".into()),
            )],
            415,
            "Content-Type",
            "media_type",
        ),
        (
            "no content type",
            vec![("content-type", None)],
            415,
            "Content-Type",
            "media_type",
        ),
    ];
    let mut requests = Vec::new();
    for (what, headers, status, field, rule) in for_both_routes {
        for (path, body) in [
            ("/v1/events", &one_event),
            ("/v1/events/batch", &two_events),
        ] {
            let mut all: Vec<(&'static str, String)> = vec![
                ("authorization", bearer(&writer)),
                ("content-type", "application/json".into()),
            ];
            for (name, value) in &headers {
                all.retain(|(n, _)| n != name);
                if let Some(value) = value {
                    all.push((name, value.clone()));
                }
            }
            requests.push(Request {
                what: format!("{what} on {path}"),
                path,
                headers: all,
                body: body.clone(),
                status,
                field,
                rule,
            });
        }
    }
    let single = |what: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>| Request {
        what: what.to_string(),
        path: "/v1/events",
        headers: [
            vec![
                ("authorization", bearer(&writer)),
                ("content-type", "application/json".to_string()),
            ],
            headers,
        ]
        .concat(),
        body,
        status: 422,
        field: "",
        rule: "",
    };
    let batch = |what: &str, content_type: &str, body: Vec<u8>| Request {
        path: "/v1/events/batch",
        headers: vec![
            ("authorization", bearer(&writer)),
            ("content-type", content_type.to_string()),
        ],
        ..single(what, vec![], body)
    };
    let too_many = format!("[{}]", vec![valid(); 10_001].join(",")).into_bytes();
    let over_16_mib = format!(
        r#"[{}]"#,
        valid_with(&format!(
            r#""details": {{"x": "{}"}}"#,
            "y".repeat(17 << 20)
        ))
    )
    .into_bytes();
    let over_1_mib = valid_with(&format!(r#""details": {{"x": "{}"}}"#, "y".repeat(1 << 20)));
    requests.extend([
        Request {
            status: 422,
            field: "",
            rule: "type",
            ..single("an array on the single-event route", vec![], two_events.clone())
        },
        Request {
            status: 413,
            field: "",
            rule: "max_size",
            ..single("a body over 1 MiB", vec![], over_1_mib.into_bytes())
        },
        Request {
            field: "Idempotency-Key",
            rule: "min_length",
            ..single(
                "an empty Idempotency-Key",
                vec![("idempotency-key", String::new())],
                one_event.clone(),
            )
        },
        Request {
            field: "Idempotency-Key",
            rule: "max_length",
            ..single(
                "an Idempotency-Key of 257 characters",
                vec![("idempotency-key", "k".repeat(257))],
                one_event.clone(),
            )
        },
        Request {
            field: "Idempotency-Key",
            rule: "pattern",
            ..single(
                "an Idempotency-Key with a space",
                vec![("idempotency-key", "req 77".into())],
                one_event.clone(),
            )
        },
        Request {
            field: "Idempotency-Key",
            rule: "conflict",
            ..single(
                "an Idempotency-Key header unlike the body's key",
                vec![("idempotency-key", "req-77".into())],
                valid_with(r#""idempotency_key": "req-78""#).into_bytes(),
            )
        },
        Request {
            status: 400,
            rule: "syntax",
            ..batch("malformed JSON", "application/json", b"[{".to_vec())
        },
        Request {
            rule: "type",
            ..batch("an object instead of an array", "application/json", one_event.clone())
        },
        Request {
            rule: "required",
            ..batch("an empty array", "application/json", b"[]".to_vec())
        },
        Request {
            rule: "required",
            ..batch("NDJSON of blank lines", "application/x-ndjson", b"\n \n".to_vec())
        },
        Request {
            field: "[1].action",
            rule: "duplicate_key",
            ..batch(
                "a duplicate key in one element of a JSON array",
                "application/json",
                format!(
                    r#"[{}, {{"action": "a", "action": "b", "outcome": "success", "actor": {{"id": "u"}}}}]"#,
                    valid()
                )
                .into_bytes(),
            )
        },
        Request {
            status: 413,
            rule: "max_items",
            ..batch("10,001 events", "application/json", too_many)
        },
        Request {
            status: 413,
            rule: "max_size",
            ..batch("a body over 16 MiB", "application/json", over_16_mib)
        },
    ]);

    for request in requests {
        let before = app.log_size("acme");
        let mut builder = app.client.post(app.url(request.path));
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder.body(request.body).send().await.unwrap();
        refusal(
            response,
            request.status,
            request.field,
            request.rule,
            &request.what,
        )
        .await;
        assert_eq!(
            app.log_size("acme"),
            before,
            "{}: the log changed",
            request.what
        );
        assert_eq!(app.log_size("other"), 0, "{}", request.what);
    }
    app.stop().await;
}

#[tokio::test]
async fn nobody_writes_producer_events_into_the_system_log() {
    let app = spawn_app().await;
    let operator = app.token("*", &["events:write"]).await;
    // Not even an operator token with the admin scope, which reaches the _system log.
    let operator_admin = app.token("*", &["events:write", "admin"]).await;
    for (token, code) in [
        (&operator, "missing_scope"),
        (&operator_admin, "reserved_tenant"),
    ] {
        let response = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(token)
            .header("X-Tenant-ID", "_system")
            .json(&event(1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"], code);
    }
    assert!(
        app.entries("_system")
            .iter()
            .all(|entry| !String::from_utf8_lossy(entry).contains("patient.record.read")),
        "no producer event is in the _system log"
    );
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

/// An `occurred_at` further ahead of the server's clock than `max_future_skew_secs` allows is
/// refused with 422 naming the field and the rule `future`; in a batch only that event is.
#[tokio::test]
async fn an_event_dated_beyond_the_allowed_skew_is_refused_and_in_a_batch_only_itself() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = crate::helpers::spawn_app_in(dir, |s| s.max_future_skew_secs = Some(60)).await;
    let token = app.token("acme", &["events:write"]).await;
    let from_now = |secs: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        sealtrail_core::Timestamp::from_unix_micros(now + secs * 1_000_000)
            .unwrap()
            .to_rfc3339()
    };
    let dated = |n, secs| {
        let mut dated = event(n);
        dated["occurred_at"] = from_now(secs).into();
        dated
    };

    let response = app.post_event(&token, &dated(1, 3600)).await;
    assert_eq!(response.status(), 422);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["field"], "occurred_at", "{error}");
    assert_eq!(error["rule"], "future", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("at most 60 s ahead"),
        "{error}"
    );
    assert_eq!(app.log_size("acme"), 0);

    // Within the skew (a producer's clock a little ahead) and in the past: accepted.
    let batch = serde_json::json!([dated(2, 30), dated(3, 3600), dated(4, -3600)]);
    let response = app.post_batch(&token, &batch).await;
    assert_eq!(response.status(), 200);
    let results: serde_json::Value = response.json().await.unwrap();
    assert_eq!(results[0]["status"], 201, "{results}");
    assert_eq!(results[1]["status"], 422, "{results}");
    assert_eq!(results[1]["error"]["field"], "[1].occurred_at");
    assert_eq!(results[1]["error"]["rule"], "future");
    assert_eq!(results[2]["status"], 201, "{results}");
    assert_eq!(app.log_size("acme"), 2);
    app.stop().await;
}
