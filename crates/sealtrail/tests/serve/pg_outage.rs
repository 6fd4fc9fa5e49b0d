//! A PostgreSQL outage, for real: a private PostgreSQL instance (initdb, pg_ctl) that the test
//! stops and starts under a running `sealtrail serve`. While it is down, events of a spooling
//! tenant are answered `202 spooled` and kept in the local spool, a tenant configured with
//! `on_store_failure = "reject"` gets `503`, and `/health` and `/metrics` show the spool;
//! once it is back, the spool drains in order into the log with nothing lost or duplicated —
//! also across a crash of `sealtrail serve` while events wait in the spool — and each drain is
//! recorded in `_system` (`sealtrail.spool.drained`), which the gap report puts a gap of the
//! outage down to.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::disk::{Tmpfs, fill};
use crate::support::sealtrail;
use crate::support::serve::Serve;
use sealtrail_store::DataDir;
use serde_json::{Value, json};

/// PostgreSQL's server programs (initdb, pg_ctl), or why they cannot be used here.
fn postgres_bin_dir() -> Result<PathBuf, String> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        .ok_or_else(|| {
            "PostgreSQL's initdb and pg_ctl were not found (install the postgresql package)"
                .to_string()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL instance of this test's own, in a temporary directory, on a free port.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    /// Initialises it, or says why it cannot (a skip on a user's machine, a failure in CI).
    fn create() -> Option<PrivatePostgres> {
        let bin = match postgres_bin_dir() {
            Ok(bin) => bin,
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI must run the outage test: {why}"
                );
                eprintln!("skipped the PostgreSQL outage test: {why}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let as_root = is_root();
        if as_root {
            // PostgreSQL refuses to run as root: the instance belongs to the postgres user.
            let chown = Command::new("chown")
                .args(["postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            bin,
            dir,
            port,
            as_root,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
        );
        pg.start();
        Some(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops it the way an outage would: connections are cut.
    fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let _ = command
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts serve on the database, with the test's config file.
fn serve(dir: &Path, url: &str) -> Serve {
    Serve::start(dir, &["--database-url", url, "--config", "sealtrail.toml"])
}

fn token(dir: &Path, url: &str, tenant: &str) -> String {
    let created = sealtrail(
        &[
            "tokens",
            "create",
            "--data",
            "data",
            "--database-url",
            url,
            "--tenant",
            tenant,
            "--scope",
            "events:write",
            "--scope",
            "events:read",
            "--json",
        ],
        dir,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    created["token"].as_str().unwrap().to_string()
}

fn event(n: usize, phase: &str) -> Value {
    json!({
        "action": "patient.record.read",
        "outcome": "success",
        "actor": {"id": format!("u-{n}")},
        "details": {"phase": phase, "n": n},
    })
}

/// What a client was told about one event.
#[derive(Debug, Clone)]
struct Sent {
    id: String,
    /// Set for `201`: the seq the receipt promised.
    seq: Option<u64>,
    phase: String,
    n: usize,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, token: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn batch(&self, token: &str, events: &[Value]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/events/batch", self.base))
            .bearer_auth(token)
            .json(&events)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn health(&self) -> Value {
        serde_json::from_str(&self.get("/health").await.1).unwrap()
    }

    /// Waits until the spool is empty and the instance healthy again.
    async fn until_drained(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.health().await;
            if health["checks"]["spool"]["depth"] == 0 && health["checks"]["store"] == "ok" {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "the spool did not drain: {health:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every entry of a tenant's log, in seq order, as (seq, id, details).
fn log_of(url: &str, tenant: &str) -> Vec<(u64, String, Value)> {
    // The synchronous client runs its own runtime: keep it off the test's.
    let (url, tenant) = (url.to_string(), tenant.to_string());
    std::thread::spawn(move || read_log(&url, &tenant))
        .join()
        .unwrap()
}

fn read_log(url: &str, tenant: &str) -> Vec<(u64, String, Value)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query(
            "SELECT seq, id, entry FROM entries WHERE tenant = $1 ORDER BY seq",
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|row| {
            let entry: Vec<u8> = row.get(2);
            let entry: Value = serde_json::from_slice(&entry).unwrap();
            (
                row.get::<_, i64>(0) as u64,
                row.get(1),
                entry["details"].clone(),
            )
        })
        .collect()
}

/// The details of each `sealtrail.spool.drained` record in the `_system` log, in order.
fn drained_records(url: &str) -> Vec<Value> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT entry FROM entries WHERE tenant = '_system' ORDER BY seq",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| serde_json::from_slice::<Value>(&row.get::<_, Vec<u8>>(0)).unwrap())
            .filter(|entry| entry["action"] == "sealtrail.spool.drained")
            .map(|entry| entry["details"].clone())
            .collect()
    })
    .join()
    .unwrap()
}

/// Checks the log against what clients were told: every 201 at its seq, every 202 exactly
/// once, in the order it was accepted, after everything acknowledged before it.
fn check_log(log: &[(u64, String, Value)], sent: &[Sent]) {
    for (i, (seq, _, _)) in log.iter().enumerate() {
        assert_eq!(*seq, i as u64, "seqs are consecutive from 0");
    }
    let mut position = std::collections::HashMap::new();
    for (seq, id, _) in log {
        assert!(
            position.insert(id.clone(), *seq).is_none(),
            "id {id} appears twice in the log"
        );
    }
    let mut last = None;
    for s in sent {
        let seq = *position
            .get(&s.id)
            .unwrap_or_else(|| panic!("{s:?} was acknowledged but is not in the log"));
        if let Some(promised) = s.seq {
            assert_eq!(seq, promised, "{s:?} is at the seq its receipt gave");
        }
        let details = &log[seq as usize].2;
        assert_eq!(details["phase"], s.phase.as_str(), "{s:?}");
        assert_eq!(details["n"], s.n, "{s:?}");
        if let Some(last) = last {
            assert!(seq > last, "{s:?} was accepted after the previous event");
        }
        last = Some(seq);
    }
}

fn verify(dir: &Path, url: &str) -> Value {
    let out = sealtrail(
        &[
            "verify",
            "--data",
            "data",
            "--database-url",
            url,
            "--tenant",
            "acme",
            "--json",
        ],
        dir,
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    report
}

#[tokio::test]
async fn an_outage_spools_events_and_the_spool_drains_in_order() {
    let Some(pg) = PrivatePostgres::create() else {
        return;
    };
    let url = pg.url();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("sealtrail.toml"),
        "checkpoint_interval_ms = 200\n\n[tenants.strict]\non_store_failure = \"reject\"\n",
    )
    .unwrap();
    let server = serve(dir, &url);
    let acme = token(dir, &url, "acme");
    let strict = token(dir, &url, "strict");
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let mut sent: Vec<Sent> = Vec::new();

    // Before: committed, 201.
    for n in 0..5 {
        let (status, body) = client.post(&acme, &event(n, "before"), None).await;
        assert_eq!(status, 201, "{body}");
        sent.push(Sent {
            id: body["id"].as_str().unwrap().into(),
            seq: body["seq"].as_u64(),
            phase: "before".into(),
            n,
        });
    }
    let (status, _) = client.post(&strict, &event(0, "before"), None).await;
    assert_eq!(status, 201);
    assert_eq!(client.health().await["status"], "healthy");

    // The database goes away.
    pg.stop();
    let mut spooled_ids = Vec::new();
    for n in 0..6 {
        let key = format!("outage-{n}");
        let (status, body) = client.post(&acme, &event(n, "outage"), Some(&key)).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "spooled", "{body}");
        assert!(
            body["seq"].is_null(),
            "a spooled event has no seq yet: {body}"
        );
        assert!(body["received_at"].is_string(), "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        spooled_ids.push(id.clone());
        sent.push(Sent {
            id,
            seq: None,
            phase: "outage".into(),
            n,
        });
    }
    // A retry with the same key while the event waits gets the same answer, not a copy.
    let (status, body) = client
        .post(&acme, &event(2, "outage"), Some("outage-2"))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], spooled_ids[2].as_str());
    // A batch: each valid event spooled, an invalid one refused on its own.
    let mut batch: Vec<Value> = (6..9).map(|n| event(n, "outage")).collect();
    batch.insert(
        1,
        json!({"action": "x", "outcome": "maybe", "actor": {"id": "u"}}),
    );
    let (status, body) = client.batch(&acme, &batch).await;
    assert_eq!(status, 200, "{body}");
    let results = body.as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[1]["status"], 422, "{body}");
    assert_eq!(results[1]["error"]["field"], "[1].outcome", "{body}");
    for (result, n) in [&results[0], &results[2], &results[3]].into_iter().zip(6..) {
        assert_eq!(result["status"], 202, "{body}");
        sent.push(Sent {
            id: result["id"].as_str().unwrap().into(),
            seq: None,
            phase: "outage".into(),
            n,
        });
    }
    // The tenant that fails closed is refused, and nothing of it is kept.
    let (status, body) = client.post(&strict, &event(1, "outage"), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "not_durable", "{body}");

    // Health: degraded, with the spool's depth and the oldest event's age; metrics agree.
    let health = client.health().await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["checks"]["store"], "failing", "{health:#}");
    assert_eq!(health["checks"]["spool"]["depth"], 9, "{health:#}");
    let age = health["checks"]["spool"]["oldest_age_seconds"]
        .as_f64()
        .unwrap();
    assert!(age > 0.0 && age < 600.0, "{health:#}");
    let (_, metrics) = client.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "sealtrail_spool_depth 9"),
        "{metrics}"
    );
    let age_line = metrics
        .lines()
        .find(|l| l.starts_with("sealtrail_spool_oldest_age_seconds "))
        .unwrap_or_else(|| panic!("no spool age gauge: {metrics}"));
    let age: f64 = age_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(age > 0.0, "{age_line}");
    assert!(
        std::fs::metadata(DataDir::new(dir.join("data")).spool().join("events.spool"))
            .unwrap()
            .len()
            > 0
    );

    // The database is back: the spool drains, in order, and new events follow them.
    pg.start();
    let health = client.until_drained().await;
    assert_eq!(health["status"], "healthy", "{health:#}");
    for n in 0..3 {
        let (status, body) = client.post(&acme, &event(n, "after"), None).await;
        assert_eq!(status, 201, "{body}");
        sent.push(Sent {
            id: body["id"].as_str().unwrap().into(),
            seq: body["seq"].as_u64(),
            phase: "after".into(),
            n,
        });
    }
    let log = log_of(&url, "acme");
    assert_eq!(log.len(), 5 + 9 + 3, "nothing lost, nothing twice");
    check_log(&log, &sent);
    let strict_log = log_of(&url, "strict");
    assert_eq!(strict_log.len(), 1, "the refused event was not kept");
    let (status, event_body) = client
        .http
        .get(format!("{}/v1/events/{}", client.base, spooled_ids[0]))
        .bearer_auth(&acme)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(
        status, 200,
        "a drained event is found by the id it was given"
    );
    drop(event_body);
    server.kill();

    // A crash while events wait in the spool: they are drained on the next start.
    let server = serve(dir, &url);
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    // An instance recognises a token during an outage once it has checked it with the store.
    let (status, body) = client.post(&acme, &event(0, "crash"), None).await;
    assert_eq!(status, 201, "{body}");
    sent.push(Sent {
        id: body["id"].as_str().unwrap().into(),
        seq: body["seq"].as_u64(),
        phase: "crash".into(),
        n: 0,
    });
    pg.stop();
    for n in 1..5 {
        let (status, body) = client.post(&acme, &event(n, "crash"), None).await;
        assert_eq!(status, 202, "{body}");
        sent.push(Sent {
            id: body["id"].as_str().unwrap().into(),
            seq: None,
            phase: "crash".into(),
            n,
        });
    }
    server.kill();
    pg.start();
    let server = serve(dir, &url);
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    client.until_drained().await;
    let log = log_of(&url, "acme");
    assert_eq!(log.len(), 5 + 9 + 3 + 5);
    check_log(&log, &sent);
    server.kill();

    let report = verify(dir, &url);
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["rows_checked"], 22);

    // Each drain is on record once: the outage's nine events, then the four the crashed
    // server had spooled, drained by the next start.
    let drains = drained_records(&url);
    assert_eq!(drains.len(), 2, "{drains:#?}");
    assert_eq!(drains[0]["events"], 9, "{drains:#?}");
    assert_eq!(drains[0]["tenants"], json!({"acme": 9}));
    assert_eq!(drains[1]["events"], 4, "{drains:#?}");
    assert_eq!(drains[1]["tenants"], json!({"acme": 4}));
}

