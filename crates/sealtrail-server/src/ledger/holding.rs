//! With `on_frozen = "spool"`: keeping a frozen tenant's events in its hold file, and draining
//! the file into the tenant's log once the tenant is unfrozen (see [`crate::freeze`]).
//!
//! **Holding.** Ingest sends a frozen tenant's events as a `Job::Hold`. The writer gives each
//! its id and `received_at`, builds its entry with placeholder seq and `prev_hash` (so that
//! an event too large for an entry is refused now, not after the `202`), appends the records
//! to `DIR/spool/frozen/<tenant>.spool` — the spool's format and crash-safety code
//! ([`crate::spool::Spool`]) at another path — and fsyncs it before anyone is answered
//! `Held`. An idempotency key is answered as the log would answer it: a retry of an event
//! held (or spooled, or in the log) gets that event's answer again, a different event under
//! the key is refused. Each file is bounded by `spool_max_bytes` on its own.
//!
//! **Order.** While a tenant's hold file has records, every new event of the tenant goes
//! behind them into the file — also one ingest sent to the log because it saw the tenant
//! unfrozen — so the log takes the tenant's events in the order they were accepted: the held
//! ones first, then the newer ones, whichever path each came by.
//!
//! **Draining.** A hold file drains once its tenant is not frozen, as the writer reads the
//! store's `frozen_tenants` row: again after a freeze or unfreeze through this instance (at
//! once), and otherwise at most once per re-check interval (`token_recheck_ms`), or sooner
//! when ingest and the writer disagree (a hold for a tenant the writer saw unfrozen, an
//! append behind held events of one it saw frozen). Draining takes a chunk at a time, each in
//! one transaction, oldest first, under the ids and acceptance times the events were
//! acknowledged with, skipping an id already in the log (a chunk committed just before a
//! crash), exactly as the outage spool drains (`spooling`). The chunk that empties the file
//! also appends `sealtrail.tenant.held_drained` to the `_system` log with how many events the
//! file held and when the first and last were accepted; its idempotency key names the first
//! event, so a drain done again after a crash records nothing twice. The emptied file is then
//! removed. The outage spool drains first: while it has events, the store is unreachable or
//! just back, and its events were accepted for the log.
//!
//! **Restarts.** The hold files are opened when the writer starts: a record cut short by a
//! crash is discarded (nobody was told of it), whole ones are held on, and drained once their
//! tenant is not frozen. Hold files are this instance's: on a PostgreSQL database shared by
//! several instances, each drains its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealtrail_core::canonical::{ServerFields, canonical_entry, event_digest};
use sealtrail_core::event::Event;
use sealtrail_core::{Hash, Timestamp};

use super::group::{original_at_seq, same_event};
use super::spooling::{DRAIN_CHUNK, DRAIN_TICK, RETRY_UNREACHABLE, clone_spool_error};
use super::writer::Writer;
use super::{Job, LedgerError, Original, Outcome, Reply, SpoolConfig, SpoolReceipt, Submission};
use crate::freeze::FrozenTenants;
use crate::spool::{self, Spool, SpoolError, SpoolPeriod, SpoolStatus, SpooledKey};
use crate::tenant::TenantName;

/// The `_system` record of a hold file drained into its tenant's log.
pub const HELD_DRAINED: &str = "sealtrail.tenant.held_drained";

/// The hold files' latest state by tenant (only tenants whose file has records), shared
/// between the writer and its [`super::Ledger`] handles for the admin API.
pub(super) type HoldWatch = Arc<Mutex<BTreeMap<String, SpoolStatus>>>;

/// The frozen tenants' hold files, owned by the writer thread.
pub(super) struct HoldState {
    data_dir: PathBuf,
    /// Each file's bound (`spool_max_bytes`).
    max_bytes: u64,
    /// How long what was read of the frozen tenants is trusted.
    recheck: Duration,
    /// The hold files that have records, open, by tenant.
    files: BTreeMap<String, Spool>,
    /// The frozen tenants as the writer last read them from the store.
    frozen: FrozenTenants,
    /// When they were read; `None`: read them before the next drain.
    read_at: Option<Instant>,
    /// After a failed drain, the next is not tried before this.
    retry_at: Option<Instant>,
    watch: HoldWatch,
}

