//! The embedded store's daily seals and the checkpoint query they are made from (see
//! [`crate::Store::seals`]); the table and its append-only triggers are migration 3
//! (`seals.sql`).

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::{Result, StoredCheckpoint, StoredSeal};

fn seal_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSeal> {
    Ok(StoredSeal {
        day: row.get(0)?,
        issue: row.get::<_, i64>(1)? as u32,
        note: row.get(2)?,
        created_at: row.get(3)?,
    })
}

pub(super) fn checkpoint_before(
    conn: &Connection,
    tenant: &str,
    before: &str,
) -> Result<Option<StoredCheckpoint>> {
    // Checkpoints are signed in size order, so the newest before a time is found from the end.
    let mut stmt = conn.prepare_cached(
        "SELECT size, note, created_at FROM checkpoints
         WHERE tenant = ?1 AND created_at < ?2 ORDER BY size DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![tenant, before], |row| {
            Ok(StoredCheckpoint {
                size: row.get::<_, i64>(0)? as u64,
                note: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()?)
}

pub(super) fn seals(
    conn: &Connection,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<Vec<StoredSeal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, issue, note, created_at FROM seals
         WHERE tenant = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day, issue",
    )?;
    let rows = stmt.query_map(params![tenant, from, to], seal_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub(super) fn latest_seal(conn: &Connection, tenant: &str) -> Result<Option<StoredSeal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, issue, note, created_at FROM seals
         WHERE tenant = ?1 ORDER BY day DESC, issue DESC LIMIT 1",
    )?;
    Ok(stmt.query_row([tenant], seal_row).optional()?)
}

pub(super) fn insert_seal(conn: &Connection, tenant: &str, seal: &StoredSeal) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO seals (tenant, day, issue, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        tenant,
        seal.day,
        i64::from(seal.issue),
        seal.note,
        seal.created_at
    ])?;
    Ok(())
}
