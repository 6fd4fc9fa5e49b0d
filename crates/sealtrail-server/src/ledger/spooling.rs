//! With PostgreSQL: keeping events in the local spool while the database is unreachable, and
//! draining them back into the log.
//!
//! A group that fails because the store cannot be reached has its appends written to the spool
//! (fsync'd) and answered `Spooled`, keeping the ids the group already gave them: if that
//! commit reached the database after all, draining finds the id in the log and skips the copy.
//! While anything waits in the spool, new events of spooling tenants go behind it, so each log
//! keeps the order in which events were accepted. Draining moves the spool into the log oldest
//! first, one chunk per transaction, between requests.
//!
//! The transaction of the chunk that empties the spool also appends
//! `sealtrail.spool.drained` to the `_system` log ([`drained_record`]): how many events the
//! spool period held, when the first and the last were accepted, of which tenants, and this
//! host's name — the record the gap report puts a gap down to a store outage with. Its
//! idempotency key names the period's first event, so a drain done again after a crash
//! between that commit and the emptying of the file records nothing twice.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealtrail_core::canonical::{ServerFields, canonical_entry, event_digest};
use sealtrail_core::event::Event;
use sealtrail_core::{Hash, Timestamp};
use sealtrail_store::gaps::SPOOL_DRAINED;

use super::group::Assigned;
use super::writer::{PendingAppend, Writer};
use super::{LedgerError, Original, Outcome, SYSTEM_TENANT, SpoolConfig, SpoolReceipt, Submission};
use crate::config::StoreFailurePolicy;
use crate::spool::{self, Spool, SpoolError, SpoolPeriod, SpoolStatus, SpooledKey};

/// How long after the store was found unreachable the writer tries it again (meanwhile
/// spoolable events go straight to the spool and other writes fail at once).
pub(super) const RETRY_UNREACHABLE: Duration = Duration::from_secs(1);

/// How often the writer wakes to drain the spool when no request comes.
pub(super) const DRAIN_TICK: Duration = Duration::from_millis(200);

/// Spooled events drained per transaction, at most.
pub(super) const DRAIN_CHUNK: usize = 5_000;

/// Tenants a `sealtrail.spool.drained` record names with their counts, the busiest first (the
/// record must stay within an entry's size); `tenant_count` says how many there were.
const DRAINED_TENANTS_LISTED: usize = 200;

/// The `sealtrail.spool.drained` record of a spool period, with its idempotency key
/// (`sealtrail.spool.drained:<id of the period's first event>`); `None` for a period without a
/// readable event.
pub(super) fn drained_record(period: &SpoolPeriod, hostname: &str) -> Option<Submission> {
    let (Some(first_id), Some(first), Some(last)) = (
        &period.first_id,
        period.first_received,
        period.last_received,
    ) else {
        return None;
    };
    let mut tenants: Vec<(&String, &u64)> = period.tenants.iter().collect();
    tenants.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let listed: serde_json::Map<String, serde_json::Value> = tenants
        .into_iter()
        .take(DRAINED_TENANTS_LISTED)
        .map(|(tenant, events)| (tenant.clone(), serde_json::json!(events)))
        .collect();
    let document = serde_json::json!({
        "action": SPOOL_DRAINED,
        "activity": "admin",
        "outcome": "success",
        "actor": {"id": "sealtrail", "type": "system"},
        "details": {
            "events": period.events,
            "first_spooled_at": first.to_rfc3339(),
            "last_spooled_at": last.to_rfc3339(),
            "tenants": listed,
            "tenant_count": period.tenants.len(),
            "hostname": hostname,
        },
    });
    match Event::from_value(&document) {
        Ok(event) => Some(Submission {
            event,
            idempotency_key: Some(format!("{SPOOL_DRAINED}:{first_id}")),
        }),
        Err(error) => {
            tracing::error!(%error, "cannot build the record of the drained spool");
            None
        }
    }
}

pub(super) struct SpoolState {
    pub(super) spool: Spool,
    pub(super) config: SpoolConfig,
    /// When the store was last found unreachable; cleared by the next success.
    pub(super) down_since: Option<Instant>,
    /// Where the spool's state is published for this application's `/health`.
    watch: SpoolWatch,
}

/// The spool's latest state, shared between the writer and its [`super::Ledger`] handles.
/// It belongs to the application (not to the process-wide metrics) because it decides what
/// `/health` answers, and two applications in one process each have their own spool.
pub(super) type SpoolWatch = Arc<Mutex<Option<SpoolStatus>>>;

