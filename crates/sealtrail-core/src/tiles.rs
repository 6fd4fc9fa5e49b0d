//! The C2SP tlog-tiles layout (<https://c2sp.org/tlog-tiles>): how the log's Merkle hashes and
//! entries are published as immutable static resources.
//!
//! A *tile* at level `L`, index `N` holds up to 256 consecutive hashes of tree level `8 * L`:
//! hash `i` is the root of the complete subtree `(8 * L, N * 256 + i)`, covering leaves
//! `[(N * 256 + i) * 256^L, (N * 256 + i + 1) * 256^L)`. So level-0 tiles hold leaf hashes and
//! each hash of a level-1 tile is the root of a full level-0 tile. These are exactly hashes of
//! the stored-hash array (see [`crate::merkle`]), so a tile is a gather of 256 positions.
//!
//! A tile with all 256 hashes is *full* and never changes. The rightmost tile at each level is
//! usually *partial*: for a tree of `s` leaves, the tile at level `L` has
//! `floor(s / 256^L) mod 256` hashes (none means it does not exist). Partial tiles are served
//! under their width (`.p/<W>`), so every path names immutable content.
//!
//! *Entry bundles* (`tile/entries/<N>[.p/<W>]`) carry the entries behind level-0 tile `N`, each
//! as a big-endian `u16` length followed by the entry bytes.

use std::fmt::Write as _;

use crate::merkle::{
    HashReader, MAX_TREE_SIZE, MerkleError, checked_stored_hash_index, read_exact,
};

/// Tree levels per tile: a tile is a subtree of height 8.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile, `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u64 = 256;

/// The largest tile level a path may name (the spec's `0..=63`).
const MAX_LEVEL: u8 = 63;

/// A tile of Merkle hashes: level, index within the level, and width in hashes (1 to 256; 256
/// is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

/// What a `tile/...` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// A tile of Merkle hashes, `tile/<L>/<N>[.p/<W>]`.
    Hashes(Tile),
    /// An entry bundle, `tile/entries/<N>[.p/<W>]`; `width` is 256 for a full bundle.
    Entries { index: u64, width: u16 },
}

/// Why a tile path, tile or entry bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("invalid tile path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error(
        "invalid tile (level {level}, index {index}, width {width}): the level must be at most \
         63 and the width 1 to 256"
    )]
    InvalidTile { level: u8, index: u64, width: u16 },
    #[error("entry {index} is {len} bytes long; an entry bundle holds at most 65535 per entry")]
    EntryTooLong { index: usize, len: usize },
    #[error("entry bundle truncated: the length of entry {index} at byte {offset} is cut off")]
    TruncatedLength { index: usize, offset: usize },
    #[error(
        "entry bundle truncated: entry {index} at byte {offset} declares {len} bytes but only \
         {available} remain"
    )]
    TruncatedEntry {
        index: usize,
        offset: usize,
        len: usize,
        available: usize,
    },
}

impl Tile {
    /// A tile, checked to have a level of at most 63 and a width of 1 to 256.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Tile, TileError> {
        if level > MAX_LEVEL || width == 0 || u64::from(width) > TILE_WIDTH {
            return Err(TileError::InvalidTile {
                level,
                index,
                width,
            });
        }
        Ok(Tile {
            level,
            index,
            width,
        })
    }

    /// Whether the tile has fewer than 256 hashes.
    pub fn is_partial(&self) -> bool {
        u64::from(self.width) < TILE_WIDTH
    }

    /// The tile's path, `tile/<L>/<N>[.p/<W>]`, e.g. `tile/0/x001/x234/067.p/8`. The `.p/<W>`
    /// suffix is present only for partial tiles.
    pub fn path(&self) -> String {
        let mut out = format!("tile/{}/", self.level);
        write_index_and_width(&mut out, self.index, self.width);
        out
    }

    /// The path of the entry bundle behind level-0 tile `index`, `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(index: u64, width: u16) -> String {
        let mut out = String::from("tile/entries/");
        write_index_and_width(&mut out, index, width);
        out
    }
}

impl TilePath {
    /// The path this value was parsed from (the canonical form is the only one accepted).
    pub fn path(&self) -> String {
        match *self {
            TilePath::Hashes(tile) => tile.path(),
            TilePath::Entries { index, width } => Tile::entries_path(index, width),
        }
    }
}

