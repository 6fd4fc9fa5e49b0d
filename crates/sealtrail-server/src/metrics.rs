//! Prometheus metrics and the in-memory activity signals behind `GET /health`.
//!
//! One registry per process, reached through free functions ([`events_ingested`],
//! [`group_committed`], [`checkpoint_signed`], [`record_verification`], [`set_index_lag`],
//! …), so that any module can record without threading a handle through the ledger, the
//! HTTP state and the watchers. `GET /metrics` encodes it with [`render`]; `GET /health`
//! reads [`activity`] and [`index_lag`] (its chain status comes from the verification
//! board, which keeps each tenant's latest result and its violations).
//!
//! | metric | type | recorded by |
//! | --- | --- | --- |
//! | `sealtrail_events_ingested_total{tenant,outcome}` | counter | HTTP ingest, per event: `created`, `duplicate`, `rejected` (4xx), `failed` (not committed), `spooled` (kept in the outage spool), `held` (kept in a frozen tenant's hold file) |
//! | `sealtrail_ingest_errors_total{kind}` | counter | HTTP ingest, per error by its API error code |
//! | `sealtrail_frozen_refusals_total{tenant}` | counter | the ingest service, via [`frozen_refused`]: requests refused because their tenant is frozen (`503 tenant_frozen`; not counted in `sealtrail_events_ingested_total`, whose `failed` means a write that failed) |
//! | `sealtrail_held_events{tenant}` | gauge | the writer, via [`set_held`]: events this instance holds in a frozen tenant's hold file (`on_frozen = "spool"`), waiting for the unfreeze to enter the log; 0 once drained |
//! | `sealtrail_batch_size` | histogram | the ledger, events per group commit |
//! | `sealtrail_commit_latency_seconds` | histogram | the ledger, one group commit including its fsync |
//! | `sealtrail_commit_failures_total` | counter | the ledger, group commits that failed |
//! | `sealtrail_index_lag_seconds` | gauge | the indexer, via [`set_index_lag`] |
//! | `sealtrail_checkpoint_age_seconds{tenant}` | gauge | computed at scrape from [`checkpoint_signed`] |
//! | `sealtrail_checkpoint_unsigned_entries{tenant}` | gauge | read at scrape by [`observe_checkpoints`]: entries of the log beyond its latest checkpoint (the whole log when it has none), so that an old checkpoint of a quiet log (0) can be told from a log growing unsigned |
//! | `sealtrail_verification_runs_total{result}` | counter | the verifier, via [`record_verification`] |
//! | `sealtrail_searches_refused_total{reason}` | counter | the query service, via [`search_refused`]: `tenant_share` (429), `capacity` (503), `timeout` (503 `query_timeout`) |
//! | `sealtrail_chain_violations_total` | counter | the verification board, via [`record_verification`]: distinct violations, each counted once when first found |
//! | `sealtrail_chain_violations_known` | gauge | the verification board, via [`set_known_violations`]: violations known now, across logs (0 once every log verifies whole again) |
//! | `sealtrail_verification_last_run_timestamp_seconds` | gauge | the verifier, via [`record_verification`]: when a verification last finished (0 before the first) |
//! | `sealtrail_disk_usage_ratio` | gauge | `GET /metrics`, via [`set_disk_usage`]: used fraction of the data directory's file system |
//! | `sealtrail_auth_refusals_total{reason}` | counter | every 401 and 403, via [`auth_refused`], by why: `missing_token`, `malformed_header`, `unknown_token`, `revoked`, `missing_scope`, `wrong_tenant`, `reserved_tenant` |
//! | `sealtrail_gaps_open{tenant,kind}`, `sealtrail_gap_findings_total{tenant,kind}`, `sealtrail_producer_missing_events_total{tenant}`, `sealtrail_producer_silent{tenant}` | gauge, counters, gauge | the gap detector (`crate::gaps::metrics`, which registers them here) |
//! | `sealtrail_http_connections` | gauge | the accept loop: client connections open now |
//! | `sealtrail_http_connection_limit` | gauge | the accept loop: `max_connections` |
//! | `sealtrail_http_connections_shed_total` | counter | the accept loop: connections that had sent no request, closed at the cap to make room for a new one |
//! | `sealtrail_http_timeouts_total{phase}` | counter | connections closed past their deadline: `header` (a head too slow), `idle` (idle between requests), `write` (an answer the client does not take) |
//! | `sealtrail_store_wal_bytes{file}` | gauge | read at scrape by [`observe_wal`]: the size of the write-ahead log of `sealtrail.db` (the embedded store; absent on PostgreSQL) and of `index.db` (the query index) |
//! | `sealtrail_admin_refusals_total{outcome}` | counter | refused admin attempts, via [`admin_refused`]: `recorded` in the `_system` log, `suppressed` (over the limits of `refusals`), `failed` (the record could not be written) |
//! | `sealtrail_archive_archived_size{tenant}` | gauge | the archiver (`crate::archive`), via [`set_archive_lag`]: entries of the log the archive holds, as the target's signed manifests say |
//! | `sealtrail_archive_lag_entries{tenant}` | gauge | the archiver: the log's size less the archived size (entries waiting for their first checkpoint count too) |
//! | `sealtrail_archive_lag_seconds{tenant}` | gauge | the archiver: how long the oldest signed entry not archived yet has waited since it was received; 0 when every signed entry is archived; NaN when that entry cannot be read |
//! | `sealtrail_archive_last_success_timestamp_seconds` | gauge | the archiver, via [`archive_succeeded`]: when this instance last finished a round without an error, holding the lease (0 before the first) |
//! | `sealtrail_archive_errors_total{tenant}` | counter | the archiver, via [`archive_failed`]: rounds in which a log could not be archived (or its archive read), whatever the cause — the target refused for its lock, unreachable, the store, the key |
//! | `sealtrail_archive_lease_held` | gauge | the archiver, via [`set_archive_lease`]: 1 while this instance holds the archive lease (it archives), 0 while another does or no archive is configured |
//! | `sealtrail_retention_runs_total{outcome}` | counter | the retention schedule (`crate::retention::schedule`), via [`retention_run`]: each tenant's period applied, by outcome — `pruned`, `nothing` (nothing more to prune), `refused` (the archive differs from the store, or cannot be trusted: nothing pruned), `failed` (the store, the archive or the key could not be read; also a round that could not start) |
//! | `sealtrail_retention_pruned_entries_total{tenant}` | counter | the retention schedule, via [`retention_pruned`]: entries it removed from each log |
//!
//! Ingest requests refused before their handler runs (no or unknown token, a body over the
//! size limit) are not counted here.
//!
//! The exposition is the OpenMetrics text format (what `prometheus-client` writes and
//! Prometheus negotiates by default); it is also valid Prometheus 0.0.4 text.
//!
//! Label values are bounded: tenants are created by administrators only, and callers of
//! [`events_ingested`] pass a tenant only once the ledger knows it, so a client cannot grow
//! the series count by naming made-up tenants.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;

