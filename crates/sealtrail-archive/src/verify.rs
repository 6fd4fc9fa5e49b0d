//! Verifying an archive on its own, with nothing but the log's verifier key: what an auditor
//! runs on a copy of the archive, without sealtrail's database.
//!
//! 1. **Manifests**: each verifies with the key, follows the one before it (`previous` is the
//!    size of the preceding manifest, the first starts at 0), and every file it lists is in the
//!    archive with the SHA-256 and size it states.
//! 2. **Entries against the tree**: at the largest archived size, every entry bundle is read;
//!    each entry's leaf hash must be the hash at its place in the level-0 tile, and the entries
//!    go through the log verifier (seqs, `prev_hash` links, every archived checkpoint's
//!    signature and root, consistency between checkpoints).
//! 3. **Tiles against each other**: every hash of a level-`L` tile must be the root of the
//!    full level-`L-1` tile below it; partial tiles and bundles of earlier sizes must be
//!    prefixes of the final ones.
//! 4. **Daily seals** (`seal/<day>.<issue>`): each opens with the key, links to the day before
//!    (no day missing), and seals the root of the tree rebuilt from the archived entries at
//!    its size.
//!
//! The report has the shape of `sealtrail verify --json`; a changed byte is named with its seq.

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::{Hash, leaf_hash};
use sealtrail_core::merkle::TreeBuilder;
use sealtrail_core::note::{self, VerifierKey};
use sealtrail_core::seal::{FiledSeal, Seal, check_chain};
use sealtrail_core::tiles::{self, TILE_WIDTH, Tile, TilePath};
use sealtrail_core::verify::{Report, Verifier, VerifyOptions, Violation, ViolationKind};

use crate::layout;
use crate::manifest::Manifest;
use crate::target::{Target, TargetError, sha256_hex};

/// The report of an archive's verification: the verifier's report for the tenant's log, and
/// what was checked of the archive itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchiveReport {
    #[serde(flatten)]
    pub report: Report,
    pub tenant: String,
    /// The largest size with a verified manifest.
    pub archived_size: u64,
    pub manifests_checked: u64,
    pub files_checked: u64,
}

