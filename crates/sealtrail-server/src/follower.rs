//! Followers of the committed log: background threads that read every tenant's new entries in
//! seq order and hand them, a batch at a time, to something that derives state from them.
//!
//! The log is the source of truth; everything derived from it — the query index today, and
//! gap detectors, monitors, delivery to other systems or archives later — needs the same
//! machinery: know where it stands per tenant, read what follows in batches, keep going without
//! starving any tenant, pause when idle, stop cleanly, resume after a restart where it left
//! off, say how far behind it is, and let readers wait until it has caught up with an entry.
//! [`Follower`] is that machinery, once; what a follower *does* with the entries is a [`Follow`].
//!
//! ## How a follower runs
//!
//! One thread per follower. Each round takes every tenant of the log in turn and reads up to
//! [`FollowerOptions::batch`] entries after the tenant's cursor, so that one busy tenant cannot
//! starve the others, and gives them to [`Follow::apply`]. While there is a backlog, rounds run
//! back to back; a round that finds nothing waits [`FollowerOptions::poll_interval`]; a round
//! that finds only a trickle (less than half a batch) starts the next one at most
//! [`FollowerOptions::round_pace`] after itself, so that each of the follower's writes covers
//! many entries rather than a few. Two things cut that pause short: a reader waiting for an
//! entry ([`Watermarks::wait_for`]), and — for a follower given the writer's count of committed
//! entries ([`FollowerOptions::appended`]) — half a batch gathered since the round started, so
//! that a pause never lets more pile up than one round takes. A failing round is logged and
//! retried a second later.
//!
//! Each tenant's cursor is the number of its entries the follower has applied (`next_seq`):
//! every entry with `seq < cursor` is done. After each batch the new cursor is published to
//! [`Watermarks`], which request handlers hold to read it or wait for it (read-your-writes).
//!
//! ## Adding a follower
//!
//! Implement [`Follow`] and start it with [`Follower::start`]; the query index
//! ([`crate::index`]) is the example to copy.
//!
//! - **Its state lives in its own storage**, never in the log: the index keeps
//!   `DIR/index.db`. A new file in the data directory gets its name in
//!   [`sealtrail_store::DataDir`]. The follower's constructor opens the state before
//!   [`Follower::start`] and owns it; the thread is the only writer.
//! - **It restarts from its own persisted cursor.** [`Follow::apply`] must persist the entries'
//!   effects and the new cursor together (one transaction), and [`Follow::cursors`] returns what
//!   was persisted. A crash then loses at most some of the latest batches, whose entries are
//!   simply given to the follower again; nothing is applied twice and nothing is skipped.
//! - **Its state is derived from the log and rebuildable.** If the state is missing, of another
//!   version, or was built from another log (the index compares the id of the last entry it
//!   applied with the log's entry at that seq), the constructor throws it away and starts from
//!   seq 0. Nothing is ever only in a follower's state.
//! - **It never writes to the log** and never blocks the write path: it reads through its own
//!   read-only connection.
//!
//! ## Where the entries come from
//!
//! A follower in the writer's process is given the writer's [`RecentEntries`]
//! ([`FollowerOptions::recent`]): when the tenant's cursor lies within the entries the writer
//! committed last, the batch is taken from there, and read from the log otherwise (behind what
//! is held, after a restart, or for a log another process writes). Those are the committed
//! entries' own bytes, handed over only after their commit returned, so a follower cannot tell
//! the two apart; what it saves is its own read of the newest pages of the log.
//!
//! **Architecture invariant:** a follower learns about entries only from the committed log, in
//! seq order (read from it, or from the writer's copy of what it committed), so its state is a
//! function of the log's prefix up to its cursor.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sealtrail_core::Timestamp;
use sealtrail_store::{EntryRow, Store, StoreError};

use crate::clock::Clock;
use crate::recent::RecentEntries;

