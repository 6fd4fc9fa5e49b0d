//! # sealtrail-store
//!
//! Where logs are kept: the [`Store`] trait and its two implementations, the embedded store
//! ([`sqlite`], one SQLite file in the data directory) and [`postgres`] (one database that
//! several `sealtrail serve` instances share).
//!
//! A store keeps every tenant's log — entries, stored Merkle hashes, signed checkpoints — plus
//! tenants, idempotency keys, hashed API tokens and settings. It stores and fetches bytes;
//! integrity logic (hashing, canonical form, proofs) stays in `sealtrail_core`, and sequencing
//! in the server's write path (`sealtrail_server::ledger`).
//!
//! **Architecture invariant:** nothing here updates or deletes a log row (entries, stored
//! hashes, checkpoints), and each store's schema refuses it with triggers as well, so even a
//! bug in sealtrail cannot rewrite history. [`Store::protections`] reports when those triggers
//! have been removed or disabled.
//!
//! Both implementations take `&self` everywhere and keep one connection each, so a store is
//! used from one thread at a time (`Send`, not `Sync`): the writer thread owns one, readers
//! take one from a pool.
//!
//! Beside the stores: [`index`], the query index's database (`DIR/index.db`, derived from the
//! logs), [`gaps`], the gap detector's (`DIR/gaps.db`, likewise), and [`layout`], the one type that knows the data directory's file names
//! ([`DataDir`]). With the feature `test-suite`, [`testing`] is the harness of the one store
//! test suite, for this crate's tests and for crates built on it.
//!
//! ## Layout
//!
//! - this file: [`StoreError`], [`Location`] (which store, and opening it for writing, reading
//!   or scanning), the record types ([`Tenant`], [`NewEntry`], [`StoredCheckpoint`],
//!   [`TokenRecord`], [`Protection`], [`BadValue`] and [`EntryRow`] for rows that break their
//!   schema), the [`Store`] trait in sections (transactions, the log,
//!   tenants and tokens, settings) and the helpers every caller of a log needs ([`tail`],
//!   [`StoreHashes`], [`in_snapshot`]);
//! - [`sqlite`] with `sqlite_schema.sql` and [`sqlite::wal`]; [`postgres`] with its migrations
//!   in `postgres/*.sql`;
//! - [`index`], [`layout`], and `testing`.
//!
//! **Architecture invariant:** this is the only crate that names a database driver
//! (`rusqlite`, `postgres`) or holds SQL; the service above it sees traits and records.
//! **API boundary:** everything `pub` here; the backends' own types stay behind [`Location`].

#![forbid(unsafe_code)]

pub mod gaps;
pub mod index;
pub mod layout;
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "test-suite")]
pub mod testing;
pub mod tiles;

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sealtrail_core::Hash;
use sealtrail_core::merkle::{self, HashReader, ReadError, TreeBuilder};