/// Verifies `tenant`'s archive on `target` with the log's verifier key.
pub fn verify_archive(
    target: &dyn Target,
    tenant: &str,
    key: &VerifierKey,
    max_violations: usize,
) -> Result<ArchiveReport, TargetError> {
    let mut problems = Vec::new();
    let folder = layout::manifests(tenant);
    let sizes = layout::sizes_in(&folder, &target.list(&folder)?);
    if sizes.is_empty() {
        problems.push(violation(
            None,
            ViolationKind::ArchiveFileMissing,
            format!("no manifest under {folder}: nothing of tenant {tenant} is archived here"),
        ));
    }
    // 1. Manifests and the files they list.
    let mut manifests = Vec::new();
    let mut files_checked = 0;
    let mut previous = 0;
    for &size in &sizes {
        let name = layout::manifest(tenant, size);
        let Some(bytes) = target.get(&name)? else {
            continue;
        };
        let manifest = match Manifest::open(&bytes, key) {
            Ok(m) => m,
            Err(e) => {
                problems.push(violation(
                    None,
                    ViolationKind::InvalidManifest,
                    format!("{name}: {e}"),
                ));
                continue;
            }
        };
        if manifest.size != size || manifest.tenant != tenant || manifest.previous != previous {
            problems.push(violation(
                Some(previous.min(manifest.previous)),
                ViolationKind::InvalidManifest,
                format!(
                    "{name}: it covers tenant {} from size {} to {}, but it should cover tenant {tenant} from {previous} (the manifest before it) to {size}",
                    manifest.tenant, manifest.previous, manifest.size
                ),
            ));
        }
        for file in &manifest.files {
            files_checked += 1;
            let key = layout::in_tenant(tenant, &file.path);
            let seq = first_seq_of(&file.path);
            match target.get(&key)? {
                None => problems.push(violation(
                    seq,
                    ViolationKind::ArchiveFileMissing,
                    format!("{key}, listed in {name}, is not in the archive"),
                )),
                Some(bytes) => {
                    let sha = sha256_hex(&bytes);
                    if sha != file.sha256 || bytes.len() as u64 != file.bytes {
                        problems.push(violation(
                            seq,
                            ViolationKind::ArchiveFileMismatch,
                            format!(
                                "{key}: {} bytes with sha256 {sha}, but {name} lists {} bytes with sha256 {}",
                                bytes.len(),
                                file.bytes,
                                file.sha256
                            ),
                        ));
                    }
                }
            }
        }
        previous = size;
        manifests.push(manifest);
    }
    let archived_size = manifests.last().map_or(0, |m| m.size);

    // 2. Entries against the tree, and every archived checkpoint.
    let mut notes = Vec::new();
    let cp_folder = layout::checkpoints(tenant);
    for size in layout::sizes_in(&cp_folder, &target.list(&cp_folder)?) {
        if size > archived_size {
            continue;
        }
        if let Some(note) = target.get(&layout::checkpoint(tenant, size))? {
            check_checkpoint_name(&note, size, key, tenant, &mut problems);
            notes.push(note);
        }
    }
    for m in &manifests {
        if !notes_has_size(&notes, m.size, key) {
            problems.push(violation(
                None,
                ViolationKind::ArchiveFileMissing,
                format!(
                    "{}: the checkpoint of archived size {} is missing",
                    layout::checkpoint(tenant, m.size),
                    m.size
                ),
            ));
        }
    }
    let note_refs: Vec<&[u8]> = notes.iter().map(Vec::as_slice).collect();
    let options = VerifyOptions {
        max_violations,
        ..VerifyOptions::default()
    };
    let mut verifier = Verifier::new(None, &note_refs, std::slice::from_ref(key), options)
        .expect("starting at seq 0 needs no stored hashes");
    // The daily seals, and the roots of the tree (rebuilt from the entries) at their sizes.
    let seal_names = layout::seals_in(tenant, &target.list(&layout::seals(tenant))?);
    let mut seals = Vec::with_capacity(seal_names.len());
    for (day, issue) in seal_names {
        if let Some(note) = target.get(&layout::seal(tenant, &day, issue))? {
            seals.push((day, issue, note));
        }
    }
    let sealed_sizes: std::collections::BTreeSet<u64> = seals
        .iter()
        .filter_map(|(_, _, note)| sealed_size(note))
        .collect();
    let mut tree = TreeBuilder::new();
    let mut scratch = Vec::new();
    let mut roots_at: std::collections::HashMap<u64, Hash> = std::collections::HashMap::new();
    // Roots of the full tiles of each level, computed from the level below.
    let mut roots: Vec<Vec<Hash>> = vec![Vec::new()];
    let mut finals: Finals = Finals::default();
    for tile in layout::tiles_at(0, archived_size) {
        let first = tile.index * TILE_WIDTH;
        let width = u64::from(tile.width);
        let bundle_key = layout::in_tenant(tenant, &layout::bundle(&tile));
        let tile_key = layout::in_tenant(tenant, &layout::tile(&tile));
        let (Some(bundle), Some(hashes)) = (target.get(&bundle_key)?, target.get(&tile_key)?)
        else {
            problems.push(violation(
                Some(first),
                ViolationKind::ArchiveFileMissing,
                format!(
                    "{bundle_key} or {tile_key} is missing: entries {first} to {} cannot be checked, nor anything after them",
                    first + width - 1
                ),
            ));
            break;
        };
        let entries = match tiles::decode_entry_bundle(&bundle) {
            Ok(entries) if entries.len() as u64 == width => entries,
            Ok(entries) => {
                problems.push(violation(
                    Some(first + entries.len().min(width as usize) as u64),
                    ViolationKind::ArchiveFileMismatch,
                    format!(
                        "{bundle_key} holds {} entries; its name says {width}",
                        entries.len()
                    ),
                ));
                break;
            }
            Err(e) => {
                problems.push(violation(
                    Some(first),
                    ViolationKind::ArchiveFileMismatch,
                    format!("{bundle_key}: {e}"),
                ));
                break;
            }
        };
        if hashes.len() as u64 != width * 32 {
            problems.push(violation(
                Some(first),
                ViolationKind::ArchiveFileMismatch,
                format!(
                    "{tile_key} is {} bytes; a tile of width {width} is {}",
                    hashes.len(),
                    width * 32
                ),
            ));
            break;
        }
        for (i, entry) in entries.iter().enumerate() {
            let seq = first + i as u64;
            let leaf = leaf_hash(entry);
            if leaf.as_bytes()[..] != hashes[i * 32..i * 32 + 32] {
                problems.push(violation(
                    Some(seq),
                    ViolationKind::ContentMismatch,
                    format!("the entry at seq {seq} in {bundle_key} does not hash to its leaf in {tile_key}"),
                ));
            }
            verifier.push(seq, entry);
            tree.push(leaf, &mut scratch);
            if sealed_sizes.contains(&tree.size()) {
                roots_at.insert(tree.size(), tree.root());
            }
        }
        // The tiles above are checked against this tile's own hashes: an entry that differs
        // from its leaf is reported once, above, and not again as a tile that differs.
        if width == TILE_WIDTH {
            let tile_hashes: Vec<Hash> = hashes
                .chunks(32)
                .filter_map(|c| Hash::from_slice(c).ok())
                .collect();
            roots[0].push(subtree_root(&tile_hashes));
        }
        finals.keep(&tile, bundle, hashes);
    }
    let mut report = verifier.finish();
    let filed: Vec<FiledSeal<'_>> = seals
        .iter()
        .map(|(day, issue, note)| FiledSeal {
            day,
            issue: *issue,
            note,
        })
        .collect();
    problems.extend(check_chain(&filed, key, |size| {
        roots_at.get(&size).copied()
    }));

    // 3. Tiles above level 0 against the roots of the tiles below them.
    for level in 1..=63u8 {
        let at = layout::tiles_at(level, archived_size);
        if at.is_empty() {
            break;
        }
        let below = &roots[usize::from(level) - 1];
        let mut this_level = Vec::new();
        for tile in at {
            let key = layout::in_tenant(tenant, &layout::tile(&tile));
            let first_leaf = (tile.index * TILE_WIDTH) << (8 * u32::from(level));
            let Some(bytes) = target.get(&key)? else {
                problems.push(violation(
                    Some(first_leaf),
                    ViolationKind::ArchiveFileMissing,
                    format!("{key} is missing"),
                ));
                continue;
            };
            let hashes: Vec<Hash> = bytes
                .chunks(32)
                .filter_map(|c| Hash::from_slice(c).ok())
                .collect();
            if bytes.len() != usize::from(tile.width) * 32 {
                problems.push(violation(
                    Some(first_leaf),
                    ViolationKind::ArchiveFileMismatch,
                    format!(
                        "{key} is {} bytes; a tile of width {} is {}",
                        bytes.len(),
                        tile.width,
                        usize::from(tile.width) * 32
                    ),
                ));
                continue;
            }
            for (j, hash) in hashes.iter().enumerate() {
                let n = (tile.index * TILE_WIDTH + j as u64) as usize;
                match below.get(n) {
                    Some(expected) if expected == hash => {}
                    Some(_) => {
                        let seq = (n as u64) << (8 * u32::from(level));
                        problems.push(violation(
                            Some(seq),
                            ViolationKind::StoredHashMismatch,
                            format!("hash {j} of {key} is not the root of the tile below it (entries from seq {seq})"),
                        ));
                    }
                    None => {}
                }
            }
            if u64::from(tile.width) == TILE_WIDTH {
                this_level.push(subtree_root(&hashes));
            }
            finals.keep(&tile, Vec::new(), bytes);
        }
        roots.push(this_level);
    }

    // Partial files of earlier sizes: prefixes of the final ones.
    for m in &manifests {
        for file in &m.files {
            let Ok(TilePath::Hashes(_) | TilePath::Entries { .. }) =
                tiles::parse_tile_path(&file.path)
            else {
                continue;
            };
            if let Some(problem) = finals.check_prefix(target, tenant, &file.path)? {
                problems.push(problem);
            }
        }
    }

    place_file_violations(&report, &mut problems);
    report.add_violations(problems, max_violations);
    Ok(ArchiveReport {
        report,
        tenant: tenant.to_string(),
        archived_size,
        manifests_checked: manifests.len() as u64,
        files_checked,
    })
}

