//! The embedded store: one SQLite database (`DIR/sealtrail.db`, WAL mode, `synchronous=FULL`)
//! holding every tenant's log — entries, stored Merkle hashes, signed checkpoints — plus
//! tenants, idempotency keys and hashed API tokens.
//!
//! Writes happen on one connection owned by the ledger's writer thread (see
//! [`crate::ledger`]); a commit returns only after SQLite has fsync'd it. Readers use their
//! own connections and see committed data only, so `sealtrail verify` and the HTTP readers can
//! run while the server writes.
//!
//! **Architecture invariant:** nothing here updates or deletes a log row; the schema's triggers
//! refuse it as well. Integrity logic (hashing, canonical form, proofs) stays in
//! `sealtrail_core`; this module stores and fetches bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use sealtrail_core::Hash;
use sealtrail_core::merkle::{self, HashReader, ReadError, TreeBuilder};

/// The schema version this build writes; stored in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = include_str!("schema.sql");

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sealtrail.db")
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "{path} was written by a newer sealtrail (schema version {found}, this build knows {SCHEMA_VERSION}); upgrade sealtrail"
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("no sealtrail store at {0}; start `sealtrail serve --data DIR` once to create it")]
    Missing(PathBuf),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens (creating if needed) the database for writing and brings its schema up to date.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL lets readers (verify, queries) run beside the writer; FULL makes every commit fsync
    // the WAL before it returns, which is what "acknowledged only once durable" rests on.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens an existing database read-only.
pub fn open_reader(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(conn)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(())
}

/// A stored setting (see the `settings` table).
pub fn setting(conn: &Connection, name: &str) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")?;
    Ok(stmt.query_row([name], |row| row.get(0)).optional()?)
}

pub fn set_setting(conn: &Connection, name: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// A tenant and the origin line of its log's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub origin: String,
    pub created_at: String,
}

