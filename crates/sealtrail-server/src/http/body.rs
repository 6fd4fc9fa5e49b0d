//! Request bodies: how large a route takes them, and how much memory all the bodies being read
//! may hold at once.
//!
//! A route that reads a body declares its limit with [`limited`]. Before anything else of the
//! route runs (authentication included):
//!
//! - a `Content-Length` over the limit is answered `413` at once, without reading the body —
//!   and so, for `Expect: 100-continue`, without a `100 Continue` (hyper sends it only when
//!   the body is first read) — and with `Connection: close`, since the unread body would
//!   otherwise be taken for the next request;
//! - room for the body is reserved in the process's [`BodyBudget`]: its `Content-Length`, or
//!   the route's limit for a body of unannounced length (chunked). The reservation is held until
//!   the handler has answered, since what it builds from the body lives as long. A request
//!   waits for room at most the body timeout, then gets `503 server_busy`; waiting means its
//!   body is not read, so a client that does not wait for `100 Continue` is slowed by TCP.
//!
//! A chunked body that grows past the limit is cut off there by axum's `DefaultBodyLimit` and
//! answered `413` by [`refused`], which also turns a body that arrived too slowly
//! ([`BodyTooSlow`]) into `408`.
//!
//! A body must also keep arriving: [`TimedBody`], which the connection layer
//! ([`crate::connections`]) puts around every request's body, fails with [`BodyTooSlow`] once
//! it is later than `body_timeout` plus one second for every `body_min_rate` bytes received,
//! counted from when the handler starts reading it (Apache's `RequestReadTimeout
//! body=20,MinRate=500` has the same shape). A client that stalls, or trickles a byte at a
//! time, can then hold a connection — and the body memory it reserved — only for a bounded
//! time, while a slow but steady upload of any size still completes.
//!
//! So the bodies in memory at once are at most `max_body_memory_bytes` (256 MiB by default),
//! however many connections are open; without the budget they would be bounded only by the
//! route limits times the connection cap (16 MiB × 4,096 = 64 GiB).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::{ApiError, AppState};

// The body memory must hold the largest body a route takes (or such a request could never be
// served); `config` checks `max_body_memory_bytes` against its own statement of that size,
// as it cannot import `ingest` (which depends on it). The build keeps the two equal.
const _: () = assert!(crate::config::LARGEST_BODY as usize == crate::ingest::MAX_BATCH_BODY);
const _: () = assert!(crate::ingest::MAX_EVENT_BODY <= crate::ingest::MAX_BATCH_BODY);

/// The memory request bodies may hold at once, in bytes, shared by every connection.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    room: Arc<Semaphore>,
    total: usize,
    /// How long a request waits for room before it is told to retry.
    wait: Duration,
}

impl BodyBudget {
    pub fn new(total: usize, wait: Duration) -> BodyBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            room: Arc::new(Semaphore::new(total)),
            total,
            wait,
        }
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.room.available_permits()
    }

    /// Reserves `bytes` (at most the whole budget), waiting up to the budget's wait.
    async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let bytes = u32::try_from(bytes.min(self.total)).unwrap_or(u32::MAX);
        let reserved = tokio::time::timeout(self.wait, self.room.clone().acquire_many_owned(bytes));
        match reserved.await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the only way to get here.
            Ok(Err(_)) | Err(_) => Err(ApiError::server_busy(self.total)),
        }
    }
}

/// `route` (a route that reads a body), taking bodies of at most `limit` bytes under the
/// rules of the module docs.
pub fn limited(route: MethodRouter<AppState>, limit: usize) -> MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(axum::middleware::from_fn(
            move |request: Request, next: Next| admit(limit, request, next),
        ))
        .layer(DefaultBodyLimit::max(limit))
}

/// How many bytes a request's body will take: `None` when it does not say (chunked).
enum Declared {
    Length(u64),
    Unknown,
}

fn declared(headers: &HeaderMap) -> Declared {
    // `Transfer-Encoding` overrides `Content-Length` (RFC 9112 §6.3); hyper has already
    // refused a `Content-Length` that is not a number (400). A request with neither has no
    // body.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Declared::Unknown;
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    Declared::Length(length.unwrap_or(0))
}

async fn admit(limit: usize, request: Request, next: Next) -> Response {
    let bytes = match declared(request.headers()) {
        Declared::Length(length) if length > limit as u64 => {
            return (
                [(header::CONNECTION, "close")],
                ApiError::body_too_large(limit),
            )
                .into_response();
        }
        Declared::Length(length) => length as usize,
        Declared::Unknown => limit,
    };
    let budget = request.extensions().get::<BodyBudget>().cloned();
    let reserved = match budget {
        Some(budget) if bytes > 0 => match budget.reserve(bytes).await {
            Ok(permit) => Some(permit),
            Err(busy) => return ([(header::RETRY_AFTER, "1")], busy).into_response(),
        },
        _ => None,
    };
    let response = next.run(request).await;
    drop(reserved);
    response
}

/// The answer to a body the route would not read to the end: too large (413), arriving too
/// slowly (408), or cut off (400).
pub fn refused(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::body_too_large(limit);
    }
    let too_slow = std::iter::successors(
        Some(&rejection as &(dyn std::error::Error + 'static)),
        |error| error.source(),
    )
    .find_map(|error| error.downcast_ref::<BodyTooSlow>());
    if let Some(too_slow) = too_slow {
        return ApiError::body_too_slow(too_slow);
    }
    ApiError::bad_request(format!(
        "the body cannot be read: {}",
        rejection.body_text()
    ))
    .at("", "syntax")
}

/// A body that arrived more slowly than the limits allow.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly: it may take {} s plus one second for every {min_rate} bytes",
    timeout.as_secs()
)]
pub struct BodyTooSlow {
    pub timeout: Duration,
    pub min_rate: u64,
}

/// A request body under the body timeout; see the module docs.
pub struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    min_rate: u64,
    /// When the body was first read; `None` until then.
    started: Option<Instant>,
    received: u64,
    /// Armed the first time the body has to wait for the client.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    pub fn new(inner: Incoming, timeout: Duration, min_rate: u64) -> TimedBody {
        TimedBody {
            inner,
            timeout,
            min_rate: min_rate.max(1),
            started: None,
            received: 0,
            timer: None,
        }
    }

    fn deadline(&self, started: Instant) -> Instant {
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / self.min_rate);
        started + self.timeout + earned
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                let deadline = this.deadline(started);
                if let Some(timer) = this.timer.as_mut() {
                    timer.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline(started);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                        timeout: this.timeout,
                        min_rate: this.min_rate,
                    }))));
                }
                Poll::Pending
            }
        }
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

    /// Room is given back when the reservation ends; a request that cannot get room in time
    /// is told the server is busy.
    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_room_and_is_refused_when_none_comes() {
        let budget = BodyBudget::new(100, Duration::from_secs(20));
        let first = budget.reserve(70).await.unwrap();
        assert_eq!(budget.available(), 30);
        let refused = budget.reserve(50).await.unwrap_err();
        assert_eq!(refused.error, "server_busy");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(first);
        waiting.await.unwrap().expect("room came back in time");
        assert_eq!(budget.available(), 100);
        // A body larger than the whole budget reserves all of it rather than never fitting.
        let all = budget.reserve(1000).await.unwrap();
        assert_eq!(budget.available(), 0);
        drop(all);
    }
}
