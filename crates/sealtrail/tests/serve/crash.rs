//! Faults a real `sealtrail serve` must come through without losing, moving or repeating an
//! acknowledged event:
//!
//! - SIGKILL at random moments under concurrent load, round after round on the same data, on
//!   the embedded store and on PostgreSQL;
//! - the embedded store's WAL cut inside a write that was never acknowledged (what a crash
//!   before that write's fsync leaves), and the query index's WAL cut anywhere;
//! - a full disk under the data directory (a small tmpfs), filled and then freed.
//!
//! After each, every acknowledged receipt is checked against the log itself — in it once, at
//! the receipt's seq, with the receipt's id and hash — and the log against `sealtrail verify`.
//! Random choices come from a seeded generator whose seed is printed; `SEALTRAIL_TEST_SEED`
//! makes the same choices again (the moments they fall on still vary with the machine).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use crate::support::disk::{Tmpfs, fill};
use crate::support::sealtrail;
use crate::support::serve::{Serve, copy_dir, create_token};
use sealtrail_core::leaf_hash;
use sealtrail_store::sqlite::wal;
use sealtrail_store::{DataDir, Location};
use serde_json::{Value, json};

/// splitmix64: small, and enough to pick kill moments, batch sizes and cut points.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("SEALTRAIL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: seed {seed} (SEALTRAIL_TEST_SEED={seed} makes the same choices)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, range: Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

/// An event whose idempotency key (in the body, so it is in the entry) names it in the log.
fn event(key: &str) -> Value {
    json!({
        "action": "patient.record.read",
        "outcome": "success",
        "actor": {"id": format!("clinician-{}", key.len() % 7), "type": "user"},
        "targets": [{"type": "patient", "id": key}],
        "details": {"note": format!("{key} {}", "lorem ipsum ".repeat(8))},
        "idempotency_key": key,
    })
}

/// An acknowledged event: its key, the status that acknowledged it, and its receipt.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    status: u16,
    id: String,
    /// In every 201 and 200 receipt; an acknowledgement without one (a 202) is checked by id.
    seq: Option<u64>,
    event_hash: Option<String>,
}

fn ack(key: &str, status: u16, receipt: &Value) -> Ack {
    let ack = Ack {
        key: key.to_string(),
        status,
        id: receipt["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a receipt has an id: {receipt}"))
            .to_string(),
        seq: receipt["seq"].as_u64(),
        event_hash: receipt["event_hash"].as_str().map(str::to_string),
    };
    if status != 202 {
        assert!(
            ack.seq.is_some() && ack.event_hash.is_some(),
            "a {status} receipt has a seq and an event_hash: {receipt}"
        );
    }
    ack
}

/// Checks the tenant's log against every acknowledgement so far: seqs consecutive from 0, no
/// event in it twice, and each acknowledged event in it at its receipt's seq with its id and
/// hash. Returns the seq of every event in the log by key.
fn check_log(location: &Location, acks: &[Ack]) -> HashMap<String, u64> {
    let store = location.open_reader().unwrap();
    let size = store.size("acme").unwrap();
    let entries = store.entries("acme", 0, u64::MAX, usize::MAX).unwrap();
    assert_eq!(entries.len() as u64, size, "the log holds size entries");
    let mut seqs: HashMap<String, u64> = HashMap::new();
    for (expected, (seq, bytes)) in entries.iter().enumerate() {
        assert_eq!(*seq, expected as u64, "the seqs have no gap");
        let bytes = bytes.as_deref().expect("every row holds an entry");
        let entry: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(entry["seq"], *seq, "the entry at seq {seq} says so");
        let key = entry["idempotency_key"]
            .as_str()
            .unwrap_or_else(|| panic!("every event sent here has a key: {entry}"));
        if let Some(first) = seqs.insert(key.to_string(), *seq) {
            panic!("event {key} is in the log twice: at seq {first} and at seq {seq}");
        }
    }
    for ack in acks {
        let Some(&seq) = seqs.get(&ack.key) else {
            panic!(
                "event {} was acknowledged with {} but is not in the log",
                ack.key, ack.status
            );
        };
        let bytes = &entries[seq as usize].1;
        let bytes = bytes.as_deref().expect("every row holds an entry");
        let entry: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(entry["id"], ack.id.as_str(), "{ack:?}");
        if let Some(acked) = ack.seq {
            assert_eq!(seq, acked, "{ack:?} is at the seq of its receipt");
        }
        if let Some(hash) = &ack.event_hash {
            assert_eq!(&leaf_hash(bytes).to_hex(), hash, "{ack:?}");
        }
    }
    seqs
}

