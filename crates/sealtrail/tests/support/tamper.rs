//! A log written by the real ledger and then damaged the way someone with write access to the
//! database could — the append-only triggers disarmed, rows changed, deleted, inserted,
//! swapped, cut, a tail rewritten with recomputed hashes and links, the signing key replaced,
//! and the triggers put back — with `sealtrail verify` run on it as an auditor runs it.
//!
//! Every scenario is written once, over [`Db`], and run on the embedded store
//! (`tests/verify_cli.rs`) and on PostgreSQL (`tests/pg_tamper.rs`).

use std::ops::Range;

use super::serve::copy_dir;
use std::path::{Path, PathBuf};

use std::time::Duration;

use rusqlite::{Connection, params};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::Event;
use sealtrail_core::merkle::{TreeBuilder, stored_hash_count};
use sealtrail_core::note::{self, SignerKey};
use sealtrail_core::{Hash, leaf_hash};
use sealtrail_server::keys;
use sealtrail_server::ledger::{Ledger, LedgerConfig, Submission};
use sealtrail_store::DataDir;
use sealtrail_store::Location;
use serde_json::Value;

use super::{TestDatabase, sealtrail_here};

/// The tenant whose log is damaged.
pub const TENANT: &str = "acme";
/// Entries in the test log; the ledger signs checkpoints at sizes [`FIRST_SESSION`] and [`SIZE`].
pub const SIZE: u64 = 200;
pub const FIRST_SESSION: u64 = 100;

/// A report's violations as `(seq, kind)`; `seq` is `None` for a checkpoint as a whole.
pub fn kinds(report: &Value) -> Vec<(Option<u64>, String)> {
    report["violations"]
        .as_array()
        .expect("a violations array")
        .iter()
        .map(|v| (v["seq"].as_u64(), v["kind"].as_str().unwrap().to_string()))
        .collect()
}

/// `want` in the shape [`kinds`] returns.
pub fn owned(want: &[(Option<u64>, &str)]) -> Vec<(Option<u64>, String)> {
    want.iter().map(|&(seq, kind)| (seq, kind.into())).collect()
}

fn event(n: u64) -> Submission {
    let json = format!(
        r#"{{"action":"patient.record.read","outcome":"success","actor":{{"id":"u-{}","type":"user"}},"source":{{"app":"ehr","seq":{n}}}}}"#,
        n % 7
    );
    Submission {
        event: Event::parse(json.as_bytes()).unwrap(),
        idempotency_key: None,
    }
}

/// What `sealtrail verify` printed.
pub struct Verified {
    pub code: i32,
    pub report: Value,
    pub stderr: String,
}

/// One store holding the test log: the data directory (the logs' key files, and the embedded
/// database) and, on PostgreSQL, the database.
pub struct Log {
    pub data: PathBuf,
    pub db: Option<TestDatabase>,
}

impl Log {
    /// A store with [`SIZE`] entries in [`TENANT`]'s log, checkpointed at sizes
    /// [`FIRST_SESSION`] and [`SIZE`], written through the ledger.
    pub fn build(data: PathBuf, db: Option<TestDatabase>) -> Log {
        let log = Log { data, db };
        log.session(0..FIRST_SESSION);
        log.session(FIRST_SESSION..SIZE);
        let sizes: Vec<u64> = log.open().checkpoints().iter().map(|c| c.0).collect();
        assert_eq!(sizes, [FIRST_SESSION, SIZE]);
        log
    }

    pub fn url(&self) -> Option<&str> {
        self.db.as_ref().map(|db| db.url.as_str())
    }

    /// Appends events `range` in one ledger session, which signs a checkpoint after its first
    /// commit and a final one when it shuts down.
    pub fn session(&self, range: Range<u64>) {
        let ledger = Ledger::start(LedgerConfig {
            data_dir: self.data.clone(),
            store: Location::new(&self.data, self.url()),
            signing_key: None,
            // Long enough that only the first commit and the shutdown sign checkpoints.
            checkpoint_interval: Duration::from_secs(3600),
            origin_prefix: "sealtrail.test".into(),
            audit_stdout: false,
        })
        .unwrap();
        ledger.ensure_tenant_blocking(TENANT, "test").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(ledger.append(TENANT, range.map(event).collect()))
            .unwrap();
        ledger.shutdown();
    }

    /// A copy of this store to damage: the data directory copied to `dir`, and on PostgreSQL a
    /// new database made from this one.
    pub fn copy(&self, dir: &Path) -> Log {
        copy_dir(&self.data, dir);
        Log {
            data: dir.to_path_buf(),
            db: self.db.as_ref().map(TestDatabase::copy),
        }
    }

