//! The writer thread: its loop, and committing one group of jobs.
//!
//! The loop takes the first queued job and then whatever else is already waiting, up to
//! [`MAX_GROUP_EVENTS`] events, so that concurrent requests share one transaction and one
//! fsync. A group commits whole or not at all, and no requester is answered before the commit
//! returns: that is what makes a receipt a promise of durability. After a commit the writer
//! publishes each log's new head for readers in this process and, with `--audit-stdout`,
//! prints the committed entries.
//!
//! It also keeps each tenant's tail in memory (size, last hash, Merkle frontier), and re-reads
//! it from the store under the tenant's lock whenever the store's size differs, since other
//! processes may append to the same log.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use sealtrail_core::canonical::Entry;
use sealtrail_core::merkle::TreeBuilder;
use sealtrail_core::note::SignerKey;
use sealtrail_core::{Hash, Timestamp, leaf_hash};
use sealtrail_store::{self as store, Store, StoreError};

use super::group::{GroupWork, Written};
use super::holding::HoldState;
use super::spooling::{DRAIN_TICK, SpoolState};
use super::{
    Answer, Job, LedgerConfig, LedgerError, LogHead, MAX_GROUP_EVENTS, Outcome, Refusal, Reply,
    Submission,
};
use crate::clock::Clock;
use crate::follower::Appended;
use crate::keys::KeyResolver;
use crate::recent::RecentEntries;

/// A tenant as the writer keeps it in memory.
pub(super) struct TenantState {
    pub(super) origin: String,
    pub(super) size: u64,
    pub(super) last_hash: Hash,
    pub(super) tree: TreeBuilder,
    /// The size of the latest checkpoint this writer knows of, and when this writer last saw
    /// the log checkpointed; a hint for when to look, checked against the store before signing.
    pub(super) checkpointed_size: u64,
    pub(super) checkpointed_at: Option<Instant>,
    /// Set when a failed transaction may have left this tail ahead of the store: the next use
    /// reloads it. The state itself is kept rather than dropped, so that a log still waiting
    /// for a checkpoint is not forgotten until its tenant writes again.
    pub(super) stale: bool,
    /// Failed attempts to sign this log's checkpoint since the last success, and when the
    /// next attempt is due: signing is retried with a growing delay until it succeeds.
    pub(super) sign_failures: u32,
    pub(super) retry_signing_at: Option<Instant>,
    /// The `received_at` of the log's last entry: no later entry gets an earlier one, so that
    /// acceptance times never go backwards along the log, whatever the clock does.
    pub(super) last_received_at: Option<Timestamp>,
    /// Whether the clock was last seen behind `last_received_at`: the warning about it is
    /// logged once when that starts, not for every entry until the clock catches up.
    pub(super) clock_behind: bool,
}

/// The writer thread's state: everything it keeps between groups.
pub(super) struct Writer {
    /// The one write connection of this process; every group, drain and checkpoint uses it.
    pub(super) store: Box<dyn Store>,
    pub(super) config: LedgerConfig,
    /// Which key signs each log.
    pub(super) keys: KeyResolver,
    /// The signing keys found so far, by origin.
    pub(super) signers: HashMap<String, SignerKey>,
    /// The tails of the logs this writer has touched, checked against the store under each
    /// tenant's lock before use; cleared when a group fails, since they may then be ahead of
    /// the database.
    pub(super) tenants: HashMap<String, TenantState>,
    /// Shared with every [`super::Ledger`] handle, which answers `head()` from it without
    /// asking the writer thread.
    pub(super) heads: Arc<Mutex<HashMap<String, LogHead>>>,
    /// The sum of `heads`' sizes, published with them for the followers' pacing.
    pub(super) appended: Appended,
    /// The entries of the transaction under way, per tenant: once it commits, written to
    /// stdout for `--audit-stdout` and handed to `recent`; dropped if it does not.
    pub(super) written: Vec<Written>,
    /// The entries committed last, for the followers in this process ([`crate::recent`]).
    pub(super) recent: RecentEntries,
    /// With PostgreSQL: where events go while the database is unreachable.
    pub(super) spool: Option<SpoolState>,
    /// The frozen tenants' hold files (`on_frozen = "spool"`); `None` for a ledger started
    /// without spool files (the command line's), which never holds events.
    pub(super) holds: Option<HoldState>,
    /// Every time the writer records (acceptance, checkpoint, creation, revocation) is read
    /// from this clock, so that a test can fix them.
    pub(super) clock: Clock,
}

