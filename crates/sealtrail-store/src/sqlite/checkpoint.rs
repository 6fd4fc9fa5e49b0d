//! Keeping a SQLite write-ahead log small: the checkpointer of the embedded store
//! (`DIR/sealtrail.db`) and of the query index (`DIR/index.db`).
//!
//! A commit appends pages to the WAL; a *checkpoint* copies them into the database file.
//! SQLite reuses the WAL from its start only when a checkpoint has copied every frame and no
//! reader still reads an older snapshot from it; until then the file only grows, and it never
//! shrinks unless asked to. Under sustained load neither condition holds by itself: a passive
//! checkpoint runs beside the writer, which has appended more frames by the time it finishes,
//! and some reader is nearly always in the middle of a statement. The WAL then grew without
//! bound (more than 1 GiB in a minute of batched ingest) and stayed at its largest size while idle.
//!
//! The work happens on a thread of its own, with its own connection, off the commit path and
//! on a schedule; the one step that must exclude writers is kept short. Every
//! [`WalPolicy::tick`] the [`WalKeeper`]:
//!
//! 1. runs a `PASSIVE` checkpoint when there is a WAL: it copies what no reader still needs
//!    and never waits for or blocks anyone;
//! 2. when the frames in use pass [`WalPolicy::restart_bytes`], asks the database's writer to
//!    run a `RESTART` checkpoint before its next transaction ([`Handoff::run_due`]). The
//!    passive step has already copied most of the WAL, so what is left is what was committed
//!    since, and one fsync of the database file. The writer runs it itself, between two
//!    transactions, because a checkpoint from another connection would have to win the write
//!    lock from a writer that holds it almost all the time; it waits at most
//!    [`WalPolicy::busy`] for readers of older snapshots, and gives up rather than stall
//!    commits behind a long read. A request the writer has not taken by the next look (it is
//!    idle, or in one long transaction) is tried by the keeper itself, after another passive
//!    step and without waiting for the write lock; it is left to the writer when the lock is
//!    taken;
//! 3. when the WAL has not grown for [`WalPolicy::idle_steps`] looks, truncates it to zero
//!    bytes itself: nobody is writing, so nothing is blocked.
//!
//! A writer that takes a restart while the keeper is in a passive checkpoint waits for it
//! ([`Handoff`] holds a lock for that): the passive step copies what the restart would have to,
//! and SQLite would otherwise refuse the restart at once for the checkpoint in progress. A
//! writer nobody waits for (the indexer, [`WalPolicy::writer_restarts`]) also restarts the WAL
//! unasked before a transaction once the file passes the restart size, so that its WAL holds
//! one batch, not the several it may commit between two looks.
//!
//! A restarted WAL is reused from its start (overwriting is cheaper than growing a file), and
//! `journal_size_limit` (set by the writer's connection to `restart_bytes`) cuts the file back
//! to that size at the first commit after the restart, however large a reader had made it
//! grow. Restarts that could not complete (a reader held an old snapshot past the wait) are
//! retried after 1, 2, 4, … up to [`WalPolicy::max_backoff_steps`] looks, so a long
//! verification does not cost every group commit a wait.
//!
//! Readers cooperate by keeping read transactions short: the store's reads are single
//! statements or explicit snapshots that end when the read does (`Store::end_read`), and no
//! pooled connection is put back inside a transaction.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::wal::wal_path;

/// The size of the write-ahead log of the SQLite database at `db` (`DataDir::database`,
/// `DataDir::index`): 0 when it has none (truncated, or the database was never opened). The
/// keepers hold it under their policy's bounds; one that keeps growing means a reader holds an
/// old snapshot.
pub fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(wal_path(db)).map_or(0, |m| m.len())
}

