//! Where each file of a tenant's archive lives, relative to the target's root: paths a person
//! can browse, the same as the server's tile API under `/logs/{tenant}/`.
//!
//! ```text
//! <tenant>/verifier-key          the log's verifier key (public), written once
//! <tenant>/tile/<L>/<N>[.p/<W>]  hash tiles, full and partial
//! <tenant>/tile/entries/<N>[.p/<W>]  entry bundles
//! <tenant>/checkpoint/<size>     the signed checkpoint of each archived size
//! <tenant>/manifest/<size>       the signed manifest of the run that archived up to <size>
//! <tenant>/seal/<day>.<issue>    each daily seal (a signed note of its own), written once
//! ```

use sealtrail_core::tiles::{TILE_WIDTH, Tile};

/// The key of the tenant's verifier key file.
pub fn verifier_key(tenant: &str) -> String {
    format!("{tenant}/verifier-key")
}

/// The folder of the tenant's checkpoints.
pub fn checkpoints(tenant: &str) -> String {
    format!("{tenant}/checkpoint/")
}

/// The folder of the tenant's manifests.
pub fn manifests(tenant: &str) -> String {
    format!("{tenant}/manifest/")
}

/// The folder of the tenant's daily seals.
pub fn seals(tenant: &str) -> String {
    format!("{tenant}/seal/")
}

/// The key of one issue of a day's seal.
pub fn seal(tenant: &str, day: &str, issue: u32) -> String {
    format!("{tenant}/seal/{day}.{issue}")
}

/// The `(day, issue)` of each seal key in `keys` (the others ignored), in order.
pub fn seals_in(tenant: &str, keys: &[String]) -> Vec<(String, u32)> {
    let folder = seals(tenant);
    let mut found: Vec<(String, u32)> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(&folder))
        .filter_map(|rest| {
            let (day, issue) = rest.split_once('.')?;
            let canonical = issue == "0" || !issue.starts_with('0');
            (sealtrail_core::seal::is_day(day) && canonical)
                .then(|| Some((day.to_string(), issue.parse().ok()?)))
                .flatten()
        })
        .collect();
    found.sort();
    found
}

pub fn checkpoint(tenant: &str, size: u64) -> String {
    format!("{tenant}/checkpoint/{size}")
}

pub fn manifest(tenant: &str, size: u64) -> String {
    format!("{tenant}/manifest/{size}")
}

/// The key of a hash tile, relative to the tenant (as manifests list it): `tile/<L>/…`.
pub fn tile(t: &Tile) -> String {
    t.path()
}

/// The key of the entry bundle behind level-0 tile `t`: `tile/entries/…`.
pub fn bundle(t: &Tile) -> String {
    Tile::entries_path(t.index, t.width)
}

/// A tenant-relative path made absolute.
pub fn in_tenant(tenant: &str, relative: &str) -> String {
    format!("{tenant}/{relative}")
}

/// The sizes named by keys `<folder><size>` (the others ignored), ascending.
pub fn sizes_in(folder: &str, keys: &[String]) -> Vec<u64> {
    let mut sizes: Vec<u64> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(folder))
        .filter(|rest| !rest.is_empty() && (rest == &"0" || !rest.starts_with('0')))
        .filter_map(|rest| rest.parse().ok())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// The tiles of a tree of `size` leaves at `level`: full ones, then the partial one if any.
pub fn tiles_at(level: u8, size: u64) -> Vec<Tile> {
    let shift = u32::from(level) * 8;
    let Some(hashes) = size.checked_shr(shift) else {
        return Vec::new();
    };
    let hashes = if shift >= 64 { 0 } else { hashes };
    let full = hashes / TILE_WIDTH;
    let mut out: Vec<Tile> = (0..full)
        .map(|index| Tile {
            level,
            index,
            width: TILE_WIDTH as u16,
        })
        .collect();
    let rest = hashes % TILE_WIDTH;
    if rest > 0 {
        out.push(Tile {
            level,
            index: full,
            width: rest as u16,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_tile_apis() {
        let t = Tile {
            level: 0,
            index: 1234,
            width: 5,
        };
        assert_eq!(bundle(&t), "tile/entries/x001/234.p/5");
        assert_eq!(tile(&t), "tile/0/x001/234.p/5");
        assert_eq!(checkpoint("acme", 70), "acme/checkpoint/70");
        assert_eq!(
            sizes_in(
                "acme/manifest/",
                &[
                    "acme/manifest/10".into(),
                    "acme/manifest/2".into(),
                    "acme/manifest/010".into(),
                    "acme/manifest/x".into(),
                    "other/manifest/99".into()
                ]
            ),
            vec![2, 10]
        );
    }

    #[test]
    fn tiles_of_a_size() {
        assert_eq!(tiles_at(0, 0), vec![]);
        let t = tiles_at(0, 513);
        assert_eq!(t.len(), 3);
        assert_eq!((t[2].index, t[2].width), (2, 1));
        let t = tiles_at(1, 256 * 256 + 256 * 3 + 7);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].width, t[1].index, t[1].width), (256, 1, 3));
        assert_eq!(tiles_at(2, 256 * 256 - 1), vec![]);
    }
}
