//! Restoring a store from an archive: the tenants' entries, stored hashes (recomputed from the
//! entries, which must reproduce the archived tiles), every archived checkpoint and each log's
//! verifier key, into a store that holds no log yet. The archive is verified first and a
//! restore from an archive that does not verify is refused; afterwards the caller verifies the
//! new store, whose roots must be the archived checkpoints'.
//!
//! What an archive does not hold, a restore cannot bring back: API tokens (create new ones),
//! signing keys (secret; bring the key files, or the restored logs can be read and verified but
//! not written to), the query index and the gap database (rebuilt from the entries on start).

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::merkle::{self, TreeBuilder};
use sealtrail_core::note::VerifierKey;
use sealtrail_core::tiles;
use sealtrail_store::{NewEntry, Store, StoreError, Tenant};

use crate::layout;
use crate::run::{ArchiveError, archived_state};
use crate::target::Target;
use crate::verify::{ArchiveReport, verify_archive};

/// Why a restore did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    #[error(
        "the store already holds the log {0:?}; restore only into an empty store (a new --data directory or an empty database)"
    )]
    NotEmpty(String),
    #[error(
        "the archive of tenant {tenant} does not verify ({count} violations, first: {first}); nothing was restored — run `sealtrail verify --archive` for the details"
    )]
    ArchiveInvalid {
        tenant: String,
        count: u64,
        first: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What was restored for one tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoredTenant {
    pub tenant: String,
    pub origin: String,
    /// The verifier key the archive was verified with and the tenant records.
    pub key: String,
    pub entries: u64,
    pub checkpoints: u64,
    /// The verification of the archive done before restoring.
    pub archive: ArchiveReport,
}

/// The tenants an archive holds (folders with a verifier key).
pub fn tenants_in(target: &dyn Target) -> Result<Vec<String>, crate::target::TargetError> {
    let mut tenants: Vec<String> = target
        .list("")?
        .into_iter()
        .filter_map(|k| k.strip_suffix("/verifier-key").map(str::to_string))
        .filter(|t| !t.contains('/'))
        .collect();
    tenants.sort();
    tenants.dedup();
    Ok(tenants)
}

/// The verifier key the archive holds for `tenant`.
pub fn archived_key(target: &dyn Target, tenant: &str) -> Result<VerifierKey, RestoreError> {
    let name = layout::verifier_key(tenant);
    let bytes = target
        .get(&name)?
        .ok_or_else(|| RestoreError::Invalid(format!("{name} is missing from the archive")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| RestoreError::Invalid(format!("{name} is not text")))?;
    VerifierKey::parse(text.trim_end())
        .map_err(|e| RestoreError::Invalid(format!("{name} is not a verifier key: {e}")))
}

/// Restores `tenant` from `target` into `store`, whose log of that name must not exist. `key`
/// is the key the archive must verify with (the one the operator trusts; by default the
/// archive's own copy). `created_at` is recorded as the tenant's creation time.
pub fn restore_tenant(
    target: &dyn Target,
    tenant: &str,
    key: &VerifierKey,
    store: &dyn Store,
    created_at: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoredTenant, RestoreError> {
    if store.tenant(tenant)?.is_some() {
        return Err(RestoreError::NotEmpty(tenant.to_string()));
    }
    let archive = verify_archive(target, tenant, key, 100)?;
    if !archive.report.valid {
        return Err(RestoreError::ArchiveInvalid {
            tenant: tenant.to_string(),
            count: archive.report.violation_count,
            first: archive
                .report
                .violations
                .first()
                .map(|v| format!("{} {}", v.kind.as_str(), v.detail))
                .unwrap_or_default(),
        });
    }
    let size = archived_state(target, tenant, key)?.size;
    store.begin_write(&[tenant])?;
    let result = (|| -> Result<u64, RestoreError> {
        store.insert_tenant(&Tenant {
            name: tenant.to_string(),
            origin: key.name().to_string(),
            created_at: created_at.to_string(),
            vkey: Some(key.to_string()),
        })?;
        let mut builder = TreeBuilder::new();
        let mut emitted = Vec::new();
        for tile in layout::tiles_at(0, size) {
            let first = tile.index * tiles::TILE_WIDTH;
            let name = layout::in_tenant(tenant, &layout::bundle(&tile));
            let bytes = target.get(&name)?.ok_or_else(|| {
                RestoreError::Invalid(format!("{name} vanished during the restore"))
            })?;
            let entries = tiles::decode_entry_bundle(&bytes)
                .map_err(|e| RestoreError::Invalid(format!("{name}: {e}")))?;
            let mut ids = Vec::with_capacity(entries.len());
            let mut keys = Vec::new();
            let mut hashes = Vec::with_capacity(entries.len() * 2);
            for (i, entry) in entries.iter().enumerate() {
                let seq = first + i as u64;
                let fields = EntryFields::of(entry)
                    .map_err(|e| RestoreError::Invalid(format!("seq {seq} in {name}: {e}")))?;
                if let Some(k) = fields.idempotency_key {
                    keys.push((k, seq));
                }
                ids.push(fields.id);
                builder.push(leaf_hash(entry), &mut emitted);
                hashes.append(&mut emitted);
            }
            let rows: Vec<NewEntry<'_>> = entries
                .iter()
                .zip(&ids)
                .enumerate()
                .map(|(i, (entry, id))| NewEntry {
                    seq: first + i as u64,
                    id,
                    entry,
                })
                .collect();
            store.append(tenant, &rows, merkle::stored_hash_count(first), &hashes)?;
            if !keys.is_empty() {
                store.insert_idempotency(tenant, &keys)?;
            }
            progress(first + rows.len() as u64, size);
        }
        let mut checkpoints = 0;
        let folder = layout::checkpoints(tenant);
        for cp_size in layout::sizes_in(&folder, &target.list(&folder)?) {
            if cp_size > size {
                continue;
            }
            let Some(note) = target.get(&layout::checkpoint(tenant, cp_size))? else {
                continue;
            };
            let checkpoint = Checkpoint::open(&note, key).map_err(|e| {
                RestoreError::Invalid(format!("{}: {e}", layout::checkpoint(tenant, cp_size)))
            })?;
            let note = String::from_utf8(note)
                .map_err(|_| RestoreError::Invalid("a checkpoint is not text".into()))?;
            let at = checkpoint
                .timestamp
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| created_at.to_string());
            store.insert_checkpoint(tenant, cp_size, &note, &at)?;
            checkpoints += 1;
        }
        Ok(checkpoints)
    })();
    match result {
        Ok(checkpoints) => {
            store.commit()?;
            Ok(RestoredTenant {
                tenant: tenant.to_string(),
                origin: key.name().to_string(),
                key: key.to_string(),
                entries: size,
                checkpoints,
                archive,
            })
        }
        Err(e) => {
            let _ = store.rollback();
            Err(e)
        }
    }
}

/// The fields a restore reads from an entry: its id and idempotency key.
struct EntryFields {
    id: String,
    idempotency_key: Option<String>,
}

impl EntryFields {
    fn of(entry: &[u8]) -> Result<EntryFields, String> {
        #[derive(serde::Deserialize)]
        struct Fields {
            id: String,
            #[serde(default)]
            idempotency_key: Option<String>,
        }
        let f: Fields = serde_json::from_slice(entry).map_err(|e| format!("not an entry: {e}"))?;
        Ok(EntryFields {
            id: f.id,
            idempotency_key: f.idempotency_key,
        })
    }
}
