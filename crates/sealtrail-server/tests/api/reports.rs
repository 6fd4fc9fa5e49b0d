//! Reports (`GET /v1/reports/{name}`) checked against a brute-force computation over the raw
//! log: a clinic-like log with varied events (logins that fail, record reads and updates,
//! exports, disclosures, alerts, heartbeats, producers with and without instances), each
//! report's rows compared with what plain iteration over the stored entries gives. Then the
//! accounting of disclosures over six years of synthetic events (the window's edge, the
//! exclusions), a tampered log refused naming the first broken seq, tenant isolation, and the
//! CSV and Markdown renderings.
//!
//! Events are appended in process through the ledger (the write path behind the API), so that
//! their `occurred_at` can lie years back and alerts (`sealtrail.alert.raised`, which
//! producers may not write) can be planted as the monitor writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_core::event::Event;
use sealtrail_server::ledger::Submission;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn at(micros: i64) -> String {
    Timestamp::from_unix_micros(micros).unwrap().to_rfc3339()
}

fn now() -> i64 {
    sealtrail_server::clock::Clock::system().now().unix_micros()
}

async fn append(app: &TestApp, tenant: &str, events: &[Value]) {
    let submissions = events
        .iter()
        .map(|e| Submission {
            event: Event::parse(e.to_string().as_bytes()).expect("a valid event"),
            idempotency_key: None,
        })
        .collect();
    app.ledger
        .append(tenant, submissions)
        .await
        .expect("appended");
}

/// Waits until the latest signed checkpoint of `tenant` covers its whole log.
async fn checkpointed(app: &TestApp, tenant: &str) -> u64 {
    let size = app.log_size(tenant);
    let store = sealtrail_store::Location::new(&app.data, None)
        .open_reader()
        .unwrap();
    for _ in 0..300 {
        if let Some(checkpoint) = store.latest_checkpoint(tenant).unwrap()
            && checkpoint.size == size
        {
            return size;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of size {size} for {tenant}");
}

async fn report(app: &TestApp, token: &str, name: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(&format!("/v1/reports/{name}")))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn report_text(
    app: &TestApp,
    token: &str,
    name: &str,
    query: &[(&str, &str)],
) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url(&format!("/v1/reports/{name}")))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// A clinic's day-to-day over the three days before `now`, one event every 7 minutes.
fn clinic(now: i64) -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..600i64 {
        let when = at(now - 3 * DAY + i * 7 * 60_000_000);
        let user = format!("u-{}", i % 6);
        let patient = format!("p-{}", i % 9);
        let ip = format!("10.0.{}.{}", i % 3, i % 5);
        let source = match i % 4 {
            0 => json!({"app": "ehr-web", "instance": "pod-1", "seq": i}),
            1 => json!({"app": "ehr-web", "instance": "pod-2", "seq": i}),
            2 => json!({"app": "billing", "seq": i}),
            _ => Value::Null,
        };
        let event = match i % 10 {
            0 | 1 => json!({
                "action": "user.login", "activity": "login",
                "outcome": if i % 3 == 0 { "failure" } else { "success" },
                "actor": {"id": user, "type": "user"},
                "context": {"ip": ip, "user_agent": "ehr-web/4.2"},
            }),
            2..=5 => json!({
                "action": "patient.record.read", "activity": "read", "outcome": "success",
                "actor": {"id": user, "type": "user", "name": format!("Dr {user}")},
                "targets": [{"type": "patient", "id": patient}],
                "context": {"ip": ip, "user_agent": "ehr-web/4.2", "session_id": "s-1"},
            }),
            6 => json!({
                "action": "patient.record.update", "activity": "update",
                "outcome": if i % 7 == 0 { "failure" } else { "success" },
                "actor": {"id": user, "type": "user"},
                "targets": [{"type": "patient", "id": patient}, {"type": "chart", "id": "c-1"}],
                "context": {"ip": ip},
            }),
            7 => json!({
                "action": "billing.claim.submit", "activity": "create", "outcome": "success",
                "actor": {"id": "svc-billing", "type": "service"},
                "targets": [{"type": "patient", "id": patient}],
            }),
            8 => json!({
                "action": "patient.record.disclose", "activity": "disclose", "outcome": "success",
                "actor": {"id": user, "type": "user"},
                "targets": [{"type": "patient", "id": patient}],
                "disclosure": {"recipient": "County Health Dept", "recipient_address": "1 Main St", "purpose": "public_health", "description": "immunization record"},
            }),
            _ => json!({
                "action": "sealtrail.heartbeat", "outcome": "success",
                "actor": {"id": "ehr-web"},
            }),
        };
        let mut event = event;
        event["occurred_at"] = json!(when);
        if !source.is_null() {
            event["source"] = source;
        }
        events.push(event);
    }
    // An event without occurred_at counts at received_at (now).
    events.push(json!({
        "action": "report.export", "activity": "export", "outcome": "success",
        "actor": {"id": "u-1", "type": "user"},
        "targets": [{"type": "patient", "id": "p-1"}],
    }));
    events
}

