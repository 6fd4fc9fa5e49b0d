//! `sealtrail replay` from `AUDIT:` lines captured from a real `sealtrail serve
//! --audit-stdout`: rows deleted by hand are put back and the log verifies, on the embedded
//! store and on PostgreSQL; a forged line is refused; entries the store never had are appended
//! only with `--append`; replaying twice writes nothing the second time.

use std::path::Path;

use sealtrail_store::{DataDir, Location};
use serde_json::{Value, json};

use crate::support::serve::{Serve, copy_dir, create_token, post_event};
use crate::support::{TestDatabase, sealtrail, sealtrail_here};

/// Posts `count` events to `acme` through a running server started with `--audit-stdout`;
/// returns its AUDIT lines once it has stopped.
fn session(dir: &Path, from: u64, count: u64) -> Vec<String> {
    session_on(dir, &[], from, count)
}

/// [`session`] with more arguments for serve and the tokens command (`--database-url URL`).
fn session_on(dir: &Path, store: &[&str], from: u64, count: u64) -> Vec<String> {
    // The first start creates the store; the token is made while the server runs.
    let mut args = vec!["--audit-stdout"];
    args.extend_from_slice(store);
    let serve = Serve::start(dir, &args);
    let token = create_token(dir, store);
    let token = token["token"].as_str().unwrap().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for n in from..from + count {
            let event = json!({"action": "record.read", "outcome": "success",
                "actor": {"id": format!("u-{n}"), "type": "user"}, "details": {"n": n}});
            let response = post_event(&client, &serve.base, &token, &event).await;
            assert_eq!(response.status(), 201);
        }
    });
    serve
        .stop()
        .map(Result::unwrap)
        .filter(|l| l.starts_with("AUDIT: "))
        .collect()
}

/// A store made by `serve` with 10 events in `acme` (and the first session's AUDIT lines).
fn first_store(dir: &Path) -> Vec<String> {
    session(dir, 0, 10)
}

