//! `sealtrail serve` as an operator runs it: a real process, the tokens CLI beside it, SIGTERM
//! to stop it, and `sealtrail verify` afterwards.

use crate::support::sealtrail;
use crate::support::serve::{Serve, create_token, post_batch, post_event};

/// A SIGTERM the moment serve says where it listens (a supervisor stopping a service it has
/// just started) is a graceful stop, every time: serve's handlers are installed before it
/// opens the store, not when it first waits for a connection.
#[test]
fn a_sigterm_as_soon_as_serve_listens_is_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let server = Serve::start(dir.path(), &[]);
        // `stop` asserts that serve exited with success, not by the signal.
        server.stop();
    }
    let verified = sealtrail(
        &["verify", "--data", "data", "--tenant", "_system", "--json"],
        dir.path(),
    );
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert_eq!(
        log.matches("shutting down: finishing in-flight commits")
            .count(),
        5,
        "every start stopped through its handler:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_finishes_commits_and_signs_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints are otherwise rare here, so the final one is what covers the events.
    let server = Serve::start(dir.path(), &["--checkpoint-interval-ms", "600000"]);
    assert!(
        server.admin_token.is_some(),
        "the first start prints an admin token"
    );
    let base = server.base.clone();

    // The tokens CLI works on the data directory while the server runs.
    let created = create_token(dir.path(), &[]);
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(created["tenant_created"], true);

    let client = reqwest::Client::new();
    for n in 0..20 {
        let event = serde_json::json!({"action": "user.login", "outcome": "success", "actor": {"id": format!("u-{n}")}});
        let response = post_event(&client, &base, &token, &event).await;
        assert_eq!(response.status(), 201);
    }
    server.stop();

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
    let server = Serve::start(dir.path(), &["--audit-stdout"]);
    let token = create_token(dir.path(), &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = server.base.clone();

    let client = reqwest::Client::new();
    let mut receipts = Vec::new();
    for n in 0..4 {
        let event = serde_json::json!({"action": "user.login", "outcome": "success", "actor": {"id": format!("u-{n}")}});
        let response = post_event(&client, &base, &token, &event).await;
        assert_eq!(response.status(), 201);
        receipts.push(response.json::<serde_json::Value>().await.unwrap());
    }
    let batch: Vec<serde_json::Value> = (0..3)
        .map(|n| serde_json::json!({"action": "record.export", "outcome": "success", "actor": {"id": format!("b-{n}")}}))
        .collect();
    let response = post_batch(&client, &base, &token, &batch).await;
    assert!(response.status().is_success());
    receipts.extend(response.json::<Vec<serde_json::Value>>().await.unwrap());
    // A refused event is not committed, so it has no line.
    let refused = post_event(
        &client,
        &base,
        &token,
        &serde_json::json!({"action": "user.login"}),
    )
    .await;
    assert_eq!(refused.status(), 422);
    let lines = server.stop();

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

/// A first start that cannot listen (the port is taken) creates nothing, so the admin token a
/// store's first start prints is not lost: the next start, on a free port, creates the store
/// and prints it.
#[test]
fn a_first_start_on_a_taken_port_creates_nothing_and_the_next_prints_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();

    let failed = sealtrail(
        &["serve", "--data", "data", "--listen", &address],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&failed.stdout).contains("admin token"),
        "nothing was created, so there is no token to show"
    );
    assert!(
        !dir.path().join("data").exists(),
        "a start that cannot listen creates no store"
    );
    drop(taken);

    let server = Serve::start(dir.path(), &[]);
    assert!(
        server.admin_token.is_some(),
        "the first start that succeeds prints the admin token"
    );
    // Killed rather than stopped: it may not have installed its SIGTERM handler yet.
    server.kill();
}
