//! The verifier against real logs built with the core's own canonical entries, Merkle tree and
//! signed checkpoints, and against every kind of damage it must name.

use rand_core::OsRng;
use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::Event;
use sealtrail_core::merkle::{TreeBuilder, stored_hash_index};
use sealtrail_core::note::SignerKey;
use sealtrail_core::verify::{
    EntryCheck, Report, Verifier, VerifyOptions, ViolationKind, verify_log,
};
use sealtrail_core::{Hash, Timestamp, leaf_hash};

const ORIGIN: &str = "sealtrail.test/acme";

/// A log as a store would hold it: entries by seq, the stored-hash array, signed checkpoints.
#[derive(Clone)]
struct Log {
    entries: Vec<(u64, Vec<u8>)>,
    stored: Vec<Hash>,
    checkpoints: Vec<Vec<u8>>,
}

fn event_json(seq: u64) -> String {
    let actions = ["patient.record.read", "patient.record.update", "user.login"];
    format!(
        r#"{{"action":"{}","actor":{{"id":"u-{}","type":"user"}},"outcome":"success","source":{{"app":"ehr","seq":{seq}}},"details":{{"seq":9999,"nested":{{"prev_hash":"x"}}}}}}"#,
        actions[seq as usize % 3],
        seq % 7
    )
}

/// Appends `count` entries after the current end of `log`, chaining them from its last entry.
fn append(log: &mut Log, count: u64) {
    append_events(log, count, event_json);
}

/// [`append`] with the events `event_json` makes for each seq.
fn append_events(log: &mut Log, count: u64, event_json: fn(u64) -> String) {
    let mut tree = TreeBuilder::from_reader(log.entries.len() as u64, &log.stored).unwrap();
    let mut prev = log
        .entries
        .last()
        .map_or(Hash::ZERO, |(_, entry)| leaf_hash(entry));
    for _ in 0..count {
        let seq = tree.size();
        let event = Event::parse(event_json(seq).as_bytes()).unwrap();
        let server = ServerFields {
            id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(seq)),
            seq,
            received_at: Timestamp::from_unix_micros(1_795_000_000_000_000 + seq as i64).unwrap(),
            prev_hash: prev,
        };
        let entry = canonical_entry(&event, &server).unwrap();
        prev = leaf_hash(&entry);
        tree.push(prev, &mut log.stored);
        log.entries.push((seq, entry));
    }
}

fn sign_at(log: &mut Log, signer: &SignerKey) {
    let tree = TreeBuilder::from_reader(log.entries.len() as u64, &log.stored).unwrap();
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_string(),
        size: tree.size(),
        root: tree.root(),
        timestamp: Some(Timestamp::from_unix_micros(1_795_000_000_000_000).unwrap()),
        extensions: vec![],
    };
    log.checkpoints
        .push(checkpoint.sign(signer).unwrap().into_bytes());
}

/// A 1,000-entry log with checkpoints at sizes 100, 500 and 1000.
fn build_log(signer: &SignerKey) -> Log {
    let mut log = Log {
        entries: vec![],
        stored: vec![],
        checkpoints: vec![],
    };
    for count in [100, 400, 500] {
        append(&mut log, count);
        sign_at(&mut log, signer);
    }
    log
}

fn verify(log: &Log, signer: &SignerKey) -> Report {
    let notes: Vec<&[u8]> = log.checkpoints.iter().map(Vec::as_slice).collect();
    // The entries are streamed: each is produced, checked and dropped in turn.
    let entries = log.entries.iter().map(|(seq, entry)| (*seq, entry.clone()));
    verify_log(
        entries,
        Some(&log.stored),
        &notes,
        &[signer.verifier()],
        VerifyOptions::default(),
    )
    .unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the entry contains the text to change")
}

/// Where the entry's own `prev_hash` value starts. Keys are sorted, so the top-level one comes
/// after `details`, whose nested `prev_hash` decoy the verifier must not be fooled by.
fn prev_hash_at(entry: &[u8]) -> usize {
    let key = b"\"prev_hash\":\"";
    entry
        .windows(key.len())
        .rposition(|w| w == key)
        .expect("entries have a prev_hash")
        + key.len()
}

/// Overwrites `from` with `to` (same length) inside the entry at `index`.
fn replace_in_entry(log: &mut Log, index: usize, from: &[u8], to: &[u8]) {
    let entry = &mut log.entries[index].1;
    let at = find(entry, from);
    entry[at..at + to.len()].copy_from_slice(to);
}

fn kinds(report: &Report) -> Vec<(Option<u64>, ViolationKind)> {
    report.violations.iter().map(|v| (v.seq, v.kind)).collect()
}

