//! Shared by the integration tests: a PostgreSQL database of their own ([`TestDatabase`]),
//! and a real `sealtrail serve` process with the command line beside it ([`serve`]).

#![allow(dead_code)]

pub mod disk;
pub mod serve;
pub mod tamper;

use std::sync::atomic::{AtomicU32, Ordering};

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
        let mut admin =
            postgres::Client::connect(&server_url, postgres::NoTls).unwrap_or_else(|e| {
                panic!("{test}: cannot connect to SEALTRAIL_TEST_DATABASE_URL: {e}")
            });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{test}: cannot create database {name}: {e}"));
        Some(TestDatabase {
            url: with_database(&server_url, &name),
            server_url,
            name,
        })
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
            url: with_database(&self.server_url, &name),
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
        if let Ok(mut admin) = postgres::Client::connect(&self.server_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
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

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base
        .split_once("://")
        .expect("SEALTRAIL_TEST_DATABASE_URL is a URL");
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
