//! Idempotency keys in the embedded store: a journal each group appends its keys to, and the
//! `idempotency` b-tree they move to in sorted chunks.
//!
//! Keyed by the key, the b-tree takes a group's keys in as many leaves as it has keys (keys
//! from different producers are far apart), and every touched 4 KiB page goes to the WAL and
//! through the commit's fsync: two thirds of what a group of single events wrote
//! (`bench/wal-bytes.py`). Appended to `idempotency_journal` instead, filed under the entry
//! they name, a group's keys fill the end of one range of a rowid b-tree. Once the journal
//! holds [`MERGE_AT`] keys, the transaction that reaches it moves the oldest [`CHUNK`] into the
//! b-tree in key order, where the keys of one producer land side by side and share leaves. A
//! group of [`DIRECT`] keys or more (a batch) already shares leaves and goes straight into the
//! b-tree, in key order: journaling it would only add the move to its cost.
//!
//! A lookup reads both: the b-tree by its key and the journal through an in-memory map of it
//! that the writer's connection keeps ([`Journal`]). The map is read from the table when first
//! needed and again whenever it may differ from it: after a rollback, a prune, or a commit by
//! another connection (`PRAGMA data_version` changes). A reader's connection has no map and
//! scans the tenant's range of the journal, at most [`MERGE_AT`] rows.
//!
//! A group looks its keys up before it claims them. The keys that lookup found nowhere are
//! claimed without a second look in the b-tree (`Journal::absent` says why that is safe);
//! the claim still checks the map, so a key twice in one group is refused.
//!
//! Moving a chunk runs under a savepoint, so that it is whole or not at all even outside a
//! transaction; a key is in the journal or in the b-tree, never in both, and never lost.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::layout;
use crate::{Result, StoreError};

/// Migration 6: the journal.
pub(super) const SCHEMA: &str = include_str!("keys.sql");

/// How many keys the journal holds before a transaction moves a chunk of them.
pub(super) const MERGE_AT: usize = 8192;
/// How many keys, the oldest, one move takes.
pub(super) const CHUNK: usize = 2048;
/// How many keys a group claims at least for them to go straight into the b-tree.
pub(super) const DIRECT: usize = 256;

const TREE_LOOKUP: &str = "SELECT seq FROM idempotency WHERE tenant_number = ?1 AND key = ?2";
const TREE_INSERT: &str = "INSERT INTO idempotency (tenant_number, key, seq) VALUES (?1, ?2, ?3)";

/// The journal's keys: per tenant number, each key and the seq it names.
#[derive(Default)]
struct Rows {
    by_tenant: HashMap<i64, HashMap<String, u64>>,
    len: usize,
}

impl Rows {
    fn get(&self, number: i64, key: &str) -> Option<u64> {
        self.by_tenant.get(&number)?.get(key).copied()
    }

    fn insert(&mut self, number: i64, key: String, seq: u64) {
        if self
            .by_tenant
            .entry(number)
            .or_default()
            .insert(key, seq)
            .is_none()
        {
            self.len += 1;
        }
    }

    fn remove(&mut self, number: i64, key: &str) {
        if let Some(keys) = self.by_tenant.get_mut(&number)
            && keys.remove(key).is_some()
        {
            self.len -= 1;
        }
    }
}

/// The writer's map of the journal.
#[derive(Default)]
pub(super) struct Journal {
    /// Every row of `idempotency_journal` as of the last read, with what this connection
    /// added since; `None` until read and whenever it may differ from the table.
    rows: Option<Rows>,
    /// `PRAGMA data_version` when `rows` was read.
    version: i64,
    /// Keys of one tenant number the last [`Journal::lookup`] found in neither the b-tree nor
    /// the journal. The next [`Journal::insert`] takes them and does not look for them in the
    /// b-tree again: nothing can have put them there in between, since only an insert writes
    /// keys (and takes this set first), another connection's commit changes `data_version`
    /// (which drops the set with the map), and a rollback calls [`Journal::forget`].
    absent: Option<(i64, HashSet<String>)>,
}

impl Journal {
    /// The map, read again if another connection has committed since it was read.
    fn rows(&mut self, conn: &Connection) -> Result<&mut Rows> {
        self.refresh(conn)?;
        Ok(self.rows.as_mut().expect("refreshed"))
    }

