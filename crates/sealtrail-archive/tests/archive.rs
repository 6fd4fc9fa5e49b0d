//! The archive against real stores (embedded and PostgreSQL) and a real directory: run,
//! resume, verify alone, compare with the store, restore.

use std::sync::atomic::{AtomicUsize, Ordering};

use sealtrail_archive::compare::compare;
use sealtrail_archive::restore::{RestoreError, archived_key, restore_tenant, tenants_in};
use sealtrail_archive::verify::verify_archive;
use sealtrail_archive::{
    ArchiveOptions, DirTarget, LockStatus, Put, Target, TargetError, archive_tenant,
};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::merkle;
use sealtrail_core::note::SignerKey;
use sealtrail_core::verify::{VerifyOptions, ViolationKind, verify_log};
use sealtrail_store::testing::Backend;
use sealtrail_store::{NewEntry, Store, StoreHashes, Tenant};

const TENANT: &str = "acme";

fn signer() -> SignerKey {
    SignerKey::generate("archive.test/acme", &mut rand_core::OsRng).unwrap()
}

/// Appends `count` entries to `tenant`'s log and signs a checkpoint of the new size, the way
/// the server's writer does: canonical-looking JSON with `seq` and `prev_hash`, stored hashes
/// from the tree builder.
fn grow(store: &dyn Store, signer: &SignerKey, count: u64) {
    store.begin_write(&[TENANT]).unwrap();
    if store.tenant(TENANT).unwrap().is_none() {
        store
            .insert_tenant(&Tenant {
                name: TENANT.into(),
                origin: signer.name().into(),
                created_at: "2026-12-01T00:00:00Z".into(),
                vkey: Some(signer.verifier().to_string()),
            })
            .unwrap();
    }
    let tail = sealtrail_store::tail(store, TENANT).unwrap();
    let (first, mut prev, mut tree) = (tail.size, tail.last_hash, tail.tree);
    let mut entries = Vec::new();
    let mut hashes = Vec::new();
    let mut out = Vec::new();
    for seq in first..first + count {
        let entry = format!(
            r#"{{"action":"record.read","id":"ev-{seq:06}","idempotency_key":"k-{seq}","prev_hash":"{}","seq":{seq}}}"#,
            prev.to_hex()
        );
        let leaf = leaf_hash(entry.as_bytes());
        tree.push(leaf, &mut out);
        hashes.append(&mut out);
        prev = leaf;
        entries.push((seq, format!("ev-{seq:06}"), entry.into_bytes()));
    }
    let rows: Vec<NewEntry<'_>> = entries
        .iter()
        .map(|(seq, id, entry)| NewEntry {
            seq: *seq,
            id,
            entry,
        })
        .collect();
    store
        .append(TENANT, &rows, merkle::stored_hash_count(first), &hashes)
        .unwrap();
    let size = first + count;
    let note = Checkpoint {
        origin: signer.name().into(),
        size,
        root: tree.root(),
        timestamp: None,
        extensions: vec![],
    }
    .sign(signer)
    .unwrap();
    store
        .insert_checkpoint(TENANT, size, &note, "2026-12-01T00:00:00Z")
        .unwrap();
    store.commit().unwrap();
}

fn small_steps() -> ArchiveOptions {
    ArchiveOptions {
        max_step: 256,
        batch: 16,
    }
}

fn verify_store(store: &dyn Store, signer: &SignerKey) -> sealtrail_core::verify::Report {
    let size = store.size(TENANT).unwrap();
    let entries = store.entries(TENANT, 0, size, size as usize).unwrap();
    let notes = store.checkpoints(TENANT).unwrap();
    let refs: Vec<&[u8]> = notes.iter().map(|n| n.as_bytes()).collect();
    let hashes = StoreHashes {
        store,
        tenant: TENANT,
    };
    verify_log(
        entries.into_iter().map(|(seq, e)| (seq, e.unwrap())),
        Some(&hashes),
        &refs,
        &[signer.verifier()],
        VerifyOptions::default(),
    )
    .unwrap()
}

