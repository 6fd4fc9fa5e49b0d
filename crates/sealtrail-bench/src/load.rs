//! The HTTP load driver: simulated producers posting clinic events to a running server.
//!
//! Each client is one task with one keep-alive HTTP/1.1 connection (TCP_NODELAY), sending its
//! next request as soon as the previous one is answered, the way a producer with a
//! synchronous audit call behaves. All clients start together and stop starting requests
//! when the duration is over; requests still in flight then are waited for and counted, and
//! the elapsed time runs until the last one is answered, so events / elapsed is what the
//! server sustained.
//!
//! Only acknowledged events count: a `201` for a single event, or an element of a batch
//! answered with a `2xx` status. Anything else — a refused request, one rejected event in a
//! batch, a connection the server dropped — fails the whole run with what the server said:
//! a benchmark that silently counted failures would measure nothing. Duplicates (`200`) and
//! spooled events (`202`) are acknowledged too, and reported separately because neither
//! should happen in a benchmark of a healthy server.
//!
//! Request latencies are recorded per request, in microseconds, and merged into
//! [`Latencies`] (all of them, sorted: a 10-second run is at most a few hundred thousand
//! values, and exact percentiles need no histogram library).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::clinic::Clinic;

/// What each request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One event per `POST /v1/events`.
    Single,
    /// `size` events per `POST /v1/events/batch`, as a JSON array.
    Batch { size: usize },
}

impl Mode {
    fn events_per_request(self) -> usize {
        match self {
            Mode::Single => 1,
            Mode::Batch { size } => size,
        }
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub token: String,
    pub clients: usize,
    pub duration: Duration,
    pub mode: Mode,
    pub clinic: Arc<Clinic>,
    /// Client `i` generates stream `stream_base + i` of the clinic's events.
    pub stream_base: u64,
}

/// The newest acknowledgement: the highest seq acknowledged so far and when it was
/// acknowledged. The index-lag probe reads it while the load runs.
#[derive(Debug, Default)]
pub struct Acks {
    latest: Mutex<Option<(u64, Instant)>>,
}

impl Acks {
    pub fn latest(&self) -> Option<(u64, Instant)> {
        *self.latest.lock().expect("acks lock")
    }

    fn record(&self, seq: u64, at: Instant) {
        let mut latest = self.latest.lock().expect("acks lock");
        if latest.is_none_or(|(newest, _)| seq > newest) {
            *latest = Some((seq, at));
        }
    }
}

/// What a load run achieved.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Events acknowledged by the server (2xx).
    pub events: u64,
    /// Of those, answered as duplicates of an earlier idempotency key (`200`).
    pub duplicates: u64,
    /// Of those, kept in the server's local spool (`202`) rather than committed to the store.
    pub spooled: u64,
    pub requests: u64,
    /// Request bytes sent.
    pub bytes: u64,
    /// From the start of the first request to the answer of the last.
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl LoadReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Request latencies in microseconds, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn from_micros(mut micros: Vec<u32>) -> Latencies {
        micros.sort_unstable();
        Latencies(micros)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile (0.5 for the median, 0.99 for p99) in milliseconds, by nearest rank;
    /// `None` without samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.0.len()) - 1;
        Some(f64::from(self.0[index]) / 1000.0)
    }

    pub fn max_ms(&self) -> Option<f64> {
        self.0.last().map(|&m| f64::from(m) / 1000.0)
    }
}

/// One keep-alive connection to the server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Connection {
    pub async fn open(addr: SocketAddr, token: &str) -> Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the server at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr} failed"))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; a failed request reports
            // the error itself.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: addr.to_string(),
            authorization: format!("Bearer {token}"),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        self.sender
            .ready()
            .await
            .context("the server closed the connection")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, &self.authorization);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(body))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("{path}: no answer from the server"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{path}: the answer was cut off"))?
            .to_bytes();
        Ok((status, body))
    }

    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.send(hyper::Method::GET, path, None, Bytes::new())
            .await
    }
}

/// One element of a batch's answer; the rest of the receipt is not needed here.
#[derive(Deserialize)]
struct BatchResult {
    status: u16,
    #[serde(default)]
    seq: Option<u64>,
}

/// Counts per client, merged at the end.
#[derive(Default)]
struct ClientTally {
    events: u64,
    duplicates: u64,
    spooled: u64,
    requests: u64,
    bytes: u64,
    latencies: Vec<u32>,
}

