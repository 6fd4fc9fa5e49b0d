//! Server settings, defined once: the same struct gives the `serve` flags, their
//! `SEALTRAIL_*` environment variables and the keys of the optional TOML file.
//!
//! Precedence, highest first: command-line flag, environment variable, config file, default.
//! Every field is optional while reading so the layers can be told apart; [`Settings::resolve`]
//! merges them and applies the defaults.

pub use crate::duration::parse_duration;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use sealtrail_store::Location;

use crate::tenant::{TenantName, TenantNameError};

/// Where `serve` keeps its data when no directory is given.
pub const DEFAULT_DATA_DIR: &str = "./sealtrail-data";

/// What a tenant's producers are told when the PostgreSQL store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailurePolicy {
    /// Accept events into the local fsync'd spool (`202`, `"status": "spooled"`) and drain
    /// them into the log, in order, when the database is back.
    Spool,
    /// Fail closed: answer `503` and keep nothing, so the producer retries or stops.
    Reject,
}

/// What a frozen tenant's producers are told (`sealtrail freeze`, see `crate::freeze`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FrozenPolicy {
    /// Refuse: answer `503` with `"error": "tenant_frozen"` and keep nothing, so the producer
    /// keeps its events and retries (or stops) until the tenant is unfrozen.
    #[default]
    Refuse,
    /// Hold: accept the events durably (`202`, `"status": "held"`) into the tenant's hold file
    /// in the data directory, outside the log, and append them to the log, in order, once
    /// the tenant is unfrozen — for producers that cannot keep and retry their events.
    Spool,
}

/// The frozen policy of every tenant: its own (`[tenants.NAME] on_frozen`), else the default
/// (`on_frozen`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrozenPolicies {
    pub default: FrozenPolicy,
    pub tenants: HashMap<String, FrozenPolicy>,
}

impl FrozenPolicies {
    /// The policy of `tenant`.
    pub fn of(&self, tenant: &str) -> FrozenPolicy {
        self.tenants.get(tenant).copied().unwrap_or(self.default)
    }
}

/// Per-tenant settings, TOML only: `[tenants.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    pub on_store_failure: Option<StoreFailurePolicy>,
    /// What this tenant's producers get while it is frozen (default: `on_frozen`).
    pub on_frozen: Option<FrozenPolicy>,
    /// The shortest silence reported as a time gap, in seconds (default 300, at least 60).
    pub gap_threshold_secs: Option<u64>,
    /// An hour below this fraction of the same hour a day and a week earlier is a rate drop
    /// (default 0.5; above 0, at most 1).
    pub rate_drop_ratio: Option<f64>,
    /// Baseline hours with fewer events are too small to judge a drop by (default 10).
    pub rate_drop_min_events: Option<u64>,
    /// A producer is silent after this many of its usual intervals (default 10, at least 1).
    pub silent_factor: Option<u32>,
    /// How long Object Lock keeps this tenant's archived objects, in days (default
    /// `archive_retention_days`); only with `archive_to`.
    pub archive_retention_days: Option<u64>,
    /// This tenant's retention period in days (default `retention_days`): older entries are
    /// pruned once archived and verified (see `crate::retention`).
    pub retention_days: Option<u64>,
    /// This tenant's monitoring rules, on top of `[monitor] rules`: `[[tenants.NAME.monitor.rules]]`.
    pub monitor: Option<MonitorFile>,
}

/// The `[monitor]` table (and `[tenants.NAME.monitor]`): monitoring rules in the format of
/// [`crate::monitor::rules`]. A rule named like a built-in replaces it (`enabled = false` turns
/// it off); any other is added.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFile {
    #[serde(default)]
    pub rules: Vec<crate::monitor::rules::RuleDef>,
    /// Where alerts are delivered (`[[monitor.webhooks]]`; not per tenant: a webhook names
    /// its tenants).
    #[serde(default)]
    pub webhooks: Vec<crate::monitor::webhook::WebhookDef>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7433";

