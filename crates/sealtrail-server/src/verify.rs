//! The verification service: verifying a tenant's log on the store, verifying a whole store
//! the way `sealtrail verify` reports it, and the background verifier with its status board.
//!
//! [`verify_tenant`] streams the tenant's entries out of the store into the core's
//! [`Verifier`], with the stored-hash array as the stored tree and every signed checkpoint the
//! store holds (plus any the caller kept elsewhere) as what the tree must match. All of it is
//! read in one read transaction, so the entries, hashes and checkpoints are one consistent
//! snapshot even while the server appends; memory stays constant in the log's size.
//!
//! A range (`from_seq`, `to_seq`, both inclusive) verifies only those entries: the tree is
//! resumed from the stored hashes at `from_seq`, and only checkpoints that end inside the range
//! are compared (a checkpoint beyond `to_seq` says nothing about a prefix that stops there).
//!
//! [`verify_store`] is what `sealtrail verify` does with a store: it chooses the tenants, sends
//! each checkpoint kept elsewhere to the log its origin names, decides which keys to trust,
//! checks the store's append-only protections and gathers one report per log. It lives here,
//! not in the command line, so that verifying an archive or a remote server can reuse it; the
//! command only parses arguments, prints and picks the exit status.
//!
//! The background verifier ([`run_background`]) checks every tenant's whole log once when the
//! server starts, then on each tick the entries added since and at least the last
//! [`RECENT_WINDOW`] entries. Its findings, and those of `GET /v1/verify`, go to the
//! application's [`VerificationBoard`], which the health check and the metrics read. A
//! violation is sticky: a later partial run that happens not to cover the damage does not
//! clear it; only a valid verification of the whole log does.
//!
//! A run that cannot finish — the store fails to open, list the tenants or hand over a row,
//! a log's key cannot be read — is itself recorded as a violation of kind `store_error`
//! (with the seq of the row when the store names one), never only logged: until a later run
//! verifies the log, nobody may read the chain as valid. The one exception is a store that
//! cannot be reached at all (`StoreError::Unavailable`): that is the health check's store
//! check (`failing`, or `degraded` while the spool takes events), not news about any log. The board keeps the violations it
//! knows per log, identified by seq and kind (by their detail for those of a checkpoint as a
//! whole), so that `sealtrail_chain_violations_total` counts each once however many runs find
//! it again, and `sealtrail_chain_violations_known` says how many are known now.
//!
//! **Architecture invariant:** nothing here judges integrity; the core's verifier does. This
//! module only decides which bytes it sees.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealtrail_core::checkpoint::{Checkpoint, CheckpointError};
use sealtrail_core::merkle::HashReader;
use sealtrail_core::note::{self, VerifierKey};
use sealtrail_core::verify::{
    EntryCheck, Report, Verifier, VerifyError, VerifyOptions, Violation, ViolationKind,
};
use serde::Serialize;

pub use crate::keys::LogKeys;
use crate::keys::{KeyFileError, KeyResolver};
use crate::ledger::Ledger;
use crate::readers::{ReadFailure, Readers};
use crate::shutdown::Shutdown;
use sealtrail_store::{
    self as store, EntryRef, Integrity, Location, Store, StoreError, StoreHashes, Tenant,
};

/// The background verifier re-checks at least this many of each log's latest entries per run.
pub const RECENT_WINDOW: u64 = 10_000;

/// Violations written to the error log per finding; the rest are in the report.
const LOGGED_VIOLATIONS: usize = 10;

/// Why a log could not be verified at all (as opposed to being verified and found damaged).
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no tenant {0:?} in this store")]
    UnknownTenant(String),
    #[error("cannot read the verifier key of log {origin:?}: {source}")]
    Key {
        origin: String,
        #[source]
        source: KeyFileError,
    },
    #[error("from_seq {from} is after to_seq {to}")]
    EmptyRange { from: u64, to: u64 },
    /// A range that starts after the log's end: there are no stored hashes to resume from.
    #[error(
        "from_seq={from} is beyond the end of the log, which has {}",
        sealtrail_core::text::entries(*.committed)
    )]
    BeyondLog { from: u64, committed: u64 },
    /// The reader pool failed.
    #[error("{0}")]
    Pool(String),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Verifies `tenant`'s log (entries `from_seq..=to_seq`, by default all of them) against its
/// stored hashes and its signed checkpoints — those in the store and `extra_checkpoints`
/// (signed notes kept elsewhere) — with the log's verifier key from `data_dir/keys/`.
pub fn verify_tenant(
    conn: &dyn Store,
    data_dir: &Path,
    tenant: &str,
    extra_checkpoints: &[Vec<u8>],
    from_seq: Option<u64>,
    to_seq: Option<u64>,
) -> Result<Report, VerificationError> {
    store::in_snapshot(conn, || {
        let record = conn
            .tenant(tenant)?
            .ok_or_else(|| VerificationError::UnknownTenant(tenant.to_string()))?;
        let keys = log_keys(data_dir, &record)?;
        verify_tenant_with_log_keys(conn, tenant, &keys, extra_checkpoints, from_seq, to_seq)
    })
}

impl ReadFailure for VerificationError {
    fn pool_failure(message: String) -> Self {
        VerificationError::Pool(message)
    }

    /// A log found unverifiable for what it holds says nothing about the connection; a
    /// failing store may.
    fn may_break_connection(&self) -> bool {
        matches!(
            self,
            VerificationError::Store(_) | VerificationError::Pool(_)
        )
    }
}

/// Verification of the logs a server serves, on its read pool, with the findings recorded on
/// its board: what `GET /v1/verify` asks for. Cloning is cheap.
#[derive(Clone)]
pub struct LogVerifier {
    readers: Readers,
    /// Where the logs' key files are: `DIR/keys/`.
    data_dir: PathBuf,
    board: VerificationBoard,
}

impl LogVerifier {
    pub fn new(readers: Readers, data_dir: PathBuf, board: VerificationBoard) -> LogVerifier {
        LogVerifier {
            readers,
            data_dir,
            board,
        }
    }

