//! An archive run: brings a tenant's archive on a target up to the log's latest signed
//! checkpoint.
//!
//! Where the archive stands is read from the target itself — the largest size with a manifest
//! that the log's key verifies — never from a pointer kept beside the store that could drift
//! from what the target holds. Before adding to it, the run checks that the archive and the
//! store describe one log: the archived checkpoint's root must be the store's tree root at that
//! size. Then it goes forward one step at a time (at most [`ArchiveOptions::max_step`] entries,
//! ending at a size the log signed): the step's entry bundles and hash tiles (those that
//! growing the tree creates or widens, at their width at the new size, as the tile API serves
//! them), the checkpoint of the new size, and last the signed manifest of the step. A run
//! killed anywhere resumes from the last manifest; whatever the killed step had written is
//! found again byte for byte and not rewritten ([`Put::AlreadyThere`]), so an archive has
//! neither duplicates nor holes.

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle;
use sealtrail_core::note::{SignerKey, VerifierKey};
use sealtrail_core::seal::Seal;
use sealtrail_core::tiles::{self, Tile};
use sealtrail_store::tiles::{TileReadError, entry_bundle, hash_tile};
use sealtrail_store::{Store, StoreError, StoreHashes, in_snapshot};

use crate::layout;
use crate::manifest::{FileRecord, Manifest, ManifestError};
use crate::target::{Put, Target, TargetError, sha256_hex};

/// How a run proceeds.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// The most entries one step (one manifest) covers; larger logs are archived in steps so
    /// that a killed run loses little and memory stays bounded.
    pub max_step: u64,
    /// Objects handed to the target at once.
    pub batch: usize,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            max_step: 16 * 1024,
            batch: 256,
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tile(#[from] TileReadError),
    #[error("{key}: {source}")]
    Manifest {
        key: String,
        #[source]
        source: ManifestError,
    },
    #[error("{key}: {message}")]
    Checkpoint { key: String, message: String },
    /// The archive and the store do not describe one log.
    #[error(
        "tenant {tenant}: the archive and the store disagree: {detail}; nothing was archived — run `sealtrail archive verify` and `sealtrail verify` to find which one changed"
    )]
    Diverged { tenant: String, detail: String },
    #[error("tenant {tenant}: {message}")]
    Merkle { tenant: String, message: String },
}

/// Where a tenant's archive stands on a target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchivedState {
    /// The largest size with a verified manifest; 0 when nothing is archived.
    pub size: u64,
    /// Sizes of all manifests present, ascending.
    pub manifests: Vec<u64>,
}

/// Reads where `tenant`'s archive stands: the largest manifest that `key` verifies. A latest
/// manifest that does not verify stops everything (the archive was tampered with, or written
/// with another key): it is not skipped.
pub fn archived_state(
    target: &dyn Target,
    tenant: &str,
    key: &VerifierKey,
) -> Result<ArchivedState, ArchiveError> {
    let folder = layout::manifests(tenant);
    let manifests = layout::sizes_in(&folder, &target.list(&folder)?);
    let Some(&latest) = manifests.last() else {
        return Ok(ArchivedState { size: 0, manifests });
    };
    let manifest = read_manifest(target, tenant, latest, key)?;
    if manifest.size != latest || manifest.tenant != tenant {
        return Err(ArchiveError::Manifest {
            key: layout::manifest(tenant, latest),
            source: ManifestError::Line {
                line: 3,
                problem: format!(
                    "it describes tenant {} at size {}, not its own name",
                    manifest.tenant, manifest.size
                ),
            },
        });
    }
    Ok(ArchivedState {
        size: latest,
        manifests,
    })
}

/// Reads and opens the manifest of `size`.
pub fn read_manifest(
    target: &dyn Target,
    tenant: &str,
    size: u64,
    key: &VerifierKey,
) -> Result<Manifest, ArchiveError> {
    let name = layout::manifest(tenant, size);
    let bytes = target.get(&name)?.ok_or_else(|| ArchiveError::Checkpoint {
        key: name.clone(),
        message: "listed but cannot be read".into(),
    })?;
    Manifest::open(&bytes, key).map_err(|source| ArchiveError::Manifest { key: name, source })
}

