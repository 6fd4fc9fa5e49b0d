//! The write path: one writer thread per process that sequences, hashes and commits entries
//! for every tenant, with group commit.
//!
//! Requests (HTTP handlers, the CLI) send jobs over a channel. The writer takes the first job,
//! then everything else already queued (up to [`MAX_GROUP_EVENTS`] events), and commits them
//! all in one SQLite transaction: concurrent requests share one fsync. Only after the commit
//! returns does any requester get its receipt, so an acknowledged entry is durable.
//!
//! The transaction begins by taking the append lock of every tenant the group touches
//! ([`Store::begin_write`]: SQLite's one write lock, or per-tenant advisory locks on
//! PostgreSQL, taken in a fixed order). Under the lock the writer checks each tenant's tail
//! against the database before appending; if another process (the CLI, another `sealtrail
//! serve` on the same PostgreSQL database) appended meanwhile, the in-memory tail is reloaded.
//! So several processes extend one log without forks, gaps or reordering, and a lock is held
//! only for the length of one commit.
//!
//! If any job in a group fails in the store, the whole group is rolled back and every request
//! in it is told so; a job refused on its own merits (an invalid tenant name, say) writes
//! nothing and does not affect the rest.
//!
//! The writer also signs checkpoints, each in its own short transaction under the tenant's
//! lock, from the tail it reads there: after a commit, each tenant whose log grew and whose
//! latest checkpoint (by any process) is older than the configured interval gets a new one,
//! and on shutdown every log whose latest checkpoint is smaller than the log gets a final one.
//! On start, every such log (a crash leaves the last acknowledged entries outside every
//! checkpoint) is signed at once, without waiting for a write. A failed signing is retried
//! with backoff until it succeeds. Checkpoints are therefore issued one at a time per log, in
//! order of size and time, whichever instance signs them.
//!
//! Administrative actions (tenant created, token created or revoked, tenant frozen or
//! unfrozen, retention period set, log pruned) are appended to the `_system` tenant's log in
//! the same transaction as the change itself, so an audit record of an admin action cannot be
//! lost while the action takes effect.
//!
//! # Layout
//!
//! This file holds the public handle ([`Ledger`]), its configuration and the types callers
//! see; the writer thread's work is split by concern, each part an `impl` of the same private
//! types:
//!
//! - `writer`: the thread's loop, forming a group and committing it (`commit_group`,
//!   `run_group`), the tenants' in-memory tails, publishing [`LogHead`]s after a commit, and
//!   the `AUDIT:` lines of `--audit-stdout`.
//! - `group`: one group's work inside its transaction (`GroupWork`): per tenant, idempotency
//!   lookups, seq, id, `received_at` and `prev_hash` assignment, the canonical entry and the
//!   stored hashes it adds to the tree.
//! - `spooling`: with PostgreSQL, keeping a failed group's events in the local spool and
//!   draining the spool back into the log in order.
//! - `holding`: with `on_frozen = "spool"`, keeping a frozen tenant's events in its hold file
//!   and draining it into the log, in order, once the tenant is unfrozen (see
//!   [`crate::freeze`]).
//! - `checkpoints`: signing the checkpoints that are due, each under its tenant's lock.
//! - `admin`: tenants, tokens and the configuration record, each with its `_system` audit
//!   entry in the same transaction.
//! - `freeze`: freezing and unfreezing a tenant's ingest (see [`crate::freeze`]), the state
//!   and its `_system` audit entry in the same transaction.
//! - `retention`: a tenant's retention period set through the admin API (the
//!   `retention_periods` row) and its `_system` audit entry in the same transaction; `prune`:
//!   a prune, its mark and its `_system` entry likewise (see [`crate::retention`]).
//!
//! **Architecture invariant:** only the writer thread writes to a log; every other part of the
//! service reaches the store's write side through a [`Ledger`] handle.

mod admin;
mod checkpoints;
mod freeze;
mod group;
mod holding;
mod prune;
mod retention;
mod spooling;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sealtrail_core::Hash;
use sealtrail_core::checkpoint::CheckpointError;
use sealtrail_core::event::{Event, EventError};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::auth::ScopeError;
use crate::clock::Clock;
use crate::config::{Resolved, StoreFailurePolicy};
use crate::follower::Appended;
use crate::freeze::{Freeze, ReasonError};
use crate::keys::{self, KeyError, KeyResolver};
use crate::recent::RecentEntries;
use crate::spool::SpoolError;
use crate::tenant::TenantNameError;
use sealtrail_store::{Location, StoreError};

