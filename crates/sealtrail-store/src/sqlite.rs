//! The embedded store: one SQLite database (`DIR/sealtrail.db`, WAL mode, `synchronous=FULL`).
//!
//! Writes happen on one connection owned by the ledger's writer thread; `BEGIN IMMEDIATE`
//! takes SQLite's one write lock, which stands in for every tenant's append lock, and a commit
//! returns only after SQLite has fsync'd the WAL. Readers use their own connections and see
//! committed data only, so `sealtrail verify` and the HTTP readers can run while the server
//! writes.
//!
//! Opening the store for writing after a crash reports what SQLite's recovery discarded from
//! the end of the WAL (see [`wal`]): only ever a write whose commit had not returned, so
//! nothing acknowledged. A full disk (`SQLITE_FULL`, which SQLite reports for `ENOSPC`) is
//! [`StoreError::Full`].

pub mod checkpoint;
mod keys;
mod layout;
mod repair;
mod retention;
mod seals;
pub mod wal;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use sealtrail_core::Hash;
use sealtrail_core::merkle::{MissingHash, ReadError};

use self::checkpoint::{Checkpointer, Handoff, WalKeeper, WalPolicy};
use super::{
    ArchiveWatermark, BadValue, EntryRef, EntryRow, Integrity, NewEntry, Protection, PruneMark,
    ReadNesting, Restore, Result, Store, StoreError, StoredCheckpoint, StoredSeal, Tenant,
    TokenRecord,
};

/// The most indexes [`Store::read_hashes`] reads with one statement of seeks when they are
/// scattered (a proof asks for at most about 128); longer requests are runs of the verifier's,
/// read run by run.
const MAX_SCATTERED: usize = 256;

/// The schema version this build writes; stored in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 6;

/// Each migration brings the schema from version `index` to `index + 1`; the fifth, integer
/// row keys, is [`layout::migrate`], and the sixth, the idempotency journal, [`keys::SCHEMA`].
const MIGRATIONS: [&str; 4] = [
    include_str!("sqlite_schema.sql"),
    // 2: the verifier key of each tenant is recorded beside its origin.
    "ALTER TABLE tenants ADD COLUMN vkey TEXT;",
    // 3: the daily seals.
    include_str!("sqlite/seals.sql"),
    // 4: retention (archive watermarks, prunes, and the one way out of `entries`).
    include_str!("sqlite/retention.sql"),
];

/// The append-only triggers of the log tables, as `(trigger, table)`.
const TRIGGERS: [(&str, &str); 10] = [
    ("entries_append_only_update", "entries"),
    ("entries_append_only_delete", "entries"),
    ("hashes_append_only_update", "hashes"),
    ("hashes_append_only_delete", "hashes"),
    ("checkpoints_append_only_update", "checkpoints"),
    ("checkpoints_append_only_delete", "checkpoints"),
    ("seals_append_only_update", "seals"),
    ("seals_append_only_delete", "seals"),
    ("prunes_append_only_update", "prunes"),
    ("prunes_append_only_delete", "prunes"),
];

/// How much of the database file a read-only connection maps into memory (SQLite lowers it to
/// its compile-time cap, 2 GiB in the bundled build).
const READER_MMAP_BYTES: i64 = 1 << 40;

/// How long the writer's connection waits for SQLite's locks (another process writing).
const WRITER_BUSY: Duration = Duration::from_secs(10);

/// The embedded store over one SQLite connection.
pub struct SqliteStore {
    /// The writer's background checkpoints; stopped (and joined) before the connection closes.
    checkpointer: Option<Checkpointer>,
    /// The writer's side of the checkpointer: a WAL restart it asked for, run between two
    /// write transactions (see [`checkpoint`]).
    handoff: Option<Arc<Handoff>>,
    conn: Connection,
    /// Depth of nested [`Store::begin_read`] calls, and whether the outermost one began a
    /// transaction (it does not when the connection is already inside one).
    reads: ReadNesting,
    /// A write in the current transaction failed: it can only be rolled back.
    failed: Cell<bool>,
    /// The leases this connection holds, by name: each its lock file, locked exclusively
    /// until it is closed with the store (see [`Store::try_lease`]).
    leases: RefCell<HashMap<String, std::fs::File>>,
    /// A writer's map of the idempotency journal ([`keys`]); a reader has none.
    journal: Option<RefCell<keys::Journal>>,
    /// Whether the schema has the idempotency journal (a reader may open an older store).
    has_journal: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database for writing and brings its schema up to date,
    /// with a thread of its own that keeps the WAL small ([`checkpoint`]).
    pub fn open_writer(path: &Path) -> Result<SqliteStore> {
        let (mut store, keeper) = SqliteStore::open_writer_keeping(path, WalPolicy::log())?;
        store.checkpointer = Some(Checkpointer::start(keeper, "sealtrail-log").map_err(|e| {
            StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
        })?);
        Ok(store)
    }