    /// Reads the map when it is missing, or when another connection has committed since it
    /// was read (then what `absent` says may no longer hold either).
    fn refresh(&mut self, conn: &Connection) -> Result<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        if self.version != version {
            self.rows = None;
            self.absent = None;
        }
        if self.rows.is_none() {
            self.version = version;
            self.rows = Some(read_all(conn)?);
        }
        Ok(())
    }

    /// The seq each of `keys` names, in the b-tree or the journal of tenant `number`, with
    /// one look at whether the map is current for all of them.
    pub(super) fn lookup(
        &mut self,
        conn: &Connection,
        number: i64,
        keys: &[&str],
    ) -> Result<HashMap<String, u64>> {
        self.absent = None;
        let rows = self.rows(conn)?;
        let mut in_tree = conn.prepare_cached(TREE_LOOKUP)?;
        let mut found = HashMap::new();
        let mut absent = HashSet::new();
        for key in keys {
            match seq_of(rows, &mut in_tree, number, key)? {
                Some(seq) => {
                    found.insert((*key).to_string(), seq);
                }
                None => {
                    absent.insert((*key).to_string());
                }
            }
        }
        self.absent = Some((number, absent));
        Ok(found)
    }

    /// Records `keys` (each with the seq it names) for tenant `number`. A key is claimed once:
    /// one already in the journal or the b-tree fails the write.
    ///
    /// A group of [`DIRECT`] keys or more (a batch) goes straight into the b-tree, in key
    /// order: its keys share leaves as a moved chunk's do, and journaling them would only add
    /// the move. A smaller group is appended to the journal, and chunks are moved while the
    /// journal holds [`MERGE_AT`] or more.
    pub(super) fn insert(
        &mut self,
        conn: &Connection,
        number: i64,
        keys: &[(String, u64)],
    ) -> Result<()> {
        self.refresh(conn)?;
        let absent = match self.absent.take() {
            Some((looked_up, absent)) if looked_up == number => absent,
            _ => HashSet::new(),
        };
        let rows = self.rows.as_mut().expect("refreshed");
        let claimed = |key: &str, earlier: u64| {
            Err(StoreError::Aborted(format!(
                "idempotency key {key:?} already names seq {earlier}; a key is claimed once"
            )))
        };
        if keys.len() >= DIRECT {
            let mut sorted: Vec<&(String, u64)> = keys.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut insert = conn.prepare_cached(TREE_INSERT)?;
            for (key, seq) in sorted {
                if let Some(earlier) = rows.get(number, key) {
                    return claimed(key, earlier);
                }
                // The b-tree's primary key refuses a key it already holds.
                insert.execute(params![number, key, *seq as i64])?;
            }
            return Ok(());
        }
        let base = layout::base(number);
        let mut in_tree = conn.prepare_cached(TREE_LOOKUP)?;
        let mut append = conn
            .prepare_cached("INSERT INTO idempotency_journal (entry_key, key) VALUES (?1, ?2)")?;
        for (key, seq) in keys {
            let earlier = match rows.get(number, key) {
                Some(seq) => Some(seq),
                // Looked up a moment ago and absent from the b-tree; see `absent`.
                None if absent.contains(key.as_str()) => None,
                None => seq_of(rows, &mut in_tree, number, key)?,
            };
            if let Some(earlier) = earlier {
                return claimed(key, earlier);
            }
            append.execute(params![layout::key(base, *seq)?, key])?;
            rows.insert(number, key.clone(), *seq);
        }
        while rows.len >= MERGE_AT {
            let moved = move_chunk(conn)?;
            if moved.is_empty() {
                // The table is empty, whatever the map says: nothing more to move.
                break;
            }
            for (number, key) in moved {
                rows.remove(number, &key);
            }
        }
        Ok(())
    }

    /// Forgets the map: the table may have changed behind it (a rollback, a prune).
    pub(super) fn forget(&mut self) {
        self.rows = None;
        self.absent = None;
    }
}

/// The seq `key` of tenant `number` names: in the writer's map of the journal, else in the
/// b-tree (`in_tree` is [`TREE_LOOKUP`]).
fn seq_of(
    rows: &Rows,
    in_tree: &mut rusqlite::CachedStatement<'_>,
    number: i64,
    key: &str,
) -> Result<Option<u64>> {
    if let Some(seq) = rows.get(number, key) {
        return Ok(Some(seq));
    }
    Ok(in_tree
        .query_row(params![number, key], |row| row.get::<_, i64>(0))
        .optional()?
        .map(|seq| seq as u64))
}

/// Every row of the journal.
fn read_all(conn: &Connection) -> Result<Rows> {
    let mut stmt = conn.prepare_cached("SELECT entry_key, key FROM idempotency_journal")?;
    let mut rows = stmt.query([])?;
    let mut all = Rows::default();
    while let Some(row) = rows.next()? {
        let (number, seq) = split(row.get(0)?);
        all.insert(number, row.get(1)?, seq);
    }
    Ok(all)
}

