//! Indexing batch by batch on top of a large index ([`Workload::IndexIncremental`]).
//!
//! What the query index costs per event while a big log keeps growing — the steady state of a
//! service with a long history — rather than on an empty index, where every ingest workload
//! starts. A fresh index in a scratch directory is first brought up to all but about the last
//! [`TAIL_EVENTS`] entries of the large log (at most a fifth of it) the way serve catches up:
//! by bulk loads, on a log of at least [`BULK_FROM`] entries; then the tail is indexed as serve's index follower does when
//! it keeps up, in batches of [`BATCH_ENTRIES`] entries, one transaction each, with bulk loads
//! turned off. Only the tail is timed: the figure is the wall time per entry of
//! [`IndexDb::apply`] on one thread (reading the log is left out), reported per slice of the
//! tail so that a cost growing with the index shows.

use sealtrail_server::index::BATCH_ENTRIES;
use sealtrail_store::index::{BulkPolicy, IndexDb, IndexLayout};

use super::*;

/// Entries indexed batch by batch at the end of the log (at most a fifth of the log).
pub const TAIL_EVENTS: u64 = 200_000;
/// Logs at least this big are brought near their end by bulk loads (smaller ones batch by
/// batch, untimed).
const BULK_FROM: u64 = 500_000;
/// Entries a bulk load reads per transaction here (the service reads 200,000).
const LOAD_TRANSACTION: usize = 50_000;
/// Slices of the tail whose cost is reported separately.
const SLICES: u64 = 4;

/// The figures of one run: the whole tail, and each slice of it.
pub struct Incremental {
    /// Entries in the index when the timed tail began.
    pub base: u64,
    pub tail: u64,
    pub seconds: f64,
    pub slice_micros: Vec<f64>,
    /// How long the untimed bulk part took.
    pub load_seconds: f64,
}

/// Indexes the large log in `data_dir` into a scratch index, timing its last entries.
pub fn index_incrementally(data_dir: &Path) -> Result<Incremental> {
    let log = Location::new(data_dir, None)
        .open_reader()
        .with_context(|| format!("cannot read the store in {}", data_dir.display()))?;
    let size = log.size(TENANT)?;
    ensure!(size > 0, "the large log has no entries");
    let scratch = ScratchDir::new("index-incremental")?;
    let mut index = IndexDb::open(
        &scratch.path().join("index.db"),
        IndexLayout::PRODUCTION,
        log.as_ref(),
    )?;
    let wanted = TAIL_EVENTS.min(size / 5).max(1);
    let untimed = size - wanted;
    // Batch by batch, as a follower that keeps up: no bulk load however far behind (no entry
    // is ever 2^60 seqs ahead).
    let batch_by_batch = BulkPolicy {
        behind: 1 << 60,
        ..BulkPolicy::PRODUCTION
    };
    // A big log is brought near its end by bulk loads, as serve catches up. A load reads on
    // from the log by itself, a transaction at a time, and ends after the transaction that
    // leaves fewer than `behind` entries after it: so the untimed part ends between `wanted`
    // and `wanted - LOAD_TRANSACTION` entries before the log's end. A small log is indexed
    // batch by batch throughout (up to `untimed`, then timed).
    let bulk = size >= BULK_FROM;
    index.set_bulk_policy(if bulk {
        BulkPolicy {
            behind: wanted,
            per_transaction: LOAD_TRANSACTION,
            ..BulkPolicy::PRODUCTION
        }
    } else {
        batch_by_batch
    });
    let loading = Instant::now();
    loop {
        let mark = index.mark(TENANT);
        let cursor = mark.map_or(0, |m| m.cursor);
        let in_load = mark.is_some_and(|m| m.loading());
        if cursor >= untimed && !in_load {
            break;
        }
        let to = if in_load || bulk { size } else { untimed };
        let batch = log.entries(TENANT, cursor, to, BATCH_ENTRIES)?;
        ensure!(
            !batch.is_empty(),
            "the log ends before its size at {cursor}"
        );
        index.apply(TENANT, &batch, log.as_ref())?;
    }
    index.set_bulk_policy(batch_by_batch);
    if bulk {
        // The first batch after a load also restarts the WAL the load filled: paid once,
        // untimed.
        let cursor = index.mark(TENANT).map_or(0, |m| m.cursor);
        let first = log.entries(TENANT, cursor, size, BATCH_ENTRIES)?;
        index.apply(TENANT, &first, log.as_ref())?;
    }
    let load_seconds = loading.elapsed().as_secs_f64();
    let base = index.mark(TENANT).map_or(0, |m| m.next_seq);
    let tail = size - base;
    ensure!(tail > 0, "nothing is left to index batch by batch");
    let apply = |index: &mut IndexDb, from: u64, to: u64| -> Result<f64> {
        let mut timed = 0.0;
        let mut next = from;
        while next < to {
            let batch = log.entries(TENANT, next, to, BATCH_ENTRIES)?;
            let last = batch
                .last()
                .map(|(seq, _)| *seq)
                .context("a gap in the log")?;
            let started = Instant::now();
            index.apply(TENANT, &batch, log.as_ref())?;
            timed += started.elapsed().as_secs_f64();
            next = last + 1;
        }
        Ok(timed)
    };
    let slice = tail.div_ceil(SLICES);
    let mut seconds = 0.0;
    let mut slice_micros = Vec::new();
    let mut from = base;
    while from < size {
        let to = (from + slice).min(size);
        let took = apply(&mut index, from, to)?;
        seconds += took;
        slice_micros.push(took * 1e6 / (to - from) as f64);
        from = to;
    }
    let mark = index.mark(TENANT).context("the tenant was not indexed")?;
    ensure!(
        mark.next_seq == size && !mark.loading(),
        "the index covers {} of {size} entries after the tail (loading: {})",
        mark.next_seq,
        mark.loading()
    );
    Ok(Incremental {
        base,
        tail,
        seconds,
        slice_micros,
        load_seconds,
    })
}

/// The figure: entries of the tail per second of [`IndexDb::apply`].
pub fn incremental_figure(run: &Incremental) -> Figure {
    let mut figure = Figure::new(
        Workload::IndexIncremental,
        StoreKind::Embedded,
        run.tail as f64 / run.seconds,
        Unit::EventsPerSecond,
    );
    let slices: Vec<String> = run
        .slice_micros
        .iter()
        .map(|micros| format!("{micros:.1}"))
        .collect();
    figure.note = format!(
        "the last {} entries indexed batch by batch ({} per transaction, bulk loads off) into an index already holding {} (brought there in {:.1} s, untimed): {:.1} µs per entry on one thread, by quarter of the tail {} µs; {}",
        thousands(run.tail as f64),
        thousands(BATCH_ENTRIES as f64),
        thousands(run.base as f64),
        run.load_seconds,
        run.seconds * 1e6 / run.tail as f64,
        slices.join(" / "),
        EMBEDDED_ONLY,
    );
    figure
}
