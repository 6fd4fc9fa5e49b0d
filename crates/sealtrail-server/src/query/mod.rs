//! The query service: pages of a tenant's events found through the index, one event with its
//! inclusion proof, and inclusion and consistency proofs of the committed tree.
//!
//! It sits between the HTTP handlers (which parse parameters and shape responses) and the
//! store and index (which hold the bytes), so that every reader of the log — the API today,
//! the console and exports later — pages, waits and proves the same way. It returns typed
//! values and [`QueryError`], never an HTTP type, and never hands a database connection out:
//! every read happens inside it, on the pool of [`Readers`].
//!
//! ## Decisions
//!
//! - **Content comes from the log.** The index only says which seqs match; a page's entries
//!   are then read from the store in one call ([`Store::entries_at`]), whatever the page size.
//! - **Read your writes across instances.** `wait_for_seq` is checked against the committed
//!   size the store reports, not this instance's writer: a seq committed through another
//!   `sealtrail serve` on the same PostgreSQL database is as much in the log as one committed
//!   here. A seq beyond the log is refused at once (waiting for it could only time out); one
//!   inside it is waited for on the index, at most [`MAX_WAIT`].
//! - **Cursors** are opaque to clients; inside they hold the order and the last seq returned.
//!   Pages are keyset pages (`seq > cursor`), so a listing never repeats or skips an event
//!   while the log grows, and a cursor stays valid forever.
//! - **One snapshot per proof.** The committed size, the checkpoint and the hashes a proof is
//!   built from are read in one read snapshot, so they describe one moment of the log.
//! - **Searches share the service** ([`admission`]): a tenant runs at most its share of
//!   searches at once and the instance at most its cap; beyond either a search waits a
//!   second, then gets 429 or 503 with `Retry-After`. A running search is stopped at the time
//!   limit (`query_timeout_ms`) inside SQLite and answered 503 `query_timeout`. The index is
//!   searched without holding a store connection, and the checkpoint and key are read on
//!   the control path's own connections ([`Readers::control`]), so searches never delay
//!   ingest, `/health` or checkpoints. Searches run on the local SQLite index whichever store
//!   holds the log; on PostgreSQL they read only the page's entries, by primary key, so no
//!   statement timeout is needed there.
//! - **Proofs without a checkpoint.** An event newer than the latest signed checkpoint is
//!   proven against the current committed tree, with no checkpoint, rather than holding the
//!   request until the next checkpoint is signed.

pub mod admission;
#[cfg(feature = "test-hooks")]
pub mod hold;
pub mod tiles;
pub mod tree_cache;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sealtrail_core::Hash;
use sealtrail_core::canonical::event_hash;
use sealtrail_core::merkle::{self, HashReader, MerkleError};
use serde::Serialize;
use serde_json::Value;

use self::admission::Admission;
use self::tree_cache::TreeCache;
use crate::config::QuerySettings;
use crate::index::{Index, IndexError, Order, Search};
use crate::keys::KeyResolver;
use crate::readers::{ReadFailure, Readers};
use sealtrail_store::{self as store, Store, StoreError, StoreHashes};