use crate::readers::{ReadError, Readers};
use crate::spool::SpoolStatus;

/// The window of `audit_log_count_5m` in `GET /health`.
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of one event offered for ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Committed as a new entry.
    Created,
    /// Its idempotency key was seen before; the original receipt was returned.
    Duplicate,
    /// Refused as invalid (a 4xx): the producer must fix it.
    Rejected,
    /// Not committed because of the server or the store (a 5xx): the producer should retry.
    Failed,
    /// The store was unreachable: kept in the local spool (a 202), to be drained into the log.
    Spooled,
    /// The tenant is frozen: kept in its hold file (a 202), to be drained into the log once
    /// it is unfrozen.
    Held,
}

impl IngestOutcome {
    /// Every outcome, in declaration order (so `outcome as usize` indexes it).
    pub const ALL: [IngestOutcome; 6] = [
        IngestOutcome::Created,
        IngestOutcome::Duplicate,
        IngestOutcome::Rejected,
        IngestOutcome::Failed,
        IngestOutcome::Spooled,
        IngestOutcome::Held,
    ];

    fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Created => "created",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Rejected => "rejected",
            IngestOutcome::Failed => "failed",
            IngestOutcome::Spooled => "spooled",
            IngestOutcome::Held => "held",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    tenant: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What became of one refused admin attempt (see `crate::refusals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalOutcome {
    /// Appended to the `_system` log.
    Recorded,
    /// Over the limits: counted only here and in the source's next record.
    Suppressed,
    /// The record could not be written (the store failed).
    Failed,
}

impl RefusalOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RefusalOutcome::Recorded => "recorded",
            RefusalOutcome::Suppressed => "suppressed",
            RefusalOutcome::Failed => "failed",
        }
    }
}

/// What became of applying one tenant's retention period (see `crate::retention::schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionOutcome {
    /// Entries were pruned.
    Pruned,
    /// Nothing (more) could be pruned: too young, not archived yet, held, or the newest.
    Nothing,
    /// Nothing was pruned because the archive differs from the store, or is a target the
    /// operator did not allow, or the writer refused the prune.
    Refused,
    /// The store, the archive or the log's key could not be read.
    Failed,
}

impl RetentionOutcome {
    /// Every outcome.
    pub const ALL: [RetentionOutcome; 4] = [
        RetentionOutcome::Pruned,
        RetentionOutcome::Nothing,
        RetentionOutcome::Refused,
        RetentionOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionOutcome::Pruned => "pruned",
            RetentionOutcome::Nothing => "nothing",
            RetentionOutcome::Refused => "refused",
            RetentionOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Why a search was not answered: the reasons of `sealtrail_searches_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchRefusal {
    /// The tenant already ran as many searches as its share allows (429).
    TenantShare,
    /// The process already ran as many searches as it allows (503).
    Capacity,
    /// The search ran past its time limit and was stopped (503 `query_timeout`).
    Timeout,
}

impl SearchRefusal {
    const ALL: [SearchRefusal; 3] = [
        SearchRefusal::TenantShare,
        SearchRefusal::Capacity,
        SearchRefusal::Timeout,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SearchRefusal::TenantShare => "tenant_share",
            SearchRefusal::Capacity => "capacity",
            SearchRefusal::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

type GaugeF64 = Gauge<f64, AtomicU64>;

struct Metrics {
    registry: Registry,
    events_ingested: Family<IngestLabels, Counter>,
    ingest_errors: Family<KindLabel, Counter>,
    frozen_refusals: Family<TenantLabel, Counter>,
    held_events: Family<TenantLabel, Gauge>,
    batch_size: Histogram,
    commit_latency: Histogram,
    commit_failures: Counter,
    index_lag: GaugeF64,
    checkpoint_age: Family<TenantLabel, GaugeF64>,
    checkpoint_unsigned: Family<TenantLabel, Gauge>,
    verification_runs: Family<ResultLabel, Counter>,
    chain_violations: Counter,
    searches_refused: Family<ReasonLabel, Counter>,
    chain_violations_known: Gauge,
    verification_last_run: GaugeF64,
    disk_usage: GaugeF64,
    auth_refusals: Family<ReasonLabel, Counter>,
    admin_refusals: Family<OutcomeLabel, Counter>,
    spool_depth: Gauge,
    spool_bytes: Gauge,
    spool_oldest_age: GaugeF64,
    http_connections: Gauge,
    http_connection_limit: Gauge,
    http_timeouts: Family<PhaseLabel, Counter>,
    http_shed: Counter,
    wal_bytes: Family<FileLabel, Gauge>,
    archive_archived_size: Family<TenantLabel, Gauge>,
    archive_lag_entries: Family<TenantLabel, Gauge>,
    archive_lag_seconds: Family<TenantLabel, GaugeF64>,
    archive_last_success: GaugeF64,
    archive_errors: Family<TenantLabel, Counter>,
    archive_lease_held: Gauge,
    retention_runs: Family<OutcomeLabel, Counter>,
    retention_pruned: Family<TenantLabel, Counter>,
    /// The spool's latest state, for the oldest-age gauge; `None` when there is no spool (the
    /// embedded store). What `/health` reports is the application's own (`Ledger::spool_status`).
    spool: Mutex<Option<SpoolStatus>>,
    /// Signals for `GET /health` that counters alone cannot answer (how recent, not how many).
    activity: Mutex<ActivityState>,
    /// When each tenant's latest checkpoint was signed (Unix microseconds); the age gauge is
    /// computed from it at scrape time, so it keeps growing while signing is stalled.
    checkpoints: Mutex<HashMap<String, i64>>,
    /// Each tenant's latest verification result: true when its chain was valid.
    /// The indexer's last reported lag as `f64` bits; NaN until it reports.
    index_lag_bits: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Locks a mutex even if a panicking thread poisoned it: every value guarded here is a
/// self-contained measurement that stays meaningful, and metrics must never take the
/// service down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let events_ingested = Family::<IngestLabels, Counter>::default();
        registry.register(
            "sealtrail_events_ingested",
            "Events offered for ingest, by tenant and outcome (created, duplicate, rejected, failed, spooled, held)",
            events_ingested.clone(),
        );
        let ingest_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "sealtrail_ingest_errors",
            "Ingest errors by API error code",
            ingest_errors.clone(),
        );
        let frozen_refusals = Family::<TenantLabel, Counter>::default();
        registry.register(
            "sealtrail_frozen_refusals",
            "Ingest requests refused because their tenant is frozen (sealtrail freeze), by tenant",
            frozen_refusals.clone(),
        );
        let held_events = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "sealtrail_held_events",
            "Events held for a frozen tenant (on_frozen = spool), waiting for the unfreeze to enter its log, by tenant",
            held_events.clone(),
        );
        // One event up to a full group of MAX_GROUP_EVENTS (20,000): powers of two to 32,768.
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        registry.register(
            "sealtrail_batch_size",
            "Events per group commit",
            batch_size.clone(),
        );
        // 100 µs (an fsync is 150-200 µs) doubling up to about 6.5 s.
        let commit_latency = Histogram::new(exponential_buckets(0.000_1, 2.0, 17));
        registry.register_with_unit(
            "sealtrail_commit_latency",
            "Duration of one group commit, fsync included",
            Unit::Seconds,
            commit_latency.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "sealtrail_commit_failures",
            "Group commits that failed; every request in such a group was told nothing was committed",
            commit_failures.clone(),
        );
        let index_lag = GaugeF64::default();
        // NaN until the indexer reports: unknown, not zero.
        index_lag.set(f64::NAN);
        registry.register_with_unit(
            "sealtrail_index_lag",
            "How far the query index trails the log (NaN until the indexer reports)",
            Unit::Seconds,
            index_lag.clone(),
        );
        let checkpoint_age = Family::<TenantLabel, GaugeF64>::default();
        registry.register_with_unit(
            "sealtrail_checkpoint_age",
            "Time since each tenant's latest checkpoint was signed",
            Unit::Seconds,
            checkpoint_age.clone(),
        );
        let checkpoint_unsigned = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "sealtrail_checkpoint_unsigned_entries",
            "Entries of each tenant's log beyond its latest checkpoint (0 when the checkpoint covers the log)",
            checkpoint_unsigned.clone(),
        );
        let verification_runs = Family::<ResultLabel, Counter>::default();
        // Both series exist from the start, so that rate() and absent() alerts work before
        // the first violation.
        for result in ["valid", "violated"] {
            verification_runs.get_or_create_owned(&ResultLabel { result });
        }
        registry.register(
            "sealtrail_verification_runs",
            "Background verification runs by result (valid, violated)",
            verification_runs.clone(),
        );
        let chain_violations = Counter::default();
        registry.register(
            "sealtrail_chain_violations",
            "Distinct chain violations found by verification, each counted once when first found",
            chain_violations.clone(),
        );
        let searches_refused = Family::<ReasonLabel, Counter>::default();
        for reason in SearchRefusal::ALL {
            searches_refused.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        registry.register(
            "sealtrail_searches_refused",
            "Searches not answered, by reason (tenant_share, capacity, timeout)",
            searches_refused.clone(),
        );
        let chain_violations_known = Gauge::default();
        registry.register(
            "sealtrail_chain_violations_known",
            "Chain violations currently known across logs (until a whole-log verification finds the log intact)",
            chain_violations_known.clone(),
        );
        let verification_last_run = GaugeF64::default();
        registry.register(
            "sealtrail_verification_last_run_timestamp_seconds",
            "Unix time when a log verification last finished (0 before the first)",
            verification_last_run.clone(),
        );
        let disk_usage = GaugeF64::default();
        // NaN until measured: unknown, not empty.
        disk_usage.set(f64::NAN);
        registry.register(
            "sealtrail_disk_usage_ratio",
            "Used fraction of the file system holding the data directory (0 to 1)",
            disk_usage.clone(),
        );
        let auth_refusals = Family::<ReasonLabel, Counter>::default();
        for reason in [
            "missing_token",
            "malformed_header",
            "unknown_token",
            "revoked",
            "missing_scope",
            "wrong_tenant",
        ] {
            auth_refusals.get_or_create_owned(&ReasonLabel { reason });
        }
        registry.register(
            "sealtrail_auth_refusals",
            "Requests refused with 401 or 403, by why (missing_token, unknown_token, revoked, missing_scope, wrong_tenant, ...)",
            auth_refusals.clone(),
        );
        let admin_refusals = Family::<OutcomeLabel, Counter>::default();
        for outcome in ["recorded", "suppressed", "failed"] {
            admin_refusals.get_or_create_owned(&OutcomeLabel { outcome });
        }
        registry.register(
            "sealtrail_admin_refusals",
            "Refused attempts at the admin API by outcome (recorded in the _system log, suppressed over the limits, failed)",
            admin_refusals.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "sealtrail_spool_depth",
            "Events accepted into the local spool while the store was unreachable, not yet in the log",
            spool_depth.clone(),
        );
        let spool_bytes = Gauge::default();
        registry.register_with_unit(
            "sealtrail_spool",
            "Size of the spooled events waiting to be drained",
            Unit::Bytes,
            spool_bytes.clone(),
        );
        let spool_oldest_age = GaugeF64::default();
        registry.register_with_unit(
            "sealtrail_spool_oldest_age",
            "Age of the oldest event waiting in the spool (0 when none waits)",
            Unit::Seconds,
            spool_oldest_age.clone(),
        );
        crate::gaps::metrics::register(&mut registry);
        crate::monitor::metrics::register(&mut registry);
        crate::seals::metrics::register(&mut registry);
        let http_connections = Gauge::default();
        registry.register(
            "sealtrail_http_connections",
            "Client connections open now",
            http_connections.clone(),
        );
        let http_connection_limit = Gauge::default();
        registry.register(
            "sealtrail_http_connection_limit",
            "The most client connections served at once (max_connections); more wait in the listen backlog",
            http_connection_limit.clone(),
        );
        let http_timeouts = Family::<PhaseLabel, Counter>::default();
        for phase in ["header", "idle", "write"] {
            http_timeouts.get_or_create_owned(&PhaseLabel { phase });
        }
        registry.register(
            "sealtrail_http_timeouts",
            "Connections closed past their deadline, by phase (header, idle, write)",
            http_timeouts.clone(),
        );
        let http_shed = Counter::default();
        registry.register(
            "sealtrail_http_connections_shed",
            "Connections that had sent no request, closed at max_connections to make room for a new one",
            http_shed.clone(),
        );
        let wal_bytes = Family::<FileLabel, Gauge>::default();
        registry.register_with_unit(
            "sealtrail_store_wal",
            "Size of the write-ahead log of the embedded store (sealtrail.db) and of the query index (index.db): restarted at 64 MiB (the index's at 16 MiB) under load, truncated to 0 after five seconds without writes",
            Unit::Bytes,
            wal_bytes.clone(),
        );
        let archive_archived_size = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "sealtrail_archive_archived_size",
            "Entries of each log the archive holds, as the target's signed manifests say",
            archive_archived_size.clone(),
        );
        let archive_lag_entries = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "sealtrail_archive_lag_entries",
            "Entries of each log not archived yet: the log's size less the archived size",
            archive_lag_entries.clone(),
        );
        let archive_lag_seconds = Family::<TenantLabel, GaugeF64>::default();
        registry.register_with_unit(
            "sealtrail_archive_lag",
            "How long the oldest signed entry of each log not archived yet has waited since it was received (0 when every signed entry is archived)",
            Unit::Seconds,
            archive_lag_seconds.clone(),
        );
        let archive_last_success = GaugeF64::default();
        registry.register(
            "sealtrail_archive_last_success_timestamp_seconds",
            "Unix time when this instance last finished an archive round without an error, holding the lease (0 before the first)",
            archive_last_success.clone(),
        );
        let archive_errors = Family::<TenantLabel, Counter>::default();
        registry.register(
            "sealtrail_archive_errors",
            "Archive rounds in which a log could not be archived or its archive read",
            archive_errors.clone(),
        );
        let archive_lease_held = Gauge::default();
        registry.register(
            "sealtrail_archive_lease_held",
            "1 while this instance holds the archive lease and archives; 0 while another instance does, or without an archive",
            archive_lease_held.clone(),
        );
        let retention_runs = Family::<OutcomeLabel, Counter>::default();
        // Every outcome exists from the start, at 0, so that the alert's increase() sees the
        // first refusal or failure.
        for outcome in RetentionOutcome::ALL {
            retention_runs.get_or_create_owned(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        registry.register(
            "sealtrail_retention_runs",
            "Retention periods applied to a tenant's log by the server's schedule, by outcome (pruned, nothing, refused, failed)",
            retention_runs.clone(),
        );
        let retention_pruned = Family::<TenantLabel, Counter>::default();
        registry.register(
            "sealtrail_retention_pruned_entries",
            "Entries the retention schedule pruned from each log, after comparing them with the archive",
            retention_pruned.clone(),
        );
        Metrics {
            registry,
            retention_runs,
            retention_pruned,
            archive_archived_size,
            archive_lag_entries,
            archive_lag_seconds,
            archive_last_success,
            archive_errors,
            archive_lease_held,
            http_shed,
            http_connections,
            http_connection_limit,
            http_timeouts,
            wal_bytes,
            spool_depth,
            spool_bytes,
            spool_oldest_age,
            spool: Mutex::new(None),
            events_ingested,
            ingest_errors,
            frozen_refusals,
            held_events,
            batch_size,
            commit_latency,
            commit_failures,
            index_lag,
            checkpoint_age,
            checkpoint_unsigned,
            verification_runs,
            chain_violations,
            searches_refused,
            chain_violations_known,
            verification_last_run,
            disk_usage,
            auth_refusals,
            admin_refusals,
            activity: Mutex::new(ActivityState::default()),
            checkpoints: Mutex::new(HashMap::new()),
            index_lag_bits: AtomicU64::new(f64::NAN.to_bits()),
        }
    }
}

/// Counts `count` events of `tenant` with `outcome`. Created events also count toward
/// `audit_log_count_5m` and the last event's age in `GET /health`.
pub fn events_ingested(tenant: &str, outcome: IngestOutcome, count: u64) {
    if count == 0 {
        return;
    }
    let metrics = &*METRICS;
    metrics
        .events_ingested
        .get_or_create(&IngestLabels {
            tenant: tenant.to_string(),
            outcome: outcome.as_str(),
        })
        .inc_by(count);
    if outcome == IngestOutcome::Created {
        lock(&metrics.activity).events_created(Instant::now(), count);
    }
}

/// Counts one ingest error by its API error code (`invalid_event`, `not_durable`, …).
pub fn ingest_error(kind: &'static str) {
    METRICS
        .ingest_errors
        .get_or_create(&KindLabel { kind })
        .inc();
}

/// Counts one ingest request refused because `tenant` is frozen. The tenant exists (only an
/// existing tenant can be frozen), so the label set stays bounded.
pub fn frozen_refused(tenant: &str) {
    METRICS
        .frozen_refusals
        .get_or_create(&TenantLabel {
            tenant: tenant.to_string(),
        })
        .inc();
}

/// Counts one search not answered, and why.
pub fn search_refused(reason: SearchRefusal) {
    METRICS
        .searches_refused
        .get_or_create(&ReasonLabel {
            reason: reason.as_str(),
        })
        .inc();
}

/// Counts one refused admin attempt by what became of it.
pub fn admin_refused(outcome: RefusalOutcome) {
    METRICS
        .admin_refusals
        .get_or_create(&OutcomeLabel {
            outcome: outcome.as_str(),
        })
        .inc();
}

/// Records one group commit of the ledger: how many events it carried, how long it took and
/// whether it failed (with the reason, which `GET /health` reports).
pub fn group_committed(events: usize, latency: Duration, error: Option<&dyn std::fmt::Display>) {
    let metrics = &*METRICS;
    metrics.batch_size.observe(events as f64);
    let now = Instant::now();
    match error {
        None => {
            metrics.commit_latency.observe(latency.as_secs_f64());
            lock(&metrics.activity).commit_succeeded(now);
        }
        Some(error) => {
            metrics.commit_failures.inc();
            lock(&metrics.activity).commit_failed(now, error.to_string());
        }
    }
}

/// Records that `tenant`'s checkpoint issued at `at` was stored. Keeps the newest time seen,
/// so that a late report of an older checkpoint (the store read at scrape time) never makes
/// the log look staler than it is.
pub fn checkpoint_signed(tenant: &str, at: Timestamp) {
    let mut checkpoints = lock(&METRICS.checkpoints);
    let latest = checkpoints.entry(tenant.to_string()).or_insert(i64::MIN);
    *latest = (*latest).max(at.unix_micros());
}

/// Reads, before a scrape, each tenant's log size and latest stored checkpoint: the entries
/// beyond the checkpoint become `sealtrail_checkpoint_unsigned_entries`, and the checkpoint's
/// signing time feeds the age gauge (the newest time seen wins, so this only matters for
/// checkpoints signed before this process started or by another process sharing the store).
/// Two point reads per tenant, on the control path.
pub async fn observe_checkpoints(readers: &Readers) -> Result<(), ReadError> {
    // On the control path: a scrape must answer while searches fill the other readers.
    let observed = readers
        .control(|conn| {
            let mut observed = Vec::new();
            for tenant in conn.tenants()? {
                let size = conn.size(&tenant.name)?;
                let latest = conn.latest_checkpoint(&tenant.name)?;
                let signed = latest.as_ref().map_or(0, |c| c.size);
                let at = latest.and_then(|c| issued_at(&c.note));
                observed.push((tenant.name, size.saturating_sub(signed), at));
            }
            Ok::<_, ReadError>(observed)
        })
        .await?;
    for (tenant, unsigned, at) in observed {
        if let Some(at) = at {
            checkpoint_signed(&tenant, at);
        }
        METRICS
            .checkpoint_unsigned
            .get_or_create(&TenantLabel { tenant })
            .set(i64::try_from(unsigned).unwrap_or(i64::MAX));
    }
    Ok(())
}

/// When a stored checkpoint note says it was issued (its `sealtrail-timestamp` line). Used
/// for an age gauge only, so the note is parsed, not verified.
fn issued_at(note: &str) -> Option<Timestamp> {
    let note = sealtrail_core::note::parse(note.as_bytes()).ok()?;
    Checkpoint::parse(&note.text).ok()?.timestamp
}

/// Records one verification run of a log: valid or not, and how many violations it found
/// that were not known before (the board decides which are new, so that the same damage found
/// again at every run is counted once). The latest result per tenant, which `GET /health`
/// reports as `chain`, is kept by the verification board.
pub fn record_verification(valid: bool, new_violations: u64) {
    let metrics = &*METRICS;
    let result = if valid { "valid" } else { "violated" };
    metrics
        .verification_runs
        .get_or_create(&ResultLabel { result })
        .inc();
    metrics.chain_violations.inc_by(new_violations);
    let now = crate::clock::Clock::system().now().unix_micros();
    metrics.verification_last_run.set(now as f64 / 1e6);
}

/// Sets how many chain violations are known now, across logs.
pub fn set_known_violations(count: u64) {
    METRICS
        .chain_violations_known
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Records the used fraction of the data directory's file system.
pub fn set_disk_usage(ratio: f64) {
    METRICS.disk_usage.set(ratio);
}

/// Counts one request refused with 401 or 403, by the error code answered. Codes are the
/// API's fixed set, so the label is bounded.
pub fn auth_refused(reason: &'static str) {
    METRICS
        .auth_refusals
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Records how many events this instance holds for `tenant` after its hold file changed. The
/// tenant exists (only an existing tenant is frozen), so the label set stays bounded.
pub fn set_held(tenant: &str, events: u64) {
    METRICS
        .held_events
        .get_or_create(&TenantLabel {
            tenant: tenant.to_string(),
        })
        .set(i64::try_from(events).unwrap_or(i64::MAX));
}

/// Makes a frozen tenant's held-events series exist (at 0 unless events are held), so that an
/// alert on it sees every frozen tenant, not only those whose producers sent something.
pub fn held_known(tenant: &str) {
    drop(METRICS.held_events.get_or_create(&TenantLabel {
        tenant: tenant.to_string(),
    }));
}

/// Records the spool's state after it changed.
pub fn set_spool(status: SpoolStatus) {
    let metrics = &*METRICS;
    metrics
        .spool_depth
        .set(i64::try_from(status.depth).unwrap_or(i64::MAX));
    metrics
        .spool_bytes
        .set(i64::try_from(status.bytes).unwrap_or(i64::MAX));
    *lock(&metrics.spool) = Some(status);
}

/// Records that a client connection was accepted.
pub fn connection_opened() {
    METRICS.http_connections.inc();
}

/// Records that a client connection closed.
pub fn connection_closed() {
    METRICS.http_connections.dec();
}

/// Records the connection cap.
pub fn set_connection_limit(limit: usize) {
    METRICS
        .http_connection_limit
        .set(i64::try_from(limit).unwrap_or(i64::MAX));
}

/// Records a connection closed at the cap to make room for a new one.
pub fn connection_shed() {
    METRICS.http_shed.inc();
}

/// Records a connection closed past its deadline in `phase` (`header`, `idle` or `write`).
pub fn connection_timed_out(phase: &'static str) {
    METRICS
        .http_timeouts
        .get_or_create(&PhaseLabel { phase })
        .inc();
}

/// Reads the size of the write-ahead logs of the SQLite databases in `storage`, before a
/// scrape: the embedded store's (not when the logs are on PostgreSQL) and the query index's.
pub fn observe_wal(storage: &crate::config::StorageSettings) {
    let dir = sealtrail_store::DataDir::new(&storage.data);
    let mut databases = vec![dir.index()];
    if matches!(storage.store, sealtrail_store::Location::Embedded { .. }) {
        databases.push(dir.database());
    }
    for database in databases {
        let file = database
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        let bytes = sealtrail_store::sqlite::checkpoint::wal_bytes(&database);
        METRICS
            .wal_bytes
            .get_or_create(&FileLabel { file })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Records where `tenant`'s archive stands: the archived size, the entries not archived, and
/// how long the oldest signed one has waited (`None`: unknown, exported as NaN).
pub fn set_archive_lag(tenant: &str, archived: u64, lag_entries: u64, lag_seconds: Option<f64>) {
    let metrics = &*METRICS;
    let label = TenantLabel {
        tenant: tenant.to_string(),
    };
    metrics
        .archive_archived_size
        .get_or_create(&label)
        .set(i64::try_from(archived).unwrap_or(i64::MAX));
    metrics
        .archive_lag_entries
        .get_or_create(&label)
        .set(i64::try_from(lag_entries).unwrap_or(i64::MAX));
    metrics
        .archive_lag_seconds
        .get_or_create(&label)
        .set(lag_seconds.unwrap_or(f64::NAN));
    // The tenant's error counter exists from its first measurement, at 0: a counter whose
    // series first appears at 1 is missed by increase() in the alert rules.
    metrics.archive_errors.get_or_create_owned(&label);
}

/// Records an archive round of this instance that finished without an error at `at`.
pub fn archive_succeeded(at: Timestamp) {
    METRICS
        .archive_last_success
        .set(at.unix_micros() as f64 / 1e6);
}

/// Counts a round in which `tenant`'s log could not be archived (or its archive read).
pub fn archive_failed(tenant: &str) {
    METRICS
        .archive_errors
        .get_or_create(&TenantLabel {
            tenant: tenant.to_string(),
        })
        .inc();
}

/// Records whether this instance holds the archive lease.
pub fn set_archive_lease(held: bool) {
    METRICS.archive_lease_held.set(i64::from(held));
}

/// Counts one application of a tenant's retention period by what became of it.
pub fn retention_run(outcome: RetentionOutcome) {
    METRICS
        .retention_runs
        .get_or_create(&OutcomeLabel {
            outcome: outcome.as_str(),
        })
        .inc();
}

/// Counts `removed` entries the retention schedule pruned from `tenant`'s log.
pub fn retention_pruned(tenant: &str, removed: u64) {
    METRICS
        .retention_pruned
        .get_or_create(&TenantLabel {
            tenant: tenant.to_string(),
        })
        .inc_by(removed);
}

/// Records how far the query index trails the log, in seconds.
pub fn set_index_lag(seconds: f64) {
    let metrics = &*METRICS;
    metrics.index_lag.set(seconds);
    metrics
        .index_lag_bits
        .store(seconds.to_bits(), Ordering::Relaxed);
}

/// The index lag last reported by the indexer, if it ever reported.
pub fn index_lag() -> Option<f64> {
    let lag = f64::from_bits(METRICS.index_lag_bits.load(Ordering::Relaxed));
    (!lag.is_nan()).then_some(lag)
}

/// Ingest and commit activity as `GET /health` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Events created in the last [`RECENT_WINDOW`], across tenants.
    pub events_recent: u64,
    /// Time since the last event was created, if one was since the process started.
    pub last_event_age: Option<Duration>,
    /// Why the write path is failing: the latest group commit in the last [`RECENT_WINDOW`]
    /// failed, and none has succeeded since.
    pub commit_failure: Option<String>,
}

/// The current [`Activity`].
pub fn activity() -> Activity {
    lock(&METRICS.activity).snapshot(Instant::now())
}

/// The registry in the OpenMetrics text format, with checkpoint ages brought up to date.
pub fn render() -> Result<String, std::fmt::Error> {
    let metrics = &*METRICS;
    let now = crate::clock::Clock::system().now().unix_micros();
    for (tenant, at) in lock(&metrics.checkpoints).iter() {
        let age = (now.saturating_sub(*at)).max(0) as f64 / 1e6;
        metrics
            .checkpoint_age
            .get_or_create(&TenantLabel {
                tenant: tenant.clone(),
            })
            .set(age);
    }
    let oldest = lock(&metrics.spool).and_then(|s| s.oldest_received_micros);
    let oldest_age = oldest.map_or(0.0, |at| (now.saturating_sub(at)).max(0) as f64 / 1e6);
    metrics.spool_oldest_age.set(oldest_age);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry)?;
    Ok(text)
}

/// Recent activity, kept per second so that the window slides smoothly and memory stays
/// bounded (at most one bucket per second of [`RECENT_WINDOW`]).
#[derive(Debug, Default)]
struct ActivityState {
    /// (whole seconds since `origin`, events created in that second), oldest first.
    buckets: VecDeque<(u64, u64)>,
    /// The instant bucket seconds count from; set by the first record.
    origin: Option<Instant>,
    last_event: Option<Instant>,
    last_commit_ok: Option<Instant>,
    last_commit_failure: Option<(Instant, String)>,
}

impl ActivityState {
    fn second(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_secs()
    }

    fn events_created(&mut self, now: Instant, count: u64) {
        let second = self.second(now);
        match self.buckets.back_mut() {
            Some((last, total)) if *last == second => *total += count,
            _ => self.buckets.push_back((second, count)),
        }
        self.expire(second);
        self.last_event = Some(now);
    }

    fn expire(&mut self, second: u64) {
        let window = RECENT_WINDOW.as_secs();
        while let Some((oldest, _)) = self.buckets.front() {
            if oldest + window > second {
                break;
            }
            self.buckets.pop_front();
        }
    }

    fn commit_succeeded(&mut self, now: Instant) {
        self.last_commit_ok = Some(now);
    }

    fn commit_failed(&mut self, now: Instant, error: String) {
        self.last_commit_failure = Some((now, error));
    }

    fn snapshot(&mut self, now: Instant) -> Activity {
        let second = self.second(now);
        self.expire(second);
        let commit_failure = match (&self.last_commit_failure, self.last_commit_ok) {
            (Some((failed, error)), ok)
                if ok.is_none_or(|ok| ok < *failed)
                    && now.saturating_duration_since(*failed) < RECENT_WINDOW =>
            {
                Some(error.clone())
            }
            _ => None,
        };
        Activity {
            events_recent: self.buckets.iter().map(|(_, count)| count).sum(),
            last_event_age: self.last_event.map(|at| now.saturating_duration_since(at)),
            commit_failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_count_covers_exactly_the_last_five_minutes() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut state = ActivityState::default();
        assert_eq!(state.snapshot(at(0)).events_recent, 0);
        assert_eq!(state.snapshot(at(0)).last_event_age, None);
        state.events_created(at(0), 3);
        state.events_created(at(0), 2);
        state.events_created(at(100), 10);
        let snapshot = state.snapshot(at(120));
        assert_eq!(snapshot.events_recent, 15);
        assert_eq!(snapshot.last_event_age, Some(Duration::from_secs(20)));
        // The events of second 0 leave the window at 300 s; those of second 100 at 400 s.
        assert_eq!(state.snapshot(at(299)).events_recent, 15);
        assert_eq!(state.snapshot(at(300)).events_recent, 10);
        assert_eq!(state.snapshot(at(400)).events_recent, 0);
        assert!(state.buckets.is_empty(), "expired buckets are dropped");
    }

    #[test]
    fn memory_stays_bounded_under_constant_traffic() {
        let start = Instant::now();
        let mut state = ActivityState::default();
        for second in 0..10_000 {
            state.events_created(start + Duration::from_secs(second), 1);
        }
        assert_eq!(state.buckets.len(), RECENT_WINDOW.as_secs() as usize);
        let snapshot = state.snapshot(start + Duration::from_secs(9_999));
        assert_eq!(snapshot.events_recent, RECENT_WINDOW.as_secs());
    }

    #[test]
    fn a_failed_commit_counts_until_one_succeeds_or_it_is_old() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut state = ActivityState::default();
        state.commit_succeeded(at(0));
        state.commit_failed(at(10), "disk I/O error".into());
        assert_eq!(
            state.snapshot(at(11)).commit_failure.as_deref(),
            Some("disk I/O error")
        );
        // With no attempt since, an old failure no longer speaks for the store.
        assert_eq!(state.snapshot(at(10 + 300)).commit_failure, None);
        state.commit_failed(at(400), "disk full".into());
        state.commit_succeeded(at(401));
        assert_eq!(state.snapshot(at(402)).commit_failure, None);
    }

    #[test]
    fn the_registry_renders_every_metric_family() {
        events_ingested("metrics-unit-test", IngestOutcome::Created, 2);
        ingest_error("invalid_event");
        group_committed(2, Duration::from_micros(250), None);
        checkpoint_signed(
            "metrics-unit-test",
            Timestamp::from_unix_micros(1_000_000).unwrap(),
        );
        set_archive_lag("metrics-unit-test", 10, 2, Some(1.5));
        archive_failed("metrics-unit-test");
        retention_pruned("metrics-unit-test", 7);
        let text = render().unwrap();
        for name in [
            "sealtrail_events_ingested_total{tenant=\"metrics-unit-test\",outcome=\"created\"}",
            "sealtrail_ingest_errors_total{kind=\"invalid_event\"}",
            "sealtrail_batch_size_bucket",
            "sealtrail_commit_latency_seconds_bucket",
            "sealtrail_commit_failures_total",
            "sealtrail_index_lag_seconds",
            "sealtrail_checkpoint_age_seconds{tenant=\"metrics-unit-test\"}",
            "sealtrail_verification_runs_total{result=\"violated\"} 0",
            "sealtrail_chain_violations_total",
            "sealtrail_chain_violations_known",
            "sealtrail_verification_last_run_timestamp_seconds",
            "sealtrail_disk_usage_ratio",
            "sealtrail_auth_refusals_total{reason=\"unknown_token\"}",
            "sealtrail_http_connections ",
            "sealtrail_http_connection_limit ",
            "sealtrail_http_timeouts_total{phase=\"header\"}",
            "sealtrail_http_timeouts_total{phase=\"idle\"}",
            "sealtrail_http_timeouts_total{phase=\"write\"}",
            "sealtrail_http_connections_shed_total",
            "sealtrail_archive_archived_size{tenant=\"metrics-unit-test\"} 10",
            "sealtrail_archive_lag_entries{tenant=\"metrics-unit-test\"} 2",
            "sealtrail_archive_lag_seconds{tenant=\"metrics-unit-test\"} 1.5",
            "sealtrail_archive_errors_total{tenant=\"metrics-unit-test\"} 1",
            "sealtrail_archive_last_success_timestamp_seconds ",
            "sealtrail_archive_lease_held ",
            "sealtrail_retention_runs_total{outcome=\"refused\"}",
            "sealtrail_retention_runs_total{outcome=\"failed\"}",
            "sealtrail_retention_pruned_entries_total{tenant=\"metrics-unit-test\"} 7",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_stored_checkpoint_says_when_it_was_issued() {
        let signer = sealtrail_core::note::SignerKey::generate(
            "sealtrail.local/acme",
            &mut rand_core::OsRng,
        )
        .unwrap();
        let issued = Timestamp::parse("2026-11-23T10:00:00.123456Z").unwrap();
        let note = Checkpoint {
            origin: "sealtrail.local/acme".into(),
            size: 3,
            root: sealtrail_core::Hash::ZERO,
            timestamp: Some(issued),
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap();
        assert_eq!(issued_at(&note), Some(issued));
        assert_eq!(issued_at("not a note"), None);
    }
}
