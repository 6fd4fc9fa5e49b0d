//! One group's work inside its transaction: applying each tenant's appends and the admin jobs.
//!
//! Consecutive appends of a group are applied together per tenant, so that a tenant costs one
//! tail read, one idempotency lookup and one insert per table however many requests it has in
//! the group. Each event gets its seq, id, `received_at` and `prev_hash` from the tail read
//! under the tenant's lock, becomes bytes only through `canonical_entry`, and adds its stored
//! hashes to the tree.
//!
//! `received_at` is monotonic per log: an entry's is the later of the clock's reading and
//! the previous entry's `received_at` (read from the store when the tail is loaded, so this
//! holds across restarts and instances). When the system clock is set back, entries keep
//! the previous entry's time until the clock catches up, and the writer logs one warning
//! when that starts. An event drained from the spool keeps the time it was accepted with
//! unless the log already holds a later one, in which case it gets that.
//!
//! An idempotency key seen before (in the log or earlier in the group) gives back the original
//! receipt instead of a second entry — when the event is the one the key first named. Under a
//! key that names a different event ([`event_digest`] differs) the event is refused
//! ([`Outcome::Conflict`], naming the original): answering it with the original's receipt would
//! tell the producer an event was recorded that never was. The event the key names is read
//! from the log itself, at the seq the `idempotency` row gives, inside the transaction that
//! holds the tenant's lock, so every instance on one database decides alike. An event drained
//! from the spool was acknowledged before its key could be checked: it is never refused, but
//! appended without claiming the key (see [`GroupWork::append_assigned`]).

use std::collections::HashMap;

use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry, event_digest};
use sealtrail_core::event::Event;
use sealtrail_core::merkle;
use sealtrail_core::{Timestamp, leaf_hash};
use sealtrail_store::{NewEntry, Store, StoreError};

use super::writer::{
    PendingAppend, Settled, TenantState, answer_after_commit, settle, tenant_state,
};
use super::{
    Answer, AppendRequest, Job, LedgerConfig, LedgerError, Original, Outcome, Receipt,
    SYSTEM_TENANT, Submission,
};
use crate::clock::Clock;
use crate::keys::KeyResolver;

/// The id and acceptance time a spooled event was given when it was accepted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Assigned {
    pub(super) id: uuid::Uuid,
    pub(super) received_at: Timestamp,
}

/// A tenant's entries one append wrote, seqs `first, first + 1, …`, exactly as stored.
pub(super) struct Written {
    pub(super) tenant: String,
    pub(super) first: u64,
    pub(super) entries: Vec<Vec<u8>>,
}

pub(super) struct GroupWork<'w> {
    pub(super) store: &'w dyn Store,
    pub(super) tenants: &'w mut HashMap<String, TenantState>,
    /// Where a new tenant's signing key comes from.
    pub(super) keys: &'w KeyResolver,
    pub(super) config: &'w LedgerConfig,
    /// Each append's entries, for the writer to hand on once the transaction commits.
    pub(super) written: &'w mut Vec<Written>,
    /// Where `received_at` comes from.
    pub(super) clock: &'w Clock,
}