/// A journal row's tenant number and seq.
fn split(entry_key: i64) -> (i64, u64) {
    (
        entry_key >> layout::SEQ_BITS,
        (entry_key & (layout::SEQ_LIMIT as i64 - 1)) as u64,
    )
}

/// Moves the oldest [`CHUNK`] rows of the journal into the b-tree, in key order, under a
/// savepoint; returns the claims moved.
fn move_chunk(conn: &Connection) -> Result<Vec<(i64, String)>> {
    let oldest: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT entry_key, key FROM idempotency_journal ORDER BY entry_key LIMIT ?1",
        )?
        .query_map([CHUNK as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let Some(&(last, _)) = oldest.last() else {
        return Ok(Vec::new());
    };
    let mut chunk: Vec<(i64, String, u64)> = oldest
        .into_iter()
        .map(|(entry_key, key)| {
            let (number, seq) = split(entry_key);
            (number, key, seq)
        })
        .collect();
    // SQLite orders TEXT bytewise (BINARY), as Rust orders strings.
    chunk.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    conn.execute_batch("SAVEPOINT idempotency_move")?;
    let moved = (|| -> Result<()> {
        let mut insert = conn.prepare_cached(TREE_INSERT)?;
        for (number, key, seq) in &chunk {
            insert.execute(params![number, key, *seq as i64])?;
        }
        conn.prepare_cached("DELETE FROM idempotency_journal WHERE entry_key <= ?1")?
            .execute([last])?;
        Ok(())
    })();
    match moved {
        Ok(()) => conn.execute_batch("RELEASE idempotency_move")?,
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK TO idempotency_move; RELEASE idempotency_move");
            return Err(error);
        }
    }
    Ok(chunk
        .into_iter()
        .map(|(number, key, _)| (number, key))
        .collect())
}