/// The spool is only as good as the disk under it: with the database down and the data
/// directory full, an event is refused with `507` — never a `202` for something not durable —
/// and once space is freed the next one is spooled again, without a restart.
#[tokio::test]
async fn a_full_disk_under_the_spool_answers_507_and_recovers_once_space_is_freed() {
    let test = "a_full_disk_under_the_spool_answers_507_and_recovers_once_space_is_freed";
    let Some(pg) = PrivatePostgres::create() else {
        return;
    };
    let url = pg.url();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(test, &data, "8m") else {
        return;
    };
    std::fs::write(dir.join("sealtrail.toml"), "checkpoint_interval_ms = 200\n").unwrap();
    let server = serve(dir, &url);
    let acme = token(dir, &url, "acme");
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let mut sent = Vec::new();
    let (status, body) = client.post(&acme, &event(0, "before"), None).await;
    assert_eq!(status, 201, "{body}");
    sent.push(Sent {
        id: body["id"].as_str().unwrap().into(),
        seq: body["seq"].as_u64(),
        phase: "before".into(),
        n: 0,
    });

    pg.stop();
    let filler = data.join("filler");
    let filled = fill(&filler);
    for n in 0..3 {
        let (status, body) = client
            .post(&acme, &event(n, "full"), Some(&format!("full-{n}")))
            .await;
        assert_eq!(status, 507, "{body}");
        assert_eq!(body["error"], "storage_full", "{body}");
        assert_eq!(body["rule"], "storage_full", "{body}");
    }
    let (status, body) = client
        .batch(&acme, &[event(3, "full"), event(4, "full")])
        .await;
    assert_eq!(status, 507, "a batch is refused whole: {body}");
    let health = client.health().await;
    assert_eq!(
        health["status"], "failing",
        "nothing takes events: {health:#}"
    );
    assert_eq!(health["checks"]["spool"]["depth"], 0, "{health:#}");

    std::fs::remove_file(&filler).unwrap();
    // The refused event, sent again with its key once there is space, is spooled.
    let (status, body) = client.post(&acme, &event(1, "full"), Some("full-1")).await;
    assert_eq!(status, 202, "{body}");
    sent.push(Sent {
        id: body["id"].as_str().unwrap().into(),
        seq: None,
        phase: "full".into(),
        n: 1,
    });
    assert_eq!(client.health().await["checks"]["spool"]["depth"], 1);

    pg.start();
    client.until_drained().await;
    let log = log_of(&url, "acme");
    assert_eq!(
        log.len(),
        2,
        "only the acknowledged events are in the log ({filled} bytes filled the disk)"
    );
    check_log(&log, &sent);
    server.stop();
    let report = verify(dir, &url);
    assert_eq!(report["valid"], true, "{report:#}");
}

