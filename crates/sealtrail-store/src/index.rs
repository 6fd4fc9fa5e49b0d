//! The query index's database: `DIR/index.db`, a SQLite file derived from the logs that
//! answers "which seqs of this tenant match these filters". Events themselves are always read
//! from the log by seq.
//!
//! This module is the database alone: its schema, opening it (and rebuilding it when it cannot
//! be trusted), writing a tenant's batch of committed entries, and searching it. *When* entries
//! are written is decided elsewhere, by the server's follower of the committed log
//! (`sealtrail_server::follower`), which reads the log in batches and hands each tenant's batch
//! to [`IndexDb::apply`]. Keeping the two apart means this file holds every line of SQL of the
//! index, and the follower holds no SQL at all.
//!
//! ## Why a separate file, and why it may be thrown away
//!
//! The log (`DIR/sealtrail.db`, or PostgreSQL) is the source of truth; this database only says
//! which seqs match. It is a separate file so that indexing never takes the log's write lock:
//! the writer's group commit is never delayed by index maintenance, and the entries are read
//! from the log through an ordinary read-only connection (WAL readers do not block the
//! writer). Because it is derived, it is written with `synchronous=NORMAL` (no fsync per
//! commit): a crash can lose the last few index transactions, and since each transaction also
//! moves the tenant's watermark, what is lost is simply indexed again.
//!
//! [`IndexDb::open`] rebuilds the index from seq 0 of every log when the file is missing, when
//! its schema version (`PRAGMA user_version`) differs from the one of the [`IndexLayout`] it is
//! opened with, or when it does not match the log: each tenant's watermark row remembers the
//! id of the last entry indexed, and if the log holds another entry (or none) at that seq — the
//! store was restored or replaced — the whole file is deleted and rebuilt. Nothing else ever
//! deletes from it.
//!
//! ## Writing a batch
//!
//! [`IndexDb::apply`] takes a tenant's next committed entries in seq order, reads the fields
//! the index keeps from each, and writes their rows (multi-row `INSERT`s) together with the
//! tenant's new watermark in one transaction. Large transactions amortise the commit. An entry
//! that does not parse (damage the verifier reports) is skipped with an error in the log; it
//! must not stop indexing of the entries after it.
//!
//! Entries are read with a serde struct of just those fields rather than
//! [`Entry::parse`](sealtrail_core::canonical::Entry::parse), which re-validates the whole
//! schema and took about three times as long per entry; a test holds the two to the same rows.
//! Inserting into the indexes is most of the remaining cost.
//!
//! The watermark of a tenant is the number of its entries indexed ([`Mark::next_seq`]): every
//! entry with `seq < next_seq` is searchable.
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
//! index refuses to go beyond them (with an error in the log) rather than mix tenants.
//!
//! Columns are only what filters need: event time, action, activity, outcome, actor id,
//! `context.ip`, `source.app`, plus a `targets` table `(id, key, type)` and the `details` text.
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
//!   `occurred_at`, late or early), so the time index is kept per block of
//!   2^[`IndexLayout::block_bits`] seqs, `(key >> block_bits, at)`: a time range is walked
//!   block by block in page order, in one statement, each block's matches sorted by key (at
//!   most a block's worth), and the walk stops at the block that completes the page. It drives
//!   unless another filter matches fewer than [`IndexLayout::selective_filter`] events; then
//!   that filter drives and time is checked per row.
//! - **Layout.** The block size and the selectivity threshold are an explicit
//!   [`IndexLayout`], given when the index is opened; [`IndexLayout::default`] is what the
//!   service uses. Tests that need many blocks out of a few hundred events ask for small blocks
//!   by name, so no build flag changes what the index does.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, ToSql, Transaction, params};
use sealtrail_core::Timestamp;
use sealtrail_core::event::{Activity, Outcome as EventOutcome};
use serde_json::Value;

use crate::{EntryRow, Store, StoreError};

/// The schema version of the index in the production layout ([`IndexLayout::default`]),
/// stored as `PRAGMA user_version`. An index of any other version is rebuilt.
pub const SCHEMA_VERSION: i64 = 2;

