//! Tests of the query index: rows read from entries against the full parser, every search
//! plan against a brute-force scan of the log on both layouts, and rebuilding when stale.
use super::*;
use crate::{Location, NewEntry, Tenant};
use sealtrail_core::Hash;
use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry, event_hash};
use sealtrail_core::event::Event;
use sealtrail_core::merkle::{self, TreeBuilder};

mod postings;

/// The row of an entry as [`Entry::parse`](sealtrail_core::canonical::Entry::parse) reads it: the oracle for [`to_row`].
fn row_from_entry(seq: u64, bytes: &[u8]) -> Row {
    let Entry { event, server } = Entry::parse(bytes).unwrap();
    let mut text = String::new();
    for value in event.details.values() {
        push_text(value, &mut text);
    }
    Row {
        seq,
        id: server.id.to_string(),
        at: event
            .occurred_at
            .unwrap_or(server.received_at)
            .unix_micros(),
        action: event.action,
        activity: event.activity.map(|a| a.as_str()),
        outcome: event.outcome,
        actor: event.actor.id,
        ip: event.context.and_then(|c| c.ip).map(|ip| ip.to_string()),
        source: event.source.and_then(|s| s.app),
        targets: distinct_targets(
            event
                .targets
                .into_iter()
                .map(|t| (t.kind.unwrap_or_default(), t.id.unwrap_or_default()))
                .collect(),
        ),
        text,
    }
}

const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
const EVENTS: u64 = 400;

/// A deterministic pseudo-random event: small value sets, so every filter has matches.
fn event(n: u64) -> Value {
    let r = n
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33;
    let pick = |salt: u64, m: u64| (r / (salt + 1)).wrapping_add(salt * 7) % m;
    let mut event = serde_json::json!({
        "action": (["a.read", "a.write", "a.login"][pick(0, 3) as usize]),
        "outcome": (["success", "failure", "unknown"][pick(1, 3) as usize]),
        "actor": {"id": format!("u-{}", pick(2, 5))},
    });
    if pick(3, 4) != 0 {
        event["activity"] = ["read", "update", "login"][pick(4, 3) as usize].into();
    }
    let mut targets = Vec::new();
    for t in 0..pick(5, 4) {
        let kind = ["patient", "claim"][((t + n) % 2) as usize];
        targets.push(serde_json::json!({"type": kind, "id": format!("x-{}", pick(6 + t, 4))}));
    }
    if !targets.is_empty() {
        event["targets"] = Value::Array(targets);
    }
    if pick(10, 3) != 0 {
        event["context"] = serde_json::json!({"ip": format!("10.0.0.{}", pick(11, 3))});
    }
    if pick(12, 2) == 0 {
        event["source"] = serde_json::json!({"app": (["web", "batch"][pick(13, 2) as usize])});
    }
    if pick(14, 3) != 0 {
        event["occurred_at"] = format!("2021-03-04T05:{:02}:00Z", pick(15, 60)).into();
    }
    if pick(16, 2) == 0 {
        let word = WORDS[pick(17, WORDS.len() as u64) as usize];
        event["details"] = serde_json::json!({"note": format!("{word} {}", n % 10)});
    }
    event
}

/// Time blocks of 16 seqs, name blocks of 32, and a filter drives below 24 events: the
/// fixture's 400 events span 25 time blocks and 13 name blocks, and some of its filters are selective while others are not, so that every
/// plan and both sides of the choice between them are exercised.
const SMALL: IndexLayout = IndexLayout {
    block_bits: 4,
    name_block_bits: 5,
    selective_filter: 24,
};

/// The first `count` entries of a log as the write path makes them: canonical entries of
/// [`event`] with consecutive seqs, chained by `prev_hash`, received a millisecond apart.
fn log_entries(count: u64) -> Vec<(u64, Vec<u8>)> {
    log_entries_of(count, event)
}

/// [`log_entries`] of the events `event` makes.
fn log_entries_of(count: u64, event: impl Fn(u64) -> Value) -> Vec<(u64, Vec<u8>)> {
    let start = Timestamp::parse("2026-01-02T03:04:05Z")
        .unwrap()
        .unix_micros();
    let mut prev_hash = Hash::ZERO;
    (0..count)
        .map(|seq| {
            let server = ServerFields {
                id: uuid::Uuid::from_u128(
                    0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(seq),
                ),
                seq,
                received_at: Timestamp::from_unix_micros(start + seq as i64 * 1_000).unwrap(),
                prev_hash,
            };
            let event = Event::from_owned_value(event(seq)).unwrap();
            let bytes = canonical_entry(&event, &server).unwrap();
            prev_hash = event_hash(&bytes);
            (seq, bytes)
        })
        .collect()
}

/// Entries as a store's reads hand them to the index: every row readable.
fn rows(entries: &[(u64, Vec<u8>)]) -> Vec<(u64, EntryRow)> {
    entries
        .iter()
        .map(|(seq, bytes)| (*seq, Ok(bytes.clone())))
        .collect()
}

/// An embedded store in `dir` holding `entries` as the log of `tenant`, with their stored
/// hashes, as the write path leaves it.
fn write_log(dir: &Path, tenant: &str, entries: &[(u64, Vec<u8>)]) -> Box<dyn Store> {
    let store = Location::new(dir, None).open_writer().unwrap();
    let size = store.size(tenant).unwrap();
    assert!(entries.first().is_none_or(|(seq, _)| *seq == size));
    let ids: Vec<String> = entries
        .iter()
        .map(|(_, bytes)| Entry::parse(bytes).unwrap().server.id.to_string())
        .collect();
    let rows: Vec<NewEntry<'_>> = entries
        .iter()
        .zip(&ids)
        .map(|((seq, bytes), id)| NewEntry {
            seq: *seq,
            id,
            entry: bytes,
        })
        .collect();
    let mut tree = TreeBuilder::new();
    let mut hashes = Vec::new();
    for (_, bytes) in entries {
        tree.push(event_hash(bytes), &mut hashes);
    }
    store.begin_write(&[tenant]).unwrap();
    if store.tenant(tenant).unwrap().is_none() {
        store
            .insert_tenant(&Tenant {
                name: tenant.to_string(),
                origin: format!("index.test/{tenant}"),
                created_at: "2026-01-01T00:00:00.000000Z".to_string(),
                vkey: None,
            })
            .unwrap();
    }
    store
        .append(tenant, &rows, merkle::stored_hash_count(size), &hashes)
        .unwrap();
    store.commit().unwrap();
    store
}

