//! What a crash left at the end of a SQLite write-ahead log, read the way SQLite's recovery
//! reads it (<https://www.sqlite.org/fileformat2.html#the_write_ahead_log>).
//!
//! A WAL is a 32-byte header (magic, format version, page size, checkpoint sequence, two
//! salts, a checksum of the first 24 bytes) followed by frames: a 24-byte frame header (page
//! number, the database size after commit — non-zero only in the last frame of a transaction,
//! its *commit frame* — the header's two salts, and a checksum) and one page. The checksums
//! are cumulative: each frame's covers its first 8 header bytes and its page, starting from
//! the previous frame's (the header's for the first frame). A frame is valid when its salts
//! match the header's and its checksum matches; SQLite's recovery keeps every frame up to the
//! last valid commit frame before the first invalid one, and ignores the rest.
//!
//! What it ignores after a crash is an *unfinished write*: frames of a transaction whose
//! commit frame never reached the file (or reached it torn), and a frame cut short. Such a
//! transaction never returned from its commit, so nothing in it was acknowledged. Frames that
//! carry other salts are left over from an earlier generation of the WAL (SQLite rewinds the
//! WAL after a checkpoint without truncating it): their content is already in the database,
//! so they are not counted.
//!
//! SQLite's recovery only rebuilds the WAL index (`-shm`); the bytes it ignores stay in the
//! file until a later write overwrites them. [`discard_unfinished`] therefore reads the file
//! with the database's write lock held — no other connection can be in the middle of a write
//! then — and afterwards truncates the WAL with a checkpoint, so that leftovers are reported
//! once, not again by every later start.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

const HEADER_BYTES: usize = 32;
const FRAME_HEADER_BYTES: usize = 24;
/// The magic number with its low bit clear; the low bit says the checksums' byte order.
const MAGIC: u32 = 0x377f_0682;
const FORMAT_VERSION: u32 = 3_007_000;

/// The WAL file of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

/// How a WAL file divides into what recovery keeps and what it discards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Bytes up to the end of the last valid commit frame (the header included; 0 when the
    /// header is not valid, and recovery ignores the whole file).
    pub committed_bytes: u64,
    /// Frames up to and including the last valid commit frame.
    pub committed_frames: u64,
    /// Bytes after them that belong to an unfinished write: frames of this WAL generation
    /// that no valid commit frame follows, a frame cut short, or a torn header.
    pub discarded_bytes: u64,
    /// The frames those bytes make up, a frame cut short counting as one (0 when the header
    /// is torn: without it there is no page size to count frames by).
    pub discarded_frames: u64,
}

/// Reads a WAL from `reader` and says what SQLite's recovery keeps and discards of it.
pub fn inspect(mut reader: impl Read) -> io::Result<Inspection> {
    let mut header = [0u8; HEADER_BYTES];
    let header_len = read_up_to(&mut reader, &mut header)?;
    let parsed = (header_len == HEADER_BYTES)
        .then(|| Header::parse(&header))
        .flatten();
    let Some(header) = parsed else {
        // A WAL whose header is short or does not check out holds nothing recovery keeps
        // (and, without a page size, no frames to count).
        let rest = io::copy(&mut reader, &mut io::sink())?;
        return Ok(Inspection {
            discarded_bytes: header_len as u64 + rest,
            ..Inspection::default()
        });
    };
    let frame_bytes = FRAME_HEADER_BYTES + header.page_size;
    let mut frame = vec![0u8; frame_bytes];
    let mut checksum = header.checksum;
    let mut inspection = Inspection {
        committed_bytes: HEADER_BYTES as u64,
        ..Inspection::default()
    };
    // Valid frames after the last commit frame: discarded unless a commit frame follows.
    let (mut pending_bytes, mut pending_frames) = (0u64, 0u64);
    let mut validating = true;
    loop {
        let len = read_up_to(&mut reader, &mut frame)?;
        if len == 0 {
            break;
        }
        let frame = &frame[..len];
        if validating
            && len == frame_bytes
            && let Some(next) = header.check_frame(frame, checksum)
        {
            checksum = next;
            pending_bytes += len as u64;
            pending_frames += 1;
            if be32(&frame[4..8]) != 0 {
                inspection.committed_bytes += pending_bytes;
                inspection.committed_frames += pending_frames;
                (pending_bytes, pending_frames) = (0, 0);
            }
            continue;
        }
        // From the first invalid frame on, recovery keeps nothing; what still carries this
        // generation's salts was written by the same unfinished write.
        validating = false;
        if !header.same_salts(frame) {
            break;
        }
        pending_bytes += len as u64;
        pending_frames += 1;
    }
    inspection.discarded_bytes = pending_bytes;
    inspection.discarded_frames = pending_frames;
    Ok(inspection)
}