/// `sealtrail verify --data data --json EXTRA…` in `dir`: every log valid.
fn verify(dir: &Path, extra: &[&str]) {
    let mut args = vec!["verify", "--data", "data", "--json"];
    args.extend_from_slice(extra);
    let out = sealtrail(&args, dir);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["valid"], true, "{report:#}");
    let tenants = report["tenants"].as_object().unwrap();
    assert!(tenants.contains_key("acme"), "{report:#}");
    for (tenant, report) in tenants {
        assert_eq!(report["valid"], true, "{tenant}: {report:#}");
    }
}

/// Posts `body` to `path`; `Err` when no answer came (the connection broke).
async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn post_event(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
) -> Result<(u16, Value), reqwest::Error> {
    post(http, base, token, "/v1/events", &event(key)).await
}

async fn post_batch(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    keys: &[String],
) -> Result<(u16, Value), reqwest::Error> {
    let events: Value = keys.iter().map(|key| event(key)).collect();
    post(http, base, token, "/v1/events/batch", &events).await
}

/// The ids `GET /v1/events` lists once the index covers `wait_for_seq` (one page holds all).
async fn search(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    wait_for_seq: u64,
    filter: &str,
) -> Vec<String> {
    let url = format!("{base}/v1/events?wait_for_seq={wait_for_seq}&limit=1000{filter}");
    let mut response = http.get(&url).bearer_auth(token).send().await.unwrap();
    // The index may lag longer than one wait on a busy machine (503 index_lagging).
    for _ in 0..10 {
        if response.status() != 503 {
            break;
        }
        response = http.get(&url).bearer_auth(token).send().await.unwrap();
    }
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["next_cursor"], Value::Null, "one page holds them all");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// SIGKILL under load

/// Clients sending at once: half send single events, half batches.
const CLIENTS: usize = 4;
/// Kills, each followed by a restart on the same data.
const KILLS: usize = 5;

/// What one client saw in one round.
#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    /// Keys of events sent without an answer (the connection broke at the kill) or refused
    /// with a 5xx: in the log or not, never twice. Sent again, with the same key, next round.
    in_doubt: Vec<String>,
    /// Answered requests by status (a batch counts once, with its batch status).
    statuses: BTreeMap<u16, u64>,
    connection_errors: u64,
}

/// One client's part of a round.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Sends batches of 1-39 events, else single events.
    batches: bool,
    /// Keys in doubt from the previous round, sent again first.
    retry: Vec<String>,
    /// New keys are `{prefix}-{n}`.
    prefix: String,
    /// Whether to go on with new events once `retry` is sent, until the connection breaks.
    fresh: bool,
    seed: u64,
}

impl Client {
    async fn run(mut self) -> Seen {
        let (http, base, token) = (&self.http, &self.base, &self.token);
        let mut rng = Rng(self.seed);
        let mut seen = Seen::default();
        let mut n = 0;
        loop {
            let want = if self.batches {
                rng.range(1..40) as usize
            } else {
                1
            };
            let mut keys: Vec<String> = self.retry.drain(..want.min(self.retry.len())).collect();
            while self.fresh && keys.len() < want {
                keys.push(format!("{}-{n}", self.prefix));
                n += 1;
            }
            if keys.is_empty() {
                return seen;
            }
            let answer = if self.batches {
                post_batch(http, base, token, &keys).await
            } else {
                post_event(http, base, token, &keys[0]).await
            };
            let (status, body) = match answer {
                Ok(answer) => answer,
                Err(_) => {
                    seen.connection_errors += 1;
                    seen.in_doubt.extend(keys);
                    seen.in_doubt.append(&mut self.retry);
                    return seen;
                }
            };
            *seen.statuses.entry(status).or_default() += 1;
            match (self.batches, status) {
                (false, 200..=202) => seen.acks.push(ack(&keys[0], status, &body)),
                (true, 200) => {
                    let results = body.as_array().expect("one result per event");
                    assert_eq!(results.len(), keys.len(), "{body}");
                    for (key, result) in keys.iter().zip(results) {
                        let status = result["status"].as_u64().unwrap() as u16;
                        match status {
                            200..=202 => seen.acks.push(ack(key, status, result)),
                            500.. => seen.in_doubt.push(key.clone()),
                            _ => panic!("a valid event refused: {result}"),
                        }
                    }
                }
                (_, 500..) => seen.in_doubt.extend(keys),
                _ => panic!("{status}: {body}"),
            }
        }
    }
}

