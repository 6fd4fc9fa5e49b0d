//! The local spool: events accepted while the PostgreSQL store is unreachable, and the file
//! format and crash-safety code every spool file shares (a frozen tenant's hold file too).
//!
//! With the embedded store, the store *is* the data directory, so there is nothing to fall
//! back to. With PostgreSQL, a network partition or a database restart would otherwise turn
//! every producer's audit write into an error it may swallow: this is how audit records have
//! been lost. So when a group commit fails because the database cannot be reached, the
//! writer appends the group's events to a file in the data directory, fsyncs it, and only
//! then answers `202 {"status": "spooled", "id", "received_at"}`. Once the database answers
//! again, the writer drains the spool into the log in the order the events were accepted,
//! before any event that arrived after them.
//!
//! **File format** (`DIR/spool/events.spool`), a sequence of records:
//!
//! ```text
//! record := body_len: u32 LE | check: first 8 bytes of SHA-256(body) | body
//! body   := version: u8 (1) | tenant_len: u8 | tenant | key_len: u16 LE (0xFFFF: none) | key
//!           | entry: the event's canonical entry with its id and received_at, and a
//!             placeholder seq (2^53 - 1) and prev_hash (zeros)
//! ```
//!
//! The entry carries the id and `received_at` given at acceptance; draining gives it its real
//! seq and `prev_hash`. Building it with the largest possible seq checks, before the `202`,
//! that the event will fit in an entry whatever seq it gets.
//!
//! **Crash safety.** A record counts once its bytes and the fsync that follows them have
//! completed; only then is anyone answered. A record cut short or damaged at the end of the
//! file can therefore only be an unfinished write nobody was told about: on opening, the spool
//! truncates the file after the last whole record and reports what it discarded.
//!
//! **Exactly once.** Draining commits a chunk of records in one transaction. A record whose
//! id is already in its tenant's log (a chunk committed just before a crash, or a commit whose
//! answer was lost with the connection) is skipped, so nothing is appended twice; the
//! database's unique `(tenant, id)` constraint backs this up. A record whose idempotency key
//! the log already holds for the same event is skipped as the duplicate it is; one whose key
//! the log holds for a different event was acknowledged all the same, so it is appended under
//! its own id without claiming the key (see `ledger::group`). The file is emptied once every
//! record in it is in the log.
//!
//! **Idempotency while waiting.** The spool remembers the idempotency key of every waiting
//! record with the [`event_digest`] of its event: a retry of the same event gets the same
//! `202`, a different event under the key is refused, as it would be by the log.
//!
//! **Record of a drain.** The file is emptied only once every record in it is in the log, so
//! the records in it are one spool period: from the first event accepted into an empty spool
//! to the spool drained. The spool keeps what a record of that period needs
//! ([`SpoolPeriod`]: how many events, of which tenants, accepted when), rebuilt from the file
//! when it is opened again after a crash; the writer appends `sealtrail.spool.drained` with it
//! to the `_system` log in the transaction of the last chunk (see `ledger::spooling`).
//!
//! **Limits.** The file holds at most `spool_max_bytes` (default [`DEFAULT_MAX_BYTES`]) of
//! records; beyond that, and when the disk is full, events are refused with `503` / `507`
//! instead of being accepted without a durable copy.
//!
//! **Hold files.** A [`Spool`] is a file at the path it is opened with: the outage spool at
//! [`spool_path`], and, with `on_frozen = "spool"`, one hold file per frozen tenant at
//! [`hold_path`] (`DIR/spool/frozen/<tenant>.spool`), which keeps the tenant's events while it
//! is frozen (see `ledger::holding`). Both are this format, opened, appended, truncated and
//! drained by this code; each file has its own `spool_max_bytes` bound.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sealtrail_core::canonical::{Entry, event_digest};
use sealtrail_core::{Hash, Timestamp};
use sealtrail_store::DataDir;
use sha2::{Digest, Sha256};

/// Default bound on the spool file's size.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

