//! The embedded store's retention (see [`crate::Store::prune`]): archive watermarks and
//! prune marks, and the prune itself. The tables and the triggers that enforce the rules are
//! migration 4 (`retention.sql`): a prune row cannot pass the archive watermark, fall, or
//! remove the newest entry, and the entries table refuses every DELETE at or above the mark.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::{ArchiveWatermark, PruneMark, Result, StoreError};

fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} is out of range")))
}

pub(super) fn prune_mark(conn: &Connection, tenant: &str) -> Result<Option<PruneMark>> {
    let mut stmt = conn.prepare_cached(
        "SELECT below, archive, system_seq, pruned_at FROM prunes
         WHERE tenant = ?1 ORDER BY below DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row([tenant], |row| {
            Ok(PruneMark {
                below: row.get::<_, i64>(0)? as u64,
                archive: row.get(1)?,
                system_seq: row.get::<_, i64>(2)? as u64,
                pruned_at: row.get(3)?,
            })
        })
        .optional()?)
}

pub(super) fn archive_watermark(
    conn: &Connection,
    tenant: &str,
) -> Result<Option<ArchiveWatermark>> {
    let mut stmt = conn.prepare_cached(
        "SELECT size, archive, recorded_at FROM archive_watermarks WHERE tenant = ?1",
    )?;
    Ok(stmt
        .query_row([tenant], |row| {
            Ok(ArchiveWatermark {
                size: row.get::<_, i64>(0)? as u64,
                archive: row.get(1)?,
                recorded_at: row.get(2)?,
            })
        })
        .optional()?)
}

pub(super) fn record_archive_watermark(
    conn: &Connection,
    tenant: &str,
    mark: &ArchiveWatermark,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO archive_watermarks (tenant, size, archive, recorded_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant) DO UPDATE
         SET size = excluded.size, archive = excluded.archive, recorded_at = excluded.recorded_at
         WHERE excluded.size >= archive_watermarks.size",
    )?
    .execute(params![
        tenant,
        to_i64(mark.size)?,
        mark.archive,
        mark.recorded_at
    ])?;
    Ok(())
}

pub(super) fn prune(conn: &Connection, tenant: &str, mark: &PruneMark) -> Result<u64> {
    if conn.is_autocommit() {
        return Err(StoreError::Aborted(
            "prune runs inside a write transaction".into(),
        ));
    }
    let below = to_i64(mark.below)?;
    conn.prepare_cached(
        "INSERT INTO prunes (tenant, below, archive, system_seq, pruned_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        tenant,
        below,
        mark.archive,
        to_i64(mark.system_seq)?,
        mark.pruned_at
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) if message.contains("a prune must") => {
            StoreError::Aborted(format!("prune of {tenant} below {}: {message}", mark.below))
        }
        other => other.into(),
    })?;
    let number = super::layout::tenant_number(conn, tenant)?
        .ok_or_else(|| StoreError::Missing(format!("no tenant {tenant:?} to prune")))?;
    let base = super::layout::base(number);
    let removed = conn
        .prepare_cached("DELETE FROM entries WHERE key >= ?1 AND key < ?2")?
        .execute(params![base, super::layout::bound(base, mark.below)])?;
    conn.prepare_cached("DELETE FROM idempotency WHERE tenant_number = ?1 AND seq < ?2")?
        .execute(params![number, below])?;
    conn.prepare_cached(
        "DELETE FROM idempotency_journal WHERE entry_key >= ?1 AND entry_key < ?2",
    )?
    .execute(params![base, super::layout::bound(base, mark.below)])?;
    Ok(removed as u64)
}