/// Runs load against serve, SIGKILLs it at a random moment, restarts it on the same data and
/// checks the log, [`KILLS`] times; then sends every event still in doubt again, with its
/// key, and checks that the log holds every event sent exactly once.
fn sigkill_under_load(test: &str, dir: &Path, database_url: Option<&str>) {
    let mut rng = Rng::seeded(test);
    let extra: Vec<&str> = database_url.map_or(vec![], |url| vec!["--database-url", url]);
    // Made once the first start has created the store (`tokens create` never creates one).
    let mut token = String::new();
    let location = Location::new(&dir.join("data"), database_url);
    let runtime = runtime();
    // Generous, only so that a hung server fails the test instead of hanging it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut acks: Vec<Ack> = Vec::new();
    let mut in_doubt: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut connection_errors, mut doubted) = (0, 0);
    let mut resolved: BTreeMap<u16, u64> = BTreeMap::new();
    for round in 0..=KILLS {
        let mut serve = Some(Serve::start(dir, &extra));
        if round == 0 {
            token = create_token(dir, &extra)["token"]
                .as_str()
                .unwrap()
                .to_string();
        }
        let recovered: Vec<String> = serve
            .as_ref()
            .unwrap()
            .stderr()
            .lines()
            .filter(|line| line.starts_with("recovered the store"))
            .map(str::to_string)
            .collect();
        // Whatever the last kill interrupted, every receipt given before it holds.
        let size = check_log(&location, &acks).len();
        verify(dir, &extra);
        let last = round == KILLS;
        let kill_after = Duration::from_millis(rng.range(300..1500));
        let base = serve.as_ref().unwrap().base.clone();
        let retried: HashSet<String> = in_doubt.iter().flatten().cloned().collect();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let client = Client {
                    http: http.clone(),
                    base: base.clone(),
                    token: token.clone(),
                    batches: c % 2 == 1,
                    retry: std::mem::take(&mut in_doubt[c]),
                    prefix: format!("r{round}-c{c}"),
                    fresh: !last,
                    seed: rng.next(),
                };
                runtime.spawn(client.run())
            })
            .collect();
        if !last {
            std::thread::sleep(kill_after);
            serve.take().unwrap().kill();
        }
        let mut round_acks = 0;
        for (c, task) in tasks.into_iter().enumerate() {
            let seen = runtime.block_on(task).unwrap();
            for ack in &seen.acks {
                if retried.contains(&ack.key) {
                    *resolved.entry(ack.status).or_default() += 1;
                }
            }
            round_acks += seen.acks.len();
            acks.extend(seen.acks);
            doubted += seen.in_doubt.len();
            in_doubt[c] = seen.in_doubt;
            connection_errors += seen.connection_errors;
            for (status, count) in seen.statuses {
                *statuses.entry(status).or_default() += count;
            }
        }
        eprintln!(
            "{test}: round {round}: {}; log held {size} events at restart; {round_acks} acknowledged{}",
            if recovered.is_empty() {
                "no recovery report".to_string()
            } else {
                recovered.join("; ")
            },
            if last {
                String::new()
            } else {
                format!(
                    ", then SIGKILL after {} ms with {} events in doubt",
                    kill_after.as_millis(),
                    in_doubt.iter().map(Vec::len).sum::<usize>()
                )
            }
        );
        if let Some(serve) = serve {
            serve.stop();
        }
    }
    let sent_twice = acks.len() - acks.iter().map(|a| &a.key).collect::<HashSet<_>>().len();
    assert_eq!(sent_twice, 0, "an event is acknowledged once");
    assert!(
        in_doubt.iter().all(Vec::is_empty),
        "every event in doubt was answered when sent again: {in_doubt:?}"
    );
    let seqs = check_log(&location, &acks);
    verify(dir, &extra);
    assert_eq!(
        seqs.len(),
        acks.len(),
        "the log holds exactly the events sent, each once"
    );
    assert!(
        acks.len() > CLIENTS * KILLS,
        "the load ran: {} acknowledged",
        acks.len()
    );
    eprintln!(
        "{test}: {KILLS} kills; {} events acknowledged ({} created, {} duplicates); statuses {statuses:?}; \
         {connection_errors} requests cut off by a kill, {doubted} events in doubt, of which sent again: {resolved:?} \
         (200 = committed before the kill, 201 = not); log size {}",
        acks.len(),
        acks.iter().filter(|a| a.status == 201).count(),
        acks.iter().filter(|a| a.status == 200).count(),
        seqs.len()
    );
}