/// `entries` as the log of `acme` in a new directory, indexed in `layout` in batches of
/// `batch`: the directory (to keep while the index is used), the index and the tenant's
/// number.
fn indexed(
    entries: &[(u64, Vec<u8>)],
    layout: IndexLayout,
    batch: usize,
) -> (tempfile::TempDir, IndexDb, i64) {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), "acme", entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, layout, log.as_ref()).unwrap();
    for chunk in entries.chunks(batch) {
        db.apply("acme", &rows(chunk), log.as_ref()).unwrap();
    }
    let number = db.mark("acme").unwrap().number;
    (dir, db, number)
}

struct Fixture {
    _dir: tempfile::TempDir,
    entries: Vec<(u64, Vec<u8>)>,
    readers: IndexReaders,
    number: i64,
    layout: IndexLayout,
}

/// A log of [`EVENTS`] entries, indexed in `layout` in batches as a follower hands them
/// over.
fn fixture(layout: IndexLayout) -> Fixture {
    fixture_built(layout, |db, log, entries| {
        for batch in entries.chunks(150) {
            db.apply("acme", &rows(batch), log).unwrap();
        }
    })
}

/// A log of [`EVENTS`] entries, indexed in `layout` by `build`.
fn fixture_built(
    layout: IndexLayout,
    build: impl FnOnce(&mut IndexDb, &dyn Store, &[(u64, Vec<u8>)]),
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(EVENTS);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, layout, log.as_ref()).unwrap();
    build(&mut db, log.as_ref(), &entries);
    let mark = db.mark("acme").unwrap();
    assert_eq!(mark.cursor, EVENTS);
    assert!(!mark.loading());
    assert_eq!(mark.next_seq, EVENTS);
    Fixture {
        _dir: dir,
        entries,
        readers: db.readers(),
        number: mark.number,
        layout,
    }
}

fn all() -> Search {
    Search::unfiltered(10_000)
}

fn searches() -> Vec<Search> {
    let at = |m: u32| Some(Timestamp::parse(&format!("2021-03-04T05:{m:02}:00Z")).unwrap());
    let s = |f: &dyn Fn(&mut Search)| {
        let mut search = all();
        f(&mut search);
        search
    };
    vec![
        all(),
        s(&|s| s.action = Some("a.read".into())),
        s(&|s| s.activity = Some("login".into())),
        s(&|s| s.outcome = Some("failure".into())),
        s(&|s| s.actor = Some("u-3".into())),
        s(&|s| s.ip = Some("10.0.0.1".into())),
        s(&|s| s.source = Some("batch".into())),
        s(&|s| s.action = Some("a.none".into())),
        s(&|s| s.outcome = Some("nonsense".into())),
        s(&|s| {
            s.action = Some("a.login".into());
            s.outcome = Some("unknown".into());
        }),
        s(&|s| {
            s.source = Some("web".into());
            s.outcome = Some("failure".into());
            s.activity = Some("update".into());
        }),
        s(&|s| s.target_type = Some("claim".into())),
        s(&|s| s.target_id = Some("x-2".into())),
        s(&|s| {
            s.target_type = Some("patient".into());
            s.target_id = Some("x-1".into());
        }),
        s(&|s| s.text = text_query("bravo")),
        s(&|s| s.text = text_query("delta 7")),
        s(&|s| {
            s.from = at(10);
            s.to = at(30);
        }),
        s(&|s| s.from = at(50)),
        s(&|s| {
            s.to = at(20);
            s.actor = Some("u-1".into());
            s.target_id = Some("x-0".into());
        }),
        s(&|s| {
            s.from = at(5);
            s.text = text_query("alpha");
            s.outcome = Some("success".into());
        }),
        s(&|s| {
            s.target_id = Some("x-3".into());
            s.text = text_query("echo");
        }),
        s(&|s| {
            s.action = Some("a.write".into());
            s.target_type = Some("patient".into());
            s.ip = Some("10.0.0.2".into());
        }),
        // Time ranges: narrow and wide, open at either end, on either timeline (the
        // fixture's `occurred_at` minutes, and `received_at` for events without one),
        // holding nothing, and with other filters, selective or not.
        s(&|s| {
            s.from = at(7);
            s.to = at(8);
        }),
        s(&|s| s.to = at(3)),
        s(&|s| s.from = at(59)),
        s(&|s| s.from = time("2022-01-01T00:00:00Z")),
        s(&|s| {
            s.from = time("2000-01-01T00:00:00Z");
            s.to = time("2100-01-01T00:00:00Z");
        }),
        s(&|s| s.from = time("2100-01-01T00:00:00Z")),
        s(&|s| {
            // One microsecond: the events of exactly 05:30:00.
            s.from = at(30);
            s.to = time("2021-03-04T05:30:00.000001Z");
        }),
        s(&|s| {
            s.from = at(7);
            s.to = at(40);
            s.action = Some("a.read".into());
        }),
        s(&|s| {
            s.from = time("2022-01-01T00:00:00Z");
            s.outcome = Some("failure".into());
        }),
        s(&|s| {
            s.from = at(20);
            s.to = at(40);
            s.target_type = Some("claim".into());
        }),
        s(&|s| {
            s.to = at(45);
            s.ip = Some("10.0.0.0".into());
            s.source = Some("web".into());
        }),
        s(&|s| {
            s.from = at(1);
            s.to = at(50);
            s.text = text_query("charlie");
            s.target_id = Some("x-1".into());
        }),
        s(&|s| {
            s.from = at(15);
            s.text = text_query("delta 7");
        }),
        // From a prune mark on: the rows below it are never found.
        s(&|s| s.first_seq = 250),
        s(&|s| {
            s.first_seq = 300;
            s.action = Some("a.read".into());
            s.from = at(20);
        }),
        s(&|s| {
            s.first_seq = 2_000_000;
        }),
    ]
}

fn time(text: &str) -> Option<Timestamp> {
    Some(Timestamp::parse(text).unwrap())
}

fn drivers(search: &Search) -> Vec<Driver> {
    let mut drivers = vec![Driver::Events];
    if posting_filter(search).is_some() {
        drivers.push(Driver::Postings);
    }
    if search.from.is_some() || search.to.is_some() {
        drivers.push(Driver::Blocks);
    }
    if search.target_id.is_some() {
        drivers.push(Driver::Target);
    }
    if search.text.is_some() {
        drivers.push(Driver::Text);
    }
    drivers
}

