//! # sealtrail-bench
//!
//! `sealtrail bench`: the brief's performance table, measured on this machine, beside the
//! hand-built baseline measured in the same run.
//!
//! One invocation builds nothing and needs nothing but this binary (and PostgreSQL with
//! `pgbench` for the PostgreSQL figures and the baseline). For each store — the embedded store
//! always, PostgreSQL when `--database-url` (or `PGURL`) is given — and for each round it
//!
//! 1. starts `sealtrail serve` from this same binary as a child process, on a fresh data
//!    directory (and a fresh PostgreSQL database, dropped afterwards), with a token made by
//!    `sealtrail tokens create`, exactly as an operator would;
//! 2. drives it over HTTP with deterministic clinic events ([`clinic`]) through keep-alive
//!    connections ([`load`]): batched ingest, during which it also measures how far the
//!    search index trails what was acknowledged (index lag), then single-event ingest with 64
//!    concurrent clients;
//! 3. runs the workloads registered in [`server_workloads`] against the same server;
//! 4. verifies the log just written, offline, with the same code as `sealtrail verify`.
//!
//! On the embedded store it then runs the workloads "at 10 M events" ([`large`]) on a log of
//! their own: built through the ledger (or taken from `--large-cache`), then served by
//! `sealtrail serve` for index catch-up, proofs and search.
//!
//! Then it runs the baseline (`../shared/baseline/run.sh`, or the copy of it kept in
//! `bench/baseline/`), and prints each figure (the median over rounds) beside the baseline's
//! and beside the brief's target, with both ratios.
//!
//! Every acknowledged event counts and nothing else: a refused request or a rejected event in
//! a batch fails the run, as does a log that does not verify. Figures are what this machine
//! did on this run; nothing here asserts a timing.
//!
//! ## Layout
//!
//! [`clinic`] makes the events, [`server`] starts `sealtrail serve` and makes its tokens,
//! [`load`] drives it over HTTP, `workloads` runs the table on one store (and
//! [`server_workloads`] is where a workload that needs the running server registers),
//! [`large`] runs the 10 M-event workloads, [`baseline`] the hand-built baseline, and
//! `report` prints the figures.
//!
//! **Architecture invariant:** the bench talks to the service as a client does — HTTP, the
//! command line, and the verifier's read-only path — so what it measures is what an operator
//! gets. The one exception is how [`large`] fills its log: through `Ledger::append` in
//! process, the write path behind `POST /v1/events/batch` without HTTP, so that 10 M events
//! take minutes; it then reads that log read-only to know the right answers, and measures
//! only through HTTP.

#![forbid(unsafe_code)]

pub mod baseline;
pub mod clinic;
pub mod large;
pub mod limit;
pub mod load;
mod report;
pub mod server;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The brief's performance table, one workload per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Batched ingest over HTTP, durable: a few clients posting 1,000-event batches.
    Batch,
    /// Single-event ingest over HTTP, 64 concurrent clients.
    Single,
    /// Offline verification of the log just written.
    Verify,
    /// How far search trails acknowledged events during full batched ingest.
    IndexLag,
    /// Building the 10 M-event log through the ledger ([`large`]; informative, no target).
    LargeBuild,
    /// Serve's index catching up with the whole 10 M-event log from none (informative).
    IndexCatchUp,
    /// Indexing batch by batch on top of an index of the 10 M log (informative).
    IndexIncremental,
    /// Inclusion proofs at 10 M events.
    ProofInclusion,
    /// Consistency proofs at 10 M events.
    ProofConsistency,
    /// Filtered search, first page of 100, at 10 M events.
    SearchFirstPage,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Batch,
        Workload::Single,
        Workload::Verify,
        Workload::IndexLag,
        Workload::LargeBuild,
        Workload::IndexCatchUp,
        Workload::IndexIncremental,
        Workload::ProofInclusion,
        Workload::ProofConsistency,
        Workload::SearchFirstPage,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Batch => "batch",
            Workload::Single => "single",
            Workload::Verify => "verify",
            Workload::IndexLag => "index-lag",
            Workload::LargeBuild => "large-build",
            Workload::IndexCatchUp => "index-catch-up",
            Workload::IndexIncremental => "index-incremental",
            Workload::ProofInclusion => "proof-inclusion",
            Workload::ProofConsistency => "proof-consistency",
            Workload::SearchFirstPage => "search-first-page",
        }
    }

    /// The row of the brief's table, as printed.
    pub fn title(self) -> &'static str {
        match self {
            Workload::Batch => "batched ingest over HTTP, durable",
            Workload::Single => "single-event ingest, 64 clients",
            Workload::Verify => "offline verification",
            Workload::IndexLag => "index lag at full batched ingest",
            Workload::LargeBuild => "build of the 10 M-event log",
            Workload::IndexCatchUp => "index catch-up on the 10 M log",
            Workload::IndexIncremental => "indexing batch by batch at 10 M",
            Workload::ProofInclusion => "inclusion proof, 10 M",
            Workload::ProofConsistency => "consistency proof, 10 M",
            Workload::SearchFirstPage => "filtered search, first page, 10 M",
        }
    }

    /// The brief's target for this workload on a 2-core machine; `None` for the informative
    /// figures the brief sets none for.
    pub fn target(self) -> Option<Target> {
        Some(match self {
            Workload::Batch => Target::at_least(150_000.0, Unit::EventsPerSecond),
            Workload::Single => Target {
                p99_ms: Some(10.0),
                ..Target::at_least(25_000.0, Unit::EventsPerSecond)
            },
            // Per core: the figure is entries over the CPU time verification used (it reads
            // on one thread and hashes on another), or over its duration if that is longer.
            Workload::Verify => Target::at_least(1_500_000.0, Unit::EventsPerSecond),
            Workload::IndexLag => Target::at_most(2.0, Unit::Seconds),
            Workload::ProofInclusion | Workload::ProofConsistency => {
                Target::at_most(1.0, Unit::Milliseconds)
            }
            Workload::SearchFirstPage => Target::at_most(50.0, Unit::Milliseconds),
            Workload::LargeBuild | Workload::IndexCatchUp | Workload::IndexIncremental => {
                return None;
            }
        })
    }

    /// The baseline figure this workload is compared with, if the baseline measures it.
    pub fn baseline_key(self) -> Option<&'static str> {
        match self {
            Workload::Single => Some("single_row_events_per_s"),
            Workload::Batch => Some("batch_events_per_s"),
            Workload::Verify => Some("verify_events_per_s"),
            _ => None,
        }
    }
}