const VERSION: u8 = 1;
const NO_KEY: u16 = u16::MAX;
const HEADER: usize = 12;

/// The outage spool's file inside the data directory.
pub fn spool_path(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).spool().join("events.spool")
}

/// The folder of the frozen tenants' hold files (`DIR/spool/frozen/`).
pub fn holds_dir(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).spool().join("frozen")
}

/// The suffix of every spool file's name.
pub const SPOOL_SUFFIX: &str = ".spool";

/// A frozen tenant's hold file (`DIR/spool/frozen/<tenant>.spool`). A tenant's name is
/// lowercase letters, digits, `-` and `_` (`TenantName`), so it is a file name as it stands.
pub fn hold_path(data_dir: &Path, tenant: &str) -> PathBuf {
    holds_dir(data_dir).join(format!("{tenant}{SPOOL_SUFFIX}"))
}

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub tenant: String,
    pub idempotency_key: Option<String>,
    /// The canonical entry with placeholder seq and prev_hash (see the module docs).
    pub entry: Vec<u8>,
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let tenant = self.tenant.as_bytes();
        let tenant_len = u8::try_from(tenant.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "tenant name too long"))?;
        let key = self.idempotency_key.as_deref().map(str::as_bytes);
        let key_len = match key {
            Some(key) => u16::try_from(key.len())
                .ok()
                .filter(|&n| n != NO_KEY)
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "idempotency key too long")
                })?,
            None => NO_KEY,
        };
        let mut body = Vec::with_capacity(4 + tenant.len() + self.entry.len() + 64);
        body.push(VERSION);
        body.push(tenant_len);
        body.extend_from_slice(tenant);
        body.extend_from_slice(&key_len.to_le_bytes());
        body.extend_from_slice(key.unwrap_or_default());
        body.extend_from_slice(&self.entry);
        let body_len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&body)[..8]);
        out.extend_from_slice(&body);
        Ok(())
    }

    fn decode(body: &[u8]) -> Option<Record> {
        let (&version, rest) = body.split_first()?;
        if version != VERSION {
            return None;
        }
        let (&tenant_len, rest) = rest.split_first()?;
        let (tenant, rest) = rest.split_at_checked(usize::from(tenant_len))?;
        let (key_len, rest) = rest.split_at_checked(2)?;
        let key_len = u16::from_le_bytes([key_len[0], key_len[1]]);
        let (key, entry) = if key_len == NO_KEY {
            (None, rest)
        } else {
            let (key, entry) = rest.split_at_checked(usize::from(key_len))?;
            (Some(String::from_utf8(key.to_vec()).ok()?), entry)
        };
        Some(Record {
            tenant: String::from_utf8(tenant.to_vec()).ok()?,
            idempotency_key: key,
            entry: entry.to_vec(),
        })
    }

    /// The id and acceptance time the entry carries.
    pub fn parsed(&self) -> Option<Entry> {
        Entry::parse(&self.entry).ok()
    }
}

/// What [`Spool::open`] found in an existing file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whole records waiting to be drained.
    pub records: u64,
    /// Bytes after the last whole record, cut off as an unfinished write.
    pub discarded_bytes: u64,
}

/// Counts and age, for `/health` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStatus {
    pub depth: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    /// When the oldest event still waiting was accepted (Unix microseconds).
    pub oldest_received_micros: Option<i64>,
}

/// Why an event could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the spool file {} is full ({bytes} of {max_bytes} bytes, the bound spool_max_bytes sets)",
        path.display()
    )]
    Full {
        path: PathBuf,
        bytes: u64,
        max_bytes: u64,
    },
    #[error("the disk holding the spool {path} is full: {source}")]
    DiskFull { path: PathBuf, source: io::Error },
    #[error("cannot write the spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The events of the spool's current period (every record in the file, drained or not):
