//! `sealtrail freeze` and `sealtrail unfreeze` as an operator runs them in an incident: on the
//! store, while `sealtrail serve` runs on it. The server refuses the tenant's ingest within
//! its re-check interval (`token_recheck_ms`, 1 s here as by default) and takes it again
//! after the unfreeze; on PostgreSQL every instance sharing the database does. And the
//! command's own refusals: `_system`, an unknown tenant, an empty reason, no store.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::serve::{Serve, create_token, post_batch, post_event};
use crate::support::{TestDatabase, json_stdout, sealtrail, stderr};

/// The interval the servers here re-read the frozen tenants after (their default).
const RECHECK: Duration = Duration::from_millis(1000);
/// What the machine may add to the interval before a request sees the change: a request in
/// flight, a loaded machine's scheduling. Generous, so that only a change that does not
/// arrive at all (or only after several intervals) fails the test.
const SLACK: Duration = Duration::from_secs(3);

fn event(n: u64) -> Value {
    json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": format!("u-{n}")}})
}

/// The actor the command line records: `cli:<user>`.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Sends an event every 20 ms until one gets `want` (201 or 503); how long that took, or a
/// failure once the interval and the slack have passed.
async fn until_status(client: &reqwest::Client, base: &str, token: &str, want: u16) -> Duration {
    let started = Instant::now();
    let mut n = 1000;
    loop {
        n += 1;
        let response = post_event(client, base, token, &event(n)).await;
        let status = response.status().as_u16();
        if status == want {
            if want == 503 {
                let error: Value = response.json().await.unwrap();
                assert_eq!(error["error"], "tenant_frozen", "{error}");
            }
            return started.elapsed();
        }
        assert!(
            matches!(status, 201 | 503),
            "{base}: unexpected {status}: {}",
            response.text().await.unwrap_or_default()
        );
        assert!(
            started.elapsed() <= RECHECK + SLACK,
            "{base} still answers {status}, {:?} after the change (the bound is {RECHECK:?})",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The entries of `_system` with `action`, read from the store (on a thread of its own: the
/// PostgreSQL driver blocks, which it may not do on an async test's runtime).
fn system_records(location: &sealtrail_store::Location, action: &str) -> Vec<Value> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let reader = location.open_reader().unwrap();
                let mut records = Vec::new();
                reader
                    .for_each_entry("_system", 0, u64::MAX, &mut |_, entry| {
                        let entry: Value = serde_json::from_slice(entry.unwrap()).unwrap();
                        if entry["action"] == action {
                            records.push(entry);
                        }
                    })
                    .unwrap();
                records
            })
            .join()
            .unwrap()
    })
}

/// `sealtrail freeze|unfreeze --tenant acme --reason REASON --json` with `store` (`--data
/// data` or `--database-url URL`) in `dir`; the printed JSON.
fn set_frozen(dir: &Path, store: &[&str], action: &str, reason: &str) -> Value {
    let mut args = vec![action, "--tenant", "acme", "--reason", reason, "--json"];
    args.extend_from_slice(store);
    json_stdout(&sealtrail(&args, dir))
}