    /// Verifies `tenant`'s log, entries `from_seq..=to_seq` (by default all), and records the
    /// report on the board: a whole-log report can clear an earlier violation.
    pub async fn verify(
        &self,
        tenant: &str,
        from_seq: Option<u64>,
        to_seq: Option<u64>,
    ) -> Result<Report, VerificationError> {
        let (tenant, data_dir, board) = (
            tenant.to_string(),
            self.data_dir.clone(),
            self.board.clone(),
        );
        self.readers
            .read(move |conn| {
                if let Some(from) = from_seq {
                    // Verification resumes from the stored hashes at from_seq, which must exist.
                    let committed = conn.size(&tenant)?;
                    if from > committed {
                        return Err(VerificationError::BeyondLog { from, committed });
                    }
                }
                let report = verify_tenant(conn, &data_dir, &tenant, &[], from_seq, to_seq)?;
                let whole_log = from_seq.unwrap_or(0) == 0 && to_seq.is_none();
                board.record(&tenant, &report, whole_log);
                Ok(report)
            })
            .await
    }
}

/// The verifier keys of a tenant's log: its key file in the key directory of `data_dir` and
/// the verifier key the store recorded when the tenant was created, as
/// [`KeyResolver::verifiers`] decides between them (see [`LogKeys`]). An auditor who trusts
/// neither passes their own copy to [`verify_tenant_with_keys`].
pub fn log_keys(data_dir: &Path, tenant: &Tenant) -> Result<LogKeys, VerificationError> {
    KeyResolver::new(data_dir)
        .verifiers(tenant)
        .map_err(|source| VerificationError::Key {
            origin: tenant.origin.clone(),
            source,
        })
}

/// [`verify_tenant`] with the log's keys already read by [`log_keys`].
pub fn verify_tenant_with_log_keys(
    conn: &dyn Store,
    tenant: &str,
    keys: &LogKeys,
    extra_checkpoints: &[Vec<u8>],
    from_seq: Option<u64>,
    to_seq: Option<u64>,
) -> Result<Report, VerificationError> {
    let required: Vec<VerifierKey> = keys.disputed.iter().cloned().collect();
    verify_range(
        conn,
        tenant,
        std::slice::from_ref(&keys.key),
        &required,
        extra_checkpoints,
        from_seq,
        to_seq,
    )
}

/// [`verify_tenant`] with the verifier keys given, for an auditor who brings their own copy of
/// the log's key rather than trusting the one next to the data.
pub fn verify_tenant_with_keys(
    conn: &dyn Store,
    tenant: &str,
    keys: &[VerifierKey],
    extra_checkpoints: &[Vec<u8>],
    from_seq: Option<u64>,
    to_seq: Option<u64>,
) -> Result<Report, VerificationError> {
    verify_range(conn, tenant, keys, &[], extra_checkpoints, from_seq, to_seq)
}

fn verify_range(
    conn: &dyn Store,
    tenant: &str,
    keys: &[VerifierKey],
    required_keys: &[VerifierKey],
    extra_checkpoints: &[Vec<u8>],
    from_seq: Option<u64>,
    to_seq: Option<u64>,
) -> Result<Report, VerificationError> {
    let from = from_seq.unwrap_or(0);
    if let Some(to) = to_seq
        && to < from
    {
        return Err(VerificationError::EmptyRange { from, to });
    }
    let end = to_seq.map(|to| to.saturating_add(1));
    store::in_snapshot(conn, || {
        verify_in_snapshot(
            conn,
            tenant,
            keys,
            required_keys,
            extra_checkpoints,
            from,
            end,
        )
    })
}

fn verify_in_snapshot(
    conn: &dyn Store,
    tenant: &str,
    keys: &[VerifierKey],
    required_keys: &[VerifierKey],
    extra_checkpoints: &[Vec<u8>],
    from: u64,
    end: Option<u64>,
) -> Result<Report, VerificationError> {
    if conn.tenant(tenant)?.is_none() {
        return Err(VerificationError::UnknownTenant(tenant.to_string()));
    }
    // Entries retention pruned are verified no more (the archive holds them, `sealtrail
    // verify --archive` checks it); from the prune mark on, the tree resumes from the stored
    // hashes, which stay, and the checkpoints signed before the prune are compared with them.
    let mark = conn.prune_mark(tenant)?.filter(|mark| from < mark.below);
    let from = mark.as_ref().map_or(from, |mark| mark.below);
    let stored_notes = conn.checkpoints(tenant)?;
    // The tree built over the range has `to + 1` leaves at most; a larger checkpoint cannot be
    // compared with it (the core would call the log truncated).
    let notes: Vec<&[u8]> = stored_notes
        .iter()
        .map(String::as_bytes)
        .chain(extra_checkpoints.iter().map(Vec::as_slice))
        .filter(|note| match (end, checkpoint_size(note)) {
            (Some(end), Some(size)) => size <= end,
            // Unreadable notes go to the verifier, which reports them as invalid.
            _ => true,
        })
        .collect();
    let hashes = StoreHashes {
        store: conn,
        tenant,
    };
    let options = VerifyOptions {
        start_seq: from,
        required_keys: required_keys.to_vec(),
        check_earlier_checkpoints: mark.is_some(),
        ..VerifyOptions::default()
    };
    let mut verifier = Verifier::new(Some(&hashes as &dyn HashReader), &notes, keys, options)?;
    feed(conn, tenant, from, end.unwrap_or(u64::MAX), &mut verifier)?;
    let mut report = verifier.finish();
    report.pruned = mark.map(|mark| sealtrail_core::verify::PrunedRange {
        below: mark.below,
        archive: mark.archive,
        system_seq: mark.system_seq,
        pruned_at: mark.pruned_at,
    });
    // Damage a repair acknowledged stays listed, each violation naming the marker's seq. The
    // markers are looked for only in a log that has violations, so a valid log costs nothing.
    if !report.violations.is_empty() {
        let markers = repair_markers(conn, tenant)?;
        report.acknowledge(&markers);
    }
    // The daily seals, when the verification reaches the log's end: each opens with the log's
    // key, links to the day before, and seals a size and root the stored tree has.
    if end.is_none()
        && let Some(key) = keys.first()
    {
        let found = crate::seals::check(conn, tenant, key)?;
        report.add_violations(found, sealtrail_core::verify::DEFAULT_MAX_VIOLATIONS);
    }
    Ok(report)
}

