//! The query index in the service: a [`Follower`] of the committed log that writes each
//! tenant's new entries into the index database, and [`Index`], the read side request
//! handlers search through.
//!
//! The database itself — `DIR/index.db`, its schema, rebuilding it when it does not match the
//! log, rows and keys, and how searches are planned — is [`sealtrail_store::index`]; its
//! module docs explain the decisions. This module decides only *when* entries are indexed:
//!
//! - One follower thread ([`crate::follower`]) reads each tenant's next entries, at most
//!   [`BATCH_ENTRIES`] (10,000) per tenant per round, and writes their rows together with the
//!   tenant's watermark in one transaction ([`IndexDb::apply`]). Large transactions amortise
//!   the commit, and the per-tenant cap keeps one busy tenant from starving the others.
//! - It polls every [`POLL_INTERVAL`] (50 ms) while idle and runs back to back while there is
//!   a backlog. When a round finds only a trickle of entries (single events arriving), the
//!   next starts once half a batch (5,000 entries) has been committed since the round began,
//!   by the writer's count ([`crate::ledger::Ledger::appended`]), or [`ROUND_PACE`] (1 s) after
//!   it, whichever comes first — at once if a reader is waiting for its own write. Each index
//!   page a round rewrites is then written once for thousands of entries rather than for the
//!   few of a 200 ms slice, and no pause lets more pile up than one round takes.
//! - The watermark of a tenant is the number of its entries indexed: every entry with
//!   `seq < watermark` is searchable. Readers see it through [`Index::watermark`] and can wait
//!   for it with [`Index::wait_for`], which is how a client reads its own writes
//!   (`wait_for_seq`). How far indexing trails the log is the `index_lag_seconds` metric.
//! - On start, indexing resumes from the watermarks stored in the index (or from seq 0 when
//!   the index was rebuilt), so a restart indexes only what is new.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealtrail_store::index::IndexDb;
use sealtrail_store::{DataDir, EntryRow, Location, Store};

use crate::clock::Clock;
use crate::follower::{Appended, Follow, Follower, FollowerError, FollowerOptions, Watermarks};
use crate::recent::RecentEntries;

pub use sealtrail_store::index::{
    IndexError, IndexLayout, IndexReader, MAX_INDEXED_SEQ, Order, SCHEMA_VERSION, Search,
    push_text, search, text_query,
};

/// Entries per tenant read, parsed and written in one index transaction.
pub const BATCH_ENTRIES: usize = 10_000;

/// How often an idle indexer looks for new entries.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A round that finds only a few entries starts at most this often, unless half a batch has
/// gathered before.
pub const ROUND_PACE: Duration = Duration::from_secs(1);

/// The tenant numbers (key prefixes) of the index, shared by the follower, which assigns
/// them, and the readers, whose searches need them. A tenant's number never changes once
/// assigned, and it is published before the tenant's first watermark.
type Numbers = Arc<Mutex<HashMap<String, i64>>>;

/// The query index as a follower of the log: it owns the index database for writing.
struct IndexFollower {
    db: IndexDb,
    numbers: Numbers,
}

impl Follow for IndexFollower {
    type Error = IndexError;

    fn name(&self) -> &str {
        "indexer"
    }

    fn cursors(&self) -> HashMap<String, u64> {
        self.db
            .marks()
            .iter()
            .map(|(tenant, mark)| (tenant.clone(), mark.cursor))
            .collect()
    }

    /// Entries below the mark are searchable; those loaded in bulk beyond it are not yet.
    fn visible(&self, tenant: &str, cursor: u64) -> u64 {
        self.db
            .mark(tenant)
            .map_or(0, |mark| mark.next_seq.min(cursor))
    }

    fn apply(
        &mut self,
        log: &dyn Store,
        tenant: &str,
        entries: &[(u64, EntryRow)],
    ) -> Result<u64, IndexError> {
        let Some(mark) = self.db.apply(tenant, entries, log)? else {
            return Ok(0);
        };
        self.numbers
            .lock()
            .expect("index numbers lock")
            .insert(tenant.to_string(), mark.number);
        Ok(mark.cursor)
    }

    fn report_lag(&self, seconds: f64) {
        crate::metrics::set_index_lag(seconds);
    }
}

/// The read side of the index: watermarks, waiting for them, and pooled read connections.
/// Cloning is cheap.
#[derive(Clone)]
pub struct Index {
    watermarks: Watermarks,
    numbers: Numbers,
    readers: sealtrail_store::index::IndexReaders,
}

/// The running indexer; [`Indexer::stop`] ends it.
pub struct Indexer {
    follower: Follower,
    index: Index,
}

impl Indexer {
    /// Opens `DIR/index.db` (rebuilding it if it is missing, of another schema version or
    /// does not match the log) and starts following the log. The log must exist.
    /// Without `appended`, a round after a trickle of entries starts [`ROUND_PACE`] after the
    /// last; with the writer's count ([`crate::ledger::Ledger::appended`]) it starts as soon as
    /// half a batch has been committed, if that comes first. With the writer's latest entries
    /// (`recent`, [`crate::ledger::Ledger::recent`]), batches that start within them are
    /// taken from memory.
    pub fn start(
        data_dir: &Path,
        log: &Location,
        appended: Option<Appended>,
        recent: Option<RecentEntries>,
    ) -> Result<Indexer, FollowerError> {
        Indexer::start_in(data_dir, log, IndexLayout::default(), appended, recent)
    }