/// Reads and opens the archived checkpoint of `size`.
pub fn read_checkpoint(
    target: &dyn Target,
    tenant: &str,
    size: u64,
    key: &VerifierKey,
) -> Result<(Checkpoint, Vec<u8>), ArchiveError> {
    let name = layout::checkpoint(tenant, size);
    let Some(bytes) = target.get(&name)? else {
        return Err(ArchiveError::Checkpoint {
            key: name,
            message: "missing".into(),
        });
    };
    let checkpoint = Checkpoint::open(&bytes, key).map_err(|e| ArchiveError::Checkpoint {
        key: name.clone(),
        message: e.to_string(),
    })?;
    if checkpoint.size != size {
        return Err(ArchiveError::Checkpoint {
            key: name,
            message: format!("it is a checkpoint of size {}", checkpoint.size),
        });
    }
    Ok((checkpoint, bytes))
}

/// What a run did for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    pub tenant: String,
    /// The archived size before the run.
    pub from_size: u64,
    /// The archived size after it.
    pub to_size: u64,
    /// The store's size when the run looked (entries beyond the latest checkpoint wait for
    /// the next signed one).
    pub store_size: u64,
    pub files_written: u64,
    pub files_already_there: u64,
    pub bytes_written: u64,
    /// One per step: the sizes of the manifests written.
    pub manifests: Vec<u64>,
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub archived: u64,
    pub goal: u64,
}

