//! What the monitor pays per entry of the log, single-threaded: reading the fields its rules
//! need from the stored bytes, and then evaluating the built-in rules on them. Over a stream of
//! 10,000 clinic-like entries of about 600 bytes (500 users, 50 addresses, one failure in ten),
//! ten a millisecond, with a fresh engine for each pass.
//!
//! `cargo bench -p sealtrail-server --bench monitor`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::event::Event;
use sealtrail_core::{Hash, Timestamp};
use sealtrail_server::monitor::engine::{Engine, Observed};
use sealtrail_server::monitor::rules;

const ENTRIES: u64 = 10_000;

fn entries() -> Vec<Vec<u8>> {
    (0..ENTRIES)
        .map(|i| {
            let (action, activity) = if i % 3 == 0 {
                ("auth.login", "login")
            } else {
                ("patient.record.read", "read")
            };
            let outcome = if i % 10 == 0 { "failure" } else { "success" };
            let json = format!(
                r#"{{"occurred_at":"2026-11-23T10:15:02.123Z","action":"{action}","activity":"{activity}",
                "outcome":"{outcome}","actor":{{"id":"u-{actor}","type":"user","name":"Dr. Lee"}},
                "targets":[{{"type":"patient","id":"p-{patient}"}}],
                "context":{{"ip":"10.1.{net}.3","user_agent":"ehr-web/4.2","request_id":"req-{i}"}},
                "source":{{"app":"ehr-web","instance":"pod-7","seq":{i}}},
                "details":{{"fields":["name","dob"],"reason":"treatment"}}}}"#,
                actor = i % 500,
                patient = i % 2000,
                net = i % 50,
            );
            let event = Event::parse(json.as_bytes()).expect("a valid event");
            let server = ServerFields {
                id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(i)),
                seq: i,
                received_at: Timestamp::from_unix_micros(1_795_000_000_000_000 + 100 * i as i64)
                    .expect("in range"),
                prev_hash: Hash([7; 32]),
            };
            canonical_entry(&event, &server).expect("fits")
        })
        .collect()
}

fn bench_monitor(c: &mut Criterion) {
    let entries = entries();
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
