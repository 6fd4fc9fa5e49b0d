//! Exports of a tenant's log for SIEMs and auditors: NDJSON (the evidence format: every line
//! carries the exact entry bytes, checkable against the log), CSV (a fixed set of columns for
//! spreadsheets) and OCSF 1.5.0 (for SIEMs). `sealtrail export` and `GET /v1/export` both
//! drive this module: they read the log in pages ([`read_page`]) and write each page as it
//! comes ([`Encoder::page`]), so an export of any size holds one page in memory.
//!
//! ## Decisions
//!
//! - **From the log, not the index.** An export reads the log itself, in seq order, in pages
//!   of [`PAGE_ENTRIES`], and checks the filters of `GET /v1/events` on each entry
//!   ([`Filter`]). Every entry committed when the export starts is in it, whether or not the
//!   index has caught up; the command line exports a store no server runs on (the index is the
//!   server's); and a filtered export costs one sequential read of the log, which is what a
//!   bulk export is, instead of millions of index probes. The filters mean what they mean for
//!   `GET /v1/events` (the same fields, `from`/`to` on the event time, `target_type` and
//!   `target_id` on the same target); `q` matches whole words case-insensitively as the index
//!   does, without its folding of diacritics.
//! - **A window fixed at the start.** An export covers the seqs from its cursor (or the
//!   start of the log, or the prune mark when retention pruned the start) up to the log's size
//!   when it started ([`window`]): entries appended meanwhile belong to the next export.
//! - **Resumable by seq.** Every line (or CSV row) carries its seq (`seq`, `metadata.sequence`
//!   in OCSF), and a cursor is "after seq N": the cursors of `GET /v1/events` (ascending) are
//!   accepted, so are plain seqs (`after_seq` on HTTP). An export that stopped is resumed after
//!   the last seq it wrote, with nothing repeated or skipped.
//! - **Entries that cannot be read stop the export** with an error naming the seq
//!   ([`ExportError::Corrupt`]): an export never skips an event silently.

pub mod csv;
pub mod filter;
pub mod ndjson;
pub mod ocsf;
pub mod stream;

use sealtrail_core::canonical::event_hash;
use sealtrail_store::{Store, StoreError};
use serde_json::Value;

pub use self::filter::Filter;
use crate::readers::ReadFailure;