/// An unfinished write that recovery discarded from a database's WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// The WAL file.
    pub file: PathBuf,
    pub bytes: u64,
    pub frames: u64,
}

/// Inspects the WAL of the database at `db`, which `conn` has open, and returns the unfinished
/// write at its end, if there is one. Runs before the connection writes anything: the WAL is
/// read under the database's write lock (so no other connection is in the middle of a write),
/// and when something is discarded the WAL is then checkpointed and truncated, so the
/// leftover bytes are not mistaken for another unfinished write later.
pub fn discard_unfinished(conn: &Connection, db: &Path) -> rusqlite::Result<Option<Discarded>> {
    let file = wal_path(db);
    if std::fs::metadata(&file).map_or(true, |m| m.len() == 0) {
        return Ok(None);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let inspection = std::fs::File::open(&file).and_then(|f| inspect(io::BufReader::new(f)));
    conn.execute_batch("ROLLBACK")?;
    let inspection = match inspection {
        Ok(inspection) => inspection,
        Err(error) => {
            tracing::warn!(wal = %file.display(), %error, "cannot read the WAL to report what recovery discards");
            return Ok(None);
        }
    };
    if inspection.discarded_bytes == 0 {
        return Ok(None);
    }
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => {
            tracing::debug!(wal = %file.display(), "readers kept the WAL from being truncated after recovery")
        }
        Err(error) => {
            tracing::warn!(wal = %file.display(), %error, "cannot checkpoint the WAL after recovery")
        }
    }
    Ok(Some(Discarded {
        file,
        bytes: inspection.discarded_bytes,
        frames: inspection.discarded_frames,
    }))
}

/// The fields of a valid WAL header that frames are checked against.
struct Header {
    page_size: usize,
    salts: [u8; 8],
    checksum: (u32, u32),
    /// Checksums are over big-endian words (else little-endian).
    big_endian: bool,
}

impl Header {
    fn parse(bytes: &[u8; HEADER_BYTES]) -> Option<Header> {
        let magic = be32(&bytes[0..4]);
        if magic & !1 != MAGIC || be32(&bytes[4..8]) != FORMAT_VERSION {
            return None;
        }
        let page_size = match be32(&bytes[8..12]) {
            1 => 65_536,
            size => size as usize,
        };
        if !page_size.is_power_of_two() || !(512..=65_536).contains(&page_size) {
            return None;
        }
        let big_endian = magic & 1 == 1;
        let checksum = checksum(big_endian, &bytes[..24], (0, 0));
        if checksum != (be32(&bytes[24..28]), be32(&bytes[28..32])) {
            return None;
        }
        Some(Header {
            page_size,
            salts: bytes[16..24].try_into().expect("8 bytes"),
            checksum,
            big_endian,
        })
    }

    /// The running checksum after `frame` when it is valid after `previous`.
    fn check_frame(&self, frame: &[u8], previous: (u32, u32)) -> Option<(u32, u32)> {
        if be32(&frame[0..4]) == 0 || frame[8..16] != self.salts {
            return None;
        }
        let sum = checksum(self.big_endian, &frame[..8], previous);
        let sum = checksum(self.big_endian, &frame[FRAME_HEADER_BYTES..], sum);
        (sum == (be32(&frame[16..20]), be32(&frame[20..24]))).then_some(sum)
    }

    /// Whether what there is of a frame's salt fields matches this header's salts.
    fn same_salts(&self, frame: &[u8]) -> bool {
        let salts = frame.get(8..frame.len().min(16)).unwrap_or(&[]);
        *salts == self.salts[..salts.len()]
    }
}