pub use layout::DataDir;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// From SQLite (except a full disk, [`StoreError::Full`]; see [`sqlite`]).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    #[error(
        "{location} was written by a newer sealtrail (schema version {found}, this build knows {known}); upgrade sealtrail"
    )]
    NewerSchema {
        location: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Missing(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A row holds a value its schema does not allow (see [`BadValue`]): reading that row
    /// alone fails, so that one damaged row cannot hide the rest of the log.
    #[error("tenant {tenant:?}, seq {seq}: {source}; run `sealtrail verify` for the report")]
    BadRow {
        tenant: String,
        seq: u64,
        #[source]
        source: BadValue,
    },
    #[error("{0}")]
    Unavailable(String),
    /// A write in the transaction failed, so the whole transaction was rolled back.
    #[error("{0}")]
    Aborted(String),
    /// The store's disk is full: the write failed and nothing of its transaction is kept.
    /// Writes succeed again once there is space; nothing needs restarting.
    #[error("the store is out of disk space ({0}); free space where it keeps its data")]
    Full(String),
}

impl StoreError {
    /// Whether the store's engine found its files damaged (SQLite's `SQLITE_CORRUPT` or
    /// `SQLITE_NOTADB`), as opposed to unreachable, full or refusing: see
    /// [`Store::integrity_problems`].
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ),
            StoreError::Corrupt(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which store, and where: the embedded store in a data directory, or a PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Embedded { data_dir: PathBuf },
    Postgres { url: String },
}

impl Location {
    /// The embedded store of `data_dir` unless a database URL is given.
    pub fn new(data_dir: &Path, database_url: Option<&str>) -> Location {
        match database_url {
            Some(url) => Location::Postgres {
                url: url.to_string(),
            },
            None => Location::Embedded {
                data_dir: data_dir.to_path_buf(),
            },
        }
    }

    /// Opens the store for writing, creating it or bringing its schema up to date.
    pub fn open_writer(&self) -> Result<Box<dyn Store>> {
        Ok(match self {
            Location::Embedded { data_dir } => Box::new(sqlite::SqliteStore::open_writer(
                &DataDir::new(data_dir).database(),
            )?),
            Location::Postgres { url } => Box::new(postgres::PgStore::open_writer(url)?),
        })
    }

    /// Opens an existing store for reading; fails if it does not exist or is of a newer schema.
    pub fn open_reader(&self) -> Result<Box<dyn Store>> {
        Ok(match self {
            Location::Embedded { data_dir } => Box::new(sqlite::SqliteStore::open_reader(
                &DataDir::new(data_dir).database(),
            )?),
            Location::Postgres { url } => Box::new(postgres::PgStore::open_reader(url)?),
        })
    }

    /// A reader for reading a whole log in order (offline verification); see
    /// [`sqlite::SqliteStore::open_scanner`].
    pub fn open_scanner(&self) -> Result<Box<dyn Store>> {
        Ok(match self {
            Location::Embedded { data_dir } => Box::new(sqlite::SqliteStore::open_scanner(
                &DataDir::new(data_dir).database(),
            )?),
            Location::Postgres { url } => Box::new(postgres::PgStore::open_reader(url)?),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Location::Embedded { .. } => "embedded",
            Location::Postgres { .. } => "postgres",
        }
    }
}

/// Never prints a PostgreSQL password.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Embedded { data_dir } => {
                write!(f, "{}", DataDir::new(data_dir).database().display())
            }
            Location::Postgres { url } => f.write_str(&postgres::redact_url(url)),
        }
    }
}

/// A value a store holds where its schema promises another kind: an entry that is not bytes
/// (SQLite TEXT after `CAST(entry AS TEXT)` or `replace()`, an integer, NULL), the sort of
/// thing only someone who removed the append-only protections and edited the file can leave.
///
/// Reads of entries hand it back *in place of that row* ([`EntryRow`]) rather than failing the
/// whole read: the verifier then reports the row as `malformed_entry` at its seq, and the
/// indexer passes over it, instead of one edited row stopping both at the first read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {column} column holds {found} where the schema promises {expected}")]
pub struct BadValue {
    /// The column, e.g. `entries.entry`.
    pub column: &'static str,
    /// What the schema promises, e.g. `a BLOB`.
    pub expected: &'static str,
    /// What the row holds instead, e.g. `TEXT (312 bytes)` or `NULL`.
    pub found: String,
}

/// One entry row as read: its bytes, or the value that stands where they should be.
pub type EntryRow = std::result::Result<Vec<u8>, BadValue>;

/// [`EntryRow`] borrowed, as [`Store::for_each_entry`] hands each row over.
pub type EntryRef<'a> = std::result::Result<&'a [u8], &'a BadValue>;

/// A tenant, the origin line of its log's checkpoints, and the verifier key its checkpoints
/// are signed with (recorded when the tenant is created; `None` for tenants created by an
/// older version, whose key is only in the key files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub origin: String,
    pub created_at: String,
    pub vkey: Option<String>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    pub created_at: String,
}

/// A daily seal as stored: one row per issue of a tenant's day (issue 0 first; a re-issue
/// after a repair is the next number), append-only like the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSeal {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub issue: u32,
    /// The signed note (`sealtrail_core::seal`).
    pub note: String,
    pub created_at: String,
}

/// A prune (`sealtrail retention apply`): the entries of a log below `below` were removed,
/// after the `_system` entry at `system_seq` announced it, and `archive` holds them. Their
/// stored hashes and the log's checkpoints stay, so every proof about the log stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneMark {
    pub below: u64,
    pub archive: String,
    pub system_seq: u64,
    pub pruned_at: String,
}

/// The size of a log below which an archive, verified against the store when it was
/// recorded, holds every entry: how far a prune may go. It only rises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveWatermark {
    pub size: u64,
    pub archive: String,
    pub recorded_at: String,
}

/// One entry row to append.
pub struct NewEntry<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub entry: &'a [u8],
}

