//! The query index: a derived SQLite database, `DIR/index.db`, filled from the log behind the
//! write path by one background thread, [`Indexer`].
//!
//! ## Why a separate file, and why it may be thrown away
//!
//! The log (`DIR/sealtrail.db`) is the source of truth; this database only answers "which seqs
//! match these filters". It is a separate file so that indexing never takes the log's write
//! lock: the writer's group commit is never delayed by index maintenance, and the indexer
//! reads the log through an ordinary read-only connection (WAL readers do not block the
//! writer). Because it is derived, it is written with `synchronous=NORMAL` (no fsync per
//! commit): a crash can lose the last few index transactions, and since each transaction also
//! moves the tenant's watermark, what is lost is simply indexed again.
//!
//! On start, the index is rebuilt from seq 0 of every log when the file is missing, when its
//! schema version (`PRAGMA user_version`) differs from [`SCHEMA_VERSION`], or when it does not
//! match the log: each tenant's watermark row remembers the id of the last entry indexed, and
//! if the log holds another entry (or none) at that seq — the store was restored or replaced —
//! the whole file is deleted and rebuilt. Nothing else ever deletes from it.
//!
//! ## The indexer
//!
//! One thread polls every [`POLL_INTERVAL`] (50 ms) while idle and runs back to back while
//! there is a backlog; when a round finds only a trickle of entries (single events arriving),
//! the next starts [`ROUND_PACE`] (200 ms) after it, so that each transaction writes each index
//! page once for many entries, unless a reader is waiting for its own write. Per round it takes each tenant's next entries, at most [`BATCH_ENTRIES`]
//! (10,000) per tenant, in seq order, reads the fields the index keeps from each, and writes
//! their rows (multi-row `INSERT`s) together with the tenant's new watermark in one
//! transaction. Large transactions amortise the commit, and the per-tenant cap keeps one busy
//! tenant from starving the others. An entry that does not parse (damage the verifier reports)
//! is skipped with an error in the log; it must not stop indexing of the entries after it.
//!
//! Entries are read with a serde struct of just those fields rather than
//! [`Entry::parse`](sealtrail_core::canonical::Entry::parse), which re-validates the whole
//! schema and took about three times as long per entry; a test holds the two to the same rows.
//! Inserting into the indexes is most of the remaining cost (the ignored test
//! `index::tests::throughput` measures it; run it with `--release`).
//!
//! The watermark of a tenant is the number of its entries indexed (`next_seq`): every entry
//! with `seq < next_seq` is searchable. Readers see it through [`Index::watermark`] and can
//! wait for it with [`Index::wait_for`], which is how a client reads its own writes.
//!
//! ## Rows and keys
//!
//! Every indexed entry is one `events` row whose integer primary key is
//! `key = (tenant number << 44) | seq`. This one integer does three jobs:
//!
//! - within a tenant, key order *is* seq order, so `ORDER BY key` pages in seq order;
//! - a tenant is a key range, so every query is confined to its tenant by
//!   `key BETWEEN lo AND hi`, with no tenant column in any index;
//! - every secondary index of a rowid table ends with the key, so an index on `(action)` is in
//!   effect `(action, tenant, seq)`: an equality filter is a range scan already in seq order,
//!   and the first page of 100 reads about 100 index entries however big the log is.
//!
//! The full-text table uses the same key as its rowid, and FTS5 walks its doclists in rowid
//! order with rowid range constraints, so text search pages the same way. The limits this
//! implies: at most 2^44 − 1 entries per tenant (17.6 trillion) and 2^19 − 1 tenants; the
//! indexer refuses to go beyond them (with an error in the log) rather than mix tenants.
//!
//! Columns are only what filters need: event time, action, activity, outcome, actor id,
//! `context.ip`, `source.app`, plus a `targets` table `(id, key, type)` and the `details` text.
//! Event content is always read from the log by seq.
//!
//! ## Decisions
//!
//! - **Time.** `from`/`to` filter on the *event time*: `occurred_at` when the producer sent
//!   one, else `received_at`. Auditors ask when something happened, and a producer that spooled
//!   its events and sent them an hour late must not move them an hour. `from` is inclusive,
//!   `to` exclusive. Results are still in seq order.
//! - **Text (`q`).** FTS5, not `LIKE`: a `LIKE '%x%'` scan reads every row of a tenant when
//!   the term is rare, which at 10 million events is seconds, while FTS5 reads only the
//!   matching documents. What is indexed is the text of the *values* in `details` (strings and
//!   numbers, at any depth), not the keys, which would make every event with a `reason` match
//!   `reason`. Tokens are Unicode letters and digits (the `unicode61` tokenizer, case- and
//!   diacritic-insensitive). `q` matches events whose details contain every
//!   whitespace-separated word of it; a word with punctuation inside (`claim-123`) must appear
//!   as that sequence of tokens. Whole tokens only, no prefixes.
//! - **Plans.** Each search is driven by the index that keeps seq order and stops after one
//!   page (see [`search`]). Event times need not follow seq order (producers send
//!   `occurred_at`, late or early), so the time index is kept per block of 2^[`BLOCK_BITS`]
//!   seqs, `(key >> BLOCK_BITS, at)`: a time range is walked block by block in page order,
//!   in one statement, each block's matches sorted by key (at most a block's worth), and the walk stops at the
//!   block that completes the page. It drives unless another filter matches fewer than
//!   [`SELECTIVE_FILTER`] events; then that filter drives and time is checked per row.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, ToSql, Transaction, params};
use sealtrail_core::Timestamp;
use sealtrail_core::event::{Activity, Outcome as EventOutcome};
use serde_json::Value;

use sealtrail_store::{Location, Store, StoreError};

/// The index schema this build writes (`PRAGMA user_version`); any other version is rebuilt.
/// Unit tests use smaller time blocks ([`BLOCK_BITS`]), which is another schema.
pub const SCHEMA_VERSION: i64 = if cfg!(test) { 1_002 } else { 2 };

/// Entries per tenant read, parsed and written in one index transaction.
pub const BATCH_ENTRIES: usize = 10_000;

/// How often an idle indexer looks for new entries.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A round that finds only a few entries starts at most this often (see `Worker::run`).
pub const ROUND_PACE: Duration = Duration::from_millis(200);

/// Seqs per block of the time index `events_by_block`: `(key >> BLOCK_BITS, at)`. A time
/// range is searched block by block in key order (see [`search`]). Unit tests use small blocks
/// so that their few hundred events span many.
pub const BLOCK_BITS: u32 = if cfg!(test) { 4 } else { 13 };

/// A time range drives a search unless another filter matches fewer events of the tenant than
/// this (counted with a capped scan): then that filter drives and time is checked per row.
pub const SELECTIVE_FILTER: i64 = if cfg!(test) { 24 } else { 4096 };

/// Bits of the key that hold the seq.
const SEQ_BITS: u32 = 44;
/// The largest seq the index can hold.
pub const MAX_INDEXED_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// The largest tenant number: the key must stay a positive `i64`.
const MAX_TENANT_NUMBER: i64 = (1 << (63 - SEQ_BITS)) - 1;

