//! The gap detector's database: `DIR/gaps.db`, a SQLite file derived from the logs that keeps
//! what timelines and gap findings are computed from, so that neither ever scans events.
//!
//! This module is the database alone — its schema, opening it (and rebuilding it when it
//! cannot be trusted), folding a tenant's batch of committed entries into it, and the reads
//! the detector needs. *When* entries are folded in is decided by the server's follower of the
//! committed log (`sealtrail_server::gaps`), and *what counts as a gap* by its rules; this
//! file holds every line of SQL of the detector and no rule about gaps.
//!
//! ## What is kept, per tenant
//!
//! - `activity`: events per minute, twice — by event time (`occurred_at`, else
//!   `received_at`) and by `received_at` — with heartbeats ([`HEARTBEAT_ACTION`]) counted
//!   apart from activity;
//! - `activity_by`: the same activity counts per minute, action and `source.app`, for
//!   filtered timelines (heartbeats are not activity and are not in it);
//! - `producer_minutes`: per `(source.app, source.instance)`, the minutes it sent anything in
//!   (heartbeats included: a heartbeat says the producer is alive);
//! - `producers`: per producer, its sequence state — the current run, the next `source.seq`
//!   expected, the event time of the highest seen, and how many duplicates and restarts;
//! - `missing`: the `source.seq` ranges proven missing, per producer and run, with the event
//!   times of the last number before and the first number after each range;
//! - `lifecycle`: the `_system` log's `sealtrail.server.started` / `stopped` records (with
//!   the host they name, `details.hostname`, and a start's `details.audit_stdout`);
//! - `spool_drains`: the `_system` log's `sealtrail.spool.drained` records — a spool period's
//!   events, of which tenants, accepted from when to when — that put a gap down to a store
//!   outage;
//! - `counted`: which findings the metrics have counted already.
//!
//! ## Sequence numbers
//!
//! Producer sequences are followed in log order (the order events arrived). For a producer's
//! number `s`, with `next` the number after the highest seen in its current run:
//!
//! - the first number seen from a producer starts its first run (nothing before it is
//!   missing: sealtrail may have been installed after the producer started);
//! - `s == next`: in order;
//! - `s > next`: `next ..= s - 1` are missing, a range recorded with the times of the events
//!   on either side;
//! - `s == 0` when the run has gone beyond 0: the producer restarted; a new run begins, and
//!   nothing is missing because of it;
//! - any other `s < next`: a late arrival that fills the missing range it lies in (splitting
//!   it), or else a duplicate.
//!
//! A `source.seq` without `source.app` names no producer and is not followed.
//!
//! ## Consistency
//!
//! A batch's effects and the tenant's cursor (`next_seq`, and the id of the last entry, to
//! notice a replaced log) are written in one `BEGIN IMMEDIATE` transaction that first reads
//! the cursor stored: entries below it were folded in already — by this process before a
//! crash, or by `sealtrail gaps` catching up while the server runs — and are skipped, so two
//! writers never count an entry twice. Like the query index, the file is written with
//! `synchronous=NORMAL` (a crash loses at most the last batches, with their cursor) and rebuilt
//! from seq 0 when missing, of another schema version, or built from another log.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use sealtrail_core::Timestamp;

use crate::{EntryRow, Store, StoreError};

/// The schema version, stored as `PRAGMA user_version`; a file of any other is rebuilt.
pub const SCHEMA_VERSION: i64 = 4;

/// The reserved action of a heartbeat: an event a producer sends to say it is alive while it
/// has nothing to audit. Kept out of activity counts; counts as the producer being seen.
pub const HEARTBEAT_ACTION: &str = "sealtrail.heartbeat";
/// The `_system` records of a server's start and graceful stop.
pub const SERVER_STARTED: &str = "sealtrail.server.started";
pub const SERVER_STOPPED: &str = "sealtrail.server.stopped";
/// The `_system` record of a spool drained into the log after a store outage.
pub const SPOOL_DRAINED: &str = "sealtrail.spool.drained";

const MINUTE_MICROS: i64 = 60_000_000;

/// Which time an event is counted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// `occurred_at`, else `received_at`.
    EventTime = 0,
    /// `received_at`.
    Received = 1,
}

