//! The harness of the shared store test suite (feature `test-suite`): a store under test on
//! each backend — the embedded store in a temporary directory, or a fresh PostgreSQL database
//! through `SEALTRAIL_TEST_DATABASE_URL` — and [`store_suite!`](crate::store_suite), which
//! expands one list of test functions into a test per backend.
//!
//! The store crate's own suite (`tests/store_suite.rs`) runs the `Store` contract through it;
//! crates built on the store (the server's write path) run their own store-dependent tests the
//! same way, so every behaviour is checked on both backends by one body of code.
//!
//! Outside CI a missing `SEALTRAIL_TEST_DATABASE_URL` skips the PostgreSQL half with a message
//! saying why; under `CI=true` it fails the test instead.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::Location;

/// A database of its own for one test, created through `SEALTRAIL_TEST_DATABASE_URL` and
/// dropped when this goes out of scope.
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    server_url: String,
    name: String,
}

impl TestDatabase {
    /// A fresh, empty database; `None` (after saying why on stderr) when
    /// `SEALTRAIL_TEST_DATABASE_URL` is not set. Under `CI=true` a missing or unreachable
    /// database fails the test instead.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let server_url = match std::env::var("SEALTRAIL_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    !ci,
                    "CI=true but SEALTRAIL_TEST_DATABASE_URL is not set: {test} needs PostgreSQL"
                );
                eprintln!(
                    "skipped {test}: it needs PostgreSQL; set SEALTRAIL_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it"
                );
                return None;
            }
        };
        let name = unique_name();
        crate::postgres::create_database(&server_url, &name).unwrap_or_else(|e| {
            panic!("{test}: cannot create database {name} through SEALTRAIL_TEST_DATABASE_URL: {e}")
        });
        Some(TestDatabase {
            url: crate::postgres::with_database(&server_url, &name),
            server_url,
            name,
        })
    }

    /// A fresh, empty database on the server at `server_url` (a cluster of the test's own),
    /// dropped when it goes out of scope if that server still runs.
    pub fn create_on(server_url: &str, test: &str) -> TestDatabase {
        let name = unique_name();
        crate::postgres::create_database(server_url, &name).unwrap_or_else(|e| {
            panic!("{test}: cannot create database {name} on {server_url}: {e}")
        });
        TestDatabase {
            url: crate::postgres::with_database(server_url, &name),
            server_url: server_url.to_string(),
            name,
        }
    }

    /// A new test database with this one's contents (`CREATE DATABASE … TEMPLATE`), dropped
    /// in turn when it goes out of scope. Nobody may be connected to this one meanwhile.
    pub fn copy(&self) -> TestDatabase {
        let name = unique_name();
        let mut admin = postgres::Client::connect(&self.server_url, postgres::NoTls)
            .expect("connect to SEALTRAIL_TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {}", self.name))
            .unwrap_or_else(|e| panic!("cannot copy database {} to {name}: {e}", self.name));
        TestDatabase {
            url: crate::postgres::with_database(&self.server_url, &name),
            server_url: self.server_url.clone(),
            name,
        }
    }

    /// A connection to the test database as the URL's (superuser) role.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }

    /// The URL of the test database with another user (no password).
    pub fn url_as(&self, user: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{user}@{host}")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: a database left behind by a failed drop is named as the tests' own.
        let _ = crate::postgres::drop_database(&self.server_url, &self.name);
    }
}

/// A database name no other test uses.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "sealtrail_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

/// Why SQL run straight on a database under test failed. `message` is the database's own
/// words (for PostgreSQL, the server's message without the driver's framing), which the suite
/// matches against: an append-only trigger names itself there.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RawSqlError {
    pub message: String,
}

impl RawSqlError {
    fn new(message: impl ToString) -> RawSqlError {
        RawSqlError {
            message: message.to_string(),
        }
    }
}

/// A store under test and a way to reach its database directly, as an administrator could.
pub trait Backend {
    fn location(&self) -> Location;
    /// Runs SQL with full rights on the database.
    fn raw(&self, sql: &str) -> Result<(), RawSqlError>;
    /// The SQL that removes a trigger.
    fn drop_trigger(&self, trigger: &str, table: &str) -> String;
    /// The SQL that leaves the row of `tenant`'s entry `seq` holding something other than entry
    /// bytes, as someone with full rights on the database can: the append-only trigger is
    /// dropped first. SQLite keeps a type per value, so the entry becomes TEXT with the same
    /// characters; PostgreSQL keeps a type per column, so its NOT NULL is dropped and the entry
    /// becomes NULL.
    fn entry_without_bytes(&self, tenant: &str, seq: u64) -> String;
    fn data_dir(&self) -> &std::path::Path;
    /// Holds a lock, from a session of its own, that stops any append to the log until the
    /// returned guard is dropped.
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send>;
    /// The SQL condition that picks a tenant's rows of a log table (`entries` or `hashes`),
    /// or only its row at `position` (a seq, a stored-hash index): the two stores key them
    /// differently.
    fn log_rows(&self, table: &str, tenant: &str, position: Option<u64>) -> String;
}

pub struct Embedded {
    dir: tempfile::TempDir,
}

impl Default for Embedded {
    fn default() -> Embedded {
        Embedded::new()
    }
}