    /// [`SqliteStore::open_writer`] without the checkpoint thread: the caller steps the
    /// returned keeper itself (the tests of [`checkpoint`] do, to control every step).
    pub(crate) fn open_writer_keeping(
        path: &Path,
        policy: WalPolicy,
    ) -> Result<(SqliteStore, WalKeeper)> {
        // A new database is its owner's alone, whatever the umask (see `layout`).
        crate::layout::create_private_file(path).map_err(|error| {
            StoreError::Unavailable(format!("cannot create {}: {error}", path.display()))
        })?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(WRITER_BUSY)?;
        // WAL lets readers (verify, queries) run beside the writer; FULL makes every commit
        // fsync the WAL before it returns, which is what "acknowledged only once durable"
        // rests on.
        // Statement journals in memory rather than in temporary files.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        if let Some(discarded) = wal::discard_unfinished(&conn, path)? {
            tracing::warn!(
                wal = %discarded.file.display(),
                bytes = discarded.bytes,
                frames = discarded.frames,
                "recovered the store to its last durable commit, discarding an unfinished write (never acknowledged)"
            );
            eprintln!(
                "recovered the store to its last durable commit; discarded {} bytes ({} frames) of an unfinished write in {}",
                discarded.bytes,
                discarded.frames,
                discarded.file.display()
            );
        }
        migrate(&conn, path)?;
        // Checkpoints copy the WAL into the database file (and fsync it). SQLite runs them
        // inside whichever commit crosses 1,000 pages, which stalled that commit and every
        // request waiting on it; the store's own checkpointer runs them instead, and trims
        // a restarted WAL to the size it restarts at.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", policy.restart_bytes as i64)?;
        let handoff = Handoff::new(path, &policy, WRITER_BUSY);
        let keeper = WalKeeper::open(path, policy, handoff.clone())?;
        let mut store = SqliteStore::wrap(conn);
        store.handoff = Some(handoff);
        store.journal = Some(RefCell::default());
        store.has_journal = true;
        Ok((store, keeper))
    }

    /// Opens an existing database read-only.
    pub fn open_reader(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(StoreError::Missing(format!(
                "no sealtrail store at {}; start `sealtrail serve --data DIR` once to create it",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let version = user_version(&conn)?;
        if version > SCHEMA_VERSION {
            return Err(newer(path, version));
        }
        let mut store = SqliteStore::wrap(conn);
        store.has_journal = version >= 6;
        Ok(store)
    }

    /// [`SqliteStore::open_reader`] for reading the whole log in order (offline
    /// verification): the database file is read through a read-only memory map instead of a
    /// `pread` copy per page, which was a tenth of a verification's time. SQLite caps the map
    /// at 2 GiB (`SQLITE_MAX_MMAP_SIZE`); pages beyond it, and pages still in the WAL, are read
    /// as before. The file only grows (the log is append-only, nothing vacuums it), so the map
    /// never outlives the bytes under it. Long-lived readers (HTTP, the indexer) do not map
    /// the file: the mapped pages would count in the server's resident memory.
    pub fn open_scanner(path: &Path) -> Result<SqliteStore> {
        let store = SqliteStore::open_reader(path)?;
        store
            .conn
            .pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
        Ok(store)
    }

    fn wrap(conn: Connection) -> SqliteStore {
        SqliteStore {
            checkpointer: None,
            handoff: None,
            conn,
            reads: ReadNesting::default(),
            failed: Cell::new(false),
            leases: RefCell::new(HashMap::new()),
            journal: None,
            has_journal: false,
        }
    }

    /// The underlying connection, for tests that tamper with the database on purpose.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl From<rusqlite::Error> for StoreError {
    /// `SQLITE_FULL` — SQLite's answer to `ENOSPC` (and to a short write) — is
    /// [`StoreError::Full`], so that callers can tell a full disk, which freeing space cures,
    /// from other failures.
    fn from(error: rusqlite::Error) -> StoreError {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(error.to_string()),
            _ => StoreError::Sqlite(error),
        }
    }
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

fn newer(path: &Path, found: i64) -> StoreError {
    StoreError::NewerSchema {
        location: path.display().to_string(),
        found,
        known: SCHEMA_VERSION,
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version = user_version(conn)?;
    if version > SCHEMA_VERSION {
        return Err(newer(path, version));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // Every step in one transaction: a crash or a failure leaves the store as it was, and a
    // new store's schema is written to the WAL once, not once per step.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let steps = || -> Result<()> {
        for sql in MIGRATIONS.iter().skip(version as usize) {
            conn.execute_batch(sql)?;
        }
        if version < 5 {
            layout::migrate(conn)?;
        }
        conn.execute_batch(keys::SCHEMA)?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
        Ok(())
    };
    steps().inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

/// The bytes of an `entries.entry` value, or what the row holds instead. SQLite keeps a type
/// per value, not per column, so a row edited outside sealtrail can hold TEXT, a number or
/// NULL where the schema says BLOB; that is reported for the row alone ([`BadValue`]) and never
/// converted, because an entry is exactly the bytes sealtrail wrote.
fn entry_value(value: ValueRef<'_>) -> std::result::Result<&[u8], BadValue> {
    let found = match value {
        ValueRef::Blob(bytes) => return Ok(bytes),
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(n) => format!("the INTEGER {n}"),
        ValueRef::Real(x) => format!("the REAL {x}"),
        ValueRef::Text(text) => format!("TEXT ({} bytes)", text.len()),
    };
    Err(BadValue {
        column: "entries.entry",
        expected: "a BLOB",
        found,
    })
}

fn tenant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        name: row.get(0)?,
        origin: row.get(1)?,
        created_at: row.get(2)?,
        vkey: row.get(3)?,
    })
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scopes: String = row.get(2)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        scopes: TokenRecord::scopes_from_column(&scopes),
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn begin_read(&self) -> Result<()> {
        self.reads.enter(|| {
            let owned = self.conn.is_autocommit();
            if owned {
                self.conn.execute_batch("BEGIN DEFERRED")?;
            }
            Ok(owned)
        })
    }

    fn end_read(&self) -> Result<()> {
        // Read-only: ending it cannot lose anything.
        self.reads
            .leave(|| Ok(self.conn.execute_batch("ROLLBACK")?))
    }

    fn begin_write(&self, _lock_tenants: &[&str]) -> Result<()> {
        // Between two transactions: the moment a WAL restart the checkpointer asked for holds
        // up nobody but this writer, and only for the few frames not yet copied.
        if let Some(handoff) = &self.handoff {
            handoff.run_due(&self.conn);
        }
        // SQLite has one write lock for the whole database; IMMEDIATE takes it now.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.failed.set(false);
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        if self.failed.replace(false) {
            self.forget_journal();
            self.conn.execute_batch("ROLLBACK")?;
            return Err(StoreError::Aborted(
                "a write of this transaction failed; it was rolled back and nothing was committed"
                    .into(),
            ));
        }
        self.conn
            .execute_batch("COMMIT")
            .inspect_err(|_| self.forget_journal())?;
        Ok(())
    }

    fn rollback(&self) -> Result<()> {
        self.failed.set(false);
        self.forget_journal();
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    fn tenants(&self) -> Result<Vec<Tenant>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, origin, created_at, vkey FROM tenants ORDER BY name")?;
        let rows = stmt.query_map([], tenant_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, origin, created_at, vkey FROM tenants WHERE name = ?1")?;
        Ok(stmt.query_row([name], tenant_from_row).optional()?)
    }

    fn size(&self, tenant: &str) -> Result<u64> {
        let Some(base) = layout::tenant_base(&self.conn, tenant)? else {
            return Ok(0);
        };
        let last: Option<i64> = self
            .conn
            .prepare_cached("SELECT MAX(key) FROM entries WHERE key >= ?1 AND key < ?2")?
            .query_row(params![base, layout::bound(base, u64::MAX)], |row| {
                row.get(0)
            })?;
        Ok(last.map_or(0, |key| (key - base) as u64 + 1))
    }

    fn read_hashes(&self, tenant: &str, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let Some(base) = layout::tenant_base(&self.conn, tenant)? else {
            return match indexes.first() {
                Some(&index) => Err(MissingHash { index }.into()),
                None => Ok(Vec::new()),
            };
        };
        if let Some(hashes) = self.read_dense(base, indexes)? {
            return Ok(hashes);
        }
        let runs = 1 + indexes.windows(2).filter(|w| w[1] != w[0] + 1).count();
        if runs > 1 && indexes.len() <= MAX_SCATTERED {
            return self.read_scattered(base, indexes);
        }
        let mut out = Vec::with_capacity(indexes.len());
        // Contiguous runs (the verifier's usual request) are one range query each.
        let mut range = self.conn.prepare_cached(
            "SELECT key, hash FROM hashes WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        let mut start = 0;
        while start < indexes.len() {
            let mut end = start + 1;
            while end < indexes.len() && indexes[end] == indexes[end - 1] + 1 {
                end += 1;
            }
            let (from, to) = (indexes[start], indexes[end - 1] + 1);
            let mut rows =
                range.query(params![layout::bound(base, from), layout::bound(base, to)])?;
            let mut expected = from;
            while let Some(row) = rows.next()? {
                let idx = row.get::<_, i64>(0)? - base;
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                if idx as u64 != expected {
                    return Err(MissingHash { index: expected }.into());
                }
                out.push(Hash::from_slice(bytes).map_err(|e| format!("stored hash {idx}: {e}"))?);
                expected += 1;
            }
            if expected != to {
                return Err(MissingHash { index: expected }.into());
            }
            start = end;
        }
        Ok(out)
    }

    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Vec<u8>>> {
        let Some(key) = self.entry_key(tenant, seq)? else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT entry FROM entries WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let entry = entry_value(row.get_ref(0)?).map_err(|source| StoreError::BadRow {
            tenant: tenant.to_string(),
            seq,
            source,
        })?;
        Ok(Some(entry.to_vec()))
    }

    /// The seqs go in as one JSON array, unpacked by `json_each`, so that any number of them is
    /// one prepared statement (SQLite caps bound parameters, and `IN (?, ?, …)` would need a
    /// statement per page length).
    fn entries_at(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<(u64, Vec<u8>)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let Some(base) = layout::tenant_base(&self.conn, tenant)? else {
            return Ok(Vec::new());
        };
        // Seqs beyond what a log can hold cannot be in it; left out, they match nothing.
        let wanted = format!(
            "[{}]",
            seqs.iter()
                .filter(|&&seq| seq < layout::SEQ_LIMIT)
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entry FROM entries WHERE key IN (SELECT ?1 + value FROM json_each(?2))",
        )?;
        let mut rows = stmt.query(params![base, wanted])?;
        let mut found = Vec::with_capacity(seqs.len());
        while let Some(row) = rows.next()? {
            let seq = (row.get::<_, i64>(0)? - base) as u64;
            let entry = entry_value(row.get_ref(1)?).map_err(|source| StoreError::BadRow {
                tenant: tenant.to_string(),
                seq,
                source,
            })?;
            found.push((seq, entry.to_vec()));
        }
        Ok(crate::in_asked_order(seqs, found))
    }

    fn entry_id(&self, tenant: &str, seq: u64) -> Result<Option<String>> {
        let Some(key) = self.entry_key(tenant, seq)? else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM entries WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(row) => Ok(Some(layout::id_text(row.get_ref(0)?)?)),
            None => Ok(None),
        }
    }

    fn seq_of_id(&self, tenant: &str, id: &str) -> Result<Option<u64>> {
        let Some(number) = layout::tenant_number(&self.conn, tenant)? else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM entries WHERE tenant_number = ?1 AND id = ?2")?;
        Ok(stmt
            .query_row(params![number, layout::id_value(id)], |row| {
                row.get::<_, i64>(0)
            })
            .optional()?
            .map(|seq| seq as u64))
    }

    fn entries(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EntryRow)>> {
        let Some(base) = layout::tenant_base(&self.conn, tenant)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entry FROM entries WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                layout::bound(base, from),
                layout::bound(base, to),
                limit.min(i64::MAX as usize) as i64
            ],
            |row| {
                let entry = entry_value(row.get_ref(1)?).map(<[u8]>::to_vec);
                Ok(((row.get::<_, i64>(0)? - base) as u64, entry))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Streams straight from one statement: SQLite lets `each` run between rows.
    fn for_each_entry(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        each: &mut dyn FnMut(u64, EntryRef<'_>),
    ) -> Result<()> {
        let Some(base) = layout::tenant_base(&self.conn, tenant)? else {
            return Ok(());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entry FROM entries WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        let mut rows = stmt.query(params![layout::bound(base, from), layout::bound(base, to)])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? - base;
            match entry_value(row.get_ref(1)?) {
                Ok(entry) => each(seq as u64, Ok(entry)),
                Err(bad) => each(seq as u64, Err(&bad)),
            }
        }
        Ok(())
    }

    fn idempotent_seq(&self, tenant: &str, key: &str) -> Result<Option<u64>> {
        Ok(self.idempotent_seqs(tenant, &[key])?.remove(key))
    }

    /// One lookup of the tenant's number for the whole group's keys, then one lookup per key
    /// in the b-tree (with the same prepared statement) and the journal.
    fn idempotent_seqs(&self, tenant: &str, keys: &[&str]) -> Result<HashMap<String, u64>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let Some(number) = layout::tenant_number(&self.conn, tenant)? else {
            return Ok(HashMap::new());
        };
        match &self.journal {
            Some(journal) => journal.borrow_mut().lookup(&self.conn, number, keys),
            None => keys::read_seqs(&self.conn, number, keys, self.has_journal),
        }
    }

    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT size, note, created_at FROM checkpoints WHERE tenant = ?1 ORDER BY size DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row([tenant], |row| {
                Ok(StoredCheckpoint {
                    size: row.get::<_, i64>(0)? as u64,
                    note: row.get(1)?,
                    created_at: row.get(2)?,
                })
            })
            .optional()?)
    }

    fn checkpoints(&self, tenant: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT note FROM checkpoints WHERE tenant = ?1 ORDER BY size")?;
        let notes = stmt.query_map([tenant], |row| row.get(0))?;
        Ok(notes.collect::<Result<_, _>>()?)
    }

    fn checkpoint_before(&self, tenant: &str, before: &str) -> Result<Option<StoredCheckpoint>> {
        seals::checkpoint_before(&self.conn, tenant, before)
    }

    fn seals(&self, tenant: &str, from: &str, to: &str) -> Result<Vec<StoredSeal>> {
        seals::seals(&self.conn, tenant, from, to)
    }

    fn latest_seal(&self, tenant: &str) -> Result<Option<StoredSeal>> {
        seals::latest_seal(&self.conn, tenant)
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE name = ?1")?;
        Ok(stmt.query_row([name], |row| row.get(0)).optional()?)
    }

    fn token_by_secret(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens WHERE secret_sha256 = ?1",
        )?;
        Ok(stmt
            .query_row([secret_sha256.as_slice()], token_from_row)
            .optional()?)
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.write(|| self.write_insert_tenant(tenant))
    }

    fn set_tenant_vkey(&self, tenant: &str, vkey: &str) -> Result<()> {
        self.write(|| self.write_set_tenant_vkey(tenant, vkey))
    }

    fn append(
        &self,
        tenant: &str,
        entries: &[NewEntry<'_>],
        first_hash_index: u64,
        hashes: &[Hash],
    ) -> Result<()> {
        self.write(|| self.write_append(tenant, entries, first_hash_index, hashes))
    }

    fn insert_idempotency(&self, tenant: &str, keys: &[(String, u64)]) -> Result<()> {
        self.write(|| self.write_insert_idempotency(tenant, keys))
    }

    fn insert_checkpoint(
        &self,
        tenant: &str,
        size: u64,
        note: &str,
        created_at: &str,
    ) -> Result<()> {
        self.write(|| self.write_insert_checkpoint(tenant, size, note, created_at))
    }

    fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        self.write(|| self.write_set_setting(name, value))
    }

    fn insert_seal(&self, tenant: &str, seal: &StoredSeal) -> Result<()> {
        self.write(|| seals::insert_seal(&self.conn, tenant, seal))
    }

    fn insert_token(&self, record: &TokenRecord, secret_sha256: &[u8; 32]) -> Result<()> {
        self.write(|| self.write_insert_token(record, secret_sha256))
    }

    fn revoke_token(&self, id: &str, revoked_at: &str) -> Result<bool> {
        self.write(|| self.write_revoke_token(id, revoked_at))
    }

    fn integrity_problems(&self, depth: Integrity) -> Result<Vec<String>> {
        // At most 20 problems: enough to say what is damaged, bounded on a ruined file.
        let pragma = match depth {
            Integrity::Quick => "PRAGMA quick_check(20)",
            Integrity::Full => "PRAGMA integrity_check(20)",
        };
        let checked = self.conn.prepare(pragma).and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<std::result::Result<Vec<String>, _>>()
        });
        match checked {
            Ok(lines) => Ok(lines.into_iter().filter(|line| line != "ok").collect()),
            // A file too damaged to check at all is the clearest answer of the check.
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) =>
            {
                Ok(vec![error.to_string()])
            }
            Err(error) => Err(error.into()),
        }
    }

    fn schema_versions(&self) -> Result<(i64, i64)> {
        Ok((user_version(&self.conn)?, SCHEMA_VERSION))
    }

    fn repair_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore> {
        match self.restore_entry(tenant, seq, id, entry)? {
            Restore::Present => {
                self.write(|| repair::replace_changed(&self.conn, tenant, seq, id, entry))
            }
            other => Ok(other),
        }
    }

    fn restore_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore> {
        self.write(|| self.write_restore_entry(tenant, seq, id, entry))
    }

    /// An exclusive lock on `DIR/<name>.lease` beside the database, held by an open file of
    /// this store: whoever locked it first holds the lease until it drops its store or dies
    /// (the kernel releases the lock with the file). An in-memory database has no directory
    /// and no other connection: its lease is its own.
    fn prune_mark(&self, tenant: &str) -> Result<Option<PruneMark>> {
        retention::prune_mark(&self.conn, tenant)
    }

    fn archive_watermark(&self, tenant: &str) -> Result<Option<ArchiveWatermark>> {
        retention::archive_watermark(&self.conn, tenant)
    }

    fn record_archive_watermark(&self, tenant: &str, mark: &ArchiveWatermark) -> Result<()> {
        self.write(|| retention::record_archive_watermark(&self.conn, tenant, mark))
    }

    fn prune(&self, tenant: &str, mark: &PruneMark) -> Result<u64> {
        self.forget_journal();
        self.write(|| retention::prune(&self.conn, tenant, mark))
    }

    fn try_lease(&self, name: &str) -> Result<bool> {
        super::check_lease_name(name)?;
        let mut leases = self.leases.borrow_mut();
        if leases.contains_key(name) {
            return Ok(true);
        }
        let Some(database) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(true);
        };
        let dir = Path::new(database).parent().unwrap_or(Path::new("."));
        let path = super::DataDir::new(dir).lease(name);
        let unavailable = |action: &str, error: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!(
                "cannot {action} the lease file {}: {error}",
                path.display()
            ))
        };
        super::layout::create_private_file(&path).map_err(|e| unavailable("create", &e))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| unavailable("open", &e))?;
        match file.try_lock() {
            Ok(()) => {
                leases.insert(name.to_string(), file);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(error)) => Err(unavailable("lock", &error)),
        }
    }

    fn protections(&self) -> Result<Vec<Protection>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?1 AND tbl_name = ?2",
        )?;
        TRIGGERS
            .iter()
            .map(|(trigger, table)| {
                let count: i64 = stmt.query_row(params![trigger, table], |row| row.get(0))?;
                Ok(Protection {
                    name: format!("trigger {trigger} on {table}"),
                    active: count == 1,
                })
            })
            .collect()
    }
}