/// The index's tables and indexes.
fn schema() -> String {
    format!(
        r#"
-- One row per tenant: its key prefix and its watermark.
CREATE TABLE tenants (
    number   INTEGER PRIMARY KEY,   -- the high bits of every key of this tenant
    name     TEXT    NOT NULL UNIQUE,
    next_seq INTEGER NOT NULL,      -- entries with seq < next_seq are indexed
    last_id  TEXT                   -- id of entry next_seq - 1, to notice a replaced log
);

-- One row per entry; key = (tenant number << 44) | seq.
CREATE TABLE events (
    key      INTEGER PRIMARY KEY,
    tenant   INTEGER NOT NULL,
    at       INTEGER NOT NULL,      -- occurred_at, else received_at; unix microseconds
    action   TEXT    NOT NULL,
    activity TEXT,
    outcome  TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    ip       TEXT,
    source   TEXT
);
-- Every index below ends with the key (rowid), so equality scans come out in seq order.
-- Time by block of 2^BLOCK_BITS seqs: within a block, a time range is one index range.
CREATE INDEX events_by_block    ON events ((key >> {BLOCK_BITS}), at);
CREATE INDEX events_by_action   ON events (action);
CREATE INDEX events_by_activity ON events (activity) WHERE activity IS NOT NULL;
CREATE INDEX events_by_outcome  ON events (outcome);
CREATE INDEX events_by_actor    ON events (actor);
CREATE INDEX events_by_ip       ON events (ip) WHERE ip IS NOT NULL;
CREATE INDEX events_by_source   ON events (source) WHERE source IS NOT NULL;

-- Each distinct (type, id) target of an entry; '' where the producer sent none. Two b-trees
-- serve every target filter in key order: (id, key, type) and (type, key, id).
CREATE TABLE targets (
    id   TEXT    NOT NULL,
    key  INTEGER NOT NULL,
    type TEXT    NOT NULL,
    PRIMARY KEY (id, key, type)
) WITHOUT ROWID;
CREATE INDEX targets_by_type ON targets (type, key);

-- The text of the values in details, rowid = key. Contentless: only the terms are kept.
CREATE VIRTUAL TABLE details USING fts5 (text, content = '', columnsize = 0);
"#
    )
}

/// The index database inside a data directory.
pub fn index_path(data_dir: &Path) -> PathBuf {
    data_dir.join("index.db")
}

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot remove the stale index {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the indexer thread: {0}")]
    Thread(std::io::Error),
}

/// Where indexing of a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    /// The tenant's key prefix.
    number: i64,
    /// Entries with `seq < next_seq` are indexed.
    next_seq: u64,
}

/// What the indexer thread and the readers share.
struct Shared {
    marks: Mutex<HashMap<String, Mark>>,
    /// Bumped after every index commit, so waiters wake up and look at the marks again.
    progress: tokio::sync::watch::Sender<u64>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The read side of the index: watermarks, waiting for them, and pooled read connections.
/// Cloning is cheap.
#[derive(Clone)]
pub struct Index {
    path: PathBuf,
    shared: Arc<Shared>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// The background indexer thread; [`Indexer::stop`] ends it.
pub struct Indexer {
    index: Index,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Opens `DIR/index.db` (rebuilding it if it is missing, of another schema version or
    /// does not match the log) and starts the indexer thread. The log must exist.
    pub fn start(data_dir: &Path, log: &Location) -> Result<Indexer, IndexError> {
        let path = index_path(data_dir);
        let log = log.open_reader()?;
        let conn = open_writer(&path, log.as_ref())?;
        let marks = load_marks(&conn)?;
        let (progress, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            marks: Mutex::new(marks),
            progress,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let worker = Worker {
            log,
            conn,
            shared: shared.clone(),
            full_reported: HashSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("sealtrail-indexer".into())
            .spawn(move || worker.run())
            .map_err(IndexError::Thread)?;
        Ok(Indexer {
            index: Index {
                path,
                shared,
                idle: Arc::new(Mutex::new(Vec::new())),
            },
            thread: Some(thread),
        })
    }

    /// The read side, for request handlers.
    pub fn index(&self) -> Index {
        self.index.clone()
    }

    /// Stops the thread after its current batch and waits for it. What is not indexed yet is
    /// indexed on the next start.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the indexer thread panicked");
        }
    }

    fn signal_stop(&self) {
        *self.index.shared.stop.lock().expect("indexer stop lock") = true;
        self.index.shared.wake.notify_all();
    }
}

impl Drop for Indexer {
    /// An indexer dropped without [`Indexer::stop`] (say, the application failed to start)
    /// still stops its thread, without waiting for it.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.signal_stop();
        }
    }
}

/// A pooled read connection to the index; goes back to the pool when dropped.
pub struct IndexReader {
    conn: Option<Connection>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Deref for IndexReader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for IndexReader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.idle.lock().expect("index readers lock").push(conn);
        }
    }
}

impl Index {
    /// How many of the tenant's entries are indexed: every `seq` below this is searchable.
    pub fn watermark(&self, tenant: &str) -> u64 {
        self.mark(tenant).map_or(0, |m| m.next_seq)
    }

    /// The tenant's key prefix, if anything of it has been indexed.
    pub fn tenant_number(&self, tenant: &str) -> Option<i64> {
        self.mark(tenant).map(|m| m.number)
    }

    fn mark(&self, tenant: &str) -> Option<Mark> {
        self.shared
            .marks
            .lock()
            .expect("index marks lock")
            .get(tenant)
            .copied()
    }

    /// Waits until the entry at `seq` is indexed, at most `timeout`. On timeout, returns the
    /// watermark reached.
    pub async fn wait_for(&self, tenant: &str, seq: u64, timeout: Duration) -> Result<(), u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribing before looking means no commit between the look and the wait is missed.
        let mut progress = self.shared.progress.subscribe();
        if self.watermark(tenant) <= seq {
            // Someone waits: an indexer pausing between rounds goes now.
            self.shared.wake.notify_all();
        }
        loop {
            let reached = self.watermark(tenant);
            if reached > seq {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out (the sender lives as long as `self`, so it is never closed).
                Ok(Err(_)) | Err(_) => return Err(self.watermark(tenant)),
            }
        }
    }

    /// A read connection from the pool (opened if the pool is empty). Blocking: call it from
    /// the blocking pool.
    pub fn reader(&self) -> Result<IndexReader, IndexError> {
        let pooled = self.idle.lock().expect("index readers lock").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(5))?;
                // One cached statement per filter combination in use.
                conn.set_prepared_statement_cache_capacity(64);
                conn
            }
        };
        Ok(IndexReader {
            conn: Some(conn),
            idle: self.idle.clone(),
        })
    }
}

/// Opens the index for writing, rebuilding it when it cannot be trusted.
fn open_writer(path: &Path, log: &dyn Store) -> Result<Connection, IndexError> {
    if path.exists() {
        let conn = configure(Connection::open(path)?)?;
        if let Some(discarded) = sealtrail_store::sqlite::wal::discard_unfinished(&conn, path)? {
            // Index commits are not fsync'd, so a crash may take the last ones with it: their
            // watermark goes with them, and those entries are indexed again.
            tracing::warn!(
                wal = %discarded.file.display(),
                bytes = discarded.bytes,
                frames = discarded.frames,
                "the query index lost an unfinished write in a crash; its entries are indexed again from the log"
            );
        }
        match stale_reason(&conn, log)? {
            None => return Ok(conn),
            Some(reason) => {
                tracing::warn!(index = %path.display(), %reason, "rebuilding the query index from the log");
                drop(conn);
                remove_database(path)?;
            }
        }
    }
    let conn = configure(Connection::open(path)?)?;
    conn.execute_batch(&format!(
        "BEGIN; {} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
        schema()
    ))?;
    Ok(conn)
}

