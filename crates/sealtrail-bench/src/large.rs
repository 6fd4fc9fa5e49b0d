//! The brief's workloads "at 10 M events", and the log they run on. Embedded store only.
//!
//! 1. **Build** ([`Workload::LargeBuild`]): `--large-events` clinic events (10,000,000; 20,000
//!    with `--quick`) go into a fresh data directory through sealtrail's own write path,
//!    [`Ledger::append`] — the writer thread that `POST /v1/events/batch` hands its events to —
//!    in groups of [`MAX_GROUP_EVENTS`], the most the writer commits in one transaction.
//!    Generator threads write and parse ([`Event::parse`]) the events of [`BUILD_STREAMS`]
//!    clinic streams while the writer commits; every group takes the same number of events
//!    from each stream in a fixed order, so the log's content and order are a function of the
//!    seed. Entries, stored hashes, idempotency keys and signed checkpoints (one a second
//!    while the log grows, and a final one at its full size) are what the server writes; only
//!    the server's HTTP and JSON parsing are left out. With `--large-cache` the built
//!    directory is kept (by default under `target/bench-cache/<seed>-<events>/`) and reused
//!    by later runs of the same build of sealtrail.
//! 2. **Index catch-up** ([`Workload::IndexCatchUp`]): `sealtrail serve` starts on that
//!    directory without a query index, as after a restore or a lost index file, and the time
//!    from starting it to search covering the whole log (`GET /v1/events?wait_for_seq=N-1`)
//!    is measured. Serve verifies the whole log once at start, as it always does; that runs
//!    meanwhile, and `GET /health` tells when it is done.
//! 3. **Proofs** ([`Workload::ProofInclusion`], [`Workload::ProofConsistency`]): several
//!    concurrent clients with a `log:read` token ask for inclusion proofs of random seqs and
//!    consistency proofs from random sizes, both to the size of the latest signed checkpoint.
//!    A sample of the answers is verified with [`sealtrail_core::merkle`] against that
//!    checkpoint's root, opened with the log's key: leaves are hashed from the stored entries,
//!    and the old roots of consistency proofs are computed from the stored hashes, which are
//!    first checked against the signed roots of the latest and of earlier checkpoints.
//! 4. **Search** ([`Workload::SearchFirstPage`]): several concurrent clients with an
//!    `events:read` token ask for first pages of 100 with a mix of filters — actor, action,
//!    patient target, failed logins, ip, text, time windows — whose values are drawn from the
//!    clinic generator's own events, half weighted by how often they occur (popular) and half
//!    uniformly from the distinct values (mostly rare). Every page is checked: at most 100
//!    events, in seq order (newest first for half of them), each matching its filter.
//!
//! Latencies are per request, from sending it to reading the whole answer, on keep-alive
//! connections ([`Connection`]); a refused request, a wrong proof or a wrong page fails the
//! run. Figures are what this machine did on this run; nothing asserts a timing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::Event;
use sealtrail_core::merkle;
use sealtrail_core::note::VerifierKey;
use sealtrail_core::{Hash, Timestamp, leaf_hash};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::clinic::{Clinic, Rng};
use super::load::{Connection, Latencies};
use super::server::{ScratchDir, TENANT};
use super::workloads::thousands;
use super::{Figure, Plan, StoreKind, Unit, Workload};
use sealtrail_server::ledger::{Ledger, LedgerConfig, MAX_GROUP_EVENTS, Outcome, Submission};
use sealtrail_store::{Location, Store, StoreHashes};

/// Events in the log the large workloads build: the brief's 10 M, and `--quick`'s.
pub const DEFAULT_EVENTS: u64 = 10_000_000;
pub const QUICK_EVENTS: u64 = 20_000;
/// The fewest events `--large-events` accepts: enough for every filter to find something.
pub const MIN_EVENTS: u64 = 1_000;

/// Clinic streams the log is built from, and the first of them (far from the streams of the
/// other workloads, which write to other logs anyway).
pub const BUILD_STREAMS: u64 = 8;
const BUILD_STREAM_BASE: u64 = 1_000_000;
/// Events of one stream in each group: a group is one batch from every stream, in order.
const STREAM_BATCH: usize = MAX_GROUP_EVENTS / BUILD_STREAMS as usize;

/// Concurrent clients of the proof and search workloads.
const PROOF_CLIENTS: usize = 4;
const SEARCH_CLIENTS: usize = 4;
/// Requests per proof kind, and first pages, in the full and the `--quick` configuration.
const PROOF_REQUESTS: (usize, usize) = (5_000, 500);
const SEARCH_REQUESTS: (usize, usize) = (2_800, 280);
/// Proof answers verified per kind, at most (spread evenly over the requests).
const VERIFIED_PROOFS: usize = 1_000;
/// The page size asked for.
pub const PAGE_LIMIT: usize = 100;
/// Generated events per build stream that filter values are drawn from.
const SAMPLE_PER_STREAM: usize = 2_000;
/// Events of the log whose times center the time windows.
const TIME_POINTS: usize = 64;
/// Width of the time windows searched.
const TIME_WINDOWS_SECONDS: [i64; 3] = [1, 60, 3_600];
/// Earlier signed checkpoints whose roots the stored hashes are checked against.
const EARLIER_CHECKPOINTS: usize = 16;
/// How long `sealtrail serve` may take to print its address, and to stop.
const SERVE_START_TIMEOUT: Duration = Duration::from_secs(120);
const SERVE_STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long serve's start-up verification of the whole log may take (10 M events: about 20 s).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(600);
/// How often build progress is printed, and `GET /health` sampled during catch-up.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Whether a workload runs on the large log (rather than on the ingest workloads' server).
pub fn is_large(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::LargeBuild
            | Workload::IndexCatchUp
            | Workload::ProofInclusion
            | Workload::ProofConsistency
            | Workload::SearchFirstPage
    )
}

/// Where `--large-cache` keeps built logs by default: `bench-cache` in the cargo target
/// directory this binary was built in (`target/<profile>/sealtrail`), else `target/bench-cache`
/// under the working directory.
pub fn default_cache_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let profile_dir = exe.parent()?;
            let name = profile_dir.file_name()?.to_str()?;
            matches!(name, "release" | "debug")
                .then(|| profile_dir.parent().map(Path::to_path_buf))?
        })
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench-cache")
}

/// The large log of a `sealtrail bench` run, built (or found in the cache) by the first round
/// that needs it and used by every round.
#[derive(Default)]
pub struct Session {
    prepared: Option<Prepared>,
}

struct Prepared {
    data_dir: PathBuf,
    events: u64,
    build: BuildReport,
    /// When the log came from the cache: where, and when it was built.
    cached: Option<(PathBuf, String)>,
    /// The directory of an uncached log, removed when the run ends.
    _scratch: Option<ScratchDir>,
}

/// Runs the selected large workloads (see the module documentation) on the embedded store;
/// `report` is told each figure as soon as it is measured.
/// The log size the brief's proof and search targets are stated for.
pub const TARGET_EVENTS: u64 = 10_000_000;

