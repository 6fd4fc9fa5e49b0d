//! The PostgreSQL store: one database that several `sealtrail serve` instances share.
//!
//! Each [`PgStore`] holds one connection. Writes run in a READ COMMITTED transaction that first
//! takes a transaction-scoped advisory lock per tenant it appends to, so instances serialise
//! per tenant (and never deadlock: the locks are taken in one statement, in a fixed order) and
//! each reads the tail another instance committed before extending it. Read snapshots are
//! REPEATABLE READ, READ ONLY. A commit returns once PostgreSQL reports it durable
//! (`synchronous_commit`, which sealtrail leaves at the server's setting, `on` by default).
//!
//! The schema is created and upgraded by the versioned migrations under `store/postgres/`,
//! recorded in `sealtrail_schema_migrations`; each runs in its own transaction under an advisory
//! lock, so instances that start together do not race. `sealtrail migrate` applies them as the
//! role that owns the schema; `sealtrail serve` applies them only when the schema is behind, so
//! it can run as a service role without DDL privileges (see `docs/postgres.md`).
//!
//! One difference from the embedded store: PostgreSQL aborts the whole transaction when a
//! statement in it fails, where SQLite undoes only that statement. A write transaction in
//! which any statement failed is therefore rolled back by [`Store::commit`], which reports
//! that nothing was committed — never a commit that silently lost part of the transaction.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as _;
use std::str::FromStr as _;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};
use sealtrail_core::Hash;
use sealtrail_core::merkle::{MissingHash, ReadError};

use super::{
    ArchiveWatermark, BadValue, EntryRow, Integrity, NewEntry, Protection, PruneMark, Restore,
    Result, Store, StoreError, StoredCheckpoint, StoredSeal, Tenant, TokenRecord,
};

mod catalog;
mod copy;
mod repair;
mod retention;
mod scan;
mod seals;

/// The schema version this build writes: the number of migrations in [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 3] = [
    include_str!("postgres/0001_init.sql"),
    include_str!("postgres/0002_seals.sql"),
    include_str!("postgres/0003_retention.sql"),
];

/// Records which migrations have been applied, one row per version.
const MIGRATIONS_TABLE: &str = "sealtrail_schema_migrations";

/// The advisory lock (two-key form) held while a migration runs. Tenant locks use the one-key
/// (bigint) form, a separate key space, so the two never collide.
const MIGRATION_LOCK: (i32, i32) = (0x7365_616c, 1); // "seal", 1

/// The first key of every lease's advisory lock (two-key form, like [`MIGRATION_LOCK`] but
/// another class); the second is [`lease_key`] of the lease's name. Every version of
/// sealtrail must use the same keys, or instances of different versions would both hold a
/// lease.
pub const LEASE_LOCK_CLASS: i32 = 0x6c65_6173; // "leas"

/// The second key of a lease's advisory lock: the 32-bit FNV-1a hash of its name, computed
/// here rather than by the server so that it never depends on PostgreSQL's version.
pub fn lease_key(name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// Takes a lease's advisory lock unless this session already holds it: a session-level
/// advisory lock taken twice must be released twice, and this connection asks again before
/// every unit of work, so the lock is looked up first (`pg_locks` lists the two keys of the
/// two-key form as `classid` and `objid`, with `objsubid` 2).
const TRY_LEASE: &str = "SELECT CASE WHEN EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2
    ) THEN true ELSE pg_try_advisory_lock($1::int4, $2::int4) END";

/// The seed of `hashtextextended` that maps a tenant name to its advisory lock key. Every
/// version of sealtrail must use the same one, or instances of different versions would not
/// exclude each other.
const TENANT_LOCK_SEED: i64 = 0x0073_6561_6c74_726c; // "sealtrl"

/// The append-only triggers of the log tables, as `(trigger, table, pg_trigger.tgtype)`.
/// `tgtype` bits: 1 row, 2 before, 8 delete, 16 update, 32 truncate.
const TRIGGERS: [(&str, &str, i16); 10] = [
    ("entries_append_only", "entries", 1 | 2 | 8 | 16),
    ("entries_no_truncate", "entries", 2 | 32),
    ("hashes_append_only", "hashes", 1 | 2 | 8 | 16),
    ("hashes_no_truncate", "hashes", 2 | 32),
    ("checkpoints_append_only", "checkpoints", 1 | 2 | 8 | 16),
    ("checkpoints_no_truncate", "checkpoints", 2 | 32),
    ("seals_append_only", "seals", 1 | 2 | 8 | 16),
    ("seals_no_truncate", "seals", 2 | 32),
    ("prunes_append_only", "prunes", 1 | 2 | 8 | 16),
    ("prunes_no_truncate", "prunes", 2 | 32),
];

/// The function every append-only trigger calls, and the dollar-quote tag around its body in
/// the migrations.
const TRIGGER_FUNCTION: &str = "sealtrail_append_only";
const TRIGGER_BODY_TAG: &str = "$append_only$";

const LOCK_TENANTS: &str = "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(t, $2) AS k FROM unnest($1::text[]) AS t ORDER BY 1) AS s";
const SELECT_TENANTS: &str = "SELECT name, origin, created_at, vkey FROM tenants ORDER BY name";
const SELECT_TENANT: &str = "SELECT name, origin, created_at, vkey FROM tenants WHERE name = $1";
const SELECT_SIZE: &str = "SELECT COALESCE(MAX(seq) + 1, 0) FROM entries WHERE tenant = $1";
/// One primary-key lookup per index asked for. (`idx = ANY($2)` lets the planner, misled by the
/// statistics of a table that grows fast, scan every hash of the tenant and filter: O(n) per
/// read. The lateral subquery with `LIMIT 1` cannot be flattened, so each index is looked up
/// on the primary key whatever the statistics say.)
const SELECT_HASHES: &str = "SELECT w.idx, h.hash FROM unnest($2::int8[]) AS w(idx), LATERAL (SELECT hash FROM hashes WHERE tenant = $1 AND idx = w.idx LIMIT 1) AS h";
/// A contiguous run of stored hashes (the verifier reads the array front to back in runs of
/// thousands): one index range scan instead of one lookup per position.
const SELECT_HASH_RANGE: &str =
    "SELECT idx, hash FROM hashes WHERE tenant = $1 AND idx >= $2 AND idx < $3 ORDER BY idx";
