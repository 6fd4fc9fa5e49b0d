//! The embedded store's row keys, and migration 5, which brought an existing store to them
//! (`layout.sql`).
//!
//! A row of `entries` or `hashes` is filed under one integer: the tenant's number (a column of
//! `tenants`, given in order of creation) above [`SEQ_BITS`] bits of seq or stored-hash index.
//! One tenant's rows are then one key range in seq order, and an append is an insert at the
//! end of that range of a rowid b-tree (at the very end of the table for the newest tenant,
//! where SQLite fills pages without splitting them). An entry's id is kept as the 16 bytes of
//! its UUID when it is a UUID in its canonical spelling — what sealtrail assigns — and as its
//! text otherwise, so that every id reads back exactly as it was written.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension as _};

use crate::{Result, StoreError};

/// Bits of a row key that hold the seq or the stored-hash index.
pub(super) const SEQ_BITS: u32 = 44;
/// The first seq (and stored-hash index) a log cannot have in the embedded store: 2^44.
pub(super) const SEQ_LIMIT: u64 = 1 << SEQ_BITS;
/// How many tenants the keys have room for, the end of the last one's range being a positive
/// 64-bit integer too: 2^19 - 1.
pub(super) const TENANT_LIMIT: i64 = (1 << (63 - SEQ_BITS)) - 1;

/// The first key of the tenant numbered `number`.
pub(super) fn base(number: i64) -> i64 {
    number << SEQ_BITS
}

/// The key of position `n` (a seq or a stored-hash index) in the range starting at `base`.
pub(super) fn key(base: i64, n: u64) -> Result<i64> {
    if n >= SEQ_LIMIT {
        return Err(StoreError::Unavailable(format!(
            "position {n} is beyond what the embedded store keeps per log ({SEQ_LIMIT})"
        )));
    }
    Ok(base | n as i64)
}

/// The key `base + n`, with `n` clamped to the end of the range: for bounds of a range read.
pub(super) fn bound(base: i64, n: u64) -> i64 {
    base + n.min(SEQ_LIMIT) as i64
}

/// The number of a tenant, or `None` when there is no such tenant.
pub(super) fn tenant_number(conn: &Connection, tenant: &str) -> Result<Option<i64>> {
    let stmt = conn.prepare_cached("SELECT number FROM tenants WHERE name = ?1");
    let mut stmt = match stmt {
        Ok(stmt) => stmt,
        // A reader of a store no writer of this release has opened yet.
        Err(error) if error.to_string().contains("no such column: number") => {
            return Err(StoreError::Unavailable(format!(
                "the store is at an older schema version, without tenant numbers ({error}); start `sealtrail serve` once with this release to convert it"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    Ok(stmt.query_row([tenant], |row| row.get(0)).optional()?)
}

/// The first key of a tenant's range, or `None` when there is no such tenant.
pub(super) fn tenant_base(conn: &Connection, tenant: &str) -> Result<Option<i64>> {
    Ok(tenant_number(conn, tenant)?.map(base))
}

/// An entry id as it is stored (see the module's documentation).
pub(super) fn id_value(id: &str) -> ToSqlOutput<'_> {
    match canonical_uuid(id) {
        Some(uuid) => ToSqlOutput::Owned(rusqlite::types::Value::Blob(uuid.as_bytes().to_vec())),
        None => ToSqlOutput::Borrowed(ValueRef::Text(id.as_bytes())),
    }
}

/// `id` as a UUID, when it is one in the spelling sealtrail writes (lowercase, hyphenated),
/// so that it is spelled the same when read back.
fn canonical_uuid(id: &str) -> Option<uuid::Uuid> {
    if id.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut buf = uuid::Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buf) == id).then_some(uuid)
}

/// An id as stored back to its text.
pub(super) fn id_text(value: ValueRef<'_>) -> Result<String> {
    match value {
        ValueRef::Blob(bytes) => uuid::Uuid::from_slice(bytes)
            .map(|uuid| uuid.hyphenated().to_string())
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "an entry id is {} bytes, not the 16 of a UUID",
                    bytes.len()
                ))
            }),
        ValueRef::Text(text) => Ok(String::from_utf8_lossy(text).into_owned()),
        other => Err(StoreError::Corrupt(format!(
            "an entry id is {:?}, not a UUID or text",
            other.data_type()
        ))),
    }
}