/// A stored API token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl TokenRecord {
    /// The token's scopes as both schemas store them: one text column of names separated by
    /// spaces (scope names contain none). Kept here so that the two backends cannot disagree.
    pub(crate) fn scopes_column(&self) -> String {
        self.scopes.join(" ")
    }

    /// The scopes read back from the column [`TokenRecord::scopes_column`] writes.
    pub(crate) fn scopes_from_column(column: &str) -> Vec<String> {
        column.split_whitespace().map(str::to_string).collect()
    }
}

/// How thoroughly [`Store::integrity_problems`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// What can be checked in about the time it takes to read the store once
    /// (`sealtrail verify` runs it before every verification).
    Quick,
    /// Everything the engine can check (`sealtrail doctor`).
    Full,
}

/// A protection of the log tables that the store's schema installs, and whether it is in
/// force. See [`Store::protections`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    /// What it is, e.g. `trigger entries_append_only on entries`.
    pub name: String,
    /// `true` when present and enabled.
    pub active: bool,
}

/// What every store does. Reads see committed data only. Writes happen between
/// [`Store::begin_write`] and [`Store::commit`] (or [`Store::rollback`]); a commit returns only
/// once it is durable.
pub trait Store: Send {
    /// `"embedded"` or `"postgres"`.
    fn kind(&self) -> &'static str;

    // --- transactions ---

    /// Starts a read snapshot: every read until [`Store::end_read`] sees the same moment.
    /// Calls nest; only the outermost pair has an effect.
    fn begin_read(&self) -> Result<()>;
    fn end_read(&self) -> Result<()>;

    /// Starts the write transaction and takes the append lock of each tenant named (whether or
    /// not it exists yet), held until commit or rollback. Several processes may append to one
    /// store: a tenant's log is only ever extended by the holder of its lock, which must read
    /// the tail after taking it. Locks are taken in a fixed order, so two writers cannot
    /// deadlock.
    fn begin_write(&self, lock_tenants: &[&str]) -> Result<()>;
    /// Makes the transaction durable; returns only after it is.
    fn commit(&self) -> Result<()>;
    fn rollback(&self) -> Result<()>;

    // --- reads ---