const SELECT_ENTRY: &str = "SELECT entry FROM entries WHERE tenant = $1 AND seq = $2";
/// The entries at a set of seqs, in one statement.
const SELECT_ENTRIES_AT: &str =
    "SELECT seq, entry FROM entries WHERE tenant = $1 AND seq = ANY($2::int8[])";
const SELECT_ENTRY_ID: &str = "SELECT id FROM entries WHERE tenant = $1 AND seq = $2";
const SELECT_SEQ_OF_ID: &str = "SELECT seq FROM entries WHERE tenant = $1 AND id = $2";
const SELECT_IDEMPOTENT: &str = "SELECT seq FROM idempotency WHERE tenant = $1 AND key = $2";
/// One primary-key lookup per key, in one statement (the lateral form, as for hashes).
const SELECT_IDEMPOTENT_MANY: &str = "SELECT w.key, i.seq FROM unnest($2::text[]) AS w(key), LATERAL (SELECT seq FROM idempotency WHERE tenant = $1 AND key = w.key LIMIT 1) AS i";
/// One `(tenant, id)` lookup per id, in one statement.
const SELECT_SEQS_OF_IDS: &str = "SELECT w.id, e.seq FROM unnest($2::text[]) AS w(id), LATERAL (SELECT seq FROM entries WHERE tenant = $1 AND id = w.id LIMIT 1) AS e";
const SELECT_LATEST_CHECKPOINT: &str =
    "SELECT size, note, created_at FROM checkpoints WHERE tenant = $1 ORDER BY size DESC LIMIT 1";
const SELECT_CHECKPOINTS: &str = "SELECT note FROM checkpoints WHERE tenant = $1 ORDER BY size";
const SELECT_SETTING: &str = "SELECT value FROM settings WHERE name = $1";
const SELECT_TOKEN_BY_SECRET: &str =
    "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens WHERE secret_sha256 = $1";
const SELECT_TOKENS: &str =
    "SELECT id, tenant, scopes, created_at, revoked_at FROM tokens ORDER BY created_at, id";
const INSERT_TENANT: &str =
    "INSERT INTO tenants (name, origin, created_at, vkey) VALUES ($1, $2, $3, $4)";
const UPDATE_TENANT_VKEY: &str = "UPDATE tenants SET vkey = $2 WHERE name = $1 AND vkey IS NULL";
const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (tenant, size, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, size) DO NOTHING";
const UPSERT_SETTING: &str = "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value";
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, tenant, secret_sha256, scopes, created_at) VALUES ($1, $2, $3, $4, $5)";
const REVOKE_TOKEN: &str = "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
/// For each expected trigger: present on the table the store's queries resolve to, enabled,
/// of the expected kind, unconditional, and calling the append-only function unchanged.
const SELECT_PROTECTIONS: &str = "SELECT EXISTS (
        SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE t.tgrelid = to_regclass(quote_ident(w.tbl)) AND t.tgname = w.tg
          AND t.tgenabled <> 'D' AND t.tgtype = w.kind AND t.tgqual IS NULL
          AND cardinality(t.tgattr::int2[]) = 0
          AND p.proname = $4 AND p.prosrc = $5
    )
    FROM unnest($1::text[], $2::text[], $3::int2[]) WITH ORDINALITY AS w(tg, tbl, kind, ord)
    ORDER BY w.ord";

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version found (0: no sealtrail schema).
    pub from: i64,
    /// The schema version now in place.
    pub to: i64,
    /// The versions applied, in order; empty when the schema was already up to date.
    pub applied: Vec<i64>,
}

/// The state of the connection's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    Idle,
    /// A read snapshot begun by [`Store::begin_read`].
    Read,
    /// A write transaction; `failed` once a statement in it has failed, which makes
    /// PostgreSQL refuse the rest of it.
    Write {
        failed: bool,
    },
}

/// The PostgreSQL store over one connection.
pub struct PgStore {
    client: RefCell<Connection>,
    /// Prepared statements of this connection, by SQL text.
    statements: RefCell<HashMap<&'static str, Statement>>,
    tx: Cell<Tx>,
    /// Depth of nested [`Store::begin_read`] calls, and whether the outermost one began the
    /// snapshot (it does not inside a write transaction).
    reads: super::ReadNesting,
    /// What to reconnect with when the connection has dropped between transactions.
    config: Config,
    read_only: bool,
    /// The database URL without its password, for messages.
    location: String,
}

/// A client that can be dropped anywhere. Closing a `postgres::Client` blocks on its own
/// runtime, which panics on a thread that drives async tasks (where the HTTP server's pool of
/// readers is dropped at shutdown), so there the client is closed on a thread of its own.
struct Connection(Option<Client>);

impl std::ops::Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            let closing = std::thread::Builder::new()
                .name("sealtrail-pg-close".into())
                .spawn(move || drop(client));
            match closing {
                Ok(thread) => {
                    let _ = thread.join();
                }
                // Out of threads at shutdown: say so; the server closes the connection when
                // the process exits.
                Err(error) => tracing::warn!(%error, "cannot close a PostgreSQL connection"),
            }
        } else {
            drop(client);
        }
    }
}