/// what the `sealtrail.spool.drained` record says once the file is emptied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolPeriod {
    /// Records whose entry parses.
    pub events: u64,
    /// When the first and the last of them were accepted (their `received_at`).
    pub first_received: Option<Timestamp>,
    pub last_received: Option<Timestamp>,
    /// The first one's id: it names the period.
    pub first_id: Option<String>,
    /// Events per tenant.
    pub tenants: BTreeMap<String, u64>,
}

/// A record as read back for draining, with the file offset just past it.
#[derive(Debug)]
pub struct Pending {
    pub record: Record,
    pub end: u64,
}

/// A waiting record an idempotency key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledKey {
    /// The id and acceptance time its `202` gave.
    pub id: String,
    pub received_at: String,
    /// Its event's [`event_digest`], which a retry under the key must match.
    pub digest: Hash,
}

/// A spool file, owned by the writer thread.
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Length of the file: every byte in it belongs to a whole record.
    len: u64,
    /// Offset of the first record not yet drained.
    drained: u64,
    depth: u64,
    max_bytes: u64,
    oldest: Option<i64>,
    /// Idempotency keys of waiting records, so a retry while the store is down gets the
    /// first answer instead of a second copy (and a different event under the key is told).
    keys: HashMap<(String, String), SpooledKey>,
    /// Every record in the file, drained or not.
    period: SpoolPeriod,
}

