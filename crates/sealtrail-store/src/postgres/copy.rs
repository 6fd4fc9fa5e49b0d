//! Appends: each table's rows of a group as one `INSERT … SELECT … FROM unnest(…)` when they are
//! fewer than [`COPY_FROM_ROWS`] (one round trip), and from there as `COPY … FROM STDIN (FORMAT
//! binary)` (two round trips, less work for the database per row): the rows go to PostgreSQL in its
//! binary copy format, which the server reads straight into tuples, instead of as arrays that
//! an `INSERT … SELECT … FROM unnest(…)` takes apart again (array unnesting was about a
//! quarter of the insert's time in the database). COPY inserts through the same path as
//! INSERT: constraints, unique indexes and any row or statement INSERT trigger apply alike,
//! and it needs only the INSERT privilege on the table (`FROM STDIN` reads no server file).
//!
//! The format (PostgreSQL's `COPY` documentation, "Binary Format"): an 11-byte signature, a
//! 32-bit flags field and a 32-bit header-extension length; per row a 16-bit field count and
//! per field a 32-bit length followed by the value in the type's binary send format (big-endian
//! `int8`, raw bytes for `bytea`, UTF-8 bytes for `text` — the driver sets the client encoding
//! to UTF-8); a 16-bit -1 ends the data.

use super::{PgStore, Tx, to_i64};
use crate::{NewEntry, Result, StoreError};
use sealtrail_core::Hash;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

// Appends of fewer than [`COPY_FROM_ROWS`] rows: one statement each, one round trip where a
// COPY takes two.
const INSERT_ENTRIES: &str = "INSERT INTO entries (tenant, seq, id, entry) SELECT $1::text, * FROM unnest($2::int8[], $3::text[], $4::bytea[])";
const INSERT_HASHES: &str = "INSERT INTO hashes (tenant, idx, hash) SELECT $1::text, * FROM unnest($2::int8[], $3::bytea[])";
const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (tenant, key, seq) SELECT $1::text, * FROM unnest($2::text[], $3::int8[])";
/// Rows from which a table's part of an append goes in as a binary `COPY`: cheaper for the
/// database per row, but a round trip more than an `INSERT`, which single events (a handful
/// per group) feel and large batches do not.
const COPY_FROM_ROWS: usize = 128;

/// `COPY … FROM STDIN` statements of the append path. The column lists are spelled out so
/// that a column added later (with a default) does not shift the fields.
const COPY_ENTRIES: &str = "COPY entries (tenant, seq, id, entry) FROM STDIN (FORMAT binary)";
const COPY_HASHES: &str = "COPY hashes (tenant, idx, hash) FROM STDIN (FORMAT binary)";
const COPY_IDEMPOTENCY: &str = "COPY idempotency (tenant, key, seq) FROM STDIN (FORMAT binary)";

/// The rows of one `COPY`, encoded as they are added.
pub(super) struct CopyRows {
    buf: Vec<u8>,
    fields: i16,
    rows: u64,
}

impl CopyRows {
    /// Data for rows of `fields` fields each, about `capacity` bytes in all.
    pub(super) fn new(fields: i16, capacity: usize) -> CopyRows {
        let mut buf = Vec::with_capacity(capacity + SIGNATURE.len() + 10);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        CopyRows {
            buf,
            fields,
            rows: 0,
        }
    }

    /// Starts a row; exactly `fields` values must follow.
    pub(super) fn row(&mut self) -> &mut CopyRows {
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
        self.rows += 1;
        self
    }