/// Bits of the key that hold the seq.
const SEQ_BITS: u32 = 44;
/// The largest seq the index can hold.
pub const MAX_INDEXED_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// The largest tenant number: the key must stay a positive `i64`.
const MAX_TENANT_NUMBER: i64 = (1 << (63 - SEQ_BITS)) - 1;

/// How the index arranges time and plans searches. Both numbers trade a little speed one way
/// for another and change no answer: every layout finds the same seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    /// Seqs per block of the time index `events_by_block` are `2^block_bits`: its key is
    /// `(key >> block_bits, at)`, and a time range is searched block by block in key order
    /// (see [`search`]). Part of the schema, so it enters [`IndexLayout::schema_version`].
    pub block_bits: u32,
    /// A time range drives a search unless another filter matches fewer events of the tenant
    /// than this (counted with a capped scan): then that filter drives and time is checked per
    /// row. Only planning depends on it, not what is on disk.
    pub selective_filter: i64,
}

impl IndexLayout {
    /// The service's layout: blocks of 8,192 seqs, and a filter drives when it matches fewer
    /// than 4,096 of a tenant's events.
    pub const PRODUCTION: IndexLayout = IndexLayout {
        block_bits: 13,
        selective_filter: 4096,
    };

    /// The `PRAGMA user_version` of an index in this layout: [`SCHEMA_VERSION`] for the
    /// production block size, and a version of its own for any other, so that an index is
    /// never read with another block size than it was built with (its time index would not
    /// match the queries' expression) but rebuilt.
    pub fn schema_version(&self) -> i64 {
        if self.block_bits == IndexLayout::PRODUCTION.block_bits {
            SCHEMA_VERSION
        } else {
            SCHEMA_VERSION + 1_000 * i64::from(self.block_bits)
        }
    }
}

impl Default for IndexLayout {
    fn default() -> IndexLayout {
        IndexLayout::PRODUCTION
    }
}

/// The index's tables and indexes.
fn schema(layout: IndexLayout) -> String {
    let block_bits = layout.block_bits;
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
CREATE INDEX events_by_block    ON events ((key >> {block_bits}), at);
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
}

/// Where indexing of a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The tenant's key prefix: the high bits of every key of its rows, which [`search`] takes.
    pub number: i64,
    /// Entries with `seq < next_seq` are indexed.
    pub next_seq: u64,
}

/// The index open for writing: one connection, owned by whoever follows the log.
pub struct IndexDb {
    conn: Connection,
    path: PathBuf,
    layout: IndexLayout,
    /// Every tenant indexed so far, as committed: the tenant number is needed for every batch,
    /// and reading it from memory saves a query per batch.
    marks: HashMap<String, Mark>,
    /// Tenants at the index's limits, reported once each rather than once per batch.
    full_reported: HashSet<String>,
}

impl IndexDb {
    /// Opens the index at `path` in `layout`, rebuilding it (from nothing: every tenant's mark
    /// back to 0) when it is missing, of another schema version, or does not match `log`.
    pub fn open(path: &Path, layout: IndexLayout, log: &dyn Store) -> Result<IndexDb, IndexError> {
        assert!(
            (1..SEQ_BITS).contains(&layout.block_bits),
            "a block holds between 2 and 2^43 seqs"
        );
        let conn = open_writer(path, layout, log)?;
        let marks = load_marks(&conn)?;
        Ok(IndexDb {
            conn,
            path: path.to_path_buf(),
            layout,
            marks,
            full_reported: HashSet::new(),
        })
    }

    /// Where every tenant indexed so far stands (tenants never indexed have no mark: nothing
    /// of theirs is searchable).
    pub fn marks(&self) -> &HashMap<String, Mark> {
        &self.marks
    }

    /// Where a tenant stands, if anything of it has been indexed.
    pub fn mark(&self, tenant: &str) -> Option<Mark> {
        self.marks.get(tenant).copied()
    }

    /// The read side of this index: a pool of read-only connections in the same layout.
    pub fn readers(&self) -> IndexReaders {
        IndexReaders::new(&self.path, self.layout)
    }