const SCHEMA: &str = r#"
CREATE TABLE tenants (
    name     TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,      -- entries with seq < next_seq are folded in
    last_id  TEXT                   -- id of entry next_seq - 1, to notice a replaced log
);
-- Per minute (unix minutes): activity and heartbeats.
CREATE TABLE activity (
    tenant     TEXT    NOT NULL,
    basis      INTEGER NOT NULL,    -- 0 event time, 1 received_at
    minute     INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    heartbeats INTEGER NOT NULL,
    PRIMARY KEY (tenant, basis, minute)
) WITHOUT ROWID;
CREATE TABLE activity_by (
    tenant TEXT    NOT NULL,
    basis  INTEGER NOT NULL,
    action TEXT    NOT NULL,
    app    TEXT    NOT NULL,        -- '' without source.app
    minute INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (tenant, basis, action, app, minute)
) WITHOUT ROWID;
CREATE INDEX activity_by_app ON activity_by (tenant, basis, app, minute);
CREATE TABLE producer_minutes (
    tenant   TEXT    NOT NULL,
    app      TEXT    NOT NULL,
    instance TEXT    NOT NULL,      -- '' without source.instance
    minute   INTEGER NOT NULL,      -- by event time
    events   INTEGER NOT NULL,
    PRIMARY KEY (tenant, app, instance, minute)
) WITHOUT ROWID;
CREATE TABLE producers (
    tenant     TEXT    NOT NULL,
    app        TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    run        INTEGER NOT NULL,    -- restarts so far
    next       INTEGER NOT NULL,    -- the source.seq expected next in this run
    last_at    INTEGER NOT NULL,    -- event time of the highest source.seq, unix µs
    duplicates INTEGER NOT NULL,
    restarts   INTEGER NOT NULL,
    PRIMARY KEY (tenant, app, instance)
) WITHOUT ROWID;
CREATE TABLE missing (
    tenant    TEXT    NOT NULL,
    app       TEXT    NOT NULL,
    instance  TEXT    NOT NULL,
    run       INTEGER NOT NULL,
    from_seq  INTEGER NOT NULL,     -- inclusive
    to_seq    INTEGER NOT NULL,     -- inclusive
    start_at  INTEGER NOT NULL,     -- event time of the number before, unix µs
    end_at    INTEGER NOT NULL,     -- event time of the number after
    PRIMARY KEY (tenant, app, instance, run, from_seq)
) WITHOUT ROWID;
CREATE INDEX missing_by_time ON missing (tenant, end_at);
CREATE TABLE lifecycle (
    tenant   TEXT    NOT NULL,      -- the log the record is in (_system)
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,      -- received_at, unix µs
    action   TEXT    NOT NULL,
    instance TEXT    NOT NULL,
    audit_stdout INTEGER,           -- a start's details.audit_stdout: 0, 1, or NULL unknown
    hostname TEXT,                  -- details.hostname, NULL when the record names none
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE TABLE spool_drains (
    tenant   TEXT    NOT NULL,      -- the log the record is in (_system)
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,      -- received_at: when the spool was drained, unix µs
    first_at INTEGER NOT NULL,      -- details.first_spooled_at, unix µs
    last_at  INTEGER NOT NULL,      -- details.last_spooled_at, unix µs
    events   INTEGER NOT NULL,      -- details.events
    tenants  TEXT    NOT NULL,      -- details.tenants, JSON {"tenant": events}
    hostname TEXT,                  -- details.hostname
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE TABLE counted (
    tenant TEXT NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;
"#;

/// Why the gap detector's database failed.
#[derive(Debug, thiserror::Error)]
pub enum GapsError {
    #[error("gap database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot remove the stale gap database {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one batch changed, for the follower's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The tenant's cursor afterwards: entries below it are folded in.
    pub next_seq: u64,
    /// `source.seq` numbers newly found missing.
    pub missing_found: u64,
    /// Missing ranges newly found: each a new `producer_seq_gap` finding, whenever its events
    /// occurred (a split of a known range by a late arrival is not a new one).
    pub ranges_found: u64,
}

/// The gap database open for writing.
pub struct GapsDb {
    conn: Connection,
    path: PathBuf,
}

impl GapsDb {
    /// Opens `path`, rebuilding it when it is missing, of another schema version, or does not
    /// match `log`.
    pub fn open(path: &Path, log: &dyn Store) -> Result<GapsDb, GapsError> {
        let conn = open_writer(path, log)?;
        Ok(GapsDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Each tenant's stored cursor.
    pub fn cursors(&self) -> Result<HashMap<String, u64>, GapsError> {
        let mut stmt = self.conn.prepare("SELECT name, next_seq FROM tenants")?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Folds a tenant's next committed entries in, `(seq, bytes)` in seq order, and moves its
    /// cursor past them, in one transaction. Entries below the stored cursor are skipped (see
    /// the module docs). `log` is where the last entry's id is read when it does not parse.
    pub fn apply(
        &mut self,
        tenant: &str,
        entries: &[(u64, EntryRow)],
        log: &dyn Store,
    ) -> Result<Applied, GapsError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored: Option<u64> = tx
            .query_row(
                "SELECT next_seq FROM tenants WHERE name = ?1",
                [tenant],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(|n| n as u64);
        let start = stored.unwrap_or(0);
        let fresh: Vec<&(u64, EntryRow)> =
            entries.iter().filter(|(seq, _)| *seq >= start).collect();
        let Some(last_seq) = fresh.last().map(|(seq, _)| *seq) else {
            return Ok(Applied {
                next_seq: start,
                missing_found: 0,
                ranges_found: 0,
            });
        };
        let mut batch = Batch::default();
        let mut last_id = None;
        for (seq, row) in &fresh {
            let bytes = match row {
                Ok(bytes) => bytes,
                Err(bad) => {
                    tracing::error!(tenant, seq, error = %bad, "entry row holds no entry; not counted for gaps (run `sealtrail verify`)");
                    continue;
                }
            };
            match Fact::read(bytes) {
                Ok(fact) => {
                    if *seq == last_seq {
                        last_id = Some(fact.id.to_string());
                    }
                    batch.add(*seq, fact);
                }
                Err(error) => {
                    tracing::error!(tenant, seq, %error, "entry does not parse; not counted for gaps (run `sealtrail verify`)");
                }
            }
        }
        let (missing_found, ranges_found) = batch.write(&tx, tenant)?;
        let last_id = match last_id {
            Some(id) => Some(id),
            None => log.entry_id(tenant, last_seq)?,
        };
        tx.execute(
            "INSERT INTO tenants (name, next_seq, last_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq, last_id = excluded.last_id",
            params![tenant, (last_seq + 1) as i64, last_id],
        )?;
        tx.commit()?;
        Ok(Applied {
            next_seq: last_seq + 1,
            missing_found,
            ranges_found,
        })
    }
}

/// What the detector needs of one entry, borrowed from its bytes where the JSON has no
/// escapes.
struct Fact<'a> {
    id: Cow<'a, str>,
    /// Event time and `received_at`, unix µs.
    at: i64,
    received: i64,
    action: Cow<'a, str>,
    app: Option<Cow<'a, str>>,
    instance: Option<Cow<'a, str>>,
    source_seq: Option<u64>,
    /// A server start's `details.audit_stdout`.
    audit_stdout: Option<bool>,
    /// A server start's or stop's `details.hostname`.
    hostname: Option<String>,
    /// A drained spool's record.
    drain: Option<DrainFact>,
}

/// What a `sealtrail.spool.drained` record says.
struct DrainFact {
    first_at: i64,
    last_at: i64,
    events: i64,
    /// `details.tenants` as JSON text.
    tenants: String,
    hostname: Option<String>,
}

impl DrainFact {
    fn read(details: &serde_json::Value) -> Result<DrainFact, String> {
        let time = |field: &str| {
            let text = details[field]
                .as_str()
                .ok_or_else(|| format!("details.{field} is not a timestamp"))?;
            Timestamp::parse(text)
                .map(|t| t.unix_micros())
                .map_err(|e| format!("details.{field} {text:?}: {e}"))
        };
        let tenants = details["tenants"]
            .as_object()
            .ok_or("details.tenants is not an object")?;
        Ok(DrainFact {
            first_at: time("first_spooled_at")?,
            last_at: time("last_spooled_at")?,
            events: details["events"]
                .as_i64()
                .ok_or("details.events is not a count")?,
            tenants: serde_json::Value::Object(tenants.clone()).to_string(),
            hostname: details["hostname"].as_str().map(str::to_string),
        })
    }
}

#[derive(serde::Deserialize)]
struct StoredEntry<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    source: Option<StoredSource<'a>>,
}

#[derive(serde::Deserialize)]
struct StoredSource<'a> {
    #[serde(borrow, default)]
    app: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    instance: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
}

impl<'a> Fact<'a> {
    fn read(bytes: &'a [u8]) -> Result<Fact<'a>, String> {
        let entry: StoredEntry<'a> =
            sealtrail_core::canonical::read_fields(bytes).map_err(|e| e.to_string())?;
        let time = |text: &str| {
            Timestamp::parse(text)
                .map(|t| t.unix_micros())
                .map_err(|e| format!("timestamp {text:?}: {e}"))
        };
        let received = time(&entry.received_at)?;
        let at = match &entry.occurred_at {
            Some(text) => time(text)?,
            None => received,
        };
        let (app, instance, source_seq) = match entry.source {
            Some(s) => (s.app, s.instance, s.seq),
            None => (None, None, None),
        };
        // Read apart, for starts and stops only: other events' details are theirs and not
        // parsed.
        let (audit_stdout, hostname) =
            if entry.action == SERVER_STARTED || entry.action == SERVER_STOPPED {
                let value = serde_json::from_slice::<serde_json::Value>(bytes).ok();
                let details = value.as_ref().map(|v| &v["details"]);
                (
                    details
                        .filter(|_| entry.action == SERVER_STARTED)
                        .and_then(|d| d["audit_stdout"].as_bool()),
                    details
                        .and_then(|d| d["hostname"].as_str())
                        .filter(|h| !h.is_empty())
                        .map(str::to_string),
                )
            } else {
                (None, None)
            };
        // A record that does not say what sealtrail's does (a producer's event under the
        // action, say) is counted as activity all the same, and is no drain.
        let drain = if entry.action == SPOOL_DRAINED {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .map_err(|e| e.to_string())
                .and_then(|v| DrainFact::read(&v["details"]))
                .inspect_err(|error| {
                    tracing::debug!(%error, "a {SPOOL_DRAINED} event that is not a drain record")
                })
                .ok()
        } else {
            None
        };
        Ok(Fact {
            id: entry.id,
            at,
            received,
            action: entry.action,
            app,
            instance,
            source_seq,
            audit_stdout,
            hostname,
            drain,
        })
    }
}

fn minute_of(micros: i64) -> i64 {
    micros.div_euclid(MINUTE_MICROS)
}

/// A server start or stop record of a batch, as the `lifecycle` table keeps it.
struct LifecycleRow {
    seq: u64,
    /// `received_at`, unix µs.
    at: i64,
    action: String,
    instance: String,
    audit_stdout: Option<bool>,
    hostname: Option<String>,
}

/// The names of a batch (actions, apps, instances), each kept once and known by its number:
/// the batch's maps are keyed by numbers, so that counting an entry copies no string. Keyed by
/// the names themselves, counting copied strings nine times per entry.
#[derive(Default)]
struct Names {
    numbers: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(&number) = self.numbers.get(name) {
            return number;
        }
        let number = u32::try_from(self.names.len()).expect("a batch holds fewer names than u32");
        self.names.push(name.to_string());
        self.numbers.insert(name.to_string(), number);
        number
    }

    fn name(&self, number: u32) -> &str {
        &self.names[number as usize]
    }
}

/// A batch's effects, gathered in memory and written with one statement per row.
#[derive(Default)]
struct Batch {
    /// (basis, minute) → (events, heartbeats)
    activity: HashMap<(i64, i64), (i64, i64)>,
    /// (basis, action, app, minute) → events; names by their [`Names`] number
    activity_by: HashMap<(i64, u32, u32, i64), i64>,
    /// (app, instance, minute) → events
    producer_minutes: HashMap<(u32, u32, i64), i64>,
    /// In log order: (app, instance, source.seq, event time)
    sequences: Vec<(u32, u32, u64, i64)>,
    names: Names,
    /// Server start/stop records.
    lifecycle: Vec<LifecycleRow>,
    /// (seq, received_at, what it says) of drained spools' records.
    drains: Vec<(u64, i64, DrainFact)>,
}

impl Batch {
    fn add(&mut self, seq: u64, fact: Fact<'_>) {
        let heartbeat = fact.action == HEARTBEAT_ACTION;
        let action = self.names.number(&fact.action);
        let app = self.names.number(fact.app.as_deref().unwrap_or_default());
        for (basis, at) in [
            (Basis::EventTime as i64, fact.at),
            (Basis::Received as i64, fact.received),
        ] {
            let minute = minute_of(at);
            let counts = self.activity.entry((basis, minute)).or_default();
            if heartbeat {
                counts.1 += 1;
            } else {
                counts.0 += 1;
                *self
                    .activity_by
                    .entry((basis, action, app, minute))
                    .or_default() += 1;
            }
        }
        if fact.app.is_some() {
            let instance = self
                .names
                .number(fact.instance.as_deref().unwrap_or_default());
            *self
                .producer_minutes
                .entry((app, instance, minute_of(fact.at)))
                .or_default() += 1;
            if let Some(source_seq) = fact.source_seq {
                self.sequences.push((app, instance, source_seq, fact.at));
            }
        }
        if let Some(drain) = fact.drain {
            self.drains.push((seq, fact.received, drain));
        }
        if fact.action == SERVER_STARTED || fact.action == SERVER_STOPPED {
            let instance = fact.instance.map(Cow::into_owned).unwrap_or_default();
            self.lifecycle.push(LifecycleRow {
                seq,
                at: fact.received,
                action: fact.action.into_owned(),
                instance,
                audit_stdout: fact.audit_stdout,
                hostname: fact.hostname,
            });
        }
    }

    /// Writes the batch; returns how many `source.seq` numbers it found missing, and in how
    /// many new ranges.
    fn write(self, tx: &Transaction<'_>, tenant: &str) -> Result<(u64, u64), GapsError> {
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO activity (tenant, basis, minute, events, heartbeats) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET events = events + excluded.events, heartbeats = heartbeats + excluded.heartbeats",
            )?;
            for ((basis, minute), (events, heartbeats)) in &self.activity {
                stmt.execute(params![tenant, basis, minute, events, heartbeats])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO activity_by (tenant, basis, action, app, minute, events) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET events = events + excluded.events",
            )?;
            for ((basis, action, app, minute), events) in &self.activity_by {
                let (action, app) = (self.names.name(*action), self.names.name(*app));
                stmt.execute(params![tenant, basis, action, app, minute, events])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO producer_minutes (tenant, app, instance, minute, events) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET events = events + excluded.events",
            )?;
            for ((app, instance, minute), events) in &self.producer_minutes {
                let (app, instance) = (self.names.name(*app), self.names.name(*instance));
                stmt.execute(params![tenant, app, instance, minute, events])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO lifecycle (tenant, seq, at, action, instance, audit_stdout, hostname) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for row in &self.lifecycle {
                stmt.execute(params![
                    tenant,
                    row.seq as i64,
                    row.at,
                    row.action,
                    row.instance,
                    row.audit_stdout,
                    row.hostname
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO spool_drains (tenant, seq, at, first_at, last_at, events, tenants, hostname) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (seq, at, d) in &self.drains {
                stmt.execute(params![
                    tenant,
                    *seq as i64,
                    at,
                    d.first_at,
                    d.last_at,
                    d.events,
                    d.tenants,
                    d.hostname
                ])?;
            }
        }
        let names = &self.names;
        let mut states: HashMap<(u32, u32), Option<SeqState>> = HashMap::new();
        let (mut missing_found, mut ranges_found) = (0, 0);
        for &(app, instance, number, at) in &self.sequences {
            let key = (names.name(app), names.name(instance));
            let state = match states.entry((app, instance)) {
                std::collections::hash_map::Entry::Occupied(state) => state.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(load_state(tx, tenant, key.0, key.1)?)
                }
            };
            let found = follow_sequence(tx, tenant, key, state, number, at)?;
            missing_found += found;
            ranges_found += u64::from(found > 0);
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO producers (tenant, app, instance, run, next, last_at, duplicates, restarts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT DO UPDATE SET run = excluded.run, next = excluded.next, last_at = excluded.last_at,
                 duplicates = excluded.duplicates, restarts = excluded.restarts",
        )?;
        for ((app, instance), state) in states {
            let (app, instance) = (names.name(app), names.name(instance));
            if let Some(s) = state {
                stmt.execute(params![
                    tenant,
                    app,
                    instance,
                    s.run,
                    s.next as i64,
                    s.last_at,
                    s.duplicates,
                    s.restarts
                ])?;
            }
        }
        Ok((missing_found, ranges_found))
    }
}

/// A producer's sequence state in its current run.
#[derive(Debug, Clone, Copy)]
struct SeqState {
    run: i64,
    next: u64,
    last_at: i64,
    duplicates: i64,
    restarts: i64,
}

fn load_state(
    tx: &Transaction<'_>,
    tenant: &str,
    app: &str,
    instance: &str,
) -> Result<Option<SeqState>, GapsError> {
    Ok(tx
        .prepare_cached(
            "SELECT run, next, last_at, duplicates, restarts FROM producers
             WHERE tenant = ?1 AND app = ?2 AND instance = ?3",
        )?
        .query_row(params![tenant, app, instance], |row| {
            Ok(SeqState {
                run: row.get(0)?,
                next: row.get::<_, i64>(1)? as u64,
                last_at: row.get(2)?,
                duplicates: row.get(3)?,
                restarts: row.get(4)?,
            })
        })
        .optional()?)
}

/// One `source.seq` of a producer, by the rules of the module docs. Returns how many numbers
/// it proved missing.
fn follow_sequence(
    tx: &Transaction<'_>,
    tenant: &str,
    (app, instance): (&str, &str),
    state: &mut Option<SeqState>,
    number: u64,
    at: i64,
) -> Result<u64, GapsError> {
    let Some(s) = state else {
        *state = Some(SeqState {
            run: 0,
            next: number + 1,
            last_at: at,
            duplicates: 0,
            restarts: 0,
        });
        return Ok(0);
    };
    if number == s.next {
        s.next = number + 1;
        s.last_at = at;
        return Ok(0);
    }
    if number > s.next {
        tx.prepare_cached(
            "INSERT INTO missing (tenant, app, instance, run, from_seq, to_seq, start_at, end_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            tenant,
            app,
            instance,
            s.run,
            s.next as i64,
            (number - 1) as i64,
            s.last_at,
            at
        ])?;
        let found = number - s.next;
        s.next = number + 1;
        s.last_at = at;
        return Ok(found);
    }
    if number == 0 && s.next > 1 {
        s.run += 1;
        s.restarts += 1;
        s.next = 1;
        s.last_at = at;
        return Ok(0);
    }
    // Below the next number expected: a late arrival filling a missing range, or a duplicate.
    let range: Option<(i64, i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT from_seq, to_seq, start_at, end_at FROM missing
             WHERE tenant = ?1 AND app = ?2 AND instance = ?3 AND run = ?4 AND from_seq <= ?5 AND to_seq >= ?5",
        )?
        .query_row(params![tenant, app, instance, s.run, number as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((from, to, start_at, end_at)) = range else {
        s.duplicates += 1;
        return Ok(0);
    };
    tx.prepare_cached(
        "DELETE FROM missing WHERE tenant = ?1 AND app = ?2 AND instance = ?3 AND run = ?4 AND from_seq = ?5",
    )?
    .execute(params![tenant, app, instance, s.run, from])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO missing (tenant, app, instance, run, from_seq, to_seq, start_at, end_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let number = number as i64;
    if from < number {
        insert.execute(params![
            tenant,
            app,
            instance,
            s.run,
            from,
            number - 1,
            start_at,
            at
        ])?;
    }
    if number < to {
        insert.execute(params![
            tenant,
            app,
            instance,
            s.run,
            number + 1,
            to,
            at,
            end_at
        ])?;
    }
    Ok(0)
}

/// A read-only connection to the gap database, opened per request.
pub struct GapsReader {
    conn: Connection,
}

/// A tenant's activity in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    pub minute: i64,
    pub events: i64,
    pub heartbeats: i64,
}

/// Which activity a timeline counts.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub action: Option<String>,
    /// `source.app`.
    pub app: Option<String>,
}

/// A producer's sequence state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub app: String,
    /// `None` when the producer sends no `source.instance`.
    pub instance: Option<String>,
    pub run: i64,
    pub duplicates: i64,
    pub restarts: i64,
}

/// A range of `source.seq` numbers proven missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRange {
    pub app: String,
    pub instance: Option<String>,
    pub run: i64,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Event times of the numbers on either side, unix µs.
    pub start_at: i64,
    pub end_at: i64,
}

/// When a producer was last seen, and how busy it was the day before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerActivity {
    pub app: String,
    pub instance: Option<String>,
    /// The last minute it sent anything in, before the bound asked about.
    pub last_minute: i64,
    /// Minutes it sent anything in during the 24 hours up to `last_minute` (inclusive).
    pub active_minutes: i64,
    /// The first of those minutes.
    pub first_minute: i64,
}

/// A server start or stop record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRecord {
    pub at: i64,
    pub action: String,
    pub instance: String,
    /// A start's `--audit-stdout` setting; `None` for stops and for starts that do not say.
    pub audit_stdout: Option<bool>,
    /// The host the record names; `None` when it names none.
    pub hostname: Option<String>,
}

/// A drained spool's record: a store outage during which events were spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolDrain {
    /// When the spool was drained (the record's `received_at`), unix µs.
    pub at: i64,
    /// When its first and last events were accepted, unix µs.
    pub first_at: i64,
    pub last_at: i64,
    /// Events in the spool period.
    pub events: u64,
    /// Events per tenant, as the record lists them.
    pub tenants: std::collections::BTreeMap<String, u64>,
    pub hostname: Option<String>,
}