pub fn tenants(conn: &Connection) -> Result<Vec<Tenant>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, origin, created_at FROM tenants ORDER BY name")?;
    let rows = stmt.query_map([], |row| {
        Ok(Tenant {
            name: row.get(0)?,
            origin: row.get(1)?,
            created_at: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn tenant(conn: &Connection, name: &str) -> Result<Option<Tenant>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, origin, created_at FROM tenants WHERE name = ?1")?;
    Ok(stmt
        .query_row([name], |row| {
            Ok(Tenant {
                name: row.get(0)?,
                origin: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()?)
}

pub fn insert_tenant(conn: &Connection, tenant: &Tenant) -> Result<()> {
    conn.execute(
        "INSERT INTO tenants (name, origin, created_at) VALUES (?1, ?2, ?3)",
        params![tenant.name, tenant.origin, tenant.created_at],
    )?;
    Ok(())
}

/// Where a tenant's log ends: its size, the hash of its last entry, and the Merkle frontier.
#[derive(Debug, Clone)]
pub struct Tail {
    pub size: u64,
    pub last_hash: Hash,
    pub tree: TreeBuilder,
}

/// Reads a tenant's tail in O(log n) hash reads.
pub fn tail(conn: &Connection, tenant: &str) -> Result<Tail> {
    let size: u64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries WHERE tenant = ?1")?
        .query_row([tenant], |row| row.get::<_, i64>(0))? as u64;
    let reader = SqliteHashes { conn, tenant };
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

/// One entry row to append.
pub struct NewEntry<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub entry: &'a [u8],
}

/// Appends entries and their stored hashes (`first_hash_index` is the stored index of
/// `hashes[0]`). Must run inside the caller's transaction.
pub fn append(
    conn: &Connection,
    tenant: &str,
    entries: &[NewEntry<'_>],
    first_hash_index: u64,
    hashes: &[Hash],
) -> Result<()> {
    let mut insert_entry = conn
        .prepare_cached("INSERT INTO entries (tenant, seq, id, entry) VALUES (?1, ?2, ?3, ?4)")?;
    for row in entries {
        insert_entry.execute(params![tenant, row.seq as i64, row.id, row.entry])?;
    }
    let mut insert_hash =
        conn.prepare_cached("INSERT INTO hashes (tenant, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (offset, hash) in hashes.iter().enumerate() {
        insert_hash.execute(params![
            tenant,
            (first_hash_index + offset as u64) as i64,
            hash.as_bytes().as_slice()
        ])?;
    }
    Ok(())
}

pub fn idempotent_seq(conn: &Connection, tenant: &str, key: &str) -> Result<Option<u64>> {
    let mut stmt =
        conn.prepare_cached("SELECT seq FROM idempotency WHERE tenant = ?1 AND key = ?2")?;
    Ok(stmt
        .query_row(params![tenant, key], |row| row.get::<_, i64>(0))
        .optional()?
        .map(|seq| seq as u64))
}

pub fn insert_idempotency(conn: &Connection, tenant: &str, key: &str, seq: u64) -> Result<()> {
    conn.prepare_cached("INSERT INTO idempotency (tenant, key, seq) VALUES (?1, ?2, ?3)")?
        .execute(params![tenant, key, seq as i64])?;
    Ok(())
}

/// The entry at `seq`, if any.
pub fn entry(conn: &Connection, tenant: &str, seq: u64) -> Result<Option<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT entry FROM entries WHERE tenant = ?1 AND seq = ?2")?;
    Ok(stmt
        .query_row(params![tenant, seq as i64], |row| row.get(0))
        .optional()?)
}

/// The seq of the entry with this id, if any.
pub fn seq_of_id(conn: &Connection, tenant: &str, id: &str) -> Result<Option<u64>> {
    let mut stmt = conn.prepare_cached("SELECT seq FROM entries WHERE tenant = ?1 AND id = ?2")?;
    Ok(stmt
        .query_row(params![tenant, id], |row| row.get::<_, i64>(0))
        .optional()?
        .map(|seq| seq as u64))
}

/// Calls `each(seq, entry)` for entries with `from <= seq < to`, in seq order, streaming.
pub fn for_each_entry(
    conn: &Connection,
    tenant: &str,
    from: u64,
    to: u64,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, entry FROM entries WHERE tenant = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![tenant, from as i64, to.min(i64::MAX as u64) as i64])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let entry = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        each(seq as u64, entry);
    }
    Ok(())
}

pub fn insert_checkpoint(
    conn: &Connection,
    tenant: &str,
    size: u64,
    note: &str,
    created_at: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO checkpoints (tenant, size, note, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![tenant, size as i64, note, created_at])?;
    Ok(())
}

/// The latest signed checkpoint note of a tenant and its size.
pub fn latest_checkpoint(conn: &Connection, tenant: &str) -> Result<Option<(u64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT size, note FROM checkpoints WHERE tenant = ?1 ORDER BY size DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row([tenant], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
        })
        .optional()?)
}

/// Every signed checkpoint note of a tenant, by size.
pub fn checkpoints(conn: &Connection, tenant: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT note FROM checkpoints WHERE tenant = ?1 ORDER BY size")?;
    let notes = stmt.query_map([tenant], |row| row.get(0))?;
    Ok(notes.collect::<Result<_, _>>()?)
}

/// A tenant's stored-hash array, read from the `hashes` table.
pub struct SqliteHashes<'c> {
    pub conn: &'c Connection,
    pub tenant: &'c str,
}

impl HashReader for SqliteHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        if let Some(hashes) = self.read_dense(indexes)? {
            return Ok(hashes);
        }
        let mut out = Vec::with_capacity(indexes.len());
        // Contiguous runs (the verifier's usual request) are one range query each.
        let mut range = self.conn.prepare_cached(
            "SELECT idx, hash FROM hashes WHERE tenant = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
        )?;
        let mut start = 0;
        while start < indexes.len() {
            let mut end = start + 1;
            while end < indexes.len() && indexes[end] == indexes[end - 1] + 1 {
                end += 1;
            }
            let (from, to) = (indexes[start], indexes[end - 1] + 1);
            let mut rows = range.query(params![self.tenant, from as i64, to as i64])?;
            let mut expected = from;
            while let Some(row) = rows.next()? {
                let idx: i64 = row.get(0)?;
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                if idx as u64 != expected {
                    return Err(format!("stored hash {expected} is missing").into());
                }
                out.push(Hash::from_slice(bytes).map_err(|e| format!("stored hash {idx}: {e}"))?);
                expected += 1;
            }
            if expected != to {
                return Err(format!("stored hash {expected} is missing").into());
            }
            start = end;
        }
        Ok(out)
    }
}