/// Writes `<N>[.p/<W>]`: `N` in zero-padded groups of three digits, all but the last
/// prefixed with `x`, so that a file system can hold the tiles without a file and a directory
/// ever sharing a name.
fn write_index_and_width(out: &mut String, index: u64, width: u16) {
    // u64::MAX has 20 digits: at most 7 groups.
    let mut groups = [0u64; 7];
    let mut count = 0;
    let mut rest = index;
    loop {
        groups[count] = rest % 1000;
        count += 1;
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    for (i, group) in groups[..count].iter().enumerate().rev() {
        // Writing to a String cannot fail.
        let _ = if i > 0 {
            write!(out, "x{group:03}/")
        } else {
            write!(out, "{group:03}")
        };
    }
    if u64::from(width) < TILE_WIDTH {
        let _ = write!(out, ".p/{width}");
    }
}

/// Parses a `tile/...` path (without the log's URL prefix). Only the canonical form is
/// accepted, so that each resource has one name: a level of 0 to 63 and a width of 1 to 255
/// without leading zeros, index groups of exactly three digits with no leading all-zero group,
/// and nothing before or after.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TileError> {
    let invalid = |reason| TileError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| invalid("it must start with \"tile/\""))?;
    let (level, rest) = rest
        .split_once('/')
        .ok_or_else(|| invalid("it must have a level or \"entries\" and an index"))?;
    let (index, width) = match rest.split_once(".p/") {
        None => (rest, TILE_WIDTH as u16),
        Some((index, width)) => {
            let width = parse_decimal(width).map_err(invalid)?;
            if width == 0 || width >= TILE_WIDTH {
                return Err(invalid("a partial width must be 1 to 255"));
            }
            (index, width as u16)
        }
    };
    let index = parse_index(index).map_err(invalid)?;
    if level == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level = parse_decimal(level).map_err(invalid)?;
    if level > u64::from(MAX_LEVEL) {
        return Err(invalid("the level must be at most 63"));
    }
    Ok(TilePath::Hashes(Tile {
        level: level as u8,
        index,
        width,
    }))
}

/// A decimal number with no sign and no leading zeros.
fn parse_decimal(text: &str) -> Result<u64, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a level or width must be a decimal number");
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err("a level or width must not have leading zeros");
    }
    text.parse()
        .map_err(|_| "a level or width is too large to be valid")
}

/// `x001/x234/067` -> 1234067.
fn parse_index(text: &str) -> Result<u64, &'static str> {
    let mut groups = text.split('/').peekable();
    let mut value = 0u64;
    let mut first = true;
    while let Some(group) = groups.next() {
        let last = groups.peek().is_none();
        let digits = if last {
            group
        } else {
            group
                .strip_prefix('x')
                .ok_or("every index group but the last must start with 'x'")?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an index group must be exactly three digits");
        }
        if first && !last && digits == "000" {
            return Err("an index must not start with a group of zeros");
        }
        first = false;
        let group: u64 = digits
            .parse()
            .map_err(|_| "an index group must be exactly three digits")?;
        value = value
            .checked_mul(1000)
            .and_then(|v| v.checked_add(group))
            .ok_or("the index does not fit in 64 bits")?;
    }
    Ok(value)
}

/// Whether `tile` names content that the tree of `size` leaves fully determines: a valid level
/// and width, and every hash in it a complete subtree of the tree. That covers the full tiles,
/// the current partial tile at each level, and the narrower partial tiles published for earlier
/// tree sizes, which stay valid (the spec lets a log keep serving them). A server can serve
/// exactly the tiles for which this is true. Sizes above [`MAX_TREE_SIZE`] are treated as that
/// size.
pub fn tile_exists(tile: &Tile, size: u64) -> bool {
    if tile.level > MAX_LEVEL || tile.width == 0 || u64::from(tile.width) > TILE_WIDTH {
        return false;
    }
    // The number of complete subtrees at tree level 8 * L; none at all from level 8 up. Trees
    // are limited to MAX_TREE_SIZE leaves, the most the stored-hash array can address.
    let Some(hashes) = size
        .min(MAX_TREE_SIZE)
        .checked_shr(u32::from(tile.level) * u32::from(TILE_HEIGHT))
    else {
        return false;
    };
    let end = u128::from(tile.index) * u128::from(TILE_WIDTH) + u128::from(tile.width);
    end <= u128::from(hashes)
}