/// The search done the slow way: every entry of the log, parsed and tested.
fn brute_force(rows: &[(u64, Vec<u8>)], search: &Search) -> Vec<u64> {
    let eq =
        |want: &Option<String>, got: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == got);
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let mut seqs: Vec<u64> = rows
        .iter()
        .map(|(seq, bytes)| {
            let row = row_from_entry(*seq, bytes);
            assert_eq!(to_row(*seq, bytes).unwrap(), row, "seq {seq}");
            row
        })
        .filter(|row| {
            row.seq >= search.first_seq
                && eq(&search.action, Some(&row.action))
                && eq(&search.activity, row.activity)
                && eq(&search.outcome, Some(row.outcome.as_str()))
                && eq(&search.actor, Some(&row.actor))
                && eq(&search.ip, row.ip.as_deref())
                && eq(&search.source, row.source.as_deref())
                && search.from.is_none_or(|f| row.at >= f.unix_micros())
                && search.to.is_none_or(|t| row.at < t.unix_micros())
                && (search.target_type.is_none() && search.target_id.is_none()
                    || row.targets.iter().any(|(k, i)| {
                        eq(&search.target_type, Some(k)) && eq(&search.target_id, Some(i))
                    }))
                && search.text.as_deref().is_none_or(|q| {
                    let have = words(&row.text);
                    words(q).iter().all(|w| have.contains(w))
                })
        })
        .map(|row| row.seq)
        .collect();
    if search.order == Order::Desc {
        seqs.reverse();
    }
    seqs
}

/// In the small layout, whose blocks the time ranges span many of, and in the service's.
#[test]
fn every_plan_finds_what_a_scan_of_the_log_finds() {
    every_plan_finds_what_a_scan_finds(fixture(SMALL));
    every_plan_finds_what_a_scan_finds(fixture(IndexLayout::default()));
    // Small batches: a value's postings are many rows, read a few at a time.
    every_plan_finds_what_a_scan_finds(fixture_built(SMALL, |db, log, entries| {
        for batch in entries.chunks(7) {
            db.apply("acme", &rows(batch), log).unwrap();
        }
    }));
}

fn every_plan_finds_what_a_scan_finds(f: Fixture) {
    let reader = f.readers.reader().unwrap();
    let conn = reader.conn();
    for base in searches() {
        for order in [Order::Asc, Order::Desc] {
            let search = Search {
                order,
                ..base.clone()
            };
            let want = brute_force(&f.entries, &search);
            for driver in drivers(&search) {
                let range = key_range(f.number, &search).unwrap();
                let got = execute(conn, f.layout, &search, range, driver).unwrap();
                assert_eq!(got, want, "{driver:?} {search:?}");
                // Pages of 3 through the cursor add up to the same.
                let mut paged: Vec<u64> = Vec::new();
                let mut page = Search {
                    limit: 3,
                    ..search.clone()
                };
                while let Some(range) = key_range(f.number, &page) {
                    let seqs = execute(conn, f.layout, &page, range, driver).unwrap();
                    paged.extend(&seqs);
                    match seqs.last() {
                        Some(&last) if seqs.len() == 3 => page.after = Some(last),
                        _ => break,
                    }
                }
                assert_eq!(paged, want, "paged {driver:?} {search:?}");
            }
            assert_eq!(super::search(&reader, f.number, &search).unwrap(), want);
            // And pages of 7 through the cursor, each planned on its own as the API does.
            let mut paged: Vec<u64> = Vec::new();
            let mut page = Search {
                limit: 7,
                ..search.clone()
            };
            loop {
                let seqs = super::search(&reader, f.number, &page).unwrap();
                assert!(seqs.len() <= 7);
                paged.extend(&seqs);
                match seqs.last() {
                    Some(&last) if seqs.len() == 7 => page.after = Some(last),
                    _ => break,
                }
            }
            assert_eq!(paged, want, "paged {search:?}");
        }
    }
    assert!(!brute_force(&f.entries, &all()).is_empty());
}

/// `time_spans` covers every time with at most the intervals it is given, in order and
/// disjoint, keeping the widest gaps open: clusters stay apart while there are few enough.
#[test]
fn time_spans_cover_every_time_with_at_most_so_many_intervals() {
    let points = |ps: &[i64]| ps.iter().map(|&p| (p, p)).collect::<Vec<_>>();
    assert_eq!(
        time_spans(points(&[1000, 0, 101, 2, 1, 100, 5000]), 3),
        [(0, 101), (1000, 1000), (5000, 5000)]
    );
    assert_eq!(time_spans(points(&[7, 7, 7]), 4), [(7, 7)]);
    assert_eq!(
        time_spans(vec![(0, 10), (5, 20), (30, 40)], 4),
        [(0, 20), (30, 40)]
    );
    assert_eq!(time_spans(points(&[3, 1, 2]), 1), [(1, 3)]);
    assert_eq!(time_spans(Vec::new(), 4), Vec::<(i64, i64)>::new());
    // Pseudo-random times, merged with earlier spans as batches are: every time is covered.
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        (state >> 33) as i64 % 100_000 - 50_000
    };
    let mut spans: Vec<(i64, i64)> = Vec::new();
    let mut all: Vec<i64> = Vec::new();
    for _ in 0..50 {
        let batch: Vec<i64> = (0..40).map(|_| next()).collect();
        all.extend(&batch);
        spans.extend(points(&batch));
        spans = time_spans(spans, BLOCK_SPANS);
        assert!(spans.len() <= BLOCK_SPANS);
        assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
        assert!(spans.iter().all(|(lo, hi)| lo <= hi));
        for t in &all {
            assert!(
                spans.iter().any(|(lo, hi)| lo <= t && t <= hi),
                "{t} {spans:?}"
            );
        }
    }
}