/// When and how a WAL is checkpointed: [`WalPolicy::log`] for the embedded store,
/// [`WalPolicy::index`] for the query index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPolicy {
    /// How often the keeper looks at the WAL.
    pub tick: Duration,
    /// Frames in use beyond this many bytes are checkpointed and the WAL restarted from its
    /// start by the writer; also the WAL's `journal_size_limit`, so that a WAL a reader made
    /// grow beyond it is cut back to it at the first commit after the restart.
    pub restart_bytes: u64,
    /// Looks without growth after which the WAL is truncated to zero bytes.
    pub idle_steps: u32,
    /// How long a restart or truncation waits for readers of older snapshots, and so at most
    /// how long it can hold up the writer.
    pub busy: Duration,
    /// The longest pause, in looks, between attempts to restart a WAL that readers held.
    pub max_backoff_steps: u32,
    /// Whether the writer also restarts a WAL past the restart size unasked, before each
    /// transaction: for a writer nobody waits for (the indexer), so that the WAL never holds
    /// more than the transactions since the keeper's last look. Such a restart that readers
    /// hold up is tried again before the next transaction.
    pub writer_restarts: bool,
}

impl WalPolicy {
    /// The embedded store's (`DIR/sealtrail.db`): a restart holds up the writer, and with it
    /// every request waiting for a commit, for the frames the passive step did not copy and
    /// an fsync of the database file (tens of milliseconds on a busy disk), so it restarts
    /// the WAL only every 64 MiB, about every two seconds at full ingest.
    pub const fn log() -> WalPolicy {
        WalPolicy {
            tick: Duration::from_millis(200),
            restart_bytes: 64 * 1024 * 1024,
            // One second without a commit.
            idle_steps: 5,
            busy: Duration::from_millis(20),
            // Five seconds.
            max_backoff_steps: 25,
            writer_restarts: false,
        }
    }

    /// The query index's (`DIR/index.db`): a restart holds up only the indexer, between two
    /// batches, so the WAL is restarted every 16 MiB (SQLite's own automatic checkpoint is at
    /// 1,000 pages, which are 16 KiB in the index), by the indexer itself. A batch of 10,000
    /// entries can write more than that by itself; the WAL then restarts after every batch.
    pub const fn index() -> WalPolicy {
        WalPolicy {
            restart_bytes: 16 * 1024 * 1024,
            writer_restarts: true,
            ..WalPolicy::log()
        }
    }
}

/// A checkpoint that must exclude writers: `RESTART` or `TRUNCATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Copy every frame and make the next writer start the WAL from its beginning.
    Restart,
    /// [`Mode::Restart`], and cut the file to zero bytes.
    Truncate,
}

impl Mode {
    fn pragma(self) -> &'static str {
        match self {
            Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            Mode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        }
    }
}

// The states of a [`Handoff`].
const NOTHING: u8 = 0;
const DUE: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const HELD: u8 = 4;

/// The restart the keeper asks of the database's writer, and what came of it: shared by the
/// keeper's thread and the writer's connection.
#[derive(Debug)]
pub struct Handoff {
    state: AtomicU8,
    /// Held by whoever runs a checkpoint, so that the writer's restart waits for a passive
    /// checkpoint of the keeper to finish (copying what the restart would have to) rather than
    /// fail on SQLite's checkpoint lock and be taken for one that readers held up.
    checkpointing: Mutex<()>,
    /// How long the restart may wait for readers.
    busy: Duration,
    /// The writer connection's own busy timeout, restored afterwards.
    normal_busy: Duration,
    /// The database and its restart size, when the writer restarts a WAL past it unasked
    /// ([`WalPolicy::writer_restarts`]).
    unasked: Option<(PathBuf, u64)>,
}

impl Handoff {
    /// A handoff for the writer of the database at `db`, whose connection waits `normal_busy`
    /// for locks.
    pub fn new(db: &Path, policy: &WalPolicy, normal_busy: Duration) -> Arc<Handoff> {
        Arc::new(Handoff {
            state: AtomicU8::new(NOTHING),
            checkpointing: Mutex::new(()),
            busy: policy.busy,
            normal_busy,
            unasked: policy
                .writer_restarts
                .then(|| (db.to_path_buf(), policy.restart_bytes)),
        })
    }

