//! PostgreSQL as an operator sets it up with `docs/postgres-roles.sql`: the owner role
//! migrates, the service role serves and cannot rewrite history or disarm the triggers, and
//! when a superuser drops a trigger and changes a row, `sealtrail verify --database-url`
//! names the change at its seq and the missing protection.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sealtrail_core::event::Event;
use sealtrail_server::ledger::{Ledger, LedgerConfig, Submission};
use sealtrail_store::Location;
use serde_json::Value;

use crate::support::{sealtrail_here as sealtrail, succeed};

/// Runs the documented role script with psql, as a superuser, on the test database.
fn run_role_script(db: &crate::support::TestDatabase) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/postgres-roles.sql");
    let out = Command::new("psql")
        .args(["-X", "-q", "-d", &db.url, "-f"])
        .arg(&script)
        .output()
        .expect("psql runs (it comes with PostgreSQL)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verify(url: &str, data: &Path) -> (Option<i32>, Value) {
    let out = sealtrail(&[
        "verify",
        "--database-url",
        url,
        "--data",
        data.to_str().unwrap(),
        "--tenant",
        "acme",
        "--json",
    ]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn sqlstate(error: &postgres::Error) -> String {
    error.as_db_error().map_or_else(
        || error.to_string(),
        |db| format!("{} {}", db.code().code(), db.message()),
    )
}

#[test]
fn the_service_role_cannot_alter_history_and_verify_catches_a_superuser_who_does() {
    let Some(db) = crate::support::TestDatabase::create("pg_roles") else {
        return;
    };
    let owner = db.url_as("sealtrail_owner");
    let app = db.url_as("sealtrail_app");
    run_role_script(&db);

    // Before the owner migrated, serve as the service role says what to do.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let refused = Location::new(&data, Some(&app))
        .open_writer()
        .err()
        .unwrap();
    assert!(
        refused.to_string().contains("sealtrail migrate"),
        "{refused}"
    );

    let migrated = succeed(&sealtrail(&["migrate", "--database-url", &owner]));
    let latest = format!("to {}", sealtrail_store::postgres::SCHEMA_VERSION);
    assert!(migrated.contains(&latest), "{migrated}");
    let again = succeed(&sealtrail(&["migrate", "--database-url", &owner]));
    assert!(again.contains("up to date"), "{again}");
    run_role_script(&db);

    // The service role does everything the service does: a tenant and token through the CLI,
    // events and checkpoints through the ledger.
    let created = succeed(&sealtrail(&[
        "tokens",
        "create",
        "--database-url",
        &app,
        "--data",
        data.to_str().unwrap(),
        "--tenant",
        "acme",
        "--scope",
        "events:write",
        "--json",
    ]));
    assert!(created.contains("\"token\""), "{created}");
    let ledger = Ledger::start(LedgerConfig {
        data_dir: data.clone(),
        store: Location::new(&data, Some(&app)),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(3600),
        origin_prefix: "sealtrail.local".into(),
        audit_stdout: false,
    })
    .unwrap();
    let events: Vec<Submission> = (0..10)
        .map(|n| Submission {
            event: Event::parse(
                format!(r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{n}"}}}}"#)
                    .as_bytes(),
            )
            .unwrap(),
            idempotency_key: None,
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(ledger.append("acme", events)).unwrap();
    ledger.shutdown();

    // History cannot be changed as the service role: not by statement, nor by disarming the
    // triggers.
    let mut service = postgres::Client::connect(&app, postgres::NoTls).unwrap();
    for sql in [
        "UPDATE entries SET entry = entry WHERE tenant = 'acme'",
        "DELETE FROM entries WHERE tenant = 'acme' AND seq = 9",
        "TRUNCATE entries",
        "UPDATE hashes SET hash = hash",
        "DELETE FROM hashes",
        "DELETE FROM checkpoints",
        "ALTER TABLE entries DISABLE TRIGGER ALL",
        "DROP TRIGGER entries_append_only ON entries",
        "INSERT INTO prunes (tenant, below, archive, system_seq, pruned_at) VALUES ('acme', 9, 'x', 0, 't')",
        "DELETE FROM idempotency",
    ] {
        let error = service.batch_execute(sql).expect_err(sql);
        assert!(
            sqlstate(&error).starts_with("42501"),
            "{sql}: {}",
            sqlstate(&error)
        );
    }
    // The one way out, the owner's prune function, is open to the service role but refuses
    // to pass the archive watermark (none is recorded here).
    let error = service
        .batch_execute("SELECT sealtrail_prune('acme', 5, 'x', 0, 't')")
        .expect_err("no watermark");
    assert!(
        error
            .as_db_error()
            .is_some_and(|e| e.message().contains("archive watermark")),
        "{error:?}"
    );
    // Nor by a superuser while the triggers stand.
    let mut superuser = db.connect();
    superuser
        .batch_execute("SET search_path TO sealtrail")
        .unwrap();
    let error = superuser
        .batch_execute("UPDATE entries SET entry = entry WHERE tenant = 'acme' AND seq = 4")
        .unwrap_err();
    assert!(
        sqlstate(&error).contains("append-only"),
        "{}",
        sqlstate(&error)
    );

    let (code, report) = verify(&owner, &data);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["rows_checked"], 10);
    assert_eq!(report["store_protections"]["intact"], true);

    // A superuser drops the trigger and changes one entry.
    superuser
        .batch_execute(
            "DROP TRIGGER entries_append_only ON entries;
             UPDATE entries
                SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'u-4', 'u-5'), 'UTF8')
              WHERE tenant = 'acme' AND seq = 4;",
        )
        .unwrap();
    let (code, report) = verify(&owner, &data);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken_seq"], 4, "{report:#}");
    let violations = report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{report:#}");
    assert_eq!(violations[0]["seq"], 4);
    assert_eq!(violations[0]["kind"], "content_mismatch");
    assert_eq!(report["store_protections"]["intact"], false);
    assert_eq!(
        report["store_protections"]["missing"],
        serde_json::json!(["trigger entries_append_only on entries"])
    );

    // `sealtrail migrate` puts the protection back; the changed entry stays reported.
    succeed(&sealtrail(&["migrate", "--database-url", &owner]));
    let (code, report) = verify(&owner, &data);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["first_broken_seq"], 4);
    assert_eq!(report["store_protections"]["intact"], true, "{report:#}");
    let error = superuser
        .batch_execute("DELETE FROM entries WHERE tenant = 'acme'")
        .unwrap_err();
    assert!(
        sqlstate(&error).contains("append-only"),
        "{}",
        sqlstate(&error)
    );
}
