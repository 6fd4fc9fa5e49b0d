//! One test suite for every store: each test below runs unchanged against the embedded store
//! (SQLite in a temporary directory) and PostgreSQL (a fresh database per test, through
//! `SEALTRAIL_TEST_DATABASE_URL`; skipped, and said so, when that is unset outside CI).
//!
//! It covers what the rest of sealtrail relies on a store for: tenants, appending entries with
//! their stored hashes, reading them back every way the service does, idempotency keys,
//! checkpoints, settings, tokens, transactions and read snapshots, append-only protection in
//! the database itself, and several writers — connections, then whole ledgers — extending one
//! log at once without a fork, gap or reorder.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use sealtrail::ledger::{Ledger, LedgerConfig, Outcome, Submission};
use sealtrail::store::{self, Location, NewEntry, Store, StoreHashes, Tenant, TokenRecord};
use sealtrail::verification;
use sealtrail_core::event::Event;
use sealtrail_core::merkle::{self, HashReader, TreeBuilder};
use sealtrail_core::note::SignerKey;
use sealtrail_core::{Hash, leaf_hash};

/// A store under test and a way to reach its database directly, as an administrator could.
trait Backend {
    fn location(&self) -> Location;
    /// Runs SQL with full rights on the database.
    fn raw(&self, sql: &str) -> Result<(), String>;
    /// The SQL that removes a trigger.
    fn drop_trigger(&self, trigger: &str, table: &str) -> String;
    fn data_dir(&self) -> &std::path::Path;
    /// Holds a lock, from a session of its own, that stops any append to the log until the
    /// returned guard is dropped.
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send>;
}

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Embedded {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Backend for Embedded {
    fn location(&self) -> Location {
        Location::new(self.dir.path(), None)
    }
    fn raw(&self, sql: &str) -> Result<(), String> {
        let conn = rusqlite::Connection::open(store::sqlite::database_path(self.dir.path()))
            .map_err(|e| e.to_string())?;
        conn.execute_batch(sql).map_err(|e| e.to_string())
    }
    fn drop_trigger(&self, trigger: &str, _table: &str) -> String {
        format!("DROP TRIGGER {trigger}")
    }
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send> {
        let conn =
            rusqlite::Connection::open(store::sqlite::database_path(self.dir.path())).unwrap();
        // SQLite's one write lock, until the connection closes.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Box::new(conn)
    }
}

struct Postgres {
    db: support::TestDatabase,
    dir: tempfile::TempDir,
}

impl Postgres {
    fn new(test: &str) -> Option<Postgres> {
        Some(Postgres {
            db: support::TestDatabase::create(test)?,
            dir: tempfile::tempdir().unwrap(),
        })
    }
}

impl Backend for Postgres {
    fn location(&self) -> Location {
        Location::new(self.dir.path(), Some(&self.db.url))
    }
    fn raw(&self, sql: &str) -> Result<(), String> {
        self.db.connect().batch_execute(sql).map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_string())
        })
    }
    fn drop_trigger(&self, trigger: &str, table: &str) -> String {
        format!("DROP TRIGGER {trigger} ON {table}")
    }
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send> {
        let mut client = self.db.connect();
        // Inserts wait for this lock until the session ends.
        client
            .batch_execute("BEGIN; LOCK TABLE entries IN EXCLUSIVE MODE")
            .unwrap();
        Box::new(client)
    }
}

macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Embedded::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    let Some(backend) = super::Postgres::new(concat!("postgres::", stringify!($test))) else {
                        return;
                    };
                    super::$test(&backend);
                }
            )*
        }
    };
}

store_suite!(
    tenants_are_kept_with_origin_and_key,
    appended_entries_read_back_every_way,
    the_tail_resumes_the_tree,
    idempotency_keys_point_at_their_entry,
    checkpoints_keep_the_first_of_a_size,
    settings_and_tokens,
    rollback_leaves_nothing_behind,
    a_failed_write_fails_the_whole_transaction,
    a_read_snapshot_sees_one_moment,
    history_cannot_be_updated_or_deleted,
    protections_report_a_dropped_trigger,
    concurrent_writers_extend_one_log,
    two_ledgers_append_to_one_log,
    appends_queued_together_commit_as_one_group,
    a_reader_refuses_a_store_that_does_not_exist,
);