impl Spool {
    /// Opens (or creates) the spool file at `path` ([`spool_path`], [`hold_path`]),
    /// truncating an unfinished record at its end. Its folder is created if need be.
    pub fn open(path: &Path, max_bytes: u64) -> Result<(Spool, Recovery), SpoolError> {
        let path = path.to_path_buf();
        let io_error = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        let dir = path.parent().expect("the spool file is in a directory");
        // The spool holds events' full text: private like the store (every folder created on
        // the way too, `DIR/spool/` above the hold files).
        sealtrail_store::layout::create_private_dir(dir).map_err(io_error)?;
        sealtrail_store::layout::create_private_file(&path).map_err(io_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        let mut spool = Spool {
            path: path.clone(),
            file: file.try_clone().map_err(io_error)?,
            len: 0,
            drained: 0,
            depth: 0,
            max_bytes,
            oldest: None,
            keys: HashMap::new(),
            period: SpoolPeriod::default(),
        };
        let mut reader = BufReader::new(&mut file);
        let mut offset = 0u64;
        while let Some((record, next)) = read_record(&mut reader, offset, file_len) {
            spool.remember(&record);
            offset = next;
        }
        let recovery = Recovery {
            records: spool.depth,
            discarded_bytes: file_len - offset,
        };
        if recovery.discarded_bytes > 0 {
            spool.file.set_len(offset).map_err(io_error)?;
            spool.file.sync_all().map_err(io_error)?;
        }
        sync_dir(dir).map_err(io_error)?;
        spool.len = offset;
        spool.file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        Ok((spool, recovery))
    }

    fn remember(&mut self, record: &Record) {
        self.depth += 1;
        let parsed = record.parsed();
        if self.oldest.is_none() {
            self.oldest = parsed.as_ref().map(|e| e.server.received_at.unix_micros());
        }
        if let Some(entry) = &parsed {
            let period = &mut self.period;
            period.events += 1;
            let at = entry.server.received_at;
            if period.first_id.is_none() {
                period.first_id = Some(entry.server.id.to_string());
                period.first_received = Some(at);
            }
            period.last_received = Some(period.last_received.map_or(at, |last| last.max(at)));
            *period.tenants.entry(record.tenant.clone()).or_default() += 1;
        }
        if let (Some(key), Some(entry)) = (&record.idempotency_key, &parsed) {
            // An entry that parsed has a canonical form, so it has a digest.
            if let Ok(digest) = event_digest(&entry.event) {
                let spooled = SpooledKey {
                    id: entry.server.id.to_string(),
                    received_at: entry.server.received_at.to_rfc3339(),
                    digest,
                };
                // The first record under a key is the one it names; a later one is there only
                // because it was acknowledged before the key could be checked.
                self.keys
                    .entry((record.tenant.clone(), key.clone()))
                    .or_insert(spooled);
            }
        }
    }

    /// Appends records and fsyncs them: when this returns `Ok`, they survive a crash. On
    /// error nothing of them is kept.
    pub fn append(&mut self, records: &[Record]) -> Result<(), SpoolError> {
        let mut bytes = Vec::new();
        for record in records {
            record.encode(&mut bytes).map_err(|source| SpoolError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        if self.len + bytes.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.path.clone(),
                bytes: self.len,
                max_bytes: self.max_bytes,
            });
        }
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Take back whatever part of the write reached the file.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            let _ = self.file.sync_all();
            return Err(if is_disk_full(&source) {
                SpoolError::DiskFull {
                    path: self.path.clone(),
                    source,
                }
            } else {
                SpoolError::Io {
                    path: self.path.clone(),
                    source,
                }
            });
        }
        self.len += bytes.len() as u64;
        for record in records {
            self.remember(record);
        }
        Ok(())
    }

    /// Whether records are waiting.
    pub fn is_pending(&self) -> bool {
        self.drained < self.len
    }

    /// Whether draining up to `end` (a [`Pending::end`]) drains the whole file.
    pub fn drains_all(&self, end: u64) -> bool {
        end >= self.len
    }

    /// The events of the current spool period.
    pub fn period(&self) -> &SpoolPeriod {
        &self.period
    }

    /// The waiting record an idempotency key names, if any.
    pub fn spooled_key(&self, tenant: &str, key: &str) -> Option<SpooledKey> {
        self.keys
            .get(&(tenant.to_string(), key.to_string()))
            .cloned()
    }

    /// Up to `max_records` waiting records (and at most about `max_bytes`), oldest first.
    pub fn peek(&self, max_records: usize, max_bytes: u64) -> Result<Vec<Pending>, SpoolError> {
        let io_error = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_error)?;
        file.seek(SeekFrom::Start(self.drained)).map_err(io_error)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut out = Vec::new();
        let mut offset = self.drained;
        while out.len() < max_records && offset - self.drained < max_bytes {
            match read_record(&mut reader, offset, self.len) {
                Some((record, end)) => {
                    out.push(Pending { record, end });
                    offset = end;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Marks every record before `end` as in the log. Once all are, the file is emptied.
    pub fn drained_to(&mut self, end: u64, records: &[Record]) -> Result<(), SpoolError> {
        self.drained = end;
        self.depth = self.depth.saturating_sub(records.len() as u64);
        for record in records {
            if let Some(key) = &record.idempotency_key {
                self.keys.remove(&(record.tenant.clone(), key.clone()));
            }
        }
        if self.drained >= self.len {
            self.file
                .set_len(0)
                .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(|_| ()))
                .and_then(|()| self.file.sync_all())
                .map_err(|source| SpoolError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            self.len = 0;
            self.drained = 0;
            self.depth = 0;
            self.oldest = None;
            self.keys.clear();
            self.period = SpoolPeriod::default();
        } else {
            self.oldest = self
                .peek(1, 1)?
                .first()
                .and_then(|p| p.record.parsed())
                .map(|e| e.server.received_at.unix_micros());
        }
        Ok(())
    }

    /// The file this spool keeps its records in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> SpoolStatus {
        SpoolStatus {
            depth: self.depth,
            bytes: self.len - self.drained,
            max_bytes: self.max_bytes,
            oldest_received_micros: self.oldest,
        }
    }
}

/// A spool file's whole records ([`spool_path`], [`hold_path`]), read without opening the
/// spool (nothing is truncated or locked, so it is safe while a server uses it): `None` when
/// there is no such file. Records a server already drained stay in the file until all of it
/// is drained, so this is an upper bound of what still waits.
pub fn inspect(path: &Path) -> io::Result<Option<SpoolStatus>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let (mut offset, mut depth, mut oldest) = (0u64, 0u64, None);
    while let Some((record, next)) = read_record(&mut reader, offset, file_len) {
        depth += 1;
        if oldest.is_none() {
            oldest = record.parsed().map(|e| e.server.received_at.unix_micros());
        }
        offset = next;
    }
    Ok(Some(SpoolStatus {
        depth,
        bytes: offset,
        max_bytes: DEFAULT_MAX_BYTES,
        oldest_received_micros: oldest,
    }))
}