fn signer() -> SignerKey {
    SignerKey::generate(ORIGIN, &mut OsRng).unwrap()
}

#[test]
fn an_intact_log_verifies_against_all_its_checkpoints() {
    let signer = signer();
    let log = build_log(&signer);
    let report = verify(&log, &signer);
    assert!(report.valid, "{:#?}", report.violations);
    assert_eq!(report.rows_checked, 1000);
    assert_eq!(report.first_broken_seq, None);
    let checkpoint = report.checkpoint.expect("the size-1000 checkpoint");
    assert_eq!(checkpoint.size, 1000);
    assert_eq!(checkpoint.origin, ORIGIN);
    assert_eq!(
        checkpoint.timestamp.as_deref(),
        Some("2026-11-18T11:06:40.000000Z")
    );
}

/// Each kind of damage, applied to a fresh copy of the same log, and what the verifier must say:
/// the violations (seq and kind, in report order) and the first broken seq.
#[test]
fn every_kind_of_damage_is_named_at_its_seq() {
    let signer = signer();
    let other_signer = SignerKey::generate(ORIGIN, &mut OsRng).unwrap();
    let pristine = build_log(&signer);
    type Damage = Box<dyn Fn(&mut Log)>;
    type Found = Vec<(Option<u64>, ViolationKind)>;
    let cases: Vec<(&str, Damage, Found, Option<u64>)> = vec![
        (
            "one entry's content changed",
            Box::new(|log| replace_in_entry(log, 250, b"success", b"failure")),
            vec![(Some(250), ViolationKind::ContentMismatch)],
            Some(250),
        ),
        (
            "one entry deleted",
            Box::new(|log| {
                log.entries.remove(300);
            }),
            vec![(Some(300), ViolationKind::MissingSeq)],
            Some(300),
        ),
        (
            "one entry inserted twice",
            Box::new(|log| {
                let copy = log.entries[700].clone();
                log.entries.insert(701, copy);
            }),
            vec![(Some(700), ViolationKind::DuplicateSeq)],
            Some(700),
        ),
        (
            "two entries stored in each other's place",
            Box::new(|log| log.entries.swap(40, 41)),
            vec![(Some(40), ViolationKind::OutOfOrder)],
            Some(40),
        ),
        (
            "two entries' contents swapped under their seqs",
            Box::new(|log| {
                let a = log.entries[40].1.clone();
                log.entries[40].1 = log.entries[41].1.clone();
                log.entries[41].1 = a;
            }),
            vec![
                (Some(40), ViolationKind::SeqMismatch),
                (Some(40), ViolationKind::ContentMismatch),
                (Some(40), ViolationKind::BrokenLink),
                (Some(41), ViolationKind::SeqMismatch),
                (Some(41), ViolationKind::ContentMismatch),
                (Some(41), ViolationKind::BrokenLink),
            ],
            Some(40),
        ),
        (
            "a link rewritten and the entry re-hashed in the store",
            Box::new(|log| {
                let (seq, entry) = &mut log.entries[600];
                let at = prev_hash_at(entry);
                entry[at] = if entry[at] == b'0' { b'1' } else { b'0' };
                let leaf = leaf_hash(entry);
                log.stored[stored_hash_index(0, *seq) as usize] = leaf;
            }),
            vec![
                (Some(600), ViolationKind::BrokenLink),
                (Some(600), ViolationKind::StoredHashMismatch),
                (Some(600), ViolationKind::CheckpointRootMismatch),
                (Some(601), ViolationKind::BrokenLink),
            ],
            Some(600),
        ),
        (
            "an entry appended with a good link but no stored hashes",
            Box::new(|log| {
                let (_, last) = log.entries.last().unwrap().clone();
                let mut forged = String::from_utf8(last.clone())
                    .unwrap()
                    .replacen("\"seq\":999,", "\"seq\":1000,", 1)
                    .into_bytes();
                let at = prev_hash_at(&forged);
                forged[at..at + 64].copy_from_slice(leaf_hash(&last).to_hex().as_bytes());
                log.entries.push((1000, forged));
            }),
            vec![(Some(1000), ViolationKind::UnhashedEntry)],
            Some(1000),
        ),
        (
            "the stored hashes of the tail removed",
            Box::new(|log| {
                log.stored
                    .truncate(sealtrail_core::merkle::stored_hash_count(990) as usize)
            }),
            vec![(Some(990), ViolationKind::UnhashedEntry)],
            Some(990),
        ),
        (
            "the tail cut",
            Box::new(|log| log.entries.truncate(990)),
            vec![(Some(990), ViolationKind::Truncated)],
            Some(990),
        ),
        (
            "the tail rewritten with recomputed hashes and links",
            Box::new(|log| {
                replace_in_entry(log, 850, b"success", b"unknown");
                relink_from(log, 850);
            }),
            vec![(Some(500), ViolationKind::CheckpointRootMismatch)],
            Some(500),
        ),
        (
            "a checkpoint signed by another key",
            Box::new(move |log| {
                let tree = TreeBuilder::from_reader(1000, &log.stored).unwrap();
                let forged = Checkpoint {
                    origin: ORIGIN.to_string(),
                    size: 1000,
                    root: tree.root(),
                    timestamp: None,
                    extensions: vec![],
                };
                log.checkpoints[2] = forged.sign(&other_signer).unwrap().into_bytes();
            }),
            vec![(None, ViolationKind::InvalidSignature)],
            None,
        ),
        (
            "an entry that is not JSON",
            Box::new(|log| log.entries[5].1 = b"not json".to_vec()),
            vec![
                (Some(5), ViolationKind::MalformedEntry),
                (Some(5), ViolationKind::ContentMismatch),
            ],
            Some(5),
        ),
    ];

    for (name, damage, want, want_first) in cases {
        let mut log = pristine.clone();
        damage(&mut log);
        let report = verify(&log, &signer);
        assert!(!report.valid, "{name}: damage went unnoticed");
        assert_eq!(kinds(&report), want, "{name}: {:#?}", report.violations);
        assert_eq!(report.first_broken_seq, want_first, "{name}");
        assert_eq!(report.violation_count, want.len() as u64, "{name}");
    }
}

