//! Searching the query index: the filters of `GET /v1/events` ([`Search`]) and the plan that
//! answers them ([`search`]) — which index drives, and the one SQL statement that walks it in
//! seq order and stops after a page. The database itself (schema, rows, batches, readers) is
//! the parent module's.

use super::postings::{Name, Walk};
use super::*;
use rusqlite::OptionalExtension;

impl IndexReader {
    /// The seqs of the tenant's events that match; see [`search`].
    pub fn search(&self, tenant: i64, search: &Search) -> Result<Vec<u64>, IndexError> {
        let Some(range) = key_range(tenant, search) else {
            return Ok(Vec::new());
        };
        let driver = choose_driver(self.conn(), self.layout, search, range)?;
        execute(self.conn(), self.layout, search, range, driver)
    }

    /// [`IndexReader::search`], interrupted once `limit` has passed: then
    /// [`IndexError::TimedOut`]. SQLite calls a progress handler every
    /// [`PROGRESS_STEPS`] steps of its virtual machine, which stops the running statement
    /// (`SQLITE_INTERRUPT`) once the deadline is behind it, so a search that would read
    /// millions of rows stops within a moment of its limit, wherever it is.
    pub fn search_within(
        &self,
        tenant: i64,
        search: &Search,
        limit: Duration,
    ) -> Result<Vec<u64>, IndexError> {
        let started = Instant::now();
        let deadline = started.checked_add(limit);
        let conn = self.conn();
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || deadline.is_some_and(|deadline| Instant::now() >= deadline)),
        );
        let result = self.search(tenant, search);
        // A pooled connection serves other searches next, with limits of their own.
        conn.progress_handler(0, None::<fn() -> bool>);
        match result {
            Err(IndexError::Sqlite(rusqlite::Error::SqliteFailure(error, _)))
                if error.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Err(IndexError::TimedOut { limit })
            }
            other => other,
        }
    }
}

/// Steps of SQLite's virtual machine between two looks at a search's deadline: a few
/// microseconds of work, so a look (one reading of the clock) costs nothing measurable and a
/// search overruns its limit by no more than that.
pub const PROGRESS_STEPS: std::ffi::c_int = 1_000;

/// Seq order or newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

/// A search of one tenant's index; absent filters match everything.
#[derive(Debug, Clone)]
pub struct Search {
    /// Event time at or after (inclusive).
    pub from: Option<Timestamp>,
    /// Event time before (exclusive).
    pub to: Option<Timestamp>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub activity: Option<String>,
    pub outcome: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Normalised text form (as stored).
    pub ip: Option<String>,
    /// `source.app`.
    pub source: Option<String>,
    /// An FTS5 query built by [`text_query`].
    pub text: Option<String>,
    pub order: Order,
    /// Only seqs after this one in `order` (the cursor).
    pub after: Option<u64>,
    /// Only seqs at or after this one: the log's prune mark, below which the index may still
    /// hold rows of entries retention removed (0: all).
    pub first_seq: u64,
    /// At most this many seqs.
    pub limit: usize,
}

impl Search {
    /// A search with no filters, in seq order, returning at most `limit` seqs.
    pub fn unfiltered(limit: usize) -> Search {
        Search {
            from: None,
            to: None,
            actor: None,
            action: None,
            activity: None,
            outcome: None,
            target_type: None,
            target_id: None,
            ip: None,
            source: None,
            text: None,
            order: Order::Asc,
            after: None,
            first_seq: 0,
            limit,
        }
    }
}

/// Builds the FTS5 query for `q`: every whitespace-separated word must occur, each as a
/// quoted phrase so that nothing in it is FTS5 syntax. `None` when `q` has no word with a
/// letter or digit in it (such a word has no tokens and could match nothing).
pub fn text_query(q: &str) -> Option<String> {
    let phrases: Vec<String> = q
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

/// Which index walks first; see [`search`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    /// A time range: the time index, block by block in key order.
    Blocks,
    /// The targets table by target id, in key order.
    Target,
    /// The full-text index, in key order.
    Text,
    /// The postings of a name with few values (action, source, activity, or the outcome
    /// alone), in key order; see [`posting_filter`].
    Postings,
    /// An index of `events` kept by block (actor, ip), walked block by block, or else its
    /// primary key, in key order; see [`events_index`].
    Events,
}