/// How long `wait_for_seq` waits for the index at most.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    /// `wait_for_seq` names a seq the log does not hold yet.
    #[error("this log holds {}, so seq {seq} does not exist yet", sealtrail_core::text::entries(*.size))]
    NotYetInLog { seq: u64, size: u64 },
    /// The index did not reach `wait_for_seq` within [`MAX_WAIT`].
    #[error(
        "the index covers this log up to {} after {} s, not yet seq {seq}; retry shortly",
        sealtrail_core::text::entries(*.reached),
        MAX_WAIT.as_secs()
    )]
    IndexLagging { seq: u64, reached: u64 },
    /// No tree size was given and no checkpoint is signed yet to take one from.
    #[error(
        "this log has no signed checkpoint yet to prove against; pass {param}= or retry within a second"
    )]
    NoCheckpoint { param: &'static str },
    /// A proof's sizes do not fit the committed tree; `field` names the parameter at fault.
    #[error("{message}")]
    OutOfRange {
        field: &'static str,
        message: String,
    },
    /// The stored hashes could not give a proof for sizes already checked against the
    /// committed tree: the store failed or is damaged.
    #[error("cannot build the proof from the stored hashes: {0}")]
    Proof(MerkleError),
    /// The stored hashes could not prove an event found in the log.
    #[error("cannot build the inclusion proof of seq {seq} in tree size {tree_size}: {source}")]
    EventProof {
        seq: u64,
        tree_size: u64,
        source: MerkleError,
    },
    /// A stored entry is not the JSON object sealtrail wrote.
    #[error("{0}")]
    CorruptEntry(String),
    /// The tile API names a log that does not exist.
    #[error("no log named {0:?}")]
    NoSuchLog(String),
    /// The tile API serves signed trees only, and none is signed yet.
    #[error(
        "this log has no signed checkpoint yet; one is signed within a second of the first event"
    )]
    NoSignedCheckpoint,
    /// A tile or bundle beyond the tree of the latest checkpoint.
    #[error("{path} is not part of the log at its latest checkpoint (size {size})")]
    NotAtCheckpoint { path: String, size: u64 },
    /// The stored hashes behind a tile could not be read.
    #[error("cannot read {path}: {message}")]
    TileRead { path: String, message: String },
    /// Entries of a checkpointed tile are missing from the store.
    #[error(
        "entries {first} to {last} are not all in the store; run `sealtrail verify --tenant {tenant}`"
    )]
    MissingEntries {
        tenant: String,
        first: u64,
        last: u64,
    },
    #[error("cannot encode the entry bundle: {0}")]
    BundleEncode(String),
    /// Entries retention pruned after archiving them (their hashes, and proofs, remain).
    #[error(
        "entries below {below} were pruned after they were archived in {archive}; fetch them from there"
    )]
    Pruned { below: u64, archive: String },
    /// The log's verifier key file exists but cannot be read.
    #[error("cannot read the log key: {0}")]
    Key(#[from] crate::keys::KeyFileError),
    /// The reader pool failed.
    #[error("{0}")]
    Pool(String),
    /// The search ran past the time limit (`query_timeout_ms`) and was stopped.
    #[error(
        "the search ran longer than {} ms (query_timeout_ms) and was stopped; narrow it with from/to or a more selective filter",
        limit.as_millis()
    )]
    TimedOut { limit: Duration },
    /// The tenant already runs as many searches as its share allows, and none ended within
    /// the queue's wait.
    #[error(
        "this tenant already runs {limit} searches at once (max_searches_per_tenant); wait for one to finish, then retry"
    )]
    TenantShareFull { limit: usize },
    /// The process already runs as many searches as it allows, and none ended within the
    /// queue's wait.
    #[error(
        "this instance already runs {limit} searches at once (max_searches); retry in a moment"
    )]
    SearchCapacityFull { limit: usize },
}

impl ReadFailure for QueryError {
    fn pool_failure(message: String) -> Self {
        QueryError::Pool(message)
    }

    /// Refusals of the request say nothing about the connection; failures of the store or of
    /// the reads behind a proof may.
    fn may_break_connection(&self) -> bool {
        matches!(
            self,
            QueryError::Store(_)
                | QueryError::Proof(_)
                | QueryError::EventProof { .. }
                | QueryError::CorruptEntry(_)
                | QueryError::Key(_)
                | QueryError::TileRead { .. }
                | QueryError::MissingEntries { .. }
                | QueryError::BundleEncode(_)
                | QueryError::Pool(_)
        )
    }
}

/// One page of a search. Fields are declared in the order the API has always written them.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Each event is its stored entry as a JSON object plus `event_hash`.
    pub events: Vec<Value>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// An event with the proof of its inclusion in the log.
#[derive(Debug, Clone, Serialize)]
pub struct EventWithProof {
    pub event: Value,
    pub proof: EventInclusion,
}

/// The inclusion proof of one event: in the latest signed checkpoint when that covers it,
/// else in the committed tree (`checkpoint` is then `None`). Fields are in the API's order.
#[derive(Debug, Clone, Serialize)]
pub struct EventInclusion {
    /// The signed checkpoint the proof leads to.
    pub checkpoint: Option<String>,
    pub hashes: Vec<String>,
    pub leaf_index: u64,
    pub tree_size: u64,
}

/// `{"leaf_index", "tree_size", "proof"}`: the RFC 9162 audit path of one entry.
#[derive(Debug, Clone, Serialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub proof: Vec<String>,
}