/// An append job whose answer waits for its group's outcome, kept whole so that its events can
/// go to the spool if the store turns out to be unreachable.
pub(super) struct PendingAppend {
    pub(super) tenant: String,
    pub(super) submissions: Vec<Submission>,
    pub(super) reply: Reply<Vec<Outcome>>,
    /// What applying it in the group's transaction gave, if it was applied.
    pub(super) tried: Option<Result<Vec<Outcome>, LedgerError>>,
}

/// A job's answer, delivered once its group's commit outcome is known.
pub(super) enum Settled {
    Answer(Answer),
    Append(PendingAppend),
}

impl TenantState {
    /// A log's state as read from the store: its tail, the acceptance time of its last entry
    /// and the size of its latest checkpoint.
    pub(super) fn read(
        store: &dyn Store,
        tenant: &str,
        origin: String,
        checkpointed_size: u64,
    ) -> Result<TenantState, LedgerError> {
        let tail = store::tail(store, tenant)?;
        let last_received_at = last_received_at(store, tenant, tail.size)?;
        Ok(TenantState {
            origin,
            size: tail.size,
            last_hash: tail.last_hash,
            tree: tail.tree,
            checkpointed_size,
            checkpointed_at: None,
            stale: false,
            sign_failures: 0,
            retry_signing_at: None,
            last_received_at,
            clock_behind: false,
        })
    }

    /// The `received_at` of the next entry, given the clock's reading (or, for an event from
    /// the spool, the time it was accepted there): never earlier than the last entry's. When
    /// the clock has been set back, entries keep the last entry's time until the clock
    /// catches up; that is logged once, as a warning, when it starts.
    pub(super) fn next_received_at(&mut self, tenant: &str, now: Timestamp) -> Timestamp {
        match self.last_received_at {
            Some(last) if last > now => {
                if !self.clock_behind {
                    self.clock_behind = true;
                    tracing::warn!(
                        %tenant,
                        clock = %now.to_rfc3339(),
                        last_received_at = %last.to_rfc3339(),
                        "the clock is behind the log's last received_at (was it set back?); \
                         new entries keep that time until the clock catches up"
                    );
                }
                last
            }
            _ => {
                if self.clock_behind {
                    self.clock_behind = false;
                    tracing::info!(%tenant, "the clock has caught up with the log's received_at");
                }
                now
            }
        }
    }
}

/// The `received_at` of the last of a log's `size` entries, if it has any. An entry that
/// cannot be read as one leaves nothing to keep order with: that is logged (verification
/// reports the entry itself) and the clock alone decides, rather than stopping the writes.
fn last_received_at(
    store: &dyn Store,
    tenant: &str,
    size: u64,
) -> Result<Option<Timestamp>, LedgerError> {
    let Some(last) = size.checked_sub(1) else {
        return Ok(None);
    };
    let Some(bytes) = store.entry(tenant, last)? else {
        tracing::warn!(%tenant, seq = last, "the log's last entry is missing; received_at follows the clock");
        return Ok(None);
    };
    match Entry::parse(&bytes) {
        Ok(entry) => Ok(Some(entry.server.received_at)),
        Err(error) => {
            tracing::warn!(%tenant, seq = last, %error, "cannot read the log's last entry; received_at follows the clock");
            Ok(None)
        }
    }
}