// The writer thread owns a store and readers move theirs between threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<PgStore>();
};

impl PgStore {
    /// The `count` stored hashes from index `first` on, read with one range scan; an error
    /// names the first one that is missing, as [`Store::read_hashes`] does.
    fn read_hash_range(
        &self,
        tenant: &str,
        first: u64,
        count: usize,
    ) -> Result<Vec<Hash>, ReadError> {
        let end = first + count as u64;
        let rows = self.query_map(
            SELECT_HASH_RANGE,
            &[&tenant, &to_i64(first), &to_i64(end)],
            |row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, Vec<u8>>(1)?)),
        )?;
        let mut out = Vec::with_capacity(count);
        for (idx, bytes) in rows {
            let expected = first + out.len() as u64;
            if idx as u64 != expected {
                return Err(MissingHash { index: expected }.into());
            }
            out.push(Hash::from_slice(&bytes).map_err(|e| format!("stored hash {idx}: {e}"))?);
        }
        if out.len() < count {
            return Err(MissingHash {
                index: first + out.len() as u64,
            }
            .into());
        }
        Ok(out)
    }

    /// Connects for writing. When the schema is behind this build, applies the pending
    /// migrations first (which needs the privileges of the schema's owner; without them the
    /// error says to run `sealtrail migrate` as that role). An up-to-date schema is used as
    /// it is, so a service role without DDL privileges can serve.
    pub fn open_writer(url: &str) -> Result<PgStore> {
        let (config, location) = parse(url)?;
        let mut client = connect(&config, &location)?;
        let version = schema_version(&mut client, &location)?;
        if version > SCHEMA_VERSION {
            return Err(newer(&location, version));
        }
        if version < SCHEMA_VERSION {
            run_migrations(&mut client, &location).map_err(|e| match e {
                StoreError::Postgres(message) => StoreError::Postgres(format!(
                    "the sealtrail schema in {location} is at version {version} and this build \
                     needs version {SCHEMA_VERSION}, but migrating it failed: {message}; run \
                     `sealtrail migrate --database-url URL` as the role that owns the schema \
                     (sealtrail_owner in docs/postgres-roles.sql), then start again"
                )),
                other => other,
            })?;
        }
        Ok(PgStore::wrap(client, config, location, false))
    }

    /// Connects for reading only; fails if there is no sealtrail schema, or it is of another
    /// version than this build's.
    pub fn open_reader(url: &str) -> Result<PgStore> {
        let (config, location) = parse(url)?;
        let mut client = connect(&config, &location)?;
        let version = schema_version(&mut client, &location)?;
        if version > SCHEMA_VERSION {
            return Err(newer(&location, version));
        }
        if version == 0 {
            return Err(StoreError::Missing(format!(
                "no sealtrail schema in {location}; create it with `sealtrail migrate \
                 --database-url URL` (or start `sealtrail serve --database-url URL` once)"
            )));
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::Missing(format!(
                "the sealtrail schema in {location} is at version {version} and this build \
                 needs version {SCHEMA_VERSION}; run `sealtrail migrate --database-url URL` \
                 as the role that owns the schema"
            )));
        }
        set_read_only(&mut client, &location)?;
        Ok(PgStore::wrap(client, config, location, true))
    }

    fn wrap(client: Client, config: Config, location: String, read_only: bool) -> PgStore {
        PgStore {
            client: RefCell::new(Connection(Some(client))),
            statements: RefCell::new(HashMap::new()),
            tx: Cell::new(Tx::Idle),
            reads: super::ReadNesting::default(),
            config,
            read_only,
            location,
        }
    }

    /// Runs `f` on the underlying connection, for tests that tamper with the database on
    /// purpose. `f` must not leave a transaction open.
    pub fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client.borrow_mut())
    }

    /// Reconnects when the connection has dropped (a restarted server, say) and no transaction
    /// was open: a transaction cut off is reported by its next statement instead, and rolled
    /// back by the server.
    fn ensure_connected(&self) -> Result<()> {
        if self.tx.get() != Tx::Idle || !self.client.borrow().is_closed() {
            return Ok(());
        }
        tracing::warn!(database = %self.location, "PostgreSQL connection lost; reconnecting");
        let mut client = connect(&self.config, &self.location)?;
        if self.read_only {
            set_read_only(&mut client, &self.location)?;
        }
        self.statements.borrow_mut().clear();
        *self.client.borrow_mut() = Connection(Some(client));
        Ok(())
    }

    /// Runs a transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`) in one round trip.
    fn control(&self, sql: &str) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| classify(&e))
    }

    /// Runs `f` with the cached prepared statement for `sql`. A failure inside a write
    /// transaction marks it failed (see [`Store::commit`]).
    fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Client, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        self.ensure_connected()?;
        let mut client = self.client.borrow_mut();
        let cached = self.statements.borrow().get(sql).cloned();
        let result = match cached {
            Some(statement) => f(&mut client, &statement),
            None => client.prepare(sql).and_then(|statement| {
                self.statements.borrow_mut().insert(sql, statement.clone());
                f(&mut client, &statement)
            }),
        };
        result.map_err(|e| {
            if let Tx::Write { .. } = self.tx.get() {
                self.tx.set(Tx::Write { failed: true });
            }
            classify(&e)
        })
    }

    fn query_map<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> Result<T, postgres::Error>,
    ) -> Result<Vec<T>> {
        self.with_statement(sql, |client, statement| {
            client.query(statement, params)?.iter().map(map).collect()
        })
    }

    fn query_opt<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        map: impl FnOnce(&Row) -> Result<T, postgres::Error>,
    ) -> Result<Option<T>> {
        self.with_statement(sql, |client, statement| {
            client
                .query_opt(statement, params)?
                .as_ref()
                .map(map)
                .transpose()
        })
    }

    /// Runs a `(text, seq)` lookup of many names in one statement.
    fn lookup_many(
        &self,
        sql: &'static str,
        tenant: &str,
        names: &[&str],
    ) -> Result<HashMap<String, u64>> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.query_map(sql, &[&tenant, &names], |row| {
            Ok((
                row.try_get::<_, String>(0)?,
                row.try_get::<_, i64>(1)? as u64,
            ))
        })?;
        Ok(rows.into_iter().collect())
    }

    fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.with_statement(sql, |client, statement| client.execute(statement, params))
    }

    /// Ends whatever transaction is open, ignoring a connection that is already gone (the
    /// server rolls back the transaction of a closed connection).
    fn end_transaction(&self) -> Result<()> {
        self.tx.set(Tx::Idle);
        if self.client.borrow().is_closed() {
            return Ok(());
        }
        self.control("ROLLBACK")
    }
}

