//! Postings: where the names with few values are kept (action, activity, `source.app`, the
//! targets' types, and the outcome alone). See "Postings" in the parent module's docs for why.
//!
//! A posting row holds the keys of one batch's events that have one value of one name and one
//! outcome, `(name, value, outcome, last) → keys`, where `last` is the greatest of its keys
//! and `keys` the keys in ascending order: the first as a varint, each next one as the
//! varint of its difference to the one before. A tenant's batches are written in seq order,
//! so the rows of one `(name, value, outcome)` of one tenant hold disjoint, increasing key
//! ranges, and walking them by `last` walks their keys in key order.

use std::collections::{HashMap, VecDeque};

use rusqlite::{Connection, Statement, Transaction, params};

use super::{IndexError, Order, Row, key, outcome_code};

/// The names kept in postings, as the `name` column holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Name {
    Action = 0,
    Activity = 1,
    Source = 2,
    /// The outcome alone: the value is `''`.
    Outcome = 3,
    /// The type of any of an event's targets (`''` for a target sent without one).
    TargetType = 4,
}

/// The most keys a posting row holds: a page of a search decodes whole rows, and a chunk of
/// a bulk load holds 10,000 entries.
const MOST_KEYS_PER_ROW: usize = 1_024;

/// Writes the postings of a tenant's rows, which are in seq order: one row per
/// `(name, value, outcome)` that occurs among them and [`MOST_KEYS_PER_ROW`] of its keys.
pub(super) fn write(tx: &Transaction<'_>, number: i64, rows: &[Row]) -> Result<(), IndexError> {
    let mut groups: HashMap<(Name, &str, i64), Vec<i64>> = HashMap::new();
    for row in rows {
        let key = key(number, row.seq);
        let outcome = outcome_code(row.outcome);
        let names = [
            (Name::Action, Some(row.action.as_str())),
            (Name::Activity, row.activity),
            (Name::Source, row.source.as_deref()),
            (Name::Outcome, Some("")),
        ];
        for (name, value) in names {
            if let Some(value) = value {
                groups.entry((name, value, outcome)).or_default().push(key);
            }
        }
        // Each type once per event: the targets are sorted by type first.
        let mut before = None;
        for (kind, _) in &row.targets {
            if before != Some(kind) {
                let group = (Name::TargetType, kind.as_str(), outcome);
                groups.entry(group).or_default().push(key);
                before = Some(kind);
            }
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO postings (name, value, outcome, last, keys) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut blob = Vec::new();
    for ((name, value, outcome), keys) in groups {
        for keys in keys.chunks(MOST_KEYS_PER_ROW) {
            blob.clear();
            encode(keys, &mut blob);
            let last = *keys.last().expect("a chunk has a key");
            insert.execute(params![name as i64, value, outcome, last, blob])?;
        }
    }
    Ok(())
}

/// Appends `keys` (ascending) to `out`: the first as a varint, then each difference.
fn encode(keys: &[i64], out: &mut Vec<u8>) {
    let mut before = 0u64;
    for (n, &key) in keys.iter().enumerate() {
        let key = key as u64;
        let delta = if n == 0 { key } else { key - before };
        push_varint(delta, out);
        before = key;
    }
}

fn push_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The keys of a posting row, ascending; `None` when the bytes are not a list of varints
/// (damage: the index is then not to be trusted, and the search reports it).
pub(super) fn decode(mut bytes: &[u8], out: &mut Vec<i64>) -> Option<()> {
    let mut key = 0u64;
    let mut first = true;
    while !bytes.is_empty() {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, rest) = bytes.split_first()?;
            bytes = rest;
            if shift > 63 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        key = if first {
            value
        } else {
            key.checked_add(value)?
        };
        first = false;
        out.push(i64::try_from(key).ok()?);
    }
    Some(())
}

/// Posting rows read by a walk's first query; each next query reads twice as many, up to
/// [`MOST_ROWS_AT_ONCE`]. A row of a bulk load holds up to 10,000 keys, and a page wants 100.
const FIRST_ROWS_AT_ONCE: i64 = 1;
const MOST_ROWS_AT_ONCE: i64 = 16;

/// A walk over the keys of one `(name, value, outcome)` within `[lo, hi]`, in `order`.
pub(super) struct Walk {
    name: Name,
    value: String,
    outcome: i64,
    order: Order,
    lo: i64,
    hi: i64,
    /// The bound on `last` of the next rows to read: rows with `last >= bound` (ascending) or
    /// `last <= bound` (descending); `None` before the first read.
    bound: Option<i64>,
    /// Keys read and not yet taken, in walk order.
    keys: VecDeque<i64>,
    /// Rows the next query reads.
    rows_at_once: i64,
    done: bool,
}

impl Walk {
    pub(super) fn new(
        name: Name,
        value: &str,
        outcome: i64,
        order: Order,
        (lo, hi): (i64, i64),
    ) -> Walk {
        Walk {
            name,
            value: value.to_string(),
            outcome,
            order,
            lo,
            hi,
            bound: None,
            keys: VecDeque::new(),
            rows_at_once: FIRST_ROWS_AT_ONCE,
            done: false,
        }
    }

    /// The next key, without taking it.
    pub(super) fn peek(&mut self, conn: &Connection) -> Result<Option<i64>, IndexError> {
        while self.keys.is_empty() && !self.done {
            self.read(conn)?;
        }
        Ok(self.keys.front().copied())
    }

    /// Takes the key [`Walk::peek`] returned.
    pub(super) fn advance(&mut self) {
        self.keys.pop_front();
    }

    /// Reads the next rows' keys within `[lo, hi]`.
    fn read(&mut self, conn: &Connection) -> Result<(), IndexError> {
        let (name, value, outcome) = (self.name as i64, self.value.as_str(), self.outcome);
        let rows_at_once = self.rows_at_once;
        self.rows_at_once = (rows_at_once * 2).min(MOST_ROWS_AT_ONCE);
        let params = |bound: i64| (name, value, outcome, bound, self.lo, rows_at_once);
        let rows: Vec<(i64, Vec<u8>)> = match self.order {
            Order::Asc => {
                // Rows with `last < lo` hold no key at or after `lo`.
                let bound = self.bound.unwrap_or(self.lo);
                let mut stmt = conn.prepare_cached(
                    "SELECT last, keys FROM postings
                     WHERE name = ?1 AND value = ?2 AND outcome = ?3 AND last >= max(?4, ?5)
                     ORDER BY last ASC LIMIT ?6",
                )?;
                collect(&mut stmt, params(bound))?
            }
            Order::Desc => {
                // The first row is the one whose keys reach past `hi`, if one does: the
                // first with `last >= hi`.
                let bound = match self.bound {
                    Some(bound) => bound,
                    None => conn
                        .prepare_cached(
                            "SELECT min(last) FROM postings
                             WHERE name = ?1 AND value = ?2 AND outcome = ?3 AND last >= ?4",
                        )?
                        .query_row((name, value, outcome, self.hi), |row| {
                            row.get::<_, Option<i64>>(0)
                        })?
                        .unwrap_or(self.hi),
                };
                let mut stmt = conn.prepare_cached(
                    "SELECT last, keys FROM postings
                     WHERE name = ?1 AND value = ?2 AND outcome = ?3 AND last <= ?4 AND last >= ?5
                     ORDER BY last DESC LIMIT ?6",
                )?;
                collect(&mut stmt, params(bound))?
            }
        };
        if (rows.len() as i64) < rows_at_once {
            self.done = true;
        }
        let mut keys = Vec::new();
        for (last, bytes) in &rows {
            let last = *last;
            keys.clear();
            decode(bytes, &mut keys).ok_or_else(|| damaged(self.name, last))?;
            if keys.last() != Some(&last) || !keys.is_sorted_by(|a, b| a < b) {
                return Err(damaged(self.name, last));
            }
            let (lo, hi) = (self.lo, self.hi);
            let within = keys.iter().copied().filter(|key| (lo..=hi).contains(key));
            match self.order {
                Order::Asc => {
                    self.keys.extend(within);
                    self.bound = Some(last.saturating_add(1));
                    // Every later row holds keys after this one's last.
                    if last > hi {
                        self.done = true;
                    }
                }
                Order::Desc => {
                    self.keys.extend(within.rev());
                    self.bound = Some(last.saturating_sub(1));
                }
            }
        }
        Ok(())
    }
}

fn collect(
    stmt: &mut Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, Vec<u8>)>, IndexError> {
    Ok(stmt
        .query_map(params, |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

fn damaged(name: Name, last: i64) -> IndexError {
    IndexError::Damaged(format!(
        "the posting row of {name:?} ending at key {last} is not a list of keys; stop the server and remove DIR/index.db, which the next start rebuilds from the log"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealtrail_core::event::Outcome as EventOutcome;

    #[test]
    fn keys_come_back_as_they_were_encoded() {
        let keys = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            (1 << 44) | 5,
            (7 << 44) | ((1 << 44) - 1),
            i64::MAX,
        ];
        let mut blob = Vec::new();
        encode(&keys, &mut blob);
        let mut back = Vec::new();
        decode(&blob, &mut back).expect("decodes");
        assert_eq!(back, keys);
    }

    #[test]
    fn a_value_with_many_keys_in_a_batch_is_split_into_rows_of_at_most_so_many() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE postings (name INTEGER NOT NULL, value TEXT NOT NULL,
             outcome INTEGER NOT NULL, last INTEGER NOT NULL, keys BLOB NOT NULL,
             PRIMARY KEY (name, value, outcome, last)) WITHOUT ROWID;",
        )
        .unwrap();
        let rows: Vec<Row> = (0..2_500u64)
            .map(|seq| Row {
                seq: seq * 3,
                id: format!("id-{seq}"),
                at: 0,
                action: "a.read".into(),
                activity: None,
                outcome: EventOutcome::Success,
                actor: "u".into(),
                ip: None,
                source: None,
                targets: Vec::new(),
                text: String::new(),
            })
            .collect();
        let tx = conn.transaction().unwrap();
        write(&tx, 2, &rows).unwrap();
        tx.commit().unwrap();
        let stored: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT last, keys FROM postings WHERE name = 0 ORDER BY last")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let sizes: Vec<usize> = stored
            .iter()
            .map(|(last, blob)| {
                let mut keys = Vec::new();
                decode(blob, &mut keys).unwrap();
                assert_eq!(keys.last(), Some(last));
                keys.len()
            })
            .collect();
        assert_eq!(sizes, [MOST_KEYS_PER_ROW, MOST_KEYS_PER_ROW, 452]);
        // No activity, no source: no rows of theirs; the outcome alone has the same split.
        let count = |name: Name| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM postings WHERE name = ?1",
                [name as i64],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!((count(Name::Activity), count(Name::Source)), (0, 0));
        assert_eq!(count(Name::Outcome), 3);
    }

    #[test]
    fn bytes_that_are_no_list_of_keys_do_not_decode() {
        let mut out = Vec::new();
        // A varint cut off in the middle.
        assert!(decode(&[0x81], &mut out).is_none());
        // Eleven bytes of continuation: more than 64 bits.
        assert!(decode(&[0xff; 11], &mut out).is_none());
        // A difference that overflows the key.
        let mut blob = Vec::new();
        encode(&[i64::MAX], &mut blob);
        push_varint(1, &mut blob);
        assert!(decode(&blob, &mut Vec::new()).is_none());
    }
}