impl HoldState {
    /// Opens every hold file left in `DIR/spool/frozen/`: a cut-off record at the end of one
    /// is discarded (it was never acknowledged), whole ones are held on; an empty file is
    /// removed.
    pub(super) fn open(
        data_dir: &Path,
        config: &SpoolConfig,
        watch: HoldWatch,
    ) -> Result<HoldState, LedgerError> {
        let mut state = HoldState {
            data_dir: data_dir.to_path_buf(),
            max_bytes: config.max_bytes,
            recheck: config.hold_recheck,
            files: BTreeMap::new(),
            frozen: FrozenTenants::default(),
            read_at: None,
            retry_at: None,
            watch,
        };
        let dir = spool::holds_dir(data_dir);
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(source) => {
                return Err(LedgerError::Spool(SpoolError::Io { path: dir, source }));
            }
        };
        let mut tenants = BTreeSet::new();
        for entry in listing {
            let entry = entry.map_err(|source| SpoolError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(tenant) = name
                .to_str()
                .and_then(|name| name.strip_suffix(spool::SPOOL_SUFFIX))
            else {
                continue;
            };
            if TenantName::parse(tenant).is_err() {
                tracing::warn!(
                    file = %entry.path().display(),
                    "a file in the hold folder is not named after a tenant; left alone"
                );
                continue;
            }
            tenants.insert(tenant.to_string());
        }
        for tenant in tenants {
            let path = spool::hold_path(data_dir, &tenant);
            let (file, recovery) =
                Spool::open(&path, state.max_bytes).map_err(|error| LedgerError::Hold {
                    tenant: tenant.clone(),
                    error,
                })?;
            if recovery.discarded_bytes > 0 {
                tracing::warn!(
                    %tenant,
                    discarded_bytes = recovery.discarded_bytes,
                    "a hold file ended in an unfinished record (a write cut off by a crash, never acknowledged); it was discarded"
                );
            }
            if file.is_pending() {
                tracing::warn!(
                    %tenant,
                    records = recovery.records,
                    "events held before the restart wait for their tenant to be unfrozen"
                );
                state.files.insert(tenant.clone(), file);
            } else {
                remove_file(&path);
            }
            state.publish(&tenant);
        }
        Ok(state)
    }

    /// Publishes a tenant's hold file after a change: to the [`super::Ledger`] handles and
    /// to the metrics.
    fn publish(&self, tenant: &str) {
        let status = self.files.get(tenant).map(Spool::status);
        crate::metrics::set_held(tenant, status.map_or(0, |s| s.depth));
        let mut watch = self.watch.lock().expect("hold watch lock");
        match status {
            Some(status) => watch.insert(tenant.to_string(), status),
            None => watch.remove(tenant),
        };
    }

    fn is_frozen(&self, tenant: &str) -> bool {
        self.frozen.get(tenant).is_some()
    }

    /// Whether what was read of the frozen tenants is due to be read again.
    fn stale(&self) -> bool {
        self.read_at.is_none_or(|at| at.elapsed() >= self.recheck)
    }

    /// The file of `tenant`, opened (and created) if it is not open yet.
    fn file(&mut self, tenant: &str) -> Result<&mut Spool, SpoolError> {
        if !self.files.contains_key(tenant) {
            let path = spool::hold_path(&self.data_dir, tenant);
            let (file, _) = Spool::open(&path, self.max_bytes)?;
            self.files.insert(tenant.to_string(), file);
        }
        Ok(self.files.get_mut(tenant).expect("just opened"))
    }
}

/// Removes an emptied hold file (and makes the removal durable); a failure only leaves an
/// empty file, which the next start removes.
fn remove_file(path: &Path) {
    let removed = std::fs::remove_file(path).and_then(|()| {
        let dir = path.parent().expect("a hold file is in a folder");
        std::fs::File::open(dir)?.sync_all()
    });
    if let Err(error) = removed {
        tracing::warn!(file = %path.display(), %error, "cannot remove an emptied hold file");
    }
}

