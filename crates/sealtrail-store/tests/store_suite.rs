//! One test suite for every store: each test below runs unchanged against the embedded store
//! (SQLite in a temporary directory) and PostgreSQL (a fresh database per test, through
//! `SEALTRAIL_TEST_DATABASE_URL`; skipped, and said so, when that is unset outside CI).
//!
//! It covers what the rest of sealtrail relies on a store for: tenants, appending entries with
//! their stored hashes, reading them back every way the service does, idempotency keys,
//! checkpoints, settings, tokens, transactions and read snapshots, append-only protection in
//! the database itself, and several writers extending one log at once without a fork, gap or
//! reorder, and leases held by one connection at a time. The server's write path runs on both stores through the same harness in its own
//! tests (`sealtrail-server/tests/ledger.rs`).

use std::sync::{Arc, Barrier};

use sealtrail_core::merkle::{self, HashReader, TreeBuilder};
use sealtrail_core::{Hash, leaf_hash};
use sealtrail_store::testing::Backend;
use sealtrail_store::{
    self as store, ArchiveWatermark, NewEntry, PruneMark, Restore, Store, StoreHashes, Tenant,
    TokenRecord,
};

sealtrail_store::store_suite!(
    tenants_are_kept_with_origin_and_key,
    appended_entries_read_back_every_way,
    the_tail_resumes_the_tree,
    idempotency_keys_point_at_their_entry,
    checkpoints_keep_the_first_of_a_size,
    settings_and_tokens,
    rollback_leaves_nothing_behind,
    a_failed_write_fails_the_whole_transaction,
    appends_keep_every_byte_and_every_constraint,
    a_read_snapshot_sees_one_moment,
    history_cannot_be_updated_or_deleted,
    a_changed_entry_is_repaired_only_with_the_bytes_its_leaf_commits_to,
    protections_report_a_dropped_trigger,
    a_row_without_entry_bytes_is_reported_alone,
    a_scan_reads_every_row_there_is_across_runs_and_holes,
    concurrent_writers_extend_one_log,
    a_reader_refuses_a_store_that_does_not_exist,
    a_lease_has_one_holder_until_its_connection_closes,
    entries_leave_only_through_an_archived_prune,
    a_proofs_scattered_hashes_are_the_tenants_own_in_the_order_asked,
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

    // A page of search results: scattered seqs in the order asked (a seq asked twice comes
    // back twice), the ones the log does not hold left out, one read for all of them.
    let asked = [999, 7, 1000, 0, 500, u64::MAX, 7];
    let page = reader.entries_at("acme", &asked).unwrap();
    assert_eq!(
        page.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [999, 7, 0, 500, 7]
    );
    assert!(
        page.iter()
            .all(|(seq, bytes)| *bytes == entry_bytes("acme", *seq))
    );
    assert_eq!(reader.entries_at("other", &[0, 1, 2, 3]).unwrap().len(), 3);
    assert!(reader.entries_at("acme", &[]).unwrap().is_empty());
    assert!(reader.entries_at("nobody", &[0]).unwrap().is_empty());

    let range = reader.entries("acme", 10, 20, 100).unwrap();
    assert_eq!(
        range.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert!(
        range
            .iter()
            .all(|(seq, bytes)| *bytes == Ok(entry_bytes("acme", *seq)))
    );
    let limited = reader.entries("acme", 990, u64::MAX, 4).unwrap();
    assert_eq!(
        limited.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [990, 991, 992, 993]
    );
    let mut streamed = Vec::new();
    reader
        .for_each_entry("acme", 0, u64::MAX, &mut |seq, bytes| {
            assert_eq!(bytes, Ok(entry_bytes("acme", seq).as_slice()));
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

/// Entries, stored hashes and idempotency keys come back byte for byte (any byte in an entry,
/// any character in a key), and the log's unique constraints hold for every row of an append:
/// a seq, an id, a stored-hash position or a key the log holds already refuses the whole
/// append, and the transaction commits nothing.
fn appends_keep_every_byte_and_every_constraint(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    let entry: Vec<u8> = (0..=255u8).cycle().take(65_535).collect();
    let key = "clé-ключ-鍵-\u{1F511}-'\"-\\-\t";
    let id = entry_id("acme", 0);
    let leaf = leaf_hash(&entry);
    store.begin_write(&["acme"]).unwrap();
    store
        .append(
            "acme",
            &[NewEntry {
                seq: 0,
                id: &id,
                entry: &entry,
            }],
            0,
            &[leaf],
        )
        .unwrap();
    store
        .insert_idempotency("acme", &[(key.to_string(), 0)])
        .unwrap();
    store.commit().unwrap();
    assert_eq!(store.entry("acme", 0).unwrap(), Some(entry.clone()));
    assert_eq!(store.entry_id("acme", 0).unwrap(), Some(id.clone()));
    assert_eq!(store.seq_of_id("acme", &id).unwrap(), Some(0));
    assert_eq!(store.read_hashes("acme", &[0]).unwrap(), [leaf]);
    assert_eq!(store.idempotent_seq("acme", key).unwrap(), Some(0));
    append_committed(store.as_ref(), "acme", 3);
    assert_eq!(store.size("acme").unwrap(), 4);
    let other_id = entry_id("acme", 99);
    let refused: [(&str, Vec<NewEntry<'_>>, u64); 3] = [
        // Seq 5 is new, seq 3 is taken: the whole append is refused, seq 5 included.
        (
            "a seq",
            vec![
                NewEntry {
                    seq: 5,
                    id: &other_id,
                    entry: b"{}",
                },
                NewEntry {
                    seq: 3,
                    id: &other_id,
                    entry: b"{}",
                },
            ],
            merkle::stored_hash_count(4),
        ),
        (
            "an id",
            vec![NewEntry {
                seq: 4,
                id: &id,
                entry: b"{}",
            }],
            merkle::stored_hash_count(4),
        ),
        (
            "a stored-hash position",
            vec![NewEntry {
                seq: 4,
                id: &other_id,
                entry: b"{}",
            }],
            merkle::stored_hash_count(4) - 1,
        ),
    ];
    for (what, rows, first_hash) in refused {
        store.begin_write(&["acme"]).unwrap();
        let appended = store.append("acme", &rows, first_hash, &[leaf_hash(b"{}")]);
        let committed = appended.is_ok() && store.commit().is_ok();
        assert!(!committed, "an append repeating {what} was committed");
        store.rollback().unwrap();
        assert_eq!(store.size("acme").unwrap(), 4, "{what}");
        assert_eq!(store.entry("acme", 5).unwrap(), None, "{what}");
        assert_eq!(store.seq_of_id("acme", &other_id).unwrap(), None, "{what}");
    }
    // Nothing was left half-done: the log goes on from where it was.
    assert_eq!(append_committed(store.as_ref(), "acme", 2), 6);
    let tail = store::tail(store.as_ref(), "acme").unwrap();
    assert_eq!(tail.last_hash, leaf_hash(&entry_bytes("acme", 5)));

    // A group large enough for the bulk path (a binary COPY on PostgreSQL, where a small one
    // is an INSERT) keeps the same promises: every row and key back as written, and one
    // repeated seq refuses the whole group.
    assert_eq!(append_committed(store.as_ref(), "acme", 300), 306);
    for seq in [6, 150, 305] {
        assert_eq!(
            store.entry("acme", seq).unwrap(),
            Some(entry_bytes("acme", seq))
        );
        assert_eq!(
            store
                .read_hashes("acme", &[merkle::stored_hash_count(seq)])
                .unwrap(),
            [leaf_hash(&entry_bytes("acme", seq))]
        );
    }
    let keys: Vec<(String, u64)> = (0..300)
        .map(|n| (format!("bulk-{n}-{key}"), 6 + n))
        .collect();
    store.begin_write(&["acme"]).unwrap();
    store.insert_idempotency("acme", &keys).unwrap();
    store.commit().unwrap();
    for (key, seq) in [&keys[0], &keys[299]] {
        assert_eq!(store.idempotent_seq("acme", key).unwrap(), Some(*seq));
    }
    let ids: Vec<String> = (306..606).map(|seq| entry_id("acme", seq)).collect();
    let mut rows: Vec<NewEntry<'_>> = ids
        .iter()
        .zip(306..)
        .map(|(id, seq)| NewEntry {
            seq,
            id,
            entry: b"{}",
        })
        .collect();
    rows.last_mut().unwrap().seq = 7;
    store.begin_write(&["acme"]).unwrap();
    let appended = store.append(
        "acme",
        &rows,
        merkle::stored_hash_count(306),
        &[leaf_hash(b"{}")],
    );
    let committed = appended.is_ok() && store.commit().is_ok();
    assert!(!committed, "a large append repeating a seq was committed");
    store.rollback().unwrap();
    assert_eq!(store.size("acme").unwrap(), 306);
    assert_eq!(store.entry("acme", 306).unwrap(), None);
    assert_eq!(store.seq_of_id("acme", &ids[0]).unwrap(), None);
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
    let seal = sealtrail_store::StoredSeal {
        day: "2026-12-01".into(),
        issue: 0,
        note: "seal".into(),
        created_at: "t".into(),
    };
    store.insert_seal("acme", &seal).unwrap();
    store.commit().unwrap();
    // A second issue 0 of the same day is refused: a seal is never replaced.
    store.begin_write(&["acme"]).unwrap();
    assert!(store.insert_seal("acme", &seal).is_err());
    store.rollback().unwrap();
    let (entries, hashes) = (
        backend.log_rows("entries", "acme", None),
        backend.log_rows("hashes", "acme", None),
    );
    for sql in [
        format!("UPDATE entries SET entry = entry WHERE {entries}"),
        format!(
            "DELETE FROM entries WHERE {}",
            backend.log_rows("entries", "acme", Some(2))
        ),
        format!("UPDATE hashes SET hash = hash WHERE {hashes}"),
        format!("DELETE FROM hashes WHERE {hashes}"),
        "UPDATE checkpoints SET note = 'forged' WHERE tenant = 'acme'".into(),
        "DELETE FROM checkpoints WHERE tenant = 'acme'".into(),
        "UPDATE seals SET note = 'forged' WHERE tenant = 'acme'".into(),
        "DELETE FROM seals WHERE tenant = 'acme'".into(),
    ] {
        let sql = sql.as_str();
        let error = backend.raw(sql).expect_err(sql);
        assert!(error.message.contains("append-only"), "{sql}: {error}");
    }
    if store.kind() == "postgres" {
        for table in ["entries", "hashes", "checkpoints", "seals"] {
            let sql = format!("TRUNCATE {table}");
            let error = backend.raw(&sql).expect_err(&sql);
            assert!(error.message.contains("append-only"), "{sql}: {error}");
        }
    }
    assert_eq!(store.size("acme").unwrap(), 3);
    assert_eq!(store.checkpoints("acme").unwrap(), ["note"]);
    assert_eq!(
        store.seals("acme", "2026-01-01", "2026-12-31").unwrap(),
        [seal]
    );
}

/// A scan (`for_each_entry`, what the verifier reads) yields every row the log holds, in seq
/// order, however many runs it takes and whatever rows are missing: here some deleted behind
/// the store's back, at the start, across more than a whole run (PostgreSQL reads 10,000
/// seqs at a time) and alone.
fn a_scan_reads_every_row_there_is_across_runs_and_holes(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 25_000);
    let holes = [(0, 5), (9_990, 20_010), (24_500, 24_501)];
    for (from, to) in holes {
        let delete = match store.kind() {
            "postgres" => format!(
                "ALTER TABLE entries DISABLE TRIGGER entries_append_only;
                 DELETE FROM entries WHERE tenant = 'acme' AND seq >= {from} AND seq < {to};
                 ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only;"
            ),
            _ => format!(
                "DROP TRIGGER entries_append_only_delete;
                 DELETE FROM entries
                 WHERE key >= ((SELECT number FROM tenants WHERE name = 'acme') << 44 | {from})
                   AND key < ((SELECT number FROM tenants WHERE name = 'acme') << 44 | {to});
                 CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
                 BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;"
            ),
        };
        backend.raw(&delete).unwrap();
    }
    let kept = |range: std::ops::Range<u64>| -> Vec<u64> {
        range
            .filter(|seq| !holes.iter().any(|(from, to)| (*from..*to).contains(seq)))
            .collect()
    };
    let reader = backend.location().open_reader().unwrap();
    let scan = |from: u64, to: u64| {
        let mut seen = Vec::new();
        reader
            .for_each_entry("acme", from, to, &mut |seq, entry| {
                assert_eq!(entry, Ok(entry_bytes("acme", seq).as_slice()), "seq {seq}");
                seen.push(seq);
            })
            .unwrap();
        seen
    };
    assert_eq!(scan(0, u64::MAX), kept(0..25_000));
    assert_eq!(scan(9_000, 21_000), kept(9_000..21_000));
    assert_eq!(scan(24_999, u64::MAX), [24_999]);
    assert!(scan(25_000, u64::MAX).is_empty());
    // A page (what followers read) is the first `limit` rows there are from a seq on.
    let page = |from: u64, to: u64, limit: usize| -> Vec<u64> {
        let rows = reader.entries("acme", from, to, limit).unwrap();
        assert!(
            rows.iter()
                .all(|(seq, entry)| *entry == Ok(entry_bytes("acme", *seq)))
        );
        rows.into_iter().map(|(seq, _)| seq).collect()
    };
    assert_eq!(page(0, u64::MAX, 10), kept(0..15));
    assert_eq!(page(9_000, u64::MAX, 2_000), kept(9_000..21_020));
    assert_eq!(page(9_000, 20_005, 2_000), kept(9_000..20_005));
    assert!(page(10_000, 20_000, 5).is_empty());
    assert_eq!(page(24_990, u64::MAX, 100), kept(24_990..25_000));
    assert_eq!(page(0, u64::MAX, usize::MAX), kept(0..25_000));

    // Inside a read snapshot, as the verifier reads, a scan of more than one run reads ahead
    // (PostgreSQL: on a second connection, in the same snapshot): an entry put back since the
    // snapshot began is not in it, and is once the snapshot ends.
    reader.begin_read().unwrap();
    assert_eq!(reader.size("acme").unwrap(), 25_000);
    store.begin_write(&["acme"]).unwrap();
    let put_back = store
        .restore_entry(
            "acme",
            15_000,
            &entry_id("acme", 15_000),
            &entry_bytes("acme", 15_000),
        )
        .unwrap();
    assert_eq!(put_back, Restore::Restored);
    store.commit().unwrap();
    assert_eq!(scan(0, u64::MAX), kept(0..25_000));
    assert_eq!(scan(9_000, 21_000), kept(9_000..21_000));
    reader.end_read().unwrap();
    let mut now = kept(0..25_000);
    now.push(15_000);
    now.sort_unstable();
    assert_eq!(scan(0, u64::MAX), now);
}

fn a_changed_entry_is_repaired_only_with_the_bytes_its_leaf_commits_to(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 3);
    // Someone with full rights changes entry 1, putting the trigger back afterwards.
    let row = backend.log_rows("entries", "acme", Some(1));
    let forge = match store.kind() {
        "postgres" => format!(
            "ALTER TABLE entries DISABLE TRIGGER entries_append_only;
             UPDATE entries SET entry = 'forged' WHERE {row};
             ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_append_only;"
        ),
        _ => format!(
            "DROP TRIGGER entries_append_only_update;
             UPDATE entries SET entry = CAST('forged' AS BLOB) WHERE {row};
             CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
             BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;"
        ),
    };
    backend.raw(&forge).unwrap();
    assert_eq!(store.entry("acme", 1).unwrap().unwrap(), b"forged");
    let (original, id) = (entry_bytes("acme", 1), entry_id("acme", 1));

    store.begin_write(&["acme"]).unwrap();
    // Other bytes than the tree commits to are refused; the original bytes are put back.
    let other = entry_bytes("acme", 7);
    assert_eq!(
        store.repair_entry("acme", 1, &id, &other).unwrap(),
        Restore::HashMismatch
    );
    assert_eq!(
        store.repair_entry("acme", 1, &id, &original).unwrap(),
        Restore::Restored
    );
    // An entry that is intact is left alone.
    assert_eq!(
        store
            .repair_entry("acme", 0, &entry_id("acme", 0), &entry_bytes("acme", 0))
            .unwrap(),
        Restore::Present
    );
    store.commit().unwrap();
    assert_eq!(store.entry("acme", 1).unwrap().unwrap(), original);
    // The protections are all in force again, and still refuse a change.
    assert!(store.protections().unwrap().iter().all(|p| p.active));
    let error = backend
        .raw(&format!(
            "UPDATE entries SET entry = entry WHERE {}",
            backend.log_rows("entries", "acme", None)
        ))
        .expect_err("the trigger is back");
    assert!(error.message.contains("append-only"), "{error}");

    // Outside a write transaction nothing is written.
    assert!(store.repair_entry("acme", 1, &id, &original).is_err());
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

/// A row edited outside sealtrail so that it holds no entry bytes (TEXT on SQLite, NULL on
/// PostgreSQL) stands in the range reads as its `BadValue`, and the rows after it still read;
/// the point reads fail naming its seq. Before, the first such row failed the whole read, so
/// the verifier stopped without a seq and the indexer retried the same batch for ever.
fn a_row_without_entry_bytes_is_reported_alone(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    append_committed(store.as_ref(), "acme", 10);
    backend
        .raw(&backend.entry_without_bytes("acme", 4))
        .unwrap();

    let reader = backend.location().open_reader().unwrap();
    let rows = reader.entries("acme", 0, u64::MAX, usize::MAX).unwrap();
    assert_eq!(rows.len(), 10);
    for (seq, row) in &rows {
        match row {
            Ok(bytes) => assert_eq!(*bytes, entry_bytes("acme", *seq)),
            Err(bad) => {
                assert_eq!(*seq, 4);
                assert_eq!(bad.column, "entries.entry");
                assert!(
                    bad.found == "NULL" || bad.found.starts_with("TEXT"),
                    "{bad}"
                );
            }
        }
    }
    assert!(rows[4].1.is_err());

    let mut streamed = Vec::new();
    reader
        .for_each_entry("acme", 0, u64::MAX, &mut |seq, entry| {
            streamed.push((seq, entry.is_ok()));
        })
        .unwrap();
    let expected: Vec<(u64, bool)> = (0..10).map(|seq| (seq, seq != 4)).collect();
    assert_eq!(streamed, expected);

    let bad_row = |result: store::Result<()>| match result {
        Err(store::StoreError::BadRow { tenant, seq, .. }) => (tenant, seq),
        other => panic!("expected a bad row, got {other:?}"),
    };
    assert_eq!(
        bad_row(reader.entry("acme", 4).map(drop)),
        ("acme".to_string(), 4)
    );
    assert_eq!(
        bad_row(reader.entries_at("acme", &[3, 4]).map(drop)),
        ("acme".to_string(), 4)
    );
    assert_eq!(
        reader.entry("acme", 5).unwrap(),
        Some(entry_bytes("acme", 5))
    );
    assert_eq!(reader.entries_at("acme", &[5, 3]).unwrap().len(), 2);
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
            assert_eq!(bytes, Ok(entry_bytes("acme", seq)));
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

/// A lease is held by one connection at a time, across connections of any kind (here a writer
/// and two readers, as the service's archiver and another instance's would be): asking again
/// confirms it to its holder and refuses it to the others, a read snapshot in between changes
/// nothing, and closing the holder's connection lets the next one take it. Leases of other
/// names are independent.
fn a_lease_has_one_holder_until_its_connection_closes(backend: &dyn Backend) {
    let writer = writer(backend);
    let first = backend.location().open_reader().unwrap();
    let second = backend.location().open_reader().unwrap();
    assert!(first.try_lease("archive").unwrap());
    assert!(!second.try_lease("archive").unwrap());
    assert!(!writer.try_lease("archive").unwrap());
    // Asked again (as before each unit of work), the holder still holds it, once: dropping
    // it below releases it for good.
    for _ in 0..3 {
        assert!(first.try_lease("archive").unwrap());
    }
    first.begin_read().unwrap();
    first.tenants().unwrap();
    first.end_read().unwrap();
    assert!(first.try_lease("archive").unwrap());
    assert!(!second.try_lease("archive").unwrap());
    // Another name is another lease.
    assert!(second.try_lease("other-work").unwrap());
    assert!(!first.try_lease("other-work").unwrap());
    // A name that is not one is refused, not hashed into somebody else's lock.
    assert!(first.try_lease("../x").is_err());
    assert!(first.try_lease("").is_err());

    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // PostgreSQL releases a closed session's locks as the backend exits: at once, in practice.
    while !second.try_lease("archive").unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease stays taken after its holder's connection closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!writer.try_lease("archive").unwrap());
}

fn mark(below: u64) -> PruneMark {
    PruneMark {
        below,
        archive: "file:///archive".into(),
        system_seq: 7,
        pruned_at: "2026-12-04T00:00:00.000000Z".into(),
    }
}

fn entries_leave_only_through_an_archived_prune(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    create_tenant(store.as_ref(), "other");
    append_committed(store.as_ref(), "acme", 10);
    append_committed(store.as_ref(), "other", 10);
    let hashes_before: Vec<Hash> = {
        let reader = StoreHashes {
            store: store.as_ref(),
            tenant: "acme",
        };
        let indexes: Vec<u64> = (0..merkle::stored_hash_count(10)).collect();
        reader.read_hashes(&indexes).unwrap()
    };
    assert_eq!(store.prune_mark("acme").unwrap(), None);

    // Without an archive watermark nothing can be pruned.
    store.begin_write(&["acme"]).unwrap();
    assert!(store.prune("acme", &mark(4)).is_err(), "no watermark");
    store.rollback().unwrap();
    assert_eq!(
        store.entry("acme", 0).unwrap(),
        Some(entry_bytes("acme", 0))
    );

    // A watermark of 6: a prune past it is refused, one below it removes exactly that prefix.
    let watermark = ArchiveWatermark {
        size: 6,
        archive: "file:///archive".into(),
        recorded_at: "2026-12-04T00:00:00.000000Z".into(),
    };
    store.begin_write(&["acme"]).unwrap();
    store.record_archive_watermark("acme", &watermark).unwrap();
    store.commit().unwrap();
    // A lower watermark later changes nothing.
    store.begin_write(&["acme"]).unwrap();
    let lower = ArchiveWatermark {
        size: 2,
        ..watermark.clone()
    };
    store.record_archive_watermark("acme", &lower).unwrap();
    store.commit().unwrap();
    assert_eq!(store.archive_watermark("acme").unwrap(), Some(watermark));
    store.begin_write(&["acme"]).unwrap();
    assert!(store.prune("acme", &mark(7)).is_err(), "past the watermark");
    store.rollback().unwrap();
    // Outside a write transaction nothing happens.
    assert!(store.prune("acme", &mark(4)).is_err());
    store.begin_write(&["acme"]).unwrap();
    assert_eq!(store.prune("acme", &mark(4)).unwrap(), 4);
    store.commit().unwrap();
    assert_eq!(store.prune_mark("acme").unwrap(), Some(mark(4)));
    for seq in 0..4 {
        assert_eq!(store.entry("acme", seq).unwrap(), None, "seq {seq} pruned");
    }
    assert_eq!(
        store.entry("acme", 4).unwrap(),
        Some(entry_bytes("acme", 4))
    );
    assert_eq!(store.size("acme").unwrap(), 10);
    let rows = store.entries("acme", 0, 10, 100).unwrap();
    assert_eq!(rows.first().map(|(seq, _)| *seq), Some(4));
    // The stored hashes all stay: the tree, and every proof, is as before.
    let reader = StoreHashes {
        store: store.as_ref(),
        tenant: "acme",
    };
    let indexes: Vec<u64> = (0..merkle::stored_hash_count(10)).collect();
    assert_eq!(reader.read_hashes(&indexes).unwrap(), hashes_before);
    // The other tenant is untouched.
    assert_eq!(store.entries("other", 0, 10, 100).unwrap().len(), 10);

    // A pruned entry is not put back by a restore.
    store.begin_write(&["acme"]).unwrap();
    assert_eq!(
        store
            .restore_entry("acme", 1, &entry_id("acme", 1), &entry_bytes("acme", 1))
            .unwrap(),
        Restore::Pruned
    );
    store.rollback().unwrap();

    // A mark that does not rise is refused, and so is one that takes the newest entry.
    store.begin_write(&["acme"]).unwrap();
    assert!(store.prune("acme", &mark(3)).is_err(), "falling mark");
    store.rollback().unwrap();
    store.begin_write(&["acme"]).unwrap();
    store
        .record_archive_watermark(
            "acme",
            &ArchiveWatermark {
                size: 10,
                archive: "file:///archive".into(),
                recorded_at: "2026-12-04T01:00:00.000000Z".into(),
            },
        )
        .unwrap();
    assert!(store.prune("acme", &mark(10)).is_err(), "the newest entry");
    store.rollback().unwrap();

    // Every other way out stays shut: a DELETE at or above the mark, of another tenant, of
    // the prune record, of a watermark.
    for sql in [
        format!(
            "DELETE FROM entries WHERE {}",
            backend.log_rows("entries", "acme", Some(5))
        ),
        format!(
            "DELETE FROM entries WHERE {}",
            backend.log_rows("entries", "acme", None)
        ),
        format!(
            "DELETE FROM entries WHERE {}",
            backend.log_rows("entries", "other", Some(0))
        ),
        "DELETE FROM prunes WHERE tenant = 'acme'".into(),
        "UPDATE prunes SET below = 9 WHERE tenant = 'acme'".into(),
    ] {
        let sql = sql.as_str();
        let error = backend.raw(sql).expect_err(sql);
        assert!(error.message.contains("append-only"), "{sql}: {error}");
    }
    for sql in [
        "DELETE FROM archive_watermarks WHERE tenant = 'acme'",
        "UPDATE archive_watermarks SET size = 1 WHERE tenant = 'acme'",
    ] {
        let error = backend.raw(sql).expect_err(sql);
        assert!(error.message.contains("only rises"), "{sql}: {error}");
    }
    assert_eq!(store.entries("acme", 0, 10, 100).unwrap().len(), 6);
    assert_eq!(store.entries("other", 0, 10, 100).unwrap().len(), 10);
    assert!(store.protections().unwrap().iter().all(|p| p.active));
}

/// A proof asks for about one stored hash per tree level, scattered over the array, in no
/// particular order; the stores read them in one statement. Whatever the order, repeats or
/// runs among them, the answer is the tenant's own hashes in the order asked, and a position
/// the tenant's array does not hold is named as missing even where another tenant has one.
fn a_proofs_scattered_hashes_are_the_tenants_own_in_the_order_asked(backend: &dyn Backend) {
    let store = writer(backend);
    create_tenant(store.as_ref(), "acme");
    create_tenant(store.as_ref(), "bigger");
    append_committed(store.as_ref(), "acme", 300);
    append_committed(store.as_ref(), "bigger", 700);
    let stored = |tenant: &str, size: u64| {
        let mut tree = TreeBuilder::new();
        let mut out = Vec::new();
        for seq in 0..size {
            tree.push(leaf_hash(&entry_bytes(tenant, seq)), &mut out);
        }
        out
    };
    let acme = stored("acme", 300);
    let bigger = stored("bigger", 700);
    let reader = backend.location().open_reader().unwrap();
    let hashes = StoreHashes {
        store: reader.as_ref(),
        tenant: "acme",
    };
    // Every position of an inclusion and a consistency proof, as the core asks for them.
    let mut proof_positions = Vec::new();
    for (index, size) in [(0u64, 300u64), (137, 300), (299, 300), (5, 77)] {
        let proof = merkle::inclusion_proof(index, size, &hashes).unwrap();
        assert_eq!(
            proof,
            merkle::inclusion_proof(index, size, &acme).unwrap(),
            "inclusion of {index} in {size}"
        );
        proof_positions.push(proof.len());
    }
    for (from, to) in [(1u64, 300u64), (123, 299), (256, 300), (7, 8)] {
        assert_eq!(
            merkle::consistency_proof(from, to, &hashes).unwrap(),
            merkle::consistency_proof(from, to, &acme).unwrap(),
            "consistency from {from} to {to}"
        );
    }
    assert!(proof_positions.iter().all(|&n| n > 1));
    let last = acme.len() as u64 - 1;
    let cases: Vec<Vec<u64>> = vec![
        vec![last, 0, 400, 17, 3],
        vec![9, 9, 2, 9, 2],
        vec![40, 41, 42, 7, 100, 101, 5],
        (0..=last).rev().step_by(13).collect(),
        vec![last],
    ];
    for indexes in cases {
        let want: Vec<Hash> = indexes.iter().map(|&i| acme[i as usize]).collect();
        assert_eq!(hashes.read_hashes(&indexes).unwrap(), want, "{indexes:?}");
        assert_ne!(
            want,
            indexes
                .iter()
                .map(|&i| bigger[i as usize])
                .collect::<Vec<_>>()
        );
    }
    // Positions past acme's array are missing for acme, though "bigger" holds them.
    let past = acme.len() as u64;
    assert!((bigger.len() as u64) > past + 50);
    for (indexes, missing) in [
        (vec![3, past, 1, past + 50], past),
        (vec![past + 50, 3, past], past + 50),
        (vec![10, 2, u64::MAX], u64::MAX),
    ] {
        let error = hashes.read_hashes(&indexes).unwrap_err();
        assert_eq!(
            merkle::MissingHash::in_error(&error),
            Some(missing),
            "{indexes:?}: {error}"
        );
    }
    let theirs = StoreHashes {
        store: reader.as_ref(),
        tenant: "bigger",
    };
    let indexes = vec![past + 50, 3, past, 1];
    assert_eq!(
        theirs.read_hashes(&indexes).unwrap(),
        indexes
            .iter()
            .map(|&i| bigger[i as usize])
            .collect::<Vec<_>>()
    );
}
