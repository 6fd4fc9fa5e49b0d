//! `sealtrail serve --archive-to DIR`: the background archiver as an operator runs it — a
//! directory refused until it is explicitly allowed, the archive appearing and verifying on
//! its own, `/health`, `/metrics` and `doctor` reporting it, and after a `kill -9` the archive
//! resuming from the target's manifests without rewriting a file, on the size trigger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sealtrail_archive::DirTarget;
use sealtrail_archive::verify::verify_archive;
use serde_json::{Value, json};

use crate::support::serve::{Serve, create_token, post_batch};
use crate::support::{sealtrail, stderr};

async fn health(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample `name` (with its labels, e.g. `x{tenant="acme"}`) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `/health` (every 100 ms, up to 60 s) until its `archive` check satisfies `done`.
async fn archive_until(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = health(client, base).await;
        if done(&health["checks"]["archive"]) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: {health:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/metrics` (every 100 ms, up to 60 s) until the sample `name` is `value`.
async fn metric_until(client: &reqwest::Client, base: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics(client, base).await;
        if sample(&text, name) == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is not {value}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send(client: &reqwest::Client, base: &str, token: &str, from: usize, count: usize) {
    let events: Vec<Value> = (from..from + count)
        .map(|n| json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": format!("u-{n}")}, "targets": [{"type": "patient", "id": format!("p-{n}")}]}))
        .collect();
    let response = post_batch(client, base, token, &events).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    assert!(results.iter().all(|r| r["status"] == 201), "{results:?}");
}

/// Every file under `dir`, with its modification time and bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, (SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.insert(path.clone(), (modified, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn acme_key(dir: &Path) -> sealtrail_core::note::VerifierKey {
    let keys = dir.join("data/keys");
    let (_, vkey) = sealtrail_server::keys::key_paths(&keys, "sealtrail.local/acme");
    sealtrail_server::keys::read_verifier(vkey.to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn serve_archives_in_the_background_and_resumes_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let client = reqwest::Client::new();
    let fast = ["--archive-interval", "1s", "--checkpoint-interval-ms", "50"];

    // 1. A directory cannot be locked: without --archive-allow-unlocked it is refused, and
    //    /health, the metrics and the log say why. The server takes events all the same.
    let server = Serve::start(
        dir.path(),
        &[&["--archive-to", "archive"][..], &fast].concat(),
    );
    let token = create_token(dir.path(), &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    send(&client, &server.base, &token, 0, 20).await;
    let refused = archive_until(&client, &server.base, "the directory is refused", |a| {
        a["state"] == "failing"
    })
    .await;
    assert_eq!(refused["status"], "degraded", "{refused:#}");
    let error = refused["checks"]["archive"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("does not keep what it is given immutable")
            && error.contains("--archive-allow-unlocked"),
        "{error}"
    );
    assert_eq!(refused["checks"]["archive"]["immutable"], false);
    assert_eq!(refused["checks"]["archive"]["last_success"], Value::Null);
    let text = metrics(&client, &server.base).await;
    assert!(
        sample(&text, "sealtrail_archive_errors_total{tenant=\"_system\"}").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        !archive.join("acme").exists(),
        "nothing is archived to a refused target"
    );
    assert!(
        server
            .stderr()
            .contains("does not keep what it is given immutable"),
        "the refusal is logged"
    );
    server.stop();

    // 2. Allowed: the archive appears, verifies alone, and /health, the metrics and doctor
    //    report it caught up.
    let allowed = [
        &["--archive-to", "archive", "--archive-allow-unlocked"][..],
        &fast,
    ]
    .concat();
    let server = Serve::start(dir.path(), &allowed);
    send(&client, &server.base, &token, 20, 280).await;
    // Each round reports what it found: wait for the one that archived the whole batch.
    let archived = "sealtrail_archive_archived_size{tenant=\"acme\"}";
    metric_until(&client, &server.base, archived, 300.0).await;
    let caught_up = |a: &Value| a["state"] == "ok" && a["lag_entries"] == 0;
    let healthy = archive_until(&client, &server.base, "the archive catches up", |a| {
        caught_up(a) && a["last_success"].is_string()
    })
    .await;
    assert_eq!(healthy["status"], "healthy", "{healthy:#}");
    let check = &healthy["checks"]["archive"];
    assert_eq!(check["lease"], "held");
    assert_eq!(check["lag_seconds"], 0.0);
    assert!(check["target"].as_str().unwrap().ends_with("archive"));
    let text = metrics(&client, &server.base).await;
    for (name, value) in [
        ("sealtrail_archive_archived_size{tenant=\"acme\"}", 300.0),
        ("sealtrail_archive_lag_entries{tenant=\"acme\"}", 0.0),
        ("sealtrail_archive_lag_seconds{tenant=\"acme\"}", 0.0),
        ("sealtrail_archive_lease_held", 1.0),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in\n{text}");
    }
    assert!(
        sample(&text, "sealtrail_archive_last_success_timestamp_seconds").unwrap() > 1.7e9,
        "{text}"
    );
    let remote = sealtrail(&["doctor", "--url", &server.base, "--json"], dir.path());
    let remote: Value = serde_json::from_slice(&remote.stdout).unwrap();
    let row = remote["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "archive")
        .unwrap_or_else(|| panic!("no archive row: {remote:#}"));
    assert_eq!(row["status"], "ok", "{row}");
    let key = acme_key(dir.path());
    let verified = verify_archive(&DirTarget::open(&archive).unwrap(), "acme", &key, 10).unwrap();
    assert!(verified.report.valid, "{:?}", verified.report.violations);
    assert_eq!(verified.archived_size, 300);
    assert!(
        archive.join("_system/manifest").is_dir(),
        "the _system log is archived too"
    );

    // 3. kill -9, then a restart that archives only on the size trigger (the interval is a
    //    day): the archive resumes from its last manifest and rewrites nothing.
    let before = files(&archive);
    server.kill();
    let server = Serve::start(
        dir.path(),
        &[
            "--archive-to",
            "archive",
            "--archive-allow-unlocked",
            "--archive-interval",
            "1d",
            "--archive-every",
            "100",
            "--checkpoint-interval-ms",
            "50",
        ],
    );
    archive_until(
        &client,
        &server.base,
        "the first round after the crash",
        |a| a["last_success"].is_string(),
    )
    .await;
    send(&client, &server.base, &token, 300, 200).await;
    metric_until(&client, &server.base, archived, 500.0).await;
    archive_until(&client, &server.base, "caught up again", |a| {
        caught_up(a) && a["lag_seconds"] == 0.0
    })
    .await;
    let after = files(&archive);
    for (path, (modified, bytes)) in &before {
        let (now_modified, now_bytes) = after
            .get(path)
            .unwrap_or_else(|| panic!("{} disappeared", path.display()));
        assert!(
            now_modified == modified && now_bytes == bytes,
            "{} was rewritten",
            path.display()
        );
    }
    assert!(after.len() > before.len());
    let verified = verify_archive(&DirTarget::open(&archive).unwrap(), "acme", &key, 10).unwrap();
    assert!(verified.report.valid, "{:?}", verified.report.violations);
    assert_eq!(verified.archived_size, 500);
    assert!(verified.manifests_checked >= 2, "{verified:?}");
    server.stop();

    // doctor on the host: the target as serve uses it passes; without the allowance, it
    // fails and says what to do.
    let args = [
        "doctor",
        "--data",
        "data",
        "--json",
        "--archive-to",
        "archive",
    ];
    let allowed = sealtrail(
        &[&args[..], &["--archive-allow-unlocked"]].concat(),
        dir.path(),
    );
    let report: Value = serde_json::from_slice(&allowed.stdout).unwrap();
    let row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "archive")
        .unwrap_or_else(|| panic!("{report:#}\n{}", stderr(&allowed)))
        .clone();
    assert_eq!(row["status"], "ok", "{row}");
    // The stop's own `_system` record is signed as the server stops, after its archiver.
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("entries not archived yet across 2 logs"),
        "{row}"
    );
    let refused = sealtrail(&args, dir.path());
    assert!(!refused.status.success());
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    let row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "archive")
        .unwrap()
        .clone();
    assert_eq!(row["status"], "fail", "{row}");
    assert!(
        row["remedy"]
            .as_str()
            .unwrap()
            .contains("--archive-allow-unlocked"),
        "{row}"
    );
}