fn writer(backend: &dyn Backend) -> Box<dyn Store> {
    backend
        .location()
        .open_writer()
        .expect("the store opens for writing")
}

fn tenant(name: &str) -> Tenant {
    Tenant {
        name: name.to_string(),
        origin: format!("store.test/{name}"),
        created_at: "2026-01-01T00:00:00.000000Z".to_string(),
        vkey: None,
    }
}

fn create_tenant(store: &dyn Store, name: &str) {
    store.begin_write(&[name]).unwrap();
    store.insert_tenant(&tenant(name)).unwrap();
    store.commit().unwrap();
}

/// Synthetic entry bytes: the store keeps bytes, it does not read them.
fn entry_bytes(tenant: &str, seq: u64) -> Vec<u8> {
    format!("{{\"tenant\":\"{tenant}\",\"seq\":{seq}}}").into_bytes()
}

fn entry_id(tenant: &str, seq: u64) -> String {
    format!("00000000-0000-7000-8000-{:06x}{seq:06x}", tenant.len())
}

/// Appends entries `size..size + count` with their stored hashes; the caller holds the lock.
fn append_entries(store: &dyn Store, tenant: &str, count: u64) -> u64 {
    let size = store.size(tenant).unwrap();
    let mut tree = TreeBuilder::from_reader(size, &StoreHashes { store, tenant }).unwrap();
    let bytes: Vec<Vec<u8>> = (size..size + count)
        .map(|seq| entry_bytes(tenant, seq))
        .collect();
    let ids: Vec<String> = (size..size + count)
        .map(|seq| entry_id(tenant, seq))
        .collect();
    let mut hashes = Vec::new();
    for entry in &bytes {
        tree.push(leaf_hash(entry), &mut hashes);
    }
    let rows: Vec<NewEntry<'_>> = (0..count as usize)
        .map(|i| NewEntry {
            seq: size + i as u64,
            id: &ids[i],
            entry: &bytes[i],
        })
        .collect();
    store
        .append(tenant, &rows, merkle::stored_hash_count(size), &hashes)
        .unwrap();
    size + count
}

fn append_committed(store: &dyn Store, tenant: &str, count: u64) -> u64 {
    store.begin_write(&[tenant]).unwrap();
    let size = append_entries(store, tenant, count);
    store.commit().unwrap();
    size
}

fn tenants_are_kept_with_origin_and_key(backend: &dyn Backend) {
    let store = writer(backend);
    assert_eq!(store.tenants().unwrap(), vec![]);
    create_tenant(store.as_ref(), "beta");
    create_tenant(store.as_ref(), "alpha");
    let names: Vec<String> = store
        .tenants()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(store.tenant("alpha").unwrap(), Some(tenant("alpha")));
    assert_eq!(store.tenant("gamma").unwrap(), None);

    // A key is recorded once; a second one does not replace it.
    store.begin_write(&["alpha"]).unwrap();
    store.set_tenant_vkey("alpha", "first").unwrap();
    store.set_tenant_vkey("alpha", "second").unwrap();
    store.commit().unwrap();
    assert_eq!(
        store.tenant("alpha").unwrap().unwrap().vkey.as_deref(),
        Some("first")
    );

    // Names and origins are unique.
    store.begin_write(&["alpha"]).unwrap();
    assert!(store.insert_tenant(&tenant("alpha")).is_err());
    store.rollback().unwrap();
    assert_eq!(store.tenants().unwrap().len(), 2);
}

