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
//! the index keeps from each, and writes their rows (one prepared `INSERT` per row: a multi-row
//! `INSERT` makes SQLite keep a statement journal of every page it changes) together with the
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
//! ## Catching up in bulk
//!
//! Batch by batch, every row costs an insert into each of the three secondary indexes of
//! `events`, one into `targets` per target and a few postings. When a tenant is far
//! behind the log — a rebuild from an empty index, or a restart after a long stop — its batch
//! instead starts a *load* ([`BulkPolicy`]: at least 100,000 entries behind): its rows go into
//! the tables `load_events` and `load_targets`, which have no index but their rowid, and each
//! load transaction reads on from the log itself, up to 200,000 entries, rather than committing
//! every follower batch. The `loading` table holds how far the load has read (the follower's
//! cursor, [`Mark::cursor`]) with the id of the last entry read, checked against the log on
//! open like the watermark. Once fewer than the threshold remain, one transaction moves the
//! tenant's loaded rows into `events` and `targets` in key order and moves the watermark to
//! the end of the load; when the load brings at least as many rows as the index held, the
//! secondary indexes are dropped first and created again afterwards, each by one sorted pass
//! (SQLite sorts the keys, on helper threads, then writes the b-tree in order). When no other
//! tenant is loading, `events`' rows are copied into `load_events` and that table becomes
//! `events` ([`Move`]), so a rebuild after a restore copies the few rows of the system log,
//! not millions. While loading, each chunk read from the log is parsed on a helper thread as
//! the rows of the chunk before are written. The rest is indexed batch by batch.
//!
//! Searches read `events` and `targets` only, so during a load they find exactly what was
//! searchable before it — as they do whenever the index is behind — and the watermark readers
//! wait on stays there until the load's rows are moved: nothing is reported searchable before
//! it is. The text goes into `details` during the load already, and it is found only through
//! an `events` row; the postings go into `postings`, and a search walks them only below the
//! tenant's watermark. Neither is found before the load's rows are moved.
//!
//! ## Rows and keys
//!
//! Every indexed entry is one `events` row whose integer primary key is
//! `key = (tenant number << 44) | seq`. This one integer does three jobs:
//!
//! - within a tenant, key order *is* seq order, so `ORDER BY key` pages in seq order;
//! - a tenant is a key range, so every query is confined to its tenant by
//!   `key BETWEEN lo AND hi`, with no tenant column in any index;
//! - every secondary index of a rowid table ends with the key, so an index on
//!   `(action, outcome)` is in effect `(action, outcome, tenant, seq)`: an equality filter
//!   with an outcome is a range scan already in seq order, and the first page of 100 reads
//!   about 100 index entries however big the log is.
//!
//! The full-text table uses the same key as its rowid, and FTS5 walks its doclists in rowid
//! order with rowid range constraints, so text search pages the same way. The limits this
//! implies: at most 2^44 − 1 entries per tenant (17.6 trillion) and 2^19 − 1 tenants; the
//! index refuses to go beyond them (with an error in the log) rather than mix tenants.
//!
//! Columns are only what filters need: event time, action, activity, outcome, actor id,
//! `context.ip`, `source.app`, the targets' types, plus a `targets` table
//! `(block, id, key, type)` and the `details` text.
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
//!   block by block in page order, each block's matches sorted by key (at most a block's
//!   worth), and the walk stops at the block that completes the page. Only blocks that can
//!   hold a match are walked: `block_times` keeps, per block, at most four (`BLOCK_SPANS`) intervals
//!   that hold the time of each of its events (several, because one block mixes producers'
//!   `occurred_at` with the server's time for producers that send none, and late events), and
//!   the walk visits only the blocks with an interval that meets the range, so a narrow window
//!   costs a look-up of those intervals rather than a seek in every block of the log. It
//!   drives unless another filter matches fewer than [`IndexLayout::selective_filter`] events;
//!   then that filter drives and time is checked per row.
//! - **Names with the outcome.** Each name (action, activity, actor, ip, source) is kept
//!   together with the outcome, so that a name *and* an outcome — `ip=…&outcome=failure`, the
//!   question after a suspicious login — reads only the name's events with that outcome,
//!   even when the name has many successes and a handful of failures; with an index of the
//!   name alone, a page read every event of the address to find its failures. The outcome is
//!   stored as a small integer (0, 1, 2). Which index walks is named in the SQL (`INDEXED
//!   BY`), because the index keeps no statistics and SQLite, guessing, preferred the
//!   outcome's index whenever a filter it could not serve was present.
//! - **Postings.** The names with few values — action, activity, `source.app`, the targets'
//!   types — and the outcome alone are not b-trees but *postings*: per batch, one row for
//!   each `(name, value, outcome)` that occurs in it, holding the keys of the batch's events
//!   with that value, delta-encoded (`postings`). A b-tree entry per event and name meant a
//!   descent of five trees for every event, each to the end of one of a few ranges; a batch
//!   of 1,000 events now writes a few dozen rows in all, and a bulk load has five indexes
//!   fewer to create. A search driven by one of them walks the value's rows in key order
//!   (one walk per outcome searched, merged), and checks the keys in chunks against their
//!   `events` rows, where every other filter is applied (with no other filter, the keys are
//!   the answer); the keys at or beyond the tenant's watermark (a bulk load under way writes
//!   its postings with its rows) are not walked. When something else drives, a target type
//!   is checked on the `events` row, which lists its targets' types (`target_types`), so
//!   that the check reads no other table.
//! - **Names by block.** Where a column has many values — actor ids, addresses, target ids —
//!   an index keyed by the value first takes each new entry somewhere else in the tree: a
//!   batch of 10,000 entries dirtied about as many pages of each such index, every one written
//!   to the WAL and back, and the cost per entry grew with the index (about 9 µs at 100,000
//!   entries, 32 µs at a million, on one core). So these three are keyed by block first, as
//!   time is, in blocks of 2^[`IndexLayout::name_block_bits`] seqs (65,536):
//!   `((key >> 16), actor, outcome)`, `((key >> 16), ip, outcome)` and the targets' primary
//!   key `(block, id, key, type)`. New entries go into the newest block's pages whatever the
//!   index holds. A search driven by one of them walks the blocks in page order like a time
//!   range, one index range per block, and sorts each block's matches as it completes; a
//!   value absent from most blocks costs a seek per block (153 at 10 million entries), which
//!   is why these blocks are eight times the time blocks.
//! - **Time limits.** [`IndexReader::search_within`] stops a search that runs past its limit
//!   from inside SQLite (a progress handler), wherever it is; the service answers it as a
//!   timeout rather than letting one expensive search hold a reader for as long as it takes.
//! - **Layout.** The block sizes and the selectivity threshold are an explicit
//!   [`IndexLayout`], given when the index is opened; [`IndexLayout::default`] is what the
//!   service uses. Tests that need many blocks out of a few hundred events ask for small blocks
//!   by name, so no build flag changes what the index does.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Transaction, params};
use sealtrail_core::Timestamp;
use sealtrail_core::event::{Activity, Outcome as EventOutcome};
use serde_json::Value;