/// Entries read (and so held) at once.
pub const PAGE_ENTRIES: usize = 2_000;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Ocsf,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Ndjson, Format::Csv, Format::Ocsf];

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Ocsf => "ocsf",
        }
    }

    /// The media type of the HTTP response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson | Format::Ocsf => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8; header=present",
        }
    }

    /// The seq a complete line (or CSV row) of this format carries; `None` for a header or
    /// anything this format does not write.
    pub fn seq_of_line(self, line: &str) -> Option<u64> {
        match self {
            Format::Csv => line.split(',').next()?.trim().parse().ok(),
            Format::Ndjson => serde_json::from_str::<Value>(line).ok()?["seq"].as_u64(),
            Format::Ocsf => {
                serde_json::from_str::<Value>(line).ok()?["metadata"]["sequence"].as_u64()
            }
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored entry cannot be read or is not the JSON sealtrail wrote.
    #[error("entry {seq} cannot be exported: {message}; run `sealtrail verify` on this log")]
    Corrupt { seq: u64, message: String },
    /// The reader pool failed.
    #[error("{0}")]
    Pool(String),
}

impl ReadFailure for ExportError {
    fn pool_failure(message: String) -> Self {
        ExportError::Pool(message)
    }

    fn may_break_connection(&self) -> bool {
        !matches!(self, ExportError::Corrupt { .. })
    }
}

/// The seqs an export covers: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    /// How many entries it covers (before filtering).
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The window of an export of `tenant`'s log after seq `after` (from the start when `None`),
/// up to the log's size now; the start is moved up to the prune mark, below which retention
/// removed the entries (they are in the archive).
pub fn window(log: &dyn Store, tenant: &str, after: Option<u64>) -> Result<Window, ExportError> {
    let size = log.size(tenant)?;
    let pruned = log.prune_mark(tenant)?.map_or(0, |mark| mark.below);
    let start = after.map_or(0, |seq| seq.saturating_add(1)).max(pruned);
    Ok(Window {
        start,
        end: size.max(start),
    })
}

/// Up to `limit` entries of `tenant`'s log from seq `from` on, below `end`, in seq order.
pub fn read_page(
    log: &dyn Store,
    tenant: &str,
    from: u64,
    end: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, ExportError> {
    log.entries(tenant, from, end, limit)?
        .into_iter()
        .map(|(seq, row)| match row {
            Ok(bytes) => Ok((seq, bytes)),
            Err(bad) => Err(ExportError::Corrupt {
                seq,
                message: format!("the store holds no entry bytes ({bad:?})"),
            }),
        })
        .collect()
}

/// Writes pages of entries in one format, keeping those the filter matches.
pub struct Encoder {
    tenant: String,
    format: Format,
    filter: Filter,
    rows: csv::Rows,
}

impl Encoder {
    pub fn new(tenant: &str, format: Format, filter: Filter) -> Encoder {
        Encoder {
            tenant: tenant.to_string(),
            format,
            filter,
            rows: csv::Rows::default(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// What comes before the first event: the CSV header row; nothing in the other formats.
    pub fn header(&mut self, out: &mut Vec<u8>) -> Result<(), ExportError> {
        if self.format == Format::Csv {
            self.rows.header().map_err(|e| encode_failed(0, &e))?;
            self.rows
                .drain_into(out)
                .map_err(|e| encode_failed(0, &e))?;
        }
        Ok(())
    }

    /// Appends the events of `entries` that match to `out`; returns how many.
    pub fn page(
        &mut self,
        entries: &[(u64, Vec<u8>)],
        out: &mut Vec<u8>,
    ) -> Result<u64, ExportError> {
        let parse = self.format != Format::Ndjson || !self.filter.is_empty();
        let mut written = 0;
        for (seq, bytes) in entries {
            let seq = *seq;
            let text = std::str::from_utf8(bytes).map_err(|e| ExportError::Corrupt {
                seq,
                message: format!("the entry is not UTF-8: {e}"),
            })?;
            let event = if parse {
                let value: Value =
                    serde_json::from_str(text).map_err(|e| ExportError::Corrupt {
                        seq,
                        message: format!("the entry is not JSON: {e}"),
                    })?;
                if !self.filter.matches(&value) {
                    continue;
                }
                Some(value)
            } else {
                None
            };
            let hash = event_hash(bytes).to_hex();
            match (self.format, &event) {
                (Format::Ndjson, _) => ndjson::write_line(out, &self.tenant, seq, &hash, text)
                    .map_err(|e| encode_failed(seq, &e))?,
                (Format::Csv, Some(event)) => self
                    .rows
                    .row(seq, &hash, event)
                    .map_err(|e| encode_failed(seq, &e))?,
                (Format::Ocsf, Some(event)) => {
                    serde_json::to_writer(&mut *out, &ocsf::event(&self.tenant, seq, &hash, event))
                        .map_err(|e| encode_failed(seq, &e))?;
                    out.push(b'\n');
                }
                (_, None) => unreachable!("entries are parsed for CSV and OCSF"),
            }
            written += 1;
        }
        if self.format == Format::Csv {
            self.rows
                .drain_into(out)
                .map_err(|e| encode_failed(0, &e))?;
        }
        Ok(written)
    }
}

fn encode_failed(seq: u64, error: &dyn std::fmt::Display) -> ExportError {
    ExportError::Corrupt {
        seq,
        message: format!("cannot be written: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_their_names_and_lines_give_their_seq() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.as_str()), Some(format));
        }
        assert_eq!(Format::from_name("json"), None);
        assert_eq!(Format::Csv.seq_of_line("12,abc,x"), Some(12));
        assert_eq!(Format::Csv.seq_of_line("seq,id"), None);
        assert_eq!(
            Format::Ndjson.seq_of_line(r#"{"tenant":"a","seq":3,"entry":"{}","event":{}}"#),
            Some(3)
        );
        assert_eq!(
            Format::Ocsf.seq_of_line(r#"{"metadata":{"sequence":9}}"#),
            Some(9)
        );
        assert_eq!(Format::Ocsf.seq_of_line(r#"{"metadata":{"seq"#), None);
    }
}
