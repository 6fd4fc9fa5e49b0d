//! A small pool of read connections to the store, shared by the services behind the API.
//!
//! Reads run on tokio's blocking pool (the store's drivers are synchronous) and never wait for
//! the writer. The pool lives outside `http` because the services that read — queries,
//! verification, health — are used without HTTP too; each names its own error type, and
//! [`ReadFailure`] tells the pool which of those errors may have broken the connection.

use std::sync::{Arc, Mutex};

use sealtrail_store::{Location, Store, StoreError};

/// Read connections open at once per process, at most: enough to keep both cores busy with
/// reads, and few enough that several instances stay well inside PostgreSQL's default
/// `max_connections` (100).
pub const MAX_READERS: usize = 16;

/// An error a read through [`Readers`] can end with.
pub trait ReadFailure: From<StoreError> + Send + 'static {
    /// The pool itself failed (closed, or the read's task panicked): not the store's fault.
    fn pool_failure(message: String) -> Self;
    /// Whether the connection that produced this error may be broken (a database restart),
    /// so that the pool opens a new one next time rather than keeping it.
    fn may_break_connection(&self) -> bool;
}

impl ReadFailure for StoreError {
    fn pool_failure(message: String) -> Self {
        StoreError::Unavailable(message)
    }

    fn may_break_connection(&self) -> bool {
        true
    }
}

/// Why a plain read through [`Readers`] failed, for services whose reads have no failure of
/// their own (listings, token lookups): the store's error, or the pool's. The two are kept
/// apart because a closed pool or a panicked read is the server's fault, not the store's, and
/// is reported as such.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pool failed (closed, or the read's task panicked).
    #[error("{0}")]
    Pool(String),
}

impl ReadFailure for ReadError {
    fn pool_failure(message: String) -> Self {
        ReadError::Pool(message)
    }

    /// Only the store's errors come from a connection, and any of them may have broken it.
    fn may_break_connection(&self) -> bool {
        matches!(self, ReadError::Store(_))
    }
}

/// A small pool of read connections to the store; reads never wait for the writer.
#[derive(Clone)]
pub struct Readers {
    location: Location,
    idle: Arc<Mutex<Vec<Box<dyn Store>>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub fn new(location: Location) -> Readers {
        Readers {
            location,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T: Send + 'static, E: ReadFailure>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let readers = self.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::pool_failure("the reader pool is closed".to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match readers.idle.lock().expect("readers lock").pop() {
                Some(conn) => conn,
                None => readers.location.open_reader().map_err(E::from)?,
            };
            let result = f(conn.as_ref());
            let broken = matches!(&result, Err(e) if e.may_break_connection());
            if !broken {
                readers.idle.lock().expect("readers lock").push(conn);
            }
            result
        })
        .await
        .map_err(|e| E::pool_failure(format!("reader task failed: {e}")))?
    }
}
