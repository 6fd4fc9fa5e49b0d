//! Tests of the postings (`index::postings`) as the index writes and searches them: what
//! their rows hold, what a search does with one that is damaged, and the targets' types,
//! which are postings and are also listed on each `events` row.
use super::*;
use crate::index::postings::{self, Name};

/// The names with few values are postings: the rows of a `(name, value, outcome)` hold the
/// keys of exactly the events with that value and outcome, in key order, one row per batch
/// that has any. So a name with an outcome walks its own events and no others, and a name
/// alone merges one walk per outcome.
#[test]
fn postings_hold_exactly_the_keys_of_their_value_and_outcome() {
    let f = fixture(IndexLayout::default());
    let reader = f.readers.reader().unwrap();
    let conn = reader.conn();
    type Set = fn(&mut Search);
    let names: [(Name, &str, Set); 5] = [
        (Name::Action, "a.read", |s| s.action = Some("a.read".into())),
        (Name::Activity, "login", |s| {
            s.activity = Some("login".into())
        }),
        (Name::Source, "web", |s| s.source = Some("web".into())),
        (Name::Outcome, "", |_| {}),
        (Name::TargetType, "claim", |s| {
            s.target_type = Some("claim".into())
        }),
    ];
    let batches = EVENTS.div_ceil(150) as usize;
    for (name, value, set) in names {
        let mut found = 0;
        for outcome in EventOutcome::ALL {
            let mut search = Search {
                outcome: Some(outcome.as_str().into()),
                ..all()
            };
            set(&mut search);
            let want = brute_force(&f.entries, &search);
            found += want.len();
            let rows: Vec<(i64, Vec<u8>)> = conn
                .prepare(
                    "SELECT last, keys FROM postings WHERE name = ?1 AND value = ?2 AND outcome = ?3
                     ORDER BY last",
                )
                .unwrap()
                .query_map(
                    params![name as i64, value, outcome_code(*outcome)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(rows.len() <= batches, "{search:?}: {} rows", rows.len());
            let mut keys = Vec::new();
            for (last, blob) in &rows {
                postings::decode(blob, &mut keys).unwrap();
                assert_eq!(keys.last(), Some(last));
            }
            let seqs: Vec<u64> = keys
                .iter()
                .map(|key| *key as u64 & MAX_INDEXED_SEQ)
                .collect();
            assert_eq!(seqs, want, "{search:?}");
            assert!(keys.iter().all(|key| key >> SEQ_BITS == f.number));
        }
        assert!(found > 0, "{name:?} {value:?} occurs in the fixture");
    }
}

/// A posting row that is not a list of keys ending at its `last` is damage: the search that
/// walks it fails and says how to rebuild the index, rather than answer from it.
#[test]
fn a_damaged_posting_fails_the_search_that_reads_it() {
    let f = fixture(SMALL);
    let path = f.readers.path.clone();
    let search = Search {
        action: Some("a.write".into()),
        ..all()
    };
    let reader = f.readers.reader().unwrap();
    assert!(!reader.search(f.number, &search).unwrap().is_empty());
    let conn = Connection::open(&path).unwrap();
    for keys in ["x'81'", "x'05'"] {
        let changed = conn
            .execute(
                &format!("UPDATE postings SET keys = {keys} WHERE name = 0 AND value = 'a.write'"),
                [],
            )
            .unwrap();
        assert!(changed > 0);
        for order in [Order::Asc, Order::Desc] {
            let search = Search {
                order,
                ..search.clone()
            };
            let error = reader.search(f.number, &search).unwrap_err();
            assert!(
                matches!(&error, IndexError::Damaged(message) if message.contains("remove DIR/index.db")),
                "{error}"
            );
        }
    }
    // Other names' postings are not affected.
    let other = Search {
        action: Some("a.read".into()),
        ..all()
    };
    assert_eq!(
        reader.search(f.number, &other).unwrap(),
        brute_force(&f.entries, &other)
    );
}

/// Target types, which any text but the nul character may be, are found exactly: through
/// their postings, and through the list of types on each `events` row when another filter
/// drives (`target_types`). Types that hold that list's separator, quotes, backslashes or
/// commas, or that are the start or end of another type, find only their own events.
#[test]
fn a_target_type_is_found_exactly_whatever_its_text() {
    const KINDS: [&str; 8] = [
        "claim",
        "a,",
        ",b",
        "x\u{1f}claim",
        "\"q\"",
        "claim\\",
        "\u{1f}",
        "é",
    ];
    let event = |n: u64| {
        let mut targets = Vec::new();
        for t in 0..(n % 3) {
            let kind = KINDS[((n / 3 + t * 5) % KINDS.len() as u64) as usize];
            targets.push(serde_json::json!({"type": kind, "id": format!("x-{}", n % 4)}));
        }
        if n.is_multiple_of(7) {
            // A target with an id and no type.
            targets.push(serde_json::json!({"id": "y"}));
        }
        serde_json::json!({
            "action": (["a.read", "a.write"][(n % 2) as usize]),
            "outcome": (["success", "failure"][(n / 2 % 2) as usize]),
            "actor": {"id": "u"},
            "targets": targets,
        })
    };
    let entries = log_entries_of(150, event);
    let (_dir, db, number) = indexed(&entries, SMALL, 25);
    let reader = db.readers().reader().unwrap();
    let conn = reader.conn();
    let mut absent: Vec<String> = [",", "claim\u{1f}", "x", "\"q", "b", "\"claim\""]
        .map(String::from)
        .to_vec();
    // Two types as a row lists them, side by side, with the separator between: one type
    // that would be found in the list of any event with both, were types not escaped.
    for a in KINDS {
        absent.extend(KINDS.map(|b| format!("{a}\"\u{1f}\"{b}")));
    }
    let kinds = KINDS.map(String::from);
    for kind in kinds.iter().chain(&absent).chain(&[String::new()]) {
        let mut found = 0;
        for (action, outcome) in [
            (None, None),
            (Some("a.write"), None),
            (None, Some("failure")),
        ] {
            for order in [Order::Asc, Order::Desc] {
                let search = Search {
                    target_type: Some(kind.to_string()),
                    action: action.map(str::to_string),
                    outcome: outcome.map(str::to_string),
                    order,
                    ..all()
                };
                let want = brute_force(&entries, &search);
                found += want.len();
                // Postings of the type or of the action, and a scan checking each row.
                for driver in [Driver::Postings, Driver::Events] {
                    let range = key_range(number, &search).unwrap();
                    let got = execute(conn, SMALL, &search, range, driver).unwrap();
                    assert_eq!(got, want, "{driver:?} {search:?}");
                }
                assert_eq!(super::search(&reader, number, &search).unwrap(), want);
            }
        }
        assert_eq!(
            found > 0,
            kinds.contains(kind) || kind.is_empty(),
            "{kind:?} is found exactly when some event has it"
        );
    }
}