pub fn run(
    session: &mut Session,
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    clinic: &Arc<Clinic>,
    report: &mut dyn FnMut(&Figure),
) -> Result<Vec<Figure>> {
    let selected = |w: Workload| plan.workloads.contains(&w);
    let mut figures = Vec::new();
    let full_size = plan.large_events >= TARGET_EVENTS;
    let mut emit = |mut figure: Figure| {
        // The targets are for 10 M events: a smaller log (--quick, --large-events) is timed
        // but not held against them.
        if !full_size && figure.target.take().is_some() {
            figure.note = format!(
                "at {} events, not 10 M: no target applies; {}",
                thousands(plan.large_events as f64),
                figure.note
            );
        }
        report(&figure);
        figures.push(figure);
    };
    if session.prepared.is_none() {
        let prepared = prepare(plan, clinic)?;
        if selected(Workload::LargeBuild) {
            emit(build_figure(&prepared));
        }
        session.prepared = Some(prepared);
    }
    let prepared = session.prepared.as_ref().expect("prepared above");
    let serving = [
        Workload::IndexCatchUp,
        Workload::ProofInclusion,
        Workload::ProofConsistency,
        Workload::SearchFirstPage,
    ];
    if !serving.into_iter().any(selected) {
        return Ok(figures);
    }
    let data_dir = &prepared.data_dir;
    let size = prepared.events;

    let log_token = create_token(data_dir, "log:read")?;
    let events_token = create_token(data_dir, "events:read")?;
    let had_index = sealtrail_store::DataDir::new(data_dir).index().exists();
    if selected(Workload::IndexCatchUp) {
        remove_index(data_dir)?;
    }
    let scratch = ScratchDir::new("large-serve")?;
    let mut serve = Serve::start(runtime, data_dir, &scratch.path().join("serve.log"))?;
    let endpoint = Endpoint {
        addr: serve.addr,
        log_token,
        events_token,
    };
    eprintln!(
        "bench: sealtrail serve listening on the {}-event log after {:.2} s; waiting for its index to cover it",
        thousands(size as f64),
        serve.listening.as_secs_f64()
    );
    let logs = Location::new(data_dir, None)
        .open_reader()?
        .tenants()?
        .len();
    let catch_up = runtime.block_on(wait_for_index(&endpoint, size, logs, serve.spawned))?;
    serve.check_alive()?;
    if selected(Workload::IndexCatchUp) {
        let mut figure = Figure::new(
            Workload::IndexCatchUp,
            StoreKind::Embedded,
            catch_up.elapsed.as_secs_f64(),
            Unit::Seconds,
        );
        figure.note = format!(
            "sealtrail serve started on the {}-event log with no index file: listening after {:.2} s, the whole log searchable after {:.1} s ({} events/s); {}; /health index_lag_seconds peaked at {}; data directory {} (index {}); serve peak RSS {}; {}",
            thousands(size as f64),
            serve.listening.as_secs_f64(),
            catch_up.elapsed.as_secs_f64(),
            thousands(size as f64 / catch_up.elapsed.as_secs_f64()),
            match catch_up.verified_after {
                Some(after) => format!(
                    "serve's start-up verification of the whole log ran meanwhile and found it valid after {:.1} s",
                    after.as_secs_f64()
                ),
                None =>
                    "serve's start-up verification of the whole log ran meanwhile, not done yet"
                        .into(),
            },
            catch_up
                .health_lag_max
                .map_or("(not reported)".to_string(), |s| format!("{s:.1} s")),
            bytes_text(dir_bytes(data_dir)),
            bytes_text(index_bytes(data_dir)),
            serve
                .peak_rss_bytes()
                .map_or("unknown".to_string(), bytes_text),
            EMBEDDED_ONLY,
        );
        emit(figure);
    } else if had_index {
        eprintln!(
            "bench: the cached log's index was kept (index-catch-up not selected); it covered the log after {:.1} s",
            catch_up.elapsed.as_secs_f64()
        );
    }

    // With a kept index the log is searchable at once, while serve still verifies the whole
    // log (as it does on every start): let that finish, so that it does not run beside the
    // requests measured.
    if catch_up.verified_after.is_none()
        && [
            Workload::ProofInclusion,
            Workload::ProofConsistency,
            Workload::SearchFirstPage,
        ]
        .into_iter()
        .any(selected)
    {
        let started = Instant::now();
        runtime.block_on(wait_for_verification(&endpoint, logs))?;
        serve.check_alive()?;
        eprintln!(
            "bench: waited {:.1} s for serve's start-up verification of the whole log before measuring",
            started.elapsed().as_secs_f64()
        );
    }

    let reader = Location::new(data_dir, None)
        .open_reader()
        .with_context(|| format!("cannot read the store in {}", data_dir.display()))?;
    let requests = |(full, quick): (usize, usize)| if plan.quick { quick } else { full };
    if selected(Workload::ProofInclusion) || selected(Workload::ProofConsistency) {
        let (note, key) = runtime.block_on(fetch_signed_tree(&endpoint))?;
        let tree = check_signed_tree(reader.as_ref(), data_dir, &note, &key)?;
        ensure!(
            tree.size == size,
            "the latest checkpoint is of size {}, not of the whole log ({size})",
            tree.size
        );
        for (kind, workload) in [
            (ProofKind::Inclusion, Workload::ProofInclusion),
            (ProofKind::Consistency, Workload::ProofConsistency),
        ] {
            if !selected(workload) {
                continue;
            }
            let count = requests(PROOF_REQUESTS);
            let proofs = runtime.block_on(request_proofs(
                &endpoint,
                kind,
                tree.size,
                count,
                PROOF_CLIENTS,
                VERIFIED_PROOFS,
                plan.seed,
            ))?;
            serve.check_alive()?;
            let verified = verify_proofs(reader.as_ref(), &tree, kind, &proofs.samples)?;
            emit(proof_figure(workload, kind, &tree, &proofs, &verified));
        }
    }
    if selected(Workload::SearchFirstPage) {
        let pools = QueryPools::new(clinic, size, reader.as_ref(), plan.seed)?;
        let queries = Arc::new(plan_queries(&pools, requests(SEARCH_REQUESTS), plan.seed));
        let pages = runtime.block_on(request_pages(&endpoint, &queries, SEARCH_CLIENTS))?;
        serve.check_alive()?;
        let checked = check_pages(&queries, &pages.bodies, size)?;
        emit(search_figure(&queries, &pages, &checked));
    }
    let peak = serve.peak_rss_bytes();
    serve.stop()?;
    eprintln!(
        "bench: sealtrail serve on the {}-event log stopped; its peak RSS (VmHWM) was {}; data directory {}",
        thousands(size as f64),
        peak.map_or("unknown".to_string(), bytes_text),
        bytes_text(dir_bytes(data_dir)),
    );
    Ok(figures)
}

const EMBEDDED_ONLY: &str =
    "embedded store only (the 10 M-event workloads are not run on PostgreSQL)";

fn build_figure(prepared: &Prepared) -> Figure {
    let build = &prepared.build;
    let mut figure = Figure::new(
        Workload::LargeBuild,
        StoreKind::Embedded,
        build.events as f64 / build.seconds,
        Unit::EventsPerSecond,
    );
    let cached = match &prepared.cached {
        Some((dir, built_at)) => format!(
            "; CACHED: this log was built at {built_at} by an earlier run of this build of sealtrail and reused from {} (--large-cache), so this figure is that run's",
            dir.display()
        ),
        None => String::new(),
    };
    figure.note = format!(
        "{} events of {} clinic streams through Ledger::append in groups of {}, generated and parsed by {} thread{} beside the writer, in {:.1} s; {} signed checkpoint{}; log {}{}; {}",
        thousands(build.events as f64),
        build.streams,
        thousands(MAX_GROUP_EVENTS as f64),
        build.workers,
        if build.workers == 1 { "" } else { "s" },
        build.seconds,
        thousands(build.checkpoints as f64),
        if build.checkpoints == 1 { "" } else { "s" },
        bytes_text(build.log_bytes),
        cached,
        EMBEDDED_ONLY,
    );
    figure
}

// --- building the log --------------------------------------------------------------------

/// What building the log took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub events: u64,
    /// From starting the writer to its final checkpoint.
    pub seconds: f64,
    pub streams: u64,
    /// Generator threads.
    pub workers: usize,
    /// Signed checkpoints of the log when done.
    pub checkpoints: usize,
    /// The data directory's size when done.
    pub log_bytes: u64,
}

/// Builds the log of `events` clinic events in the (new) data directory `data_dir`, tenant
/// [`TENANT`]; see the module documentation. Progress goes to stderr when `progress`.
pub fn build(
    data_dir: &Path,
    clinic: &Arc<Clinic>,
    events: u64,
    progress: bool,
) -> Result<BuildReport> {
    ensure!(events > 0, "nothing to build");
    let started = Instant::now();
    let ledger = Ledger::start(LedgerConfig {
        data_dir: data_dir.to_path_buf(),
        store: Location::new(data_dir, None),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(1),
        origin_prefix: "sealtrail.local".to_string(),
        audit_stdout: false,
    })
    .with_context(|| format!("cannot start the writer on {}", data_dir.display()))?;
    ledger.ensure_tenant_blocking(TENANT, "sealtrail-bench")?;
    let existing = ledger.head(TENANT).map_or(0, |head| head.size);
    ensure!(
        existing == 0,
        "{} already holds a log of {existing} entries",
        data_dir.display()
    );

    let per_stream: Vec<u64> = (0..BUILD_STREAMS)
        .map(|s| events / BUILD_STREAMS + u64::from(s < events % BUILD_STREAMS))
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, BUILD_STREAMS as usize);
    let mut senders: Vec<Vec<(usize, SyncSender<Batch>)>> = vec![Vec::new(); workers];
    let mut receivers: Vec<Receiver<Batch>> = Vec::new();
    for stream in 0..BUILD_STREAMS as usize {
        let (tx, rx) = mpsc::sync_channel(2);
        senders[stream % workers].push((stream, tx));
        receivers.push(rx);
    }
    let mut threads = Vec::new();
    for streams in senders {
        let clinic = Arc::clone(clinic);
        let counts = per_stream.clone();
        threads.push(
            std::thread::Builder::new()
                .name("bench-generator".into())
                .spawn(move || generate(&clinic, streams, &counts))
                .context("cannot start a generator thread")?,
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the runtime of the build")?;
    let mut appended = 0u64;
    let mut group: Vec<Submission> = Vec::with_capacity(MAX_GROUP_EVENTS);
    let mut last_progress = Instant::now();
    let rounds = per_stream
        .iter()
        .map(|&n| n.div_ceil(STREAM_BATCH as u64))
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        for (stream, receiver) in receivers.iter().enumerate() {
            if round >= per_stream[stream].div_ceil(STREAM_BATCH as u64) {
                continue;
            }
            let batch = receiver
                .recv()
                .map_err(|_| anyhow!("a generator thread stopped early"))?
                .map_err(|e| anyhow!("a generated event is invalid: {e}"))?;
            group.extend(batch);
            if group.len() >= MAX_GROUP_EVENTS {
                appended += append(&runtime, &ledger, &mut group, appended)?;
            }
        }
        if progress && last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            eprintln!(
                "bench: building the large log: {} of {} events, {} events/s",
                thousands(appended as f64),
                thousands(events as f64),
                thousands(appended as f64 / started.elapsed().as_secs_f64())
            );
        }
    }
    if !group.is_empty() {
        appended += append(&runtime, &ledger, &mut group, appended)?;
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow!("a generator thread panicked"))?;
    }
    // Signs the final checkpoint, at the full size.
    ledger.shutdown();
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        appended == events,
        "built {appended} events instead of {events}"
    );

    let reader = Location::new(data_dir, None).open_reader()?;
    let size = reader.size(TENANT)?;
    ensure!(size == events, "the log holds {size} entries, not {events}");
    let latest = reader
        .latest_checkpoint(TENANT)?
        .context("the built log has no checkpoint")?;
    ensure!(
        latest.size == events,
        "the final checkpoint is of size {}, not {events}",
        latest.size
    );
    let checkpoints = reader.checkpoints(TENANT)?.len();
    Ok(BuildReport {
        events,
        seconds,
        streams: BUILD_STREAMS,
        workers,
        checkpoints,
        log_bytes: dir_bytes(data_dir),
    })
}

