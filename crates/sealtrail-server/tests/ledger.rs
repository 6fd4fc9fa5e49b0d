//! The write path on every store: the [`Ledger`] runs unchanged against the embedded store and
//! PostgreSQL through the store crate's suite harness (`sealtrail_store::testing`), so group
//! commit, idempotency and several instances extending one log are checked on both backends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry};
use sealtrail_core::event::Event;
use sealtrail_core::leaf_hash;
use sealtrail_core::note::SignerKey;
use sealtrail_core::{Hash, Timestamp};
use sealtrail_server::clock::ManualClock;
use sealtrail_server::config::StoreFailurePolicy;
use sealtrail_server::ledger::{
    Ledger, LedgerConfig, LedgerError, Original, Outcome, Receipt, Refusal, SpoolConfig, Submission,
};
use sealtrail_server::spool;
use sealtrail_server::verify;
use sealtrail_store::testing::Backend;
use sealtrail_store::{DataDir, Location};

sealtrail_store::store_suite!(
    two_ledgers_append_to_one_log,
    a_key_names_one_event_whichever_instance_is_asked,
    appends_queued_together_commit_as_one_group,
    recorded_times_come_from_the_ledgers_clock,
    a_failed_signing_is_retried_until_the_log_is_signed,
    shutdown_signs_a_log_whose_signing_failed,
    a_restart_signs_what_a_crash_left_unsigned,
    received_at_never_goes_backwards_even_across_a_restart,
    a_freeze_is_kept_in_the_store_for_every_instance_and_audited_once,
);

/// A ledger on `backend` whose logs each have their own key file, signing at most every
/// `interval`.
fn ledger_signing_every(backend: &dyn Backend, interval: Duration) -> Ledger {
    Ledger::start(LedgerConfig {
        data_dir: backend.data_dir().to_path_buf(),
        store: backend.location(),
        signing_key: None,
        checkpoint_interval: interval,
        origin_prefix: "store.test".into(),
        audit_stdout: false,
    })
    .unwrap()
}

/// Takes a log's key file away (and [`KeyOutage::restore`] puts it back), so that signing its
/// checkpoints fails meanwhile, as it does when a key file is unreadable.
struct KeyOutage {
    path: PathBuf,
    away: PathBuf,
}

impl KeyOutage {
    fn begin(backend: &dyn Backend, tenant: &str) -> KeyOutage {
        let reader = backend.location().open_reader().unwrap();
        let origin = reader.tenant(tenant).unwrap().unwrap().origin;
        let keys = DataDir::new(backend.data_dir()).keys();
        let (path, _) = sealtrail_server::keys::key_paths(&keys, &origin);
        let away = path.with_extension("away");
        std::fs::rename(&path, &away).unwrap();
        KeyOutage { path, away }
    }

    fn restore(self) {
        std::fs::rename(&self.away, &self.path).unwrap();
    }
}

fn append_blocking(ledger: &Ledger, tenant: &str, events: Vec<Submission>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for outcome in runtime.block_on(ledger.append(tenant, events)).unwrap() {
        assert!(matches!(outcome, Outcome::Created(_)), "{outcome:?}");
    }
}

/// The size of the tenant's latest checkpoint.
fn checkpointed(backend: &dyn Backend, tenant: &str) -> Option<u64> {
    let reader = backend.location().open_reader().unwrap();
    reader.latest_checkpoint(tenant).unwrap().map(|c| c.size)
}