impl Writer {
    /// The writer's state as a group's work sees it, borrowed for one write transaction:
    /// the appends of a group, a spool drain and an admin action all go through it.
    pub(super) fn group_work(&mut self) -> GroupWork<'_> {
        GroupWork {
            store: self.store.as_ref(),
            tenants: &mut self.tenants,
            keys: &self.keys,
            config: &self.config,
            written: &mut self.written,
            clock: &self.clock,
        }
    }

    pub(super) fn new(
        store: Box<dyn Store>,
        config: LedgerConfig,
        keys: KeyResolver,
        heads: Arc<Mutex<HashMap<String, LogHead>>>,
        spool: Option<SpoolState>,
        clock: Clock,
    ) -> Writer {
        Writer {
            store,
            config,
            keys,
            signers: HashMap::new(),
            tenants: HashMap::new(),
            heads,
            appended: Appended::default(),
            written: Vec::new(),
            recent: RecentEntries::new(crate::recent::DEFAULT_CAPACITY),
            spool,
            holds: None,
            clock,
        }
    }

    /// Marks every in-memory tail for reloading from the store, after a failed transaction
    /// that may have left them ahead of it. The tenants stay known, so that the checkpoints
    /// they wait for are still signed.
    pub(super) fn forget_tails(&mut self) {
        for state in self.tenants.values_mut() {
            state.stale = true;
        }
    }

    pub(super) fn run(mut self, receiver: Receiver<Job>) {
        // Logs left with entries outside every checkpoint (by a crash, or by a signing that
        // failed before the last stop) are signed now, not when their tenants next write.
        if !self.store_backing_off() {
            self.sign_due_checkpoints(false);
        }
        loop {
            let mut wait = if self.spool_pending() {
                DRAIN_TICK.min(self.config.checkpoint_interval)
            } else {
                self.config.checkpoint_interval
            };
            if let Some(hold_wait) = self.hold_wait() {
                wait = wait.min(hold_wait);
            }
            let first = match receiver.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stopping = false;
            if let Some(first) = first {
                let mut jobs = Vec::new();
                let mut events = 0;
                let mut next = Some(first);
                while let Some(job) = next.take() {
                    if matches!(job, Job::Shutdown) {
                        stopping = true;
                        break;
                    }
                    events += job.event_count();
                    jobs.push(job);
                    if events < MAX_GROUP_EVENTS {
                        next = receiver.try_recv().ok();
                    }
                }
                if !jobs.is_empty() {
                    self.commit_group(jobs);
                }
            } else {
                if self.spool_pending() {
                    self.drain_spool();
                }
                self.drain_holds();
            }
            if stopping {
                break;
            }
            if !self.store_backing_off() {
                self.sign_due_checkpoints(false);
            }
        }
        if self.spool_pending() {
            self.drain_spool();
        }
        // Held events of tenants no longer frozen; the others wait for the next start.
        self.drain_holds();
        // Every log whose latest checkpoint is smaller than the log gets a final one, also
        // those this writer never touched (another process may have appended to them).
        if let Err(error) = self.track_unsigned_logs() {
            tracing::error!(%error, "cannot find the logs that need a final checkpoint");
        }
        self.sign_due_checkpoints(true);
    }

    /// Runs a group of jobs in one transaction and answers each once it is durable. While
    /// events wait in the spool, new events of spooling tenants join them there, behind them,
    /// so that the log keeps the order in which events were accepted. A frozen tenant's
    /// events go to its hold file, and so do new events of a tenant whose hold file still has
    /// events, for the same reason (see `holding`).
    pub(super) fn commit_group(&mut self, jobs: Vec<Job>) {
        if self.spool_pending() {
            self.drain_spool();
        }
        self.drain_holds();
        let (held, jobs): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|job| match job {
            Job::Hold { .. } => true,
            Job::Append { tenant, .. } => self.hold_pending(tenant),
            _ => false,
        });
        if !held.is_empty() {
            self.hold_jobs(held);
        }
        // A freeze or unfreeze through this instance: what the writer knows of the frozen
        // tenants is read again after it, so that an unfrozen tenant's held events drain now.
        let freeze_changes = jobs.iter().any(|job| matches!(job, Job::SetFrozen { .. }));
        let (diverted, jobs): (Vec<Job>, Vec<Job>) = if self.spool_pending() {
            jobs.into_iter().partition(|job| match job {
                Job::Append { tenant, .. } => self.spoolable(tenant),
                _ => false,
            })
        } else {
            (Vec::new(), jobs)
        };
        if !diverted.is_empty() {
            let pending = diverted.into_iter().filter_map(|job| match job {
                Job::Append {
                    tenant,
                    submissions,
                    reply,
                } => Some(PendingAppend {
                    tenant,
                    submissions,
                    reply,
                    tried: None,
                }),
                _ => None,
            });
            self.spool_appends(pending.collect());
        }
        if jobs.is_empty() {
            return;
        }
        let events = jobs.iter().map(Job::event_count).sum();
        let started = Instant::now();
        let mut settled: Vec<Settled> = Vec::new();
        self.written.clear();
        let result = if self.store_backing_off() {
            // Appends of spooling tenants still go to the spool, below.
            for job in jobs {
                settled.push(unapplied(job));
            }
            Err(LedgerError::Store(StoreError::Unavailable(
                "the store was unreachable a moment ago; not retried yet".into(),
            )))
        } else {
            self.run_group(jobs, &mut settled)
        };
        // Handed on by `run_group` if it committed; dropped if it did not.
        self.written.clear();
        let error = result.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        crate::metrics::group_committed(events, started.elapsed(), error);
        if result.is_err() {
            // What was applied in memory may not match the database: reload on next use.
            self.forget_tails();
        }
        if let Some(spool) = &mut self.spool {
            match &result {
                Ok(()) => spool.down_since = None,
                // The next attempt waits from this failure.
                Err(error) if error.is_store_unreachable() => {
                    spool.down_since = Some(Instant::now());
                }
                Err(_) => {}
            }
        }
        let mut to_spool = Vec::new();
        let mut done = Vec::new();
        for item in settled {
            match item {
                Settled::Answer(answer) => answer(result.as_ref().map(|_| ())),
                Settled::Append(pending) => match &result {
                    Ok(()) => {
                        let answer = pending.tried.unwrap_or(Err(LedgerError::Closed));
                        let _ = pending.reply.send(answer);
                        done.push(pending.submissions);
                    }
                    Err(error)
                        if error.is_store_unreachable() && self.spoolable(&pending.tenant) =>
                    {
                        to_spool.push(pending);
                    }
                    Err(error) => {
                        let _ = pending.reply.send(Err(LedgerError::not_committed(error)));
                    }
                },
            }
        }
        if let Err(error) = &result {
            if error.is_store_unreachable() && !to_spool.is_empty() {
                tracing::warn!(%error, "the store is unreachable; spooling events locally");
            } else {
                tracing::error!(%error, "group commit failed; every request in it was told so");
            }
        }
        release_elsewhere(done);
        if !to_spool.is_empty() {
            self.spool_appends(to_spool);
        }
        if freeze_changes && result.is_ok() {
            self.frozen_changed();
            self.drain_holds();
        }
    }

    /// After a commit: the entries it wrote go to stdout (`--audit-stdout`) and to the
    /// followers' [`RecentEntries`]. Only here, so that nothing a rolled-back transaction
    /// wrote is ever handed on.
    pub(super) fn after_commit(&mut self) {
        if self.config.audit_stdout {
            write_audit_lines(&self.written);
        }
        for written in self.written.drain(..) {
            self.recent
                .publish(&written.tenant, written.first, written.entries);
        }
    }

    pub(super) fn publish_heads(&self) {
        let mut heads = self.heads.lock().expect("heads lock");
        for (name, state) in &self.tenants {
            heads.insert(
                name.clone(),
                LogHead {
                    size: state.size,
                    root: state.tree.root(),
                },
            );
        }
        self.appended
            .set(heads.values().map(|head| head.size).sum());
    }

    pub(super) fn run_group(
        &mut self,
        jobs: Vec<Job>,
        settled: &mut Vec<Settled>,
    ) -> Result<(), LedgerError> {
        let mut locks: Vec<&str> = jobs.iter().flat_map(Job::tenants).collect();
        locks.sort_unstable();
        locks.dedup();
        if let Err(error) = self.store.begin_write(&locks) {
            let _ = self.store.rollback();
            for job in jobs {
                settled.push(unapplied(job));
            }
            return Err(error.into());
        }
        let mut work = self.group_work();
        let mut failure = None;
        let mut pending_jobs = jobs.into_iter().peekable();
        while pending_jobs.peek().is_some() {
            // Consecutive appends are applied together, one call per tenant: one tail read,
            // one idempotency lookup and one insert per table for all of them.
            let mut run = Vec::new();
            while let Some(job) = pending_jobs.next_if(|job| matches!(job, Job::Append { .. })) {
                run.push(job);
            }
            let error = if run.is_empty() {
                let job = pending_jobs.next().expect("peeked");
                let (answer, error) = work.apply(job);
                settled.push(answer);
                error
            } else {
                work.apply_appends(run, settled)
            };
            if let Some(error) = error {
                failure = Some(error);
                break;
            }
        }
        if let Some(error) = failure {
            // A write failed or was left half done: nothing in this group may be committed.
            for job in pending_jobs {
                settled.push(unapplied(job));
            }
            if let Err(rollback) = self.store.rollback() {
                tracing::error!(error = %rollback, "cannot roll back a failed group");
            }
            return Err(error);
        }
        if let Err(error) = self.store.commit() {
            let _ = self.store.rollback();
            return Err(error.into());
        }
        // The entries before the count: a follower woken by the count finds them held.
        self.after_commit();
        self.publish_heads();
        Ok(())
    }

    pub(super) fn load_heads(&mut self) -> Result<(), LedgerError> {
        let store = self.store.as_ref();
        let tails = store::in_snapshot(store, || {
            let mut tails = Vec::new();
            for tenant in store.tenants()? {
                let tail = store::tail(store, &tenant.name)?;
                tails.push((tenant.name, tail));
            }
            Ok::<_, StoreError>(tails)
        })?;
        let mut heads = self.heads.lock().expect("heads lock");
        for (name, tail) in tails {
            heads.insert(
                name,
                LogHead {
                    size: tail.size,
                    root: tail.tree.root(),
                },
            );
        }
        self.appended
            .set(heads.values().map(|head| head.size).sum());
        Ok(())
    }
}

