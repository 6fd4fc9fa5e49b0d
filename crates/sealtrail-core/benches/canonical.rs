//! What the write path does per event with the canonical form, single-threaded: building an
//! entry (every append), reading one back (every retry under an idempotency key, for its
//! receipt) and the event digest a retry is compared by (twice per retry, never on a first
//! append). Over a clinic-like event of about 600 bytes once canonical.
//!
//! `cargo bench -p sealtrail-core --bench canonical`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry, event_digest};
use sealtrail_core::event::Event;
use sealtrail_core::{Hash, Timestamp};

/// An event with every part the brief's example has: actor, target, context, source, key,
/// disclosure and details.
const EVENT: &str = r#"{
  "occurred_at": "2026-11-23T10:15:02.123Z",
  "action": "patient.record.read", "activity": "read", "outcome": "success",
  "actor": {"id": "u-123", "type": "user", "name": "Dr. Lee", "email": "lee@clinic.example", "roles": ["physician"]},
  "targets": [{"type": "patient", "id": "p-9", "name": "J. Doe"}],
  "context": {"ip": "10.1.2.3", "user_agent": "ehr-web/4.2", "request_id": "req-77", "session_id": "s-5"},
  "source": {"app": "ehr-web", "instance": "pod-7", "seq": 18233},
  "idempotency_key": "req-77:read:p-9",
  "disclosure": {"recipient": "Acme Insurance", "purpose": "payment", "description": "claim summary"},
  "details": {"fields": ["name", "dob"], "reason": "treatment"}
}"#;

fn bench_canonical(c: &mut Criterion) {
    let event = Event::parse(EVENT.as_bytes()).expect("a valid event");
    let server = ServerFields {
        id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        seq: 1_234_567,
        received_at: Timestamp::from_unix_micros(1_795_000_000_000_000).unwrap(),
        prev_hash: Hash([7; 32]),
    };
    let entry = canonical_entry(&event, &server).expect("fits");
    eprintln!("canonical bench: entry of {} bytes", entry.len());
    let mut group = c.benchmark_group("canonical");
    group.throughput(Throughput::Elements(1));
    group.bench_function("canonical_entry", |b| {
        b.iter(|| canonical_entry(black_box(&event), black_box(&server)).unwrap())
    });
    group.bench_function("entry_parse", |b| {
        b.iter(|| Entry::parse(black_box(&entry)).unwrap())
    });
    group.bench_function("event_digest", |b| {
        b.iter(|| event_digest(black_box(&event)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_canonical);
criterion_main!(benches);