impl Embedded {
    pub fn new() -> Embedded {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Backend for Embedded {
    fn location(&self) -> Location {
        Location::new(self.dir.path(), None)
    }
    fn raw(&self, sql: &str) -> Result<(), RawSqlError> {
        let conn = rusqlite::Connection::open(crate::DataDir::new(self.dir.path()).database())
            .map_err(RawSqlError::new)?;
        conn.execute_batch(sql).map_err(RawSqlError::new)
    }
    fn drop_trigger(&self, trigger: &str, _table: &str) -> String {
        format!("DROP TRIGGER {trigger}")
    }
    fn entry_without_bytes(&self, tenant: &str, seq: u64) -> String {
        format!(
            "DROP TRIGGER IF EXISTS entries_append_only_update;
             UPDATE entries SET entry = CAST(entry AS TEXT) WHERE {};",
            self.log_rows("entries", tenant, Some(seq))
        )
    }
    fn log_rows(&self, _table: &str, tenant: &str, position: Option<u64>) -> String {
        let number = format!("(SELECT number FROM tenants WHERE name = '{tenant}')");
        match position {
            Some(n) => format!("key = ({number} << 44 | {n})"),
            None => format!("tenant_number = {number}"),
        }
    }
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send> {
        let conn =
            rusqlite::Connection::open(crate::DataDir::new(self.dir.path()).database()).unwrap();
        // SQLite's one write lock, until the connection closes.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Box::new(conn)
    }
}

pub struct Postgres {
    pub db: TestDatabase,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub fn new(test: &str) -> Option<Postgres> {
        Some(Postgres {
            db: TestDatabase::create(test)?,
            dir: tempfile::tempdir().unwrap(),
        })
    }
}

impl Backend for Postgres {
    fn location(&self) -> Location {
        Location::new(self.dir.path(), Some(&self.db.url))
    }
    fn raw(&self, sql: &str) -> Result<(), RawSqlError> {
        self.db.connect().batch_execute(sql).map_err(|e| {
            RawSqlError::new(
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_string()),
            )
        })
    }
    fn drop_trigger(&self, trigger: &str, table: &str) -> String {
        format!("DROP TRIGGER {trigger} ON {table}")
    }
    fn entry_without_bytes(&self, tenant: &str, seq: u64) -> String {
        format!(
            "DROP TRIGGER IF EXISTS entries_append_only ON entries;
             ALTER TABLE entries ALTER COLUMN entry DROP NOT NULL;
             UPDATE entries SET entry = NULL WHERE tenant = '{tenant}' AND seq = {seq};"
        )
    }
    fn log_rows(&self, table: &str, tenant: &str, position: Option<u64>) -> String {
        let column = if table == "hashes" { "idx" } else { "seq" };
        match position {
            Some(n) => format!("tenant = '{tenant}' AND {column} = {n}"),
            None => format!("tenant = '{tenant}'"),
        }
    }
    fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    fn hold_appends(&self) -> Box<dyn std::any::Any + Send> {
        let mut client = self.db.connect();
        // Inserts wait for this lock until the session ends.
        client
            .batch_execute("BEGIN; LOCK TABLE entries IN EXCLUSIVE MODE")
            .unwrap();
        Box::new(client)
    }
}

/// Expands each named test function `fn name(backend: &dyn Backend)` into two tests,
/// `embedded::name` and `postgres::name`; the PostgreSQL one is skipped (and says so) when
/// `SEALTRAIL_TEST_DATABASE_URL` is unset outside CI.
#[macro_export]
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::testing::Embedded::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    let Some(backend) = $crate::testing::Postgres::new(concat!("postgres::", stringify!($test))) else {
                        return;
                    };
                    super::$test(&backend);
                }
            )*
        }
    };
}

/// `count` committed entries shaped like the clinic's, as the benchmarks of the followers read
/// them: about 600 bytes each, one action in three a login and the rest record reads, one
/// outcome in ten a failure, 500 users, 2,000 patients, 50 addresses, and 8 producer
/// instances each counting its own `source.seq`; ten entries a millisecond.
pub fn clinic_entries(count: u64) -> Vec<Vec<u8>> {
    use sealtrail_core::canonical::{ServerFields, canonical_entry};
    use sealtrail_core::event::Event;
    use sealtrail_core::{Hash, Timestamp};
    (0..count)
        .map(|i| {
            let (action, activity) = if i % 3 == 0 {
                ("auth.login", "login")
            } else {
                ("patient.record.read", "read")
            };
            let outcome = if i % 10 == 0 { "failure" } else { "success" };
            let json = format!(
                r#"{{"occurred_at":"2026-11-23T10:15:02.123Z","action":"{action}","activity":"{activity}",
                "outcome":"{outcome}","actor":{{"id":"u-{actor}","type":"user","name":"Dr. Lee"}},
                "targets":[{{"type":"patient","id":"p-{patient}"}}],
                "context":{{"ip":"10.1.{net}.3","user_agent":"ehr-web/4.2","request_id":"req-{i}"}},
                "source":{{"app":"ehr-web","instance":"pod-{pod}","seq":{source_seq}}},
                "details":{{"fields":["name","dob"],"reason":"treatment"}}}}"#,
                actor = i % 500,
                patient = i % 2000,
                net = i % 50,
                pod = i % 8,
                source_seq = i / 8,
            );
            let event = Event::parse(json.as_bytes()).expect("a valid event");
            let server = ServerFields {
                id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(i)),
                seq: i,
                received_at: Timestamp::from_unix_micros(1_795_000_000_000_000 + 100 * i as i64)
                    .expect("in range"),
                prev_hash: Hash([7; 32]),
            };
            canonical_entry(&event, &server).expect("fits")
        })
        .collect()
}