/// Runs the load and reports what was acknowledged; every answer of every request is checked
/// (see the module documentation). `acks` learns the highest seq of each answered batch.
pub async fn run(config: &LoadConfig, acks: Option<Arc<Acks>>) -> Result<LoadReport> {
    let mut connections = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        connections.push(Connection::open(config.addr, &config.token).await?);
    }
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, connection) in connections.into_iter().enumerate() {
        let stream = config.clinic.stream(config.stream_base + i as u64);
        let mode = config.mode;
        let acks = acks.clone();
        tasks.spawn(client(connection, stream, mode, deadline, acks));
    }
    let mut total = ClientTally::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = match joined.context("a load client panicked")? {
            Ok(tally) => tally,
            Err(error) => {
                tasks.abort_all();
                return Err(error);
            }
        };
        total.events += tally.events;
        total.duplicates += tally.duplicates;
        total.spooled += tally.spooled;
        total.requests += tally.requests;
        total.bytes += tally.bytes;
        total.latencies.extend_from_slice(&tally.latencies);
    }
    let elapsed = start.elapsed();
    Ok(LoadReport {
        events: total.events,
        duplicates: total.duplicates,
        spooled: total.spooled,
        requests: total.requests,
        bytes: total.bytes,
        elapsed,
        latencies: Latencies::from_micros(total.latencies),
    })
}

async fn client(
    mut connection: Connection,
    mut stream: super::clinic::EventStream,
    mode: Mode,
    deadline: Instant,
    acks: Option<Arc<Acks>>,
) -> Result<ClientTally> {
    let mut tally = ClientTally::default();
    let (path, per_request) = match mode {
        Mode::Single => ("/v1/events", 1),
        Mode::Batch { size } => ("/v1/events/batch", size),
    };
    let mut body = Vec::with_capacity(per_request * 700 + 2);
    while Instant::now() < deadline {
        body.clear();
        match mode {
            Mode::Single => stream.write_event(&mut body),
            Mode::Batch { size } => stream.write_batch(size, &mut body),
        }
        let payload = Bytes::copy_from_slice(&body);
        tally.bytes += payload.len() as u64;
        let sent = Instant::now();
        let (status, answer) = connection
            .send(hyper::Method::POST, path, Some("application/json"), payload)
            .await?;
        let answered = Instant::now();
        tally.requests += 1;
        tally
            .latencies
            .push(u32::try_from((answered - sent).as_micros()).unwrap_or(u32::MAX));
        match mode {
            Mode::Single => match status.as_u16() {
                201 => tally.events += 1,
                200 => {
                    tally.events += 1;
                    tally.duplicates += 1;
                }
                202 => {
                    tally.events += 1;
                    tally.spooled += 1;
                }
                _ => bail!("POST {path} answered {status}: {}", excerpt(&answer)),
            },
            Mode::Batch { .. } => {
                if status != StatusCode::OK {
                    bail!("POST {path} answered {status}: {}", excerpt(&answer));
                }
                let results: Vec<BatchResult> =
                    serde_json::from_slice(&answer).with_context(|| {
                        format!(
                            "POST {path}: the answer is not the per-event results: {}",
                            excerpt(&answer)
                        )
                    })?;
                if results.len() != per_request {
                    bail!(
                        "POST {path}: {} results for a batch of {per_request}",
                        results.len()
                    );
                }
                let mut newest = None;
                for (index, result) in results.iter().enumerate() {
                    match result.status {
                        201 => {}
                        200 => tally.duplicates += 1,
                        202 => tally.spooled += 1,
                        _ => bail!(
                            "POST {path}: event {index} of the batch was refused: {}",
                            element_excerpt(&answer, index)
                        ),
                    }
                    newest = newest.max(result.seq);
                }
                tally.events += results.len() as u64;
                if let (Some(acks), Some(seq)) = (&acks, newest) {
                    acks.record(seq, answered);
                }
            }
        }
    }
    debug_assert_eq!(
        tally.events,
        tally.requests * mode.events_per_request() as u64
    );
    Ok(tally)
}

/// The start of an answer, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut cut: String = text.chars().take(400).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    cut
}

/// What the server said about element `index` of a batch.
fn element_excerpt(body: &[u8], index: usize) -> String {
    let parsed: Result<Vec<serde_json::Value>, _> = serde_json::from_slice(body);
    match parsed
        .ok()
        .and_then(|mut v| (index < v.len()).then(|| v.swap_remove(index)))
    {
        Some(element) => element.to_string(),
        None => excerpt(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let latencies = Latencies::from_micros((1..=100).rev().map(|ms| ms * 1000).collect());
        assert_eq!(latencies.quantile_ms(0.5), Some(50.0));
        assert_eq!(latencies.quantile_ms(0.99), Some(99.0));
        assert_eq!(latencies.quantile_ms(1.0), Some(100.0));
        assert_eq!(latencies.quantile_ms(0.0), Some(1.0));
        assert_eq!(latencies.max_ms(), Some(100.0));
        assert_eq!(Latencies::default().quantile_ms(0.5), None);
    }

    #[test]
    fn acks_keep_the_highest_seq() {
        let acks = Acks::default();
        assert!(acks.latest().is_none());
        let t = Instant::now();
        acks.record(10, t);
        acks.record(5, t + Duration::from_secs(1));
        assert_eq!(acks.latest(), Some((10, t)));
        acks.record(11, t + Duration::from_secs(2));
        assert_eq!(acks.latest().map(|(seq, _)| seq), Some(11));
    }
}