/// Something that derives state from the committed log, entry by entry; see the module docs.
pub trait Follow: Send + 'static {
    /// Why applying a batch failed. The follower logs it and tries the same batch again later.
    type Error: std::fmt::Display;

    /// A short name for the thread (`sealtrail-<name>`) and the logs.
    fn name(&self) -> &str;

    /// Where the follower stands, from its own persisted state: for each tenant it has applied
    /// anything of, the seq of the next entry it needs. Tenants not listed start at seq 0.
    /// Asked once, when the follower starts.
    fn cursors(&self) -> HashMap<String, u64>;

    /// Applies a tenant's next committed entries, `(seq, bytes)` in seq order starting at the
    /// tenant's cursor (a row the store holds no entry bytes for comes as its `BadValue`: the
    /// follower passes over it, logged, so that one damaged row does not stop it for ever), and persists their effect with the new cursor, which it returns:
    /// normally one past the last entry. A follower that cannot take some of them returns the
    /// cursor it reached (the old one if none), and what it did not take comes again in the
    /// next round. `log` is the log the entries come from, for anything else the follower
    /// needs to read from it.
    fn apply(
        &mut self,
        log: &dyn Store,
        tenant: &str,
        entries: &[(u64, EntryRow)],
    ) -> Result<u64, Self::Error>;

    /// What readers may rely on once the tenant's cursor is `cursor`: every entry below the
    /// returned seq is applied as they see it (read-your-writes waits for it). By default the
    /// cursor itself; the query index publishes less while it loads a tenant in bulk, whose
    /// entries become searchable together at the end of the load.
    fn visible(&self, tenant: &str, cursor: u64) -> u64 {
        let _ = tenant;
        cursor
    }

    /// How far behind the log the follower is, in seconds, after each round: the age of the
    /// newest entry applied while more entries wait, else 0. For a metric; by default unused.
    fn report_lag(&self, seconds: f64) {
        let _ = seconds;
    }

    /// Called after a round that found no new entry for any tenant, before the follower
    /// pauses: for work that goes by the clock rather than by entries (a monitor ends the
    /// windows that passed while the log was quiet). By default nothing.
    fn idle(&mut self, log: &dyn Store) {
        let _ = log;
    }
}

/// How a follower paces itself.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    /// At most this many entries per tenant per round, in one [`Follow::apply`].
    pub batch: usize,
    /// How often an idle follower looks for new entries.
    pub poll_interval: Duration,
    /// A round that finds fewer than half a batch starts at most this often.
    pub round_pace: Duration,
    /// The writer's count of committed entries, when the follower runs in the writer's
    /// process: the pause after a round ends once half a batch has been committed since the
    /// round started. Without it the follower goes by `round_pace` alone.
    pub appended: Option<Appended>,
    /// The entries the writer committed last, when the follower runs in the writer's process:
    /// a batch that starts within them is taken from memory instead of the log (see
    /// [`crate::recent`]). Without it, every batch is read from the log.
    pub recent: Option<RecentEntries>,
    /// What "now" is when the follower says how far behind it is.
    pub clock: Clock,
}

/// How many entries the log's writer has committed in all, over every tenant, as it publishes
/// after each commit. Cloning is cheap; every clone reads the same count.
#[derive(Debug, Clone, Default)]
pub struct Appended(Arc<AtomicU64>);

impl Appended {
    /// Publishes the writer's total after a commit.
    pub fn set(&self, total: u64) {
        self.0.store(total, Ordering::Release);
    }

