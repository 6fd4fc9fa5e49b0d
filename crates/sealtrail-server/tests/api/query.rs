//! The query API: every filter against a known set of events, pagination both ways, read your
//! writes, events by id with verified inclusion proofs, tenant isolation, parameter errors,
//! and an index rebuilt from the log.

use std::sync::Arc;

use reqwest::StatusCode;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::verify_inclusion;
use sealtrail_core::note::VerifierKey;
use sealtrail_core::{Hash, leaf_hash, node_hash};
use serde_json::{Value, json};

use crate::helpers::{TestApp, event, spawn_app, spawn_app_in};

/// What the tests know about event `n` of [`varied`]: the facts the filters look at.
struct Spec {
    action: &'static str,
    activity: Option<&'static str>,
    outcome: &'static str,
    actor: String,
    targets: Vec<(&'static str, String)>,
    ip: Option<&'static str>,
    source: Option<&'static str>,
    /// `occurred_at` = 2020-01-01T00:MM:00Z, when present.
    minute: Option<u64>,
}

const EVENTS: u64 = 50;

fn spec(n: u64) -> Spec {
    let (action, activity) = match n % 4 {
        0 => ("patient.record.read", "read"),
        1 => ("patient.record.update", "update"),
        2 => ("user.login", "login"),
        _ => ("report.export", "export"),
    };
    let outcome = if n.is_multiple_of(5) {
        "failure"
    } else if n.is_multiple_of(13) {
        "unknown"
    } else {
        "success"
    };
    let targets = match n % 3 {
        0 => vec![("patient", format!("p-{}", n % 10))],
        1 => vec![
            ("patient", format!("p-{}", n % 10)),
            ("claim", format!("c-{n}")),
        ],
        // The same id under another type: type and id must match one and the same target.
        _ if n % 4 == 2 => vec![("invoice", format!("p-{}", n % 10))],
        _ => vec![],
    };
    let ip = match n % 4 {
        0 => Some(["10.0.0.1", "10.0.0.2"][(n % 8 / 4) as usize]),
        1 => Some("2001:db8::1"),
        _ => None,
    };
    let source = if n.is_multiple_of(2) {
        Some("ehr-web")
    } else if n.is_multiple_of(3) {
        Some("billing")
    } else {
        None
    };
    Spec {
        action,
        activity: (n % 10 != 9).then_some(activity),
        outcome,
        actor: format!("u-{}", n % 6),
        targets,
        ip,
        source,
        minute: n.is_multiple_of(2).then_some(n),
    }
}

/// Event `n` as a producer sends it.
fn varied(n: u64) -> Value {
    let s = spec(n);
    let mut event = json!({
        "action": s.action,
        "outcome": s.outcome,
        "actor": {"id": s.actor, "type": "user"},
    });
    if let Some(activity) = s.activity {
        event["activity"] = activity.into();
    }
    if !s.targets.is_empty() {
        event["targets"] = s
            .targets
            .iter()
            .map(|(kind, id)| json!({"type": kind, "id": id}))
            .collect();
    }
    if let Some(ip) = s.ip {
        // Sent in a non-normal spelling; stored and matched in the normal one.
        let sent = if ip == "2001:db8::1" {
            "2001:DB8::0:1"
        } else {
            ip
        };
        event["context"] = json!({"ip": sent});
    }
    if let Some(app) = s.source {
        event["source"] = json!({"app": app, "seq": n});
    }
    if let Some(minute) = s.minute {
        event["occurred_at"] = format!("2020-01-01T00:{minute:02}:00Z").into();
    }
    let mut details = serde_json::Map::new();
    if n.is_multiple_of(5) {
        details.insert("reason".into(), "treatment".into());
        details.insert("fields".into(), json!(["name", "dob"]));
    }
    if n % 5 == 1 {
        details.insert("reason".into(), format!("claim-{n}").into());
        details.insert("note".into(), "Billing Review".into());
    }
    if n % 7 == 3 {
        details.insert("nested".into(), json!({"deep": ["Émergency access", 42]}));
    }
    if !details.is_empty() {
        event["details"] = Value::Object(details);
    }
    event
}

fn expect(keep: impl Fn(u64, &Spec) -> bool) -> Vec<u64> {
    (0..EVENTS).filter(|&n| keep(n, &spec(n))).collect()
}

/// Sends events in one batch; returns their receipts.
async fn ingest(app: &TestApp, token: &str, events: Vec<Value>) -> Vec<Value> {
    let response = app.post_batch(token, &events).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    for result in &results {
        assert_eq!(result["status"], 201, "{result}");
    }
    results
}

async fn get(app: &TestApp, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(path_and_query))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Lists with `query`, expecting success; returns the seqs and the next cursor.
async fn list(app: &TestApp, token: &str, query: &str) -> (Vec<u64>, Option<String>) {
    let (status, body) = get(app, token, &format!("/v1/events?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    let seqs = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    (seqs, body["next_cursor"].as_str().map(str::to_string))
}

async fn seqs(app: &TestApp, token: &str, query: &str) -> Vec<u64> {
    let (seqs, next) = list(app, token, &format!("{query}&limit=1000")).await;
    assert_eq!(next, None, "{query}: everything fits one page");
    seqs
}

/// An app with the 50 varied events in tenant `acme`, indexed; returns it and a read token.
async fn app_with_events() -> (TestApp, String, Vec<Value>) {
    let app = spawn_app().await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    let receipts = ingest(&app, &writer, (0..EVENTS).map(varied).collect()).await;
    let (all, _) = list(&app, &reader, &format!("wait_for_seq={}", EVENTS - 1)).await;
    assert_eq!(all, (0..EVENTS).collect::<Vec<_>>());
    (app, reader, receipts)
}

#[tokio::test]
async fn every_filter_returns_exactly_the_matching_events() {
    let started = sealtrail_server::clock::Clock::system().now();
    let (app, reader, receipts) = app_with_events().await;
    let since = sealtrail_core::Timestamp::from_unix_micros(started.unix_micros() - 1_000_000)
        .unwrap()
        .to_rfc3339()
        .to_string();

    type Keep = Box<dyn Fn(u64, &Spec) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        ("actor=u-2".into(), Box::new(|_, s| s.actor == "u-2")),
        (
            "action=user.login".into(),
            Box::new(|_, s| s.action == "user.login"),
        ),
        (
            "activity=export".into(),
            Box::new(|_, s| s.activity == Some("export")),
        ),
        (
            "outcome=failure".into(),
            Box::new(|_, s| s.outcome == "failure"),
        ),
        (
            "outcome=unknown".into(),
            Box::new(|_, s| s.outcome == "unknown"),
        ),
        (
            "target_type=claim".into(),
            Box::new(|_, s| s.targets.iter().any(|(k, _)| *k == "claim")),
        ),
        (
            "target_id=p-2".into(),
            Box::new(|_, s| s.targets.iter().any(|(_, id)| id == "p-2")),
        ),
        (
            "target_type=patient&target_id=p-2".into(),
            Box::new(|_, s| {
                s.targets
                    .iter()
                    .any(|(k, id)| *k == "patient" && id == "p-2")
            }),
        ),
        (
            "target_type=invoice&target_id=p-2".into(),
            Box::new(|_, s| {
                s.targets
                    .iter()
                    .any(|(k, id)| *k == "invoice" && id == "p-2")
            }),
        ),
        (
            "ip=10.0.0.2".into(),
            Box::new(|_, s| s.ip == Some("10.0.0.2")),
        ),
        (
            // Any spelling of the address finds the normal form.
            "ip=2001:DB8:0::1".into(),
            Box::new(|_, s| s.ip == Some("2001:db8::1")),
        ),
        (
            "source=billing".into(),
            Box::new(|_, s| s.source == Some("billing")),
        ),
        ("q=treatment".into(), Box::new(|n, _| n % 5 == 0)),
        ("q=claim-11".into(), Box::new(|n, _| n == 11)),
        ("q=billing%20REVIEW".into(), Box::new(|n, _| n % 5 == 1)),
        ("q=emergency".into(), Box::new(|n, _| n % 7 == 3)),
        ("q=42".into(), Box::new(|n, _| n % 7 == 3)),
        // Keys of details are not text: only values are.
        ("q=reason".into(), Box::new(|_, _| false)),
        (
            "q=treatment&actor=u-0".into(),
            Box::new(|n, s| n % 5 == 0 && s.actor == "u-0"),
        ),
        (
            "from=2020-01-01T00:10:00Z&to=2020-01-01T00:20:00Z".into(),
            Box::new(|_, s| s.minute.is_some_and(|m| (10..20).contains(&m))),
        ),
        (
            // Any offset: 01:30+01:00 is 00:30Z.
            "to=2020-01-01T01:30:00%2B01:00".into(),
            Box::new(|_, s| s.minute.is_some_and(|m| m < 30)),
        ),
        (
            // Events without occurred_at are filed under received_at.
            format!("from={since}"),
            Box::new(|_, s| s.minute.is_none()),
        ),
        (
            "from=2020-01-01T00:00:00Z&to=2020-01-01T00:40:00Z&outcome=failure&source=ehr-web"
                .into(),
            Box::new(|_, s| {
                s.minute.is_some_and(|m| m < 40)
                    && s.outcome == "failure"
                    && s.source == Some("ehr-web")
            }),
        ),
        (
            "action=patient.record.read&actor=u-4&target_type=patient".into(),
            Box::new(|_, s| {
                s.action == "patient.record.read"
                    && s.actor == "u-4"
                    && s.targets.iter().any(|(k, _)| *k == "patient")
            }),
        ),
        (
            "target_id=p-1&q=billing&activity=update".into(),
            Box::new(|n, s| {
                s.targets.iter().any(|(_, id)| id == "p-1")
                    && n % 5 == 1
                    && s.activity == Some("update")
            }),
        ),
        ("actor=nobody".into(), Box::new(|_, _| false)),
    ];
    for (query, keep) in &cases {
        let want = expect(keep);
        assert_eq!(seqs(&app, &reader, query).await, want, "{query}");
        let mut newest_first = want.clone();
        newest_first.reverse();
        assert_eq!(
            seqs(&app, &reader, &format!("{query}&order=desc")).await,
            newest_first,
            "{query}&order=desc"
        );
    }

    // Each event is the stored entry plus its event_hash, which is the receipt's.
    let (status, body) = get(&app, &reader, "/v1/events?action=report.export&limit=2").await;
    assert_eq!(status, 200);
    let first = &body["events"][0];
    assert_eq!(first["seq"], 3);
    assert_eq!(first["event_hash"], receipts[3]["event_hash"]);
    assert_eq!(first["id"], receipts[3]["id"]);
    assert_eq!(first["prev_hash"], receipts[2]["event_hash"]);
    assert_eq!(first["received_at"], receipts[3]["received_at"]);
    assert_eq!(first["context"]["ip"], Value::Null);
    assert_eq!(first["actor"]["id"], "u-3");
    let mut entry = first.clone();
    entry.as_object_mut().unwrap().remove("event_hash");
    let bytes = sealtrail_core::canonical::canonicalize(&entry).unwrap();
    assert_eq!(leaf_hash(&bytes).to_hex(), first["event_hash"]);
    app.stop().await;
}

#[tokio::test]
async fn pages_in_both_orders_cover_every_match_once() {
    let (app, reader, _) = app_with_events().await;
    for (filter, want) in [
        ("", expect(|_, _| true)),
        ("outcome=success&", expect(|_, s| s.outcome == "success")),
        (
            "target_type=patient&",
            expect(|_, s| s.targets.iter().any(|(k, _)| *k == "patient")),
        ),
        ("q=treatment&", expect(|n, _| n % 5 == 0)),
        (
            "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&",
            expect(|_, s| s.minute.is_some()),
        ),
    ] {
        for (order, limit) in [("asc", 7), ("desc", 7), ("asc", 1), ("desc", 10)] {
            let mut got = Vec::new();
            let mut cursor = String::new();
            let mut pages = 0;
            loop {
                let query = format!("{filter}order={order}&limit={limit}&cursor={cursor}");
                let (page, next) = list(&app, &reader, &query).await;
                assert!(page.len() <= limit, "{query}");
                got.extend(page);
                pages += 1;
                assert!(pages <= EVENTS + 1, "{query}: the cursor does not advance");
                match next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            let mut expected = want.clone();
            if order == "desc" {
                expected.reverse();
            }
            assert_eq!(got, expected, "{filter}order={order}&limit={limit}");
            assert_eq!(pages, want.len().div_ceil(limit).max(1) as u64, "{filter}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn wait_for_seq_reads_your_own_write() {
    let app = spawn_app().await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    ingest(&app, &writer, (0..EVENTS).map(varied).collect()).await;
    for n in 0..3 {
        let mut fresh = event(n);
        fresh["action"] = format!("fresh.write.{n}").into();
        let receipt: Value = app.post_event(&writer, &fresh).await.json().await.unwrap();
        let seq = receipt["seq"].as_u64().unwrap();
        let (status, body) = get(
            &app,
            &reader,
            &format!("/v1/events?action=fresh.write.{n}&wait_for_seq={seq}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["events"][0]["id"], receipt["id"]);
        assert_eq!(body["events"][0]["seq"], seq);
    }
    // A seq the log does not hold yet cannot be waited for.
    let (status, body) = get(&app, &reader, "/v1/events?wait_for_seq=1000").await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "wait_for_seq");
    assert_eq!(body["rule"], "range");
    app.stop().await;
}

/// The verifier key of the tenant's log, fetched as an auditor would.
async fn verifier_key(app: &TestApp, tenant: &str) -> VerifierKey {
    let token = app.token(tenant, &["log:read"]).await;
    let text = app
        .client
        .get(app.url("/v1/log/key"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    VerifierKey::parse(text.trim()).unwrap()
}

fn hashes(proof: &Value) -> Vec<Hash> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn an_event_by_id_comes_with_an_inclusion_proof_to_a_signed_checkpoint() {
    let (app, reader, receipts) = app_with_events().await;
    let vkey = verifier_key(&app, "acme").await;
    for n in [0, 17, 49] {
        let receipt = &receipts[n];
        let path = format!("/v1/events/{}", receipt["id"].as_str().unwrap());
        // Checkpoints follow growth within the interval (50 ms here): wait for one to cover it.
        let mut tries = 0;
        let body = loop {
            let (status, body) = get(&app, &reader, &path).await;
            assert_eq!(status, 200, "{body}");
            if !body["proof"]["checkpoint"].is_null() {
                break body;
            }
            tries += 1;
            assert!(tries < 100, "no checkpoint covers seq {n}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let event = &body["event"];
        assert_eq!(event["id"], receipt["id"]);
        assert_eq!(event["event_hash"], receipt["event_hash"]);
        let proof = &body["proof"];
        assert_eq!(proof["leaf_index"], n as u64);
        let note = proof["checkpoint"].as_str().unwrap();
        let checkpoint = Checkpoint::open(note.as_bytes(), &vkey).unwrap();
        assert_eq!(proof["tree_size"], checkpoint.size);
        let leaf = Hash::from_hex(event["event_hash"].as_str().unwrap()).unwrap();
        verify_inclusion(
            n as u64,
            checkpoint.size,
            &leaf,
            &hashes(proof),
            &checkpoint.root,
        )
        .unwrap();
    }
    // Any spelling of the UUID names the same event.
    let upper = receipts[5]["id"].as_str().unwrap().to_uppercase();
    let (status, body) = get(&app, &reader, &format!("/v1/events/{upper}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["event"]["seq"], 5);
    app.stop().await;
}

#[tokio::test]
async fn an_event_newer_than_the_last_checkpoint_is_proven_against_the_current_tree() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // A first checkpoint comes right after the first commit; the next only after an hour.
    let app = spawn_app_in(dir, |s| s.checkpoint_interval_ms = Some(3_600_000)).await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    let first: Value = app
        .post_event(&writer, &event(0))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_event(&writer, &event(1))
        .await
        .json()
        .await
        .unwrap();
    let (status, body) = get(
        &app,
        &reader,
        &format!("/v1/events/{}", second["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let proof = &body["proof"];
    assert_eq!(proof["checkpoint"], Value::Null);
    assert_eq!(proof["tree_size"], 2);
    assert_eq!(proof["leaf_index"], 1);
    let leaf = |r: &Value| Hash::from_hex(r["event_hash"].as_str().unwrap()).unwrap();
    let root = node_hash(&leaf(&first), &leaf(&second));
    verify_inclusion(1, 2, &leaf(&second), &hashes(proof), &root).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_sees_none_of_another_tenants_events() {
    let (app, _, receipts) = app_with_events().await;
    let other_writer = app.token("globex", &["events:write"]).await;
    let other = app.token("globex", &["events:read"]).await;
    assert_eq!(seqs(&app, &other, "actor=u-1").await, Vec::<u64>::new());
    let (all, next) = list(&app, &other, "").await;
    assert!(all.is_empty() && next.is_none());

    let other_receipts = ingest(&app, &other_writer, vec![varied(1), varied(2)]).await;
    assert_eq!(seqs(&app, &other, "wait_for_seq=1").await, vec![0, 1]);
    let (_, body) = get(&app, &other, "/v1/events?q=claim-1&wait_for_seq=1").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["id"], other_receipts[0]["id"]);

    // Another tenant's id is exactly as unknown as an id that does not exist.
    let theirs = format!("/v1/events/{}", receipts[3]["id"].as_str().unwrap());
    let (status, body) = get(&app, &other, &theirs).await;
    let (unknown_status, unknown_body) = get(
        &app,
        &other,
        "/v1/events/01900000-0000-7000-8000-000000000000",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(unknown_status, 404);
    assert_eq!(body, unknown_body);
    assert_eq!(body["error"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_the_field_and_scopes_are_enforced() {
    let app = spawn_app().await;
    let reader = app.token("acme", &["events:read"]).await;
    let writer = app.token("acme", &["events:write"]).await;
    for (query, field, rule) in [
        ("from=yesterday", "from", "timestamp"),
        ("to=2026-02-30T00:00:00Z", "to", "timestamp"),
        ("limit=5000", "limit", "range"),
        ("activity=browse", "activity", "enum"),
        ("ip=localhost", "ip", "ip"),
        ("cursor=not-a-cursor", "cursor", "cursor"),
        ("order=sideways", "order", "enum"),
        ("actorr=u-1", "actorr", "unknown_parameter"),
        ("q=%22%22", "q", "text"),
    ] {
        let (status, body) = get(&app, &reader, &format!("/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request", "{query}");
        assert_eq!(body["field"], field, "{query}");
        assert_eq!(body["rule"], rule, "{query}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}: ")), "{message}");
    }
    let (status, body) = get(&app, &reader, "/v1/events?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("from: must be an RFC 3339 timestamp"),
        "{body}"
    );
    let (status, body) = get(&app, &reader, "/v1/events/not-a-uuid").await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "id");

    for path in [
        "/v1/events",
        "/v1/events/01900000-0000-7000-8000-000000000000",
    ] {
        let (status, body) = get(&app, &writer, path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["error"], "missing_scope");
        let (status, _) = get(&app, "st_not-a-token", path).await;
        assert_eq!(status, 401, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_index_is_rebuilt_from_the_log_when_missing_or_of_another_version() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    let writer = app.token("acme", &["events:write"]).await;
    let reader = app.token("acme", &["events:read"]).await;
    ingest(&app, &writer, (0..EVENTS).map(varied).collect()).await;
    let query = format!("q=treatment&wait_for_seq={}", EVENTS - 1);
    let before = seqs(&app, &reader, &query).await;
    assert_eq!(before, expect(|n, _| n % 5 == 0));
    let index = sealtrail_store::DataDir::new(&app.data).index();
    app.stop().await;

    std::fs::remove_file(&index).unwrap();
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    assert_eq!(seqs(&app, &reader, &query).await, before);
    app.stop().await;

    let conn = rusqlite::Connection::open(&index).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(seqs(&app, &reader, &query).await, before);
    let conn = rusqlite::Connection::open(&index).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, sealtrail_server::index::SCHEMA_VERSION);
    app.stop().await;
}