fn configure(conn: Connection) -> Result<Connection, IndexError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // Only takes effect when the file is created: 16 KiB pages make shallower b-trees with
    // fewer splits, which indexes about a quarter faster than the default 4 KiB.
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Derived data: losing the last transactions in a power cut only means indexing them again.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Batches of 10,000 rows touch many index pages; keep them cached (32 MiB).
    conn.pragma_update(None, "cache_size", -32_768)?;
    // Statement journals (the full-text insert needs one) in memory, not in temporary files
    // written and deleted every transaction: they were an eighth of the indexer's time.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Why an existing index must be rebuilt, if it must.
fn stale_reason(conn: &Connection, log: &dyn Store) -> Result<Option<String>, IndexError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version != SCHEMA_VERSION {
        return Ok(Some(format!(
            "its schema version is {version}, this build uses {SCHEMA_VERSION}"
        )));
    }
    let mut stmt = conn.prepare("SELECT name, next_seq, last_id FROM tenants")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)? as u64,
            row.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        let (tenant, next_seq, last_id) = row?;
        let Some(last_id) = last_id else { continue };
        let in_log: Option<String> = match next_seq.checked_sub(1) {
            Some(seq) => log.entry_id(&tenant, seq)?,
            None => None,
        };
        if in_log.as_deref() != Some(last_id.as_str()) {
            return Ok(Some(format!(
                "tenant {tenant}: the log holds {} at seq {}, the index was built from {last_id}",
                in_log.as_deref().unwrap_or("no entry"),
                next_seq.saturating_sub(1)
            )));
        }
    }
    Ok(None)
}

/// Deletes the database file and its WAL and shared-memory files.
fn remove_database(path: &Path) -> Result<(), IndexError> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [path.to_path_buf(), PathBuf::from(wal), PathBuf::from(shm)] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(IndexError::Remove { path: file, source }),
        }
    }
    Ok(())
}