/// `sealtrail serve` settings (flags, `SEALTRAIL_*` variables, TOML keys).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Data directory: the embedded store and the signing keys (DIR/keys/); default
    /// ./sealtrail-data
    #[arg(long, value_name = "DIR", env = "SEALTRAIL_DATA")]
    pub data: Option<PathBuf>,
    /// Keep the logs in this PostgreSQL database (postgres://USER@HOST/DB) instead of the
    /// embedded store; several instances may share it
    #[arg(
        long,
        value_name = "URL",
        env = "SEALTRAIL_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Derive every log's signing key from this key file (made by `sealtrail keys generate`),
    /// so instances that share a database sign with the same keys; default: one key file per
    /// log under DIR/keys/
    #[arg(long, value_name = "FILE", env = "SEALTRAIL_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (a host name is resolved once at start); default
    /// 127.0.0.1:7433
    #[arg(long, value_name = "ADDR", env = "SEALTRAIL_LISTEN")]
    pub listen: Option<String>,
    /// A TOML file with any of these settings (flags and environment variables win)
    #[arg(long, value_name = "FILE", env = "SEALTRAIL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Sign a checkpoint at most this often (milliseconds) while a log grows; default 1000
    #[arg(long, value_name = "MS", env = "SEALTRAIL_CHECKPOINT_INTERVAL_MS")]
    pub checkpoint_interval_ms: Option<u64>,
    /// Prefix of every tenant's checkpoint origin: <prefix>/<tenant>; default sealtrail.local
    #[arg(long, value_name = "PREFIX", env = "SEALTRAIL_ORIGIN_PREFIX")]
    pub origin_prefix: Option<String>,
    /// Serve checkpoints and hash tiles under /logs/ without a token; default false
    #[arg(long, value_name = "BOOL", env = "SEALTRAIL_PUBLIC_LOG")]
    pub public_log: Option<bool>,
    /// Also write every committed entry to stdout as one `AUDIT: {json}` line (a second,
    /// independent record, e.g. for a log shipper); default false
    #[arg(
        long,
        value_name = "BOOL",
        env = "SEALTRAIL_AUDIT_STDOUT",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub audit_stdout: Option<bool>,
    /// Verify each log's recent entries in the background this often (seconds; 0 = never);
    /// default 60
    #[arg(long, value_name = "SECS", env = "SEALTRAIL_VERIFY_INTERVAL_SECS")]
    pub verify_interval_secs: Option<u64>,
    /// With PostgreSQL, what producers get while the database is unreachable: `spool` (202,
    /// kept in DIR/spool/ and drained in order later) or `reject` (503); default spool.
    /// Per tenant in the config file: `[tenants.NAME] on_store_failure = "reject"`
    #[arg(long, value_name = "POLICY", env = "SEALTRAIL_ON_STORE_FAILURE")]
    pub on_store_failure: Option<StoreFailurePolicy>,
    /// What producers of a frozen tenant (`sealtrail freeze`) get: `refuse` (503
    /// `tenant_frozen`, nothing kept) or `spool` (202 `held`: kept in DIR/spool/frozen/ and
    /// appended to the log, in order, once the tenant is unfrozen); default refuse. Per
    /// tenant in the config file: `[tenants.NAME] on_frozen = "spool"`
    #[arg(long, value_name = "POLICY", env = "SEALTRAIL_ON_FROZEN")]
    pub on_frozen: Option<FrozenPolicy>,
    /// Largest size in bytes of the local spool file, and of each frozen tenant's hold file
    /// (default 268435456, 256 MiB)
    #[arg(long, value_name = "BYTES", env = "SEALTRAIL_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// Refuse an event whose occurred_at is more than this many seconds ahead of the server's
    /// clock (422, rule `future`); default 86400 (24 hours)
    #[arg(long, value_name = "SECS", env = "SEALTRAIL_MAX_FUTURE_SKEW_SECS")]
    pub max_future_skew_secs: Option<u64>,
    /// Stop a search (GET /v1/events) that runs longer than this many milliseconds and answer
    /// 503 with rule `query_timeout`; default 10000 (10 s), from 1 to 300000 (5 minutes)
    #[arg(long, value_name = "MS", env = "SEALTRAIL_QUERY_TIMEOUT_MS")]
    pub query_timeout_ms: Option<u64>,
    /// Searches run at once in this process, at most; more wait up to a second, then get 503
    /// (rule `search_capacity`); default 8, from 1 to 64. Ingest, /health and checkpoints never
    /// wait for them
    #[arg(long, value_name = "N", env = "SEALTRAIL_MAX_SEARCHES")]
    pub max_searches: Option<usize>,
    /// Searches one tenant runs at once, at most; more wait up to a second, then get 429
    /// (rule `concurrent_searches`); default 4, at most max_searches
    #[arg(long, value_name = "N", env = "SEALTRAIL_MAX_SEARCHES_PER_TENANT")]
    pub max_searches_per_tenant: Option<usize>,
    /// Close a connection whose request line and headers have not all arrived this many
    /// seconds after the request's first byte (for a new connection: after it opened);
    /// default 10
    #[arg(long, value_name = "SECS", env = "SEALTRAIL_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// A request body may take this many seconds to arrive, plus one second for every
    /// body_min_rate bytes received; a slower one is answered 408 (default 20)
    #[arg(long, value_name = "SECS", env = "SEALTRAIL_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// The slowest a request body may arrive, in bytes per second, once body_timeout_secs
    /// are spent (default 1024)
    #[arg(long, value_name = "BYTES", env = "SEALTRAIL_BODY_MIN_RATE")]
    pub body_min_rate: Option<u64>,
    /// Close a keep-alive connection that has been idle between requests (or has not read
    /// its answer) this many seconds; default 60
    #[arg(long, value_name = "SECS", env = "SEALTRAIL_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Serve at most this many connections at once; further ones wait in the listen backlog
    /// until one closes. Default: the open-file limit less 256 descriptors kept for the
    /// store, its index and files, at most 4096
    #[arg(long, value_name = "N", env = "SEALTRAIL_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Request bodies held in memory at once over all connections, in bytes; a request
    /// waits for room before its body is read (default 268435456, 256 MiB; at least
    /// 16777216, the largest body a route takes)
    #[arg(long, value_name = "BYTES", env = "SEALTRAIL_MAX_BODY_MEMORY_BYTES")]
    pub max_body_memory_bytes: Option<u64>,
    /// How long a token the store confirmed is trusted without asking it again
    /// (milliseconds; default 1000, at most 60000; 0 = ask on every request). A token revoked
    /// through another instance or the CLI stops working here within this time, and a tenant
    /// frozen or unfrozen there (`sealtrail freeze`) is refused or taken again within it
    #[arg(long, value_name = "MS", env = "SEALTRAIL_TOKEN_RECHECK_MS")]
    pub token_recheck_ms: Option<u64>,
    /// Archive every log in the background to TARGET, a directory or s3://bucket/prefix:
    /// tiles, checkpoints and signed manifests, written once and never rewritten, each run
    /// resuming from what the target holds. One instance archives at a time when several
    /// share a database. Default: no archive
    #[arg(long, value_name = "TARGET", env = "SEALTRAIL_ARCHIVE_TO")]
    pub archive_to: Option<String>,
    /// How often the archive catches up with every log's latest checkpoint, e.g. 60s, 5m, 1h
    /// (a bare number is seconds); default 60s, from 1s to 1d
    #[arg(long, value_name = "DURATION", env = "SEALTRAIL_ARCHIVE_INTERVAL")]
    pub archive_interval: Option<String>,
    /// Also archive as soon as a log has this many signed entries not archived yet (0: only
    /// every archive_interval); default 16384
    #[arg(long, value_name = "ENTRIES", env = "SEALTRAIL_ARCHIVE_EVERY")]
    pub archive_every: Option<u64>,
    /// Archive to a target that does not keep what it is given immutable (a directory, or a
    /// bucket without Object Lock); without it such a target is refused, and /health, the
    /// metrics and the log say why; default false
    #[arg(
        long,
        value_name = "BOOL",
        env = "SEALTRAIL_ARCHIVE_ALLOW_UNLOCKED",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub archive_allow_unlocked: Option<bool>,
    /// How long S3 Object Lock keeps each archived object (COMPLIANCE mode), in days; default
    /// 2557 (7 years). Per tenant in the config file: `[tenants.NAME]
    /// archive_retention_days = N`
    #[arg(long, value_name = "DAYS", env = "SEALTRAIL_ARCHIVE_RETENTION_DAYS")]
    pub archive_retention_days: Option<u64>,
    /// Retention period in days: entries older than this are pruned from the store once an
    /// archive verified against it holds them (never before, never under a legal hold); per
    /// tenant in the config file: `[tenants.NAME] retention_days = N`. Default: kept for ever
    #[arg(long, value_name = "DAYS", env = "SEALTRAIL_RETENTION_DAYS")]
    pub retention_days: Option<u64>,
    /// How often the server applies the retention periods (with archive_to); default 1h
    #[arg(long, value_name = "DURATION", env = "SEALTRAIL_RETENTION_INTERVAL")]
    pub retention_interval: Option<String>,
    /// Per-tenant settings (config file only)
    #[arg(skip)]
    pub tenants: Option<HashMap<String, TenantSettings>>,
    /// Monitoring rules for every tenant (config file only): `[[monitor.rules]]`
    #[arg(skip)]
    pub monitor: Option<MonitorFile>,
}

