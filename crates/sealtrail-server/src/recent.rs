//! The entries this process's writer committed last, kept in memory for the log's followers.
//!
//! Every follower (the query index, the gap detector, the monitor, webhook deliveries) reads
//! each tenant's new entries in seq order. Read from the log, every follower pays for the same
//! rows again: its own read transaction, its own copy of the pages from the file (the newest
//! entries are in the write-ahead log, read with one system call per page) and its own copy of
//! each row. Under batched ingest that was a tenth of the server's CPU. The writer already
//! holds those bytes when it commits them, so after each successful commit it hands them to
//! [`RecentEntries`], and a follower whose cursor falls within what is held takes its batch
//! from there instead.
//!
//! What a follower is given is the same either way: the bytes of the committed entries, in seq
//! order, from its cursor on. That holds because of three rules:
//!
//! - **Only committed entries.** The writer publishes a group's entries after its commit has
//!   returned and never after a failed one, so nothing held was rolled back. A follower that
//!   reads a batch from here reads what any reader of the log would read.
//! - **Contiguous per tenant.** A tenant's entries are held as one run of seqs. When the writer
//!   publishes entries that do not follow on from the run (another instance on the same
//!   PostgreSQL database appended in between, or an append reached the log another way), the
//!   run starts again at the new entries. A follower is answered from here only when its
//!   cursor lies inside the run, so it is never given a batch with a hole in it.
//! - **Bounded.** At most [`RecentEntries::capacity`] bytes are held across every tenant; the
//!   entries published longest ago are let go first. A follower that falls further behind than
//!   that reads from the log, as it always could, until it catches up with what is held.
//!
//! The log stays the source of truth: a follower started after a restart, a follower that is
//! behind, and a follower of a log another process writes read it from the log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use sealtrail_store::EntryRow;

/// How many bytes of entries are held by default across every tenant: about 60,000 entries
/// of under 1 KiB (each is held in the 1 KiB the writer built it in), six rounds of a
/// follower (10,000 entries per tenant each), or a second of batched ingest at 60,000
/// events/s. With half of it, the gap detector, whose rounds are the least frequent, read a
/// sixth of its entries from the log under batched ingest; with this, nearly none.
pub const DEFAULT_CAPACITY: usize = 64 * 1024 * 1024;

/// What holding an entry costs besides its allocation (its vector's header, the allocator's
/// own bookkeeping).
const ENTRY_OVERHEAD: usize = 32;

/// The committed entries of the writer's latest groups, per tenant. Cloning is cheap; every
/// clone holds the same entries.
#[derive(Clone)]
pub struct RecentEntries {
    inner: Arc<Mutex<Held>>,
    capacity: usize,
}

/// One publication: a tenant's entries from `first` on, as one commit wrote them.
struct Chunk {
    /// Order of publication, across tenants: the smallest is let go first.
    stamp: u64,
    first: u64,
    entries: Vec<Vec<u8>>,
    bytes: usize,
}

impl Chunk {
    /// One past the last seq of the chunk.
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }
}

#[derive(Default)]
struct Held {
    /// Each tenant's run of chunks, contiguous in seq order.
    runs: HashMap<String, VecDeque<Arc<Chunk>>>,
    /// The stamp of each run's first chunk, with its tenant: which to let go next.
    oldest: BTreeMap<u64, String>,
    /// Bytes held, counted as [`Chunk::bytes`].
    bytes: usize,
    next_stamp: u64,
}

impl Held {
    /// Lets go of a tenant's whole run.
    fn drop_run(&mut self, tenant: &str) {
        if let Some(run) = self.runs.remove(tenant) {
            if let Some(front) = run.front() {
                self.oldest.remove(&front.stamp);
            }
            self.bytes -= run.iter().map(|chunk| chunk.bytes).sum::<usize>();
        }
    }

    /// Lets go of the chunk published longest ago.
    fn drop_oldest(&mut self) {
        let Some((_, tenant)) = self.oldest.pop_first() else {
            return;
        };
        let run = self
            .runs
            .get_mut(&tenant)
            .expect("a run for every oldest entry");
        let chunk = run.pop_front().expect("a run is never empty");
        self.bytes -= chunk.bytes;
        match run.front() {
            Some(next) => {
                self.oldest.insert(next.stamp, tenant);
            }
            None => {
                self.runs.remove(&tenant);
            }
        }
    }
}

