//! The background archiver: with `archive_to` configured, `sealtrail serve` keeps every log's
//! archive (C2SP tiles, signed checkpoints and signed manifests, see `sealtrail_archive`) up to
//! the log's latest checkpoint, on a thread of its own.
//!
//! ## When it runs
//!
//! Every `archive_interval` (60 s by default), and sooner when a log has `archive_every`
//! (16,384) signed entries not yet archived — looked at every [`POLL`] or every interval,
//! whichever is shorter. A round takes every tenant, `_system` included, and calls
//! [`sealtrail_archive::archive_tenant`] for each whose latest checkpoint is not the archived
//! size, signing the manifests with the log's own key ([`KeyResolver::signer`], the key that
//! signs its checkpoints).
//!
//! ## Where it resumes
//!
//! From what the target holds, always: each round reads the archived size from the target's
//! own signed manifests ([`sealtrail_archive::run::archived_state`]), and
//! `archive_tenant` does so again before it writes. Nothing about the archive's progress is
//! kept beside the store, so nothing can drift from the target: after a crash, an outage of
//! the target or a restore of either side, the next round continues from the last manifest,
//! and objects a killed run had written are found again byte for byte and not rewritten. The
//! sizes the archiver remembers between rounds decide only *when* to run (the `archive_every`
//! trigger) and what the lag is while the target cannot be read.
//!
//! ## One archiver at a time
//!
//! Several instances sharing a PostgreSQL database must not archive at once (two runs from
//! the same manifest would write two different next manifests). Before each round and before
//! each tenant the archiver asks its own store connection for the lease [`LEASE`]
//! ([`Store::try_lease`]: a session advisory lock on PostgreSQL, held as long as that
//! connection lives and released when the process dies; a locked `DIR/archive.lease` on the
//! embedded store). Without it, the instance only reads the archive to report the lag
//! (`lease: waiting`) and takes over at the first round after the holder stops.
//!
//! ## What it refuses
//!
//! Before each round, the target's [`Target::lock_status`]: a target that does not keep what
//! it is given immutable — a bucket without Object Lock, and a directory, which the file
//! system lets anyone with the rights delete from — is refused unless the operator allowed
//! it (`archive_allow_unlocked`). The refusal is an error like any other, with the target's
//! own words: in `/health`, in `sealtrail_archive_errors_total` and in the log.
//!
//! ## What it reports
//!
//! On [`ArchiveBoard`], for `/health`'s `archive` check, and in the metrics
//! (`sealtrail_archive_*`, see `crate::metrics`): per tenant the archived size, the lag in
//! entries (the log's size less the archived size: entries waiting for their first checkpoint
//! count too) and in seconds — how long the oldest *signed* entry not archived yet has waited
//! since it was received, 0 when every signed entry is archived — and the last success and the
//! last error. Between rounds the lag is measured again at every look ([`POLL`]) against the
//! archived sizes the target last gave, so that it grows while entries wait. Errors are logged when they appear or change, and retried at the next interval;
//! none stops the server.
//!
//! ## Stopping
//!
//! [`Archiver::stop`] wakes the thread and waits for it. A run in progress stops at its next
//! read or write of the target (the target is wrapped so that it refuses once stopping is
//! signalled), which is safe at any point: the next start resumes from the last manifest.
//! The store connection, and with it a PostgreSQL lease, closes with the thread.
//!
//! The archiver is a plain thread, not a task of the async runtime: an S3 target blocks on a
//! runtime of its own, which a runtime thread may not do.

mod board;
mod targets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sealtrail_archive::run::archived_state;
use sealtrail_archive::{ArchiveOptions, Put, Target, TargetError, archive_tenant};
use sealtrail_core::Timestamp;
use sealtrail_core::canonical::Entry;
use sealtrail_store::{Location, Store, StoreError, Tenant};

pub use self::board::{
    ArchiveBoard, ArchiveCheck, ArchiveState, Failure, LAG_DEGRADED_MIN, LeaseState, TenantLag,
    lag_limit,
};
pub use self::targets::{ArchiveTargetSpec, TargetOpener, directory_opener, is_s3, open_directory};
use crate::clock::Clock;
use crate::config::ArchiveSettings;
use crate::keys::KeyResolver;

/// The name of the archiver's lease in the store.
pub const LEASE: &str = "archive";

/// The longest the archiver sleeps between two looks at the `archive_every` trigger (and at
/// whether to stop); a shorter interval is used as it is.
pub const POLL: Duration = Duration::from_secs(5);