/// The tiles that growing the tree from `old_size` to `new_size` leaves creates or widens, at
/// every level, each with its width at `new_size`: what an appender must (re)publish. Empty if
/// `new_size <= old_size`. Sizes above [`MAX_TREE_SIZE`] are treated as that size.
pub fn new_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    // Trees are limited to MAX_TREE_SIZE leaves, the most the stored-hash array can address.
    let (old_size, new_size) = (old_size.min(MAX_TREE_SIZE), new_size.min(MAX_TREE_SIZE));
    let mut tiles = Vec::new();
    if new_size <= old_size {
        return tiles;
    }
    for level in 0..=MAX_LEVEL {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let (Some(old), Some(new)) = (old_size.checked_shr(shift), new_size.checked_shr(shift))
        else {
            break;
        };
        // If no hash at this level was added, none was at the levels above either.
        if old == new {
            break;
        }
        // Hashes old..new of this level were added; they fill these tiles.
        for index in old / TILE_WIDTH..=(new - 1) / TILE_WIDTH {
            let end = new.min((index + 1) * TILE_WIDTH);
            tiles.push(Tile {
                level,
                index,
                // At most 256.
                width: (end - index * TILE_WIDTH) as u16,
            });
        }
    }
    tiles
}

/// The contents of `tile`: its `width` hashes (`width * 32` bytes), those of tree level
/// `8 * level` at indexes `index * 256 ..`, read from the stored-hash array in one call. The
/// caller checks [`tile_exists`] against its tree size first; this only checks that the tile
/// is well formed.
pub fn hash_tile_data(tile: &Tile, r: &(impl HashReader + ?Sized)) -> Result<Vec<u8>, MerkleError> {
    let invalid = || MerkleError::InvalidTile {
        level: tile.level,
        index: tile.index,
        width: tile.width,
    };
    if tile.width == 0 || u64::from(tile.width) > TILE_WIDTH {
        return Err(invalid());
    }
    let level = u32::from(tile.level) * u32::from(TILE_HEIGHT);
    let first = tile.index.checked_mul(TILE_WIDTH).ok_or_else(invalid)?;
    let indexes = (0..u64::from(tile.width))
        .map(|i| checked_stored_hash_index(level, first + i).ok_or_else(invalid))
        .collect::<Result<Vec<u64>, MerkleError>>()?;
    let hashes = read_exact(r, &indexes)?;
    let mut data = Vec::with_capacity(hashes.len() * 32);
    for hash in &hashes {
        data.extend_from_slice(hash.as_bytes());
    }
    Ok(data)
}

