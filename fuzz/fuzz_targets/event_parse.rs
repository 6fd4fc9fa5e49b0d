//! Producer JSON through event parsing: never a panic, every accepted event has a
//! canonical entry that reads back to the same bytes, and ingest's direct reader of valid
//! events (`Event::parse_valid`) accepts nothing the ordinary parse refuses and reads every
//! event it accepts exactly as the ordinary parse does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry};
use sealtrail_core::event::Event;
use sealtrail_core::{Hash, Timestamp};

fuzz_target!(|data: &[u8]| {
    let parsed = Event::parse(data);
    if let Some(direct) = Event::parse_valid(data) {
        assert_eq!(parsed.as_ref().ok(), Some(&direct), "parse_valid differs from parse");
    }
    let Ok(event) = parsed else {
        return;
    };
    let server = ServerFields {
        id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        seq: 7,
        received_at: Timestamp::from_unix_micros(1_795_000_000_000_000).unwrap(),
        prev_hash: Hash::ZERO,
    };
    let Ok(entry) = canonical_entry(&event, &server) else {
        return;
    };
    let read_back = Entry::parse(&entry).expect("a canonical entry reads back");
    let again = canonical_entry(&read_back.event, &read_back.server).expect("and re-canonicalises");
    assert_eq!(entry, again);
    let links = sealtrail_core::verify::scan_entry_links(&entry).expect("links are readable");
    assert_eq!(links.seq, 7);
});
