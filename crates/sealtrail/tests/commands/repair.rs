//! `sealtrail repair` on a log damaged by someone with write access to the database: a changed
//! entry put back from the archive and a deleted one from `AUDIT:` lines, the log valid again
//! with its stored hashes and checkpoints untouched and the run recorded in `_system`; bytes
//! the signed tree does not commit to refused; and an entry no source holds listed as not
//! put back. On the embedded store and on PostgreSQL.

use std::path::Path;

use sealtrail_core::hash::leaf_hash;
use sealtrail_core::seal::{Seal, seal_hash};
use sealtrail_store::Location;
use serde_json::Value;

use crate::support::tamper::{self, Log, TENANT, replace};
use crate::support::{TestDatabase, sealtrail_here as sealtrail, succeed};

fn store_args(log: &Log) -> Vec<String> {
    let mut args = vec!["--data".to_string(), log.data.to_str().unwrap().to_string()];
    if let Some(url) = log.url() {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args
}

fn run(log: &Log, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<String> = vec!["repair".into()];
    args.extend(store_args(log));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--json".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sealtrail(&refs);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `AUDIT:` line `serve --audit-stdout` prints for an entry.
fn audit_line(entry: &[u8]) -> String {
    format!(
        "2026-12-03T10:00:00Z host sealtrail: AUDIT: {{\"tenant\":\"{TENANT}\",\"event_hash\":\"{}\",\"entry\":{}}}\n",
        leaf_hash(entry).to_hex(),
        String::from_utf8_lossy(entry)
    )
}

fn repair_scenario(log: &Log, dir: &Path) {
    // An archive of the intact log, and the original bytes of entry 57 as a shipper kept them.
    let archive = dir.join("archive");
    let mut args: Vec<String> = vec!["archive".into(), "run".into()];
    args.extend(store_args(log));
    args.extend([
        "--to".into(),
        archive.to_str().unwrap().into(),
        "--allow-unlocked".into(),
    ]);
    succeed(&sealtrail(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let original_57 = log.open().entry(57);
    let audit = dir.join("audit.log");
    std::fs::write(&audit, audit_line(&original_57)).unwrap();
    let (hashes_before, checkpoints_before) = {
        let mut db = log.open();
        (db.hashes(), db.checkpoints())
    };

    // Entry 42 changed, entry 57 deleted, entry 130 changed too.
    tamper::tamper(log, |db| {
        let bytes = replace(&db.entry(42), "\"success\"", "\"failure\"");
        db.set_entry(42, &bytes);
        db.delete_entries(57..58);
        let bytes = replace(&db.entry(130), "\"success\"", "\"failure\"");
        db.set_entry(130, &bytes);
    });
    assert_eq!(log.verify(&[]).code, 1);

    // Without a source nothing can be put back: the seqs are listed with why.
    let (code, report, _) = run(log, &["--tenant", TENANT, "--reason", "incident 42"]);
    assert_eq!(code, 1);
    let reasons: Vec<(u64, &str)> = report["not_restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["seq"].as_u64().unwrap(), n["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons.len(), 3, "{report:#}");
    assert!(
        reasons
            .iter()
            .all(|(_, why)| why.contains("no source was given")),
        "{report:#}"
    );
    assert_eq!(report["recorded"], false);

    // From AUDIT lines alone: 57 comes back; a forged line for 130 (other bytes) is refused,
    // and nothing holds 42.
    let forged = replace(&log.open().entry(130), "\"failure\"", "\"unknown\"");
    std::fs::write(
        &audit,
        format!("{}{}", audit_line(&original_57), audit_line(&forged)),
    )
    .unwrap();
    let (code, report, _) = run(
        log,
        &[
            "--tenant",
            TENANT,
            "--audit-log",
            audit.to_str().unwrap(),
            "--reason",
            "INC-7: rows changed by hand in the database",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        report["restored"],
        serde_json::json!([{"seq": 57, "source": "audit_log", "was": "missing"}])
    );
    let reasons: Vec<(u64, &str)> = report["not_restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["seq"].as_u64().unwrap(), n["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons.len(), 2, "{report:#}");
    assert_eq!(reasons[0].0, 42);
    assert!(reasons[0].1.contains("no source given holds"), "{report:#}");
    assert_eq!(reasons[1].0, 130);
    assert!(
        reasons[1]
            .1
            .contains("not the entry the log's signed tree commits to"),
        "{report:#}"
    );
    assert_eq!(report["recorded"], true);

    // The archive has the other two.
    let (code, report, stderr) = run(
        log,
        &[
            "--tenant",
            TENANT,
            "--from-archive",
            archive.to_str().unwrap(),
            "--reason",
            "INC-7: rows changed by hand in the database",
        ],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let restored: Vec<(u64, &str, &str)> = report["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["source"].as_str().unwrap(),
                r["was"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        restored,
        [(42, "archive", "changed"), (130, "archive", "changed")],
        "{report:#}"
    );
    assert_eq!(report["after"]["valid"], true, "{report:#}");
    assert_eq!(log.verify(&[]).code, 0);
    // Nothing of the tree or the checkpoints was recomputed or touched.
    let mut db = log.open();
    assert_eq!(db.hashes(), hashes_before);
    assert_eq!(db.checkpoints(), checkpoints_before);
    assert_eq!(db.entry(57), original_57);
    // The append-only protections are in force again.
    let store = Location::new(&log.data, log.url()).open_reader().unwrap();
    assert!(store.protections().unwrap().iter().all(|p| p.active));
    // The run is recorded in _system, with the reason and what it put back.
    let size = store.size("_system").unwrap();
    let last: Value =
        serde_json::from_slice(&store.entry("_system", size - 1).unwrap().unwrap()).unwrap();
    assert_eq!(last["action"], "sealtrail.repair.run", "{last:#}");
    assert_eq!(
        last["details"]["reason"],
        "INC-7: rows changed by hand in the database"
    );
    assert_eq!(last["details"]["restoring"].as_array().unwrap().len(), 2);

    // A valid log is left alone: nothing written.
    let (code, report, _) = run(log, &["--tenant", TENANT, "--reason", "again"]);
    assert_eq!(code, 0);
    assert_eq!(report["recorded"], false);
    assert_eq!(store.size("_system").unwrap(), size);
    drop(store);

    acknowledged_scenario(log, &archive);
}

/// Damage no source holds: listed and untouched until the operator records it as lost; then a
/// marker in the log acknowledges it, verify lists it with the marker's seq (valid only with
/// --accept-repaired) and the day's seal is re-issued, linked to the one it replaces.
fn acknowledged_scenario(log: &Log, archive: &Path) {
    // A sealed day covering the whole log, as the server's sealer issues it.
    let signer = sealtrail_server::keys::read_signer(
        &sealtrail_server::keys::key_paths(
            &sealtrail_store::DataDir::new(&log.data).keys(),
            &tamper::origin(),
        )
        .0,
    )
    .unwrap();
    let writer = Location::new(&log.data, log.url()).open_writer().unwrap();
    let size = writer.size(TENANT).unwrap();
    let root = sealtrail_core::merkle::tree_hash(
        size,
        &sealtrail_store::StoreHashes {
            store: writer.as_ref(),
            tenant: TENANT,
        },
    )
    .unwrap();
    let sealed = Seal {
        origin: tamper::origin(),
        day: "2026-12-01".into(),
        size,
        root,
        previous: None,
        supersedes: None,
    }
    .sign(&signer)
    .unwrap();
    writer.begin_write(&[TENANT]).unwrap();
    writer
        .insert_seal(
            TENANT,
            &sealtrail_store::StoredSeal {
                day: "2026-12-01".into(),
                issue: 0,
                note: sealed.clone(),
                created_at: "2026-12-02T00:00:01.000000Z".into(),
            },
        )
        .unwrap();
    writer.commit().unwrap();
    drop(writer);

    // Entry 160 changed, and the archive taken away: no source holds it any more.
    tamper::tamper(log, |db| {
        let bytes = replace(&db.entry(160), "\"success\"", "\"failure\"");
        db.set_entry(160, &bytes);
    });
    let reason = "INC-8: the archive of that day was destroyed";
    let (code, report, stderr) = run(log, &["--tenant", TENANT, "--reason", reason]);
    assert_eq!(code, 1, "{report:#}");
    assert!(stderr.contains("--acknowledge-lost"), "{stderr}");
    assert_eq!(report["acknowledged"], Value::Null);

    let (code, report, stderr) = run(
        log,
        &["--tenant", TENANT, "--reason", reason, "--acknowledge-lost"],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let ack = &report["acknowledged"];
    assert_eq!(
        (ack["from_seq"].as_u64(), ack["to_seq"].as_u64()),
        (Some(160), Some(160))
    );
    assert_eq!(ack["kinds"], serde_json::json!(["content_mismatch"]));
    assert_eq!(ack["reissued_seal"], "2026-12-01 #1");
    let marker = ack["marker_seq"].as_u64().unwrap();
    assert_eq!(marker, size, "the marker is the log's next entry");

    // The damage is still listed, with the marker's seq; the log stays invalid by default.
    let verified = log.verify(&[]);
    assert_eq!(verified.code, 1);
    let violations = verified.report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{:#}", verified.report);
    assert_eq!(violations[0]["seq"], 160);
    assert_eq!(violations[0]["acknowledged_by"], marker);
    let accepted = log.verify(&["--accept-repaired"]);
    assert_eq!(accepted.code, 0, "{:#}", accepted.report);
    assert_eq!(accepted.report["valid"], true);
    assert_eq!(
        accepted.report["accepted_repaired"],
        serde_json::json!([TENANT])
    );

    // The marker in the log says what and why.
    let store = Location::new(&log.data, log.url()).open_reader().unwrap();
    let entry: Value =
        serde_json::from_slice(&store.entry(TENANT, marker).unwrap().unwrap()).unwrap();
    assert_eq!(entry["action"], "sealtrail.chain.repaired");
    assert_eq!(entry["details"]["reason"], reason);
    assert_eq!(entry["details"]["violations"][0]["seq"], 160);
    // The re-issued seal names the one it replaces; the chain still checks.
    let seals = store.seals(TENANT, "2026-12-01", "2026-12-01").unwrap();
    assert_eq!(seals.len(), 2);
    let reissued = Seal::open(seals[1].note.as_bytes(), &signer.verifier()).unwrap();
    assert_eq!(reissued.supersedes, Some(seal_hash(sealed.as_bytes())));
    assert_eq!(reissued.size, size);
    assert!(
        !violations
            .iter()
            .any(|v| v["kind"].as_str().unwrap().starts_with("seal")),
        "{:#}",
        verified.report
    );
    let _ = archive;
}

#[test]
fn damaged_entries_are_put_back_only_with_the_bytes_the_signed_tree_commits_to() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    repair_scenario(&log, dir.path());
}

#[test]
fn damaged_entries_are_put_back_on_postgresql() {
    let Some(db) = TestDatabase::create("damaged_entries_are_put_back_on_postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), Some(db));
    repair_scenario(&log, dir.path());
}