/// Brings `tenant`'s archive on `target` up to the log's latest signed checkpoint, signing
/// manifests with `signer` (the log's key). `progress` is called after each step.
pub fn archive_tenant(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    signer: &SignerKey,
    options: &ArchiveOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunReport, ArchiveError> {
    let key = signer.verifier();
    let state = archived_state(target, tenant, &key)?;
    let mut report = RunReport {
        tenant: tenant.to_string(),
        from_size: state.size,
        to_size: state.size,
        ..RunReport::default()
    };
    // The signed sizes of the log, ascending, each with its note.
    let signed = signed_checkpoints(store, tenant, state.size)?;
    report.store_size = store.size(tenant)?;
    let goal = signed.last().map_or(state.size, |(size, _)| *size);
    progress(Progress {
        archived: state.size,
        goal,
    });
    if goal <= state.size {
        if state.size > 0 {
            check_same_log(store, tenant, target, state.size, &key)?;
            archive_seals(store, tenant, target, &key, state.size, &mut report)?;
        }
        return Ok(report);
    }
    // The key must be the log's before anything is written: the newest checkpoint verifies.
    if let Some((size, note)) = signed.last() {
        Checkpoint::open(note.as_bytes(), &key).map_err(|e| ArchiveError::Checkpoint {
            key: format!("the store's checkpoint of {tenant} at size {size}"),
            message: format!(
                "it does not verify with the key the archive would be signed with: {e}"
            ),
        })?;
    }
    let vkey = format!("{key}\n");
    count(
        &mut report,
        target.put_new(&layout::verifier_key(tenant), vkey.as_bytes())?,
        vkey.len(),
    );
    if state.size > 0 {
        check_same_log(store, tenant, target, state.size, &key)?;
    }
    let mut archived = state.size;
    while archived < goal {
        let next = next_size(&signed, archived, options.max_step);
        let note = &signed
            .iter()
            .find(|(s, _)| *s == next)
            .expect("a signed size")
            .1;
        archive_step(
            store,
            tenant,
            target,
            signer,
            archived,
            next,
            note,
            options,
            &mut report,
        )?;
        archived = next;
        report.to_size = next;
        report.manifests.push(next);
        progress(Progress { archived, goal });
    }
    archive_seals(store, tenant, target, &key, archived, &mut report)?;
    Ok(report)
}

/// Puts the log's daily seals the target does not hold yet (`seal/<day>.<issue>`), those of
/// sizes up to `archived` (a seal names a tree the archive must hold to be checked): each a
/// signed note, opened with the log's key before it is written, and written once like the rest.
fn archive_seals(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    key: &VerifierKey,
    archived: u64,
    report: &mut RunReport,
) -> Result<(), ArchiveError> {
    let seals = store.seals(tenant, "0000-00-00", "9999-99-99")?;
    if seals.is_empty() {
        return Ok(());
    }
    let held: std::collections::HashSet<(String, u32)> =
        layout::seals_in(tenant, &target.list(&layout::seals(tenant))?)
            .into_iter()
            .collect();
    for stored in seals {
        if held.contains(&(stored.day.clone(), stored.issue)) {
            continue;
        }
        let name = layout::seal(tenant, &stored.day, stored.issue);
        let seal =
            Seal::open(stored.note.as_bytes(), key).map_err(|e| ArchiveError::Checkpoint {
                key: format!(
                    "the store's seal of {tenant} for {} #{}",
                    stored.day, stored.issue
                ),
                message: format!("it does not verify with the log's key: {e}"),
            })?;
        if seal.size > archived {
            // Archived with the next step that reaches its size.
            break;
        }
        count(
            report,
            target.put_new(&name, stored.note.as_bytes())?,
            stored.note.len(),
        );
    }
    Ok(())
}

/// The log's checkpoints beyond `archived` as `(size, note)`, ascending. Their sizes are read
/// without checking signatures (a busy log has a checkpoint a second, and only those beyond the
/// archive matter); each note a step archives is verified with the log's key before it is
/// written ([`archive_step`]).
fn signed_checkpoints(
    store: &dyn Store,
    tenant: &str,
    archived: u64,
) -> Result<Vec<(u64, String)>, ArchiveError> {
    let mut signed = Vec::new();
    for note in store.checkpoints(tenant)? {
        let size = sealtrail_core::note::parse(note.as_bytes())
            .ok()
            .and_then(|n| Checkpoint::parse(&n.text).ok())
            .map(|c| c.size)
            .ok_or_else(|| ArchiveError::Checkpoint {
                key: format!("the store's checkpoints of {tenant}"),
                message: "a stored checkpoint is not a signed checkpoint note".into(),
            })?;
        if size > archived {
            signed.push((size, note));
        }
    }
    signed.sort_by_key(|(size, _)| *size);
    signed.dedup_by_key(|(size, _)| *size);
    Ok(signed)
}

/// The next size to archive after `archived`: the largest signed size at most `max_step`
/// further, or the smallest signed size beyond `archived` when none is that close.
fn next_size(signed: &[(u64, String)], archived: u64, max_step: u64) -> u64 {
    let limit = archived.saturating_add(max_step.max(1));
    let beyond = signed.iter().map(|(s, _)| *s).filter(|&s| s > archived);
    beyond
        .clone()
        .filter(|&s| s <= limit)
        .max()
        .or_else(|| beyond.min())
        .expect("called only while a signed size is beyond the archived one")
}

/// Checks that the archive's checkpoint at `size` and the store agree on the tree's root.
fn check_same_log(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    size: u64,
    key: &VerifierKey,
) -> Result<(), ArchiveError> {
    let (archived, _) = read_checkpoint(target, tenant, size, key)?;
    let store_size = store.size(tenant)?;
    if store_size < size {
        return Err(ArchiveError::Diverged {
            tenant: tenant.to_string(),
            detail: format!("the archive holds {size} entries, the store only {store_size}"),
        });
    }
    let root = merkle::tree_hash(size, &StoreHashes { store, tenant }).map_err(|e| {
        ArchiveError::Merkle {
            tenant: tenant.to_string(),
            message: e.to_string(),
        }
    })?;
    if root != archived.root {
        return Err(ArchiveError::Diverged {
            tenant: tenant.to_string(),
            detail: format!(
                "at size {size} the archived checkpoint's root is {} but the store's tree root is {}",
                archived.root.to_base64(),
                root.to_base64()
            ),
        });
    }
    Ok(())
}

fn count(report: &mut RunReport, put: Put, bytes: usize) {
    match put {
        Put::Written => {
            report.files_written += 1;
            report.bytes_written += bytes as u64;
        }
        Put::AlreadyThere => report.files_already_there += 1,
    }
}

/// Archives the tree from `from` to `to` leaves: tiles and bundles, checkpoint, manifest.
#[allow(clippy::too_many_arguments)]
fn archive_step(
    store: &dyn Store,
    tenant: &str,
    target: &dyn Target,
    signer: &SignerKey,
    from: u64,
    to: u64,
    note: &str,
    options: &ArchiveOptions,
    report: &mut RunReport,
) -> Result<(), ArchiveError> {
    let checkpoint = Checkpoint::open(note.as_bytes(), &signer.verifier()).map_err(|e| {
        ArchiveError::Checkpoint {
            key: format!("the store's checkpoint of {tenant} at size {to}"),
            message: format!("it does not verify with the log's key: {e}"),
        }
    })?;
    if checkpoint.size != to {
        return Err(ArchiveError::Checkpoint {
            key: format!("the store's checkpoint of {tenant} at size {to}"),
            message: format!("it is a checkpoint of size {}", checkpoint.size),
        });
    }
    let mut files = Vec::new();
    let new_tiles = tiles::new_tiles(from, to);
    for chunk in new_tiles.chunks(options.batch.max(1)) {
        let objects = in_snapshot(store, || -> Result<_, ArchiveError> {
            let mut objects = Vec::with_capacity(chunk.len() * 2);
            for tile in chunk {
                if tile.level == 0 {
                    objects.push((layout::bundle(tile), entry_bundle(store, tenant, tile)?));
                }
                objects.push((layout::tile(tile), hash_tile(store, tenant, tile)?));
            }
            Ok(objects)
        })?;
        put_all(target, tenant, objects, &mut files, report)?;
    }
    let checkpoint = vec![(format!("checkpoint/{to}"), note.as_bytes().to_vec())];
    put_all(target, tenant, checkpoint, &mut files, report)?;
    let manifest = Manifest {
        origin: signer.name().to_string(),
        tenant: tenant.to_string(),
        size: to,
        previous: from,
        files,
    };
    let signed = manifest
        .sign(signer)
        .map_err(|source| ArchiveError::Manifest {
            key: layout::manifest(tenant, to),
            source,
        })?;
    let put = target.put_new(&layout::manifest(tenant, to), signed.as_bytes())?;
    count(report, put, signed.len());
    tracing::info!(tenant, from, to, "archived");
    Ok(())
}

/// Writes tenant-relative `objects` and records them for the manifest.
fn put_all(
    target: &dyn Target,
    tenant: &str,
    objects: Vec<(String, Vec<u8>)>,
    files: &mut Vec<FileRecord>,
    report: &mut RunReport,
) -> Result<(), ArchiveError> {
    let keyed: Vec<(String, Vec<u8>)> = objects
        .into_iter()
        .map(|(path, bytes)| (layout::in_tenant(tenant, &path), bytes))
        .collect();
    let puts = target.put_new_all(&keyed)?;
    for ((key, bytes), put) in keyed.iter().zip(puts) {
        count(report, put, bytes.len());
        let path = key
            .strip_prefix(tenant)
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or(key);
        files.push(FileRecord {
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
            path: path.to_string(),
        });
    }
    Ok(())
}

/// The tiles a tree of `size` leaves is published as: every tile at every level, each at its
/// width at that size (the ones a verifier of that tree reads).
pub fn tiles_of(size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    for level in 0..=63u8 {
        let at = layout::tiles_at(level, size);
        if at.is_empty() {
            break;
        }
        out.extend(at);
    }
    out
}