/// What an archiver needs.
pub struct ArchiverConfig {
    pub settings: ArchiveSettings,
    /// The store it reads the logs from, through a connection of its own (which holds the
    /// lease).
    pub store: Location,
    /// Where each log's signing key comes from: the same rule as the writer's.
    pub keys: KeyResolver,
    pub opener: TargetOpener,
    pub options: ArchiveOptions,
    /// What "now" is for the lag and the times reported.
    pub clock: Clock,
}

/// A running archiver; [`Archiver::stop`] ends it.
pub struct Archiver {
    shared: Arc<Shared>,
    board: ArchiveBoard,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn stopping(&self) -> bool {
        *self
            .stop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Archiver {
    /// Starts the archiver's thread. It opens its store connection and its target itself, and
    /// reports failing to (and retries) rather than failing the start: a server whose archive
    /// is unreachable still takes events.
    pub fn start(config: ArchiverConfig, board: ArchiveBoard) -> std::io::Result<Archiver> {
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let worker = Worker {
            config,
            board: board.clone(),
            shared: shared.clone(),
            store: None,
            targets: BTreeMap::new(),
            checked: BTreeMap::new(),
            known: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("sealtrail-archiver".into())
            .spawn(move || worker.run())?;
        Ok(Archiver {
            shared,
            board,
            thread: Some(thread),
        })
    }

    /// What the archiver has found.
    pub fn board(&self) -> ArchiveBoard {
        self.board.clone()
    }

    /// Stops the thread (a run in progress at its next read or write of the target) and
    /// waits for it.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the archiver thread panicked");
        }
    }

    fn signal_stop(&self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for Archiver {
    /// Dropped without [`Archiver::stop`] (the application failed to start), it still stops
    /// its thread, without waiting.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.signal_stop();
        }
    }
}

/// The archiver's thread.
struct Worker {
    config: ArchiverConfig,
    board: ArchiveBoard,
    shared: Arc<Shared>,
    /// Its own connection to the store, opened at the first round; it holds the lease.
    store: Option<Box<dyn Store>>,
    /// The targets opened, by retention in days (see `targets`).
    targets: BTreeMap<u64, Box<dyn Target>>,
    /// This round's verdict on each target's lock, by retention.
    checked: BTreeMap<u64, Result<(), String>>,
    /// Each tenant's archived size as the target last said: decides when the `archive_every`
    /// trigger fires and what the lag is while the target cannot be read, never where a run
    /// starts.
    known: HashMap<String, u64>,
}

impl Worker {
    fn run(mut self) {
        let interval = self.config.settings.interval;
        let poll = interval.min(POLL);
        let mut next_round = Instant::now();
        loop {
            if Instant::now() >= next_round || self.size_due() {
                let started = Instant::now();
                self.round();
                next_round = started + interval;
            } else {
                self.refresh_lag();
            }
            let wake_at = next_round.min(Instant::now() + poll);
            if self.pause_until(wake_at) {
                break;
            }
        }
    }

