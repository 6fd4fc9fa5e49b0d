//! Scans of a log (`Store::for_each_entry`, what the verifier reads), which read every entry
//! of a range in seq order.
//!
//! **Runs, not pages.** A scan reads runs of [`RUN`] seqs, each a bounded range without
//! `ORDER BY`, and sorts each run in memory. Paging with `LIMIT` after the last seq read lets a
//! planner misled by the statistics of a table that grew a moment ago (a log just restored, the
//! benchmark's) sort the whole rest of the log for every page: 1.4 s per 10,000 entries of a
//! 2 M-entry log. A run with missing rows yields fewer, and the scan goes on up to the log's
//! largest seq, so every row there is is read.
//!
//! **Pages for followers** (`Store::entries`: the first `limit` entries from a seq on) are read
//! the same way, for the same reason — a follower starting from seq 0 on such a table would
//! otherwise sort the rest of the log for every batch: first as one run of `limit` seqs, which
//! is the whole page when none of them is missing, and only when the run comes back short (the
//! end of the log, or missing rows) the rest after it with `ORDER BY … LIMIT`, which then
//! covers little or nothing.
//!
//! **Read ahead.** Inside a read snapshot ([`Store::begin_read`]), a scan of more than one run
//! reads on a second connection, on a thread of its own, in the same snapshot
//! (`pg_export_snapshot`, as `pg_dump` does for its workers), one run ahead of the caller: the
//! database produces the next run while the caller checks this one. If the second connection
//! cannot be had or fails, the scan goes on from where it was on the store's own connection;
//! on a standby, which cannot export its snapshot, it reads there from the start.

use std::sync::mpsc;

use postgres::Row;

use super::{PgStore, Tx, classify, connect, entry_value, to_i64};
use crate::{EntryRef, EntryRow, Result, Store as _};

/// One run of a scan: a bounded range of seqs, put in order by the reader.
const SELECT_ENTRY_RUN: &str =
    "SELECT seq, entry FROM entries WHERE tenant = $1 AND seq >= $2 AND seq < $3";
/// The rest of a page after a short run, in order.
const SELECT_ENTRIES_AFTER: &str = "SELECT seq, entry FROM entries WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq LIMIT $4";
/// Seqs per run: about 10 MiB of entries at a time.
const RUN: u64 = 10_000;

/// A run as read, sorted by seq.
type Run = Vec<(u64, EntryRow)>;

impl PgStore {
    /// The first `limit` entries with `from <= seq < to`, in seq order.
    pub(super) fn page(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EntryRow)>> {
        if limit == 0 || from >= to {
            return Ok(Vec::new());
        }
        let stop = to.min(from.saturating_add(limit as u64));
        let mut page = self.query_map(
            SELECT_ENTRY_RUN,
            &[&tenant, &to_i64(from), &to_i64(stop)],
            row_of,
        )?;
        page.sort_unstable_by_key(|(seq, _)| *seq);
        if page.len() < limit && stop < to {
            let wanted = to_i64((limit - page.len()) as u64);
            let rest = self.query_map(
                SELECT_ENTRIES_AFTER,
                &[&tenant, &to_i64(stop), &to_i64(to), &wanted],
                row_of,
            )?;
            page.extend(rest);
        }
        Ok(page)
    }

    /// Hands every entry with `from <= seq < to` to `each`, in seq order.
    pub(super) fn scan(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        each: &mut dyn FnMut(u64, EntryRef<'_>),
    ) -> Result<()> {
        let end = to.min(self.size(tenant)?);
        let mut next = from;
        if end.saturating_sub(from) > RUN && self.tx.get() == Tx::Read {
            match self.scan_ahead(tenant, end, each, &mut next) {
                Ok(true) => return Ok(()),
                // A standby cannot share its snapshot: everything is read here.
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    database = %self.location,
                    %error,
                    "cannot read ahead on a second connection; reading on this one from seq {next}"
                ),
            }
        }
        while next < end {
            let stop = end.min(next.saturating_add(RUN));
            let run = self.query_map(
                SELECT_ENTRY_RUN,
                &[&tenant, &to_i64(next), &to_i64(stop)],
                row_of,
            )?;
            emit(run, each);
            next = stop;
        }
        Ok(())
    }

    /// The scan from `*next` to `end`, read by a second connection in this transaction's
    /// snapshot, one run ahead; `false`, with nothing read, on a standby, which cannot export
    /// its snapshot (asked first, so that the failure does not abort this transaction).
    /// `*next` follows what was handed to `each`, so that a failure leaves it where the caller
    /// can go on.
    fn scan_ahead(
        &self,
        tenant: &str,
        end: u64,
        each: &mut dyn FnMut(u64, EntryRef<'_>),
        next: &mut u64,
    ) -> Result<bool> {
        let shared: Option<String> = self
            .query_opt(
                "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_export_snapshot() END",
                &[],
                |row| row.try_get(0),
            )?
            .flatten();
        let Some(snapshot) = shared else {
            return Ok(false);
        };
        let config = self.config.clone();
        let location = self.location.as_str();
        let from = *next;
        std::thread::scope(|scope| {
            let (send, runs) = mpsc::sync_channel::<Result<(u64, Run)>>(1);
            let reader = std::thread::Builder::new()
                .name("sealtrail-scan".into())
                .spawn_scoped(scope, move || {
                    let read = || -> Result<()> {
                        let mut client = connect(&config, location)?;
                        client
                            .batch_execute(&format!(
                                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                                 SET TRANSACTION SNAPSHOT '{snapshot}'"
                            ))
                            .map_err(|e| classify(&e))?;
                        let statement =
                            client.prepare(SELECT_ENTRY_RUN).map_err(|e| classify(&e))?;
                        let mut start = from;
                        while start < end {
                            let stop = end.min(start.saturating_add(RUN));
                            let run = client
                                .query(&statement, &[&tenant, &to_i64(start), &to_i64(stop)])
                                .and_then(|rows| rows.iter().map(row_of).collect())
                                .map_err(|e| classify(&e))?;
                            if send.send(Ok((stop, run))).is_err() {
                                // The caller stopped reading.
                                return Ok(());
                            }
                            start = stop;
                        }
                        Ok(())
                    };
                    if let Err(error) = read() {
                        let _ = send.send(Err(error));
                    }
                });
            if let Err(error) = reader {
                return Err(crate::StoreError::Unavailable(format!(
                    "cannot start a thread to read ahead: {error}"
                )));
            }
            for run in runs {
                let (stop, run) = run?;
                emit(run, each);
                *next = stop;
            }
            Ok(true)
        })
    }
}

fn row_of(row: &Row) -> std::result::Result<(u64, EntryRow), postgres::Error> {
    Ok((
        row.try_get::<_, i64>(0)? as u64,
        entry_value(row.try_get(1)?),
    ))
}

/// Hands a run's rows to `each` in seq order.
fn emit(mut run: Run, each: &mut dyn FnMut(u64, EntryRef<'_>)) {
    run.sort_unstable_by_key(|(seq, _)| *seq);
    for (seq, entry) in &run {
        each(*seq, entry.as_deref());
    }
}