    /// Called by the writer on its connection between transactions: runs the restart the
    /// keeper asked for, if any (or, by [`WalPolicy::writer_restarts`], one unasked), waiting
    /// at most [`WalPolicy::busy`] for readers. Never fails the caller: a restart that cannot
    /// complete is left for a later attempt.
    pub fn run_due(&self, conn: &Connection) {
        if !conn.is_autocommit() {
            // A checkpoint cannot run inside a transaction of its own connection.
            return;
        }
        let asked = self.take();
        // With `journal_size_limit` at the restart size, the file passes that size only once
        // the WAL in use does.
        let over = || {
            self.unasked
                .as_ref()
                .is_some_and(|(db, restart_bytes)| wal_bytes(db) > *restart_bytes)
        };
        if !asked && !over() {
            return;
        }
        let _checkpointing = self.lock();
        let completed = exclusive_checkpoint(conn, Mode::Restart, self.busy, self.normal_busy);
        if asked {
            let outcome = if completed { DONE } else { HELD };
            self.state.store(outcome, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded value is nothing: a panic while it was held left nothing inconsistent.
        self.checkpointing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ask(&self) {
        self.state.store(DUE, Ordering::Release);
    }

    /// Whether a restart was due and nobody else took it; taking it marks it running.
    fn take(&self) -> bool {
        self.state
            .compare_exchange(DUE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Runs a `RESTART` or `TRUNCATE` checkpoint waiting at most `busy` for the write lock and for
/// readers, then restores the connection's busy timeout. Whether it completed.
fn exclusive_checkpoint(conn: &Connection, mode: Mode, busy: Duration, normal: Duration) -> bool {
    let set = |timeout| {
        if let Err(error) = conn.busy_timeout(timeout) {
            tracing::warn!(%error, "cannot set the busy timeout for a WAL checkpoint");
        }
    };
    set(busy);
    let started = std::time::Instant::now();
    let result = conn.query_row(mode.pragma(), [], |row| row.get::<_, i64>(0));
    let took = started.elapsed();
    set(normal);
    let completed = match result {
        Ok(0) => true,
        // Readers still used older frames, or another connection was checkpointing.
        Ok(_) => false,
        Err(error) => {
            tracing::warn!(%error, ?mode, "WAL checkpoint failed; retrying later");
            false
        }
    };
    tracing::debug!(
        db = conn.path().unwrap_or_default(),
        thread = std::thread::current().name().unwrap_or_default(),
        ?mode,
        completed,
        micros = took.as_micros() as u64,
        "WAL checkpoint"
    );
    completed
}

/// What one [`WalKeeper::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The WAL is empty (or absent): nothing to do.
    Empty,
    /// Copied what could be copied; the WAL in use is below the restart size.
    Copied,
    /// Asked the writer to restart the WAL before its next transaction.
    Asked,
    /// The writer has not run the restart asked for yet (it is in a transaction), or is
    /// running it now.
    Pending,
    /// Ran this checkpoint itself: a restart the writer did not take since the last look (it
    /// is idle), or the truncation of an idle WAL; whether it completed.
    Ran(Mode, bool),
    /// The last restart could not complete for readers; waiting before the next attempt.
    Waiting,
}

/// Looks at one database's WAL and checkpoints it by [`WalPolicy`]; the thread of
/// [`Checkpointer`] calls [`WalKeeper::step`] every tick, and tests call it directly.
pub struct WalKeeper {
    conn: Connection,
    wal: PathBuf,
    policy: WalPolicy,
    handoff: Arc<Handoff>,
    /// Bytes per WAL frame: a 24-byte header and a page.
    frame_bytes: u64,
    /// Frames in the WAL at the last look, and looks since it last changed.
    last_frames: i64,
    quiet_steps: u32,
    /// Looks to skip before the next restart, after one that readers held up; and the pause
    /// after the next such failure.
    wait: u32,
    backoff: u32,
}

impl WalKeeper {
    /// A keeper of the WAL of the database at `db`, over a connection of its own; `handoff`
    /// reaches the database's writer.
    pub fn open(db: &Path, policy: WalPolicy, handoff: Arc<Handoff>) -> rusqlite::Result<Self> {
        let conn = Connection::open(db)?;
        // Passive checkpoints never wait for locks; the exclusive ones set their own timeout.
        conn.busy_timeout(policy.busy)?;
        let page_size: u64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        Ok(WalKeeper {
            conn,
            wal: wal_path(db),
            policy,
            handoff,
            frame_bytes: 24 + page_size,
            last_frames: -1,
            quiet_steps: 0,
            wait: 0,
            backoff: 0,
        })
    }

    /// One look at the WAL: copy what can be copied, and restart or truncate it when it is
    /// due (see the module docs).
    pub fn step(&mut self) -> rusqlite::Result<Step> {
        match self.handoff.state.load(Ordering::Acquire) {
            DONE => self.settle(true),
            HELD => self.settle(false),
            // The writer is running it: a passive checkpoint now would only collide with it.
            RUNNING => return Ok(Step::Pending),
            _ => {}
        }
        // Asked for at the last look and not taken since: either the writer is idle, and the
        // restart is done here, or it is in a long transaction, and trying without waiting
        // for the write lock finds that out at once, leaving the request to the writer. What
        // the writer committed since the last look is copied first, without any lock and with
        // the request still open to the writer, so that the restart holds the write lock only
        // for what is committed meanwhile.
        if self.handoff.state.load(Ordering::Acquire) == DUE {
            if let Err(error) = self.passive() {
                tracing::warn!(wal = %self.wal.display(), %error, "WAL checkpoint failed; retrying");
            }
            if !self.handoff.take() {
                // The writer took it meanwhile.
                return Ok(Step::Pending);
            }
            let busy = (Duration::ZERO, self.policy.busy);
            if self.exclusive(Mode::Restart, busy) {
                self.settle(true);
                return Ok(Step::Ran(Mode::Restart, true));
            }
            self.handoff.ask();
            return Ok(Step::Pending);
        }
        if self.wal_bytes() == 0 {
            self.quiet_steps = 0;
            self.last_frames = 0;
            return Ok(Step::Empty);
        }
        let frames = self.passive()?;
        if frames == self.last_frames {
            self.quiet_steps += 1;
        } else {
            self.quiet_steps = 0;
            self.last_frames = frames;
        }
        let idle = self.quiet_steps >= self.policy.idle_steps;
        let in_use = frames.max(0) as u64 * self.frame_bytes;
        if !idle && in_use <= self.policy.restart_bytes {
            return Ok(Step::Copied);
        }
        if self.wait > 0 {
            self.wait -= 1;
            return Ok(Step::Waiting);
        }
        if idle {
            // Nobody writes: truncating here holds nobody up.
            let busy = (self.policy.busy, self.policy.busy);
            let completed = self.exclusive(Mode::Truncate, busy);
            self.settle(completed);
            return Ok(Step::Ran(Mode::Truncate, completed));
        }
        self.handoff.ask();
        Ok(Step::Asked)
    }

    /// Takes note of how the last exclusive checkpoint ended: after one that readers held
    /// up, the next waits twice as long as the last pause (up to the policy's longest).
    fn settle(&mut self, completed: bool) {
        self.handoff.state.store(NOTHING, Ordering::Release);
        if completed {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, self.policy.max_backoff_steps);
            self.wait = self.backoff;
        }
    }

    /// [`exclusive_checkpoint`] on the keeper's connection, waiting `busy.0` and then
    /// restoring `busy.1`.
    fn exclusive(&self, mode: Mode, busy: (Duration, Duration)) -> bool {
        let _checkpointing = self.handoff.lock();
        exclusive_checkpoint(&self.conn, mode, busy.0, busy.1)
    }

    /// Copies every frame no reader still needs; returns the frames in the WAL.
    fn passive(&self) -> rusqlite::Result<i64> {
        let _checkpointing = self.handoff.lock();
        let started = std::time::Instant::now();
        let (frames, copied): (i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get(1)?, row.get(2)?))
                })?;
        tracing::trace!(
            wal = %self.wal.display(),
            frames,
            copied,
            micros = started.elapsed().as_micros() as u64,
            "passive WAL checkpoint"
        );
        Ok(frames)
    }

    fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }
}