/// Settings after merging the layers and applying defaults, in one section per part of the
/// service that reads them, so that each part is handed its own section and nothing else
/// (`LedgerConfig::from_settings` and `SpoolConfig::from_settings` take theirs).
/// (The flags, variables and TOML keys stay the flat list of [`Settings`]: they are the
/// interface operators and scripts know.)
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where the data lives.
    pub storage: StorageSettings,
    /// How the log is written and signed: the ledger's section.
    pub log: LogSettings,
    /// What happens to writes while PostgreSQL is unreachable.
    pub outage: OutageSettings,
    /// How the API is served.
    pub http: HttpSettings,
    /// The background verifier.
    pub verification: VerificationSettings,
    /// What producers may send: the ingest service's section.
    pub ingest: IngestSettings,
    /// How searches share the service: the query service's section.
    pub queries: QuerySettings,
    /// How callers are authenticated.
    pub auth: AuthSettings,
    /// How each tenant's gaps are judged (`[tenants.NAME]`; see `crate::gaps`).
    pub gaps: crate::gaps::GapConfig,
    /// The monitoring rules of every tenant (`crate::monitor`), checked.
    pub monitor: crate::monitor::MonitorSettings,
    /// The webhooks alerts are delivered to, their secrets read.
    pub webhooks: Vec<crate::monitor::webhook::Webhook>,
    /// The background archiver (`crate::archive`); `None` when no target is configured.
    pub archive: Option<ArchiveSettings>,
    /// Retention periods and how often the server applies them.
    pub retention: RetentionSettings,
}

/// `retention_days`, `retention_interval` (and per tenant, `[tenants.NAME] retention_days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// The period of tenants without their own, in days; `None`: kept for ever.
    pub days: Option<u64>,
    pub tenant_days: BTreeMap<String, u64>,
    pub interval: Duration,
}

/// The default of `retention_interval`.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The bounds of `retention_days`.
pub const RETENTION_BOUND: Bound = Bound {
    setting: "retention_days",
    min: 1,
    max: 36_500,
    why: "days",
};

/// `archive_to`, `archive_interval`, `archive_every`, `archive_allow_unlocked`,
/// `archive_retention_days` (and per tenant, `[tenants.NAME] archive_retention_days`): the
/// background archiver's section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// A directory, or `s3://bucket/prefix`, as the operator wrote it.
    pub target: String,
    /// The longest an archivable entry waits: every log is brought up to its latest
    /// checkpoint this often.
    pub interval: Duration,
    /// A log with this many signed entries not archived yet is archived at once, without
    /// waiting for the interval; `None`: by the interval only.
    pub every: Option<u64>,
    /// Whether a target that does not keep objects immutable may be used.
    pub allow_unlocked: bool,
    /// How long Object Lock keeps archived objects, in days, for tenants without their own.
    pub retention_days: u64,
    /// Tenants with their own retention, in days.
    pub tenant_retention_days: BTreeMap<String, u64>,
}

impl ArchiveSettings {
    /// The Object Lock retention of `tenant`'s archived objects, in days.
    pub fn retention_days_of(&self, tenant: &str) -> u64 {
        self.tenant_retention_days
            .get(tenant)
            .copied()
            .unwrap_or(self.retention_days)
    }
}

/// The default of `archive_interval`.
pub const DEFAULT_ARCHIVE_INTERVAL: Duration = Duration::from_secs(60);
/// The default of `archive_every`: a step of the archive (a manifest) covers up to this many
/// entries, so a log this far ahead has a whole step waiting.
pub const DEFAULT_ARCHIVE_EVERY: u64 = 16_384;
/// The default of `archive_retention_days`: seven years (2557 days, two of them leap days), the
/// longest of the retention periods HIPAA, SOX and most audit policies ask for.
pub const DEFAULT_ARCHIVE_RETENTION_DAYS: u64 = 2557;
/// The shortest and longest `archive_interval`.
pub const ARCHIVE_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 60 * 60));
/// The bounds of `archive_retention_days`.
pub const ARCHIVE_RETENTION_BOUND: Bound = Bound {
    setting: "archive_retention_days",
    min: 1,
    max: 36_500,
    why: "days; a century is beyond any retention policy, and a locked object cannot be deleted before it ends",
};

/// `data`, `database_url`.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The data directory: the embedded store, the query index, the keys and the spool.
    pub data: PathBuf,
    /// The store that holds the logs: the embedded store in `data`, or PostgreSQL.
    pub store: Location,
}

/// `signing_key`, `checkpoint_interval_ms`, `origin_prefix`, `audit_stdout`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub signing_key: Option<PathBuf>,
    pub checkpoint_interval: Duration,
    pub origin_prefix: String,
    pub audit_stdout: bool,
}

/// `on_store_failure` (and per tenant, `[tenants.NAME]`), `spool_max_bytes`.
#[derive(Debug, Clone)]
pub struct OutageSettings {
    /// The policy of tenants not named in `tenant_policies`.
    pub on_store_failure: StoreFailurePolicy,
    /// Tenants with their own policy.
    pub tenant_policies: HashMap<String, StoreFailurePolicy>,
    pub spool_max_bytes: u64,
}