/// `{"from", "to", "proof"}`: the RFC 9162 proof that one tree is a prefix of another.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// The query service. Cloning is cheap: it holds handles only.
#[derive(Clone)]
pub struct Queries {
    readers: Readers,
    /// Which verifier key a log publishes (its key file under `DIR/keys/`, or the key the
    /// store recorded), by the one rule the ledger and verification follow too.
    keys: KeyResolver,
    /// The upper levels of every log's stored-hash array, shared by all proofs.
    tree_cache: TreeCache,
    /// Which searches run now, and for how long at most.
    admission: Admission,
    /// Stops searches on request (tests only).
    #[cfg(feature = "test-hooks")]
    hold: hold::SearchHold,
}

impl Queries {
    pub fn new(readers: Readers, data_dir: &Path, settings: QuerySettings) -> Queries {
        Queries {
            readers,
            keys: KeyResolver::new(data_dir),
            tree_cache: TreeCache::default(),
            admission: Admission::new(settings),
            #[cfg(feature = "test-hooks")]
            hold: hold::SearchHold::default(),
        }
    }

    /// The hold that stops this service's searches on request (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn search_hold(&self) -> hold::SearchHold {
        self.hold.clone()
    }

    /// The cache of upper tree levels the proofs read through.
    pub fn tree_cache(&self) -> &TreeCache {
        &self.tree_cache
    }

    /// The latest signed checkpoint of `tenant`'s log, the note itself.
    pub async fn latest_checkpoint(&self, tenant: &str) -> Result<Option<String>, QueryError> {
        let tenant = tenant.to_string();
        // One row, on the control path: auditors and monitors poll it.
        self.readers
            .control(move |log| Ok(log.latest_checkpoint(&tenant)?.map(|c| c.note)))
            .await
    }

    /// The seals of `tenant`'s days from `from` to `to` (`YYYY-MM-DD`, inclusive), every
    /// issue, by day.
    pub async fn seals(
        &self,
        tenant: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<sealtrail_store::StoredSeal>, QueryError> {
        let (tenant, from, to) = (tenant.to_string(), from.to_string(), to.to_string());
        self.readers
            .control(move |log| Ok(log.seals(&tenant, &from, &to)?))
            .await
    }

    /// The verifier key of `tenant`'s log; `None` when there is no such tenant. Which key that
    /// is, and what happens when the key file and the store's record disagree, is decided by
    /// [`KeyResolver::published`].
    pub async fn log_key(&self, tenant: &str) -> Result<Option<String>, QueryError> {
        let (tenant, keys) = (tenant.to_string(), self.keys.clone());
        self.readers
            .control(move |log| {
                let Some(record) = log.tenant(&tenant)? else {
                    return Ok(None);
                };
                Ok(Some(keys.published(&record)?.to_string()))
            })
            .await
    }

    /// Waits until the index covers `seq` of `tenant`'s log (`wait_for_seq`), at most
    /// [`MAX_WAIT`]; at once when it does already. A seq the log does not hold yet is refused
    /// without waiting. The index is an argument rather than part of the service because the
    /// application starts the indexer on its own and hands its read side to the routes.
    pub async fn wait_for_seq(
        &self,
        index: &Index,
        tenant: &str,
        seq: u64,
    ) -> Result<(), QueryError> {
        let owned = tenant.to_string();
        // The store's committed size, not this instance's writer head: another instance
        // may have committed the seq (see the module docs).
        let size = self
            .readers
            .read(move |log| Ok::<_, QueryError>(log.size(&owned)?))
            .await?;
        if seq >= size {
            return Err(QueryError::NotYetInLog { seq, size });
        }
        index
            .wait_for(tenant, seq, MAX_WAIT)
            .await
            .map_err(|reached| QueryError::IndexLagging { seq, reached })
    }

    /// One page of `tenant`'s events matching `search`, as the index has them now.
    ///
    /// The search runs once [`Admission`] lets it (its tenant's share and the process's cap),
    /// and is stopped at the time limit; see [`admission`]. The index is read on the
    /// blocking pool without a store connection, and the page's entries are then read in
    /// one short read, so a long search does not keep a store connection from proofs.
    pub async fn search(
        &self,
        index: &Index,
        tenant: &str,
        search: Search,
    ) -> Result<Page, QueryError> {
        let admitted = self.admission.admit(tenant).await?;
        let time_limit = self.admission.settings().time_limit;
        // The index may still hold rows of entries retention pruned: searched from the
        // log's prune mark on, they are never found.
        let owned = tenant.to_string();
        let first_seq = self
            .readers
            .read(move |log| Ok::<_, QueryError>(log.prune_mark(&owned)?.map_or(0, |m| m.below)))
            .await?;
        let search = Search {
            first_seq: search.first_seq.max(first_seq),
            ..search
        };
        let (order, limit) = (search.order, search.limit);
        let (owned_index, owned_tenant) = (index.clone(), tenant.to_string());
        let (admitted, seqs) = tokio::task::spawn_blocking(move || {
            // One more than a page tells whether another page follows.
            let probe = Search {
                limit: search.limit + 1,
                ..search
            };
            // The place goes with the work, and is given back when the search ends, not
            // when its request does: a client that sends searches and hangs up must not get
            // more of them running at once.
            (
                admitted,
                find_seqs(&owned_index, &owned_tenant, &probe, time_limit),
            )
        })
        .await
        .map_err(|e| QueryError::Pool(format!("search task failed: {e}")))?;
        let seqs = seqs?;
        let tenant = tenant.to_string();
        #[cfg(feature = "test-hooks")]
        let hold = self.hold.clone();
        self.readers
            .read(move |log| {
                let _admitted = admitted;
                #[cfg(feature = "test-hooks")]
                hold.pass();
                read_page(log, &tenant, order, limit, seqs)
            })
            .await
    }

    /// The event with this id (lowercase hyphenated) in `tenant`'s log, with its inclusion
    /// proof; `None` when the log holds no such event.
    pub async fn event(
        &self,
        tenant: &str,
        id: String,
    ) -> Result<Option<EventWithProof>, QueryError> {
        let tenant = tenant.to_string();
        self.readers
            .read(move |log| store::in_snapshot(log, || event_with_proof(log, &tenant, &id)))
            .await
    }

    /// The inclusion proof of `seq` in the tree of `size` entries (by default the latest
    /// checkpoint's).
    pub async fn inclusion(
        &self,
        tenant: &str,
        seq: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, QueryError> {
        if let Some(size) = size.filter(|&size| seq < size && self.known_committed(tenant, size)) {
            let proof = self
                .known_tree_proof(tenant, move |r| merkle::inclusion_proof(seq, size, r))
                .await?;
            return Ok(InclusionProof {
                leaf_index: seq,
                tree_size: size,
                proof,
            });
        }
        let (tenant, cache) = (tenant.to_string(), self.tree_cache.clone());
        self.readers
            .read(move |log| store::in_snapshot(log, || inclusion(log, &cache, &tenant, seq, size)))
            .await
    }

    /// The consistency proof from the tree of `from` entries (at least one) to that of `to`
    /// (by default the latest checkpoint's size); empty when the sizes are equal.
    pub async fn consistency(
        &self,
        tenant: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, QueryError> {
        if let Some(to) =
            to.filter(|&to| 0 < from && from <= to && self.known_committed(tenant, to))
        {
            let proof = self
                .known_tree_proof(tenant, move |r| merkle::consistency_proof(from, to, r))
                .await?;
            return Ok(ConsistencyProof { from, to, proof });
        }
        let (tenant, cache) = (tenant.to_string(), self.tree_cache.clone());
        self.readers
            .read(move |log| {
                store::in_snapshot(log, || consistency(log, &cache, &tenant, from, to))
            })
            .await
    }
}

impl Queries {
    /// Whether a proof read of this process has seen `tenant`'s log hold at least `size`
    /// entries. Logs only grow, so a tree of that size is committed and its stored hashes
    /// never change: its proofs need neither the committed size nor a read snapshot.
    fn known_committed(&self, tenant: &str, size: u64) -> bool {
        size <= self.tree_cache.committed(tenant)
    }

    /// A proof in a tree [`Queries::known_committed`] vouches for: from memory when every hash
    /// it needs is cached (no store connection, no hand-off to the blocking pool), else with
    /// one read of the missing hashes on the pool.
    async fn known_tree_proof(
        &self,
        tenant: &str,
        prove: impl Fn(&dyn HashReader) -> Result<Vec<Hash>, MerkleError> + Send + 'static,
    ) -> Result<Vec<String>, QueryError> {
        if let Ok(proof) = prove(&self.tree_cache.in_memory(tenant)) {
            return Ok(to_hex(proof));
        }
        let (tenant, cache) = (tenant.to_string(), self.tree_cache.clone());
        self.readers
            .read(move |log| {
                let store = StoreHashes {
                    store: log,
                    tenant: &tenant,
                };
                let proof = prove(&cache.reader(&tenant, &store)).map_err(QueryError::Proof)?;
                Ok(to_hex(proof))
            })
            .await
    }
}

/// The seqs of `tenant`'s events that match `search` (at most its limit), stopped at
/// `time_limit`; none when nothing of the tenant is indexed yet. Blocking.
fn find_seqs(
    index: &Index,
    tenant: &str,
    search: &Search,
    time_limit: Duration,
) -> Result<Vec<u64>, QueryError> {
    let Some(number) = index.tenant_number(tenant) else {
        return Ok(Vec::new());
    };
    let reader = index.reader()?;
    match reader.search_within(number, search, time_limit) {
        Ok(seqs) => Ok(seqs),
        Err(IndexError::TimedOut { limit }) => {
            crate::metrics::search_refused(crate::metrics::SearchRefusal::Timeout);
            Err(QueryError::TimedOut { limit })
        }
        Err(error) => Err(error.into()),
    }
}

/// The page of `limit` events at `seqs` (found with one more than `limit`, which tells
/// whether another page follows), read from the log.
fn read_page(
    log: &dyn Store,
    tenant: &str,
    order: Order,
    limit: usize,
    seqs: Vec<u64>,
) -> Result<Page, QueryError> {
    let page = &seqs[..seqs.len().min(limit)];
    // Indexed entries are committed; one can only be missing if retention pruned it after it
    // was indexed, and then it is no longer an event to show: `entries_at` leaves it out.
    let entries = log.entries_at(tenant, page)?;
    let events = entries
        .iter()
        .map(|(_, entry)| event_json(entry))
        .collect::<Result<_, _>>()?;
    let next_cursor = match page.last() {
        Some(&last) if seqs.len() > limit => Some(encode_cursor(order, last)),
        _ => None,
    };
    Ok(Page {
        events,
        next_cursor,
    })
}

fn event_with_proof(
    log: &dyn Store,
    tenant: &str,
    id: &str,
) -> Result<Option<EventWithProof>, QueryError> {
    let Some(seq) = log.seq_of_id(tenant, id)? else {
        return Ok(None);
    };
    let Some(entry) = log.entry(tenant, seq)? else {
        return Ok(None);
    };
    // The latest checkpoint covers every seq below its size; if it does not cover this one,
    // no checkpoint does yet.
    let (tree_size, checkpoint) = match log.latest_checkpoint(tenant)? {
        Some(c) if c.size > seq => (c.size, Some(c.note)),
        _ => (store::tail(log, tenant)?.size, None),
    };
    let reader = StoreHashes { store: log, tenant };
    let hashes = merkle::inclusion_proof(seq, tree_size, &reader).map_err(|source| {
        QueryError::EventProof {
            seq,
            tree_size,
            source,
        }
    })?;
    Ok(Some(EventWithProof {
        event: event_json(&entry)?,
        proof: EventInclusion {
            checkpoint,
            hashes: to_hex(hashes),
            leaf_index: seq,
            tree_size,
        },
    }))
}

/// A stored entry as the API shows it: its JSON object plus `event_hash`.
fn event_json(entry: &[u8]) -> Result<Value, QueryError> {
    let mut value: Value = serde_json::from_slice(entry)
        .map_err(|e| QueryError::CorruptEntry(format!("a stored entry is not JSON: {e}")))?;
    let Value::Object(object) = &mut value else {
        return Err(QueryError::CorruptEntry(
            "a stored entry is not a JSON object".to_string(),
        ));
    };
    object.insert(
        "event_hash".to_string(),
        Value::String(event_hash(entry).to_hex()),
    );
    Ok(value)
}

/// The size of the latest signed checkpoint, the default tree size of a proof.
fn latest_checkpoint_size(
    log: &dyn Store,
    tenant: &str,
    param: &'static str,
) -> Result<u64, QueryError> {
    match log.latest_checkpoint(tenant)? {
        Some(checkpoint) => Ok(checkpoint.size),
        None => Err(QueryError::NoCheckpoint { param }),
    }
}

/// Fails unless `size` is within the committed tree.
fn check_committed(field: &'static str, size: u64, committed: u64) -> Result<(), QueryError> {
    if size > committed {
        return Err(QueryError::OutOfRange {
            field,
            message: format!(
                "{field}={size} is beyond the committed tree, which has {}",
                sealtrail_core::text::entries(committed)
            ),
        });
    }
    Ok(())
}

fn to_hex(hashes: Vec<Hash>) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

/// The inclusion proof of `seq` in the tree of `size` entries (by default the latest
/// checkpoint's), read from `log` and the cache of the upper levels.
fn inclusion(
    log: &dyn Store,
    cache: &TreeCache,
    tenant: &str,
    seq: u64,
    size: Option<u64>,
) -> Result<InclusionProof, QueryError> {
    // How many entries are committed, as the store has them (another process may have
    // appended since this one's writer last did).
    let committed = log.size(tenant)?;
    cache.saw_committed(tenant, committed);
    let size = match size {
        Some(size) => size,
        None => latest_checkpoint_size(log, tenant, "size")?,
    };
    if size == 0 {
        return Err(QueryError::OutOfRange {
            field: "size",
            message: "size must be at least 1: the empty tree holds no entry".to_string(),
        });
    }
    check_committed("size", size, committed)?;
    if seq >= size {
        return Err(QueryError::OutOfRange {
            field: "seq",
            message: format!(
                "seq={seq} is not in the tree of size {size} (seqs 0 to {})",
                size - 1
            ),
        });
    }
    let store = StoreHashes { store: log, tenant };
    let hashes = cache.reader(tenant, &store);
    let proof = merkle::inclusion_proof(seq, size, &hashes).map_err(QueryError::Proof)?;
    Ok(InclusionProof {
        leaf_index: seq,
        tree_size: size,
        proof: to_hex(proof),
    })
}

/// The consistency proof from the tree of `from` entries to that of `to` (by default the
/// latest checkpoint's), read from `log` and the cache of the upper levels.
fn consistency(
    log: &dyn Store,
    cache: &TreeCache,
    tenant: &str,
    from: u64,
    to: Option<u64>,
) -> Result<ConsistencyProof, QueryError> {
    let committed = log.size(tenant)?;
    cache.saw_committed(tenant, committed);
    let to = match to {
        Some(to) => to,
        None => latest_checkpoint_size(log, tenant, "to")?,
    };
    check_committed("to", to, committed)?;
    if from > to {
        return Err(QueryError::OutOfRange {
            field: "from",
            message: format!(
                "from={from} is larger than to={to}: a tree can only be proven to extend a smaller one"
            ),
        });
    }
    let store = StoreHashes { store: log, tenant };
    let hashes = cache.reader(tenant, &store);
    let proof = merkle::consistency_proof(from, to, &hashes).map_err(QueryError::Proof)?;
    Ok(ConsistencyProof {
        from,
        to,
        proof: to_hex(proof),
    })
}

const CURSOR_VERSION: &str = "v1";

/// The cursor of the page after the one that ended at `seq`.
pub fn encode_cursor(order: Order, seq: u64) -> String {
    let order = match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    };
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}:{order}:{seq}"))
}

/// The order and last seq a cursor from [`encode_cursor`] holds; `None` for anything else.
pub fn decode_cursor(text: &str) -> Option<(Order, u64)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split(':');
    let (Some(CURSOR_VERSION), Some(order), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let order = match order {
        "asc" => Order::Asc,
        "desc" => Order::Desc,
        _ => return None,
    };
    Some((order, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for (order, seq) in [(Order::Asc, 0), (Order::Desc, 123_456_789)] {
            let cursor = encode_cursor(order, seq);
            assert_eq!(decode_cursor(&cursor), Some((order, seq)));
        }
        for garbage in ["x", "djE6YXNjOg", "!!", &URL_SAFE_NO_PAD.encode("v2:asc:1")] {
            assert_eq!(decode_cursor(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn pages_and_proofs_keep_the_apis_field_order() {
        let page = Page {
            events: vec![],
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"events":[],"next_cursor":null}"#
        );
        let proof = EventInclusion {
            checkpoint: None,
            hashes: vec![],
            leaf_index: 1,
            tree_size: 2,
        };
        assert_eq!(
            serde_json::to_string(&proof).unwrap(),
            r#"{"checkpoint":null,"hashes":[],"leaf_index":1,"tree_size":2}"#
        );
    }
}