use holding::{HoldState, HoldWatch};
pub use retention::{PERIOD_SET, PERIODS_SETTING, admin_periods};
use spooling::{SpoolState, SpoolWatch};
use writer::Writer;

pub use crate::tenant::SYSTEM_TENANT;

/// Events committed together at most; bounds a transaction's size and a batch's latency.
pub const MAX_GROUP_EVENTS: usize = 20_000;

/// What the writer needs to know.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Holds `keys/` (and the embedded store, when that is the store).
    pub data_dir: PathBuf,
    pub store: Location,
    /// A root key from which every log's signing key is derived (see
    /// [`SignerKey::derive`]); without one, each log has its own key file under
    /// `data_dir/keys/`.
    pub signing_key: Option<PathBuf>,
    /// Checkpoints are signed at most this often per growing log.
    pub checkpoint_interval: Duration,
    /// A tenant's origin is `<origin_prefix>/<tenant>`.
    pub origin_prefix: String,
    /// Write every committed entry to stdout as `AUDIT: {json}` after its commit.
    pub audit_stdout: bool,
}

impl LedgerConfig {
    /// The writer's configuration from the service's settings: their storage and log sections.
    pub fn from_settings(settings: &Resolved) -> LedgerConfig {
        LedgerConfig {
            data_dir: settings.storage.data.clone(),
            store: settings.storage.store.clone(),
            signing_key: settings.log.signing_key.clone(),
            checkpoint_interval: settings.log.checkpoint_interval,
            origin_prefix: settings.log.origin_prefix.clone(),
            audit_stdout: settings.log.audit_stdout,
        }
    }
}

/// The receipt of a durable entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub event_hash: String,
    pub received_at: String,
}

/// The answer for an event kept in a spool file — the local spool of an outage, or a frozen
/// tenant's hold file: it has its id and acceptance time, and gets its seq when the file
/// drains into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolReceipt {
    pub id: String,
    pub received_at: String,
}

/// The event an idempotency key already names, as its receipt: what a different event sent
/// under the same key is refused with ([`Outcome::Conflict`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Original {
    /// In the log, at its seq.
    Committed(Receipt),
    /// Waiting in this instance's spool: it has its id, and gets its seq when it drains.
    Spooled(SpoolReceipt),
    /// Held in this instance's hold file of its frozen tenant: it has its id, and gets its
    /// seq when the tenant is unfrozen and the file drains.
    Held(SpoolReceipt),
}

/// The server's spool files (see [`crate::spool`]): with PostgreSQL, the local spool that
/// takes events while the database cannot be reached; with any store, the hold files of
/// frozen tenants (`on_frozen = "spool"`, see [`crate::freeze`]). A ledger started without
/// one (the command line's) touches neither.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The bound of each spool file (`spool_max_bytes`): the outage spool's, and each hold
    /// file's on its own.
    pub max_bytes: u64,
    pub default_policy: StoreFailurePolicy,
    pub tenant_policies: HashMap<String, StoreFailurePolicy>,
    /// How long the writer trusts what it last read of the frozen tenants while it holds
    /// events for one (`token_recheck_ms`, the interval ingest reads them again by): an
    /// unfreeze made elsewhere starts the drain within it.
    pub hold_recheck: Duration,
}

impl SpoolConfig {
    /// The spool files' configuration from the settings' outage section and the re-check
    /// interval.
    pub fn from_settings(settings: &Resolved) -> SpoolConfig {
        SpoolConfig {
            max_bytes: settings.outage.spool_max_bytes,
            default_policy: settings.outage.on_store_failure,
            tenant_policies: settings.outage.tenant_policies.clone(),
            hold_recheck: settings.auth.token_recheck,
        }
    }

    fn policy(&self, tenant: &str) -> StoreFailurePolicy {
        self.tenant_policies
            .get(tenant)
            .copied()
            .unwrap_or(self.default_policy)
    }
}

/// What became of one submitted event.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Newly committed.
    Created(Receipt),
    /// Its idempotency key was seen before, for this same event: the original receipt,
    /// nothing new committed.
    Duplicate(Receipt),
    /// Its idempotency key already names a different event (compared by
    /// [`sealtrail_core::canonical::event_digest`]): refused, nothing committed for it.
    Conflict(Original),
    /// Refused on its own (for example too large once canonical); nothing committed for it.
    Rejected(EventError),
    /// The store was unreachable: kept, fsync'd, in the local spool, to be drained into the
    /// log in order (also the answer to a retry of an event still in the spool).
    Spooled(SpoolReceipt),
    /// The tenant is frozen (`on_frozen = "spool"`): kept, fsync'd, in its hold file, to be
    /// drained into the log in order once it is unfrozen (also the answer to a retry of an
    /// event still held).
    Held(SpoolReceipt),
}