    /// The latest total published.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Why a follower did not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    /// The follower's own state could not be opened (or rebuilt).
    #[error(transparent)]
    State(Box<dyn std::error::Error + Send + Sync>),
    /// The log could not be opened for reading.
    #[error(transparent)]
    Log(#[from] StoreError),
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
}

/// What the follower's thread and the readers share.
struct Shared {
    /// Each tenant's published cursor ([`Follow::visible`]): every entry below it is applied
    /// as readers see it.
    cursors: Mutex<HashMap<String, u64>>,
    /// Bumped after every batch applied, so waiters wake up and look at the cursors again.
    progress: tokio::sync::watch::Sender<u64>,
    /// Set to end the thread after its current batch.
    stop: Mutex<bool>,
    /// Wakes a pausing thread early: to stop, or because a reader waits.
    wake: Condvar,
}

/// A running follower; [`Follower::stop`] ends it.
pub struct Follower {
    name: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts `follow` on its own thread, reading the committed log through `log` (a reader,
    /// which the thread then owns), from the cursors `follow` persisted.
    pub fn start<F: Follow>(
        follow: F,
        log: Box<dyn Store>,
        options: FollowerOptions,
    ) -> Result<Follower, FollowerError> {
        debug_assert!(options.batch > 0, "a batch holds at least one entry");
        let name = follow.name().to_string();
        let (progress, _) = tokio::sync::watch::channel(0);
        let cursors = follow.cursors();
        let published = cursors
            .iter()
            .map(|(tenant, cursor)| (tenant.clone(), follow.visible(tenant, *cursor)))
            .collect();
        let shared = Arc::new(Shared {
            cursors: Mutex::new(published),
            progress,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let worker = Worker {
            follow,
            cursors,
            log,
            options,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("sealtrail-{name}"))
            .spawn(move || worker.run())
            .map_err(|source| FollowerError::Thread {
                name: name.clone(),
                source,
            })?;
        Ok(Follower {
            name,
            shared,
            thread: Some(thread),
        })
    }

    /// The cursors as readers see them. Cloning is cheap.
    pub fn watermarks(&self) -> Watermarks {
        Watermarks {
            shared: self.shared.clone(),
        }
    }

    /// Stops the thread after its current batch and waits for it. What is not applied yet is
    /// applied on the next start.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the {} thread panicked", self.name);
        }
    }

    fn signal_stop(&self) {
        *self.shared.stop.lock().expect("follower stop lock") = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for Follower {
    /// A follower dropped without [`Follower::stop`] (say, the application failed to start)
    /// still stops its thread, without waiting for it.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.signal_stop();
        }
    }
}

/// The read side of a follower's progress: how far it is per tenant, and waiting for it.
#[derive(Clone)]
pub struct Watermarks {
    shared: Arc<Shared>,
}

impl Watermarks {
    /// How many of the tenant's entries the follower has applied: every `seq` below this.
    pub fn watermark(&self, tenant: &str) -> u64 {
        self.shared
            .cursors
            .lock()
            .expect("follower cursors lock")
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    /// How many callers are in [`Watermarks::wait_for`] right now: each holds a subscription
    /// to the progress signal while it waits, and nothing else does.
    pub fn waiting(&self) -> usize {
        self.shared.progress.receiver_count()
    }

    /// Waits until the entry at `seq` is applied, at most `timeout`. On timeout, returns the
    /// watermark reached.
    pub async fn wait_for(&self, tenant: &str, seq: u64, timeout: Duration) -> Result<(), u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribing before looking means no batch between the look and the wait is missed.
        let mut progress = self.shared.progress.subscribe();
        if self.watermark(tenant) <= seq {
            // Someone waits: a follower pausing between rounds goes now.
            self.shared.wake.notify_all();
        }
        loop {
            if self.watermark(tenant) > seq {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out (the sender lives as long as `self`, so it is never closed).
                Ok(Err(_)) | Err(_) => return Err(self.watermark(tenant)),
            }
        }
    }
}

/// The follower thread's state.
struct Worker<F> {
    follow: F,
    /// Each tenant's cursor: where its next batch starts. What readers see is
    /// [`Follow::visible`] of it, in [`Shared::cursors`].
    cursors: HashMap<String, u64>,
    /// Read-only connection to the log.
    log: Box<dyn Store>,
    options: FollowerOptions,
    shared: Arc<Shared>,
}

/// What one round over every tenant did.
#[derive(Debug, Default)]
struct Round {
    applied: usize,
    /// While some tenant has more entries waiting: the oldest `received_at` (unix µs) of the
    /// newest entries applied for such tenants.
    behind: Option<i64>,
}

/// Why a round failed.
enum RoundError<E> {
    Log(StoreError),
    Follow(E),
}

impl<E: std::fmt::Display> std::fmt::Display for RoundError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundError::Log(error) => error.fmt(f),
            RoundError::Follow(error) => error.fmt(f),
        }
    }
}

