//! `GET /v1/export`: NDJSON lines checked against the log (leaf hash of each line's entry
//! bytes, inclusion proof to a signed checkpoint), CSV and OCSF with one record per event,
//! the filters of `GET /v1/events` giving the same events, resuming by seq or cursor, and
//! tenants kept apart. The OCSF output is validated by the `ocsf-emitter` package from PyPI
//! (`ci/ocsf_validate.py`).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::verify_inclusion;
use sealtrail_core::note::VerifierKey;
use sealtrail_core::{Hash, leaf_hash};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const EVENTS: u64 = 40;

/// Event `n`: every activity, outcomes, targets, addresses and details vary with `n`.
fn varied(n: u64) -> Value {
    let activities = [
        ("patient.record.read", "read"),
        ("patient.record.update", "update"),
        ("user.login", "login"),
        ("user.logout", "logout"),
        ("report.export", "export"),
        ("record.disclose", "disclose"),
        ("iam.role.grant", "admin"),
        ("user.password.reset", "admin"),
        ("clinic.settings.update", "admin"),
        ("misc.thing", "other"),
    ];
    let (action, activity) = activities[(n % 10) as usize];
    let outcome = ["success", "failure", "unknown"][(n % 3) as usize];
    let mut event = json!({
        "occurred_at": format!("2026-01-01T00:{:02}:00Z", n % 60),
        "action": action,
        "activity": activity,
        "outcome": outcome,
        "actor": {"id": format!("u-{}", n % 4), "type": (["user", "service", "system", "api_key"][(n % 4) as usize]), "email": "dr.lee@clinic.example"},
        "targets": [{"type": (if n.is_multiple_of(2) { "patient" } else { "user" }), "id": format!("p-{}", n % 5), "name": "J. \"Doe\", jr"}],
        "source": {"app": (if n.is_multiple_of(2) { "ehr" } else { "billing" }), "instance": "pod-1", "seq": n},
        "details": {"note": format!("claim-{} reviewed\nline two, \"quoted\"", n % 3), "roles": ["physician"]},
    });
    if n % 3 != 2 {
        event["context"] = json!({"ip": (if n.is_multiple_of(2) { "10.1.2.3" } else { "2001:db8::1" }), "user_agent": "ehr-web/4.2"});
    }
    if n.is_multiple_of(7) {
        event["outcome_reason"] = json!("denied, by policy");
    }
    event
}

async fn app_with_events() -> (TestApp, String) {
    let app = spawn_app().await;
    let writer = app.token("acme", &["events:write"]).await;
    let events: Vec<Value> = (0..EVENTS).map(varied).collect();
    let response = app.post_batch(&writer, &events).await;
    assert_eq!(response.status(), StatusCode::OK);
    let results: Vec<Value> = response.json().await.unwrap();
    assert!(results.iter().all(|r| r["status"] == 201), "{results:?}");
    let reader = app.token("acme", &["events:read", "log:read"]).await;
    (app, reader)
}