    /// Indexes a tenant's next committed entries, `(seq, bytes)` in seq order from its mark
    /// on, and moves its mark past them, in one transaction. Returns the tenant's mark
    /// afterwards, unchanged (or `None`, for a tenant never indexed) when the entries are
    /// beyond what the index can hold. `log` is the log the entries come from: the watermark
    /// names the last entry's id, and when that entry does not parse its id is read from
    /// there.
    pub fn apply(
        &mut self,
        tenant: &str,
        entries: &[(u64, EntryRow)],
        log: &dyn Store,
    ) -> Result<Option<Mark>, IndexError> {
        let mark = self.mark(tenant);
        debug_assert!(
            entries
                .first()
                .is_none_or(|(seq, _)| *seq == mark.map_or(0, |m| m.next_seq)),
            "a batch starts at the tenant's mark"
        );
        // Seqs beyond the key's seq bits would spill into the tenant number: those entries
        // stay unsearchable rather than show up under another tenant.
        let indexable = entries.partition_point(|(seq, _)| *seq <= MAX_INDEXED_SEQ);
        if indexable < entries.len() && self.full_reported.insert(tenant.to_string()) {
            tracing::error!(
                tenant,
                "the query index holds at most {MAX_INDEXED_SEQ} entries per tenant; later entries are not searchable"
            );
        }
        let entries = &entries[..indexable];
        let Some(last_seq) = entries.last().map(|(seq, _)| *seq) else {
            return Ok(mark);
        };
        let rows: Vec<Row> = entries
            .iter()
            .filter_map(|(seq, entry)| {
                // A row that holds no entry bytes is passed over like one that does not parse:
                // the index cannot show it, and stopping here would leave every later entry
                // unsearchable. The mark moves past it, so it is logged once, not every round.
                let bytes = match entry {
                    Ok(bytes) => bytes,
                    Err(bad) => {
                        tracing::error!(tenant, seq, error = %bad, "entry row holds no entry; not indexed (run `sealtrail verify`)");
                        return None;
                    }
                };
                match to_row(*seq, bytes) {
                    Ok(row) => Some(row),
                    Err(error) => {
                        tracing::error!(tenant, seq, %error, "entry does not parse; not indexed (run `sealtrail verify`)");
                        None
                    }
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
                    return Ok(None);
                }
            },
        };
        write_rows(&tx, number, &rows)?;
        // The watermark names the last entry read, even if it did not parse: the log's entry
        // at that seq is what a later start compares against.
        let last_id = batch_last_id(&rows, last_seq, log, tenant)?;
        tx.prepare_cached("UPDATE tenants SET next_seq = ?2, last_id = ?3 WHERE number = ?1")?
            .execute(params![number, (last_seq + 1) as i64, last_id])?;
        tx.commit()?;
        let mark = Mark {
            number,
            next_seq: last_seq + 1,
        };
        self.marks.insert(tenant.to_string(), mark);
        Ok(Some(mark))
    }
}

/// The read side of the index: a pool of read-only connections. Cloning is cheap and shares
/// the pool.
#[derive(Clone)]
pub struct IndexReaders {
    path: PathBuf,
    layout: IndexLayout,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl IndexReaders {
    /// Readers of the index at `path`, built in `layout` (see [`IndexDb::readers`]).
    pub fn new(path: &Path, layout: IndexLayout) -> IndexReaders {
        IndexReaders {
            path: path.to_path_buf(),
            layout,
            idle: Arc::new(Mutex::new(Vec::new())),
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
            layout: self.layout,
        })
    }
}

/// A pooled read connection to the index; goes back to the pool when dropped.
pub struct IndexReader {
    conn: Option<Connection>,
    idle: Arc<Mutex<Vec<Connection>>>,
    /// The layout the index was built in, which plans searches.
    layout: IndexLayout,
}

impl IndexReader {
    /// The seqs of the tenant's events that match; see [`search`].
    pub fn search(&self, tenant: i64, search: &Search) -> Result<Vec<u64>, IndexError> {
        let Some(range) = key_range(tenant, search) else {
            return Ok(Vec::new());
        };
        let driver = choose_driver(self.conn(), self.layout, search, range)?;
        execute(self.conn(), self.layout, search, range, driver)
    }