/// A time range walks only the time blocks with an event time that can be in it, and finds
/// what a scan of the log finds: events a minute apart, a third without `occurred_at` (the
/// server's time, years later, counts), some sent days late, indexed in batches that end
/// inside blocks. A row whose time is changed behind the index's back, into a block whose
/// times miss the range, is then not found: that block is not visited.
#[test]
fn a_time_range_walks_only_the_blocks_its_events_can_be_in() {
    let start = Timestamp::parse("2021-03-04T00:00:00Z")
        .unwrap()
        .unix_micros();
    let text = |micros: i64| Timestamp::from_unix_micros(micros).unwrap().to_string();
    let event_at = |seq: u64| {
        let mut event = event(seq);
        let object = event.as_object_mut().unwrap();
        match seq % 3 {
            0 => drop(object.remove("occurred_at")),
            _ if seq % 47 == 5 => {
                object.insert(
                    "occurred_at".into(),
                    text(start - 3 * 86_400_000_000).into(),
                );
            }
            _ => {
                object.insert(
                    "occurred_at".into(),
                    text(start + seq as i64 * 60_000_000).into(),
                );
            }
        }
        event
    };
    let entries = log_entries_of(EVENTS, event_at);
    let (_dir, db, number) = indexed(&entries, SMALL, 37);
    let readers = db.readers();
    let reader = readers.reader().unwrap();
    let minute = |m: i64| Some(Timestamp::from_unix_micros(start + m * 60_000_000).unwrap());
    let windows = [
        (minute(10), minute(12)),
        (minute(100), minute(140)),
        (minute(395), minute(400)),
        (minute(-3 * 1440), minute(-3 * 1440 + 1)),
        (
            time("2026-01-02T03:04:05.100Z"),
            time("2026-01-02T03:04:05.120Z"),
        ),
        (minute(390), None),
        (None, minute(5)),
        (minute(1000), minute(2000)),
    ];
    let check = |search: &Search| -> Vec<u64> {
        let want = brute_force(&entries, search);
        let range = key_range(number, search).unwrap();
        let got = execute(reader.conn(), SMALL, search, range, Driver::Blocks).unwrap();
        assert_eq!(got, want, "{search:?}");
        let mut paged: Vec<u64> = Vec::new();
        let mut page = Search {
            limit: 3,
            ..search.clone()
        };
        while let Some(range) = key_range(number, &page) {
            let seqs = execute(reader.conn(), SMALL, &page, range, Driver::Blocks).unwrap();
            paged.extend(&seqs);
            match seqs.last() {
                Some(&last) if seqs.len() == 3 => page.after = Some(last),
                _ => break,
            }
        }
        assert_eq!(paged, want, "paged {search:?}");
        want
    };
    for (from, to) in windows {
        for order in [Order::Asc, Order::Desc] {
            check(&Search {
                from,
                to,
                order,
                ..all()
            });
        }
    }
    // Minutes 10 and 11 are seqs 10 and 11; seq 301 happened at minute 301, in block 18
    // (seqs 288-303), whose times are minutes 289-303 and the server's.
    let window = Search {
        from: minute(10),
        to: minute(12),
        ..all()
    };
    assert_eq!(check(&window), [10, 11]);
    db.conn
        .execute(
            "UPDATE events SET at = ?2 WHERE key = ?1",
            params![key(number, 301), start + 11 * 60_000_000],
        )
        .unwrap();
    let range = key_range(number, &window).unwrap();
    let got = execute(reader.conn(), SMALL, &window, range, Driver::Blocks).unwrap();
    assert_eq!(got, [10, 11], "block 18 was visited");
    // In a block that the range meets, the same change is found.
    db.conn
        .execute(
            "UPDATE events SET at = ?2 WHERE key = ?1",
            params![key(number, 13), start + 11 * 60_000_000],
        )
        .unwrap();
    let got = execute(reader.conn(), SMALL, &window, range, Driver::Blocks).unwrap();
    assert_eq!(got, [10, 11, 13]);
}

/// A time range drives unless another filter is selective; the fixture's blocks are small
/// enough that time ranges span many of them.
#[test]
fn time_ranges_drive_unless_another_filter_is_selective() {
    let f = fixture(SMALL);
    let reader = f.readers.reader().unwrap();
    let conn = reader.conn();
    const {
        assert!(
            EVENTS >> SMALL.block_bits >= 8,
            "the fixture spans several blocks"
        )
    };
    let at = |m: u32| Some(Timestamp::parse(&format!("2021-03-04T05:{m:02}:00Z")).unwrap());
    let window = Search {
        from: at(10),
        to: at(50),
        ..all()
    };
    let choose = |search: &Search| {
        choose_driver(conn, SMALL, search, key_range(f.number, search).unwrap()).unwrap()
    };
    assert_eq!(choose(&window), Driver::Blocks);
    // Popular: more than SELECTIVE_FILTER events, so time drives.
    let popular = Search {
        outcome: Some("success".into()),
        ..window.clone()
    };
    assert!(
        brute_force(
            &f.entries,
            &Search {
                from: None,
                to: None,
                ..popular.clone()
            }
        )
        .len() as i64
            >= SMALL.selective_filter
    );
    assert_eq!(choose(&popular), Driver::Blocks);
    // Rare: fewer, so it drives.
    let rare = Search {
        text: text_query("delta 7"),
        ..window.clone()
    };
    assert!(
        (brute_force(
            &f.entries,
            &Search {
                from: None,
                to: None,
                ..rare.clone()
            }
        )
        .len() as i64)
            < SMALL.selective_filter
    );
    assert_eq!(choose(&rare), Driver::Text);
    // Without a time range, the outcome's postings drive.
    assert_eq!(
        choose(&Search {
            from: None,
            to: None,
            ..popular.clone()
        }),
        Driver::Postings
    );
    // A rare value of a name kept in postings drives the time range too.
    let rare_action = Search {
        action: Some("a.rare".into()),
        ..window.clone()
    };
    assert_eq!(choose(&rare_action), Driver::Postings);
}

/// What `EXPLAIN QUERY PLAN` says of `sql`, one step per line.
fn query_plan(conn: &Connection, sql: &Sql) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
        .unwrap();
    stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The plans SQLite makes of each driver's SQL: an index walked in key order with no sort