    /// [`Indexer::start`] with an index in `layout` rather than the service's.
    pub fn start_in(
        data_dir: &Path,
        log: &Location,
        layout: IndexLayout,
        appended: Option<Appended>,
        recent: Option<RecentEntries>,
    ) -> Result<Indexer, FollowerError> {
        let log = log.open_reader()?;
        let db = IndexDb::open(&DataDir::new(data_dir).index(), layout, log.as_ref())
            .map_err(|e| FollowerError::State(Box::new(e)))?;
        let numbers: Numbers = Arc::new(Mutex::new(
            db.marks()
                .iter()
                .map(|(tenant, mark)| (tenant.clone(), mark.number))
                .collect(),
        ));
        let readers = db.readers();
        let options = FollowerOptions {
            batch: BATCH_ENTRIES,
            poll_interval: POLL_INTERVAL,
            round_pace: ROUND_PACE,
            appended,
            recent,
            clock: Clock::system(),
        };
        let follower = Follower::start(
            IndexFollower {
                db,
                numbers: numbers.clone(),
            },
            log,
            options,
        )?;
        let index = Index {
            watermarks: follower.watermarks(),
            numbers,
            readers,
        };
        Ok(Indexer { follower, index })
    }

    /// The read side, for request handlers.
    pub fn index(&self) -> Index {
        self.index.clone()
    }

    /// Stops indexing after the current batch and waits for it. What is not indexed yet is
    /// indexed on the next start.
    pub fn stop(self) {
        self.follower.stop();
    }
}

impl Index {
    /// How many of the tenant's entries are indexed: every `seq` below this is searchable.
    pub fn watermark(&self, tenant: &str) -> u64 {
        self.watermarks.watermark(tenant)
    }

    /// The tenant's key prefix, if anything of it has been indexed.
    pub fn tenant_number(&self, tenant: &str) -> Option<i64> {
        self.numbers
            .lock()
            .expect("index numbers lock")
            .get(tenant)
            .copied()
    }

    /// Waits until the entry at `seq` is indexed, at most `timeout`. On timeout, returns the
    /// watermark reached.
    pub async fn wait_for(&self, tenant: &str, seq: u64, timeout: Duration) -> Result<(), u64> {
        self.watermarks.wait_for(tenant, seq, timeout).await
    }

    /// How many readers are waiting in [`Index::wait_for`] right now (`wait_for_seq`).
    pub fn waiting(&self) -> usize {
        self.watermarks.waiting()
    }

    /// A read connection from the pool (opened if the pool is empty). Blocking: call it from
    /// the blocking pool.
    pub fn reader(&self) -> Result<IndexReader, IndexError> {
        self.readers.reader()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Submission;
    use sealtrail_core::event::Event;

    const EVENTS: u64 = 400;

    fn event(n: u64) -> Submission {
        let mut event = serde_json::json!({
            "action": (["a.read", "a.write", "a.login"][(n % 3) as usize]),
            "outcome": "success",
            "actor": {"id": format!("u-{}", n % 5)},
        });
        if n.is_multiple_of(4) {
            event["details"] = serde_json::json!({"note": format!("bravo {}", n % 10)});
        }
        Submission {
            event: Event::from_owned_value(event).unwrap(),
            idempotency_key: None,
        }
    }

    fn seqs(index: &Index, search: &Search) -> Vec<u64> {
        let number = index.tenant_number("acme").unwrap();
        index.reader().unwrap().search(number, search).unwrap()
    }

    /// The indexer follows a log written by the ledger: every entry becomes searchable, in
    /// the service's layout, and a restart resumes from the stored watermark.
    #[tokio::test]
    async fn the_indexer_follows_the_ledger_and_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        ledger
            .append("acme", (0..EVENTS).map(event).collect())
            .await
            .unwrap();
        let location = Location::new(dir.path(), None);
        let indexer = Indexer::start(dir.path(), &location, None, None).unwrap();
        let index = indexer.index();
        index
            .wait_for("acme", EVENTS - 1, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(index.watermark("acme"), EVENTS);
        assert_eq!(
            seqs(&index, &Search::unfiltered(10_000)),
            (0..EVENTS).collect::<Vec<u64>>()
        );
        let bravo = Search {
            text: text_query("bravo"),
            ..Search::unfiltered(10_000)
        };
        assert_eq!(
            seqs(&index, &bravo),
            (0..EVENTS)
                .filter(|n| n.is_multiple_of(4))
                .collect::<Vec<u64>>()
        );
        // Waiting for an entry that does not exist yet times out at the watermark.
        assert_eq!(
            index
                .wait_for("acme", EVENTS, Duration::from_millis(50))
                .await,
            Err(EVENTS)
        );
        indexer.stop();

        ledger
            .append("acme", (EVENTS..EVENTS + 10).map(event).collect())
            .await
            .unwrap();
        let indexer = Indexer::start(dir.path(), &location, None, None).unwrap();
        let index = indexer.index();
        // The stored watermark is where indexing resumes, published before the first round.
        assert!(index.watermark("acme") >= EVENTS);
        index
            .wait_for("acme", EVENTS + 9, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            seqs(&index, &Search::unfiltered(10_000)),
            (0..EVENTS + 10).collect::<Vec<u64>>()
        );
        indexer.stop();
        ledger.shutdown();

        // The watermark is stored with the rows: reopened, the index stands where it stopped.
        let log = location.open_reader().unwrap();
        let db = IndexDb::open(
            &DataDir::new(dir.path()).index(),
            IndexLayout::default(),
            log.as_ref(),
        )
        .unwrap();
        assert_eq!(db.mark("acme").map(|m| m.next_seq), Some(EVENTS + 10));
    }
}
