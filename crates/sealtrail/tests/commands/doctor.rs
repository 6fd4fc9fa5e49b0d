//! `sealtrail doctor` run as an operator runs it, on a healthy embedded store and on stores
//! with one thing wrong each: a dropped trigger, a database others can read, a full disk, an
//! stopped PostgreSQL, a dropped constraint — and on a healthy PostgreSQL store.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use sealtrail_store::{DataDir, Location};
use serde_json::Value;

use crate::support::cluster::Cluster;
use crate::support::sealtrail_here as sealtrail;
use crate::support::tamper::Log;
use crate::support::{TestDatabase, disk};

/// Every check the local mode runs on a reachable store, in order.
const LOCAL_CHECKS: [&str; 14] = [
    "store",
    "schema",
    "protections",
    "permissions",
    "disk",
    "checkpoints",
    "clock",
    "keys",
    "index",
    "gaps",
    "seals",
    "spool",
    "write_probe",
    "chain",
];

fn doctor(store: &[&str], extra: &[&str]) -> (i32, Value, Output) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(store);
    args.extend_from_slice(extra);
    let out = sealtrail(&args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("an exit code"), json, out)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

/// The last entry of the `_system` log, as JSON.
fn last_system_entry(data: &Path, url: Option<&str>) -> Value {
    let store = Location::new(data, url).open_reader().unwrap();
    let size = store.size("_system").unwrap();
    let bytes = store.entry("_system", size - 1).unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Whether the host's file system holding `path` is itself near the disk check's warning
/// threshold (`df`'s use%, within a point of 75 %): then the `disk` check rightly warns or
/// fails on a healthy store, and only its consistency with `df` is asserted.
fn host_disk_crowded(path: &Path) -> bool {
    let out = std::process::Command::new("df")
        .arg("-P")
        .arg(path)
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let percent: u64 = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(4))
        .and_then(|p| p.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("df -P output: {text}"));
    percent >= 74
}

fn assert_healthy(report: &Value, code: i32, stderr: &str, data: &Path) {
    let crowded = host_disk_crowded(data);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, LOCAL_CHECKS);
    for c in checks {
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "exactly name, status, detail, remedy: {c}");
        assert!(!c["detail"].as_str().unwrap().is_empty(), "{c}");
        if crowded && c["name"] == "disk" {
            assert!(c["detail"].as_str().unwrap().contains("% used"), "{c}");
            continue;
        }
        assert_eq!(c["status"], "ok", "{c}");
    }
    let disk = &checks[LOCAL_CHECKS.iter().position(|n| *n == "disk").unwrap()];
    // Every other check is ok, so the verdict is the disk check's.
    assert_eq!(report["status"], disk["status"], "{report:#}");
    assert_eq!(
        code,
        if disk["status"] == "fail" { 1 } else { 0 },
        "{report:#}\n{stderr}"
    );
    if !crowded {
        assert_eq!(report["status"], "ok", "{report:#}");
    }
}

#[test]
fn a_healthy_store_passes_every_check_and_the_probe_lands_in_system() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let before = Location::new(&log.data, None)
        .open_reader()
        .unwrap()
        .size("_system")
        .unwrap();

    let (code, report, out) = doctor(&["--data", data], &[]);
    assert_healthy(
        &report,
        code,
        &String::from_utf8_lossy(&out.stderr),
        &log.data,
    );

    // The probe is one real, audited _system event, and no tenant's log grew.
    let entry = last_system_entry(&log.data, None);
    assert_eq!(entry["action"], "sealtrail.doctor.probe");
    assert_eq!(entry["seq"], before);
    let store = Location::new(&log.data, None).open_reader().unwrap();
    assert_eq!(store.size("acme").unwrap(), 200);
    drop(store);
    let verified = sealtrail(&["verify", "--data", data]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // The readable table has one row per check and the overall status.
    let table = sealtrail(&["doctor", "--data", data]);
    assert!(table.status.success() || host_disk_crowded(&log.data));
    let text = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["CHECK", "STATUS", "DETAIL"], "{text}");
    for name in LOCAL_CHECKS {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} row: {text}"
        );
    }
    if !host_disk_crowded(&log.data) {
        assert!(text.ends_with("status: ok\n"), "{text}");
    }
}

