//! `sealtrail tokens` where there is no store: it must refuse, not create one. A token made in
//! a store no server reads is silently useless, so the command says where it looked and how
//! to point at the right store instead.

use crate::support::{TestDatabase, sealtrail};

#[test]
fn tokens_refuse_to_create_a_store_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 4] = [
        &[
            "tokens", "create", "--tenant", "_system", "--scope", "admin",
        ],
        &[
            "tokens",
            "create",
            "--data",
            "elsewhere",
            "--tenant",
            "acme",
            "--scope",
            "events:write",
        ],
        &["tokens", "list"],
        &["tokens", "revoke", "tok_nothing"],
    ];
    for args in commands {
        let out = sealtrail(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a result");
        assert!(
            stderr.contains("no sealtrail store at"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--data DIR"), "{args:?}: {stderr}");
        assert!(stderr.contains("--database-url URL"), "{args:?}: {stderr}");
        // The message names the absolute path it looked at.
        let looked = if args.contains(&"elsewhere") {
            "elsewhere"
        } else {
            "sealtrail-data"
        };
        let expected = dir
            .path()
            .canonicalize()
            .unwrap()
            .join(looked)
            .join("sealtrail.db");
        let expected_raw = dir.path().join(looked).join("sealtrail.db");
        assert!(
            stderr.contains(&*expected.to_string_lossy())
                || stderr.contains(&*expected_raw.to_string_lossy()),
            "{args:?}: {stderr}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing is created: {left:?}");
}

/// On PostgreSQL, a database without sealtrail's schema is not given one by `tokens create`.
#[test]
fn tokens_do_not_create_a_schema_in_an_empty_database() {
    let Some(db) = TestDatabase::create("tokens without a store") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "tokens",
        "create",
        "--database-url",
        &db.url,
        "--tenant",
        "acme",
        "--scope",
        "events:write",
    ];
    let out = sealtrail(&args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no sealtrail schema"), "{stderr}");
    assert!(stderr.contains("--database-url"), "{stderr}");
    // Still no schema: a second attempt fails the same way.
    let again = sealtrail(&args, dir.path());
    assert_eq!(again.status.code(), Some(1));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing is created: {left:?}");
}
