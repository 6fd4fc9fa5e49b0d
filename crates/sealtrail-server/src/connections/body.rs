//! A request body that must keep arriving: [`TimedBody`] fails with [`BodyTooSlow`] once it is
//! later than `body_timeout` plus one second for every `body_min_rate` bytes received, counted
//! from when the handler starts reading it (Apache's `RequestReadTimeout body=20,MinRate=500`
//! has the same shape). A client that stalls, or trickles a byte at a time, can then hold a
//! connection — and the body memory it reserved — only for a bounded time, while a slow but
//! steady upload of any size still completes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

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
