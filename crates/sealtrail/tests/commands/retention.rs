//! `sealtrail retention plan` on a store and its archive: nothing without an archive, the
//! archived prefix once archived (but the newest entry, the log's head, which is always kept),
//! stopped by a legal hold in force, and not by a released one.

use serde_json::Value;

use crate::support::tamper::{Log, SIZE, TENANT};
use crate::support::{sealtrail_here as sealtrail, succeed};

fn plan(data: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "retention",
        "plan",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--older-than",
        "0s",
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&succeed(&sealtrail(&args))).unwrap()
}

#[test]
fn the_plan_prunes_only_archived_entries_no_hold_covers() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let archive = dir.path().join("archive");
    let archive = archive.to_str().unwrap();

    // Every entry is old enough, but none is archived.
    let none = plan(data, &[]);
    assert_eq!(none["older_below"], SIZE);
    assert_eq!(none["prunable_below"], 0);
    assert!(
        none["limited_by"].as_str().unwrap().contains("no archive"),
        "{none}"
    );
    // A period longer than the log's life leaves everything.
    let young: Value = serde_json::from_str(&succeed(&sealtrail(&[
        "retention",
        "plan",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--older-than",
        "30d",
        "--json",
    ])))
    .unwrap();
    assert_eq!(young["older_below"], 0);

    succeed(&sealtrail(&[
        "archive",
        "run",
        "--data",
        data,
        "--to",
        archive,
        "--allow-unlocked",
    ]));
    let archived = plan(data, &["--archive", archive]);
    assert_eq!(archived["archived_below"], SIZE);
    assert_eq!(archived["prunable_below"], SIZE - 1, "{archived}");
    assert!(
        archived["limited_by"]
            .as_str()
            .unwrap()
            .contains("newest entry"),
        "{archived}"
    );

    // A hold on the whole log stops everything; released, it stops nothing.
    let hold: Value = serde_json::from_str(&succeed(&sealtrail(&[
        "hold", "add", "--data", data, "--tenant", TENANT, "--reason", "matter 9", "--json",
    ])))
    .unwrap();
    let held = plan(data, &["--archive", archive]);
    assert_eq!(held["prunable_below"], 0, "{held}");
    assert_eq!(held["held"][0]["hold_id"], hold["id"]);
    assert!(
        held["limited_by"].as_str().unwrap().contains("matter 9"),
        "{held}"
    );
    let text = succeed(&sealtrail(&[
        "retention",
        "plan",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--older-than",
        "0s",
        "--archive",
        archive,
    ]));
    assert!(
        text.contains("prunable: nothing; limited by: legal hold"),
        "{text}"
    );
    succeed(&sealtrail(&[
        "hold",
        "release",
        "--data",
        data,
        hold["id"].as_str().unwrap(),
        "--reason",
        "closed",
    ]));
    assert_eq!(
        plan(data, &["--archive", archive])["prunable_below"],
        SIZE - 1
    );

    // A hold whose window starts after every entry covers none of them.
    succeed(&sealtrail(&[
        "hold",
        "add",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--from",
        "2099-01-01T00:00:00Z",
        "--reason",
        "future matter",
    ]));
    let later = plan(data, &["--archive", archive]);
    assert_eq!(later["held"], serde_json::json!([]));
    assert_eq!(later["prunable_below"], SIZE - 1);

    let bad = sealtrail(&[
        "retention",
        "plan",
        "--data",
        data,
        "--tenant",
        TENANT,
        "--older-than",
        "ninety days",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--older-than"));
}