/// A SQL text with its positional parameters.
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) params: Vec<SqlValue>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    /// Appends ` AND <clause>` where each `?` of the clause takes the next of `values`.
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.text.push_str(" AND ");
        self.text.push_str(clause);
        self.params.extend(values);
    }

    fn text_param(value: &str) -> SqlValue {
        SqlValue::Text(value.to_string())
    }
}

/// The seqs of the tenant's events that match, in `search.order`, at most `search.limit`.
///
/// Every plan walks an index in key order (= seq order) and stops after `limit` matches, so a
/// page costs about `limit` index reads plus what the other filters reject on the way. The
/// driver, in this order of preference:
///
/// 1. a time range (`from`, `to` or both), unless another filter matches fewer than
///    [`IndexLayout::selective_filter`] of the tenant's events (counted with a capped scan of
///    that filter's own plan, which then drives): the time index `events_by_block`, whose key
///    is `(key >> block_bits, at)`, walked one block of 2^[`IndexLayout::block_bits`] seqs at a
///    time in page order. Within a block the range is one index range, sorted by key (at most one block's
///    rows); blocks are disjoint key ranges, so the pages of successive blocks follow each
///    other, and the walk stops at the block that completes the page. Event times need not
///    follow seq order, so the blocks walked are those with an interval of event times in
///    `block_times` that meets the range (`walk_time_blocks`); a block whose events cannot
///    be in the range is not visited, and one that is visited but holds nothing in the range
///    costs one index seek;
/// 2. `target_id` (ids are selective): the targets table, keyed `(block, id, key, type)`,
///    walked block by block like a time range;
/// 3. `q`: the FTS5 doclists, in rowid (= key) order;
/// 4. actor, else ip: `events` by the name's index `(block, name, outcome, key)`, walked
///    block by block like a time range, one range per block ([`events_index`]) — with the
///    outcome given too, `ip=…&outcome=failure` reads only the address's failures;
/// 5. action, else source, else activity, else a target type, else the outcome alone: the
///    value's postings ([`posting_filter`]), one walk per outcome searched merged in key
///    order, their keys checked against `events` in chunks (`walk_postings`);
/// 6. otherwise `events` by its primary key.
///
/// Filters that do not drive are checked per candidate row: columns of `events` directly (a
/// target type in the row's list of its targets' types), a target id with a primary-key
/// probe of `targets`, text with a rowid-constrained FTS5 match. Unary `+`
/// keeps SQLite from using the time index outside plan 1, `INDEXED BY` names the index of
/// plan 4, and `CROSS JOIN` keeps the driving table outermost.
///
/// [`IndexReader::search_within`] runs a search under a time limit.
pub fn search(reader: &IndexReader, tenant: i64, search: &Search) -> Result<Vec<u64>, IndexError> {
    reader.search(tenant, search)
}

/// Runs the search with the given driver (every driver gives the same answer; a page of no
/// seqs reads nothing).
pub(super) fn execute(
    conn: &Connection,
    layout: IndexLayout,
    search: &Search,
    range: (i64, i64),
    driver: Driver,
) -> Result<Vec<u64>, IndexError> {
    if search.limit == 0 {
        return Ok(Vec::new());
    }
    let sql = search_sql(search, range, driver, layout);
    if driver == Driver::Blocks {
        walk_time_blocks(conn, layout.block_bits, search, range, sql)
    } else if driver == Driver::Postings {
        walk_postings(conn, search, range, sql)
    } else if by_block(search, driver) {
        walk_blocks(conn, walk_bits(layout, driver), search, range, sql)
    } else {
        run(conn, &sql)
    }
}

/// Whether a search with this driver walks its index block by block ([`walk_blocks`]): a time
/// range, a target id, and the names kept by block (actor, ip) when one of them drives.
pub(super) fn by_block(search: &Search, driver: Driver) -> bool {
    match driver {
        Driver::Blocks | Driver::Target => true,
        Driver::Text | Driver::Postings => false,
        Driver::Events => matches!(
            events_index(search),
            Some("events_by_actor" | "events_by_ip")
        ),
    }
}

/// The size of the blocks a driver that walks blocks walks: the time index's, or the names'.
fn walk_bits(layout: IndexLayout, driver: Driver) -> u32 {
    if driver == Driver::Blocks {
        layout.block_bits
    } else {
        layout.name_block_bits
    }
}

