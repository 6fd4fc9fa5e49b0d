//! The write path: one writer thread per process that sequences, hashes and commits entries
//! for every tenant, with group commit.
//!
//! Requests (HTTP handlers, the CLI) send jobs over a channel. The writer takes the first job,
//! then everything else already queued (up to [`MAX_GROUP_EVENTS`] events), and commits them
//! all in one SQLite transaction: concurrent requests share one fsync. Only after the commit
//! returns does any requester get its receipt, so an acknowledged entry is durable.
//!
//! Inside the transaction (`BEGIN IMMEDIATE`, which holds SQLite's write lock), the writer
//! checks each tenant's tail against the database before appending; if another process (the
//! CLI, a second server) appended meanwhile, the in-memory tail is reloaded. The lock is held
//! only for the commit.
//!
//! The writer also signs checkpoints: after a commit, each tenant whose log grew and whose last
//! checkpoint is older than the configured interval gets a new one, and on shutdown every grown
//! log gets a final one.
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

use rusqlite::{Connection, TransactionBehavior};
use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::event::{Event, EventError};
use sealtrail_core::merkle::{self, TreeBuilder};
use sealtrail_core::note::SignerKey;
use sealtrail_core::{Hash, Timestamp, leaf_hash};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::keyfiles;
use crate::store::{self, StoreError, Tenant, TokenRecord};

/// The tenant whose log records administrative actions.
pub const SYSTEM_TENANT: &str = "_system";

/// Events committed together at most; bounds a transaction's size and a batch's latency.
pub const MAX_GROUP_EVENTS: usize = 20_000;

/// What the writer needs to know.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub data_dir: PathBuf,
    /// Checkpoints are signed at most this often per growing log.
    pub checkpoint_interval: Duration,
    /// A tenant's origin is `<origin_prefix>/<tenant>`.
    pub origin_prefix: String,
}

/// The receipt of a durable entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub event_hash: String,
    pub received_at: String,
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
}

impl From<rusqlite::Error> for LedgerError {
    fn from(error: rusqlite::Error) -> Self {
        LedgerError::Store(StoreError::Sqlite(error))
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
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            LedgerError::Keys(keyfiles::KeyFileError::Io {
                path: config.data_dir.clone(),
                source,
            })
        })?;
        let conn = store::open_writer(&store::database_path(&config.data_dir))?;
        let (jobs, receiver) = mpsc::sync_channel::<Job>(4096);
        let heads = Arc::new(Mutex::new(HashMap::new()));
        let mut writer = Writer {
            conn,
            config,
            tenants: HashMap::new(),
            heads: heads.clone(),
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
    signer: SignerKey,
    size: u64,
    last_hash: Hash,
    tree: TreeBuilder,
    checkpointed_size: u64,
    checkpointed_at: Option<Instant>,
}

struct Writer {
    conn: Connection,
    config: LedgerConfig,
    tenants: HashMap<String, TenantState>,
    heads: Arc<Mutex<HashMap<String, LogHead>>>,
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
            let first = match receiver.recv_timeout(self.config.checkpoint_interval) {
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
            }
            if stopping {
                break;
            }
            self.sign_due_checkpoints(false);
        }
        self.sign_due_checkpoints(true);
    }

    /// Runs a group of jobs in one transaction and answers each once it is durable.
    fn commit_group(&mut self, jobs: Vec<Job>) {
        let events = jobs.iter().map(Job::event_count).sum();
        let started = Instant::now();
        let mut answers: Vec<Answer> = Vec::new();
        let result = self.run_group(jobs, &mut answers);
        let error = result.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        crate::metrics::group_committed(events, started.elapsed(), error);
        if result.is_err() {
            // What was applied in memory may not match the database: reload on next use.
            self.tenants.clear();
        }
        for answer in answers {
            answer(result.as_ref().map(|_| ()));
        }
        if let Err(error) = result {
            tracing::error!(%error, "group commit failed; every request in it was told so");
        }
    }

    fn run_group(&mut self, jobs: Vec<Job>, answers: &mut Vec<Answer>) -> Result<(), LedgerError> {
        let mut pending_jobs = jobs.into_iter();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(LedgerError::from);
        let tx = match tx {
            Ok(tx) => tx,
            Err(error) => {
                for job in pending_jobs.by_ref() {
                    answers.push(fail_job(job));
                }
                return Err(error);
            }
        };
        // The transaction borrows the connection; the tenant map is separate state.
        let mut work = GroupWork {
            tenants: &mut self.tenants,
            config: &self.config,
        };
        for job in pending_jobs {
            let answer = work.apply(&tx, job);
            answers.push(answer);
        }
        tx.commit()?;
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
        Ok(())
    }

    fn ensure_tenant(&mut self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut work = GroupWork {
            tenants: &mut self.tenants,
            config: &self.config,
        };
        let created = work.ensure_tenant(&tx, tenant, actor)?;
        tx.commit()?;
        Ok(created)
    }

    fn load_heads(&mut self) -> Result<(), LedgerError> {
        let tenants = store::tenants(&self.conn)?;
        let mut heads = self.heads.lock().expect("heads lock");
        for tenant in tenants {
            let tail = store::tail(&self.conn, &tenant.name)?;
            heads.insert(
                tenant.name,
                LogHead {
                    size: tail.size,
                    root: tail.tree.root(),
                },
            );
        }
        Ok(())
    }

    /// Signs a checkpoint for every log that grew since its last one and whose last one is
    /// older than the interval (or for every grown log when `all`, at shutdown).
    fn sign_due_checkpoints(&mut self, all: bool) {
        let interval = self.config.checkpoint_interval;
        for (name, state) in self.tenants.iter_mut() {
            let grown = state.size > state.checkpointed_size || state.checkpointed_at.is_none();
            let due = state
                .checkpointed_at
                .is_none_or(|at| at.elapsed() >= interval);
            if !grown || !(due || all) {
                continue;
            }
            let issued = now();
            let checkpoint = Checkpoint {
                origin: state.origin.clone(),
                size: state.size,
                root: state.tree.root(),
                timestamp: Some(issued),
                extensions: vec![],
            };
            let note = match checkpoint.sign(&state.signer) {
                Ok(note) => note,
                Err(error) => {
                    tracing::error!(tenant = %name, %error, "cannot sign a checkpoint");
                    continue;
                }
            };
            match store::insert_checkpoint(
                &self.conn,
                name,
                state.size,
                &note,
                &issued.to_rfc3339(),
            ) {
                Ok(()) => {
                    crate::metrics::checkpoint_signed(name, issued);
                    state.checkpointed_size = state.size;
                    state.checkpointed_at = Some(Instant::now());
                }
                Err(error) => tracing::error!(tenant = %name, %error, "cannot store a checkpoint"),
            }
        }
    }
}