#[test]
fn a_dropped_trigger_fails_the_protections_check_with_its_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let conn = rusqlite::Connection::open(DataDir::new(&log.data).database()).unwrap();
    conn.execute_batch("DROP TRIGGER entries_append_only_delete")
        .unwrap();
    drop(conn);

    let (code, report, out) = doctor(&["--data", log.data.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert_eq!(report["status"], "fail");
    let protections = check(&report, "protections");
    assert_eq!(protections["status"], "fail");
    assert!(
        protections["detail"]
            .as_str()
            .unwrap()
            .contains("entries_append_only_delete"),
        "{protections}"
    );
    assert!(
        protections["remedy"]
            .as_str()
            .unwrap()
            .contains("sealtrail verify --data"),
        "{protections}"
    );
    // The other checks still ran and say so.
    assert_eq!(check(&report, "chain")["status"], "ok");
    assert!(String::from_utf8_lossy(&out.stderr).contains("protections"));
}

#[test]
fn a_database_others_can_read_fails_and_an_open_directory_warns() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let database = DataDir::new(&log.data).database();

    std::fs::set_permissions(&log.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, report, _) = doctor(&["--data", data], &[]);
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "warn", "{permissions}");
    assert!(
        permissions["remedy"]
            .as_str()
            .unwrap()
            .starts_with("chmod 700 "),
        "{permissions}"
    );
    assert_eq!(code, 0, "a warning passes without --strict");
    let (strict, _, _) = doctor(&["--data", data], &["--strict"]);
    assert_eq!(strict, 1, "and fails with it");

    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, report, _) = doctor(&["--data", data], &[]);
    assert_eq!(code, 1);
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "fail", "{permissions}");
    let remedy = permissions["remedy"].as_str().unwrap();
    assert!(
        remedy.contains(&format!("chmod 600 {}", database.display())),
        "{remedy}"
    );
    assert!(
        permissions["detail"].as_str().unwrap().contains("0644"),
        "{permissions}"
    );

    // A key file others can read fails too, naming it.
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&log.data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = std::fs::read_dir(DataDir::new(&log.data).keys())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, report, _) = doctor(&["--data", data], &[]);
    assert_eq!(code, 1);
    let permissions = check(&report, "permissions");
    assert_eq!(permissions["status"], "fail");
    assert!(
        permissions["remedy"]
            .as_str()
            .unwrap()
            .contains(&key.display().to_string())
    );
}

/// The database really stopped (`pg_ctl stop`) under a store with a log in it: the store check
/// fails with the command to run, the checks that need no database still run, and once
/// PostgreSQL is started again the same command finds the store as it was.
#[test]
fn a_stopped_postgresql_fails_the_store_check_and_still_prints_the_table() {
    let test = "a_stopped_postgresql_fails_the_store_check_and_still_prints_the_table";
    let Some(mut cluster) = Cluster::start(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create_on(&cluster.url(), test);
    let log = Log::build(dir.path().join("data"), Some(db));
    let url = format!("{}?connect_timeout=5", log.url().unwrap());
    let data = log.data.to_str().unwrap();
    cluster.stop();

    let (code, report, _) = doctor(&["--data", data, "--database-url", &url], &[]);
    assert_eq!(code, 1);
    assert_eq!(report["status"], "fail");
    let store = check(&report, "store");
    assert_eq!(store["status"], "fail");
    let port = format!("127.0.0.1:{}", cluster.port());
    assert!(store["detail"].as_str().unwrap().contains(&port), "{store}");
    assert!(
        store["remedy"].as_str().unwrap().contains("pg_isready"),
        "{store}"
    );
    // The checks that need no store ran all the same, and found the key files private.
    for name in ["permissions", "disk", "spool"] {
        check(&report, name);
    }
    assert_eq!(check(&report, "permissions")["status"], "ok", "{report:#}");

    let table = sealtrail(&["doctor", "--data", data, "--database-url", &url]);
    assert_eq!(table.status.code(), Some(1));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("store") && text.contains("fail"), "{text}");
    assert!(text.ends_with("status: fail\n"), "{text}");

    cluster.start_again();
    let (code, report, out) = doctor(&["--data", data, "--database-url", &url], &[]);
    assert_healthy(
        &report,
        code,
        &String::from_utf8_lossy(&out.stderr),
        &log.data,
    );
}