    /// Sleeps until `deadline`; `true` when stopping was signalled.
    fn pause_until(&self, deadline: Instant) -> bool {
        let mut stop = self
            .shared
            .stop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if *stop {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stop = self
                .shared
                .wake
                .wait_timeout(stop, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Whether a log this instance archives has `archive_every` signed entries beyond what the
    /// target last said it holds. Only after a round that worked, so that a failing target is
    /// retried at the interval, not at every look.
    fn size_due(&self) -> bool {
        let Some(every) = self.config.settings.every else {
            return false;
        };
        if self.board.lease() != LeaseState::Held || self.board.failing() {
            return false;
        }
        let Some(store) = self.store.as_deref() else {
            return false;
        };
        let Ok(tenants) = store.tenants() else {
            return false;
        };
        tenants.iter().any(|tenant| {
            let Some(&archived) = self.known.get(&tenant.name) else {
                return false;
            };
            let signed = store
                .latest_checkpoint(&tenant.name)
                .ok()
                .flatten()
                .map_or(0, |c| c.size);
            signed.saturating_sub(archived) >= every
        })
    }

    /// Measures each log's lag again between rounds, against the archived size the target
    /// last said, so that the lag grows in `/health` and the metrics while entries wait for
    /// the next round. Failures are left to the next round to report.
    fn refresh_lag(&self) {
        let Some(store) = self.store.as_deref() else {
            return;
        };
        let Ok(tenants) = store.tenants() else {
            return;
        };
        let now = self.config.clock.now();
        for tenant in tenants {
            if let Some(&archived) = self.known.get(&tenant.name)
                && let Ok(lag) = lag(store, &tenant.name, archived, now)
            {
                self.board.set_tenant(&tenant.name, lag);
            }
        }
    }

    /// One round over every tenant: archive (with the lease) or only read where the archive
    /// stands (without it), and report.
    fn round(&mut self) {
        let now = self.config.clock.now();
        self.checked.clear();
        let store = match self.store.take() {
            Some(store) => store,
            None => match self.config.store.open_reader() {
                Ok(store) => store,
                Err(error) => {
                    let failure = Failure {
                        tenant: None,
                        message: format!("cannot open the store to archive from: {error}"),
                    };
                    self.board.finish_round(false, &[failure], now);
                    return;
                }
            },
        };
        let (archiving, failures) = self.round_with(store.as_ref(), now);
        self.store = Some(store);
        if let Some(failures) = failures {
            self.board.finish_round(archiving, &failures, now);
        }
    }

    /// The round on `store`: whether this instance archived, and what failed (`None`: the
    /// round was cut short by stopping, and reports nothing).
    fn round_with(&mut self, store: &dyn Store, now: Timestamp) -> (bool, Option<Vec<Failure>>) {
        let mut failures = Vec::new();
        let lease = |store: &dyn Store| match store.try_lease(LEASE) {
            Ok(true) => Ok(LeaseState::Held),
            Ok(false) => Ok(LeaseState::Waiting),
            Err(error) => Err(format!(
                "cannot ask the store for the archive lease: {error}"
            )),
        };
        let mut held = match lease(store) {
            Ok(state) => {
                self.board.set_lease(state);
                state == LeaseState::Held
            }
            Err(message) => {
                self.board.set_lease(LeaseState::Unknown);
                failures.push(Failure {
                    tenant: None,
                    message,
                });
                return (false, Some(failures));
            }
        };
        let tenants = match store.tenants() {
            Ok(tenants) => tenants,
            Err(error) => {
                failures.push(Failure {
                    tenant: None,
                    message: format!("cannot list the logs to archive: {error}"),
                });
                return (held, Some(failures));
            }
        };
        for tenant in &tenants {
            if self.shared.stopping() {
                return (held, None);
            }
            // Asked again before each log: a lease lost with a dropped connection is noticed
            // before anything more is written.
            if held {
                match lease(store) {
                    Ok(LeaseState::Held) => {}
                    Ok(state) => {
                        self.board.set_lease(state);
                        held = false;
                    }
                    Err(message) => {
                        self.board.set_lease(LeaseState::Unknown);
                        failures.push(Failure {
                            tenant: None,
                            message,
                        });
                        return (false, Some(failures));
                    }
                }
            }
            let archived = match self.tenant_round(store, tenant, held) {
                Ok(archived) => Some(archived),
                Err(_) if self.shared.stopping() => return (held, None),
                Err(message) => {
                    failures.push(Failure {
                        tenant: Some(tenant.name.clone()),
                        message,
                    });
                    self.known.get(&tenant.name).copied()
                }
            };
            if let Some(archived) = archived {
                match lag(store, &tenant.name, archived, now) {
                    Ok(lag) => self.board.set_tenant(&tenant.name, lag),
                    Err(error) => failures.push(Failure {
                        tenant: Some(tenant.name.clone()),
                        message: format!("cannot read the log to measure the archive lag: {error}"),
                    }),
                }
            }
        }
        (held, Some(failures))
    }

    /// Reads where `tenant`'s archive stands and, with the lease, brings it up to the log's
    /// latest checkpoint. The archived size after it.
    fn tenant_round(
        &mut self,
        store: &dyn Store,
        tenant: &Tenant,
        archiving: bool,
    ) -> Result<u64, String> {
        let days = self.config.settings.retention_days_of(&tenant.name);
        self.prepare_target(days)?;
        let target = Interruptible {
            inner: self.targets.get(&days).expect("opened above").as_ref(),
            shared: &self.shared,
        };
        let name = tenant.name.as_str();
        let signer = if archiving {
            Some(
                self.config
                    .keys
                    .signer(tenant)
                    .map_err(|e| format!("cannot sign the archive's manifests: {e}"))?,
            )
        } else {
            None
        };
        let key = match &signer {
            Some(signer) => signer.verifier(),
            None => {
                self.config
                    .keys
                    .verifiers(tenant)
                    .map_err(|e| format!("cannot read the log's verifier key: {e}"))?
                    .key
            }
        };
        let state = archived_state(&target, name, &key).map_err(|e| e.to_string())?;
        self.known.insert(name.to_string(), state.size);
        let Some(signer) = signer else {
            return Ok(state.size);
        };
        let signed = store
            .latest_checkpoint(name)
            .map_err(|e| e.to_string())?
            .map_or(0, |c| c.size);
        // Equal: nothing to do. Beyond the archive: archive. Behind it: `archive_tenant`
        // finds the two disagree and says so.
        if signed == state.size {
            return Ok(state.size);
        }
        let mut reached = state.size;
        let report = archive_tenant(
            store,
            name,
            &target,
            &signer,
            &self.config.options,
            &mut |progress| reached = progress.archived,
        );
        self.known.insert(name.to_string(), reached);
        let report = report.map_err(|e| e.to_string())?;
        if report.to_size > report.from_size {
            tracing::info!(
                tenant = name,
                from = report.from_size,
                to = report.to_size,
                files = report.files_written,
                bytes = report.bytes_written,
                "archived"
            );
        }
        Ok(report.to_size)
    }

    /// Opens the target of the retention `days` if it is not open, and checks its lock once
    /// per round.
    fn prepare_target(&mut self, days: u64) -> Result<(), String> {
        if let Some(verdict) = self.checked.get(&days) {
            return verdict.clone();
        }
        let verdict = self.open_and_check(days);
        self.checked.insert(days, verdict.clone());
        verdict
    }

    fn open_and_check(&mut self, days: u64) -> Result<(), String> {
        let settings = &self.config.settings;
        if !self.targets.contains_key(&days) {
            let spec = ArchiveTargetSpec {
                url: settings.target.clone(),
                retention: Duration::from_secs(days.saturating_mul(86_400)),
                allow_unlocked: settings.allow_unlocked,
            };
            let target = (self.config.opener)(&spec)
                .map_err(|e| format!("cannot open the archive target: {e}"))?;
            self.targets.insert(days, target);
        }
        let target = self.targets.get(&days).expect("opened above");
        let lock = target.lock_status().map_err(|e| {
            format!(
                "cannot read the lock of the archive target {}: {e}",
                target.describe()
            )
        })?;
        self.board.set_immutable(lock.immutable);
        if !lock.immutable && !settings.allow_unlocked {
            return Err(format!(
                "the archive target {} does not keep what it is given immutable ({}); sealtrail does not archive to it unless --archive-allow-unlocked (archive_allow_unlocked = true) is given",
                target.describe(),
                lock.detail
            ));
        }
        Ok(())
    }
}

/// Where `tenant`'s archive stands against its log at `now`, the archive holding `archived`
/// entries of it.
pub fn lag(
    store: &dyn Store,
    tenant: &str,
    archived: u64,
    now: Timestamp,
) -> Result<TenantLag, StoreError> {
    let size = store.size(tenant)?;
    let signed = store.latest_checkpoint(tenant)?.map_or(0, |c| c.size);
    let lag_seconds = if archived >= signed {
        Some(0.0)
    } else {
        // The oldest signed entry the archive does not hold yet.
        match store.entry(tenant, archived) {
            Ok(Some(bytes)) => Entry::parse(&bytes).ok().map(|entry| {
                let waited = now.unix_micros() - entry.server.received_at.unix_micros();
                waited.max(0) as f64 / 1e6
            }),
            Ok(None) | Err(StoreError::BadRow { .. }) => None,
            Err(error) => return Err(error),
        }
    };
    Ok(TenantLag {
        archived,
        lag_entries: size.saturating_sub(archived),
        lag_seconds,
    })
}

/// A target that refuses every read and write once stopping is signalled, so that a long run
/// ends at its next step rather than keeping the server from stopping. A run cut off anywhere
/// resumes from the last manifest.
struct Interruptible<'a> {
    inner: &'a dyn Target,
    shared: &'a Shared,
}

impl Interruptible<'_> {
    fn go_on(&self) -> Result<(), TargetError> {
        if self.shared.stopping() {
            return Err(TargetError::Config(
                "sealtrail is stopping; the archive resumes from its last manifest at the next start"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Target for Interruptible<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn lock_status(&self) -> Result<sealtrail_archive::LockStatus, TargetError> {
        self.inner.lock_status()
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, TargetError> {
        self.go_on()?;
        self.inner.list(prefix)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        self.go_on()?;
        self.inner.get(key)
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put, TargetError> {
        self.go_on()?;
        self.inner.put_new(key, bytes)
    }

    fn put_new_all(&self, objects: &[(String, Vec<u8>)]) -> Result<Vec<Put>, TargetError> {
        self.go_on()?;
        self.inner.put_new_all(objects)
    }
}