    /// An `int8` value.
    pub(super) fn int8(&mut self, value: i64) -> &mut CopyRows {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A `bytea` value, or a `text` value as its UTF-8 bytes.
    pub(super) fn bytes(&mut self, value: &[u8]) -> Result<&mut CopyRows> {
        let len = i32::try_from(value.len()).map_err(|_| {
            StoreError::Postgres(format!(
                "a value of {} bytes is larger than PostgreSQL can store",
                value.len()
            ))
        })?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// The number of rows added.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// The whole copy data, trailer included.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

impl PgStore {
    /// [`Store::append`](crate::Store::append): the entries and their stored hashes, each table's
    /// rows as one `INSERT` below [`COPY_FROM_ROWS`] rows and as one binary `COPY` from there.
    pub(super) fn append_rows(
        &self,
        tenant: &str,
        entries: &[NewEntry<'_>],
        first_hash_index: u64,
        hashes: &[Hash],
    ) -> Result<()> {
        if (1..COPY_FROM_ROWS).contains(&entries.len()) {
            let seqs: Vec<i64> = entries.iter().map(|e| to_i64(e.seq)).collect();
            let ids: Vec<&str> = entries.iter().map(|e| e.id).collect();
            let bytes: Vec<&[u8]> = entries.iter().map(|e| e.entry).collect();
            self.execute(INSERT_ENTRIES, &[&tenant, &seqs, &ids, &bytes])?;
        } else if !entries.is_empty() {
            let size: usize = entries
                .iter()
                .map(|e| tenant.len() + e.id.len() + e.entry.len() + 30)
                .sum();
            let mut rows = CopyRows::new(4, size);
            for entry in entries {
                rows.row()
                    .bytes(tenant.as_bytes())?
                    .int8(to_i64(entry.seq))
                    .bytes(entry.id.as_bytes())?
                    .bytes(entry.entry)?;
            }
            self.copy_in(COPY_ENTRIES, rows)?;
        }
        let position = |offset: usize| to_i64(first_hash_index + offset as u64);
        if (1..COPY_FROM_ROWS).contains(&hashes.len()) {
            let indexes: Vec<i64> = (0..hashes.len()).map(position).collect();
            let bytes: Vec<&[u8]> = hashes.iter().map(|h| h.as_bytes().as_slice()).collect();
            self.execute(INSERT_HASHES, &[&tenant, &indexes, &bytes])?;
        } else if !hashes.is_empty() {
            let mut rows = CopyRows::new(3, hashes.len() * (tenant.len() + 58));
            for (offset, hash) in hashes.iter().enumerate() {
                rows.row()
                    .bytes(tenant.as_bytes())?
                    .int8(position(offset))
                    .bytes(hash.as_bytes())?;
            }
            self.copy_in(COPY_HASHES, rows)?;
        }
        Ok(())
    }

    /// [`Store::insert_idempotency`](crate::Store::insert_idempotency), the same way.
    pub(super) fn append_keys(&self, tenant: &str, keys: &[(String, u64)]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        if keys.len() < COPY_FROM_ROWS {
            let names: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
            let seqs: Vec<i64> = keys.iter().map(|(_, seq)| to_i64(*seq)).collect();
            self.execute(INSERT_IDEMPOTENCY, &[&tenant, &names, &seqs])?;
            return Ok(());
        }
        let size: usize = keys
            .iter()
            .map(|(key, _)| tenant.len() + key.len() + 24)
            .sum();
        let mut rows = CopyRows::new(3, size);
        for (key, seq) in keys {
            rows.row()
                .bytes(tenant.as_bytes())?
                .bytes(key.as_bytes())?
                .int8(to_i64(*seq));
        }
        self.copy_in(COPY_IDEMPOTENCY, rows)
    }

    /// Runs the `COPY … FROM STDIN (FORMAT binary)` statement `sql` (prepared once per
    /// connection, like every other statement) with `rows`, and checks that PostgreSQL took
    /// every row. A failure marks the write transaction failed, as any statement's does.
    fn copy_in(&self, sql: &'static str, rows: CopyRows) -> Result<()> {
        use std::io::Write as _;
        let expected = rows.rows();
        let data = rows.finish();
        let mut unsent = None;
        let copied = self.with_statement(sql, |client, statement| {
            let mut writer = client.copy_in(statement)?;
            // The writer only buffers a first write; its data goes out in `finish`. Should the
            // write fail all the same, dropping the writer aborts the COPY.
            if let Err(error) = writer.write_all(&data) {
                unsent = Some(error);
                return Ok(0);
            }
            writer.finish()
        })?;
        if let Some(error) = unsent {
            self.tx.set(Tx::Write { failed: true });
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL connection lost during COPY: {error}"
            )));
        }
        if copied != expected {
            self.tx.set(Tx::Write { failed: true });
            return Err(StoreError::Postgres(format!(
                "COPY took {copied} rows of {expected}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_binary_copy_format() {
        let mut rows = CopyRows::new(3, 0);
        rows.row().bytes(b"acme").unwrap().int8(258);
        rows.bytes(&[0xde, 0xad]).unwrap();
        rows.row().bytes(b"").unwrap().int8(-1).bytes(b"x").unwrap();
        assert_eq!(rows.rows(), 2);
        let data = rows.finish();
        let mut expected: Vec<u8> = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        // Row 1: 3 fields; "acme"; 258 as int8; two bytes.
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"acme");
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xde, 0xad]);
        // Row 2: an empty value is length 0 (NULL would be -1); -1 as int8.
        expected.extend_from_slice(&[0, 3, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'x']);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, expected);
    }
}
