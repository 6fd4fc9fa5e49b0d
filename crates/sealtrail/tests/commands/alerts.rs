//! Monitoring as an operator configures and reads it: a rule of their own in the config file
//! (`[[monitor.rules]]`) fires on a running `sealtrail serve`, a built-in turned off stays
//! quiet, `sealtrail alerts list` reads the alerts from the store, and a rule that cannot be
//! used stops serve at start naming the rule and the setting.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::serve::{Serve, create_token, post_batch};
use crate::support::{sealtrail, stderr, succeed};

const CONFIG: &str = r#"
[[monitor.rules]]
name = "bulk-deletes"
description = "records deleted by one actor in a minute"
match = { activity = "delete" }
group_by = ["actor"]
window = "1m"
critical = 3

[[monitor.rules]]
name = "failed-logins-per-user"
window = "1m"
enabled = false
"#;

fn list(dir: &std::path::Path) -> Value {
    let out = sealtrail(
        &[
            "alerts", "list", "--data", "data", "--tenant", "acme", "--json",
        ],
        dir,
    );
    serde_json::from_str(&succeed(&out)).unwrap()
}

#[tokio::test]
async fn a_configured_rule_fires_on_serve_and_alerts_list_reads_it_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sealtrail.toml"), CONFIG).unwrap();
    let serve = Serve::start(dir.path(), &["--config", "sealtrail.toml"]);
    let token = create_token(dir.path(), &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    let event = |activity: &str, outcome: &str, n: usize| {
        json!({
            "action": format!("records.{activity}"),
            "activity": activity,
            "outcome": outcome,
            "actor": {"id": "clerk-9", "type": "user"},
            "targets": [{"type": "record", "id": format!("r-{n}")}],
        })
    };
    // Twelve failed logins of one user: the built-in would fire; it is turned off.
    let mut events: Vec<Value> = (0..12).map(|n| event("login", "failure", n)).collect();
    events.extend((0..3).map(|n| event("delete", "success", n)));
    let response = post_batch(&client, &serve.base, &token, &events).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    let deletes: Vec<u64> = results[12..]
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let alerts = list(dir.path())["alerts"].as_array().unwrap().clone();
        if !alerts.is_empty() {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "no alert raised:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    serve.stop();
    // Stopped: still exactly the one alert.
    assert_eq!(list(dir.path())["alerts"].as_array().unwrap(), &alerts);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert["rule"], "bulk-deletes");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["key"], "actor=clerk-9");
    assert_eq!(alert["count"], 3);
    assert_eq!(alert["seqs"], json!(deletes));
    assert_eq!(alert["seq"], deletes[2] + 1);

    let text = succeed(&sealtrail(
        &["alerts", "list", "--data", "data", "--tenant", "acme"],
        dir.path(),
    ));
    assert!(
        text.contains("bulk-deletes")
            && text.contains("actor=clerk-9")
            && text.contains("critical"),
        "{text}"
    );
    let unknown = sealtrail(
        &["alerts", "list", "--data", "data", "--tenant", "nobody"],
        dir.path(),
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no tenant \"nobody\""),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn a_rule_that_cannot_be_used_stops_serve_naming_the_rule_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (rule, says) in [
        (
            "name = \"slow\"\nwindow = \"2d\"\ncritical = 3",
            "monitoring rule \"slow\": window",
        ),
        (
            "name = \"upside-down\"\nwindow = \"1m\"\nwarning = 9\ncritical = 3",
            "monitoring rule \"upside-down\": critical",
        ),
        (
            "name = \"typo\"\nwindow = \"1m\"\ncritical = 3\ngroup_by = [\"actr\"]",
            "actr",
        ),
    ] {
        std::fs::write(
            dir.path().join("bad.toml"),
            format!("[[monitor.rules]]\n{rule}\n"),
        )
        .unwrap();
        let out = sealtrail(
            &[
                "serve",
                "--data",
                "data",
                "--listen",
                "127.0.0.1:0",
                "--config",
                "bad.toml",
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{rule}");
        assert!(stderr(&out).contains(says), "{rule}: {}", stderr(&out));
    }
}