/// Frees a committed group's events on a thread of their own. Freeing a thousand parsed events
/// (each `details` a tree of maps) took an eighth of the writer's time, and the writer is the
/// one thread every append waits for. Should that thread be gone, they are freed here.
fn release_elsewhere(garbage: Vec<Vec<Submission>>) {
    static RELEASER: OnceLock<Option<SyncSender<Vec<Vec<Submission>>>>> = OnceLock::new();
    if garbage.is_empty() {
        return;
    }
    let releaser = RELEASER.get_or_init(|| {
        // Bounded, so that a releaser that falls behind slows the writer down rather than
        // letting memory to be freed pile up.
        let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Vec<Submission>>>(64);
        std::thread::Builder::new()
            .name("sealtrail-release".into())
            .spawn(move || receive.iter().for_each(drop))
            .ok()
            .map(|_| send)
    });
    if let Some(send) = releaser {
        // A send that fails hands the garbage back, and it is dropped here.
        let _ = send.send(garbage);
    }
}

/// The answer for a job that never ran because its group's transaction could not start: the
/// caller is told the group's error, as for a failed commit.
pub(super) fn fail_job(job: Job) -> Answer {
    match job {
        Job::Append { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::CreateToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RevokeToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::FirstAdminToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::EnsureTenant { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RecordConfig { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::SetFrozen { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::SetRetention { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Hold { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Restore { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Prune { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Shutdown => Box::new(|_| {}),
    }
}

/// A job that was not applied because its group failed before reaching it.
pub(super) fn unapplied(job: Job) -> Settled {
    match job {
        Job::Append {
            tenant,
            submissions,
            reply,
        } => Settled::Append(PendingAppend {
            tenant,
            submissions,
            reply,
            tried: None,
        }),
        other => Settled::Answer(fail_job(other)),
    }
}

/// Sends a job's result once the group's commit is known: the job's own answer if the commit
/// succeeded, the commit's error otherwise.
pub(super) fn answer_after_commit<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, LedgerError>,
) -> Answer {
    Box::new(move |commit: Result<(), &LedgerError>| {
        let answer = match commit {
            Ok(()) => result,
            Err(error) => Err(LedgerError::not_committed(error)),
        };
        let _ = reply.send(answer);
    })
}

/// A job's answer, and the error that aborts its group, if it failed that way (the job's own
/// reply then reports the group's failure).
pub(super) fn settle<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, LedgerError>,
) -> (Answer, Option<LedgerError>) {
    match result {
        Err(error) if error.aborts_group() => {
            let answer = answer_after_commit(reply, Err(LedgerError::Closed));
            (answer, Some(error))
        }
        result => (answer_after_commit(reply, result), None),
    }
}

/// Writes committed entries to stdout, one `AUDIT: {"tenant", "event_hash", "entry"}` line each;
/// `entry` is the log entry's exact bytes, so its hash can be recomputed from the line. A
/// failure to write is logged, never fatal: the entries are already durable in the store.
pub(super) fn write_audit_lines(written: &[Written]) {
    use std::io::Write as _;
    if written.iter().all(|w| w.entries.is_empty()) {
        return;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut result = Ok(());
    let entries = written
        .iter()
        .flat_map(|w| w.entries.iter().map(move |entry| (&w.tenant, entry)));
    for (tenant, entry) in entries {
        let tenant = serde_json::to_string(tenant).expect("a string serialises");
        result = out
            .write_all(b"AUDIT: {\"tenant\":")
            .and_then(|()| out.write_all(tenant.as_bytes()))
            .and_then(|()| {
                write!(
                    out,
                    ",\"event_hash\":\"{}\",\"entry\":",
                    leaf_hash(entry).to_hex()
                )
            })
            .and_then(|()| out.write_all(entry))
            .and_then(|()| out.write_all(b"}\n"));
        if result.is_err() {
            break;
        }
    }
    if let Err(error) = result.and_then(|()| out.flush()) {
        tracing::error!(%error, "cannot write AUDIT lines to stdout (the entries are committed)");
    }
}

/// A tenant's in-memory state, loaded or refreshed from the store (another process may have
/// appended since it was cached). Must run under the tenant's lock, since the tail it reads is
/// what the next entry's seq and `prev_hash` are assigned from.
pub(super) fn tenant_state<'t>(
    store: &dyn Store,
    tenants: &'t mut HashMap<String, TenantState>,
    tenant: &str,
) -> Result<&'t mut TenantState, LedgerError> {
    let size_in_store = store.size(tenant)?;
    let stale = tenants
        .get(tenant)
        .is_none_or(|s| s.stale || s.size != size_in_store);
    if stale {
        let record = store
            .tenant(tenant)?
            .ok_or_else(|| Refusal::UnknownTenant(tenant.to_string()))?;
        let checkpointed_size = store.latest_checkpoint(tenant)?.map_or(0, |c| c.size);
        let previous = tenants.remove(tenant);
        let mut state = TenantState::read(store, tenant, record.origin, checkpointed_size)?;
        if let Some(previous) = previous {
            // What this writer knows about signing the log and about the clock outlives a
            // reload of its tail.
            state.checkpointed_at = previous.checkpointed_at;
            state.sign_failures = previous.sign_failures;
            state.retry_signing_at = previous.retry_signing_at;
            state.clock_behind = previous.clock_behind;
        }
        tenants.insert(tenant.to_string(), state);
    }
    Ok(tenants.get_mut(tenant).expect("just inserted"))
}
