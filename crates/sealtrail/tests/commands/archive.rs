//! `sealtrail archive run|verify`, `verify --archive`, `restore` (and `--drill`) and `backup`,
//! run as an operator runs them, on a log written by the real ledger, on both stores, with the
//! archive in a directory. (The S3 target is exercised against a real Object Lock server by
//! the `sealtrail-s3` tests and the serve tests.)

use std::path::Path;

use sealtrail_store::testing::TestDatabase;
use serde_json::Value;

use crate::support::sealtrail_here as sealtrail;
use crate::support::stderr;
use crate::support::tamper::{Log, SIZE, TENANT};

fn verifier_key(data: &Path) -> String {
    let keys = data.join("keys");
    for entry in std::fs::read_dir(&keys).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(&format!("{TENANT}.vkey")) {
            return std::fs::read_to_string(path).unwrap().trim().to_string();
        }
    }
    panic!("no verifier key of {TENANT} in {}", keys.display());
}

/// `STORE` arguments of a log.
fn store_args(log: &Log) -> Vec<String> {
    let mut args = vec!["--data".to_string(), log.data.display().to_string()];
    if let Some(url) = log.url() {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = sealtrail(args);
    let code = out.status.code().unwrap();
    let err = stderr(&out);
    // Failing commands print their report too: read it whatever the exit status.
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, json, err)
}

