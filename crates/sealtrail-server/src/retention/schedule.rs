//! The server's retention schedule: with `archive_to` configured, every `retention_interval`
//! (1 h by default) `sealtrail serve` applies each tenant's retention period ([`super::apply`])
//! against the configured archive, as `sealtrail retention apply` would, with `sealtrail` as
//! the actor of every prune it records.
//!
//! - **Which logs.** Those with a period ([`Periods`], read again every round, so a period set
//!   through the admin API applies from the next round on); never `_system`, which records
//!   every prune and is kept for ever.
//! - **Against what.** The archive the archiver writes, read through [`ArchiveReader`]: the
//!   same target, opened the same way, but read-only, and refused like the archiver refuses
//!   it when it does not keep objects immutable and that was not allowed. Nothing is pruned
//!   that the archive does not hold byte for byte (the comparison in [`super::apply`]).
//! - **One instance at a time.** Each round, and again before each log, the schedule asks
//!   its own store connection for the lease [`LEASE`] ([`Store::try_lease`]: a session
//!   advisory lock on PostgreSQL, `DIR/retention.lease` on the embedded store). Without it,
//!   the instance does nothing: two instances pruning the same log would only have the store
//!   refuse the second mark.
//! - **Off the runtime.** A round reads the store, reads the archive (an S3 target blocks on a
//!   runtime of its own) and waits for the writer ([`Ledger::prune_blocking`]), so it runs on
//!   the blocking pool; it stops between logs, and at its next archive read, once shutdown is
//!   signalled.
//! - **What it reports.** Each application of a period is counted in
//!   `sealtrail_retention_runs_total{outcome}` (`pruned`, `nothing`, `refused`, `failed`; a
//!   round that cannot start is one `failed`) and each pruned entry in
//!   `sealtrail_retention_pruned_entries_total{tenant}`. A prune is logged at `info`, a
//!   refusal at `warn` and a failure at `error`, each with the reason; every prune is also
//!   its `sealtrail.retention.pruned` entry in `_system`.

use std::collections::BTreeMap;
use std::time::Duration;

use sealtrail_archive::{LockStatus, Put, Target, TargetError};
use sealtrail_store::{Location, Store, StoreError, Tenant};

use super::archive::{ArchiveReader, ArchiveUnusable, ReadOnly};
use super::{Applied, ApplyError, Periods, apply, cutoff};
use crate::clock::Clock;
use crate::ledger::{Ledger, LedgerError, Refusal, SYSTEM_TENANT};
use crate::metrics::{self, RetentionOutcome};
use crate::shutdown::Shutdown;

/// The name of the retention schedule's lease in the store.
pub const LEASE: &str = "retention";

/// The actor of the prunes the schedule records.
pub const ACTOR: &str = "sealtrail";

/// What the schedule needs.
pub struct Schedule {
    /// The store it reads the logs from, through a connection of its own (which holds the
    /// lease).
    pub store: Location,
    /// The archive it compares with.
    pub archive: ArchiveReader,
    /// The writer that records and makes each prune.
    pub ledger: Ledger,
    /// How often it applies the periods.
    pub interval: Duration,
    /// What "now" is: entries received before `now - period` are old enough.
    pub clock: Clock,
}