/// The thread that runs a [`WalKeeper`] every [`WalPolicy::tick`]; stopped (and joined) when
/// dropped, which its owner does before closing the writer's connection, truncating the WAL
/// a last time.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(mut keeper: WalKeeper, name: &str) -> std::io::Result<Checkpointer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let tick = keeper.policy.tick;
        let thread = std::thread::Builder::new()
            .name(format!("{name}-checkpoint"))
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = stopped.lock().expect("checkpointer lock");
                loop {
                    guard = wake
                        .wait_timeout(guard, tick)
                        .expect("checkpointer lock")
                        .0;
                    if *guard {
                        // The writer is closing: leave no WAL behind if no reader needs it.
                        // Copying first, without a lock, keeps the write lock short for
                        // another process that still writes.
                        let _ = keeper.passive();
                        let busy = keeper.policy.busy;
                        keeper.exclusive(Mode::Truncate, (busy, busy));
                        break;
                    }
                    if let Err(error) = keeper.step() {
                        tracing::warn!(wal = %keeper.wal.display(), %error, "WAL checkpoint failed; retrying");
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().expect("checkpointer lock") = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{DataDir, NewEntry, Store, Tenant};

    /// Small thresholds, so that a test writes a few megabytes rather than hundreds.
    const POLICY: WalPolicy = WalPolicy {
        tick: Duration::from_millis(200),
        restart_bytes: 256 * 1024,
        idle_steps: 3,
        busy: Duration::from_millis(20),
        max_backoff_steps: 4,
        writer_restarts: false,
    };

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(wal_path(db)).map_or(0, |m| m.len())
    }

    fn create_tenant(store: &dyn Store) {
        store.begin_write(&["t"]).unwrap();
        store
            .insert_tenant(&Tenant {
                name: "t".into(),
                origin: "test/t".into(),
                created_at: "2026-11-24T00:00:00Z".into(),
                vkey: None,
            })
            .unwrap();
        store.commit().unwrap();
    }

    /// Commits `count` entries of 20 KB each, one per transaction, after the log's `size`.
    fn commit_entries(store: &dyn Store, size: u64, count: u64) -> u64 {
        let blob = vec![b'x'; 20_000];
        for seq in size..size + count {
            let id = format!("id-{seq}");
            store.begin_write(&["t"]).unwrap();
            let entry = NewEntry {
                seq,
                id: &id,
                entry: &blob,
            };
            store.append("t", &[entry], seq, &[]).unwrap();
            store.commit().unwrap();
        }
        size + count
    }

    /// While a reader holds an old snapshot, nothing can restart the WAL and it grows (the
    /// reader still reads its snapshot); once the reader is done, the next steps truncate it.
    #[test]
    fn a_wal_a_reader_held_is_truncated_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).database();
        let (store, mut keeper) = SqliteStore::open_writer_keeping(&path, POLICY).unwrap();
        create_tenant(&store);
        let reader = SqliteStore::open_reader(&path).unwrap();
        reader.begin_read().unwrap();
        assert_eq!(reader.size("t").unwrap(), 0, "the reader's snapshot begins");
        let mut size = 0;
        for _ in 0..20 {
            size = commit_entries(&store, size, 10);
            keeper.step().unwrap();
        }
        let held = wal_len(&path);
        assert!(
            held > 4 * POLICY.restart_bytes,
            "a reader of the first snapshot keeps every frame: the WAL is {held} bytes"
        );
        assert_eq!(reader.size("t").unwrap(), 0, "the snapshot is intact");
        reader.end_read().unwrap();

        // Released: within the longest backoff the WAL is truncated, with no write meanwhile.
        let mut steps = Vec::new();
        while wal_len(&path) > 0 && steps.len() < 2 * POLICY.max_backoff_steps as usize {
            steps.push(keeper.step().unwrap());
        }
        assert_eq!(wal_len(&path), 0, "after the steps {steps:?}");
        assert_eq!(steps.last(), Some(&Step::Ran(Mode::Truncate, true)));
        assert_eq!(
            reader.size("t").unwrap(),
            size,
            "nothing committed was lost"
        );
    }

    /// A WAL a long read made grow is cut back under further writes, without waiting for
    /// them to stop: once the read ends, the WAL is copied and started over, and
    /// `journal_size_limit` cuts the file back at the first commit after that.
    #[test]
    fn a_wal_a_reader_held_is_cut_back_under_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).database();
        let (store, mut keeper) = SqliteStore::open_writer_keeping(&path, POLICY).unwrap();
        create_tenant(&store);
        let reader = SqliteStore::open_reader(&path).unwrap();
        reader.begin_read().unwrap();
        assert_eq!(reader.size("t").unwrap(), 0, "the reader's snapshot begins");
        let mut size = commit_entries(&store, 0, 100);
        keeper.step().unwrap();
        assert!(wal_len(&path) > 4 * POLICY.restart_bytes);
        reader.end_read().unwrap();
        let mut steps = Vec::new();
        for _ in 0..POLICY.max_backoff_steps {
            size = commit_entries(&store, size, 2);
            steps.push(keeper.step().unwrap());
        }
        let len = wal_len(&path);
        assert!(
            len <= 2 * POLICY.restart_bytes,
            "the WAL is still {len} bytes after the steps {steps:?}"
        );
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, Step::Ran(Mode::Truncate, _)))
        );
        assert_eq!(
            reader.size("t").unwrap(),
            size,
            "nothing committed was lost"
        );
    }

    /// A follower reads in snapshots of its own while the writer keeps committing, so the
    /// keeper's passive checkpoints always find a reader of a snapshot older than the WAL's end:
    /// they copy only up to it, the WAL is never wholly copied, and SQLite never starts it
    /// over by itself. The restarts the keeper asks for, run by the writer between two
    /// transactions while no snapshot is open, keep it under the restart size plus what is
    /// written between two looks.
    #[test]
    fn a_wal_under_writes_and_a_follower_stays_under_the_restart_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).database();
        let (store, mut keeper) = SqliteStore::open_writer_keeping(&path, POLICY).unwrap();
        create_tenant(&store);
        let follower = SqliteStore::open_reader(&path).unwrap();
        let before = wal_len(&path);
        let mut size = commit_entries(&store, 0, 1);
        // What one transaction of one entry adds to the WAL: its overflow pages and the leaves
        // it changes (more when a leaf splits).
        let per_commit = wal_len(&path) - before;
        // Between two looks six transactions; twice that, for the splits.
        let bound = POLICY.restart_bytes + 12 * per_commit;
        let (mut asked, mut largest) = (0, 0);
        for _ in 0..60 {
            size = commit_entries(&store, size, 3);
            follower.begin_read().unwrap();
            assert_eq!(follower.size("t").unwrap(), size, "the follower's snapshot");
            size = commit_entries(&store, size, 3);
            if keeper.step().unwrap() == Step::Asked {
                asked += 1;
            }
            follower.end_read().unwrap();
            largest = largest.max(wal_len(&path));
        }
        let written = (size - 1) * per_commit;
        assert!(
            largest <= bound,
            "the WAL grew to {largest} bytes, with {written} bytes written to it (bound {bound})"
        );
        assert!(
            asked > 1,
            "the writes crossed the restart size more than once"
        );
        assert_eq!(
            follower.size("t").unwrap(),
            size,
            "nothing committed was lost"
        );
    }

    /// A WAL nobody writes to any more is truncated to nothing after `idle_steps` looks.
    #[test]
    fn an_idle_wal_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).database();
        let (store, mut keeper) = SqliteStore::open_writer_keeping(&path, POLICY).unwrap();
        create_tenant(&store);
        commit_entries(&store, 0, 5);
        assert!(wal_len(&path) > 0);
        assert_eq!(keeper.step().unwrap(), Step::Copied);
        for _ in 1..POLICY.idle_steps {
            assert_eq!(keeper.step().unwrap(), Step::Copied);
            assert!(wal_len(&path) > 0, "not idle long enough yet");
        }
        assert_eq!(keeper.step().unwrap(), Step::Ran(Mode::Truncate, true));
        assert_eq!(wal_len(&path), 0);
        assert_eq!(keeper.step().unwrap(), Step::Empty);
        assert_eq!(store.size("t").unwrap(), 5);
    }

    /// The store's own checkpoint thread truncates the WAL of a store that stopped writing,
    /// while the store stays open.
    #[test]
    fn the_store_truncates_its_idle_wal_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).database();
        let store = SqliteStore::open_writer(&path).unwrap();
        create_tenant(&store);
        commit_entries(&store, 0, 100);
        assert!(wal_len(&path) > 1_000_000);
        // Waits for the thread (idle for a second), bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while wal_len(&path) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle WAL stayed at {} bytes",
                wal_len(&path)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(store.size("t").unwrap(), 100);
    }
}