fn load_marks(conn: &Connection) -> Result<HashMap<String, Mark>, IndexError> {
    let mut stmt = conn.prepare("SELECT name, number, next_seq FROM tenants")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            Mark {
                number: row.get(1)?,
                next_seq: row.get::<_, i64>(2)? as u64,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The indexer thread's state.
struct Worker {
    /// Read-only connection to the log.
    log: Box<dyn Store>,
    /// The index, for writing.
    conn: Connection,
    shared: Arc<Shared>,
    /// Tenants at the index's limits, reported once each.
    full_reported: HashSet<String>,
}

/// An entry reduced to what the index keeps.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    seq: u64,
    id: String,
    at: i64,
    /// `received_at`, unix microseconds: how stale the index is (see [`Round`]).
    received: i64,
    action: String,
    activity: Option<&'static str>,
    outcome: &'static str,
    actor: String,
    ip: Option<String>,
    source: Option<String>,
    targets: Vec<(String, String)>,
    text: String,
}

/// What one tenant's batch did.
#[derive(Debug, Default)]
struct Batch {
    indexed: usize,
    /// When more entries wait: `received_at` (unix µs) of the last entry indexed.
    behind: Option<i64>,
}

/// What one round over every tenant did.
#[derive(Debug, Default)]
struct Round {
    indexed: usize,
    /// The oldest [`Batch::behind`] of the round.
    behind: Option<i64>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.stopping() {
                break;
            }
            let round_started = std::time::Instant::now();
            let round = match self.round() {
                Ok(round) => round,
                Err(error) => {
                    tracing::error!(%error, "indexing failed; retrying in a second");
                    self.pause(Duration::from_secs(1));
                    Round::default()
                }
            };
            // How stale the index is: while a tenant has more entries waiting, the age of the
            // newest entry indexed (everything received after it is not searchable yet); once
            // every tenant is caught up, nothing waits.
            let lag = round.behind.map_or(0.0, |received| {
                (crate::clock::Clock::system().now().unix_micros() - received).max(0) as f64 / 1e6
            });
            crate::metrics::set_index_lag(lag);
            let indexed = round.indexed;
            if indexed == 0 {
                self.pause(POLL_INTERVAL);
            } else {
                if indexed < BATCH_ENTRIES / 2 {
                    // Caught up with a trickle (single events): let entries gather for a
                    // moment, so that each transaction writes each index page once for many
                    // entries rather than once for a few. A reader waiting for its own write
                    // (`wait_for_seq`) cuts the pause short.
                    self.pause(ROUND_PACE.saturating_sub(round_started.elapsed()));
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.shared.stop.lock().expect("indexer stop lock")
    }

    /// Sleeps up to `duration`, waking early to stop.
    fn pause(&self, duration: Duration) {
        let stop = self.shared.stop.lock().expect("indexer stop lock");
        if !*stop {
            let _ = self.shared.wake.wait_timeout(stop, duration);
        }
    }

    /// Indexes the next batch of every tenant.
    fn round(&mut self) -> Result<Round, IndexError> {
        let tenants = self.log.tenants()?;
        let mut round = Round::default();
        for tenant in tenants {
            if self.stopping() {
                break;
            }
            let batch = self.index_batch(&tenant.name)?;
            round.indexed += batch.indexed;
            round.behind = match (round.behind, batch.behind) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(round)
    }

    fn mark(&self, tenant: &str) -> Option<Mark> {
        self.shared
            .marks
            .lock()
            .expect("index marks lock")
            .get(tenant)
            .copied()
    }

    /// Indexes up to [`BATCH_ENTRIES`] new entries of `tenant` in one transaction.
    fn index_batch(&mut self, tenant: &str) -> Result<Batch, IndexError> {
        let mark = self.mark(tenant);
        let next_seq = mark.map_or(0, |m| m.next_seq);
        if next_seq > MAX_INDEXED_SEQ {
            return Ok(Batch::default());
        }
        let mut batch = self
            .log
            .entries(tenant, next_seq, u64::MAX, BATCH_ENTRIES)?;
        let read = batch.len();
        batch.retain(|(seq, _)| *seq <= MAX_INDEXED_SEQ);
        if batch.len() < read && self.full_reported.insert(tenant.to_string()) {
            tracing::error!(
                tenant,
                "the query index holds at most {MAX_INDEXED_SEQ} entries per tenant; later entries are not searchable"
            );
        }
        let Some(last_seq) = batch.last().map(|(seq, _)| *seq) else {
            return Ok(Batch::default());
        };
        let rows: Vec<Row> = batch
            .iter()
            .filter_map(|(seq, bytes)| match to_row(*seq, bytes) {
                Ok(row) => Some(row),
                Err(error) => {
                    tracing::error!(tenant, seq, %error, "entry does not parse; not indexed (run `sealtrail verify`)");
                    None
                }
            })
            .collect();
        let tx = self.conn.transaction()?;
        let number = match mark {
            Some(mark) => mark.number,
            None => match new_tenant(&tx, tenant)? {
                Some(number) => number,
                None => {
                    if self.full_reported.insert(tenant.to_string()) {
                        tracing::error!(
                            tenant,
                            "the query index holds at most {MAX_TENANT_NUMBER} tenants; this one is not searchable"
                        );
                    }
                    return Ok(Batch::default());
                }
            },
        };
        write_rows(&tx, number, &rows)?;
        // The watermark names the last entry read, even if it did not parse: the log's entry
        // at that seq is what a later start compares against.
        let last_id = batch_last_id(&rows, last_seq, self.log.as_ref(), tenant)?;
        tx.prepare_cached("UPDATE tenants SET next_seq = ?2, last_id = ?3 WHERE number = ?1")?
            .execute(params![number, (last_seq + 1) as i64, last_id])?;
        tx.commit()?;
        self.shared.marks.lock().expect("index marks lock").insert(
            tenant.to_string(),
            Mark {
                number,
                next_seq: last_seq + 1,
            },
        );
        self.shared.progress.send_modify(|n| *n = n.wrapping_add(1));
        Ok(Batch {
            indexed: batch.len(),
            behind: (batch.len() == BATCH_ENTRIES)
                .then(|| rows.last().map(|row| row.received))
                .flatten(),
        })
    }
}

/// The id of the entry at `last_seq`: from its row if it parsed, else straight from the log.
fn batch_last_id(
    rows: &[Row],
    last_seq: u64,
    log: &dyn Store,
    tenant: &str,
) -> Result<Option<String>, IndexError> {
    if let Some(row) = rows.last().filter(|r| r.seq == last_seq) {
        return Ok(Some(row.id.clone()));
    }
    Ok(log.entry_id(tenant, last_seq)?)
}

/// Gives a tenant seen for the first time its key prefix; `None` when none is left.
fn new_tenant(tx: &Transaction<'_>, tenant: &str) -> Result<Option<i64>, IndexError> {
    let number: i64 = tx.query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM tenants",
        [],
        |r| r.get(0),
    )?;
    if number > MAX_TENANT_NUMBER {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO tenants (number, name, next_seq) VALUES (?1, ?2, 0)",
        params![number, tenant],
    )?;
    Ok(Some(number))
}

/// The fields of a stored entry the index keeps, read with serde. Entries were checked
/// against the schema when they were written (and the verifier checks them again), so this
/// reads them without re-checking them; see the module docs.
#[derive(serde::Deserialize)]
struct StoredEntry<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
    action: String,
    #[serde(borrow, default)]
    activity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    actor: StoredActor,
    #[serde(default)]
    targets: Vec<StoredTarget>,
    #[serde(default)]
    context: Option<StoredContext>,
    #[serde(default)]
    source: Option<StoredSource>,
    #[serde(default)]
    details: Option<serde_json::Map<String, Value>>,
}

#[derive(serde::Deserialize)]
struct StoredActor {
    id: String,
}

#[derive(serde::Deserialize)]
struct StoredTarget {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(serde::Deserialize)]
struct StoredContext {
    #[serde(default)]
    ip: Option<String>,
}

#[derive(serde::Deserialize)]
struct StoredSource {
    #[serde(default)]
    app: Option<String>,
}

fn to_row(seq: u64, bytes: &[u8]) -> Result<Row, String> {
    let entry: StoredEntry<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let time = |text: &str| {
        Timestamp::parse(text)
            .map(|t| t.unix_micros())
            .map_err(|e| format!("timestamp {text:?}: {e}"))
    };
    let received = time(&entry.received_at)?;
    let at = match &entry.occurred_at {
        Some(occurred_at) => time(occurred_at)?,
        None => received,
    };
    let activity = match &entry.activity {
        Some(name) => Some(
            Activity::from_name(name)
                .ok_or_else(|| format!("unknown activity {name:?}"))?
                .as_str(),
        ),
        None => None,
    };
    let outcome = EventOutcome::from_name(&entry.outcome)
        .ok_or_else(|| format!("unknown outcome {:?}", entry.outcome))?
        .as_str();
    let targets = entry
        .targets
        .into_iter()
        .map(|t| (t.kind.unwrap_or_default(), t.id.unwrap_or_default()))
        .collect();
    let mut text = String::new();
    if let Some(details) = &entry.details {
        details
            .values()
            .for_each(|value| push_text(value, &mut text));
    }
    Ok(Row {
        received,
        seq,
        id: entry.id.into_owned(),
        at,
        action: entry.action,
        activity,
        outcome,
        actor: entry.actor.id,
        ip: entry.context.and_then(|c| c.ip),
        source: entry.source.and_then(|s| s.app),
        targets: distinct_targets(targets),
        text,
    })
}

/// Each (type, id) once, without the empty ones.
fn distinct_targets(mut targets: Vec<(String, String)>) -> Vec<(String, String)> {
    targets.retain(|(kind, id)| !kind.is_empty() || !id.is_empty());
    targets.sort();
    targets.dedup();
    targets
}

/// Appends the searchable text of a details value: strings and numbers at any depth.
/// (Details nest at most 8 levels, so the recursion is bounded.)
pub fn push_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| push_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| push_text(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

fn key(number: i64, seq: u64) -> i64 {
    (number << SEQ_BITS) | seq as i64
}

/// Rows per `INSERT` statement, so statements are stepped and reset once per 64 rows rather
/// than once per row.
const ROWS_PER_INSERT: usize = 64;

fn write_rows(tx: &Transaction<'_>, number: i64, rows: &[Row]) -> Result<(), IndexError> {
    let keys: Vec<i64> = rows.iter().map(|row| key(number, row.seq)).collect();
    let mut events: Vec<&dyn ToSql> = Vec::with_capacity(rows.len() * 9);
    let mut targets: Vec<&dyn ToSql> = Vec::new();
    let mut texts: Vec<&dyn ToSql> = Vec::new();
    for (row, key) in rows.iter().zip(&keys) {
        events.extend_from_slice(&[
            key,
            &number,
            &row.at,
            &row.action,
            &row.activity,
            &row.outcome,
            &row.actor,
            &row.ip,
            &row.source,
        ]);
        for (kind, id) in &row.targets {
            targets.extend_from_slice(&[id, key, kind]);
        }
        if !row.text.is_empty() {
            texts.extend_from_slice(&[key, &row.text]);
        }
    }
    insert_many(
        tx,
        "INSERT INTO events (key, tenant, at, action, activity, outcome, actor, ip, source)",
        9,
        &events,
    )?;
    insert_many(tx, "INSERT INTO targets (id, key, type)", 3, &targets)?;
    insert_many(tx, "INSERT INTO details (rowid, text)", 2, &texts)?;
    Ok(())
}

/// Inserts `values` (rows of `width` values, flattened) with multi-row `INSERT`s.
fn insert_many(
    tx: &Transaction<'_>,
    head: &str,
    width: usize,
    values: &[&dyn ToSql],
) -> Result<(), IndexError> {
    let row = format!("({})", vec!["?"; width].join(", "));
    for chunk in values.chunks(width * ROWS_PER_INSERT) {
        let sql = format!(
            "{head} VALUES {}",
            vec![row.as_str(); chunk.len() / width].join(", ")
        );
        tx.prepare_cached(&sql)?.execute(chunk)?;
    }
    Ok(())
}

/// Seq order or newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

/// A search of one tenant's index; absent filters match everything.
#[derive(Debug, Clone)]
pub struct Search {
    /// Event time at or after (inclusive).
    pub from: Option<Timestamp>,
    /// Event time before (exclusive).
    pub to: Option<Timestamp>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub activity: Option<String>,
    pub outcome: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Normalised text form (as stored).
    pub ip: Option<String>,
    /// `source.app`.
    pub source: Option<String>,
    /// An FTS5 query built by [`text_query`].
    pub text: Option<String>,
    pub order: Order,
    /// Only seqs after this one in `order` (the cursor).
    pub after: Option<u64>,
    /// At most this many seqs.
    pub limit: usize,
}

impl Search {
    /// A search with no filters, in seq order, returning at most `limit` seqs.
    pub fn unfiltered(limit: usize) -> Search {
        Search {
            from: None,
            to: None,
            actor: None,
            action: None,
            activity: None,
            outcome: None,
            target_type: None,
            target_id: None,
            ip: None,
            source: None,
            text: None,
            order: Order::Asc,
            after: None,
            limit,
        }
    }
}

/// Builds the FTS5 query for `q`: every whitespace-separated word must occur, each as a
/// quoted phrase so that nothing in it is FTS5 syntax. `None` when `q` has no word with a
/// letter or digit in it (such a word has no tokens and could match nothing).
pub fn text_query(q: &str) -> Option<String> {
    let phrases: Vec<String> = q
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

/// Which index walks first; see [`search`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// A time range: the time index, block by block in key order.
    Blocks,
    /// The targets table by target id, in key order.
    Target,
    /// The full-text index, in key order.
    Text,
    /// The primary key or an equality index on `events`, in key order; SQLite picks.
    Events,
}

/// A SQL text with its positional parameters.
struct Sql {
    text: String,
    params: Vec<SqlValue>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    /// Appends ` AND <clause>` where each `?` of the clause takes the next of `values`.
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.text.push_str(" AND ");
        self.text.push_str(clause);
        self.params.extend(values);
    }

    fn text_param(value: &str) -> SqlValue {
        SqlValue::Text(value.to_string())
    }
}

/// The seqs of the tenant's events that match, in `search.order`, at most `search.limit`.
///
/// Every plan walks an index in key order (= seq order) and stops after `limit` matches, so a
/// page costs about `limit` index reads plus what the other filters reject on the way. The
/// driver, in this order of preference:
///
/// 1. a time range (`from`, `to` or both), unless another filter matches fewer than
///    [`SELECTIVE_FILTER`] of the tenant's events (counted with a capped scan of that
///    filter's own plan, which then drives): the time index `events_by_block`, whose key is
///    `(key >> BLOCK_BITS, at)`, walked one block of 2^[`BLOCK_BITS`] seqs at a time in page
///    order. Within a block the range is one index range, sorted by key (at most one block's
///    rows); blocks are disjoint key ranges, so the pages of successive blocks follow each
///    other, and the walk stops at the block that completes the page. A block with nothing
///    in the range costs one index seek. Event times need not follow seq order: a block is
///    skipped only when none of its events is in the range;
/// 2. `target_id` (ids are selective): the targets table, keyed `(id, key, type)`;
/// 3. `q`: the FTS5 doclists, in rowid (= key) order;
/// 4. otherwise `events` by key, where SQLite uses an equality filter's index `(col, key)`
///    when there is one.
///
/// Filters that do not drive are checked per candidate row: columns of `events` directly,
/// targets with a primary-key probe, text with a rowid-constrained FTS5 match. Unary `+`
/// keeps SQLite from using the time index outside plan 1, and `CROSS JOIN` keeps the driving
/// table outermost.
pub fn search(conn: &Connection, tenant: i64, search: &Search) -> Result<Vec<u64>, IndexError> {
    let Some(range) = key_range(tenant, search) else {
        return Ok(Vec::new());
    };
    let driver = choose_driver(conn, search, range)?;
    execute(conn, search, range, driver)
}

/// Runs the search with the given driver (every driver gives the same answer).
fn execute(
    conn: &Connection,
    search: &Search,
    range: (i64, i64),
    driver: Driver,
) -> Result<Vec<u64>, IndexError> {
    let sql = search_sql(search, range, driver);
    if driver == Driver::Blocks {
        walk_blocks(conn, search, range, sql)
    } else {
        run(conn, &sql)
    }
}

/// The keys a search may return: the tenant's, after the cursor. `None` when nothing can match.
fn key_range(tenant: i64, search: &Search) -> Option<(i64, i64)> {
    let base = tenant << SEQ_BITS;
    let (mut lo, mut hi) = (base, base | MAX_INDEXED_SEQ as i64);
    match (search.after, search.order) {
        (None, _) => {}
        (Some(after), Order::Asc) => {
            if after >= MAX_INDEXED_SEQ {
                return None;
            }
            lo = base | (after + 1) as i64;
        }
        (Some(after), Order::Desc) => {
            if after == 0 {
                return None;
            }
            hi = base | (after.min(MAX_INDEXED_SEQ + 1) - 1) as i64;
        }
    }
    if let (Some(from), Some(to)) = (search.from, search.to)
        && from >= to
    {
        return None;
    }
    Some((lo, hi))
}

/// The driver without a time range: the first of target id, text, `events`.
fn filter_driver(search: &Search) -> Driver {
    if search.target_id.is_some() {
        Driver::Target
    } else if search.text.is_some() {
        Driver::Text
    } else {
        Driver::Events
    }
}

/// Whether the search filters on anything but time.
fn has_other_filters(search: &Search) -> bool {
    [
        &search.actor,
        &search.action,
        &search.activity,
        &search.outcome,
        &search.target_type,
        &search.target_id,
        &search.ip,
        &search.source,
        &search.text,
    ]
    .iter()
    .any(|filter| filter.is_some())
}

fn choose_driver(
    conn: &Connection,
    search: &Search,
    range: (i64, i64),
) -> Result<Driver, IndexError> {
    let other = filter_driver(search);
    if search.from.is_none() && search.to.is_none() {
        return Ok(other);
    }
    if !has_other_filters(search) {
        return Ok(Driver::Blocks);
    }
    // Another filter drives when it is selective: then its plan reads fewer rows than the
    // cap, whatever the time range holds.
    let untimed = Search {
        from: None,
        to: None,
        order: Order::Asc,
        limit: SELECTIVE_FILTER as usize,
        ..search.clone()
    };
    let sql = search_sql(&untimed, range, other);
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM ({})", sql.text))?
        .query_row(rusqlite::params_from_iter(sql.params.iter()), |row| {
            row.get(0)
        })?;
    Ok(if count < SELECTIVE_FILTER {
        other
    } else {
        Driver::Blocks
    })
}

fn run(conn: &Connection, sql: &Sql) -> Result<Vec<u64>, IndexError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let keys = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |row| {
        row.get::<_, i64>(0)
    })?;
    let mut seqs = Vec::new();
    for key in keys {
        seqs.push((key? as u64) & MAX_INDEXED_SEQ);
    }
    Ok(seqs)
}