/// Rewrites entries from `from` on so that their links and stored hashes are consistent again,
/// as an attacker with write access to the store could.
fn relink_from(log: &mut Log, from: usize) {
    let mut rebuilt = Log {
        entries: log.entries[..from].to_vec(),
        stored: log.stored[..sealtrail_core::merkle::stored_hash_count(from as u64) as usize]
            .to_vec(),
        checkpoints: vec![],
    };
    let mut tree = TreeBuilder::from_reader(from as u64, &rebuilt.stored).unwrap();
    let mut prev = leaf_hash(&rebuilt.entries[from - 1].1);
    for (seq, entry) in log.entries[from..].iter() {
        let mut bytes = entry.clone();
        let at = prev_hash_at(&bytes);
        bytes[at..at + 64].copy_from_slice(prev.to_hex().as_bytes());
        prev = leaf_hash(&bytes);
        tree.push(prev, &mut rebuilt.stored);
        rebuilt.entries.push((*seq, bytes));
    }
    log.entries = rebuilt.entries;
    log.stored = rebuilt.stored;
}

#[test]
fn two_signed_checkpoints_that_fork_are_inconsistent() {
    let signer = signer();
    let mut log = build_log(&signer);
    // The key holder signs a second, different size-500 history.
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_string(),
        size: 500,
        root: leaf_hash(b"another history"),
        timestamp: None,
        extensions: vec![],
    };
    log.checkpoints
        .push(checkpoint.sign(&signer).unwrap().into_bytes());
    let report = verify(&log, &signer);
    assert_eq!(
        kinds(&report),
        vec![
            (Some(100), ViolationKind::CheckpointRootMismatch),
            (Some(100), ViolationKind::CheckpointInconsistent),
        ]
    );
}

#[test]
fn a_stored_interior_hash_that_was_changed_is_reported() {
    let signer = signer();
    let mut log = build_log(&signer);
    let index = sealtrail_core::merkle::stored_hash_index(3, 10) as usize;
    log.stored[index] = leaf_hash(b"tampered");
    let report = verify(&log, &signer);
    assert_eq!(
        kinds(&report),
        vec![(Some(80), ViolationKind::StoredHashMismatch)]
    );
}

