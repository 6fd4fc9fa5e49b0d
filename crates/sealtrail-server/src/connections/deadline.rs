//! When a connection is closed for waiting too long: the header timeout while a request's head
//! arrives, the idle timeout between requests and while the client does not take its answer.
//! (A body's own timeout is [`crate::http::body::TimedBody`]'s; while a request is being
//! handled, the connection has no deadline of its own.)
//!
//! Three parties share a [`Deadline`]: the socket wrapper [`Watched`] notes that bytes arrived
//! on an idle connection (a new request's head has begun) and whether writing to the client is
//! stuck, the connection's service notes that a head was parsed and that its answer was handed
//! over ([`AnswerBody`]), and the connection's task sleeps until the current deadline and
//! closes the connection when it passes.
//!
//! Noting a change is a store under an uncontended lock, and wakes nobody: the task never
//! sleeps longer than the shorter of the two timeouts at a time. A deadline set later is at
//! least that far away, so the task is awake again before it passes, however the deadline
//! moved meanwhile — no request pays for a wake-up of its connection's task.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing, as far as its deadline is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A request's head is arriving (or, on a new connection, awaited): the header timeout.
    Head,
    /// A request is being read or handled: no deadline here.
    Busy,
    /// Between requests, or the client has yet to read the last answer: the idle timeout.
    Idle,
    /// Writing to the client has made no progress: the idle timeout, whatever the phase (an
    /// answer too large for the connection's buffer is still being handed over).
    Write,
    /// Closed to make room for a new connection at the cap ([`Deadline::shed`]): at once.
    Shed,
}

impl Phase {
    /// The phase's name, as metrics and logs give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Head => "header",
            Phase::Busy => "busy",
            Phase::Idle => "idle",
            Phase::Write => "write",
            Phase::Shed => "shed",
        }
    }
}

struct State {
    phase: Phase,
    deadline: Option<Instant>,
    /// When a write that cannot go on (the client does not read) gives up; `None` while
    /// writes go through.
    write_deadline: Option<Instant>,
    /// Since when the connection has been waiting for a request (opened, or last answered).
    waiting_since: Instant,
}