fn archive_verify_restore(log: &Log, restore_into: &[&str], dir: &Path) {
    let archive = dir.join("archive");
    let archive = archive.to_str().unwrap();
    let store: Vec<String> = store_args(log);
    let store: Vec<&str> = store.iter().map(String::as_str).collect();
    let key = verifier_key(&log.data);

    // A directory can be deleted from: it is accepted only when the operator says so.
    let mut refused = vec!["archive", "run"];
    refused.extend(&store);
    refused.extend(["--to", archive]);
    let (code, _, err) = run(&refused);
    assert_eq!(code, 1);
    assert!(err.contains("--allow-unlocked"), "{err}");

    let mut args = vec!["archive", "run"];
    args.extend(&store);
    args.extend(["--to", archive, "--allow-unlocked", "--json"]);
    let (code, json, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let acme = json["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == TENANT)
        .unwrap();
    assert_eq!(acme["to_size"], SIZE, "{json:#}");
    // A second run finds everything there and writes nothing.
    let (code, json, _) = run(&args);
    assert_eq!(code, 0);
    assert!(
        json["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["files_written"] == 0),
        "{json:#}"
    );

    // The archive alone, with the key an auditor got out of band.
    let (code, report, err) = run(&[
        "verify",
        "--archive",
        archive,
        "--key",
        &key,
        "--tenant",
        TENANT,
        "--json",
    ]);
    assert_eq!(code, 0, "{err} {report:#}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["rows_checked"], SIZE);
    assert_eq!(report["checkpoint"]["size"], SIZE);
    assert_eq!(report["first_broken_seq"], Value::Null);
    // Without a key it refuses to vouch for anything.
    let (code, _, err) = run(&["verify", "--archive", archive, "--tenant", TENANT]);
    assert_eq!(code, 1);
    assert!(err.contains("--key"), "{err}");

    // Archive against store, both ways.
    let mut args = vec!["archive", "verify"];
    args.extend(&store);
    args.extend(["--to", archive, "--tenant", TENANT, "--json"]);
    let (code, json, err) = run(&args);
    assert_eq!(code, 0, "{err} {json:#}");
    assert_eq!(json["tenants"][0]["entries_compared"], SIZE);

    // Restore into an empty store, then the restored log verifies with the original key and
    // has the original's checkpoint.
    let mut args = vec!["restore", "--from", archive, "--json"];
    args.extend(restore_into);
    let (code, json, err) = run(&args);
    assert_eq!(code, 0, "{err} {json:#}");
    assert_eq!(json["valid"], true);
    let restored = json["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == TENANT)
        .unwrap();
    assert_eq!(restored["entries"], SIZE);
    assert_eq!(restored["restored_checkpoint_size"], SIZE);
    let mut args = vec!["verify", "--tenant", TENANT, "--key", &key, "--json"];
    args.extend(restore_into);
    let (code, json, err) = run(&args);
    assert_eq!(code, 0, "{err} {json:#}");
    assert_eq!(json["rows_checked"], SIZE);
    let (_, original, _) = {
        let mut args = vec!["verify", "--tenant", TENANT, "--json"];
        args.extend(&store);
        run(&args)
    };
    assert_eq!(json["checkpoint"], original["checkpoint"]);
    // Into a store that holds logs: refused, nothing touched.
    let mut args = vec!["restore", "--from", archive];
    args.extend(restore_into);
    let (code, _, err) = run(&args);
    assert_eq!(code, 1);
    assert!(err.contains("already holds"), "{err}");

    // The drill: a temporary store, a report, exit 0.
    let (code, json, err) = run(&["restore", "--drill", "--from", archive, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["drill"], true);
    assert_eq!(json["valid"], true);
    assert!(json["entries"].as_u64().unwrap() >= SIZE);
    assert!(json["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn an_embedded_store_is_archived_verified_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let restored = dir.path().join("restored");
    archive_verify_restore(&log, &["--data", restored.to_str().unwrap()], dir.path());
}

#[test]
fn a_postgres_store_is_archived_verified_and_restored_into_postgres() {
    let Some(db) = TestDatabase::create("archive::postgres") else {
        return;
    };
    let Some(empty) = TestDatabase::create("archive::postgres (restored)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), Some(db));
    let restored_keys = dir.path().join("restored");
    archive_verify_restore(
        &log,
        &[
            "--data",
            restored_keys.to_str().unwrap(),
            "--database-url",
            &empty.url,
        ],
        dir.path(),
    );
}

#[test]
fn a_changed_archived_entry_is_named_by_archive_verify_and_verify_archive() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let archive = dir.path().join("archive");
    let data = log.data.to_str().unwrap();
    let (code, _, err) = run(&[
        "archive",
        "run",
        "--data",
        data,
        "--to",
        archive.to_str().unwrap(),
        "--allow-unlocked",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    // Change the last byte of entry 70's id inside bundle 0 (a hex digit, so it stays JSON).
    let bundle = archive
        .join(TENANT)
        .join(format!("tile/entries/000.p/{SIZE}"));
    let mut bytes = std::fs::read(&bundle).unwrap();
    let entries = sealtrail_core::tiles::decode_entry_bundle(&bytes)
        .unwrap()
        .iter()
        .map(|e| e.len())
        .collect::<Vec<_>>();
    let start: usize = entries[..70].iter().map(|l| l + 2).sum::<usize>() + 2;
    let text = String::from_utf8(bytes[start..start + entries[70]].to_vec()).unwrap();
    let id_at = text.find("\"id\":\"").unwrap() + 6;
    let at = start + id_at;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let mut perms = std::fs::metadata(&bundle).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&bundle, perms).unwrap();
    std::fs::write(&bundle, &bytes).unwrap();

    let key = verifier_key(&log.data);
    let archive = archive.to_str().unwrap();
    let (code, report, _) = run(&[
        "verify",
        "--archive",
        archive,
        "--key",
        &key,
        "--tenant",
        TENANT,
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken_seq"], 70, "{report:#}");
    let (code, json, err) = run(&[
        "archive", "verify", "--data", data, "--to", archive, "--tenant", TENANT, "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        json["tenants"][0]["first_difference"]["seq"], 70,
        "{json:#}"
    );
    assert_eq!(
        json["tenants"][0]["first_difference"]["kind"],
        "entry_differs"
    );
    // And a restore from it is refused.
    let into = dir.path().join("restored");
    let (code, _, err) = run(&[
        "restore",
        "--from",
        archive,
        "--data",
        into.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn a_backup_of_a_store_is_a_data_directory_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let copy = dir.path().join("copy");
    let out = sealtrail(&[
        "backup",
        "--data",
        log.data.to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, json, err) = run(&[
        "verify",
        "--data",
        copy.to_str().unwrap(),
        "--tenant",
        TENANT,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["rows_checked"], SIZE);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(copy.join("sealtrail.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the copy is private: {mode:o}");
    // Never over an existing copy.
    let again = sealtrail(&[
        "backup",
        "--data",
        log.data.to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}