/// The `sealtrail.tenant.held_drained` record of a hold file emptied into `tenant`'s log,
/// with its idempotency key (`sealtrail.tenant.held_drained:<id of the first event held>`);
/// `None` for a file without a readable event.
pub(super) fn held_drained_record(
    tenant: &str,
    period: &SpoolPeriod,
    hostname: &str,
) -> Option<Submission> {
    let (Some(first_id), Some(first), Some(last)) = (
        &period.first_id,
        period.first_received,
        period.last_received,
    ) else {
        return None;
    };
    let document = serde_json::json!({
        "action": HELD_DRAINED,
        "activity": "admin",
        "outcome": "success",
        "actor": {"id": "sealtrail", "type": "system"},
        "targets": [{"type": "tenant", "id": tenant}],
        "details": {
            "tenant": tenant,
            "events": period.events,
            "first_held_at": first.to_rfc3339(),
            "last_held_at": last.to_rfc3339(),
            "hostname": hostname,
        },
    });
    match Event::from_value(&document) {
        Ok(event) => Some(Submission {
            event,
            idempotency_key: Some(format!("{HELD_DRAINED}:{first_id}")),
        }),
        Err(error) => {
            tracing::error!(%error, "cannot build the record of a drained hold file");
            None
        }
    }
}

/// One request for a hold file: its events and where the answer goes.
struct HoldRequest {
    submissions: Vec<Submission>,
    reply: Reply<Vec<Outcome>>,
}

impl Writer {
    /// Whether `tenant`'s hold file has events: its new events go behind them.
    pub(super) fn hold_pending(&self, tenant: &str) -> bool {
        self.holds
            .as_ref()
            .is_some_and(|h| h.files.get(tenant).is_some_and(Spool::is_pending))
    }

    /// How long the writer may wait for a job before it looks at the hold files again:
    /// `None` when none has events.
    pub(super) fn hold_wait(&self) -> Option<Duration> {
        let holds = self.holds.as_ref().filter(|h| !h.files.is_empty())?;
        let due = match holds.read_at {
            Some(at) => holds.recheck.saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        };
        let drainable = holds.files.keys().any(|t| !holds.is_frozen(t));
        let wait = if drainable { DRAIN_TICK } else { due };
        Some(wait.clamp(Duration::from_millis(1), DRAIN_TICK))
    }

    /// After a freeze or unfreeze through this instance: the frozen tenants are read again
    /// before the next drain.
    pub(super) fn frozen_changed(&mut self) {
        if let Some(holds) = &mut self.holds {
            holds.read_at = None;
        }
    }

    /// Keeps the events of `jobs` (holds, and appends of tenants whose hold file has events)
    /// in their tenants' hold files, fsync'd, and answers each.
    pub(super) fn hold_jobs(&mut self, jobs: Vec<Job>) {
        let mut by_tenant: Vec<(String, Vec<HoldRequest>)> = Vec::new();
        for job in jobs {
            let (tenant, submissions, reply, held) = match job {
                Job::Hold {
                    tenant,
                    submissions,
                    reply,
                } => (tenant, submissions, reply, true),
                Job::Append {
                    tenant,
                    submissions,
                    reply,
                } => (tenant, submissions, reply, false),
                _ => unreachable!("only appends and holds are held"),
            };
            let Some(holds) = &mut self.holds else {
                let _ = reply.send(Err(LedgerError::NotCommitted(
                    "this ledger keeps no hold files (only a server holds a frozen tenant's events)"
                        .into(),
                )));
                continue;
            };
            // Ingest saw the tenant otherwise than the writer last read it: read again
            // before the next drain.
            if held != holds.is_frozen(&tenant) {
                holds.read_at = None;
            }
            let request = HoldRequest { submissions, reply };
            match by_tenant.iter_mut().find(|(name, _)| *name == tenant) {
                Some((_, requests)) => requests.push(request),
                None => by_tenant.push((tenant, vec![request])),
            }
        }
        for (tenant, requests) in by_tenant {
            self.hold_tenant(&tenant, requests);
        }
    }