/// Sets the first three parameters of a walk over blocks (`sql` from [`search_sql`]): the
/// first block, the step (1 or -1) and the last block of the keys in `range` in `order` —
/// only the blocks between the first and the last key indexed in the range, as the range
/// itself reaches to the largest seq the index could hold. `false` when nothing is indexed
/// there, and the walk would find nothing.
fn set_block_walk(
    conn: &Connection,
    block_bits: u32,
    order: Order,
    (lo, hi): (i64, i64),
    sql: &mut Sql,
) -> Result<bool, IndexError> {
    let bound = |sql: &str| -> Result<Option<i64>, IndexError> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params![lo, hi], |row| row.get(0))?)
    };
    let Some(first) = bound("SELECT min(key) FROM events WHERE key >= ?1 AND key <= ?2")? else {
        return Ok(false);
    };
    let Some(last) = bound("SELECT max(key) FROM events WHERE key >= ?1 AND key <= ?2")? else {
        return Ok(false);
    };
    let (first, last) = (first >> block_bits, last >> block_bits);
    let walk = match order {
        Order::Asc => [first, 1, last],
        Order::Desc => [last, -1, first],
    };
    for (param, value) in sql.params.iter_mut().zip(walk) {
        *param = SqlValue::Integer(value);
    }
    Ok(true)
}

/// The keys a search may return: the tenant's, after the cursor. `None` when nothing can match.
pub(super) fn key_range(tenant: i64, search: &Search) -> Option<(i64, i64)> {
    let base = tenant << SEQ_BITS;
    let (mut lo, mut hi) = (
        base | search.first_seq.min(MAX_INDEXED_SEQ) as i64,
        base | MAX_INDEXED_SEQ as i64,
    );
    match (search.after, search.order) {
        (None, _) => {}
        (Some(after), Order::Asc) => {
            if after >= MAX_INDEXED_SEQ {
                return None;
            }
            lo = lo.max(base | (after + 1) as i64);
        }
        (Some(after), Order::Desc) => {
            if after == 0 {
                return None;
            }
            hi = base | (after.min(MAX_INDEXED_SEQ + 1) - 1) as i64;
        }
    }
    if let (Some(from), Some(to)) = (search.from, search.to)
        && from >= to
    {
        return None;
    }
    if lo > hi {
        return None;
    }
    Some((lo, hi))
}

/// The driver without a time range: the first of target id, text, actor or address
/// (`events` by block), a name with few values or the outcome (postings), else `events` by key.
fn filter_driver(search: &Search) -> Driver {
    if search.target_id.is_some() {
        Driver::Target
    } else if search.text.is_some() {
        Driver::Text
    } else if events_index(search).is_none() && posting_filter(search).is_some() {
        Driver::Postings
    } else {
        Driver::Events
    }
}

/// Whether the search filters on anything but time.
fn has_other_filters(search: &Search) -> bool {
    [
        &search.actor,
        &search.action,
        &search.activity,
        &search.outcome,
        &search.target_type,
        &search.target_id,
        &search.ip,
        &search.source,
        &search.text,
    ]
    .iter()
    .any(|filter| filter.is_some())
}

pub(super) fn choose_driver(
    conn: &Connection,
    layout: IndexLayout,
    search: &Search,
    range: (i64, i64),
) -> Result<Driver, IndexError> {
    let other = filter_driver(search);
    if search.from.is_none() && search.to.is_none() {
        return Ok(other);
    }
    if !has_other_filters(search) {
        return Ok(Driver::Blocks);
    }
    // Another filter drives when it is selective: then its plan reads fewer rows than the
    // cap, whatever the time range holds.
    let untimed = Search {
        from: None,
        to: None,
        order: Order::Asc,
        limit: layout.selective_filter as usize,
        ..search.clone()
    };
    if other == Driver::Postings {
        let count = execute(conn, layout, &untimed, range, other)?.len();
        return Ok(if (count as i64) < layout.selective_filter {
            other
        } else {
            Driver::Blocks
        });
    }
    let mut sql = search_sql(&untimed, range, other, layout);
    if by_block(&untimed, other) {
        // A walk over blocks, capped here (its page is cut in `walk_blocks` otherwise).
        if !set_block_walk(conn, walk_bits(layout, other), Order::Asc, range, &mut sql)? {
            // Nothing of the tenant is indexed in the range: every driver finds nothing.
            return Ok(other);
        }
        sql.text.push_str(" LIMIT ?");
        sql.params.push(SqlValue::Integer(layout.selective_filter));
    }
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM ({})", sql.text))?
        .query_row(rusqlite::params_from_iter(sql.params.iter()), |row| {
            row.get(0)
        })?;
    Ok(if count < layout.selective_filter {
        other
    } else {
        Driver::Blocks
    })
}

