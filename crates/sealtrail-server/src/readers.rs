//! A small pool of read connections to the store, shared by the services behind the API.
//!
//! Reads run on tokio's blocking pool (the store's drivers are synchronous) and never wait for
//! the writer. The pool lives outside `http` because the services that read — queries,
//! verification, health — are used without HTTP too; each names its own error type, and
//! [`ReadFailure`] tells the pool which of those errors may have broken the connection.
//!
//! ## Two kinds of reads
//!
//! Of the [`MAX_READERS`] connections, [`CONTROL_READERS`] are kept for the *control path*
//! ([`Readers::control`]): the short reads that decide whether the service works at all —
//! a token looked up again before a request (ingest's only read), `/health`, the latest
//! checkpoint and key, `/metrics`. Everything else — searches, events with their proofs,
//! proofs, tiles, verification, listings — reads through [`Readers::read`] on the other
//! [`GENERAL_READERS`], and can never take a control connection. As PostgreSQL keeps
//! `superuser_reserved_connections` for the administrator, this keeps many slow searches (or
//! proofs) from making a producer's `POST /v1/events` or a load balancer's `/health` wait for
//! one of them to finish. Searches are limited further by the query service (a share per
//! tenant, a cap below [`GENERAL_READERS`], a time limit; see `crate::query::admission`).

use std::sync::{Arc, Mutex};

use sealtrail_store::{Location, Store, StoreError};
use tokio::sync::Semaphore;

/// Read connections open at once per process, at most: enough to keep both cores busy with
/// reads, and few enough that several instances stay well inside PostgreSQL's default
/// `max_connections` (100).
pub const MAX_READERS: usize = 16;
/// Of [`MAX_READERS`], the connections kept for the control path ([`Readers::control`]).
/// Its reads are single-row lookups of a millisecond or less, so four serve far more requests
/// a second than the writer commits.
pub const CONTROL_READERS: usize = 4;
/// Of [`MAX_READERS`], the connections every other read shares ([`Readers::read`]).
pub const GENERAL_READERS: usize = MAX_READERS - CONTROL_READERS;

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

/// A small pool of read connections to the store; reads never wait for the writer, and the
/// control path never waits for other reads (see the module docs).
#[derive(Clone)]
pub struct Readers {
    location: Location,
    /// Open connections not in use, of either kind: a connection is the same whichever
    /// permit it is used under, and at most [`MAX_READERS`] are ever open.
    idle: Arc<Mutex<Vec<Box<dyn Store>>>>,
    /// [`GENERAL_READERS`] permits, for [`Readers::read`].
    general: Arc<Semaphore>,
    /// [`CONTROL_READERS`] permits, for [`Readers::control`].
    control: Arc<Semaphore>,
}

impl Readers {
    pub fn new(location: Location) -> Readers {
        Readers {
            location,
            idle: Arc::new(Mutex::new(Vec::new())),
            general: Arc::new(Semaphore::new(GENERAL_READERS)),
            control: Arc::new(Semaphore::new(CONTROL_READERS)),
        }
    }

    /// Runs `f` with a read connection on the blocking pool, among every read that is not
    /// the control path's.
    pub async fn read<T: Send + 'static, E: ReadFailure>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.read_under(&self.general, f).await
    }

    /// Runs `f` with a read connection kept for the control path: authentication, health,
    /// the latest checkpoint and key, metrics. Only short reads belong here; they never wait
    /// for searches or proofs, however many of those run.
    pub async fn control<T: Send + 'static, E: ReadFailure>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.read_under(&self.control, f).await
    }

    async fn read_under<T: Send + 'static, E: ReadFailure>(
        &self,
        permits: &Arc<Semaphore>,
        f: impl FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let readers = self.clone();
        let permit = permits
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
