//! The floor: what the work every event really needs costs on this machine, step by step and
//! alone, and so the highest rate each workload could reach here.
//!
//! Each step is the code sealtrail runs for it, on the same deterministic clinic events the
//! ingest workloads send, timed on one thread over every event several times (the median
//! round counts):
//!
//! - **parse and validate**: reading a valid event straight into `Event` with every rule of
//!   the schema checked, as ingest does (`Event::parse_valid`);
//! - **canonicalise**: the entry's RFC 8785 form with the server's fields;
//! - **leaf hash**: SHA-256 of the entry with its 0x00 prefix;
//! - **Merkle node hashes**: one interior node per event (a tree of n leaves has n − 1);
//! - **sequential write**: appending the entries' bytes to a file (the page-cache copy);
//! - **fsync**: one per group commit, timed apart because it waits on the disk, not the CPU;
//! - **HTTP framing**: a server in this process that answers each request as sealtrail does
//!   (the receipts it writes included) but does nothing else, driven by the bench's own load
//!   driver with the workload's clients: the CPU of both ends and of the driver generating
//!   the events, per event. That is the share of the machine a load driver on the same
//!   machine takes, which the brief's targets assume.
//!
//! The limit of an ingest workload is the smaller of two bounds: the machine's two cores over
//! the sum of the CPU steps, and the disk: a group of events per write and fsync, one group
//! at a time. Verification's limit is per CPU-second: reading the entries back, the leaf
//! hash and the node hash.
//!
//! These are floors for sealtrail's design, not for any design: an event must be parsed,
//! canonicalised, hashed into the tree, written and fsync'd, and its request framed; nothing
//! here indexes, keeps idempotency keys or follows the log. What sealtrail does beyond them is
//! what [`Limit`] lets a figure be compared against.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use serde::Serialize;

use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::event::Event;
use sealtrail_core::hash::{Hash, leaf_hash, node_hash};
use sealtrail_core::timestamp::Timestamp;

use super::clinic::Clinic;
use super::load::{self, LoadConfig, Mode};
use super::server::{ScratchDir, cpu_seconds};
use super::{Plan, Workload};

/// The stream of clinic events the limit is measured on: one no other workload uses.
const LIMIT_STREAM: u64 = 900_000;
/// The cores the brief's targets assume, server and load driver together.
pub const CORES: f64 = 2.0;

/// One step's cost.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    /// CPU microseconds per event.
    pub micros_per_event: f64,
}

/// A workload's limit: its CPU per event, the two bounds and the smaller one.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadLimit {
    pub workload: Workload,
    /// Sum of the CPU steps this workload needs, µs per event.
    pub cpu_micros_per_event: f64,
    /// [`CORES`] over that sum (verification: one core over it, per CPU-second).
    pub cpu_bound: f64,
    /// Events per group commit over the time of its write and fsync; `None` for
    /// verification, which writes nothing.
    pub disk_bound: Option<f64>,
    /// Events per group commit assumed for the disk bound.
    pub group: Option<usize>,
    /// The smaller bound, events/s (verification: events per CPU-second).
    pub limit: f64,
}

/// The measured floor of this machine.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub events: usize,
    pub mean_event_bytes: f64,
    pub mean_entry_bytes: f64,
    pub steps: Vec<Step>,
    /// Median wall time of a group's write and fsync, in milliseconds: (group, ms).
    pub fsync_ms: Vec<(usize, f64)>,
    pub workloads: Vec<WorkloadLimit>,
}

impl Limit {
    /// The limit of `workload`, if it has one.
    pub fn of(&self, workload: Workload) -> Option<&WorkloadLimit> {
        self.workloads.iter().find(|w| w.workload == workload)
    }

    fn step(&self, name: &str) -> f64 {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .map_or(0.0, |s| s.micros_per_event)
    }
}