/// A unique constraint dropped from the schema (then two entries could share an id) is damage
/// the PostgreSQL catalog check finds: `schema` fails, and `verify` refuses to vouch for the
/// store.
#[test]
fn a_dropped_constraint_fails_the_schema_check_on_postgresql() {
    let test = "a_dropped_constraint_fails_the_schema_check_on_postgresql";
    let Some(db) = TestDatabase::create(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), Some(db));
    let url = log.url().unwrap().to_string();
    let data = log.data.to_str().unwrap();
    log.db
        .as_ref()
        .unwrap()
        .connect()
        .batch_execute("ALTER TABLE entries DROP CONSTRAINT entries_by_id")
        .unwrap();

    let (code, report, _) = doctor(&["--data", data, "--database-url", &url], &[]);
    assert_eq!(code, 1, "{report:#}");
    let schema = check(&report, "schema");
    assert_eq!(schema["status"], "fail", "{schema}");
    assert!(
        schema["detail"]
            .as_str()
            .unwrap()
            .contains("constraint entries_by_id on entries is missing"),
        "{schema}"
    );
    let verified = sealtrail(&["verify", "--data", data, "--database-url", &url]);
    assert_eq!(verified.status.code(), Some(1), "{verified:?}");
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(
        stderr.contains("is corrupt") && stderr.contains("constraint entries_by_id"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_fails_the_disk_check() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("pristine"), None);
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let Some(_tmpfs) = disk::Tmpfs::mount("a_full_disk_fails_the_disk_check", &mount, "4m") else {
        return;
    };
    let data = mount.join("data");
    crate::support::serve::copy_dir(&log.data, &data);
    disk::fill(&mount.join("filler"));

    let (code, report, _) = doctor(&["--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    let disk = check(&report, "disk");
    assert_eq!(disk["status"], "fail", "{disk}");
    assert!(
        disk["detail"].as_str().unwrap().starts_with("100 % used"),
        "{disk}"
    );
    assert!(disk["remedy"].as_str().unwrap().contains("df -h"), "{disk}");
}

#[test]
fn a_healthy_postgresql_store_passes_every_check() {
    let Some(db) = TestDatabase::create("a_healthy_postgresql_store_passes_every_check") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), Some(db));
    let url = log.url().unwrap().to_string();
    let data = log.data.to_str().unwrap();
    let (code, report, out) = doctor(&["--data", data, "--database-url", &url], &[]);
    assert_healthy(
        &report,
        code,
        &String::from_utf8_lossy(&out.stderr),
        &log.data,
    );
    assert!(
        check(&report, "clock")["detail"]
            .as_str()
            .unwrap()
            .contains("from the database's clock"),
        "{report:#}"
    );
    let entry = last_system_entry(&log.data, Some(&url));
    assert_eq!(entry["action"], "sealtrail.doctor.probe");
}

/// What the running server's background verifier recorded in the data directory counts: a
/// violation it found fails the chain check even when the recent entries verify now.
#[test]
fn a_violation_the_background_verifier_recorded_fails_the_chain_check() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let (code, report, _) = doctor(&["--data", data], &[]);
    assert_eq!(code, 0, "{report:#}");
    let chain = check(&report, "chain");
    assert!(
        chain["detail"]
            .as_str()
            .unwrap()
            .contains("no background verification recorded here"),
        "{chain}"
    );

    std::fs::write(
        log.data.join("verification.json"),
        r#"{"at": "2026-12-03T03:00:00Z", "chain": "violated", "tenants": {"acme": {"state": "violated", "last_run": "2026-12-03T03:00:00Z", "rows_checked": 200, "first_broken_seq": 12, "violation_count": 1}}}"#,
    )
    .unwrap();
    let (code, report, _) = doctor(&["--data", data], &[]);
    assert_eq!(code, 1, "{report:#}");
    let chain = check(&report, "chain");
    assert_eq!(chain["status"], "fail", "{chain}");
    let detail = chain["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "the server's background verification at 2026-12-03T03:00:00Z found the chain violated: acme from seq 12"
        ),
        "{detail}"
    );
    assert!(
        chain["remedy"]
            .as_str()
            .unwrap()
            .contains("sealtrail verify"),
        "{chain}"
    );
}

/// A log created days ago whose past days no server sealed: a warning naming it, with the
/// command that seals them.
#[test]
fn a_log_whose_past_days_are_not_sealed_warns() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let store = Location::new(&log.data, None).open_writer().unwrap();
    store.begin_write(&["old"]).unwrap();
    store
        .insert_tenant(&sealtrail_store::Tenant {
            name: "old".into(),
            origin: "sealtrail.test/old".into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            vkey: None,
        })
        .unwrap();
    store.commit().unwrap();
    let (_, report, _) = doctor(&["--data", log.data.to_str().unwrap()], &[]);
    let seals = check(&report, "seals");
    assert_eq!(seals["status"], "warn", "{seals}");
    assert!(
        seals["detail"]
            .as_str()
            .unwrap()
            .contains("old: never sealed"),
        "{seals}"
    );
    assert!(
        seals["remedy"]
            .as_str()
            .unwrap()
            .starts_with("start `sealtrail serve --data"),
        "{seals}"
    );
}

/// A producer that skipped 17 sequence numbers just now is an open gap: a warning naming the
/// tenant and the kind, with the command that lists it.
#[test]
fn an_open_gap_warns_with_the_command_that_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let size = crate::support::tamper::SIZE;
    log.session(size + 17..size + 20);
    let data = log.data.to_str().unwrap();

    let (code, report, out) = doctor(&["--data", data], &[]);
    assert_eq!(code, 0, "a warning only: {report:#}\n{out:?}");
    assert_eq!(report["status"], "warn", "{report:#}");
    let gaps = check(&report, "gaps");
    assert_eq!(gaps["status"], "warn", "{gaps}");
    let detail = gaps["detail"].as_str().unwrap();
    assert!(detail.contains("acme: producer_seq_gap"), "{detail}");
    let remedy = gaps["remedy"].as_str().unwrap();
    assert!(
        remedy.starts_with("sealtrail gaps list --data") && remedy.ends_with("--tenant acme"),
        "{remedy}"
    );
    let (strict, _, _) = doctor(&["--data", data], &["--strict"]);
    assert_eq!(strict, 1);
}