impl<F: Follow> Worker<F> {
    fn run(mut self) {
        loop {
            if self.stopping() {
                break;
            }
            let round_started = Instant::now();
            let appended_before = self.options.appended.as_ref().map(Appended::total);
            let round = match self.round() {
                Ok(round) => round,
                Err(error) => {
                    tracing::error!(
                        follower = self.follow.name(),
                        %error,
                        "following the log failed; retrying in a second"
                    );
                    self.pause(Duration::from_secs(1));
                    Round::default()
                }
            };
            // How stale the follower is: while a tenant has more entries waiting, the age of
            // the newest entry applied (everything received after it is not applied yet);
            // once every tenant is caught up, nothing waits.
            let lag = round.behind.map_or(0.0, |received| {
                (self.options.clock.now().unix_micros() - received).max(0) as f64 / 1e6
            });
            self.follow.report_lag(lag);
            if round.applied == 0 {
                self.follow.idle(self.log.as_ref());
                self.pause(self.options.poll_interval);
            } else if round.applied < self.options.batch / 2 {
                // Caught up with a trickle (single events): let entries gather for a moment,
                // so that each of the follower's writes covers many entries rather than a few.
                self.gather(round_started, appended_before);
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.shared.stop.lock().expect("follower stop lock")
    }

    /// Sleeps up to `duration`, waking early to stop or for a waiting reader. Returns whether
    /// it was woken (or is stopping) rather than timed out.
    fn pause(&self, duration: Duration) -> bool {
        let stop = self.shared.stop.lock().expect("follower stop lock");
        if *stop {
            return true;
        }
        let (stop, waited) = self
            .shared
            .wake
            .wait_timeout(stop, duration)
            .expect("follower stop lock");
        *stop || !waited.timed_out()
    }

    /// The pause after a round that found only a trickle: until `round_pace` after the round
    /// started, unless a reader waits, the follower stops, or — when the writer's count is
    /// known — half a batch has been committed since `appended_before` (read as the round
    /// started), looked at every `poll_interval`.
    fn gather(&self, round_started: Instant, appended_before: Option<u64>) {
        let deadline = round_started + self.options.round_pace;
        let enough = (self.options.batch / 2) as u64;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let (Some(appended), Some(before)) = (&self.options.appended, appended_before) else {
                self.pause(left);
                return;
            };
            if appended.total().saturating_sub(before) >= enough {
                return;
            }
            if self.pause(left.min(self.options.poll_interval)) {
                return;
            }
        }
    }

    /// Applies the next batch of every tenant.
    fn round(&mut self) -> Result<Round, RoundError<F::Error>> {
        let tenants = self.log.tenants().map_err(RoundError::Log)?;
        let mut round = Round::default();
        for tenant in tenants {
            if self.stopping() {
                break;
            }
            let (applied, behind) = self.batch(&tenant.name)?;
            round.applied += applied;
            round.behind = match (round.behind, behind) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(round)
    }

    /// Applies up to a batch of the tenant's entries after its cursor. Returns how many were
    /// applied and, when a full batch was (so more may wait), when the last was received.
    fn batch(&mut self, tenant: &str) -> Result<(usize, Option<i64>), RoundError<F::Error>> {
        let cursor = self.cursors.get(tenant).copied().unwrap_or(0);
        let held = self
            .options
            .recent
            .as_ref()
            .and_then(|recent| recent.read(tenant, cursor, self.options.batch));
        // Where each batch came from, for `--log sealtrail_server::follower=trace`.
        let entries = match held {
            Some(entries) => {
                tracing::trace!(
                    follower = self.follow.name(),
                    tenant,
                    cursor,
                    entries = entries.len(),
                    "batch taken from memory"
                );
                entries
            }
            None => {
                let entries = self
                    .log
                    .entries(tenant, cursor, u64::MAX, self.options.batch)
                    .map_err(RoundError::Log)?;
                tracing::trace!(
                    follower = self.follow.name(),
                    tenant,
                    cursor,
                    entries = entries.len(),
                    "batch read from the log"
                );
                entries
            }
        };
        if entries.is_empty() {
            return Ok((0, None));
        }
        let reached = self
            .follow
            .apply(self.log.as_ref(), tenant, &entries)
            .map_err(RoundError::Follow)?;
        if reached <= cursor {
            return Ok((0, None));
        }
        self.cursors.insert(tenant.to_string(), reached);
        let visible = self.follow.visible(tenant, reached);
        self.shared
            .cursors
            .lock()
            .expect("follower cursors lock")
            .insert(tenant.to_string(), visible);
        self.shared.progress.send_modify(|n| *n = n.wrapping_add(1));
        let applied: Vec<&(u64, EntryRow)> = entries
            .iter()
            .take_while(|(seq, _)| *seq < reached)
            .collect();
        let behind = (applied.len() == self.options.batch)
            .then(|| {
                applied
                    .iter()
                    .rev()
                    .find_map(|(_, entry)| entry.as_deref().ok().and_then(received_at))
            })
            .flatten();
        Ok((applied.len(), behind))
    }
}

/// The `received_at` of a committed entry, in unix microseconds, if it reads. Every entry has
/// one (the server sets it); only the lag needs it, so an entry that does not read is passed
/// over rather than reported (the verifier reports damaged entries).
fn received_at(entry: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Received<'a> {
        #[serde(borrow)]
        received_at: Cow<'a, str>,
    }
    let entry: Received<'_> = sealtrail_core::canonical::read_fields(entry).ok()?;
    Timestamp::parse(&entry.received_at)
        .ok()
        .map(|t| t.unix_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Submission;
    use sealtrail_core::event::Event;
    use sealtrail_store::Location;

    /// Remembers every batch it is given, and persists its cursors in memory shared with the
    /// test, as a real follower would in its own storage.
    struct Recorder {
        tenant: &'static str,
        /// The cursors "persisted": they survive a stop and a new start.
        cursors: Arc<Mutex<HashMap<String, u64>>>,
        batches: Arc<Mutex<Vec<Vec<u64>>>>,
        /// Takes at most this many entries of a batch, to model a follower at its limits.
        take: usize,
    }

    impl Follow for Recorder {
        type Error = String;

        fn name(&self) -> &str {
            "recorder"
        }

        fn cursors(&self) -> HashMap<String, u64> {
            self.cursors.lock().unwrap().clone()
        }

        fn apply(
            &mut self,
            _log: &dyn Store,
            tenant: &str,
            entries: &[(u64, EntryRow)],
        ) -> Result<u64, String> {
            let mut cursors = self.cursors.lock().unwrap();
            let cursor = cursors.get(tenant).copied().unwrap_or(0);
            assert_eq!(entries[0].0, cursor, "a batch starts at the cursor");
            if tenant != self.tenant {
                return Ok(cursor);
            }
            let taken = &entries[..entries.len().min(self.take)];
            self.batches
                .lock()
                .unwrap()
                .push(taken.iter().map(|(seq, _)| *seq).collect());
            let reached = taken.last().map_or(cursor, |(seq, _)| seq + 1);
            cursors.insert(tenant.to_string(), reached);
            Ok(reached)
        }
    }

    const OPTIONS: FollowerOptions = FollowerOptions {
        batch: 10,
        poll_interval: Duration::from_millis(10),
        round_pace: Duration::from_millis(20),
        appended: None,
        recent: None,
        clock: Clock::system(),
    };

    fn event(n: u64) -> Submission {
        Submission {
            event: Event::from_owned_value(serde_json::json!({
                "action": "a.read",
                "outcome": "success",
                "actor": {"id": format!("u-{n}")},
            }))
            .unwrap(),
            idempotency_key: None,
        }
    }

    fn start(
        dir: &std::path::Path,
        cursors: &Arc<Mutex<HashMap<String, u64>>>,
        take: usize,
    ) -> (Follower, Arc<Mutex<Vec<Vec<u64>>>>) {
        start_with(dir, cursors, take, OPTIONS)
    }

    /// A [`Recorder`] of `acme` following the log in `dir` with `options`.
    fn start_with(
        dir: &std::path::Path,
        cursors: &Arc<Mutex<HashMap<String, u64>>>,
        take: usize,
        options: FollowerOptions,
    ) -> (Follower, Arc<Mutex<Vec<Vec<u64>>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            tenant: "acme",
            cursors: cursors.clone(),
            batches: batches.clone(),
            take,
        };
        let log = Location::new(dir, None).open_reader().unwrap();
        (Follower::start(recorder, log, options).unwrap(), batches)
    }

    /// Batches of at most `batch` entries, in seq order; after a stop, the next start resumes
    /// from the persisted cursor and applies nothing twice.
    #[tokio::test]
    async fn batches_follow_the_log_and_resume_from_the_persisted_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..25).map(event).collect())
            .await
            .unwrap();
        let cursors = Arc::new(Mutex::new(HashMap::new()));
        let (follower, batches) = start(dir.path(), &cursors, usize::MAX);
        let marks = follower.watermarks();
        marks
            .wait_for("acme", 24, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(marks.watermark("acme"), 25);
        let seen: Vec<Vec<u64>> = batches.lock().unwrap().clone();
        let flat: Vec<u64> = seen.iter().flatten().copied().collect();
        assert_eq!(flat, (0..25).collect::<Vec<u64>>());
        assert!(
            seen.iter().all(|batch| batch.len() <= OPTIONS.batch),
            "{seen:?}"
        );
        follower.stop();

        ledger
            .append("acme", (25..30).map(event).collect())
            .await
            .unwrap();
        let (follower, batches) = start(dir.path(), &cursors, usize::MAX);
        let marks = follower.watermarks();
        // The persisted cursor is published at once, before the first round.
        assert!(marks.watermark("acme") >= 25);
        marks
            .wait_for("acme", 29, Duration::from_secs(10))
            .await
            .unwrap();
        let flat: Vec<u64> = batches.lock().unwrap().iter().flatten().copied().collect();
        assert_eq!(flat, (25..30).collect::<Vec<u64>>());
        follower.stop();
        ledger.shutdown();
    }

    /// A follower that takes only part of a batch is given the rest again; waiting for an
    /// entry it has not reached times out with the watermark reached.
    #[tokio::test]
    async fn what_a_follower_does_not_take_comes_again() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..7).map(event).collect())
            .await
            .unwrap();
        let cursors = Arc::new(Mutex::new(HashMap::new()));
        let (follower, batches) = start(dir.path(), &cursors, 3);
        let marks = follower.watermarks();
        marks
            .wait_for("acme", 6, Duration::from_secs(10))
            .await
            .unwrap();
        let seen: Vec<Vec<u64>> = batches.lock().unwrap().clone();
        assert_eq!(seen, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(
            marks.wait_for("acme", 7, Duration::from_millis(50)).await,
            Err(7)
        );
        // A tenant the follower does not take from stays at 0.
        assert_eq!(marks.watermark("_system"), 0);
        follower.stop();
        ledger.shutdown();
    }

    /// A [`Recorder`] whose entries become visible to readers only in steps of `step`, as the
    /// query index's do while it loads in bulk.
    struct Stepped {
        recorder: Recorder,
        step: u64,
    }

    impl Follow for Stepped {
        type Error = String;

        fn name(&self) -> &str {
            "stepped"
        }

        fn cursors(&self) -> HashMap<String, u64> {
            self.recorder.cursors()
        }

        fn apply(
            &mut self,
            log: &dyn Store,
            tenant: &str,
            entries: &[(u64, EntryRow)],
        ) -> Result<u64, String> {
            self.recorder.apply(log, tenant, entries)
        }

        fn visible(&self, _tenant: &str, cursor: u64) -> u64 {
            cursor - cursor % self.step
        }
    }

    /// Batches start at the follower's own cursor, while readers see only what
    /// [`Follow::visible`] says, from the start on.
    #[tokio::test]
    async fn readers_see_what_is_visible_and_batches_go_on_from_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..7).map(event).collect())
            .await
            .unwrap();
        let cursors = Arc::new(Mutex::new(HashMap::from([("acme".to_string(), 1)])));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let stepped = Stepped {
            recorder: Recorder {
                tenant: "acme",
                cursors: cursors.clone(),
                batches: batches.clone(),
                take: 3,
            },
            step: 4,
        };
        let log = Location::new(dir.path(), None).open_reader().unwrap();
        let follower = Follower::start(stepped, log, OPTIONS).unwrap();
        let marks = follower.watermarks();
        marks
            .wait_for("acme", 3, Duration::from_secs(10))
            .await
            .unwrap();
        // Entry 3 is waited for until the cursor reaches 4 or more (1 → 4 → 7): visible at 4.
        assert_eq!(marks.watermark("acme") % 4, 0);
        let seen: Vec<Vec<u64>> = batches.lock().unwrap().clone();
        assert_eq!(seen[0], vec![1, 2, 3]);
        // The cursor reached 7, which readers see as 4: entries 4 to 6 are not visible.
        while cursors.lock().unwrap()["acme"] < 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            marks.wait_for("acme", 4, Duration::from_millis(100)).await,
            Err(4)
        );
        assert_eq!(
            batches.lock().unwrap().clone(),
            [vec![1, 2, 3], vec![4, 5, 6]]
        );
        follower.stop();
        ledger.shutdown();
    }

    /// Waits (without `wait_for`, which would wake the follower) until the watermark is at
    /// least `seq`, at most 10 s; returns the watermark reached.
    async fn watch_until(marks: &Watermarks, tenant: &str, seq: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while marks.watermark(tenant) < seq && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        marks.watermark(tenant)
    }

    /// After a round that found a trickle, the follower waits out the round pace (a minute
    /// here) while less than half a batch is committed, and starts the next round as soon as
    /// the writer's count says half a batch has gathered.
    #[tokio::test]
    async fn half_a_batch_committed_ends_the_pause_after_a_trickle() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..3).map(event).collect())
            .await
            .unwrap();
        let options = FollowerOptions {
            round_pace: Duration::from_secs(60),
            appended: Some(ledger.appended()),
            ..OPTIONS
        };
        let cursors = Arc::new(Mutex::new(HashMap::new()));
        let (follower, batches) = start_with(dir.path(), &cursors, usize::MAX, options);
        let marks = follower.watermarks();
        assert_eq!(watch_until(&marks, "acme", 3).await, 3);

        // Two entries are less than half a batch (5): they wait for the pace.
        ledger
            .append("acme", (3..5).map(event).collect())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(marks.watermark("acme"), 3);

        // Three more make five since the round started: the next round starts now.
        ledger
            .append("acme", (5..8).map(event).collect())
            .await
            .unwrap();
        assert_eq!(watch_until(&marks, "acme", 8).await, 8);
        assert_eq!(
            batches.lock().unwrap().clone(),
            [vec![0, 1, 2], vec![3, 4, 5, 6, 7]]
        );
        follower.stop();
        ledger.shutdown();
    }

    type Given = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    /// Records the bytes of every entry of `acme` it is given.
    struct BytesRecorder {
        given: Given,
        cursor: u64,
    }

    impl Follow for BytesRecorder {
        type Error = String;

        fn name(&self) -> &str {
            "bytes-recorder"
        }

        fn cursors(&self) -> HashMap<String, u64> {
            HashMap::new()
        }

        fn apply(
            &mut self,
            _log: &dyn Store,
            tenant: &str,
            entries: &[(u64, EntryRow)],
        ) -> Result<u64, String> {
            if tenant != "acme" {
                return Ok(0);
            }
            assert_eq!(entries[0].0, self.cursor, "a batch starts at the cursor");
            let mut given = self.given.lock().unwrap();
            for (seq, entry) in entries {
                given.push((*seq, entry.clone().map_err(|e| e.to_string())?));
            }
            self.cursor = entries.last().map_or(self.cursor, |(seq, _)| seq + 1);
            Ok(self.cursor)
        }
    }

    /// Where the entries after a follower's cursor are held in memory, the batch comes from
    /// there; before and after what is held, from the log. The held entries here are
    /// deliberately not the log's, so that the test can tell which source each batch came
    /// from; the writer only ever publishes the log's own bytes (`recent`'s tests).
    #[tokio::test]
    async fn a_batch_starting_within_the_held_entries_is_taken_from_memory_and_others_from_the_log()
    {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..30).map(event).collect())
            .await
            .unwrap();
        let log = Location::new(dir.path(), None).open_reader().unwrap();
        let in_log: Vec<Vec<u8>> = log
            .entries("acme", 0, 30, 100)
            .unwrap()
            .into_iter()
            .map(|(_, entry)| entry.unwrap())
            .collect();
        let recent = RecentEntries::new(1 << 20);
        let marked = |seq: u64| format!("held {seq}").into_bytes();
        recent.publish("acme", 10, (10..20).map(marked).collect());

        let given = Arc::new(Mutex::new(Vec::new()));
        let follower = Follower::start(
            BytesRecorder {
                given: given.clone(),
                cursor: 0,
            },
            log,
            FollowerOptions {
                recent: Some(recent),
                ..OPTIONS
            },
        )
        .unwrap();
        let marks = follower.watermarks();
        marks
            .wait_for("acme", 29, Duration::from_secs(10))
            .await
            .unwrap();
        follower.stop();
        let given = given.lock().unwrap().clone();
        assert_eq!(
            given.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (0..30).collect::<Vec<u64>>()
        );
        for (seq, bytes) in &given {
            let expected = if (10..20).contains(seq) {
                marked(*seq)
            } else {
                in_log[*seq as usize].clone()
            };
            assert_eq!(bytes, &expected, "entry {seq}");
        }
        ledger.shutdown();
    }

    #[test]
    fn received_at_reads_the_server_field() {
        let entry = br#"{"action":"a","received_at":"2026-01-02T03:04:05.000006Z","seq":0}"#;
        assert_eq!(
            received_at(entry),
            Some(
                Timestamp::parse("2026-01-02T03:04:05.000006Z")
                    .unwrap()
                    .unix_micros()
            )
        );
        assert_eq!(received_at(b"{}"), None);
        assert_eq!(received_at(b"not json"), None);
    }
}