/// An event ready for the log, with its idempotency key (from the header or the body).
#[derive(Debug, Clone)]
pub struct Submission {
    pub event: Event,
    pub idempotency_key: Option<String>,
}

/// Why the ledger could not do what was asked.
///
/// Whose move it is decides the variant: [`LedgerError::Invalid`] is the caller's to fix
/// (an HTTP 4xx), everything else is the server's or its store's (a 5xx), so that a client is
/// never told to change a request that was fine.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot be done as asked; nothing of it was written.
    #[error(transparent)]
    Invalid(#[from] Refusal),
    /// The server failed at something that was not the caller's doing.
    #[error(transparent)]
    Internal(#[from] Fault),
    #[error("the ledger has shut down")]
    Closed,
    /// No usable signing key for a log here (missing, or not the key the store records).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The group this request was in did not commit; nothing of it is in the log.
    #[error("not committed: {0}")]
    NotCommitted(String),
    /// The store was unreachable and the event could not be spooled either.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The tenant is frozen and its events could not be held either (the hold file is full,
    /// or cannot be written): nothing of them was kept.
    #[error("tenant {tenant} is frozen and its events cannot be held: {error}")]
    Hold {
        tenant: String,
        #[source]
        error: SpoolError,
    },
    /// The group this request was in did not commit because the store's disk is full
    /// ([`StoreError::Full`]); nothing of it is in the log, and retrying succeeds once there
    /// is space.
    #[error("not committed: {0}")]
    StorageFull(String),
}

/// What the caller must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("tenant {0:?} does not exist")]
    UnknownTenant(String),
    #[error(transparent)]
    TenantName(#[from] TenantNameError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error("a token needs at least one --scope")]
    NoScope,
    #[error(
        "the {SYSTEM_TENANT} log cannot be frozen: it records sealtrail's own actions, this freeze among them"
    )]
    SystemTenantFrozen,
    #[error(transparent)]
    FreezeReason(ReasonError),
    #[error(
        "the {SYSTEM_TENANT} log is never pruned: it records sealtrail's own actions, every prune among them"
    )]
    SystemTenantPruned,
    #[error("a retention period is from 1 to 36500 days, not {0}")]
    RetentionDays(u64),
    /// A legal hold placed after the prune was planned covers entries it would remove.
    #[error(
        "legal hold {hold_id} ({reason}), placed since the prune was planned, covers entry {first_seq} of {tenant}, which it would remove; nothing was pruned, and the next plan stops at the hold"
    )]
    HeldMeanwhile {
        tenant: String,
        hold_id: String,
        reason: String,
        first_seq: u64,
    },
}

/// A failure of the server itself: no change to the request would help.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    /// sealtrail built an admin event its own schema refuses: a bug, never the caller's input.
    #[error("admin event is invalid: {0}")]
    AdminEvent(#[source] EventError),
    #[error("cannot sign a checkpoint: {0}")]
    SignCheckpoint(#[source] CheckpointError),
}

impl LedgerError {
    /// What a request is told when its group failed with `cause`: not committed, and whether
    /// for want of disk space.
    fn not_committed(cause: &LedgerError) -> LedgerError {
        match cause {
            LedgerError::Store(StoreError::Full(_)) | LedgerError::StorageFull(_) => {
                LedgerError::StorageFull(cause.to_string())
            }
            _ => LedgerError::NotCommitted(cause.to_string()),
        }
    }

    /// Whether this error, raised by one job, leaves the group's transaction unusable (a
    /// failed write, or a write already made). A job refused on its own merits
    /// ([`LedgerError::Invalid`]) has written nothing. A fault aborts the group: it may strike
    /// after the job wrote part of its change (an admin action without its audit entry), and
    /// nothing of that may commit.
    fn aborts_group(&self) -> bool {
        !matches!(self, LedgerError::Invalid(_))
    }

    /// Whether the store could not be reached (rather than refusing what was asked).
    pub fn is_store_unreachable(&self) -> bool {
        matches!(self, LedgerError::Store(StoreError::Unavailable(_)))
    }
}

/// A token just created: its id and the secret, which is shown once and stored only hashed.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub tenant_created: bool,
}

