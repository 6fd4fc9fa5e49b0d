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
//! unless the log already holds a later one, in which case it gets that. An idempotency key seen before (in the log or earlier in the group)
//! gives back the original receipt instead of a second entry.

use std::collections::HashMap;

use sealtrail_core::canonical::{ServerFields, canonical_entry};
use sealtrail_core::merkle;
use sealtrail_core::{Timestamp, leaf_hash};
use sealtrail_store::{NewEntry, Store, StoreError};

use super::writer::{PendingAppend, Settled, TenantState, settle, tenant_state};
use super::{
    Answer, AppendRequest, Job, LedgerConfig, LedgerError, Outcome, Receipt, SYSTEM_TENANT,
    Submission,
};
use crate::clock::Clock;
use crate::keys::KeyResolver;

/// The id and acceptance time a spooled event was given when it was accepted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Assigned {
    pub(super) id: uuid::Uuid,
    pub(super) received_at: Timestamp,
}

pub(super) struct GroupWork<'w> {
    pub(super) store: &'w dyn Store,
    pub(super) tenants: &'w mut HashMap<String, TenantState>,
    /// Where a new tenant's signing key comes from.
    pub(super) keys: &'w KeyResolver,
    pub(super) config: &'w LedgerConfig,
    pub(super) audit: &'w mut Vec<(String, Vec<u8>)>,
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
            if let Some(key) = &submission.idempotency_key {
                keys_in_group.insert(key.clone(), receipt.clone());
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
}

/// The receipt of an entry already in the log, rebuilt from its stored bytes.
pub(super) fn receipt_for_seq(
    store: &dyn Store,
    tenant: &str,
    seq: u64,
) -> Result<Receipt, LedgerError> {
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