/// The repair markers of a tenant's log (`sealtrail.chain.repaired` entries), in seq order.
pub fn repair_markers(
    conn: &dyn Store,
    tenant: &str,
) -> Result<Vec<sealtrail_core::verify::RepairMarker>, StoreError> {
    const BATCH: usize = 4096;
    let size = conn.size(tenant)?;
    let mut markers = Vec::new();
    let mut from = 0;
    while from < size {
        let rows = conn.entries(tenant, from, size, BATCH)?;
        let Some(&(last, _)) = rows.last() else { break };
        for (seq, entry) in &rows {
            if let Ok(bytes) = entry
                && let Some(marker) = sealtrail_core::verify::RepairMarker::from_entry(*seq, bytes)
            {
                markers.push(marker);
            }
        }
        from = last + 1;
    }
    Ok(markers)
}

/// Entry bytes gathered into one chunk before it goes to the hashing thread: about 1,500
/// entries, so handing chunks over costs nothing next to hashing them, and the two chunks in
/// use stay in the CPU's cache.
const CHUNK_BYTES: usize = 1 << 20;

/// A run of entries read from the store, in one buffer reused from chunk to chunk (no
/// allocation per entry), and what the hashing thread found in each.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// Per entry: the seq the store files it under and where its bytes end in `bytes`.
    entries: Vec<(u64, usize)>,
    checks: Vec<EntryCheck>,
    /// Rows the store had no entry bytes for, by their place in `entries` (where they take no
    /// bytes), with what they hold instead. Rare, so kept apart from the per-entry vectors.
    unreadable: Vec<(usize, String)>,
}

impl Chunk {
    fn push(&mut self, seq: u64, entry: EntryRef<'_>) {
        match entry {
            Ok(entry) => self.bytes.extend_from_slice(entry),
            Err(bad) => self.unreadable.push((self.entries.len(), bad.to_string())),
        }
        self.entries.push((seq, self.bytes.len()));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.checks.clear();
        self.unreadable.clear();
    }

    /// Hashes and scans every entry (the hashing thread's work).
    fn check(&mut self) {
        self.checks.clear();
        let bytes = &self.bytes;
        let starts = std::iter::once(0).chain(self.entries.iter().map(|&(_, end)| end));
        let spans = starts
            .zip(&self.entries)
            .map(|(start, &(_, end))| &bytes[start..end]);
        EntryCheck::all(spans, &mut self.checks);
    }

    /// Hands the checked entries to the verifier, in storage order.
    fn apply(&self, verifier: &mut Verifier<'_>) {
        let mut unreadable = self.unreadable.iter().peekable();
        for (i, (&(seq, _), check)) in self.entries.iter().zip(&self.checks).enumerate() {
            match unreadable.next_if(|(at, _)| *at == i) {
                Some((_, why)) => verifier.push_unreadable(seq, why),
                None => verifier.push_checked(seq, check),
            }
        }
    }
}

/// Streams the entries `from..end` into `verifier`. Where a second core is available the
/// costly, order-independent part — hashing and scanning each entry's bytes
/// ([`EntryCheck::of`]) — runs on a thread of its own, one chunk behind the store reads, while
/// this thread reads the next chunk and feeds the verifier (which also reads the stored hashes
/// on this thread's connection). The verifier sees exactly what [`Verifier::push`] would give
/// it, in the same order.
fn feed(
    conn: &dyn Store,
    tenant: &str,
    from: u64,
    end: u64,
    verifier: &mut Verifier<'_>,
) -> Result<(), StoreError> {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    if !parallel {
        return conn.for_each_entry(tenant, from, end, &mut |seq, entry| {
            push(verifier, seq, entry)
        });
    }
    pipelined(verifier, CHUNK_BYTES, |each| {
        conn.for_each_entry(tenant, from, end, each)
    })
}

/// Hands one row to the verifier: its bytes, or what the store holds instead of them.
fn push(verifier: &mut Verifier<'_>, seq: u64, entry: EntryRef<'_>) {
    match entry {
        Ok(entry) => verifier.push(seq, entry),
        Err(bad) => verifier.push_unreadable(seq, &bad.to_string()),
    }
}

/// Feeds what `read` yields to `verifier`, with the entries of each chunk of about
/// `chunk_bytes` hashed and scanned on a second thread (see [`feed`]).
fn pipelined<E>(
    verifier: &mut Verifier<'_>,
    chunk_bytes: usize,
    read: impl FnOnce(&mut dyn FnMut(u64, EntryRef<'_>)) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        let (to_hasher, hasher_in) = std::sync::mpsc::sync_channel::<Chunk>(1);
        let (hasher_out, from_hasher) = std::sync::mpsc::sync_channel::<Chunk>(1);
        let hasher = std::thread::Builder::new()
            .name("sealtrail-verify-hash".into())
            .spawn_scoped(scope, move || {
                for mut chunk in hasher_in {
                    chunk.check();
                    if hasher_out.send(chunk).is_err() {
                        break;
                    }
                }
            });
        if hasher.is_err() {
            // No thread to be had: do it all here.
            return read(&mut |seq, entry| push(verifier, seq, entry));
        }
        // A checked chunk comes back only after the next one was read; then the verifier takes
        // it and its buffers are filled again.
        let receive = |verifier: &mut Verifier<'_>| {
            let mut chunk = from_hasher
                .recv()
                .expect("the hashing thread answers every chunk it was sent");
            chunk.apply(verifier);
            chunk.clear();
            chunk
        };
        let mut filling = Chunk::default();
        let mut spare = Some(Chunk::default());
        let result = read(&mut |seq, entry| {
            filling.push(seq, entry);
            if filling.bytes.len() >= chunk_bytes {
                let next = match spare.take() {
                    Some(empty) => empty,
                    None => receive(verifier),
                };
                to_hasher
                    .send(std::mem::replace(&mut filling, next))
                    .expect("the hashing thread runs until its input closes");
            }
        });
        // What is still in flight is checked whether or not the read failed, so that the
        // verifier has seen every entry read (a failed read is an error either way).
        if spare.is_none() {
            receive(verifier);
        }
        drop(to_hasher);
        filling.check();
        filling.apply(verifier);
        result
    })
}