/// Encodes entries as an entry bundle: each as a big-endian `u16` length and its bytes.
pub fn encode_entry_bundle(entries: &[&[u8]]) -> Result<Vec<u8>, TileError> {
    let total = entries.iter().map(|e| 2 + e.len()).sum();
    let mut out = Vec::with_capacity(total);
    for (index, entry) in entries.iter().enumerate() {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong {
            index,
            len: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries, borrowing from `bytes`. Strict: a cut-off length or
/// entry is an error. An empty input is an empty bundle; checking the number of entries against
/// the tile width is the caller's business.
pub fn decode_entry_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let index = entries.len();
        let Some(prefix) = bytes.get(offset..offset + 2) else {
            return Err(TileError::TruncatedLength { index, offset });
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let start = offset + 2;
        let Some(entry) = bytes.get(start..start + len) else {
            return Err(TileError::TruncatedEntry {
                index,
                offset,
                len,
                available: bytes.len() - start,
            });
        };
        entries.push(entry);
        offset = start + len;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{Hash, leaf_hash, node_hash};
    use crate::merkle::{TreeBuilder, stored_hash_count, stored_hash_index};

    fn tile(level: u8, index: u64, width: u16) -> Tile {
        Tile::new(level, index, width).unwrap()
    }

    #[test]
    fn paths_follow_the_spec_examples() {
        assert_eq!(tile(0, 1234067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(tile(0, 1234067, 8).path(), "tile/0/x001/x234/067.p/8");
        assert_eq!(tile(0, 0, 256).path(), "tile/0/000");
        assert_eq!(tile(1, 5, 17).path(), "tile/1/005.p/17");
        assert_eq!(tile(63, 1000, 255).path(), "tile/63/x001/000.p/255");
        assert_eq!(
            tile(2, u64::MAX, 1).path(),
            "tile/2/x018/x446/x744/x073/x709/x551/615.p/1"
        );
        assert_eq!(
            Tile::entries_path(1234067, 256),
            "tile/entries/x001/x234/067"
        );
        assert_eq!(Tile::entries_path(0, 112), "tile/entries/000.p/112");
    }

    #[test]
    fn paths_round_trip() {
        let indexes = [0, 1, 999, 1000, 1001, 999_999, 1_000_000, 1234067, u64::MAX];
        for index in indexes {
            for width in [1, 2, 112, 255, 256] {
                for level in [0, 1, 9, 63] {
                    let t = tile(level, index, width);
                    assert_eq!(parse_tile_path(&t.path()), Ok(TilePath::Hashes(t)));
                    assert_eq!(TilePath::Hashes(t).path(), t.path());
                }
                let path = Tile::entries_path(index, width);
                let parsed = parse_tile_path(&path).unwrap();
                assert_eq!(parsed, TilePath::Entries { index, width });
                assert_eq!(parsed.path(), path);
            }
        }
        assert_eq!(
            parse_tile_path("tile/0/x001/x234/067.p/8"),
            Ok(TilePath::Hashes(tile(0, 1234067, 8)))
        );
    }

    #[test]
    fn malformed_paths_are_rejected() {
        let bad = [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tiles/0/000",
            "tile/0/000/",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/1234",
            "tile/0/x000",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/x1/002",
            "tile/0/x0001/002",
            "tile/0/X001/002",
            "tile/0/x000/002",
            "tile/0/x000/x001/002",
            "tile/0/+01",
            "tile/0/-01",
            "tile/0/ 01",
            "tile/0/01a",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/99999999999999999999999/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/a/000",
            "tile//000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/300",
            "tile/0/000.p/08",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.p/8/",
            "tile/0/000.p/8.p/9",
            "tile/0/000.q/8",
            "tile/0/000/.p/8",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/entries/",
            "tile/entries/1",
            "tile/entries/000.p/256",
            "tile/entries/x000/001",
            "tile/Entries/000",
            "tile/0/000?x",
        ];
        for path in bad {
            let result = parse_tile_path(path);
            assert!(
                matches!(result, Err(TileError::InvalidPath { .. })),
                "{path:?} was accepted as {result:?}"
            );
        }
        let message = parse_tile_path("tile/64/000").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid tile path \"tile/64/000\": the level must be at most 63"
        );
    }

    #[test]
    fn tile_validation() {
        assert!(Tile::new(64, 0, 1).is_err());
        assert!(Tile::new(0, 0, 0).is_err());
        assert!(Tile::new(0, 0, 257).is_err());
        assert!(!tile(0, 0, 256).is_partial());
        assert!(tile(0, 0, 255).is_partial());
    }

    #[test]
    fn the_spec_example_of_a_tree_of_70000_leaves() {
        // "273 full level 0 tiles, one partial level 0 tile of width 112, one full level 1
        // tile, one partial level 1 tile of width 17, and one partial level 2 tile of width 1."
        let tiles = new_tiles(0, 70_000);
        let mut expected: Vec<Tile> = (0..273).map(|i| tile(0, i, 256)).collect();
        expected.extend([
            tile(0, 273, 112),
            tile(1, 0, 256),
            tile(1, 1, 17),
            tile(2, 0, 1),
        ]);
        assert_eq!(tiles, expected);
        for t in &expected {
            assert!(tile_exists(t, 70_000), "{t:?}");
        }
        assert!(!tile_exists(&tile(0, 273, 112), 69_999));
        assert!(tile_exists(&tile(0, 273, 111), 69_999));
        assert!(!tile_exists(&tile(0, 273, 113), 70_000));
        assert!(!tile_exists(&tile(0, 273, 256), 70_000));
        assert!(!tile_exists(&tile(0, 274, 1), 70_000));
        assert!(!tile_exists(&tile(1, 1, 18), 70_000));
        assert!(!tile_exists(&tile(2, 0, 2), 70_000));
        assert!(!tile_exists(&tile(3, 0, 1), 70_000));
        // Narrower partial tiles from earlier checkpoints remain valid content.
        assert!(tile_exists(&tile(0, 273, 1), 70_000));
        assert!(tile_exists(&tile(0, 5, 17), 70_000));

        // "A tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1."
        assert_eq!(new_tiles(0, 256), vec![tile(0, 0, 256), tile(1, 0, 1)]);
        assert!(new_tiles(0, 0).is_empty());
        assert!(new_tiles(10, 10).is_empty());
        assert!(new_tiles(10, 5).is_empty());
    }

    #[test]
    fn new_tiles_lists_exactly_what_changed() {
        // A tile is new or widened exactly when its width at the new size differs from its
        // width at the old size.
        let width_at = |level: u8, index: u64, size: u64| -> u64 {
            let hashes = size >> (8 * u32::from(level));
            hashes.saturating_sub(index * 256).min(256)
        };
        let sizes = [
            0u64, 1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000, 200_000,
        ];
        for &old in &sizes {
            for &new in &sizes {
                let tiles = new_tiles(old, new);
                let mut expected = Vec::new();
                if new > old {
                    for level in 0..4u8 {
                        for index in 0..=(new >> (8 * u32::from(level))) / 256 {
                            let width = width_at(level, index, new);
                            if width != 0 && width != width_at(level, index, old) {
                                expected.push(tile(level, index, width as u16));
                            }
                        }
                    }
                }
                assert_eq!(tiles, expected, "{old} -> {new}");
                assert!(tiles.iter().all(|t| tile_exists(t, new)));
            }
        }
        // The last leaf of the largest supported tree completes a tile at each of eight levels.
        let top = new_tiles(MAX_TREE_SIZE - 1, MAX_TREE_SIZE);
        assert_eq!(top.len(), 8);
        assert!(top[..7].iter().all(|t| !t.is_partial()));
        assert_eq!(top[7], tile(7, 0, 128));
        // Sizes beyond it are clamped to it.
        assert_eq!(new_tiles(MAX_TREE_SIZE - 1, u64::MAX), top);
        assert!(new_tiles(MAX_TREE_SIZE, u64::MAX).is_empty());
    }

    /// The naive root of a list of leaf hashes (RFC 9162 §2.1.1).
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Hash::empty_root(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn hash_tiles_hold_the_roots_of_the_tiles_below() {
        // 5 full level-0 tiles and a partial one: level-1 tile 0 has width 5.
        let size = 5 * 256 + 77;
        let leaves: Vec<Hash> = (0..size)
            .map(|i: u64| leaf_hash(&i.to_le_bytes()))
            .collect();
        let mut builder = TreeBuilder::new();
        let mut stored = Vec::new();
        for leaf in &leaves {
            builder.push(*leaf, &mut stored);
        }
        assert_eq!(stored.len() as u64, stored_hash_count(size));

        let tiles = new_tiles(0, size);
        assert_eq!(
            tiles,
            (0..5)
                .map(|i| tile(0, i, 256))
                .chain([tile(0, 5, 77), tile(1, 0, 5)])
                .collect::<Vec<_>>()
        );
        for t in &tiles {
            let data = hash_tile_data(t, &stored).unwrap();
            assert_eq!(data.len(), usize::from(t.width) * 32);
            let span = 256usize.pow(u32::from(t.level));
            for (i, chunk) in data.chunks(32).enumerate() {
                let first = (t.index as usize * 256 + i) * span;
                let expected = mth(&leaves[first..first + span]);
                assert_eq!(Hash::from_slice(chunk).unwrap(), expected, "{t:?} hash {i}");
            }
        }
        // A level-1 hash is the root of a full level-0 tile's 256 hashes.
        let level1 = hash_tile_data(&tile(1, 0, 5), &stored).unwrap();
        for n in 0..5u64 {
            let level0 = hash_tile_data(&tile(0, n, 256), &stored).unwrap();
            let below: Vec<Hash> = level0
                .chunks(32)
                .map(|c| Hash::from_slice(c).unwrap())
                .collect();
            let start = n as usize * 32;
            assert_eq!(&level1[start..start + 32], mth(&below).as_bytes());
            assert_eq!(
                stored[stored_hash_index(8, n) as usize].as_bytes(),
                &level1[start..start + 32]
            );
        }
        // Narrower partial tiles are prefixes of wider ones.
        let wide = hash_tile_data(&tile(0, 5, 77), &stored).unwrap();
        assert_eq!(
            hash_tile_data(&tile(0, 5, 10), &stored).unwrap(),
            wide[..320]
        );
        // Tiles beyond the stored hashes fail in the reader.
        assert!(matches!(
            hash_tile_data(&tile(0, 5, 78), &stored),
            Err(MerkleError::Read(_))
        ));
        assert!(matches!(
            hash_tile_data(&tile(1, 0, 6), &stored),
            Err(MerkleError::Read(_))
        ));
    }

    #[test]
    fn malformed_tiles_are_refused_before_reading() {
        let nothing: &[Hash] = &[];
        for t in [
            Tile {
                level: 0,
                index: 0,
                width: 0,
            },
            Tile {
                level: 0,
                index: 0,
                width: 257,
            },
            Tile {
                level: 8,
                index: 0,
                width: 1,
            },
            Tile {
                level: 63,
                index: 0,
                width: 1,
            },
            Tile {
                level: 0,
                index: u64::MAX,
                width: 1,
            },
            Tile {
                level: 7,
                index: 1,
                width: 1,
            },
            Tile {
                level: 7,
                index: 0,
                width: 129,
            },
        ] {
            assert!(
                matches!(
                    hash_tile_data(&t, nothing),
                    Err(MerkleError::InvalidTile { .. })
                ),
                "{t:?}"
            );
            assert!(!tile_exists(&t, u64::MAX), "{t:?}");
        }
        // The last tile that fits under 2^63 leaves is addressable.
        assert!(tile_exists(&tile(7, 0, 128), MAX_TREE_SIZE));
        assert!(matches!(
            hash_tile_data(&tile(7, 0, 128), nothing),
            Err(MerkleError::Read(_))
        ));
    }

    #[test]
    fn entry_bundles_round_trip() {
        let long = vec![0xab; 65_535];
        let entries: Vec<&[u8]> = vec![b"", b"a", b"hello world", &long, b"\x00\x01"];
        let bundle = encode_entry_bundle(&entries).unwrap();
        assert_eq!(
            bundle.len(),
            entries.iter().map(|e| e.len() + 2).sum::<usize>()
        );
        assert_eq!(&bundle[..5], b"\x00\x00\x00\x01a");
        assert_eq!(decode_entry_bundle(&bundle).unwrap(), entries);
        assert_eq!(encode_entry_bundle(&[]).unwrap(), Vec::<u8>::new());
        assert_eq!(decode_entry_bundle(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn oversized_entries_are_refused() {
        let too_long = vec![0u8; 65_536];
        assert_eq!(
            encode_entry_bundle(&[b"ok", &too_long]),
            Err(TileError::EntryTooLong {
                index: 1,
                len: 65_536
            })
        );
    }

    #[test]
    fn truncated_bundles_are_refused() {
        let bundle = encode_entry_bundle(&[b"abc", b"defg"]).unwrap();
        // Every proper prefix that does not end on an entry boundary is an error.
        for cut in 0..bundle.len() {
            let result = decode_entry_bundle(&bundle[..cut]);
            match cut {
                0 => assert_eq!(result.unwrap(), Vec::<&[u8]>::new()),
                5 => assert_eq!(result.unwrap(), vec![b"abc"]),
                1 | 6 => assert!(
                    matches!(result, Err(TileError::TruncatedLength { .. })),
                    "cut {cut}"
                ),
                _ => assert!(
                    matches!(result, Err(TileError::TruncatedEntry { .. })),
                    "cut {cut}"
                ),
            }
        }
        assert_eq!(
            decode_entry_bundle(&bundle[..8]),
            Err(TileError::TruncatedEntry {
                index: 1,
                offset: 5,
                len: 4,
                available: 1
            })
        );
        assert_eq!(
            decode_entry_bundle(b"\x00\x03a\x00"),
            Err(TileError::TruncatedEntry {
                index: 0,
                offset: 0,
                len: 3,
                available: 2
            })
        );
    }
}