use crate::sqlite::checkpoint::{Checkpointer, Handoff, WalKeeper, WalPolicy};
use crate::{EntryRow, Store, StoreError};

mod postings;
mod search;

#[cfg(test)]
use search::{
    Driver, Sql, by_block, choose_driver, execute, key_range, posting_filter, search_sql,
};
pub use search::{Order, PROGRESS_STEPS, Search, search, text_query};

/// The schema version of the index in the production layout ([`IndexLayout::default`]),
/// stored as `PRAGMA user_version`. An index of any other version is rebuilt.
pub const SCHEMA_VERSION: i64 = 8;

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
    /// Seqs per block of the indexes kept by block (actor, ip, target id; see "Names by
    /// block") are `2^name_block_bits`: larger than the time blocks, because a search for a
    /// value absent from most blocks costs a seek per block, while a new entry's rows stay
    /// within the newest block's pages either way. Part of the schema.
    pub name_block_bits: u32,
    /// A time range drives a search unless another filter matches fewer events of the tenant
    /// than this (counted with a capped scan): then that filter drives and time is checked per
    /// row. Only planning depends on it, not what is on disk.
    pub selective_filter: i64,
}

impl IndexLayout {
    /// The service's layout: time blocks of 8,192 seqs, name blocks of 65,536, and a filter
    /// drives when it matches fewer than 4,096 of a tenant's events.
    pub const PRODUCTION: IndexLayout = IndexLayout {
        block_bits: 13,
        name_block_bits: 16,
        selective_filter: 4096,
    };