/// Which store a figure was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded store in the data directory.
    Embedded,
    /// PostgreSQL.
    Postgres,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// What a figure's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    #[serde(rename = "events/s")]
    EventsPerSecond,
    #[serde(rename = "ms")]
    Milliseconds,
    #[serde(rename = "s")]
    Seconds,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::EventsPerSecond => "events/s",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
        }
    }
}

/// Whether a target is a floor (throughput) or a ceiling (latency, lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    AtLeast,
    AtMost,
}

/// A target from the brief: the value must be at least (or at most) `value`, and the p99
/// latency at most `p99_ms` where the brief says so.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub value: f64,
    pub unit: Unit,
    pub direction: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

impl Target {
    pub const fn at_least(value: f64, unit: Unit) -> Target {
        Target {
            value,
            unit,
            direction: Direction::AtLeast,
            p99_ms: None,
        }
    }

    pub const fn at_most(value: f64, unit: Unit) -> Target {
        Target {
            value,
            unit,
            direction: Direction::AtMost,
            p99_ms: None,
        }
    }

    /// How far `value` is from the target, as a factor where 1 or more means met: value /
    /// target for a floor, target / value for a ceiling.
    pub fn ratio(&self, value: f64) -> f64 {
        match self.direction {
            Direction::AtLeast => value / self.value,
            Direction::AtMost => self.value / value,
        }
    }
}

/// One measured figure: a workload on a store, in one round or as the median of rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub workload: Workload,
    pub store: StoreKind,
    /// The headline number: events/s for throughput, the p99 for proofs and search, the
    /// largest lag seen for index lag.
    pub value: f64,
    pub unit: Unit,
    /// Median per-request latency (index lag: per probed event), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The baseline's figure for the same workload (events/s), measured in the same run.
    pub baseline: Option<f64>,
    /// The brief's target.
    pub target: Option<Target>,
    /// How it was measured: clients, batch size, duration, events.
    pub note: String,
    /// The number of events of the log a large-log workload ran on (`--large-events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_events: Option<u64>,
}

impl Figure {
    /// A figure with the brief's target for its workload and no baseline yet.
    pub fn new(workload: Workload, store: StoreKind, value: f64, unit: Unit) -> Figure {
        Figure {
            workload,
            store,
            value,
            unit,
            p50_ms: None,
            p99_ms: None,
            baseline: None,
            target: workload.target(),
            note: String::new(),
            log_events: None,
        }
    }

    /// The row's title: the workload's, naming the size of the log it ran on where that is
    /// not the brief's 10 M.
    pub fn title(&self) -> String {
        let title = self.workload.title();
        match self.log_events {
            Some(events) if events != large::TARGET_EVENTS => {
                title.replace("10 M", &large::size_text(events))
            }
            _ => title.to_string(),
        }
    }

