//! Several `sealtrail serve` processes on one PostgreSQL database, as behind a load balancer:
//! concurrent single events and batches sent to both, then every acknowledged receipt checked
//! against the log and the whole log verified with `sealtrail verify --database-url`.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sealtrail_core::leaf_hash;
use sealtrail_core::note::SignerKey;
use sealtrail_store::Location;
use serde_json::{Value, json};

use crate::support::serve::{post_batch, post_event};
use crate::support::{sealtrail_here as sealtrail, succeed};

struct Server {
    child: Child,
    base: String,
    /// Whether this start printed the first admin token.
    printed_admin_token: bool,
}

impl Server {
    fn start(url: &str, data: &Path, root_key: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .arg("--data")
            .arg(data)
            .arg("--signing-key")
            .arg(root_key)
            .args([
                "--checkpoint-interval-ms",
                "25",
                "--verify-interval-secs",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut base = None;
        let mut printed_admin_token = false;
        for line in lines {
            let line = line.unwrap();
            printed_admin_token |= line.starts_with("admin token (shown once");
            if line.starts_with("sealtrail listening on ") {
                base = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .map(str::to_string);
                break;
            }
        }
        Server {
            child,
            base: base.expect("serve prints the address it listens on"),
            printed_admin_token,
        }
    }

    fn stop(mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An acknowledged entry: its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Ack {
    seq: u64,
    id: String,
    event_hash: String,
}

fn ack(value: &Value) -> Ack {
    Ack {
        seq: value["seq"].as_u64().expect("a seq"),
        id: value["id"].as_str().expect("an id").to_string(),
        event_hash: value["event_hash"]
            .as_str()
            .expect("an event_hash")
            .to_string(),
    }
}

fn event(instance: usize, client: usize, n: usize) -> Value {
    json!({
        "action": "patient.record.read",
        "outcome": "success",
        "actor": {"id": format!("clinician-{client}"), "type": "user"},
        "targets": [{"type": "patient", "id": format!("p-{instance}-{n}")}],
    })
}

/// Generates the root key every instance derives its logs' signing keys from, in
/// `dir/root-key/`; its path.
fn root_key(dir: &Path) -> PathBuf {
    let keys = dir.join("root-key");
    succeed(&sealtrail(&[
        "keys",
        "generate",
        "--name",
        "sealtrail-root",
        "--out",
        keys.to_str().unwrap(),
    ]));
    keys.join("sealtrail-root.key")
}

/// A token of the tenant `acme` with `events:write` and `scope`, created with the tokens CLI
/// on the database while the servers run (creating `acme` if it is new); the JSON printed.
fn create_acme_token(db_url: &str, data: &Path, root_key: &Path, scope: &str) -> Value {
    let created = succeed(&sealtrail(&[
        "tokens",
        "create",
        "--database-url",
        db_url,
        "--data",
        data.to_str().unwrap(),
        "--signing-key",
        root_key.to_str().unwrap(),
        "--tenant",
        "acme",
        "--scope",
        "events:write",
        "--scope",
        scope,
        "--json",
    ]));
    serde_json::from_str(&created).unwrap()
}

#[test]
fn two_servers_on_one_database_keep_one_log() {
    let Some(db) = crate::support::TestDatabase::create("two_servers_on_one_database_keep_one_log")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root_path = root_key(dir.path());
    let root = SignerKey::parse(&std::fs::read_to_string(&root_path).unwrap()).unwrap();

    let migrated = succeed(&sealtrail(&["migrate", "--database-url", &db.url]));
    assert!(migrated.contains("to"), "{migrated}");

    let data = [dir.path().join("one"), dir.path().join("two")];
    // Both start at once on the new database: one of them creates the first admin token.
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = data
            .iter()
            .map(|d| scope.spawn(|| Server::start(&db.url, d, &root_path)))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert_eq!(
        servers.iter().filter(|s| s.printed_admin_token).count(),
        1,
        "exactly one instance creates the first admin token"
    );

    // The tokens CLI works on the database while both servers run.
    let created = create_acme_token(&db.url, &data[0], &root_path, "log:read");
    let token = created["token"].as_str().unwrap().to_string();
    let reading = create_acme_token(&db.url, &data[0], &root_path, "events:read");
    let read_token = reading["token"].as_str().unwrap().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let acks: Vec<Ack> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for (instance, base) in bases.iter().enumerate() {
            for worker in 0..6 {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                tasks.push(tokio::spawn(async move {
                    let mut acks = Vec::new();
                    for round in 0..20 {
                        let n = worker * 1000 + round * 100;
                        if (worker + round) % 4 == 0 {
                            let batch: Vec<Value> =
                                (n..n + 25).map(|n| event(instance, worker, n)).collect();
                            let response = post_batch(&client, &base, &token, &batch).await;
                            assert!(response.status().is_success(), "{}", response.status());
                            let body: Value = response.json().await.unwrap();
                            let results = body.as_array().expect("per-event results");
                            assert_eq!(results.len(), 25);
                            for result in results {
                                assert_eq!(result["status"], 201, "{result}");
                                acks.push(ack(result));
                            }
                        } else {
                            let event = event(instance, worker, n);
                            let response = post_event(&client, &base, &token, &event).await;
                            assert_eq!(response.status(), 201);
                            acks.push(ack(&response.json().await.unwrap()));
                        }
                    }
                    acks
                }));
            }
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        // Instances with a derived key have no key file; each still serves the log's key.
        let origin = "sealtrail.local/acme";
        let derived = root.derive(origin).unwrap().verifier().to_string();
        for base in &bases {
            let response = client_key(base, &token).await;
            assert_eq!(response.trim(), derived, "{base}");
        }
        // Each instance's query index follows the one log, whichever instance wrote each
        // entry (its followers take only its own writer's entries from memory, and the other's
        // from the database): paging through acme's events finds every seq once.
        let last = all.iter().map(|a| a.seq).max().unwrap();
        for base in &bases {
            let mut seqs = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec![
                    ("wait_for_seq", last.to_string()),
                    ("limit", "1000".to_string()),
                ];
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.clone()));
                }
                let response = client
                    .get(format!("{base}/v1/events"))
                    .query(&query)
                    .bearer_auth(&read_token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{base}");
                let page: Value = response.json().await.unwrap();
                for event in page["events"].as_array().unwrap() {
                    seqs.push(event["seq"].as_u64().unwrap());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            let missing: Vec<u64> = (0..=last).filter(|seq| !seqs.contains(seq)).collect();
            assert!(missing.is_empty(), "{base}'s index misses seqs {missing:?}");
            assert_eq!(seqs, (0..=last).collect::<Vec<u64>>(), "{base}");
        }
        all
    });
    for server in servers {
        server.stop();
    }

    // Every acknowledged entry is in the log at its receipt's seq, exactly once, and the seqs
    // leave no gap.
    let store = Location::new(&data[0], Some(&db.url))
        .open_reader()
        .unwrap();
    let size = store.size("acme").unwrap();
    assert_eq!(
        size,
        acks.len() as u64,
        "entries in the log = acknowledgements"
    );
    let distinct: HashSet<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(distinct.len(), acks.len(), "no seq acknowledged twice");
    assert!(acks.iter().all(|a| a.seq < size));
    for ack in &acks {
        let bytes = store.entry("acme", ack.seq).unwrap().expect("the entry");
        assert_eq!(
            leaf_hash(&bytes).to_hex(),
            ack.event_hash,
            "seq {}",
            ack.seq
        );
        assert_eq!(
            store.entry_id("acme", ack.seq).unwrap().as_deref(),
            Some(ack.id.as_str())
        );
    }
    // Both servers signed checkpoints of the one log (a final one each at SIGTERM at least).
    let latest = store.latest_checkpoint("acme").unwrap().unwrap();
    assert_eq!(latest.size, size);

    // The whole log verifies end to end with keys derived from the root key the auditor holds,
    // not with anything read from the database.
    let mut args: Vec<String> = [
        "verify",
        "--database-url",
        &db.url,
        "--data",
        data[1].to_str().unwrap(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    for tenant in store.tenants().unwrap() {
        args.push("--key".into());
        args.push(root.derive(&tenant.origin).unwrap().verifier().to_string());
    }
    let out = sealtrail(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["tenants"]["acme"]["valid"], true);
    assert_eq!(report["tenants"]["acme"]["rows_checked"], size);
    assert_eq!(report["tenants"]["acme"]["checkpoint"]["size"], size);
    assert_eq!(
        report["tenants"]["acme"]["store_protections"]["intact"],
        true
    );
    assert_eq!(report["tenants"]["_system"]["valid"], true);

    // The store records each log's verifier key, and it is the derived one.
    let shown = succeed(&sealtrail(&["keys", "show", "--database-url", &db.url]));
    let acme = store.tenant("acme").unwrap().unwrap();
    let acme_key = root.derive(&acme.origin).unwrap().verifier().to_string();
    assert!(shown.lines().any(|line| line == acme_key), "{shown}");
    // Tokens created on one instance are listed from the shared database.
    let listed = succeed(&sealtrail(&[
        "tokens",
        "list",
        "--database-url",
        &db.url,
        "--json",
    ]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == created["id"] && t["tenant"] == "acme"),
        "{listed:#}"
    );
}

/// `GET /v1/log/key` as text.
async fn client_key(base: &str, token: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/log/key"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Read-your-writes across instances: a seq committed through one instance is a seq of the log
/// for the other too, so `wait_for_seq` through the other waits for its index and answers with
/// the event; a seq beyond the log is still refused at once.
#[test]
fn wait_for_seq_through_one_instance_sees_writes_through_the_other() {
    let Some(db) = crate::support::TestDatabase::create(
        "wait_for_seq_through_one_instance_sees_writes_through_the_other",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root_path = root_key(dir.path());
    succeed(&sealtrail(&["migrate", "--database-url", &db.url]));
    let (writer, reader) = (dir.path().join("writer"), dir.path().join("reader"));
    let writer = Server::start(&db.url, &writer, &root_path);
    let reader = Server::start(&db.url, &reader, &root_path);
    let created = create_acme_token(&db.url, &dir.path().join("cli"), &root_path, "events:read");
    let token = created["token"].as_str().unwrap().to_string();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        // Several events, so that the seq asked for is not simply the first.
        let mut last = None;
        for n in 0..3 {
            let response = post_event(&client, &writer.base, &token, &event(0, 0, n)).await;
            assert_eq!(response.status(), 201);
            last = Some(ack(&response.json().await.unwrap()));
        }
        let last = last.unwrap();
        assert_eq!(last.seq, 2);

        // The reader instance never wrote to this log; its own writer knows nothing of seq 2.
        let response = client
            .get(format!(
                "{}/v1/events?wait_for_seq={}&order=desc&limit=1",
                reader.base, last.seq
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let page: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["events"][0]["id"], last.id.as_str(), "{page}");
        assert_eq!(page["events"][0]["seq"], last.seq, "{page}");
        assert_eq!(page["events"][0]["event_hash"], last.event_hash.as_str());

        // A seq the log does not hold is refused at once, by either instance.
        for base in [&reader.base, &writer.base] {
            let response = client
                .get(format!("{base}/v1/events?wait_for_seq=3"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["field"], "wait_for_seq", "{error}");
            assert_eq!(error["rule"], "range", "{error}");
        }
    });
    writer.stop();
    reader.stop();
}
