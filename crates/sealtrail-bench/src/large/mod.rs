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
//! 3. **Indexing batch by batch** ([`Workload::IndexIncremental`]): a scratch index is brought
//!    up to all but the last entries of that log, then those are indexed as serve's follower
//!    does when it keeps up, one transaction per batch, and timed: what each new event costs
//!    the index once the log is large, which no workload on an empty log shows.
//! 4. **Proofs** ([`Workload::ProofInclusion`], [`Workload::ProofConsistency`]): several
//!    concurrent clients with a `log:read` token ask for inclusion proofs of random seqs and
//!    consistency proofs from random sizes, both to the size of the latest signed checkpoint.
//!    A sample of the answers is verified with [`sealtrail_core::merkle`] against that
//!    checkpoint's root, opened with the log's key: leaves are hashed from the stored entries,
//!    and the old roots of consistency proofs are computed from the stored hashes, which are
//!    first checked against the signed roots of the latest and of earlier checkpoints.
//! 5. **Search** ([`Workload::SearchFirstPage`]): several concurrent clients with an
//!    `events:read` token ask for first pages of 100 with a mix of filters — actor, action,
//!    patient target, failed logins, ip, text, time windows — whose values are drawn from the
//!    clinic generator's own events, half weighted by how often they occur (popular) and half
//!    uniformly from the distinct values (mostly rare). Every page is checked: at most 100
//!    events, in seq order (newest first for half of them), each matching its filter.
//!
//! Latencies are per request, from sending it to reading the whole answer, on keep-alive
//! connections ([`Connection`]); a refused request, a wrong proof or a wrong page fails the
//! run. Figures are what this machine did on this run; nothing asserts a timing.
//!
//! This module holds the session, the plan and the figures; [`build`] builds and caches the
//! log, [`incremental`] times indexing batch by batch on it, [`serve`] serves it and times the
//! index catch-up, [`proofs`] and [`search`] run and check their workloads over HTTP.

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

mod build;
mod incremental;
mod proofs;
mod search;
mod serve;