/// `listen`, `public_log`, and how connections are limited: `header_timeout_secs`,
/// `body_timeout_secs`, `body_min_rate`, `idle_timeout_secs`, `max_connections`,
/// `max_body_memory_bytes` (the `connections` module and `http::body` read them).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub public_log: bool,
    /// How long a request's head may take to arrive (from its first byte, or from the
    /// connection's opening for its first request).
    pub header_timeout: Duration,
    /// How long a request body may take, before `body_min_rate` extends it.
    pub body_timeout: Duration,
    /// Bytes per second that earn a body one more second.
    pub body_min_rate: u64,
    /// How long a connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// The connection cap; `None`: derived from the open-file limit at start
    /// (`connections::fds`).
    pub max_connections: Option<usize>,
    /// The bytes of request bodies held at once, over all connections.
    pub max_body_memory: usize,
}

/// The default of `header_timeout_secs`: nginx's and Apache's order of magnitude, far more
/// than any client on a working network needs to send a few KiB of headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of `body_timeout_secs` (Apache's `RequestReadTimeout body=20`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// The default of `body_min_rate`: 1 KiB/s, slower than any link a producer would use.
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
/// The default of `idle_timeout_secs`, near nginx's 75 s: an idle connection costs a
/// descriptor and a slot under `max_connections`, and a client whose pooled connection was
/// closed opens another (sealtrail's client resends with the same idempotency key).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default of `max_body_memory_bytes`: sixteen of the largest batches at once.
pub const DEFAULT_MAX_BODY_MEMORY: u64 = 256 * 1024 * 1024;
/// The largest body any route takes (`POST /v1/events/batch`, `ingest::MAX_BATCH_BODY`,
/// which `http::body` asserts at build time is equal): the body memory must hold at least one, or such a request
/// could never be served. Not imported from `ingest`, which depends on this module.
pub const LARGEST_BODY: u64 = 16 * 1024 * 1024;

/// `verify_interval_secs`.
#[derive(Debug, Clone)]
pub struct VerificationSettings {
    /// How often each log's recent entries are verified in the background; `None`: never.
    pub interval: Option<Duration>,
}

/// `max_future_skew_secs`, `on_frozen` (and per tenant, `[tenants.NAME]`).
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// How far ahead of the server's clock an event's `occurred_at` may be. Producers' clocks
    /// differ from the server's, so a little skew is allowed; an event dated further ahead
    /// cannot have happened yet.
    pub max_future_skew: Duration,
    /// What a frozen tenant's producers get, by tenant.
    pub on_frozen: FrozenPolicies,
}

/// `query_timeout_ms`, `max_searches`, `max_searches_per_tenant`: how much of the service
/// searches may take, so that one tenant's searches cannot stall another's, nor ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerySettings {
    /// A search running longer is stopped (503 `query_timeout`).
    pub time_limit: Duration,
    /// Searches running at once in the process.
    pub max_searches: usize,
    /// Searches running at once for one tenant.
    pub max_searches_per_tenant: usize,
}

/// The default of `query_timeout_ms`: a first page takes milliseconds, and even a search
/// that reads a million index entries stays well under it; a search that needs longer is
/// better narrowed (a time range, another filter) than waited for.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `query_timeout_ms`: a page that needs more than five minutes is a search to
/// narrow, and without a bound one search could keep its place among the running ones for
/// good.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(300);
/// The default of `max_searches`: enough to keep a few cores busy with searches while
/// leaving the rest of the machine to ingest.
pub const DEFAULT_MAX_SEARCHES: usize = 8;
/// The default of `max_searches_per_tenant`: half of the process's, so that one tenant alone
/// cannot take every search slot.
pub const DEFAULT_MAX_SEARCHES_PER_TENANT: usize = 4;
/// The largest `max_searches`: each running search holds an index connection (with its page
/// cache, about 2 MiB) and a thread of the blocking pool, and reads its page's entries on the
/// 12 general store connections (`crate::readers`).
pub const MAX_MAX_SEARCHES: usize = 64;

/// `token_recheck_ms`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long a token the store confirmed is taken without asking the store again (see
    /// `authn::TokenCache`): the longest a token revoked elsewhere — through another instance
    /// or the CLI — keeps working on this instance. Zero asks the store on every request.
    /// The frozen tenants are read again after the same interval (`freeze::Freezes`), so it
    /// also bounds how long a freeze made elsewhere takes to stop ingest here.
    pub token_recheck: Duration,
}

/// The default of `token_recheck_ms`: a store read per request was the largest single cost
/// of single-event ingest, and one second bounds how long a revocation takes to reach every
/// instance.
pub const DEFAULT_TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// The largest `token_recheck_ms`: beyond a minute, a revoked token would stay usable for
/// longer than anyone revoking one in a hurry should have to wait.
pub const MAX_TOKEN_RECHECK: Duration = Duration::from_secs(60);

/// The default of `max_future_skew_secs`: a day, far more than any clock drift or time-zone
/// mistake, small enough that a wrong year is refused.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

