//! `sealtrail verify` run as an auditor runs it, on a store written by the real ledger and then
//! damaged the way someone with write access to the database file could: triggers dropped,
//! rows changed, deleted, swapped, and a tail rewritten with consistent hashes and links.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rusqlite::{Connection, params};
use sealtrail::ledger::{Ledger, LedgerConfig, Submission};
use sealtrail::store::sqlite::{SqliteStore, database_path};
use sealtrail::store::{Location, Store, StoreHashes};
use sealtrail_core::event::Event;
use sealtrail_core::merkle::{TreeBuilder, stored_hash_count};
use sealtrail_core::{Hash, leaf_hash};
use serde_json::Value;
use support::serve::copy_dir;

const TENANT: &str = "acme";

fn sealtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(args)
        .output()
        .expect("the sealtrail binary runs")
}

fn verify_json(data: &Path, extra: &[&str]) -> (i32, Value) {
    let data = data.to_str().unwrap();
    let mut args = vec!["verify", "--data", data, "--json"];
    args.extend_from_slice(extra);
    let out = sealtrail(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("an exit code"), json)
}

fn kinds(report: &Value) -> Vec<(u64, String)> {
    report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["seq"].as_u64().expect("a seq"),
                v["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn event(n: u64) -> Submission {
    let json = format!(
        r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{}","type":"user"}},"source":{{"app":"ehr","seq":{n}}}}}"#,
        n % 7
    );
    Submission {
        event: Event::parse(json.as_bytes()).unwrap(),
        idempotency_key: None,
    }
}

/// Appends events `range` to the tenant's log in one ledger session, which signs a checkpoint
/// after its first commit and a final one when it shuts down.
fn session(data: &Path, range: std::ops::Range<u64>) {
    let ledger = Ledger::start(LedgerConfig {
        data_dir: data.to_path_buf(),
        store: Location::new(data, None),
        signing_key: None,
        // Long enough that only the first commit and the shutdown sign checkpoints.
        checkpoint_interval: Duration::from_secs(3600),
        origin_prefix: "sealtrail.test".into(),
        audit_stdout: false,
    })
    .unwrap();
    ledger.ensure_tenant_blocking(TENANT, "test").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(ledger.append(TENANT, range.map(event).collect()))
        .unwrap();
    ledger.shutdown();
}

/// A store with 200 entries in `acme`, checkpointed at sizes 100 and 200.
fn build_store(data: &Path) {
    session(data, 0..100);
    session(data, 100..200);
    let conn = Connection::open(database_path(data)).unwrap();
    let sizes: Vec<u64> = conn
        .prepare("SELECT size FROM checkpoints WHERE tenant = ?1 ORDER BY size")
        .unwrap()
        .query_map([TENANT], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|size| size.unwrap() as u64)
        .collect();
    assert_eq!(sizes, [100, 200]);
}

/// A writable connection to a copy of the store with the append-only triggers dropped, as a
/// database administrator could.
fn tamper(data: &Path) -> Connection {
    let conn = Connection::open(database_path(data)).unwrap();
    for table in ["entries", "hashes", "checkpoints"] {
        for op in ["update", "delete"] {
            conn.execute_batch(&format!("DROP TRIGGER {table}_append_only_{op}"))
                .unwrap();
        }
    }
    conn
}

/// Puts back the triggers [`tamper`] dropped, as they are in the schema.
fn restore_triggers(conn: &Connection) {
    for (table, what) in [
        ("entries", "entries are"),
        ("hashes", "stored hashes are"),
        ("checkpoints", "checkpoints are"),
    ] {
        for op in ["update", "delete"] {
            conn.execute_batch(&format!(
                "CREATE TRIGGER {table}_append_only_{op} BEFORE {} ON {table} BEGIN SELECT RAISE(ABORT, '{what} append-only'); END;",
                op.to_uppercase()
            ))
            .unwrap();
        }
    }
}

fn entry(conn: &Connection, seq: u64) -> Vec<u8> {
    conn.query_row(
        "SELECT entry FROM entries WHERE tenant = ?1 AND seq = ?2",
        params![TENANT, seq as i64],
        |row| row.get(0),
    )
    .expect("the entry")
}

fn set_entry(conn: &Connection, seq: u64, bytes: &[u8]) {
    let changed = conn
        .execute(
            "UPDATE entries SET entry = ?3 WHERE tenant = ?1 AND seq = ?2",
            params![TENANT, seq as i64, bytes],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(from));
    text.replacen(from, to, 1).into_bytes()
}

/// Rewrites entries from `from` to the end with one changed outcome, links that chain again
/// and a stored tree rebuilt over them: everything the store itself can check agrees.
fn rewrite_tail(conn: &Connection, from: u64, end: u64) {
    let first = stored_hash_count(from) as i64;
    conn.execute(
        "DELETE FROM hashes WHERE tenant = ?1 AND idx >= ?2",
        params![TENANT, first],
    )
    .unwrap();
    let reader = SqliteStore::open_reader(conn.path().unwrap().as_ref()).unwrap();
    let mut tree = TreeBuilder::from_reader(
        from,
        &StoreHashes {
            store: &reader,
            tenant: TENANT,
        },
    )
    .unwrap();
    let mut prev = leaf_hash(&entry(conn, from - 1));
    let mut stored: Vec<Hash> = Vec::new();
    for seq in from..end {
        let mut bytes = entry(conn, seq);
        if seq == from {
            bytes = replace(&bytes, "\"success\"", "\"failure\"");
        }
        let key = b"\"prev_hash\":\"";
        let at = bytes
            .windows(key.len())
            .position(|w| w == key)
            .expect("a prev_hash")
            + key.len();
        bytes[at..at + 64].copy_from_slice(prev.to_hex().as_bytes());
        set_entry(conn, seq, &bytes);
        prev = leaf_hash(&bytes);
        tree.push(prev, &mut stored);
    }
    for (offset, hash) in stored.iter().enumerate() {
        conn.execute(
            "INSERT INTO hashes (tenant, idx, hash) VALUES (?1, ?2, ?3)",
            params![TENANT, first + offset as i64, hash.as_bytes().as_slice()],
        )
        .unwrap();
    }
    conn.execute(
        "DELETE FROM checkpoints WHERE tenant = ?1 AND size > ?2",
        params![TENANT, from as i64],
    )
    .unwrap();
}

#[test]
fn an_intact_store_verifies_for_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    build_store(&data);

    let (code, json) = verify_json(&data, &[]);
    assert_eq!(code, 0, "{json:#}");
    let tenants: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(tenants, ["_system", TENANT]);
    assert_eq!(json[TENANT]["valid"], true);
    assert_eq!(json[TENANT]["rows_checked"], 200);
    assert_eq!(json[TENANT]["checkpoint"]["size"], 200);
    assert_eq!(json["_system"]["valid"], true);

    let (code, report) = verify_json(&data, &["--tenant", TENANT]);
    assert_eq!(code, 0);
    let mut keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "checkpoint",
            "first_broken_seq",
            "rows_checked",
            "store_protections",
            "valid",
            "violation_count",
            "violations"
        ]
    );

    let out = sealtrail(&["verify", "--data", data.to_str().unwrap()]);
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("acme: valid, 200 entries checked"),
        "{summary}"
    );

    let out = sealtrail(&[
        "verify",
        "--data",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no sealtrail store"), "{stderr}");
}

/// One way to damage the store, and the violations (seq, kind) the verifier must report.
struct Case {
    name: &'static str,
    damage: fn(&Connection),
    want: &'static [(u64, &'static str)],
    first_broken_seq: u64,
}