fn run(conn: &Connection, sql: &Sql) -> Result<Vec<u64>, IndexError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let keys = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |row| {
        row.get::<_, i64>(0)
    })?;
    let mut seqs = Vec::new();
    for key in keys {
        seqs.push((key? as u64) & MAX_INDEXED_SEQ);
    }
    Ok(seqs)
}

/// Runs a search that walks blocks ([`by_block`]) other than by time: `sql` walks the blocks
/// from its first parameter to its third, stepping by its second, over the blocks of the keys
/// in `range` in the search's order, until the page is full.
fn walk_blocks(
    conn: &Connection,
    block_bits: u32,
    search: &Search,
    (lo, hi): (i64, i64),
    mut sql: Sql,
) -> Result<Vec<u64>, IndexError> {
    let mut seqs = Vec::new();
    if !set_block_walk(conn, block_bits, search.order, (lo, hi), &mut sql)? {
        return Ok(seqs);
    }
    read_blocks(conn, &sql, block_bits, search, &mut seqs)?;
    Ok(seqs)
}

/// Time blocks whose event times [`walk_time_blocks`] looks up at a time.
const TIME_BLOCKS_AT_ONCE: i64 = 64;

/// Runs a search driven by a time range ([`Driver::Blocks`]): `sql` walks the time blocks
/// listed (as a JSON array) in its first parameter. The blocks are those of the keys in
/// `range` with an interval of event times in `block_times` that meets the range, looked up
/// [`TIME_BLOCKS_AT_ONCE`] at a time in page order and walked until the page is full. A block
/// none of whose events can be in the range is not visited at all.
fn walk_time_blocks(
    conn: &Connection,
    block_bits: u32,
    search: &Search,
    (lo, hi): (i64, i64),
    mut sql: Sql,
) -> Result<Vec<u64>, IndexError> {
    let mut seqs = Vec::new();
    // `from` inclusive, `to` exclusive, as on the rows.
    let from = search.from.map_or(i64::MIN, |t| t.unix_micros());
    let to = search.to.map_or(i64::MAX, |t| t.unix_micros());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT DISTINCT block FROM block_times
         WHERE block >= ?1 AND block <= ?2 AND hi >= ?3 AND lo < ?4
         ORDER BY block {} LIMIT ?5",
        search.order.sql()
    ))?;
    let (mut first, mut last) = (lo >> block_bits, hi >> block_bits);
    while first <= last {
        let blocks: Vec<i64> = stmt
            .query_map(params![first, last, from, to, TIME_BLOCKS_AT_ONCE], |row| {
                row.get(0)
            })?
            .collect::<Result<_, _>>()?;
        let (Some(&end), Ok(count)) = (blocks.last(), i64::try_from(blocks.len())) else {
            break;
        };
        sql.params[0] = json_array(&blocks);
        if read_blocks(conn, &sql, block_bits, search, &mut seqs)? || count < TIME_BLOCKS_AT_ONCE {
            break;
        }
        match search.order {
            Order::Asc => first = end + 1,
            Order::Desc => last = end - 1,
        }
    }
    Ok(seqs)
}

/// `values` as a JSON array, the parameter of a `json_each`.
fn json_array(values: &[i64]) -> SqlValue {
    let list = values
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    SqlValue::Text(format!("[{list}]"))
}

/// Sorts keys or seqs into page order.
fn sort_in<T: Ord>(order: Order, values: &mut [T]) {
    match order {
        Order::Asc => values.sort_unstable(),
        Order::Desc => values.sort_unstable_by(|a, b| b.cmp(a)),
    }
}