#[tokio::test]
async fn a_freeze_on_the_store_stops_a_running_servers_ingest_until_the_unfreeze() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &["--token-recheck-ms", "1000"]);
    let token = create_token(dir.path(), &["--scope", "events:read"]);
    let token = token["token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    for n in 0..3 {
        let created = post_event(&client, &server.base, &token, &event(n)).await;
        assert_eq!(created.status(), 201);
    }
    let location = sealtrail_store::Location::new(&dir.path().join("data"), None);
    let size = || location.open_reader().unwrap().size("acme").unwrap();

    let reason = "chain violation at seq 2 (INC-7)";
    let frozen = set_frozen(dir.path(), &["--data", "data"], "freeze", reason);
    assert_eq!(frozen["frozen"], true);
    assert_eq!(frozen["changed"], true);
    assert_eq!(frozen["freeze"]["actor"], cli_actor().as_str());
    until_status(&client, &server.base, &token, 503).await;
    let before = size();
    let refused = post_event(&client, &server.base, &token, &event(1)).await;
    assert_eq!(refused.status(), 503);
    let error: Value = refused.json().await.unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(reason) && message.contains("sealtrail unfreeze --tenant acme"),
        "{message}"
    );
    let batch = post_batch(&client, &server.base, &token, &[event(2), event(3)]).await;
    assert_eq!(batch.status(), 503);
    assert_eq!(size(), before, "nothing of a refused request is kept");

    // The log is still read (once the index has every entry), and the admin API shows the
    // freeze.
    let page: Value = client
        .get(format!(
            "{}/v1/events?limit=1000&wait_for_seq={}",
            server.base,
            before - 1
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len() as u64, before);
    let admin = server
        .admin_token
        .clone()
        .expect("the first start prints one");
    let listing: Value = client
        .get(format!("{}/v1/admin/tenants", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acme = listing["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap();
    assert_eq!(acme["frozen"], true, "{listing}");
    assert_eq!(acme["freeze"]["reason"], reason, "{listing}");

    let lifted = set_frozen(dir.path(), &["--data", "data"], "unfreeze", "resolved");
    assert_eq!(
        (&lifted["frozen"], &lifted["changed"]),
        (&json!(false), &json!(true))
    );
    until_status(&client, &server.base, &token, 201).await;
    assert!(size() > before);

    let frozen = system_records(&location, "sealtrail.tenant.frozen");
    let unfrozen = system_records(&location, "sealtrail.tenant.unfrozen");
    assert_eq!((frozen.len(), unfrozen.len()), (1, 1));
    assert_eq!(frozen[0]["actor"]["id"], cli_actor().as_str());
    assert_eq!(frozen[0]["details"]["reason"], reason);
    assert_eq!(unfrozen[0]["details"]["reason"], "resolved");
    server.stop();
}

/// On PostgreSQL, a freeze on the database stops every instance sharing it, and an unfreeze
/// through one instance's admin API takes effect there at once and on the other within the
/// interval.
#[test]
fn on_postgres_every_instance_sees_the_freeze() {
    let Some(db) = TestDatabase::create("freeze on postgres") else {
        return;
    };
    // The database is created and dropped outside the runtime: its driver blocks.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(every_instance_sees_the_freeze(&db));
}

async fn every_instance_sees_the_freeze(db: &TestDatabase) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let store = ["--database-url", db.url.as_str()];
    let args = [
        "--database-url",
        db.url.as_str(),
        "--token-recheck-ms",
        "1000",
    ];
    let first = Serve::start(dirs[0].path(), &args);
    let second = Serve::start(dirs[1].path(), &args);
    let token = create_token(dirs[0].path(), &store);
    let token = token["token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    for server in [&first, &second] {
        let created = post_event(&client, &server.base, &token, &event(0)).await;
        assert_eq!(created.status(), 201);
    }

    let frozen = set_frozen(dirs[1].path(), &store, "freeze", "incident on postgres");
    assert_eq!(frozen["changed"], true);
    for server in [&first, &second] {
        until_status(&client, &server.base, &token, 503).await;
    }

    let admin = first
        .admin_token
        .clone()
        .expect("the first start prints one");
    let lifted = client
        .post(format!("{}/v1/admin/tenants/acme/unfreeze", first.base))
        .bearer_auth(&admin)
        .json(&json!({"reason": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 200);
    // At once on the instance that was asked.
    let created = post_event(&client, &first.base, &token, &event(1)).await;
    assert_eq!(created.status(), 201);
    until_status(&client, &second.base, &token, 201).await;
    let location = sealtrail_store::Location::new(dirs[0].path(), Some(&db.url));
    let unfrozen = system_records(&location, "sealtrail.tenant.unfrozen");
    assert_eq!(unfrozen.len(), 1);
    assert!(
        unfrozen[0]["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("tok_")
    );
    first.stop();
    second.stop();
}

#[test]
fn the_commands_refuse_what_cannot_be_frozen_and_say_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    // A store with the tenant acme, made as an operator makes one.
    let server = Serve::start(dir.path(), &[]);
    create_token(dir.path(), &[]);
    server.stop();
    let run = |args: &[&str]| sealtrail(args, dir.path());

    for (args, said) in [
        (
            vec!["freeze", "--tenant", "_system", "--reason", "r"],
            "the _system log cannot be frozen",
        ),
        (
            vec!["unfreeze", "--tenant", "nobody", "--reason", "r"],
            "there is no tenant \"nobody\"",
        ),
        (
            vec!["freeze", "--tenant", "acme", "--reason", " "],
            "--reason: a reason is required",
        ),
        (
            vec![
                "freeze",
                "--tenant",
                "acme",
                "--reason",
                "r",
                "--data",
                "elsewhere",
            ],
            "no sealtrail store at",
        ),
    ] {
        let mut args = args;
        if !args.contains(&"--data") {
            args.extend(["--data", "data"]);
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
    }
    let missing_reason = run(&["freeze", "--tenant", "acme", "--data", "data"]);
    assert_eq!(missing_reason.status.code(), Some(2));
    assert!(
        !dir.path().join("elsewhere").exists(),
        "no store is created"
    );

    let data = ["--data", "data"];
    let frozen = set_frozen(dir.path(), &data, "freeze", "first");
    assert_eq!(frozen["freeze"]["reason"], "first");
    let again = set_frozen(dir.path(), &data, "freeze", "second");
    assert_eq!(
        (&again["changed"], &again["freeze"]["reason"]),
        (&json!(false), &json!("first"))
    );
    let plain = run(&[
        "freeze", "--tenant", "acme", "--reason", "third", "--data", "data",
    ]);
    assert!(plain.status.success());
    assert!(
        stderr(&plain).contains("already frozen"),
        "{}",
        stderr(&plain)
    );
    assert!(stderr(&plain).contains("first"), "{}", stderr(&plain));
    let lifted = run(&[
        "unfreeze", "--tenant", "acme", "--reason", "done", "--data", "data",
    ]);
    assert!(lifted.status.success());
    assert!(
        stderr(&lifted).contains("unfroze tenant acme"),
        "{}",
        stderr(&lifted)
    );
    let not_frozen = set_frozen(dir.path(), &data, "unfreeze", "done");
    assert_eq!(
        (
            &not_frozen["frozen"],
            &not_frozen["changed"],
            &not_frozen["freeze"]
        ),
        (&json!(false), &json!(false), &Value::Null)
    );
    // Only the two changes are recorded.
    let location = sealtrail_store::Location::new(&dir.path().join("data"), None);
    assert_eq!(
        system_records(&location, "sealtrail.tenant.frozen").len(),
        1
    );
    assert_eq!(
        system_records(&location, "sealtrail.tenant.unfrozen").len(),
        1
    );
}
