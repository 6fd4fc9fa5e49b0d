//! Verification throughput, single-threaded, over synthetic ~300-byte canonical entries with
//! their stored hashes and a signed checkpoint: the figure behind the brief's target of
//! 1,500,000 events/s per core for offline verification.
//!
//! `cargo bench -p sealtrail-core --bench verify`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::Event;
use sealtrail_core::merkle::TreeBuilder;
use sealtrail_core::note::SignerKey;
use sealtrail_core::verify::{EntryCheck, Verifier, VerifyOptions};
use sealtrail_core::{Hash, Timestamp, leaf_hash};

const ENTRIES: u64 = 100_000;
const ORIGIN: &str = "bench.sealtrail.test/clinic";

struct Log {
    entries: Vec<Vec<u8>>,
    stored: Vec<Hash>,
    checkpoint: Vec<u8>,
    signer: SignerKey,
}

/// A deterministic clinic-like log: record reads and updates, logins, exports.
fn build_log() -> Log {
    let mut rng = Xorshift(42);
    let actions = [
        ("patient.record.read", "read"),
        ("patient.record.read", "read"),
        ("patient.record.update", "update"),
        ("user.login", "login"),
        ("report.export", "export"),
    ];
    let mut entries = Vec::with_capacity(ENTRIES as usize);
    let mut stored = Vec::new();
    let mut tree = TreeBuilder::new();
    let mut prev = Hash::ZERO;
    for seq in 0..ENTRIES {
        let (action, activity) = actions[(rng.next_u32() % 5) as usize];
        // About 300 bytes once the server fields are added, as the throughput target assumes.
        let json = format!(
            r#"{{"action":"{action}","activity":"{activity}","outcome":"success","actor":{{"id":"u-{}"}},"targets":[{{"type":"patient","id":"p-{}"}}]}}"#,
            rng.next_u32() % 500,
            rng.next_u32() % 20_000,
        );
        let event = Event::parse(json.as_bytes()).expect("synthetic events are valid");
        let server = ServerFields {
            id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(seq)),
            seq,
            received_at: Timestamp::from_unix_micros(1_795_000_000_000_000 + seq as i64).unwrap(),
            prev_hash: prev,
        };
        let entry = canonical_entry(&event, &server).expect("fits");
        prev = leaf_hash(&entry);
        tree.push(prev, &mut stored);
        entries.push(entry);
    }
    let signer = SignerKey::generate(ORIGIN, &mut rand_core::OsRng).unwrap();
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_string(),
        size: tree.size(),
        root: tree.root(),
        timestamp: None,
        extensions: vec![],
    }
    .sign(&signer)
    .unwrap()
    .into_bytes();
    Log {
        entries,
        stored,
        checkpoint,
        signer,
    }
}

/// Reproducible data for the benchmark (xorshift64): the figures must be rerunnable.
struct Xorshift(u64);

impl Xorshift {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as u32
    }
}

fn verify(log: &Log, with_stored: bool) -> u64 {
    let keys = [log.signer.verifier()];
    let stored: Option<&dyn sealtrail_core::merkle::HashReader> =
        if with_stored { Some(&log.stored) } else { None };
    let mut verifier =
        Verifier::new(stored, &[&log.checkpoint], &keys, VerifyOptions::default()).unwrap();
    for (seq, entry) in log.entries.iter().enumerate() {
        verifier.push(seq as u64, entry);
    }
    let report = verifier.finish();
    assert!(report.valid, "{:?}", report.violations);
    report.rows_checked
}

/// As `sealtrail`'s store reader does it, on one thread: entries hashed two at a time
/// (`EntryCheck::all`), then fed to the verifier with `push_checked`.
fn verify_checked_in_pairs(log: &Log, checks: &mut Vec<EntryCheck>) -> u64 {
    let keys = [log.signer.verifier()];
    let mut verifier = Verifier::new(
        Some(&log.stored),
        &[&log.checkpoint],
        &keys,
        VerifyOptions::default(),
    )
    .unwrap();
    for (n, chunk) in log.entries.chunks(1024).enumerate() {
        checks.clear();
        EntryCheck::all(chunk.iter().map(Vec::as_slice), checks);
        for (i, check) in checks.iter().enumerate() {
            verifier.push_checked((n * 1024 + i) as u64, check);
        }
    }
    let report = verifier.finish();
    assert!(report.valid, "{:?}", report.violations);
    report.rows_checked
}

fn bench_verify(c: &mut Criterion) {
    let log = build_log();
    let bytes: usize = log.entries.iter().map(Vec::len).sum();
    eprintln!(
        "verify bench: {} entries, mean entry {} bytes",
        log.entries.len(),
        bytes / log.entries.len()
    );
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(20);
    group.bench_function("entries+stored_hashes+checkpoint", |b| {
        b.iter(|| black_box(verify(&log, true)))
    });
    let mut checks = Vec::new();
    group.bench_function("entries+stored_hashes+checkpoint, hashed in pairs", |b| {
        b.iter(|| black_box(verify_checked_in_pairs(&log, &mut checks)))
    });
    group.bench_function("entries+checkpoint", |b| {
        b.iter(|| black_box(verify(&log, false)))
    });
    group.bench_function("scan_entry_links_only", |b| {
        b.iter(|| {
            for entry in &log.entries {
                black_box(sealtrail_core::verify::scan_entry_links(entry).unwrap());
            }
        })
    });
    group.bench_function("leaf_hash_only", |b| {
        b.iter(|| {
            for entry in &log.entries {
                black_box(leaf_hash(entry));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