fn entries(app: &TestApp, tenant: &str) -> Vec<Value> {
    app.entries(tenant)
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect()
}

fn event_time(e: &Value) -> String {
    e.get("occurred_at")
        .unwrap_or(&e["received_at"])
        .as_str()
        .unwrap()
        .to_string()
}

fn opt(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn seqs(rows: &Value) -> Vec<u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn reports_match_a_brute_force_computation_over_the_raw_log() {
    // The alerts of this log are the ones planted below: the built-in rules, which the seeded
    // failed logins would trip, are off here (the monitor has tests of its own).
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = crate::helpers::spawn_app_in(dir, |settings| {
        settings.monitor = Some(sealtrail_server::config::MonitorFile {
            rules: sealtrail_server::monitor::rules::builtin()
                .into_iter()
                .map(|rule| sealtrail_server::monitor::rules::RuleDef {
                    enabled: false,
                    ..rule
                })
                .collect(),
            webhooks: Vec::new(),
        });
    })
    .await;
    let tenant = "rep-clinic";
    let token = app.token(tenant, &["reports", "events:write"]).await;
    let now = now();
    append(&app, tenant, &clinic(now)).await;

    // Two alerts, as the monitor writes them, over failed logins of the seeded log.
    let log = entries(&app, tenant);
    let failed: Vec<u64> = log
        .iter()
        .filter(|e| e["action"] == "user.login" && e["outcome"] == "failure")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let alert = |id: &str, seqs: &[u64], occurred: i64| {
        json!({
            "action": "sealtrail.alert.raised", "activity": "other", "outcome": "success",
            "occurred_at": at(occurred),
            "actor": {"id": "sealtrail-monitor", "type": "system"},
            "details": {
                "alert_id": id, "rule": "failed-logins-per-user", "severity": "warning",
                "key": "actor=u-0", "window_start": at(occurred - 60_000_000),
                "window_end": at(occurred), "count": seqs.len(), "seqs": seqs,
            },
        })
    };
    append(
        &app,
        tenant,
        &[
            alert("alr_01", &failed[..3], now - DAY),
            // One alert names a seq the log does not hold below its checkpoint.
            alert("alr_02", &[failed[3], 999_999], now - HOUR),
            // An alert before the window.
            alert("alr_00", &failed[..1], now - 2 * DAY - HOUR),
        ],
    )
    .await;
    let size = checkpointed(&app, tenant).await;
    let log = entries(&app, tenant);
    assert_eq!(log.len() as u64, size);

    let (from, to) = (at(now - 2 * DAY), at(now + HOUR));
    let window = [("from", from.as_str()), ("to", to.as_str())];
    let in_window = |e: &&Value| {
        let t = event_time(e);
        t >= from && t < to
    };

    // daily-activity
    let (status, body) = report(&app, &token, "daily-activity", &window).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"], "daily-activity");
    assert_eq!(body["tenant"], tenant);
    assert_eq!(body["checkpoint"]["size"], size);
    assert!(!body["checkpoint"]["origin"].as_str().unwrap().is_empty());
    assert_eq!(body["checkpoint"]["root"].as_str().unwrap().len(), 64);
    assert_eq!(body["coverage"]["entries_verified"], size);
    assert_eq!(body["truncated"], false);
    let mut expected: BTreeMap<(String, String, String, String, String), u64> = BTreeMap::new();
    for e in log.iter().filter(in_window) {
        if e["action"] == "sealtrail.heartbeat" {
            continue;
        }
        *expected
            .entry((
                event_time(e)[..10].to_string(),
                opt(&e["action"]),
                opt(&e["activity"]),
                opt(&e["outcome"]),
                opt(&e["actor"]["type"]),
            ))
            .or_default() += 1;
    }
    let got: BTreeMap<_, _> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    opt(&r["day"]),
                    opt(&r["action"]),
                    opt(&r["activity"]),
                    opt(&r["outcome"]),
                    opt(&r["actor_type"]),
                ),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // The fixture is varied: its events in the window fall on two or three calendar days
    // (three unless the test runs in the first two hours of a UTC day), and hold the seven
    // kinds of event the clinic writes.
    let days: BTreeSet<&String> = expected.keys().map(|key| &key.0).collect();
    let kinds: BTreeSet<_> = expected
        .keys()
        .map(|(_, action, activity, outcome, actor)| (action, activity, outcome, actor))
        .collect();
    assert!(days.len() >= 2 && kinds.len() >= 7, "{expected:?}");
    assert_eq!(got, expected);

    // record-access
    let mut query = window.to_vec();
    query.extend([("target_type", "patient"), ("target_id", "p-4")]);
    let (status, body) = report(&app, &token, "record-access", &query).await;
    assert_eq!(status, 200, "{body}");
    let matching: Vec<&Value> = log
        .iter()
        .filter(in_window)
        .filter(|e| {
            e["targets"].as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| t["type"] == "patient" && t["id"] == "p-4")
            })
        })
        .collect();
    assert!(matching.len() > 10);
    assert_eq!(
        seqs(&body["rows"]),
        matching
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    for (row, e) in body["rows"].as_array().unwrap().iter().zip(&matching) {
        assert_eq!(row["actor_id"], e["actor"]["id"]);
        assert_eq!(row["actor_type"], e["actor"]["type"]);
        assert_eq!(row["ip"], e["context"]["ip"]);
        assert_eq!(row["action"], e["action"]);
        assert_eq!(row["outcome"], e["outcome"]);
        assert_eq!(row["at"], json!(event_time(e)));
    }
    assert_eq!(body["parameters"]["target_id"], "p-4");

    // user-activity
    let mut query = window.to_vec();
    query.push(("actor", "u-1"));
    let (status, body) = report(&app, &token, "user-activity", &query).await;
    assert_eq!(status, 200, "{body}");
    let expected: Vec<u64> = log
        .iter()
        .filter(in_window)
        .filter(|e| e["actor"]["id"] == "u-1")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(expected.len() > 10);
    assert_eq!(seqs(&body["rows"]), expected);
    // The export without occurred_at counts at received_at, inside the window.
    assert!(
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "report.export" && r["targets"] == json!(["patient:p-1"]))
    );

    // security-incidents
    let (status, body) = report(&app, &token, "security-incidents", &window).await;
    assert_eq!(status, 200, "{body}");
    let alerts: Vec<&Value> = log
        .iter()
        .filter(in_window)
        .filter(|e| e["action"] == "sealtrail.alert.raised")
        .collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        seqs(&body["rows"]),
        alerts
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    for (row, alert) in body["rows"].as_array().unwrap().iter().zip(&alerts) {
        assert_eq!(row["alert_id"], alert["details"]["alert_id"]);
        assert_eq!(row["rule"], "failed-logins-per-user");
        let behind: Vec<u64> = alert["details"]["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .filter(|&s| s < size)
            .collect();
        assert_eq!(seqs(&row["events"]), behind);
        for event in row["events"].as_array().unwrap() {
            let original = &log[event["seq"].as_u64().unwrap() as usize];
            assert_eq!(event["action"], "user.login");
            assert_eq!(event["outcome"], "failure");
            assert_eq!(event["actor_id"], original["actor"]["id"]);
            assert_eq!(event["ip"], original["context"]["ip"]);
        }
    }
    assert_eq!(body["rows"][1]["unavailable_seqs"], json!([999_999]));

    // completeness (the gap detector's findings beside the counts)
    let (status, body) = report(&app, &token, "completeness", &window).await;
    assert_eq!(status, 200, "{body}");
    let mut expected: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for e in log.iter().filter(in_window) {
        let slot = expected
            .entry((
                event_time(e)[..13].to_string(),
                opt(&e["source"]["app"]),
                opt(&e["source"]["instance"]),
            ))
            .or_default();
        if e["action"] == "sealtrail.heartbeat" {
            slot.1 += 1;
        } else {
            slot.0 += 1;
        }
    }
    let producers: BTreeSet<(String, String)> = expected
        .keys()
        .map(|(_, app, instance)| (app.clone(), instance.clone()))
        .collect();
    let rows = body["rows"].as_array().unwrap();
    // Every hour the window touches, for every producer seen in it, zeros included.
    let first_hour = (now - 2 * DAY).div_euclid(HOUR);
    let hours = (now + HOUR - first_hour * HOUR + HOUR - 1).div_euclid(HOUR) as usize;
    assert_eq!(rows.len(), hours * producers.len(), "{producers:?}");
    let mut got: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for r in rows {
        let counts = (
            r["events"].as_u64().unwrap(),
            r["heartbeats"].as_u64().unwrap(),
        );
        if counts != (0, 0) {
            got.insert(
                (
                    opt(&r["hour"])[..13].to_string(),
                    opt(&r["app"]),
                    opt(&r["instance"]),
                ),
                counts,
            );
        }
    }
    assert_eq!(got, expected);
    assert!(body["gaps"].is_array());
    assert_eq!(body["gaps_cover_checkpoint"], true, "{body}");

    app.stop().await;
}

