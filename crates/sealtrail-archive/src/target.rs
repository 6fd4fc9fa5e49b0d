//! Where an archive is kept: the [`Target`] trait, which every kind of storage implements with
//! one promise — a key, once written, is never written again with other bytes — and the
//! directory target. The S3 target lives in the `sealtrail-s3` crate, so that only the binary
//! that needs it builds the AWS SDK.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Why a target could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The key holds other bytes than those being archived: something wrote it that was not
    /// this log's archiver, or the log was rewritten. Nothing is overwritten.
    #[error(
        "{target}: {key} already holds other bytes (sha256 {existing}) than the log's ({new}); \
         an archived object is never rewritten — run `sealtrail archive verify` to find out which side changed"
    )]
    Conflict {
        target: String,
        key: String,
        existing: String,
        new: String,
    },
    /// The target does not keep what it is given immutable, and the operator did not allow it.
    #[error("{0}")]
    NotLocked(String),
    /// An object was written, but what the target reports about its lock is not what was asked.
    #[error("{target}: {key} was written but {problem}")]
    LockNotApplied {
        target: String,
        key: String,
        problem: String,
    },
    #[error("{target}: {action} {key}: {message}")]
    Io {
        target: String,
        action: &'static str,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = TargetError> = std::result::Result<T, E>;

/// What writing one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The object was written (and, on a locking target, its lock checked).
    Written,
    /// The object was there already with the same bytes: nothing was written.
    AlreadyThere,
}

/// The lock a target keeps on what it is given, as the target reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockStatus {
    /// Whether the target refuses to delete or overwrite archived objects (S3 Object Lock
    /// enabled on the bucket). A directory target does not.
    pub immutable: bool,
    /// In words, for reports and `doctor`: e.g. "Object Lock enabled, COMPLIANCE by default".
    pub detail: String,
}

/// Storage that keeps an archive. Keys are `/`-separated paths relative to the target's root
/// (a directory, or a bucket and prefix). Implementations must never replace an object's bytes.
pub trait Target: Send + Sync {
    /// The target as the operator named it, e.g. `s3://bucket/prefix` or a directory.
    fn describe(&self) -> String;

    /// Whether, and how, the target keeps objects immutable.
    fn lock_status(&self) -> Result<LockStatus>;

    /// Every key under `prefix` (a `/`-terminated folder or empty), in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// The object's bytes, or `None` when there is no such key.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes `bytes` at `key` if nothing is there; if the same bytes are there, does nothing;
    /// if other bytes are there, fails with [`TargetError::Conflict`].
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put>;

    /// [`Target::put_new`] for several objects; a target may write them concurrently. The
    /// results are in the order given. The default writes them one after the other.
    fn put_new_all(&self, objects: &[(String, Vec<u8>)]) -> Result<Vec<Put>> {
        objects
            .iter()
            .map(|(key, bytes)| self.put_new(key, bytes))
            .collect()
    }
}

/// The hex SHA-256 of `bytes`, as manifests and conflict messages name content.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares what a key holds with what would be written there.
pub fn same_or_conflict(target: &str, key: &str, existing: &[u8], new: &[u8]) -> Result<Put> {
    if existing == new {
        return Ok(Put::AlreadyThere);
    }
    Err(TargetError::Conflict {
        target: target.to_string(),
        key: key.to_string(),
        existing: sha256_hex(existing),
        new: sha256_hex(new),
    })
}

/// Checks that a key is a relative path of plain names: no empty, `.` or `..` component and no
/// leading `/`, so that no key can reach outside the target.
pub fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(TargetError::Config(format!(
            "archive key {key:?} is not a relative path of plain names"
        )));
    }
    Ok(())
}

/// An archive in a local directory. Each object is written to a temporary file, synced, and
/// linked into place only if its name is still free (so a crash leaves either the whole
/// object or none of it, and a concurrent writer cannot replace it), then made read-only. The
/// directory does not refuse deletion: for immutability put it on storage that does, or use
/// S3 with Object Lock.
#[derive(Debug, Clone)]
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    /// The target at `root`, created (with its parents) if missing.
    pub fn create(root: impl Into<PathBuf>) -> Result<DirTarget> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| TargetError::Io {
            target: root.display().to_string(),
            action: "create",
            key: String::new(),
            message: e.to_string(),
        })?;
        Ok(DirTarget { root })
    }

    /// The target at `root`, which must exist (for reading an archive).
    pub fn open(root: impl Into<PathBuf>) -> Result<DirTarget> {
        let root = root.into();
        if !root.is_dir() {
            return Err(TargetError::Config(format!(
                "{} is not a directory holding an archive",
                root.display()
            )));
        }
        Ok(DirTarget { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, action: &'static str, key: &str, e: io::Error) -> TargetError {
        TargetError::Io {
            target: self.describe(),
            action,
            key: key.to_string(),
            message: e.to_string(),
        }
    }
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn lock_status(&self) -> Result<LockStatus> {
        Ok(LockStatus {
            immutable: false,
            detail: "a local directory: objects are written once and made read-only, but the \
                     file system does not refuse their deletion"
                .into(),
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix.trim_end_matches('/'))
        };
        let mut keys = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("list", prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io("list", prefix, e))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| self.io("list", prefix, e))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if name.starts_with(".tmp-") {
                        continue;
                    }
                    if let Ok(rel) = path.strip_prefix(&self.root)
                        && let Some(rel) = rel.to_str()
                    {
                        keys.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
                    }
                }
            }
        }
        Ok(keys)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match fs::read(self.root.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", key, e)),
        }
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put> {
        check_key(key)?;
        let path = self.root.join(key);
        if let Some(existing) = self.get(key)? {
            return same_or_conflict(&self.describe(), key, &existing, bytes);
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| self.io("create the folder of", key, e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object")
        ));
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            let mut perms = file.metadata()?.permissions();
            perms.set_readonly(true);
            fs::set_permissions(&tmp, perms)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("write", key, e));
        }
        // A hard link fails if the name is taken, unlike a rename: whoever linked first wins.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = fs::File::open(dir) {
                    d.sync_all()
                        .map_err(|e| self.io("sync the folder of", key, e))?;
                }
                Ok(Put::Written)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let existing = self.get(key)?.unwrap_or_default();
                same_or_conflict(&self.describe(), key, &existing, bytes)
            }
            Err(e) => Err(self.io("write", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_written_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::create(dir.path().join("a")).unwrap();
        assert_eq!(target.put_new("t/x/1", b"one").unwrap(), Put::Written);
        assert_eq!(target.put_new("t/x/1", b"one").unwrap(), Put::AlreadyThere);
        let err = target.put_new("t/x/1", b"two").unwrap_err();
        assert!(matches!(err, TargetError::Conflict { .. }), "{err}");
        assert_eq!(target.get("t/x/1").unwrap().unwrap(), b"one");
        assert_eq!(target.list("t/").unwrap(), vec!["t/x/1".to_string()]);
        assert_eq!(target.get("t/x/2").unwrap(), None);
    }

    #[test]
    fn keys_cannot_leave_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::create(dir.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(target.put_new(key, b"x").is_err(), "{key}");
        }
    }
}
