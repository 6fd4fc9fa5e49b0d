//! The PostgreSQL store's daily seals and the checkpoint query they are made from (see
//! [`crate::Store::seals`]); the table and its append-only triggers are migration 2
//! (`0002_seals.sql`).

use super::PgStore;
use crate::{Result, StoredCheckpoint, StoredSeal};

const CHECKPOINT_BEFORE: &str = "SELECT size, note, created_at FROM checkpoints
    WHERE tenant = $1 AND created_at < $2 ORDER BY size DESC LIMIT 1";
const SEALS: &str = "SELECT day, issue, note, created_at FROM seals
    WHERE tenant = $1 AND day >= $2 AND day <= $3 ORDER BY day, issue";
const LATEST_SEAL: &str = "SELECT day, issue, note, created_at FROM seals
    WHERE tenant = $1 ORDER BY day DESC, issue DESC LIMIT 1";
const INSERT_SEAL: &str =
    "INSERT INTO seals (tenant, day, issue, note, created_at) VALUES ($1, $2, $3, $4, $5)";

fn seal_row(row: &postgres::Row) -> Result<StoredSeal, postgres::Error> {
    Ok(StoredSeal {
        day: row.try_get(0)?,
        issue: row.try_get::<_, i32>(1)? as u32,
        note: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

pub(super) fn checkpoint_before(
    store: &PgStore,
    tenant: &str,
    before: &str,
) -> Result<Option<StoredCheckpoint>> {
    store.query_opt(CHECKPOINT_BEFORE, &[&tenant, &before], |row| {
        Ok(StoredCheckpoint {
            size: row.try_get::<_, i64>(0)? as u64,
            note: row.try_get(1)?,
            created_at: row.try_get(2)?,
        })
    })
}

pub(super) fn seals(
    store: &PgStore,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<Vec<StoredSeal>> {
    store.query_map(SEALS, &[&tenant, &from, &to], seal_row)
}

pub(super) fn latest_seal(store: &PgStore, tenant: &str) -> Result<Option<StoredSeal>> {
    store.query_opt(LATEST_SEAL, &[&tenant], seal_row)
}

pub(super) fn insert_seal(store: &PgStore, tenant: &str, seal: &StoredSeal) -> Result<()> {
    let issue = i32::try_from(seal.issue).unwrap_or(i32::MAX);
    store.execute(
        INSERT_SEAL,
        &[&tenant, &seal.day, &issue, &seal.note, &seal.created_at],
    )?;
    Ok(())
}