/// Two copies of the log's key that disagree: a checkpoint counts only if both signed it, so
/// checkpoints re-signed with a substituted key are invalid, and so are the genuine ones.
#[test]
fn a_required_key_must_also_have_signed_every_checkpoint() {
    let signer = signer();
    let substitute = SignerKey::generate(ORIGIN, &mut OsRng).unwrap();
    let log = build_log(&signer);
    let notes: Vec<&[u8]> = log.checkpoints.iter().map(Vec::as_slice).collect();
    let entries = || log.entries.iter().map(|(seq, entry)| (*seq, entry.clone()));
    let with = |keys: &[sealtrail_core::note::VerifierKey], required| {
        verify_log(
            entries(),
            Some(&log.stored),
            &notes,
            keys,
            VerifyOptions {
                required_keys: required,
                ..VerifyOptions::default()
            },
        )
        .unwrap()
    };
    // Required and trusted alike: nothing changes.
    let report = with(&[signer.verifier()], vec![signer.verifier()]);
    assert!(report.valid, "{:#?}", report.violations);
    // Signed by the trusted key but not by the required one: all three are refused.
    let report = with(&[signer.verifier()], vec![substitute.verifier()]);
    assert_eq!(
        kinds(&report),
        vec![(None, ViolationKind::InvalidSignature); 3]
    );
    assert!(
        report.violations[0]
            .detail
            .contains("which must also sign it"),
        "{}",
        report.violations[0].detail
    );
    assert_eq!(report.first_broken_seq, None);
    assert_eq!(report.checkpoint, None);
}

#[test]
fn a_range_in_the_middle_verifies_from_the_stored_frontier() {
    let signer = signer();
    let log = build_log(&signer);
    let notes: Vec<&[u8]> = log.checkpoints.iter().map(Vec::as_slice).collect();
    let options = VerifyOptions {
        start_seq: 300,
        ..VerifyOptions::default()
    };
    let mut verifier =
        Verifier::new(Some(&log.stored), &notes, &[signer.verifier()], options).unwrap();
    for (seq, entry) in &log.entries[300..] {
        verifier.push(*seq, entry);
    }
    let report = verifier.finish();
    assert!(report.valid, "{:#?}", report.violations);
    assert_eq!(report.rows_checked, 700);

    // Without stored hashes there is no frontier to resume from.
    assert!(
        Verifier::new(
            None,
            &notes,
            &[signer.verifier()],
            VerifyOptions {
                start_seq: 300,
                ..VerifyOptions::default()
            }
        )
        .is_err()
    );
}

#[test]
fn entries_alone_still_catch_content_changes_through_links() {
    let signer = signer();
    let mut log = build_log(&signer);
    replace_in_entry(&mut log, 42, b"success", b"failure");
    let notes: Vec<&[u8]> = log.checkpoints.iter().map(Vec::as_slice).collect();
    let mut verifier =
        Verifier::new(None, &notes, &[signer.verifier()], VerifyOptions::default()).unwrap();
    for (seq, entry) in &log.entries {
        verifier.push(*seq, entry);
    }
    let report = verifier.finish();
    assert_eq!(
        kinds(&report),
        vec![
            (Some(43), ViolationKind::BrokenLink),
            (Some(43), ViolationKind::CheckpointRootMismatch),
        ]
    );
}

/// The report's JSON is a contract (`sealtrail verify --json`, `GET /v1/verify`): these names
/// and shapes are what scripts and auditors read.
#[test]
fn the_report_serialises_in_the_documented_shape() {
    let signer = signer();
    let mut log = build_log(&signer);
    replace_in_entry(&mut log, 7, b"success", b"failure");
    let report = verify(&log, &signer);
    let json = serde_json::to_value(&report).unwrap();
    let object = json.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "checkpoint",
            "first_broken_seq",
            "rows_checked",
            "valid",
            "violation_count",
            "violations"
        ]
    );
    assert_eq!(json["valid"], false);
    assert_eq!(json["rows_checked"], 1000);
    assert_eq!(json["first_broken_seq"], 7);
    assert_eq!(json["violations"][0]["seq"], 7);
    assert_eq!(json["violations"][0]["kind"], "content_mismatch");
    assert!(
        json["violations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("stored event_hash")
    );
    assert_eq!(json["checkpoint"]["size"], 1000);
    assert_eq!(json["checkpoint"]["origin"], ORIGIN);
    assert_eq!(json["checkpoint"]["root_hash"].as_str().unwrap().len(), 64);
}

/// Events that hold what the verifier's scanner looks for — `"seq":`, `"prev_hash":"` and
/// brackets — in nested values and strings, at offsets that vary with the seq so that they fall
/// on both sides of the 32- and 64-byte blocks the scanner classifies bytes in. Even seqs have
/// no escapes (the scanner's fast path reads them), odd seqs have escaped quotes in a string
/// (the general scanner reads them).
fn decoy_event_json(seq: u64) -> String {
    let pad = "x".repeat((seq % 70) as usize);
    let hash = "f".repeat(64);
    let next = seq + 1;
    if seq.is_multiple_of(2) {
        format!(
            r#"{{"action":"user.login","actor":{{"id":"u-{pad}"}},"outcome":"success","details":{{"b":"]}}{{[{pad}","n":{{"prev_hash":"{hash}"}},"seq":[{{"seq":{next}}}]}}}}"#
        )
    } else {
        format!(
            r#"{{"action":"user.login","actor":{{"id":"u-{pad}"}},"outcome":"success","details":{{"a":"{pad}\"seq\":{next},\"prev_hash\":\"{hash}\"}}]","b":"]}}{{[{pad}"}}}}"#
        )
    }
}