/// (except the bounded one within a block of the time index) and never a full scan.
#[test]
fn plans_walk_an_index_in_key_order() {
    let f = fixture(SMALL);
    let reader = f.readers.reader().unwrap();
    let conn = reader.conn();
    for base in searches() {
        for order in [Order::Asc, Order::Desc] {
            let search = Search {
                order,
                ..base.clone()
            };
            for driver in drivers(&search) {
                let range = key_range(f.number, &search).unwrap();
                let sql = search_sql(&search, range, driver, SMALL);
                let plan = query_plan(conn, &sql);
                let context = format!("{driver:?} {search:?}\n{}\n{plan:#?}", sql.text);
                let sorts = plan.iter().any(|step| step.contains("TEMP B-TREE"));
                // Blocks are sorted in Rust as they complete (`walk_blocks`).
                assert!(!sorts, "{context}");
                // The walk over blocks is the recursive CTE `b`, outermost; the candidates of
                // postings are the array `c`, outermost, each looked up by key.
                let walked = by_block(&search, driver);
                let first = if walked || driver == Driver::Postings {
                    plan.iter()
                        .find(|step| step.starts_with("SEARCH e ") || step.starts_with("SEARCH g "))
                        .expect("a search of events or targets")
                } else {
                    &plan[0]
                };
                let (starts, names) = match driver {
                    Driver::Blocks => ("SEARCH e USING ", "INDEX events_by_block (<expr>=?"),
                    Driver::Target => ("SEARCH g USING PRIMARY KEY (block=? AND id=?", ""),
                    Driver::Text => ("SCAN f VIRTUAL TABLE", ""),
                    Driver::Postings => ("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)", ""),
                    Driver::Events if walked => ("SEARCH e USING ", "(<expr>=? AND "),
                    Driver::Events => ("SEARCH e USING ", ""),
                };
                assert!(
                    first.starts_with(starts) && first.contains(names),
                    "{context}"
                );
                assert!(
                    plan.iter().all(|step| !step.starts_with("SCAN ")
                        || step.contains("VIRTUAL TABLE")
                        || (walked && (step == "SCAN b" || step == "SCAN CONSTANT ROW"))),
                    "{context}"
                );
            }
        }
    }
}

/// A name kept by block with an outcome, newest first or oldest first —
/// `ip=…&outcome=failure&order=desc` — is one range per block of the name's
/// `(block, name, outcome)` index, in key order: a page reads its own rows and no others,
/// however many of the name's events have another outcome. (With an index of the name alone,
/// SQLite walked every event of the address and looked up each one's outcome: a second per
/// page at 2.5 million events when failures were rare.) Also with a filter that no index
/// holds (a time bound checked per row).
#[test]
fn a_name_with_an_outcome_is_one_index_range() {
    let f = fixture(IndexLayout::default());
    let reader = f.readers.reader().unwrap();
    let conn = reader.conn();
    type Set = fn(&mut Search);
    let names: [(&str, Set); 2] = [
        ("actor", |s| s.actor = Some("u-3".into())),
        ("ip", |s| s.ip = Some("10.0.0.1".into())),
    ];
    for (name, set) in names {
        for order in [Order::Desc, Order::Asc] {
            for outcome in EventOutcome::ALL {
                for from in [None, time("2000-01-01T00:00:00Z")] {
                    let mut search = Search {
                        order,
                        outcome: Some(outcome.as_str().into()),
                        from,
                        ..all()
                    };
                    set(&mut search);
                    let range = key_range(f.number, &search).unwrap();
                    let sql = search_sql(&search, range, Driver::Events, IndexLayout::default());
                    let plan = query_plan(conn, &sql);
                    let range = format!(
                        "INDEX events_by_{name} (<expr>=? AND {name}=? AND outcome=? AND rowid>? AND rowid<?)"
                    );
                    let searches: Vec<&String> = plan
                        .iter()
                        .filter(|step| step.starts_with("SEARCH "))
                        .collect();
                    assert!(
                        searches.len() == 1
                            && searches[0].starts_with("SEARCH e USING ")
                            && searches[0].ends_with(&range)
                            && !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                        "{}\n{plan:#?}",
                        sql.text
                    );
                    assert_eq!(
                        super::search(&reader, f.number, &search).unwrap(),
                        brute_force(&f.entries, &search),
                        "{search:?}"
                    );
                }
            }
        }
    }
}

/// A search over its time limit is interrupted, and the connection serves the next search
/// as before. A limit of zero has passed at SQLite's first look at the clock, after
/// [`PROGRESS_STEPS`] steps of its virtual machine; each of these searches reads every
/// event of the fixture, which takes more steps than that (a count that depends on the
/// data and SQLite's code, not on the machine). A limit of an hour is never reached.
#[test]
fn a_search_over_its_time_limit_is_interrupted() {
    let f = fixture(SMALL);
    let reader = f.readers.reader().unwrap();
    let everything = [
        all(),
        Search {
            order: Order::Desc,
            ..all()
        },
        Search {
            from: time("2000-01-01T00:00:00Z"),
            to: time("2100-01-01T00:00:00Z"),
            ..all()
        },
    ];
    for search in everything {
        let want = brute_force(&f.entries, &search);
        match reader.search_within(f.number, &search, Duration::ZERO) {
            Err(IndexError::TimedOut { limit }) => assert_eq!(limit, Duration::ZERO),
            other => panic!("{search:?}: {other:?}"),
        }
        let hour = Duration::from_secs(3600);
        assert_eq!(
            reader.search_within(f.number, &search, hour).unwrap(),
            want,
            "{search:?}"
        );
        assert_eq!(reader.search(f.number, &search).unwrap(), want);
    }
    let error = IndexError::TimedOut {
        limit: Duration::from_millis(1500),
    };
    assert_eq!(
        error.to_string(),
        "the search ran longer than its limit of 1500 ms and was stopped"
    );
}

/// The service's layout is schema version 8 (version 7 kept the targets' types in a b-tree
/// `(type, key)` rather than as postings and on the `events` row; version 6 kept action,
/// activity, source and the outcome in a b-tree each rather than as postings; version 5 had
/// no event times per block, so a time range visited every block; version 4 kept actors,
/// addresses and target ids in one b-tree each rather than by block; version 3 had no load
/// tables for catching up in bulk, version 2 kept outcomes as names and indexed each name
/// alone; such an index is rebuilt); another block size is a schema of its own and is
/// rebuilt rather than misread.
#[test]
fn the_production_layout_is_schema_version_8() {
    assert_eq!(SCHEMA_VERSION, 8);
    assert_eq!(IndexLayout::default(), IndexLayout::PRODUCTION);
    assert_eq!(IndexLayout::default().block_bits, 13);
    assert_eq!(IndexLayout::default().name_block_bits, 16);
    assert_eq!(IndexLayout::default().selective_filter, 4096);
    assert_eq!(IndexLayout::default().schema_version(), 8);
    assert_ne!(SMALL.schema_version(), 8);

    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), "acme", &[]);
    let path = crate::DataDir::new(dir.path()).index();
    drop(IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap());
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 8);
    let sql = |name: &str| -> String {
        conn.query_row(
            "SELECT sql FROM sqlite_schema WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .unwrap()
    };
    for (index, bits) in [
        ("events_by_block", 13),
        ("events_by_actor", 16),
        ("events_by_ip", 16),
    ] {
        let sql = sql(index);
        assert!(sql.contains(&format!("((key >> {bits})")), "{sql}");
    }
    let targets = sql("targets");
    assert!(
        targets.contains("PRIMARY KEY (block, id, key, type)"),
        "{targets}"
    );
    let times = sql("block_times");
    assert!(times.contains("PRIMARY KEY (block, lo)"), "{times}");
    let postings = sql("postings");
    assert!(
        postings.contains("PRIMARY KEY (name, value, outcome, last)"),
        "{postings}"
    );
    // The names with few values have no index of their own any more, nor the targets' types.
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        ["events_by_actor", "events_by_block", "events_by_ip"]
    );
    let mut secondary = SECONDARY_INDEXES.to_vec();
    secondary.sort_unstable();
    assert_eq!(indexes, secondary);
}