    fn tenants(&self) -> Result<Vec<Tenant>>;
    fn tenant(&self, name: &str) -> Result<Option<Tenant>>;
    /// The number of entries in the tenant's log (its last seq + 1; 0 when empty).
    fn size(&self, tenant: &str) -> Result<u64>;
    /// Stored hashes at `indexes`, in the order asked; an error names a missing one.
    fn read_hashes(&self, tenant: &str, indexes: &[u64]) -> Result<Vec<Hash>, ReadError>;
    /// The entry at `seq`, if any; [`StoreError::BadRow`] if its row holds no bytes.
    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Vec<u8>>>;
    /// The entries at `seqs`, in the order `seqs` lists them; a seq the log does not hold is
    /// left out. One statement however many seqs are asked for, so that a page of search
    /// results costs one round trip rather than one per event. A row that holds no bytes is
    /// [`StoreError::BadRow`]: a page cannot show an entry it cannot read.
    fn entries_at(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The entry id at `seq`, if any.
    fn entry_id(&self, tenant: &str, seq: u64) -> Result<Option<String>>;
    /// The seq of the entry with this id, if any.
    fn seq_of_id(&self, tenant: &str, id: &str) -> Result<Option<u64>>;
    /// [`Store::seq_of_id`] for many ids at once: the seq of each id in the log (ids not in
    /// it are absent). A store across a network answers in one round trip.
    fn seqs_of_ids(&self, tenant: &str, ids: &[&str]) -> Result<HashMap<String, u64>> {
        let mut found = HashMap::new();
        for id in ids {
            if let Some(seq) = self.seq_of_id(tenant, id)? {
                found.insert((*id).to_string(), seq);
            }
        }
        Ok(found)
    }
    /// Up to `limit` entries with `from <= seq < to`, in seq order; a row that holds no bytes
    /// is there as its [`BadValue`], so that the rows after it are still read.
    fn entries(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EntryRow)>>;
    /// Calls `each(seq, entry)` for entries with `from <= seq < to`, in seq order, without
    /// holding them all in memory; a row that holds no bytes is passed as its [`BadValue`].
    /// `each` must not use this store.
    fn for_each_entry(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        each: &mut dyn FnMut(u64, EntryRef<'_>),
    ) -> Result<()> {
        const CHUNK: usize = 10_000;
        let mut from = from;
        while from < to {
            let chunk = self.entries(tenant, from, to, CHUNK)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            for (seq, entry) in &chunk {
                each(*seq, entry.as_deref());
            }
            if chunk.len() < CHUNK {
                break;
            }
            from = last + 1;
        }
        Ok(())
    }
    fn idempotent_seq(&self, tenant: &str, key: &str) -> Result<Option<u64>>;
    /// [`Store::idempotent_seq`] for many keys at once: the seq of each key that is recorded
    /// (keys not recorded are absent). A store across a network answers in one round trip.
    fn idempotent_seqs(&self, tenant: &str, keys: &[&str]) -> Result<HashMap<String, u64>> {
        let mut found = HashMap::new();
        for key in keys {
            if let Some(seq) = self.idempotent_seq(tenant, key)? {
                found.insert((*key).to_string(), seq);
            }
        }
        Ok(found)
    }
    /// The latest (largest) signed checkpoint of a tenant.
    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>>;
    /// Every signed checkpoint note of a tenant, by size.
    fn checkpoints(&self, tenant: &str) -> Result<Vec<String>>;
    /// The largest checkpoint of a tenant signed before `before` (an RFC 3339 time in the
    /// store's own spelling, `created_at`): the last checkpoint of a day, for its seal.
    fn checkpoint_before(&self, tenant: &str, before: &str) -> Result<Option<StoredCheckpoint>>;
    /// The seals of a tenant's days from `from` to `to` (`YYYY-MM-DD`, both inclusive), every
    /// issue, by day and issue.
    fn seals(&self, tenant: &str, from: &str, to: &str) -> Result<Vec<StoredSeal>>;
    /// The newest seal of a tenant (its latest day, latest issue).
    fn latest_seal(&self, tenant: &str) -> Result<Option<StoredSeal>>;
    fn setting(&self, name: &str) -> Result<Option<String>>;
    fn token_by_secret(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>>;
    fn list_tokens(&self) -> Result<Vec<TokenRecord>>;

    // --- writes (inside begin_write .. commit) ---

    fn insert_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// Records the verifier key of a tenant that has none yet (created by an older version).
    fn set_tenant_vkey(&self, tenant: &str, vkey: &str) -> Result<()>;
    /// Appends entries and their stored hashes (`first_hash_index` is the stored index of
    /// `hashes[0]`), as few statements as the store allows.
    fn append(
        &self,
        tenant: &str,
        entries: &[NewEntry<'_>],
        first_hash_index: u64,
        hashes: &[Hash],
    ) -> Result<()>;
    fn insert_idempotency(&self, tenant: &str, keys: &[(String, u64)]) -> Result<()>;
    /// Stores a signed checkpoint; a second one of the same size is ignored.
    fn insert_checkpoint(
        &self,
        tenant: &str,
        size: u64,
        note: &str,
        created_at: &str,
    ) -> Result<()>;
    fn set_setting(&self, name: &str, value: &str) -> Result<()>;
    /// Stores a seal; an issue of a day that is already stored is an error (seals are never
    /// replaced: a re-issue is the next issue number).
    fn insert_seal(&self, tenant: &str, seal: &StoredSeal) -> Result<()>;
    fn insert_token(&self, record: &TokenRecord, secret_sha256: &[u8; 32]) -> Result<()>;
    /// Marks a token revoked; false if there is no such token or it was already revoked.
    fn revoke_token(&self, id: &str, revoked_at: &str) -> Result<bool>;

    // --- integrity ---

    /// The append-only protections the schema installs, each with whether it is in force.
    fn protections(&self) -> Result<Vec<Protection>>;

    /// Whether the store's own storage is sound, as its engine can tell: what its integrity
    /// check reports, empty when it finds nothing. This is damage to the files or the schema
    /// (a copy taken while the server wrote, a disk fault, a constraint someone dropped), not
    /// a change to the log, and callers report it as such before they verify any log: a
    /// corrupt file can make intact history look tampered with.
    ///
    /// The embedded store runs SQLite's `PRAGMA quick_check` ([`Integrity::Quick`]: a read of
    /// every page, without cross-checking indexes against their tables) or `PRAGMA
    /// integrity_check` ([`Integrity::Full`]: the cross-checks too, several times slower).
    /// PostgreSQL detects damaged pages itself (with data checksums on) when it reads them;
    /// it checks its catalog: every table of the schema present with its keys and unique
    /// constraints, every index valid, and — with [`Integrity::Full`], when the database has
    /// the `amcheck` extension — each b-tree index's structure (`bt_index_check`).
    fn integrity_problems(&self, depth: Integrity) -> Result<Vec<String>> {
        let _ = depth;
        Ok(Vec::new())
    }

    // --- diagnosis and repair (`sealtrail doctor`, `sealtrail replay`) ---

    /// The schema version the store holds and the one this build writes, as
    /// `(found, known)`: SQLite's `user_version`, or the PostgreSQL migrations applied.
    fn schema_versions(&self) -> Result<(i64, i64)>;

    /// The database server's clock (PostgreSQL's `now()`), to compare with this machine's;
    /// `None` for the embedded store, which has no clock of its own.
    fn database_time(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Puts back the entry at `seq` of a tenant's log whose row is missing, inside a write
    /// transaction, only if the leaf hash of `entry` is the stored leaf hash at `seq` (see
    /// [`Restore`]): the row that was deleted, byte for byte, and nothing else. The store
    /// checks this itself, under the tenant's append lock (the embedded store with the core's
    /// `leaf_hash`, PostgreSQL in `sealtrail_restore_entry`, a function of the schema's
    /// owner). It never updates: an existing row is reported, not touched.
    fn restore_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore>;

    /// [`Store::restore_entry`], and also puts back the entry at `seq` whose row holds other
    /// bytes (changed by someone with write access to the database), on the same condition:
    /// the leaf hash of `entry` is the stored leaf hash at `seq`, checked by the store under
    /// the tenant's lock. The row is replaced past the append-only trigger for this one
    /// statement, in the open write transaction (SQLite drops and recreates the trigger,
    /// PostgreSQL disables and re-enables it, both undone with the transaction if it fails),
    /// so a repair never rewrites anything but bytes the tree already commits to. `Present`
    /// when the row holds exactly `entry` already. The caller (`sealtrail repair`) also checks
    /// that the stored leaf is in a signed checkpoint's tree before it asks.
    fn repair_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore>;

    // --- retention ---

    /// The log's latest prune, if it was ever pruned: entries below `below` are gone on
    /// purpose. Every reader that walks a log from its start begins at this mark.
    fn prune_mark(&self, tenant: &str) -> Result<Option<PruneMark>>;

    /// The log's archive watermark, if one was recorded.
    fn archive_watermark(&self, tenant: &str) -> Result<Option<ArchiveWatermark>>;

    /// Records that an archive verified against this store holds every entry below
    /// `mark.size`. A watermark never falls: a lower one than recorded changes nothing.
    fn record_archive_watermark(&self, tenant: &str, mark: &ArchiveWatermark) -> Result<()>;

    /// Removes the entries below `mark.below` (and their idempotency keys), inside a write
    /// transaction, after recording `mark`: the one way entries leave a log. The store itself
    /// refuses a mark that does not rise, passes the archive watermark or would remove the
    /// log's newest entry (SQLite with triggers, PostgreSQL in `sealtrail_prune`, a function
    /// of the schema's owner); any other DELETE stays refused by the append-only triggers.
    /// Returns the number of entries removed.
    fn prune(&self, tenant: &str, mark: &PruneMark) -> Result<u64>;

    // --- leases ---

    /// Takes the lease `name` (lowercase letters, digits and `-`), or confirms that this
    /// connection still holds it: `true` while this connection is its one holder among every
    /// connection to the store, in every process; `false` while another connection holds it.
    /// Work that must be done by one instance at a time (the archiver) asks before each unit
    /// of work and stops while it gets `false`.
    ///
    /// A lease lasts as long as the connection that took it, never by a timer: it is released
    /// when the store is dropped or its process dies, so a holder that crashed never blocks
    /// the others. On PostgreSQL it is a session-level advisory lock of this connection
    /// (two-key form, [`postgres::LEASE_LOCK_CLASS`] and a hash of the name); a connection
    /// that was lost and reconnected has lost it too, and this call takes it again if it is
    /// free. On the embedded store it is an exclusive lock on the file `DIR/<name>.lease`
    /// ([`DataDir::lease`]), which also keeps two processes serving one data directory from
    /// both doing the work. Called outside a transaction.
    fn try_lease(&self, name: &str) -> Result<bool>;
}

/// Checks a lease name: non-empty, lowercase letters, digits and `-` (it names a file of the
/// data directory and is hashed into a PostgreSQL lock key).
pub(crate) fn check_lease_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Missing(format!(
            "{name:?} is not a lease name: lowercase letters, digits and '-' only"
        )))
    }
}

/// What [`Store::restore_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The row was missing and the stored leaf hash matched: it is back.
    Restored,
    /// A row is at that seq already (nothing was written).
    Present,
    /// The store holds no leaf hash at that seq: the log never had the entry.
    NoStoredHash,
    /// The stored leaf hash at that seq is another one: the bytes are not that entry's.
    HashMismatch,
    /// The seq is below the log's prune mark: retention removed it on purpose, and it stays
    /// removed (nothing was written).
    Pruned,
}

/// Where a tenant's log ends: its size, the hash of its last entry, and the Merkle frontier.
#[derive(Debug, Clone)]
pub struct Tail {
    pub size: u64,
    pub last_hash: Hash,
    pub tree: TreeBuilder,
}

/// Reads a tenant's tail in O(log n) hash reads.
pub fn tail(store: &dyn Store, tenant: &str) -> Result<Tail> {
    let size = store.size(tenant)?;
    let reader = StoreHashes { store, tenant };
    let tree = TreeBuilder::from_reader(size, &reader).map_err(|e| {
        StoreError::Corrupt(format!("tenant {tenant}: cannot resume the tree: {e}"))
    })?;
    let last_hash = if size == 0 {
        Hash::ZERO
    } else {
        reader
            .read_hashes(&[merkle::stored_hash_index(0, size - 1)])
            .map_err(|e| StoreError::Corrupt(format!("tenant {tenant}: {e}")))?[0]
    };
    Ok(Tail {
        size,
        last_hash,
        tree,
    })
}

/// A tenant's stored-hash array, as the core reads it.
pub struct StoreHashes<'s> {
    pub store: &'s dyn Store,
    pub tenant: &'s str,
}