    /// The `PRAGMA user_version` of an index in this layout: [`SCHEMA_VERSION`] for the
    /// production block size, and a version of its own for any other, so that an index is
    /// never read with another block size than it was built with (its time index would not
    /// match the queries' expression) but rebuilt.
    pub fn schema_version(&self) -> i64 {
        let production = IndexLayout::PRODUCTION;
        if (self.block_bits, self.name_block_bits)
            == (production.block_bits, production.name_block_bits)
        {
            SCHEMA_VERSION
        } else {
            SCHEMA_VERSION
                + 1_000 * i64::from(self.block_bits)
                + 100_000 * i64::from(self.name_block_bits)
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
    outcome  INTEGER NOT NULL,      -- 0 success, 1 failure, 2 unknown (see `outcome_code`)
    actor    TEXT    NOT NULL,
    ip       TEXT,
    source   TEXT,
    types    TEXT                   -- the targets' distinct types (see `target_types`)
);

-- Each distinct (type, id) target of an entry; '' where the producer sent none, keyed
-- (block, id, key, type), block = key >> NAME_BLOCK_BITS. Ids are many, so they are kept by
-- block: a new entry's targets go into the newest block's few pages rather than all over the
-- tree (see "Names by block"). Types are few: they are postings, and `events.types`.
CREATE TABLE targets (
    block INTEGER NOT NULL,
    id    TEXT    NOT NULL,
    key   INTEGER NOT NULL,
    type  TEXT    NOT NULL,
    PRIMARY KEY (block, id, key, type)
) WITHOUT ROWID;

-- The names with few values (action, activity, source.app, the targets' types) and the
-- outcome alone, as postings (see "Postings"): one row per batch and (name, value, outcome)
-- that occurs in it, holding the batch's keys with that value. name: 0 action, 1 activity,
-- 2 source, 3 the outcome alone (value ''), 4 a target type; last: the greatest of the keys;
-- keys: ascending, as varints, the first whole and each next one as its difference to the
-- one before.
CREATE TABLE postings (
    name    INTEGER NOT NULL,
    value   TEXT    NOT NULL,
    outcome INTEGER NOT NULL,
    last    INTEGER NOT NULL,
    keys    BLOB    NOT NULL,
    PRIMARY KEY (name, value, outcome, last)
) WITHOUT ROWID;

-- The text of the values in details, rowid = key. Contentless: only the terms are kept.
CREATE VIRTUAL TABLE details USING fts5 (text, content = '', columnsize = 0);

-- When the events of each time block happened: at most BLOCK_SPANS intervals [lo, hi] of
-- event times per block (block = key >> BLOCK_BITS, as in `events_by_block`) that hold the
-- time of every row of the block, loaded or searchable. A time range is walked only over the
-- blocks with an interval that meets it (see "Plans" in the module docs).
CREATE TABLE block_times (
    block INTEGER NOT NULL,
    lo    INTEGER NOT NULL,
    hi    INTEGER NOT NULL,
    PRIMARY KEY (block, lo)
) WITHOUT ROWID;

-- A tenant being loaded in bulk (see "Catching up in bulk"): entries with seq < next_seq are
-- read into the load tables but not searchable yet.
CREATE TABLE loading (
    number   INTEGER PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    last_id  TEXT
);
-- Rows as `events` and `targets` hold them, without any index: moved into those tables, in
-- key order, once the tenant has caught up.
{load_events}
CREATE TABLE load_targets (
    id   TEXT    NOT NULL,
    key  INTEGER NOT NULL,
    type TEXT    NOT NULL
);
{indexes}"#,
        load_events = LOAD_EVENTS_TABLE,
        indexes = secondary_indexes(layout)
    )
}

/// The columns of `events` and `load_events`, in order.
const EVENT_COLUMNS: &str = "key, tenant, at, action, activity, outcome, actor, ip, source, types";

/// The load table of `events`: the same columns, so that it can become `events` itself
/// ([`Move::Swap`]).
const LOAD_EVENTS_TABLE: &str = "CREATE TABLE load_events (
    key      INTEGER PRIMARY KEY,
    tenant   INTEGER NOT NULL,
    at       INTEGER NOT NULL,      -- occurred_at, else received_at; unix microseconds
    action   TEXT    NOT NULL,
    activity TEXT,
    outcome  INTEGER NOT NULL,      -- 0 success, 1 failure, 2 unknown (see `outcome_code`)
    actor    TEXT    NOT NULL,
    ip       TEXT,
    source   TEXT,
    types    TEXT
);";

/// The indexes of `events` and `targets` besides their primary keys: dropped and created
/// again, each in one sorted pass, when a bulk load brings more rows than the index holds.
fn secondary_indexes(layout: IndexLayout) -> String {
    let (block_bits, name_bits) = (layout.block_bits, layout.name_block_bits);
    format!(
        r#"
-- Every index below ends with the key (rowid), so equality scans come out in seq order.
-- Time by block of 2^BLOCK_BITS seqs: within a block, a time range is one index range.
CREATE INDEX events_by_block    ON events ((key >> {block_bits}), at);
-- Actors and addresses are many: kept by block like time (see "Names by block"), each with
-- the outcome, so that `ip = ? AND outcome = ?` is one index range per block in seq order,
-- however many of the address's events succeeded. The names with few values are postings.
CREATE INDEX events_by_actor    ON events ((key >> {name_bits}), actor, outcome);
CREATE INDEX events_by_ip       ON events ((key >> {name_bits}), ip, outcome) WHERE ip IS NOT NULL;
"#
    )
}

/// The names of the [`secondary_indexes`].
const SECONDARY_INDEXES: [&str; 3] = ["events_by_block", "events_by_actor", "events_by_ip"];

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
    /// The index holds something it could not have written: it is to be rebuilt.
    #[error("the query index is damaged: {0}")]
    Damaged(String),
    /// A search ran longer than its limit and was interrupted
    /// ([`IndexReader::search_within`]).
    #[error("the search ran longer than its limit of {} ms and was stopped", limit.as_millis())]
    TimedOut { limit: Duration },
}