/// Reads the keys `sql` yields, which come block by block in page order, each block's in its
/// index's order: each block is sorted into page order once it is complete, and the reading
/// stops at the block that fills the page (a block with nothing in the range costs one index
/// seek inside SQLite). Appends their seqs to `seqs`; `true` when the page is full.
fn read_blocks(
    conn: &Connection,
    sql: &Sql,
    block_bits: u32,
    search: &Search,
    seqs: &mut Vec<u64>,
) -> Result<bool, IndexError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut block: Vec<i64> = Vec::new();
    let take = |block: &mut Vec<i64>, seqs: &mut Vec<u64>| {
        sort_in(search.order, block);
        // One event may list the same target id under two types: one key each.
        block.dedup();
        let wanted = search.limit - seqs.len();
        seqs.extend(
            block
                .drain(..)
                .take(wanted)
                .map(|key| key as u64 & MAX_INDEXED_SEQ),
        );
    };
    while let Some(row) = rows.next()? {
        let key: i64 = row.get(0)?;
        if block
            .first()
            .is_some_and(|b| b >> block_bits != key >> block_bits)
        {
            take(&mut block, seqs);
            if seqs.len() >= search.limit {
                return Ok(true);
            }
        }
        block.push(key);
    }
    take(&mut block, seqs);
    Ok(seqs.len() >= search.limit)
}

/// The SQL of a search driven by `driver`; see [`search`]. A search that walks blocks walks,
/// for [`Driver::Blocks`], the time blocks listed in its first parameter, which
/// [`walk_time_blocks`] sets; otherwise the blocks from its first parameter to its third, which
/// [`walk_blocks`] sets.
pub(super) fn search_sql(
    search: &Search,
    range: (i64, i64),
    driver: Driver,
    layout: IndexLayout,
) -> Sql {
    let mut sql = filter_sql(search, range, driver, layout);
    // Block by block, each block's rows sorted (and made distinct) as it completes: see
    // `walk_blocks`; and chunk by chunk of postings, each sorted: see `walk_postings`.
    if by_block(search, driver) || driver == Driver::Postings {
        return sql;
    }
    let key = match driver {
        Driver::Text => "f.rowid",
        _ => "e.key",
    };
    sql.text
        .push_str(&format!(" ORDER BY {key} {} LIMIT ?", search.order.sql()));
    sql.params.push(SqlValue::Integer(search.limit as i64));
    sql
}

/// The index a [`Driver::Events`] search walks: that of actor, else ip, each
/// `(block, name, outcome)`; else none (the primary key).
///
/// Chosen here rather than by SQLite, which keeps no statistics of the index and so cannot
/// tell that three outcomes split the events in three while an address picks a few.
fn events_index(search: &Search) -> Option<&'static str> {
    [
        (&search.actor, "events_by_actor"),
        (&search.ip, "events_by_ip"),
    ]
    .into_iter()
    .find_map(|(filter, index)| filter.is_some().then_some(index))
}

/// The name whose postings a [`Driver::Postings`] search walks, with the value searched: the
/// first of action, source, activity, target type (from more distinct values to fewer, so the
/// likeliest to be selective first), else the outcome alone (value `''`).
pub(super) fn posting_filter(search: &Search) -> Option<(Name, &str)> {
    [
        (&search.action, Name::Action),
        (&search.source, Name::Source),
        (&search.activity, Name::Activity),
        (&search.target_type, Name::TargetType),
    ]
    .into_iter()
    .find_map(|(filter, name)| filter.as_deref().map(|value| (name, value)))
    .or_else(|| search.outcome.as_ref().map(|_| (Name::Outcome, "")))
}

/// Candidates a [`Driver::Postings`] search checks against `events` in its first statement;
/// each next statement checks four times as many, up to [`MOST_CANDIDATES`], so a filter that
/// the other filters narrow a lot costs few statements.
const FIRST_CANDIDATES: usize = 64;
const MOST_CANDIDATES: usize = 16_384;