impl Resolved {
    /// The effective configuration as the `_system` log records it at each start (a change is
    /// an audited admin action). No secret is in it: the database URL is left out, the
    /// signing key appears as its path only.
    pub fn audit_record(&self) -> serde_json::Value {
        let mut record = serde_json::json!({
            "data": self.storage.data.display().to_string(),
            "listen": self.http.listen.to_string(),
            "checkpoint_interval_ms": self.log.checkpoint_interval.as_millis() as u64,
            "origin_prefix": self.log.origin_prefix,
            "public_log": self.http.public_log,
            "audit_stdout": self.log.audit_stdout,
            "verify_interval_secs": self.verification.interval.map(|d| d.as_secs()),
            "max_future_skew_secs": self.ingest.max_future_skew.as_secs(),
            "query_timeout_ms": self.queries.time_limit.as_millis() as u64,
            "max_searches": self.queries.max_searches,
            "max_searches_per_tenant": self.queries.max_searches_per_tenant,
            "header_timeout_secs": self.http.header_timeout.as_secs(),
            "body_timeout_secs": self.http.body_timeout.as_secs(),
            "body_min_rate": self.http.body_min_rate,
            "idle_timeout_secs": self.http.idle_timeout.as_secs(),
            // `null`: derived from the open-file limit at each start.
            "max_connections": self.http.max_connections,
            "max_body_memory_bytes": self.http.max_body_memory,
            "token_recheck_ms": self.auth.token_recheck.as_millis() as u64,
        });
        // Only when configured, as for the archive below.
        if let Some(fields) = record.as_object_mut() {
            if let Some(days) = self.retention.days {
                fields.insert("retention_days".into(), days.into());
            }
            if !self.retention.tenant_days.is_empty() {
                fields.insert(
                    "retention_tenant_days".into(),
                    serde_json::json!(self.retention.tenant_days),
                );
            }
            // The monitoring rules and webhooks, only when configured: turning a rule off or
            // changing a threshold is an admin action like any other. A webhook is recorded by
            // name, URL, tenants and severity; its secret never is.
            if !self.monitor.default.is_empty() {
                fields.insert(
                    "monitor_rules".into(),
                    serde_json::json!(self.monitor.default),
                );
            }
            if !self.monitor.tenants.is_empty() {
                let tenants: BTreeMap<&String, _> = self.monitor.tenants.iter().collect();
                fields.insert("monitor_tenant_rules".into(), serde_json::json!(tenants));
            }
            if !self.webhooks.is_empty() {
                let webhooks: Vec<serde_json::Value> = self
                    .webhooks
                    .iter()
                    .map(|w| {
                        serde_json::json!({
                            "name": w.name,
                            "url": w.redacted_url(),
                            "tenants": w.tenants,
                            "min_severity": if w.critical_only { "critical" } else { "warning" },
                        })
                    })
                    .collect();
                fields.insert("webhooks".into(), webhooks.into());
            }
            // Only when a tenant's events may be held, so that a start with the default
            // records what it did before holding existed.
            if self.ingest.on_frozen != FrozenPolicies::default() {
                fields.insert(
                    "on_frozen".into(),
                    frozen_policy_name(self.ingest.on_frozen.default).into(),
                );
                let tenants: BTreeMap<&str, &str> = self
                    .ingest
                    .on_frozen
                    .tenants
                    .iter()
                    .map(|(name, policy)| (name.as_str(), frozen_policy_name(*policy)))
                    .collect();
                if !tenants.is_empty() {
                    fields.insert("on_frozen_tenants".into(), serde_json::json!(tenants));
                }
            }
            if self.retention.interval != DEFAULT_RETENTION_INTERVAL {
                fields.insert(
                    "retention_interval_ms".into(),
                    (self.retention.interval.as_millis() as u64).into(),
                );
            }
        }
        // Only when configured, so that a start without an archive records what it did
        // before archiving existed (a change of the record is an audited admin action).
        if let Some(archive) = &self.archive
            && let Some(fields) = record.as_object_mut()
        {
            fields.insert("archive_to".into(), archive.target.clone().into());
            fields.insert(
                "archive_interval_ms".into(),
                (archive.interval.as_millis() as u64).into(),
            );
            fields.insert("archive_every".into(), archive.every.unwrap_or(0).into());
            fields.insert(
                "archive_allow_unlocked".into(),
                archive.allow_unlocked.into(),
            );
            fields.insert(
                "archive_retention_days".into(),
                archive.retention_days.into(),
            );
            if !archive.tenant_retention_days.is_empty() {
                fields.insert(
                    "archive_tenant_retention_days".into(),
                    serde_json::json!(archive.tenant_retention_days),
                );
            }
        }
        record
    }
}

/// Why the settings cannot be used. Each message names the setting (or file) at fault and
/// what a valid value looks like.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A monitoring rule that cannot be used: names the rule and the setting.
    #[error(transparent)]
    MonitorRule(#[from] crate::monitor::rules::RuleError),
    /// A webhook that cannot be used: names it and the setting, never the secret.
    #[error(transparent)]
    Webhook(#[from] crate::monitor::webhook::WebhookError),
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {}: {source}", path.display())]
    ParseFile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("listen address {text:?} is not HOST:PORT, e.g. 127.0.0.1:7433 or localhost:7433")]
    Listen { text: String },
    #[error("listen address {text:?}: cannot resolve the host name ({reason})")]
    ListenHost { text: String, reason: String },
    #[error("checkpoint_interval_ms must be at least 1")]
    CheckpointInterval,
    #[error("origin_prefix {prefix:?} must be non-empty, without spaces or '+'")]
    OriginPrefix { prefix: String },
    /// The URL is kept redacted: the message may be printed or logged.
    #[error(
        "database_url {redacted} must start with postgres:// (e.g. postgres://sealtrail_app@127.0.0.1/sealtrail)"
    )]
    DatabaseUrl { redacted: String },
    #[error("[tenants.{tenant}] {setting}: {rule}; fix it in the config file")]
    TenantGapSetting {
        tenant: String,
        setting: &'static str,
        rule: &'static str,
    },
    #[error("[tenants.{name}]: {source}")]
    TenantName {
        name: String,
        #[source]
        source: TenantNameError,
    },
    #[error(
        "token_recheck_ms {ms} is too long: at most 60000 (a minute), so that a revoked token stops working soon"
    )]
    TokenRecheck { ms: u64 },
    #[error(
        "spool_max_bytes {bytes} is too small: at least 1048576 (1 MiB), so one event of the largest size fits"
    )]
    SpoolTooSmall { bytes: u64 },
    #[error(
        "query_timeout_ms must be from 1 to 300000 (5 minutes), not {ms}: a search past it is stopped"
    )]
    QueryTimeout { ms: u64 },
    #[error("max_searches must be from 1 to {MAX_MAX_SEARCHES}, not {value}")]
    MaxSearches { value: usize },
    #[error("max_searches_per_tenant must be from 1 to max_searches ({max_searches}), not {value}")]
    MaxSearchesPerTenant { value: usize, max_searches: usize },
    #[error(
        "archive_to {text:?} is neither a directory nor s3://bucket/prefix (e.g. /srv/sealtrail-archive or s3://audit-archive/sealtrail)"
    )]
    ArchiveTarget { text: String },
    #[error(
        "archive_interval {text:?} is not a duration from 1s to 1d: a number with s, m, h or d (e.g. 60s, 5m, 1h; a bare number is seconds)"
    )]
    ArchiveInterval { text: String },
    #[error(
        "retention_interval {text:?} is not a duration from 1s to 7d: a whole number with s, m, h or d (e.g. 1h)"
    )]
    RetentionInterval { text: String },
    #[error(
        "{setting} is set but archive_to is not: give --archive-to TARGET, or remove {setting}"
    )]
    ArchiveWithoutTarget { setting: &'static str },
    #[error("{} {value} is out of range: from {} to {} ({})", bound.setting, bound.min, bound.max, bound.why)]
    OutOfRange { bound: &'static Bound, value: u64 },
}

/// The range a numeric setting may take, and why.
#[derive(Debug)]
pub struct Bound {
    pub setting: &'static str,
    pub min: u64,
    pub max: u64,
    pub why: &'static str,
}

impl Bound {
    /// Whether `value` is within the bounds.
    pub fn contains(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `value`, or `default` when it is not set; refused outside the range.
    fn check(&'static self, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
        let value = value.unwrap_or(default);
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::OutOfRange { bound: self, value })
        }
    }
}