    /// A connection to the store as someone who can write to it directly: the database file's
    /// owner, or a PostgreSQL superuser.
    pub fn open(&self) -> Box<dyn Db> {
        match &self.db {
            None => Box::new(Connection::open(DataDir::new(&self.data).database()).unwrap()),
            Some(db) => Box::new(db.connect()),
        }
    }

    /// The arguments that point a `sealtrail` command at this store, with `data` as the data
    /// directory (where the logs' key files are looked for).
    fn store_args(&self, data: &Path) -> Vec<String> {
        let mut args = vec!["--data".to_string(), data.to_str().unwrap().to_string()];
        if let Some(url) = self.url() {
            args.extend(["--database-url".to_string(), url.to_string()]);
        }
        args
    }

    /// `sealtrail verify --tenant acme --json` on this store, with `extra` arguments.
    pub fn verify(&self, extra: &[&str]) -> Verified {
        self.verify_with_keys_in(&self.data, extra)
    }

    /// [`Log::verify`] with `data` as the data directory: on PostgreSQL, a machine that has
    /// the database but not the server's key files.
    pub fn verify_with_keys_in(&self, data: &Path, extra: &[&str]) -> Verified {
        let mut args = vec!["verify".to_string()];
        args.extend(self.store_args(data));
        args.extend(["--tenant", TENANT, "--json"].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        let out = sealtrail_here(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Verified {
            code: out.status.code().expect("an exit code"),
            report,
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Asserts that verify finds exactly `want` (and `first_broken_seq`), with the store's
    /// protections back in place; returns the report.
    pub fn expect(
        &self,
        name: &str,
        extra: &[&str],
        want: &[(Option<u64>, &str)],
        first_broken_seq: Option<u64>,
    ) -> Value {
        self.expect_in(&self.data, name, extra, want, first_broken_seq)
    }

    /// [`Log::expect`] with `data` as the data directory (see [`Log::verify_with_keys_in`]).
    pub fn expect_in(
        &self,
        data: &Path,
        name: &str,
        extra: &[&str],
        want: &[(Option<u64>, &str)],
        first_broken_seq: Option<u64>,
    ) -> Value {
        let Verified { code, report, .. } = self.verify_with_keys_in(data, extra);
        assert_eq!(
            report["store_protections"]["intact"], true,
            "{name}: {report:#}"
        );
        assert_eq!(kinds(&report), owned(want), "{name}: {report:#}");
        assert_eq!(report["valid"], want.is_empty(), "{name}");
        assert_eq!(code, i32::from(!want.is_empty()), "{name}: {report:#}");
        assert_eq!(
            report["first_broken_seq"].as_u64(),
            first_broken_seq,
            "{name}: {report:#}"
        );
        report
    }

    /// The latest signed checkpoint, saved to `path` as an operator keeps one outside the store.
    pub fn save_checkpoint(&self, path: &Path, size: u64) {
        let (_, note) = self
            .open()
            .checkpoints()
            .into_iter()
            .find(|(s, _)| *s == size)
            .expect("a checkpoint of that size");
        std::fs::write(path, note).unwrap();
    }
}

/// Direct write access to one store's tables, for [`TENANT`]'s log.
pub trait Db {
    /// Runs statements (no parameters; the same SQL works on both stores).
    fn batch(&mut self, sql: &str);
    fn entry(&mut self, seq: u64) -> Vec<u8>;
    fn entry_id(&mut self, seq: u64) -> String;
    fn set_entry(&mut self, seq: u64, bytes: &[u8]);
    fn insert_entry(&mut self, seq: u64, id: &str, bytes: &[u8]);
    /// The stored-hash array, in order.
    fn hashes(&mut self) -> Vec<Hash>;
    fn insert_hashes(&mut self, first: u64, hashes: &[Hash]);
    /// Deletes the entries with seqs in `seqs`.
    fn delete_entries(&mut self, seqs: Range<u64>);
    /// Deletes the stored hashes from position `first` on.
    fn delete_hashes_from(&mut self, first: u64);
    /// Moves every entry from seq `at` on one seq up (their bytes left as they are).
    fn shift_entries_up(&mut self, at: u64);
    /// `(size, note)` of every stored checkpoint, by size.
    fn checkpoints(&mut self) -> Vec<(u64, String)>;
    fn set_checkpoint(&mut self, size: u64, note: &str);
    /// Replaces the verifier key the store records for the tenant.
    fn set_recorded_key(&mut self, vkey: &str);
    /// Leaves the row of entry `seq` holding no bytes: TEXT with the same characters on SQLite,
    /// which keeps a type per value; NULL on PostgreSQL, which keeps one per column, once the
    /// column's NOT NULL is dropped.
    fn strip_entry_bytes(&mut self, seq: u64);
    /// Turns off the append-only triggers of the log tables.
    fn disarm(&mut self);
    /// Puts them back exactly as the schema has them, as a careful administrator would.
    fn rearm(&mut self);
}

/// The key of the embedded store's row for tenant `?1` and seq (or stored-hash index) `?2`:
/// the tenant's number above 44 bits of position.
const SQLITE_KEY: &str = "((SELECT number FROM tenants WHERE name = ?1) << 44 | ?2)";

/// The embedded store's append-only triggers: `(table, what the message calls its rows)`.
const SQLITE_TRIGGERS: [(&str, &str); 3] = [
    ("entries", "entries are"),
    ("hashes", "stored hashes are"),
    ("checkpoints", "checkpoints are"),
];

impl Db for Connection {
    fn batch(&mut self, sql: &str) {
        self.execute_batch(sql).unwrap();
    }

    fn strip_entry_bytes(&mut self, seq: u64) {
        self.execute(
            &format!("UPDATE entries SET entry = CAST(entry AS TEXT) WHERE key = {SQLITE_KEY}"),
            params![TENANT, seq as i64],
        )
        .unwrap();
    }

    fn entry(&mut self, seq: u64) -> Vec<u8> {
        self.query_row(
            &format!("SELECT entry FROM entries WHERE key = {SQLITE_KEY}"),
            params![TENANT, seq as i64],
            |row| row.get(0),
        )
        .expect("the entry")
    }

    fn entry_id(&mut self, seq: u64) -> String {
        // A UUID is kept as its 16 bytes, any other id as text.
        self.query_row(
            &format!(
                "SELECT CASE WHEN typeof(id) = 'blob' THEN lower(
                     substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' ||
                     substr(hex(id), 13, 4) || '-' || substr(hex(id), 17, 4) || '-' ||
                     substr(hex(id), 21)) ELSE id END
                 FROM entries WHERE key = {SQLITE_KEY}"
            ),
            params![TENANT, seq as i64],
            |row| row.get(0),
        )
        .expect("the entry")
    }

    fn set_entry(&mut self, seq: u64, bytes: &[u8]) {
        let changed = self
            .execute(
                &format!("UPDATE entries SET entry = ?3 WHERE key = {SQLITE_KEY}"),
                params![TENANT, seq as i64, bytes],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn insert_entry(&mut self, seq: u64, id: &str, bytes: &[u8]) {
        // As the store writes it: a UUID as its 16 bytes.
        self.execute(
            &format!(
                "INSERT INTO entries (key, id, entry) VALUES ({SQLITE_KEY},
                 CASE WHEN length(?3) = 36 THEN unhex(replace(?3, '-', '')) ELSE ?3 END, ?4)"
            ),
            params![TENANT, seq as i64, id, bytes],
        )
        .unwrap();
    }

    fn delete_entries(&mut self, seqs: Range<u64>) {
        self.execute(
            &format!(
                "DELETE FROM entries WHERE key >= {SQLITE_KEY} AND key < {}",
                SQLITE_KEY.replace("?2", "?3")
            ),
            params![TENANT, seqs.start as i64, seqs.end.min(1 << 40) as i64],
        )
        .unwrap();
    }

    fn delete_hashes_from(&mut self, first: u64) {
        self.execute(
            &format!(
                "DELETE FROM hashes WHERE key >= {SQLITE_KEY} AND key < {}",
                SQLITE_KEY.replace("?2", "?3")
            ),
            params![TENANT, first as i64, 1i64 << 40],
        )
        .unwrap();
    }

    fn shift_entries_up(&mut self, at: u64) {
        // Two steps, so that no moved row collides with one not moved yet.
        let (from, to) = (SQLITE_KEY, SQLITE_KEY.replace("?2", "?3"));
        self.execute(
            &format!("UPDATE entries SET key = -(key + 1) WHERE key >= {from} AND key < {to}"),
            params![TENANT, at as i64, 1i64 << 40],
        )
        .unwrap();
        self.execute_batch("UPDATE entries SET key = -key WHERE key < 0")
            .unwrap();
    }

    fn hashes(&mut self) -> Vec<Hash> {
        let mut stmt = self
            .prepare(&format!(
                "SELECT hash FROM hashes WHERE key >= {SQLITE_KEY} AND key < {} ORDER BY key",
                SQLITE_KEY.replace("?2", "?3")
            ))
            .unwrap();
        stmt.query_map(params![TENANT, 0i64, 1i64 << 40], |row| {
            row.get::<_, Vec<u8>>(0)
        })
        .unwrap()
        .map(|hash| Hash::from_slice(&hash.unwrap()).unwrap())
        .collect()
    }

    fn insert_hashes(&mut self, first: u64, hashes: &[Hash]) {
        for (offset, hash) in hashes.iter().enumerate() {
            self.execute(
                &format!("INSERT INTO hashes (key, hash) VALUES ({SQLITE_KEY}, ?3)"),
                params![
                    TENANT,
                    (first + offset as u64) as i64,
                    hash.as_bytes().as_slice()
                ],
            )
            .unwrap();
        }
    }

    fn checkpoints(&mut self) -> Vec<(u64, String)> {
        let mut stmt = self
            .prepare("SELECT size, note FROM checkpoints WHERE tenant = ?1 ORDER BY size")
            .unwrap();
        stmt.query_map([TENANT], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn set_checkpoint(&mut self, size: u64, note: &str) {
        let changed = self
            .execute(
                "UPDATE checkpoints SET note = ?3 WHERE tenant = ?1 AND size = ?2",
                params![TENANT, size as i64, note],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn set_recorded_key(&mut self, vkey: &str) {
        let changed = self
            .execute(
                "UPDATE tenants SET vkey = ?2 WHERE name = ?1",
                params![TENANT, vkey],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn disarm(&mut self) {
        for (table, _) in SQLITE_TRIGGERS {
            for op in ["update", "delete"] {
                self.batch(&format!("DROP TRIGGER {table}_append_only_{op}"));
            }
        }
    }

    fn rearm(&mut self) {
        for (table, what) in SQLITE_TRIGGERS {
            for op in ["update", "delete"] {
                self.batch(&format!(
                    "CREATE TRIGGER {table}_append_only_{op} BEFORE {} ON {table} BEGIN SELECT RAISE(ABORT, '{what} append-only'); END;",
                    op.to_uppercase()
                ));
            }
        }
    }
}

/// The PostgreSQL store's log tables, whose triggers are `<table>_append_only` and
/// `<table>_no_truncate`.
const PG_LOG_TABLES: [&str; 3] = ["entries", "hashes", "checkpoints"];

impl Db for postgres::Client {
    fn batch(&mut self, sql: &str) {
        self.batch_execute(sql).unwrap();
    }

    fn strip_entry_bytes(&mut self, seq: u64) {
        self.batch_execute("ALTER TABLE entries ALTER COLUMN entry DROP NOT NULL")
            .unwrap();
        self.execute(
            "UPDATE entries SET entry = NULL WHERE tenant = $1 AND seq = $2",
            &[&TENANT, &(seq as i64)],
        )
        .unwrap();
    }

    fn entry(&mut self, seq: u64) -> Vec<u8> {
        self.query_one(
            "SELECT entry FROM entries WHERE tenant = $1 AND seq = $2",
            &[&TENANT, &(seq as i64)],
        )
        .expect("the entry")
        .get(0)
    }

    fn entry_id(&mut self, seq: u64) -> String {
        self.query_one(
            "SELECT id FROM entries WHERE tenant = $1 AND seq = $2",
            &[&TENANT, &(seq as i64)],
        )
        .expect("the entry")
        .get(0)
    }

    fn set_entry(&mut self, seq: u64, bytes: &[u8]) {
        let changed = self
            .execute(
                "UPDATE entries SET entry = $3 WHERE tenant = $1 AND seq = $2",
                &[&TENANT, &(seq as i64), &bytes],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn insert_entry(&mut self, seq: u64, id: &str, bytes: &[u8]) {
        self.execute(
            "INSERT INTO entries (tenant, seq, id, entry) VALUES ($1, $2, $3, $4)",
            &[&TENANT, &(seq as i64), &id, &bytes],
        )
        .unwrap();
    }

    fn delete_entries(&mut self, seqs: Range<u64>) {
        self.execute(
            "DELETE FROM entries WHERE tenant = $1 AND seq >= $2 AND seq < $3",
            &[
                &TENANT,
                &(seqs.start as i64),
                &(seqs.end.min(i64::MAX as u64) as i64),
            ],
        )
        .unwrap();
    }

    fn delete_hashes_from(&mut self, first: u64) {
        self.execute(
            "DELETE FROM hashes WHERE tenant = $1 AND idx >= $2",
            &[&TENANT, &(first as i64)],
        )
        .unwrap();
    }

    fn shift_entries_up(&mut self, at: u64) {
        // Two steps, so that no moved row collides with one not moved yet.
        self.batch(&format!(
            "UPDATE entries SET seq = -seq - 1 WHERE tenant = '{TENANT}' AND seq >= {at};
             UPDATE entries SET seq = -seq WHERE tenant = '{TENANT}' AND seq < 0;"
        ));
    }

    fn hashes(&mut self) -> Vec<Hash> {
        self.query(
            "SELECT hash FROM hashes WHERE tenant = $1 ORDER BY idx",
            &[&TENANT],
        )
        .unwrap()
        .iter()
        .map(|row| Hash::from_slice(row.get::<_, &[u8]>(0)).unwrap())
        .collect()
    }

    fn insert_hashes(&mut self, first: u64, hashes: &[Hash]) {
        for (offset, hash) in hashes.iter().enumerate() {
            self.execute(
                "INSERT INTO hashes (tenant, idx, hash) VALUES ($1, $2, $3)",
                &[
                    &TENANT,
                    &((first + offset as u64) as i64),
                    &hash.as_bytes().as_slice(),
                ],
            )
            .unwrap();
        }
    }

    fn checkpoints(&mut self) -> Vec<(u64, String)> {
        self.query(
            "SELECT size, note FROM checkpoints WHERE tenant = $1 ORDER BY size",
            &[&TENANT],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, i64>(0) as u64, row.get(1)))
        .collect()
    }

    fn set_checkpoint(&mut self, size: u64, note: &str) {
        let changed = self
            .execute(
                "UPDATE checkpoints SET note = $3 WHERE tenant = $1 AND size = $2",
                &[&TENANT, &(size as i64), &note],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn set_recorded_key(&mut self, vkey: &str) {
        let changed = self
            .execute(
                "UPDATE tenants SET vkey = $2 WHERE name = $1",
                &[&TENANT, &vkey],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn disarm(&mut self) {
        for table in PG_LOG_TABLES {
            self.batch(&format!("ALTER TABLE {table} DISABLE TRIGGER ALL"));
        }
    }

    fn rearm(&mut self) {
        for table in PG_LOG_TABLES {
            self.batch(&format!(
                "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only;
                 ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;"
            ));
        }
    }
}

/// Runs `damage` with the triggers disarmed, then puts them back.
pub fn tamper(log: &Log, damage: impl FnOnce(&mut dyn Db)) {
    let mut db = log.open();
    db.disarm();
    damage(db.as_mut());
    db.rearm();
}

pub fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} once in {text}");
    text.replacen(from, to, 1).into_bytes()
}

fn set_prev_hash(bytes: &mut [u8], prev: Hash) {
    let key = b"\"prev_hash\":\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("a prev_hash")
        + key.len();
    bytes[at..at + 64].copy_from_slice(prev.to_hex().as_bytes());
}

/// A well-formed entry that was never logged: entry `template`'s event with the outcome
/// changed, filed as `seq` with a new id and linked to `prev`. Returns its id and bytes.
fn forge(db: &mut dyn Db, template: u64, seq: u64, prev: Hash) -> (String, Vec<u8>) {
    let id = db.entry_id(template);
    // Another UUID of the same form: its last hex digit changed.
    let last = id.chars().last().unwrap();
    let forged_id = format!(
        "{}{}",
        &id[..id.len() - 1],
        if last == 'f' { 'e' } else { 'f' }
    );
    let mut bytes = db.entry(template);
    bytes = replace(
        &bytes,
        &format!("\"id\":\"{id}\""),
        &format!("\"id\":\"{forged_id}\""),
    );
    bytes = replace(
        &bytes,
        &format!("\"seq\":{template},"),
        &format!("\"seq\":{seq},"),
    );
    bytes = replace(&bytes, "\"success\"", "\"failure\"");
    set_prev_hash(&mut bytes, prev);
    (forged_id, bytes)
}

/// One forged entry inserted at `at`, the entries from there on moved one seq up to make room
/// (their bytes, which name their own seq, left as they are): an extra row in the middle.
pub fn insert_in_the_middle(db: &mut dyn Db, at: u64) {
    let prev = leaf_hash(&db.entry(at - 1));
    let (id, bytes) = forge(db, at, at, prev);
    // Two steps, so that no moved row collides with one not moved yet.
    db.shift_entries_up(at);
    db.insert_entry(at, &id, &bytes);
}

/// A forged entry appended after the last, correctly linked; with `hashed`, its stored hashes
/// appended too, so that the store's tree includes it.
pub fn append_forged(db: &mut dyn Db, hashed: bool) {
    let last = leaf_hash(&db.entry(SIZE - 1));
    let (id, bytes) = forge(db, SIZE - 1, SIZE, last);
    db.insert_entry(SIZE, &id, &bytes);
    if hashed {
        let stored = db.hashes();
        let mut tree = TreeBuilder::from_reader(SIZE, &stored).unwrap();
        let mut new = Vec::new();
        tree.push(leaf_hash(&bytes), &mut new);
        db.insert_hashes(stored_hash_count(SIZE), &new);
    }
}

/// Cuts the log at `at`: its entries from there, their stored hashes and the checkpoints that
/// covered them deleted.
pub fn cut_tail_and_checkpoints(db: &mut dyn Db, at: u64) {
    db.delete_entries(at..u64::MAX);
    db.delete_hashes_from(stored_hash_count(at));
    db.batch(&format!(
        "DELETE FROM checkpoints WHERE tenant = '{TENANT}' AND size > {at};"
    ));
}

/// Rewrites entries from `from` to the end with one changed outcome, links that chain again
/// and a stored tree rebuilt over them, and deletes the checkpoints that no longer match:
/// everything the store itself can check agrees.
pub fn rewrite_tail(db: &mut dyn Db, from: u64) {
    let first = stored_hash_count(from);
    let kept: Vec<Hash> = db.hashes()[..first as usize].to_vec();
    db.delete_hashes_from(first);
    db.batch(&format!(
        "DELETE FROM checkpoints WHERE tenant = '{TENANT}' AND size > {from};"
    ));
    let mut tree = TreeBuilder::from_reader(from, &kept).unwrap();
    let mut prev = leaf_hash(&db.entry(from - 1));
    let mut stored = Vec::new();
    for seq in from..SIZE {
        let mut bytes = db.entry(seq);
        if seq == from {
            bytes = replace(&bytes, "\"success\"", "\"failure\"");
        }
        set_prev_hash(&mut bytes, prev);
        db.set_entry(seq, &bytes);
        prev = leaf_hash(&bytes);
        tree.push(prev, &mut stored);
    }
    db.insert_hashes(first, &stored);
}

/// Re-signs every stored checkpoint of the log with `key`.
pub fn resign_checkpoints(db: &mut dyn Db, key: &SignerKey) {
    for (size, signed) in db.checkpoints() {
        let text = note::parse(signed.as_bytes()).unwrap().text;
        let resigned = Checkpoint::parse(&text).unwrap().sign(key).unwrap();
        db.set_checkpoint(size, &resigned);
    }
}

/// Replaces the log's key files under `DIR/keys/` with a new pair for `key`, as someone with
/// access to the server's disk could.
pub fn replace_key_files(data: &Path, key: &SignerKey) {
    let dir = DataDir::new(data).keys();
    let (key_path, vkey_path) = keys::key_paths(&dir, key.name());
    std::fs::remove_file(&key_path).unwrap();
    std::fs::remove_file(&vkey_path).unwrap();
    keys::write_key_pair(&dir, key).unwrap();
}

/// The origin of the test log (the name its key must have).
pub fn origin() -> String {
    format!("sealtrail.test/{TENANT}")
}

/// The log's verifier key file, as an auditor would have kept a copy of it.
pub fn vkey_path(data: &Path) -> PathBuf {
    keys::key_paths(&DataDir::new(data).keys(), &origin()).1
}

/// One way to damage a copy of the log, and what verify must report on the store alone.
pub struct Fault {
    pub name: &'static str,
    pub damage: fn(&mut dyn Db),
    pub want: &'static [(Option<u64>, &'static str)],
    pub first_broken_seq: Option<u64>,
}

/// The damage the store alone exposes, each at the seq where it starts.
pub fn faults() -> [Fault; 7] {
    [
        Fault {
            name: "one entry's content changed",
            damage: |db| {
                let bytes = replace(&db.entry(42), "\"success\"", "\"failure\"");
                db.set_entry(42, &bytes);
            },
            want: &[(Some(42), "content_mismatch")],
            first_broken_seq: Some(42),
        },
        Fault {
            name: "one entry deleted",
            damage: |db| db.delete_entries(57..58),
            want: &[(Some(57), "missing_seq")],
            first_broken_seq: Some(57),
        },
        Fault {
            name: "an entry inserted in the middle, the later ones moved up a seq",
            damage: |db| insert_in_the_middle(db, 195),
            want: &[
                (Some(195), "content_mismatch"),
                (Some(196), "seq_mismatch"),
                (Some(196), "content_mismatch"),
                (Some(196), "broken_link"),
                (Some(197), "seq_mismatch"),
                (Some(197), "content_mismatch"),
                (Some(198), "seq_mismatch"),
                (Some(198), "content_mismatch"),
                (Some(199), "seq_mismatch"),
                (Some(199), "content_mismatch"),
                (Some(200), "seq_mismatch"),
                (Some(200), "unhashed_entry"),
            ],
            first_broken_seq: Some(195),
        },
        Fault {
            name: "a forged entry appended with a good link but no stored hashes",
            damage: |db| append_forged(db, false),
            want: &[(Some(SIZE), "unhashed_entry")],
            first_broken_seq: Some(SIZE),
        },
        Fault {
            name: "two entries' bytes swapped",
            damage: |db| {
                let (a, b) = (db.entry(40), db.entry(41));
                db.set_entry(40, &b);
                db.set_entry(41, &a);
            },
            want: &[
                (Some(40), "seq_mismatch"),
                (Some(40), "content_mismatch"),
                (Some(40), "broken_link"),
                (Some(41), "seq_mismatch"),
                (Some(41), "content_mismatch"),
                (Some(41), "broken_link"),
            ],
            first_broken_seq: Some(40),
        },
        Fault {
            name: "the tail cut, the store's checkpoints left",
            damage: |db| db.delete_entries(190..u64::MAX),
            want: &[(Some(190), "truncated")],
            first_broken_seq: Some(190),
        },
        Fault {
            name: "one entry's row left holding TEXT (SQLite) or NULL (PostgreSQL), not bytes",
            damage: |db| db.strip_entry_bytes(64),
            want: &[(Some(64), "malformed_entry")],
            first_broken_seq: Some(64),
        },
    ]
}

/// Each of [`faults`] on a fresh copy of `pristine`, made under `scratch`.
pub fn faults_are_named_at_their_seq(pristine: &Log, scratch: &Path) {
    pristine.expect("the intact log", &[], &[], None);
    for (i, fault) in faults().iter().enumerate() {
        let log = pristine.copy(&scratch.join(format!("fault-{i}")));
        tamper(&log, fault.damage);
        log.expect(fault.name, &[], fault.want, fault.first_broken_seq);
    }
}

/// What no verifier can tell: a forged entry appended with its stored hashes, after the latest
/// checkpoint. Nothing has vouched for it yet; the report shows it only as entries beyond the
/// checkpoint it matches (and the next checkpoint the server signs would include it).
pub fn an_appended_entry_with_its_hashes_is_beyond_the_checkpoints(pristine: &Log, dir: &Path) {
    let log = pristine.copy(dir);
    tamper(&log, |db| append_forged(db, true));
    let report = log.expect("a forged, hashed entry appended", &[], &[], None);
    assert_eq!(report["rows_checked"], SIZE + 1);
    assert_eq!(report["checkpoint"]["size"], SIZE);
}

/// A tail rewritten with recomputed hashes and links, the store's later checkpoints deleted:
/// the store alone cannot tell; checkpoints saved elsewhere can, and the older of two saved
/// ones, still matching, places the damage.
pub fn a_rewritten_tail_is_caught_by_saved_checkpoints(pristine: &Log, scratch: &Path) {
    let log = pristine.copy(&scratch.join("rewritten"));
    let (old, new) = (scratch.join("old.note"), scratch.join("new.note"));
    log.save_checkpoint(&old, FIRST_SESSION);
    log.save_checkpoint(&new, SIZE);
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());

    tamper(&log, |db| rewrite_tail(db, 150));
    let report = log.expect("the store alone", &[], &[], None);
    assert_eq!(report["checkpoint"]["size"], FIRST_SESSION);

    let caught = [(Some(FIRST_SESSION), "checkpoint_root_mismatch")];
    log.expect(
        "the newer saved checkpoint",
        &["--checkpoint", new],
        &caught,
        Some(FIRST_SESSION),
    );
    log.expect(
        "both saved checkpoints",
        &["--checkpoint", old, "--checkpoint", new],
        &caught,
        Some(FIRST_SESSION),
    );

    // With every checkpoint gone from the store, the newer saved one alone says only that the
    // log differs from what was signed; the older one, still matching, narrows it down.
    tamper(&log, |db| {
        db.batch(&format!(
            "DELETE FROM checkpoints WHERE tenant = '{TENANT}'"
        ))
    });
    let report = log.expect("the store alone, no checkpoints", &[], &[], None);
    assert_eq!(report["checkpoint"], Value::Null);
    log.expect(
        "the newer saved checkpoint, no checkpoints in the store",
        &["--checkpoint", new],
        &[(Some(0), "checkpoint_root_mismatch")],
        Some(0),
    );
    let report = log.expect(
        "both saved checkpoints, no checkpoints in the store",
        &["--checkpoint", old, "--checkpoint", new],
        &caught,
        Some(FIRST_SESSION),
    );
    assert_eq!(report["checkpoint"]["size"], FIRST_SESSION);
}

/// The tail cut together with its stored hashes and the store's checkpoints over it: the store
/// alone cannot tell; a checkpoint saved elsewhere says the log is truncated where it ends.
pub fn a_cut_tail_is_caught_by_a_saved_checkpoint(pristine: &Log, scratch: &Path) {
    let log = pristine.copy(&scratch.join("cut"));
    let (old, new) = (scratch.join("cut-old.note"), scratch.join("cut-new.note"));
    log.save_checkpoint(&old, FIRST_SESSION);
    log.save_checkpoint(&new, SIZE);
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());

    tamper(&log, |db| cut_tail_and_checkpoints(db, 190));
    let report = log.expect("the store alone", &[], &[], None);
    assert_eq!(report["rows_checked"], 190);
    assert_eq!(report["checkpoint"]["size"], FIRST_SESSION);

    let truncated = [(Some(190), "truncated")];
    log.expect(
        "a saved checkpoint",
        &["--checkpoint", new],
        &truncated,
        Some(190),
    );
    let report = log.expect(
        "two saved checkpoints",
        &["--checkpoint", old, "--checkpoint", new],
        &truncated,
        Some(190),
    );
    assert_eq!(report["checkpoint"]["size"], FIRST_SESSION);
}

/// The log's signing key replaced and the store's checkpoints re-signed with the substitute:
/// through the key file, through the key the store records, and through both. `db_apart`:
/// the store can be read without the server's data directory (PostgreSQL), so an auditor may
/// verify it with neither key file nor `--key`.
pub fn a_replaced_key_is_caught(pristine: &Log, scratch: &Path, db_apart: bool) {
    let auditor_key = scratch.join("auditor.vkey");
    std::fs::copy(vkey_path(&pristine.data), &auditor_key).unwrap();
    let auditor_key = auditor_key.to_str().unwrap();
    let saved = scratch.join("key-saved.note");
    pristine.save_checkpoint(&saved, SIZE);
    let saved = saved.to_str().unwrap();
    let both_invalid = [(None, "invalid_signature"), (None, "invalid_signature")];
    let substitute = || SignerKey::generate(&origin(), &mut rand_core::OsRng).unwrap();

    // The key files replaced; the store still records the real key. Two copies of the log's
    // key disagree, so checkpoints count only if both signed them.
    let log = pristine.copy(&scratch.join("key-file"));
    let key = substitute();
    replace_key_files(&log.data, &key);
    tamper(&log, |db| resign_checkpoints(db, &key));
    let report = log.expect("the key file replaced", &[], &both_invalid, None);
    assert_eq!(report["checkpoint"], Value::Null);
    let Verified { report, stderr, .. } = log.verify(&[]);
    assert!(
        report["violations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("which must also sign it"),
        "{report:#}"
    );
    assert!(
        stderr.contains("is not the one the store records"),
        "{stderr}"
    );
    log.expect(
        "the key file replaced, the real key given",
        &["--key", auditor_key],
        &both_invalid,
        None,
    );

    // The key the store records replaced, as a database administrator could; the key files on
    // the server's disk are the real ones.
    let log = pristine.copy(&scratch.join("recorded-key"));
    let key = substitute();
    tamper(&log, |db| {
        db.set_recorded_key(&key.verifier().to_string());
        resign_checkpoints(db, &key);
    });
    log.expect("the recorded key replaced", &[], &both_invalid, None);
    log.expect(
        "the recorded key replaced, the real key given",
        &["--key", auditor_key],
        &both_invalid,
        None,
    );
    if db_apart {
        // Without the key files, verify has only the store's word for the key: it cannot tell.
        // A checkpoint saved while the real key signed, or the real key, exposes it.
        let elsewhere = scratch.join("auditor-machine");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let name = "the recorded key replaced, verified away from the server";
        log.expect_in(&elsewhere, name, &[], &[], None);
        log.expect_in(
            &elsewhere,
            name,
            &["--checkpoint", saved],
            &[(None, "invalid_signature")],
            None,
        );
        log.expect_in(
            &elsewhere,
            name,
            &["--key", auditor_key],
            &both_invalid,
            None,
        );
    }

    // Both replaced: nothing in the store or next to it knows the real key any more. The
    // auditor's copy of the key, or a checkpoint saved while the real key signed, exposes it.
    let log = pristine.copy(&scratch.join("both-keys"));
    let key = substitute();
    replace_key_files(&log.data, &key);
    tamper(&log, |db| {
        db.set_recorded_key(&key.verifier().to_string());
        resign_checkpoints(db, &key);
    });
    log.expect("both copies of the key replaced", &[], &[], None);
    log.expect(
        "both copies replaced, the real key given",
        &["--key", auditor_key],
        &both_invalid,
        None,
    );
    log.expect(
        "both copies replaced, a checkpoint saved earlier",
        &["--checkpoint", saved],
        &[(None, "invalid_signature")],
        None,
    );
}