/// A target that fails after a number of writes: an archive run killed mid-way.
struct Failing<'a> {
    inner: &'a DirTarget,
    left: AtomicUsize,
}

impl Target for Failing<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn lock_status(&self) -> Result<LockStatus, TargetError> {
        self.inner.lock_status()
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, TargetError> {
        self.inner.list(prefix)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        self.inner.get(key)
    }
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put, TargetError> {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 0 {
            return Err(TargetError::Config("the run was killed".into()));
        }
        self.inner.put_new(key, bytes)
    }
}

fn archive_resume_verify_restore(backend: &dyn Backend) {
    let store = backend.location().open_writer().unwrap();
    let signer = signer();
    grow(&*store, &signer, 100);
    grow(&*store, &signer, 200);
    grow(&*store, &signer, 400);
    let dir = tempfile::tempdir().unwrap();
    let target = DirTarget::create(dir.path().join("archive")).unwrap();

    // Killed after 10 objects: no manifest beyond what completed, and the rerun completes
    // without rewriting what was written.
    let failing = Failing {
        inner: &target,
        left: AtomicUsize::new(10),
    };
    let err = archive_tenant(
        &*store,
        TENANT,
        &failing,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("killed"), "{err}");
    let report = archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap();
    assert!(report.from_size < 700, "{report:?}");
    assert_eq!(report.to_size, 700);
    assert!(report.files_already_there > 0, "{report:?}");
    // Steps end at signed sizes at most 256 apart when the log allows: 100, 300, 700.
    let manifests = target.list("acme/manifest/").unwrap().len();
    assert_eq!(manifests, 3, "{:?}", target.list("acme/manifest/"));

    let verified = verify_archive(&target, TENANT, &signer.verifier(), 100).unwrap();
    assert!(verified.report.valid, "{:?}", verified.report.violations);
    assert_eq!(verified.archived_size, 700);
    assert_eq!(verified.report.rows_checked, 700);
    assert_eq!(
        verified.report.checkpoint.as_ref().map(|c| c.size),
        Some(700)
    );

    // Again: nothing to do. Then the log grows and the archive follows.
    let again = archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((again.files_written, again.to_size), (0, 700));
    grow(&*store, &signer, 70);
    let more = archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((more.from_size, more.to_size), (700, 770));
    let compared = compare(&*store, TENANT, &target, &signer.verifier(), 10).unwrap();
    assert!(compared.valid, "{compared:?}");
    assert_eq!(compared.entries_compared, 770);

    // Restore into an empty embedded store and an empty PostgreSQL database: each verifies,
    // and answers inclusion and consistency proofs identical to the original's.
    assert_eq!(tenants_in(&target).unwrap(), vec![TENANT.to_string()]);
    let key = archived_key(&target, TENANT).unwrap();
    assert_eq!(key.to_string(), signer.verifier().to_string());
    let embedded = sealtrail_store::testing::Embedded::new();
    let postgres = sealtrail_store::testing::Postgres::new("archive restore into postgres");
    let mut into: Vec<&dyn Backend> = vec![&embedded];
    if let Some(pg) = &postgres {
        into.push(pg);
    }
    let mut last = None;
    for backend in into {
        let restored = backend.location().open_writer().unwrap();
        let done = restore_tenant(
            &target,
            TENANT,
            &key,
            &*restored,
            "2026-12-02T00:00:00Z",
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((done.entries, done.checkpoints), (770, 4));
        let report = verify_store(&*restored, &signer);
        assert!(report.valid, "{:?}", report.violations);
        assert_eq!(report.checkpoint.map(|c| c.size), Some(770));
        let original = StoreHashes {
            store: &*store,
            tenant: TENANT,
        };
        let copy = StoreHashes {
            store: &*restored,
            tenant: TENANT,
        };
        for seq in [0, 255, 256, 511, 769] {
            assert_eq!(
                merkle::inclusion_proof(seq, 770, &original).unwrap(),
                merkle::inclusion_proof(seq, 770, &copy).unwrap(),
                "inclusion of seq {seq}"
            );
        }
        for old in [1, 100, 300, 700] {
            assert_eq!(
                merkle::consistency_proof(old, 770, &original).unwrap(),
                merkle::consistency_proof(old, 770, &copy).unwrap(),
                "consistency from {old}"
            );
        }
        assert_eq!(restored.idempotent_seq(TENANT, "k-512").unwrap(), Some(512));
        last = Some(restored);
    }
    let restored = last.unwrap();
    // A store that holds the log already is refused.
    let refused =
        restore_tenant(&target, TENANT, &key, &*restored, "x", &mut |_, _| {}).unwrap_err();
    assert!(matches!(refused, RestoreError::NotEmpty(_)), "{refused}");
}

fn a_changed_byte_is_found_with_its_seq(backend: &dyn Backend) {
    let store = backend.location().open_writer().unwrap();
    let signer = signer();
    grow(&*store, &signer, 600);
    let dir = tempfile::tempdir().unwrap();
    let target = DirTarget::create(dir.path()).unwrap();
    archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &ArchiveOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    // Entry 300 is the 45th of bundle 1: change one byte of its action.
    let bundle = dir.path().join("acme/tile/entries/001");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = find(&bytes, b"ev-000300").unwrap();
    let action = bytes[..at]
        .windows(11)
        .rposition(|w| w == b"record.read")
        .unwrap();
    bytes[action] = b'R';
    let mut perms = std::fs::metadata(&bundle).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&bundle, perms).unwrap();
    std::fs::write(&bundle, &bytes).unwrap();

    let verified = verify_archive(&target, TENANT, &signer.verifier(), 100).unwrap();
    assert!(!verified.report.valid);
    assert_eq!(
        verified.report.first_broken_seq,
        Some(300),
        "{:?}",
        verified.report.violations
    );
    let kinds: Vec<(Option<u64>, ViolationKind)> = verified
        .report
        .violations
        .iter()
        .map(|v| (v.seq, v.kind))
        .collect();
    assert!(
        kinds.contains(&(Some(300), ViolationKind::ContentMismatch)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Some(300), ViolationKind::ArchiveFileMismatch)),
        "{kinds:?}"
    );
    // A restore from it is refused.
    let fresh = tempfile::tempdir().unwrap();
    let restored = sealtrail_store::Location::new(fresh.path(), None)
        .open_writer()
        .unwrap();
    let err = restore_tenant(
        &target,
        TENANT,
        &signer.verifier(),
        &*restored,
        "x",
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, RestoreError::ArchiveInvalid { .. }), "{err}");
    assert!(restored.tenant(TENANT).unwrap().is_none());
}