impl std::fmt::Debug for RecentEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentEntries")
            .field("capacity", &self.capacity)
            .field("held_bytes", &self.held_bytes())
            .finish()
    }
}

impl RecentEntries {
    /// Holds at most `capacity` bytes of entries.
    pub fn new(capacity: usize) -> RecentEntries {
        RecentEntries {
            inner: Arc::new(Mutex::new(Held::default())),
            capacity,
        }
    }

    /// The most bytes of entries held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held now (entries and their overhead).
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Nothing held is half-updated by a panic elsewhere: every change is made under the
        // lock by code that does not panic while holding it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a commit: the tenant's entries `first, first + 1, …` exactly as committed, in seq
    /// order. Entries that do not follow on from what is held for the tenant start its run
    /// again; a publication larger than the capacity is not held at all (nor what was held
    /// for the tenant before it, which it would not follow on from).
    pub fn publish(&self, tenant: &str, first: u64, entries: Vec<Vec<u8>>) {
        if entries.is_empty() {
            return;
        }
        // Counted as allocated, not as long: an entry is built in a buffer larger than itself.
        let bytes = entries
            .iter()
            .map(|entry| entry.capacity() + ENTRY_OVERHEAD)
            .sum();
        let mut held = self.lock();
        let follows_on = held
            .runs
            .get(tenant)
            .and_then(|run| run.back())
            .is_some_and(|last| last.end() == first);
        if !follows_on || bytes > self.capacity {
            held.drop_run(tenant);
        }
        if bytes > self.capacity {
            return;
        }
        let stamp = held.next_stamp;
        held.next_stamp += 1;
        let run = held.runs.entry(tenant.to_string()).or_default();
        let starts_run = run.is_empty();
        run.push_back(Arc::new(Chunk {
            stamp,
            first,
            entries,
            bytes,
        }));
        if starts_run {
            held.oldest.insert(stamp, tenant.to_string());
        }
        held.bytes += bytes;
        while held.bytes > self.capacity {
            held.drop_oldest();
        }
    }