async fn export(
    app: &TestApp,
    token: &str,
    query: &str,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let response = app
        .client
        .get(app.url(&format!("/v1/export?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, response.text().await.unwrap(), headers)
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn seqs_of(body: &str) -> Vec<u64> {
    lines(body)
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect()
}

/// The latest signed checkpoint once it covers `size` entries.
async fn checkpoint_covering(app: &TestApp, token: &str, size: u64) -> Checkpoint {
    let key = app
        .client
        .get(app.url("/v1/log/key"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = VerifierKey::parse(key.trim()).unwrap();
    for _ in 0..100 {
        let response = app
            .client
            .get(app.url("/v1/log/checkpoint"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let note = response.text().await.unwrap();
            let checkpoint = Checkpoint::open(note.as_bytes(), &key).unwrap();
            if checkpoint.size >= size {
                return checkpoint;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no checkpoint covers {size} entries");
}

#[tokio::test]
async fn every_ndjson_line_is_the_logged_entry_and_proves_its_inclusion() {
    let (app, token) = app_with_events().await;
    let (status, body, headers) = export(&app, &token, "format=ndjson").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(headers["sealtrail-export-end"], EVENTS.to_string().as_str());
    let stored = app.entries("acme");
    let checkpoint = checkpoint_covering(&app, &token, EVENTS).await;
    let lines = lines(&body);
    assert_eq!(lines.len() as u64, EVENTS);
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line.as_object().unwrap().len(), 5, "{line}");
        assert_eq!(line["tenant"], "acme");
        assert_eq!(line["seq"], n as u64);
        let entry = line["entry"].as_str().unwrap();
        // The exact bytes of the log, whose leaf hash is the event hash.
        assert_eq!(entry.as_bytes(), stored[n].as_slice());
        let leaf = leaf_hash(entry.as_bytes());
        assert_eq!(line["event_hash"], leaf.to_hex());
        assert_eq!(line["event"], serde_json::from_str::<Value>(entry).unwrap());
        let proof: Value = app
            .client
            .get(app.url(&format!(
                "/v1/log/proof/inclusion?seq={n}&size={}",
                checkpoint.size
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let path: Vec<Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
            .collect();
        verify_inclusion(n as u64, checkpoint.size, &leaf, &path, &checkpoint.root).unwrap();
    }
    // Without a format, NDJSON.
    let (_, default, _) = export(&app, &token, "").await;
    assert_eq!(default, body);
    app.stop().await;
}

#[tokio::test]
async fn csv_has_the_documented_columns_and_one_row_per_event() {
    let (app, token) = app_with_events().await;
    let (status, body, headers) = export(&app, &token, "format=csv").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        sealtrail_server::export::csv::COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, EVENTS);
    let (_, ndjson, _) = export(&app, &token, "format=ndjson").await;
    for (row, line) in rows.iter().zip(lines(&ndjson)) {
        let event = &line["event"];
        assert_eq!(row[0], line["seq"].to_string());
        assert_eq!(&row[1], event["id"].as_str().unwrap());
        assert_eq!(&row[4], event["action"].as_str().unwrap());
        assert_eq!(&row[7], event["outcome_reason"].as_str().unwrap_or(""));
        assert_eq!(&row[10], event["context"]["ip"].as_str().unwrap_or(""));
        assert_eq!(
            serde_json::from_str::<Value>(&row[11]).unwrap(),
            event["targets"]
        );
        assert_eq!(&row[15], line["event_hash"].as_str().unwrap());
    }
    app.stop().await;
}

#[tokio::test]
async fn the_filters_select_what_get_v1_events_selects() {
    let (app, token) = app_with_events().await;
    let filters = [
        "actor=u-1",
        "activity=admin",
        "outcome=failure",
        "action=user.login",
        "target_type=user&target_id=p-3",
        "target_id=p-2",
        "ip=2001:DB8::1",
        "source=billing",
        "q=claim-1",
        "q=REVIEWED claim",
        "from=2026-01-01T00:10:00Z&to=2026-01-01T00:20:00Z",
        "activity=read&outcome=success&source=ehr",
    ];
    // The index catches up behind the write path.
    let wait = format!("wait_for_seq={}", EVENTS - 1);
    for filter in filters {
        let listed: Value = app
            .client
            .get(app.url(&format!("/v1/events?{filter}&limit=1000&{wait}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected: Vec<u64> = listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(!expected.is_empty(), "{filter} selects something");
        let (status, body, _) = export(&app, &token, filter).await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(seqs_of(&body), expected, "{filter}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_export_resumes_after_a_seq_or_a_cursor() {
    let (app, token) = app_with_events().await;
    let (_, all, _) = export(&app, &token, "").await;
    let all_lines: Vec<&str> = all.lines().collect();
    let (_, rest, _) = export(&app, &token, "after_seq=24").await;
    assert_eq!(rest.lines().collect::<Vec<_>>(), all_lines[25..]);
    let page: Value = app
        .client
        // Once the index holds every event (the export reads the log, the search the index).
        .get(app.url(&format!("/v1/events?limit=10&wait_for_seq={}", EVENTS - 1)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest, _) = export(&app, &token, &format!("cursor={cursor}")).await;
    assert_eq!(rest.lines().collect::<Vec<_>>(), all_lines[10..]);
    let (_, none, _) = export(&app, &token, &format!("after_seq={}", EVENTS - 1)).await;
    assert_eq!(none, "");
    app.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_them() {
    let (app, token) = app_with_events().await;
    let cases = [
        ("format=xml", "format", "enum"),
        ("format=csv&format=csv", "format", "duplicate"),
        ("limit=10", "limit", "unknown_parameter"),
        ("actr=u-1", "actr", "unknown_parameter"),
        ("after_seq=-1", "after_seq", "type"),
        ("after_seq=1&cursor=djE6YXNjOjE", "after_seq", "exclusive"),
        ("cursor=nope", "cursor", "cursor"),
        ("activity=reading", "activity", "enum"),
        ("q=--", "q", "text"),
        ("from=yesterday", "from", "timestamp"),
    ];
    for (query, field, rule) in cases {
        let (status, body, _) = export(&app, &token, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["field"], field, "{query}: {body}");
        assert_eq!(error["rule"], rule, "{query}: {body}");
    }
    let writer_only = app.token("acme", &["events:write"]).await;
    let (status, _, _) = export(&app, &writer_only, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_token_of_one_tenant_never_exports_another() {
    let (app, acme) = app_with_events().await;
    let globex_writer = app.token("globex", &["events:write"]).await;
    let globex = app.token("globex", &["events:read"]).await;
    for n in 0..3 {
        assert!(
            app.post_event(&globex_writer, &varied(n))
                .await
                .status()
                .is_success()
        );
    }
    for format in ["ndjson", "ocsf"] {
        let (_, body, _) = export(&app, &globex, &format!("format={format}")).await;
        let lines = lines(&body);
        assert_eq!(lines.len(), 3, "{format}");
        for line in lines {
            let tenant = if format == "ndjson" {
                &line["tenant"]
            } else {
                &line["metadata"]["tenant_uid"]
            };
            assert_eq!(tenant, "globex");
        }
    }
    // Naming the other tenant is refused, not answered with its events.
    let response = app
        .client
        .get(app.url("/v1/export"))
        .bearer_auth(&globex)
        .header("X-Tenant-ID", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, body, _) = export(&app, &acme, "").await;
    assert!(lines(&body).iter().all(|l| l["tenant"] == "acme"));
    assert_eq!(lines(&body).len() as u64, EVENTS);
    app.stop().await;
}

/// The Python of the virtual environment with `ocsf-emitter` (`ci/ocsf.sh` installs it):
/// `SEALTRAIL_OCSF_PYTHON`, else `target/ci-tools/ocsf-venv/bin/python`.
fn ocsf_python() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SEALTRAIL_OCSF_PYTHON") {
        return Some(PathBuf::from(path));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = workspace.join("target/ci-tools/ocsf-venv/bin/python");
    path.exists().then_some(path)
}

#[tokio::test]
async fn ocsf_events_pass_the_ocsf_emitter_validator() {
    let Some(python) = ocsf_python() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must validate OCSF: run `bash ci/ocsf.sh` (installs ocsf-emitter)"
        );
        eprintln!("skipped: ocsf-emitter is not installed (bash ci/ocsf.sh installs it)");
        return;
    };
    let (app, token) = app_with_events().await;
    let (status, body, _) = export(&app, &token, "format=ocsf").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lines = lines(&body);
    assert_eq!(lines.len() as u64, EVENTS);
    let mut classes: Vec<u64> = lines
        .iter()
        .map(|l| l["class_uid"].as_u64().unwrap())
        .collect();
    classes.sort();
    classes.dedup();
    assert_eq!(classes, [3001, 3002, 3004, 3005, 6001, 6003]);
    let file = app.data.join("export.ocsf.ndjson");
    std::fs::write(&file, &body).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ci/ocsf_validate.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}
