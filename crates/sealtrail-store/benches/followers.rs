//! What two followers of the log pay per entry to apply a batch, single-threaded: the gap
//! detector (`GapsDb::apply`) and the query index (`IndexDb::apply`), each given 10,000
//! clinic-like entries of about 600 bytes (500 users, 50 addresses, 8 producer instances
//! counting `source.seq`) in one batch, into a fresh database for every pass. Reading the
//! entries from the log is not included.
//!
//! `cargo bench -p sealtrail-store --bench followers`

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealtrail_store::gaps::GapsDb;
use sealtrail_store::index::{IndexDb, IndexLayout};
use sealtrail_store::sqlite::SqliteStore;
use sealtrail_store::testing::clinic_entries;
use sealtrail_store::{EntryRow, Store};

const ENTRIES: u64 = 10_000;

fn entries() -> Vec<(u64, EntryRow)> {
    (0..ENTRIES)
        .zip(clinic_entries(ENTRIES).into_iter().map(Ok))
        .collect()
}

fn bench_followers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = SqliteStore::open_writer(&dir.path().join("sealtrail.db")).expect("the log opens");
    let entries = entries();
    let fresh = |name: &str| -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(name);
        (dir, path)
    };
    let mut group = c.benchmark_group("followers");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(20);
    group.bench_function("gaps_apply", |b| {
        b.iter_batched(
            || {
                let (dir, path) = fresh("gaps.db");
                (dir, GapsDb::open(&path, &log).expect("opens"))
            },
            |(_dir, mut db)| black_box(db.apply("clinic", &entries, &log).expect("applies")),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("index_apply", |b| {
        b.iter_batched(
            || {
                let (dir, path) = fresh("index.db");
                (dir, open_index(&path, &log))
            },
            |(_dir, mut db)| black_box(db.apply("clinic", &entries, &log).expect("applies")),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn open_index(path: &Path, log: &dyn Store) -> IndexDb {
    IndexDb::open(path, IndexLayout::default(), log).expect("opens")
}

criterion_group!(benches, bench_followers);
criterion_main!(benches);