#[tokio::test]
async fn the_accounting_of_disclosures_covers_six_years_with_exclusions_counted_apart() {
    let app = spawn_app().await;
    let tenant = "rep-hipaa";
    let token = app.token(tenant, &["reports"]).await;
    let now = now();
    let to = "2026-11-30T00:00:00.000000Z";
    let to_micros = Timestamp::parse(to).unwrap().unix_micros();
    let six_years_before = "2020-11-30T00:00:00.000000Z";
    let bases = [
        None,
        Some("treatment"),
        Some("payment"),
        Some("to_individual"),
        Some("authorization"),
        Some("law_enforcement"),
        Some("national_security"),
        Some("limited_data_set"),
    ];
    let mut events = Vec::new();
    // One disclosure every 9 days over seven and a half years before `to`.
    for i in 0..305i64 {
        let when = to_micros - (7 * 365 + 200) * DAY + i * 9 * DAY;
        let basis = bases[i as usize % bases.len()];
        let mut e = json!({
            "action": "patient.record.disclose", "activity": "disclose", "outcome": "success",
            "occurred_at": at(when),
            "actor": {"id": format!("u-{}", i % 4), "type": "user"},
            "targets": [{"type": "patient", "id": if i % 5 == 0 { "p-other" } else { "p-9" }}],
            "disclosure": {"recipient": format!("Recipient {i}"), "recipient_address": format!("{i} Main St"), "purpose": "court order", "description": "lab results"},
        });
        if let Some(basis) = basis {
            e["details"] = json!({"basis": basis});
        }
        events.push(e);
    }
    // A disclosure exactly at the window's start, one just before it.
    for (when, recipient) in [
        (six_years_before.to_string(), "At the edge"),
        (
            at(Timestamp::parse(six_years_before).unwrap().unix_micros() - 1),
            "Just before",
        ),
    ] {
        events.push(json!({
            "action": "patient.record.disclose", "activity": "disclose", "outcome": "success",
            "occurred_at": when, "actor": {"id": "u-1"},
            "targets": [{"type": "patient", "id": "p-9"}],
            "disclosure": {"recipient": recipient},
        }));
    }
    // Named in details instead of the disclosure object; the purpose is the exclusion.
    events.push(json!({
        "action": "records.release", "activity": "disclose", "outcome": "success",
        "occurred_at": at(to_micros - 10 * DAY), "actor": {"id": "u-2"},
        "details": {"subject": "p-9", "recipient": {"name": "Acme Insurance", "address": "PO Box 1"}, "purpose": "payment", "description": "claim"},
    }));
    events.push(json!({
        "action": "records.release", "activity": "disclose", "outcome": "success",
        "occurred_at": at(to_micros - 11 * DAY), "actor": {"id": "u-2"},
        "details": {"subject": "p-9", "recipient": {"name": "State Registry", "address": "2 Elm St"}, "purpose": "public health", "description": "tumor registry"},
    }));
    // A disclosure that failed, a read that is no disclosure, a disclosure after `to`.
    events.push(json!({
        "action": "patient.record.disclose", "activity": "disclose", "outcome": "failure",
        "occurred_at": at(to_micros - 5 * DAY), "actor": {"id": "u-1"},
        "targets": [{"type": "patient", "id": "p-9"}],
    }));
    events.push(json!({
        "action": "patient.record.read", "activity": "read", "outcome": "success",
        "occurred_at": at(to_micros - 5 * DAY), "actor": {"id": "u-1"},
        "targets": [{"type": "patient", "id": "p-9"}],
    }));
    events.push(json!({
        "action": "patient.record.disclose", "activity": "disclose", "outcome": "success",
        "occurred_at": at(now - HOUR), "actor": {"id": "u-1"},
        "targets": [{"type": "patient", "id": "p-9"}],
        "disclosure": {"recipient": "After the window"},
    }));
    append(&app, tenant, &events).await;
    checkpointed(&app, tenant).await;
    let log = entries(&app, tenant);

    let (status, body) = report(
        &app,
        &token,
        "disclosures",
        &[("subject", "p-9"), ("to", to)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from"], six_years_before, "six years back from to");
    assert_eq!(body["to"], to);

    // Brute force: disclosures of p-9 in [to - 6 years, to), succeeded, by basis.
    let excluded_codes = [
        "treatment",
        "payment",
        "to_individual",
        "authorization",
        "national_security",
        "limited_data_set",
    ];
    let mut listed = Vec::new();
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = 0;
    for e in &log {
        let t = event_time(e);
        if t.as_str() < six_years_before || t.as_str() >= to || e["activity"] != "disclose" {
            continue;
        }
        let of_subject = e["targets"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["id"] == "p-9"))
            || e["details"]["subject"] == "p-9";
        if !of_subject {
            continue;
        }
        if e["outcome"] == "failure" {
            failed += 1;
            continue;
        }
        let purpose = e["disclosure"]["purpose"]
            .as_str()
            .or(e["details"]["purpose"].as_str())
            .unwrap_or_default();
        let code = e["details"]["basis"].as_str().unwrap_or(purpose);
        if excluded_codes.contains(&code) {
            *excluded.entry(code.to_string()).or_default() += 1;
        } else {
            listed.push(e["seq"].as_u64().unwrap());
        }
    }
    assert!(listed.len() > 50, "{}", listed.len());
    assert_eq!(seqs(&body["rows"]), listed);
    assert_eq!(body["excluded"]["by_basis"], json!(excluded));
    assert_eq!(body["excluded"]["total"], excluded.values().sum::<u64>());
    assert_eq!(body["not_disclosed"], failed);
    let rows = body["rows"].as_array().unwrap();
    let recipients: Vec<&str> = rows
        .iter()
        .map(|r| r["recipient"].as_str().unwrap())
        .collect();
    assert!(recipients.contains(&"At the edge"));
    assert!(!recipients.contains(&"Just before"));
    assert!(!recipients.contains(&"After the window"));
    let registry = rows
        .iter()
        .find(|r| r["recipient"] == "State Registry")
        .expect("named in details");
    assert_eq!(registry["recipient_address"], "2 Elm St");
    assert_eq!(registry["purpose"], "public health");
    assert_eq!(registry["description"], "tumor registry");
    let first = rows
        .iter()
        .find(|r| r["basis"] == "law_enforcement")
        .unwrap();
    assert_eq!(first["purpose"], "court order");
    assert_eq!(first["description"], "lab results");

    // Markdown and CSV of the same report.
    let (status, kind, md) = report_text(
        &app,
        &token,
        "disclosures",
        &[("subject", "p-9"), ("to", to), ("format", "md")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/markdown"), "{kind}");
    assert!(md.contains("164.528"), "{md}");
    assert!(md.contains("| seq | date | recipient |"), "{md}");
    assert!(md.contains("- treatment: "), "{md}");
    let (status, kind, csv) = report_text(
        &app,
        &token,
        "disclosures",
        &[("subject", "p-9"), ("to", to), ("format", "csv")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "seq,date,recipient,recipient_address,description,purpose,basis,actor_id,action"
    );
    assert_eq!(lines.len(), listed.len() + 1);

    app.stop().await;
}

#[tokio::test]
async fn a_report_on_a_tampered_log_refuses_naming_the_first_broken_seq() {
    let app = spawn_app().await;
    let tenant = "rep-tamper";
    let token = app.token(tenant, &["reports"]).await;
    let now = now();
    let events: Vec<Value> = (0..5)
        .map(|i| {
            json!({"action": "patient.record.read", "activity": "read", "outcome": "success",
                "occurred_at": at(now - HOUR + i), "actor": {"id": "u-1"},
                "targets": [{"type": "patient", "id": "p-1"}]})
        })
        .collect();
    append(&app, tenant, &events).await;
    checkpointed(&app, tenant).await;
    let (status, _) = report(&app, &token, "daily-activity", &[]).await;
    assert_eq!(status, 200);

    let db =
        rusqlite::Connection::open(sealtrail_store::DataDir::new(&app.data).database()).unwrap();
    db.execute_batch("DROP TRIGGER entries_append_only_update")
        .unwrap();
    db.execute(
        "UPDATE entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'u-1', 'u-2') AS BLOB) WHERE key = (SELECT number << 44 FROM tenants WHERE name = ?1) | 2",
        [tenant],
    )
    .unwrap();
    drop(db);

    for name in ["daily-activity", "user-activity"] {
        let query: &[(&str, &str)] = if name == "user-activity" {
            &[("actor", "u-2")]
        } else {
            &[]
        };
        let (status, body) = report(&app, &token, name, query).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"], "log_unverified");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("seq 2"), "{message}");
        assert!(body.get("rows").is_none());
    }
    app.stop().await;
}

#[tokio::test]
async fn a_reports_token_reads_its_own_tenant_only_and_bad_parameters_are_named() {
    let app = spawn_app().await;
    let now = now();
    let event = |actor: &str| {
        json!({"action": "user.login", "activity": "login", "outcome": "success",
            "occurred_at": at(now - HOUR), "actor": {"id": actor}})
    };
    let a = app.token("rep-iso-a", &["reports"]).await;
    let _ = app.token("rep-iso-b", &["reports"]).await;
    append(&app, "rep-iso-a", &[event("alice")]).await;
    append(&app, "rep-iso-b", &[event("bob"), event("bob")]).await;
    checkpointed(&app, "rep-iso-a").await;
    checkpointed(&app, "rep-iso-b").await;

    let (status, body) = report(&app, &a, "user-activity", &[("actor", "bob")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], "rep-iso-a");
    assert_eq!(body["rows"], json!([]));
    assert_eq!(body["checkpoint"]["size"], 1);
    let response = app
        .client
        .get(app.url("/v1/reports/user-activity?actor=bob"))
        .bearer_auth(&a)
        .header("X-Tenant-ID", "rep-iso-b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "wrong_tenant");

    // Without the reports scope.
    let reader = app.token("rep-iso-a", &["events:read"]).await;
    let (status, body) = report(&app, &reader, "daily-activity", &[]).await;
    assert_eq!(status, 403);
    assert_eq!(body["rule"], "scope");

    for (name, query, field, rule) in [
        (
            "record-access",
            vec![("target_type", "patient")],
            "target_id",
            "required",
        ),
        ("disclosures", vec![], "subject", "required"),
        (
            "daily-activity",
            vec![("actor", "x")],
            "actor",
            "unknown_parameter",
        ),
        (
            "daily-activity",
            vec![("from", "soon")],
            "from",
            "timestamp",
        ),
        ("daily-activity", vec![("format", "pdf")], "format", "enum"),
        (
            "daily-activity",
            vec![
                ("from", "2026-01-02T00:00:00Z"),
                ("to", "2026-01-01T00:00:00Z"),
            ],
            "from",
            "range",
        ),
        (
            "completeness",
            vec![
                ("from", "2026-01-01T00:00:00Z"),
                ("to", "2026-03-01T00:00:00Z"),
            ],
            "from",
            "max_range",
        ),
        ("user-activity", vec![("actor", "")], "actor", "length"),
    ] {
        let (status, body) = report(&app, &a, name, &query).await;
        assert_eq!(status, 400, "{name} {query:?}: {body}");
        assert_eq!(body["field"], field, "{name} {query:?}: {body}");
        assert_eq!(body["rule"], rule, "{name} {query:?}: {body}");
    }
    let (status, body) = report(&app, &a, "weekly-summary", &[]).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn reports_render_as_csv_and_markdown() {
    let app = spawn_app().await;
    let tenant = "rep-render";
    let token = app.token(tenant, &["reports"]).await;
    let now = now();
    append(
        &app,
        tenant,
        &[
            json!({"action": "patient.record.read", "activity": "read", "outcome": "success",
                "occurred_at": at(now - HOUR), "actor": {"id": "u-1", "type": "user"},
                "targets": [{"type": "patient", "id": "p-1"}],
                "context": {"ip": "10.0.0.1", "user_agent": "=HYPERLINK(\"x\"), | evil"}}),
            json!({"action": "sealtrail.alert.raised", "activity": "other", "outcome": "success",
                "occurred_at": at(now - HOUR + 1), "actor": {"id": "sealtrail-monitor", "type": "system"},
                "details": {"alert_id": "alr_ab", "rule": "failed-logins-per-user", "severity": "critical",
                    "key": "actor=u-1", "window_start": at(now - 2 * HOUR), "window_end": at(now - HOUR),
                    "count": 1, "seqs": [0]}}),
        ],
    )
    .await;
    checkpointed(&app, tenant).await;

    let access = [
        ("target_type", "patient"),
        ("target_id", "p-1"),
        ("format", "csv"),
    ];
    let (status, kind, csv) = report_text(&app, &token, "record-access", &access).await;
    assert_eq!(status, 200, "{csv}");
    assert!(kind.starts_with("text/csv"));
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "seq,at,actor_id,actor_type,actor_name,ip,user_agent,action,activity,outcome,outcome_reason"
    );
    // A formula is defused and the cell quoted (it holds a comma and quotes).
    assert!(
        lines[1].contains(r#","'=HYPERLINK(""x""), | evil","#),
        "{}",
        lines[1]
    );

    let (status, _, md) =
        report_text(&app, &token, "security-incidents", &[("format", "md")]).await;
    assert_eq!(status, 200, "{md}");
    assert!(md.starts_with("# Security incidents — rep-render"), "{md}");
    assert!(md.contains("Checkpoint: "), "{md}");
    assert!(
        md.contains("| 1 | alr_ab | failed-logins-per-user | critical |"),
        "{md}"
    );
    let (_, _, csv) = report_text(&app, &token, "security-incidents", &[("format", "csv")]).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with("1,alr_ab,failed-logins-per-user,critical,actor=u-1,"));
    assert!(
        lines[1].ends_with(",0,") || lines[1].contains(",0,"),
        "{}",
        lines[1]
    );

    let (status, _, md) = report_text(
        &app,
        &token,
        "record-access",
        &[
            ("target_type", "patient"),
            ("target_id", "p-1"),
            ("format", "md"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // A pipe in a cell does not break the table.
    assert!(md.contains(r"\| evil"), "{md}");
    let (_, _, md) = report_text(&app, &token, "completeness", &[("format", "md")]).await;
    assert!(md.contains("## Gap findings"), "{md}");
    app.stop().await;
}
