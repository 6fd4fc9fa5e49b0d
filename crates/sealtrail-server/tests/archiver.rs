//! The background archiver on both stores, as two instances sharing one store run it: one
//! archives (it holds the lease), the other only reads the archive to report the lag, and
//! takes over — resuming from the target's own manifests — once the first stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sealtrail_archive::run::archived_state;
use sealtrail_archive::verify::verify_archive;
use sealtrail_archive::{ArchiveOptions, DirTarget, LockStatus, Put, Target, TargetError};
use sealtrail_core::event::Event;
use sealtrail_core::note::VerifierKey;
use sealtrail_server::archive::{
    ArchiveBoard, ArchiveCheck, ArchiveState, Archiver, ArchiverConfig, LeaseState, TargetOpener,
};
use sealtrail_server::clock::Clock;
use sealtrail_server::config::ArchiveSettings;
use sealtrail_server::keys::KeyResolver;
use sealtrail_server::ledger::{Ledger, LedgerConfig, Outcome, Submission};
use sealtrail_store::testing::Backend;

sealtrail_store::store_suite!(one_instance_archives_at_a_time_and_another_takes_over);

/// A directory target that counts the objects its archiver wrote.
struct Counting {
    inner: DirTarget,
    written: Arc<AtomicUsize>,
}

impl Target for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn lock_status(&self) -> Result<LockStatus, TargetError> {
        self.inner.lock_status()
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, TargetError> {
        self.inner.list(prefix)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        self.inner.get(key)
    }
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put, TargetError> {
        let put = self.inner.put_new(key, bytes)?;
        if put == Put::Written {
            self.written.fetch_add(1, Ordering::SeqCst);
        }
        Ok(put)
    }
}

/// An instance's archiver, with the count of what it wrote.
struct Instance {
    archiver: Archiver,
    board: ArchiveBoard,
    written: Arc<AtomicUsize>,
}

fn start_archiver(backend: &dyn Backend, archive: &std::path::Path) -> Instance {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let opener: TargetOpener = Arc::new(move |spec| {
        Ok(Box::new(Counting {
            inner: DirTarget::create(&spec.url)?,
            written: counter.clone(),
        }) as Box<dyn Target>)
    });
    let settings = ArchiveSettings {
        target: archive.display().to_string(),
        interval: Duration::from_millis(50),
        every: None,
        // A directory cannot be locked: allowed here, as the operator must allow it.
        allow_unlocked: true,
        retention_days: 1,
        tenant_retention_days: Default::default(),
    };
    let board = ArchiveBoard::new(&settings.target, settings.interval);
    let archiver = Archiver::start(
        ArchiverConfig {
            settings,
            store: backend.location(),
            keys: KeyResolver::new(backend.data_dir()),
            opener,
            options: ArchiveOptions {
                max_step: 128,
                batch: 16,
            },
            clock: Clock::system(),
        },
        board.clone(),
    )
    .unwrap();
    Instance {
        archiver,
        board,
        written,
    }
}

fn append(ledger: &Ledger, from: usize, count: usize) {
    let events = (from..from + count)
        .map(|n| Submission {
            event: Event::parse(
                format!(
                    r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{n}"}}}}"#
                )
                .as_bytes(),
            )
            .unwrap(),
            idempotency_key: Some(format!("k-{n}")),
        })
        .collect();
    for outcome in ledger.append_blocking("acme", events).unwrap() {
        assert!(matches!(outcome, Outcome::Created(_)), "{outcome:?}");
    }
}

/// Waits (up to 30 s) until `done` holds for the two boards' checks.
fn wait_for(
    what: &str,
    boards: [&ArchiveBoard; 2],
    done: impl Fn(&ArchiveCheck, &ArchiveCheck) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (boards[0].check(), boards[1].check());
        if done(&a, &b) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {a:#?}\n{b:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn acme_key(backend: &dyn Backend) -> VerifierKey {
    let reader = backend.location().open_reader().unwrap();
    let vkey = reader.tenant("acme").unwrap().unwrap().vkey.unwrap();
    VerifierKey::parse(&vkey).unwrap()
}

/// Two archivers on one store (two instances sharing a database, or two processes on one data
/// directory): exactly one holds the lease and writes; the other writes nothing, reports
/// `waiting`, and sees the same lag by reading the archive. When the holder stops, the other
/// takes the lease at its next round and archives what was written since, continuing the
/// manifests the first one wrote; the archive verifies alone at every point.
fn one_instance_archives_at_a_time_and_another_takes_over(backend: &dyn Backend) {
    let ledger = Ledger::start(LedgerConfig {
        data_dir: backend.data_dir().to_path_buf(),
        store: backend.location(),
        signing_key: None,
        checkpoint_interval: Duration::from_millis(5),
        origin_prefix: "archive.test".into(),
        audit_stdout: false,
    })
    .unwrap();
    ledger
        .create_token_blocking("acme", vec!["events:write".into()], "test")
        .unwrap();
    append(&ledger, 0, 300);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let first = start_archiver(backend, &archive);
    let second = start_archiver(backend, &archive);

    let caught_up = |c: &ArchiveCheck| c.state == ArchiveState::Ok && c.lag_entries == Some(0);
    wait_for(
        "one instance archives everything, the other waits",
        [&first.board, &second.board],
        |a, b| {
            let mut leases = [a.lease, b.lease];
            leases.sort_by_key(|l| *l == LeaseState::Waiting);
            leases == [LeaseState::Held, LeaseState::Waiting] && caught_up(a) && caught_up(b)
        },
    );
    let (holder, waiter) = if first.board.lease() == LeaseState::Held {
        (first, second)
    } else {
        (second, first)
    };
    assert!(holder.written.load(Ordering::SeqCst) > 0);
    assert_eq!(
        waiter.written.load(Ordering::SeqCst),
        0,
        "the instance without the lease wrote nothing"
    );
    assert!(holder.board.check().last_success.is_some());
    assert_eq!(waiter.board.check().last_success, None);
    let key = acme_key(backend);
    let verified = verify_archive(&DirTarget::open(&archive).unwrap(), "acme", &key, 10).unwrap();
    assert!(verified.report.valid, "{:?}", verified.report.violations);
    assert_eq!(verified.archived_size, 300);

    // The holder stops (its connection, and the lease with it, closes); the log grows.
    holder.archiver.stop();
    append(&ledger, 300, 200);
    let target = DirTarget::open(&archive).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while archived_state(&target, "acme", &key).unwrap().size < 500 {
        assert!(
            Instant::now() < deadline,
            "the other instance takes over and archives the rest: {:#?}",
            waiter.board.check()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(waiter.board.lease(), LeaseState::Held);
    assert!(waiter.written.load(Ordering::SeqCst) > 0);
    let verified = verify_archive(&DirTarget::open(&archive).unwrap(), "acme", &key, 10).unwrap();
    assert!(verified.report.valid, "{:?}", verified.report.violations);
    assert_eq!(verified.archived_size, 500);
    waiter.archiver.stop();
    ledger.shutdown();
}