impl SqliteStore {
    /// The row key of a tenant's entry `seq`; `None` when there is no such tenant, or no
    /// log can hold that seq.
    fn entry_key(&self, tenant: &str, seq: u64) -> Result<Option<i64>> {
        if seq >= layout::SEQ_LIMIT {
            return Ok(None);
        }
        Ok(layout::tenant_base(&self.conn, tenant)?.map(|base| base | seq as i64))
    }

    /// Drops the writer's map of the journal, to be read again when next needed.
    fn forget_journal(&self) {
        if let Some(journal) = &self.journal {
            journal.borrow_mut().forget();
        }
    }

    /// Runs one write; a failed write marks the transaction failed, so that [`Store::commit`]
    /// refuses it — as PostgreSQL does — rather than commit the writes around the failure.
    fn write<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = f();
        if result.is_err() && !self.conn.is_autocommit() {
            self.failed.set(true);
        }
        result
    }

    fn write_insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        // The next number; numbers are never reused (tenants are never deleted).
        let number: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(number), -1) + 1 FROM tenants",
            [],
            |row| row.get(0),
        )?;
        if number >= layout::TENANT_LIMIT {
            return Err(StoreError::Unavailable(format!(
                "the embedded store holds at most {} tenants",
                layout::TENANT_LIMIT
            )));
        }
        self.conn.execute(
            "INSERT INTO tenants (name, origin, created_at, vkey, number) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                tenant.name,
                tenant.origin,
                tenant.created_at,
                tenant.vkey,
                number
            ],
        )?;
        Ok(())
    }

    fn write_set_tenant_vkey(&self, tenant: &str, vkey: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE tenants SET vkey = ?2 WHERE name = ?1 AND vkey IS NULL",
            params![tenant, vkey],
        )?;
        Ok(())
    }

    fn write_append(
        &self,
        tenant: &str,
        entries: &[NewEntry<'_>],
        first_hash_index: u64,
        hashes: &[Hash],
    ) -> Result<()> {
        let base = layout::tenant_base(&self.conn, tenant)?
            .ok_or_else(|| StoreError::Missing(format!("no tenant {tenant:?} to append to")))?;
        let mut insert_entry = self
            .conn
            .prepare_cached("INSERT INTO entries (key, id, entry) VALUES (?1, ?2, ?3)")?;
        for row in entries {
            insert_entry.execute(params![
                layout::key(base, row.seq)?,
                layout::id_value(row.id),
                row.entry
            ])?;
        }
        let mut insert_hash = self
            .conn
            .prepare_cached("INSERT INTO hashes (key, hash) VALUES (?1, ?2)")?;
        for (offset, hash) in hashes.iter().enumerate() {
            insert_hash.execute(params![
                layout::key(base, first_hash_index + offset as u64)?,
                hash.as_bytes().as_slice()
            ])?;
        }
        Ok(())
    }

    /// [`Store::restore_entry`]: inside the caller's write transaction (SQLite's one write
    /// lock), a plain INSERT — which the append-only triggers allow, as they allow every
    /// append — made only where no row is and the stored leaf hash is the entry's.
    fn write_restore_entry(
        &self,
        tenant: &str,
        seq: u64,
        id: &str,
        entry: &[u8],
    ) -> Result<Restore> {
        if self.conn.is_autocommit() {
            return Err(StoreError::Aborted(
                "restore_entry runs inside a write transaction".into(),
            ));
        }
        let base = layout::tenant_base(&self.conn, tenant)?
            .ok_or_else(|| StoreError::Missing(format!("no tenant {tenant:?} to restore to")))?;
        let key = layout::key(base, seq)?;
        let present: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM entries WHERE key = ?1")?
            .query_row([key], |row| row.get(0))?;
        if present > 0 {
            return Ok(Restore::Present);
        }
        if retention::prune_mark(&self.conn, tenant)?.is_some_and(|mark| seq < mark.below) {
            return Ok(Restore::Pruned);
        }
        let index = sealtrail_core::merkle::stored_hash_index(0, seq);
        let stored: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM hashes WHERE key = ?1")?
            .query_row([layout::key(base, index)?], |row| row.get(0))
            .optional()?;
        let Some(stored) = stored else {
            return Ok(Restore::NoStoredHash);
        };
        if stored.as_slice() != sealtrail_core::hash::leaf_hash(entry).as_bytes().as_slice() {
            return Ok(Restore::HashMismatch);
        }
        self.conn
            .prepare_cached("INSERT INTO entries (key, id, entry) VALUES (?1, ?2, ?3)")?
            .execute(params![key, layout::id_value(id), entry])?;
        Ok(Restore::Restored)
    }

    fn write_insert_idempotency(&self, tenant: &str, keys: &[(String, u64)]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let number = layout::tenant_number(&self.conn, tenant)?
            .ok_or_else(|| StoreError::Missing(format!("no tenant {tenant:?}")))?;
        let Some(journal) = &self.journal else {
            return Err(StoreError::Unavailable(
                "idempotency keys are written through the writer's connection".into(),
            ));
        };
        journal.borrow_mut().insert(&self.conn, number, keys)
    }

    fn write_insert_checkpoint(
        &self,
        tenant: &str,
        size: u64,
        note: &str,
        created_at: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO checkpoints (tenant, size, note, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![tenant, size as i64, note, created_at])?;
        Ok(())
    }

    fn write_set_setting(&self, name: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, value])?;
        Ok(())
    }

    fn write_insert_token(&self, record: &TokenRecord, secret_sha256: &[u8; 32]) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tokens (id, tenant, secret_sha256, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.id,
                record.tenant,
                secret_sha256.as_slice(),
                record.scopes_column(),
                record.created_at
            ],
        )?;
        Ok(())
    }

    fn write_revoke_token(&self, id: &str, revoked_at: &str) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, revoked_at],
        )?;
        Ok(changed == 1)
    }

    /// Serves a request of a few scattered indexes (a proof's: about one per tree level below
    /// the levels the server keeps in memory) with one statement that seeks each of them,
    /// rather than one statement per index. A statement costs more than a seek (binding,
    /// stepping, resetting, and taking the read lock when no snapshot is open); reading the
    /// whole span instead would step through thousands of rows to keep a dozen.
    fn read_scattered(&self, base: i64, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        use std::fmt::Write as _;
        let mut list = String::with_capacity(2 + indexes.len() * 9);
        list.push('[');
        // Positions beyond what a log can hold cannot be in it; left out, they are missing.
        for index in indexes.iter().filter(|&&index| index < layout::SEQ_LIMIT) {
            if list.len() > 1 {
                list.push(',');
            }
            write!(list, "{index}").expect("writing to a String");
        }
        list.push(']');
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, hash FROM hashes WHERE key IN (SELECT ?1 + value FROM json_each(?2))",
        )?;
        let mut rows = stmt.query(params![base, list])?;
        let mut found: Vec<(u64, Hash)> = Vec::with_capacity(indexes.len());
        while let Some(row) = rows.next()? {
            let idx = (row.get::<_, i64>(0)? - base) as u64;
            let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            found.push((
                idx,
                Hash::from_slice(bytes).map_err(|e| format!("stored hash {idx}: {e}"))?,
            ));
        }
        found.sort_unstable_by_key(|(idx, _)| *idx);
        indexes
            .iter()
            .map(
                |&index| match found.binary_search_by_key(&index, |(idx, _)| *idx) {
                    Ok(at) => Ok(found[at].1),
                    Err(_) => Err(MissingHash { index }.into()),
                },
            )
            .collect()
    }

    /// Serves a request whose indexes lie close together (a hash tile: every other position of
    /// a span) with one range query instead of one query per index. `None` when the indexes
    /// are too spread out for that to pay, or not in ascending order.
    fn read_dense(&self, base: i64, indexes: &[u64]) -> Result<Option<Vec<Hash>>, ReadError> {
        let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
            return Ok(Some(Vec::new()));
        };
        let ascending = indexes.windows(2).all(|w| w[0] < w[1]);
        let span = last.saturating_sub(first) + 1;
        if !ascending || indexes.len() < 8 || span > 4 * indexes.len() as u64 {
            return Ok(None);
        }
        let mut range = self.conn.prepare_cached(
            "SELECT key, hash FROM hashes WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        let mut rows = range.query(params![
            layout::bound(base, first),
            layout::bound(base, last.saturating_add(1))
        ])?;
        let mut out = Vec::with_capacity(indexes.len());
        let mut wanted = indexes.iter().peekable();
        while let Some(row) = rows.next()? {
            let idx = (row.get::<_, i64>(0)? - base) as u64;
            if wanted.peek() == Some(&&idx) {
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                out.push(Hash::from_slice(bytes).map_err(|e| format!("stored hash {idx}: {e}"))?);
                wanted.next();
            }
        }
        match wanted.next() {
            Some(&index) => Err(MissingHash { index }.into()),
            None => Ok(Some(out)),
        }
    }
}