/// Applies the pending migrations to the database at `url` (`sealtrail migrate`). Run it as
/// the role that is to own sealtrail's tables.
pub fn migrate(url: &str) -> Result<MigrationReport> {
    let (config, location) = parse(url)?;
    let mut client = connect(&config, &location)?;
    let report = run_migrations(&mut client, &location)?;
    // Puts back any append-only trigger that was dropped or disabled since.
    client
        .batch_execute(&format!("BEGIN; {PROTECTIONS} COMMIT;"))
        .map_err(|e| {
            let _ = client.batch_execute("ROLLBACK");
            StoreError::Postgres(format!(
                "cannot reinstall the append-only protections on {location}: {}",
                describe(&e)
            ))
        })?;
    Ok(report)
}

/// Creates the empty database `name` on the PostgreSQL server of `server_url`, connecting as
/// that URL's user: a scratch database for a benchmark run. `name` must be a plain identifier
/// (ASCII letters, digits and `_`), since a database name cannot be a query parameter.
pub fn create_database(server_url: &str, name: &str) -> Result<()> {
    administer(server_url, name, &format!("CREATE DATABASE {name}"))
}

/// Drops the database `name` on the PostgreSQL server of `server_url`, ending its connections
/// first; nothing happens when there is no such database. See [`create_database`].
pub fn drop_database(server_url: &str, name: &str) -> Result<()> {
    administer(
        server_url,
        name,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
}

/// Runs one statement about the database `name` on a connection of its own.
fn administer(server_url: &str, name: &str, statement: &str) -> Result<()> {
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return Err(StoreError::Postgres(format!(
            "{name:?} is not a plain database name; use ASCII letters, digits and _"
        )));
    }
    let (config, location) = parse(server_url)?;
    let mut client = connect(&config, &location)?;
    client
        .batch_execute(statement)
        .map_err(|e| StoreError::Postgres(format!("{location}: {}", describe(&e))))
}

/// The append-only protections, re-applicable (see `postgres/protections.sql`).
const PROTECTIONS: &str = include_str!("postgres/protections.sql");

/// `url` with its database name replaced by `name`, query parameters kept: the URL of another
/// database on the same server (the tests' and the benchmark's scratch databases).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL (or `key=value` connection string) with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    match ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
    {
        Some(scheme) => redact_uri(url, scheme.len()),
        None => redact_key_values(url),
    }
}

/// `scheme://[user[:password]@]host...[?key=value&...]`: the password of the user info and
/// any `password` query parameter. An unescaped `@`, `/` or `?` in a password errs on the
/// side of hiding more.
fn redact_uri(url: &str, scheme_len: usize) -> String {
    let (scheme, rest) = url.split_at(scheme_len);
    let mut out = String::from(scheme);
    let mut tail = rest;
    let user_end = rest.find(['/', '?', '@', ':']).unwrap_or(rest.len());
    if rest[user_end..].starts_with(':')
        && let Some(at) = rest.rfind('@')
        && at > user_end
    {
        out.push_str(&rest[..user_end]);
        out.push_str(":***");
        tail = &rest[at..];
    }
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let params: Vec<String> = tail[q + 1..]
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// `key=value key='quoted \' value' ...`: the value of any `password` key.
fn redact_key_values(s: &str) -> String {
    let bytes = s.as_bytes();
    let len = bytes.len();
    let mut out = String::with_capacity(len);
    let mut i = 0;
    while i < len {
        if bytes[i].is_ascii_whitespace() {
            let start = i;
            while i < len && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push_str(&s[start..i]);
            continue;
        }
        let key_start = i;
        while i < len && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        out.push_str(key);
        let mut j = i;
        while j < len && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= len || bytes[j] != b'=' {
            out.push_str(&s[i..j]);
            i = j;
            continue;
        }
        j += 1;
        while j < len && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        out.push_str(&s[i..j]);
        let value_start = j;
        i = j;
        if i < len && bytes[i] == b'\'' {
            i += 1;
            while i < len {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < len && !bytes[i].is_ascii_whitespace() {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
        }
        i = i.min(len);
        if key.eq_ignore_ascii_case("password") {
            out.push_str("***");
        } else {
            out.push_str(&s[value_start..i]);
        }
    }
    out
}

/// A PostgreSQL error with the server's detail, hint and SQLSTATE, or the client's chain of
/// causes.
/// A statement's error: [`StoreError::Unavailable`] when the database could not be reached
/// or the connection was lost (the caller may fall back to the spool, and retry later),
/// [`StoreError::Postgres`] when the database answered with an error.
fn classify(error: &postgres::Error) -> StoreError {
    let lost_code = error.code().is_some_and(|code| {
        let code = code.code();
        // connection_exception, admin_shutdown, crash_shutdown, cannot_connect_now
        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
    });
    let io = error
        .source()
        .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
    // disk_full: the database server's disk, not ours, but the same answer (507).
    if error.code().is_some_and(|code| code.code() == "53100") {
        return StoreError::Full(describe(error));
    }
    if error.is_closed() || io || lost_code {
        StoreError::Unavailable(format!("PostgreSQL connection lost: {}", describe(error)))
    } else {
        StoreError::Postgres(describe(error))
    }
}

fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!("; hint: {hint}"));
        }
        message.push_str(&format!(" (SQLSTATE {})", db.code().code()));
        return message;
    }
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