fn violation(seq: Option<u64>, kind: ViolationKind, detail: String) -> Violation {
    Violation::new(seq, kind, detail)
}

/// The first seq an archived file covers, where it names one.
fn first_seq_of(path: &str) -> Option<u64> {
    seqs_of(path).map(|(first, _)| first)
}

/// The seqs an archived file covers, `[first, end)`, where it names them.
fn seqs_of(path: &str) -> Option<(u64, u64)> {
    let (level, index, width) = match tiles::parse_tile_path(path).ok()? {
        TilePath::Entries { index, width } => (0, index, width),
        TilePath::Hashes(t) => (t.level, t.index, t.width),
    };
    let shift = 8 * u32::from(level);
    let first = (index * TILE_WIDTH).checked_shl(shift)?;
    let end = (index * TILE_WIDTH + u64::from(width)).checked_shl(shift)?;
    Some((first, end))
}

/// A violation of a whole file (its hash, or a tile hash over many entries) is placed at the
/// first entry-level violation inside what the file covers, when there is one: the damage is
/// reported where it starts, not at the start of the file that contains it.
fn place_file_violations(report: &Report, problems: &mut [Violation]) {
    let precise: Vec<u64> = report
        .violations
        .iter()
        .chain(problems.iter())
        .filter(|v| {
            matches!(
                v.kind,
                ViolationKind::ContentMismatch
                    | ViolationKind::MalformedEntry
                    | ViolationKind::SeqMismatch
            )
        })
        .filter_map(|v| v.seq)
        .collect();
    for v in problems.iter_mut() {
        if !matches!(
            v.kind,
            ViolationKind::ArchiveFileMismatch | ViolationKind::StoredHashMismatch
        ) {
            continue;
        }
        let Some(range) = file_range(v) else { continue };
        if let Some(&seq) = precise
            .iter()
            .filter(|s| range.0 <= **s && **s < range.1)
            .min()
        {
            v.seq = Some(seq);
        }
    }
}