/// Reads the record at `offset`; `None` at the end of the whole records (end of file, or a
/// record cut short or failing its check).
fn read_record(reader: &mut impl Read, offset: u64, file_len: u64) -> Option<(Record, u64)> {
    let mut header = [0u8; HEADER];
    if offset + HEADER as u64 > file_len {
        return None;
    }
    reader.read_exact(&mut header).ok()?;
    let body_len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
    let end = offset + HEADER as u64 + body_len;
    if end > file_len {
        return None;
    }
    let mut body = vec![0u8; body_len as usize];
    reader.read_exact(&mut body).ok()?;
    if Sha256::digest(&body)[..8] != header[4..] {
        return None;
    }
    Some((Record::decode(&body)?, end))
}

/// Whether an I/O error means the file system is out of space (or quota).
pub fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The age of the oldest waiting event, in seconds.
pub fn oldest_age_seconds(status: &SpoolStatus, now: Timestamp) -> Option<f64> {
    status
        .oldest_received_micros
        .map(|at| (now.unix_micros().saturating_sub(at)).max(0) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use sealtrail_core::Hash;
    use sealtrail_core::canonical::{ServerFields, canonical_entry};
    use sealtrail_core::event::Event;

    use super::*;

    fn record(n: u64, key: Option<&str>) -> Record {
        let event = Event::parse(
            format!(r#"{{"action":"spool.test","actor":{{"id":"u-{n}"}},"outcome":"success"}}"#)
                .as_bytes(),
        )
        .unwrap();
        let server = ServerFields {
            id: uuid::Uuid::now_v7(),
            seq: sealtrail_core::event::MAX_SAFE_INTEGER,
            received_at: Timestamp::from_unix_micros(1_700_000_000_000_000 + n as i64).unwrap(),
            prev_hash: Hash::ZERO,
        };
        Record {
            tenant: "acme".into(),
            idempotency_key: key.map(str::to_string),
            entry: canonical_entry(&event, &server).unwrap(),
        }
    }

    /// Every kind of spool file: the outage spool and a frozen tenant's hold file. Each test
    /// below runs on both, since both are this one format and this one code.
    fn paths(data_dir: &Path) -> [PathBuf; 2] {
        [spool_path(data_dir), hold_path(data_dir, "acme")]
    }

    /// Spooled events are the events' full text: the spool is private like the store, and so
    /// is every folder created on the way to a hold file.
    #[cfg(unix)]
    #[test]
    fn the_spool_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        // The hold file first: it creates `spool/` and `spool/frozen/` together.
        for path in paths(dir.path()).into_iter().rev() {
            let (mut spool, _) = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap();
            spool.append(&[record(0, None)]).unwrap();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            assert_eq!(mode(path.parent().unwrap()), 0o700, "{}", path.display());
        }
        assert_eq!(mode(&DataDir::new(dir.path()).spool()), 0o700);
    }

    #[test]
    fn records_survive_reopening_and_drain_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for path in paths(dir.path()) {
            records_survive_reopening_and_drain_in_order_at(&path);
        }
    }

    fn records_survive_reopening_and_drain_in_order_at(path: &Path) {
        let records: Vec<Record> = (0..5)
            .map(|n| record(n, (n == 2).then_some("k2")))
            .collect();
        {
            let (mut spool, recovery) = Spool::open(path, DEFAULT_MAX_BYTES).unwrap();
            assert_eq!(recovery, Recovery::default());
            spool.append(&records[..3]).unwrap();
            spool.append(&records[3..]).unwrap();
        }
        let (mut spool, recovery) = Spool::open(path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(spool.path(), path);
        assert_eq!(recovery.records, 5);
        assert_eq!(recovery.discarded_bytes, 0);
        assert_eq!(spool.status().depth, 5);
        assert_eq!(
            spool.status().oldest_received_micros,
            Some(1_700_000_000_000_000)
        );
        assert_eq!(inspect(path).unwrap().unwrap().depth, 5);
        assert!(spool.spooled_key("acme", "k2").is_some());
        assert!(spool.spooled_key("other", "k2").is_none());
        assert_eq!(spool.period().events, 5);
        assert_eq!(spool.period().tenants.get("acme"), Some(&5));

        let first = spool.peek(2, u64::MAX).unwrap();
        let got: Vec<Record> = first.iter().map(|p| p.record.clone()).collect();
        assert_eq!(got, records[..2]);
        spool.drained_to(first[1].end, &got).unwrap();
        assert_eq!(spool.status().depth, 3);
        assert_eq!(
            spool.status().oldest_received_micros,
            Some(1_700_000_000_000_002)
        );

        let rest = spool.peek(100, u64::MAX).unwrap();
        let got: Vec<Record> = rest.iter().map(|p| p.record.clone()).collect();
        assert_eq!(got, records[2..]);
        spool.drained_to(rest.last().unwrap().end, &got).unwrap();
        assert!(!spool.is_pending());
        assert_eq!(spool.status().depth, 0);
        assert_eq!(spool.status().oldest_received_micros, None);
        assert!(spool.spooled_key("acme", "k2").is_none());
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        for path in paths(dir.path()) {
            a_torn_last_record_is_cut_off_and_reported_at(&path);
        }
    }

    fn a_torn_last_record_is_cut_off_and_reported_at(path: &Path) {
        let records: Vec<Record> = (0..3).map(|n| record(n, None)).collect();
        {
            let (mut spool, _) = Spool::open(path, DEFAULT_MAX_BYTES).unwrap();
            spool.append(&records).unwrap();
        }
        let whole = std::fs::read(path).unwrap();
        let mut two = Vec::new();
        records[0].encode(&mut two).unwrap();
        records[1].encode(&mut two).unwrap();
        for cut in [1usize, 7, HEADER, HEADER + 5, whole.len() - two.len() - 1] {
            std::fs::write(path, &whole[..whole.len() - cut]).unwrap();
            let (spool, recovery) = Spool::open(path, DEFAULT_MAX_BYTES).unwrap();
            assert_eq!(recovery.records, 2, "cut {cut}");
            assert_eq!(
                recovery.discarded_bytes,
                (whole.len() - cut - two.len()) as u64,
                "cut {cut}"
            );
            assert_eq!(spool.status().depth, 2);
            assert_eq!(std::fs::read(path).unwrap(), two, "cut {cut}");
            let got: Vec<Record> = spool
                .peek(10, u64::MAX)
                .unwrap()
                .into_iter()
                .map(|p| p.record)
                .collect();
            assert_eq!(got, records[..2]);
        }
        // A damaged byte in the last record fails its check: it is cut off too.
        let mut damaged = whole.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x20;
        std::fs::write(path, &damaged).unwrap();
        let (_, recovery) = Spool::open(path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(recovery.records, 2);
        assert_eq!(recovery.discarded_bytes, (whole.len() - two.len()) as u64);
    }

    #[test]
    fn the_bound_refuses_records_and_keeps_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let one = {
            let mut bytes = Vec::new();
            record(0, None).encode(&mut bytes).unwrap();
            bytes.len() as u64
        };
        for path in paths(dir.path()) {
            let (mut spool, _) = Spool::open(&path, one * 2 + 1).unwrap();
            spool.append(&[record(0, None), record(1, None)]).unwrap();
            let error = spool.append(&[record(2, None)]).unwrap_err();
            assert!(matches!(error, SpoolError::Full { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains("spool_max_bytes"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert_eq!(spool.status().depth, 2);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), one * 2);
        }
    }
}