fn compare_names_an_entry_that_differs(backend: &dyn Backend) {
    let store = backend.location().open_writer().unwrap();
    let signer = signer();
    grow(&*store, &signer, 300);
    let dir = tempfile::tempdir().unwrap();
    let target = DirTarget::create(dir.path()).unwrap();
    archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &ArchiveOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    // Someone with the database's owner rights edits entry 123 in the store.
    backend
        .raw(&format!(
            "{}; UPDATE entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'record.read', 'record.READ') AS BLOB) WHERE seq = 123",
            backend.drop_trigger("entries_append_only_update", "entries")
        ))
        .or_else(|_| {
            backend.raw(&format!(
                "{}; UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'record.read', 'record.READ'), 'UTF8') WHERE seq = 123",
                backend.drop_trigger("entries_append_only", "entries")
            ))
        })
        .unwrap();
    let compared = compare(&*store, TENANT, &target, &signer.verifier(), 10).unwrap();
    assert!(!compared.valid);
    let first = compared.first_difference.unwrap();
    assert_eq!(
        (first.seq, first.kind),
        (Some(123), "entry_differs"),
        "{}",
        first.detail
    );
    // The archive on its own is still whole.
    assert!(
        verify_archive(&target, TENANT, &signer.verifier(), 10)
            .unwrap()
            .report
            .valid
    );
}