/// What a freeze or unfreeze did ([`Ledger::freeze`], [`Ledger::unfreeze`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreezeChange {
    pub tenant: String,
    /// Whether the state changed (and an entry was appended to `_system`); false when the
    /// tenant was already frozen, or not frozen, as asked.
    pub changed: bool,
    /// The freeze that stands now, if the tenant is frozen: the new one, or the one that was
    /// already there (its reason, time and actor are kept).
    pub standing: Option<Freeze>,
    /// The freeze an unfreeze lifted.
    pub lifted: Option<Freeze>,
}

/// What setting a tenant's retention period did ([`Ledger::set_retention`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionChange {
    pub tenant: String,
    /// Whether the period set through the admin API changed (and an entry was appended to
    /// `_system`); false when it already was as asked.
    pub changed: bool,
    /// The period set through the admin API before, in days; `None`: none was.
    pub before: Option<u64>,
    /// The period set through the admin API now; `None`: none is (the configuration's applies).
    pub after: Option<u64>,
}

/// A request to the admin API (or for the `_system` log) that was refused before it did
/// anything, as [`Ledger::record_refusal`] records it in the `_system` log. It holds what the
/// server knows of the attempt, never what the caller presented as a credential: no secret and
/// no hash of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAttempt {
    /// The HTTP method, as sent.
    pub method: String,
    /// The route the request matched (`/v1/admin/tokens/{id}`), or its path when it matched
    /// none.
    pub route: String,
    /// The request's path (the token id a revocation named, say); cut to its first 256
    /// characters.
    pub path: String,
    /// The status it was answered with (400, 401, 403 or 404).
    pub status: u16,
    /// The API error code of the answer (`unauthorized`, `missing_scope`, …).
    pub error: String,
    /// The rule it broke (`unknown_token`, `revoked`, `scope`, …): why it was refused.
    pub reason: String,
    /// The id of the token presented, when it named one the store holds.
    pub token_id: Option<String>,
    /// The address the request came from (the peer of the connection).
    pub client: Option<std::net::IpAddr>,
}

/// The latest committed size and root of a log, published after every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    pub size: u64,
    pub root: Hash,
}

type Reply<T> = oneshot::Sender<Result<T, LedgerError>>;

/// One append job's events and where its outcomes go.
type AppendRequest = (Vec<Submission>, Reply<Vec<Outcome>>);

/// Delivers one job's result once its group's commit outcome is known.
type Answer = Box<dyn FnOnce(Result<(), &LedgerError>)>;

enum Job {
    Append {
        tenant: String,
        submissions: Vec<Submission>,
        reply: Reply<Vec<Outcome>>,
    },
    /// Keeps a frozen tenant's events in its hold file, not in its log (see `holding`).
    Hold {
        tenant: String,
        submissions: Vec<Submission>,
        reply: Reply<Vec<Outcome>>,
    },
    CreateToken {
        tenant: String,
        scopes: Vec<String>,
        actor: String,
        reply: Reply<NewToken>,
    },
    RevokeToken {
        id: String,
        actor: String,
        reply: Reply<bool>,
    },
    /// Creates a `_system` admin token unless the store holds any token yet; decided under the
    /// `_system` lock, so instances starting together on a new database create one between
    /// them.
    FirstAdminToken {
        scopes: Vec<String>,
        reply: Reply<Option<NewToken>>,
    },
    EnsureTenant {
        tenant: String,
        actor: String,
        reply: Reply<bool>,
    },
    RecordConfig {
        config: serde_json::Value,
        reply: Reply<bool>,
    },
    /// Freezes (`frozen`) or unfreezes a tenant's ingest, recording it in `_system`.
    SetFrozen {
        tenant: String,
        frozen: bool,
        reason: String,
        actor: String,
        reply: Reply<FreezeChange>,
    },
    /// Sets (`Some`) or removes (`None`) a tenant's retention period in the
    /// `retention_periods` row, recording it in `_system`.
    SetRetention {
        tenant: String,
        days: Option<u64>,
        actor: String,
        reply: Reply<RetentionChange>,
    },
    /// Records an archive watermark and prunes a tenant's log below a mark, after appending
    /// `sealtrail.retention.pruned` to `_system`, in one transaction (see [`crate::retention`]).
    Prune {
        request: PruneRequest,
        reply: Reply<PruneDone>,
    },
    /// Puts back entries lost from the store (see [`crate::replay`]) and records the run in
    /// `_system`, in one transaction.
    Restore {
        entries: Vec<RestoreEntry>,
        run: serde_json::Value,
        /// The `_system` action that records the run: `sealtrail.replay.run` or
        /// `sealtrail.repair.run`.
        action: &'static str,
        actor: String,
        reply: Reply<Vec<sealtrail_store::Restore>>,
    },
    /// Commit what was queued before it, sign final checkpoints and stop.
    Shutdown,
}

