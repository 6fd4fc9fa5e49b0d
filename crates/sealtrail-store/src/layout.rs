//! The data directory's layout: which file or folder of `DIR` holds what.
//!
//! Every path inside the data directory is spelled here and nowhere else, so that one place
//! answers "what does sealtrail keep on disk, and where", and so that two parts of the service
//! cannot disagree about a name. **A new file or folder in the data directory gets a method
//! here** (with a comment saying what it holds and whether it is the source of truth or
//! derived from the log), and its users ask [`DataDir`] for the path.
//!
//! ```text
//! DIR/
//!   sealtrail.db   the embedded store: every tenant's log (source of truth)
//!   index.db       the query index (derived from the logs; rebuilt when missing or stale)
//!   keys/          signing and verifier key files, one pair per log
//!   spool/         events accepted while the store was unavailable, not yet appended
//! ```
//!
//! SQLite keeps `-wal` and `-shm` files beside each database; they belong to their database
//! and are named by SQLite (see [`crate::sqlite::wal::wal_path`]).

use std::path::{Path, PathBuf};

/// A data directory (`--data DIR`). Cheap to build: it only joins names onto the root, and
/// creates or checks nothing on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded store's database (`DIR/sealtrail.db`): every tenant's log, the source of
    /// truth. Unused when the store is PostgreSQL.
    pub fn database(&self) -> PathBuf {
        self.root.join("sealtrail.db")
    }

    /// The query index (`DIR/index.db`), derived from the logs and rebuilt from them when it is
    /// missing or cannot be trusted. Kept with either store: each instance indexes for itself.
    pub fn index(&self) -> PathBuf {
        self.root.join("index.db")
    }

    /// The key files (`DIR/keys/`): each log's signing key and verifier key.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The spool (`DIR/spool/`): events accepted while the store could not take them, appended
    /// once it can. The spool decides the names of the files inside.
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }
}

impl AsRef<Path> for DataDir {
    fn as_ref(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are part of the on-disk format: existing data directories use them.
    #[test]
    fn paths_keep_their_names() {
        let dir = DataDir::new("/var/lib/sealtrail");
        assert_eq!(dir.root(), Path::new("/var/lib/sealtrail"));
        assert_eq!(dir.database(), Path::new("/var/lib/sealtrail/sealtrail.db"));
        assert_eq!(dir.index(), Path::new("/var/lib/sealtrail/index.db"));
        assert_eq!(dir.keys(), Path::new("/var/lib/sealtrail/keys"));
        assert_eq!(dir.spool(), Path::new("/var/lib/sealtrail/spool"));
    }
}