/// Seals `day` at the log's current size, linked to `previous`, and stores it.
fn seal_day(
    store: &dyn Store,
    signer: &SignerKey,
    day: &str,
    previous: Option<[u8; 32]>,
) -> [u8; 32] {
    let size = store.size(TENANT).unwrap();
    let root = merkle::tree_hash(
        size,
        &StoreHashes {
            store,
            tenant: TENANT,
        },
    )
    .unwrap();
    let note = sealtrail_core::seal::Seal {
        origin: signer.name().into(),
        day: day.into(),
        size,
        root,
        previous,
        supersedes: None,
    }
    .sign(signer)
    .unwrap();
    store.begin_write(&[TENANT]).unwrap();
    store
        .insert_seal(
            TENANT,
            &sealtrail_store::StoredSeal {
                day: day.into(),
                issue: 0,
                note: note.clone(),
                created_at: "2026-12-05T00:00:01Z".into(),
            },
        )
        .unwrap();
    store.commit().unwrap();
    sealtrail_core::seal::seal_hash(note.as_bytes())
}

/// The daily seals go to the archive with the tiles, and the archive alone checks them: a
/// seal file taken out of the archive is a broken link in the chain.
fn seals_are_archived_and_checked_alone(backend: &dyn Backend) {
    let store = backend.location().open_writer().unwrap();
    let signer = signer();
    grow(&*store, &signer, 40);
    let first = seal_day(&*store, &signer, "2026-12-01", None);
    grow(&*store, &signer, 30);
    let second = seal_day(&*store, &signer, "2026-12-02", Some(first));
    seal_day(&*store, &signer, "2026-12-03", Some(second));
    let dir = tempfile::tempdir().unwrap();
    let target = DirTarget::create(dir.path()).unwrap();
    let report = archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.to_size, 70);
    for day in ["2026-12-01", "2026-12-02", "2026-12-03"] {
        assert!(
            dir.path().join(format!("{TENANT}/seal/{day}.0")).exists(),
            "{day}"
        );
    }
    let alone = verify_archive(&target, TENANT, &signer.verifier(), 100).unwrap();
    assert!(alone.report.valid, "{:?}", alone.report.violations);
    // A second run writes no seal again.
    let again = archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &small_steps(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.files_written, 0);

    let middle = dir.path().join(format!("{TENANT}/seal/2026-12-02.0"));
    let mut modes = std::fs::metadata(&middle).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    modes.set_readonly(false);
    std::fs::set_permissions(&middle, modes).unwrap();
    std::fs::remove_file(&middle).unwrap();
    let alone = verify_archive(&target, TENANT, &signer.verifier(), 100).unwrap();
    let kinds: Vec<ViolationKind> = alone.report.violations.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        [ViolationKind::SealBrokenLink],
        "{:?}",
        alone.report.violations
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

sealtrail_store::store_suite!(
    archive_resume_verify_restore,
    a_changed_byte_is_found_with_its_seq,
    compare_names_an_entry_that_differs,
    seals_are_archived_and_checked_alone,
);

#[test]
fn a_manifest_signed_by_another_key_stops_the_run() {
    let backend = sealtrail_store::testing::Embedded::new();
    let store = backend.location().open_writer().unwrap();
    let signer = signer();
    grow(&*store, &signer, 10);
    let dir = tempfile::tempdir().unwrap();
    let target = DirTarget::create(dir.path()).unwrap();
    let impostor = signer_named(signer.name());
    let err = archive_tenant(
        &*store,
        TENANT,
        &target,
        &impostor,
        &ArchiveOptions::default(),
        &mut |_| {},
    );
    // The impostor cannot even read the store's checkpoints as its own.
    assert!(err.is_err());
    archive_tenant(
        &*store,
        TENANT,
        &target,
        &signer,
        &ArchiveOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let verified = verify_archive(&target, TENANT, &impostor.verifier(), 10).unwrap();
    assert!(!verified.report.valid);
    assert!(
        verified
            .report
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::InvalidManifest),
        "{:?}",
        verified.report.violations
    );
}

fn signer_named(name: &str) -> SignerKey {
    SignerKey::generate(name, &mut rand_core::OsRng).unwrap()
}
