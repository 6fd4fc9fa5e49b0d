//! Appends as `COPY … FROM STDIN (FORMAT binary)`: the rows of a group go to PostgreSQL in its
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

use crate::{Result, StoreError};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// `COPY … FROM STDIN` statements of the append path. The column lists are spelled out so
/// that a column added later (with a default) does not shift the fields.
pub(super) const COPY_ENTRIES: &str =
    "COPY entries (tenant, seq, id, entry) FROM STDIN (FORMAT binary)";
pub(super) const COPY_HASHES: &str = "COPY hashes (tenant, idx, hash) FROM STDIN (FORMAT binary)";
pub(super) const COPY_IDEMPOTENCY: &str =
    "COPY idempotency (tenant, key, seq) FROM STDIN (FORMAT binary)";

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
