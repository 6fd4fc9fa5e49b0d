//! The embedded store's guarded replacement of a changed entry ([`crate::Store::repair_entry`]).

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::{Restore, Result, StoreError};

/// The update trigger exactly as the schema creates it (`sqlite_schema.sql`, and again
/// `sqlite/layout.sql`).
const UPDATE_TRIGGER: &str = "CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;";

/// Replaces the bytes of the entry at `seq` when they differ from `entry` and `entry` hashes
/// to the stored leaf; the caller has checked that a row is there.
pub(super) fn replace_changed(
    conn: &Connection,
    tenant: &str,
    seq: u64,
    id: &str,
    entry: &[u8],
) -> Result<Restore> {
    if conn.is_autocommit() {
        return Err(StoreError::Aborted(
            "repair_entry runs inside a write transaction".into(),
        ));
    }
    let base = super::layout::tenant_base(conn, tenant)?
        .ok_or_else(|| StoreError::Missing(format!("no tenant {tenant:?} to repair")))?;
    let key = super::layout::key(base, seq)?;
    let current: Option<Vec<u8>> = conn
        .prepare_cached("SELECT CAST(entry AS BLOB) FROM entries WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    if current.as_deref() == Some(entry) {
        return Ok(Restore::Present);
    }
    let index = sealtrail_core::merkle::stored_hash_index(0, seq);
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM hashes WHERE key = ?1")?
        .query_row([super::layout::key(base, index)?], |row| row.get(0))
        .optional()?;
    let Some(stored) = stored else {
        return Ok(Restore::NoStoredHash);
    };
    if stored.as_slice() != sealtrail_core::hash::leaf_hash(entry).as_bytes().as_slice() {
        return Ok(Restore::HashMismatch);
    }
    // DDL is transactional in SQLite: if anything below fails, the rollback puts the trigger
    // back as it was. A trigger someone dropped is created again here.
    conn.execute_batch("DROP TRIGGER IF EXISTS entries_append_only_update;")?;
    conn.prepare_cached("UPDATE entries SET id = ?2, entry = ?3 WHERE key = ?1")?
        .execute(params![key, super::layout::id_value(id), entry])?;
    conn.execute_batch(UPDATE_TRIGGER)?;
    Ok(Restore::Restored)
}