/// Where indexing of a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The tenant's key prefix: the high bits of every key of its rows, which [`search`] takes.
    pub number: i64,
    /// Entries with `seq < next_seq` are indexed: searchable.
    pub next_seq: u64,
    /// Entries with `seq < cursor` have been read: indexed, or loaded in bulk and searchable
    /// once the load ends (see "Catching up in bulk"). Where the next batch starts; equal to
    /// `next_seq` unless the tenant is being loaded.
    pub cursor: u64,
}

impl Mark {
    /// Whether the tenant is being loaded in bulk: entries read but not searchable yet.
    pub fn loading(&self) -> bool {
        self.cursor > self.next_seq
    }
}

/// When the index catches up in bulk rather than batch by batch (see "Catching up in bulk").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkPolicy {
    /// A tenant's batch starts a bulk load when the log holds at least this many entries after
    /// it.
    pub behind: u64,
    /// Entries read from the log per transaction while loading.
    pub per_transaction: usize,
    /// Entries read from the log at a time while loading (bounds memory).
    pub read: usize,
}

impl BulkPolicy {
    /// The service's: a load starts 100,000 entries behind, 200,000 entries per transaction.
    pub const PRODUCTION: BulkPolicy = BulkPolicy {
        behind: 100_000,
        per_transaction: 200_000,
        read: 10_000,
    };
}

/// The index open for writing: one connection, owned by whoever follows the log.
pub struct IndexDb {
    /// Keeps the index's WAL small (see [`crate::sqlite::checkpoint`]); stopped before the
    /// connection closes.
    checkpointer: Option<Checkpointer>,
    /// The writer's side of the checkpointer: a WAL restart it asked for, run between two
    /// batches.
    handoff: Arc<Handoff>,
    conn: Connection,
    path: PathBuf,
    layout: IndexLayout,
    /// Every tenant indexed so far, as committed: the tenant number is needed for every batch,
    /// and reading it from memory saves a query per batch.
    marks: HashMap<String, Mark>,
    /// Tenants at the index's limits, reported once each rather than once per batch.
    full_reported: HashSet<String>,
    /// When to load in bulk.
    bulk: BulkPolicy,
}

impl IndexDb {
    /// Opens the index at `path` in `layout`, rebuilding it (from nothing: every tenant's mark
    /// back to 0) when it is missing, of another schema version, or does not match `log`.
    /// A thread of its own keeps the index's WAL small.
    pub fn open(path: &Path, layout: IndexLayout, log: &dyn Store) -> Result<IndexDb, IndexError> {
        let (mut db, keeper) = IndexDb::open_keeping(path, layout, log, WalPolicy::index())?;
        let checkpointer = Checkpointer::start(keeper, "sealtrail-index").map_err(|e| {
            StoreError::Unavailable(format!("cannot start the index's checkpoint thread: {e}"))
        })?;
        db.checkpointer = Some(checkpointer);
        Ok(db)
    }

    /// [`IndexDb::open`] without the checkpoint thread: the caller steps the returned keeper.
    pub(crate) fn open_keeping(
        path: &Path,
        layout: IndexLayout,
        log: &dyn Store,
        policy: WalPolicy,
    ) -> Result<(IndexDb, WalKeeper), IndexError> {
        assert!(
            (1..SEQ_BITS).contains(&layout.block_bits)
                && (1..SEQ_BITS).contains(&layout.name_block_bits),
            "a block holds between 2 and 2^43 seqs"
        );
        let conn = open_writer(path, layout, log)?;
        let marks = load_marks(&conn)?;
        // Checkpoints run on the checkpointer's thread, not inside a batch's commit, and a
        // restarted WAL is trimmed to the size it restarts at.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", policy.restart_bytes as i64)?;
        let handoff = Handoff::new(path, &policy, WRITER_BUSY);
        let keeper = WalKeeper::open(path, policy, handoff.clone())?;
        let db = IndexDb {
            checkpointer: None,
            handoff,
            conn,
            path: path.to_path_buf(),
            layout,
            marks,
            full_reported: HashSet::new(),
            bulk: BulkPolicy::PRODUCTION,
        };
        Ok((db, keeper))
    }

