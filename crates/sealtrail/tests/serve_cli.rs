//! `sealtrail serve` as an operator runs it: a real process, the tokens CLI beside it, SIGTERM
//! to stop it, and `sealtrail verify` afterwards.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn sealtrail(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the sealtrail binary runs")
}

type StdoutLines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `sealtrail serve --data data --listen 127.0.0.1:0 EXTRA…` in `dir`, its stdout piped.
fn start_serve(dir: &Path, extra: &[&str]) -> (std::process::Child, StdoutLines) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(["serve", "--data", "data", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(server.stdout.take().unwrap()).lines();
    (server, lines)
}

/// The `http://…` address in serve's "listening on" line.
fn address(listening: &str) -> String {
    assert!(
        listening.starts_with("sealtrail listening on"),
        "{listening}"
    );
    listening
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address is printed")
        .to_string()
}

/// `sealtrail tokens create --json` for tenant acme with events:write, run in `dir`.
fn create_token(dir: &Path) -> serde_json::Value {
    let created = sealtrail(
        &[
            "tokens",
            "create",
            "--data",
            "data",
            "--tenant",
            "acme",
            "--scope",
            "events:write",
            "--json",
        ],
        dir,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    serde_json::from_slice(&created.stdout).unwrap()
}

/// Sends SIGTERM and waits for a clean exit.
fn stop(mut server: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
}

#[tokio::test]
async fn sigterm_finishes_commits_and_signs_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints are otherwise rare here, so the final one is what covers the events.
    let (server, mut lines) = start_serve(dir.path(), &["--checkpoint-interval-ms", "600000"]);
    let admin_line = lines.next().unwrap().unwrap();
    assert!(
        admin_line.starts_with("admin token (shown once"),
        "{admin_line}"
    );
    let base = address(&lines.next().unwrap().unwrap());

    // The tokens CLI works on the data directory while the server runs.
    let created = create_token(dir.path());
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(created["tenant_created"], true);

    let client = reqwest::Client::new();
    for n in 0..20 {
        let response = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"action": "user.login", "outcome": "success", "actor": {"id": format!("u-{n}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    stop(server);

    let verified = sealtrail(
        &["verify", "--data", "data", "--tenant", "acme", "--json"],
        dir.path(),
    );
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["rows_checked"], 20);
    assert_eq!(
        report["checkpoint"]["size"], 20,
        "the final checkpoint covers every event"
    );

    // Listing shows tokens without secrets; revoking one is recorded.
    let listed = sealtrail(&["tokens", "list", "--data", "data", "--json"], dir.path());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(created["id"].as_str().unwrap()));
    assert!(
        !listed.contains(&token),
        "a secret never appears in a listing"
    );
    let revoked = sealtrail(
        &[
            "tokens",
            "revoke",
            "--data",
            "data",
            created["id"].as_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(revoked.status.success());
    let again = sealtrail(
        &[
            "tokens",
            "revoke",
            "--data",
            "data",
            created["id"].as_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(1));
}

/// `--audit-stdout`: every committed entry also leaves the process as one `AUDIT: {json}` line
/// on stdout, carrying the entry's exact bytes, so each line's hash is the receipt's.
#[tokio::test]
async fn audit_stdout_writes_every_committed_entry_as_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path())["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (server, mut lines) = start_serve(dir.path(), &["--audit-stdout"]);
    let base = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if line.starts_with("sealtrail listening on") {
            break address(&line);
        }
    };

    let client = reqwest::Client::new();
    let mut receipts = Vec::new();
    for n in 0..4 {
        let response = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"action": "user.login", "outcome": "success", "actor": {"id": format!("u-{n}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        receipts.push(response.json::<serde_json::Value>().await.unwrap());
    }
    let batch: Vec<serde_json::Value> = (0..3)
        .map(|n| serde_json::json!({"action": "record.export", "outcome": "success", "actor": {"id": format!("b-{n}")}}))
        .collect();
    let response = client
        .post(format!("{base}/v1/events/batch"))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    receipts.extend(response.json::<Vec<serde_json::Value>>().await.unwrap());
    // A refused event is not committed, so it has no line.
    let refused = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"action": "user.login"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    stop(server);

    let mut acme = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let Some(json) = line.strip_prefix("AUDIT: ") else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(json).expect("an AUDIT line is JSON");
        // The entry's exact bytes are the tail of the line.
        let at = json.find("\"entry\":").expect("an entry") + "\"entry\":".len();
        let entry = &json.as_bytes()[at..json.len() - 1];
        assert_eq!(
            sealtrail_core::leaf_hash(entry).to_hex(),
            value["event_hash"].as_str().unwrap(),
            "{line}"
        );
        if value["tenant"] == "acme" {
            acme.push(value);
        }
    }
    assert_eq!(acme.len(), receipts.len(), "{acme:#?}");
    for (line, receipt) in acme.iter().zip(&receipts) {
        assert_eq!(line["event_hash"], receipt["event_hash"]);
        assert_eq!(line["entry"]["seq"], receipt["seq"]);
        assert_eq!(line["entry"]["id"], receipt["id"]);
    }
}