/// The seq each of `keys` names for tenant `number`, read from the tables: a reader's lookup,
/// which scans the tenant's range of the journal (when the schema has one) for a key that is
/// not in the b-tree.
pub(super) fn read_seqs(
    conn: &Connection,
    number: i64,
    keys: &[&str],
    has_journal: bool,
) -> Result<HashMap<String, u64>> {
    let base = layout::base(number);
    let mut in_tree = conn.prepare_cached(TREE_LOOKUP)?;
    let mut found = HashMap::new();
    for key in keys {
        let mut seq = in_tree
            .query_row(params![number, key], |row| row.get::<_, i64>(0))
            .optional()?
            .map(|seq| seq as u64);
        if seq.is_none() && has_journal {
            seq = conn
                .prepare_cached(
                    "SELECT entry_key FROM idempotency_journal
                     WHERE entry_key >= ?1 AND entry_key < ?2 AND key = ?3",
                )?
                .query_row(
                    params![base, layout::bound(base, layout::SEQ_LIMIT), key],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?
                .map(|entry_key| split(entry_key).1);
        }
        if let Some(seq) = seq {
            found.insert((*key).to_string(), seq);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{CHUNK, DIRECT, MERGE_AT};
    use crate::sqlite::SqliteStore;
    use crate::{Store, Tenant};

    fn writer(path: &Path) -> SqliteStore {
        SqliteStore::open_writer(path).expect("the store opens for writing")
    }

    fn with_tenants(path: &Path) -> SqliteStore {
        let store = writer(path);
        for name in ["acme", "other"] {
            store
                .insert_tenant(&Tenant {
                    name: name.to_string(),
                    origin: format!("keys.test/{name}"),
                    created_at: "2026-01-01T00:00:00.000000Z".to_string(),
                    vkey: None,
                })
                .unwrap();
        }
        store
    }

    fn count(store: &SqliteStore, table: &str) -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    /// Keys of one producer counting up, as the clinic's are, claimed in groups of 40.
    fn claim(store: &SqliteStore, tenant: &str, seqs: std::ops::Range<u64>) {
        let keys: Vec<(String, u64)> = seqs.map(|seq| (format!("req-{seq:x}"), seq)).collect();
        for group in keys.chunks(40) {
            store.begin_write(&[tenant]).unwrap();
            store.insert_idempotency(tenant, group).unwrap();
            store.commit().unwrap();
        }
    }

    fn assert_all_found(store: &dyn Store, tenant: &str, seqs: std::ops::Range<u64>) {
        for seq in seqs {
            let key = format!("req-{seq:x}");
            assert_eq!(
                store.idempotent_seq(tenant, &key).unwrap(),
                Some(seq),
                "{key}"
            );
        }
    }

    #[test]
    fn keys_move_from_the_journal_in_chunks_and_are_found_wherever_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealtrail.db");
        let store = with_tenants(&path);
        let total = (MERGE_AT + 100) as u64;
        claim(&store, "acme", 0..total);
        // The commit that brought the journal to MERGE_AT moved the oldest CHUNK keys.
        assert_eq!(count(&store, "idempotency"), CHUNK as i64);
        assert_eq!(
            count(&store, "idempotency_journal"),
            total as i64 - CHUNK as i64
        );
        let moved: i64 = store
            .connection()
            .query_row("SELECT MAX(seq) FROM idempotency", [], |row| row.get(0))
            .unwrap();
        assert_eq!(moved, CHUNK as i64 - 1, "the oldest keys moved");
        // Found by the writer (its map and the b-tree), by a reader (its scan), per tenant.
        assert_all_found(&store, "acme", 0..total);
        let reader = SqliteStore::open_reader(&path).unwrap();
        assert_all_found(&reader, "acme", 0..total);
        assert_eq!(store.idempotent_seq("other", "req-0").unwrap(), None);
        assert_eq!(reader.idempotent_seq("other", "req-0").unwrap(), None);
        assert_eq!(store.idempotent_seq("acme", "req-nope").unwrap(), None);
        // A key is claimed once, wherever it is now.
        for key in ["req-0", &format!("req-{:x}", total - 1)] {
            store.begin_write(&["acme"]).unwrap();
            let again = store.insert_idempotency("acme", &[(key.to_string(), total + 5)]);
            assert!(again.is_err(), "{key} claimed twice");
            store.rollback().unwrap();
        }
        // The same keys are another tenant's to claim.
        claim(&store, "other", 0..3);
        assert_all_found(&store, "other", 0..3);
        // And all of it after a restart.
        drop(store);
        let store = writer(&path);
        assert_all_found(&store, "acme", 0..total);
        assert_all_found(&store, "other", 0..3);
    }

    #[test]
    fn a_batch_of_keys_goes_straight_into_the_b_tree_and_each_key_is_still_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealtrail.db");
        let store = with_tenants(&path);
        claim(&store, "acme", 0..3);
        let batch: Vec<(String, u64)> = (3..3 + DIRECT as u64)
            .rev()
            .map(|seq| (format!("req-{seq:x}"), seq))
            .collect();
        store.begin_write(&["acme"]).unwrap();
        store.insert_idempotency("acme", &batch).unwrap();
        store.commit().unwrap();
        assert_eq!(count(&store, "idempotency"), DIRECT as i64);
        assert_eq!(count(&store, "idempotency_journal"), 3);
        assert_all_found(&store, "acme", 0..3 + DIRECT as u64);
        // A batch naming a key of the journal, or of the b-tree, fails whole.
        for taken in ["req-1", "req-5"] {
            let mut again: Vec<(String, u64)> = (0..DIRECT as u64)
                .map(|n| (format!("new-{n}"), 1000 + n))
                .collect();
            again[7].0 = taken.to_string();
            store.begin_write(&["acme"]).unwrap();
            assert!(store.insert_idempotency("acme", &again).is_err(), "{taken}");
            store.rollback().unwrap();
            assert_eq!(store.idempotent_seq("acme", "new-0").unwrap(), None);
        }
        assert_all_found(&store, "acme", 0..3 + DIRECT as u64);
    }

    #[test]
    fn the_writers_map_follows_rollbacks_and_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealtrail.db");
        let store = with_tenants(&path);
        claim(&store, "acme", 0..3);
        // A rolled-back claim is gone, from the table and from the map.
        store.begin_write(&["acme"]).unwrap();
        store
            .insert_idempotency("acme", &[("k".to_string(), 3)])
            .unwrap();
        assert_eq!(store.idempotent_seq("acme", "k").unwrap(), Some(3));
        store.rollback().unwrap();
        assert_eq!(store.idempotent_seq("acme", "k").unwrap(), None);
        // A claim committed by another connection is seen by the first writer's next lookup,
        // and its own keys are still found beside it.
        let second = writer(&path);
        second.begin_write(&["acme"]).unwrap();
        second
            .insert_idempotency("acme", &[("k".to_string(), 4)])
            .unwrap();
        second.commit().unwrap();
        assert_eq!(store.idempotent_seq("acme", "k").unwrap(), Some(4));
        assert_all_found(&store, "acme", 0..3);
        store.begin_write(&["acme"]).unwrap();
        assert!(
            store
                .insert_idempotency("acme", &[("k".to_string(), 5)])
                .is_err()
        );
        store.rollback().unwrap();
    }

    /// A key the group's lookup found absent is claimed without a second look in the b-tree;
    /// that shortcut must never let a key be claimed twice: not after another insert has put
    /// it in the b-tree (a batch, or a move of the journal's chunk), not after another
    /// connection claimed it, and not after a rollback.
    #[test]
    fn a_key_looked_up_as_absent_is_still_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealtrail.db");
        let store = with_tenants(&path);
        let refused = |store: &SqliteStore, key: &str, seq: u64| {
            store.begin_write(&["acme"]).unwrap();
            let again = store.insert_idempotency("acme", &[(key.to_string(), seq)]);
            store.rollback().unwrap();
            again.is_err()
        };

        // Looked up absent, then claimed by a batch straight into the b-tree.
        let batch: Vec<(String, u64)> = (0..DIRECT as u64)
            .map(|seq| (format!("batch-{seq}"), seq))
            .collect();
        assert_eq!(store.idempotent_seq("acme", "batch-3").unwrap(), None);
        store.begin_write(&["acme"]).unwrap();
        store.insert_idempotency("acme", &batch).unwrap();
        store.commit().unwrap();
        assert!(refused(&store, "batch-3", 1_000), "after a batch");

        // Looked up absent, claimed into the journal, moved to the b-tree by later claims.
        let next = DIRECT as u64;
        let first = format!("req-{next:x}");
        assert_eq!(store.idempotent_seq("acme", &first).unwrap(), None);
        claim(&store, "acme", next..next + MERGE_AT as u64);
        assert!(
            count(&store, "idempotency") > DIRECT as i64,
            "a chunk moved"
        );
        assert!(refused(&store, &first, 100_000), "after a move");

        // Looked up absent by the first writer, then claimed by another connection: into its
        // journal, or by a batch straight into the b-tree, where the first writer's map of the
        // journal does not see it.
        let second = writer(&path);
        for (key, claimed) in [("elsewhere", 1), ("elsewhere-batch", DIRECT)] {
            assert_eq!(store.idempotent_seq("acme", key).unwrap(), None);
            let keys: Vec<(String, u64)> = (0..claimed as u64)
                .map(|n| match n {
                    0 => (key.to_string(), 200_000),
                    n => (format!("{key}-{n}"), 200_000 + n),
                })
                .collect();
            second.begin_write(&["acme"]).unwrap();
            second.insert_idempotency("acme", &keys).unwrap();
            second.commit().unwrap();
            store.begin_write(&["acme"]).unwrap();
            let again = store.insert_idempotency("acme", &[(key.to_string(), 210_000)]);
            store.rollback().unwrap();
            assert!(again.is_err(), "{key} after another connection");
        }

        // Looked up absent within a write that is rolled back: claimed once afterwards.
        store.begin_write(&["acme"]).unwrap();
        assert_eq!(store.idempotent_seq("acme", "rolled").unwrap(), None);
        store
            .insert_idempotency("acme", &[("rolled".to_string(), 300_000)])
            .unwrap();
        store.rollback().unwrap();
        assert_eq!(store.idempotent_seq("acme", "rolled").unwrap(), None);
        store.begin_write(&["acme"]).unwrap();
        store
            .insert_idempotency("acme", &[("rolled".to_string(), 300_001)])
            .unwrap();
        store.commit().unwrap();
        assert_eq!(
            store.idempotent_seq("acme", "rolled").unwrap(),
            Some(300_001)
        );
        assert!(refused(&store, "rolled", 300_002), "after the rollback");
    }

    #[test]
    fn a_version_5_store_keeps_its_keys_and_gains_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealtrail.db");
        let store = with_tenants(&path);
        // The previous release's store: keys in the b-tree, no journal.
        store
            .connection()
            .execute_batch(
                "DROP TABLE idempotency_journal;
                 INSERT INTO idempotency (tenant_number, key, seq) VALUES (0, 'old', 7);
                 PRAGMA user_version = 5;",
            )
            .unwrap();
        drop(store);
        let reader = SqliteStore::open_reader(&path).unwrap();
        assert_eq!(reader.idempotent_seq("acme", "old").unwrap(), Some(7));
        drop(reader);
        let store = writer(&path);
        assert_eq!(
            store.schema_versions().unwrap().0,
            super::super::SCHEMA_VERSION
        );
        assert_eq!(store.idempotent_seq("acme", "old").unwrap(), Some(7));
        claim(&store, "acme", 8..10);
        assert_all_found(&store, "acme", 8..10);
        assert_eq!(count(&store, "idempotency_journal"), 2);
    }
}
