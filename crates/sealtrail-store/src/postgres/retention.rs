//! The PostgreSQL store's retention (see [`crate::Store::prune`]): archive watermarks, prune
//! marks and `sealtrail_prune`, the function of the schema's owner that is the one way entries
//! leave the log (migration 3, `0003_retention.sql`).

use super::{PgStore, to_i64};
use crate::{ArchiveWatermark, PruneMark, Result, StoreError};

const PRUNE_MARK: &str = "SELECT below, archive, system_seq, pruned_at FROM prunes
    WHERE tenant = $1 ORDER BY below DESC LIMIT 1";
const WATERMARK: &str =
    "SELECT size, archive, recorded_at FROM archive_watermarks WHERE tenant = $1";
const RECORD_WATERMARK: &str = "INSERT INTO archive_watermarks (tenant, size, archive, recorded_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant) DO UPDATE
    SET size = EXCLUDED.size, archive = EXCLUDED.archive, recorded_at = EXCLUDED.recorded_at
    WHERE EXCLUDED.size >= archive_watermarks.size";
const PRUNE: &str = "SELECT sealtrail_prune($1, $2, $3, $4, $5)";

pub(super) fn prune_mark(store: &PgStore, tenant: &str) -> Result<Option<PruneMark>> {
    store.query_opt(PRUNE_MARK, &[&tenant], |row| {
        Ok(PruneMark {
            below: row.try_get::<_, i64>(0)? as u64,
            archive: row.try_get(1)?,
            system_seq: row.try_get::<_, i64>(2)? as u64,
            pruned_at: row.try_get(3)?,
        })
    })
}

pub(super) fn archive_watermark(store: &PgStore, tenant: &str) -> Result<Option<ArchiveWatermark>> {
    store.query_opt(WATERMARK, &[&tenant], |row| {
        Ok(ArchiveWatermark {
            size: row.try_get::<_, i64>(0)? as u64,
            archive: row.try_get(1)?,
            recorded_at: row.try_get(2)?,
        })
    })
}

pub(super) fn record_archive_watermark(
    store: &PgStore,
    tenant: &str,
    mark: &ArchiveWatermark,
) -> Result<()> {
    store.execute(
        RECORD_WATERMARK,
        &[
            &tenant,
            &to_i64(mark.size),
            &mark.archive,
            &mark.recorded_at,
        ],
    )?;
    Ok(())
}

pub(super) fn prune(store: &PgStore, tenant: &str, mark: &PruneMark) -> Result<u64> {
    let removed = store
        .query_opt(
            PRUNE,
            &[
                &tenant,
                &to_i64(mark.below),
                &mark.archive,
                &to_i64(mark.system_seq),
                &mark.pruned_at,
            ],
            |row| row.try_get::<_, i64>(0),
        )?
        .ok_or_else(|| StoreError::Postgres("sealtrail_prune returned no row".into()))?;
    Ok(removed as u64)
}