/// The answer for a job that never ran because its group's transaction could not start: the
/// caller is told the group's error, as for a failed commit.
fn fail_job(job: Job) -> Answer {
    match job {
        Job::Append { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::CreateToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RevokeToken { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::EnsureTenant { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::RecordConfig { reply, .. } => answer_after_commit(reply, Err(LedgerError::Closed)),
        Job::Shutdown => Box::new(|_| {}),
    }
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
            Err(error) => Err(LedgerError::Invalid(format!("not committed: {error}"))),
        };
        let _ = reply.send(answer);
    })
}

struct GroupWork<'w> {
    tenants: &'w mut HashMap<String, TenantState>,
    config: &'w LedgerConfig,
}

impl GroupWork<'_> {
    fn apply(&mut self, tx: &Connection, job: Job) -> Answer {
        match job {
            Job::Append {
                tenant,
                submissions,
                reply,
            } => {
                let result = self.append(tx, &tenant, submissions);
                answer_after_commit(reply, result)
            }
            Job::CreateToken {
                tenant,
                scopes,
                actor,
                reply,
            } => {
                let result = self.create_token(tx, &tenant, scopes, &actor);
                answer_after_commit(reply, result)
            }
            Job::RevokeToken { id, actor, reply } => {
                let result = self.revoke_token(tx, &id, &actor);
                answer_after_commit(reply, result)
            }
            Job::EnsureTenant {
                tenant,
                actor,
                reply,
            } => {
                let result = self.ensure_tenant(tx, &tenant, &actor);
                answer_after_commit(reply, result)
            }
            Job::RecordConfig { config, reply } => {
                let result = self.record_config(tx, config);
                answer_after_commit(reply, result)
            }
            Job::Shutdown => Box::new(|_| {}),
        }
    }

    fn record_config(
        &mut self,
        tx: &Connection,
        config: serde_json::Value,
    ) -> Result<bool, LedgerError> {
        let text = config.to_string();
        let before = store::setting(tx, "config")?;
        if before.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let before: serde_json::Value = before
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        store::set_setting(tx, "config", &text)?;
        self.audit_admin(
            tx,
            "sealtrail.config.changed",
            "sealtrail",
            "config",
            "serve",
            serde_json::json!({"before": before, "after": config}),
        )?;
        Ok(true)
    }

    /// The tenant's in-memory state, loaded or refreshed from the database (another process
    /// may have appended since it was cached).
    fn state(&mut self, tx: &Connection, tenant: &str) -> Result<&mut TenantState, LedgerError> {
        let size_in_db: u64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries WHERE tenant = ?1")?
            .query_row([tenant], |row| row.get::<_, i64>(0))? as u64;
        let stale = self
            .tenants
            .get(tenant)
            .is_none_or(|s| s.size != size_in_db);
        if stale {
            let record = store::tenant(tx, tenant)?
                .ok_or_else(|| LedgerError::Invalid(format!("tenant {tenant:?} does not exist")))?;
            let signer = self.signer_for(&record.origin)?;
            let tail = store::tail(tx, tenant)?;
            let checkpointed_size =
                store::latest_checkpoint(tx, tenant)?.map_or(0, |(size, _)| size);
            let previous = self.tenants.remove(tenant);
            self.tenants.insert(
                tenant.to_string(),
                TenantState {
                    origin: record.origin,
                    signer,
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

    fn signer_for(&self, origin: &str) -> Result<SignerKey, LedgerError> {
        let dir = self.config.data_dir.join("keys");
        let (key_path, _) = keyfiles::key_paths(&dir, origin);
        if key_path.exists() {
            return Ok(keyfiles::read_signer(&key_path)?);
        }
        let signer = SignerKey::generate(origin, &mut rand_core::OsRng)
            .map_err(|e| LedgerError::Invalid(format!("cannot create a key for {origin}: {e}")))?;
        keyfiles::write_key_pair(&dir, &signer)?;
        Ok(signer)
    }

    fn append(
        &mut self,
        tx: &Connection,
        tenant: &str,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let state = self.state(tx, tenant)?;
        let received_at = now();
        let first_seq = state.size;
        let first_hash_index = merkle::stored_hash_count(first_seq);
        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut entries: Vec<(u64, String, Vec<u8>)> = Vec::with_capacity(submissions.len());
        let mut hashes = Vec::with_capacity(submissions.len() * 2);
        let mut keys_in_group: HashMap<String, Receipt> = HashMap::new();
        let mut new_keys: Vec<(String, u64)> = Vec::new();
        for submission in submissions {
            if let Some(key) = &submission.idempotency_key {
                if let Some(receipt) = keys_in_group.get(key) {
                    outcomes.push(Outcome::Duplicate(receipt.clone()));
                    continue;
                }
                if let Some(seq) = store::idempotent_seq(tx, tenant, key)? {
                    let receipt = receipt_for_seq(tx, tenant, seq)?;
                    outcomes.push(Outcome::Duplicate(receipt));
                    continue;
                }
            }
            let id = uuid::Uuid::now_v7();
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
            if let Some(key) = submission.idempotency_key {
                keys_in_group.insert(key.clone(), receipt.clone());
                new_keys.push((key, state.size));
            }
            entries.push((state.size, receipt.id.clone(), entry));
            state.last_hash = hash;
            state.size += 1;
            outcomes.push(Outcome::Created(receipt));
        }
        let rows: Vec<store::NewEntry<'_>> = entries
            .iter()
            .map(|(seq, id, entry)| store::NewEntry {
                seq: *seq,
                id,
                entry,
            })
            .collect();
        debug_assert_eq!(rows.first().map(|r| r.seq).unwrap_or(first_seq), first_seq);
        store::append(tx, tenant, &rows, first_hash_index, &hashes)?;
        for (key, seq) in new_keys {
            store::insert_idempotency(tx, tenant, &key, seq)?;
        }
        Ok(outcomes)
    }

    /// Appends one administrative event to the `_system` log.
    fn audit_admin(
        &mut self,
        tx: &Connection,
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
        let outcomes = self.append(
            tx,
            SYSTEM_TENANT,
            vec![Submission {
                event,
                idempotency_key: None,
            }],
        )?;
        match outcomes.first() {
            Some(Outcome::Created(_)) => Ok(()),
            other => Err(LedgerError::Invalid(format!(
                "admin event was not recorded: {other:?}"
            ))),
        }
    }

    fn ensure_tenant(
        &mut self,
        tx: &Connection,
        tenant: &str,
        actor: &str,
    ) -> Result<bool, LedgerError> {
        check_tenant_name(tenant).map_err(LedgerError::Invalid)?;
        if store::tenant(tx, tenant)?.is_some() {
            return Ok(false);
        }
        let origin = format!("{}/{tenant}", self.config.origin_prefix);
        // Creates the key pair now, so the tenant never exists without its signing key.
        self.signer_for(&origin)?;
        store::insert_tenant(
            tx,
            &Tenant {
                name: tenant.to_string(),
                origin: origin.clone(),
                created_at: now().to_rfc3339(),
            },
        )?;
        if tenant != SYSTEM_TENANT {
            self.audit_admin(
                tx,
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
        tx: &Connection,
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
            self.ensure_tenant(tx, tenant, actor)?
        };
        let secret = crate::auth::new_secret();
        let record = TokenRecord {
            id: crate::auth::new_token_id(),
            tenant: tenant.to_string(),
            scopes: scopes.clone(),
            created_at: now().to_rfc3339(),
            revoked_at: None,
        };
        store::insert_token(tx, &record, &crate::auth::secret_hash(&secret))?;
        self.audit_admin(
            tx,
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

    fn revoke_token(
        &mut self,
        tx: &Connection,
        id: &str,
        actor: &str,
    ) -> Result<bool, LedgerError> {
        let revoked = store::revoke_token(tx, id, &now().to_rfc3339())?;
        if revoked {
            self.audit_admin(
                tx,
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

/// The receipt of an entry already in the log, rebuilt from its stored bytes.
fn receipt_for_seq(conn: &Connection, tenant: &str, seq: u64) -> Result<Receipt, LedgerError> {
    let entry = store::entry(conn, tenant, seq)?.ok_or_else(|| {
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