/// The two parts of `layout.sql`, before and after the copy.
fn parts() -> (&'static str, &'static str) {
    const SQL: &str = include_str!("layout.sql");
    SQL.split_once("\n-- copy\n")
        .expect("layout.sql has a copy line")
}

/// How many rows of a tenant one copy statement moves before the migration says how far it is.
const CHUNK: i64 = 250_000;

/// Migration 5 inside the caller's transaction: the new tables, the rows copied over tenant
/// by tenant in chunks (with progress in the log for a large store), the old tables dropped.
/// Fails, and changes nothing once rolled back, when a row cannot be given a key (a row of a
/// tenant that has no `tenants` row, a seq out of range: only a damaged store has either).
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let (before, after) = parts();
    conn.execute_batch(before)?;
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM entries_v4", [], |r| r.get(0))?;
    if total > 0 {
        tracing::info!(
            entries = total,
            "converting the store to integer row keys (schema version 5)"
        );
    }
    let uuid_pattern = format!(
        "{h8}-{h4}-{h4}-{h4}-{h4}{h8}",
        h4 = "[0-9a-f]".repeat(4),
        h8 = "[0-9a-f]".repeat(8)
    );
    let tenants: Vec<(String, i64)> = conn
        .prepare("SELECT name, number FROM tenants ORDER BY number")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let mut entries_copy = conn.prepare(&format!(
        "INSERT INTO entries (key, id, entry)
         SELECT ?2 | seq,
                CASE WHEN typeof(id) = 'text' AND id GLOB '{uuid_pattern}'
                     THEN unhex(replace(id, '-', '')) ELSE id END,
                entry
         FROM entries_v4 WHERE tenant = ?1 AND seq >= ?3 AND seq < ?4 ORDER BY seq"
    ))?;
    let mut copied = 0i64;
    for (name, number) in &tenants {
        let last: Option<i64> = conn.query_row(
            "SELECT MAX(seq) FROM entries_v4 WHERE tenant = ?1",
            [name],
            |r| r.get(0),
        )?;
        let mut from = 0;
        while from <= last.unwrap_or(-1) && from < SEQ_LIMIT as i64 {
            let to = (from + CHUNK).min(SEQ_LIMIT as i64);
            copied +=
                entries_copy.execute(rusqlite::params![name, base(*number), from, to])? as i64;
            from = to;
            if total > CHUNK {
                tracing::info!(
                    copied,
                    total,
                    tenant = %name,
                    "converting the store to integer row keys"
                );
            }
        }
    }
    drop(entries_copy);
    if copied != total {
        return Err(StoreError::Corrupt(format!(
            "cannot convert the store to schema version 5: {} of its {total} entries belong to no tenant or have a seq out of range; nothing was changed",
            total - copied
        )));
    }
    let moved = |what: &str, insert: &str| -> Result<()> {
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM {what}_v4"), [], |r| r.get(0))?;
        let copied = conn.execute(insert, [])? as i64;
        if copied != total {
            return Err(StoreError::Corrupt(format!(
                "cannot convert the store to schema version 5: {} of its {total} rows of {what} belong to no tenant or are out of range; nothing was changed",
                total - copied
            )));
        }
        Ok(())
    };
    moved(
        "hashes",
        &format!(
            "INSERT INTO hashes (key, hash)
             SELECT (t.number << {SEQ_BITS}) | h.idx, h.hash FROM hashes_v4 AS h
             JOIN tenants AS t ON t.name = h.tenant
             WHERE h.idx >= 0 AND h.idx < {SEQ_LIMIT} ORDER BY t.number, h.idx"
        ),
    )?;
    moved(
        "idempotency",
        "INSERT INTO idempotency (tenant_number, key, seq)
         SELECT t.number, i.key, i.seq FROM idempotency_v4 AS i JOIN tenants AS t ON t.name = i.tenant",
    )?;
    conn.execute_batch(after)?;
    if total > 0 {
        tracing::info!(entries = total, "converted the store to schema version 5");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::{Connection, params};
    use sealtrail_core::Hash;

    use super::super::{MIGRATIONS, SqliteStore, migrate, user_version};
    use crate::{Store, StoreError};

    const UUID: &str = "019ae5b2-7c1d-7a3e-9f00-0123456789ab";
    const UPPER: &str = "019AE5B2-7C1D-7A3E-9F00-0123456789AB";

    /// A database at schema version 4, as the previous release left it.
    fn version_4() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (from, sql) in MIGRATIONS.iter().enumerate() {
            conn.execute_batch(&format!("{sql} PRAGMA user_version = {};", from + 1))
                .unwrap();
        }
        assert_eq!(user_version(&conn).unwrap(), 4);
        for name in ["zeta", "alpha"] {
            conn.execute(
                "INSERT INTO tenants (name, origin, created_at) VALUES (?1, ?2, 't')",
                params![name, format!("o/{name}")],
            )
            .unwrap();
        }
        let ids = [UUID, UPPER, "not-a-uuid"];
        for (tenant, shift) in [("zeta", 0u8), ("alpha", 1)] {
            for (seq, id) in ids.iter().enumerate() {
                conn.execute(
                    "INSERT INTO entries (tenant, seq, id, entry) VALUES (?1, ?2, ?3, ?4)",
                    params![tenant, seq as i64, id, vec![seq as u8 + shift; 3]],
                )
                .unwrap();
            }
            for idx in 0..5u8 {
                conn.execute(
                    "INSERT INTO hashes (tenant, idx, hash) VALUES (?1, ?2, ?3)",
                    params![tenant, idx as i64, vec![idx + shift; 32]],
                )
                .unwrap();
            }
        }
        conn.execute(
            "INSERT INTO idempotency (tenant, key, seq) VALUES ('alpha', 'k', 2)",
            [],
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_version_4_store_is_converted_with_every_row_and_id_as_it_was() {
        let conn = version_4();
        migrate(&conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), super::super::SCHEMA_VERSION);
        // Numbers follow the names; the ids that are canonical UUIDs became their bytes.
        let numbers: Vec<(String, i64)> = conn
            .prepare("SELECT name, number FROM tenants ORDER BY number")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(numbers, [("alpha".into(), 0), ("zeta".into(), 1)]);
        let types: Vec<String> = conn
            .prepare("SELECT typeof(id) FROM entries WHERE tenant_number = 1 ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(types, ["blob", "text", "text"]);

        let store = SqliteStore::wrap(conn);
        for (tenant, shift) in [("zeta", 0u8), ("alpha", 1)] {
            assert_eq!(store.size(tenant).unwrap(), 3);
            for (seq, id) in [UUID, UPPER, "not-a-uuid"].iter().enumerate() {
                let seq = seq as u64;
                assert_eq!(store.entry_id(tenant, seq).unwrap().as_deref(), Some(*id));
                assert_eq!(store.seq_of_id(tenant, id).unwrap(), Some(seq));
                assert_eq!(
                    store.entry(tenant, seq).unwrap(),
                    Some(vec![seq as u8 + shift; 3])
                );
            }
            let hashes = store.read_hashes(tenant, &[0, 1, 2, 3, 4]).unwrap();
            let want: Vec<Hash> = (0..5u8)
                .map(|i| Hash::from_slice(&[i + shift; 32]).unwrap())
                .collect();
            assert_eq!(hashes, want);
            assert!(store.read_hashes(tenant, &[5]).is_err());
        }
        assert_eq!(store.idempotent_seq("alpha", "k").unwrap(), Some(2));
        assert_eq!(store.idempotent_seq("zeta", "k").unwrap(), None);
        assert!(store.protections().unwrap().iter().all(|p| p.active));
        let refused = store
            .connection()
            .execute("DELETE FROM entries WHERE tenant_number = 0", [])
            .unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
        let refused = store
            .connection()
            .execute("UPDATE hashes SET hash = hash", [])
            .unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
        // The old tables are gone.
        let left: i64 = store
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v4'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_row_that_cannot_be_keyed_stops_the_conversion_and_changes_nothing() {
        let conn = version_4();
        // An entry of a tenant that has no row: only a damaged store has one.
        conn.execute(
            "INSERT INTO entries (tenant, seq, id, entry) VALUES ('ghost', 0, 'x', x'00')",
            [],
        )
        .unwrap();
        let error = migrate(&conn, Path::new(":memory:")).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
        assert!(error.to_string().contains("1 of its 7 entries"), "{error}");
        assert_eq!(user_version(&conn).unwrap(), 4);
        assert!(conn.is_autocommit());
        let old_rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM entries WHERE tenant = 'zeta'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_rows, 3);
    }
}