/// Step names, as printed.
pub const PARSE: &str = "parse and validate";
pub const CANONICALISE: &str = "canonicalise (RFC 8785)";
pub const LEAF: &str = "leaf hash (SHA-256)";
pub const NODES: &str = "Merkle node hashes";
pub const WRITE: &str = "sequential write";
pub const READ: &str = "sequential read (verification)";
pub const HTTP_BATCH: &str = "HTTP framing, batched (both ends + driver)";
pub const HTTP_SINGLE: &str = "HTTP framing, single (both ends + driver)";

/// Whether a plan measures the limit: when it measures a workload the limit is for.
pub fn wanted(plan: &Plan) -> bool {
    plan.workloads
        .iter()
        .any(|w| matches!(w, Workload::Batch | Workload::Single | Workload::Verify))
}

/// Measures every step and works out each workload's limit.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    clinic: &Arc<Clinic>,
) -> Result<Limit> {
    let count = if plan.quick { 2_000 } else { 20_000 };
    let rounds = if plan.quick { 2 } else { 5 };
    let mut stream = clinic.stream(LIMIT_STREAM);
    let raw: Vec<Vec<u8>> = (0..count).map(|_| stream.event()).collect();
    let mean_event_bytes = raw.iter().map(Vec::len).sum::<usize>() as f64 / count as f64;

    let mut steps = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let parse = per_event(rounds, count, || {
        events = raw
            .iter()
            // As ingest reads an event: straight into `Event` when it is valid, else the
            // ordinary parse that says what is wrong.
            .map(|bytes| Event::parse_valid(bytes).map_or_else(|| Event::parse(bytes), Ok))
            .collect::<Result<_, _>>()
            .expect("the clinic's events are valid");
    });
    steps.push(Step {
        name: PARSE,
        micros_per_event: parse,
    });

    let received_at = Timestamp::from_unix_micros(1_796_000_000_000_000).expect("in range");
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let canonicalise = per_event(rounds, count, || {
        entries = events
            .iter()
            .enumerate()
            .map(|(seq, event)| {
                let server = ServerFields {
                    id: uuid::Uuid::from_u128(seq as u128 + 1),
                    seq: seq as u64,
                    received_at,
                    prev_hash: Hash([7; 32]),
                };
                canonical_entry(event, &server)
            })
            .collect::<Result<_, _>>()
            .expect("the clinic's events canonicalise");
    });
    steps.push(Step {
        name: CANONICALISE,
        micros_per_event: canonicalise,
    });
    let mean_entry_bytes = entries.iter().map(Vec::len).sum::<usize>() as f64 / count as f64;

    let mut leaves: Vec<Hash> = Vec::new();
    let leaf = per_event(rounds, count, || {
        leaves = entries.iter().map(|e| leaf_hash(e)).collect();
    });
    steps.push(Step {
        name: LEAF,
        micros_per_event: leaf,
    });

    let mut root = Hash([0; 32]);
    let nodes = per_event(rounds, count, || {
        for pair in leaves.windows(2) {
            root = node_hash(&pair[0], &pair[1]);
        }
        root = node_hash(&root, &leaves[0]);
    });
    std::hint::black_box(root);
    steps.push(Step {
        name: NODES,
        micros_per_event: nodes,
    });

    // Writing and fsync, into a scratch directory beside the servers' data directories.
    let scratch = ScratchDir::new("limit")?;
    let path = scratch.path().join("entries");
    let batch_group = plan.batch_size;
    let single_group = plan.single_clients;
    let (write, batch_fsync) = write_groups(&path, &entries, batch_group, rounds)?;
    let (_, single_fsync) = write_groups(&path, &entries, single_group, rounds)?;
    steps.push(Step {
        name: WRITE,
        micros_per_event: write,
    });
    let read = read_back(&path, &entries, rounds)?;
    steps.push(Step {
        name: READ,
        micros_per_event: read,
    });

    // HTTP framing only for the ingest workloads selected: each takes seconds.
    let selected = |w: Workload| plan.workloads.contains(&w);
    let http_seconds = if plan.quick {
        1.0
    } else {
        plan.seconds.min(5.0)
    };
    let http_batch = if selected(Workload::Batch) {
        let micros = http_framing(
            runtime,
            clinic,
            Mode::Batch {
                size: plan.batch_size,
            },
            plan.batch_clients,
            http_seconds,
        )?;
        steps.push(Step {
            name: HTTP_BATCH,
            micros_per_event: micros,
        });
        Some(micros)
    } else {
        None
    };
    let http_single = if selected(Workload::Single) {
        let micros = http_framing(
            runtime,
            clinic,
            Mode::Single,
            plan.single_clients,
            http_seconds,
        )?;
        steps.push(Step {
            name: HTTP_SINGLE,
            micros_per_event: micros,
        });
        Some(micros)
    } else {
        None
    };

    let mut limit = Limit {
        events: count,
        mean_event_bytes,
        mean_entry_bytes,
        steps,
        fsync_ms: vec![(batch_group, batch_fsync), (single_group, single_fsync)],
        workloads: Vec::new(),
    };
    let common = [PARSE, CANONICALISE, LEAF, NODES, WRITE]
        .iter()
        .map(|name| limit.step(name))
        .sum::<f64>();
    let ingest = |workload, http: f64, group: usize, fsync_ms: f64| {
        let cpu = common + http;
        let cpu_bound = CORES * 1e6 / cpu;
        let disk_bound = group as f64 / (fsync_ms / 1e3);
        WorkloadLimit {
            workload,
            cpu_micros_per_event: cpu,
            cpu_bound,
            disk_bound: Some(disk_bound),
            group: Some(group),
            limit: cpu_bound.min(disk_bound),
        }
    };
    if let Some(http) = http_batch {
        let batch = ingest(Workload::Batch, http, batch_group, batch_fsync);
        limit.workloads.push(batch);
    }
    if let Some(http) = http_single {
        let single = ingest(Workload::Single, http, single_group, single_fsync);
        limit.workloads.push(single);
    }
    if selected(Workload::Verify) {
        let verify_cpu = limit.step(READ) + limit.step(LEAF) + limit.step(NODES);
        limit.workloads.push(WorkloadLimit {
            workload: Workload::Verify,
            cpu_micros_per_event: verify_cpu,
            cpu_bound: 1e6 / verify_cpu,
            disk_bound: None,
            group: None,
            limit: 1e6 / verify_cpu,
        });
    }
    Ok(limit)
}