/// Applies the periods every interval until shutdown (see the module docs). The first round
/// runs at once.
pub async fn run(schedule: Schedule, mut stop: Shutdown) {
    let interval = schedule.interval;
    let mut worker = Some(Worker {
        schedule,
        store: None,
        targets: BTreeMap::new(),
    });
    loop {
        let Some(mut taken) = worker.take() else {
            return;
        };
        let watching = stop.clone();
        let done = tokio::task::spawn_blocking(move || {
            taken.round(&watching);
            taken
        })
        .await;
        match done {
            Ok(back) => worker = Some(back),
            Err(error) => {
                // The worker went with the panicking thread: nothing more can run.
                tracing::error!(%error, "the retention schedule panicked; it stops until the server restarts");
                metrics::retention_run(RetentionOutcome::Failed);
                return;
            }
        }
        tokio::select! {
            () = stop.signalled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The schedule's state between rounds, moved onto the blocking pool for each.
struct Worker {
    schedule: Schedule,
    /// Its own connection to the store, opened at the first round; it holds the lease.
    store: Option<Box<dyn Store>>,
    /// The archive targets opened, by Object Lock retention in days (as the archiver opens
    /// them).
    targets: BTreeMap<u64, ReadOnly>,
}

/// Why one tenant's period was not applied.
enum NotApplied {
    /// A hold was placed between the plan and the prune: nothing more may go.
    Held,
    Refused(String),
    Failed(String),
}

impl Worker {
    /// One round over every log with a period. Failures are counted and logged here.
    fn round(&mut self, stop: &Shutdown) {
        let store = match self.store.take() {
            Some(store) => store,
            None => match self.open_store() {
                Ok(store) => store,
                Err(error) => {
                    metrics::retention_run(RetentionOutcome::Failed);
                    tracing::error!(%error, "cannot open the store to apply the retention periods");
                    return;
                }
            },
        };
        match self.round_with(store.as_ref(), stop) {
            Ok(()) => self.store = Some(store),
            // The connection may be gone (and with it a PostgreSQL lease): opened again next
            // round.
            Err(error) => {
                metrics::retention_run(RetentionOutcome::Failed);
                tracing::error!(%error, "cannot apply the retention periods");
            }
        }
    }

    fn open_store(&self) -> Result<Box<dyn Store>, StoreError> {
        // Never a new, empty embedded store where the server's went missing.
        if let Location::Embedded { data_dir } = &self.schedule.store
            && !sealtrail_store::DataDir::new(data_dir).database().exists()
        {
            return Err(StoreError::Missing(format!(
                "the store in {} is gone",
                data_dir.display()
            )));
        }
        self.schedule.store.open_reader()
    }

    fn round_with(&mut self, store: &dyn Store, stop: &Shutdown) -> Result<(), StoreError> {
        if !store.try_lease(LEASE)? {
            return Ok(());
        }
        let periods = Periods::read(store)?;
        let holds = crate::holds::holds(store)?;
        let now = self.schedule.clock.now();
        for tenant in store.tenants()? {
            if tenant.name == SYSTEM_TENANT {
                continue;
            }
            let Some(period) = periods.of(&tenant.name) else {
                continue;
            };
            if stop.is_signalled() {
                return Ok(());
            }
            // Asked again before each log: a lease lost with a dropped connection is noticed
            // before anything more is pruned.
            if !store.try_lease(LEASE)? {
                return Ok(());
            }
            let older_than = Duration::from_secs(period.days.saturating_mul(86_400));
            let result = self.apply_one(store, &tenant, cutoff(now, older_than), &holds, stop);
            if stop.is_signalled() && result.is_err() {
                // Cut off by the shutdown: not the archive's or the store's doing.
                return Ok(());
            }
            self.report(&tenant.name, period.days, result);
        }
        Ok(())
    }

    /// Applies the period to one log, entries received before `cutoff` being old enough.
    fn apply_one(
        &mut self,
        store: &dyn Store,
        tenant: &Tenant,
        cutoff: sealtrail_core::Timestamp,
        holds: &[crate::holds::Hold],
        stop: &Shutdown,
    ) -> Result<Applied, NotApplied> {
        let unusable = |error: ArchiveUnusable| match error {
            ArchiveUnusable::Unlocked { .. } => NotApplied::Refused(error.to_string()),
            ArchiveUnusable::Failed(message) => NotApplied::Failed(message),
        };
        let archive = &self.schedule.archive;
        let key = archive.key(tenant).map_err(unusable)?;
        let days = archive.retention_days_of(&tenant.name);
        let target = match self.targets.remove(&days) {
            // The lock is asked again each time: Object Lock can be turned off on a bucket.
            Some(target) => archive.check_lock(&target).map(|()| target),
            None => archive.open(days),
        }
        .map_err(unusable)?;
        let applied = apply(
            store,
            &self.schedule.ledger,
            &tenant.name,
            cutoff,
            &Stoppable {
                inner: &target,
                stop,
            },
            &key,
            holds,
            ACTOR,
        );
        self.targets.insert(days, target);
        match applied {
            Ok(applied) => Ok(applied),
            // A hold placed while the range was compared: nothing is wrong, and the next
            // round's plan stops at it.
            Err(ApplyError::Ledger(LedgerError::Invalid(
                refusal @ Refusal::HeldMeanwhile { .. },
            ))) => {
                tracing::info!(tenant = %tenant.name, %refusal, "a legal hold placed meanwhile stopped the prune");
                Err(NotApplied::Held)
            }
            Err(error @ ApplyError::ArchiveDiffers { .. })
            | Err(error @ ApplyError::Ledger(LedgerError::Invalid(_))) => {
                Err(NotApplied::Refused(error.to_string()))
            }
            Err(error) => Err(NotApplied::Failed(error.to_string())),
        }
    }

    /// Counts and logs what applying `tenant`'s period of `days` did.
    fn report(&self, tenant: &str, days: u64, result: Result<Applied, NotApplied>) {
        match result {
            Ok(Applied {
                plan,
                entries_compared,
                pruned: Some(pruned),
            }) => {
                metrics::retention_run(RetentionOutcome::Pruned);
                metrics::retention_pruned(tenant, pruned.removed);
                tracing::info!(
                    tenant,
                    days,
                    from = plan.pruned_below,
                    below = pruned.below,
                    removed = pruned.removed,
                    entries_compared,
                    archive = %pruned.archive,
                    system_seq = pruned.system_seq,
                    limited_by = %plan.limited_by,
                    "pruned entries older than the retention period"
                );
            }
            Ok(Applied { plan, .. }) => {
                metrics::retention_run(RetentionOutcome::Nothing);
                tracing::debug!(tenant, days, limited_by = %plan.limited_by, "nothing more to prune");
            }
            Err(NotApplied::Held) => metrics::retention_run(RetentionOutcome::Nothing),
            Err(NotApplied::Refused(reason)) => {
                metrics::retention_run(RetentionOutcome::Refused);
                tracing::warn!(tenant, days, %reason, "retention refused to prune");
            }
            Err(NotApplied::Failed(reason)) => {
                metrics::retention_run(RetentionOutcome::Failed);
                tracing::error!(tenant, days, %reason, "cannot apply the retention period");
            }
        }
    }
}

/// A target that refuses every read once shutdown is signalled, so that a long comparison
/// ends at its next read rather than keeping the server from stopping. Nothing is pruned
/// then: the comparison fails before the writer is asked.
struct Stoppable<'a> {
    inner: &'a dyn Target,
    stop: &'a Shutdown,
}

impl Stoppable<'_> {
    fn go_on(&self) -> Result<(), TargetError> {
        if self.stop.is_signalled() {
            return Err(TargetError::Config(
                "sealtrail is stopping; retention applies the period again at the next start"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Target for Stoppable<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn lock_status(&self) -> Result<LockStatus, TargetError> {
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
        self.inner.put_new(key, bytes)
    }
}