/// A prune the writer is asked for (see [`crate::retention::apply`]).
#[derive(Debug, Clone)]
pub struct PruneRequest {
    pub tenant: String,
    /// Entries below this seq are removed.
    pub below: u64,
    /// The archive that holds them, as it was compared with the store.
    pub archive: String,
    /// The archived size the comparison found valid: recorded as the watermark.
    pub watermark: u64,
    /// What the `_system` entry records besides the mark: the plan and the comparison.
    pub details: serde_json::Value,
    pub actor: String,
}

/// A prune done.
#[derive(Debug, Clone)]
pub struct PruneDone {
    pub mark: sealtrail_store::PruneMark,
    pub removed: u64,
}

/// An entry to put back at its seq: its tenant, seq, id and exact bytes.
#[derive(Debug, Clone)]
pub struct RestoreEntry {
    pub tenant: String,
    pub seq: u64,
    pub id: String,
    pub entry: Vec<u8>,
    /// Also replace a row that holds other bytes ([`sealtrail_store::Store::repair_entry`]),
    /// not only a missing one ([`sealtrail_store::Store::restore_entry`]).
    pub replace: bool,
}

impl Job {
    /// The job that creates a token, waiting for its reply: the same for async and blocking
    /// callers, who differ only in how they wait.
    fn create_token(
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> impl FnOnce(Reply<NewToken>) -> Job {
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        |reply| Job::CreateToken {
            tenant,
            scopes,
            actor,
            reply,
        }
    }

    /// The job that freezes or unfreezes a tenant, waiting for its reply.
    fn set_frozen(
        tenant: &str,
        frozen: bool,
        reason: &str,
        actor: &str,
    ) -> impl FnOnce(Reply<FreezeChange>) -> Job {
        let (tenant, reason, actor) = (tenant.to_string(), reason.to_string(), actor.to_string());
        move |reply| Job::SetFrozen {
            tenant,
            frozen,
            reason,
            actor,
            reply,
        }
    }

    /// The tenants whose logs this job may extend (and so must lock).
    fn tenants(&self) -> Vec<&str> {
        match self {
            Job::Append { tenant, .. } => vec![tenant],
            // Never applied in a group's transaction: written to the hold file beside it.
            Job::Hold { .. } => vec![],
            Job::CreateToken { tenant, .. } | Job::EnsureTenant { tenant, .. } => {
                vec![tenant, SYSTEM_TENANT]
            }
            Job::RevokeToken { .. }
            | Job::RecordConfig { .. }
            | Job::FirstAdminToken { .. }
            | Job::SetFrozen { .. }
            | Job::SetRetention { .. } => vec![SYSTEM_TENANT],
            Job::Prune { request, .. } => vec![&request.tenant, SYSTEM_TENANT],
            Job::Restore { entries, .. } => {
                let mut tenants: Vec<&str> = entries.iter().map(|e| e.tenant.as_str()).collect();
                tenants.push(SYSTEM_TENANT);
                tenants
            }
            Job::Shutdown => vec![],
        }
    }

    fn event_count(&self) -> usize {
        match self {
            Job::Append { submissions, .. } | Job::Hold { submissions, .. } => submissions.len(),
            Job::Shutdown => 0,
            _ => 1,
        }
    }
}

/// Handle to the writer thread. Cloning is cheap; the thread stops when every handle is
/// dropped (or [`Ledger::shutdown`] is called), after committing what was queued and signing
/// final checkpoints.
#[derive(Clone)]
pub struct Ledger {
    jobs: SyncSender<Job>,
    heads: Arc<Mutex<HashMap<String, LogHead>>>,
    /// The committed entries over every tenant, as the writer publishes them with `heads`.
    appended: Appended,
    /// The entries the writer committed last, for the followers in this process.
    recent: RecentEntries,
    /// The local spool's latest state, as the writer publishes it; `None` without a spool.
    spool: SpoolWatch,
    /// The hold files' latest state, by tenant, as the writer publishes it: the tenants this
    /// instance holds events for.
    holds: HoldWatch,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Ledger {
    /// Opens the store (creating it and the `_system` tenant on first use) and starts the
    /// writer thread.
    pub fn start(config: LedgerConfig) -> Result<Ledger, LedgerError> {
        Ledger::start_with_spool(config, None)
    }

    /// [`Ledger::start`], with a local spool for a PostgreSQL store's outages (ignored for the
    /// embedded store, which has nothing to fall back to) and, on either store, the hold files
    /// of frozen tenants. Events already in the spool (from before a restart) are drained
    /// first; held events once their tenant is not frozen.
    pub fn start_with_spool(
        config: LedgerConfig,
        spool: Option<SpoolConfig>,
    ) -> Result<Ledger, LedgerError> {
        Ledger::start_with_clock(config, spool, Clock::system())
    }

    /// [`Ledger::start_with_spool`], reading every time it records from `clock` (a
    /// [`crate::clock::ManualClock`] in tests).
    pub fn start_with_clock(
        config: LedgerConfig,
        spool: Option<SpoolConfig>,
        clock: Clock,
    ) -> Result<Ledger, LedgerError> {
        // Created 0700: the directory holds every log and the signing keys (see `DataDir`).
        sealtrail_store::DataDir::new(&config.data_dir)
            .create()
            .map_err(|source| Fault::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        let store = config.store.open_writer()?;
        let spool_watch = SpoolWatch::default();
        let hold_watch = HoldWatch::default();
        let holds = match &spool {
            Some(spool_config) => Some(HoldState::open(
                &config.data_dir,
                spool_config,
                hold_watch.clone(),
            )?),
            None => None,
        };
        let spool = match (spool, &config.store) {
            (Some(spool_config), Location::Postgres { .. }) => Some(SpoolState::open(
                &config.data_dir,
                spool_config,
                spool_watch.clone(),
            )?),
            _ => None,
        };
        let root_key = match &config.signing_key {
            Some(path) => Some(keys::read_signer(path).map_err(KeyError::from)?),
            None => None,
        };
        let (jobs, receiver) = mpsc::sync_channel::<Job>(4096);
        let heads = Arc::new(Mutex::new(HashMap::new()));
        let appended = Appended::default();
        let keys = KeyResolver::new(&config.data_dir).with_root_key(root_key);
        let mut writer = Writer::new(store, config, keys, heads.clone(), spool, clock);
        writer.appended = appended.clone();
        let recent = writer.recent.clone();
        writer.holds = holds;
        writer.ensure_tenant(SYSTEM_TENANT, "sealtrail")?;
        writer.load_heads()?;
        writer.track_unsigned_logs()?;
        let thread = std::thread::Builder::new()
            .name("sealtrail-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(Fault::WriterThread)?;
        Ok(Ledger {
            jobs,
            heads,
            appended,
            recent,
            spool: spool_watch,
            holds: hold_watch,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let answer = self.send(job)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    fn call_blocking<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let answer = self.send(job)?;
        answer.blocking_recv().map_err(|_| LedgerError::Closed)?
    }

    /// Queues `job` for the writer thread; its answer arrives on the returned channel.
    fn send<T>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<oneshot::Receiver<Result<T, LedgerError>>, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .map_err(|_| LedgerError::Closed)?;
        Ok(answer)
    }

    /// Appends events to a tenant's log; returns once they are durable.
    pub async fn append(
        &self,
        tenant: &str,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let tenant = tenant.to_string();
        self.call(|reply| Job::Append {
            tenant,
            submissions,
            reply,
        })
        .await
    }

    /// Keeps a frozen tenant's events in its hold file instead of its log (`on_frozen =
    /// "spool"`); returns once they are durable there, each [`Outcome::Held`] (or, for an
    /// idempotency key already used, the answer the log would give). They enter the log, in
    /// order, once the tenant is unfrozen.
    pub async fn hold(
        &self,
        tenant: &str,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let tenant = tenant.to_string();
        self.call(|reply| Job::Hold {
            tenant,
            submissions,
            reply,
        })
        .await
    }

    /// [`Ledger::append`] for synchronous callers (the CLI).
    pub fn append_blocking(
        &self,
        tenant: &str,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let tenant = tenant.to_string();
        self.call_blocking(|reply| Job::Append {
            tenant,
            submissions,
            reply,
        })
    }

    /// Puts back each entry whose row is missing and whose bytes hash to the stored leaf hash
    /// at its seq ([`sealtrail_store::Store::restore_entry`]), and appends
    /// `sealtrail.replay.run` to the `_system` log with `run` as its details plus the count
    /// restored, all in one transaction. One result per entry, in order.
    pub fn restore_blocking(
        &self,
        entries: Vec<RestoreEntry>,
        run: serde_json::Value,
        actor: &str,
    ) -> Result<Vec<sealtrail_store::Restore>, LedgerError> {
        let actor = actor.to_string();
        self.call_blocking(|reply| Job::Restore {
            entries,
            run,
            action: "sealtrail.replay.run",
            actor,
            reply,
        })
    }

    /// [`Ledger::restore_blocking`] for `sealtrail repair`: entries marked `replace` also
    /// replace a changed row ([`sealtrail_store::Store::repair_entry`]), and the run is
    /// recorded as `sealtrail.repair.run`.
    pub fn repair_blocking(
        &self,
        entries: Vec<RestoreEntry>,
        run: serde_json::Value,
        actor: &str,
    ) -> Result<Vec<sealtrail_store::Restore>, LedgerError> {
        let actor = actor.to_string();
        self.call_blocking(|reply| Job::Restore {
            entries,
            run,
            action: "sealtrail.repair.run",
            actor,
            reply,
        })
    }

    /// Creates a token (and its tenant, if new), recording both in the `_system` log.
    pub async fn create_token(
        &self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        self.call(Job::create_token(tenant, scopes, actor)).await
    }

    /// [`Ledger::create_token`] for synchronous callers (the CLI).
    pub fn create_token_blocking(
        &self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        self.call_blocking(Job::create_token(tenant, scopes, actor))
    }

    /// Creates the first admin token of a store that has no token yet; `None` when it has one.
    pub async fn first_admin_token(
        &self,
        scopes: Vec<String>,
    ) -> Result<Option<NewToken>, LedgerError> {
        self.call(|reply| Job::FirstAdminToken { scopes, reply })
            .await
    }

    /// Revokes a token; false when there is no such active token.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool, LedgerError> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.call(|reply| Job::RevokeToken { id, actor, reply })
            .await
    }

    pub fn revoke_token_blocking(&self, id: &str, actor: &str) -> Result<bool, LedgerError> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.call_blocking(|reply| Job::RevokeToken { id, actor, reply })
    }

    /// Freezes `tenant`'s ingest for `reason`, on behalf of `actor` (a token id, or
    /// `cli:<user>`), and appends `sealtrail.tenant.frozen` to the `_system` log in the same
    /// transaction. A tenant already frozen stays frozen as it was, and nothing is recorded.
    pub async fn freeze(
        &self,
        tenant: &str,
        reason: &str,
        actor: &str,
    ) -> Result<FreezeChange, LedgerError> {
        self.call(Job::set_frozen(tenant, true, reason, actor))
            .await
    }

    /// Lifts `tenant`'s freeze, appending `sealtrail.tenant.unfrozen` (with `reason` and the
    /// freeze lifted) to the `_system` log in the same transaction. Nothing is recorded for a
    /// tenant that is not frozen.
    pub async fn unfreeze(
        &self,
        tenant: &str,
        reason: &str,
        actor: &str,
    ) -> Result<FreezeChange, LedgerError> {
        self.call(Job::set_frozen(tenant, false, reason, actor))
            .await
    }

    /// [`Ledger::freeze`] (`frozen`) or [`Ledger::unfreeze`] for synchronous callers (the CLI).
    pub fn set_frozen_blocking(
        &self,
        tenant: &str,
        frozen: bool,
        reason: &str,
        actor: &str,
    ) -> Result<FreezeChange, LedgerError> {
        self.call_blocking(Job::set_frozen(tenant, frozen, reason, actor))
    }

    /// Sets `tenant`'s retention period to `days` (`None`: removes the one set here, so the
    /// configuration's applies again) on behalf of `actor`, and appends
    /// `sealtrail.retention.period_set` to the `_system` log in the same transaction. Asking
    /// for the period already set changes nothing and records nothing.
    pub async fn set_retention(
        &self,
        tenant: &str,
        days: Option<u64>,
        actor: &str,
    ) -> Result<RetentionChange, LedgerError> {
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        self.call(|reply| Job::SetRetention {
            tenant,
            days,
            actor,
            reply,
        })
        .await
    }

    /// Prunes a tenant's log as `request` says, recording it in `_system` first (see
    /// [`crate::retention::apply`], which decides the mark).
    pub fn prune_blocking(&self, request: PruneRequest) -> Result<PruneDone, LedgerError> {
        self.call_blocking(|reply| Job::Prune { request, reply })
    }

    /// [`Ledger::prune_blocking`] for async callers (the server's retention schedule).
    pub async fn prune(&self, request: PruneRequest) -> Result<PruneDone, LedgerError> {
        self.call(|reply| Job::Prune { request, reply }).await
    }

    /// Creates the tenant if it does not exist; true when it was created.
    pub fn ensure_tenant_blocking(&self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        self.call_blocking(|reply| Job::EnsureTenant {
            tenant,
            actor,
            reply,
        })
    }

    /// Records the server's effective configuration; when it differs from the one recorded at
    /// the last start, appends `sealtrail.config.changed` (with both) to the `_system` log.
    /// Returns whether it changed.
    pub async fn record_config(&self, config: serde_json::Value) -> Result<bool, LedgerError> {
        self.call(|reply| Job::RecordConfig { config, reply }).await
    }

    /// Appends `sealtrail.admin.refused` to the `_system` log for `attempt`, noting that
    /// `suppressed` earlier attempts from the same address were refused without a record of
    /// their own (see [`crate::refusals`]). Returns once the record is durable.
    pub async fn record_refusal(
        &self,
        attempt: &RefusedAttempt,
        suppressed: u64,
    ) -> Result<(), LedgerError> {
        // Built and checked here, outside the writer: an event the schema refused would
        // otherwise be a fault inside a group, and roll back other requests' work with it.
        let event = admin::refusal_event(attempt, suppressed).map_err(Fault::AdminEvent)?;
        let submission = Submission {
            event,
            idempotency_key: None,
        };
        let outcomes = self.append(SYSTEM_TENANT, vec![submission]).await?;
        match outcomes.into_iter().next() {
            // Spooled while PostgreSQL is unreachable: it enters the log when that drains.
            Some(Outcome::Created(_) | Outcome::Spooled(_)) => Ok(()),
            other => Err(LedgerError::NotCommitted(format!(
                "the refused attempt was not recorded: {other:?}"
            ))),
        }
    }

    /// The local spool's latest state (what `/health` reports); `None` without a spool (the
    /// embedded store).
    pub fn spool_status(&self) -> Option<crate::spool::SpoolStatus> {
        *self.spool.lock().expect("spool watch lock")
    }

    /// How many events this instance holds for `tenant` in its hold file, waiting for the
    /// tenant to be unfrozen (0 when none).
    pub fn held(&self, tenant: &str) -> u64 {
        self.holds
            .lock()
            .expect("hold watch lock")
            .get(tenant)
            .map_or(0, |status| status.depth)
    }

    /// The latest committed size and root of a tenant's log, if it has one.
    pub fn head(&self, tenant: &str) -> Option<LogHead> {
        self.heads.lock().expect("heads lock").get(tenant).copied()
    }

    /// The writer's count of committed entries over every tenant, updated after each commit:
    /// followers in this process start a round once enough has gathered.
    pub fn appended(&self) -> Appended {
        self.appended.clone()
    }

    /// The entries the writer committed last, which followers in this process take their
    /// batches from while they keep up (see [`crate::recent`]).
    pub fn recent(&self) -> RecentEntries {
        self.recent.clone()
    }

    /// Lets the writer commit everything queued so far, sign final checkpoints and exit, and
    /// waits for it. Later calls through any clone fail with [`LedgerError::Closed`].
    pub fn shutdown(self) {
        let thread = self.thread.lock().expect("thread lock").take();
        let _ = self.jobs.send(Job::Shutdown);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::http::ApiError;

    #[test]
    fn refusals_are_the_callers_to_fix_and_faults_the_servers() {
        let refused = LedgerError::from(Refusal::NoScope);
        assert!(!refused.aborts_group());
        let answer = ApiError::from(refused);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.message, "a token needs at least one --scope");

        let name = TenantNameError {
            name: "Acme".into(),
        };
        let answer = ApiError::from(LedgerError::from(Refusal::from(name.clone())));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.message, name.to_string());

        let fault = LedgerError::from(Fault::WriterThread(std::io::Error::other("no threads")));
        // The writer cannot know what a fault left half done in the group's transaction.
        assert!(fault.aborts_group());
        let answer = ApiError::from(fault);
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            answer
                .message
                .contains("cannot start the writer thread: no threads")
        );
    }
}
