//! Serving connections: the accept loop under axum's router, with a cap on open connections
//! and the deadlines that close the ones that wait too long.
//!
//! `axum::serve` accepts every connection it can and keeps each until the client leaves, so a
//! thousand sockets that send nothing exhaust the process's descriptors: `accept` fails, and so
//! does everything else that opens a file, checkpoint signing and `/health` among them. Here:
//!
//! - **A connection cap** ([`Limits::max_connections`], derived from the open-file limit in
//!   [`fds`]), so that the descriptors kept for the store stay free. At the cap, a new
//!   connection is served in place of the oldest one that has waited at least
//!   [`SHED_AFTER`] for a request of which nothing has arrived (a socket that has sent
//!   nothing, or one idle between requests), which is closed ("shed"): idle sockets cannot
//!   keep a client with a request out. While no connection can be shed (each is in the
//!   middle of a request), the loop waits and the kernel's listen backlog
//!   ([`LISTEN_BACKLOG`]) holds further connections, in order, until one can; none is
//!   refused.
//! - **No spinning on accept errors**: a failing `accept` (`EMFILE`, `ENFILE`, `ENOBUFS`) is
//!   retried after a back-off that doubles from 10 ms to 1 s, logged once per episode.
//! - **Deadlines** ([`deadline`]): a request's head must arrive within the header timeout
//!   (from its first byte; a new connection's from its opening; a JSON `408` is sent before
//!   the close), a connection may be idle between requests, or leave a write untaken, for
//!   the idle timeout, and a body must keep arriving ([`crate::http::body::TimedBody`]).
//!
//! Shutdown is as before: stop accepting (the listening socket is closed), let every
//! connection finish its request in flight, then return.

pub mod deadline;
pub mod fds;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use self::deadline::{AnswerBody, Deadline, Phase, Watched};
use crate::config::HttpSettings;
use crate::http::ApiError;
use crate::http::body::TimedBody;
use crate::http::wire::{JsonRefusals, Peer};

/// How many connections the kernel holds for the accept loop while it is at the cap (it
/// clamps this to `net.core.somaxconn`, 4,096 on current Linux). Tokio's default, 128, would
/// have further clients' SYNs dropped and retried after a second or more; a deeper queue lets
/// a burst wait its turn instead (nginx uses 511).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `address`, with [`LISTEN_BACKLOG`]. Like `TcpListener::bind`, it
/// allows binding an address whose previous connections linger in TIME_WAIT.
pub fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How connections are limited: the `http` section's timeouts and the cap decided at start.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub body_min_rate: u64,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The settings' timeouts with the cap `max_connections` ([`fds::max_connections`]).
    pub fn from_settings(http: &HttpSettings, max_connections: usize) -> Limits {
        Limits {
            header_timeout: http.header_timeout,
            body_timeout: http.body_timeout,
            body_min_rate: http.body_min_rate,
            idle_timeout: http.idle_timeout,
            max_connections,
        }
    }
}

/// How many connections a server has open: now, at most so far, and its cap. A handle of the
/// application's (not a process-wide metric), so that servers in one process stay apart.
#[derive(Debug, Clone)]
pub struct ConnectionCount {
    open: Arc<watch::Sender<usize>>,
    peak: Arc<AtomicUsize>,
    limit: usize,
}

impl ConnectionCount {
    pub fn new(limit: usize) -> ConnectionCount {
        crate::metrics::set_connection_limit(limit);
        ConnectionCount {
            open: Arc::new(watch::Sender::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// The most connections that were open at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// The cap: `max_connections`.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Resolves once the number of open connections satisfies `ready`.
    pub async fn wait_until(&self, mut ready: impl FnMut(usize) -> bool) {
        let mut open = self.open.subscribe();
        // The sender lives as long as `self`, so the channel cannot close while waiting.
        let _ = open.wait_for(|&n| ready(n)).await;
    }

    fn opened(&self) {
        self.open.send_modify(|open| {
            *open += 1;
            self.peak.fetch_max(*open, Ordering::AcqRel);
        });
        crate::metrics::connection_opened();
    }

    fn closed(&self) {
        self.open.send_modify(|open| *open -= 1);
        crate::metrics::connection_closed();
    }
}

/// A connection's place under the cap, given back when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    count: ConnectionCount,
    /// Its entry among the connections that may be shed.
    id: u64,
    open: Arc<Mutex<OpenConnections>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.open).by_age.remove(&self.id);
        self.count.closed();
    }
}

/// The open connections' deadlines, oldest first: where the accept loop finds one to shed.
#[derive(Default)]
struct OpenConnections {
    next_id: u64,
    by_age: BTreeMap<u64, Arc<Deadline>>,
}

impl OpenConnections {
    fn add(&mut self, deadline: Arc<Deadline>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_age.insert(id, deadline);
        id
    }

    /// Sheds the oldest connection that has waited [`SHED_AFTER`] for a request of which
    /// nothing has arrived (a new connection that has sent nothing, or one idle between
    /// requests); says whether there was one.
    fn shed_oldest(&self) -> bool {
        self.by_age
            .values()
            .any(|deadline| deadline.shed(SHED_AFTER))
    }
}

fn lock(open: &Mutex<OpenConnections>) -> MutexGuard<'_, OpenConnections> {
    // A map of ids to deadlines, valid whatever a panicking holder left.
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a connection must have waited with nothing received before it may be shed. A
/// client sends its request within a round trip of connecting, or of its last answer; a
/// connection accepted a moment ago may have its request waiting unread in its buffer.
pub const SHED_AFTER: Duration = Duration::from_secs(1);