/// Verifies with every entry hashed and scanned ahead of the verifier, as `sealtrail`'s store
/// reader does on a second thread.
fn verify_checked_ahead(log: &Log, signer: &SignerKey) -> Report {
    let notes: Vec<&[u8]> = log.checkpoints.iter().map(Vec::as_slice).collect();
    let checks: Vec<EntryCheck> = log.entries.iter().map(|(_, e)| EntryCheck::of(e)).collect();
    let keys = [signer.verifier()];
    let mut verifier =
        Verifier::new(Some(&log.stored), &notes, &keys, VerifyOptions::default()).unwrap();
    for ((seq, _), check) in log.entries.iter().zip(&checks) {
        verifier.push_checked(*seq, check);
    }
    verifier.finish()
}

#[test]
fn decoys_inside_strings_and_nested_values_are_not_read_as_the_entry_s_fields() {
    let signer = signer();
    let mut pristine = Log {
        entries: vec![],
        stored: vec![],
        checkpoints: vec![],
    };
    append_events(&mut pristine, 300, decoy_event_json);
    sign_at(&mut pristine, &signer);
    let report = verify(&pristine, &signer);
    assert!(report.valid, "{:#?}", report.violations);
    assert_eq!(report.rows_checked, 300);
    assert_eq!(verify_checked_ahead(&pristine, &signer), report);

    type Damage = Box<dyn Fn(&mut Log)>;
    type Found = Vec<(Option<u64>, ViolationKind)>;
    let cases: Vec<(&str, Damage, Found)> = vec![
        (
            "the entry's own seq changed, the decoys left as they were",
            Box::new(|log| replace_in_entry(log, 150, b",\"seq\":150}", b",\"seq\":151}")),
            vec![
                (Some(150), ViolationKind::SeqMismatch),
                (Some(150), ViolationKind::ContentMismatch),
            ],
        ),
        (
            "a decoy seq inside a string changed to the entry's own",
            Box::new(|log| replace_in_entry(log, 151, b"\\\"seq\\\":152", b"\\\"seq\\\":151")),
            vec![(Some(151), ViolationKind::ContentMismatch)],
        ),
        (
            "the entry's own link changed, the decoy link left as it was",
            Box::new(|log| {
                let entry = &mut log.entries[152].1;
                let at = prev_hash_at(entry);
                entry[at] = if entry[at] == b'0' { b'1' } else { b'0' };
                let leaf = leaf_hash(entry);
                log.stored[stored_hash_index(0, 152) as usize] = leaf;
            }),
            vec![
                (Some(152), ViolationKind::BrokenLink),
                (Some(152), ViolationKind::StoredHashMismatch),
                (Some(152), ViolationKind::CheckpointRootMismatch),
                (Some(153), ViolationKind::BrokenLink),
            ],
        ),
        (
            "a nested decoy seq changed to the entry's own",
            Box::new(|log| replace_in_entry(log, 154, b"{\"seq\":155}", b"{\"seq\":154}")),
            vec![(Some(154), ViolationKind::ContentMismatch)],
        ),
        (
            "a quote removed, leaving a bracket of a string outside it (no escapes)",
            Box::new(|log| {
                let entry = &mut log.entries[156].1;
                let at = find(entry, b"\"b\":\"]") + 4;
                entry.remove(at);
            }),
            vec![
                (Some(156), ViolationKind::MalformedEntry),
                (Some(156), ViolationKind::ContentMismatch),
            ],
        ),
        (
            "a quote removed, leaving a bracket of a string outside it",
            Box::new(|log| {
                let entry = &mut log.entries[153].1;
                let at = find(entry, b"\"b\":\"]") + 4;
                entry.remove(at);
            }),
            vec![
                (Some(153), ViolationKind::MalformedEntry),
                (Some(153), ViolationKind::ContentMismatch),
            ],
        ),
    ];
    for (name, damage, want) in cases {
        let mut log = pristine.clone();
        damage(&mut log);
        let report = verify(&log, &signer);
        assert_eq!(kinds(&report), want, "{name}: {:#?}", report.violations);
        assert_eq!(verify_checked_ahead(&log, &signer), report, "{name}");
    }
}