/// The tree size a signed checkpoint states, read without checking its signature (the
/// verifier does that).
fn checkpoint_size(signed: &[u8]) -> Option<u64> {
    let text = note::parse(signed).ok()?.text;
    Checkpoint::parse(&text).ok().map(|c| c.size)
}

/// The origin line of a signed checkpoint (unverified), to tell which log it belongs to.
pub fn checkpoint_origin(signed: &[u8]) -> Result<String, UnreadableCheckpoint> {
    let parsed = note::parse(signed)?;
    let checkpoint = Checkpoint::parse(&parsed.text)?;
    Ok(checkpoint.origin)
}

/// Why bytes are not a signed checkpoint whose origin can be read: not a signed note, or a
/// note whose text is not a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableCheckpoint {
    #[error(transparent)]
    Note(#[from] note::NoteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What to verify in a store: which tenant (all by default), which checkpoints kept outside
/// the store, and which verifier keys to trust instead of those next to the data.
#[derive(Debug, Clone, Default)]
pub struct StoreVerifyRequest {
    /// Only this tenant's log; every tenant's (`_system` included) when `None`.
    pub tenant: Option<String>,
    /// Signed checkpoint files saved elsewhere; each is checked against the log its origin
    /// line names (with a tenant given, against that tenant's log).
    pub checkpoints: Vec<PathBuf>,
    /// Verifier keys, each a key file or the key text, trusted for the log whose origin is
    /// the key's name.
    pub keys: Vec<String>,
}

/// Why a store could not be verified at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreVerifyError {
    #[error(
        "no sealtrail store in {} ({} does not exist); point --data at a sealtrail data directory, or pass --database-url",
        data_dir.display(),
        database.display()
    )]
    NoStore {
        data_dir: PathBuf,
        database: PathBuf,
    },
    /// The store's files or schema are damaged: reported as corruption, before any log is
    /// verified, because a damaged file makes intact history look tampered with.
    #[error(
        "the store {location} is corrupt (damage to its files or its schema, such as a copy taken while the server wrote, a disk fault or a constraint dropped; not a change to any log): {}; restore the data directory from a backup or the archive (a PostgreSQL constraint or index can be recreated by its owner), then verify again",
        problems.join("; ")
    )]
    Corrupt {
        location: String,
        problems: Vec<String>,
    },
    #[error("cannot open the store {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no tenant {tenant:?} in {location}; its tenants are {}", tenants.join(", "))]
    UnknownTenant {
        tenant: String,
        location: String,
        tenants: Vec<String>,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadCheckpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a signed checkpoint: {reason}", path.display())]
    NotACheckpoint {
        path: PathBuf,
        reason: UnreadableCheckpoint,
    },
    #[error("{} is a checkpoint of {origin:?}, which is no tenant's log in {location}", path.display())]
    ForeignCheckpoint {
        path: PathBuf,
        origin: String,
        location: String,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(
        "--key {name} is not the key of any log being verified (their origins: {})",
        origins.join(", ")
    )]
    ForeignKey { name: String, origins: Vec<String> },
    /// The keys of a log could not be read.
    #[error(transparent)]
    LogKeys(VerificationError),
    #[error("cannot verify the log of tenant {tenant}: {source}")]
    Tenant {
        tenant: String,
        #[source]
        source: VerificationError,
    },
}

/// One log's verification within [`StoreVerification`].
#[derive(Debug, Clone)]
pub struct LogVerification {
    pub tenant: String,
    pub report: Report,
    /// When the log's key file and the key the store recorded differ (one of them was
    /// replaced), both, so that the caller can warn: the checkpoints then count only if both
    /// signed them.
    pub disputed_key: Option<DisputedKey>,
}

/// A log's key file and the verifier key its store recorded, when they differ.
#[derive(Debug, Clone)]
pub struct DisputedKey {
    /// The key in the key directory.
    pub file: VerifierKey,
    /// The key the store recorded when the tenant was created.
    pub recorded: VerifierKey,
    /// Where the key file is.
    pub key_dir: PathBuf,
}

/// The verification of a store: one report per log, and the store's missing append-only
/// protections.
#[derive(Debug, Clone)]
pub struct StoreVerification {
    /// The store, as it is shown (a PostgreSQL URL without its password).
    pub location: String,
    /// Whether one tenant was asked for, which decides the JSON shape.
    pub single_tenant: bool,
    pub logs: Vec<LogVerification>,
    /// Append-only protections the store's schema installs that are missing or disabled.
    pub missing_protections: Vec<String>,
}

impl StoreVerification {
    /// The logs found damaged, as `tenant (from seq N)`.
    pub fn broken(&self) -> Vec<String> {
        self.logs
            .iter()
            .filter(|log| !log.report.valid)
            .map(|log| match log.report.first_broken_seq {
                Some(seq) => format!("{} (from seq {seq})", log.tenant),
                None => log.tenant.clone(),
            })
            .collect()
    }

    /// Whether every log verified and the store's protections are intact.
    pub fn valid(&self) -> bool {
        self.broken().is_empty() && self.missing_protections.is_empty()
    }

