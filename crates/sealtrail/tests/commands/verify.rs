//! `sealtrail verify` run as an auditor runs it on the embedded store, written by the real
//! ledger and then damaged the way someone with write access to the database file could:
//! triggers dropped, rows changed, deleted, inserted, swapped, the tail cut or rewritten with
//! consistent hashes and links, the signing key replaced (the scenarios, shared with
//! PostgreSQL's `pg_tamper.rs`, are in `support/tamper.rs`).

use std::path::Path;
use std::process::Output;

use crate::support::sealtrail_here as sealtrail;
use crate::support::tamper::{self, Log, TENANT};
use serde_json::Value;

fn verify_json(data: &Path, extra: &[&str]) -> (i32, Value) {
    let data = data.to_str().unwrap();
    let mut args = vec!["verify", "--data", data, "--json"];
    args.extend_from_slice(extra);
    let out: Output = sealtrail(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("an exit code"), json)
}

/// A store with 200 entries in `acme`, checkpointed at sizes 100 and 200.
fn build_store(dir: &Path) -> Log {
    Log::build(dir.join("pristine"), None)
}

#[test]
fn an_intact_store_verifies_for_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let data = build_store(dir.path()).data;

    // Without --tenant the top level answers for every log, so `jq .valid` works the same
    // way as with one; each log's own report is under `tenants`.
    let (code, json) = verify_json(&data, &[]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["valid"], true, "{json:#}");
    assert_eq!(json["violations"], serde_json::json!([]));
    assert_eq!(json["violation_count"], 0);
    assert_eq!(json["first_broken_seq"], Value::Null);
    assert_eq!(json["checkpoint"], Value::Null);
    assert_eq!(json["store_protections"]["intact"], true);
    let tenants = &json["tenants"];
    let names: Vec<&String> = tenants.as_object().unwrap().keys().collect();
    assert_eq!(names, ["_system", TENANT]);
    assert_eq!(tenants[TENANT]["valid"], true);
    assert_eq!(tenants[TENANT]["rows_checked"], 200);
    assert_eq!(tenants[TENANT]["checkpoint"]["size"], 200);
    assert_eq!(tenants["_system"]["valid"], true);
    let system_rows = tenants["_system"]["rows_checked"].as_u64().unwrap();
    assert_eq!(json["rows_checked"], 200 + system_rows);

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

/// Each damage on a fresh copy of one store, and the violations (seq, kind) and first broken
/// seq the verifier must report.
#[test]
fn damage_done_in_the_database_is_named_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = build_store(dir.path());
    tamper::faults_are_named_at_their_seq(&pristine, dir.path());
    tamper::an_appended_entry_with_its_hashes_is_beyond_the_checkpoints(
        &pristine,
        &dir.path().join("appended"),
    );

    // The readable summary names the first broken seq and what is wrong there.
    let out = sealtrail(&[
        "verify",
        "--data",
        dir.path().join("fault-0").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("acme: INVALID") && summary.contains("first broken seq 42"),
        "{summary}"
    );
    assert!(summary.contains("seq 42: content_mismatch"), "{summary}");
    assert!(summary.contains("_system: valid"), "{summary}");
    // An invalid log's checkpoint vouches for a prefix only, and the line says so rather than
    // that the log matches it.
    let invalid = summary
        .lines()
        .find(|line| line.starts_with("acme: INVALID"))
        .unwrap();
    assert!(!invalid.contains("matches the checkpoint"), "{invalid}");
    assert!(
        invalid.contains("still match the checkpoint of size")
            || invalid.contains("no signed checkpoint vouches"),
        "{invalid}"
    );
    assert!(!invalid.contains(" 1 violations"), "{invalid}");
}