impl SpoolState {
    /// Opens the spool in the data directory, reporting what a crash left in it: a cut-off
    /// record is discarded (it was never acknowledged), complete ones wait to be drained.
    pub(super) fn open(
        data_dir: &Path,
        config: SpoolConfig,
        watch: SpoolWatch,
    ) -> Result<SpoolState, LedgerError> {
        let (spool, recovery) = Spool::open(&spool::spool_path(data_dir), config.max_bytes)?;
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
        let state = SpoolState {
            spool,
            config,
            down_since: None,
            watch,
        };
        state.publish();
        Ok(state)
    }

    /// Publishes the spool's state after a change: to this application's `/health` and to
    /// the metrics.
    pub(super) fn publish(&self) {
        let status = self.spool.status();
        crate::metrics::set_spool(status);
        *self.watch.lock().expect("spool watch lock") = Some(status);
    }

    /// Whether the store should be left alone for now.
    pub(super) fn backing_off(&self) -> bool {
        self.down_since
            .is_some_and(|at| at.elapsed() < RETRY_UNREACHABLE)
    }
}

impl Writer {
    pub(super) fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.spool.is_pending())
    }

    pub(super) fn store_backing_off(&self) -> bool {
        self.spool.as_ref().is_some_and(SpoolState::backing_off)
    }

    /// Whether this append can go to the spool: a spool is configured, the tenant's policy is
    /// `spool`, and the tenant is one this writer knows to exist (a drain must not fail).
    pub(super) fn spoolable(&self, tenant: &str) -> bool {
        self.spool.as_ref().is_some_and(|s| {
            s.config.policy(tenant) == StoreFailurePolicy::Spool
                && self.heads.lock().expect("heads lock").contains_key(tenant)
        })
    }

    /// Keeps appends in the spool, fsync'd, and answers them `Spooled` (or, if the spool
    /// cannot take them, with its error). An event the failed group had already given an id
    /// keeps it, so that if that commit did reach the database after all, draining finds the
    /// id in the log and skips the copy.
    pub(super) fn spool_appends(&mut self, pending: Vec<PendingAppend>) {
        let Some(state) = &mut self.spool else {
            for p in pending {
                let _ = p.reply.send(Err(LedgerError::Closed));
            }
            return;
        };
        let mut records = Vec::new();
        let mut answers = Vec::with_capacity(pending.len());
        let mut keys_here: HashMap<(String, String), SpooledKey> = HashMap::new();
        // Ids the failed group gave its events: a duplicate or conflict it found with one of
        // them named an entry that was never committed, and is decided again here.
        let uncommitted: HashSet<String> = pending
            .iter()
            .filter_map(|p| p.tried.as_ref()?.as_ref().ok())
            .flatten()
            .filter_map(|outcome| match outcome {
                Outcome::Created(receipt) => Some(receipt.id.clone()),
                _ => None,
            })
            .collect();
        for p in pending {
            let tried = match p.tried {
                Some(Ok(outcomes)) => Some(outcomes),
                _ => None,
            };
            let mut outcomes = Vec::with_capacity(p.submissions.len());
            for (i, submission) in p.submissions.iter().enumerate() {
                let earlier = tried.as_ref().and_then(|t| t.get(i));
                let (id, received_at) = match earlier {
                    // Answered from the log, or refused on its own: unchanged.
                    Some(
                        outcome @ (Outcome::Duplicate(original)
                        | Outcome::Conflict(Original::Committed(original))),
                    ) if !uncommitted.contains(&original.id) => {
                        outcomes.push(outcome.clone());
                        continue;
                    }
                    Some(outcome @ Outcome::Rejected(_)) => {
                        outcomes.push(outcome.clone());
                        continue;
                    }
                    Some(Outcome::Created(receipt)) => (
                        uuid::Uuid::parse_str(&receipt.id).expect("an id this writer made"),
                        Timestamp::parse(&receipt.received_at).expect("a time this writer made"),
                    ),
                    _ => (uuid::Uuid::now_v7(), self.clock.now()),
                };
                if let Some(key) = &submission.idempotency_key {
                    let pair = (p.tenant.clone(), key.clone());
                    let waiting = keys_here
                        .get(&pair)
                        .cloned()
                        .or_else(|| state.spool.spooled_key(&p.tenant, key));
                    if let Some(waiting) = waiting {
                        let same = event_digest(&submission.event)
                            .is_ok_and(|digest| digest == waiting.digest);
                        let receipt = SpoolReceipt {
                            id: waiting.id,
                            received_at: waiting.received_at,
                        };
                        outcomes.push(if same {
                            Outcome::Spooled(receipt)
                        } else {
                            Outcome::Conflict(Original::Spooled(receipt))
                        });
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
                        if let Some(key) = &submission.idempotency_key
                            && let Ok(digest) = event_digest(&submission.event)
                        {
                            let waiting = SpooledKey {
                                id: receipt.id.clone(),
                                received_at: receipt.received_at.clone(),
                                digest,
                            };
                            keys_here.insert((p.tenant.clone(), key.clone()), waiting);
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
        state.publish();
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
    pub(super) fn drain_spool(&mut self) {
        let started = Instant::now();
        while self.spool_pending() && !self.store_backing_off() {
            match self.drain_chunk() {
                Ok(()) => {
                    if let Some(state) = &mut self.spool {
                        state.down_since = None;
                    }
                }
                Err(error) => {
                    self.forget_tails();
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

    pub(super) fn drain_chunk(&mut self) -> Result<(), LedgerError> {
        let state = self.spool.as_mut().expect("a spool to drain");
        let chunk = state.spool.peek(DRAIN_CHUNK, 8 * 1024 * 1024)?;
        let Some(end) = chunk.last().map(|p| p.end) else {
            return Ok(());
        };
        let records: Vec<spool::Record> = chunk.into_iter().map(|p| p.record).collect();
        // The chunk that empties the spool records the period it ends.
        let drained_record = if state.spool.drains_all(end) {
            drained_record(state.spool.period(), &crate::host::hostname())
        } else {
            None
        };
        let drained = self.append_drained(&records, drained_record.as_ref())?;
        let state = self.spool.as_mut().expect("a spool to drain");
        state.spool.drained_to(end, &records)?;
        state.publish();
        tracing::info!(
            drained,
            waiting = state.spool.status().depth,
            "spooled events moved into the log"
        );
        Ok(())
    }

    /// Appends records read back from a spool file (the outage spool's, or a hold file's) to
    /// their tenants' logs under the ids and acceptance times they were acknowledged with, and
    /// `closing` (the record of the drain, if this chunk ends one) to the `_system` log, in one
    /// transaction. A record whose id is already in its log is skipped. Returns how many were
    /// appended; on an error nothing was, and the caller decides when to try again.
    pub(super) fn append_drained(
        &mut self,
        records: &[spool::Record],
        closing: Option<&Submission>,
    ) -> Result<usize, LedgerError> {
        // Per tenant, in file order; tenants are separate logs, so only that order matters.
        let mut order: Vec<String> = Vec::new();
        let mut by_tenant: HashMap<String, Vec<(Submission, Assigned)>> = HashMap::new();
        for record in records {
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
        if closing.is_some() {
            locks.push(SYSTEM_TENANT);
        }
        locks.sort_unstable();
        locks.dedup();
        self.written.clear();
        self.store.begin_write(&locks)?;
        let result = (|| {
            let mut work = self.group_work();
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
                            "a spooled event's idempotency key already names the same event in the log; the copy was not appended"
                        ),
                        other => tracing::error!(
                            tenant = %tenant, outcome = ?other,
                            "a spooled event could not be appended; skipped"
                        ),
                    }
                }
            }
            if let Some(record) = closing {
                match work
                    .append_assigned(SYSTEM_TENANT, std::slice::from_ref(record), None)?
                    .first()
                {
                    // Duplicate: recorded by the drain that committed before a crash.
                    Some(Outcome::Created(_) | Outcome::Duplicate(_)) => {}
                    other => tracing::error!(
                        outcome = ?other,
                        "the record of the drain could not be appended; the file drains all the same"
                    ),
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
        self.after_commit();
        self.publish_heads();
        Ok(drained)
    }
}

/// The same error again, for each request of a group the spool refused.
pub(super) fn clone_spool_error(error: &SpoolError) -> SpoolError {
    let copy = |source: &std::io::Error| std::io::Error::new(source.kind(), source.to_string());
    match error {
        SpoolError::Full {
            path,
            bytes,
            max_bytes,
        } => SpoolError::Full {
            path: path.clone(),
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