impl SqliteHashes<'_> {
    /// Serves a request whose indexes lie close together (a hash tile: every other position of
    /// a span) with one range query instead of one query per index. `None` when the indexes
    /// are too spread out for that to pay, or not in ascending order.
    fn read_dense(&self, indexes: &[u64]) -> Result<Option<Vec<Hash>>, ReadError> {
        let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
            return Ok(Some(Vec::new()));
        };
        let ascending = indexes.windows(2).all(|w| w[0] < w[1]);
        let span = last.saturating_sub(first) + 1;
        if !ascending || indexes.len() < 8 || span > 4 * indexes.len() as u64 {
            return Ok(None);
        }
        let mut range = self.conn.prepare_cached(
            "SELECT idx, hash FROM hashes WHERE tenant = ?1 AND idx >= ?2 AND idx <= ?3 ORDER BY idx",
        )?;
        let mut rows = range.query(params![self.tenant, first as i64, last as i64])?;
        let mut out = Vec::with_capacity(indexes.len());
        let mut wanted = indexes.iter().peekable();
        while let Some(row) = rows.next()? {
            let idx = row.get::<_, i64>(0)? as u64;
            if wanted.peek() == Some(&&idx) {
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                out.push(Hash::from_slice(bytes).map_err(|e| format!("stored hash {idx}: {e}"))?);
                wanted.next();
            }
        }
        match wanted.next() {
            Some(missing) => Err(format!("stored hash {missing} is missing").into()),
            None => Ok(Some(out)),
        }
    }
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

pub fn insert_token(
    conn: &Connection,
    record: &TokenRecord,
    secret_sha256: &[u8; 32],
) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, tenant, secret_sha256, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            record.id,
            record.tenant,
            secret_sha256.as_slice(),
            record.scopes.join(" "),
            record.created_at
        ],
    )?;
    Ok(())
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scopes: String = row.get(2)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

pub fn token_by_secret(conn: &Connection, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens WHERE secret_sha256 = ?1",
    )?;
    Ok(stmt
        .query_row([secret_sha256.as_slice()], token_from_row)
        .optional()?)
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], token_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a token revoked; false if there is no such token or it was already revoked.
pub fn revoke_token(conn: &Connection, id: &str, revoked_at: &str) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, revoked_at],
    )?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_read_back_by_run_by_span_and_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&database_path(dir.path())).unwrap();
        let hashes: Vec<Hash> = (0..600u32)
            .map(|i| sealtrail_core::leaf_hash(&i.to_be_bytes()))
            .collect();
        append(&conn, "t", &[], 0, &hashes).unwrap();
        let reader = SqliteHashes {
            conn: &conn,
            tenant: "t",
        };
        let cases: Vec<Vec<u64>> = vec![
            (10..20).collect(),            // one run
            (0..512).step_by(2).collect(), // dense: one span query
            vec![1, 100, 599, 3],          // sparse, unordered
            vec![],
        ];
        for indexes in cases {
            let want: Vec<Hash> = indexes.iter().map(|&i| hashes[i as usize]).collect();
            assert_eq!(reader.read_hashes(&indexes).unwrap(), want, "{indexes:?}");
        }
        for missing in [
            vec![599, 600],
            (590..610).step_by(2).collect::<Vec<u64>>(),
            vec![5, 700],
        ] {
            let error = reader.read_hashes(&missing).unwrap_err().to_string();
            assert!(error.contains("is missing"), "{missing:?}: {error}");
        }
        // The log tables refuse to be rewritten.
        let refused = conn.execute("DELETE FROM hashes WHERE tenant = 't'", []);
        assert!(refused.unwrap_err().to_string().contains("append-only"));
    }
}
