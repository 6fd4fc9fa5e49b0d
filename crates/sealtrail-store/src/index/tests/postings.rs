//! Tests of the postings (`index::postings`) as the index writes and searches them: what
//! their rows hold, and what a search does with one that is damaged.
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
    let names: [(Name, &str, Set); 4] = [
        (Name::Action, "a.read", |s| s.action = Some("a.read".into())),
        (Name::Activity, "login", |s| {
            s.activity = Some("login".into())
        }),
        (Name::Source, "web", |s| s.source = Some("web".into())),
        (Name::Outcome, "", |_| {}),
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
