//! `sealtrail doctor --url` against a real `sealtrail serve` on a free port: the table it
//! prints and its exit status for a healthy server whose quiet log has an old checkpoint
//! (nothing to warn about, as `doctor --data` says too), for a log that grows past that
//! checkpoint while it cannot be signed (a warning, exit 1 only with `--strict`), and for a
//! server that is gone.

use std::path::Path;
use std::time::{Duration, Instant};

use sealtrail_core::Timestamp;
use sealtrail_server::clock::{Clock, ManualClock};
use sealtrail_server::ledger::{Ledger, LedgerConfig, Outcome, Submission};
use serde_json::json;

use crate::support::sealtrail;
use crate::support::serve::{Serve, create_token, post_event};

/// How long before now the store's first events were written and its logs signed.
const AGE: Duration = Duration::from_secs(20 * 60);

/// The settings `sealtrail serve --data data` resolves to in `dir`, as its writer's.
fn ledger_config(dir: &Path) -> LedgerConfig {
    let settings = sealtrail_server::config::Settings {
        data: Some(dir.join("data")),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    LedgerConfig::from_settings(&settings)
}

/// A store whose `acme` log got three events, and its checkpoint, [`AGE`] ago: written by the
/// same writer `serve` runs, on a clock set back.
fn store_signed_long_ago(dir: &Path) {
    let now = Clock::system().now().unix_micros();
    let then = Timestamp::from_unix_micros(now - AGE.as_micros() as i64).unwrap();
    let hand = ManualClock::new(then);
    let ledger = Ledger::start_with_clock(ledger_config(dir), None, hand.clock()).unwrap();
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    let events = (0..3)
        .map(|n| Submission {
            event: sealtrail_core::event::Event::from_value(&json!({
                "action": "patient.record.read", "outcome": "success",
                "actor": {"id": format!("u-{n}")}}))
            .unwrap(),
            idempotency_key: None,
        })
        .collect();
    for outcome in ledger.append_blocking("acme", events).unwrap() {
        assert!(matches!(outcome, Outcome::Created(_)), "{outcome:?}");
    }
    // Shutting down signs the final checkpoint, dated by the clock set back.
    ledger.shutdown();
}

/// One sample's value from `/metrics`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// Waits until `/health` and `/metrics` show `ready`.
async fn until(base: &str, what: &str, ready: impl Fn(&serde_json::Value, &str) -> bool) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready(&health, &metrics) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never came: {health:#}\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `sealtrail doctor --url BASE EXTRA…`: its exit status and stdout.
fn doctor(dir: &Path, base: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["doctor", "--url", base];
    args.extend_from_slice(extra);
    let out = sealtrail(&args, dir);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// The table's row of a check: (status, detail).
fn row<'a>(table: &'a str, check: &str) -> (&'a str, &'a str) {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(check))
        .unwrap_or_else(|| panic!("no {check} row in\n{table}"));
    let mut rest = line[check.len()..]
        .trim_start()
        .splitn(2, char::is_whitespace);
    let status = rest.next().unwrap();
    (status, rest.next().unwrap_or("").trim())
}

#[tokio::test]
async fn doctor_url_reads_a_running_server_and_tells_a_quiet_log_from_a_growing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // The writer answers its blocking callers from its own thread: off the test's runtime.
    tokio::task::spawn_blocking(move || store_signed_long_ago(&path))
        .await
        .unwrap();
    // The doctor on the store itself holds the same rule: a quiet log is covered.
    let local = sealtrail(&["doctor", "--data", "data"], dir.path());
    let table = String::from_utf8(local.stdout).unwrap();
    assert_eq!(row(&table, "checkpoints").0, "ok", "{table}");

    // acme is quiet by design: its silence since is no gap finding either.
    std::fs::write(
        dir.path().join("sealtrail.toml"),
        "[tenants.acme]\ngap_threshold_secs = 7200\n",
    )
    .unwrap();
    // The doctor reads serve's settings, config file included: by the default rules acme's
    // 20 quiet minutes are a time gap, by its own two hours they are not.
    let gaps_row = |extra: &[&str]| {
        let mut args = vec!["doctor", "--data", "data"];
        args.extend_from_slice(extra);
        let out = sealtrail(&args, dir.path());
        let table = String::from_utf8(out.stdout).unwrap();
        let (status, detail) = row(&table, "gaps");
        (status.to_string(), detail.to_string())
    };
    let (status, detail) = gaps_row(&[]);
    assert_eq!(status, "warn", "{detail}");
    assert!(detail.contains("acme: time_gap"), "{detail}");
    assert_eq!(gaps_row(&["--config", "sealtrail.toml"]).0, "ok");
    let server = Serve::start(
        dir.path(),
        &[
            "--config",
            "sealtrail.toml",
            "--checkpoint-interval-ms",
            "50",
        ],
    );
    let base = server.base.clone();

    // The server has verified its logs and signed its own start record; acme is quiet, its
    // latest checkpoint 20 minutes old and covering every entry.
    until(
        &base,
        "a verified chain and signed logs",
        |health, metrics| {
            health["checks"]["chain"] == "valid"
                && sample(
                    metrics,
                    "sealtrail_checkpoint_unsigned_entries{tenant=\"_system\"}",
                ) == Some(0.0)
                && sample(
                    metrics,
                    "sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"}",
                ) == Some(0.0)
                && sample(metrics, "sealtrail_checkpoint_age_seconds{tenant=\"acme\"}")
                    .is_some_and(|age| age > AGE.as_secs_f64() - 60.0)
        },
    )
    .await;
    let (code, table) = doctor(dir.path(), &base, &["--strict"]);
    assert_eq!(code, 0, "every check passes, none warns:\n{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("CHECK") && header.contains("STATUS") && header.contains("DETAIL"),
        "{table}"
    );
    for check in [
        "server",
        "store",
        "audit",
        "chain",
        "protections",
        "disk",
        "gaps",
        "spool",
        "index",
        "permissions",
        "checkpoints",
    ] {
        assert_eq!(row(&table, check).0, "ok", "{check}:\n{table}");
    }
    assert!(row(&table, "disk").1.contains("% used"), "{table}");

    // On the server's host, the doctor also says what the background verifier last found.
    let local = sealtrail(&["doctor", "--data", "data"], dir.path());
    let local_table = String::from_utf8(local.stdout).unwrap();
    let (status, detail) = row(&local_table, "chain");
    assert_eq!(status, "ok", "{local_table}");
    assert!(
        detail.contains("the server's latest background verification, at ")
            && detail.ends_with(": valid"),
        "{local_table}"
    );
    assert!(
        row(&table, "server")
            .1
            .contains(&format!("{base} answers; status healthy")),
        "{table}"
    );
    assert!(
        row(&table, "checkpoints").1.starts_with("2 logs"),
        "{table}"
    );
    assert!(table.ends_with("status: ok\n"), "{table}");

    // acme's key file goes away, so the server cannot sign it, and acme takes an event: the
    // log now grows past a checkpoint 20 minutes old.
    let origin = sealtrail_store::Location::new(&dir.path().join("data"), None)
        .open_reader()
        .unwrap()
        .tenant("acme")
        .unwrap()
        .unwrap()
        .origin;
    let keys = sealtrail_store::DataDir::new(dir.path().join("data")).keys();
    let (key, _) = sealtrail_server::keys::key_paths(&keys, &origin);
    std::fs::rename(&key, key.with_extension("away")).unwrap();
    let token = create_token(dir.path(), &[]);
    let created = post_event(
        &reqwest::Client::new(),
        &base,
        token["token"].as_str().unwrap(),
        &json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": "u-9"}}),
    )
    .await;
    assert_eq!(created.status(), 201);
    until(&base, "acme's unsigned entry", |_, metrics| {
        sample(
            metrics,
            "sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"}",
        ) == Some(1.0)
    })
    .await;
    let (code, table) = doctor(dir.path(), &base, &[]);
    assert_eq!(code, 0, "a warning alone does not fail:\n{table}");
    let (status, detail) = row(&table, "checkpoints");
    assert_eq!(status, "warn", "{table}");
    assert!(
        detail.contains("acme: 1 entry beyond a checkpoint"),
        "{table}"
    );
    assert!(!detail.contains("_system"), "{table}");
    assert!(
        table.contains("-> check the server's log for signing errors"),
        "{table}"
    );
    assert!(table.ends_with("status: warn\n"), "{table}");
    let (code, _) = doctor(dir.path(), &base, &["--strict"]);
    assert_eq!(code, 1, "--strict fails on the warning");

    // Signed again once the key is back, as the retries promise.
    std::fs::rename(key.with_extension("away"), &key).unwrap();
    until(&base, "acme signed again", |_, metrics| {
        sample(
            metrics,
            "sealtrail_checkpoint_unsigned_entries{tenant=\"acme\"}",
        ) == Some(0.0)
    })
    .await;
    let (code, table) = doctor(dir.path(), &base, &["--strict"]);
    assert_eq!(code, 0, "{table}");

    // A server that is gone: one failing row, exit 1.
    server.stop();
    let (code, table) = doctor(dir.path(), &base, &[]);
    assert_eq!(code, 1, "{table}");
    assert_eq!(row(&table, "server").0, "fail", "{table}");
    assert!(table.contains("-> start `sealtrail serve`"), "{table}");
    assert!(table.ends_with("status: fail\n"), "{table}");
}