/// What [`backup`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCopy {
    /// Pages of the database copied.
    pub pages: u64,
    /// Bytes of the copy on disk.
    pub bytes: u64,
}

/// Copies the embedded store at `from` to a new file `to`, consistently while a server writes
/// to it: SQLite's online backup API reads a snapshot a few hundred pages at a time and starts
/// again if a write changes what it already copied, so the copy is always one committed state
/// (a file copy of a live database, or of the database without its `-wal` file, is not). The
/// copy is synced, made private to its owner, and checked with `integrity_check` before this
/// returns. `to` must not exist.
pub fn backup(from: &Path, to: &Path) -> Result<BackupCopy> {
    use rusqlite::backup::{Backup, StepResult};

    if to.exists() {
        return Err(StoreError::Unavailable(format!(
            "{} exists already; a backup is written to a new file",
            to.display()
        )));
    }
    if !from.exists() {
        return Err(StoreError::Unavailable(format!(
            "no sealtrail store at {}",
            from.display()
        )));
    }
    crate::layout::create_private_file(to)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", to.display())))?;
    let source = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dest = Connection::open(to)?;
    let pages = {
        let backup = Backup::new(&source, &mut dest)?;
        loop {
            match backup.step(256)? {
                StepResult::Done => break,
                StepResult::More => {}
                // The source is locked for a moment by a writer: try again shortly.
                StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        backup.progress().pagecount as u64
    };
    // A self-contained file: no -wal beside it to be forgotten.
    dest.pragma_update(None, "journal_mode", "DELETE")?;
    let problems: Vec<String> = {
        let mut stmt = dest.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    if problems != ["ok"] {
        return Err(StoreError::Corrupt(format!(
            "the backup {} fails SQLite's integrity check: {}",
            to.display(),
            problems.join("; ")
        )));
    }
    drop(dest);
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Unavailable(format!("cannot sync {}: {e}", to.display())))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackupCopy { pages, bytes })
}