    /// Loads in bulk by `policy` rather than [`BulkPolicy::PRODUCTION`] (tests load a few
    /// hundred entries in bulk).
    pub fn set_bulk_policy(&mut self, policy: BulkPolicy) {
        self.bulk = policy;
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
        // A batch starts at the tenant's mark, or after it where the log holds no entries
        // (a start that retention pruned).
        debug_assert!(
            entries
                .first()
                .is_none_or(|(seq, _)| *seq >= mark.map_or(0, |m| m.next_seq)),
            "a batch starts at or after the tenant's mark"
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
        let rows = parse_rows(tenant, entries);
        let far_behind = |seq: u64| -> Result<bool, IndexError> {
            Ok(log
                .entry_id(tenant, seq.saturating_add(self.bulk.behind))?
                .is_some())
        };
        // A tenant far behind the log is loaded in bulk; one already loading goes on.
        let load = mark.is_some_and(|m| m.loading())
            || (entries.len() as u64 >= self.bulk.behind.min(1_000) && far_behind(last_seq)?);
        self.handoff.run_due(&self.conn);
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
        let searchable = mark.map_or(0, |m| m.next_seq);
        if !load {
            write_rows(&tx, self.layout, number, &rows, Tables::Index)?;
            // The watermark names the last entry read, even if it did not parse: the log's
            // entry at that seq is what a later start compares against.
            let last_id = batch_last_id(&rows, last_seq, log, tenant)?;
            tx.prepare_cached("UPDATE tenants SET next_seq = ?2, last_id = ?3 WHERE number = ?1")?
                .execute(params![number, (last_seq + 1) as i64, last_id])?;
            tx.commit()?;
            let mark = Mark {
                number,
                next_seq: last_seq + 1,
                cursor: last_seq + 1,
            };
            self.marks.insert(tenant.to_string(), mark);
            return Ok(Some(mark));
        }

        // Loading: this batch, and more read from the log, into the load tables.
        write_rows(&tx, self.layout, number, &rows, Tables::Load)?;
        let mut last_id = batch_last_id(&rows, last_seq, log, tenant)?;
        let mut cursor = last_seq + 1;
        let mut read = entries.len();
        let mut caught_up = false;
        // Each chunk read from the log is parsed on a helper thread while the rows of the one
        // before are written, so that a load keeps two cores busy. Chunks are written in the
        // order read.
        let (layout, bulk) = (self.layout, self.bulk);
        std::thread::scope(|scope| -> Result<(), IndexError> {
            let mut parsing = None;
            loop {
                let mut next = None;
                if !caught_up && read < bulk.per_transaction {
                    let more = log.entries(tenant, cursor, MAX_INDEXED_SEQ + 1, bulk.read)?;
                    match more.last().map(|(seq, _)| *seq) {
                        None => caught_up = true,
                        Some(last) => {
                            cursor = last + 1;
                            read += more.len();
                            caught_up = more.len() < bulk.read;
                            next = Some((last, scope.spawn(move || parse_rows(tenant, &more))));
                        }
                    }
                }
                if let Some((last, parser)) = parsing.take() {
                    let rows = join_parser(parser);
                    write_rows(&tx, layout, number, &rows, Tables::Load)?;
                    last_id = batch_last_id(&rows, last, log, tenant)?;
                }
                match next {
                    Some(chunk) => parsing = Some(chunk),
                    None => return Ok(()),
                }
            }
        })?;
        let caught_up = caught_up || !far_behind(cursor.saturating_sub(1))?;
        // How many entries a finished load made searchable, and how long moving them took.
        let mut moved = None;
        let next_seq = if caught_up {
            let existing: u64 = self.marks.values().map(|m| m.next_seq).sum();
            let others_loading = self
                .marks
                .iter()
                .any(|(name, m)| name != tenant && m.loading());
            let how = if cursor - searchable < existing {
                Move::Insert
            } else if others_loading {
                Move::Rebuild
            } else {
                Move::Swap
            };
            let moving = Instant::now();
            move_loaded(&tx, self.layout, number, how)?;
            moved = Some((cursor - searchable, moving.elapsed(), how));
            tx.prepare_cached("DELETE FROM loading WHERE number = ?1")?
                .execute(params![number])?;
            tx.prepare_cached("UPDATE tenants SET next_seq = ?2, last_id = ?3 WHERE number = ?1")?
                .execute(params![number, cursor as i64, last_id])?;
            cursor
        } else {
            tx.prepare_cached(
                "INSERT INTO loading (number, next_seq, last_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (number) DO UPDATE SET next_seq = excluded.next_seq, last_id = excluded.last_id",
            )?
            .execute(params![number, cursor as i64, last_id])?;
            searchable
        };
        tx.commit()?;
        if let Some((entries, took, how)) = moved {
            tracing::info!(
                tenant,
                entries,
                move_seconds = took.as_secs_f64(),
                how = ?how,
                "the query index finished a bulk load; its entries are searchable"
            );
        }
        let mark = Mark {
            number,
            next_seq,
            cursor,
        };
        self.marks.insert(tenant.to_string(), mark);
        Ok(Some(mark))
    }
}

/// The rows of entries that parse; the others are logged and passed over.
fn parse_rows(tenant: &str, entries: &[(u64, EntryRow)]) -> Vec<Row> {
    entries
        .iter()
        .filter(|(seq, _)| *seq <= MAX_INDEXED_SEQ)
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
        .collect()
}

/// The rows a [`parse_rows`] thread returns; its panic, if it had one, goes on here.
fn join_parser(parser: std::thread::ScopedJoinHandle<'_, Vec<Row>>) -> Vec<Row> {
    parser
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// How [`move_loaded`] moves a load into the searchable tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// Row by row into the indexes (the load is smaller than what the index holds).
    Insert,
    /// The secondary indexes dropped, the rows moved, the indexes created again in one sorted
    /// pass each.
    Rebuild,
    /// As `Rebuild`, but the load tables hold only this tenant's rows (no other tenant is
    /// loading): the rows `events` holds, no more than the load brings, are copied into
    /// `load_events`, which then becomes `events`, so the load's own rows are not copied; and
    /// `load_targets` is emptied whole instead of row by row. On a rebuild after a restore,
    /// where `events` holds only a few rows of the system log, this halves the move.
    Swap,
}

/// Moves a tenant's loaded rows into `events` and `targets`, in key order, which makes them
/// searchable when the transaction commits; see [`Move`].
fn move_loaded(
    tx: &Transaction<'_>,
    layout: IndexLayout,
    number: i64,
    how: Move,
) -> Result<(), IndexError> {
    let rebuild = how != Move::Insert;
    if rebuild {
        for index in SECONDARY_INDEXES {
            tx.execute_batch(&format!("DROP INDEX {index};"))?;
        }
    }
    let (lo, hi) = (key(number, 0), key(number, MAX_INDEXED_SEQ));
    if how == Move::Swap {
        tx.execute_batch(&format!(
            "INSERT INTO load_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events;
             DROP TABLE events; ALTER TABLE load_events RENAME TO events; {LOAD_EVENTS_TABLE}"
        ))?;
    } else {
        tx.execute(
            &format!(
                "INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM load_events
                 WHERE key >= ?1 AND key <= ?2 ORDER BY key"
            ),
            params![lo, hi],
        )?;
        tx.execute(
            "DELETE FROM load_events WHERE key >= ?1 AND key <= ?2",
            params![lo, hi],
        )?;
    }
    tx.execute(
        &format!(
            "INSERT INTO targets (block, id, key, type)
             SELECT key >> {bits}, id, key, type FROM load_targets WHERE key >= ?1 AND key <= ?2
             ORDER BY 1, id, key, type",
            bits = layout.name_block_bits
        ),
        params![lo, hi],
    )?;
    if how == Move::Swap {
        // Without a WHERE, SQLite frees the table's pages instead of deleting row by row.
        tx.execute("DELETE FROM load_targets", [])?;
    } else {
        tx.execute(
            "DELETE FROM load_targets WHERE key >= ?1 AND key <= ?2",
            params![lo, hi],
        )?;
    }
    if rebuild {
        tx.execute_batch(&secondary_indexes(layout))?;
    }
    Ok(())
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
        match crate::layout::derived_stale_reason::<IndexError>(
            &conn,
            layout.schema_version(),
            "the index",
            log,
        )?
        .map_or_else(
            || loading_stale_reason(&conn, log),
            |reason| Ok(Some(reason)),
        )? {
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
/// Why a bulk load under way was built from another log than `log`, if it was: the id of the
/// last entry loaded is not the log's at that seq.
fn loading_stale_reason(conn: &Connection, log: &dyn Store) -> Result<Option<String>, IndexError> {
    let mut stmt = conn.prepare(
        "SELECT t.name, l.next_seq, l.last_id FROM loading AS l JOIN tenants AS t USING (number)",
    )?;
    let rows: Vec<(String, i64, Option<String>)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (tenant, next_seq, last_id) in rows {
        let Some(last_id) = last_id else { continue };
        let seq = (next_seq as u64).saturating_sub(1);
        let in_log = log.entry_id(&tenant, seq)?;
        if in_log.as_deref() != Some(last_id.as_str()) {
            return Ok(Some(format!(
                "tenant {tenant}: the log holds {} at seq {seq}, the load under way read {last_id}",
                in_log.as_deref().unwrap_or("no entry"),
            )));
        }
    }
    Ok(None)
}

/// How long the index's writer waits for SQLite's locks.
const WRITER_BUSY: Duration = Duration::from_secs(10);

fn configure(conn: Connection) -> Result<Connection, IndexError> {
    conn.busy_timeout(WRITER_BUSY)?;
    // Only takes effect when the file is created: 16 KiB pages make shallower b-trees with
    // fewer splits, which indexes about a quarter faster than the default 4 KiB.
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Derived data: losing the last transactions in a power cut only means indexing them again.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Batches of 10,000 rows touch many index pages; keep them cached (32 MiB).
    conn.pragma_update(None, "cache_size", -32_768)?;
    // Temporary storage stays SQLite's default, files, and that matters for memory: a bulk
    // load creates each secondary index in one sorted pass over every row of the load, and
    // with `temp_store = MEMORY` the sorter kept all those keys in memory (serve's peak RSS
    // 1.09 GiB at 10 M entries, 2.79 GiB at 30 M, growing with the log). With files it sorts
    // in runs of `cache_size` and merges them from temporary files (in `SQLITE_TMPDIR`, else
    // `TMPDIR`, else /var/tmp or /tmp), so a rebuild's memory does not depend on the log's
    // size. Statement journals (each full-text insert needs one) still stay in memory: SQLite
    // writes one to a file only once it passes 64 KiB, which a one-row statement does not.
    //
    // Those sorts may use helper threads: SQLite sorts runs on them while the writer goes on
    // reading rows, and merges on them too. Only large sorts start any (a bulk load's index
    // creation and its move of `targets`); a batch's inserts never do.
    conn.pragma_update(None, "threads", sorter_threads())?;
    Ok(conn)
}

/// Helper threads for the index writer's sorts: one per core beside the writer's, at least one
/// and at most three.
fn sorter_threads() -> i64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, 3) as i64
}

/// Deletes the database file and its WAL and shared-memory files.
fn remove_database(path: &Path) -> Result<(), IndexError> {
    crate::layout::remove_sqlite_database(path)
        .map_err(|(path, source)| IndexError::Remove { path, source })
}

/// Each tenant's indexing cursor (entries with `seq < next_seq` are indexed), read from the
/// index at `path` without opening it for writing (safe while a server indexes); `None` when
/// there is no index file yet.
pub fn read_cursors(path: &Path) -> Result<Option<HashMap<String, u64>>, IndexError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let marks = load_marks(&conn)?;
    Ok(Some(
        marks
            .into_iter()
            .map(|(tenant, mark)| (tenant, mark.next_seq))
            .collect(),
    ))
}