/// Runs a search driven by postings ([`Driver::Postings`]): the keys of the value's posting
/// rows, one walk per outcome searched merged in page order, are checked in chunks by `sql`
/// (its first parameter the chunk as a JSON array), which reads each key's `events` row and
/// applies every filter; each chunk's matches are sorted into page order, until the page is
/// full. Only keys below the tenant's watermark are walked: postings of a bulk load under
/// way are written before their rows are searchable. A search with no filter but the
/// postings' name and the outcome has nothing to check, and its keys are the answer as
/// walked (the page of `action=…&outcome=…` then reads a few posting rows and no `events`
/// row, as a covering index would).
fn walk_postings(
    conn: &Connection,
    search: &Search,
    (lo, hi): (i64, i64),
    mut sql: Sql,
) -> Result<Vec<u64>, IndexError> {
    let mut seqs = Vec::new();
    let Some((name, value)) = posting_filter(search) else {
        return Ok(seqs);
    };
    let number = lo >> SEQ_BITS;
    let searchable: Option<i64> = conn
        .prepare_cached("SELECT next_seq FROM tenants WHERE number = ?1")?
        .query_row(params![number], |row| row.get(0))
        .optional()?;
    let Some(searchable) = searchable.filter(|next| *next > 0) else {
        return Ok(seqs);
    };
    let hi = hi.min(key(number, searchable as u64 - 1));
    if lo > hi {
        return Ok(seqs);
    }
    let outcomes = match &search.outcome {
        Some(outcome) => match EventOutcome::from_name(outcome) {
            Some(outcome) => vec![outcome_code(outcome)],
            None => return Ok(seqs),
        },
        None => EventOutcome::ALL.iter().map(|o| outcome_code(*o)).collect(),
    };
    let mut walks: Vec<Walk> = outcomes
        .into_iter()
        .map(|outcome| Walk::new(name, value, outcome, search.order, (lo, hi)))
        .collect();
    // With no other filter, the keys walked below the watermark are the answer: nothing
    // is left to check on `events`, whose rows are then not read at all.
    let checked = {
        let mut rest = Search {
            outcome: None,
            ..search.clone()
        };
        match name {
            Name::Action => rest.action = None,
            Name::Activity => rest.activity = None,
            Name::Source => rest.source = None,
            Name::TargetType => rest.target_type = None,
            Name::Outcome => {}
        }
        rest.from.is_some() || rest.to.is_some() || has_other_filters(&rest)
    };
    let mut chunk = FIRST_CANDIDATES.max(search.limit).min(MOST_CANDIDATES);
    let mut candidates = Vec::with_capacity(chunk);
    loop {
        candidates.clear();
        while candidates.len() < chunk {
            // The next key in page order among the walks.
            let mut next: Option<(usize, i64)> = None;
            for (n, walk) in walks.iter_mut().enumerate() {
                if let Some(key) = walk.peek(conn)? {
                    let first = next.is_none_or(|(_, best)| match search.order {
                        Order::Asc => key < best,
                        Order::Desc => key > best,
                    });
                    if first {
                        next = Some((n, key));
                    }
                }
            }
            let Some((n, key)) = next else { break };
            walks[n].advance();
            candidates.push(key);
        }
        if candidates.is_empty() {
            break;
        }
        let mut found = if checked {
            sql.params[0] = json_array(&candidates);
            run(conn, &sql)?
        } else {
            candidates
                .iter()
                .map(|key| *key as u64 & MAX_INDEXED_SEQ)
                .collect()
        };
        sort_in(search.order, &mut found);
        let wanted = search.limit - seqs.len();
        seqs.extend(found.into_iter().take(wanted));
        if seqs.len() >= search.limit || candidates.len() < chunk {
            break;
        }
        chunk = (chunk * 4).min(MOST_CANDIDATES);
    }
    Ok(seqs)
}

