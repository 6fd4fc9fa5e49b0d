//! The embedded store's cost per appended event, for instruction counts under callgrind:
//! `valgrind --tool=callgrind --toggle-collect='*write_append*' --toggle-collect='*SqliteStore*commit*'
//! target/release/examples/append_cost EVENTS BATCH DIR`. Appends EVENTS entries of about 600
//! bytes (the size of the bench's clinic events) to one tenant's log in groups of BATCH, each
//! group one write transaction with its stored hashes, the way the ledger's writer does; ids
//! are time-ordered UUIDs, as the writer's version-7 ids are. Prints the data directory's size.

use std::path::PathBuf;

use sealtrail_core::merkle::TreeBuilder;
use sealtrail_core::{Hash, leaf_hash};
use sealtrail_store::{Location, NewEntry, Tenant};

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(20_000, |a| a.parse().unwrap());
    let batch: u64 = args.next().map_or(1_000, |a| a.parse().unwrap());
    let dir = PathBuf::from(
        args.next()
            .expect("a data directory that does not exist yet"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let store = Location::new(&dir, None).open_writer().unwrap();
    store.begin_write(&["bench"]).unwrap();
    store
        .insert_tenant(&Tenant {
            name: "bench".into(),
            origin: "sealtrail.bench/bench".into(),
            created_at: "2026-12-04T00:00:00.000000Z".into(),
            vkey: None,
        })
        .unwrap();
    store.commit().unwrap();
    let mut tree = TreeBuilder::new();
    let mut seq = 0u64;
    while seq < events {
        let n = batch.min(events - seq);
        let rows: Vec<(String, Vec<u8>)> = (seq..seq + n)
            .map(|s| {
                // A version-7-like id: 48 bits of milliseconds, then a counter.
                let id = uuid::Uuid::from_u128(
                    ((1_764_806_400_000u128 + u128::from(s / 40)) << 80)
                        | (0x7u128 << 76)
                        | (u128::from(s) << 16 | 0x8000_0000_0000_0000),
                )
                .hyphenated()
                .to_string();
                let entry = format!(
                    r#"{{"action":"patient.record.read","actor":{{"id":"u-{}","type":"user"}},"id":"{id}","occurred_at":"2026-12-04T10:00:00.{:06}Z","outcome":"success","prev_hash":"{}","received_at":"2026-12-04T10:00:00.{:06}Z","seq":{s},"source":{{"app":"ehr","seq":{s}}},"targets":[{{"id":"p-{}","type":"patient"}}],"details":{{"reason":"routine follow-up review of the chart and recent laboratory results","ward":"cardiology-{}"}},"context":{{"ip":"10.0.{}.{}","user_agent":"Mozilla/5.0 (X11; Linux x86_64) clinic-portal/4.2"}}}}"#,
                    s % 97,
                    s % 1_000_000,
                    Hash::ZERO.to_hex(),
                    s % 1_000_000,
                    s * 7919 % 100_000,
                    s % 13,
                    s % 256,
                    s * 31 % 256
                );
                (id, entry.into_bytes())
            })
            .collect();
        let mut hashes = Vec::new();
        let first_hash_index = sealtrail_core::merkle::stored_hash_count(seq);
        for (_, entry) in &rows {
            tree.push(leaf_hash(entry), &mut hashes);
        }
        let entries: Vec<NewEntry<'_>> = rows
            .iter()
            .enumerate()
            .map(|(i, (id, entry))| NewEntry {
                seq: seq + i as u64,
                id,
                entry,
            })
            .collect();
        store.begin_write(&["bench"]).unwrap();
        store
            .append("bench", &entries, first_hash_index, &hashes)
            .unwrap();
        store.commit().unwrap();
        seq += n;
    }
    assert_eq!(store.size("bench").unwrap(), events);
    drop(store);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "{events} events in groups of {batch}: data directory {bytes} bytes, {:.1} bytes per event",
        bytes as f64 / events as f64
    );
}