pub use build::*;
pub use incremental::*;
pub use proofs::*;
pub use search::*;
pub use serve::*;

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
/// Requests per proof kind, and first pages, in the full and the `--quick` configuration. A
/// proof takes about 0.1 ms here: 20,000 of them run a few seconds, so that their p99 rests
/// on 200 answers, not 50.
const PROOF_REQUESTS: (usize, usize) = (20_000, 500);
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
/// Serve counts as quiet (see `Serve::wait_until_quiet`) below this share of a core over
/// each of `QUIET_WINDOWS` windows of `QUIET_WINDOW` in a row. An idle serve polls its log
/// and uses 2–4% of a core.
const QUIET_CPU: f64 = 0.10;
const QUIET_WINDOW: Duration = Duration::from_secs(1);
const QUIET_WINDOWS: usize = 2;
/// How long serve may stay busy after its start (the monitor reads a 10 M-event log received
/// within minutes back in about 150 s here).
const QUIET_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How often build progress is printed, and `GET /health` sampled during catch-up.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Whether a workload runs on the large log (rather than on the ingest workloads' server).
pub fn is_large(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::LargeBuild
            | Workload::IndexCatchUp
            | Workload::IndexIncremental
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

/// A log size as the rows' titles give it: `10 M`, `30 M`, `2.5 M`, `20,000`.
pub fn size_text(events: u64) -> String {
    if events >= 1_000_000 && events.is_multiple_of(100_000) {
        let millions = events as f64 / 1e6;
        format!("{millions} M")
    } else {
        thousands(events as f64)
    }
}

pub fn run(
    session: &mut Session,
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    clinic: &Arc<Clinic>,
    report: &mut dyn FnMut(&Figure),
) -> Result<Vec<Figure>> {
    let selected = |w: Workload| plan.workloads.contains(&w);
    let mut figures = Vec::new();
    let full_size = plan.large_events == TARGET_EVENTS;
    let mut emit = |mut figure: Figure| {
        figure.log_events = Some(plan.large_events);
        // The targets are for 10 M events: a log of another size (--quick, --large-events) is
        // timed but not held against them.
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
    if selected(Workload::IndexIncremental) {
        emit(incremental_figure(&index_incrementally(
            &prepared.data_dir,
        )?));
    }
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
    // The other work serve does after a start (the monitor reads its rules' windows back from
    // the log, here the whole log) must not run beside the requests measured either.
    if [
        Workload::ProofInclusion,
        Workload::ProofConsistency,
        Workload::SearchFirstPage,
    ]
    .into_iter()
    .any(selected)
    {
        match runtime.block_on(serve.wait_until_quiet(QUIET_TIMEOUT))? {
            Some(waited) => eprintln!(
                "bench: waited {:.1} s more for serve to finish its other start-up work (it used under {:.0}% of a core for {} s in a row) before measuring",
                waited.as_secs_f64(),
                QUIET_CPU * 100.0,
                QUIET_WINDOWS as u64 * QUIET_WINDOW.as_secs()
            ),
            None => eprintln!(
                "bench: serve's CPU time is not readable here (/proc), so requests are measured without waiting for its start-up work to finish"
            ),
        }
    }

    let reader = Location::new(data_dir, None)
        .open_reader()
        .with_context(|| format!("cannot read the store in {}", data_dir.display()))?;
    let requests = |(full, quick): (usize, usize)| if plan.quick { quick } else { full };
    if selected(Workload::ProofInclusion) || selected(Workload::ProofConsistency) {
        let (note, key) = runtime.block_on(fetch_signed_tree(&endpoint))?;
        let tree = check_signed_tree(reader.as_ref(), data_dir, &note, &key)?;
        // The whole built log, and perhaps alerts the monitor appended after it.
        ensure!(
            tree.size >= size,
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
            let cpu_before = serve.cpu_seconds();
            let mut proofs = runtime.block_on(request_proofs(
                &endpoint,
                kind,
                tree.size,
                count,
                PROOF_CLIENTS,
                VERIFIED_PROOFS,
                plan.seed,
            ))?;
            proofs.serve_cpu = serve
                .cpu_seconds()
                .zip(cpu_before)
                .map(|(after, before)| after - before);
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
        assert_eq!(large.len(), 6);
        for workload in [Workload::ProofInclusion, Workload::ProofConsistency] {
            let target = workload.target().unwrap();
            assert_eq!((target.value, target.unit), (1.0, Unit::Milliseconds));
        }
        let search = Workload::SearchFirstPage.target().unwrap();
        assert_eq!((search.value, search.unit), (50.0, Unit::Milliseconds));
        assert_eq!(Workload::LargeBuild.target(), None);
        assert_eq!(Workload::IndexCatchUp.target(), None);
        assert_eq!(Workload::IndexIncremental.target(), None);
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
            let monitor = app.monitor_watermarks();
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

            // The monitor reads the served log too: the clinic's failed-login bursts raise
            // alerts, appended after the built events. Once it has read everything, alerts
            // included, the log stays as it is; the checks below are against that log.
            let mut size = EVENTS;
            loop {
                monitor
                    .wait_for(TENANT, size - 1, Duration::from_secs(60))
                    .await
                    .expect("the monitor reads the log");
                let now = store.size(TENANT).unwrap();
                if now == size {
                    break;
                }
                size = now;
            }
            let entries: Vec<(u64, Value)> = store
                .entries(TENANT, 0, size, size as usize)
                .unwrap()
                .into_iter()
                .map(|(seq, entry)| (seq, serde_json::from_slice(&entry.unwrap()).unwrap()))
                .collect();
            assert!(
                entries[EVENTS as usize..]
                    .iter()
                    .all(|(_, e)| e["action"] == "sealtrail.alert.raised"),
                "only alerts follow the built events"
            );
            let catch_up = wait_for_index(&endpoint, size, 2, Instant::now())
                .await
                .unwrap();
            assert!(catch_up.elapsed > Duration::ZERO);
            // The writer signs a checkpoint of the whole log within its interval.
            let (note, key, tree) = loop {
                let (note, key) = fetch_signed_tree(&endpoint).await.unwrap();
                let tree = check_signed_tree(store.as_ref(), &data, &note, &key).unwrap();
                if tree.size == size {
                    break (note, key, tree);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
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
            let checked = check_pages(&queries, &pages.bodies, size).unwrap();
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
                let got = check_page(query, body, size).unwrap();
                assert_eq!(got, expected, "{}", query.path());
            }
            // A page with an event that does not match is refused.
            let actor = (0..queries.len())
                .find(|&i| {
                    queries[i].kind == QueryKind::Actor
                        && !check_page(&queries[i], &pages.bodies[i], size)
                            .unwrap()
                            .is_empty()
                })
                .unwrap();
            let mut wrong = queries[actor].clone();
            wrong.filter.actor = Some("nobody".into());
            assert!(check_page(&wrong, &pages.bodies[actor], size).is_err());

            let _ = stop.send(());
            server.await.unwrap().unwrap();
        });
    }
}