    /// sealtrail's figure over the baseline's (both events/s, so more is better).
    pub fn baseline_ratio(&self) -> Option<f64> {
        self.baseline
            .filter(|b| *b > 0.0)
            .map(|baseline| self.value / baseline)
    }

    /// See [`Target::ratio`].
    pub fn target_ratio(&self) -> Option<f64> {
        self.target.map(|t| t.ratio(self.value))
    }

    /// The p99 target's ratio (target / p99), where there is one.
    pub fn p99_target_ratio(&self) -> Option<f64> {
        let target = self.target?.p99_ms?;
        self.p99_ms.map(|p99| target / p99)
    }
}

/// A running `sealtrail serve` that a workload talks to.
#[derive(Debug, Clone)]
pub struct Server {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// A token of `tenant` with the scopes events:write, events:read, log:read and verify.
    pub token: String,
    /// The tenant whose log the workloads write and read.
    pub tenant: String,
    pub store: StoreKind,
    /// The server's data directory (the embedded store, keys and the search index).
    pub data_dir: PathBuf,
    /// The PostgreSQL database of this run, for [`StoreKind::Postgres`].
    pub database_url: Option<String>,
}

impl Server {
    /// The address of `base_url`.
    pub fn addr(&self) -> Result<std::net::SocketAddr> {
        let host = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        host.parse()
            .with_context(|| format!("the server's address {:?} is not HOST:PORT", self.base_url))
    }
}

/// The resolved settings of a run, as workloads see them.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The workloads selected (all by default).
    pub workloads: Vec<Workload>,
    /// The stores measured, in order.
    pub stores: Vec<StoreKind>,
    /// How long each timed workload runs, in seconds.
    pub seconds: f64,
    pub rounds: usize,
    pub seed: u64,
    /// The tiny configuration for smoke runs: a second or two per workload.
    pub quick: bool,
    /// Concurrent clients and events per request of batched ingest.
    pub batch_clients: usize,
    pub batch_size: usize,
    /// Concurrent clients of single-event ingest.
    pub single_clients: usize,
    /// Events in the log of the 10 M-event workloads ([`large`]).
    pub large_events: u64,
    /// Where that log is cached between runs, if it is.
    pub large_cache: Option<PathBuf>,
}

impl Plan {
    /// The plan `args` ask for: the brief's configuration, or the tiny one with `--quick`.
    pub fn from_args(args: &BenchArgs) -> Result<Plan> {
        let seconds = args.seconds.unwrap_or(if args.quick { 2.0 } else { 10.0 });
        if !(seconds.is_finite() && seconds > 0.0) {
            bail!("--seconds must be more than 0");
        }
        if args.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        let mut workloads = if args.only.is_empty() {
            Workload::ALL.to_vec()
        } else {
            args.only.clone()
        };
        workloads.sort();
        workloads.dedup();
        let mut stores = if args.store.is_empty() {
            let mut all = vec![StoreKind::Embedded];
            if args.database_url.is_some() {
                all.push(StoreKind::Postgres);
            }
            all
        } else {
            args.store.clone()
        };
        stores.sort();
        stores.dedup();
        if stores.contains(&StoreKind::Postgres) && args.database_url.is_none() {
            bail!("--store postgres needs --database-url (or PGURL)");
        }
        let batch_size = args
            .batch_size
            .unwrap_or(if args.quick { 100 } else { 1_000 });
        if !(1..=sealtrail_server::ingest::MAX_BATCH_EVENTS).contains(&batch_size) {
            bail!(
                "--batch-size must be 1 to {}",
                sealtrail_server::ingest::MAX_BATCH_EVENTS
            );
        }
        let batch_clients = args.batch_clients.unwrap_or(2);
        let single_clients = args.single_clients.unwrap_or(64);
        if batch_clients == 0 || single_clients == 0 {
            bail!("--batch-clients and --single-clients must be at least 1");
        }
        let large_events = args.large_events.unwrap_or(if args.quick {
            large::QUICK_EVENTS
        } else {
            large::DEFAULT_EVENTS
        });
        if large_events < large::MIN_EVENTS {
            bail!("--large-events must be at least {}", large::MIN_EVENTS);
        }
        let large_cache = args
            .large_cache
            .clone()
            .map(|dir| dir.unwrap_or_else(large::default_cache_root));
        Ok(Plan {
            workloads,
            stores,
            seconds,
            rounds: args.rounds,
            seed: args.seed,
            quick: args.quick,
            batch_clients,
            batch_size,
            single_clients,
            large_events,
            large_cache,
        })
    }
}