    /// The report `sealtrail verify --json` prints. With one tenant asked for, that log's
    /// report. Otherwise the same fields summarise every log at the top level, so that a
    /// script reads `.valid` the same way in both cases: `valid` when every log is valid,
    /// `rows_checked` and `violation_count` summed, every log's `violations` each with its
    /// `tenant`, `first_broken_seq` (and `first_broken_tenant`) of the first damaged log in
    /// tenant order, and `checkpoint` null because each log has its own; each log's own report
    /// is under `tenants`, keyed by tenant name. Every report carries the store's protections
    /// as `store_protections`, and so does the summary.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        let protections = serde_json::json!({
            "intact": self.missing_protections.is_empty(),
            "missing": self.missing_protections,
        });
        let mut reports = serde_json::Map::new();
        for log in &self.logs {
            let mut value = serde_json::to_value(&log.report)?;
            value["store_protections"] = protections.clone();
            reports.insert(log.tenant.clone(), value);
        }
        if self.single_tenant {
            return Ok(reports
                .into_iter()
                .next()
                .map_or(serde_json::Value::Null, |(_, report)| report));
        }
        let mut violations = Vec::new();
        for log in &self.logs {
            for violation in &log.report.violations {
                let mut value = serde_json::to_value(violation)?;
                value["tenant"] = serde_json::Value::String(log.tenant.clone());
                violations.push(value);
            }
        }
        // "First" is by tenant name, so that it does not depend on how the store lists them.
        let first_broken = self
            .logs
            .iter()
            .filter(|log| !log.report.valid && log.report.first_broken_seq.is_some())
            .min_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(serde_json::json!({
            "valid": self.logs.iter().all(|log| log.report.valid),
            "rows_checked": self.logs.iter().map(|log| log.report.rows_checked).sum::<u64>(),
            "violations": violations,
            "violation_count": self.logs.iter().map(|log| log.report.violation_count).sum::<u64>(),
            "first_broken_seq": first_broken.and_then(|log| log.report.first_broken_seq),
            "first_broken_tenant": first_broken.map(|log| log.tenant.as_str()),
            "checkpoint": null,
            "store_protections": protections,
            "tenants": reports,
        }))
    }
}

/// Verifies the logs of the store at `location` (keys and the embedded store in `data_dir`)
/// as `request` asks, reading through a connection made for scanning whole logs. Fails only
/// when nothing could be verified; damage is in the reports.
pub fn verify_store(
    location: &Location,
    data_dir: &Path,
    request: &StoreVerifyRequest,
) -> Result<StoreVerification, StoreVerifyError> {
    if let Location::Embedded { data_dir } = location {
        let database = store::DataDir::new(data_dir).database();
        if !database.exists() {
            return Err(StoreVerifyError::NoStore {
                data_dir: data_dir.clone(),
                database,
            });
        }
    }
    let shown = location.to_string();
    let conn = location.open_scanner().map_err(|source| {
        if source.is_corruption() {
            StoreVerifyError::Corrupt {
                location: shown.clone(),
                problems: vec![source.to_string()],
            }
        } else {
            StoreVerifyError::Open {
                location: shown.clone(),
                source,
            }
        }
    })?;
    let conn = conn.as_ref();
    let problems = conn.integrity_problems(Integrity::Quick)?;
    if !problems.is_empty() {
        return Err(StoreVerifyError::Corrupt {
            location: shown,
            problems,
        });
    }
    let missing_protections: Vec<String> = conn
        .protections()?
        .into_iter()
        .filter(|p| !p.active)
        .map(|p| p.name)
        .collect();
    let all = conn.tenants()?;
    let tenants: Vec<Tenant> = match &request.tenant {
        Some(name) => {
            let Some(tenant) = all.iter().find(|t| &t.name == name) else {
                return Err(StoreVerifyError::UnknownTenant {
                    tenant: name.clone(),
                    location: shown,
                    tenants: all.into_iter().map(|t| t.name).collect(),
                });
            };
            vec![tenant.clone()]
        }
        None => all,
    };

    // Each extra checkpoint goes to the log its origin names; with a tenant given, all go to
    // that log, where one of another log shows up as a checkpoint that does not verify.
    let mut extra: Vec<Vec<Vec<u8>>> = vec![Vec::new(); tenants.len()];
    for path in &request.checkpoints {
        let bytes = std::fs::read(path).map_err(|source| StoreVerifyError::ReadCheckpoint {
            path: path.clone(),
            source,
        })?;
        let origin =
            checkpoint_origin(&bytes).map_err(|reason| StoreVerifyError::NotACheckpoint {
                path: path.clone(),
                reason,
            })?;
        let index = if request.tenant.is_some() {
            0
        } else {
            tenants
                .iter()
                .position(|t| t.origin == origin)
                .ok_or_else(|| StoreVerifyError::ForeignCheckpoint {
                    path: path.clone(),
                    origin,
                    location: shown.clone(),
                })?
        };
        extra[index].push(bytes);
    }

    let mut given_keys = Vec::new();
    for arg in &request.keys {
        let key = crate::keys::read_verifier(arg)?;
        if !tenants.iter().any(|t| t.origin == key.name()) {
            return Err(StoreVerifyError::ForeignKey {
                name: key.name().to_string(),
                origins: tenants.iter().map(|t| t.origin.clone()).collect(),
            });
        }
        given_keys.push(key);
    }

    let mut logs = Vec::with_capacity(tenants.len());
    for (tenant, extra) in tenants.iter().zip(&extra) {
        let keys: Vec<_> = given_keys
            .iter()
            .filter(|k| k.name() == tenant.origin)
            .cloned()
            .collect();
        let mut disputed_key = None;
        let report = if keys.is_empty() {
            let keys = log_keys(data_dir, tenant).map_err(StoreVerifyError::LogKeys)?;
            disputed_key = keys.disputed.clone().map(|recorded| DisputedKey {
                file: keys.key.clone(),
                recorded,
                key_dir: store::DataDir::new(data_dir).keys(),
            });
            verify_tenant_with_log_keys(conn, &tenant.name, &keys, extra, None, None)
        } else {
            verify_tenant_with_keys(conn, &tenant.name, &keys, extra, None, None)
        }
        .map_err(|source| StoreVerifyError::Tenant {
            tenant: tenant.name.clone(),
            source,
        })?;
        logs.push(LogVerification {
            tenant: tenant.name.clone(),
            report,
            disputed_key,
        });
    }
    Ok(StoreVerification {
        location: shown,
        single_tenant: request.tenant.is_some(),
        logs,
        missing_protections,
    })
}

/// Whether a log's chain is known to be intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// Every verification of it so far in this process found nothing wrong.
    Valid,
    /// A verification found a violation (and no later full verification found the log intact).
    Violated,
    /// Not verified yet in this process.
    Unchecked,
}

impl ChainState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChainState::Valid => "valid",
            ChainState::Violated => "violated",
            ChainState::Unchecked => "unchecked",
        }
    }
}