/// An idempotency key names one event during an outage too. While the database is down, a
/// different event under a key a spooled event holds is refused (`422`, naming the spooled
/// one), as the log would refuse it. A different event under a key only the log holds cannot
/// be checked then: it is acknowledged (`202`) and, once the database is back, enters the log
/// under the id its `202` gave — never dropped — while the key keeps naming the first event.
#[tokio::test]
async fn an_idempotency_key_reused_during_an_outage_is_refused_or_kept_never_dropped() {
    let Some(pg) = PrivatePostgres::create() else {
        return;
    };
    let url = pg.url();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("sealtrail.toml"), "checkpoint_interval_ms = 200\n").unwrap();
    let server = serve(dir, &url);
    let acme = token(dir, &url, "acme");
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (read, deletion) = (event(0, "read"), event(1, "delete"));
    let (status, committed) = client.post(&acme, &read, Some("in-log")).await;
    assert_eq!(status, 201, "{committed}");

    pg.stop();
    let (status, spooled) = client.post(&acme, &read, Some("in-spool")).await;
    assert_eq!(status, 202, "{spooled}");
    let waiting = json!({"id": spooled["id"], "received_at": spooled["received_at"]});
    let (status, refused) = client.post(&acme, &deletion, Some("in-spool")).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["rule"], "idempotency_conflict", "{refused}");
    assert_eq!(refused["field"], "Idempotency-Key", "{refused}");
    assert_eq!(refused["original"], waiting, "{refused}");
    let keyed = |event: &Value, key: &str| {
        let mut event = event.clone();
        event["idempotency_key"] = key.into();
        event
    };
    let (status, results) = client
        .batch(
            &acme,
            &[keyed(&read, "in-spool"), keyed(&deletion, "in-spool")],
        )
        .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["status"], 202, "{results}");
    assert_eq!(results[0]["id"], spooled["id"], "{results}");
    assert_eq!(results[1]["status"], 422, "{results}");
    assert_eq!(results[1]["error"]["original"], waiting, "{results}");
    // The log cannot be asked about this key now: the deletion is acknowledged.
    let (status, kept) = client.post(&acme, &deletion, Some("in-log")).await;
    assert_eq!(status, 202, "{kept}");

    pg.start();
    client.until_drained().await;
    let log = log_of(&url, "acme");
    let ids: Vec<&str> = log.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            committed["id"].as_str().unwrap(),
            spooled["id"].as_str().unwrap(),
            kept["id"].as_str().unwrap(),
        ],
        "every acknowledged event, once, in order; nothing refused"
    );
    assert_eq!(log[2].2, deletion["details"], "the deletion is in the log");
    // Once in the log, the spooled event is named by its receipt.
    let (status, refused) = client.post(&acme, &deletion, Some("in-spool")).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["original"]["id"], spooled["id"], "{refused}");
    assert_eq!(refused["original"]["seq"], 1, "{refused}");
    let (status, again) = client.post(&acme, &read, Some("in-log")).await;
    assert_eq!((status, &again), (200, &committed));
    server.stop();
    let report = verify(dir, &url);
    assert_eq!(report["valid"], true, "{report:#}");
}