fn load_marks(conn: &Connection) -> Result<HashMap<String, Mark>, IndexError> {
    let mut stmt = conn.prepare(
        "SELECT t.name, t.number, t.next_seq, max(t.next_seq, coalesce(l.next_seq, 0))
         FROM tenants AS t LEFT JOIN loading AS l ON l.number = t.number",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            Mark {
                number: row.get(1)?,
                next_seq: row.get::<_, i64>(2)? as u64,
                cursor: row.get::<_, i64>(3)? as u64,
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
    outcome: EventOutcome,
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
    let entry: StoredEntry<'_> = sealtrail_core::canonical::read_fields(bytes)?;
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
        .ok_or_else(|| RowError::Outcome(entry.outcome.to_string()))?;
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

/// How `events.outcome` holds an outcome. A small integer rather than the name: SQLite keeps
/// 0 and 1 in a record's header alone, so the outcome adds one byte to each entry of the
/// `(name, outcome)` indexes instead of eight.
fn outcome_code(outcome: EventOutcome) -> i64 {
    match outcome {
        EventOutcome::Success => 0,
        EventOutcome::Failure => 1,
        EventOutcome::Unknown => 2,
    }
}

fn key(number: i64, seq: u64) -> i64 {
    (number << SEQ_BITS) | seq as i64
}

/// Where [`write_rows`] writes: the searchable tables, or the load tables of a bulk load. The
/// text goes into `details` either way: it is found only through an `events` row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tables {
    Index,
    Load,
}

fn write_rows(
    tx: &Transaction<'_>,
    layout: IndexLayout,
    number: i64,
    rows: &[Row],
    tables: Tables,
) -> Result<(), IndexError> {
    let events_table = match tables {
        Tables::Index => "events",
        Tables::Load => "load_events",
    };
    // One row per statement execution. A multi-row `INSERT` is cheaper to step, but SQLite
    // gives any statement that writes several rows and may abort a statement journal: a copy
    // of every page it changes, which cost a third of the indexer's time.
    let mut events = tx.prepare_cached(&format!(
        "INSERT INTO {events_table} ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    // The load table has no block column: it is computed when the rows are moved.
    let mut targets = tx.prepare_cached(match tables {
        Tables::Index => "INSERT INTO targets (id, key, type, block) VALUES (?1, ?2, ?3, ?4)",
        Tables::Load => "INSERT INTO load_targets (id, key, type) VALUES (?1, ?2, ?3)",
    })?;
    let mut texts = tx.prepare_cached("INSERT INTO details (rowid, text) VALUES (?1, ?2)")?;
    let mut types = String::new();
    for row in rows {
        let key = key(number, row.seq);
        target_types(&row.targets, &mut types);
        events.execute(params![
            key,
            number,
            row.at,
            row.action,
            row.activity,
            outcome_code(row.outcome),
            row.actor,
            row.ip,
            row.source,
            (!types.is_empty()).then_some(types.as_str()),
        ])?;
        for (kind, id) in &row.targets {
            match tables {
                Tables::Index => {
                    targets.execute(params![id, key, kind, key >> layout.name_block_bits])?
                }
                Tables::Load => targets.execute(params![id, key, kind])?,
            };
        }
        if !row.text.is_empty() {
            texts.execute(params![key, row.text])?;
        }
    }
    // Postings go straight where searches read them, loading or not: a search walks only the
    // keys below the tenant's watermark, which a load moves only when its rows are moved, so
    // a loaded key is not found before its row is.
    postings::write(tx, number, rows)?;
    write_block_times(tx, layout, number, rows)
}

/// Where an entry's row keeps the types of its targets: what a search with a target type
/// checks when something else drives it. Each distinct type (as [`distinct_targets`] gives
/// them, `''` for a target sent without one) is written as its JSON string, and each is
/// followed by the unit separator U+001F, with one before the first: `\u{1f}"claim"\u{1f}`.
/// A JSON string holds no U+001F of its own (it is escaped as `\u001f`), so the separators
/// are exactly where types start and end, and a type is among them exactly when
/// [`type_needle`] of it occurs in this text. `out` is cleared first and left empty when there
/// are no targets.
fn target_types(targets: &[(String, String)], out: &mut String) {
    out.clear();
    // `targets` is sorted by type first, so each type's targets are together.
    let mut before: Option<&str> = None;
    for (kind, _) in targets {
        if before == Some(kind.as_str()) {
            continue;
        }
        if out.is_empty() {
            out.push(TYPE_SEPARATOR);
        }
        push_json_string(kind, out);
        out.push(TYPE_SEPARATOR);
        before = Some(kind);
    }
}

/// What [`target_types`] separates types with.
const TYPE_SEPARATOR: char = '\u{1f}';

/// The text whose occurrence in `events.types` says that one of the entry's targets is of
/// type `kind`: the type's JSON string between two separators.
pub(super) fn type_needle(kind: &str) -> String {
    let mut needle = String::with_capacity(kind.len() + 4);
    needle.push(TYPE_SEPARATOR);
    push_json_string(kind, &mut needle);
    needle.push(TYPE_SEPARATOR);
    needle
}

/// Appends `text` as a JSON string. Most types need no escape, and are written as they are.
fn push_json_string(text: &str, out: &mut String) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&serde_json::to_string(text).expect("a string serialises"));
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// The most intervals of event times `block_times` keeps per time block. Events of
/// one block mostly happened close together, but producers that send no `occurred_at` (the
/// server's time then counts) or send their events late make a block's times several
/// clusters; a few intervals keep each cluster apart instead of one interval spanning them all.
pub(crate) const BLOCK_SPANS: usize = 4;

/// Adds the event times of `rows` to the intervals of their blocks in `block_times`: each
/// block's stored intervals and the new times are merged into at most [`BLOCK_SPANS`]
/// intervals (closing the smallest gaps first), which replace the block's rows.
fn write_block_times(
    tx: &Transaction<'_>,
    layout: IndexLayout,
    number: i64,
    rows: &[Row],
) -> Result<(), IndexError> {
    let mut read =
        tx.prepare_cached("SELECT lo, hi FROM block_times WHERE block = ?1 ORDER BY lo")?;
    let mut clear = tx.prepare_cached("DELETE FROM block_times WHERE block = ?1")?;
    let mut insert =
        tx.prepare_cached("INSERT INTO block_times (block, lo, hi) VALUES (?1, ?2, ?3)")?;
    let block_of = |row: &Row| key(number, row.seq) >> layout.block_bits;
    let mut rest = rows;
    while let Some(first) = rest.first() {
        // Rows are in seq order, so a block's rows are consecutive.
        let block = block_of(first);
        let end = rest.partition_point(|row| block_of(row) == block);
        let (these, after) = rest.split_at(end);
        rest = after;
        let stored: Vec<(i64, i64)> = read
            .query_map(params![block], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut spans = stored.clone();
        spans.extend(these.iter().map(|row| (row.at, row.at)));
        let spans = time_spans(spans, BLOCK_SPANS);
        if spans != stored {
            clear.execute(params![block])?;
            for (lo, hi) in &spans {
                insert.execute(params![block, lo, hi])?;
            }
        }
    }
    Ok(())
}

/// `spans` as at most `most` disjoint intervals, in order, that cover every one of them:
/// overlapping intervals are joined, and then only the `most - 1` widest gaps between them
/// are kept open (the rest are closed, smallest first in effect).
pub(crate) fn time_spans(mut spans: Vec<(i64, i64)>, most: usize) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut joined: Vec<(i64, i64)> = Vec::with_capacity(spans.len().min(1024));
    for (lo, hi) in spans {
        match joined.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => joined.push((lo, hi)),
        }
    }
    let most = most.max(1);
    if joined.len() <= most {
        return joined;
    }
    // Gaps between neighbours, widest first; the first `most - 1` stay open.
    let mut gaps: Vec<(i64, usize)> = (1..joined.len())
        .map(|i| (joined[i].0.saturating_sub(joined[i - 1].1), i))
        .collect();
    gaps.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut open: Vec<usize> = gaps[..most - 1].iter().map(|&(_, i)| i).collect();
    open.sort_unstable();
    open.push(joined.len());
    let mut start = 0;
    open.into_iter()
        .map(|end| {
            // Disjoint and sorted: the last interval before a gap ends last.
            let span = (joined[start].0, joined[end - 1].1);
            start = end;
            span
        })
        .collect()
}

#[cfg(test)]
mod tests;
