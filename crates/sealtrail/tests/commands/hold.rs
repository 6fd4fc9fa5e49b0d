//! `sealtrail hold add|list|release` on a store, as an operator runs them: each step an
//! audited record in `_system`, bad requests refused with what to fix.

use serde_json::Value;

use crate::support::tamper::{Log, TENANT};
use crate::support::{sealtrail_here as sealtrail, succeed};

#[test]
fn holds_are_placed_listed_and_released_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();

    let placed = succeed(&sealtrail(&[
        "hold",
        "add",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--to",
        "2026-12-31T00:00:00Z",
        "--reason",
        "subpoena 44",
        "--json",
    ]));
    let hold: Value = serde_json::from_str(&placed).unwrap();
    assert_eq!(hold["tenant"], TENANT);
    assert_eq!(hold["to"], "2026-12-31T00:00:00.000000Z");
    assert_eq!(hold["reason"], "subpoena 44");
    assert!(
        hold["added_by"].as_str().unwrap().starts_with("cli:"),
        "{hold}"
    );
    let id = hold["id"].as_str().unwrap();

    let listed = succeed(&sealtrail(&["hold", "list", "--data", data]));
    assert!(
        listed.contains(id) && listed.contains("IN FORCE"),
        "{listed}"
    );

    for (args, says) in [
        (
            vec!["--tenant", "nobody", "--reason", "x"],
            "no tenant \"nobody\"",
        ),
        (vec!["--tenant", "_system", "--reason", "x"], "--tenant"),
        (vec!["--tenant", TENANT, "--reason", " "], "--reason"),
        (
            vec!["--tenant", TENANT, "--reason", "x", "--from", "monday"],
            "--from",
        ),
    ] {
        let mut full = vec!["hold", "add", "--data", data];
        full.extend(args);
        let out = sealtrail(&full);
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{full:?}: {stderr}");
    }

    succeed(&sealtrail(&[
        "hold",
        "release",
        "--data",
        data,
        id,
        "--reason",
        "case dismissed",
    ]));
    let again = sealtrail(&["hold", "release", "--data", data, id, "--reason", "again"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("released already"));
    let listed: Value = serde_json::from_str(&succeed(&sealtrail(&[
        "hold", "list", "--data", data, "--json",
    ])))
    .unwrap();
    assert_eq!(listed[0]["released"]["reason"], "case dismissed");
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