/// An index is kept across opens while it matches the log, and rebuilt from nothing when
/// its layout differs or the log at its watermark holds another entry.
#[test]
fn an_index_is_kept_while_it_matches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(40);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
    let mark = db
        .apply("acme", &rows(&entries[..30]), log.as_ref())
        .unwrap();
    assert_eq!(mark.map(|m| m.next_seq), Some(30));
    drop(db);

    let db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
    assert_eq!(db.mark("acme"), mark);
    drop(db);

    let db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
    assert_eq!(db.mark("acme"), None, "another layout is rebuilt");
    drop(db);

    // Another log whose entry 29 has another id: the index was built from something else.
    let mut db = IndexDb::open(&path, SMALL, log.as_ref()).unwrap();
    db.apply("acme", &rows(&entries[..30]), log.as_ref())
        .unwrap();
    drop(db);
    let other = tempfile::tempdir().unwrap();
    let mut replaced = log_entries(40);
    replaced[29].1 = {
        let mut entry = Entry::parse(&replaced[29].1).unwrap();
        entry.server.id = uuid::Uuid::from_u128(29);
        entry.to_bytes().unwrap()
    };
    let other_log = write_log(other.path(), "acme", &replaced);
    let db = IndexDb::open(&path, SMALL, other_log.as_ref()).unwrap();
    assert_eq!(db.mark("acme"), None, "a replaced log is indexed again");
}

/// Entries are searchable exactly up to the mark, batch by batch.
#[test]
fn a_batch_moves_the_mark_past_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(25);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
    assert_eq!(db.apply("acme", &[], log.as_ref()).unwrap(), None);
    let first = db
        .apply("acme", &rows(&entries[..10]), log.as_ref())
        .unwrap()
        .unwrap();
    assert_eq!(first.next_seq, 10);
    let readers = db.readers();
    let found = |db: &IndexDb| {
        let number = db.mark("acme").unwrap().number;
        readers.reader().unwrap().search(number, &all()).unwrap()
    };
    assert_eq!(found(&db), (0..10).collect::<Vec<u64>>());
    let second = db
        .apply("acme", &rows(&entries[10..]), log.as_ref())
        .unwrap()
        .unwrap();
    assert_eq!(
        second,
        Mark {
            number: first.number,
            next_seq: 25,
            cursor: 25,
        }
    );
    assert_eq!(found(&db), (0..25).collect::<Vec<u64>>());
    assert_eq!(db.marks().len(), 1);
}

/// The index's WAL is kept like the log's: once indexing stops, its WAL is truncated.
#[test]
fn an_idle_index_wal_is_truncated() {
    use crate::sqlite::checkpoint::{Mode, Step, WalPolicy};
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(EVENTS);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let policy = WalPolicy {
        idle_steps: 2,
        ..WalPolicy::index()
    };
    let (mut db, mut keeper) =
        IndexDb::open_keeping(&path, IndexLayout::default(), log.as_ref(), policy).unwrap();
    let wal = crate::sqlite::wal::wal_path(&path);
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    for batch in entries.chunks(100) {
        db.apply("acme", &rows(batch), log.as_ref()).unwrap();
        keeper.step().unwrap();
    }
    assert!(wal_len() > 0);
    assert_eq!(keeper.step().unwrap(), Step::Below);
    assert_eq!(keeper.step().unwrap(), Step::Ran(Mode::Truncate, true));
    assert_eq!(wal_len(), 0);
    let number = db.mark("acme").unwrap().number;
    let found = db
        .readers()
        .reader()
        .unwrap()
        .search(number, &all())
        .unwrap();
    assert_eq!(
        found.len(),
        EVENTS as usize,
        "every entry is still searchable"
    );
}

/// The index's own checkpoint thread truncates the WAL of an index that stopped indexing,
/// while the index stays open.
#[test]
fn the_index_truncates_its_idle_wal_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(EVENTS);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
    for batch in entries.chunks(100) {
        db.apply("acme", &rows(batch), log.as_ref()).unwrap();
    }
    let wal_len = || crate::sqlite::checkpoint::wal_bytes(&path);
    assert!(wal_len() > 0);
    // Waits for the thread (five seconds without a commit), bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while wal_len() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle WAL stayed at {} bytes",
            wal_len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let number = db.mark("acme").unwrap().number;
    let found = db
        .readers()
        .reader()
        .unwrap()
        .search(number, &all())
        .unwrap();
    assert_eq!(
        found.len(),
        EVENTS as usize,
        "every entry is still searchable"
    );
}