/// What this process knows about one log's integrity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantStatus {
    pub state: ChainState,
    /// When the latest verification finished (RFC 3339, UTC).
    pub last_run: Option<String>,
    /// Entries the latest verification checked.
    pub rows_checked: u64,
    /// Where the damage starts, while `state` is `violated`.
    pub first_broken_seq: Option<u64>,
    /// Violations the verification that found the damage counted.
    pub violation_count: u64,
}

impl Default for TenantStatus {
    fn default() -> Self {
        TenantStatus {
            state: ChainState::Unchecked,
            last_run: None,
            rows_checked: 0,
            first_broken_seq: None,
            violation_count: 0,
        }
    }
}

/// What this process knows about each tenant's log, shared by the background verifier and
/// `GET /v1/verify` (which write) and the health check and metrics (which read).
///
/// The application creates one and hands it to whoever needs it, rather than keeping a
/// process-wide table: two applications in one process (the tests) then keep apart without a
/// key, and a tool that verifies without serving has a board of its own. Cloning is cheap and
/// every clone is the same board.
#[derive(Clone, Default)]
pub struct VerificationBoard {
    inner: Arc<Mutex<Board>>,
}

/// The board's contents, under one lock.
#[derive(Default)]
struct Board {
    tenants: BTreeMap<String, TenantStatus>,
    /// Per tenant, the violations known now (see [`ViolationId`]).
    known: BTreeMap<String, BTreeSet<ViolationId>>,
    /// Why the latest background pass could not verify any log (the store could not be
    /// opened, or its tenants listed); cleared by the next pass that gets that far.
    pass_failure: Option<String>,
}

/// What makes two findings the same violation: its seq and kind, and for a violation of a
/// checkpoint as a whole (no seq) its detail, which names the checkpoint.
type ViolationId = (Option<u64>, ViolationKind, String);

fn violation_id(violation: &Violation) -> ViolationId {
    let detail = match violation.seq {
        Some(_) => String::new(),
        None => violation.detail.clone(),
    };
    (violation.seq, violation.kind, detail)
}

impl Board {
    /// Violations known now, across logs: for each log the distinct ones remembered, or the
    /// latest count when that is larger (a report keeps at most 1,000 violations).
    fn known_count(&self) -> u64 {
        let mut count: u64 = self
            .tenants
            .iter()
            .map(|(tenant, status)| {
                let remembered = self.known.get(tenant).map_or(0, |k| k.len() as u64);
                remembered.max(status.violation_count)
            })
            .sum();
        if self.pass_failure.is_some() {
            count += 1;
        }
        count
    }
}

impl VerificationBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        // A panic while holding the lock leaves plain data behind; it is still the best we know.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The status of one tenant's log.
    pub fn status(&self, tenant: &str) -> TenantStatus {
        self.lock().tenants.get(tenant).cloned().unwrap_or_default()
    }

    /// The status of every tenant verified so far, by tenant.
    pub fn statuses(&self) -> BTreeMap<String, TenantStatus> {
        self.lock().tenants.clone()
    }

    /// One word for all logs: `violated` if any is (or the latest background pass could not
    /// verify at all), `unchecked` until one was verified, `valid` otherwise.
    pub fn chain_state(&self) -> ChainState {
        let board = self.lock();
        if board.pass_failure.is_some()
            || board
                .tenants
                .values()
                .any(|s| s.state == ChainState::Violated)
        {
            ChainState::Violated
        } else if board.tenants.values().any(|s| s.state == ChainState::Valid) {
            ChainState::Valid
        } else {
            ChainState::Unchecked
        }
    }

    /// Violations known now, across logs (what `sealtrail_chain_violations_known` says).
    pub fn known_violations(&self) -> u64 {
        self.lock().known_count()
    }

    /// Records a verification's findings. `whole_log` says the report covers the whole log, so
    /// a valid one clears an earlier violation; a valid partial report leaves it standing.
    pub fn record(&self, tenant: &str, report: &Report, whole_log: bool) {
        let mut board = self.lock();
        record(&mut board, tenant, report, whole_log);
        crate::metrics::set_known_violations(board.known_count());
    }

    /// Records that `tenant`'s log could not be verified because of `error`: a violation of
    /// kind `store_error`, at the seq of the row the store names when it names one.
    pub fn record_unverifiable(&self, tenant: &str, error: &VerificationError) {
        let seq = match error {
            VerificationError::Store(StoreError::BadRow { seq, .. }) => Some(*seq),
            _ => None,
        };
        let report = Report {
            valid: false,
            rows_checked: 0,
            violations: vec![Violation::new(
                seq,
                ViolationKind::StoreError,
                format!("the log could not be verified: {error}"),
            )],
            violation_count: 1,
            first_broken_seq: seq,
            checkpoint: None,
            pruned: None,
        };
        self.record(tenant, &report, false);
    }

    /// Records whether a background pass got as far as the logs: `Some(why)` when it could not
    /// (then the chain state is `violated` until a pass gets through), `None` when it did.
    pub fn record_pass(&self, failure: Option<String>) {
        let mut board = self.lock();
        if let Some(why) = &failure {
            if board.pass_failure.is_none() {
                crate::metrics::record_verification(false, 1);
            }
            tracing::error!(error = %why, "background verification could not run; the chain is reported violated until it can");
        }
        board.pass_failure = failure;
        crate::metrics::set_known_violations(board.known_count());
    }
}