/// A bounded count as a `usize`: the bounds fit one on 64-bit targets; elsewhere the most
/// the target holds, which the bounds exist to stay far below anyway.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The bounds of the connection settings (`connections`, `http::body`). The upper bounds are
/// where a setting would stop protecting anything: a header timeout of minutes lets idle
/// sockets hold every connection slot as long as they like, and so on.
pub const HEADER_TIMEOUT_BOUND: Bound = Bound {
    setting: "header_timeout_secs",
    min: 1,
    max: 300,
    why: "a request head of at most 32 KiB needs seconds; a longer wait lets idle sockets hold connections",
};
pub const BODY_TIMEOUT_BOUND: Bound = Bound {
    setting: "body_timeout_secs",
    min: 1,
    max: 3600,
    why: "body_min_rate already extends it for large bodies",
};
pub const BODY_MIN_RATE_BOUND: Bound = Bound {
    setting: "body_min_rate",
    min: 1,
    max: LARGEST_BODY,
    why: "bytes per second; a faster rate would earn even the largest body no time",
};
pub const IDLE_TIMEOUT_BOUND: Bound = Bound {
    setting: "idle_timeout_secs",
    min: 1,
    max: 3600,
    why: "an idle connection holds a descriptor and a connection slot",
};
pub const MAX_CONNECTIONS_BOUND: Bound = Bound {
    setting: "max_connections",
    min: 1,
    max: 1 << 20,
    why: "Linux's largest open-file limit by default (fs.nr_open); the start also checks it against this process's limit",
};
pub const MAX_BODY_MEMORY_BOUND: Bound = Bound {
    setting: "max_body_memory_bytes",
    min: LARGEST_BODY,
    max: 64 << 30,
    why: "at least the largest batch a route takes (16 MiB), at most 64 GiB",
};