/// The indexer restarts the index's WAL itself between two batches once it passes the restart
/// size, without waiting for the keeper's next look: the WAL holds at most the restart size and
/// one batch, not every batch indexed.
#[test]
fn the_indexer_restarts_the_wal_between_batches() {
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(EVENTS);
    let log = write_log(dir.path(), "acme", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let policy = crate::sqlite::checkpoint::WalPolicy {
        restart_bytes: 64 * 1024,
        ..crate::sqlite::checkpoint::WalPolicy::index()
    };
    // The keeper never looks.
    let (mut db, _keeper) =
        IndexDb::open_keeping(&path, IndexLayout::default(), log.as_ref(), policy).unwrap();
    let wal = crate::sqlite::wal::wal_path(&path);
    // The bytes of the WAL's current generation: what it holds since it last started over.
    let in_use = || {
        let file = std::fs::File::open(&wal).unwrap();
        crate::sqlite::wal::inspect(file).unwrap().committed_bytes
    };
    // Salt-1 of the WAL's header, which SQLite changes each time the WAL starts over.
    let generation = || {
        let bytes = std::fs::read(&wal).unwrap();
        bytes.get(16..20).map(|salt| salt.to_vec())
    };
    let (mut largest_batch, mut largest, mut batches) = (0, 0, 0);
    for batch in entries.chunks(10) {
        let (before, started) = (in_use(), generation());
        db.apply("acme", &rows(batch), log.as_ref()).unwrap();
        let after = in_use();
        // Started over before the batch, or not.
        let written = if generation() == started {
            after - before
        } else {
            after
        };
        largest_batch = largest_batch.max(written);
        largest = largest.max(after);
        batches += written;
    }
    let bound = policy.restart_bytes + largest_batch;
    assert!(
        largest <= bound,
        "the WAL held {largest} bytes (bound {bound}; {batches} bytes of batches)"
    );
    assert!(crate::sqlite::checkpoint::wal_bytes(&path) <= bound);
    let number = db.mark("acme").unwrap().number;
    let found = db
        .readers()
        .reader()
        .unwrap()
        .search(number, &all())
        .unwrap();
    assert_eq!(
        found.len(),
        EVENTS as usize,
        "every entry is still searchable"
    );
}

/// Whatever is searchable: every seq of the tenant acme, in seq order.
fn searchable(readers: &IndexReaders, db: &IndexDb) -> Vec<u64> {
    searchable_of(readers, db, "acme")
}

/// Whatever is searchable of `tenant`, in seq order.
/// Found twice: by `events`' primary key, and through the outcomes' postings (whose rows a
/// bulk load writes before its rows are searchable), which must agree.
fn searchable_of(readers: &IndexReaders, db: &IndexDb, tenant: &str) -> Vec<u64> {
    let Some(mark) = db.mark(tenant) else {
        return Vec::new();
    };
    let reader = readers.reader().unwrap();
    let everything = reader.search(mark.number, &all()).unwrap();
    let mut by_outcome = Vec::new();
    for outcome in EventOutcome::ALL {
        let search = Search {
            outcome: Some(outcome.as_str().into()),
            ..all()
        };
        let driver = choose_driver(
            reader.conn(),
            reader.layout,
            &search,
            key_range(mark.number, &search).unwrap(),
        )
        .unwrap();
        assert_eq!(driver, Driver::Postings);
        by_outcome.extend(reader.search(mark.number, &search).unwrap());
    }
    by_outcome.sort_unstable();
    assert_eq!(
        by_outcome, everything,
        "the outcomes' postings find what is searchable"
    );
    everything
}

/// The index writer keeps SQLite's temporary storage in files, so that the sorts of a bulk
/// load (one per secondary index, over every row loaded) spill to disk in runs instead of
/// holding every key in memory: with `temp_store = MEMORY`, serve's memory during a rebuild
/// grew with the log (2.79 GiB at 30 M entries).
#[test]
fn the_index_writer_sorts_in_temporary_files_not_in_memory() {
    let file_default = rusqlite::Connection::open_in_memory()
        .unwrap()
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .all(|option| !matches!(option.as_str(), "TEMP_STORE=2" | "TEMP_STORE=3"));
    assert!(
        file_default,
        "this SQLite keeps temporary storage in memory by default"
    );
    fixture_built(IndexLayout::default(), |db, log, entries| {
        db.set_bulk_policy(BulkPolicy {
            behind: 100,
            per_transaction: 1_000,
            read: 50,
        });
        let mark = db
            .apply("acme", &rows(&entries[..150]), log)
            .unwrap()
            .unwrap();
        assert_eq!(mark.next_seq, EVENTS, "one load made everything searchable");
        // 0: the compile-time default (files, as checked above); 1: files.
        let temp_store: i64 = db
            .conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert!(matches!(temp_store, 0 | 1), "temp_store = {temp_store}");
    });
}

/// An index loaded in bulk — from empty (its secondary indexes created after the rows), and
/// on top of rows indexed batch by batch (its indexes kept) — answers every search exactly as
/// one built batch by batch does, and as a scan of the log; while a load is under way only
/// what was searchable before it is found, and readers are told no more.
#[test]
fn an_index_loaded_in_bulk_answers_like_one_built_batch_by_batch() {
    for layout in [SMALL, IndexLayout::default()] {
        let incremental = fixture(layout);
        let from_empty = fixture_built(layout, |db, log, entries| {
            db.set_bulk_policy(BulkPolicy {
                behind: 100,
                per_transaction: 100,
                read: 30,
            });
            let readers = db.readers();
            let mut cursor = 0;
            let mut loads = 0;
            while cursor < entries.len() {
                let batch = &entries[cursor..(cursor + 150).min(entries.len())];
                let mark = db.apply("acme", &rows(batch), log).unwrap().unwrap();
                assert!(mark.cursor > cursor as u64);
                cursor = mark.cursor as usize;
                if mark.loading() {
                    loads += 1;
                    assert_eq!(mark.next_seq, 0);
                    assert_eq!(searchable(&readers, db), Vec::<u64>::new());
                }
            }
            assert_eq!(loads, 2, "the first two batches only load");
            // Built from empty, the secondary indexes were dropped and created again.
            for index in SECONDARY_INDEXES {
                let sql: String = db
                    .conn
                    .query_row(
                        "SELECT sql FROM sqlite_schema WHERE name = ?1",
                        [index],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert!(sql.starts_with("CREATE INDEX"), "{sql}");
            }
        });
        let on_top = fixture_built(layout, |db, log, entries| {
            let readers = db.readers();
            db.apply("acme", &rows(&entries[..250]), log).unwrap();
            db.set_bulk_policy(BulkPolicy {
                behind: 50,
                per_transaction: 60,
                read: 20,
            });
            let mark = db
                .apply("acme", &rows(&entries[250..300]), log)
                .unwrap()
                .unwrap();
            // The batch and 20 more read from the log, not searchable yet.
            assert_eq!((mark.next_seq, mark.cursor), (250, 320));
            assert!(mark.loading());
            assert_eq!(searchable(&readers, db), (0..250).collect::<Vec<u64>>());
            // A reopened index resumes the load where it stands.
            let path = db.path.clone();
            let readers_layout = db.layout;
            let reopened = IndexDb::open(&path, readers_layout, log).unwrap();
            assert_eq!(reopened.mark("acme"), Some(mark));
            drop(reopened);
            let mark = db
                .apply("acme", &rows(&entries[320..]), log)
                .unwrap()
                .unwrap();
            assert_eq!((mark.next_seq, mark.cursor), (EVENTS, EVENTS));
            assert_eq!(searchable(&readers, db), (0..EVENTS).collect::<Vec<u64>>());
            assert_eq!(load_rows_left(db), 0, "the load tables are emptied");
        });
        // A load larger than what the index holds: the secondary indexes are dropped and
        // created again around the move, in one transaction with the rest of the load.
        let larger = fixture_built(layout, |db, log, entries| {
            let readers = db.readers();
            db.apply("acme", &rows(&entries[..100]), log).unwrap();
            db.set_bulk_policy(BulkPolicy {
                behind: 50,
                per_transaction: 1_000,
                read: 50,
            });
            let mark = db
                .apply("acme", &rows(&entries[100..250]), log)
                .unwrap()
                .unwrap();
            assert_eq!((mark.next_seq, mark.cursor), (EVENTS, EVENTS));
            assert_eq!(searchable(&readers, db), (0..EVENTS).collect::<Vec<u64>>());
        });
        for bulk in [&from_empty, &on_top, &larger] {
            assert_eq!(bulk.number, incremental.number);
            answers_like(&bulk.readers, bulk.number, &incremental);
        }
        every_plan_finds_what_a_scan_finds(from_empty);
        every_plan_finds_what_a_scan_finds(on_top);
        every_plan_finds_what_a_scan_finds(larger);
    }
}

/// The rows and tenants the load tables still hold.
fn load_rows_left(db: &IndexDb) -> i64 {
    db.conn
        .query_row(
            "SELECT (SELECT count(*) FROM load_events) + (SELECT count(*) FROM load_targets) + (SELECT count(*) FROM loading)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Asserts that tenant `number` of the index `readers` read answers every search, in both
/// orders, as `expected` does.
fn answers_like(readers: &IndexReaders, number: i64, expected: &Fixture) {
    let (mine, theirs) = (
        readers.reader().unwrap(),
        expected.readers.reader().unwrap(),
    );
    for base in searches() {
        for order in [Order::Asc, Order::Desc] {
            let search = Search {
                order,
                ..base.clone()
            };
            assert_eq!(
                super::search(&mine, number, &search).unwrap(),
                super::search(&theirs, expected.number, &search).unwrap(),
                "tenant {number}: {search:?}"
            );
        }
    }
}

/// CPU seconds this thread has used (utime + stime of `/proc/thread-self/stat`, in clock
/// ticks of 1/100 s).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Not a test: the rate of rebuilding the index from an empty file, batch by batch and in
/// bulk, as the follower hands it batches of 10,000 entries.
///
/// ```sh
/// SEALTRAIL_INDEX_BENCH_EVENTS=300000 cargo test --release -p sealtrail-store --lib \
///     index_rebuild_rate -- --ignored --nocapture
/// ```
#[test]
#[ignore]
fn index_rebuild_rate() {
    let count: u64 = std::env::var("SEALTRAIL_INDEX_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(count);
    let log = write_log(dir.path(), "acme", &entries);
    drop(entries);
    let rounds = [("batch by batch", false), ("bulk", true)];
    for round in 0..2 {
        for (name, bulk) in rounds {
            let path = dir.path().join(format!("index-{round}-{bulk}.db"));
            let mut db = IndexDb::open(&path, IndexLayout::default(), log.as_ref()).unwrap();
            if !bulk {
                db.set_bulk_policy(BulkPolicy {
                    behind: u64::MAX,
                    ..BulkPolicy::PRODUCTION
                });
            }
            let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
            let mut cursor = 0;
            while cursor < count {
                let batch = log.entries("acme", cursor, u64::MAX, 10_000).unwrap();
                cursor = db
                    .apply("acme", &batch, log.as_ref())
                    .unwrap()
                    .unwrap()
                    .cursor;
            }
            let (wall, cpu) = (wall.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu);
            assert_eq!(db.mark("acme").unwrap().next_seq, count);
            println!(
                "{name:15} {count} events: {:.0} events/s wall, {:.2} µs CPU/event",
                count as f64 / wall,
                cpu / count as f64 * 1e6
            );
        }
    }
}

/// Two tenants loading in bulk at once: the first to finish is moved without the other's
/// loaded rows (the indexes rebuilt around the move), which stay unsearchable until their own
/// load ends; the last swaps the load table in with the first tenant's rows copied over. Both
/// then answer every search as an index built batch by batch does.
#[test]
fn tenants_loading_at_once_are_each_moved_alone() {
    let layout = SMALL;
    let incremental = fixture(layout);
    let dir = tempfile::tempdir().unwrap();
    let entries = log_entries(EVENTS);
    drop(write_log(dir.path(), "acme", &entries));
    let log = write_log(dir.path(), "globex", &entries);
    let path = crate::DataDir::new(dir.path()).index();
    let mut db = IndexDb::open(&path, layout, log.as_ref()).unwrap();
    db.set_bulk_policy(BulkPolicy {
        behind: 100,
        per_transaction: 100,
        read: 30,
    });
    let readers = db.readers();
    let found = |db: &IndexDb, tenant: &str| searchable_of(&readers, db, tenant);
    let apply = |db: &mut IndexDb, tenant: &str| {
        let cursor = db.mark(tenant).map_or(0, |m| m.cursor);
        let batch = &entries[cursor as usize..(cursor as usize + 150).min(entries.len())];
        db.apply(tenant, &rows(batch), log.as_ref())
            .unwrap()
            .unwrap()
    };
    // Both start loading; neither is searchable.
    assert!(apply(&mut db, "acme").loading());
    assert!(apply(&mut db, "globex").loading());
    // acme finishes while globex is still loading.
    while db.mark("acme").unwrap().cursor < EVENTS {
        apply(&mut db, "acme");
    }
    assert!(!db.mark("acme").unwrap().loading());
    assert!(db.mark("globex").unwrap().loading());
    assert_eq!(found(&db, "acme"), (0..EVENTS).collect::<Vec<u64>>());
    assert_eq!(found(&db, "globex"), Vec::<u64>::new());
    let loaded: i64 = db
        .conn
        .query_row("SELECT count(*) FROM load_events", [], |r| r.get(0))
        .unwrap();
    assert!(loaded > 0, "globex's loaded rows wait in the load table");
    while db.mark("globex").unwrap().cursor < EVENTS {
        apply(&mut db, "globex");
    }
    assert_eq!(found(&db, "globex"), (0..EVENTS).collect::<Vec<u64>>());
    assert_eq!(load_rows_left(&db), 0, "the load tables are emptied");
    for tenant in ["acme", "globex"] {
        answers_like(&readers, db.mark(tenant).unwrap().number, &incremental);
    }
}