/// Waits (up to 20 s, far longer than any interval used here) for a checkpoint of `size`.
fn wait_for_checkpoint(backend: &dyn Backend, tenant: &str, size: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let latest = checkpointed(backend, tenant);
        if latest == Some(size) || Instant::now() > deadline {
            return latest;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(instance: usize, n: usize) -> Submission {
    let json = format!(
        r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{instance}","type":"user"}},"source":{{"app":"ehr","seq":{n}}}}}"#
    );
    Submission {
        event: Event::parse(json.as_bytes()).unwrap(),
        idempotency_key: Some(format!("i{instance}-{n}")),
    }
}

/// Ledgers started as instances of the service on one store: each with a data directory of
/// its own (the embedded store stays in the backend's) and the same root signing key.
struct Instances {
    ledgers: Vec<Ledger>,
    root: SignerKey,
    /// The instances' directories and the root key's, removed when the test ends.
    _dirs: Vec<tempfile::TempDir>,
}

impl Instances {
    fn start(backend: &dyn Backend, count: usize) -> Instances {
        let keys = tempfile::tempdir().unwrap();
        let root = SignerKey::generate("sealtrail-root", &mut rand_core::OsRng).unwrap();
        sealtrail_server::keys::write_key_pair(keys.path(), &root).unwrap();
        let (root_path, _) = sealtrail_server::keys::key_paths(keys.path(), "sealtrail-root");
        let dirs: Vec<tempfile::TempDir> =
            (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let ledgers = dirs
            .iter()
            .map(|dir| {
                Ledger::start(LedgerConfig {
                    // The embedded store lives in the backend's own directory; the instance's
                    // directory holds only what is local to it.
                    data_dir: match backend.location() {
                        Location::Embedded { .. } => backend.data_dir().to_path_buf(),
                        Location::Postgres { .. } => dir.path().to_path_buf(),
                    },
                    store: backend.location(),
                    signing_key: Some(root_path.clone()),
                    checkpoint_interval: Duration::from_millis(5),
                    origin_prefix: "store.test".into(),
                    audit_stdout: false,
                })
                .unwrap()
            })
            .collect();
        let mut dirs = dirs;
        dirs.push(keys);
        Instances {
            ledgers,
            root,
            _dirs: dirs,
        }
    }
}

/// Two ledgers — two service instances, each with its own data directory and the same root
/// signing key — append to one tenant at once through the same store. Every receipt names the
/// entry at its seq, the chain and the stored tree verify end to end, and every checkpoint
/// either instance signed is consistent with the one log.
fn two_ledgers_append_to_one_log(backend: &dyn Backend) {
    let Instances {
        ledgers,
        root,
        _dirs,
    } = Instances::start(backend, 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    ledgers[0]
        .create_token_blocking("acme", vec!["events:write".into()], "test")
        .unwrap();
    let receipts = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (instance, ledger) in ledgers.iter().enumerate() {
            for client in 0..4 {
                let ledger = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    let mut receipts = Vec::new();
                    for round in 0..15 {
                        let n = client * 1000 + round * 10;
                        let size = if round % 3 == 0 { 7 } else { 1 };
                        let batch = (n..n + size).map(|n| event(instance, n)).collect();
                        for outcome in ledger.append("acme", batch).await.unwrap() {
                            match outcome {
                                Outcome::Created(receipt) => receipts.push(receipt),
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                    receipts
                }));
            }
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    // A retry through the other instance is answered from the log, not appended again.
    let retried = runtime
        .block_on(ledgers[1].append("acme", vec![event(0, 0)]))
        .unwrap();
    let Outcome::Duplicate(duplicate) = &retried[0] else {
        panic!("a retry appended again: {retried:?}");
    };
    assert!(receipts.contains(duplicate), "{duplicate:?}");
    for ledger in ledgers {
        ledger.shutdown();
    }

    let reader = backend.location().open_reader().unwrap();
    let size = reader.size("acme").unwrap();
    assert_eq!(size, receipts.len() as u64);
    assert_eq!(
        reader.idempotent_seq("acme", "i0-0").unwrap(),
        Some(duplicate.seq)
    );
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..size).collect::<Vec<_>>(), "no gap, no duplicate");
    for receipt in &receipts {
        let bytes = reader.entry("acme", receipt.seq).unwrap().unwrap();
        assert_eq!(leaf_hash(&bytes).to_hex(), receipt.event_hash);
        assert_eq!(
            reader.entry_id("acme", receipt.seq).unwrap().unwrap(),
            receipt.id
        );
    }
    let checkpoints = reader.checkpoints("acme").unwrap();
    assert!(!checkpoints.is_empty());
    let latest = reader.latest_checkpoint("acme").unwrap().unwrap();
    assert_eq!(
        latest.size, size,
        "the final checkpoint covers the whole log"
    );
    let record = reader.tenant("acme").unwrap().unwrap();
    let key = root.derive(&record.origin).unwrap().verifier();
    assert_eq!(record.vkey, Some(key.to_string()));
    let report =
        verify::verify_tenant_with_keys(reader.as_ref(), "acme", &[key], &[], None, None).unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.rows_checked, size);
    let system = verify::verify_tenant_with_keys(
        reader.as_ref(),
        "_system",
        &[root
            .derive(&reader.tenant("_system").unwrap().unwrap().origin)
            .unwrap()
            .verifier()],
        &[],
        None,
        None,
    )
    .unwrap();
    assert!(system.valid, "{system:?}");
}

/// An idempotency key names one event across instances: appends of different events under
/// one key, sent at once through two instances of one store, commit exactly one of them, and
/// every other is refused naming it ([`Outcome::Conflict`]); a retry of that one through either
/// instance gets its receipt. The key is checked in the store, under the tenant's lock, not in
/// an instance's memory, so the instances cannot both take it.
fn a_key_names_one_event_whichever_instance_is_asked(backend: &dyn Backend) {
    let Instances { ledgers, _dirs, .. } = Instances::start(backend, 2);
    ledgers[0].ensure_tenant_blocking("acme", "test").unwrap();
    let under_one_key = |n: usize| Submission {
        idempotency_key: Some("shared".into()),
        ..event(0, n)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let outcomes: Vec<(usize, Outcome)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let ledger = ledgers[n % 2].clone();
                let submission = under_one_key(n);
                tokio::spawn(async move {
                    let mut outcomes = ledger.append("acme", vec![submission]).await.unwrap();
                    (n, outcomes.remove(0))
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    let created: Vec<(usize, Receipt)> = outcomes
        .iter()
        .filter_map(|(n, outcome)| match outcome {
            Outcome::Created(receipt) => Some((*n, receipt.clone())),
            _ => None,
        })
        .collect();
    let [(winner, original)] = &created[..] else {
        panic!("one event takes the key: {outcomes:?}");
    };
    for (n, outcome) in &outcomes {
        match outcome {
            Outcome::Conflict(Original::Committed(named)) => assert_eq!(named, original),
            Outcome::Created(_) if n == winner => {}
            other => panic!("event {n} under a taken key: {other:?}"),
        }
    }
    for ledger in &ledgers {
        let retried = runtime
            .block_on(ledger.append("acme", vec![under_one_key(*winner)]))
            .unwrap();
        assert!(
            matches!(&retried[..], [Outcome::Duplicate(receipt)] if receipt == original),
            "{retried:?}"
        );
    }
    for ledger in ledgers {
        ledger.shutdown();
    }
    let reader = backend.location().open_reader().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 1, "one entry under the key");
    assert_eq!(reader.idempotent_seq("acme", "shared").unwrap(), Some(0));
}

/// Events a PostgreSQL instance spooled while the database was unreachable were acknowledged
/// (`202`) before their idempotency keys could be checked against the log. When one turns out
/// to be a different event under a key the log already gives another, draining appends it all
/// the same, under the id it was acknowledged with, and the key keeps naming the first: an
/// acknowledged event is never dropped. A true retry is still skipped, and a new key is
/// claimed as usual.
#[test]
fn a_spooled_event_under_a_key_the_log_gives_another_event_is_still_appended() {
    let Some(backend) = sealtrail_store::testing::Postgres::new("ledger::spooled_key_conflict")
    else {
        return;
    };
    let submission = |action: &str, key: &str| {
        let json = format!(r#"{{"action":"{action}","outcome":"success","actor":{{"id":"u-1"}}}}"#);
        Submission {
            event: Event::parse(json.as_bytes()).unwrap(),
            idempotency_key: Some(key.into()),
        }
    };
    let ledger = ledger_signing_every(&backend, Duration::from_secs(3600));
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    append_blocking(
        &ledger,
        "acme",
        vec![submission("patient.record.read", "K")],
    );
    ledger.shutdown();

    // What an instance keeps while the database is unreachable: the entry with the id and
    // acceptance time its 202 gave, and a placeholder seq and prev_hash.
    let spooled = [
        ("patient.record.delete", "K"),
        ("patient.record.read", "K"),
        ("patient.record.update", "K3"),
    ]
    .map(|(action, key)| {
        let id = uuid::Uuid::now_v7();
        let server = ServerFields {
            id,
            seq: sealtrail_core::event::MAX_SAFE_INTEGER,
            received_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            prev_hash: Hash::ZERO,
        };
        let event = submission(action, key).event;
        let record = spool::Record {
            tenant: "acme".into(),
            idempotency_key: Some(key.into()),
            entry: canonical_entry(&event, &server).unwrap(),
        };
        (id.to_string(), record)
    });
    let (mut file, _) = spool::Spool::open(
        &spool::spool_path(backend.data_dir()),
        spool::DEFAULT_MAX_BYTES,
    )
    .unwrap();
    let records: Vec<spool::Record> = spooled.iter().map(|(_, r)| r.clone()).collect();
    file.append(&records).unwrap();
    drop(file);

    // A start drains the spool; shutdown drains whatever is left first.
    let ledger = Ledger::start_with_spool(
        LedgerConfig {
            data_dir: backend.data_dir().to_path_buf(),
            store: backend.location(),
            signing_key: None,
            checkpoint_interval: Duration::from_secs(3600),
            origin_prefix: "store.test".into(),
            audit_stdout: false,
        },
        Some(SpoolConfig {
            max_bytes: spool::DEFAULT_MAX_BYTES,
            default_policy: StoreFailurePolicy::Spool,
            tenant_policies: Default::default(),
            hold_recheck: Duration::from_secs(1),
        }),
    )
    .unwrap();
    ledger.shutdown();

    let reader = backend.location().open_reader().unwrap();
    let ids: Vec<String> = (0..reader.size("acme").unwrap())
        .map(|seq| reader.entry_id("acme", seq).unwrap().unwrap())
        .collect();
    let (deletion, update) = (&spooled[0].0, &spooled[2].0);
    assert_eq!(
        &ids[1..],
        [deletion.clone(), update.clone()],
        "the deletion is in the log under the id its 202 gave, the retry of the read is not"
    );
    let entry = Entry::parse(&reader.entry("acme", 1).unwrap().unwrap()).unwrap();
    assert_eq!(entry.event.action, "patient.record.delete");
    assert_eq!(reader.idempotent_seq("acme", "K").unwrap(), Some(0));
    assert_eq!(reader.idempotent_seq("acme", "K3").unwrap(), Some(2));
    let (file, recovery) = spool::Spool::open(
        &spool::spool_path(backend.data_dir()),
        spool::DEFAULT_MAX_BYTES,
    )
    .unwrap();
    assert_eq!(recovery.records, 0, "the spool drained");
    assert!(!file.is_pending());
    let key = sealtrail_core::note::VerifierKey::parse(
        &reader.tenant("acme").unwrap().unwrap().vkey.unwrap(),
    )
    .unwrap();
    let report =
        verify::verify_tenant_with_keys(reader.as_ref(), "acme", &[key], &[], None, None).unwrap();
    assert!(report.valid, "{report:?}");
}

/// Appends that queue while the writer is busy are committed as one group: each tenant's
/// events in one call, in the order the requests came, each request answered with its own
/// outcomes (a duplicate key across requests included, a request for an unknown tenant refused
/// on its own).
fn appends_queued_together_commit_as_one_group(backend: &dyn Backend) {
    let ledger = Ledger::start(LedgerConfig {
        data_dir: backend.data_dir().to_path_buf(),
        store: backend.location(),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(3600),
        origin_prefix: "store.test".into(),
        audit_stdout: false,
    })
    .unwrap();
    for tenant in ["acme", "beta"] {
        ledger.ensure_tenant_blocking(tenant, "test").unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lock = backend.hold_appends();
    let requests: Vec<(&str, Vec<Submission>)> = vec![
        // Taken by the writer alone, which then waits for the lock.
        ("acme", vec![event(0, 0)]),
        // Queued behind it, in this order.
        ("acme", vec![event(0, 1)]),
        ("beta", vec![event(1, 0)]),
        ("acme", vec![event(0, 2), event(0, 1), event(0, 3)]),
        ("nobody", vec![event(2, 0)]),
        ("beta", vec![event(1, 1)]),
    ];
    let answers = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (i, (tenant, batch)) in requests.into_iter().enumerate() {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(
                async move { ledger.append(tenant, batch).await },
            ));
            let pause = if i == 0 { 300 } else { 30 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Released off the runtime: closing a PostgreSQL client blocks.
        tokio::task::spawn_blocking(move || drop(lock))
            .await
            .unwrap();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let created = |answer: &Result<Vec<Outcome>, _>| -> Vec<(String, u64)> {
        answer
            .as_ref()
            .unwrap()
            .iter()
            .map(|outcome| match outcome {
                Outcome::Created(r) => ("created".to_string(), r.seq),
                Outcome::Duplicate(r) => ("duplicate".to_string(), r.seq),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    let c = |seq| ("created".to_string(), seq);
    assert_eq!(created(&answers[0]), vec![c(0)]);
    assert_eq!(created(&answers[1]), vec![c(1)]);
    assert_eq!(created(&answers[2]), vec![c(0)]);
    assert_eq!(
        created(&answers[3]),
        vec![c(2), ("duplicate".to_string(), 1), c(3)]
    );
    assert!(
        matches!(&answers[4], Err(LedgerError::Invalid(Refusal::UnknownTenant(name))) if name == "nobody"),
        "{:?}",
        answers[4]
    );
    assert_eq!(created(&answers[5]), vec![c(1)]);
    let receipt = |answer: &Result<Vec<Outcome>, _>, i: usize| match &answer.as_ref().unwrap()[i] {
        Outcome::Created(r) | Outcome::Duplicate(r) => r.clone(),
        other => panic!("unexpected {other:?}"),
    };
    // The duplicate names the request before it in the same group.
    assert_eq!(receipt(&answers[3], 1), receipt(&answers[1], 0));
    // One call per tenant for the queued requests: one acceptance time for all of acme's.
    assert_eq!(
        receipt(&answers[1], 0).received_at,
        receipt(&answers[3], 2).received_at
    );
    ledger.shutdown();
    let reader = backend.location().open_reader().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 4);
    assert_eq!(reader.size("beta").unwrap(), 2);
    for (answer, i, tenant) in [
        (0, 0, "acme"),
        (1, 0, "acme"),
        (3, 0, "acme"),
        (3, 2, "acme"),
        (2, 0, "beta"),
        (5, 0, "beta"),
    ] {
        let r = receipt(&answers[answer], i);
        assert_eq!(reader.entry_id(tenant, r.seq).unwrap().unwrap(), r.id);
        let bytes = reader.entry(tenant, r.seq).unwrap().unwrap();
        assert_eq!(leaf_hash(&bytes).to_hex(), r.event_hash);
    }
    for tenant in ["acme", "beta"] {
        let record = reader.tenant(tenant).unwrap().unwrap();
        let key = sealtrail_core::note::VerifierKey::parse(&record.vkey.unwrap()).unwrap();
        let report =
            verify::verify_tenant_with_keys(reader.as_ref(), tenant, &[key], &[], None, None)
                .unwrap();
        assert!(report.valid, "{tenant}: {report:?}");
    }
}

/// Every time the writer records — an entry's `received_at`, a token's creation, a
/// checkpoint's timestamp — is read from the clock it was started with, so a test can know
/// them exactly.
fn recorded_times_come_from_the_ledgers_clock(backend: &dyn Backend) {
    let start = Timestamp::parse("2031-05-06T07:08:09.101112Z").unwrap();
    let hand = ManualClock::new(start);
    let ledger = Ledger::start_with_clock(
        LedgerConfig {
            data_dir: backend.data_dir().to_path_buf(),
            store: backend.location(),
            signing_key: None,
            checkpoint_interval: Duration::from_secs(3600),
            origin_prefix: "store.test".into(),
            audit_stdout: false,
        },
        None,
        hand.clock(),
    )
    .unwrap();
    let token = ledger
        .create_token_blocking("acme", vec!["events:write".into()], "test")
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let received = |outcomes: Vec<Outcome>| match &outcomes[..] {
        [Outcome::Created(receipt)] => receipt.received_at.clone(),
        other => panic!("unexpected {other:?}"),
    };
    let first = runtime
        .block_on(ledger.append("acme", vec![event(0, 0)]))
        .unwrap();
    assert_eq!(received(first), "2031-05-06T07:08:09.101112Z");
    hand.advance(Duration::from_secs(90));
    let second = runtime
        .block_on(ledger.append("acme", vec![event(0, 1)]))
        .unwrap();
    assert_eq!(received(second), "2031-05-06T07:09:39.101112Z");
    ledger.shutdown();
    let reader = backend.location().open_reader().unwrap();
    let tokens = reader.list_tokens().unwrap();
    let record = tokens.iter().find(|t| t.id == token.id).unwrap();
    assert_eq!(record.created_at, "2031-05-06T07:08:09.101112Z");
    let checkpoint = reader.latest_checkpoint("acme").unwrap().unwrap();
    assert_eq!(checkpoint.size, 2);
    assert_eq!(checkpoint.created_at, "2031-05-06T07:09:39.101112Z");
}

/// A checkpoint that cannot be signed (the log's key file is gone for a while) is tried again
/// until it is signed: the log does not stay unsigned until its tenant next writes.
fn a_failed_signing_is_retried_until_the_log_is_signed(backend: &dyn Backend) {
    let ledger = ledger_signing_every(backend, Duration::from_millis(50));
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    let outage = KeyOutage::begin(backend, "acme");
    append_blocking(&ledger, "acme", (0..3).map(|n| event(0, n)).collect());
    // Several attempts fail meanwhile.
    std::thread::sleep(Duration::from_millis(400));
    assert_ne!(checkpointed(backend, "acme"), Some(3));
    outage.restore();
    assert_eq!(wait_for_checkpoint(backend, "acme", 3), Some(3));
    ledger.shutdown();
}

/// A log whose signing failed still gets its final checkpoint at shutdown, once the key is
/// back, even though its next retry is far off.
fn shutdown_signs_a_log_whose_signing_failed(backend: &dyn Backend) {
    let ledger = ledger_signing_every(backend, Duration::from_millis(50));
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    ledger.shutdown();
    // An interval long enough that only shutdown can sign again.
    let ledger = ledger_signing_every(backend, Duration::from_secs(3600));
    let outage = KeyOutage::begin(backend, "acme");
    // The commit is followed by an attempt to sign, which fails.
    append_blocking(&ledger, "acme", (0..3).map(|n| event(0, n)).collect());
    assert_ne!(checkpointed(backend, "acme"), Some(3));
    outage.restore();
    ledger.shutdown();
    assert_eq!(checkpointed(backend, "acme"), Some(3));
}

/// Entries that a stop left outside every checkpoint — here the final signing failed, as
/// after a SIGKILL there is none — are signed by the next start without any new write.
fn a_restart_signs_what_a_crash_left_unsigned(backend: &dyn Backend) {
    let ledger = ledger_signing_every(backend, Duration::from_millis(100));
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    let outage = KeyOutage::begin(backend, "acme");
    append_blocking(&ledger, "acme", (0..3).map(|n| event(0, n)).collect());
    ledger.shutdown();
    assert_ne!(checkpointed(backend, "acme"), Some(3));
    outage.restore();
    let ledger = ledger_signing_every(backend, Duration::from_millis(100));
    assert_eq!(wait_for_checkpoint(backend, "acme", 3), Some(3));
    ledger.shutdown();
}

/// An entry's `received_at` is never earlier than the previous entry's: when the clock is set
/// back, entries keep the previous time until the clock catches up — also for a new ledger on
/// the same store, which reads that time from the log.
fn received_at_never_goes_backwards_even_across_a_restart(backend: &dyn Backend) {
    let start = Timestamp::parse("2031-05-06T07:08:09.101112Z").unwrap();
    let hand = ManualClock::new(start);
    let config = LedgerConfig {
        data_dir: backend.data_dir().to_path_buf(),
        store: backend.location(),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(3600),
        origin_prefix: "store.test".into(),
        audit_stdout: false,
    };
    let ledger = Ledger::start_with_clock(config.clone(), None, hand.clock()).unwrap();
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let received = |ledger: &Ledger, events: Vec<Submission>| -> Vec<String> {
        let outcomes = runtime.block_on(ledger.append("acme", events)).unwrap();
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Created(receipt) => receipt.received_at,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    let at = "2031-05-06T07:08:09.101112Z";
    assert_eq!(received(&ledger, vec![event(0, 0)]), [at]);
    // The clock is set back an hour: entries keep the last entry's time.
    hand.set(Timestamp::parse("2031-05-06T06:08:09.000000Z").unwrap());
    assert_eq!(received(&ledger, vec![event(0, 1)]), [at]);
    assert_eq!(received(&ledger, vec![event(0, 2), event(0, 3)]), [at, at]);
    ledger.shutdown();
    // A restart with the clock still behind reads the last entry's time from the log.
    let ledger = Ledger::start_with_clock(config, None, hand.clock()).unwrap();
    assert_eq!(received(&ledger, vec![event(0, 4)]), [at]);
    // Once the clock is past it again, entries get the clock's time.
    hand.set(Timestamp::parse("2031-05-06T07:08:10.000000Z").unwrap());
    assert_eq!(
        received(&ledger, vec![event(0, 5)]),
        ["2031-05-06T07:08:10.000000Z"]
    );
    ledger.shutdown();
    let reader = backend.location().open_reader().unwrap();
    let times: Vec<Timestamp> = (0..6)
        .map(|seq| {
            let bytes = reader.entry("acme", seq).unwrap().unwrap();
            sealtrail_core::canonical::Entry::parse(&bytes)
                .unwrap()
                .server
                .received_at
        })
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
}

/// Draining the spool into the log records the spool period it ends in the `_system` log:
/// `sealtrail.spool.drained`, with how many events, when the first and the last were
/// accepted, of which tenants, and the host. A drain done again after a crash that came
/// between its commit and the emptying of the spool file records nothing twice; the next
/// outage's drain is recorded on its own.
#[test]
fn a_drained_spool_is_recorded_once_in_the_system_log() {
    let Some(backend) = sealtrail_store::testing::Postgres::new("ledger::spool_drained_record")
    else {
        return;
    };
    let ledger = ledger_signing_every(&backend, Duration::from_secs(3600));
    ledger.ensure_tenant_blocking("acme", "test").unwrap();
    ledger.ensure_tenant_blocking("billing", "test").unwrap();
    ledger.shutdown();

    // What an instance kept while the database was unreachable: five events accepted a
    // second apart, three of acme and two of billing.
    let accepted = |n: i64| {
        Timestamp::from_unix_micros(
            Timestamp::parse("2026-03-04T05:06:07Z")
                .unwrap()
                .unix_micros()
                + n * 1_000_000,
        )
        .unwrap()
    };
    let record = |tenant: &str, n: i64| {
        let event = Event::parse(
            format!(
                r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{n}"}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let server = ServerFields {
            id: uuid::Uuid::now_v7(),
            seq: sealtrail_core::event::MAX_SAFE_INTEGER,
            received_at: accepted(n),
            prev_hash: Hash::ZERO,
        };
        spool::Record {
            tenant: tenant.into(),
            idempotency_key: None,
            entry: canonical_entry(&event, &server).unwrap(),
        }
    };
    let records = [
        record("acme", 0),
        record("billing", 1),
        record("acme", 2),
        record("billing", 3),
        record("acme", 4),
    ];
    let spool_and_drain = |records: &[spool::Record]| {
        let (mut file, _) = spool::Spool::open(
            &spool::spool_path(backend.data_dir()),
            spool::DEFAULT_MAX_BYTES,
        )
        .unwrap();
        file.append(records).unwrap();
        drop(file);
        // A start drains the spool; shutdown drains whatever is left first.
        Ledger::start_with_spool(
            LedgerConfig {
                data_dir: backend.data_dir().to_path_buf(),
                store: backend.location(),
                signing_key: None,
                checkpoint_interval: Duration::from_secs(3600),
                origin_prefix: "store.test".into(),
                audit_stdout: false,
            },
            Some(SpoolConfig {
                max_bytes: spool::DEFAULT_MAX_BYTES,
                default_policy: StoreFailurePolicy::Spool,
                tenant_policies: Default::default(),
                hold_recheck: Duration::from_secs(1),
            }),
        )
        .unwrap()
        .shutdown();
        let (file, recovery) = spool::Spool::open(
            &spool::spool_path(backend.data_dir()),
            spool::DEFAULT_MAX_BYTES,
        )
        .unwrap();
        assert_eq!(recovery.records, 0, "the spool drained");
        assert!(!file.is_pending());
    };
    let drained_records = || -> Vec<serde_json::Value> {
        let reader = backend.location().open_reader().unwrap();
        let size = reader.size("_system").unwrap();
        reader
            .entries("_system", 0, size, size as usize)
            .unwrap()
            .into_iter()
            .map(|(_, e)| serde_json::from_slice::<serde_json::Value>(&e.unwrap()).unwrap())
            .filter(|v| v["action"] == "sealtrail.spool.drained")
            .collect()
    };
    let sizes = || {
        let reader = backend.location().open_reader().unwrap();
        (
            reader.size("acme").unwrap(),
            reader.size("billing").unwrap(),
        )
    };

    spool_and_drain(&records);
    assert_eq!(sizes(), (3, 2));
    let recorded = drained_records();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    let record_of = &recorded[0];
    assert_eq!(record_of["actor"]["type"], "system");
    assert_eq!(
        record_of["details"],
        serde_json::json!({
            "events": 5,
            "first_spooled_at": accepted(0).to_rfc3339(),
            "last_spooled_at": accepted(4).to_rfc3339(),
            "tenants": {"acme": 3, "billing": 2},
            "tenant_count": 2,
            "hostname": sealtrail_server::host::hostname(),
        }),
        "{record_of:#}"
    );

    // The file still held the drained events when the process died (the commit was made,
    // the file not yet emptied): the next start finds them all in the log.
    spool_and_drain(&records);
    assert_eq!(sizes(), (3, 2), "nothing appended twice");
    assert_eq!(drained_records().len(), 1, "the drain is recorded once");

    // The next outage is a spool period of its own.
    spool_and_drain(&[record("billing", 60)]);
    assert_eq!(sizes(), (3, 3));
    let recorded = drained_records();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    assert_eq!(recorded[1]["details"]["events"], 1);
    assert_eq!(
        recorded[1]["details"]["tenants"],
        serde_json::json!({"billing": 1})
    );
    assert_eq!(
        recorded[1]["details"]["first_spooled_at"],
        accepted(60).to_rfc3339()
    );
}

/// The entries of the `_system` log with `action`, parsed.
fn system_records(backend: &dyn Backend, action: &str) -> Vec<serde_json::Value> {
    let reader = backend.location().open_reader().unwrap();
    let mut records = Vec::new();
    reader
        .for_each_entry("_system", 0, u64::MAX, &mut |_, entry| {
            let entry: serde_json::Value = serde_json::from_slice(entry.unwrap()).unwrap();
            if entry["action"] == action {
                records.push(entry);
            }
        })
        .unwrap();
    records
}

/// A freeze made through one instance is in the store, where every other instance reads it;
/// freezing again through another keeps the first freeze and records nothing; the unfreeze
/// names the freeze it lifted. Each change is in `_system` once, with its actor and reason.
fn a_freeze_is_kept_in_the_store_for_every_instance_and_audited_once(backend: &dyn Backend) {
    let Instances { ledgers, _dirs, .. } = Instances::start(backend, 2);
    ledgers[0]
        .create_token_blocking("acme", vec!["events:write".into()], "test")
        .unwrap();
    let frozen_now = || {
        let reader = backend.location().open_reader().unwrap();
        sealtrail_server::freeze::read(reader.as_ref()).unwrap()
    };
    assert!(frozen_now().get("acme").is_none());

    let first = ledgers[0]
        .set_frozen_blocking("acme", true, "chain violation", "cli:one")
        .unwrap();
    assert!(first.changed);
    let standing = first.standing.clone().unwrap();
    assert_eq!(
        (standing.reason.as_str(), standing.actor.as_str()),
        ("chain violation", "cli:one")
    );
    assert_eq!(frozen_now().get("acme"), Some(&standing));
    let again = ledgers[1]
        .set_frozen_blocking("acme", true, "second opinion", "cli:two")
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.standing, Some(standing.clone()));

    // What cannot be frozen is refused, and nothing is written for it.
    for (tenant, reason, refusal) in [
        ("_system", "r", Refusal::SystemTenantFrozen),
        ("nobody", "r", Refusal::UnknownTenant("nobody".into())),
        (
            "acme",
            " ",
            Refusal::FreezeReason(sealtrail_server::freeze::ReasonError::Missing),
        ),
    ] {
        match ledgers[1].set_frozen_blocking(tenant, true, reason, "cli:two") {
            Err(LedgerError::Invalid(refused)) => assert_eq!(refused, refusal),
            other => panic!("{tenant} {reason:?}: {other:?}"),
        }
    }

    let lifted = ledgers[1]
        .set_frozen_blocking("acme", false, "resolved", "cli:two")
        .unwrap();
    assert!(lifted.changed);
    assert_eq!(lifted.standing, None);
    assert_eq!(lifted.lifted, Some(standing.clone()));
    assert!(frozen_now().get("acme").is_none());
    let not_frozen = ledgers[0]
        .set_frozen_blocking("acme", false, "resolved", "cli:one")
        .unwrap();
    assert!(!not_frozen.changed);

    let frozen = system_records(backend, "sealtrail.tenant.frozen");
    let unfrozen = system_records(backend, "sealtrail.tenant.unfrozen");
    assert_eq!((frozen.len(), unfrozen.len()), (1, 1));
    assert_eq!(frozen[0]["actor"]["id"], "cli:one");
    assert_eq!(frozen[0]["details"]["reason"], "chain violation");
    assert_eq!(unfrozen[0]["actor"]["id"], "cli:two");
    assert_eq!(unfrozen[0]["details"]["reason"], "resolved");
    assert_eq!(unfrozen[0]["details"]["lifted"]["actor"], "cli:one");
    for ledger in ledgers {
        ledger.shutdown();
    }
}