impl Plan {
    /// How long each timed workload runs.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// What a [`ServerWorkload`] gets: the running server, the plan, its own generator streams
/// and the runtime to drive async clients on (the load driver's [`load::Connection`] and
/// [`load::run`] are there to use).
pub struct WorkloadContext<'a> {
    pub server: &'a Server,
    pub plan: &'a Plan,
    /// The first stream of [`clinic::Clinic`] this workload may use; 10,000 of them from
    /// here are its own, so its events never repeat another workload's idempotency keys.
    pub stream_base: u64,
    pub runtime: &'a tokio::runtime::Runtime,
}

/// A workload that runs against a running server, after the ingest workloads and before
/// offline verification (which then covers what it wrote too). It returns its figures, made
/// with [`Figure::new`] for its [`Workload`] on `context.server.store`, and fails on any
/// answer it did not expect.
pub type ServerWorkload = fn(&WorkloadContext<'_>) -> Result<Vec<Figure>>;

/// The workloads run through [`ServerWorkload`] (the 10 M-event workloads need a log of
/// their own and run in [`large`] instead). A selected workload with neither a figure from the ingest workloads nor an
/// entry here is reported as not measured.
pub fn server_workloads() -> Vec<(Workload, ServerWorkload)> {
    Vec::new()
}

/// `sealtrail bench` options.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Runs the brief's performance workloads against `sealtrail serve` (started from this binary on a fresh data directory, and on a fresh PostgreSQL database when --database-url or PGURL is given) and the hand-built baseline (../shared/baseline/run.sh, or the copy in bench/baseline/, through psql and pgbench), and prints each figure beside the baseline's and the brief's target with the ratios. Figures are medians over --rounds; each round is printed as it finishes. Nothing is asserted about timings: the exit status is 1 only when a workload fails (a refused request, a rejected event, a log that does not verify).")]
pub struct BenchArgs {
    /// Seconds each timed workload runs (default 10; 2 with --quick)
    #[arg(long, value_name = "SECS")]
    pub seconds: Option<f64>,
    /// Rounds to run; figures are the medians
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub rounds: usize,
    /// Seed of the generated clinic events: the same seed sends the same events
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A tiny configuration (2 s per workload, 100-event batches): a smoke run, not a measurement
    #[arg(long)]
    pub quick: bool,
    /// Also measure sealtrail on PostgreSQL, and the baseline, through this server (a fresh
    /// database is created on it and dropped afterwards)
    #[arg(long, value_name = "URL", env = "PGURL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Do not run the baseline
    #[arg(long)]
    pub skip_baseline: bool,
    /// Run only these workloads (repeatable): batch, single, verify, index-lag, large-build,
    /// index-catch-up, proof-inclusion, proof-consistency, search-first-page
    #[arg(long, value_name = "WORKLOAD")]
    pub only: Vec<Workload>,
    /// Measure only these stores (repeatable): embedded, postgres
    #[arg(long, value_name = "STORE")]
    pub store: Vec<StoreKind>,
    /// Concurrent clients of batched ingest (default 2, as the baseline's batch run)
    #[arg(long, value_name = "N")]
    pub batch_clients: Option<usize>,
    /// Events per batch (default 1000, as the baseline's batch run; 100 with --quick)
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Concurrent clients of single-event ingest (default 64, as the brief's table)
    #[arg(long, value_name = "N")]
    pub single_clients: Option<usize>,
    /// Print the rounds and medians as JSON on stdout (progress still goes to stderr)
    #[arg(long)]
    pub json: bool,
    /// Events in the log of the large workloads (default 10,000,000; 20,000 with --quick)
    #[arg(long, value_name = "N")]
    pub large_events: Option<u64>,
    /// Keep the log of the large workloads in DIR/<seed>-<events>/ (default
    /// target/bench-cache) and reuse it in later runs of the same build of sealtrail
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub large_cache: Option<Option<PathBuf>>,
    /// Do not measure the machine's limit (the cost of each step an event needs, alone), which
    /// is otherwise measured once before the rounds when batch, single or verify is selected
    #[arg(long)]
    pub no_limit: bool,
}

/// Runs `sealtrail bench`: every round of every store, then the baseline, then the table.
pub fn run(args: BenchArgs) -> Result<()> {
    let result = run_rounds(args);
    if server::interrupted() {
        // The signal handler is cleaning up and exits the process when done; what failed
        // here meanwhile is only the interruption.
        loop {
            std::thread::park();
        }
    }
    result
}

fn run_rounds(args: BenchArgs) -> Result<()> {
    let plan = Plan::from_args(&args)?;
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let script = baseline::locate();
    let wants_baseline = plan.workloads.iter().any(|w| w.baseline_key().is_some());
    let baseline_plan = if args.skip_baseline {
        BaselinePlan::Skipped("--skip-baseline".to_string())
    } else if !wants_baseline {
        BaselinePlan::Skipped("no selected workload has a baseline figure".to_string())
    } else if let Some(reason) = baseline::unavailable(args.database_url.as_deref()) {
        if in_ci {
            bail!("the baseline cannot run ({reason}); in CI it must");
        }
        BaselinePlan::Unavailable(reason)
    } else {
        BaselinePlan::Run(script.clone())
    };
    let machine = report::Machine::detect();
    let out = report::Printer::new(args.json);
    out.header(&plan, &machine, &baseline_plan);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.spawn(server::clean_up_on_signal());
    let clinic = clinic::Clinic::new(plan.seed);
    let limit = if !args.no_limit && limit::wanted(&plan) {
        let measured = limit::measure(&runtime, &plan, &clinic)
            .context("measuring the machine's limit failed")?;
        out.limit(&measured);
        Some(measured)
    } else {
        None
    };
    let mut large_log = large::Session::default();
    let mut rounds = Vec::new();
    for round in 1..=plan.rounds {
        let mut figures = Vec::new();
        for &store in &plan.stores {
            if plan.workloads.iter().any(|&w| !large::is_large(w)) {
                let measured = workloads::run_store(
                    &runtime,
                    &plan,
                    store,
                    args.database_url.as_deref(),
                    &clinic,
                    &mut |figure| out.figure(round, figure),
                )?;
                figures.extend(measured.figures);
            }
            // The 10 M-event workloads run on a log of their own, on the embedded store.
            if store == StoreKind::Embedded && plan.workloads.iter().any(|&w| large::is_large(w)) {
                figures.extend(large::run(
                    &mut large_log,
                    &runtime,
                    &plan,
                    &clinic,
                    &mut |figure| out.figure(round, figure),
                )?);
            }
        }
        let measured_baseline = match &baseline_plan {
            BaselinePlan::Run(script) => {
                let url = args
                    .database_url
                    .as_deref()
                    .expect("checked by unavailable");
                let seconds = plan.seconds.ceil() as u64;
                let result = baseline::run(script, url, seconds)?;
                out.baseline(round, &result);
                Some(result)
            }
            _ => None,
        };
        for figure in &mut figures {
            figure.baseline = figure
                .workload
                .baseline_key()
                .and_then(|key| measured_baseline.as_ref()?.get(key));
        }
        rounds.push(report::Round {
            round,
            figures,
            baseline: measured_baseline,
        });
    }
    let medians = report::medians(&rounds);
    let missing = report::not_measured(&plan, &medians);
    let results = report::Results {
        rounds: &rounds,
        medians: &medians,
        missing: &missing,
        limit: limit.as_ref(),
    };
    out.summary(&plan, &machine, &baseline_plan, &results)?;
    Ok(())
}

/// Whether and how the baseline runs.
#[derive(Debug, Clone)]
pub enum BaselinePlan {
    Run(baseline::Script),
    Skipped(String),
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ratios_are_one_or_more_when_met() {
        let batch = Workload::Batch.target().unwrap();
        assert_eq!(batch.ratio(300_000.0), 2.0);
        assert_eq!(batch.ratio(75_000.0), 0.5);
        let lag = Workload::IndexLag.target().unwrap();
        assert_eq!(lag.ratio(1.0), 2.0);
        assert_eq!(lag.ratio(4.0), 0.5);
    }

    #[test]
    fn figures_compare_with_the_baseline_and_the_p99_target() {
        let mut single = Figure::new(
            Workload::Single,
            StoreKind::Embedded,
            30_000.0,
            Unit::EventsPerSecond,
        );
        assert_eq!(single.baseline_ratio(), None);
        single.baseline = Some(1_200.0);
        single.p99_ms = Some(20.0);
        assert_eq!(single.baseline_ratio(), Some(25.0));
        assert_eq!(single.target_ratio(), Some(1.2));
        assert_eq!(single.p99_target_ratio(), Some(0.5));
    }

    #[test]
    fn only_throughput_workloads_have_a_baseline() {
        let with: Vec<_> = Workload::ALL
            .into_iter()
            .filter(|w| w.baseline_key().is_some())
            .collect();
        assert_eq!(with, [Workload::Batch, Workload::Single, Workload::Verify]);
    }
}