/// SQLite's WAL checksum: over 32-bit words taken in pairs, continuing from `(s0, s1)`.
fn checksum(big_endian: bool, bytes: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    debug_assert_eq!(bytes.len() % 8, 0);
    let word = |b: &[u8]| {
        let b: [u8; 4] = b.try_into().expect("4 bytes");
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in bytes.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

/// Fills `buf` from `reader` as far as it goes; fewer bytes only at the end of the input.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real WAL written by SQLite, never checkpointed, and its length after each commit.
    struct Wal {
        _dir: tempfile::TempDir,
        bytes: Vec<u8>,
        commits: Vec<u64>,
        page_size: u64,
    }

    /// Commits `transactions` transactions of `rows` rows each (big enough to span several
    /// pages), reading the WAL's length after each commit. The WAL file carries no locks, so
    /// reading it beside the open connection is what `discard_unfinished` does too.
    fn wal(transactions: usize, rows: usize) -> Wal {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let mut commits = vec![std::fs::metadata(wal_path(&db)).unwrap().len()];
        for t in 0..transactions {
            conn.execute_batch("BEGIN").unwrap();
            for r in 0..rows {
                conn.execute(
                    "INSERT INTO t (body) VALUES (?1)",
                    [format!("{t}-{r}-{}", "x".repeat(300))],
                )
                .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
            commits.push(std::fs::metadata(wal_path(&db)).unwrap().len());
        }
        let bytes = std::fs::read(wal_path(&db)).unwrap();
        let page_size: u64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap();
        drop(conn);
        Wal {
            _dir: dir,
            bytes,
            commits,
            page_size,
        }
    }

    #[test]
    fn a_whole_wal_is_all_committed() {
        let wal = wal(3, 20);
        let found = inspect(&wal.bytes[..]).unwrap();
        let frame = FRAME_HEADER_BYTES as u64 + wal.page_size;
        assert_eq!(found.committed_bytes, wal.bytes.len() as u64);
        assert_eq!(
            found.committed_frames,
            (wal.bytes.len() as u64 - HEADER_BYTES as u64) / frame
        );
        assert_eq!((found.discarded_bytes, found.discarded_frames), (0, 0));
    }

    /// Cut anywhere inside the last transaction, recovery keeps the one before and discards
    /// exactly the bytes left of the last one.
    #[test]
    fn a_cut_inside_the_last_transaction_discards_what_is_left_of_it() {
        let wal = wal(3, 20);
        let frame = FRAME_HEADER_BYTES as u64 + wal.page_size;
        let (before, after) = (wal.commits[2], wal.commits[3]);
        assert!(after - before >= 2 * frame, "the transaction spans frames");
        for cut in [
            before + 1,
            before + 20,
            before + frame,
            before + frame + 100,
            after - 1,
        ] {
            let found = inspect(&wal.bytes[..cut as usize]).unwrap();
            assert_eq!(found.committed_bytes, before, "cut at {cut}");
            assert_eq!(found.discarded_bytes, cut - before, "cut at {cut}");
            assert_eq!(
                found.discarded_frames,
                (cut - before).div_ceil(frame),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_damaged_frame_ends_what_recovery_keeps() {
        let wal = wal(3, 20);
        let frame = FRAME_HEADER_BYTES as u64 + wal.page_size;
        let mut bytes = wal.bytes.clone();
        // A byte of the second transaction's first page: its checksum, and so every later
        // frame's, no longer matches.
        bytes[(wal.commits[1] + FRAME_HEADER_BYTES as u64 + 10) as usize] ^= 0xff;
        let found = inspect(&bytes[..]).unwrap();
        assert_eq!(found.committed_bytes, wal.commits[1]);
        assert_eq!(
            found.discarded_bytes,
            wal.bytes.len() as u64 - wal.commits[1]
        );
        assert_eq!(
            found.discarded_frames,
            (wal.bytes.len() as u64 - wal.commits[1]) / frame
        );
    }

    /// Frames with another generation's salts (left after SQLite rewound the WAL) are not an
    /// unfinished write: their content was checkpointed before the rewind.
    #[test]
    fn frames_of_an_earlier_generation_are_not_counted() {
        let wal = wal(3, 20);
        let frame = FRAME_HEADER_BYTES as u64 + wal.page_size;
        let mut bytes = wal.bytes.clone();
        let first_of_last = wal.commits[2] as usize;
        let mut at = first_of_last;
        while at < bytes.len() {
            bytes[at + 8] ^= 0x01;
            at += frame as usize;
        }
        let found = inspect(&bytes[..]).unwrap();
        assert_eq!(found.committed_bytes, wal.commits[2]);
        assert_eq!((found.discarded_bytes, found.discarded_frames), (0, 0));
    }

    #[test]
    fn a_torn_header_discards_the_whole_file() {
        let wal = wal(1, 5);
        for cut in [1usize, 31] {
            let found = inspect(&wal.bytes[..cut]).unwrap();
            assert_eq!(found.committed_bytes, 0);
            assert_eq!(found.discarded_bytes, cut as u64);
        }
        let mut bytes = wal.bytes.clone();
        bytes[12] ^= 0xff;
        let found = inspect(&bytes[..]).unwrap();
        assert_eq!(found.committed_bytes, 0);
        assert_eq!(found.discarded_bytes, bytes.len() as u64);
        assert_eq!(inspect(&[][..]).unwrap(), Inspection::default());
    }
}