fn parse(url: &str) -> Result<(Config, String)> {
    let location = redact_url(url);
    let mut config = Config::from_str(url).map_err(|e| {
        StoreError::Postgres(format!(
            "invalid PostgreSQL URL {location}: {}",
            describe(&e)
        ))
    })?;
    if config.get_application_name().is_none() {
        config.application_name("sealtrail");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok((config, location))
}

fn connect(config: &Config, location: &str) -> Result<Client> {
    config.connect(NoTls).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {location}: {}",
            describe(&e)
        ))
    })
}

fn set_read_only(client: &mut Client, location: &str) -> Result<()> {
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .map_err(|e| StoreError::Postgres(format!("{location}: {}", describe(&e))))
}

fn newer(location: &str, found: i64) -> StoreError {
    StoreError::NewerSchema {
        location: location.to_string(),
        found,
        known: SCHEMA_VERSION,
    }
}

/// The schema version in the connection's current schema; 0 when there is none.
fn schema_version(client: &mut Client, location: &str) -> Result<i64> {
    let fail = |e: postgres::Error| {
        StoreError::Postgres(format!(
            "cannot read the sealtrail schema version in {location}: {}",
            describe(&e)
        ))
    };
    // Scans pg_class under the statement's snapshot rather than resolving the name through
    // the session's catalog cache (as to_regclass does), which can still hold "no such table"
    // from before this session waited for the migration lock while another created it.
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $1 AND n.nspname = ANY (current_schemas(false)))",
            &[&MIGRATIONS_TABLE],
        )
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0)::int8 FROM {MIGRATIONS_TABLE}"),
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(fail)
}

/// Applies pending migrations, each in its own transaction under the migration lock; the
/// version is read again under the lock, so concurrent callers apply each one once.
fn run_migrations(client: &mut Client, location: &str) -> Result<MigrationReport> {
    let mut report = MigrationReport {
        from: -1,
        to: 0,
        applied: Vec::new(),
    };
    loop {
        match migrate_once(client, location)? {
            Step::Applied { from, to } => {
                if report.from < 0 {
                    report.from = from;
                }
                report.to = to;
                report.applied.push(to);
                tracing::info!(database = %location, version = to, "applied PostgreSQL schema migration");
            }
            Step::UpToDate(version) => {
                if report.from < 0 {
                    report.from = version;
                }
                report.to = version;
                return Ok(report);
            }
        }
    }
}

enum Step {
    Applied { from: i64, to: i64 },
    UpToDate(i64),
}

fn migrate_once(client: &mut Client, location: &str) -> Result<Step> {
    let fail = |e: postgres::Error| StoreError::Postgres(describe(&e));
    client.batch_execute("BEGIN").map_err(fail)?;
    let result = (|| {
        client
            .execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
            )
            .map_err(fail)?;
        let version = schema_version(client, location)?;
        if version > SCHEMA_VERSION {
            return Err(newer(location, version));
        }
        if version == SCHEMA_VERSION {
            return Ok(Step::UpToDate(version));
        }
        if version == 0 {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                         version    int PRIMARY KEY,
                         applied_at timestamptz NOT NULL DEFAULT now()
                     )"
                ))
                .map_err(fail)?;
        }
        let to = version + 1;
        client
            .batch_execute(MIGRATIONS[version as usize])
            .map_err(|e| StoreError::Postgres(format!("migration {to:04}: {}", describe(&e))))?;
        client
            .execute(
                &format!("INSERT INTO {MIGRATIONS_TABLE} (version) VALUES ($1)"),
                &[&(to as i32)],
            )
            .map_err(fail)?;
        Ok(Step::Applied { from: version, to })
    })();
    match result {
        Ok(step) => {
            client.batch_execute("COMMIT").map_err(fail)?;
            Ok(step)
        }
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

/// The body of the append-only trigger function as the current schema defines it: the text
/// between its dollar quotes in the last migration that (re)creates it.
fn trigger_body() -> &'static str {
    MIGRATIONS
        .iter()
        .rev()
        .find_map(|sql| sql.split(TRIGGER_BODY_TAG).nth(1))
        .expect("a migration defines the append-only trigger function")
}

/// The bytes of an `entries.entry` value, or what the row holds instead. PostgreSQL enforces a
/// column's type for every row, so the one value a row can hold in place of bytea is NULL, once
/// someone has dropped the column's `NOT NULL`; that is reported for the row alone
/// ([`BadValue`]). A column whose type was changed fails every read with the driver's error
/// naming the type: that is a change to the schema, not to a row.
fn entry_value(value: Option<Vec<u8>>) -> EntryRow {
    value.ok_or_else(|| BadValue {
        column: "entries.entry",
        expected: "bytea",
        found: "NULL".to_string(),
    })
}

fn tenant_from_row(row: &Row) -> Result<Tenant, postgres::Error> {
    Ok(Tenant {
        name: row.try_get(0)?,
        origin: row.try_get(1)?,
        created_at: row.try_get(2)?,
        vkey: row.try_get(3)?,
    })
}