    /// One tenant's part of [`Writer::hold_jobs`]: one write and one fsync for all of it.
    fn hold_tenant(&mut self, tenant: &str, requests: Vec<HoldRequest>) {
        let in_log = self.keys_in_log(tenant, &requests);
        let Some(holds) = &mut self.holds else {
            return;
        };
        let file = match holds.file(tenant) {
            Ok(file) => file,
            Err(error) => {
                tracing::error!(%tenant, %error, "cannot open the hold file of a frozen tenant");
                for request in requests {
                    let _ = request.reply.send(Err(LedgerError::Hold {
                        tenant: tenant.to_string(),
                        error: clone_spool_error(&error),
                    }));
                }
                return;
            }
        };
        let outage = self.spool.as_ref().map(|s| &s.spool);
        let mut keys_here: HashMap<String, SpooledKey> = HashMap::new();
        let mut records = Vec::new();
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let mut outcomes = Vec::with_capacity(request.submissions.len());
            for submission in &request.submissions {
                if let Some(key) = &submission.idempotency_key {
                    let digest = event_digest(&submission.event).ok();
                    let same = |waiting: &SpooledKey| digest == Some(waiting.digest);
                    let receipt = |waiting: &SpooledKey| SpoolReceipt {
                        id: waiting.id.clone(),
                        received_at: waiting.received_at.clone(),
                    };
                    let held = keys_here
                        .get(key)
                        .cloned()
                        .or_else(|| file.spooled_key(tenant, key));
                    if let Some(waiting) = held {
                        outcomes.push(if same(&waiting) {
                            Outcome::Held(receipt(&waiting))
                        } else {
                            Outcome::Conflict(Original::Held(receipt(&waiting)))
                        });
                        continue;
                    }
                    if let Some(waiting) = outage.and_then(|s| s.spooled_key(tenant, key)) {
                        outcomes.push(if same(&waiting) {
                            Outcome::Spooled(receipt(&waiting))
                        } else {
                            Outcome::Conflict(Original::Spooled(receipt(&waiting)))
                        });
                        continue;
                    }
                    if let Some((original, event)) = in_log.get(key) {
                        outcomes.push(if same_event(event, &submission.event) {
                            Outcome::Duplicate(original.clone())
                        } else {
                            Outcome::Conflict(Original::Committed(original.clone()))
                        });
                        continue;
                    }
                }
                let (id, received_at) = (uuid::Uuid::now_v7(), self.clock.now());
                match held_entry(&submission.event, id, received_at) {
                    Ok(entry) => {
                        let receipt = SpoolReceipt {
                            id: id.to_string(),
                            received_at: received_at.to_rfc3339(),
                        };
                        if let Some(key) = &submission.idempotency_key
                            && let Ok(digest) = event_digest(&submission.event)
                        {
                            let waiting = SpooledKey {
                                id: receipt.id.clone(),
                                received_at: receipt.received_at.clone(),
                                digest,
                            };
                            keys_here.insert(key.clone(), waiting);
                        }
                        records.push(spool::Record {
                            tenant: tenant.to_string(),
                            idempotency_key: submission.idempotency_key.clone(),
                            entry,
                        });
                        outcomes.push(Outcome::Held(receipt));
                    }
                    Err(error) => outcomes.push(Outcome::Rejected(error)),
                }
            }
            answers.push((request.reply, outcomes));
        }
        let written = if records.is_empty() {
            Ok(())
        } else {
            file.append(&records)
        };
        if !file.is_pending() {
            // Opened for this request and nothing was kept in it.
            let path = file.path().to_path_buf();
            holds.files.remove(tenant);
            remove_file(&path);
        }
        holds.publish(tenant);
        match written {
            Ok(()) => {
                for (reply, outcomes) in answers {
                    let _ = reply.send(Ok(outcomes));
                }
            }
            Err(error) => {
                tracing::error!(%tenant, %error, "cannot hold a frozen tenant's events");
                for (reply, _) in answers {
                    let _ = reply.send(Err(LedgerError::Hold {
                        tenant: tenant.to_string(),
                        error: clone_spool_error(&error),
                    }));
                }
            }
        }
    }

    /// The events the log already holds under the requests' idempotency keys, with their
    /// receipts: a retry of one is answered from the log, as an append would be. While the
    /// store cannot be asked, none: the event is held, and the drain appends it as the
    /// outage spool's drain would (a duplicate of the same event is not appended twice).
    fn keys_in_log(
        &self,
        tenant: &str,
        requests: &[HoldRequest],
    ) -> HashMap<String, (super::Receipt, Event)> {
        let keys: Vec<&str> = requests
            .iter()
            .flat_map(|r| &r.submissions)
            .filter_map(|s| s.idempotency_key.as_deref())
            .collect();
        if keys.is_empty() || self.store_backing_off() {
            return HashMap::new();
        }
        let store = self.store.as_ref();
        let seqs = match store.idempotent_seqs(tenant, &keys) {
            Ok(seqs) => seqs,
            Err(error) => {
                tracing::warn!(%tenant, %error, "cannot look up idempotency keys in the log; holding the events all the same");
                return HashMap::new();
            }
        };
        let mut in_log = HashMap::new();
        for (key, seq) in seqs {
            match original_at_seq(store, tenant, seq) {
                Ok(original) => {
                    in_log.insert(key, original);
                }
                Err(error) => {
                    tracing::warn!(%tenant, seq, %error, "cannot read the entry an idempotency key names; holding the event all the same");
                }
            }
        }
        in_log
    }

    /// Reads the frozen tenants again if what the writer knows is due for it. While the
    /// store cannot be read, the state last read stands (as it does for ingest).
    fn refresh_frozen(&mut self) {
        let Some(holds) = &self.holds else {
            return;
        };
        if !holds.stale() {
            return;
        }
        let read = crate::freeze::read(self.store.as_ref());
        let holds = self.holds.as_mut().expect("checked above");
        holds.read_at = Some(Instant::now());
        match read {
            Ok(frozen) => holds.frozen = frozen,
            Err(error) => tracing::warn!(
                %error,
                "cannot read the frozen tenants; held events wait for the next read"
            ),
        }
    }

    /// Drains the hold files of tenants that are not frozen into their logs, oldest first,
    /// one chunk per transaction, for up to about half a second per call (so that requests
    /// keep being answered). Waits while the outage spool has events.
    pub(super) fn drain_holds(&mut self) {
        let Some(holds) = &self.holds else {
            return;
        };
        if holds.files.is_empty()
            || holds.retry_at.is_some_and(|at| Instant::now() < at)
            || self.spool_pending()
            || self.store_backing_off()
        {
            return;
        }
        self.refresh_frozen();
        let holds = self.holds.as_ref().expect("checked above");
        let drainable: Vec<String> = holds
            .files
            .keys()
            .filter(|tenant| !holds.is_frozen(tenant))
            .cloned()
            .collect();
        let started = Instant::now();
        for tenant in drainable {
            loop {
                match self.drain_hold_chunk(&tenant) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        self.forget_tails();
                        if error.is_store_unreachable() {
                            tracing::debug!(%tenant, %error, "the store is unreachable; held events wait");
                            if let Some(spool) = &mut self.spool {
                                spool.down_since = Some(Instant::now());
                            }
                        } else {
                            tracing::error!(%tenant, %error, "cannot drain held events; will try again");
                        }
                        if let Some(holds) = &mut self.holds {
                            holds.retry_at = Some(Instant::now() + RETRY_UNREACHABLE);
                        }
                        return;
                    }
                }
                if started.elapsed() > Duration::from_millis(500) {
                    return;
                }
            }
        }
        if let Some(holds) = &mut self.holds {
            holds.retry_at = None;
        }
    }

    /// Moves one chunk of `tenant`'s hold file into its log; whether events are left.
    fn drain_hold_chunk(&mut self, tenant: &str) -> Result<bool, LedgerError> {
        let holds = self.holds.as_ref().expect("hold files to drain");
        let Some(file) = holds.files.get(tenant) else {
            return Ok(false);
        };
        let chunk = file
            .peek(DRAIN_CHUNK, 8 * 1024 * 1024)
            .map_err(|error| LedgerError::Hold {
                tenant: tenant.to_string(),
                error,
            })?;
        let end = chunk.last().map(|p| p.end);
        let records: Vec<spool::Record> = chunk.into_iter().map(|p| p.record).collect();
        let closing = match end {
            Some(end) if file.drains_all(end) => {
                held_drained_record(tenant, file.period(), &crate::host::hostname())
            }
            _ => None,
        };
        let drained = if records.is_empty() {
            0
        } else {
            self.append_drained(&records, closing.as_ref())?
        };
        let holds = self.holds.as_mut().expect("hold files to drain");
        let file = holds.files.get_mut(tenant).expect("peeked above");
        // Nothing whole was left to read: the file is as good as empty.
        let end = end.unwrap_or(u64::MAX);
        file.drained_to(end, &records)
            .map_err(|error| LedgerError::Hold {
                tenant: tenant.to_string(),
                error,
            })?;
        let waiting = file.status().depth;
        if !file.is_pending() {
            let path = file.path().to_path_buf();
            holds.files.remove(tenant);
            remove_file(&path);
        }
        holds.publish(tenant);
        tracing::info!(
            %tenant,
            drained,
            waiting,
            "held events moved into the log of a tenant no longer frozen"
        );
        Ok(waiting > 0)
    }
}