/// How long the accept loop, at the cap with no connection to shed, waits before it looks
/// again (a connection may have waited long enough by then, or a request have finished).
const SHED_RETRY: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves; see the module docs. Returns
/// once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    count: ConnectionCount,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    let mut warned_at_cap: Option<Instant> = None;
    'serving: loop {
        // Accepted first: at the cap, a connection waiting to be served is what makes the
        // loop shed another. Only this one is held beyond the cap; the rest wait in the
        // listen backlog.
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                // The client gave up before it was accepted: nothing to back off from.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    let delay = backoff.failed(&error);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let mut shed = lock(&open).shed_oldest();
                if warned_at_cap.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "at the connection cap: connections that have sent no request are closed to make room; while every connection is busy, new ones wait in the listen backlog"
                    );
                    warned_at_cap = Some(Instant::now());
                }
                loop {
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => {
                            break permit.expect("the connection semaphore is never closed");
                        }
                        () = tokio::time::sleep(SHED_RETRY), if !shed => {
                            shed = lock(&open).shed_oldest();
                        }
                        () = &mut shutdown => break 'serving,
                    }
                }
            }
        };
        let deadline = Deadline::new(limits.header_timeout, limits.idle_timeout);
        count.opened();
        let slot = Slot {
            _permit: permit,
            count: count.clone(),
            id: lock(&open).add(deadline.clone()),
            open: open.clone(),
        };
        tokio::spawn(serve_connection(
            stream,
            Peer(peer),
            deadline,
            router.clone(),
            limits.clone(),
            stopping.clone(),
            slot,
        ));
    }
    // Closing the listening socket refuses new connections (and those waiting in its backlog)
    // at once, instead of leaving them to time out.
    drop(listener);
    stop.send_replace(true);
    count.wait_until(|open| open == 0).await;
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// The pause after a failed `accept`, doubling from 10 ms to 1 s while failures last.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    failures: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    fn failed(&mut self, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                %error,
                "cannot accept connections; retrying with back-off (raise the open-file limit or lower max_connections)"
            );
        }
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MOST);
        self.delay
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
        }
        *self = Backoff::default();
    }
}

/// Serves one connection until it ends, its deadline passes, or shutdown lets it finish.
///
/// Its stream is watched for its deadline ([`Watched`]) under [`JsonRefusals`], which gives
/// hyper's own refusals the JSON error shape; its requests carry the peer address as
/// `ConnectInfo<Peer>`, where handlers read it.
async fn serve_connection(
    stream: TcpStream,
    peer: Peer,
    deadline: Arc<Deadline>,
    router: Router,
    limits: Arc<Limits>,
    mut stopping: watch::Receiver<bool>,
    _slot: Slot,
) {
    let header_timeout = limits.header_timeout;
    let io = TokioIo::new(JsonRefusals::new(Watched {
        stream,
        deadline: deadline.clone(),
    }));
    let router = TowerToHyperService::new(router);
    let service = {
        let deadline = deadline.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            deadline.request_started();
            let mut request: Request = request.map(|body| {
                axum::body::Body::new(TimedBody::new(
                    body,
                    limits.body_timeout,
                    limits.body_min_rate,
                ))
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            let answered = hyper::service::Service::call(&router, request);
            let deadline = deadline.clone();
            async move {
                let response = answered.await?;
                Ok::<_, Infallible>(response.map(|body| AnswerBody::new(body, deadline)))
            }
        })
    };
    let mut connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_CONNECTION_BUFFER)
        .serve_connection(io, service);
    let mut shutting_down = false;
    let expired = loop {
        tokio::select! {
            served = &mut connection => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            phase = deadline.expired() => break phase,
            _ = stopping.wait_for(|stop| *stop), if !shutting_down => {
                // Finishes the request in flight, if any, then closes.
                std::pin::Pin::new(&mut connection).graceful_shutdown();
                shutting_down = true;
            }
        }
    };
    // No request is in flight: dropping the connection closes the socket.
    tracing::debug!(
        phase = expired.as_str(),
        "closing a connection past its deadline"
    );
    if expired == Phase::Shed {
        crate::metrics::connection_shed();
    } else {
        crate::metrics::connection_timed_out(expired.as_str());
    }
    if expired == Phase::Head && !deadline.write_is_stuck() {
        let mut io = connection.into_parts().io;
        say_too_slow(io.inner_mut(), header_timeout).await;
    }
}

/// The most a connection's buffer holds (hyper's default is about 400 KiB). A request head
/// must fit in it: 128 KiB holds the largest the API takes (a 48 KiB target and 32 KiB of
/// headers, [`crate::http::MAX_URI_BYTES`]) and lets hyper see a target of 64 KiB, which it
/// refuses as too long (414), while bounding what a slow head pins per connection.
pub const MAX_CONNECTION_BUFFER: usize = 128 * 1024;
const _: () = assert!(
    crate::http::MAX_URI_BYTES + crate::http::MAX_HEADER_BYTES < MAX_CONNECTION_BUFFER
        && 64 * 1024 < MAX_CONNECTION_BUFFER
);

/// Tells a client whose request head did not arrive in time so, in the JSON error shape,
/// before its connection is closed: `408`, `request_timeout`. Best effort, and brief: a client
/// that does not take the answer at once does not get it.
async fn say_too_slow(io: &mut (impl AsyncWrite + Unpin), timeout: Duration) {
    let error = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request line and headers did not all arrive within {} s (header_timeout_secs)",
            timeout.as_secs()
        ),
    )
    .at("request", "timeout");
    let Ok(body) = serde_json::to_vec(&error) else {
        return;
    };
    let mut answer = format!(
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let written = async {
        io.write_all(&answer).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
}