/// A tenant set to refuse events while the store is down (`on_store_failure = "reject"`)
/// loses what its producer numbered during an outage, while another tenant's events are
/// spooled. The drain is recorded in `_system`, and the gap report puts the refusing tenant's
/// sequence gap down to the store outage, with the events spooled meanwhile.
#[tokio::test]
async fn the_gap_report_puts_a_gap_during_an_outage_down_to_the_store_outage() {
    let Some(pg) = PrivatePostgres::create() else {
        return;
    };
    let url = pg.url();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("sealtrail.toml"),
        "checkpoint_interval_ms = 200\n\n[tenants.strict]\non_store_failure = \"reject\"\n",
    )
    .unwrap();
    let from = sealtrail_server::clock::Clock::system().now().unix_micros() - 3_600_000_000;
    let server = serve(dir, &url);
    let acme = token(dir, &url, "acme");
    let strict = token(dir, &url, "strict");
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let numbered = |seq: u64| {
        json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": "dr-lee"},
            "source": {"app": "pharmacy", "instance": "till-1", "seq": seq}})
    };
    for seq in 0..3 {
        let (status, body) = client.post(&strict, &numbered(seq), None).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = client.post(&acme, &event(0, "before"), None).await;
    assert_eq!(status, 201, "{body}");

    pg.stop();
    let mut accepted = Vec::new();
    for n in 0..3 {
        let (status, body) = client.post(&acme, &event(n, "outage"), None).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(body["received_at"].as_str().unwrap().to_string());
    }
    for seq in 3..5 {
        let (status, body) = client.post(&strict, &numbered(seq), None).await;
        assert_eq!(status, 503, "{body}");
    }
    pg.start();
    client.until_drained().await;
    let (status, body) = client.post(&strict, &numbered(5), None).await;
    assert_eq!(status, 201, "{body}");
    server.stop();

    let drains = drained_records(&url);
    assert_eq!(drains.len(), 1, "{drains:#?}");
    let drain = &drains[0];
    assert_eq!(drain["events"], 3, "{drain:#}");
    assert_eq!(drain["tenants"], json!({"acme": 3}));
    assert_eq!(drain["first_spooled_at"], accepted[0].as_str());
    assert_eq!(drain["last_spooled_at"], accepted[2].as_str());
    assert!(drain["hostname"].as_str().is_some_and(|h| !h.is_empty()));

    let stamp = |micros: i64| {
        sealtrail_core::Timestamp::from_unix_micros(micros)
            .unwrap()
            .to_rfc3339()
    };
    let (from, to) = (
        stamp(from),
        stamp(sealtrail_server::clock::Clock::system().now().unix_micros() + 60_000_000),
    );
    let report = |tenant: &str, format: &str| {
        sealtrail(
            &[
                "gaps",
                "report",
                "--data",
                "data",
                "--database-url",
                &url,
                "--tenant",
                tenant,
                "--from",
                &from,
                "--to",
                &to,
                "--format",
                format,
            ],
            dir,
        )
    };
    let out = report("strict", "json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gaps = json["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{json:#}");
    assert_eq!(gaps[0]["kind"], "producer_seq_gap");
    assert_eq!(
        gaps[0]["recovery"]["lost_ranges"],
        json!([{"from": 3, "to": 4}])
    );
    let outage = &gaps[0]["cause"]["store_outage"];
    assert_eq!(outage["state"], "spooled", "{json:#}");
    let detail = outage["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("store outage, 3 events spooled and committed later: "),
        "{detail}"
    );
    assert!(detail.contains("(none of them strict's)"), "{detail}");
    assert!(
        detail.contains(&format!("accepted from {} to {}", accepted[0], accepted[2])),
        "{detail}"
    );
    assert_eq!(gaps[0]["cause"]["server"]["state"], "not_restarted");
    let md = String::from_utf8(report("strict", "md").stdout).unwrap();
    assert!(
        md.contains("  - store outage: store outage, 3 events spooled and committed later: "),
        "{md}"
    );
    // The spooling tenant's events fill the outage: no gap there.
    let out = report("acme", "json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