fn appended_entries_read_back_every_way(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    create_tenant(store.as_ref(), "other");
    assert_eq!(store.size("acme").unwrap(), 0);
    append_committed(store.as_ref(), "acme", 5);
    append_committed(store.as_ref(), "other", 3);
    append_committed(store.as_ref(), "acme", 995);
    assert_eq!(store.size("acme").unwrap(), 1000);
    assert_eq!(store.size("other").unwrap(), 3);
    assert_eq!(store.size("nobody").unwrap(), 0);

    let reader = backend.location().open_reader().unwrap();
    for seq in [0, 4, 5, 999] {
        assert_eq!(
            reader.entry("acme", seq).unwrap(),
            Some(entry_bytes("acme", seq))
        );
        assert_eq!(
            reader.entry_id("acme", seq).unwrap(),
            Some(entry_id("acme", seq))
        );
        assert_eq!(
            reader.seq_of_id("acme", &entry_id("acme", seq)).unwrap(),
            Some(seq)
        );
    }
    assert_eq!(reader.entry("acme", 1000).unwrap(), None);
    assert_eq!(reader.entry_id("other", 3).unwrap(), None);
    // Ids are per tenant.
    assert_eq!(
        reader.seq_of_id("other", &entry_id("acme", 1)).unwrap(),
        None
    );
    // Many ids at once: those in the tenant's log only.
    let ids = [
        entry_id("acme", 999),
        entry_id("acme", 0),
        entry_id("other", 2),
        entry_id("acme", 1000),
        entry_id("acme", 7),
    ];
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        reader.seqs_of_ids("acme", &refs).unwrap(),
        [
            (ids[0].clone(), 999),
            (ids[1].clone(), 0),
            (ids[4].clone(), 7)
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        reader.seqs_of_ids("other", &refs).unwrap(),
        [(ids[2].clone(), 2)].into_iter().collect()
    );

    let range = reader.entries("acme", 10, 20, 100).unwrap();
    assert_eq!(
        range.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert!(
        range
            .iter()
            .all(|(seq, bytes)| *bytes == entry_bytes("acme", *seq))
    );
    let limited = reader.entries("acme", 990, u64::MAX, 4).unwrap();
    assert_eq!(
        limited.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [990, 991, 992, 993]
    );
    let mut streamed = Vec::new();
    reader
        .for_each_entry("acme", 0, u64::MAX, &mut |seq, bytes| {
            assert_eq!(bytes, entry_bytes("acme", seq));
            streamed.push(seq);
        })
        .unwrap();
    assert_eq!(streamed, (0..1000).collect::<Vec<_>>());

    // Stored hashes come back in the order asked, from runs, spans and scattered indexes.
    let mut want = Vec::new();
    let mut tree = TreeBuilder::new();
    for seq in 0..1000 {
        tree.push(leaf_hash(&entry_bytes("acme", seq)), &mut want);
    }
    assert_eq!(want.len() as u64, merkle::stored_hash_count(1000));
    let hashes = StoreHashes {
        store: reader.as_ref(),
        tenant: "acme",
    };
    let cases: Vec<Vec<u64>> = vec![
        (10..20).collect(),
        (0..512).step_by(2).collect(),
        vec![1, 100, 1500, 3],
        vec![],
    ];
    for indexes in cases {
        let expected: Vec<Hash> = indexes.iter().map(|&i| want[i as usize]).collect();
        assert_eq!(
            hashes.read_hashes(&indexes).unwrap(),
            expected,
            "{indexes:?}"
        );
    }
    let past = want.len() as u64;
    for missing in [vec![past - 1, past], vec![5, past + 10]] {
        let error = hashes.read_hashes(&missing).unwrap_err().to_string();
        assert!(error.contains("is missing"), "{missing:?}: {error}");
    }
}

fn the_tail_resumes_the_tree(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    let empty = store::tail(store.as_ref(), "acme").unwrap();
    assert_eq!((empty.size, empty.last_hash), (0, Hash::ZERO));
    let mut tree = TreeBuilder::new();
    let mut sink = Vec::new();
    for size in [1u64, 2, 7, 64, 333] {
        let before = store.size("acme").unwrap();
        append_committed(store.as_ref(), "acme", size - before.min(size));
        for seq in before..size {
            tree.push(leaf_hash(&entry_bytes("acme", seq)), &mut sink);
        }
        let tail = store::tail(store.as_ref(), "acme").unwrap();
        assert_eq!(tail.size, size);
        assert_eq!(tail.tree.root(), tree.root(), "size {size}");
        assert_eq!(tail.last_hash, leaf_hash(&entry_bytes("acme", size - 1)));
    }
}

fn idempotency_keys_point_at_their_entry(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    create_tenant(store.as_ref(), "other");
    store.begin_write(&["acme"]).unwrap();
    append_entries(store.as_ref(), "acme", 3);
    store
        .insert_idempotency("acme", &[("k-0".into(), 0), ("k-2".into(), 2)])
        .unwrap();
    store.commit().unwrap();
    assert_eq!(store.idempotent_seq("acme", "k-0").unwrap(), Some(0));
    assert_eq!(store.idempotent_seq("acme", "k-2").unwrap(), Some(2));
    assert_eq!(store.idempotent_seq("acme", "k-1").unwrap(), None);
    // Keys are per tenant.
    assert_eq!(store.idempotent_seq("other", "k-0").unwrap(), None);
    // Many keys at once: recorded keys only, per tenant, repeats harmless.
    let found = store
        .idempotent_seqs("acme", &["k-2", "k-1", "k-0", "k-2", "nope"])
        .unwrap();
    assert_eq!(
        found,
        [("k-0".to_string(), 0), ("k-2".to_string(), 2)]
            .into_iter()
            .collect()
    );
    assert!(
        store
            .idempotent_seqs("other", &["k-0", "k-2"])
            .unwrap()
            .is_empty()
    );
    assert!(store.idempotent_seqs("acme", &[]).unwrap().is_empty());
    // A key is used once.
    store.begin_write(&["acme"]).unwrap();
    assert!(
        store
            .insert_idempotency("acme", &[("k-0".into(), 1)])
            .is_err()
    );
    store.rollback().unwrap();
    assert_eq!(store.idempotent_seq("acme", "k-0").unwrap(), Some(0));
}

fn checkpoints_keep_the_first_of_a_size(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    assert_eq!(store.latest_checkpoint("acme").unwrap(), None);
    store.begin_write(&["acme"]).unwrap();
    store
        .insert_checkpoint("acme", 10, "note 10", "t10")
        .unwrap();
    store.insert_checkpoint("acme", 3, "note 3", "t3").unwrap();
    store
        .insert_checkpoint("acme", 10, "another note 10", "t10b")
        .unwrap();
    store.commit().unwrap();
    let latest = store.latest_checkpoint("acme").unwrap().unwrap();
    assert_eq!(
        (
            latest.size,
            latest.note.as_str(),
            latest.created_at.as_str()
        ),
        (10, "note 10", "t10")
    );
    assert_eq!(store.checkpoints("acme").unwrap(), ["note 3", "note 10"]);
    assert_eq!(store.checkpoints("other").unwrap(), Vec::<String>::new());
}

fn settings_and_tokens(backend: &dyn Backend) {
    let store = writer(backend);
    assert_eq!(store.setting("config").unwrap(), None);
    store.begin_write(&[]).unwrap();
    store.set_setting("config", "one").unwrap();
    store.set_setting("config", "two").unwrap();
    store.commit().unwrap();
    assert_eq!(store.setting("config").unwrap().as_deref(), Some("two"));

    let record = TokenRecord {
        id: "tok_1".into(),
        tenant: "acme".into(),
        scopes: vec!["events:write".into(), "log:read".into()],
        created_at: "2026-01-01T00:00:00.000000Z".into(),
        revoked_at: None,
    };
    let secret = [7u8; 32];
    store.begin_write(&[]).unwrap();
    store.insert_token(&record, &secret).unwrap();
    store.commit().unwrap();
    assert_eq!(
        store.token_by_secret(&secret).unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.token_by_secret(&[8u8; 32]).unwrap(), None);
    assert_eq!(store.list_tokens().unwrap(), vec![record.clone()]);
    store.begin_write(&[]).unwrap();
    assert!(store.revoke_token("tok_1", "later").unwrap());
    assert!(!store.revoke_token("tok_1", "again").unwrap());
    assert!(!store.revoke_token("tok_none", "later").unwrap());
    store.commit().unwrap();
    let revoked = store.token_by_secret(&secret).unwrap().unwrap();
    assert_eq!(revoked.revoked_at.as_deref(), Some("later"));
    // The same secret hash cannot name two tokens.
    store.begin_write(&[]).unwrap();
    let twin = TokenRecord {
        id: "tok_2".into(),
        ..record
    };
    assert!(store.insert_token(&twin, &secret).is_err());
    store.rollback().unwrap();
}

fn rollback_leaves_nothing_behind(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 4);
    store.begin_write(&["acme", "new"]).unwrap();
    append_entries(store.as_ref(), "acme", 10);
    store.insert_tenant(&tenant("new")).unwrap();
    store.insert_checkpoint("acme", 14, "note", "t").unwrap();
    store.rollback().unwrap();
    assert_eq!(store.size("acme").unwrap(), 4);
    assert_eq!(store.tenant("new").unwrap(), None);
    assert_eq!(store.latest_checkpoint("acme").unwrap(), None);
    // Rolling back outside a transaction is harmless, and the store goes on working.
    store.rollback().unwrap();
    assert_eq!(append_committed(store.as_ref(), "acme", 1), 5);
    let tail = store::tail(store.as_ref(), "acme").unwrap();
    assert_eq!(tail.last_hash, leaf_hash(&entry_bytes("acme", 4)));
}