/// A tail rewritten with recomputed hashes and links, or cut, together with the store's later
/// checkpoints, passes every check the store alone allows; checkpoints saved elsewhere expose it.
#[test]
fn a_rewritten_or_cut_tail_is_caught_by_checkpoints_kept_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = build_store(dir.path());
    tamper::a_rewritten_tail_is_caught_by_saved_checkpoints(&pristine, dir.path());
    tamper::a_cut_tail_is_caught_by_a_saved_checkpoint(&pristine, dir.path());

    // With the triggers gone, verify says so even though every entry checks out.
    let rewritten = Log {
        data: dir.path().join("rewritten"),
        db: None,
    };
    rewritten.open().disarm();
    let data = &rewritten.data;
    let (code, report) = verify_json(data, &["--tenant", TENANT]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["store_protections"]["intact"], false);
    let missing = report["store_protections"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 6, "{report:#}");

    // Without --tenant each saved note finds its log by its origin.
    let (old, new) = (dir.path().join("old.note"), dir.path().join("new.note"));
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
    let (code, json) = verify_json(data, &["--checkpoint", old, "--checkpoint", new]);
    assert_eq!(code, 1);
    assert_eq!(json["tenants"][TENANT]["first_broken_seq"], 100, "{json:#}");
    assert_eq!(json["tenants"]["_system"]["valid"], true);
    // The summary says the same at the top level, and which log each violation is in.
    assert_eq!(json["valid"], false);
    assert_eq!(json["first_broken_seq"], 100);
    assert_eq!(json["first_broken_tenant"], TENANT);
    let violations = json["violations"].as_array().unwrap();
    assert!(!violations.is_empty());
    assert!(violations.iter().all(|v| v["tenant"] == TENANT), "{json:#}");
}

/// The key file replaced and the checkpoints re-signed with it, or the key the store records,
/// or both: the store's own record, the auditor's copy of the key (`--key`) or a checkpoint
/// saved earlier exposes it.
#[test]
fn a_replaced_signing_key_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = build_store(dir.path());
    tamper::a_replaced_key_is_caught(&pristine, dir.path(), false);
}

/// A data directory other local users can read is warned about on stderr, naming it; the
/// verification itself, its report and its exit status are unchanged.
#[cfg(unix)]
#[test]
fn verify_warns_about_a_data_directory_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = build_store(dir.path()).data;
    let run = || {
        sealtrail(&[
            "verify",
            "--data",
            data.to_str().unwrap(),
            "--tenant",
            TENANT,
        ])
    };

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let private = run();
    assert_eq!(private.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&private.stderr);
    assert!(!stderr.contains("warning: other local users"), "{stderr}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = run();
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert_eq!(
        open.status.code(),
        Some(0),
        "a warning, not a failure: {stderr}"
    );
    assert_eq!(open.stdout, private.stdout);
    assert!(
        stderr.contains(&format!(
            "warning: other local users can reach the audit data: {} is 0755",
            data.display()
        )),
        "{stderr}"
    );
}

/// A database file damaged below SQLite (bytes of a page overwritten, as a copy taken while the
/// server wrote or a failing disk can leave it) is reported as corruption, with what SQLite's
/// integrity check found and what to do, before any log is verified: not as thousands of
/// violations that would read as tampering.
#[test]
fn a_corrupt_database_file_is_reported_as_corruption_not_tampering() {
    use std::io::{Seek as _, SeekFrom, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let data = build_store(dir.path()).data;
    let database = sealtrail_store::DataDir::new(&data).database();
    let wal = database.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the pages to damage are in the database file itself, not in a WAL"
    );
    let len = std::fs::metadata(&database).unwrap().len();
    let page = 4096;
    assert!(len >= 8 * page, "a store of 200 entries spans many pages");
    // A page in the middle of the file, away from page 1 (the header and the schema).
    let offset = (len / 2) / page * page;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&database)
        .unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&vec![0xA5; page as usize]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let out = sealtrail(&["verify", "--data", data.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is corrupt"), "{stderr}");
    assert!(stderr.contains("not a change to any log"), "{stderr}");
    assert!(stderr.contains("restore the data directory"), "{stderr}");
    assert!(
        !stderr.contains("duplicate_seq") && out.stdout.is_empty(),
        "no report of violations: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