/// A held event's entry: its id and acceptance time, with the placeholder seq and
/// `prev_hash` of a spooled record (which checks that it will fit whatever seq it gets).
fn held_entry(
    event: &Event,
    id: uuid::Uuid,
    received_at: Timestamp,
) -> Result<Vec<u8>, sealtrail_core::event::EventError> {
    let server = ServerFields {
        id,
        seq: sealtrail_core::event::MAX_SAFE_INTEGER,
        received_at,
        prev_hash: Hash::ZERO,
    };
    canonical_entry(event, &server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreFailurePolicy;
    use crate::ledger::{Ledger, LedgerConfig, SYSTEM_TENANT};
    use sealtrail_store::Location;

    fn config(dir: &Path) -> LedgerConfig {
        LedgerConfig {
            data_dir: dir.to_path_buf(),
            store: Location::new(dir, None),
            signing_key: None,
            checkpoint_interval: Duration::from_secs(60),
            origin_prefix: "test.example".into(),
            audit_stdout: false,
        }
    }

    /// Hold files on the embedded store, each bounded by `max_bytes`; the frozen tenants are
    /// read again whenever a hold file has events.
    fn spool_config(max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            max_bytes,
            default_policy: StoreFailurePolicy::Spool,
            tenant_policies: HashMap::new(),
            hold_recheck: Duration::ZERO,
        }
    }

    fn submissions(range: std::ops::Range<u64>) -> Vec<Submission> {
        range
            .map(|n| Submission {
                event: Event::parse(
                    format!(
                        r#"{{"action":"hold.test","actor":{{"id":"u-{n}"}},"outcome":"success"}}"#
                    )
                    .as_bytes(),
                )
                .unwrap(),
                idempotency_key: None,
            })
            .collect()
    }

    /// Waits until the writer has drained `tenant`'s hold file.
    async fn drained(ledger: &Ledger, tenant: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while ledger.held(tenant) > 0 {
            assert!(Instant::now() < deadline, "the hold file did not drain");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn drain_records(dir: &Path) -> usize {
        let reader = Location::new(dir, None).open_reader().unwrap();
        let mut count = 0;
        reader
            .for_each_entry(SYSTEM_TENANT, 0, u64::MAX, &mut |_, entry| {
                let entry: serde_json::Value = serde_json::from_slice(entry.unwrap()).unwrap();
                if entry["action"] == HELD_DRAINED {
                    count += 1;
                }
            })
            .unwrap();
        count
    }

    /// A record torn by a crash is discarded at the next start and the whole ones are held
    /// on; after the unfreeze they drain once. A drain whose file was not emptied (a crash
    /// between the commit and the truncation) is done again at the next start without
    /// appending or recording anything twice.
    #[tokio::test]
    async fn held_events_survive_a_crash_and_drain_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Ledger::start_with_spool(config(dir.path()), Some(spool_config(1 << 20))).unwrap();
        ledger
            .create_token("acme", vec!["events:write".into()], "test")
            .await
            .unwrap();
        assert!(ledger.freeze("acme", "held", "test").await.unwrap().changed);
        let outcomes = ledger.hold("acme", submissions(0..3)).await.unwrap();
        let ids: Vec<String> = outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Held(receipt) => receipt.id.clone(),
                other => panic!("not held: {other:?}"),
            })
            .collect();
        assert_eq!(ledger.held("acme"), 3);
        assert_eq!(ledger.head("acme").map_or(0, |h| h.size), 0);
        ledger.shutdown();

        let path = spool::hold_path(dir.path(), "acme");
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&[7, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&path, &torn).unwrap();
        let ledger =
            Ledger::start_with_spool(config(dir.path()), Some(spool_config(1 << 20))).unwrap();
        assert_eq!(ledger.held("acme"), 3, "the torn record is discarded");
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        assert_eq!(ledger.head("acme").map_or(0, |h| h.size), 0, "still frozen");

        ledger.unfreeze("acme", "lifted", "test").await.unwrap();
        drained(&ledger, "acme").await;
        assert_eq!(ledger.head("acme").unwrap().size, 3);
        assert!(!path.exists(), "an emptied hold file is removed");
        assert_eq!(drain_records(dir.path()), 1);
        ledger.shutdown();

        // As though the drain had committed and the file had not been emptied.
        std::fs::write(&path, &whole).unwrap();
        let ledger =
            Ledger::start_with_spool(config(dir.path()), Some(spool_config(1 << 20))).unwrap();
        drained(&ledger, "acme").await;
        assert_eq!(ledger.head("acme").unwrap().size, 3);
        assert_eq!(drain_records(dir.path()), 1);
        let reader = Location::new(dir.path(), None).open_reader().unwrap();
        let mut in_log = Vec::new();
        reader
            .for_each_entry("acme", 0, u64::MAX, &mut |_, entry| {
                let entry: serde_json::Value = serde_json::from_slice(entry.unwrap()).unwrap();
                in_log.push(entry["id"].as_str().unwrap().to_string());
            })
            .unwrap();
        assert_eq!(in_log, ids);
        ledger.shutdown();
    }

    /// Nothing is acknowledged without a durable copy within the bound: a hold file that
    /// cannot take the events refuses them all, and keeps nothing of them.
    #[tokio::test]
    async fn a_full_hold_file_refuses_the_events_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::start_with_spool(config(dir.path()), Some(spool_config(64))).unwrap();
        ledger
            .create_token("acme", vec!["events:write".into()], "test")
            .await
            .unwrap();
        ledger.freeze("acme", "held", "test").await.unwrap();
        match ledger.hold("acme", submissions(0..2)).await {
            Err(LedgerError::Hold {
                tenant,
                error: SpoolError::Full { .. },
            }) => assert_eq!(tenant, "acme"),
            other => panic!("not refused as full: {other:?}"),
        }
        assert_eq!(ledger.held("acme"), 0);
        assert!(!spool::hold_path(dir.path(), "acme").exists());
        ledger.shutdown();
    }

    #[test]
    fn the_record_of_a_drain_names_the_tenant_the_count_and_the_first_event() {
        let mut period = SpoolPeriod::default();
        assert!(held_drained_record("acme", &period, "host-1").is_none());
        period.events = 3;
        period.first_id = Some("0190a0b0-0000-7000-8000-000000000001".into());
        period.first_received = Some(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
        period.last_received = Some(Timestamp::parse("2026-11-23T10:05:00Z").unwrap());
        let record = held_drained_record("acme", &period, "host-1").unwrap();
        assert_eq!(
            record.idempotency_key.as_deref(),
            Some("sealtrail.tenant.held_drained:0190a0b0-0000-7000-8000-000000000001")
        );
        let event = record.event;
        assert_eq!(event.action, HELD_DRAINED);
        assert_eq!(event.details["tenant"], "acme");
        assert_eq!(event.details["events"], 3);
        assert_eq!(
            event.details["first_held_at"],
            "2026-11-23T10:00:00.000000Z"
        );
        assert_eq!(event.details["last_held_at"], "2026-11-23T10:05:00.000000Z");
        assert_eq!(event.details["hostname"], "host-1");
        assert_eq!(event.targets.len(), 1);
    }
}