/// A transaction in which one write failed commits nothing: never the writes around the
/// failure without it.
fn a_failed_write_fails_the_whole_transaction(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    store.begin_write(&["acme"]).unwrap();
    append_entries(store.as_ref(), "acme", 5);
    assert!(store.insert_tenant(&tenant("acme")).is_err());
    let error = store.commit().expect_err("a commit after a failed write");
    assert!(
        error.to_string().contains("nothing was committed"),
        "{error}"
    );
    assert_eq!(store.size("acme").unwrap(), 0);
    // The store goes on working.
    assert_eq!(append_committed(store.as_ref(), "acme", 2), 2);
}

fn a_read_snapshot_sees_one_moment(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 3);
    let reader = backend.location().open_reader().unwrap();
    reader.begin_read().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 3);
    append_committed(store.as_ref(), "acme", 2);
    // Nested snapshots are one snapshot.
    reader.begin_read().unwrap();
    reader.end_read().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 3, "inside the snapshot");
    assert_eq!(reader.entry("acme", 3).unwrap(), None);
    reader.end_read().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 5, "after it");
}

fn history_cannot_be_updated_or_deleted(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 3);
    store.begin_write(&["acme"]).unwrap();
    store.insert_checkpoint("acme", 3, "note", "t").unwrap();
    store.commit().unwrap();
    for sql in [
        "UPDATE entries SET entry = entry WHERE tenant = 'acme'",
        "DELETE FROM entries WHERE tenant = 'acme' AND seq = 2",
        "UPDATE hashes SET hash = hash WHERE tenant = 'acme'",
        "DELETE FROM hashes WHERE tenant = 'acme'",
        "UPDATE checkpoints SET note = 'forged' WHERE tenant = 'acme'",
        "DELETE FROM checkpoints WHERE tenant = 'acme'",
    ] {
        let error = backend.raw(sql).expect_err(sql);
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if store.kind() == "postgres" {
        for table in ["entries", "hashes", "checkpoints"] {
            let sql = format!("TRUNCATE {table}");
            let error = backend.raw(&sql).expect_err(&sql);
            assert!(error.contains("append-only"), "{sql}: {error}");
        }
    }
    assert_eq!(store.size("acme").unwrap(), 3);
    assert_eq!(store.checkpoints("acme").unwrap(), ["note"]);
}