/// Runs a [`Driver::Blocks`] search: `sql` walks the blocks from its first parameter to its
/// third, stepping by its second, over the blocks of the keys in `range` in the search's
/// order, until the page is full.
fn walk_blocks(
    conn: &Connection,
    search: &Search,
    (lo, hi): (i64, i64),
    mut sql: Sql,
) -> Result<Vec<u64>, IndexError> {
    let mut seqs = Vec::new();
    if search.limit == 0 {
        return Ok(seqs);
    }
    // Only the blocks between the first and the last key indexed in the range: the range
    // itself reaches to the largest seq the index could hold.
    let bound = |sql: &str| -> Result<Option<i64>, IndexError> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params![lo, hi], |row| row.get(0))?)
    };
    let Some(first) = bound("SELECT min(key) FROM events WHERE key >= ?1 AND key <= ?2")? else {
        return Ok(seqs);
    };
    let Some(last) = bound("SELECT max(key) FROM events WHERE key >= ?1 AND key <= ?2")? else {
        return Ok(seqs);
    };
    let (first, last) = (first >> BLOCK_BITS, last >> BLOCK_BITS);
    let (start, step, end) = match search.order {
        Order::Asc => (first, 1, last),
        Order::Desc => (last, -1, first),
    };
    sql.params[0] = SqlValue::Integer(start);
    sql.params[1] = SqlValue::Integer(step);
    sql.params[2] = SqlValue::Integer(end);
    // Rows come block by block in page order, each block's in time order: each block is
    // sorted into page order once it is complete, and the walk stops at the block that fills
    // the page. A block with nothing in the range costs one index seek inside SQLite.
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut block: Vec<i64> = Vec::new();
    let take = |block: &mut Vec<i64>, seqs: &mut Vec<u64>| {
        match search.order {
            Order::Asc => block.sort_unstable(),
            Order::Desc => block.sort_unstable_by(|a, b| b.cmp(a)),
        }
        let wanted = search.limit - seqs.len();
        seqs.extend(
            block
                .drain(..)
                .take(wanted)
                .map(|key| key as u64 & MAX_INDEXED_SEQ),
        );
    };
    while let Some(row) = rows.next()? {
        let key: i64 = row.get(0)?;
        if block
            .first()
            .is_some_and(|b| b >> BLOCK_BITS != key >> BLOCK_BITS)
        {
            take(&mut block, &mut seqs);
            if seqs.len() >= search.limit {
                return Ok(seqs);
            }
        }
        block.push(key);
    }
    take(&mut block, &mut seqs);
    Ok(seqs)
}