/// A stream's next batch of parsed events, or why one could not be parsed.
type Batch = Result<Vec<Submission>, String>;

/// Writes and parses the events of `streams` (each with its channel) in batches, one batch
/// per stream in turn, as the appender takes them.
fn generate(clinic: &Arc<Clinic>, streams: Vec<(usize, SyncSender<Batch>)>, counts: &[u64]) {
    let mut generators: Vec<_> = streams
        .into_iter()
        .map(|(stream, tx)| {
            (
                clinic.stream(BUILD_STREAM_BASE + stream as u64),
                counts[stream],
                tx,
            )
        })
        .collect();
    let mut bytes = Vec::with_capacity(1024);
    loop {
        let mut any = false;
        for (stream, left, tx) in &mut generators {
            if *left == 0 {
                continue;
            }
            any = true;
            let n = (*left).min(STREAM_BATCH as u64);
            *left -= n;
            let mut batch = Vec::with_capacity(n as usize);
            let mut failure = None;
            for _ in 0..n {
                bytes.clear();
                stream.write_event(&mut bytes);
                match Event::parse(&bytes) {
                    Ok(event) => {
                        let idempotency_key = event.idempotency_key().map(str::to_string);
                        batch.push(Submission {
                            event,
                            idempotency_key,
                        });
                    }
                    Err(error) => {
                        failure = Some(format!("{error}: {}", String::from_utf8_lossy(&bytes)));
                        break;
                    }
                }
            }
            let failed = failure.is_some();
            let sent = tx.send(match failure {
                Some(error) => Err(error),
                None => Ok(batch),
            });
            if sent.is_err() || failed {
                return;
            }
        }
        if !any {
            return;
        }
    }
}

/// Appends the group and empties it; every event must be newly committed.
fn append(
    runtime: &tokio::runtime::Runtime,
    ledger: &Ledger,
    group: &mut Vec<Submission>,
    appended: u64,
) -> Result<u64> {
    let submissions = std::mem::replace(group, Vec::with_capacity(MAX_GROUP_EVENTS));
    let count = submissions.len() as u64;
    let outcomes = runtime
        .block_on(ledger.append(TENANT, submissions))
        .context("the writer did not commit a group")?;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Created(receipt) if receipt.seq == appended + i as u64 => {}
            other => bail!(
                "event {} of the build was not appended as the next entry: {other:?}",
                appended + i as u64
            ),
        }
    }
    Ok(count)
}

// --- the cache ---------------------------------------------------------------------------

/// What a cached log must have been built by and of, to be reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CacheKey {
    sealtrail: String,
    profile: String,
    store_schema: i64,
    seed: u64,
    events: u64,
    streams: u64,
    stream_batch: usize,
    /// A hash of the first events of the first stream: the generator's output.
    generator: String,
}

impl CacheKey {
    fn current(clinic: &Arc<Clinic>, seed: u64, events: u64) -> CacheKey {
        let mut stream = clinic.stream(BUILD_STREAM_BASE);
        let mut bytes = Vec::new();
        for _ in 0..256 {
            stream.write_event(&mut bytes);
        }
        CacheKey {
            sealtrail: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            store_schema: sealtrail_store::sqlite::SCHEMA_VERSION,
            seed,
            events,
            streams: BUILD_STREAMS,
            stream_batch: STREAM_BATCH,
            generator: leaf_hash(&bytes).to_hex()[..16].to_string(),
        }
    }
}

/// `manifest.json` of a cached log, written once the build is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    key: CacheKey,
    built_at: String,
    build: BuildReport,
}

/// The log of this plan: built in a scratch directory, or found in (or built into) the cache.
fn prepare(plan: &Plan, clinic: &Arc<Clinic>) -> Result<Prepared> {
    let events = plan.large_events;
    let Some(root) = &plan.large_cache else {
        let scratch = ScratchDir::new("large")?;
        let data_dir = scratch.path().join("data");
        eprintln!(
            "bench: building the large log of {} events in {}",
            thousands(events as f64),
            data_dir.display()
        );
        let build = build(&data_dir, clinic, events, true)?;
        return Ok(Prepared {
            data_dir,
            events,
            build,
            cached: None,
            _scratch: Some(scratch),
        });
    };
    let key = CacheKey::current(clinic, plan.seed, events);
    let dir = root.join(format!("{}-{events}", plan.seed));
    let manifest_path = dir.join("manifest.json");
    let found: Option<Manifest> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match found {
        Some(manifest) if manifest.key == key => {
            eprintln!(
                "bench: using the cached large log in {} (built at {}; --large-cache): not rebuilt",
                dir.display(),
                manifest.built_at
            );
            return Ok(Prepared {
                data_dir: dir.join("data"),
                events,
                build: manifest.build,
                cached: Some((dir, manifest.built_at)),
                _scratch: None,
            });
        }
        Some(manifest) => eprintln!(
            "bench: the cached large log in {} was built by another build of sealtrail or of the generator ({:?}; this is {:?}); rebuilding it",
            dir.display(),
            manifest.key,
            key
        ),
        None if dir.exists() => eprintln!(
            "bench: {} holds no complete cached log; rebuilding it",
            dir.display()
        ),
        None => {}
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the stale cache {}", dir.display()))?;
    }
    let partial = root.join(format!("{}-{events}.partial", plan.seed));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    eprintln!(
        "bench: building the large log of {} events into the cache {}",
        thousands(events as f64),
        dir.display()
    );
    let build = build(&partial.join("data"), clinic, events, true)?;
    let built_at = sealtrail_server::clock::Clock::system().now().to_rfc3339();
    let manifest = Manifest {
        key,
        built_at: built_at.clone(),
        build: build.clone(),
    };
    std::fs::write(
        partial.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("cannot move {} to {}", partial.display(), dir.display()))?;
    Ok(Prepared {
        data_dir: dir.join("data"),
        events,
        build,
        cached: None,
        _scratch: None,
    })
}

// --- serve --------------------------------------------------------------------------------

/// `sealtrail tokens create` on the data directory, as an operator would: a token of the
/// benchmark's tenant with one scope.
fn create_token(data_dir: &Path, scope: &str) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find this sealtrail binary")?;
    let store_args = ["--data".to_string(), data_dir.display().to_string()];
    super::server::create_token(&exe, &store_args, &[scope])
}