#[test]
fn sigkill_under_load_loses_and_repeats_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_under_load("sigkill (embedded store)", dir.path(), None);
}

#[test]
fn sigkill_under_load_on_postgres_loses_and_repeats_no_acknowledged_event() {
    let Some(db) = crate::support::TestDatabase::create(
        "sigkill_under_load_on_postgres_loses_and_repeats_no_acknowledged_event",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sigkill_under_load("sigkill (PostgreSQL)", dir.path(), Some(&db.url));
}

// ---------------------------------------------------------------------------------------
// A torn WAL

/// After the first checkpoint of a log, the next is ten minutes away: from then on only the
/// events sent here write to the log's WAL, and nothing checkpoints it (it stays far below
/// SQLite's 1000-page autocheckpoint), so it holds every write since serve started.
const QUIET: [&str; 2] = ["--checkpoint-interval-ms", "600000"];

fn cut_file(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Events A are acknowledged, then a batch B; serve is killed. Cutting the WAL anywhere inside
/// B's frames is what a crash before B's commit reached the disk leaves (B would then never
/// have been acknowledged): the restarted store must hold exactly A, say what it discarded,
/// and go on at the next seq; the index, which had B, must be rebuilt to match.
#[test]
fn a_wal_torn_inside_an_unacknowledged_write_recovers_to_the_last_durable_commit() {
    let test = "torn WAL";
    let mut rng = Rng::seeded(test);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runtime = runtime();
    let http = reqwest::Client::new();
    let serve = Serve::start(dir, &QUIET);
    let token = create_token(dir, &["--scope", "events:read"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = serve.base.clone();
    let a: Vec<Ack> = runtime.block_on(async {
        let mut a = Vec::new();
        for n in 0..6 {
            let key = format!("a-{n}");
            let (status, receipt) = post_event(&http, &base, &token, &key).await.unwrap();
            assert_eq!(status, 201, "{receipt}");
            a.push(ack(&key, status, &receipt));
        }
        let keys: Vec<String> = (6..12).map(|n| format!("a-{n}")).collect();
        let (status, results) = post_batch(&http, &base, &token, &keys).await.unwrap();
        assert_eq!(status, 200, "{results}");
        for (key, result) in keys.iter().zip(results.as_array().unwrap()) {
            assert_eq!(result["status"], 201, "{result}");
            a.push(ack(key, 201, result));
        }
        a
    });
    let a_ids: HashSet<String> = a.iter().map(|a| a.id.clone()).collect();
    // The index holds A before B is sent, so its WAL has both.
    let indexed = runtime.block_on(search(&http, &base, &token, a.len() as u64 - 1, ""));
    assert_eq!(indexed.into_iter().collect::<HashSet<_>>(), a_ids);
    let log_wal = wal::wal_path(&dir.join("data/sealtrail.db"));
    let a_len = std::fs::metadata(&log_wal).unwrap().len();

    let b_keys: Vec<String> = (0..40).map(|n| format!("b-{n}")).collect();
    let b: Vec<Ack> = runtime.block_on(async {
        let (status, results) = post_batch(&http, &base, &token, &b_keys).await.unwrap();
        assert_eq!(status, 200, "{results}");
        b_keys
            .iter()
            .zip(results.as_array().unwrap())
            .map(|(key, result)| ack(key, result["status"].as_u64().unwrap() as u16, result))
            .collect()
    });
    assert!(b.iter().all(|b| b.status == 201), "{b:?}");
    let b_indexed = runtime.block_on(search(
        &http,
        &base,
        &token,
        (a.len() + b.len()) as u64 - 1,
        "",
    ));
    assert_eq!(b_indexed.len(), a.len() + b.len());
    serve.kill();

    let wal_bytes = std::fs::read(&log_wal).unwrap();
    let b_len = wal_bytes.len() as u64;
    assert!(
        b_len > a_len,
        "B was appended to the WAL after A ({a_len} bytes then, {b_len} now): nothing checkpointed it"
    );
    let page_size = u32::from_be_bytes(wal_bytes[8..12].try_into().unwrap()) as u64;
    let frame = 24 + page_size;
    assert_eq!((b_len - a_len) % frame, 0, "B is whole frames");
    assert!(
        b_len - a_len >= 2 * frame,
        "B spans several frames, so cuts fall between and inside them"
    );
    let pristine = dir.join("pristine");
    copy_dir(&dir.join("data"), &pristine);

    // Inside B's first frame header, after it, on a frame boundary, into a page, without the
    // commit frame, and without the commit frame's last byte; and one anywhere.
    let mut cuts = vec![
        a_len + 1,
        a_len + 24,
        a_len + frame,
        a_len + frame + page_size / 2,
        b_len - frame,
        b_len - 1,
        rng.range(a_len + 1..b_len),
    ];
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        let case = dir.join(format!("cut-{cut}"));
        copy_dir(&pristine, &case.join("data"));
        cut_file(&wal::wal_path(&case.join("data/sealtrail.db")), cut);
        let serve = Serve::start(&case, &QUIET);
        let (discarded, frames) = (cut - a_len, (cut - a_len).div_ceil(frame));
        let report = format!(
            "recovered the store to its last durable commit; discarded {discarded} bytes ({frames} frames) of an unfinished write in "
        );
        let stderr = serve.stderr();
        assert!(
            stderr
                .lines()
                .any(|line| line.starts_with(&report) && line.ends_with("sealtrail.db-wal")),
            "cut at {cut}: serve reports what it discarded:\n{stderr}"
        );
        let location = Location::new(&case.join("data"), None);
        let seqs = check_log(&location, &a);
        assert_eq!(seqs.len(), a.len(), "cut at {cut}: the log holds exactly A");
        verify(&case, &[]);

        // Appends go on at the next seq, and the index holds what the log holds: A and C,
        // nothing of B (whose seqs C now reuses).
        let base = serve.base.clone();
        let (c, listed, listed_b) = runtime.block_on(async {
            let (status, receipt) = post_event(&http, &base, &token, "c").await.unwrap();
            assert_eq!(status, 201, "{receipt}");
            let c = ack("c", status, &receipt);
            let listed = search(&http, &base, &token, a.len() as u64, "").await;
            let listed_b = search(&http, &base, &token, a.len() as u64, "&target_id=b-0").await;
            (c, listed, listed_b)
        });
        assert_eq!(c.seq, Some(a.len() as u64), "cut at {cut}");
        let mut expected = a_ids.clone();
        expected.insert(c.id.clone());
        assert_eq!(listed.into_iter().collect::<HashSet<_>>(), expected);
        assert!(listed_b.is_empty(), "cut at {cut}: {listed_b:?}");
        check_log(&location, &[a.clone(), vec![c]].concat());
        serve.stop();
        eprintln!(
            "{test}: WAL cut at {cut} of {b_len} bytes: discarded {discarded} bytes ({frames} frames) of B; \
             log holds A ({} events); the next append got seq {}",
            a.len(),
            a.len()
        );
    }

    // The index commits without fsync, so a crash may cut its WAL anywhere: it comes back
    // holding everything the log holds (A and B here, the log's WAL left whole).
    let index_wal = wal::wal_path(&DataDir::new(&pristine).index());
    let index_len = std::fs::metadata(&index_wal).unwrap().len();
    let all: HashSet<String> = a.iter().chain(&b).map(|a| a.id.clone()).collect();
    for cut in [33, rng.range(33..index_len), index_len - 1] {
        let case = dir.join(format!("index-cut-{cut}"));
        copy_dir(&pristine, &case.join("data"));
        let case_wal = wal::wal_path(&case.join("data/index.db"));
        cut_file(&case_wal, cut);
        let lost = wal::inspect(std::fs::File::open(&case_wal).unwrap()).unwrap();
        let serve = Serve::start(&case, &QUIET);
        let listed = runtime.block_on(search(
            &http,
            &serve.base,
            &token,
            (a.len() + b.len()) as u64 - 1,
            "",
        ));
        assert_eq!(
            listed.into_iter().collect::<HashSet<_>>(),
            all,
            "index cut at {cut}"
        );
        if lost.discarded_bytes > 0 {
            let stderr = serve.stderr();
            assert!(
                stderr.contains("the query index lost an unfinished write"),
                "index cut at {cut}:\n{stderr}"
            );
        }
        check_log(
            &Location::new(&case.join("data"), None),
            &[a.clone(), b.clone()].concat(),
        );
        serve.stop();
        eprintln!(
            "{test}: index WAL cut at {cut} of {index_len} bytes: {} bytes discarded; search finds all {} events",
            lost.discarded_bytes,
            all.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// A full disk

#[test]
fn a_full_disk_answers_507_commits_nothing_and_ingest_resumes_once_space_is_freed() {
    let test = "a_full_disk_answers_507_commits_nothing_and_ingest_resumes_once_space_is_freed";
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(test, &data, "8m") else {
        return;
    };
    let location = Location::new(&data, None);
    let runtime = runtime();
    let http = reqwest::Client::new();
    let serve = Serve::start(dir, &[]);
    let token = create_token(dir, &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = serve.base.clone();
    let mut acks: Vec<Ack> = runtime.block_on(async {
        let mut acks = Vec::new();
        for n in 0..10 {
            let key = format!("before-{n}");
            let (status, receipt) = post_event(&http, &base, &token, &key).await.unwrap();
            assert_eq!(status, 201, "{receipt}");
            acks.push(ack(&key, status, &receipt));
        }
        acks
    });

    let filler = data.join("filler");
    let filled = fill(&filler);
    // SQLite may still fit a write or two into space its files already hold; each one it
    // acknowledges must be in the log. Once it answers 507, nothing is committed.
    let mut refused: Vec<String> = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut full_error = None;
    runtime.block_on(async {
        for n in 0..500 {
            let key = format!("full-{n}");
            let (status, body) = post_event(&http, &base, &token, &key).await.unwrap();
            *statuses.entry(status).or_default() += 1;
            match status {
                201 => acks.push(ack(&key, status, &body)),
                507 => {
                    refused.push(key);
                    full_error.get_or_insert(body);
                }
                _ => panic!("{status}: {body}"),
            }
            if refused.len() == 5 {
                break;
            }
        }
        // A batch is refused as a whole, or acknowledged event by event.
        let keys: Vec<String> = (0..10).map(|n| format!("full-batch-{n}")).collect();
        let (status, body) = post_batch(&http, &base, &token, &keys).await.unwrap();
        *statuses.entry(status).or_default() += 1;
        match status {
            507 => refused.extend(keys),
            200 => {
                for (key, result) in keys.iter().zip(body.as_array().unwrap()) {
                    assert_eq!(result["status"], 201, "{result}");
                    acks.push(ack(key, 201, result));
                }
            }
            _ => panic!("{status}: {body}"),
        }
    });
    let full_error = full_error.expect("ingest answers 507 once the disk is full");
    assert_eq!(full_error["error"], "storage_full", "{full_error}");
    assert_eq!(full_error["rule"], "storage_full", "{full_error}");
    assert!(
        full_error["message"]
            .as_str()
            .unwrap()
            .contains("nothing was committed"),
        "{full_error}"
    );
    let seqs = check_log(&location, &acks);
    assert_eq!(
        seqs.len(),
        acks.len(),
        "the log holds the acknowledged events only"
    );
    for key in &refused {
        assert!(
            !seqs.contains_key(key),
            "{key} was refused but is in the log"
        );
    }
    verify(dir, &[]);

    std::fs::remove_file(&filler).unwrap();
    // Without a restart: the same request as a refused one now commits, once.
    let resumed: Vec<Ack> = runtime.block_on(async {
        let mut resumed = Vec::new();
        let (status, receipt) = post_event(&http, &base, &token, &refused[0]).await.unwrap();
        assert_eq!(status, 201, "{receipt}");
        resumed.push(ack(&refused[0], status, &receipt));
        let keys: Vec<String> = (0..10).map(|n| format!("after-{n}")).collect();
        let (status, results) = post_batch(&http, &base, &token, &keys).await.unwrap();
        assert_eq!(status, 200, "{results}");
        for (key, result) in keys.iter().zip(results.as_array().unwrap()) {
            assert_eq!(result["status"], 201, "{result}");
            resumed.push(ack(key, 201, result));
        }
        resumed
    });
    assert_eq!(
        resumed[0].seq,
        Some(acks.len() as u64),
        "the log goes on at the next seq"
    );
    acks.extend(resumed);
    let seqs = check_log(&location, &acks);
    assert_eq!(seqs.len(), acks.len());
    verify(dir, &[]);
    serve.stop();
    eprintln!(
        "{test}: filled the 8 MiB data directory with {filled} bytes; statuses while full {statuses:?}; \
         {} events acknowledged in all, {} refused with 507 and not in the log; after freeing the space ingest \
         resumed at seq {}",
        acks.len(),
        refused.len(),
        acks.len() - 11
    );
}