impl GroupWork<'_> {
    /// Applies a run of append jobs: per tenant (in order of first appearance), all of its
    /// jobs' events in one [`GroupWork::append_assigned`], in job order; each job then gets
    /// its own part of the outcomes. Returns the error that aborts the group, if any; the
    /// jobs not applied by then are settled as unapplied.
    pub(super) fn apply_appends(
        &mut self,
        run: Vec<Job>,
        settled: &mut Vec<Settled>,
    ) -> Option<LedgerError> {
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
                    (Some(LedgerError::Invalid(refusal)), _) => {
                        Some(Err(LedgerError::Invalid(refusal.clone())))
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

    pub(super) fn apply(&mut self, job: Job) -> (Settled, Option<LedgerError>) {
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
            Job::SetFrozen {
                tenant,
                frozen,
                reason,
                actor,
                reply,
            } => {
                let result = self.set_frozen(&tenant, frozen, &reason, &actor);
                settle(reply, result)
            }
            Job::SetRetention {
                tenant,
                days,
                actor,
                reply,
            } => {
                let result = self.set_retention(&tenant, days, &actor);
                settle(reply, result)
            }
            Job::Prune { request, reply } => {
                let result = self.prune(&request);
                settle(reply, result)
            }
            Job::Restore {
                entries,
                run,
                action,
                actor,
                reply,
            } => {
                let result = self.restore(&entries, run, action, &actor);
                settle(reply, result)
            }
            // Taken out of every group for the hold files before it runs (`holding`); one that
            // got here anyway is refused rather than appended to a frozen tenant's log.
            Job::Hold { reply, .. } => (
                answer_after_commit(
                    reply,
                    Err(LedgerError::NotCommitted(
                        "held events are kept beside the log, never in a group".into(),
                    )),
                ),
                None,
            ),
            Job::Shutdown => (Box::new(|_: Result<(), &LedgerError>| {}) as Answer, None),
        };
        (Settled::Answer(answer), error)
    }

    /// The tenant's in-memory state, loaded or refreshed under the tenant's lock.
    pub(super) fn state(&mut self, tenant: &str) -> Result<&mut TenantState, LedgerError> {
        tenant_state(self.store, self.tenants, tenant)
    }

    /// Appends events to a tenant's log in the open transaction. `assigned` gives each
    /// event the id and acceptance time it already has (events drained from the spool);
    /// otherwise they get new ones.
    ///
    /// An event whose idempotency key already names a different event is refused
    /// ([`Outcome::Conflict`]) — unless it was drained from the spool: that event was
    /// acknowledged (`202`) while the log could not be asked, so it is appended all the same,
    /// under the id it was acknowledged with, and the key keeps naming the event it named
    /// first. Dropping it would lose an acknowledged event.
    pub(super) fn append_assigned(
        &mut self,
        tenant: &str,
        submissions: &[Submission],
        assigned: Option<&[Assigned]>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let store = self.store;
        let clock = self.clock;
        let state = self.state(tenant)?;
        let received_now = clock.now();
        let first_seq = state.size;
        let first_hash_index = merkle::stored_hash_count(first_seq);
        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut entries: Vec<(u64, String, Vec<u8>)> = Vec::with_capacity(submissions.len());
        let mut hashes = Vec::with_capacity(submissions.len() * 2);
        // A key claimed earlier in this group: its receipt, and which submission claimed it.
        let mut keys_in_group: HashMap<String, (Receipt, usize)> = HashMap::new();
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
            let mut claims_key = submission.idempotency_key.is_some();
            if let Some(key) = &submission.idempotency_key {
                let named = if let Some((receipt, at)) = keys_in_group.get(key) {
                    let same = same_event(&submissions[*at].event, &submission.event);
                    Some((receipt.clone(), same))
                } else if let Some(&seq) = recorded.get(key) {
                    let (receipt, original) = original_at_seq(store, tenant, seq)?;
                    Some((receipt, same_event(&original, &submission.event)))
                } else {
                    None
                };
                match named {
                    None => {}
                    Some((receipt, true)) => {
                        outcomes.push(Outcome::Duplicate(receipt));
                        continue;
                    }
                    Some((receipt, false)) => match given {
                        None => {
                            outcomes.push(Outcome::Conflict(Original::Committed(receipt)));
                            continue;
                        }
                        Some(spooled) => {
                            tracing::warn!(
                                tenant, key = %key, original_seq = receipt.seq, id = %spooled.id,
                                "a spooled event's idempotency key already names a different event in the log; the spooled event was acknowledged, so it is appended under its own id and the key keeps naming the original"
                            );
                            claims_key = false;
                        }
                    },
                }
            }
            let id = given.map_or_else(uuid::Uuid::now_v7, |a| a.id);
            // Never earlier than the entry before it, also for an event accepted into the
            // spool earlier (another instance may have appended since).
            let received_at =
                state.next_received_at(tenant, given.map_or(received_now, |a| a.received_at));
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
            if let Some(key) = submission.idempotency_key.as_ref().filter(|_| claims_key) {
                keys_in_group.insert(key.clone(), (receipt.clone(), i));
                new_keys.push((key.clone(), state.size));
            }
            entries.push((state.size, receipt.id.clone(), entry));
            state.last_hash = hash;
            state.last_received_at = Some(received_at);
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
        if !new_keys.is_empty() {
            store.insert_idempotency(tenant, &new_keys)?;
        }
        self.written.push(Written {
            tenant: tenant.to_string(),
            first: first_seq,
            entries: entries.into_iter().map(|(_, _, entry)| entry).collect(),
        });
        Ok(outcomes)
    }
}

/// The entry an idempotency key points at: its receipt, rebuilt from its stored bytes, and
/// its event, which a retry under the key must match.
pub(super) fn original_at_seq(
    store: &dyn Store,
    tenant: &str,
    seq: u64,
) -> Result<(Receipt, Event), LedgerError> {
    let entry = store.entry(tenant, seq)?.ok_or_else(|| {
        StoreError::Corrupt(format!("idempotency key points at missing seq {seq}"))
    })?;
    let parsed = Entry::parse(&entry)
        .map_err(|e| StoreError::Corrupt(format!("entry {seq} of {tenant}: {e}")))?;
    let receipt = Receipt {
        id: parsed.server.id.to_string(),
        seq,
        event_hash: leaf_hash(&entry).to_hex(),
        received_at: parsed.server.received_at.to_rfc3339(),
    };
    Ok((receipt, parsed.event))
}

/// Whether `retry` is the event `original` is (their [`event_digest`]s are equal). An event
/// with no digest has no canonical form and can be no retry of anything.
pub(super) fn same_event(original: &Event, retry: &Event) -> bool {
    match (event_digest(original), event_digest(retry)) {
        (Ok(original), Ok(retry)) => original == retry,
        _ => false,
    }
}