fn write_lines(path: &Path, lines: &[String]) {
    // A shipper's copy: other output around the AUDIT lines, a prefix before the marker.
    let mut text = String::from("sealtrail listening on http://127.0.0.1:1\n");
    for line in lines {
        text.push_str("2026-01-01T00:00:00Z host sealtrail[1]: ");
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Deletes `acme`'s rows at `seqs` the way someone with the file could: drop the trigger,
/// delete, put the trigger back.
fn delete_rows(data: &Path, seqs: &[u64]) {
    let conn = rusqlite::Connection::open(DataDir::new(data).database()).unwrap();
    let trigger: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'entries_append_only_delete'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    conn.execute_batch("DROP TRIGGER entries_append_only_delete")
        .unwrap();
    for seq in seqs {
        conn.execute(
            "DELETE FROM entries WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'acme') | ?1",
            [*seq as i64],
        )
        .unwrap();
    }
    conn.execute_batch(&trigger).unwrap();
}

fn replay(dir: &Path, file: &Path, extra: &[&str]) -> (i32, Value) {
    replay_on(dir, &[], file, extra)
}

/// [`replay`] with the store's arguments (`--database-url URL`) after `--data data`.
fn replay_on(dir: &Path, store: &[&str], file: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "replay",
        "--data",
        "data",
        "--audit-log",
        file.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(store);
    args.extend_from_slice(extra);
    let out = sealtrail(&args, dir);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn verify_ok(data: &Path) -> bool {
    sealtrail_here(&["verify", "--data", data.to_str().unwrap()])
        .status
        .success()
}

fn size(data: &Path, tenant: &str) -> u64 {
    Location::new(data, None)
        .open_reader()
        .unwrap()
        .size(tenant)
        .unwrap()
}

fn system_actions(data: &Path) -> Vec<String> {
    let store = Location::new(data, None).open_reader().unwrap();
    let size = store.size("_system").unwrap();
    store
        .entries("_system", 0, size, size as usize)
        .unwrap()
        .into_iter()
        .map(|(_, e)| {
            let v: Value = serde_json::from_slice(&e.unwrap()).unwrap();
            v["action"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn deleted_entries_are_put_back_from_audit_lines_and_the_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let lines = first_store(dir.path());
    let data = dir.path().join("data");
    let file = dir.path().join("shipped.log");
    write_lines(&file, &lines);
    let acme_lines = lines
        .iter()
        .filter(|l| l.contains("\"tenant\":\"acme\""))
        .count();
    assert_eq!(acme_lines, 10);

    delete_rows(&data, &[3, 4, 9]);
    assert!(!verify_ok(&data), "the deletion is caught first");

    let (code, report) = replay(dir.path(), &file, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["counts"]["restored"], 3, "{report:#}");
    assert_eq!(report["counts"]["refused"], 0);
    assert_eq!(report["counts"]["conflict"], 0);
    assert_eq!(report["recorded"], true);
    assert!(verify_ok(&data), "the log verifies after the replay");
    assert_eq!(size(&data, "acme"), 10);
    let actions = system_actions(&data);
    assert_eq!(actions.last().unwrap(), "sealtrail.replay.run");

    // A second run finds everything present and writes nothing at all.
    let system_before = size(&data, "_system");
    let (code, report) = replay(dir.path(), &file, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["restored"], 0);
    assert_eq!(report["counts"]["present"], lines.len(), "{report:#}");
    assert_eq!(report["recorded"], false);
    assert_eq!(size(&data, "_system"), system_before);
    assert_eq!(size(&data, "acme"), 10);

    // The trigger still refuses any other write.
    let conn = rusqlite::Connection::open(DataDir::new(&data).database()).unwrap();
    assert!(
        conn.execute("DELETE FROM entries WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'acme') | 3", [])
            .is_err()
    );
}

#[test]
fn a_forged_line_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lines = first_store(dir.path());
    let data = dir.path().join("data");
    delete_rows(&data, &[5, 6]);
    let find = |seq: u64| {
        lines
            .iter()
            .find(|l| {
                let v: Value = serde_json::from_str(&l["AUDIT: ".len()..]).unwrap();
                v["tenant"] == "acme" && v["entry"]["seq"] == seq
            })
            .unwrap()
            .clone()
    };
    // Seq 5: bytes changed, the line's event_hash left as it was.
    let altered = find(5).replace("\"u-5\"", "\"u-X\"");
    // Seq 6: bytes changed and event_hash recomputed, so only the stored tree can tell.
    let original = find(6).replace("\"u-6\"", "\"u-Y\"");
    let entry = &original[original.find(",\"entry\":").unwrap() + 9..original.len() - 1];
    let hash = sealtrail_core::hash::leaf_hash(entry.as_bytes()).to_hex();
    let recomputed =
        format!("AUDIT: {{\"tenant\":\"acme\",\"event_hash\":\"{hash}\",\"entry\":{entry}}}");
    let file = dir.path().join("forged.log");
    write_lines(&file, &[altered, recomputed]);

    let (code, report) = replay(dir.path(), &file, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["counts"]["refused"], 2, "{report:#}");
    assert_eq!(report["counts"]["restored"], 0);
    let details: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["detail"].as_str().unwrap())
        .collect();
    assert!(details[0].contains("the line was altered"), "{details:?}");
    assert!(details[1].contains("stored leaf hash"), "{details:?}");
    let store = Location::new(&data, None).open_reader().unwrap();
    assert!(store.entry("acme", 5).unwrap().is_none());
    assert!(store.entry("acme", 6).unwrap().is_none());
    drop(store);
    // The refusal is on record.
    assert_eq!(
        system_actions(&data).last().unwrap(),
        "sealtrail.replay.run"
    );
}

#[test]
fn entries_the_store_never_had_are_appended_only_with_append() {
    let dir = tempfile::tempdir().unwrap();
    first_store(dir.path());
    // A copy of the store as it was after 10 events; the original goes on to 14.
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("data"), &snapshot.path().join("data"));
    let later = session(dir.path(), 10, 4);
    // acme's four new entries; the session's own _system records (its start and stop, the
    // token) are left out of the shipper's copy here.
    let later: Vec<String> = later
        .into_iter()
        .filter(|line| line.contains(r#""tenant":"acme""#))
        .collect();
    assert_eq!(later.len(), 4);
    let file = dir.path().join("later.log");
    write_lines(&file, &later);
    let data = snapshot.path().join("data");

    let (code, report) = replay(snapshot.path(), &file, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["counts"]["not_stored"], 4, "{report:#}");
    assert_eq!(report["counts"]["appended"], 0);
    assert_eq!(report["recorded"], false);
    assert_eq!(size(&data, "acme"), 10, "nothing written without --append");

    let (code, report) = replay(snapshot.path(), &file, &["--append"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["counts"]["appended"], 4, "{report:#}");
    assert_eq!(size(&data, "acme"), 14);
    let store = Location::new(&data, None).open_reader().unwrap();
    let appended: Value =
        serde_json::from_slice(&store.entry("acme", 10).unwrap().unwrap()).unwrap();
    drop(store);
    assert_eq!(appended["action"], "record.read");
    assert_eq!(appended["details"]["n"], 10);
    assert_eq!(appended["details"]["replayed"]["seq"], 10);
    assert!(appended["details"]["replayed"]["id"].is_string());
    assert!(appended["details"]["replayed"]["received_at"].is_string());
    assert!(verify_ok(&data));

    // Again: already replayed, nothing appended twice.
    let (code, report) = replay(snapshot.path(), &file, &["--append"]);
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["appended"], 0, "{report:#}");
    assert_eq!(report["counts"]["present"], 4);
    assert_eq!(size(&data, "acme"), 14);
}

/// Deletes `acme`'s rows at `seqs` from a PostgreSQL store the way its superuser could: the
/// append-only trigger disabled, the rows deleted, the trigger enabled again as it was.
fn delete_pg_rows(db: &TestDatabase, seqs: &[u64]) {
    let mut conn = db.connect();
    conn.batch_execute("ALTER TABLE entries DISABLE TRIGGER entries_append_only")
        .unwrap();
    for seq in seqs {
        let deleted = conn
            .execute(
                "DELETE FROM entries WHERE tenant = 'acme' AND seq = $1",
                &[&(*seq as i64)],
            )
            .unwrap();
        assert_eq!(deleted, 1, "seq {seq}");
    }
    conn.batch_execute("ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only")
        .unwrap();
}

/// `acme`'s rows in a PostgreSQL store: how many, how many distinct seqs and ids, and the
/// `_system` log's size.
fn pg_counts(db: &TestDatabase) -> (i64, i64, i64, i64) {
    let mut conn = db.connect();
    let row = conn
        .query_one(
            "SELECT count(*), count(DISTINCT seq), count(DISTINCT id),
                    (SELECT count(*) FROM entries WHERE tenant = '_system')
             FROM entries WHERE tenant = 'acme'",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

fn verify_pg_ok(dir: &Path, url: &str) -> bool {
    sealtrail(&["verify", "--data", "data", "--database-url", url], dir)
        .status
        .success()
}

#[test]
fn deleted_entries_are_put_back_on_postgres_and_the_log_verifies() {
    let Some(db) = TestDatabase::create("replay on PostgreSQL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = ["--database-url", db.url.as_str()];
    let lines = session_on(dir.path(), &store, 0, 10);
    let file = dir.path().join("shipped.log");
    write_lines(&file, &lines);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"tenant\":\"acme\""))
            .count(),
        10
    );
    assert!(verify_pg_ok(dir.path(), &db.url));

    delete_pg_rows(&db, &[0, 4, 9]);
    assert_eq!(pg_counts(&db).0, 7);
    assert!(
        !verify_pg_ok(dir.path(), &db.url),
        "the deletion is caught first"
    );

    let (code, report) = replay_on(dir.path(), &store, &file, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["counts"]["restored"], 3, "{report:#}");
    assert_eq!(report["counts"]["present"], lines.len() - 3, "{report:#}");
    assert_eq!(report["counts"]["refused"], 0);
    assert_eq!(report["counts"]["conflict"], 0);
    assert_eq!(report["counts"]["appended"], 0);
    assert_eq!(report["recorded"], true);
    let restored: Vec<u64> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(restored, [0, 4, 9], "{report:#}");
    assert!(
        verify_pg_ok(dir.path(), &db.url),
        "the log verifies after the replay"
    );
    let (rows, seqs, ids, system) = pg_counts(&db);
    assert_eq!((rows, seqs, ids), (10, 10, 10), "nothing duplicated");

    // The restored rows are the bytes the server committed, and the run is on record.
    let mut conn = db.connect();
    for line in lines.iter().filter(|l| l.contains("\"tenant\":\"acme\"")) {
        let value: Value = serde_json::from_str(&line["AUDIT: ".len()..]).unwrap();
        let seq = value["entry"]["seq"].as_i64().unwrap();
        let entry = &line[line.find(",\"entry\":").unwrap() + 9..line.len() - 1];
        let stored: Vec<u8> = conn
            .query_one(
                "SELECT entry FROM entries WHERE tenant = 'acme' AND seq = $1",
                &[&seq],
            )
            .unwrap()
            .get(0);
        assert_eq!(stored, entry.as_bytes(), "seq {seq}");
    }
    let last: Vec<u8> = conn
        .query_one(
            "SELECT entry FROM entries WHERE tenant = '_system' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let last: Value = serde_json::from_slice(&last).unwrap();
    assert_eq!(last["action"], "sealtrail.replay.run", "{last:#}");
    assert_eq!(last["details"]["restored"], 3, "{last:#}");

    // A second run finds everything present and writes nothing at all.
    let (code, report) = replay_on(dir.path(), &store, &file, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["counts"]["restored"], 0);
    assert_eq!(report["counts"]["present"], lines.len(), "{report:#}");
    assert_eq!(report["recorded"], false);
    assert_eq!(pg_counts(&db), (10, 10, 10, system));

    // The trigger refuses any other delete again.
    let refused = conn
        .execute("DELETE FROM entries WHERE tenant = 'acme' AND seq = 4", &[])
        .unwrap_err();
    assert!(
        refused.to_string().contains("append-only")
            || refused
                .as_db_error()
                .is_some_and(|e| e.message().contains("append-only")),
        "{refused}"
    );
}