impl Settings {
    /// Reads the config file (if named) and merges: flags/env over file over defaults.
    pub fn resolve(self) -> Result<Resolved, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        let merged = Settings {
            data: self.data.or(file.data),
            database_url: self.database_url.or(file.database_url),
            signing_key: self.signing_key.or(file.signing_key),
            listen: self.listen.or(file.listen),
            config: self.config,
            checkpoint_interval_ms: self.checkpoint_interval_ms.or(file.checkpoint_interval_ms),
            origin_prefix: self.origin_prefix.or(file.origin_prefix),
            public_log: self.public_log.or(file.public_log),
            audit_stdout: self.audit_stdout.or(file.audit_stdout),
            verify_interval_secs: self.verify_interval_secs.or(file.verify_interval_secs),
            on_store_failure: self.on_store_failure.or(file.on_store_failure),
            on_frozen: self.on_frozen.or(file.on_frozen),
            spool_max_bytes: self.spool_max_bytes.or(file.spool_max_bytes),
            max_future_skew_secs: self.max_future_skew_secs.or(file.max_future_skew_secs),
            query_timeout_ms: self.query_timeout_ms.or(file.query_timeout_ms),
            max_searches: self.max_searches.or(file.max_searches),
            max_searches_per_tenant: self
                .max_searches_per_tenant
                .or(file.max_searches_per_tenant),
            header_timeout_secs: self.header_timeout_secs.or(file.header_timeout_secs),
            body_timeout_secs: self.body_timeout_secs.or(file.body_timeout_secs),
            body_min_rate: self.body_min_rate.or(file.body_min_rate),
            idle_timeout_secs: self.idle_timeout_secs.or(file.idle_timeout_secs),
            max_connections: self.max_connections.or(file.max_connections),
            max_body_memory_bytes: self.max_body_memory_bytes.or(file.max_body_memory_bytes),
            token_recheck_ms: self.token_recheck_ms.or(file.token_recheck_ms),
            archive_to: self.archive_to.or(file.archive_to),
            archive_interval: self.archive_interval.or(file.archive_interval),
            archive_every: self.archive_every.or(file.archive_every),
            archive_allow_unlocked: self.archive_allow_unlocked.or(file.archive_allow_unlocked),
            archive_retention_days: self.archive_retention_days.or(file.archive_retention_days),
            retention_days: self.retention_days.or(file.retention_days),
            retention_interval: self.retention_interval.or(file.retention_interval),
            tenants: self.tenants.or(file.tenants),
            monitor: self.monitor.or(file.monitor),
        };
        let monitor = monitor_settings(&merged)?;
        let webhooks = webhooks(&merged)?;
        let archive = archive_settings(&merged)?;
        let retention = retention_settings(&merged)?;
        let listen_text = merged.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = resolve_listen(&listen_text)?;
        let checkpoint_ms = merged.checkpoint_interval_ms.unwrap_or(1000);
        if checkpoint_ms == 0 {
            return Err(ConfigError::CheckpointInterval);
        }
        let origin_prefix = merged
            .origin_prefix
            .unwrap_or_else(|| "sealtrail.local".to_string());
        if origin_prefix.is_empty() || origin_prefix.chars().any(|c| c.is_whitespace() || c == '+')
        {
            return Err(ConfigError::OriginPrefix {
                prefix: origin_prefix,
            });
        }
        let data = merged
            .data
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if let Some(url) = &merged.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::DatabaseUrl {
                redacted: sealtrail_store::postgres::redact_url(url),
            });
        }
        let queries = query_settings(
            merged.query_timeout_ms,
            merged.max_searches,
            merged.max_searches_per_tenant,
        )?;
        let mut tenant_policies = HashMap::new();
        let mut tenant_on_frozen = HashMap::new();
        let mut gaps = crate::gaps::GapConfig::default();
        for (name, tenant) in merged.tenants.unwrap_or_default() {
            if let Err(source) = TenantName::parse(&name) {
                return Err(ConfigError::TenantName { name, source });
            }
            if let Some(rules) = gap_rules(&name, &tenant)? {
                gaps.tenants.insert(name.clone(), rules);
            }
            if let Some(days) = tenant.archive_retention_days
                && !ARCHIVE_RETENTION_BOUND.contains(days)
            {
                return Err(ConfigError::TenantGapSetting {
                    tenant: name,
                    setting: "archive_retention_days",
                    rule: "must be from 1 to 36500 days",
                });
            }
            if let Some(policy) = tenant.on_frozen {
                tenant_on_frozen.insert(name.clone(), policy);
            }
            if let Some(policy) = tenant.on_store_failure {
                tenant_policies.insert(name, policy);
            }
        }
        let spool_max_bytes = merged
            .spool_max_bytes
            .unwrap_or(crate::spool::DEFAULT_MAX_BYTES);
        if spool_max_bytes < 1024 * 1024 {
            return Err(ConfigError::SpoolTooSmall {
                bytes: spool_max_bytes,
            });
        }
        let http = HttpSettings {
            listen,
            public_log: merged.public_log.unwrap_or(false),
            header_timeout: Duration::from_secs(
                HEADER_TIMEOUT_BOUND
                    .check(merged.header_timeout_secs, DEFAULT_HEADER_TIMEOUT.as_secs())?,
            ),
            body_timeout: Duration::from_secs(
                BODY_TIMEOUT_BOUND
                    .check(merged.body_timeout_secs, DEFAULT_BODY_TIMEOUT.as_secs())?,
            ),
            body_min_rate: BODY_MIN_RATE_BOUND
                .check(merged.body_min_rate, DEFAULT_BODY_MIN_RATE)?,
            idle_timeout: Duration::from_secs(
                IDLE_TIMEOUT_BOUND
                    .check(merged.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT.as_secs())?,
            ),
            // Unset: derived from the open-file limit at start (`connections::fds`), which
            // also refuses a configured cap that limit cannot afford.
            max_connections: match merged.max_connections {
                Some(n) => Some(to_usize(MAX_CONNECTIONS_BOUND.check(Some(n), n)?)),
                None => None,
            },
            max_body_memory: to_usize(
                MAX_BODY_MEMORY_BOUND
                    .check(merged.max_body_memory_bytes, DEFAULT_MAX_BODY_MEMORY)?,
            ),
        };
        let on_frozen = FrozenPolicies {
            default: merged.on_frozen.unwrap_or_default(),
            tenants: tenant_on_frozen,
        };
        let token_recheck = merged
            .token_recheck_ms
            .map_or(DEFAULT_TOKEN_RECHECK, Duration::from_millis);
        if token_recheck > MAX_TOKEN_RECHECK {
            return Err(ConfigError::TokenRecheck {
                ms: token_recheck.as_millis() as u64,
            });
        }
        Ok(Resolved {
            storage: StorageSettings {
                store: Location::new(&data, merged.database_url.as_deref()),
                data,
            },
            log: LogSettings {
                signing_key: merged.signing_key,
                checkpoint_interval: Duration::from_millis(checkpoint_ms),
                origin_prefix,
                audit_stdout: merged.audit_stdout.unwrap_or(false),
            },
            outage: OutageSettings {
                on_store_failure: merged.on_store_failure.unwrap_or(StoreFailurePolicy::Spool),
                tenant_policies,
                spool_max_bytes,
            },
            http,
            verification: VerificationSettings {
                interval: match merged.verify_interval_secs.unwrap_or(60) {
                    0 => None,
                    secs => Some(Duration::from_secs(secs)),
                },
            },
            ingest: IngestSettings {
                max_future_skew: merged
                    .max_future_skew_secs
                    .map_or(DEFAULT_MAX_FUTURE_SKEW, Duration::from_secs),
                on_frozen,
            },
            queries,
            auth: AuthSettings { token_recheck },
            gaps,
            monitor,
            webhooks,
            archive,
            retention,
        })
    }
}

/// A frozen policy as the config file spells it.
fn frozen_policy_name(policy: FrozenPolicy) -> &'static str {
    match policy {
        FrozenPolicy::Refuse => "refuse",
        FrozenPolicy::Spool => "spool",
    }
}

/// The monitoring rules from the merged settings, every rule checked.
fn monitor_settings(merged: &Settings) -> Result<crate::monitor::MonitorSettings, ConfigError> {
    let settings = crate::monitor::MonitorSettings {
        default: merged
            .monitor
            .as_ref()
            .map(|m| m.rules.clone())
            .unwrap_or_default(),
        tenants: merged
            .tenants
            .iter()
            .flatten()
            .filter_map(|(name, t)| Some((name.clone(), t.monitor.as_ref()?.rules.clone())))
            .collect(),
    };
    settings.check()?;
    Ok(settings)
}

/// The webhooks from the merged settings, each checked and its secret read; two may not share
/// a name (it names the delivery's cursor file).
fn webhooks(merged: &Settings) -> Result<Vec<crate::monitor::webhook::Webhook>, ConfigError> {
    let mut webhooks: Vec<crate::monitor::webhook::Webhook> = Vec::new();
    for def in merged.monitor.iter().flat_map(|m| &m.webhooks) {
        let webhook = def.compile()?;
        if webhooks.iter().any(|w| w.name == webhook.name) {
            return Err(crate::monitor::webhook::WebhookError {
                name: webhook.name,
                setting: "name",
                problem: "is used by another webhook".into(),
            }
            .into());
        }
        webhooks.push(webhook);
    }
    Ok(webhooks)
}

/// The `retention` section from the merged settings.
fn retention_settings(merged: &Settings) -> Result<RetentionSettings, ConfigError> {
    let days = match merged.retention_days {
        Some(days) => Some(RETENTION_BOUND.check(Some(days), days)?),
        None => None,
    };
    let mut tenant_days = BTreeMap::new();
    for (name, tenant) in merged.tenants.iter().flatten() {
        if let Some(days) = tenant.retention_days {
            if !RETENTION_BOUND.contains(days) {
                return Err(ConfigError::TenantGapSetting {
                    tenant: name.clone(),
                    setting: "retention_days",
                    rule: "must be from 1 to 36500 days",
                });
            }
            tenant_days.insert(name.clone(), days);
        }
    }
    let interval = match &merged.retention_interval {
        None => DEFAULT_RETENTION_INTERVAL,
        Some(text) => parse_duration(text)
            .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(d))
            .ok_or_else(|| ConfigError::RetentionInterval { text: text.clone() })?,
    };
    Ok(RetentionSettings {
        days,
        tenant_days,
        interval,
    })
}