fn instance_of(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

impl GapsReader {
    /// Opens the database at `path` read-only; `None` when it does not exist yet.
    pub fn open(path: &Path) -> Result<Option<GapsReader>, GapsError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Some(GapsReader { conn }))
    }

    /// [`GapsReader::open`] with writing allowed, for [`GapsReader::mark_counted`] only.
    pub fn open_for_marks(path: &Path) -> Result<Option<GapsReader>, GapsError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Some(GapsReader { conn }))
    }

    /// Records that the finding `(kind, key)` of `tenant` has been counted; true the first
    /// time.
    pub fn mark_counted(&self, tenant: &str, kind: &str, key: &str) -> Result<bool, GapsError> {
        let changed = self.conn.execute(
            "INSERT OR IGNORE INTO counted (tenant, kind, key) VALUES (?1, ?2, ?3)",
            params![tenant, kind, key],
        )?;
        Ok(changed == 1)
    }

    /// The tenant's cursor: entries below it are counted.
    pub fn cursor(&self, tenant: &str) -> Result<u64, GapsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT next_seq FROM tenants WHERE name = ?1",
                [tenant],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map_or(0, |n| n as u64))
    }

    /// The tenants with anything folded in.
    pub fn tenants(&self) -> Result<Vec<String>, GapsError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM tenants ORDER BY name")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The minutes in `[from, to)` (unix minutes) with any activity or heartbeat, in order.
    pub fn minutes(
        &self,
        tenant: &str,
        basis: Basis,
        from: i64,
        to: i64,
    ) -> Result<Vec<Minute>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT minute, events, heartbeats FROM activity
             WHERE tenant = ?1 AND basis = ?2 AND minute >= ?3 AND minute < ?4 ORDER BY minute",
        )?;
        let rows = stmt.query_map(params![tenant, basis as i64, from, to], |row| {
            Ok(Minute {
                minute: row.get(0)?,
                events: row.get(1)?,
                heartbeats: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Activity per minute in `[from, to)` matching `filter`: `(minute, events)` for minutes
    /// with any, in order.
    pub fn filtered_minutes(
        &self,
        tenant: &str,
        basis: Basis,
        from: i64,
        to: i64,
        filter: &ActivityFilter,
    ) -> Result<Vec<(i64, i64)>, GapsError> {
        let mut sql = String::from(
            "SELECT minute, SUM(events) FROM activity_by
             WHERE tenant = ?1 AND basis = ?2 AND minute >= ?3 AND minute < ?4",
        );
        if filter.action.is_some() {
            sql.push_str(" AND action = ?5");
        }
        if filter.app.is_some() {
            sql.push_str(" AND app = ?6");
        }
        sql.push_str(" GROUP BY minute ORDER BY minute");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut bound = vec![
            (1, rusqlite::types::Value::from(tenant.to_string())),
            (2, (basis as i64).into()),
            (3, from.into()),
            (4, to.into()),
        ];
        if let Some(action) = &filter.action {
            bound.push((5, action.clone().into()));
        }
        if let Some(app) = &filter.app {
            bound.push((6, app.clone().into()));
        }
        for (index, value) in bound {
            stmt.raw_bind_parameter(index, value)?;
        }
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((row.get(0)?, row.get(1)?));
        }
        Ok(out)
    }

    /// Activity per action in `[from, to)` (unix minutes), of every `source.app` or of
    /// `app` only: `(action, events)` for actions with any, by action.
    pub fn actions(
        &self,
        tenant: &str,
        basis: Basis,
        from: i64,
        to: i64,
        app: Option<&str>,
    ) -> Result<Vec<(String, i64)>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT action, SUM(events) FROM activity_by
             WHERE tenant = ?1 AND basis = ?2 AND minute >= ?3 AND minute < ?4
               AND (?5 IS NULL OR app = ?5)
             GROUP BY action ORDER BY action",
        )?;
        let rows = stmt.query_map(params![tenant, basis as i64, from, to, app], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first minute (event time) the tenant has any activity in, if any.
    pub fn first_minute(&self, tenant: &str) -> Result<Option<i64>, GapsError> {
        Ok(self.conn.query_row(
            "SELECT MIN(minute) FROM activity WHERE tenant = ?1 AND basis = 0",
            [tenant],
            |row| row.get(0),
        )?)
    }

    /// Every producer's last activity before minute `before`, with its activity in the
    /// 24 hours up to it.
    pub fn producer_activity(
        &self,
        tenant: &str,
        before: i64,
    ) -> Result<Vec<ProducerActivity>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT app, instance, MAX(minute) FROM producer_minutes
             WHERE tenant = ?1 AND minute < ?2 GROUP BY app, instance ORDER BY app, instance",
        )?;
        let lasts: Vec<(String, String, i64)> = stmt
            .query_map(params![tenant, before], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut day = self.conn.prepare_cached(
            "SELECT COUNT(*), MIN(minute) FROM producer_minutes
             WHERE tenant = ?1 AND app = ?2 AND instance = ?3 AND minute > ?4 AND minute <= ?5",
        )?;
        let mut out = Vec::new();
        for (app, instance, last) in lasts {
            let (active, first): (i64, i64) = day
                .query_row(params![tenant, app, instance, last - 1440, last], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            out.push(ProducerActivity {
                app,
                instance: instance_of(instance),
                last_minute: last,
                active_minutes: active,
                first_minute: first,
            });
        }
        Ok(out)
    }

    /// The missing ranges whose span `[start_at, end_at]` reaches into `[from, to)` (unix µs).
    pub fn missing(
        &self,
        tenant: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<MissingRange>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT app, instance, run, from_seq, to_seq, start_at, end_at FROM missing
             WHERE tenant = ?1 AND end_at >= ?2 AND start_at < ?3
             ORDER BY start_at, app, instance, from_seq",
        )?;
        let rows = stmt.query_map(params![tenant, from, to], |row| {
            Ok(MissingRange {
                app: row.get(0)?,
                instance: instance_of(row.get(1)?),
                run: row.get(2)?,
                from_seq: row.get::<_, i64>(3)? as u64,
                to_seq: row.get::<_, i64>(4)? as u64,
                start_at: row.get(5)?,
                end_at: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every producer that sends `source.seq`, with its duplicates and restarts.
    pub fn producers(&self, tenant: &str) -> Result<Vec<ProducerRecord>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT app, instance, run, duplicates, restarts FROM producers
             WHERE tenant = ?1 ORDER BY app, instance",
        )?;
        let rows = stmt.query_map([tenant], |row| {
            Ok(ProducerRecord {
                app: row.get(0)?,
                instance: instance_of(row.get(1)?),
                run: row.get(2)?,
                duplicates: row.get(3)?,
                restarts: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The drained spools' records in the log `log` whose spool period (first to last event
    /// accepted) overlaps `[from, to]`, in order of their first event.
    pub fn spool_drains(
        &self,
        log: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<SpoolDrain>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, first_at, last_at, events, tenants, hostname FROM spool_drains
             WHERE tenant = ?1 AND first_at <= ?3 AND last_at >= ?2 ORDER BY first_at, seq",
        )?;
        let rows = stmt.query_map(params![log, from, to], |row| {
            let tenants: String = row.get(4)?;
            Ok(SpoolDrain {
                at: row.get(0)?,
                first_at: row.get(1)?,
                last_at: row.get(2)?,
                events: row.get::<_, i64>(3)?.max(0) as u64,
                tenants: serde_json::from_str(&tenants).unwrap_or_default(),
                hostname: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Server start and stop records (from any log) received in `[from, to)`, in order.
    /// The start/stop records of the log `log` (the caller passes `_system`: only sealtrail
    /// writes there, so a producer posting a `sealtrail.server.stopped` event in its own log
    /// cannot change what any gap report says about the server).
    pub fn lifecycle(
        &self,
        log: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<LifecycleRecord>, GapsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, action, instance, audit_stdout, hostname FROM lifecycle WHERE tenant = ?3 AND at >= ?1 AND at < ?2 ORDER BY at, seq",
        )?;
        let rows = stmt.query_map(params![from, to, log], |row| {
            Ok(LifecycleRecord {
                at: row.get(0)?,
                action: row.get(1)?,
                instance: row.get(2)?,
                audit_stdout: row.get(3)?,
                hostname: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Opens the database for writing, rebuilding it when it cannot be trusted.
fn open_writer(path: &Path, log: &dyn Store) -> Result<Connection, GapsError> {
    if path.exists() {
        let conn = configure(Connection::open(path)?)?;
        if let Some(discarded) = crate::sqlite::wal::discard_unfinished(&conn, path)? {
            tracing::warn!(
                wal = %discarded.file.display(),
                bytes = discarded.bytes,
                "the gap database lost an unfinished write in a crash; its entries are counted again from the log"
            );
        }
        match crate::layout::derived_stale_reason::<GapsError>(
            &conn,
            SCHEMA_VERSION,
            "the gap database",
            log,
        )? {
            None => return Ok(conn),
            Some(reason) => {
                tracing::warn!(gaps = %path.display(), %reason, "rebuilding the gap database from the log");
                drop(conn);
                remove_database(path)?;
            }
        }
    }
    crate::layout::create_private_file(path).map_err(|error| {
        StoreError::Unavailable(format!("cannot create {}: {error}", path.display()))
    })?;
    let conn = configure(Connection::open(path)?)?;
    conn.execute_batch(&format!(
        "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))?;
    Ok(conn)
}

fn configure(conn: Connection) -> Result<Connection, GapsError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Derived data: losing the last transactions in a power cut only means counting them again.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn remove_database(path: &Path) -> Result<(), GapsError> {
    crate::layout::remove_sqlite_database(path)
        .map_err(|(path, source)| GapsError::Remove { path, source })
}