/// The range a file-level violation covers, recovered from the key named in its detail.
fn file_range(v: &Violation) -> Option<(u64, u64)> {
    let key = v.detail.split([' ', ':']).find(|w| w.contains("/tile/"))?;
    let path = &key[key.find("tile/")?..];
    if v.kind == ViolationKind::StoredHashMismatch {
        // One hash of the tile: the subtree below it.
        let seq = v.seq?;
        let TilePath::Hashes(t) = tiles::parse_tile_path(path).ok()? else {
            return None;
        };
        let span = 1u64.checked_shl(8 * u32::from(t.level))?;
        return Some((seq, seq.saturating_add(span)));
    }
    seqs_of(path)
}

/// The root of a complete subtree whose leaves (or level hashes) are `hashes` (a power of two).
fn subtree_root(hashes: &[Hash]) -> Hash {
    let mut builder = TreeBuilder::new();
    let mut out = Vec::new();
    for h in hashes {
        builder.push(*h, &mut out);
        out.clear();
    }
    builder.root()
}

fn check_checkpoint_name(
    note: &[u8],
    size: u64,
    key: &VerifierKey,
    tenant: &str,
    problems: &mut Vec<Violation>,
) {
    if let Ok(cp) = Checkpoint::open(note, key)
        && cp.size != size
    {
        problems.push(violation(
            None,
            ViolationKind::ArchiveFileMismatch,
            format!(
                "{} holds a checkpoint of size {}",
                layout::checkpoint(tenant, size),
                cp.size
            ),
        ));
    }
}

fn notes_has_size(notes: &[Vec<u8>], size: u64, key: &VerifierKey) -> bool {
    notes
        .iter()
        .any(|n| Checkpoint::open(n, key).is_ok_and(|c| c.size == size))
}

/// The final (largest-size) content of each tile and bundle index, to check earlier partial
/// versions against. Only the last, partial one of each level is kept in memory; full ones
/// are read back when needed (rare: one per level per step).
#[derive(Default)]
struct Finals {
    partial: std::collections::HashMap<(bool, u8, u64), Vec<u8>>,
}

impl Finals {
    fn keep(&mut self, tile: &Tile, bundle: Vec<u8>, hashes: Vec<u8>) {
        if u64::from(tile.width) < TILE_WIDTH {
            if tile.level == 0 {
                self.partial.insert((true, 0, tile.index), bundle);
            }
            self.partial.insert((false, tile.level, tile.index), hashes);
        }
    }

    /// Checks that partial file `path` is a prefix of the final content at its index.
    fn check_prefix(
        &self,
        target: &dyn Target,
        tenant: &str,
        path: &str,
    ) -> Result<Option<Violation>, TargetError> {
        let (is_bundle, tile) = match tiles::parse_tile_path(path) {
            Ok(TilePath::Entries { index, width }) => (
                true,
                Tile {
                    level: 0,
                    index,
                    width,
                },
            ),
            Ok(TilePath::Hashes(t)) => (false, t),
            Err(_) => return Ok(None),
        };
        if u64::from(tile.width) == TILE_WIDTH {
            return Ok(None);
        }
        let Some(partial) = target.get(&layout::in_tenant(tenant, path))? else {
            return Ok(None); // reported as missing by the manifest check
        };
        let final_content = match self.partial.get(&(is_bundle, tile.level, tile.index)) {
            Some(c) => c.clone(),
            None => {
                let full = Tile {
                    width: TILE_WIDTH as u16,
                    ..tile
                };
                let full_path = if is_bundle {
                    layout::bundle(&full)
                } else {
                    layout::tile(&full)
                };
                match target.get(&layout::in_tenant(tenant, &full_path))? {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
        };
        let is_prefix = if is_bundle {
            match (
                tiles::decode_entry_bundle(&partial),
                tiles::decode_entry_bundle(&final_content),
            ) {
                (Ok(a), Ok(b)) => {
                    a.len() == usize::from(tile.width)
                        && b.len() >= a.len()
                        && a[..] == b[..a.len()]
                }
                _ => false,
            }
        } else {
            final_content.starts_with(&partial) && partial.len() == usize::from(tile.width) * 32
        };
        if is_prefix {
            return Ok(None);
        }
        Ok(Some(violation(
            first_seq_of(path),
            ViolationKind::ArchiveFileMismatch,
            format!(
                "{tenant}/{path} is not a prefix of the same tile at the archive's latest size"
            ),
        )))
    }
}

/// The size a seal note names, unverified (its signature is checked with the chain).
fn sealed_size(note_bytes: &[u8]) -> Option<u64> {
    let text = note::parse(note_bytes).ok()?.text;
    Seal::parse(&text).ok().map(|seal| seal.size)
}
