//! Daily seals over several days, the day boundary moved by a clock the test holds: each day
//! sealed once, after it ends, with the size and root of its last checkpoint and a link to the
//! day before; quiet days sealed too; the routes' answers and refusals; and a seal taken out
//! of the chain found by verification.

use std::time::Duration;

use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::note::VerifierKey;
use sealtrail_core::seal::{Seal, next_day, seal_hash};
use sealtrail_server::clock::{Clock, ManualClock};
use serde_json::Value;

use crate::helpers::{TestApp, event, spawn_app_with_clock};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

/// Polls the seal list until it holds `days` seals; returns it.
async fn seals_until(app: &TestApp, token: &str, days: usize) -> Vec<Value> {
    for _ in 0..200 {
        let list: Value = get(app, token, "/v1/log/seals").await.json().await.unwrap();
        let seals = list["seals"].as_array().unwrap().clone();
        if seals.len() >= days {
            assert_eq!(seals.len(), days, "more seals than days ended: {list:#}");
            return seals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {days} seals within 10 s");
}

/// Polls until the latest checkpoint covers `size` entries; returns it.
async fn checkpoint_at(app: &TestApp, token: &str, size: u64) -> Checkpoint {
    for _ in 0..250 {
        let response = get(app, token, "/v1/log/checkpoint").await;
        if response.status() == 200 {
            let note = response.text().await.unwrap();
            let checkpoint =
                Checkpoint::parse(&sealtrail_core::note::parse(note.as_bytes()).unwrap().text)
                    .unwrap();
            if checkpoint.size == size {
                return checkpoint;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of size {size} within 5 s");
}

async fn post(app: &TestApp, token: &str, range: std::ops::Range<u64>) {
    for n in range {
        let response = app.post_event(token, &event(n)).await;
        assert_eq!(response.status(), 201);
    }
}

#[tokio::test]
async fn each_day_is_sealed_once_linked_to_the_day_before_and_a_break_is_found() {
    let now = Clock::system().now();
    let today = |t: Timestamp| t.to_rfc3339()[..10].to_string();
    // Near midnight the log's own clock (the system's) would change day during the test.
    if now.to_rfc3339()[11..16] >= *"23:58" {
        eprintln!("skipped: the system clock is about to change day");
        return;
    }
    let hand = ManualClock::new(now);
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with_clock(dir, |_| {}, hand.clock()).await;
    let token = app
        .token("acme", &["events:write", "log:read", "verify"])
        .await;
    let key_text = get(&app, &token, "/v1/log/key").await.text().await.unwrap();
    let key = VerifierKey::parse(key_text.trim()).unwrap();

    post(&app, &token, 0..3).await;
    let first = checkpoint_at(&app, &token, 3).await;
    // The day has not ended: nothing is sealed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list: Value = get(&app, &token, "/v1/log/seals")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["seals"], serde_json::json!([]), "{list:#}");

    // Midnight passes: the day is sealed with its last checkpoint, as the first of the chain.
    let day0 = today(now);
    hand.advance(DAY);
    let seals = seals_until(&app, &token, 1).await;
    assert_eq!(seals[0]["day"], day0.as_str());
    assert_eq!(seals[0]["issue"], 0);
    assert_eq!(seals[0]["size"], 3);
    assert_eq!(seals[0]["root"], first.root.to_base64());
    assert_eq!(seals[0]["previous"], Value::Null);
    let note0 = seals[0]["note"].as_str().unwrap().to_string();
    let opened = Seal::open(note0.as_bytes(), &key).expect("signed with the log's key");
    assert_eq!((opened.day.as_str(), opened.size), (day0.as_str(), 3));

    // More events, then the next midnight: the second day links to the first.
    post(&app, &token, 3..5).await;
    let second = checkpoint_at(&app, &token, 5).await;
    hand.advance(DAY);
    let seals = seals_until(&app, &token, 2).await;
    let day1 = next_day(&day0).unwrap();
    assert_eq!(seals[1]["day"], day1.as_str());
    assert_eq!(seals[1]["size"], 5);
    assert_eq!(seals[1]["root"], second.root.to_base64());
    let link0 = sealtrail_core::Hash(seal_hash(note0.as_bytes())).to_base64();
    assert_eq!(seals[1]["previous"], link0.as_str());

    // Two quiet days pass at once: both sealed, in order, at the same size.
    hand.advance(DAY * 2);
    let seals = seals_until(&app, &token, 4).await;
    let days: Vec<&str> = seals.iter().map(|s| s["day"].as_str().unwrap()).collect();
    let day2 = next_day(&day1).unwrap();
    let day3 = next_day(&day2).unwrap();
    assert_eq!(days, [day0.as_str(), &day1, &day2, &day3]);
    for pair in seals.windows(2) {
        let link = seal_hash(pair[0]["note"].as_str().unwrap().as_bytes());
        assert_eq!(
            pair[1]["previous"],
            sealtrail_core::Hash(link).to_base64().as_str()
        );
    }
    assert_eq!(seals[3]["size"], 5);

    // One day's seal as a note; a window; refusals.
    let one = get(&app, &token, &format!("/v1/log/seals/{day1}")).await;
    assert_eq!(one.status(), 200);
    assert_eq!(
        one.text().await.unwrap(),
        seals[1]["note"].as_str().unwrap()
    );
    let window: Value = get(
        &app,
        &token,
        &format!("/v1/log/seals?from={day1}&to={day2}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(window["seals"].as_array().unwrap().len(), 2);
    for (path, status, field) in [
        ("/v1/log/seals/2026-02-30", 400, "date"),
        ("/v1/log/seals/1999-01-01", 404, ""),
        ("/v1/log/seals?from=2026-1-01", 400, "from"),
        (&format!("/v1/log/seals?from={day2}&to={day1}"), 400, "from"),
    ] {
        let response = get(&app, &token, path).await;
        assert_eq!(response.status(), status, "{path}");
        if !field.is_empty() {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["field"], field, "{path}: {body}");
        }
    }
    // Another tenant sees its own seals only.
    let other = app.token("other", &["log:read"]).await;
    let theirs: Value = get(&app, &other, "/v1/log/seals")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        theirs["seals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["note"].as_str().unwrap().contains("/other\n")),
        "{theirs:#}"
    );

    // The chain verifies.
    let report: Value = get(&app, &token, "/v1/verify").await.json().await.unwrap();
    assert_eq!(report["valid"], true, "{report:#}");

    // A seal taken out (by someone who dropped the append-only trigger): the next day's seal
    // now follows a day that is not sealed, and verification says so.
    let db = rusqlite::Connection::open(app.data.join("sealtrail.db")).unwrap();
    db.execute_batch("DROP TRIGGER seals_append_only_delete")
        .unwrap();
    db.execute(
        "DELETE FROM seals WHERE tenant = 'acme' AND day = ?1",
        [&day1],
    )
    .unwrap();
    let report: Value = get(&app, &token, "/v1/verify").await.json().await.unwrap();
    assert_eq!(report["valid"], false, "{report:#}");
    let broken: Vec<&Value> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "seal_broken_link")
        .collect();
    assert_eq!(broken.len(), 1, "{report:#}");
    assert!(
        broken[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("seal {day2} #0 follows the seal of {day0}")),
        "{report:#}"
    );
    app.stop().await;
}
