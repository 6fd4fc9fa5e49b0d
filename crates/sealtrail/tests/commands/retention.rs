//! `sealtrail retention plan` on a store and its archive: nothing without an archive, the
//! archived prefix once archived, stopped by a legal hold in force, and not by a released one.
//! `sealtrail retention apply` on both stores: refused without an archive, stopped by a hold,
//! pruning only the archived prefix (recorded in `_system` first), never the newest entry,
//! every inclusion and consistency proof still valid against checkpoints signed before, and
//! `verify` reporting the range as pruned; and the compliance report over it all.

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::merkle;
use sealtrail_core::note::VerifierKey;
use sealtrail_server::ledger::{Ledger, LedgerConfig, LedgerError, PruneRequest, Refusal};
use sealtrail_store::{Location, StoreHashes};
use serde_json::Value;

use crate::support::tamper::{self, Log, TENANT};
use crate::support::{TestDatabase, sealtrail_here as sealtrail, succeed};

/// The log's first session: more than one entry bundle of 256, less than two.
const FIRST: u64 = 300;
/// Its size after the second session: two whole bundles and part of a third.
const SIZE: u64 = 600;

/// A store with [`SIZE`] entries in [`TENANT`]'s log, written in two ledger sessions (each
/// signs a checkpoint at its end: sizes [`FIRST`] and [`SIZE`]); `between` runs after the
/// first.
fn long_log(data: std::path::PathBuf, db: Option<TestDatabase>, between: impl FnOnce(&Log)) -> Log {
    let log = Log { data, db };
    log.session(0..FIRST);
    between(&log);
    log.session(FIRST..SIZE);
    log
}

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
    let log = long_log(dir.path().join("data"), None, |_| {});
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
    // Whole bundles of 256 only: the archive rewrites a partial one as the log grows.
    assert_eq!(archived["prunable_below"], 512, "{archived}");
    assert!(
        archived["limited_by"]
            .as_str()
            .unwrap()
            .contains("whole bundles of 256"),
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
    assert_eq!(plan(data, &["--archive", archive])["prunable_below"], 512);

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
    assert_eq!(later["prunable_below"], 512);

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

/// `sealtrail retention apply|report` on `log`'s store, with `extra` arguments: exit code,
/// stdout as JSON (or `Null`), stderr.
fn retention(log: &Log, command: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<String> = vec!["retention".into(), command.into()];
    args.extend(store_args(log));
    args.extend(["--tenant", TENANT].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sealtrail(&refs);
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn store_args(log: &Log) -> Vec<String> {
    let mut args = vec!["--data".to_string(), log.data.to_str().unwrap().to_string()];
    if let Some(url) = log.url() {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args
}

fn archive_run(log: &Log, archive: &str) {
    let mut args: Vec<String> = vec!["archive".into(), "run".into()];
    args.extend(store_args(log));
    args.extend(["--to", archive, "--allow-unlocked"].map(String::from));
    succeed(&sealtrail(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
}

/// The signed checkpoint of `size`, opened with the log's key.
fn checkpoint(log: &Log, size: u64) -> Checkpoint {
    let key = VerifierKey::parse(
        std::fs::read_to_string(tamper::vkey_path(&log.data))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let (_, note) = log
        .open()
        .checkpoints()
        .into_iter()
        .find(|(s, _)| *s == size)
        .expect("a checkpoint of that size");
    Checkpoint::open(note.as_bytes(), &key).unwrap()
}

fn apply_scenario(data: std::path::PathBuf, db: Option<TestDatabase>, dir: &std::path::Path) {
    let archive = dir.join("archive");
    let archive = archive.to_str().unwrap();
    // The first session is archived; the second is not yet.
    let log = &long_log(data, db, |log| archive_run(log, archive));
    let at_first = checkpoint(log, FIRST);
    let at_size = checkpoint(log, SIZE);
    let originals: Vec<Vec<u8>> = {
        let mut db = log.open();
        (0..SIZE).map(|seq| db.entry(seq)).collect()
    };
    let now = ["--older-than", "0s", "--json"];

    // Nothing is pruned without an archive.
    let (code, _, stderr) = retention(log, "apply", &now);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("without an archive"), "{stderr}");
    // Nor without a period, when none is configured.
    let (code, _, stderr) = retention(log, "apply", &["--archive", archive]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no retention period"), "{stderr}");

    // A legal hold on the whole log stops the prune; the log is untouched.
    let mut hold_args: Vec<String> = vec!["hold".into(), "add".into()];
    hold_args.extend(store_args(log));
    hold_args.extend(["--tenant", TENANT, "--reason", "matter 12", "--json"].map(String::from));
    let hold: Value = serde_json::from_str(&succeed(&sealtrail(
        &hold_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )))
    .unwrap();
    let with_archive = ["--older-than", "0s", "--json", "--archive", archive];
    let (code, held, stderr) = retention(log, "apply", &with_archive);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(held["pruned"], Value::Null, "{held:#}");
    assert!(
        held["plan"]["limited_by"]
            .as_str()
            .unwrap()
            .contains("matter 12"),
        "{held:#}"
    );
    assert_eq!(log.open().entry(0), originals[0]);
    // Nor can a prune asked of the writer directly, past the plan, go under the hold: the
    // writer reads the holds again in the prune's own transaction.
    let ledger = Ledger::start(LedgerConfig {
        data_dir: log.data.clone(),
        store: Location::new(&log.data, log.url()),
        signing_key: None,
        checkpoint_interval: std::time::Duration::from_secs(3600),
        origin_prefix: "sealtrail.test".into(),
        audit_stdout: false,
    })
    .unwrap();
    let forced = ledger.prune_blocking(PruneRequest {
        tenant: TENANT.into(),
        below: 256,
        archive: archive.into(),
        watermark: FIRST,
        details: serde_json::json!({}),
        actor: "test".into(),
    });
    ledger.shutdown();
    match forced {
        Err(LedgerError::Invalid(Refusal::HeldMeanwhile {
            hold_id, first_seq, ..
        })) => {
            assert_eq!(hold_id, hold["id"].as_str().unwrap());
            assert_eq!(first_seq, 0);
        }
        other => panic!("a prune under a hold: {other:?}"),
    }
    assert_eq!(log.open().entry(0), originals[0]);
    let mut release: Vec<String> = vec!["hold".into(), "release".into()];
    release.extend(store_args(log));
    release.extend([hold["id"].as_str().unwrap(), "--reason", "closed"].map(String::from));
    succeed(&sealtrail(
        &release.iter().map(String::as_str).collect::<Vec<_>>(),
    ));

    // An archive that does not hold what the store holds is refused at prune time, even
    // though its manifests verify: one byte of an archived entry changed.
    let bundle = std::path::Path::new(archive).join(format!("{TENANT}/tile/entries/000"));
    let original_bundle = std::fs::read(&bundle).unwrap();
    let mut changed = original_bundle.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x01;
    let mut permissions = std::fs::metadata(&bundle).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&bundle, permissions).unwrap();
    std::fs::write(&bundle, &changed).unwrap();
    let (code, _, stderr) = retention(log, "apply", &with_archive);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("differs from the store"), "{stderr}");
    assert!(stderr.contains("nothing was pruned"), "{stderr}");
    assert_eq!(log.open().entry(0), originals[0]);
    std::fs::write(&bundle, &original_bundle).unwrap();

    // Released: only what the archive holds (the first session), in whole bundles, is pruned.
    let (code, applied, stderr) = retention(log, "apply", &with_archive);
    assert_eq!(code, 0, "{stderr}");
    let pruned = &applied["pruned"];
    assert_eq!(pruned["below"], 256, "{applied:#}");
    assert_eq!(pruned["removed"], 256);
    assert_eq!(applied["entries_compared"], 256);
    assert!(
        applied["plan"]["limited_by"]
            .as_str()
            .unwrap()
            .contains("archive holds entries below 300"),
        "{applied:#}"
    );
    let store = Location::new(&log.data, log.url()).open_reader().unwrap();
    assert_eq!(store.entry(TENANT, 255).unwrap(), None);
    assert_eq!(
        store.entry(TENANT, 256).unwrap().as_deref(),
        Some(originals[256].as_slice())
    );
    // The prune was recorded in _system first: its entry is the seq the mark names.
    let system_seq = pruned["system_seq"].as_u64().unwrap();
    let record: Value =
        serde_json::from_slice(&store.entry("_system", system_seq).unwrap().unwrap()).unwrap();
    assert_eq!(record["action"], "sealtrail.retention.pruned");
    assert_eq!(record["details"]["pruned_below"], 256);
    assert_eq!(record["details"]["archive"], pruned["archive"]);

    // Every proof stays valid against the checkpoints signed before the prune: of pruned
    // entries (with the bytes the archive keeps), of kept ones, and between the two sizes.
    let hashes = StoreHashes {
        store: store.as_ref(),
        tenant: TENANT,
    };
    for (seq, cp) in [
        (0, &at_first),
        (57, &at_first),
        (57, &at_size),
        (450, &at_size),
    ] {
        let proof = merkle::inclusion_proof(seq, cp.size, &hashes).unwrap();
        merkle::verify_inclusion(
            seq,
            cp.size,
            &leaf_hash(&originals[seq as usize]),
            &proof,
            &cp.root,
        )
        .unwrap_or_else(|e| panic!("seq {seq} in size {}: {e}", cp.size));
    }
    let consistency = merkle::consistency_proof(FIRST, SIZE, &hashes).unwrap();
    merkle::verify_consistency(FIRST, SIZE, &at_first.root, &at_size.root, &consistency).unwrap();
    drop(store);

    // verify reports the range as pruned, with the archive, and the rest as valid.
    let verified = log.verify(&[]);
    assert_eq!(verified.code, 0, "{:#}", verified.report);
    assert_eq!(verified.report["valid"], true);
    assert_eq!(verified.report["rows_checked"], SIZE - 256);
    assert_eq!(verified.report["pruned"]["below"], 256);
    assert_eq!(verified.report["pruned"]["system_seq"], system_seq);
    assert_eq!(verified.report["checkpoint"]["size"], SIZE);
    // The archive still verifies against the store (by leaf hash below the mark).
    let mut compare: Vec<String> = vec!["archive".into(), "verify".into()];
    compare.extend(store_args(log));
    compare.extend(["--to", archive].map(String::from));
    succeed(&sealtrail(
        &compare.iter().map(String::as_str).collect::<Vec<_>>(),
    ));

    // Nothing more to prune until more is archived (the archive extends its partial bundle
    // with entries the store kept); then the next whole bundle.
    let (_, again, _) = retention(log, "apply", &with_archive);
    assert_eq!(again["pruned"], Value::Null, "{again:#}");
    archive_run(log, archive);
    let (code, rest, stderr) = retention(log, "apply", &with_archive);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rest["pruned"]["below"], 512, "{rest:#}");
    assert_eq!(rest["pruned"]["removed"], 256);
    let verified = log.verify(&[]);
    assert_eq!(verified.code, 0, "{:#}", verified.report);
    assert_eq!(verified.report["pruned"]["below"], 512);
    assert_eq!(verified.report["rows_checked"], SIZE - 512);

    // The compliance report: both prunes, the archive check over the pruned range, no hold.
    let (code, report, stderr) =
        retention(log, "report", &["--archive", archive, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["pruned_below"], 512, "{report:#}");
    assert_eq!(report["oldest_kept"]["seq"], 512);
    let prunes = report["prunes"].as_array().unwrap();
    assert_eq!(prunes.len(), 2, "{report:#}");
    assert_eq!(prunes[0]["pruned_below"], 256);
    assert_eq!(prunes[1]["previously_pruned_below"], 256);
    assert_eq!(report["archive_check"]["valid"], true, "{report:#}");
    assert_eq!(report["archive_check"]["entries_compared"], 512);
    assert_eq!(report["holds_in_force"], serde_json::json!([]));
    assert_eq!(report["period"], Value::Null);
    assert!(
        report["findings"][0]
            .as_str()
            .unwrap()
            .contains("no retention period"),
        "{report:#}"
    );
    let (code, _, _) = retention(log, "report", &["--format", "md"]);
    assert_eq!(code, 0);
    let mut md: Vec<String> = vec!["retention".into(), "report".into()];
    md.extend(store_args(log));
    md.extend(["--tenant", TENANT, "--archive", archive].map(String::from));
    let md = succeed(&sealtrail(
        &md.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(md.starts_with("# Retention compliance: acme"), "{md}");
    assert!(md.contains("Archive check: passed"), "{md}");
}

#[test]
fn apply_prunes_only_what_the_archive_holds_and_every_proof_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    apply_scenario(dir.path().join("data"), None, dir.path());
}

#[test]
fn apply_prunes_on_postgresql_through_the_owners_function() {
    let Some(db) = TestDatabase::create("apply_prunes_on_postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    apply_scenario(dir.path().join("data"), Some(db), dir.path());
}