/// The statement of a search up to its `WHERE` clause's end: the driving table and every
/// filter, without grouping, order or limit.
fn filter_sql(search: &Search, (lo, hi): (i64, i64), driver: Driver, layout: IndexLayout) -> Sql {
    let (block_bits, name_bits) = (layout.block_bits, layout.name_block_bits);
    let from = search.from.map(|t| t.unix_micros());
    let to = search.to.map(|t| t.unix_micros());
    let range = [SqlValue::Integer(lo), SqlValue::Integer(hi)];
    // Every block from the first to the last (parameters 1 and 3, stepping by parameter 2:
    // 1 or -1), one index range each, in one statement; `walk_blocks` sets the three.
    let walk = |select: &str| Sql {
        text: format!(
            "WITH RECURSIVE b(n) AS (SELECT ? UNION ALL SELECT n + ? FROM b WHERE n != ?) {select}"
        ),
        params: vec![SqlValue::Integer(0); 3],
    };
    // The same expressions as the indexes', so that SQLite matches the two.
    let in_block = format!("(e.key >> {block_bits}) = b.n");
    let in_name_block = format!("(e.key >> {name_bits}) = b.n");
    let mut sql = match driver {
        Driver::Blocks => {
            // The blocks to walk, in page order, as a JSON array: `walk_time_blocks` sets it.
            let mut sql = Sql {
                text: "WITH b(n) AS (SELECT value FROM json_each(?)) \
                       SELECT e.key FROM b CROSS JOIN events AS e INDEXED BY events_by_block WHERE 1"
                    .to_string(),
                params: vec![SqlValue::Text("[]".to_string())],
            };
            sql.and(&in_block, []);
            if let Some(from) = from {
                sql.and("e.at >= ?", [SqlValue::Integer(from)]);
            }
            if let Some(to) = to {
                sql.and("e.at < ?", [SqlValue::Integer(to)]);
            }
            sql.and("e.key >= ? AND e.key <= ?", range);
            sql
        }
        Driver::Target => {
            let mut sql = walk(
                "SELECT g.key FROM b CROSS JOIN targets AS g CROSS JOIN events AS e ON e.key = g.key WHERE 1",
            );
            sql.and("g.block = b.n", []);
            let id = search.target_id.as_deref().unwrap_or_default();
            sql.and("g.id = ?", [Sql::text_param(id)]);
            if let Some(kind) = &search.target_type {
                sql.and("+g.type = ?", [Sql::text_param(kind)]);
            }
            sql.and("g.key >= ? AND g.key <= ?", range);
            sql
        }
        Driver::Postings => {
            // The candidates, as a JSON array: `walk_postings` sets it.
            let mut sql = Sql {
                text: "WITH c(k) AS (SELECT value FROM json_each(?)) \
                       SELECT e.key FROM c CROSS JOIN events AS e ON e.key = c.k WHERE 1"
                    .to_string(),
                params: vec![SqlValue::Text("[]".to_string())],
            };
            sql.and("e.key >= ? AND e.key <= ?", range);
            sql
        }
        Driver::Text => {
            let mut sql = Sql::new(
                "SELECT f.rowid FROM details AS f CROSS JOIN events AS e ON e.key = f.rowid WHERE 1",
            );
            let text = search.text.as_deref().unwrap_or_default();
            sql.and("f.details MATCH ?", [Sql::text_param(text)]);
            sql.and("f.rowid >= ? AND f.rowid <= ?", range);
            sql
        }
        Driver::Events => {
            let mut sql = match events_index(search) {
                Some(index) => {
                    let mut sql = walk(&format!(
                        "SELECT e.key FROM b CROSS JOIN events AS e INDEXED BY {index} WHERE 1"
                    ));
                    sql.and(&in_name_block, []);
                    sql
                }
                None => Sql::new("SELECT e.key FROM events AS e WHERE 1"),
            };
            sql.and("e.key >= ? AND e.key <= ?", range);
            sql
        }
    };

    for (column, value) in [
        ("action", &search.action),
        ("activity", &search.activity),
        ("actor", &search.actor),
        ("ip", &search.ip),
        ("source", &search.source),
    ] {
        if let Some(value) = value {
            sql.and(&format!("e.{column} = ?"), [Sql::text_param(value)]);
        }
    }
    if let Some(outcome) = &search.outcome {
        // Stored as a code; a name that is no outcome matches nothing.
        let code = EventOutcome::from_name(outcome).map_or(-1, outcome_code);
        sql.and("e.outcome = ?", [SqlValue::Integer(code)]);
    }
    if driver != Driver::Blocks {
        if let Some(from) = from {
            sql.and("+e.at >= ?", [SqlValue::Integer(from)]);
        }
        if let Some(to) = to {
            sql.and("+e.at < ?", [SqlValue::Integer(to)]);
        }
    }
    if driver != Driver::Target {
        let block = format!("t.block = (e.key >> {name_bits})");
        match (&search.target_type, &search.target_id) {
            (Some(kind), Some(id)) => sql.and(
                &format!(
                    "EXISTS (SELECT 1 FROM targets AS t WHERE {block} AND t.id = ? AND t.key = e.key AND t.type = ?)"
                ),
                [Sql::text_param(id), Sql::text_param(kind)],
            ),
            // The row's own list of its targets' types (see `target_types`).
            (Some(kind), None) => sql.and(
                "instr(e.types, ?) > 0",
                [SqlValue::Text(type_needle(kind))],
            ),
            (None, Some(id)) => sql.and(
                &format!(
                    "EXISTS (SELECT 1 FROM targets AS t WHERE {block} AND t.id = ? AND t.key = e.key)"
                ),
                [Sql::text_param(id)],
            ),
            (None, None) => {}
        }
    }
    if driver != Driver::Text
        && let Some(text) = &search.text
    {
        sql.and(
            "EXISTS (SELECT 1 FROM details AS d WHERE d.details MATCH ? AND d.rowid = e.key)",
            [Sql::text_param(text)],
        );
    }
    sql
}
