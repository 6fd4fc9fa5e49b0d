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
//! and on shutdown every grown log gets a final one. Checkpoints are therefore issued one at a
//! time per log, in order of size and time, whichever instance signs them.
//!
//! Administrative actions (tenant created, token created or revoked) are appended to the
//! `_system` tenant's log in the same transaction as the change itself, so the audit record of
//! an admin action cannot be lost while the action takes effect.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::{Event, EventError};
use sealtrail_core::merkle::{self, TreeBuilder};
use sealtrail_core::note::SignerKey;
use sealtrail_core::{Hash, Timestamp, leaf_hash};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::StoreFailurePolicy;
use crate::keyfiles;
use crate::spool::{self, Spool, SpoolError};
use sealtrail_store::{self as store, Location, NewEntry, Store, StoreError, Tenant, TokenRecord};

/// The tenant whose log records administrative actions.
pub const SYSTEM_TENANT: &str = "_system";

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

/// The receipt of a durable entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub event_hash: String,
    pub received_at: String,
}

/// The answer for an event kept in the local spool: it has its id and acceptance time, and
/// gets its seq when the spool drains into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolReceipt {
    pub id: String,
    pub received_at: String,
}

/// What to do when the PostgreSQL store cannot be reached (see [`crate::spool`]).
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub max_bytes: u64,
    pub default_policy: StoreFailurePolicy,
    pub tenant_policies: HashMap<String, StoreFailurePolicy>,
}

impl SpoolConfig {
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
    /// Its idempotency key was seen before: the original receipt, nothing new committed.
    Duplicate(Receipt),
    /// Refused on its own (for example too large once canonical); nothing committed for it.
    Rejected(EventError),
    /// The store was unreachable: kept, fsync'd, in the local spool, to be drained into the
    /// log in order (also the answer to a retry of an event still in the spool).
    Spooled(SpoolReceipt),
}

/// An event ready for the log, with its idempotency key (from the header or the body).
#[derive(Debug, Clone)]
pub struct Submission {
    pub event: Event,
    pub idempotency_key: Option<String>,
}

/// Why the ledger could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the key file: {0}")]
    Keys(#[from] keyfiles::KeyFileError),
    #[error("{0}")]
    Invalid(String),
    #[error("the ledger has shut down")]
    Closed,
    #[error("{0}")]
    MissingKey(String),
    /// The group this request was in did not commit; nothing of it is in the log.
    #[error("not committed: {0}")]
    NotCommitted(String),
    /// The store was unreachable and the event could not be spooled either.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The group this request was in did not commit because the store's disk is full
    /// ([`StoreError::Full`]); nothing of it is in the log, and retrying succeeds once there
    /// is space.
    #[error("not committed: {0}")]
    StorageFull(String),
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
    /// ([`LedgerError::Invalid`]) has written nothing.
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
    /// Commit what was queued before it, sign final checkpoints and stop.
    Shutdown,
}

impl Job {
    /// The tenants whose logs this job may extend (and so must lock).
    fn tenants(&self) -> Vec<&str> {
        match self {
            Job::Append { tenant, .. } => vec![tenant],
            Job::CreateToken { tenant, .. } | Job::EnsureTenant { tenant, .. } => {
                vec![tenant, SYSTEM_TENANT]
            }
            Job::RevokeToken { .. } | Job::RecordConfig { .. } | Job::FirstAdminToken { .. } => {
                vec![SYSTEM_TENANT]
            }
            Job::Shutdown => vec![],
        }
    }