/// Runs `work` (which handles `count` events) `rounds` times; the median round's µs per event.
fn per_event(rounds: usize, count: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64() * 1e6 / count as f64
        })
        .collect();
    median(&mut times)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Appends `entries` to a fresh file at `path` in groups of `group`, each written with one
/// `write` and made durable with one fsync, as a group commit does. Returns the median
/// round's µs per event of the writes alone, and the median group's write + fsync in ms.
fn write_groups(
    path: &std::path::Path,
    entries: &[Vec<u8>],
    group: usize,
    rounds: usize,
) -> Result<(f64, f64)> {
    let mut write_times = Vec::new();
    let mut group_times = Vec::new();
    let mut buffer = Vec::with_capacity(group * 700);
    for _ in 0..rounds {
        let mut file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        file.sync_all()?;
        let mut writing = Duration::ZERO;
        for chunk in entries.chunks(group) {
            buffer.clear();
            for entry in chunk {
                buffer.extend_from_slice(entry);
            }
            let start = Instant::now();
            file.write_all(&buffer)?;
            let written = start.elapsed();
            file.sync_all()?;
            group_times.push(start.elapsed().as_secs_f64() * 1e3);
            writing += written;
        }
        write_times.push(writing.as_secs_f64() * 1e6 / entries.len() as f64);
    }
    Ok((median(&mut write_times), median(&mut group_times)))
}