fn protections_report_a_dropped_trigger(backend: &dyn Backend) {
    let store = writer(backend);
    let protections = store.protections().unwrap();
    assert!(protections.len() >= 6, "{protections:?}");
    assert!(protections.iter().all(|p| p.active), "{protections:?}");
    let target = protections
        .iter()
        .find(|p| p.name.contains(" on entries"))
        .expect("a trigger on entries")
        .name
        .clone();
    // "trigger NAME on TABLE"
    let words: Vec<&str> = target.split_whitespace().collect();
    assert_eq!((words[0], words[2]), ("trigger", "on"), "{target}");
    backend
        .raw(&backend.drop_trigger(words[1], words[3]))
        .unwrap();
    let after = store.protections().unwrap();
    let inactive: Vec<&str> = after
        .iter()
        .filter(|p| !p.active)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(inactive, [target.as_str()]);
}

/// Two writers on separate connections, each appending under the tenant's lock as fast as it
/// can: the log ends up with every entry exactly once, at consecutive seqs.
fn concurrent_writers_extend_one_log(backend: &dyn Backend) {
    const ROUNDS: u64 = 60;
    let setup = writer(backend);
    create_tenant(setup.as_ref(), "acme");
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let location = backend.location();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let store = location.open_writer().unwrap();
                barrier.wait();
                for round in 0..ROUNDS {
                    append_committed(store.as_ref(), "acme", 1 + round % 3);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let expected: u64 = 2 * (0..ROUNDS).map(|round| 1 + round % 3).sum::<u64>();
    let reader = backend.location().open_reader().unwrap();
    assert_eq!(reader.size("acme").unwrap(), expected);
    let seqs: Vec<u64> = reader
        .entries("acme", 0, u64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(seq, bytes)| {
            assert_eq!(bytes, entry_bytes("acme", seq));
            seq
        })
        .collect();
    assert_eq!(seqs, (0..expected).collect::<Vec<_>>());
    // The stored tree is the tree of exactly these entries.
    let mut tree = TreeBuilder::new();
    let mut sink = Vec::new();
    for seq in 0..expected {
        tree.push(leaf_hash(&entry_bytes("acme", seq)), &mut sink);
    }
    let tail = store::tail(reader.as_ref(), "acme").unwrap();
    assert_eq!(tail.tree.root(), tree.root());
}

fn event(instance: usize, n: usize) -> Submission {
    let json = format!(
        r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{instance}","type":"user"}},"source":{{"app":"ehr","seq":{n}}}}}"#
    );
    Submission {
        event: Event::parse(json.as_bytes()).unwrap(),
        idempotency_key: Some(format!("i{instance}-{n}")),
    }
}

/// Two ledgers — two service instances, each with its own data directory and the same root
/// signing key — append to one tenant at once through the same store. Every receipt names the
/// entry at its seq, the chain and the stored tree verify end to end, and every checkpoint
/// either instance signed is consistent with the one log.
fn two_ledgers_append_to_one_log(backend: &dyn Backend) {
    let keys = tempfile::tempdir().unwrap();
    let root = SignerKey::generate("sealtrail-root", &mut rand_core::OsRng).unwrap();
    sealtrail::keyfiles::write_key_pair(keys.path(), &root).unwrap();
    let (root_path, _) = sealtrail::keyfiles::key_paths(keys.path(), "sealtrail-root");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ledgers: Vec<Ledger> = dirs
        .iter()
        .map(|dir| {
            Ledger::start(LedgerConfig {
                // The embedded store lives in the backend's own directory; the instance's
                // directory holds only what is local to it.
                data_dir: match backend.location() {
                    Location::Embedded { .. } => backend.data_dir().to_path_buf(),
                    Location::Postgres { .. } => dir.path().to_path_buf(),
                },
                store: backend.location(),
                signing_key: Some(root_path.clone()),
                checkpoint_interval: Duration::from_millis(5),
                origin_prefix: "store.test".into(),
                audit_stdout: false,
            })
            .unwrap()
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    ledgers[0]
        .create_token_blocking("acme", vec!["events:write".into()], "test")
        .unwrap();
    let receipts = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (instance, ledger) in ledgers.iter().enumerate() {
            for client in 0..4 {
                let ledger = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    let mut receipts = Vec::new();
                    for round in 0..15 {
                        let n = client * 1000 + round * 10;
                        let size = if round % 3 == 0 { 7 } else { 1 };
                        let batch = (n..n + size).map(|n| event(instance, n)).collect();
                        for outcome in ledger.append("acme", batch).await.unwrap() {
                            match outcome {
                                Outcome::Created(receipt) => receipts.push(receipt),
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                    receipts
                }));
            }
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    // A retry through the other instance is answered from the log, not appended again.
    let retried = runtime
        .block_on(ledgers[1].append("acme", vec![event(0, 0)]))
        .unwrap();
    let Outcome::Duplicate(duplicate) = &retried[0] else {
        panic!("a retry appended again: {retried:?}");
    };
    assert!(receipts.contains(duplicate), "{duplicate:?}");
    for ledger in ledgers {
        ledger.shutdown();
    }

    let reader = backend.location().open_reader().unwrap();
    let size = reader.size("acme").unwrap();
    assert_eq!(size, receipts.len() as u64);
    assert_eq!(
        reader.idempotent_seq("acme", "i0-0").unwrap(),
        Some(duplicate.seq)
    );
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..size).collect::<Vec<_>>(), "no gap, no duplicate");
    for receipt in &receipts {
        let bytes = reader.entry("acme", receipt.seq).unwrap().unwrap();
        assert_eq!(leaf_hash(&bytes).to_hex(), receipt.event_hash);
        assert_eq!(
            reader.entry_id("acme", receipt.seq).unwrap().unwrap(),
            receipt.id
        );
    }
    let checkpoints = reader.checkpoints("acme").unwrap();
    assert!(!checkpoints.is_empty());
    let latest = reader.latest_checkpoint("acme").unwrap().unwrap();
    assert_eq!(
        latest.size, size,
        "the final checkpoint covers the whole log"
    );
    let record = reader.tenant("acme").unwrap().unwrap();
    let key = root.derive(&record.origin).unwrap().verifier();
    assert_eq!(record.vkey, Some(key.to_string()));
    let report =
        verification::verify_tenant_with_keys(reader.as_ref(), "acme", &[key], &[], None, None)
            .unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.rows_checked, size);
    let system = verification::verify_tenant_with_keys(
        reader.as_ref(),
        "_system",
        &[root
            .derive(&reader.tenant("_system").unwrap().unwrap().origin)
            .unwrap()
            .verifier()],
        &[],
        None,
        None,
    )
    .unwrap();
    assert!(system.valid, "{system:?}");
}

fn a_reader_refuses_a_store_that_does_not_exist(backend: &dyn Backend) {
    let error = backend
        .location()
        .open_reader()
        .err()
        .expect("no store yet");
    let message = error.to_string();
    assert!(
        message.contains("sealtrail serve") || message.contains("sealtrail migrate"),
        "{message}"
    );
    // Opening for writing creates it; opening again changes nothing.
    drop(writer(backend));
    let store = writer(backend);
    assert_eq!(store.tenants().unwrap(), vec![]);
    assert!(backend.location().open_reader().is_ok());
}

/// Appends that queue while the writer is busy are committed as one group: each tenant's
/// events in one call, in the order the requests came, each request answered with its own
/// outcomes (a duplicate key across requests included, a request for an unknown tenant refused
/// on its own).
fn appends_queued_together_commit_as_one_group(backend: &dyn Backend) {
    let ledger = Ledger::start(LedgerConfig {
        data_dir: backend.data_dir().to_path_buf(),
        store: backend.location(),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(3600),
        origin_prefix: "store.test".into(),
        audit_stdout: false,
    })
    .unwrap();
    for tenant in ["acme", "beta"] {
        ledger.ensure_tenant_blocking(tenant, "test").unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lock = backend.hold_appends();
    let requests: Vec<(&str, Vec<Submission>)> = vec![
        // Taken by the writer alone, which then waits for the lock.
        ("acme", vec![event(0, 0)]),
        // Queued behind it, in this order.
        ("acme", vec![event(0, 1)]),
        ("beta", vec![event(1, 0)]),
        ("acme", vec![event(0, 2), event(0, 1), event(0, 3)]),
        ("nobody", vec![event(2, 0)]),
        ("beta", vec![event(1, 1)]),
    ];
    let answers = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (i, (tenant, batch)) in requests.into_iter().enumerate() {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(
                async move { ledger.append(tenant, batch).await },
            ));
            let pause = if i == 0 { 300 } else { 30 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Released off the runtime: closing a PostgreSQL client blocks.
        tokio::task::spawn_blocking(move || drop(lock))
            .await
            .unwrap();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let created = |answer: &Result<Vec<Outcome>, _>| -> Vec<(String, u64)> {
        answer
            .as_ref()
            .unwrap()
            .iter()
            .map(|outcome| match outcome {
                Outcome::Created(r) => ("created".to_string(), r.seq),
                Outcome::Duplicate(r) => ("duplicate".to_string(), r.seq),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    let c = |seq| ("created".to_string(), seq);
    assert_eq!(created(&answers[0]), vec![c(0)]);
    assert_eq!(created(&answers[1]), vec![c(1)]);
    assert_eq!(created(&answers[2]), vec![c(0)]);
    assert_eq!(
        created(&answers[3]),
        vec![c(2), ("duplicate".to_string(), 1), c(3)]
    );
    assert!(
        matches!(&answers[4], Err(sealtrail::ledger::LedgerError::Invalid(m)) if m.contains("does not exist")),
        "{:?}",
        answers[4]
    );
    assert_eq!(created(&answers[5]), vec![c(1)]);
    let receipt = |answer: &Result<Vec<Outcome>, _>, i: usize| match &answer.as_ref().unwrap()[i] {
        Outcome::Created(r) | Outcome::Duplicate(r) => r.clone(),
        other => panic!("unexpected {other:?}"),
    };
    // The duplicate names the request before it in the same group.
    assert_eq!(receipt(&answers[3], 1), receipt(&answers[1], 0));
    // One call per tenant for the queued requests: one acceptance time for all of acme's.
    assert_eq!(
        receipt(&answers[1], 0).received_at,
        receipt(&answers[3], 2).received_at
    );
    ledger.shutdown();
    let reader = backend.location().open_reader().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 4);
    assert_eq!(reader.size("beta").unwrap(), 2);
    for (answer, i, tenant) in [
        (0, 0, "acme"),
        (1, 0, "acme"),
        (3, 0, "acme"),
        (3, 2, "acme"),
        (2, 0, "beta"),
        (5, 0, "beta"),
    ] {
        let r = receipt(&answers[answer], i);
        assert_eq!(reader.entry_id(tenant, r.seq).unwrap().unwrap(), r.id);
        let bytes = reader.entry(tenant, r.seq).unwrap().unwrap();
        assert_eq!(leaf_hash(&bytes).to_hex(), r.event_hash);
    }
    for tenant in ["acme", "beta"] {
        let record = reader.tenant(tenant).unwrap().unwrap();
        let key = sealtrail_core::note::VerifierKey::parse(&record.vkey.unwrap()).unwrap();
        let report =
            verification::verify_tenant_with_keys(reader.as_ref(), tenant, &[key], &[], None, None)
                .unwrap();
        assert!(report.valid, "{tenant}: {report:?}");
    }
}
