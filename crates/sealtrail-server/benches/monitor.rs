//! What the monitor pays per entry of the log, single-threaded: reading the fields its rules
//! need from the stored bytes, and then evaluating the built-in rules on them. Over a stream of
//! 10,000 clinic-like entries (`sealtrail_store::testing::clinic_entries`), with a fresh engine
//! for each pass.
//!
//! `cargo bench -p sealtrail-server --bench monitor`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealtrail_server::monitor::engine::{Engine, Observed};
use sealtrail_server::monitor::rules;
use sealtrail_store::testing::clinic_entries;

const ENTRIES: u64 = 10_000;

fn bench_monitor(c: &mut Criterion) {
    let entries = clinic_entries(ENTRIES);
    let rules = rules::effective(&[]).expect("the built-in rules");
    let mut group = c.benchmark_group("monitor");
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("read", |b| {
        b.iter(|| {
            for bytes in &entries {
                black_box(Observed::from_bytes(black_box(bytes)).expect("reads"));
            }
        })
    });
    group.bench_function("read_and_evaluate", |b| {
        b.iter_batched(
            || Engine::new(rules.clone()),
            |mut engine| {
                let mut raised = 0;
                for bytes in &entries {
                    let observed = Observed::from_bytes(bytes).expect("reads");
                    raised += engine.push(&observed).len();
                }
                black_box(raised)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_monitor);
criterion_main!(benches);
