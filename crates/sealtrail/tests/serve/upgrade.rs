//! A data directory written by the previous release opened by this one. The fixture
//! `tests/fixtures/store-v4/` was made by `make-fixture.sh` there with `sealtrail` built at
//! schema version 4 (tenant names
//! in every key of the log tables), with two tenants' logs, checkpoints, tokens and an
//! idempotency key; `expected.json` holds what that release answered about it (checkpoints,
//! inclusion and consistency proofs, an event by id) and `verify-*.json` what its `sealtrail
//! verify` reported. This release converts the store in place when it opens it and must give
//! the same answers, verify it clean, and keep appending to it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::serve::{Serve, copy_dir, post_batch};
use crate::support::{json_stdout, sealtrail};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v4");

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(Path::new(FIXTURE).join(name)).unwrap()).unwrap()
}

fn user_version(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("data/sealtrail.db")).unwrap();
    db.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

/// `sealtrail verify --tenant TENANT --json` on the copy.
fn verify(dir: &Path, tenant: &str) -> Value {
    let out = sealtrail(
        &["verify", "--data", "data", "--tenant", tenant, "--json"],
        dir,
    );
    let report = json_stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{tenant}: {report:#}");
    assert_eq!(report["valid"], true, "{tenant}: {report:#}");
    assert_eq!(report["store_protections"]["intact"], true, "{report:#}");
    report
}

/// `GET` of a recorded request ("TENANT PATH") with that tenant's token.
async fn ask(client: &reqwest::Client, base: &str, expected: &Value, request: &str) -> Value {
    let (tenant, path) = request.split_once(' ').unwrap();
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(expected["tokens"][tenant].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{request}");
    // A checkpoint is a signed note, recorded as its text; the rest is JSON.
    let body = response.text().await.unwrap();
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

/// Every answer the previous release recorded, asked again.
async fn same_answers(client: &reqwest::Client, base: &str, expected: &Value) {
    let answers = expected["answers"].as_object().unwrap();
    assert_eq!(answers.len(), 10, "{answers:?}");
    for (request, answer) in answers {
        assert_eq!(
            &ask(client, base, expected, request).await,
            answer,
            "{request}"
        );
    }
}

/// The size of the latest checkpoint (the second line of the note).
async fn checkpoint_size(client: &reqwest::Client, base: &str, token: &str) -> u64 {
    let note = client
        .get(format!("{base}/v1/log/checkpoint"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_store_of_schema_version_4_is_converted_in_place_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURE).join("data"), &dir.path().join("data"));
    let expected = fixture_json("expected.json");
    assert_eq!(user_version(dir.path()), 4);
    let args = ["--verify-interval-secs", "0"];
    let client = reqwest::Client::new();

    // The first start converts the store and answers exactly as the previous release did.
    let serve = Serve::start(dir.path(), &args);
    assert_eq!(
        user_version(dir.path()),
        sealtrail_store::sqlite::SCHEMA_VERSION
    );
    same_answers(&client, &serve.base, &expected).await;
    serve.stop();

    // The full verification finds every log intact, under the checkpoints signed before.
    for tenant in ["acme", "globex"] {
        let before = fixture_json(&format!("verify-{tenant}.json"));
        let after = verify(dir.path(), tenant);
        assert_eq!(before["valid"], true, "{before:#}");
        assert_eq!(after["checkpoint"], before["checkpoint"], "{tenant}");
        assert_eq!(after["rows_checked"], before["rows_checked"], "{tenant}");
    }
    verify(dir.path(), "_system");

    // Appending goes on where the logs ended, and the idempotency key still names its event.
    let serve = Serve::start(dir.path(), &args);
    let (acme, globex) = (
        expected["tokens"]["acme"].as_str().unwrap(),
        expected["tokens"]["globex"].as_str().unwrap(),
    );
    let retry = client
        .post(format!("{}/v1/events", serve.base))
        .bearer_auth(acme)
        .header(
            "idempotency-key",
            expected["idempotent"]["key"].as_str().unwrap(),
        )
        .json(&expected["idempotent"]["event"])
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], expected["idempotent"]["receipt"]["id"]);
    assert_eq!(retry["seq"], expected["idempotent"]["receipt"]["seq"]);
    let events = |n: u64| -> Vec<Value> {
        (0..n)
            .map(|i| serde_json::json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": format!("u-{i}"), "type": "user"}}))
            .collect()
    };
    for (token, n) in [(acme, 40), (globex, 10)] {
        let response = post_batch(&client, &serve.base, token, &events(n)).await;
        assert_eq!(response.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while checkpoint_size(&client, &serve.base, acme).await < 341
        || checkpoint_size(&client, &serve.base, globex).await < 110
    {
        assert!(
            Instant::now() < deadline,
            "no checkpoint over the new entries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Proofs into the older trees, and the event by its id, are unchanged.
    let unchanged: Vec<(&String, &Value)> = expected["answers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(r, _)| {
            r.contains("size=") || r.contains("consistency") || r.contains("/v1/events/")
        })
        .collect();
    assert_eq!(unchanged.len(), 4, "{unchanged:?}");
    for (request, answer) in unchanged {
        let got = ask(&client, &serve.base, &expected, request).await;
        if request.contains("/v1/events/") {
            // The event is the same; its proof is now into the larger tree.
            assert_eq!(got["event"], answer["event"], "{request}");
            assert_eq!(got["proof"]["tree_size"], 341, "{request}");
            continue;
        }
        assert_eq!(&got, answer, "{request}");
    }
    serve.stop();

    for (tenant, size) in [("acme", 341), ("globex", 110)] {
        let report = verify(dir.path(), tenant);
        assert_eq!(report["rows_checked"], size, "{report:#}");
        assert_eq!(report["checkpoint"]["size"], size, "{report:#}");
    }
    verify(dir.path(), "_system");
}