impl HashReader for StoreHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        self.store.read_hashes(self.tenant, indexes)
    }
}

/// Puts rows found by seq into the order `seqs` asks for, leaving out seqs with no row: the
/// stores read a set of seqs in one statement, which returns them in no particular order.
pub(crate) fn in_asked_order(seqs: &[u64], rows: Vec<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)> {
    let mut found: HashMap<u64, Vec<u8>> = rows.into_iter().collect();
    // A seq asked for twice is answered twice: copied until its last mention, moved there.
    let last_mention: HashMap<u64, usize> = seqs.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut ordered = Vec::with_capacity(found.len());
    for (i, &seq) in seqs.iter().enumerate() {
        let asked_again = last_mention.get(&seq) != Some(&i);
        let entry = if asked_again {
            found.get(&seq).cloned()
        } else {
            found.remove(&seq)
        };
        if let Some(entry) = entry {
            ordered.push((seq, entry));
        }
    }
    ordered
}

/// Runs `f` inside one read snapshot of `store`.
pub fn in_snapshot<T, E: From<StoreError>>(
    store: &dyn Store,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    store.begin_read()?;
    let result = f();
    let ended = store.end_read();
    let value = result?;
    ended?;
    Ok(value)
}

/// The nesting of [`Store::begin_read`] / [`Store::end_read`] calls on one connection: only the
/// outermost pair begins and ends a snapshot, and only if it began one (it does not inside an
/// open transaction).
#[derive(Debug, Default)]
pub(crate) struct ReadNesting(Cell<(u32, bool)>);

impl ReadNesting {
    /// Enters one level; on the outermost, `begin` starts the snapshot if it can and says
    /// whether it did.
    pub(crate) fn enter(&self, begin: impl FnOnce() -> Result<bool>) -> Result<()> {
        let (depth, owned) = self.0.get();
        if depth > 0 {
            self.0.set((depth + 1, owned));
            return Ok(());
        }
        let owned = begin()?;
        self.0.set((1, owned));
        Ok(())
    }

    /// Leaves one level; on the outermost, `end` ends the snapshot `enter` began.
    pub(crate) fn leave(&self, end: impl FnOnce() -> Result<()>) -> Result<()> {
        match self.0.get() {
            (0, _) => Ok(()),
            (1, owned) => {
                self.0.set((0, false));
                if owned { end() } else { Ok(()) }
            }
            (depth, owned) => {
                self.0.set((depth - 1, owned));
                Ok(())
            }
        }
    }
}
