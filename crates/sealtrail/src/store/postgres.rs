//! The PostgreSQL store (to be implemented): one database that several `sealtrail serve`
//! instances share.

use super::{Result, StoreError};

pub struct PgStore {}

impl PgStore {
    pub fn open_writer(_url: &str) -> Result<PgStore> {
        Err(StoreError::Unavailable("not implemented".into()))
    }
    pub fn open_reader(_url: &str) -> Result<PgStore> {
        Err(StoreError::Unavailable("not implemented".into()))
    }
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    url.to_string()
}

pub struct MigrationReport {
    pub from: i64,
    pub to: i64,
    pub applied: Vec<i64>,
}

pub fn migrate(_url: &str) -> Result<MigrationReport> {
    Err(StoreError::Unavailable("not implemented".into()))
}