    fn event_count(&self) -> usize {
        match self {
            Job::Append { submissions, .. } => submissions.len(),
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
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Ledger {
    /// Opens the store (creating it and the `_system` tenant on first use) and starts the
    /// writer thread.
    pub fn start(config: LedgerConfig) -> Result<Ledger, LedgerError> {
        Ledger::start_with_spool(config, None)
    }

    /// [`Ledger::start`], with a local spool for a PostgreSQL store's outages (ignored for the
    /// embedded store, which has nothing to fall back to). Events already in the spool (from
    /// before a restart) are drained first.
    pub fn start_with_spool(
        config: LedgerConfig,
        spool: Option<SpoolConfig>,
    ) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            LedgerError::Keys(keyfiles::KeyFileError::Io {
                path: config.data_dir.clone(),
                source,
            })
        })?;
        let store = config.store.open_writer()?;
        let spool = match (spool, &config.store) {
            (Some(spool_config), Location::Postgres { .. }) => {
                let (spool, recovery) = Spool::open(&config.data_dir, spool_config.max_bytes)?;
                if recovery.discarded_bytes > 0 {
                    tracing::warn!(
                        discarded_bytes = recovery.discarded_bytes,
                        "the spool ended in an unfinished record (a write cut off by a crash, never acknowledged); it was discarded"
                    );
                }
                if recovery.records > 0 {
                    tracing::warn!(
                        records = recovery.records,
                        "events spooled before the restart wait to be drained into the log"
                    );
                }
                crate::metrics::set_spool(spool.status());
                Some(SpoolState {
                    spool,
                    config: spool_config,
                    down_since: None,
                })
            }
            _ => None,
        };
        let root_key = match &config.signing_key {
            Some(path) => Some(keyfiles::read_signer(path)?),
            None => None,
        };
        let (jobs, receiver) = mpsc::sync_channel::<Job>(4096);
        let heads = Arc::new(Mutex::new(HashMap::new()));
        let mut writer = Writer {
            store,
            keys: Keys {
                config: config.clone(),
                root: root_key,
                cache: HashMap::new(),
            },
            config,
            tenants: HashMap::new(),
            heads: heads.clone(),
            audit: Vec::new(),
            spool,
        };
        writer.ensure_tenant(SYSTEM_TENANT, "sealtrail")?;
        writer.load_heads()?;
        let thread = std::thread::Builder::new()
            .name("sealtrail-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| LedgerError::Invalid(format!("cannot start the writer thread: {e}")))?;
        Ok(Ledger {
            jobs,
            heads,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .map_err(|_| LedgerError::Closed)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    fn call_blocking<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .map_err(|_| LedgerError::Closed)?;
        answer.blocking_recv().map_err(|_| LedgerError::Closed)?
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

    /// Creates a token (and its tenant, if new), recording both in the `_system` log.
    pub async fn create_token(
        &self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        self.call(|reply| Job::CreateToken {
            tenant,
            scopes,
            actor,
            reply,
        })
        .await
    }

    /// [`Ledger::create_token`] for synchronous callers (the CLI).
    pub fn create_token_blocking(
        &self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        self.call_blocking(|reply| Job::CreateToken {
            tenant,
            scopes,
            actor,
            reply,
        })
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

    /// The latest committed size and root of a tenant's log, if it has one.
    pub fn head(&self, tenant: &str) -> Option<LogHead> {
        self.heads.lock().expect("heads lock").get(tenant).copied()
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

/// A tenant as the writer keeps it in memory.
struct TenantState {
    origin: String,
    size: u64,
    last_hash: Hash,
    tree: TreeBuilder,
    /// The size of the latest checkpoint this writer knows of, and when this writer last saw
    /// the log checkpointed; a hint for when to look, checked against the store before signing.
    checkpointed_size: u64,
    checkpointed_at: Option<Instant>,
}

struct Writer {
    store: Box<dyn Store>,
    config: LedgerConfig,
    keys: Keys,
    tenants: HashMap<String, TenantState>,
    heads: Arc<Mutex<HashMap<String, LogHead>>>,
    /// Entries of the group being committed, as `(tenant, entry)`, kept for `--audit-stdout`.
    audit: Vec<(String, Vec<u8>)>,
    /// With PostgreSQL: where events go while the database is unreachable.
    spool: Option<SpoolState>,
}

/// How long after the store was found unreachable the writer tries it again (meanwhile
/// spoolable events go straight to the spool and other writes fail at once).
const RETRY_UNREACHABLE: Duration = Duration::from_secs(1);
/// How often the writer wakes to drain the spool when no request comes.
const DRAIN_TICK: Duration = Duration::from_millis(200);
/// Spooled events drained per transaction, at most.
const DRAIN_CHUNK: usize = 5_000;

struct SpoolState {
    spool: Spool,
    config: SpoolConfig,
    /// When the store was last found unreachable; cleared by the next success.
    down_since: Option<Instant>,
}

impl SpoolState {
    /// Whether the store should be left alone for now.
    fn backing_off(&self) -> bool {
        self.down_since
            .is_some_and(|at| at.elapsed() < RETRY_UNREACHABLE)
    }
}

/// An append job whose answer waits for its group's outcome, kept whole so that its events can
/// go to the spool if the store turns out to be unreachable.
struct PendingAppend {
    tenant: String,
    submissions: Vec<Submission>,
    reply: Reply<Vec<Outcome>>,
    /// What applying it in the group's transaction gave, if it was applied.
    tried: Option<Result<Vec<Outcome>, LedgerError>>,
}

/// A job's answer, delivered once its group's commit outcome is known.
enum Settled {
    Answer(Answer),
    Append(PendingAppend),
}

/// Where each log's signing key comes from: derived from the root key when one is configured,
/// else the log's own key file under `DIR/keys/`. Either way it must match the verifier key the
/// store recorded for the tenant, so two instances can never sign one log with different keys.
struct Keys {
    config: LedgerConfig,
    root: Option<SignerKey>,
    cache: HashMap<String, SignerKey>,
}

impl Keys {
    /// The signing key of an existing tenant's log.
    fn signer(&mut self, tenant: &Tenant) -> Result<&SignerKey, LedgerError> {
        if !self.cache.contains_key(&tenant.origin) {
            let signer = match &self.root {
                Some(root) => root.derive(&tenant.origin).map_err(|e| {
                    LedgerError::Invalid(format!("cannot derive the key of {}: {e}", tenant.origin))
                })?,
                None => {
                    let (key_path, _) = keyfiles::key_paths(&self.dir(), &tenant.origin);
                    if !key_path.exists() {
                        return Err(LedgerError::MissingKey(format!(
                            "no signing key for the log {} at {}: copy DIR/keys/ from the instance that created the tenant, or run every instance with the same --signing-key",
                            tenant.origin,
                            key_path.display()
                        )));
                    }
                    keyfiles::read_signer(&key_path)?
                }
            };
            if let Some(recorded) = &tenant.vkey
                && *recorded != signer.verifier().to_string()
            {
                return Err(LedgerError::MissingKey(format!(
                    "the signing key available here for {} is not the one the store records ({recorded}); refusing to sign with it",
                    tenant.origin
                )));
            }
            self.cache.insert(tenant.origin.clone(), signer);
        }
        Ok(&self.cache[&tenant.origin])
    }

    /// The key of a log being created: derived, or a new key file (an existing file is kept).
    fn create(&mut self, origin: &str) -> Result<SignerKey, LedgerError> {
        let signer = match &self.root {
            Some(root) => root.derive(origin).map_err(|e| {
                LedgerError::Invalid(format!("cannot derive the key of {origin}: {e}"))
            })?,
            None => {
                let (key_path, _) = keyfiles::key_paths(&self.dir(), origin);
                if key_path.exists() {
                    keyfiles::read_signer(&key_path)?
                } else {
                    let signer =
                        SignerKey::generate(origin, &mut rand_core::OsRng).map_err(|e| {
                            LedgerError::Invalid(format!("cannot create a key for {origin}: {e}"))
                        })?;
                    keyfiles::write_key_pair(&self.dir(), &signer)?;
                    signer
                }
            }
        };
        Ok(signer)
    }

    fn dir(&self) -> PathBuf {
        self.config.data_dir.join("keys")
    }
}

/// Tenant names: lowercase letters, digits, `-` and `_`, 1–64 characters, starting with a
/// letter or digit (`_system` is the one reserved exception).
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && (name.as_bytes()[0].is_ascii_alphanumeric() || name == SYSTEM_TENANT);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tenant {name:?} is not a valid name: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros).expect("the clock is between 1970 and 9999")
}

impl Writer {
    fn run(mut self, receiver: Receiver<Job>) {
        loop {
            let wait = if self.spool_pending() {
                DRAIN_TICK.min(self.config.checkpoint_interval)
            } else {
                self.config.checkpoint_interval
            };
            let first = match receiver.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stopping = false;
            if let Some(first) = first {
                let mut jobs = Vec::new();
                let mut events = 0;
                let mut next = Some(first);
                while let Some(job) = next.take() {
                    if matches!(job, Job::Shutdown) {
                        stopping = true;
                        break;
                    }
                    events += job.event_count();
                    jobs.push(job);
                    if events < MAX_GROUP_EVENTS {
                        next = receiver.try_recv().ok();
                    }
                }
                if !jobs.is_empty() {
                    self.commit_group(jobs);
                }
            } else if self.spool_pending() {
                self.drain_spool();
            }
            if stopping {
                break;
            }
            if !self.store_backing_off() {
                self.sign_due_checkpoints(false);
            }
        }
        if self.spool_pending() {
            self.drain_spool();
        }
        self.sign_due_checkpoints(true);
    }

    fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.spool.is_pending())
    }

    fn store_backing_off(&self) -> bool {
        self.spool.as_ref().is_some_and(SpoolState::backing_off)
    }

    /// Whether this append can go to the spool: a spool is configured, the tenant's policy is
    /// `spool`, and the tenant is one this writer knows to exist (a drain must not fail).
    fn spoolable(&self, tenant: &str) -> bool {
        self.spool.as_ref().is_some_and(|s| {
            s.config.policy(tenant) == StoreFailurePolicy::Spool
                && self.heads.lock().expect("heads lock").contains_key(tenant)
        })
    }

    /// Runs a group of jobs in one transaction and answers each once it is durable. While
    /// events wait in the spool, new events of spooling tenants join them there, behind them,
    /// so that the log keeps the order in which events were accepted.
    fn commit_group(&mut self, jobs: Vec<Job>) {
        if self.spool_pending() {
            self.drain_spool();
        }
        let (diverted, jobs): (Vec<Job>, Vec<Job>) = if self.spool_pending() {
            jobs.into_iter().partition(|job| match job {
                Job::Append { tenant, .. } => self.spoolable(tenant),
                _ => false,
            })
        } else {
            (Vec::new(), jobs)
        };
        if !diverted.is_empty() {
            let pending = diverted.into_iter().filter_map(|job| match job {
                Job::Append {
                    tenant,
                    submissions,
                    reply,
                } => Some(PendingAppend {
                    tenant,
                    submissions,
                    reply,
                    tried: None,
                }),
                _ => None,
            });
            self.spool_appends(pending.collect());
        }
        if jobs.is_empty() {
            return;
        }
        let events = jobs.iter().map(Job::event_count).sum();
        let started = Instant::now();
        let mut settled: Vec<Settled> = Vec::new();
        self.audit.clear();
        let result = if self.store_backing_off() {
            // Appends of spooling tenants still go to the spool, below.
            for job in jobs {
                settled.push(unapplied(job));
            }
            Err(LedgerError::Store(StoreError::Unavailable(
                "the store was unreachable a moment ago; not retried yet".into(),
            )))
        } else {
            self.run_group(jobs, &mut settled)
        };
        if result.is_ok() && self.config.audit_stdout {
            write_audit_lines(&self.audit);
        }
        self.audit.clear();
        let error = result.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        crate::metrics::group_committed(events, started.elapsed(), error);
        if result.is_err() {
            // What was applied in memory may not match the database: reload on next use.
            self.tenants.clear();
        }
        if let Some(spool) = &mut self.spool {
            match &result {
                Ok(()) => spool.down_since = None,
                // The next attempt waits from this failure.
                Err(error) if error.is_store_unreachable() => {
                    spool.down_since = Some(Instant::now());
                }
                Err(_) => {}
            }
        }
        let mut to_spool = Vec::new();
        for item in settled {
            match item {
                Settled::Answer(answer) => answer(result.as_ref().map(|_| ())),
                Settled::Append(pending) => match &result {
                    Ok(()) => {
                        let answer = pending.tried.unwrap_or(Err(LedgerError::Closed));
                        let _ = pending.reply.send(answer);
                    }
                    Err(error)
                        if error.is_store_unreachable() && self.spoolable(&pending.tenant) =>
                    {
                        to_spool.push(pending);
                    }
                    Err(error) => {
                        let _ = pending.reply.send(Err(LedgerError::not_committed(error)));
                    }
                },
            }
        }
        if let Err(error) = &result {
            if error.is_store_unreachable() && !to_spool.is_empty() {
                tracing::warn!(%error, "the store is unreachable; spooling events locally");
            } else {
                tracing::error!(%error, "group commit failed; every request in it was told so");
            }
        }
        if !to_spool.is_empty() {
            self.spool_appends(to_spool);
        }
    }

    /// Keeps appends in the spool, fsync'd, and answers them `Spooled` (or, if the spool
    /// cannot take them, with its error). An event the failed group had already given an id
    /// keeps it, so that if that commit did reach the database after all, draining finds the
    /// id in the log and skips the copy.
    fn spool_appends(&mut self, pending: Vec<PendingAppend>) {
        let Some(state) = &mut self.spool else {
            for p in pending {
                let _ = p.reply.send(Err(LedgerError::Closed));
            }
            return;
        };
        let mut records = Vec::new();
        let mut answers = Vec::with_capacity(pending.len());
        let mut keys_here: HashMap<(String, String), SpoolReceipt> = HashMap::new();
        for p in pending {
            let tried = match p.tried {
                Some(Ok(outcomes)) => Some(outcomes),
                _ => None,
            };
            let mut outcomes = Vec::with_capacity(p.submissions.len());
            for (i, submission) in p.submissions.iter().enumerate() {
                let earlier = tried.as_ref().and_then(|t| t.get(i));
                let (id, received_at) = match earlier {
                    // Already answered from the log, or refused on its own: unchanged.
                    Some(outcome @ (Outcome::Duplicate(_) | Outcome::Rejected(_))) => {
                        outcomes.push(outcome.clone());
                        continue;
                    }
                    Some(Outcome::Created(receipt)) => (
                        uuid::Uuid::parse_str(&receipt.id).expect("an id this writer made"),
                        Timestamp::parse(&receipt.received_at).expect("a time this writer made"),
                    ),
                    _ => (uuid::Uuid::now_v7(), now()),
                };
                if let Some(key) = &submission.idempotency_key {
                    let pair = (p.tenant.clone(), key.clone());
                    if let Some(receipt) = keys_here.get(&pair) {
                        outcomes.push(Outcome::Spooled(receipt.clone()));
                        continue;
                    }
                    if let Some((id, received_at)) = state.spool.spooled_key(&p.tenant, key) {
                        outcomes.push(Outcome::Spooled(SpoolReceipt { id, received_at }));
                        continue;
                    }
                }
                let server = ServerFields {
                    id,
                    seq: sealtrail_core::event::MAX_SAFE_INTEGER,
                    received_at,
                    prev_hash: Hash::ZERO,
                };
                match canonical_entry(&submission.event, &server) {
                    Ok(entry) => {
                        let receipt = SpoolReceipt {
                            id: id.to_string(),
                            received_at: received_at.to_rfc3339(),
                        };
                        if let Some(key) = &submission.idempotency_key {
                            keys_here.insert((p.tenant.clone(), key.clone()), receipt.clone());
                        }
                        records.push(spool::Record {
                            tenant: p.tenant.clone(),
                            idempotency_key: submission.idempotency_key.clone(),
                            entry,
                        });
                        outcomes.push(Outcome::Spooled(receipt));
                    }
                    Err(error) => outcomes.push(Outcome::Rejected(error)),
                }
            }
            answers.push((p.reply, outcomes));
        }
        let written = if records.is_empty() {
            Ok(())
        } else {
            state.spool.append(&records)
        };
        crate::metrics::set_spool(state.spool.status());
        match written {
            Ok(()) => {
                for (reply, outcomes) in answers {
                    let _ = reply.send(Ok(outcomes));
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot spool events while the store is unreachable");
                for (reply, _) in answers {
                    let _ = reply.send(Err(LedgerError::Spool(clone_spool_error(&error))));
                }
            }
        }
    }

    /// Moves spooled events into the log, oldest first, one chunk per transaction, for as
    /// long as the store takes them (up to about half a second per call, so that requests
    /// keep being answered).
    fn drain_spool(&mut self) {
        let started = Instant::now();
        while self.spool_pending() && !self.store_backing_off() {
            match self.drain_chunk() {
                Ok(()) => {
                    if let Some(state) = &mut self.spool {
                        state.down_since = None;
                    }
                }
                Err(error) => {
                    self.tenants.clear();
                    if error.is_store_unreachable() {
                        tracing::debug!(%error, "the store is still unreachable; the spool waits");
                    } else {
                        tracing::error!(%error, "cannot drain the spool; will try again");
                    }
                    if let Some(state) = &mut self.spool {
                        state.down_since = Some(Instant::now());
                    }
                    return;
                }
            }
            if started.elapsed() > Duration::from_millis(500) {
                return;
            }
        }
    }

    fn drain_chunk(&mut self) -> Result<(), LedgerError> {
        let state = self.spool.as_mut().expect("a spool to drain");
        let chunk = state.spool.peek(DRAIN_CHUNK, 8 * 1024 * 1024)?;
        let Some(end) = chunk.last().map(|p| p.end) else {
            return Ok(());
        };
        let records: Vec<spool::Record> = chunk.into_iter().map(|p| p.record).collect();
        // Per tenant, in spool order; tenants are separate logs, so only that order matters.
        let mut order: Vec<String> = Vec::new();
        let mut by_tenant: HashMap<String, Vec<(Submission, Assigned)>> = HashMap::new();
        for record in &records {
            let Some(entry) = record.parsed() else {
                tracing::error!(
                    tenant = %record.tenant,
                    "a spooled record does not hold a readable entry; skipped"
                );
                continue;
            };
            if !by_tenant.contains_key(&record.tenant) {
                order.push(record.tenant.clone());
            }
            by_tenant.entry(record.tenant.clone()).or_default().push((
                Submission {
                    event: entry.event,
                    idempotency_key: record.idempotency_key.clone(),
                },
                Assigned {
                    id: entry.server.id,
                    received_at: entry.server.received_at,
                },
            ));
        }
        let started = Instant::now();
        let mut locks: Vec<&str> = order.iter().map(String::as_str).collect();
        locks.sort_unstable();
        self.audit.clear();
        self.store.begin_write(&locks)?;
        let result = (|| {
            let mut work = GroupWork {
                store: self.store.as_ref(),
                tenants: &mut self.tenants,
                keys: &mut self.keys,
                config: &self.config,
                audit: &mut self.audit,
            };
            let mut drained = 0usize;
            for tenant in &order {
                let items = by_tenant.remove(tenant).unwrap_or_default();
                let mut submissions = Vec::with_capacity(items.len());
                let mut assigned = Vec::with_capacity(items.len());
                // Already in the log: a chunk committed just before a crash, or a commit whose
                // answer was lost with the connection. Looked up in one round trip.
                let ids: Vec<String> = items.iter().map(|(_, a)| a.id.to_string()).collect();
                let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let in_log = work.store.seqs_of_ids(tenant, &id_refs)?;
                for ((submission, id), id_text) in items.into_iter().zip(&ids) {
                    if in_log.contains_key(id_text) {
                        continue;
                    }
                    submissions.push(submission);
                    assigned.push(id);
                }
                let outcomes = work.append_assigned(tenant, &submissions, Some(&assigned))?;
                for outcome in &outcomes {
                    match outcome {
                        Outcome::Created(_) => drained += 1,
                        Outcome::Duplicate(receipt) => tracing::warn!(
                            tenant = %tenant, seq = receipt.seq,
                            "a spooled event's idempotency key is already in the log; the copy was not appended"
                        ),
                        other => tracing::error!(
                            tenant = %tenant, outcome = ?other,
                            "a spooled event could not be appended; skipped"
                        ),
                    }
                }
            }
            Ok::<usize, LedgerError>(drained)
        })();
        let drained = match result {
            Ok(drained) => {
                if let Err(error) = self.store.commit() {
                    let _ = self.store.rollback();
                    crate::metrics::group_committed(records.len(), started.elapsed(), Some(&error));
                    return Err(error.into());
                }
                drained
            }
            Err(error) => {
                let _ = self.store.rollback();
                return Err(error);
            }
        };
        crate::metrics::group_committed(drained, started.elapsed(), None);
        if self.config.audit_stdout {
            write_audit_lines(&self.audit);
        }
        self.audit.clear();
        self.publish_heads();
        let state = self.spool.as_mut().expect("a spool to drain");
        state.spool.drained_to(end, &records)?;
        crate::metrics::set_spool(state.spool.status());
        tracing::info!(
            drained,
            waiting = state.spool.status().depth,
            "spooled events moved into the log"
        );
        Ok(())
    }

    fn publish_heads(&self) {
        let mut heads = self.heads.lock().expect("heads lock");
        for (name, state) in &self.tenants {
            heads.insert(
                name.clone(),
                LogHead {
                    size: state.size,
                    root: state.tree.root(),
                },
            );
        }
    }

    fn run_group(&mut self, jobs: Vec<Job>, settled: &mut Vec<Settled>) -> Result<(), LedgerError> {
        let mut locks: Vec<&str> = jobs.iter().flat_map(Job::tenants).collect();
        locks.sort_unstable();
        locks.dedup();
        if let Err(error) = self.store.begin_write(&locks) {
            let _ = self.store.rollback();
            for job in jobs {
                settled.push(unapplied(job));
            }
            return Err(error.into());
        }
        let mut work = GroupWork {
            store: self.store.as_ref(),
            tenants: &mut self.tenants,
            keys: &mut self.keys,
            config: &self.config,
            audit: &mut self.audit,
        };
        let mut failure = None;
        let mut pending_jobs = jobs.into_iter().peekable();
        while pending_jobs.peek().is_some() {
            // Consecutive appends are applied together, one call per tenant: one tail read,
            // one idempotency lookup and one insert per table for all of them.
            let mut run = Vec::new();
            while let Some(job) = pending_jobs.next_if(|job| matches!(job, Job::Append { .. })) {
                run.push(job);
            }
            let error = if run.is_empty() {
                let job = pending_jobs.next().expect("peeked");
                let (answer, error) = work.apply(job);
                settled.push(answer);
                error
            } else {
                work.apply_appends(run, settled)
            };
            if let Some(error) = error {
                failure = Some(error);
                break;
            }
        }
        if let Some(error) = failure {
            // A write failed or was left half done: nothing in this group may be committed.
            for job in pending_jobs {
                settled.push(unapplied(job));
            }
            if let Err(rollback) = self.store.rollback() {
                tracing::error!(error = %rollback, "cannot roll back a failed group");
            }
            return Err(error);
        }
        if let Err(error) = self.store.commit() {
            let _ = self.store.rollback();
            return Err(error.into());
        }
        self.publish_heads();
        Ok(())
    }

    fn ensure_tenant(&mut self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        self.store.begin_write(&[tenant, SYSTEM_TENANT])?;
        let mut work = GroupWork {
            store: self.store.as_ref(),
            tenants: &mut self.tenants,
            keys: &mut self.keys,
            config: &self.config,
            audit: &mut self.audit,
        };
        match work.ensure_tenant(tenant, actor) {
            Ok(created) => {
                self.store.commit()?;
                Ok(created)
            }
            Err(error) => {
                let _ = self.store.rollback();
                self.tenants.clear();
                Err(error)
            }
        }
    }

    fn load_heads(&mut self) -> Result<(), LedgerError> {
        let store = self.store.as_ref();
        let tails = store::in_snapshot(store, || {
            let mut tails = Vec::new();
            for tenant in store.tenants()? {
                let tail = store::tail(store, &tenant.name)?;
                tails.push((tenant.name, tail));
            }
            Ok::<_, StoreError>(tails)
        })?;
        let mut heads = self.heads.lock().expect("heads lock");
        for (name, tail) in tails {
            heads.insert(
                name,
                LogHead {
                    size: tail.size,
                    root: tail.tree.root(),
                },
            );
        }
        Ok(())
    }

    /// Signs a checkpoint for every log this writer extended that grew since its latest
    /// checkpoint, when that checkpoint is older than the interval (or regardless of age when
    /// `all`, at shutdown). Each is signed under the tenant's lock from the tail read there.
    fn sign_due_checkpoints(&mut self, all: bool) {
        let interval = self.config.checkpoint_interval;
        let candidates: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, state)| {
                let grown = state.size > state.checkpointed_size || state.checkpointed_at.is_none();
                let due = state
                    .checkpointed_at
                    .is_none_or(|at| at.elapsed() >= interval);
                grown && (due || all)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in candidates {
            if let Err(error) = self.sign_checkpoint(&name, all) {
                tracing::error!(tenant = %name, %error, "cannot sign a checkpoint");
                // Look again at the next tick rather than at once.
                if let Some(state) = self.tenants.get_mut(&name) {
                    state.checkpointed_at = Some(Instant::now());
                }
            }
        }
    }

    fn sign_checkpoint(&mut self, tenant: &str, all: bool) -> Result<(), LedgerError> {
        self.store.begin_write(&[tenant])?;
        let result = self.sign_checkpoint_locked(tenant, all);
        match result {
            Ok(()) => self.store.commit()?,
            Err(_) => {
                let _ = self.store.rollback();
                self.tenants.remove(tenant);
            }
        }
        result
    }

    fn sign_checkpoint_locked(&mut self, tenant: &str, all: bool) -> Result<(), LedgerError> {
        let store = self.store.as_ref();
        let mut work = GroupWork {
            store,
            tenants: &mut self.tenants,
            keys: &mut self.keys,
            config: &self.config,
            audit: &mut self.audit,
        };
        work.state(tenant)?;
        let latest = store.latest_checkpoint(tenant)?;
        let state = self.tenants.get_mut(tenant).expect("loaded by state()");
        let latest_at = latest
            .as_ref()
            .and_then(|c| Timestamp::parse(&c.created_at).ok());
        if let Some(latest) = &latest {
            // Another process may have signed meanwhile.
            let age = latest_at.map(|at| now().unix_micros().saturating_sub(at.unix_micros()));
            let fresh =
                age.is_some_and(|age| age < interval_micros(self.config.checkpoint_interval));
            if latest.size >= state.size || (fresh && !all) {
                state.checkpointed_size = latest.size;
                state.checkpointed_at = Some(Instant::now());
                return Ok(());
            }
        }
        let record = store
            .tenant(tenant)?
            .ok_or_else(|| LedgerError::Invalid(format!("tenant {tenant:?} does not exist")))?;
        // Checkpoint times never go backwards, even across instances whose clocks differ.
        let issued = match latest_at {
            Some(at) if at.unix_micros() > now().unix_micros() => at,
            _ => now(),
        };
        let checkpoint = Checkpoint {
            origin: state.origin.clone(),
            size: state.size,
            root: state.tree.root(),
            timestamp: Some(issued),
            extensions: vec![],
        };
        let (size, root) = (state.size, state.tree.root());
        let signer = self.keys.signer(&record)?;
        let note = checkpoint
            .sign(signer)
            .map_err(|e| LedgerError::Invalid(format!("cannot sign a checkpoint: {e}")))?;
        store.insert_checkpoint(tenant, size, &note, &issued.to_rfc3339())?;
        crate::metrics::checkpoint_signed(tenant, issued);
        let state = self.tenants.get_mut(tenant).expect("loaded by state()");
        state.checkpointed_size = size;
        state.checkpointed_at = Some(Instant::now());
        self.heads
            .lock()
            .expect("heads lock")
            .insert(tenant.to_string(), LogHead { size, root });
        Ok(())
    }
}

fn interval_micros(interval: Duration) -> i64 {
    i64::try_from(interval.as_micros()).unwrap_or(i64::MAX)
}

/// The answer for a job that never ran because its group's transaction could not start: the
/// caller is told the group's error, as for a failed commit.
fn fail_job(job: Job) -> Answer {
    match job {
        Job::Append { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::CreateToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RevokeToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::FirstAdminToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::EnsureTenant { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RecordConfig { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Shutdown => Box::new(|_| {}),
    }
}

/// A job that was not applied because its group failed before reaching it.
fn unapplied(job: Job) -> Settled {
    match job {
        Job::Append {
            tenant,
            submissions,
            reply,
        } => Settled::Append(PendingAppend {
            tenant,
            submissions,
            reply,
            tried: None,
        }),
        other => Settled::Answer(fail_job(other)),
    }
}

/// The same error again, for each request of a group the spool refused.
fn clone_spool_error(error: &SpoolError) -> SpoolError {
    let copy = |source: &std::io::Error| std::io::Error::new(source.kind(), source.to_string());
    match error {
        SpoolError::Full { bytes, max_bytes } => SpoolError::Full {
            bytes: *bytes,
            max_bytes: *max_bytes,
        },
        SpoolError::DiskFull { path, source } => SpoolError::DiskFull {
            path: path.clone(),
            source: copy(source),
        },
        SpoolError::Io { path, source } => SpoolError::Io {
            path: path.clone(),
            source: copy(source),
        },
    }
}

/// The id and acceptance time a spooled event was given when it was accepted.
#[derive(Debug, Clone, Copy)]
struct Assigned {
    id: uuid::Uuid,
    received_at: Timestamp,
}

/// Sends a job's result once the group's commit is known: the job's own answer if the commit
/// succeeded, the commit's error otherwise.
fn answer_after_commit<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, LedgerError>,
) -> Answer {
    Box::new(move |commit: Result<(), &LedgerError>| {
        let answer = match commit {
            Ok(()) => result,
            Err(error) => Err(LedgerError::not_committed(error)),
        };
        let _ = reply.send(answer);
    })
}

/// A job's answer, and the error that aborts its group, if it failed that way (the job's own
/// reply then reports the group's failure).
fn settle<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, LedgerError>,
) -> (Answer, Option<LedgerError>) {
    match result {
        Err(error) if error.aborts_group() => {
            let answer = answer_after_commit(reply, Err(LedgerError::Closed));
            (answer, Some(error))
        }
        result => (answer_after_commit(reply, result), None),
    }
}

struct GroupWork<'w> {
    store: &'w dyn Store,
    tenants: &'w mut HashMap<String, TenantState>,
    keys: &'w mut Keys,
    config: &'w LedgerConfig,
    audit: &'w mut Vec<(String, Vec<u8>)>,
}

impl GroupWork<'_> {
    /// Applies a run of append jobs: per tenant (in order of first appearance), all of its
    /// jobs' events in one [`GroupWork::append_assigned`], in job order; each job then gets
    /// its own part of the outcomes. Returns the error that aborts the group, if any; the
    /// jobs not applied by then are settled as unapplied.
    fn apply_appends(&mut self, run: Vec<Job>, settled: &mut Vec<Settled>) -> Option<LedgerError> {
        let mut by_tenant: Vec<(String, Vec<AppendRequest>)> = Vec::new();
        for job in run {
            let Job::Append {
                tenant,
                submissions,
                reply,
            } = job
            else {
                unreachable!("a run holds appends only")
            };
            match by_tenant.iter_mut().find(|(name, _)| *name == tenant) {
                Some((_, jobs)) => jobs.push((submissions, reply)),
                None => by_tenant.push((tenant, vec![(submissions, reply)])),
            }
        }
        let mut tenants = by_tenant.into_iter();
        for (tenant, jobs) in tenants.by_ref() {
            let counts: Vec<usize> = jobs.iter().map(|(s, _)| s.len()).collect();
            let mut all = Vec::with_capacity(counts.iter().sum());
            let mut replies = Vec::with_capacity(jobs.len());
            for (mut submissions, reply) in jobs {
                all.append(&mut submissions);
                replies.push(reply);
            }
            let result = self.append_assigned(&tenant, &all, None);
            let mut submissions = all.into_iter();
            let mut parts = counts
                .iter()
                .map(|&n| submissions.by_ref().take(n).collect::<Vec<_>>());
            let (mut outcomes, error) = match result {
                Ok(outcomes) => (Some(outcomes.into_iter()), None),
                Err(error) => (None, Some(error)),
            };
            let aborted = error.as_ref().is_some_and(LedgerError::aborts_group);
            for (reply, &n) in replies.into_iter().zip(&counts) {
                let tried = match (&error, outcomes.as_mut()) {
                    _ if aborted => None,
                    (None, Some(outcomes)) => Some(Ok(outcomes.by_ref().take(n).collect())),
                    // Refused on its own merits (the tenant does not exist): each job is told.
                    (Some(LedgerError::Invalid(message)), _) => {
                        Some(Err(LedgerError::Invalid(message.clone())))
                    }
                    _ => None,
                };
                settled.push(Settled::Append(PendingAppend {
                    tenant: tenant.clone(),
                    submissions: parts.next().expect("one part per job"),
                    reply,
                    tried,
                }));
            }
            if aborted {
                for (tenant, jobs) in tenants {
                    for (submissions, reply) in jobs {
                        settled.push(Settled::Append(PendingAppend {
                            tenant: tenant.clone(),
                            submissions,
                            reply,
                            tried: None,
                        }));
                    }
                }
                return error;
            }
        }
        None
    }

    fn apply(&mut self, job: Job) -> (Settled, Option<LedgerError>) {
        let (answer, error) = match job {
            Job::Append {
                tenant,
                submissions,
                reply,
            } => {
                let (tried, error) = match self.append_assigned(&tenant, &submissions, None) {
                    Err(error) if error.aborts_group() => (None, Some(error)),
                    result => (Some(result), None),
                };
                let pending = PendingAppend {
                    tenant,
                    submissions,
                    reply,
                    tried,
                };
                return (Settled::Append(pending), error);
            }
            Job::CreateToken {
                tenant,
                scopes,
                actor,
                reply,
            } => {
                let result = self.create_token(&tenant, scopes, &actor);
                settle(reply, result)
            }
            Job::RevokeToken { id, actor, reply } => {
                let result = self.revoke_token(&id, &actor);
                settle(reply, result)
            }
            Job::FirstAdminToken { scopes, reply } => {
                let result = match self.store.list_tokens() {
                    Ok(tokens) if tokens.is_empty() => self
                        .create_token(SYSTEM_TENANT, scopes, "sealtrail")
                        .map(Some),
                    Ok(_) => Ok(None),
                    Err(error) => Err(error.into()),
                };
                settle(reply, result)
            }
            Job::EnsureTenant {
                tenant,
                actor,
                reply,
            } => {
                let result = self.ensure_tenant(&tenant, &actor);
                settle(reply, result)
            }
            Job::RecordConfig { config, reply } => {
                let result = self.record_config(config);
                settle(reply, result)
            }
            Job::Shutdown => (Box::new(|_: Result<(), &LedgerError>| {}) as Answer, None),
        };
        (Settled::Answer(answer), error)
    }

    fn record_config(&mut self, config: serde_json::Value) -> Result<bool, LedgerError> {
        let text = config.to_string();
        let before = self.store.setting("config")?;
        if before.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let before: serde_json::Value = before
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        self.store.set_setting("config", &text)?;
        self.audit_admin(
            "sealtrail.config.changed",
            "sealtrail",
            "config",
            "serve",
            serde_json::json!({"before": before, "after": config}),
        )?;
        Ok(true)
    }

    /// The tenant's in-memory state, loaded or refreshed from the store (another process may
    /// have appended since it was cached). Must run under the tenant's lock.
    fn state(&mut self, tenant: &str) -> Result<&mut TenantState, LedgerError> {
        let size_in_store = self.store.size(tenant)?;
        let stale = self
            .tenants
            .get(tenant)
            .is_none_or(|s| s.size != size_in_store);
        if stale {
            let record = self
                .store
                .tenant(tenant)?
                .ok_or_else(|| LedgerError::Invalid(format!("tenant {tenant:?} does not exist")))?;
            let tail = store::tail(self.store, tenant)?;
            let checkpointed_size = self.store.latest_checkpoint(tenant)?.map_or(0, |c| c.size);
            let previous = self.tenants.remove(tenant);
            self.tenants.insert(
                tenant.to_string(),
                TenantState {
                    origin: record.origin,
                    size: tail.size,
                    last_hash: tail.last_hash,
                    tree: tail.tree,
                    checkpointed_size,
                    checkpointed_at: previous.and_then(|p| p.checkpointed_at),
                },
            );
        }
        Ok(self.tenants.get_mut(tenant).expect("just inserted"))
    }

    /// Appends events to a tenant's log in the open transaction. `assigned` gives each
    /// event the id and acceptance time it already has (events drained from the spool);
    /// otherwise they get new ones.
    fn append_assigned(
        &mut self,
        tenant: &str,
        submissions: &[Submission],
        assigned: Option<&[Assigned]>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let store = self.store;
        let state = self.state(tenant)?;
        let received_now = now();
        let first_seq = state.size;
        let first_hash_index = merkle::stored_hash_count(first_seq);
        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut entries: Vec<(u64, String, Vec<u8>)> = Vec::with_capacity(submissions.len());
        let mut hashes = Vec::with_capacity(submissions.len() * 2);
        let mut keys_in_group: HashMap<String, Receipt> = HashMap::new();
        let mut new_keys: Vec<(String, u64)> = Vec::new();
        // Every key of the group looked up at once: one round trip on a networked store.
        let keys: Vec<&str> = submissions
            .iter()
            .filter_map(|s| s.idempotency_key.as_deref())
            .collect();
        let recorded = if keys.is_empty() {
            HashMap::new()
        } else {
            store.idempotent_seqs(tenant, &keys)?
        };
        for (i, submission) in submissions.iter().enumerate() {
            let given = assigned.and_then(|a| a.get(i));
            let received_at = given.map_or(received_now, |a| a.received_at);
            if let Some(key) = &submission.idempotency_key {
                if let Some(receipt) = keys_in_group.get(key) {
                    outcomes.push(Outcome::Duplicate(receipt.clone()));
                    continue;
                }
                if let Some(&seq) = recorded.get(key) {
                    let receipt = receipt_for_seq(store, tenant, seq)?;
                    outcomes.push(Outcome::Duplicate(receipt));
                    continue;
                }
            }
            let id = given.map_or_else(uuid::Uuid::now_v7, |a| a.id);
            let server = ServerFields {
                id,
                seq: state.size,
                received_at,
                prev_hash: state.last_hash,
            };
            let entry = match canonical_entry(&submission.event, &server) {
                Ok(entry) => entry,
                Err(error) => {
                    outcomes.push(Outcome::Rejected(error));
                    continue;
                }
            };
            let hash = leaf_hash(&entry);
            state.tree.push(hash, &mut hashes);
            let receipt = Receipt {
                id: id.to_string(),
                seq: state.size,
                event_hash: hash.to_hex(),
                received_at: received_at.to_rfc3339(),
            };
            if let Some(key) = &submission.idempotency_key {
                keys_in_group.insert(key.clone(), receipt.clone());
                new_keys.push((key.clone(), state.size));
            }
            entries.push((state.size, receipt.id.clone(), entry));
            state.last_hash = hash;
            state.size += 1;
            outcomes.push(Outcome::Created(receipt));
        }
        let rows: Vec<NewEntry<'_>> = entries
            .iter()
            .map(|(seq, id, entry)| NewEntry {
                seq: *seq,
                id,
                entry,
            })
            .collect();
        debug_assert_eq!(rows.first().map(|r| r.seq).unwrap_or(first_seq), first_seq);
        if rows.is_empty() {
            return Ok(outcomes);
        }
        store.append(tenant, &rows, first_hash_index, &hashes)?;
        if self.config.audit_stdout {
            self.audit.extend(
                entries
                    .iter()
                    .map(|(_, _, entry)| (tenant.to_string(), entry.clone())),
            );
        }
        if !new_keys.is_empty() {
            store.insert_idempotency(tenant, &new_keys)?;
        }
        Ok(outcomes)
    }

    /// Appends one administrative event to the `_system` log.
    fn audit_admin(
        &mut self,
        action: &str,
        actor: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
    ) -> Result<(), LedgerError> {
        let document = serde_json::json!({
            "action": action,
            "activity": "admin",
            "outcome": "success",
            "actor": {"id": actor, "type": if actor == "sealtrail" { "system" } else { "api_key" }},
            "targets": [{"type": target_type, "id": target_id}],
            "details": details,
        });
        let bytes = serde_json::to_vec(&document).expect("json");
        let event = Event::parse(&bytes)
            .map_err(|e| LedgerError::Invalid(format!("admin event is invalid: {e}")))?;
        let outcomes = self.append_assigned(
            SYSTEM_TENANT,
            &[Submission {
                event,
                idempotency_key: None,
            }],
            None,
        )?;
        match outcomes.first() {
            Some(Outcome::Created(_)) => Ok(()),
            // Whatever else the transaction holds must not commit without its audit record.
            other => Err(LedgerError::Store(StoreError::Corrupt(format!(
                "admin event was not recorded: {other:?}"
            )))),
        }
    }

    fn ensure_tenant(&mut self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        check_tenant_name(tenant).map_err(LedgerError::Invalid)?;
        if self.store.tenant(tenant)?.is_some() {
            return Ok(false);
        }
        let origin = format!("{}/{tenant}", self.config.origin_prefix);
        // Creates the key now, so the tenant never exists without its signing key, and records
        // its verifier key so that no other key can sign this log.
        let signer = self.keys.create(&origin)?;
        self.store.insert_tenant(&Tenant {
            name: tenant.to_string(),
            origin: origin.clone(),
            created_at: now().to_rfc3339(),
            vkey: Some(signer.verifier().to_string()),
        })?;
        if tenant != SYSTEM_TENANT {
            self.audit_admin(
                "sealtrail.tenant.created",
                actor,
                "tenant",
                tenant,
                serde_json::json!({"origin": origin}),
            )?;
        }
        Ok(true)
    }

    fn create_token(
        &mut self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        for scope in &scopes {
            crate::auth::Scope::parse(scope).map_err(LedgerError::Invalid)?;
        }
        if scopes.is_empty() {
            return Err(LedgerError::Invalid(
                "a token needs at least one --scope".into(),
            ));
        }
        let tenant_created = if tenant == crate::auth::ANY_TENANT {
            false
        } else {
            self.ensure_tenant(tenant, actor)?
        };
        let secret = crate::auth::new_secret();
        let record = TokenRecord {
            id: crate::auth::new_token_id(),
            tenant: tenant.to_string(),
            scopes: scopes.clone(),
            created_at: now().to_rfc3339(),
            revoked_at: None,
        };
        self.store
            .insert_token(&record, &crate::auth::secret_hash(&secret))?;
        self.audit_admin(
            "sealtrail.token.created",
            actor,
            "token",
            &record.id,
            serde_json::json!({"tenant": tenant, "scopes": scopes}),
        )?;
        Ok(NewToken {
            id: record.id,
            token: secret,
            tenant: tenant.to_string(),
            scopes,
            tenant_created,
        })
    }

    fn revoke_token(&mut self, id: &str, actor: &str) -> Result<bool, LedgerError> {
        let revoked = self.store.revoke_token(id, &now().to_rfc3339())?;
        if revoked {
            self.audit_admin(
                "sealtrail.token.revoked",
                actor,
                "token",
                id,
                serde_json::json!({}),
            )?;
        }
        Ok(revoked)
    }
}

/// Writes committed entries to stdout, one `AUDIT: {"tenant", "event_hash", "entry"}` line each;
/// `entry` is the log entry's exact bytes, so its hash can be recomputed from the line. A
/// failure to write is logged, never fatal: the entries are already durable in the store.
fn write_audit_lines(entries: &[(String, Vec<u8>)]) {
    use std::io::Write as _;
    if entries.is_empty() {
        return;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut result = Ok(());
    for (tenant, entry) in entries {
        let tenant = serde_json::to_string(tenant).expect("a string serialises");
        result = out
            .write_all(b"AUDIT: {\"tenant\":")
            .and_then(|()| out.write_all(tenant.as_bytes()))
            .and_then(|()| {
                write!(
                    out,
                    ",\"event_hash\":\"{}\",\"entry\":",
                    leaf_hash(entry).to_hex()
                )
            })
            .and_then(|()| out.write_all(entry))
            .and_then(|()| out.write_all(b"}\n"));
        if result.is_err() {
            break;
        }
    }
    if let Err(error) = result.and_then(|()| out.flush()) {
        tracing::error!(%error, "cannot write AUDIT lines to stdout (the entries are committed)");
    }
}

/// The receipt of an entry already in the log, rebuilt from its stored bytes.
fn receipt_for_seq(store: &dyn Store, tenant: &str, seq: u64) -> Result<Receipt, LedgerError> {
    let entry = store.entry(tenant, seq)?.ok_or_else(|| {
        StoreError::Corrupt(format!("idempotency key points at missing seq {seq}"))
    })?;
    let parsed = sealtrail_core::canonical::Entry::parse(&entry)
        .map_err(|e| StoreError::Corrupt(format!("entry {seq} of {tenant}: {e}")))?;
    Ok(Receipt {
        id: parsed.server.id.to_string(),
        seq,
        event_hash: leaf_hash(&entry).to_hex(),
        received_at: parsed.server.received_at.to_rfc3339(),
    })
}