/// Reads the file `write_groups` wrote back in 1 MiB chunks (from the page cache, as
/// verification of a log just written does): the median round's µs per event.
fn read_back(path: &std::path::Path, entries: &[Vec<u8>], rounds: usize) -> Result<f64> {
    let mut buffer = vec![0u8; 1 << 20];
    let expected: usize = entries.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let mut file = File::open(path)?;
        let mut total = 0;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        times.push(start.elapsed().as_secs_f64() * 1e6 / entries.len() as f64);
        anyhow::ensure!(total == expected, "read back {total} bytes of {expected}");
    }
    Ok(median(&mut times))
}

/// CPU per event of HTTP alone: a server in this process that answers as sealtrail does and
/// does nothing else, under the bench's load driver.
fn http_framing(
    runtime: &tokio::runtime::Runtime,
    clinic: &Arc<Clinic>,
    mode: Mode,
    clients: usize,
    seconds: f64,
) -> Result<f64> {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seq = Arc::new(AtomicU64::new(0));
        let app = framing_app(mode, seq);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let config = LoadConfig {
            addr,
            token: "framing".to_string(),
            clients,
            duration: Duration::from_secs_f64(seconds),
            mode,
            clinic: clinic.clone(),
            stream_base: LIMIT_STREAM + 1,
        };
        let before = cpu_seconds(None);
        let report = load::run(&config, None).await;
        let after = cpu_seconds(None);
        server.abort();
        let report = report?;
        let cpu = after.zip(before).map(|(a, b)| a - b).context(
            "the CPU time of this process is not readable (/proc/self/stat), so HTTP framing cannot be measured",
        )?;
        Ok(cpu * 1e6 / report.events as f64)
    })
}

/// The framing server: `POST /v1/events` answers 201 with a receipt and
/// `POST /v1/events/batch` 200 with one element per event, as sealtrail's are shaped.
fn framing_app(mode: Mode, seq: Arc<AtomicU64>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let receipt = |seq: u64, out: &mut String, status: Option<u16>| {
        use std::fmt::Write as _;
        out.push('{');
        if let Some(status) = status {
            let _ = write!(out, "\"status\":{status},");
        }
        let _ = write!(
            out,
            "\"id\":\"{}\",\"seq\":{seq},\"event_hash\":\"{}\",\"received_at\":\"2026-12-04T15:00:00.000000Z\"}}",
            uuid::Uuid::from_u128(u128::from(seq) + 1),
            Hash([(seq % 251) as u8; 32]).to_hex()
        );
    };
    let per_request = match mode {
        Mode::Single => 1,
        Mode::Batch { size } => size,
    };
    let handler = move |body: Bytes| {
        let seq = seq.clone();
        async move {
            std::hint::black_box(&body);
            let first = seq.fetch_add(per_request as u64, Ordering::Relaxed);
            let mut out = String::with_capacity(per_request * 180 + 2);
            if per_request == 1 && matches!(mode, Mode::Single) {
                receipt(first, &mut out, None);
                (
                    StatusCode::CREATED,
                    [(header::CONTENT_TYPE, "application/json")],
                    out,
                )
                    .into_response()
            } else {
                out.push('[');
                for i in 0..per_request as u64 {
                    if i > 0 {
                        out.push(',');
                    }
                    receipt(first + i, &mut out, Some(201));
                }
                out.push(']');
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    out,
                )
                    .into_response()
            }
        }
    };
    axum::Router::new()
        .route("/v1/events", axum::routing::post(handler.clone()))
        .route("/v1/events/batch", axum::routing::post(handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn groups_are_written_whole_and_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entries");
        let entries: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let (write, fsync) = write_groups(&path, &entries, 3, 1).unwrap();
        assert!(write > 0.0 && fsync > 0.0);
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written, entries.concat());
        assert!(read_back(&path, &entries, 1).unwrap() > 0.0);
    }
}