/// Removes the query index of a data directory, so that serve rebuilds it from the log.
fn remove_index(data_dir: &Path) -> Result<()> {
    let index = sealtrail_store::DataDir::new(data_dir).index();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = index.clone().into_os_string();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// A `sealtrail serve` child on an existing data directory; killed if dropped running.
struct Serve {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    /// When it was started, and how long it took to listen.
    spawned: Instant,
    listening: Duration,
    /// Kills it if the benchmark is interrupted.
    guard: tokio::task::JoinHandle<()>,
}

impl Serve {
    fn start(runtime: &tokio::runtime::Runtime, data_dir: &Path, log: &Path) -> Result<Serve> {
        // This build, or the one SEALTRAIL_BENCH_SERVER names (the same as the other workloads).
        let exe = super::server::server_exe()?;
        let stderr = super::server::create_log(log)?;
        let store_args = [std::ffi::OsStr::new("--data"), data_dir.as_os_str()];
        let spawned = Instant::now();
        let mut child = super::server::spawn_serve(&exe, &store_args, stderr)?;
        let guard = runtime.spawn(kill_on_signal(child.id()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let address_rx = super::server::listening_address(stdout);
        let mut serve = Serve {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
            spawned,
            listening: Duration::ZERO,
            guard,
        };
        let host = loop {
            match address_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(host)) => break host,
                Ok(None) => bail!("sealtrail serve printed no address"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    serve.check_alive()?;
                    if spawned.elapsed() > SERVE_START_TIMEOUT {
                        bail!(
                            "sealtrail serve did not start within {SERVE_START_TIMEOUT:?}: {}",
                            serve.stderr_tail()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    serve.check_alive()?;
                    bail!("sealtrail serve closed its stdout before printing its address");
                }
            }
        };
        serve.listening = spawned.elapsed();
        serve.addr = host
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("sealtrail serve printed the address {host:?}"))?;
        Ok(serve)
    }

    fn check_alive(&mut self) -> Result<()> {
        super::server::check_alive(self.child.as_mut(), &self.log)
    }

    fn stderr_tail(&self) -> String {
        super::server::log_tail(&self.log)
    }

    /// The largest resident set serve has had so far (`VmHWM`), where `/proc` tells.
    fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// SIGTERM, as an operator stops it; it must exit cleanly.
    fn stop(&mut self) -> Result<()> {
        self.check_alive()?;
        let mut child = self.child.take().expect("checked above");
        self.guard.abort();
        super::server::terminate(&mut child, &self.log, SERVE_STOP_TIMEOUT)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.guard.abort();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills serve when the benchmark is interrupted (the benchmark's own handler cleans up what
/// [`super::server`] started and exits; this server is not among those). Serve shares the
/// benchmark's process group, so an interrupt from the terminal reaches it directly too.
async fn kill_on_signal(pid: u32) {
    if !super::server::signalled().await {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
    })
    .await;
}

/// A running server with the large log, and the benchmark's tokens for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Scope `log:read` only.
    pub log_token: String,
    /// Scope `events:read` only.
    pub events_token: String,
}

// --- index catch-up ----------------------------------------------------------------------

/// How the index caught up.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// From `since` to the whole log being searchable.
    pub elapsed: Duration,
    /// The largest `checks.index_lag_seconds` `GET /health` reported meanwhile.
    pub health_lag_max: Option<f64>,
    /// When serve's start-up verification had found every log valid (`GET /metrics`:
    /// `sealtrail_verification_runs_total{result="valid"}` reached the number of logs).
    pub verified_after: Option<Duration>,
}

/// Waits until search covers seq `size - 1` (`GET /v1/events?wait_for_seq=`, which the server
/// holds up to 5 s per request) while sampling `GET /health` and `GET /metrics` (the store
/// holds `logs` logs, all verified by serve at start).
pub async fn wait_for_index(
    endpoint: &Endpoint,
    size: u64,
    logs: usize,
    since: Instant,
) -> Result<CatchUp> {
    ensure!(size > 0, "an empty log has nothing to index");
    let (done_tx, done_rx) = watch::channel(false);
    let health = tokio::spawn(watch_health(
        endpoint.addr,
        endpoint.events_token.clone(),
        logs,
        since,
        done_rx,
    ));
    let waited = async {
        let mut connection = Connection::open(endpoint.addr, &endpoint.events_token).await?;
        let last = size - 1;
        let path = format!("/v1/events?limit=1&order=desc&wait_for_seq={last}");
        loop {
            let (status, body) = connection.get(&path).await?;
            if status.is_success() {
                let elapsed = since.elapsed();
                let page: Value =
                    serde_json::from_slice(&body).context("GET /v1/events answered no JSON")?;
                let newest = page["events"][0]["seq"].as_u64();
                ensure!(
                    newest == Some(last),
                    "GET {path}: the newest event found is {newest:?}, not seq {last}"
                );
                return Ok(elapsed);
            }
            if !super::server::index_lagging(status, &body) {
                bail!(
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    .await;
    let _ = done_tx.send(true);
    let (health_lag_max, verified_after) =
        health.await.context("the health sampler panicked")??;
    Ok(CatchUp {
        elapsed: waited?,
        health_lag_max,
        verified_after,
    })
}

async fn watch_health(
    addr: SocketAddr,
    token: String,
    logs: usize,
    since: Instant,
    mut done: watch::Receiver<bool>,
) -> Result<(Option<f64>, Option<Duration>)> {
    let mut connection = Connection::open(addr, &token).await?;
    let mut lag_max: Option<f64> = None;
    let mut verified = None;
    while !*done.borrow_and_update() {
        let (status, body) = connection.get("/health").await?;
        // /health answers 503 when the server judges itself failing; the lag is still there.
        if status.is_success() || status == hyper::StatusCode::SERVICE_UNAVAILABLE {
            let health: Value =
                serde_json::from_slice(&body).context("GET /health answered no JSON")?;
            if let Some(lag) = health["checks"]["index_lag_seconds"].as_f64() {
                lag_max = Some(lag_max.map_or(lag, |m: f64| m.max(lag)));
            }
            ensure!(
                health["checks"]["chain"] != "violated",
                "GET /health reports a violated chain: {health}"
            );
        } else {
            bail!("GET /health answered {status}");
        }
        if verified.is_none() {
            let (status, body) = connection.get("/metrics").await?;
            ensure!(status.is_success(), "GET /metrics answered {status}");
            let text = String::from_utf8_lossy(&body);
            if counter(&text, "sealtrail_verification_runs_total{result=\"valid\"}")
                .is_some_and(|runs| runs >= logs as f64)
            {
                verified = Some(since.elapsed());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = done.changed() => {}
        }
    }
    Ok((lag_max, verified))
}

/// Waits until serve has verified each of the `logs` logs once (`/metrics`), at most
/// [`VERIFY_TIMEOUT`].
async fn wait_for_verification(endpoint: &Endpoint, logs: usize) -> Result<()> {
    let mut connection = Connection::open(endpoint.addr, &endpoint.events_token).await?;
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    loop {
        let (status, body) = connection.get("/metrics").await?;
        ensure!(status.is_success(), "GET /metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        if counter(&text, "sealtrail_verification_runs_total{result=\"valid\"}")
            .is_some_and(|runs| runs >= logs as f64)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "serve had not verified the log after {} s",
            VERIFY_TIMEOUT.as_secs()
        );
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text exposition.
fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

// --- proofs -------------------------------------------------------------------------------

/// The log's latest signed checkpoint, opened with the log's key and checked against the
/// stored hashes.
#[derive(Debug, Clone)]
pub struct SignedTree {
    pub size: u64,
    pub root: Hash,
    /// Earlier signed checkpoints whose roots the stored hashes were also checked against.
    pub earlier_checked: usize,
}

/// `GET /v1/log/checkpoint` and `GET /v1/log/key`.
pub async fn fetch_signed_tree(endpoint: &Endpoint) -> Result<(String, String)> {
    let mut connection = Connection::open(endpoint.addr, &endpoint.log_token).await?;
    let note = get_text(&mut connection, "/v1/log/checkpoint").await?;
    let key = get_text(&mut connection, "/v1/log/key").await?;
    Ok((note, key))
}

async fn get_text(connection: &mut Connection, path: &str) -> Result<String> {
    let (status, body) = connection.get(path).await?;
    ensure!(
        status.is_success(),
        "GET {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    String::from_utf8(body.to_vec()).with_context(|| format!("GET {path} answered no text"))
}

/// Opens the served checkpoint `note` with the log's key — which must be the key the served
/// `key` names and the one found next to the data (`verify::log_keys`) — and checks
/// the root of the stored hashes at its size, and at the sizes of earlier checkpoints, against
/// the signed roots. The stored hashes then give trustworthy old roots for consistency proofs.
pub fn check_signed_tree(
    store: &dyn Store,
    data_dir: &Path,
    note: &str,
    key: &str,
) -> Result<SignedTree> {
    let record = store
        .tenant(TENANT)?
        .with_context(|| format!("no tenant {TENANT} in the store"))?;
    let keys = sealtrail_server::verify::log_keys(data_dir, &record)?;
    let served = VerifierKey::parse(key.trim_end())
        .map_err(|e| anyhow!("GET /v1/log/key answered no verifier key: {e}"))?;
    ensure!(
        served == keys.key,
        "GET /v1/log/key answered {served}, but the log's key is {}",
        keys.key
    );
    let checkpoint = Checkpoint::open(note.as_bytes(), &keys.key)
        .map_err(|e| anyhow!("the served checkpoint does not open with the log's key: {e}"))?;
    let hashes = StoreHashes {
        store,
        tenant: TENANT,
    };
    let stored_root = |size: u64| {
        merkle::tree_hash(size, &hashes).map_err(|e| {
            anyhow!("cannot compute the root of size {size} from the stored hashes: {e}")
        })
    };
    ensure!(
        stored_root(checkpoint.size)? == checkpoint.root,
        "the stored hashes give another root for size {} than the signed checkpoint",
        checkpoint.size
    );
    let earlier = store.checkpoints(TENANT)?;
    let step = earlier.len().div_ceil(EARLIER_CHECKPOINTS).max(1);
    let mut earlier_checked = 0;
    for note in earlier.iter().step_by(step) {
        let old = Checkpoint::open(note.as_bytes(), &keys.key)
            .map_err(|e| anyhow!("a stored checkpoint does not open with the log's key: {e}"))?;
        ensure!(
            stored_root(old.size)? == old.root,
            "the stored hashes give another root for size {} than its signed checkpoint",
            old.size
        );
        earlier_checked += 1;
    }
    Ok(SignedTree {
        size: checkpoint.size,
        root: checkpoint.root,
        earlier_checked,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    Inclusion,
    Consistency,
}

impl ProofKind {
    fn path(self, param: u64, size: u64) -> String {
        match self {
            ProofKind::Inclusion => format!("/v1/log/proof/inclusion?seq={param}&size={size}"),
            ProofKind::Consistency => {
                format!("/v1/log/proof/consistency?from={param}&to={size}")
            }
        }
    }
}

/// What the proof clients did.
#[derive(Debug, Clone)]
pub struct ProofRun {
    pub latencies: Latencies,
    pub requests: usize,
    pub clients: usize,
    pub elapsed: Duration,
    /// Answers kept to verify: the seq (inclusion) or old size (consistency) asked, and the
    /// body.
    pub samples: Vec<(u64, Bytes)>,
}

/// `requests` proofs of `kind` into the tree of `size`, from `clients` concurrent clients:
/// inclusion of a random seq below `size`, or consistency from a random size from 1 to `size`.
/// About `verify_at_most` answers, spread over the run, are kept to verify.
pub async fn request_proofs(
    endpoint: &Endpoint,
    kind: ProofKind,
    size: u64,
    requests: usize,
    clients: usize,
    verify_at_most: usize,
    seed: u64,
) -> Result<ProofRun> {
    ensure!(size > 0 && clients > 0, "no tree to prove or no clients");
    let keep_every = requests.div_ceil(verify_at_most.max(1)).max(1);
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(endpoint.addr, &endpoint.log_token).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        let count = requests / clients + usize::from(client < requests % clients);
        let mut rng = Rng::new(seed ^ ((kind as u64 + 1) << 40) ^ ((client as u64 + 1) * 7919));
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            let mut samples = Vec::new();
            for i in 0..count {
                let param = match kind {
                    ProofKind::Inclusion => rng.below(size),
                    ProofKind::Consistency => 1 + rng.below(size),
                };
                let path = kind.path(param, size);
                let sent = Instant::now();
                let (status, body) = connection.get(&path).await?;
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !status.is_success() {
                    bail!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                if (i * clients + client).is_multiple_of(keep_every) {
                    samples.push((param, body));
                }
            }
            Ok::<_, anyhow::Error>((latencies, samples))
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (l, s) = joined.context("a proof client panicked")??;
        latencies.extend(l);
        samples.extend(s);
    }
    Ok(ProofRun {
        latencies: Latencies::from_micros(latencies),
        requests,
        clients,
        elapsed: started.elapsed(),
        samples,
    })
}

#[derive(Deserialize)]
struct InclusionAnswer {
    leaf_index: u64,
    tree_size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyAnswer {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

fn proof_hashes(proof: &[String]) -> Result<Vec<Hash>> {
    proof
        .iter()
        .map(|h| Hash::from_hex(h).map_err(|e| anyhow!("proof hash {h:?} is not hex: {e}")))
        .collect()
}

/// How many proofs were verified, and their hashes in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verified {
    pub proofs: usize,
    pub hashes: usize,
}

/// Verifies kept answers against the signed tree: inclusion with the leaf hash of the stored
/// entry, consistency with the old root from the stored hashes (checked by
/// [`check_signed_tree`]). Fails on the first that does not verify.
pub fn verify_proofs(
    store: &dyn Store,
    tree: &SignedTree,
    kind: ProofKind,
    samples: &[(u64, Bytes)],
) -> Result<Verified> {
    let hashes = StoreHashes {
        store,
        tenant: TENANT,
    };
    let mut verified = Verified::default();
    for (param, body) in samples {
        let path = kind.path(*param, tree.size);
        match kind {
            ProofKind::Inclusion => {
                let answer: InclusionAnswer = serde_json::from_slice(body)
                    .with_context(|| format!("GET {path}: not an inclusion proof"))?;
                ensure!(
                    answer.leaf_index == *param && answer.tree_size == tree.size,
                    "GET {path} answered a proof of seq {} in size {}",
                    answer.leaf_index,
                    answer.tree_size
                );
                let entry = store
                    .entry(TENANT, *param)?
                    .with_context(|| format!("no entry at seq {param}"))?;
                let proof = proof_hashes(&answer.proof)?;
                merkle::verify_inclusion(*param, tree.size, &leaf_hash(&entry), &proof, &tree.root)
                    .map_err(|e| anyhow!("GET {path}: the proof does not verify: {e}"))?;
                verified.hashes += proof.len();
            }
            ProofKind::Consistency => {
                let answer: ConsistencyAnswer = serde_json::from_slice(body)
                    .with_context(|| format!("GET {path}: not a consistency proof"))?;
                ensure!(
                    answer.from == *param && answer.to == tree.size,
                    "GET {path} answered a proof from {} to {}",
                    answer.from,
                    answer.to
                );
                let old_root = merkle::tree_hash(*param, &hashes)
                    .map_err(|e| anyhow!("cannot compute the root of size {param}: {e}"))?;
                let proof = proof_hashes(&answer.proof)?;
                merkle::verify_consistency(*param, tree.size, &old_root, &tree.root, &proof)
                    .map_err(|e| anyhow!("GET {path}: the proof does not verify: {e}"))?;
                verified.hashes += proof.len();
            }
        }
        verified.proofs += 1;
    }
    Ok(verified)
}

fn proof_figure(
    workload: Workload,
    kind: ProofKind,
    tree: &SignedTree,
    run: &ProofRun,
    verified: &Verified,
) -> Figure {
    let p99 = run.latencies.quantile_ms(0.99).unwrap_or(f64::NAN);
    let mut figure = Figure::new(workload, StoreKind::Embedded, p99, Unit::Milliseconds);
    figure.p50_ms = run.latencies.quantile_ms(0.5);
    figure.p99_ms = run.latencies.quantile_ms(0.99);
    let asked = match kind {
        ProofKind::Inclusion => "inclusion of a random seq",
        ProofKind::Consistency => "consistency from a random size",
    };
    figure.note = format!(
        "{} requests ({asked}) into the tree of the latest checkpoint, size {}, from {} concurrent clients with a log:read token, {:.1} s, max {}; {} answers verified against the signed root ({:.1} hashes per proof; the stored hashes agree with it and with {} earlier checkpoints); {}",
        thousands(run.requests as f64),
        thousands(tree.size as f64),
        run.clients,
        run.elapsed.as_secs_f64(),
        run.latencies
            .max_ms()
            .map_or("—".to_string(), |m| format!("{m:.2} ms")),
        thousands(verified.proofs as f64),
        verified.hashes as f64 / verified.proofs.max(1) as f64,
        tree.earlier_checked,
        EMBEDDED_ONLY,
    );
    figure
}

// --- search -------------------------------------------------------------------------------

/// The filters searched, one kind per row of the figure's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryKind {
    Actor,
    Action,
    Patient,
    FailedLogin,
    Ip,
    Text,
    Time,
}

impl QueryKind {
    pub const ALL: [QueryKind; 7] = [
        QueryKind::Actor,
        QueryKind::Action,
        QueryKind::Patient,
        QueryKind::FailedLogin,
        QueryKind::Ip,
        QueryKind::Text,
        QueryKind::Time,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Actor => "actor",
            QueryKind::Action => "action",
            QueryKind::Patient => "patient",
            QueryKind::FailedLogin => "failed-login",
            QueryKind::Ip => "ip",
            QueryKind::Text => "q",
            QueryKind::Time => "from/to",
        }
    }
}

/// What an event must hold to match a search, as the API documents it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub activity: Option<String>,
    pub outcome: Option<String>,
    /// `(type, id)`, both of one target.
    pub target: Option<(String, String)>,
    /// In normal form.
    pub ip: Option<String>,
    /// Per whitespace-separated word of `q`, its tokens, which must occur in this order in the
    /// text of the values of `details`.
    pub words: Option<Vec<Vec<String>>>,
    /// Event time (unix microseconds): `from` inclusive, `to` exclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Filter {
    /// Why `event` (as the API shows it) does not match, or `None` when it does.
    pub fn mismatch(&self, event: &Value) -> Option<String> {
        let field = |value: &Value| value.as_str().map(str::to_string);
        let equal = |name: &str, want: &Option<String>, got: Option<String>| match want {
            Some(want) if got.as_deref() != Some(want.as_str()) => {
                Some(format!("{name} is {got:?}, not {want:?}"))
            }
            _ => None,
        };
        if let Some(why) = equal("actor.id", &self.actor, field(&event["actor"]["id"]))
            .or_else(|| equal("action", &self.action, field(&event["action"])))
            .or_else(|| equal("activity", &self.activity, field(&event["activity"])))
            .or_else(|| equal("outcome", &self.outcome, field(&event["outcome"])))
            .or_else(|| {
                let ip = event["context"]["ip"].as_str().map(normal_ip);
                equal("context.ip", &self.ip, ip)
            })
        {
            return Some(why);
        }
        if let Some((kind, id)) = &self.target {
            let found = event["targets"].as_array().is_some_and(|targets| {
                targets
                    .iter()
                    .any(|t| t["type"] == kind.as_str() && t["id"] == id.as_str())
            });
            if !found {
                return Some(format!("no target {kind} {id}"));
            }
        }
        if let Some(words) = &self.words {
            let mut text = String::new();
            if let Some(details) = event.get("details") {
                sealtrail_server::index::push_text(details, &mut text);
            }
            let tokens = tokens(&text);
            if let Some(word) = words.iter().find(|word| !contains_run(&tokens, word)) {
                return Some(format!("details hold no {:?}", word.join(" ")));
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let at = event_time(event)?;
            if self.from.is_some_and(|from| at < from) || self.to.is_some_and(|to| at >= to) {
                return Some(format!(
                    "event time {} is outside the range",
                    Timestamp::from_unix_micros(at).map_or(at.to_string(), |t| t.to_rfc3339())
                ));
            }
        }
        None
    }
}

/// The event time the API filters on: `occurred_at`, else `received_at`.
fn event_time(event: &Value) -> Option<i64> {
    let text = event["occurred_at"]
        .as_str()
        .or_else(|| event["received_at"].as_str())?;
    Timestamp::parse(text).ok().map(|t| t.unix_micros())
}

/// An address in the normal form the API stores and compares (`2001:DB8::0:1` → `2001:db8::1`).
fn normal_ip(text: &str) -> String {
    text.parse::<IpAddr>()
        .map_or_else(|_| text.to_string(), |ip| ip.to_string())
}

/// Words of letters and digits, lowercased: how the text index splits text.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `run` occurs in `tokens` as consecutive tokens.
fn contains_run(tokens: &[String], run: &[String]) -> bool {
    !run.is_empty() && tokens.windows(run.len()).any(|w| w == run)
}

/// One first page to ask for.
#[derive(Debug, Clone)]
pub struct Query {
    pub kind: QueryKind,
    /// Whether the value was drawn by frequency (else uniformly from the distinct values).
    pub popular: bool,
    /// Newest first (`order=desc`).
    pub desc: bool,
    pub params: Vec<(&'static str, String)>,
    pub filter: Filter,
}

impl Query {
    pub fn path(&self) -> String {
        let mut path = String::from("/v1/events?");
        for (name, value) in &self.params {
            path.push_str(name);
            path.push('=');
            percent_encode(value, &mut path);
            path.push('&');
        }
        path.push_str(&format!("limit={PAGE_LIMIT}"));
        if self.desc {
            path.push_str("&order=desc");
        }
        path
    }
}

fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Values seen in a sample: every occurrence (drawing from it follows the frequencies) and
/// each distinct value once (drawing from it favours the rare ones).
#[derive(Debug, Clone, Default)]
struct Pool {
    seen: Vec<String>,
    distinct: Vec<String>,
}

impl Pool {
    fn new(seen: Vec<String>) -> Pool {
        let distinct = seen
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Pool { seen, distinct }
    }

    fn pick(&self, rng: &mut Rng, popular: bool) -> Result<String> {
        let from = if popular { &self.seen } else { &self.distinct };
        ensure!(!from.is_empty(), "the sample has no such value");
        Ok(rng.pick(from).clone())
    }
}

/// Where filter values come from: the first events the build's streams generated (so every
/// value is in the log), and the times of random events of the log.
pub struct QueryPools {
    actor: Pool,
    action: Pool,
    patient: Pool,
    ip: Pool,
    text: Pool,
    /// Event times (unix microseconds) of random entries of the log.
    times: Vec<i64>,
}

impl QueryPools {
    pub fn new(clinic: &Arc<Clinic>, size: u64, store: &dyn Store, seed: u64) -> Result<Self> {
        let per_stream = (size / BUILD_STREAMS).min(SAMPLE_PER_STREAM as u64).max(1);
        let (mut actor, mut action, mut patient, mut ip, mut text) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut bytes = Vec::new();
        for s in 0..BUILD_STREAMS {
            let mut stream = clinic.stream(BUILD_STREAM_BASE + s);
            for _ in 0..per_stream {
                bytes.clear();
                stream.write_event(&mut bytes);
                let event: Value = serde_json::from_slice(&bytes)?;
                if let Some(id) = event["actor"]["id"].as_str() {
                    actor.push(id.to_string());
                }
                if let Some(name) = event["action"].as_str() {
                    action.push(name.to_string());
                }
                for target in event["targets"].as_array().into_iter().flatten() {
                    if target["type"] == "patient"
                        && let Some(id) = target["id"].as_str()
                    {
                        patient.push(id.to_string());
                    }
                }
                if let Some(address) = event["context"]["ip"].as_str() {
                    ip.push(normal_ip(address));
                }
                if let Some(details) = event["details"].as_object() {
                    let mut values = String::new();
                    details
                        .values()
                        .for_each(|v| sealtrail_server::index::push_text(v, &mut values));
                    text.extend(
                        values
                            .lines()
                            .filter(|v| v.chars().any(char::is_alphanumeric))
                            .map(str::to_string),
                    );
                }
            }
        }
        let mut rng = Rng::new(seed ^ 0x7469_6d65); // "time"
        let mut times = Vec::with_capacity(TIME_POINTS);
        for _ in 0..TIME_POINTS {
            let seq = rng.below(size);
            let entry = store
                .entry(TENANT, seq)?
                .with_context(|| format!("no entry at seq {seq}"))?;
            let event: Value = serde_json::from_slice(&entry)?;
            times.push(event_time(&event).with_context(|| format!("entry {seq} has no time"))?);
        }
        Ok(QueryPools {
            actor: Pool::new(actor),
            action: Pool::new(action),
            patient: Pool::new(patient),
            ip: Pool::new(ip),
            text: Pool::new(text),
            times,
        })
    }
}

/// `count` first pages, the kinds in turn, values drawn with the seed (see the module docs).
pub fn plan_queries(pools: &QueryPools, count: usize, seed: u64) -> Vec<Query> {
    let mut rng = Rng::new(seed ^ 0x7365_6172_6368); // "search"
    let mut queries = Vec::with_capacity(count);
    let mut i = 0;
    while queries.len() < count {
        let kind = QueryKind::ALL[i % QueryKind::ALL.len()];
        i += 1;
        let popular = rng.chance(500);
        let desc = rng.chance(500);
        let mut filter = Filter::default();
        let params: Vec<(&'static str, String)> = match kind {
            QueryKind::Actor => {
                let Ok(v) = pools.actor.pick(&mut rng, popular) else {
                    continue;
                };
                filter.actor = Some(v.clone());
                vec![("actor", v)]
            }
            QueryKind::Action => {
                let Ok(v) = pools.action.pick(&mut rng, popular) else {
                    continue;
                };
                filter.action = Some(v.clone());
                vec![("action", v)]
            }
            QueryKind::Patient => {
                let Ok(v) = pools.patient.pick(&mut rng, popular) else {
                    continue;
                };
                filter.target = Some(("patient".to_string(), v.clone()));
                vec![("target_type", "patient".to_string()), ("target_id", v)]
            }
            QueryKind::FailedLogin => {
                filter.outcome = Some("failure".to_string());
                filter.activity = Some("login".to_string());
                vec![
                    ("outcome", "failure".to_string()),
                    ("activity", "login".to_string()),
                ]
            }
            QueryKind::Ip => {
                let Ok(v) = pools.ip.pick(&mut rng, popular) else {
                    continue;
                };
                filter.ip = Some(v.clone());
                vec![("ip", v)]
            }
            QueryKind::Text => {
                let Ok(v) = pools.text.pick(&mut rng, popular) else {
                    continue;
                };
                let words: Vec<Vec<String>> = v
                    .split_whitespace()
                    .map(tokens)
                    .filter(|t| !t.is_empty())
                    .collect();
                if words.is_empty() {
                    continue;
                }
                filter.words = Some(words);
                vec![("q", v)]
            }
            QueryKind::Time => {
                if pools.times.is_empty() {
                    continue;
                }
                let center = *rng.pick(&pools.times);
                let width = *rng.pick(&TIME_WINDOWS_SECONDS) * 1_000_000;
                let from = center - width / 2;
                let to = from + width;
                let text = |micros: i64| {
                    Timestamp::from_unix_micros(micros)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                };
                filter.from = Some(from);
                filter.to = Some(to);
                vec![("from", text(from)), ("to", text(to))]
            }
        };
        queries.push(Query {
            kind,
            popular,
            desc,
            params,
            filter,
        });
    }
    queries
}

/// What the search clients got: per query (by index), the latency in microseconds and the
/// answer.
#[derive(Debug, Clone)]
pub struct SearchRun {
    pub micros: Vec<u32>,
    pub bodies: Vec<Bytes>,
    pub clients: usize,
    pub elapsed: Duration,
}

/// Asks for every query's first page, client `c` taking queries `c`, `c + clients`, ….
pub async fn request_pages(
    endpoint: &Endpoint,
    queries: &Arc<Vec<Query>>,
    clients: usize,
) -> Result<SearchRun> {
    ensure!(clients > 0, "no clients");
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(endpoint.addr, &endpoint.events_token).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        let queries = Arc::clone(queries);
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for index in (client..queries.len()).step_by(clients) {
                let path = queries[index].path();
                let sent = Instant::now();
                let (status, body) = connection.get(&path).await?;
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                if !status.is_success() {
                    bail!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                answers.push((index, micros, body));
            }
            Ok::<_, anyhow::Error>(answers)
        });
    }
    let mut micros = vec![0; queries.len()];
    let mut bodies = vec![Bytes::new(); queries.len()];
    while let Some(joined) = tasks.join_next().await {
        for (index, m, body) in joined.context("a search client panicked")?? {
            micros[index] = m;
            bodies[index] = body;
        }
    }
    Ok(SearchRun {
        micros,
        bodies,
        clients,
        elapsed: started.elapsed(),
    })
}

/// What checking the pages found.
#[derive(Debug, Clone, Default)]
pub struct PagesChecked {
    pub pages: usize,
    pub events: usize,
    pub empty: usize,
    pub full: usize,
}

/// Checks one page: at most [`PAGE_LIMIT`] events, each below `size`, in seq order (or newest
/// first), each matching the query's filter, and a cursor exactly when the page is full.
/// Returns the seqs.
pub fn check_page(query: &Query, body: &[u8], size: u64) -> Result<Vec<u64>> {
    let path = query.path();
    let page: Value =
        serde_json::from_slice(body).with_context(|| format!("GET {path} answered no JSON"))?;
    let events = page["events"]
        .as_array()
        .with_context(|| format!("GET {path} answered no events"))?;
    ensure!(
        events.len() <= PAGE_LIMIT,
        "GET {path} answered {} events",
        events.len()
    );
    let mut seqs = Vec::with_capacity(events.len());
    for event in events {
        let seq = event["seq"]
            .as_u64()
            .with_context(|| format!("GET {path}: an event without a seq"))?;
        ensure!(seq < size, "GET {path}: seq {seq} is beyond the log");
        if let Some(&last) = seqs.last() {
            let ordered = if query.desc { seq < last } else { seq > last };
            ensure!(
                ordered,
                "GET {path}: seq {seq} follows {last}, out of order"
            );
        }
        if let Some(why) = query.filter.mismatch(event) {
            bail!("GET {path}: the event at seq {seq} does not match: {why}");
        }
        seqs.push(seq);
    }
    // A cursor means another page follows, so only a full page can have one.
    ensure!(
        page["next_cursor"].is_null() || events.len() == PAGE_LIMIT,
        "GET {path}: {} events with next_cursor {}",
        events.len(),
        page["next_cursor"]
    );
    Ok(seqs)
}

/// [`check_page`] on every answer.
pub fn check_pages(queries: &[Query], bodies: &[Bytes], size: u64) -> Result<PagesChecked> {
    let mut checked = PagesChecked::default();
    for (query, body) in queries.iter().zip(bodies) {
        let seqs = check_page(query, body, size)?;
        checked.pages += 1;
        checked.events += seqs.len();
        checked.empty += usize::from(seqs.is_empty());
        checked.full += usize::from(seqs.len() == PAGE_LIMIT);
    }
    Ok(checked)
}

fn search_figure(queries: &[Query], run: &SearchRun, checked: &PagesChecked) -> Figure {
    let all = Latencies::from_micros(run.micros.clone());
    let p99 = all.quantile_ms(0.99).unwrap_or(f64::NAN);
    let mut figure = Figure::new(
        Workload::SearchFirstPage,
        StoreKind::Embedded,
        p99,
        Unit::Milliseconds,
    );
    figure.p50_ms = all.quantile_ms(0.5);
    figure.p99_ms = all.quantile_ms(0.99);
    let mut by_kind: BTreeMap<QueryKind, Vec<u32>> = BTreeMap::new();
    for (query, &micros) in queries.iter().zip(&run.micros) {
        by_kind.entry(query.kind).or_default().push(micros);
    }
    let kinds: Vec<String> = by_kind
        .into_iter()
        .map(|(kind, micros)| {
            let latencies = Latencies::from_micros(micros);
            let ms = |q| latencies.quantile_ms(q).unwrap_or(f64::NAN);
            format!(
                "{} {:.2}/{:.2}/{:.1}",
                kind.name(),
                ms(0.5),
                ms(0.99),
                latencies.max_ms().unwrap_or(f64::NAN)
            )
        })
        .collect();
    figure.note = format!(
        "{} first pages of up to {PAGE_LIMIT} from {} concurrent clients with an events:read token, {:.1} s; filters in turn: actor, action, target_type=patient&target_id, outcome=failure&activity=login, ip, q, from/to windows of 1 s, 1 min and 1 h around random events; values drawn from the clinic generator's events, half by frequency and half uniformly from the distinct ones; half newest first; every page checked (at most {PAGE_LIMIT}, in order, each event matching): {} events, {} full pages, {} empty; p50/p99/max ms per filter: {}; {}",
        thousands(checked.pages as f64),
        run.clients,
        run.elapsed.as_secs_f64(),
        thousands(checked.events as f64),
        thousands(checked.full as f64),
        thousands(checked.empty as f64),
        kinds.join(", "),
        EMBEDDED_ONLY,
    );
    figure
}

// --- sizes --------------------------------------------------------------------------------

/// The bytes of the files under `path`.
fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The bytes of the query index files of a data directory.
fn index_bytes(data_dir: &Path) -> u64 {
    let index = sealtrail_store::DataDir::new(data_dir).index();
    ["", "-wal", "-shm"]
        .into_iter()
        .map(|suffix| {
            let mut name = index.clone().into_os_string();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
        })
        .sum()
}

/// `1.23 GiB`, `456 MiB`.
fn bytes_text(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_large_workloads_have_the_briefs_targets_and_the_build_figures_none() {
        let large: Vec<Workload> = Workload::ALL.into_iter().filter(|&w| is_large(w)).collect();
        assert_eq!(large.len(), 5);
        for workload in [Workload::ProofInclusion, Workload::ProofConsistency] {
            let target = workload.target().unwrap();
            assert_eq!((target.value, target.unit), (1.0, Unit::Milliseconds));
        }
        let search = Workload::SearchFirstPage.target().unwrap();
        assert_eq!((search.value, search.unit), (50.0, Unit::Milliseconds));
        assert_eq!(Workload::LargeBuild.target(), None);
        assert_eq!(Workload::IndexCatchUp.target(), None);
        assert!(!is_large(Workload::IndexLag));
    }

    #[test]
    fn text_matches_whole_tokens_in_order_across_values() {
        let filter = |q: &str| Filter {
            words: Some(q.split_whitespace().map(tokens).collect()),
            ..Filter::default()
        };
        let event = json!({
            "details": {"fields": ["name", "dob"], "ticket": "IT-4821", "amount_cents": 12345, "abnormal": true}
        });
        for q in [
            "it-4821",
            "IT 4821",
            "name dob",
            "dob",
            "12345 name",
            "dob it",
        ] {
            assert_eq!(filter(q).mismatch(&event), None, "{q}");
        }
        for q in ["4821-it", "nam", "true", "abnormal", "ticket", "dob-name"] {
            assert!(filter(q).mismatch(&event).is_some(), "{q}");
        }
        assert!(filter("name").mismatch(&json!({"action": "x"})).is_some());
    }

    #[test]
    fn filters_compare_fields_targets_addresses_and_event_time() {
        let event = json!({
            "action": "patient.record.read", "activity": "read", "outcome": "success",
            "actor": {"id": "u-1001"},
            "targets": [{"type": "patient", "id": "p-000007"}, {"type": "claim", "id": "c-1"}],
            "context": {"ip": "2001:db8:4::1a"},
            "occurred_at": "2026-11-23T07:00:00.000000Z",
            "received_at": "2030-01-01T00:00:00.000000Z",
        });
        let at = Timestamp::parse("2026-11-23T07:00:00Z")
            .unwrap()
            .unix_micros();
        let matching = [
            Filter {
                actor: Some("u-1001".into()),
                action: Some("patient.record.read".into()),
                activity: Some("read".into()),
                outcome: Some("success".into()),
                ..Filter::default()
            },
            Filter {
                target: Some(("patient".into(), "p-000007".into())),
                ..Filter::default()
            },
            Filter {
                ip: Some(normal_ip("2001:DB8:4:0::1A")),
                ..Filter::default()
            },
            // occurred_at, not received_at, is the event time; from inclusive.
            Filter {
                from: Some(at),
                to: Some(at + 1),
                ..Filter::default()
            },
        ];
        for filter in &matching {
            assert_eq!(filter.mismatch(&event), None, "{filter:?}");
        }
        let failing = [
            Filter {
                actor: Some("u-1002".into()),
                ..Filter::default()
            },
            Filter {
                outcome: Some("failure".into()),
                ..Filter::default()
            },
            // Type and id of one target, not of two.
            Filter {
                target: Some(("patient".into(), "c-1".into())),
                ..Filter::default()
            },
            Filter {
                ip: Some("10.0.0.1".into()),
                ..Filter::default()
            },
            // `to` is exclusive.
            Filter {
                from: Some(at - 10),
                to: Some(at),
                ..Filter::default()
            },
        ];
        for filter in &failing {
            assert!(filter.mismatch(&event).is_some(), "{filter:?}");
        }
        // Without occurred_at, received_at is the event time.
        let late = json!({"received_at": "2026-11-23T07:00:00.000000Z"});
        assert_eq!(matching[3].mismatch(&late), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let query = Query {
            kind: QueryKind::Time,
            popular: false,
            desc: true,
            params: vec![
                ("from", "2026-11-23T07:00:00.000000Z".into()),
                ("q", "Acme Insurance+x".into()),
            ],
            filter: Filter::default(),
        };
        assert_eq!(
            query.path(),
            "/v1/events?from=2026-11-23T07%3A00%3A00.000000Z&q=Acme%20Insurance%2Bx&limit=100&order=desc"
        );
    }

    /// The large workloads end to end at a tiny size, against the application started in
    /// process on the built log: the log verifies, every proof verifies against the signed
    /// checkpoint, and every first page is exactly the first matching events of the log.
    #[test]
    fn a_tiny_large_log_gives_verified_proofs_and_exact_pages() {
        const EVENTS: u64 = 5_000;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let clinic = Clinic::new(3);
        let built = build(&data, &clinic, EVENTS, false).unwrap();
        assert_eq!(built.events, EVENTS);
        assert!(built.checkpoints >= 1);

        let store = Location::new(&data, None).open_reader().unwrap();
        let report =
            sealtrail_server::verify::verify_tenant(store.as_ref(), &data, TENANT, &[], None, None)
                .unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.rows_checked, EVENTS);
        let entries: Vec<(u64, Value)> = store
            .entries(TENANT, 0, EVENTS, EVENTS as usize)
            .unwrap()
            .into_iter()
            .map(|(seq, entry)| (seq, serde_json::from_slice(&entry.unwrap()).unwrap()))
            .collect();
        assert_eq!(entries.len() as u64, EVENTS);
        // The groups interleave the streams: every stream's producers are in the log.
        let instances: BTreeSet<&str> = entries
            .iter()
            .filter_map(|(_, e)| e["source"]["instance"].as_str())
            .collect();
        for s in 0..BUILD_STREAMS {
            let stream = format!("-s{}-", BUILD_STREAM_BASE + s);
            assert!(instances.iter().any(|i| i.contains(&stream)), "{stream}");
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let settings = sealtrail_server::config::Settings {
                data: Some(data.clone()),
                listen: Some("127.0.0.1:0".into()),
                ..Default::default()
            };
            let app = sealtrail_server::app::Application::build(settings.resolve().unwrap())
                .await
                .unwrap();
            let addr = app.local_addr();
            let ledger = app.ledger();
            let token = async |scope: &str| {
                ledger
                    .create_token(TENANT, vec![scope.to_string()], "test")
                    .await
                    .unwrap()
                    .token
            };
            let endpoint = Endpoint {
                addr,
                log_token: token("log:read").await,
                events_token: token("events:read").await,
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(app.run_until_stopped(async move {
                let _ = stopped.await;
            }));

            let catch_up = wait_for_index(&endpoint, EVENTS, 2, Instant::now())
                .await
                .unwrap();
            assert!(catch_up.elapsed > Duration::ZERO);

            let (note, key) = fetch_signed_tree(&endpoint).await.unwrap();
            let tree = check_signed_tree(store.as_ref(), &data, &note, &key).unwrap();
            assert_eq!(tree.size, EVENTS);
            assert!(tree.earlier_checked >= 1);
            // A checkpoint the log's key did not sign is refused.
            let other = sealtrail_core::note::SignerKey::generate(
                "sealtrail.local/clinic",
                &mut rand_core::OsRng,
            )
            .unwrap();
            let text = format!("{}\n", note.split("\n\n").next().unwrap());
            let forged = Checkpoint::parse(&text).unwrap().sign(&other).unwrap();
            let refused = check_signed_tree(store.as_ref(), &data, &forged, &key).unwrap_err();
            assert!(refused.to_string().contains("does not open"), "{refused}");
            for kind in [ProofKind::Inclusion, ProofKind::Consistency] {
                let run = request_proofs(&endpoint, kind, tree.size, 300, 3, 300, 9)
                    .await
                    .unwrap();
                assert_eq!(run.latencies.len(), 300);
                assert_eq!(run.samples.len(), 300);
                let verified = verify_proofs(store.as_ref(), &tree, kind, &run.samples).unwrap();
                assert_eq!(verified.proofs, 300);
                // A proof of another entry does not verify.
                let mut wrong = run.samples[0].clone();
                wrong.0 = (wrong.0 + 1) % tree.size;
                if kind == ProofKind::Inclusion || wrong.0 != 0 {
                    assert!(verify_proofs(store.as_ref(), &tree, kind, &[wrong]).is_err());
                }
            }

            let pools = QueryPools::new(&clinic, EVENTS, store.as_ref(), 9).unwrap();
            let queries = Arc::new(plan_queries(&pools, 140, 9));
            let kinds: BTreeSet<QueryKind> = queries.iter().map(|q| q.kind).collect();
            assert_eq!(kinds.len(), QueryKind::ALL.len());
            let pages = request_pages(&endpoint, &queries, 3).await.unwrap();
            let checked = check_pages(&queries, &pages.bodies, EVENTS).unwrap();
            assert_eq!(checked.pages, 140);
            assert!(checked.full > 0 && checked.events > 0, "{checked:?}");
            for (query, body) in queries.iter().zip(&pages.bodies) {
                let mut expected: Vec<u64> = entries
                    .iter()
                    .filter(|(_, event)| query.filter.mismatch(event).is_none())
                    .map(|(seq, _)| *seq)
                    .collect();
                if query.desc {
                    expected.reverse();
                }
                expected.truncate(PAGE_LIMIT);
                let got = check_page(query, body, EVENTS).unwrap();
                assert_eq!(got, expected, "{}", query.path());
            }
            // A page with an event that does not match is refused.
            let actor = (0..queries.len())
                .find(|&i| {
                    queries[i].kind == QueryKind::Actor
                        && !check_page(&queries[i], &pages.bodies[i], EVENTS)
                            .unwrap()
                            .is_empty()
                })
                .unwrap();
            let mut wrong = queries[actor].clone();
            wrong.filter.actor = Some("nobody".into());
            assert!(check_page(&wrong, &pages.bodies[actor], EVENTS).is_err());

            let _ = stop.send(());
            server.await.unwrap().unwrap();
        });
    }
}