    fn conn(&self) -> &Connection {
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

/// Opens the index for writing, rebuilding it when it cannot be trusted.
fn open_writer(
    path: &Path,
    layout: IndexLayout,
    log: &dyn Store,
) -> Result<Connection, IndexError> {
    if path.exists() {
        let conn = configure(Connection::open(path)?)?;
        if let Some(discarded) = crate::sqlite::wal::discard_unfinished(&conn, path)? {
            // Index commits are not fsync'd, so a crash may take the last ones with it: their
            // watermark goes with them, and those entries are indexed again.
            tracing::warn!(
                wal = %discarded.file.display(),
                bytes = discarded.bytes,
                frames = discarded.frames,
                "the query index lost an unfinished write in a crash; its entries are indexed again from the log"
            );
        }
        match stale_reason(&conn, layout, log)? {
            None => return Ok(conn),
            Some(reason) => {
                tracing::warn!(index = %path.display(), %reason, "rebuilding the query index from the log");
                drop(conn);
                remove_database(path)?;
            }
        }
    }
    // A new index is its owner's alone, whatever the umask (see `layout`): it holds a copy of
    // what the events say.
    crate::layout::create_private_file(path).map_err(|error| {
        StoreError::Unavailable(format!("cannot create {}: {error}", path.display()))
    })?;
    let conn = configure(Connection::open(path)?)?;
    conn.execute_batch(&format!(
        "BEGIN; {} PRAGMA user_version = {}; COMMIT;",
        schema(layout),
        layout.schema_version()
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
fn stale_reason(
    conn: &Connection,
    layout: IndexLayout,
    log: &dyn Store,
) -> Result<Option<String>, IndexError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let wanted = layout.schema_version();
    if version != wanted {
        return Ok(Some(format!(
            "its schema version is {version}, this build uses {wanted}"
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

/// An entry reduced to what the index keeps.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    seq: u64,
    id: String,
    at: i64,
    action: String,
    activity: Option<&'static str>,
    outcome: &'static str,
    actor: String,
    ip: Option<String>,
    source: Option<String>,
    targets: Vec<(String, String)>,
    text: String,
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

/// Why a stored entry could not be turned into an index row. The entry is then left out of
/// the index and logged; `sealtrail verify` says what is wrong with it.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("timestamp {text:?}: {error}")]
    Timestamp {
        text: String,
        error: sealtrail_core::timestamp::TimestampError,
    },
    #[error("unknown activity {0:?}")]
    Activity(String),
    #[error("unknown outcome {0:?}")]
    Outcome(String),
}

fn to_row(seq: u64, bytes: &[u8]) -> Result<Row, RowError> {
    let entry: StoredEntry<'_> = serde_json::from_slice(bytes)?;
    let time = |text: &str| {
        Timestamp::parse(text)
            .map(|t| t.unix_micros())
            .map_err(|error| RowError::Timestamp {
                text: text.to_string(),
                error,
            })
    };
    let received = time(&entry.received_at)?;
    let at = match &entry.occurred_at {
        Some(occurred_at) => time(occurred_at)?,
        None => received,
    };
    let activity = match &entry.activity {
        Some(name) => Some(
            Activity::from_name(name)
                .ok_or_else(|| RowError::Activity(name.to_string()))?
                .as_str(),
        ),
        None => None,
    };
    let outcome = EventOutcome::from_name(&entry.outcome)
        .ok_or_else(|| RowError::Outcome(entry.outcome.to_string()))?
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
///    [`IndexLayout::selective_filter`] of the tenant's events (counted with a capped scan of
///    that filter's own plan, which then drives): the time index `events_by_block`, whose key
///    is `(key >> block_bits, at)`, walked one block of 2^[`IndexLayout::block_bits`] seqs at a
///    time in page order. Within a block the range is one index range, sorted by key (at most one block's
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
pub fn search(reader: &IndexReader, tenant: i64, search: &Search) -> Result<Vec<u64>, IndexError> {
    reader.search(tenant, search)
}

/// Runs the search with the given driver (every driver gives the same answer).
fn execute(
    conn: &Connection,
    layout: IndexLayout,
    search: &Search,
    range: (i64, i64),
    driver: Driver,
) -> Result<Vec<u64>, IndexError> {
    let sql = search_sql(search, range, driver, layout.block_bits);
    if driver == Driver::Blocks {
        walk_blocks(conn, layout.block_bits, search, range, sql)
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
    layout: IndexLayout,
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
        limit: layout.selective_filter as usize,
        ..search.clone()
    };
    let sql = search_sql(&untimed, range, other, layout.block_bits);
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM ({})", sql.text))?
        .query_row(rusqlite::params_from_iter(sql.params.iter()), |row| {
            row.get(0)
        })?;
    Ok(if count < layout.selective_filter {
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
    block_bits: u32,
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
    let (first, last) = (first >> block_bits, last >> block_bits);
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
            .is_some_and(|b| b >> block_bits != key >> block_bits)
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
fn search_sql(search: &Search, (lo, hi): (i64, i64), driver: Driver, block_bits: u32) -> Sql {
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
            sql.and(&format!("(e.key >> {block_bits}) = b.n"), []);
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
    use crate::{Location, NewEntry, Tenant};
    use sealtrail_core::Hash;
    use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry, event_hash};
    use sealtrail_core::event::Event;
    use sealtrail_core::merkle::{self, TreeBuilder};

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

    /// Blocks of 16 seqs, and a filter drives below 24 events: the fixture's 400 events span
    /// 25 blocks, and some of its filters are selective while others are not, so that every
    /// plan and both sides of the choice between them are exercised.
    const SMALL: IndexLayout = IndexLayout {
        block_bits: 4,
        selective_filter: 24,
    };

    /// The first `count` entries of a log as the write path makes them: canonical entries of
    /// [`event`] with consecutive seqs, chained by `prev_hash`, received a millisecond apart.
    fn log_entries(count: u64) -> Vec<(u64, Vec<u8>)> {
        let start = Timestamp::parse("2026-01-02T03:04:05Z")
            .unwrap()
            .unix_micros();
        let mut prev_hash = Hash::ZERO;
        (0..count)
            .map(|seq| {
                let server = ServerFields {
                    id: uuid::Uuid::from_u128(
                        0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(seq),
                    ),
                    seq,
                    received_at: Timestamp::from_unix_micros(start + seq as i64 * 1_000).unwrap(),
                    prev_hash,
                };
                let event = Event::from_owned_value(event(seq)).unwrap();
                let bytes = canonical_entry(&event, &server).unwrap();
                prev_hash = event_hash(&bytes);
                (seq, bytes)
            })
            .collect()
    }

    /// Entries as a store's reads hand them to the index: every row readable.
    fn rows(entries: &[(u64, Vec<u8>)]) -> Vec<(u64, EntryRow)> {
        entries
            .iter()
            .map(|(seq, bytes)| (*seq, Ok(bytes.clone())))
            .collect()
    }

    /// An embedded store in `dir` holding `entries` as the log of `tenant`, with their stored
    /// hashes, as the write path leaves it.
    fn write_log(dir: &Path, tenant: &str, entries: &[(u64, Vec<u8>)]) -> Box<dyn Store> {
        let store = Location::new(dir, None).open_writer().unwrap();
        let size = store.size(tenant).unwrap();
        assert!(entries.first().is_none_or(|(seq, _)| *seq == size));
        let ids: Vec<String> = entries
            .iter()
            .map(|(_, bytes)| Entry::parse(bytes).unwrap().server.id.to_string())
            .collect();
        let rows: Vec<NewEntry<'_>> = entries
            .iter()
            .zip(&ids)
            .map(|((seq, bytes), id)| NewEntry {
                seq: *seq,
                id,
                entry: bytes,
            })
            .collect();
        let mut tree = TreeBuilder::new();
        let mut hashes = Vec::new();
        for (_, bytes) in entries {
            tree.push(event_hash(bytes), &mut hashes);
        }
        store.begin_write(&[tenant]).unwrap();
        if store.tenant(tenant).unwrap().is_none() {
            store
                .insert_tenant(&Tenant {
                    name: tenant.to_string(),
                    origin: format!("index.test/{tenant}"),
                    created_at: "2026-01-01T00:00:00.000000Z".to_string(),
                    vkey: None,
                })
                .unwrap();
        }
        store
            .append(tenant, &rows, merkle::stored_hash_count(size), &hashes)
            .unwrap();
        store.commit().unwrap();
        store
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        entries: Vec<(u64, Vec<u8>)>,
        readers: IndexReaders,
        number: i64,
        layout: IndexLayout,
    }

    /// A log of [`EVENTS`] entries, indexed in `layout` in batches as a follower hands them
    /// over.
    fn fixture(layout: IndexLayout) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let entries = log_entries(EVENTS);
        let log = write_log(dir.path(), "acme", &entries);
        let path = crate::DataDir::new(dir.path()).index();
        let mut db = IndexDb::open(&path, layout, log.as_ref()).unwrap();
        for batch in entries.chunks(150) {
            db.apply("acme", &rows(batch), log.as_ref()).unwrap();
        }
        let mark = db.mark("acme").unwrap();
        assert_eq!(mark.next_seq, EVENTS);
        Fixture {
            _dir: dir,
            entries,
            readers: db.readers(),
            number: mark.number,
            layout,
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
    fn brute_force(rows: &[(u64, Vec<u8>)], search: &Search) -> Vec<u64> {
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

    /// In the small layout, whose blocks the time ranges span many of, and in the service's.
    #[test]
    fn every_plan_finds_what_a_scan_of_the_log_finds() {
        every_plan_finds_what_a_scan_finds(fixture(SMALL));
        every_plan_finds_what_a_scan_finds(fixture(IndexLayout::default()));
    }

    fn every_plan_finds_what_a_scan_finds(f: Fixture) {
        let reader = f.readers.reader().unwrap();
        let conn = reader.conn();
        for base in searches() {
            for order in [Order::Asc, Order::Desc] {
                let search = Search {
                    order,
                    ..base.clone()
                };
                let want = brute_force(&f.entries, &search);
                for driver in drivers(&search) {
                    let range = key_range(f.number, &search).unwrap();
                    let got = execute(conn, f.layout, &search, range, driver).unwrap();
                    assert_eq!(got, want, "{driver:?} {search:?}");
                    // Pages of 3 through the cursor add up to the same.
                    let mut paged: Vec<u64> = Vec::new();
                    let mut page = Search {
                        limit: 3,
                        ..search.clone()
                    };
                    while let Some(range) = key_range(f.number, &page) {
                        let seqs = execute(conn, f.layout, &page, range, driver).unwrap();
                        paged.extend(&seqs);
                        match seqs.last() {
                            Some(&last) if seqs.len() == 3 => page.after = Some(last),
                            _ => break,
                        }
                    }
                    assert_eq!(paged, want, "paged {driver:?} {search:?}");
                }
                assert_eq!(super::search(&reader, f.number, &search).unwrap(), want);
                // And pages of 7 through the cursor, each planned on its own as the API does.
                let mut paged: Vec<u64> = Vec::new();
                let mut page = Search {
                    limit: 7,
                    ..search.clone()
                };
                loop {
                    let seqs = super::search(&reader, f.number, &page).unwrap();
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
        assert!(!brute_force(&f.entries, &all()).is_empty());
    }

    /// A time range drives unless another filter is selective; the fixture's blocks are small
    /// enough that time ranges span many of them.
    #[test]
    fn time_ranges_drive_unless_another_filter_is_selective() {
        let f = fixture(SMALL);
        let reader = f.readers.reader().unwrap();
        let conn = reader.conn();
        const {
            assert!(
                EVENTS >> SMALL.block_bits >= 8,
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
            choose_driver(conn, SMALL, search, key_range(f.number, search).unwrap()).unwrap()
        };
        assert_eq!(choose(&window), Driver::Blocks);
        // Popular: more than SELECTIVE_FILTER events, so time drives.
        let popular = Search {
            outcome: Some("success".into()),
            ..window.clone()
        };
        assert!(
            brute_force(
                &f.entries,
                &Search {
                    from: None,
                    to: None,
                    ..popular.clone()
                }
            )
            .len() as i64
                >= SMALL.selective_filter
        );
        assert_eq!(choose(&popular), Driver::Blocks);
        // Rare: fewer, so it drives.
        let rare = Search {
            text: text_query("delta 7"),
            ..window.clone()
        };
        assert!(
            (brute_force(
                &f.entries,
                &Search {
                    from: None,
                    to: None,
                    ..rare.clone()
                }
            )
            .len() as i64)
                < SMALL.selective_filter
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
    }

    /// The plans SQLite makes of each driver's SQL: an index walked in key order with no sort
    /// (except the bounded one within a block of the time index) and never a full scan.
    #[test]
    fn plans_walk_an_index_in_key_order() {
        let f = fixture(SMALL);
        let reader = f.readers.reader().unwrap();
        let conn = reader.conn();
        for base in searches() {
            for order in [Order::Asc, Order::Desc] {
                let search = Search {
                    order,
                    ..base.clone()
                };
                for driver in drivers(&search) {
                    let range = key_range(f.number, &search).unwrap();
                    let sql = search_sql(&search, range, driver, SMALL.block_bits);
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
    }

    /// The service's layout is schema version 2, as every index it has written so far;
    /// another block size is a schema of its own and is rebuilt rather than misread.
    #[test]
    fn the_production_layout_is_schema_version_2() {
        assert_eq!(SCHEMA_VERSION, 2);
        assert_eq!(IndexLayout::default(), IndexLayout::PRODUCTION);
        assert_eq!(IndexLayout::default().block_bits, 13);
        assert_eq!(IndexLayout::default().selective_filter, 4096);
        assert_eq!(IndexLayout::default().schema_version(), 2);
        assert_ne!(SMALL.schema_version(), 2);

        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), "acme", &[]);
        let path = crate::DataDir::new(dir.path()).index();
        drop(IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap());
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let block_index: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'events_by_block'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(block_index.contains("(key >> 13)"), "{block_index}");
    }

    /// An index is kept across opens while it matches the log, and rebuilt from nothing when
    /// its layout differs or the log at its watermark holds another entry.
    #[test]
    fn an_index_is_kept_while_it_matches_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let entries = log_entries(40);
        let log = write_log(dir.path(), "acme", &entries);
        let path = crate::DataDir::new(dir.path()).index();
        let mut db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
        let mark = db
            .apply("acme", &rows(&entries[..30]), log.as_ref())
            .unwrap();
        assert_eq!(mark.map(|m| m.next_seq), Some(30));
        drop(db);

        let db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
        assert_eq!(db.mark("acme"), mark);
        drop(db);

        let db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
        assert_eq!(db.mark("acme"), None, "another layout is rebuilt");
        drop(db);

        // Another log whose entry 29 has another id: the index was built from something else.
        let mut db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
        db.apply("acme", &rows(&entries[..30]), log.as_ref())
            .unwrap();
        drop(db);
        let other = tempfile::tempdir().unwrap();
        let mut replaced = log_entries(40);
        replaced[29].1 = {
            let mut entry = Entry::parse(&replaced[29].1).unwrap();
            entry.server.id = uuid::Uuid::from_u128(29);
            entry.to_bytes().unwrap()
        };
        let other_log = write_log(other.path(), "acme", &replaced);
        let db = IndexDb::open(&path, SMALL, other_log.as_ref()).unwrap();
        assert_eq!(db.mark("acme"), None, "a replaced log is indexed again");
    }

    /// Entries are searchable exactly up to the mark, batch by batch.
    #[test]
    fn a_batch_moves_the_mark_past_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entries = log_entries(25);
        let log = write_log(dir.path(), "acme", &entries);
        let path = crate::DataDir::new(dir.path()).index();
        let mut db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
        assert_eq!(db.apply("acme", &[], log.as_ref()).unwrap(), None);
        let first = db
            .apply("acme", &rows(&entries[..10]), log.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(first.next_seq, 10);
        let readers = db.readers();
        let found = |db: &IndexDb| {
            let number = db.mark("acme").unwrap().number;
            readers.reader().unwrap().search(number, &all()).unwrap()
        };
        assert_eq!(found(&db), (0..10).collect::<Vec<u64>>());
        let second = db
            .apply("acme", &rows(&entries[10..]), log.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(
            second,
            Mark {
                number: first.number,
                next_seq: 25
            }
        );
        assert_eq!(found(&db), (0..25).collect::<Vec<u64>>());
        assert_eq!(db.marks().len(), 1);
    }
}