fn record(board: &mut Board, tenant: &str, report: &Report, whole_log: bool) {
    let known = board.known.entry(tenant.to_string()).or_default();
    let found: BTreeSet<ViolationId> = report.violations.iter().map(violation_id).collect();
    let new = found.difference(known).count() as u64;
    // A whole-log run replaces what is known of the log; a partial one adds to it (damage
    // outside its range stays known).
    if whole_log || (report.valid && known.is_empty()) {
        *known = found;
    } else if !report.valid {
        known.extend(found);
    }
    crate::metrics::record_verification(report.valid, new);
    let status = board.tenants.entry(tenant.to_string()).or_default();
    let was_violated = status.state == ChainState::Violated;
    status.last_run = Some(crate::clock::Clock::system().now().to_rfc3339());
    status.rows_checked = report.rows_checked;
    if report.valid {
        if whole_log || !was_violated {
            if was_violated {
                tracing::warn!(
                    tenant,
                    "the whole log verifies again; clearing the violation"
                );
            }
            status.state = ChainState::Valid;
            status.first_broken_seq = None;
            status.violation_count = 0;
            board.known.remove(tenant);
        }
        return;
    }
    let first = match (
        was_violated,
        status.first_broken_seq,
        report.first_broken_seq,
    ) {
        (true, Some(known), Some(found)) => Some(known.min(found)),
        (true, Some(known), None) => Some(known),
        (_, _, found) => found,
    };
    let changed = !was_violated || first != status.first_broken_seq;
    status.state = ChainState::Violated;
    status.first_broken_seq = first;
    status.violation_count = report.violation_count;
    if changed {
        tracing::error!(
            tenant,
            first_broken_seq = ?report.first_broken_seq,
            violation_count = report.violation_count,
            "audit log integrity violated: run `sealtrail verify --tenant {tenant}` for the report"
        );
        for violation in report.violations.iter().take(LOGGED_VIOLATIONS) {
            tracing::error!(
                tenant,
                seq = ?violation.seq,
                kind = violation.kind.as_str(),
                detail = %violation.detail,
                "audit log violation"
            );
        }
    } else {
        tracing::error!(
            tenant,
            first_broken_seq = ?first,
            violation_count = report.violation_count,
            "audit log integrity still violated"
        );
    }
}

/// The background verifier: every `interval`, each tenant's log is verified (whole on the
/// first run, then what was added since plus the latest [`RECENT_WINDOW`] entries) and the
/// findings recorded on the status board. Returns once `shutdown` is signalled, between runs:
/// a run in progress is finished, not cut off. The application spawns it into its task set.
pub async fn run_background(
    ledger: Ledger,
    board: VerificationBoard,
    data_dir: PathBuf,
    location: Location,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(interval);
    // A slow run on a large log delays the next one rather than causing a burst of them.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Per tenant, the log size the previous runs verified up to.
    let mut progress: HashMap<String, u64> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.signalled() => return,
            _ = ticker.tick() => {}
        }
        let (ledger, board, data_dir, location, mut carried) = (
            ledger.clone(),
            board.clone(),
            data_dir.clone(),
            location.clone(),
            std::mem::take(&mut progress),
        );
        let run = tokio::task::spawn_blocking(move || {
            match verify_all_once(&ledger, &board, &data_dir, &location, &mut carried) {
                Ok(()) => board.record_pass(None),
                // An unreachable store is what the health check's store check reports (and
                // the spool may be taking events); it says nothing about any log's content.
                Err(error @ StoreError::Unavailable(_)) => {
                    tracing::error!(%error, "background verification could not reach the store");
                }
                Err(error) => board.record_pass(Some(error.to_string())),
            }
            if let Err(error) = board.save(&data_dir) {
                tracing::warn!(%error, "cannot record the latest verification in the data directory");
            }
            carried
        });
        match run.await {
            Ok(carried) => progress = carried,
            Err(error) => tracing::error!(%error, "background verification task failed"),
        }
    }
}

/// The file in the data directory where the background verifier records its latest pass
/// (`{"at", "chain", "tenants": {NAME: TenantStatus}}`), so that `sealtrail doctor` on the
/// server's host can say what the running server last found.
pub const LATEST_VERIFICATION_FILE: &str = "verification.json";

/// The latest background verification as recorded in [`LATEST_VERIFICATION_FILE`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LatestVerification {
    pub at: String,
    pub chain: String,
    #[serde(default)]
    pub tenants: BTreeMap<String, RecordedStatus>,
}

/// One log's entry in [`LatestVerification`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedStatus {
    pub state: String,
    pub first_broken_seq: Option<u64>,
}