/// Each damage on a fresh copy of one store, and the violations (seq, kind) and first broken
/// seq the verifier must report.
#[test]
fn damage_done_in_the_database_is_named_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    build_store(&pristine);

    let cases = [
        Case {
            name: "one entry's bytes changed",
            damage: |conn| set_entry(conn, 42, &replace(&entry(conn, 42), "success", "failure")),
            want: &[(42, "content_mismatch")],
            first_broken_seq: 42,
        },
        Case {
            name: "one entry deleted",
            damage: |conn| {
                conn.execute("DELETE FROM entries WHERE tenant = 'acme' AND seq = 57", [])
                    .unwrap();
            },
            want: &[(57, "missing_seq")],
            first_broken_seq: 57,
        },
        Case {
            name: "two entries' bytes swapped",
            damage: |conn| {
                let (a, b) = (entry(conn, 40), entry(conn, 41));
                set_entry(conn, 40, &b);
                set_entry(conn, 41, &a);
            },
            want: &[
                (40, "seq_mismatch"),
                (40, "content_mismatch"),
                (40, "broken_link"),
                (41, "seq_mismatch"),
                (41, "content_mismatch"),
                (41, "broken_link"),
            ],
            first_broken_seq: 40,
        },
        Case {
            name: "the tail cut",
            damage: |conn| {
                conn.execute(
                    "DELETE FROM entries WHERE tenant = 'acme' AND seq >= 190",
                    [],
                )
                .unwrap();
            },
            want: &[(190, "truncated")],
            first_broken_seq: 190,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let name = case.name;
        let data = dir.path().join(format!("case-{i}"));
        copy_dir(&pristine, &data);
        (case.damage)(&tamper(&data));
        let (code, report) = verify_json(&data, &["--tenant", TENANT]);
        assert_eq!(code, 1, "{name}: {report:#}");
        assert_eq!(report["valid"], false, "{name}");
        let want: Vec<(u64, String)> = case.want.iter().map(|&(s, k)| (s, k.into())).collect();
        assert_eq!(kinds(&report), want, "{name}: {report:#}");
        assert_eq!(report["first_broken_seq"], case.first_broken_seq, "{name}");
    }

    // The readable summary names the first broken seq and what is wrong there.
    let out = sealtrail(&[
        "verify",
        "--data",
        dir.path().join("case-0").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("acme: INVALID") && summary.contains("first broken seq 42"),
        "{summary}"
    );
    assert!(summary.contains("seq 42: content_mismatch"), "{summary}");
    assert!(summary.contains("_system: valid"), "{summary}");
}

/// A tail rewritten with recomputed hashes and links, and the store's later checkpoints deleted,
/// passes every check the store alone allows; a checkpoint saved elsewhere exposes it.
#[test]
fn a_rewritten_tail_is_caught_by_a_checkpoint_kept_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    build_store(&data);
    let saved = dir.path().join("saved.note");
    {
        let store = SqliteStore::open_reader(&database_path(&data)).unwrap();
        let latest = store.latest_checkpoint(TENANT).unwrap().unwrap();
        assert_eq!(latest.size, 200);
        std::fs::write(&saved, latest.note).unwrap();
    }

    let conn = tamper(&data);
    rewrite_tail(&conn, 150, 200);

    // With the triggers gone, verify says so even though every entry checks out.
    let (code, report) = verify_json(&data, &["--tenant", TENANT]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["store_protections"]["intact"], false);
    let missing = report["store_protections"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 6, "{report:#}");

    // An administrator careful to put the triggers back leaves nothing the store alone can
    // tell.
    restore_triggers(&conn);
    let (code, report) = verify_json(&data, &["--tenant", TENANT]);
    assert_eq!(code, 0, "the store alone cannot tell: {report:#}");
    assert_eq!(report["store_protections"]["intact"], true);
    assert_eq!(report["checkpoint"]["size"], 100);

    let saved = saved.to_str().unwrap();
    let (code, report) = verify_json(&data, &["--tenant", TENANT, "--checkpoint", saved]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        kinds(&report),
        [(100, "checkpoint_root_mismatch".to_string())]
    );
    assert_eq!(report["first_broken_seq"], 100);

    // Without --tenant the note finds its log by its origin.
    let (code, json) = verify_json(&data, &["--checkpoint", saved]);
    assert_eq!(code, 1);
    assert_eq!(json[TENANT]["first_broken_seq"], 100);
    assert_eq!(json["_system"]["valid"], true);
}