    /// Up to `limit` of the tenant's entries from seq `from` on, when `from` is held; `None`
    /// when it is not (the caller reads the log). What is returned is contiguous from `from`
    /// and may be fewer than the log holds beyond it: the rest comes in the next call.
    pub fn read(&self, tenant: &str, from: u64, limit: usize) -> Option<Vec<(u64, EntryRow)>> {
        if limit == 0 {
            return None;
        }
        // Only the chunks are taken under the lock; the bytes are copied after it, so the
        // writer publishing meanwhile never waits for a copy.
        let chunks: Vec<Arc<Chunk>> = {
            let held = self.lock();
            let run = held.runs.get(tenant)?;
            let (front, back) = (run.front()?, run.back()?);
            if from < front.first || from >= back.end() {
                return None;
            }
            let mut taken = Vec::new();
            let mut count = 0usize;
            for chunk in run.iter().filter(|chunk| chunk.end() > from) {
                count += (chunk.end() - chunk.first.max(from)) as usize;
                taken.push(chunk.clone());
                if count >= limit {
                    break;
                }
            }
            taken
        };
        let mut entries =
            Vec::with_capacity(limit.min(chunks.iter().map(|c| c.entries.len()).sum()));
        for chunk in &chunks {
            let skip = from.saturating_sub(chunk.first) as usize;
            for (offset, entry) in chunk.entries.iter().enumerate().skip(skip) {
                if entries.len() == limit {
                    break;
                }
                entries.push((chunk.first + offset as u64, Ok(entry.clone())));
            }
        }
        Some(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries `first..end` of a tenant, each naming itself, `size` bytes long and allocated.
    fn entries(tenant: &str, first: u64, end: u64, size: usize) -> Vec<Vec<u8>> {
        (first..end)
            .map(|seq| {
                let mut entry = format!("{tenant}:{seq}:").into_bytes();
                entry.resize(size.max(entry.len()), b'.');
                // Exactly as long as allocated, so that the tests can count what is held.
                entry.into_boxed_slice().into_vec()
            })
            .collect()
    }

    #[test]
    fn an_entry_counts_as_what_it_holds_allocated_not_as_long_as_it_is() {
        let recent = RecentEntries::new(1 << 20);
        let mut entry = Vec::with_capacity(1024);
        entry.extend_from_slice(b"{\"seq\":0}");
        let allocated = entry.capacity();
        assert!(allocated >= 1024);
        recent.publish("a", 0, vec![entry]);
        assert_eq!(recent.held_bytes(), allocated + ENTRY_OVERHEAD);
    }

    fn seqs(read: Option<Vec<(u64, EntryRow)>>) -> Option<Vec<u64>> {
        read.map(|rows| rows.into_iter().map(|(seq, _)| seq).collect())
    }

    #[test]
    fn a_follower_inside_the_run_gets_the_entries_from_its_cursor_on_exactly_as_published() {
        let recent = RecentEntries::new(1 << 20);
        recent.publish("clinic", 10, entries("clinic", 10, 15, 40));
        recent.publish("clinic", 15, entries("clinic", 15, 18, 40));
        recent.publish("other", 0, entries("other", 0, 4, 40));

        let rows = recent.read("clinic", 12, 100).unwrap();
        assert_eq!(
            rows.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            vec![12, 13, 14, 15, 16, 17]
        );
        for (seq, row) in &rows {
            assert_eq!(
                row.as_ref().unwrap(),
                &entries("clinic", *seq, seq + 1, 40)[0]
            );
        }
        // At most the limit, across a chunk boundary too.
        assert_eq!(seqs(recent.read("clinic", 13, 3)), Some(vec![13, 14, 15]));
        assert_eq!(seqs(recent.read("other", 0, 2)), Some(vec![0, 1]));
        // Outside the run, or another tenant's: not held, read the log.
        assert_eq!(seqs(recent.read("clinic", 9, 100)), None);
        assert_eq!(seqs(recent.read("clinic", 18, 100)), None);
        assert_eq!(seqs(recent.read("nobody", 0, 100)), None);
        assert_eq!(seqs(recent.read("clinic", 12, 0)), None);
    }

    #[test]
    fn entries_that_do_not_follow_on_start_the_tenants_run_again() {
        let recent = RecentEntries::new(1 << 20);
        recent.publish("clinic", 0, entries("clinic", 0, 5, 40));
        // Seqs 5..8 reached the log some other way (another instance): 8.. does not follow on.
        recent.publish("clinic", 8, entries("clinic", 8, 10, 40));
        assert_eq!(seqs(recent.read("clinic", 2, 100)), None);
        assert_eq!(seqs(recent.read("clinic", 5, 100)), None);
        assert_eq!(seqs(recent.read("clinic", 8, 100)), Some(vec![8, 9]));
        // A publication going back (the writer reloaded its tail) starts it again as well.
        recent.publish("clinic", 9, entries("clinic", 9, 11, 40));
        assert_eq!(seqs(recent.read("clinic", 8, 100)), None);
        assert_eq!(seqs(recent.read("clinic", 9, 100)), Some(vec![9, 10]));
        assert_eq!(recent.held_bytes(), 2 * (40 + ENTRY_OVERHEAD));
    }

    #[test]
    fn the_entries_published_longest_ago_are_let_go_first_and_never_more_than_the_capacity_is_held()
    {
        let per_entry = 100 + ENTRY_OVERHEAD;
        let recent = RecentEntries::new(10 * per_entry);
        recent.publish("a", 0, entries("a", 0, 4, 100));
        recent.publish("b", 0, entries("b", 0, 4, 100));
        recent.publish("a", 4, entries("a", 4, 6, 100));
        assert_eq!(recent.held_bytes(), 10 * per_entry);
        // Two more of b's: a's first chunk (the oldest publication) goes, whole.
        recent.publish("b", 4, entries("b", 4, 6, 100));
        assert_eq!(recent.held_bytes(), 8 * per_entry);
        assert_eq!(seqs(recent.read("a", 0, 100)), None);
        assert_eq!(seqs(recent.read("a", 4, 100)), Some(vec![4, 5]));
        assert_eq!(seqs(recent.read("b", 0, 100)), Some(vec![0, 1, 2, 3, 4, 5]));
        // Then b's first chunk: the held bytes never exceed the capacity.
        recent.publish("b", 6, entries("b", 6, 12, 100));
        assert_eq!(recent.held_bytes(), 10 * per_entry);
        assert_eq!(seqs(recent.read("a", 4, 100)), Some(vec![4, 5]));
        assert_eq!(seqs(recent.read("b", 0, 100)), None);
        assert_eq!(
            seqs(recent.read("b", 4, 100)),
            Some(vec![4, 5, 6, 7, 8, 9, 10, 11])
        );
        // More than the capacity at once is not held, nor what came before it for the tenant;
        // other tenants keep theirs.
        recent.publish("b", 12, entries("b", 12, 30, 100));
        assert_eq!(seqs(recent.read("b", 4, 100)), None);
        assert_eq!(seqs(recent.read("b", 12, 100)), None);
        assert_eq!(seqs(recent.read("a", 4, 100)), Some(vec![4, 5]));
        assert_eq!(recent.held_bytes(), 2 * per_entry);
        // A tenant whose every chunk is let go is not held at all.
        recent.publish("c", 0, entries("c", 0, 10, 100));
        assert_eq!(seqs(recent.read("a", 4, 100)), None);
        assert_eq!(seqs(recent.read("c", 0, 100)).map(|s| s.len()), Some(10));
        assert_eq!(recent.held_bytes(), 10 * per_entry);
    }

    /// What the writer publishes is what it committed, byte for byte and seq for seq: every
    /// entry of `acme` and of `_system` (the tenant's creation), whichever way it was appended.
    #[tokio::test]
    async fn the_writer_publishes_every_committed_entry_exactly_as_the_log_holds_it() {
        use crate::ledger::Submission;
        use sealtrail_core::event::Event;
        use sealtrail_store::Location;

        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let event = |n: u64, key: Option<&str>| Submission {
            event: Event::from_owned_value(serde_json::json!({
                "action": "a.read",
                "outcome": "success",
                "actor": {"id": format!("u-{n}")},
            }))
            .unwrap(),
            idempotency_key: key.map(str::to_string),
        };
        ledger
            .append("acme", (0..12).map(|n| event(n, None)).collect())
            .await
            .unwrap();
        // A retry under a key already used appends nothing; the seqs stay contiguous.
        ledger
            .append("acme", vec![event(12, Some("k-12")), event(13, None)])
            .await
            .unwrap();
        ledger
            .append("acme", vec![event(12, Some("k-12")), event(14, None)])
            .await
            .unwrap();
        let recent = ledger.recent();
        let log = Location::new(dir.path(), None).open_reader().unwrap();
        for tenant in ["acme", crate::tenant::SYSTEM_TENANT] {
            let in_log: Vec<(u64, Vec<u8>)> = log
                .entries(tenant, 0, u64::MAX, 1000)
                .unwrap()
                .into_iter()
                .map(|(seq, entry)| (seq, entry.unwrap()))
                .collect();
            assert!(!in_log.is_empty());
            let held: Vec<(u64, Vec<u8>)> = recent
                .read(tenant, 0, 1000)
                .unwrap_or_else(|| panic!("{tenant}'s entries from seq 0 are held"))
                .into_iter()
                .map(|(seq, entry)| (seq, entry.unwrap()))
                .collect();
            assert_eq!(held, in_log, "{tenant}");
        }
        assert_eq!(
            recent.read("acme", 0, 1000).unwrap().len(),
            15,
            "12 + 2 + 1 entries: the retry appended nothing"
        );
        ledger.shutdown();
    }

    #[test]
    fn a_reader_keeps_the_chunks_it_took_while_the_writer_lets_them_go() {
        let per_entry = 10 + ENTRY_OVERHEAD;
        let recent = RecentEntries::new(4 * per_entry);
        recent.publish("a", 0, entries("a", 0, 4, 10));
        let rows = recent.read("a", 1, 10).unwrap();
        recent.publish("a", 4, entries("a", 4, 8, 10));
        assert_eq!(seqs(recent.read("a", 1, 10)), None);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].1.as_ref().unwrap(), &entries("a", 1, 2, 10)[0]);
    }
}