/// The `archive` section from the merged settings: `None` without `archive_to`, when none of
/// the other archive settings may be given either (they would silently do nothing).
fn archive_settings(merged: &Settings) -> Result<Option<ArchiveSettings>, ConfigError> {
    let Some(target) = merged.archive_to.as_deref().map(str::trim) else {
        let stray = [
            ("archive_interval", merged.archive_interval.is_some()),
            ("archive_every", merged.archive_every.is_some()),
            (
                "archive_allow_unlocked",
                merged.archive_allow_unlocked.is_some(),
            ),
            (
                "archive_retention_days",
                merged.archive_retention_days.is_some()
                    || merged
                        .tenants
                        .iter()
                        .flatten()
                        .any(|(_, t)| t.archive_retention_days.is_some()),
            ),
        ];
        return match stray.into_iter().find(|(_, set)| *set) {
            Some((setting, _)) => Err(ConfigError::ArchiveWithoutTarget { setting }),
            None => Ok(None),
        };
    };
    let scheme = target.split_once("://").map(|(scheme, _)| scheme);
    let bucket = target
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or(""));
    if target.is_empty() || (scheme.is_some() && bucket.is_none_or(str::is_empty)) {
        return Err(ConfigError::ArchiveTarget {
            text: target.to_string(),
        });
    }
    let interval = match &merged.archive_interval {
        None => DEFAULT_ARCHIVE_INTERVAL,
        Some(text) => parse_duration(text)
            .filter(|d| (ARCHIVE_INTERVAL_RANGE.0..=ARCHIVE_INTERVAL_RANGE.1).contains(d))
            .ok_or_else(|| ConfigError::ArchiveInterval { text: text.clone() })?,
    };
    let every = match merged.archive_every.unwrap_or(DEFAULT_ARCHIVE_EVERY) {
        0 => None,
        n => Some(n),
    };
    let retention_days = ARCHIVE_RETENTION_BOUND.check(
        merged.archive_retention_days,
        DEFAULT_ARCHIVE_RETENTION_DAYS,
    )?;
    let tenant_retention_days = merged
        .tenants
        .iter()
        .flatten()
        .filter_map(|(name, t)| Some((name.clone(), t.archive_retention_days?)))
        .collect();
    Ok(Some(ArchiveSettings {
        target: target.to_string(),
        interval,
        every,
        allow_unlocked: merged.archive_allow_unlocked.unwrap_or(false),
        retention_days,
        tenant_retention_days,
    }))
}

/// The `queries` section from the merged `query_timeout_ms`, `max_searches` and
/// `max_searches_per_tenant`, checked.
fn query_settings(
    query_timeout_ms: Option<u64>,
    max_searches: Option<usize>,
    max_searches_per_tenant: Option<usize>,
) -> Result<QuerySettings, ConfigError> {
    let time_limit = query_timeout_ms.map_or(DEFAULT_QUERY_TIMEOUT, Duration::from_millis);
    if time_limit.is_zero() || time_limit > MAX_QUERY_TIMEOUT {
        return Err(ConfigError::QueryTimeout {
            ms: time_limit.as_millis() as u64,
        });
    }
    let max_searches = max_searches.unwrap_or(DEFAULT_MAX_SEARCHES);
    if !(1..=MAX_MAX_SEARCHES).contains(&max_searches) {
        return Err(ConfigError::MaxSearches {
            value: max_searches,
        });
    }
    // Unset, the share is the default or, below it, the process's whole cap.
    let max_searches_per_tenant =
        max_searches_per_tenant.unwrap_or(DEFAULT_MAX_SEARCHES_PER_TENANT.min(max_searches));
    if !(1..=max_searches).contains(&max_searches_per_tenant) {
        return Err(ConfigError::MaxSearchesPerTenant {
            value: max_searches_per_tenant,
            max_searches,
        });
    }
    Ok(QuerySettings {
        time_limit,
        max_searches,
        max_searches_per_tenant,
    })
}

/// A tenant's own gap rules, if it sets any, checked.
fn gap_rules(
    name: &str,
    tenant: &TenantSettings,
) -> Result<Option<crate::gaps::GapRules>, ConfigError> {
    let bad = |setting, rule| ConfigError::TenantGapSetting {
        tenant: name.to_string(),
        setting,
        rule,
    };
    let mut rules = crate::gaps::GapRules::default();
    let mut any = false;
    if let Some(secs) = tenant.gap_threshold_secs {
        if secs < 60 {
            return Err(bad("gap_threshold_secs", "must be at least 60 (a minute)"));
        }
        rules.threshold_secs = secs;
        any = true;
    }
    if let Some(ratio) = tenant.rate_drop_ratio {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(bad("rate_drop_ratio", "must be above 0 and at most 1"));
        }
        rules.rate_drop_ratio = ratio;
        any = true;
    }
    if let Some(events) = tenant.rate_drop_min_events {
        rules.rate_drop_min_events = events;
        any = true;
    }
    if let Some(factor) = tenant.silent_factor {
        if factor == 0 {
            return Err(bad("silent_factor", "must be at least 1"));
        }
        rules.silent_factor = factor;
        any = true;
    }
    Ok(any.then_some(rules))
}

/// `HOST:PORT` to the one address to bind: an IP address as given, or a host name resolved
/// once at start (`localhost:7433`), its first IPv4 address preferred, so that a name that
/// has both answers on the address clients most often try.
fn resolve_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let listen_error = || ConfigError::Listen {
        text: text.to_string(),
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(listen_error)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(listen_error());
    }
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|error| ConfigError::ListenHost {
            text: text.to_string(),
            reason: error.to_string(),
        })?
        .collect();
    resolved
        .iter()
        .find(|address| address.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| ConfigError::ListenHost {
            text: text.to_string(),
            reason: "the name has no addresses".to_string(),
        })
}

fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::ParseFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