fn token_from_row(row: &Row) -> Result<TokenRecord, postgres::Error> {
    let scopes: String = row.try_get(2)?;
    Ok(TokenRecord {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        scopes: TokenRecord::scopes_from_column(&scopes),
        created_at: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
    })
}

fn to_i64(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn begin_read(&self) -> Result<()> {
        self.reads.enter(|| {
            let owned = self.tx.get() == Tx::Idle;
            if owned {
                self.ensure_connected()?;
                self.control("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                self.tx.set(Tx::Read);
            }
            Ok(owned)
        })
    }

    fn end_read(&self) -> Result<()> {
        self.reads.leave(|| {
            if self.tx.get() == Tx::Read {
                // Read-only: ending it cannot lose anything.
                self.end_transaction()?;
            }
            Ok(())
        })
    }

    fn begin_write(&self, lock_tenants: &[&str]) -> Result<()> {
        if self.tx.get() != Tx::Idle {
            return Err(StoreError::Postgres(
                "cannot begin a write transaction: a transaction is already open".into(),
            ));
        }
        self.ensure_connected()?;
        // Explicit, whatever the server's default_transaction_isolation: every statement
        // after the locks must see what other instances committed before they were granted.
        self.control("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        self.tx.set(Tx::Write { failed: false });
        if lock_tenants.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.execute(LOCK_TENANTS, &[&lock_tenants, &TENANT_LOCK_SEED]) {
            let _ = self.end_transaction();
            return Err(error);
        }
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        match self.tx.get() {
            Tx::Write { failed: false } => {
                self.tx.set(Tx::Idle);
                self.control("COMMIT")
            }
            Tx::Write { failed: true } => {
                // PostgreSQL would answer COMMIT with a silent ROLLBACK.
                self.end_transaction()?;
                Err(StoreError::Aborted(
                    "a statement of this transaction failed, so PostgreSQL aborted it; it was \
                     rolled back and nothing was committed"
                        .into(),
                ))
            }
            Tx::Read | Tx::Idle => Err(StoreError::Postgres(
                "cannot commit: no write transaction is open".into(),
            )),
        }
    }

    fn rollback(&self) -> Result<()> {
        if self.tx.get() == Tx::Idle {
            return Ok(());
        }
        self.end_transaction()
    }

    fn tenants(&self) -> Result<Vec<Tenant>> {
        self.query_map(SELECT_TENANTS, &[], tenant_from_row)
    }

    fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        self.query_opt(SELECT_TENANT, &[&name], tenant_from_row)
    }

    fn size(&self, tenant: &str) -> Result<u64> {
        let size = self.query_opt(SELECT_SIZE, &[&tenant], |row| row.try_get::<_, i64>(0))?;
        Ok(size.unwrap_or(0) as u64)
    }

    fn read_hashes(&self, tenant: &str, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        if indexes.len() > 1 && indexes.windows(2).all(|w| w[1] == w[0] + 1) {
            return self.read_hash_range(tenant, indexes[0], indexes.len());
        }
        let wanted: Vec<i64> = indexes.iter().map(|&i| to_i64(i)).collect();
        let rows = self.query_map(SELECT_HASHES, &[&tenant, &wanted], |row| {
            Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, Vec<u8>>(1)?))
        })?;
        let mut found = HashMap::with_capacity(rows.len());
        for (idx, bytes) in rows {
            let hash = Hash::from_slice(&bytes).map_err(|e| format!("stored hash {idx}: {e}"))?;
            found.insert(idx as u64, hash);
        }
        indexes
            .iter()
            .map(|idx| {
                found
                    .get(idx)
                    .copied()
                    .ok_or_else(|| MissingHash { index: *idx }.into())
            })
            .collect()
    }

    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Vec<u8>>> {
        let entry = self.query_opt(SELECT_ENTRY, &[&tenant, &to_i64(seq)], |row| {
            row.try_get(0).map(entry_value)
        })?;
        entry.transpose().map_err(|source| StoreError::BadRow {
            tenant: tenant.to_string(),
            seq,
            source,
        })
    }

    fn entries_at(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<(u64, Vec<u8>)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = seqs.iter().map(|&seq| to_i64(seq)).collect();
        let rows = self.query_map(SELECT_ENTRIES_AT, &[&tenant, &wanted], |row| {
            Ok((
                row.try_get::<_, i64>(0)? as u64,
                entry_value(row.try_get(1)?),
            ))
        })?;
        let rows = rows
            .into_iter()
            .map(|(seq, entry)| {
                entry
                    .map(|entry| (seq, entry))
                    .map_err(|source| StoreError::BadRow {
                        tenant: tenant.to_string(),
                        seq,
                        source,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::in_asked_order(seqs, rows))
    }

    fn entry_id(&self, tenant: &str, seq: u64) -> Result<Option<String>> {
        self.query_opt(SELECT_ENTRY_ID, &[&tenant, &to_i64(seq)], |row| {
            row.try_get(0)
        })
    }

    fn seq_of_id(&self, tenant: &str, id: &str) -> Result<Option<u64>> {
        let seq = self.query_opt(SELECT_SEQ_OF_ID, &[&tenant, &id], |row| {
            row.try_get::<_, i64>(0)
        })?;
        Ok(seq.map(|seq| seq as u64))
    }

    /// See `postgres/scan.rs`: one bounded run of `limit` seqs, and the rest after it only
    /// when rows are missing from that run.
    fn entries(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EntryRow)>> {
        self.page(tenant, from, to, limit)
    }

    /// See `postgres/scan.rs`: runs of 10,000 seqs as bounded ranges, read ahead on a second
    /// connection in the same snapshot.
    fn for_each_entry(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        each: &mut dyn FnMut(u64, crate::EntryRef<'_>),
    ) -> Result<()> {
        self.scan(tenant, from, to, each)
    }

    fn idempotent_seq(&self, tenant: &str, key: &str) -> Result<Option<u64>> {
        let seq = self.query_opt(SELECT_IDEMPOTENT, &[&tenant, &key], |row| {
            row.try_get::<_, i64>(0)
        })?;
        Ok(seq.map(|seq| seq as u64))
    }

    fn idempotent_seqs(&self, tenant: &str, keys: &[&str]) -> Result<HashMap<String, u64>> {
        self.lookup_many(SELECT_IDEMPOTENT_MANY, tenant, keys)
    }

    fn seqs_of_ids(&self, tenant: &str, ids: &[&str]) -> Result<HashMap<String, u64>> {
        self.lookup_many(SELECT_SEQS_OF_IDS, tenant, ids)
    }

    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>> {
        self.query_opt(SELECT_LATEST_CHECKPOINT, &[&tenant], |row| {
            Ok(StoredCheckpoint {
                size: row.try_get::<_, i64>(0)? as u64,
                note: row.try_get(1)?,
                created_at: row.try_get(2)?,
            })
        })
    }

    fn checkpoints(&self, tenant: &str) -> Result<Vec<String>> {
        self.query_map(SELECT_CHECKPOINTS, &[&tenant], |row| row.try_get(0))
    }

    fn checkpoint_before(&self, tenant: &str, before: &str) -> Result<Option<StoredCheckpoint>> {
        seals::checkpoint_before(self, tenant, before)
    }

    fn seals(&self, tenant: &str, from: &str, to: &str) -> Result<Vec<StoredSeal>> {
        seals::seals(self, tenant, from, to)
    }

    fn latest_seal(&self, tenant: &str) -> Result<Option<StoredSeal>> {
        seals::latest_seal(self, tenant)
    }

    fn insert_seal(&self, tenant: &str, seal: &StoredSeal) -> Result<()> {
        seals::insert_seal(self, tenant, seal)
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.query_opt(SELECT_SETTING, &[&name], |row| row.try_get(0))
    }

    fn token_by_secret(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.query_opt(
            SELECT_TOKEN_BY_SECRET,
            &[&secret_sha256.as_slice()],
            token_from_row,
        )
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.query_map(SELECT_TOKENS, &[], token_from_row)
    }

    fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.execute(
            INSERT_TENANT,
            &[
                &tenant.name,
                &tenant.origin,
                &tenant.created_at,
                &tenant.vkey,
            ],
        )?;
        Ok(())
    }

    fn set_tenant_vkey(&self, tenant: &str, vkey: &str) -> Result<()> {
        self.execute(UPDATE_TENANT_VKEY, &[&tenant, &vkey])?;
        Ok(())
    }

    /// See `postgres/copy.rs`: one `INSERT` per table for a small group, a binary `COPY` for a
    /// large one, in the caller's write transaction.
    fn append(
        &self,
        tenant: &str,
        entries: &[NewEntry<'_>],
        first_hash_index: u64,
        hashes: &[Hash],
    ) -> Result<()> {
        self.append_rows(tenant, entries, first_hash_index, hashes)
    }

    fn insert_idempotency(&self, tenant: &str, keys: &[(String, u64)]) -> Result<()> {
        self.append_keys(tenant, keys)
    }

    fn insert_checkpoint(
        &self,
        tenant: &str,
        size: u64,
        note: &str,
        created_at: &str,
    ) -> Result<()> {
        self.execute(
            INSERT_CHECKPOINT,
            &[&tenant, &(size as i64), &note, &created_at],
        )?;
        Ok(())
    }

    fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        self.execute(UPSERT_SETTING, &[&name, &value])?;
        Ok(())
    }

    fn insert_token(&self, record: &TokenRecord, secret_sha256: &[u8; 32]) -> Result<()> {
        self.execute(
            INSERT_TOKEN,
            &[
                &record.id,
                &record.tenant,
                &secret_sha256.as_slice(),
                &record.scopes_column(),
                &record.created_at,
            ],
        )?;
        Ok(())
    }

    fn revoke_token(&self, id: &str, revoked_at: &str) -> Result<bool> {
        Ok(self.execute(REVOKE_TOKEN, &[&id, &revoked_at])? == 1)
    }

    fn schema_versions(&self) -> Result<(i64, i64)> {
        let found = self.query_opt(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM sealtrail_schema_migrations",
            &[],
            |row| row.try_get::<_, i64>(0),
        )?;
        Ok((found.unwrap_or(0), SCHEMA_VERSION))
    }

    fn database_time(&self) -> Result<Option<String>> {
        self.query_opt(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            &[],
            |row| row.try_get::<_, String>(0),
        )
    }

    /// The same guard as the embedded store's, in the caller's write transaction, which holds
    /// the tenant's advisory append lock: the row must be missing and the stored leaf hash at
    /// `seq` must be the core's `leaf_hash` of the bytes. A plain INSERT, which the
    /// append-only triggers allow as they allow every append; the unique `(tenant, id)`
    /// constraint still refuses an id the log holds elsewhere.
    fn restore_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore> {
        if !matches!(self.tx.get(), Tx::Write { .. }) {
            return Err(StoreError::Aborted(
                "restore_entry runs inside a write transaction".into(),
            ));
        }
        let seq = to_i64(seq);
        let present = self.query_opt(
            "SELECT 1::int4 FROM entries WHERE tenant = $1 AND seq = $2",
            &[&tenant, &seq],
            |row| row.try_get::<_, i32>(0),
        )?;
        if present.is_some() {
            return Ok(Restore::Present);
        }
        if retention::prune_mark(self, tenant)?.is_some_and(|mark| (seq as u64) < mark.below) {
            return Ok(Restore::Pruned);
        }
        let index = to_i64(sealtrail_core::merkle::stored_hash_index(0, seq as u64));
        let stored = self.query_opt(
            "SELECT hash FROM hashes WHERE tenant = $1 AND idx = $2",
            &[&tenant, &index],
            |row| row.try_get::<_, Vec<u8>>(0),
        )?;
        let Some(stored) = stored else {
            return Ok(Restore::NoStoredHash);
        };
        if stored.as_slice() != sealtrail_core::hash::leaf_hash(entry).as_bytes().as_slice() {
            return Ok(Restore::HashMismatch);
        }
        self.execute(
            "INSERT INTO entries (tenant, seq, id, entry) VALUES ($1, $2, $3, $4)",
            &[&tenant, &seq, &id, &entry],
        )?;
        Ok(Restore::Restored)
    }

    fn repair_entry(&self, tenant: &str, seq: u64, id: &str, entry: &[u8]) -> Result<Restore> {
        match self.restore_entry(tenant, seq, id, entry)? {
            Restore::Present => repair::replace_changed(self, tenant, seq, id, entry),
            other => Ok(other),
        }
    }

    fn prune_mark(&self, tenant: &str) -> Result<Option<PruneMark>> {
        retention::prune_mark(self, tenant)
    }

    fn archive_watermark(&self, tenant: &str) -> Result<Option<ArchiveWatermark>> {
        retention::archive_watermark(self, tenant)
    }

    fn record_archive_watermark(&self, tenant: &str, mark: &ArchiveWatermark) -> Result<()> {
        retention::record_archive_watermark(self, tenant, mark)
    }

    fn prune(&self, tenant: &str, mark: &PruneMark) -> Result<u64> {
        if !matches!(self.tx.get(), Tx::Write { .. }) {
            return Err(StoreError::Aborted(
                "prune runs inside a write transaction".into(),
            ));
        }
        retention::prune(self, tenant, mark)
    }

    fn try_lease(&self, name: &str) -> Result<bool> {
        super::check_lease_name(name)?;
        if self.tx.get() != Tx::Idle {
            return Err(StoreError::Postgres(
                "a lease is asked for outside a transaction".into(),
            ));
        }
        let held = self.query_opt(TRY_LEASE, &[&LEASE_LOCK_CLASS, &lease_key(name)], |row| {
            row.try_get::<_, bool>(0)
        })?;
        Ok(held.unwrap_or(false))
    }

    fn integrity_problems(&self, depth: Integrity) -> Result<Vec<String>> {
        catalog::problems(self, depth)
    }

    fn protections(&self) -> Result<Vec<Protection>> {
        let names: Vec<&str> = TRIGGERS.iter().map(|(name, _, _)| *name).collect();
        let tables: Vec<&str> = TRIGGERS.iter().map(|(_, table, _)| *table).collect();
        let kinds: Vec<i16> = TRIGGERS.iter().map(|(_, _, kind)| *kind).collect();
        let active = self.query_map(
            SELECT_PROTECTIONS,
            &[&names, &tables, &kinds, &TRIGGER_FUNCTION, &trigger_body()],
            |row| row.try_get::<_, bool>(0),
        )?;
        Ok(TRIGGERS
            .iter()
            .zip(active)
            .map(|((trigger, table, _), active)| Protection {
                name: format!("trigger {trigger} on {table}"),
                active,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server_keeps_credentials_host_and_parameters() {
        assert_eq!(
            with_database(
                "postgres://app:pw@db.example:5433/main?sslmode=require",
                "scratch"
            ),
            "postgres://app:pw@db.example:5433/scratch?sslmode=require"
        );
        assert_eq!(
            with_database("postgresql://postgres@127.0.0.1", "t1"),
            "postgresql://postgres@127.0.0.1/t1"
        );
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
    }

    #[test]
    fn redacts_uri_passwords() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@db.internal:5432/sealtrail",
                "postgres://app:***@db.internal:5432/sealtrail",
            ),
            (
                "postgresql://app:p@ss/w?rd@db/sealtrail?sslmode=disable",
                "postgresql://app:***@db/sealtrail?sslmode=disable",
            ),
            (
                "postgres://app@db/sealtrail?password=s3cret&application_name=x",
                "postgres://app@db/sealtrail?password=***&application_name=x",
            ),
            ("POSTGRES://app:x@h1,h2/db", "POSTGRES://app:***@h1,h2/db"),
            (
                "postgres://db:5432/sealtrail",
                "postgres://db:5432/sealtrail",
            ),
            ("postgres://app@db/sealtrail", "postgres://app@db/sealtrail"),
            ("postgres:///sealtrail", "postgres:///sealtrail"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[test]
    fn redacts_key_value_passwords() {
        for (conninfo, redacted) in [
            (
                "host=db user=app password=s3cret dbname=sealtrail",
                "host=db user=app password=*** dbname=sealtrail",
            ),
            (
                "host=db password = 'with \\' quote and space' user=app",
                "host=db password = *** user=app",
            ),
            ("PASSWORD=x", "PASSWORD=***"),
            ("password='unterminated", "password=***"),
            (
                "host=/run/postgresql dbname=x",
                "host=/run/postgresql dbname=x",
            ),
            ("passwordx=y password", "passwordx=y password"),
        ] {
            assert_eq!(redact_url(conninfo), redacted, "{conninfo}");
        }
    }

    #[test]
    fn migrations_define_the_trigger_function() {
        assert!(trigger_body().contains("append-only"));
        // `sealtrail migrate` puts back the function as the last migration defines it.
        assert_eq!(
            PROTECTIONS.split(TRIGGER_BODY_TAG).nth(1),
            Some(trigger_body())
        );
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
    }
}