/// Reads [`LATEST_VERIFICATION_FILE`] from `data_dir`: `Ok(None)` when no server recorded one.
pub fn latest_verification(data_dir: &Path) -> std::io::Result<Option<LatestVerification>> {
    match std::fs::read(data_dir.join(LATEST_VERIFICATION_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

impl VerificationBoard {
    /// Records the board in `data_dir` ([`LATEST_VERIFICATION_FILE`]): written whole to a
    /// temporary file, private to its owner, then renamed over the previous one.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let body = serde_json::json!({
            "at": crate::clock::Clock::system().now().to_rfc3339(),
            "chain": self.chain_state().as_str(),
            "tenants": self.statuses(),
        });
        let path = data_dir.join(LATEST_VERIFICATION_FILE);
        let temp = data_dir.join(format!("{LATEST_VERIFICATION_FILE}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, &path)
    }
}

/// One background pass over every tenant of the store.
fn verify_all_once(
    ledger: &Ledger,
    board: &VerificationBoard,
    data_dir: &Path,
    location: &Location,
    progress: &mut HashMap<String, u64>,
) -> Result<(), StoreError> {
    let conn = location.open_reader()?;
    for tenant in conn.tenants()? {
        // Entries up to the committed head are surely in the snapshot the run reads next.
        let head = ledger.head(&tenant.name).map_or(0, |h| h.size);
        let from = progress
            .get(&tenant.name)
            .map_or(0, |&done| done.min(head.saturating_sub(RECENT_WINDOW)));
        match verify_tenant(conn.as_ref(), data_dir, &tenant.name, &[], Some(from), None) {
            Ok(report) => {
                board.record(&tenant.name, &report, from == 0);
                progress.insert(tenant.name, head);
            }
            Err(error) => {
                tracing::error!(tenant = %tenant.name, %error, "cannot verify the log");
                if !matches!(error, VerificationError::Store(StoreError::Unavailable(_))) {
                    board.record_unverifiable(&tenant.name, &error);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sealtrail_core::canonical::{ServerFields, canonical_entry};
    use sealtrail_core::event::Event;
    use sealtrail_core::merkle::TreeBuilder;
    use sealtrail_core::verify::ViolationKind;
    use sealtrail_core::{Hash, Timestamp, leaf_hash};

    use super::*;

    /// `count` chained entries and their stored hashes.
    fn log(count: u64) -> (Vec<(u64, Vec<u8>)>, Vec<Hash>) {
        let mut entries = Vec::new();
        let mut stored = Vec::new();
        let mut tree = TreeBuilder::new();
        let mut prev = Hash::ZERO;
        for seq in 0..count {
            let json = format!(
                r#"{{"action":"user.login","actor":{{"id":"u-{seq}"}},"outcome":"success","details":{{"n":"{}"}}}}"#,
                "x".repeat((seq % 97) as usize)
            );
            let event = Event::parse(json.as_bytes()).unwrap();
            let server = ServerFields {
                id: uuid::Uuid::from_u128(u128::from(seq) + 1),
                seq,
                received_at: Timestamp::from_unix_micros(1_795_000_000_000_000).unwrap(),
                prev_hash: prev,
            };
            let entry = canonical_entry(&event, &server).unwrap();
            prev = leaf_hash(&entry);
            tree.push(prev, &mut stored);
            entries.push((seq, entry));
        }
        (entries, stored)
    }

    fn verify(entries: &[(u64, Vec<u8>)], stored: &[Hash], chunk_bytes: Option<usize>) -> Report {
        let mut verifier = Verifier::new(
            Some(&stored as &dyn HashReader),
            &[],
            &[],
            VerifyOptions::default(),
        )
        .unwrap();
        let read = |each: &mut dyn FnMut(u64, EntryRef<'_>)| {
            for (seq, entry) in entries {
                each(*seq, Ok(entry));
            }
            Ok::<(), ()>(())
        };
        match chunk_bytes {
            Some(bytes) => pipelined(&mut verifier, bytes, read).unwrap(),
            None => read(&mut |seq, entry| push(&mut verifier, seq, entry)).unwrap(),
        }
        verifier.finish()
    }

    fn damaged(seqs: &[u64]) -> Report {
        Report {
            valid: false,
            rows_checked: 10,
            violations: seqs
                .iter()
                .map(|&seq| {
                    Violation::new(
                        Some(seq),
                        ViolationKind::ContentMismatch,
                        format!("entry {seq} altered"),
                    )
                })
                .collect(),
            violation_count: seqs.len() as u64,
            first_broken_seq: seqs.first().copied(),
            checkpoint: None,
            pruned: None,
        }
    }

    #[test]
    fn the_board_knows_each_violation_once_until_the_whole_log_verifies() {
        let board = VerificationBoard::default();
        let intact = Report {
            valid: true,
            rows_checked: 10,
            violations: vec![],
            violation_count: 0,
            first_broken_seq: None,
            checkpoint: None,
            pruned: None,
        };
        board.record("acme", &intact, true);
        assert_eq!(board.known_violations(), 0);
        board.record("acme", &damaged(&[3, 7]), true);
        // The same damage found again by later runs, whole or partial, is not new.
        board.record("acme", &damaged(&[3, 7]), true);
        board.record("acme", &damaged(&[7]), false);
        assert_eq!(board.known_violations(), 2);
        // A partial run that finds nothing leaves what is known standing.
        board.record("acme", &intact, false);
        assert_eq!(board.known_violations(), 2);
        assert_eq!(board.chain_state(), ChainState::Violated);
        // New damage is added; another log's violations count beside it.
        board.record("acme", &damaged(&[9]), false);
        board.record("other", &damaged(&[1]), true);
        assert_eq!(board.known_violations(), 4);
        // A whole-log run replaces what is known of that log.
        board.record("acme", &intact, true);
        assert_eq!(board.known_violations(), 1);
        board.record("other", &intact, true);
        assert_eq!(board.known_violations(), 0);
        assert_eq!(board.chain_state(), ChainState::Valid);
    }

    #[test]
    fn a_run_that_cannot_finish_is_a_violation_at_the_row_it_names() {
        let board = VerificationBoard::default();
        let error = VerificationError::Store(StoreError::BadRow {
            tenant: "acme".into(),
            seq: 41,
            source: sealtrail_store::BadValue {
                column: "entries.entry",
                expected: "a BLOB",
                found: "NULL".into(),
            },
        });
        board.record_unverifiable("acme", &error);
        let status = board.status("acme");
        assert_eq!(status.state, ChainState::Violated);
        assert_eq!(status.first_broken_seq, Some(41));
        assert_eq!(board.known_violations(), 1);
        // A pass that cannot reach the logs at all is a violation too, until one gets through.
        let fresh = VerificationBoard::default();
        fresh.record_pass(Some("cannot list the tenants".into()));
        assert_eq!(fresh.chain_state(), ChainState::Violated);
        fresh.record_pass(None);
        assert_eq!(fresh.chain_state(), ChainState::Unchecked);
    }

    #[test]
    fn hashing_on_a_second_thread_finds_exactly_what_one_thread_finds() {
        let (pristine, stored) = log(700);
        let mut damaged = pristine.clone();
        // Content changed (first and last entry too), an entry deleted, two swapped.
        for at in [0, 123, 699] {
            let entry = &mut damaged[at].1;
            let i = entry.windows(7).position(|w| w == b"success").unwrap();
            entry[i..i + 7].copy_from_slice(b"failure");
        }
        damaged.remove(300);
        damaged.swap(400, 401); // seqs 401 and 402, after the removal
        for (entries, valid) in [(&pristine, true), (&damaged, false)] {
            let alone = verify(entries, &stored, None);
            assert_eq!(alone.valid, valid);
            assert_eq!(alone.rows_checked, entries.len() as u64);
            // Chunks of one entry, of a few, of about a hundred, and one chunk for all.
            for chunk_bytes in [1, 1_500, 40_000, CHUNK_BYTES] {
                assert_eq!(
                    verify(entries, &stored, Some(chunk_bytes)),
                    alone,
                    "chunks of {chunk_bytes} bytes"
                );
            }
        }
        let kinds: Vec<_> = verify(&damaged, &stored, Some(1_500))
            .violations
            .iter()
            .map(|v| (v.seq, v.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some(0), ViolationKind::ContentMismatch),
                (Some(123), ViolationKind::ContentMismatch),
                (Some(300), ViolationKind::MissingSeq),
                (Some(401), ViolationKind::OutOfOrder),
                (Some(699), ViolationKind::ContentMismatch),
            ]
        );
    }
}