/// One connection's deadline; see the module docs.
pub struct Deadline {
    state: Mutex<State>,
    /// Set while the connection waits for a request of which nothing has arrived (new, or
    /// idle between requests): a read can tell without the lock whether it begins one, and a
    /// connection is shed only in this state. Whoever clears it first — the first byte, or
    /// [`Deadline::shed`] — decides which of the two happens.
    waiting: AtomicBool,
    /// Set while a write is stuck, so that a write can tell without the lock whether it ends
    /// a stall or begins one.
    write_blocked: AtomicBool,
    /// Wakes the connection's task when it is shed, which cannot wait for its next look.
    shed: Notify,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl Deadline {
    /// A new connection: its first request's head is awaited from now.
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> Arc<Deadline> {
        Arc::new(Deadline {
            state: Mutex::new(State {
                phase: Phase::Head,
                deadline: Some(Instant::now() + header_timeout),
                write_deadline: None,
                waiting_since: Instant::now(),
            }),
            waiting: AtomicBool::new(true),
            write_blocked: AtomicBool::new(false),
            shed: Notify::new(),
            header_timeout,
            idle_timeout,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain values, valid whatever a panicking holder left.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves to `phase`, unless the connection was shed: that is final.
    fn set(&self, phase: Phase, deadline: Option<Instant>) {
        let mut state = self.lock();
        if state.phase != Phase::Shed {
            state.phase = phase;
            state.deadline = deadline;
        }
    }

    /// Bytes arrived. On an idle connection they begin a request's head (a new connection's
    /// head keeps the deadline it has had since it opened); either way, the connection can no
    /// longer be shed until it is idle again.
    fn bytes_read(&self) {
        if self.waiting.swap(false, Ordering::AcqRel) {
            let mut state = self.lock();
            if state.phase == Phase::Idle {
                state.phase = Phase::Head;
                state.deadline = Some(Instant::now() + self.header_timeout);
            }
        }
    }

    /// Closes the connection at once if it has been waiting for a request of which nothing
    /// has arrived for at least `waited`; says whether it did. The accept loop makes room this
    /// way at the cap. (Not at once: a connection just accepted has its request in the
    /// socket's buffer before its task first reads it.)
    pub fn shed(&self, waited: Duration) -> bool {
        let mut state = self.lock();
        if !self.waiting.load(Ordering::Acquire) || state.waiting_since.elapsed() < waited {
            return false;
        }
        // A first byte read meanwhile wins: the connection is in use.
        if !self.waiting.swap(false, Ordering::AcqRel) {
            return false;
        }
        state.phase = Phase::Shed;
        state.deadline = Some(Instant::now());
        drop(state);
        self.shed.notify_one();
        true
    }

    /// A write to the client could not go on. The first of a stall starts its deadline.
    fn write_stuck(&self) {
        if !self.write_blocked.swap(true, Ordering::AcqRel) {
            self.lock().write_deadline = Some(Instant::now() + self.idle_timeout);
        }
    }

    /// A write to the client went through: a stall, if any, is over.
    fn write_went_through(&self) {
        if self.write_blocked.swap(false, Ordering::AcqRel) {
            self.lock().write_deadline = None;
        }
    }

    /// Whether writing to the client is stuck now (so that nothing more should be written).
    pub fn write_is_stuck(&self) -> bool {
        self.write_blocked.load(Ordering::Acquire)
    }

    /// A request's head has been parsed: it is being handled.
    pub fn request_started(&self) {
        self.waiting.store(false, Ordering::Release);
        self.set(Phase::Busy, None);
    }

    /// The answer has been handed to the connection: it is idle until the next request.
    fn answer_handed_over(&self) {
        let mut state = self.lock();
        if state.phase != Phase::Shed {
            let now = Instant::now();
            state.phase = Phase::Idle;
            state.deadline = Some(now + self.idle_timeout);
            state.waiting_since = now;
            self.waiting.store(true, Ordering::Release);
        }
    }

    /// Resolves when the current deadline passes, with the phase it ended; see the module
    /// docs for why it looks at least every `min(header_timeout, idle_timeout)`.
    pub async fn expired(&self) -> Phase {
        let longest_nap = self.header_timeout.min(self.idle_timeout);
        let mut nap = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        loop {
            let (phase, deadline) = {
                let state = self.lock();
                match (state.deadline, state.write_deadline) {
                    _ if state.phase == Phase::Shed => (Phase::Shed, state.deadline),
                    (Some(phase_ends), Some(write_ends)) if write_ends < phase_ends => {
                        (Phase::Write, Some(write_ends))
                    }
                    (None, Some(write_ends)) => (Phase::Write, Some(write_ends)),
                    (deadline, _) => (state.phase, deadline),
                }
            };
            let now = Instant::now();
            if deadline.is_some_and(|deadline| deadline <= now) {
                return phase;
            }
            let wake = deadline.map_or(now + longest_nap, |d| d.min(now + longest_nap));
            nap.as_mut().reset(wake);
            tokio::select! {
                () = nap.as_mut() => {}
                () = self.shed.notified() => {}
            }
        }
    }
}

/// The client's socket, noting on its connection's [`Deadline`] when bytes arrive.
pub struct Watched {
    pub stream: TcpStream,
    pub deadline: Arc<Deadline>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.deadline.bytes_read();
        }
        read
    }
}

impl Watched {
    /// Notes on the deadline whether `written` (a write or a flush) went through.
    fn noted<T>(&self, written: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &written {
            Poll::Pending => self.deadline.write_stuck(),
            Poll::Ready(_) => self.deadline.write_went_through(),
        }
        written
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.noted(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.noted(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        self.noted(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that marks its connection idle once it has been handed over whole (or
/// dropped): what is left to do is the client's reading, which the idle timeout bounds.
pub struct AnswerBody {
    inner: axum::body::Body,
    deadline: Option<Arc<Deadline>>,
}

impl AnswerBody {
    pub fn new(inner: axum::body::Body, deadline: Arc<Deadline>) -> AnswerBody {
        AnswerBody {
            inner,
            deadline: Some(deadline),
        }
    }

    fn handed_over(&mut self) {
        if let Some(deadline) = self.deadline.take() {
            deadline.answer_handed_over();
        }
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.handed_over();
    }
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.handed_over();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time is paused: `expired` resolves exactly when the deadline of the phase passes, and a
    /// request in progress has none.
    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        let deadline = Deadline::new(header, idle);
        let start = Instant::now();
        assert_eq!(deadline.expired().await, Phase::Head);
        assert_eq!(start.elapsed(), header);

        deadline.request_started();
        let busy = tokio::time::timeout(Duration::from_secs(3600), deadline.expired()).await;
        assert!(busy.is_err(), "a request in progress has no deadline");

        deadline.answer_handed_over();
        let start = Instant::now();
        assert_eq!(deadline.expired().await, Phase::Idle);
        assert_eq!(start.elapsed(), idle);

        // Bytes on an idle connection begin a head: the (shorter) header timeout applies.
        deadline.answer_handed_over();
        tokio::time::advance(Duration::from_secs(5)).await;
        deadline.bytes_read();
        let start = Instant::now();
        assert_eq!(deadline.expired().await, Phase::Head);
        assert_eq!(start.elapsed(), header);
    }

    /// A write the client does not take ends the connection after the idle timeout, even while
    /// a request is being handled (a large answer still being handed over); a write that goes
    /// through ends the stall.
    #[tokio::test(start_paused = true)]
    async fn a_stuck_write_has_the_idle_timeout() {
        let idle = Duration::from_secs(60);
        let deadline = Deadline::new(Duration::from_secs(10), idle);
        deadline.request_started();
        deadline.write_stuck();
        tokio::time::advance(Duration::from_secs(30)).await;
        // Still stuck: the stall is counted from its start.
        deadline.write_stuck();
        deadline.write_went_through();
        deadline.write_stuck();
        let start = Instant::now();
        let expired = tokio::time::timeout(Duration::from_secs(3600), deadline.expired()).await;
        assert_eq!(expired, Ok(Phase::Write), "a stuck write has a deadline");
        assert_eq!(start.elapsed(), idle);

        deadline.write_went_through();
        let busy = tokio::time::timeout(Duration::from_secs(3600), deadline.expired()).await;
        assert!(busy.is_err(), "a write that went through ends the stall");
    }

    /// Only a connection waiting for a request of which nothing has arrived can be shed: new,
    /// or idle between requests; not once a head has begun, nor while a request is handled.
    /// Shedding ends it at once and for good.
    #[tokio::test(start_paused = true)]
    async fn only_a_connection_waiting_with_nothing_received_is_shed() {
        let (header, idle) = (Duration::from_secs(10), Duration::from_secs(60));
        let waited = Duration::from_secs(1);
        let fresh = Deadline::new(header, idle);
        let watching = tokio::spawn({
            let fresh = fresh.clone();
            async move { fresh.expired().await }
        });
        assert!(!fresh.shed(waited), "not before it has waited");
        tokio::time::advance(waited).await;
        let start = Instant::now();
        assert!(fresh.shed(waited), "a new connection that has sent nothing");
        assert_eq!(watching.await.unwrap(), Phase::Shed);
        assert_eq!(start.elapsed(), Duration::ZERO, "shed at once");
        assert!(!fresh.shed(waited), "shed once");
        fresh.request_started();
        fresh.answer_handed_over();
        assert_eq!(fresh.expired().await, Phase::Shed, "shedding is final");

        let began = Deadline::new(header, idle);
        tokio::time::advance(waited).await;
        began.bytes_read();
        assert!(!began.shed(waited), "a head has begun");
        began.request_started();
        assert!(!began.shed(waited), "a request is being handled");
        began.answer_handed_over();
        assert!(!began.shed(waited), "idle, but only just");
        tokio::time::advance(waited).await;
        assert!(began.shed(waited), "idle between requests");
        let start = Instant::now();
        assert_eq!(began.expired().await, Phase::Shed);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// A deadline set while the task sleeps is kept to the instant, though nothing wakes the
    /// task: here the idle timeout is the shorter one, and the answer comes mid-nap.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_set_while_the_task_sleeps_is_kept() {
        let deadline = Deadline::new(Duration::from_secs(10), Duration::from_secs(1));
        deadline.request_started();
        let start = Instant::now();
        let watching = tokio::spawn({
            let deadline = deadline.clone();
            async move { deadline.expired().await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        deadline.answer_handed_over();
        assert_eq!(watching.await.unwrap(), Phase::Idle);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }
}