/// The SQL of a search driven by `driver`; see [`search`]. For [`Driver::Blocks`], the walk
/// over blocks, whose first three parameters [`walk_blocks`] sets.
fn search_sql(search: &Search, (lo, hi): (i64, i64), driver: Driver) -> Sql {
    let from = search.from.map(|t| t.unix_micros());
    let to = search.to.map(|t| t.unix_micros());
    let order = search.order.sql();
    let range = [SqlValue::Integer(lo), SqlValue::Integer(hi)];
    let mut sql = match driver {
        Driver::Blocks => {
            // Every block from the first to the last (parameters 1 and 3, stepping by
            // parameter 2: 1 or -1), one index range each, in one statement.
            let mut sql = Sql {
                text: "WITH RECURSIVE b(n) AS (SELECT ? UNION ALL SELECT n + ? FROM b WHERE n != ?) \
                       SELECT e.key FROM b CROSS JOIN events AS e INDEXED BY events_by_block WHERE 1"
                    .to_string(),
                params: vec![SqlValue::Integer(0); 3],
            };
            // The same expression as the index's, so that SQLite matches the two.
            sql.and(&format!("(e.key >> {BLOCK_BITS}) = b.n"), []);
            if let Some(from) = from {
                sql.and("e.at >= ?", [SqlValue::Integer(from)]);
            }
            if let Some(to) = to {
                sql.and("e.at < ?", [SqlValue::Integer(to)]);
            }
            sql.and("e.key >= ? AND e.key <= ?", range);
            sql
        }
        Driver::Target => {
            let mut sql = Sql::new(
                "SELECT g.key FROM targets AS g CROSS JOIN events AS e ON e.key = g.key WHERE 1",
            );
            let id = search.target_id.as_deref().unwrap_or_default();
            sql.and("g.id = ?", [Sql::text_param(id)]);
            if let Some(kind) = &search.target_type {
                sql.and("+g.type = ?", [Sql::text_param(kind)]);
            }
            sql.and("g.key >= ? AND g.key <= ?", range);
            sql
        }
        Driver::Text => {
            let mut sql = Sql::new(
                "SELECT f.rowid FROM details AS f CROSS JOIN events AS e ON e.key = f.rowid WHERE 1",
            );
            let text = search.text.as_deref().unwrap_or_default();
            sql.and("f.details MATCH ?", [Sql::text_param(text)]);
            sql.and("f.rowid >= ? AND f.rowid <= ?", range);
            sql
        }
        Driver::Events => {
            let mut sql = Sql::new("SELECT e.key FROM events AS e WHERE 1");
            sql.and("e.key >= ? AND e.key <= ?", range);
            sql
        }
    };

    for (column, value) in [
        ("action", &search.action),
        ("activity", &search.activity),
        ("outcome", &search.outcome),
        ("actor", &search.actor),
        ("ip", &search.ip),
        ("source", &search.source),
    ] {
        if let Some(value) = value {
            sql.and(&format!("e.{column} = ?"), [Sql::text_param(value)]);
        }
    }
    if driver != Driver::Blocks {
        if let Some(from) = from {
            sql.and("+e.at >= ?", [SqlValue::Integer(from)]);
        }
        if let Some(to) = to {
            sql.and("+e.at < ?", [SqlValue::Integer(to)]);
        }
    }
    if driver != Driver::Target {
        match (&search.target_type, &search.target_id) {
            (Some(kind), Some(id)) => sql.and(
                "EXISTS (SELECT 1 FROM targets AS t WHERE t.id = ? AND t.key = e.key AND t.type = ?)",
                [Sql::text_param(id), Sql::text_param(kind)],
            ),
            (Some(kind), None) => sql.and(
                "EXISTS (SELECT 1 FROM targets AS t WHERE t.key = e.key AND t.type = ?)",
                [Sql::text_param(kind)],
            ),
            (None, Some(id)) => sql.and(
                "EXISTS (SELECT 1 FROM targets AS t WHERE t.id = ? AND t.key = e.key)",
                [Sql::text_param(id)],
            ),
            (None, None) => {}
        }
    }
    if driver != Driver::Text
        && let Some(text) = &search.text
    {
        sql.and(
            "EXISTS (SELECT 1 FROM details AS d WHERE d.details MATCH ? AND d.rowid = e.key)",
            [Sql::text_param(text)],
        );
    }
    // Without a type, one event may list the same id under two types: one row per key.
    if driver == Driver::Target && search.target_type.is_none() {
        sql.text.push_str(" GROUP BY g.key");
    }
    let key = match driver {
        Driver::Target => "g.key",
        Driver::Text => "f.rowid",
        // Block by block, each block's rows in time order: see `walk_blocks`.
        Driver::Blocks => return sql,
        Driver::Events => "e.key",
    };
    sql.text
        .push_str(&format!(" ORDER BY {key} {order} LIMIT ?"));
    sql.params.push(SqlValue::Integer(search.limit as i64));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, LedgerConfig, Submission};
    use sealtrail_core::canonical::Entry;
    use sealtrail_core::event::Event;

    /// The row of an entry as [`Entry::parse`](sealtrail_core::canonical::Entry::parse) reads it: the oracle for [`to_row`].
    fn row_from_entry(seq: u64, bytes: &[u8]) -> Row {
        let Entry { event, server } = Entry::parse(bytes).unwrap();
        let mut text = String::new();
        for value in event.details.values() {
            push_text(value, &mut text);
        }
        Row {
            seq,
            id: server.id.to_string(),
            at: event
                .occurred_at
                .unwrap_or(server.received_at)
                .unix_micros(),
            received: server.received_at.unix_micros(),
            action: event.action,
            activity: event.activity.map(|a| a.as_str()),
            outcome: event.outcome.as_str(),
            actor: event.actor.id,
            ip: event.context.and_then(|c| c.ip).map(|ip| ip.to_string()),
            source: event.source.and_then(|s| s.app),
            targets: distinct_targets(
                event
                    .targets
                    .into_iter()
                    .map(|t| (t.kind.unwrap_or_default(), t.id.unwrap_or_default()))
                    .collect(),
            ),
            text,
        }
    }

    const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    const EVENTS: u64 = 400;

    /// A deterministic pseudo-random event: small value sets, so every filter has matches.
    fn event(n: u64) -> Value {
        let r = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        let pick = |salt: u64, m: u64| (r / (salt + 1)).wrapping_add(salt * 7) % m;
        let mut event = serde_json::json!({
            "action": (["a.read", "a.write", "a.login"][pick(0, 3) as usize]),
            "outcome": (["success", "failure", "unknown"][pick(1, 3) as usize]),
            "actor": {"id": format!("u-{}", pick(2, 5))},
        });
        if pick(3, 4) != 0 {
            event["activity"] = ["read", "update", "login"][pick(4, 3) as usize].into();
        }
        let mut targets = Vec::new();
        for t in 0..pick(5, 4) {
            let kind = ["patient", "claim"][((t + n) % 2) as usize];
            targets.push(serde_json::json!({"type": kind, "id": format!("x-{}", pick(6 + t, 4))}));
        }
        if !targets.is_empty() {
            event["targets"] = Value::Array(targets);
        }
        if pick(10, 3) != 0 {
            event["context"] = serde_json::json!({"ip": format!("10.0.0.{}", pick(11, 3))});
        }
        if pick(12, 2) == 0 {
            event["source"] = serde_json::json!({"app": (["web", "batch"][pick(13, 2) as usize])});
        }
        if pick(14, 3) != 0 {
            event["occurred_at"] = format!("2021-03-04T05:{:02}:00Z", pick(15, 60)).into();
        }
        if pick(16, 2) == 0 {
            let word = WORDS[pick(17, WORDS.len() as u64) as usize];
            event["details"] = serde_json::json!({"note": format!("{word} {}", n % 10)});
        }
        event
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        log: Box<dyn Store>,
        indexer: Indexer,
        number: i64,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::start(LedgerConfig {
            data_dir: dir.path().to_path_buf(),
            store: Location::new(dir.path(), None),
            signing_key: None,
            checkpoint_interval: Duration::from_secs(60),
            origin_prefix: "test.example".into(),
            audit_stdout: false,
        })
        .unwrap();
        ledger
            .create_token("acme", vec!["events:write".into()], "test")
            .await
            .unwrap();
        let submissions = (0..EVENTS)
            .map(|n| Submission {
                event: Event::from_owned_value(event(n)).unwrap(),
                idempotency_key: None,
            })
            .collect();
        ledger.append("acme", submissions).await.unwrap();
        let indexer = Indexer::start(dir.path(), &Location::new(dir.path(), None)).unwrap();
        indexer
            .index()
            .wait_for("acme", EVENTS - 1, Duration::from_secs(10))
            .await
            .unwrap();
        let number = indexer.index().tenant_number("acme").unwrap();
        let log = Location::new(dir.path(), None).open_reader().unwrap();
        ledger.shutdown();
        Fixture {
            _dir: dir,
            log,
            indexer,
            number,
        }
    }

    fn all() -> Search {
        Search::unfiltered(10_000)
    }

    fn searches() -> Vec<Search> {
        let at = |m: u32| Some(Timestamp::parse(&format!("2021-03-04T05:{m:02}:00Z")).unwrap());
        let s = |f: &dyn Fn(&mut Search)| {
            let mut search = all();
            f(&mut search);
            search
        };
        vec![
            all(),
            s(&|s| s.action = Some("a.read".into())),
            s(&|s| s.activity = Some("login".into())),
            s(&|s| s.outcome = Some("failure".into())),
            s(&|s| s.actor = Some("u-3".into())),
            s(&|s| s.ip = Some("10.0.0.1".into())),
            s(&|s| s.source = Some("batch".into())),
            s(&|s| s.target_type = Some("claim".into())),
            s(&|s| s.target_id = Some("x-2".into())),
            s(&|s| {
                s.target_type = Some("patient".into());
                s.target_id = Some("x-1".into());
            }),
            s(&|s| s.text = text_query("bravo")),
            s(&|s| s.text = text_query("delta 7")),
            s(&|s| {
                s.from = at(10);
                s.to = at(30);
            }),
            s(&|s| s.from = at(50)),
            s(&|s| {
                s.to = at(20);
                s.actor = Some("u-1".into());
                s.target_id = Some("x-0".into());
            }),
            s(&|s| {
                s.from = at(5);
                s.text = text_query("alpha");
                s.outcome = Some("success".into());
            }),
            s(&|s| {
                s.target_id = Some("x-3".into());
                s.text = text_query("echo");
            }),
            s(&|s| {
                s.action = Some("a.write".into());
                s.target_type = Some("patient".into());
                s.ip = Some("10.0.0.2".into());
            }),
            // Time ranges: narrow and wide, open at either end, on either timeline (the
            // fixture's `occurred_at` minutes, and `received_at` for events without one),
            // holding nothing, and with other filters, selective or not.
            s(&|s| {
                s.from = at(7);
                s.to = at(8);
            }),
            s(&|s| s.to = at(3)),
            s(&|s| s.from = at(59)),
            s(&|s| s.from = time("2022-01-01T00:00:00Z")),
            s(&|s| {
                s.from = time("2000-01-01T00:00:00Z");
                s.to = time("2100-01-01T00:00:00Z");
            }),
            s(&|s| s.from = time("2100-01-01T00:00:00Z")),
            s(&|s| {
                // One microsecond: the events of exactly 05:30:00.
                s.from = at(30);
                s.to = time("2021-03-04T05:30:00.000001Z");
            }),
            s(&|s| {
                s.from = at(7);
                s.to = at(40);
                s.action = Some("a.read".into());
            }),
            s(&|s| {
                s.from = time("2022-01-01T00:00:00Z");
                s.outcome = Some("failure".into());
            }),
            s(&|s| {
                s.from = at(20);
                s.to = at(40);
                s.target_type = Some("claim".into());
            }),
            s(&|s| {
                s.to = at(45);
                s.ip = Some("10.0.0.0".into());
                s.source = Some("web".into());
            }),
            s(&|s| {
                s.from = at(1);
                s.to = at(50);
                s.text = text_query("charlie");
                s.target_id = Some("x-1".into());
            }),
            s(&|s| {
                s.from = at(15);
                s.text = text_query("delta 7");
            }),
        ]
    }

    fn time(text: &str) -> Option<Timestamp> {
        Some(Timestamp::parse(text).unwrap())
    }

    fn drivers(search: &Search) -> Vec<Driver> {
        let mut drivers = vec![Driver::Events];
        if search.from.is_some() || search.to.is_some() {
            drivers.push(Driver::Blocks);
        }
        if search.target_id.is_some() {
            drivers.push(Driver::Target);
        }
        if search.text.is_some() {
            drivers.push(Driver::Text);
        }
        drivers
    }

    /// The search done the slow way: every entry of the log, parsed and tested.
    fn brute_force(log: &dyn Store, search: &Search) -> Vec<u64> {
        let rows: Vec<(u64, Vec<u8>)> = log.entries("acme", 0, u64::MAX, usize::MAX).unwrap();
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        let words = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        };
        let mut seqs: Vec<u64> = rows
            .iter()
            .map(|(seq, bytes)| {
                let row = row_from_entry(*seq, bytes);
                assert_eq!(to_row(*seq, bytes).unwrap(), row, "seq {seq}");
                row
            })
            .filter(|row| {
                eq(&search.action, Some(&row.action))
                    && eq(&search.activity, row.activity)
                    && eq(&search.outcome, Some(row.outcome))
                    && eq(&search.actor, Some(&row.actor))
                    && eq(&search.ip, row.ip.as_deref())
                    && eq(&search.source, row.source.as_deref())
                    && search.from.is_none_or(|f| row.at >= f.unix_micros())
                    && search.to.is_none_or(|t| row.at < t.unix_micros())
                    && (search.target_type.is_none() && search.target_id.is_none()
                        || row.targets.iter().any(|(k, i)| {
                            eq(&search.target_type, Some(k)) && eq(&search.target_id, Some(i))
                        }))
                    && search.text.as_deref().is_none_or(|q| {
                        let have = words(&row.text);
                        words(q).iter().all(|w| have.contains(w))
                    })
            })
            .map(|row| row.seq)
            .collect();
        if search.order == Order::Desc {
            seqs.reverse();
        }
        seqs
    }

    #[tokio::test]
    async fn every_plan_finds_what_a_scan_of_the_log_finds() {
        let f = fixture().await;
        let conn = f.indexer.index().reader().unwrap();
        for base in searches() {
            for order in [Order::Asc, Order::Desc] {
                let search = Search {
                    order,
                    ..base.clone()
                };
                let want = brute_force(f.log.as_ref(), &search);
                for driver in drivers(&search) {
                    let range = key_range(f.number, &search).unwrap();
                    let got = execute(&conn, &search, range, driver).unwrap();
                    assert_eq!(got, want, "{driver:?} {search:?}");
                    // Pages of 3 through the cursor add up to the same.
                    let mut paged: Vec<u64> = Vec::new();
                    let mut page = Search {
                        limit: 3,
                        ..search.clone()
                    };
                    while let Some(range) = key_range(f.number, &page) {
                        let seqs = execute(&conn, &page, range, driver).unwrap();
                        paged.extend(&seqs);
                        match seqs.last() {
                            Some(&last) if seqs.len() == 3 => page.after = Some(last),
                            _ => break,
                        }
                    }
                    assert_eq!(paged, want, "paged {driver:?} {search:?}");
                }
                assert_eq!(super::search(&conn, f.number, &search).unwrap(), want);
                // And pages of 7 through the cursor, each planned on its own as the API does.
                let mut paged: Vec<u64> = Vec::new();
                let mut page = Search {
                    limit: 7,
                    ..search.clone()
                };
                loop {
                    let seqs = super::search(&conn, f.number, &page).unwrap();
                    assert!(seqs.len() <= 7);
                    paged.extend(&seqs);
                    match seqs.last() {
                        Some(&last) if seqs.len() == 7 => page.after = Some(last),
                        _ => break,
                    }
                }
                assert_eq!(paged, want, "paged {search:?}");
            }
        }
        assert!(!brute_force(f.log.as_ref(), &all()).is_empty());
        f.indexer.stop();
    }

    /// A time range drives unless another filter is selective; the fixture's blocks are small
    /// enough that time ranges span many of them.
    #[tokio::test]
    async fn time_ranges_drive_unless_another_filter_is_selective() {
        let f = fixture().await;
        let conn = f.indexer.index().reader().unwrap();
        const {
            assert!(
                EVENTS >> BLOCK_BITS >= 8,
                "the fixture spans several blocks"
            )
        };
        let at = |m: u32| Some(Timestamp::parse(&format!("2021-03-04T05:{m:02}:00Z")).unwrap());
        let window = Search {
            from: at(10),
            to: at(50),
            ..all()
        };
        let choose = |search: &Search| {
            choose_driver(&conn, search, key_range(f.number, search).unwrap()).unwrap()
        };
        assert_eq!(choose(&window), Driver::Blocks);
        // Popular: more than SELECTIVE_FILTER events, so time drives.
        let popular = Search {
            outcome: Some("success".into()),
            ..window.clone()
        };
        assert!(
            brute_force(
                f.log.as_ref(),
                &Search {
                    from: None,
                    to: None,
                    ..popular.clone()
                }
            )
            .len() as i64
                >= SELECTIVE_FILTER
        );
        assert_eq!(choose(&popular), Driver::Blocks);
        // Rare: fewer, so it drives.
        let rare = Search {
            text: text_query("delta 7"),
            ..window.clone()
        };
        assert!(
            (brute_force(
                f.log.as_ref(),
                &Search {
                    from: None,
                    to: None,
                    ..rare.clone()
                }
            )
            .len() as i64)
                < SELECTIVE_FILTER
        );
        assert_eq!(choose(&rare), Driver::Text);
        // Without a time range, nothing changes.
        assert_eq!(
            choose(&Search {
                from: None,
                to: None,
                ..popular
            }),
            Driver::Events
        );
        f.indexer.stop();
    }

    /// The plans SQLite makes of each driver's SQL: an index walked in key order with no sort
    /// (except the bounded one within a block of the time index) and never a full scan.
    #[tokio::test]
    async fn plans_walk_an_index_in_key_order() {
        let f = fixture().await;
        let conn = f.indexer.index().reader().unwrap();
        for base in searches() {
            for order in [Order::Asc, Order::Desc] {
                let search = Search {
                    order,
                    ..base.clone()
                };
                for driver in drivers(&search) {
                    let range = key_range(f.number, &search).unwrap();
                    let sql = search_sql(&search, range, driver);
                    let mut stmt = conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
                        .unwrap();
                    let plan: Vec<String> = stmt
                        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(3))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    let context = format!("{driver:?} {search:?}\n{}\n{plan:#?}", sql.text);
                    let sorts = plan.iter().any(|step| step.contains("TEMP B-TREE"));
                    // Blocks are sorted in Rust as they complete (`walk_blocks`).
                    assert!(!sorts, "{context}");
                    // The walk over blocks is the recursive CTE `b`, outermost.
                    let first = if driver == Driver::Blocks {
                        plan.iter()
                            .find(|step| step.starts_with("SEARCH e "))
                            .expect("a search of events")
                    } else {
                        &plan[0]
                    };
                    let (starts, names) = match driver {
                        Driver::Blocks => ("SEARCH e USING ", "INDEX events_by_block (<expr>=?"),
                        Driver::Target => {
                            ("SEARCH g USING PRIMARY KEY (id=? AND key>? AND key<?)", "")
                        }
                        Driver::Text => ("SCAN f VIRTUAL TABLE", ""),
                        Driver::Events => ("SEARCH e USING ", ""),
                    };
                    assert!(
                        first.starts_with(starts) && first.contains(names),
                        "{context}"
                    );
                    assert!(
                        plan.iter().all(|step| !step.starts_with("SCAN ")
                            || step.contains("VIRTUAL TABLE")
                            || (driver == Driver::Blocks
                                && (step == "SCAN b" || step == "SCAN CONSTANT ROW"))),
                        "{context}"
                    );
                }
            }
        }
        f.indexer.stop();
    }
}
