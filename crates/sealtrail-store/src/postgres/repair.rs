//! The PostgreSQL store's guarded replacement of a changed entry
//! ([`crate::Store::repair_entry`]).

use super::{PgStore, to_i64};
use crate::{Restore, Result};

const CURRENT: &str = "SELECT entry FROM entries WHERE tenant = $1 AND seq = $2";
const STORED_LEAF: &str = "SELECT hash FROM hashes WHERE tenant = $1 AND idx = $2";
const TRIGGER_EXISTS: &str = "SELECT 1::int4 FROM pg_trigger
    WHERE tgrelid = to_regclass('entries') AND tgname = 'entries_append_only'";
const DISABLE: &str = "ALTER TABLE entries DISABLE TRIGGER entries_append_only";
const REPLACE: &str = "UPDATE entries SET id = $3, entry = $4 WHERE tenant = $1 AND seq = $2";
const ENABLE: &str = "ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only";

/// Replaces the bytes of the entry at `seq` when they differ from `entry` and `entry` hashes
/// to the stored leaf; the caller has checked that a row is there and that a write
/// transaction is open. Disabling a trigger needs the table's owner (the role that ran the
/// migrations); the change and the trigger's state are undone together if the transaction is.
pub(super) fn replace_changed(
    store: &PgStore,
    tenant: &str,
    seq: u64,
    id: &str,
    entry: &[u8],
) -> Result<Restore> {
    let seq_i64 = to_i64(seq);
    let current = store.query_opt(CURRENT, &[&tenant, &seq_i64], |row| {
        row.try_get::<_, Option<Vec<u8>>>(0)
    })?;
    if current.flatten().as_deref() == Some(entry) {
        return Ok(Restore::Present);
    }
    let index = to_i64(sealtrail_core::merkle::stored_hash_index(0, seq));
    let stored = store.query_opt(STORED_LEAF, &[&tenant, &index], |row| {
        row.try_get::<_, Vec<u8>>(0)
    })?;
    let Some(stored) = stored else {
        return Ok(Restore::NoStoredHash);
    };
    if stored.as_slice() != sealtrail_core::hash::leaf_hash(entry).as_bytes().as_slice() {
        return Ok(Restore::HashMismatch);
    }
    // A trigger someone dropped cannot be disabled; then the row is replaced as it stands,
    // and the missing protection is for `sealtrail migrate` to put back (doctor names it).
    let guarded = store
        .query_opt(TRIGGER_EXISTS, &[], |row| row.try_get::<_, i32>(0))?
        .is_some();
    if guarded {
        store.execute(DISABLE, &[])?;
    }
    store.execute(REPLACE, &[&tenant, &seq_i64, &id, &entry])?;
    if guarded {
        store.execute(ENABLE, &[])?;
    }
    Ok(Restore::Restored)
}
