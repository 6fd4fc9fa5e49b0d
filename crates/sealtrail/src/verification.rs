//! Verification of a tenant's log on the store: shared by `sealtrail verify`, `GET /v1/verify`
//! and the background verifier.
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
//! The background verifier ([`spawn_background`]) checks every tenant's whole log once when the
//! server starts, then on each tick the entries added since and at least the last
//! [`RECENT_WINDOW`] entries. Its findings, and those of `GET /v1/verify`, go to a process-wide
//! status board ([`status`], [`statuses`], [`chain_state`]) that the health check reads. A
//! violation is sticky: a later partial run that happens not to cover the damage does not
//! clear it; only a valid verification of the whole log does.
//!
//! **Architecture invariant:** nothing here judges integrity; the core's verifier does. This
//! module only decides which bytes it sees.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::HashReader;
use sealtrail_core::note::{self, VerifierKey};
use sealtrail_core::verify::{Report, Verifier, VerifyError, VerifyOptions};
use serde::Serialize;

use crate::keyfiles::{self, KeyFileError};
use crate::ledger::Ledger;
use crate::store::{self, Location, Store, StoreError, StoreHashes, Tenant};

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

/// The keys a log's checkpoints are checked with, as found next to the data.
#[derive(Debug, Clone)]
pub struct LogKeys {
    /// The key that must have signed each checkpoint: the log's key file in `DIR/keys/` when
    /// there is one, else the verifier key the store recorded when the tenant was created.
    pub key: VerifierKey,
    /// The recorded key, when there is a key file too and the two differ: one of them was
    /// replaced (sealtrail never signs with a key that differs from the record), so a
    /// checkpoint counts only if it is signed by both.
    pub disputed: Option<VerifierKey>,
}

/// The verifier keys of a tenant's log: its key file in the key directory of `data_dir` and
/// the verifier key the store recorded when the tenant was created (see [`LogKeys`]). An
/// auditor who trusts neither passes their own copy to [`verify_tenant_with_keys`].
pub fn log_keys(data_dir: &Path, tenant: &Tenant) -> Result<LogKeys, VerificationError> {
    let origin = &tenant.origin;
    let (_, vkey_path) = keyfiles::key_paths(&data_dir.join("keys"), origin);
    let key_error = |source| VerificationError::Key {
        origin: origin.to_string(),
        source,
    };
    let recorded = tenant
        .vkey
        .as_deref()
        .map(keyfiles::read_verifier)
        .transpose()
        .map_err(key_error)?;
    if !vkey_path.exists()
        && let Some(recorded) = recorded
    {
        return Ok(LogKeys {
            key: recorded,
            disputed: None,
        });
    }
    let file = keyfiles::read_verifier(&vkey_path.to_string_lossy()).map_err(key_error)?;
    let disputed = recorded.filter(|recorded| *recorded != file);
    Ok(LogKeys {
        key: file,
        disputed,
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
        ..VerifyOptions::default()
    };
    let mut verifier = Verifier::new(Some(&hashes as &dyn HashReader), &notes, keys, options)?;
    conn.for_each_entry(tenant, from, end.unwrap_or(u64::MAX), &mut |seq, entry| {
        verifier.push(seq, entry)
    })?;
    Ok(verifier.finish())
}

/// The tree size a signed checkpoint states, read without checking its signature (the
/// verifier does that).
fn checkpoint_size(signed: &[u8]) -> Option<u64> {
    let text = note::parse(signed).ok()?.text;
    Checkpoint::parse(&text).ok().map(|c| c.size)
}

/// The origin line of a signed checkpoint (unverified), to tell which log it belongs to.
pub fn checkpoint_origin(signed: &[u8]) -> Result<String, String> {
    let parsed = note::parse(signed).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse(&parsed.text).map_err(|e| e.to_string())?;
    Ok(checkpoint.origin)
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

/// Per data directory and tenant, so that several applications in one process (the tests) keep
/// apart.
type Board = HashMap<(PathBuf, String), TenantStatus>;

static BOARD: LazyLock<Mutex<Board>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn board() -> std::sync::MutexGuard<'static, Board> {
    // A panic while holding the lock leaves plain data behind; it is still the best we know.
    BOARD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The status of one tenant's log served from `data_dir`.
pub fn status(data_dir: &Path, tenant: &str) -> TenantStatus {
    board()
        .get(&(data_dir.to_path_buf(), tenant.to_string()))
        .cloned()
        .unwrap_or_default()
}

/// The status of every tenant verified so far from `data_dir`, by tenant.
pub fn statuses(data_dir: &Path) -> BTreeMap<String, TenantStatus> {
    board()
        .iter()
        .filter(|((dir, _), _)| dir == data_dir)
        .map(|((_, tenant), status)| (tenant.clone(), status.clone()))
        .collect()
}

/// One word for all logs of `data_dir`: `violated` if any is, `unchecked` until one was
/// verified, `valid` otherwise.
pub fn chain_state(data_dir: &Path) -> ChainState {
    let all = statuses(data_dir);
    if all.values().any(|s| s.state == ChainState::Violated) {
        ChainState::Violated
    } else if all.values().any(|s| s.state == ChainState::Valid) {
        ChainState::Valid
    } else {
        ChainState::Unchecked
    }
}

/// Records a verification's findings. `whole_log` says the report covers the whole log, so a
/// valid one clears an earlier violation; a valid partial report leaves it standing.
pub fn record(data_dir: &Path, tenant: &str, report: &Report, whole_log: bool) {
    crate::metrics::record_verification(tenant, report.valid, report.violation_count);
    let mut board = board();
    let status = board
        .entry((data_dir.to_path_buf(), tenant.to_string()))
        .or_default();
    let was_violated = status.state == ChainState::Violated;
    status.last_run = Some(crate::ledger::now().to_rfc3339());
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
    drop(board);
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

/// Starts the background verifier: every `interval`, each tenant's log is verified (whole on the
/// first run, then what was added since plus the latest [`RECENT_WINDOW`] entries) and the
/// findings recorded on the status board. Stops when the returned task is aborted.
pub fn spawn_background(
    ledger: Ledger,
    data_dir: PathBuf,
    location: Location,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        // A slow run on a large log delays the next one rather than causing a burst of them.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per tenant, the log size the previous runs verified up to.
        let mut progress: HashMap<String, u64> = HashMap::new();
        loop {
            ticker.tick().await;
            let (ledger, data_dir, location, mut carried) = (
                ledger.clone(),
                data_dir.clone(),
                location.clone(),
                std::mem::take(&mut progress),
            );
            let run = tokio::task::spawn_blocking(move || {
                if let Err(error) = verify_all_once(&ledger, &data_dir, &location, &mut carried) {
                    tracing::error!(%error, "background verification could not run");
                }
                carried
            });
            match run.await {
                Ok(carried) => progress = carried,
                Err(error) => tracing::error!(%error, "background verification task failed"),
            }
        }
    })
}

/// One background pass over every tenant of the store.
fn verify_all_once(
    ledger: &Ledger,
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
                record(data_dir, &tenant.name, &report, from == 0);
                progress.insert(tenant.name, head);
            }
            Err(error) => {
                tracing::error!(tenant = %tenant.name, %error, "cannot verify the log");
            }
        }
    }
    Ok(())
}
