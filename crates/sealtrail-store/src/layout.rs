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
//!   gaps.db        timelines' counters and the gap detector's state (derived likewise)
//!   keys/          signing and verifier key files, one pair per log
//!   spool/         events accepted while the store was unavailable, not yet appended
//!   archive.lease  empty; locked by the one process that archives (embedded store only)
//! ```
//!
//! SQLite keeps `-wal` and `-shm` files beside each database; they belong to their database
//! and are named by SQLite (see [`crate::sqlite::wal::wal_path`]).
//!
//! **Who may read it.** The directory holds every tenant's audit log and the signing keys, so
//! it is its owner's alone: [`DataDir::create`] makes it mode 0700 (and [`create_private_dir`]
//! its `keys/` and `spool/` directories likewise, the spool file 0600) and
//! [`create_private_file`] makes each database 0600, whatever the process's umask (a umask of
//! 022 would otherwise make them readable by every local user). The databases' `-wal` and
//! `-shm` files need nothing of their own: SQLite creates them with their database's mode.
//! A directory that already exists keeps the modes its operator gave it — they may have
//! reasons (a backup user's group, say) — but [`DataDir::too_open`] lists what others can
//! reach, and `sealtrail verify` and `GET /health` warn about it.

use std::io;
use std::path::{Path, PathBuf};

/// The mode of the data directory sealtrail creates: its owner's alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of the database files sealtrail creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

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

    /// The gap detector's database (`DIR/gaps.db`): per-minute counters, producer sequences
    /// and missing ranges, derived from the logs and rebuilt from them when missing or stale.
    /// Kept with either store: each instance derives it for itself.
    pub fn gaps(&self) -> PathBuf {
        self.root.join("gaps.db")
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

    /// Webhook delivery cursors (`DIR/webhooks/<name>.json`): for each configured webhook, how
    /// far into each tenant's log its alerts have been delivered, so a restart resumes there.
    /// Kept with either store: the instance that delivers keeps them.
    pub fn webhooks(&self) -> PathBuf {
        self.root.join("webhooks")
    }

    /// The lock file of the lease `name` (`DIR/<name>.lease`, e.g. `archive.lease`): empty,
    /// and locked by the one process that holds the lease while it holds it (see
    /// [`crate::Store::try_lease`]; the embedded store only, PostgreSQL keeps its leases in
    /// the database). Neither source of truth nor derived: it holds nothing.
    pub fn lease(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.lease"))
    }
}

impl DataDir {
    /// Creates the directory if it does not exist, with mode 0700 (and any missing parents
    /// likewise); an existing directory is left as it is (see [`DataDir::too_open`]).
    pub fn create(&self) -> io::Result<()> {
        create_private_dir(&self.root)
    }

    /// The directory and the databases in it (with their `-wal` and `-shm` files) that other
    /// users than the owner can read, write or enter, with their modes. Files that do not
    /// exist are skipped.
    pub fn too_open(&self) -> io::Result<Vec<(PathBuf, u32)>> {
        let mut paths = vec![self.root.clone()];
        for database in [self.database(), self.index(), self.gaps()] {
            paths.push(sqlite_sidecar(&database, "-wal"));
            paths.push(sqlite_sidecar(&database, "-shm"));
            paths.push(database);
        }
        let mut open = Vec::new();
        for path in paths {
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = metadata.permissions().mode() & 0o7777;
                if mode & 0o077 != 0 {
                    open.push((path, mode));
                }
            }
            #[cfg(not(unix))]
            let _ = metadata;
        }
        Ok(open)
    }

    /// [`DataDir::too_open`] as one line for a warning: `None` when everything is private or
    /// the modes cannot be read (the other checks report an unreadable directory).
    pub fn too_open_warning(&self) -> Option<String> {
        let open = self.too_open().ok()?;
        if open.is_empty() {
            return None;
        }
        let listed: Vec<String> = open
            .iter()
            .map(|(path, mode)| format!("{} is {mode:04o}", path.display()))
            .collect();
        Some(format!(
            "other local users can reach the audit data: {}; restrict it with `chmod 700 {}` and `chmod 600` on its database files",
            listed.join(", "),
            self.root.display()
        ))
    }
}

/// A file SQLite keeps beside a database in WAL mode: its log (`<db>-wal`, as
/// `sqlite::wal::wal_path` spells it) or its shared-memory index (`<db>-shm`). Spelled here
/// rather than imported, because `sqlite` uses this module and modules do not use each other
/// in a circle.
fn sqlite_sidecar(database: &Path, suffix: &str) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// Why a derived database (the query index, the gap database) must be rebuilt from the log,
/// if it must: its schema version is not `wanted`, or a tenant's row (`tenants (name,
/// next_seq, last_id)`, the table both keep) names as the entry before its cursor an id that
/// the log does not hold at that seq — the log was replaced under it (a restore, another
/// store). `what` names the database in the reason ("the index").
pub fn derived_stale_reason<E>(
    conn: &rusqlite::Connection,
    wanted: i64,
    what: &str,
    log: &dyn crate::Store,
) -> Result<Option<String>, E>
where
    E: From<rusqlite::Error> + From<crate::StoreError>,
{
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version != wanted {
        return Ok(Some(format!(
            "its schema version is {version}, this build uses {wanted}"
        )));
    }
    let mut stmt = conn.prepare("SELECT name, next_seq, last_id FROM tenants")?;
    let rows: Vec<(String, i64, Option<String>)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (tenant, next_seq, last_id) in rows {
        let Some(last_id) = last_id else { continue };
        let in_log = match (next_seq as u64).checked_sub(1) {
            Some(seq) => log.entry_id(&tenant, seq)?,
            None => None,
        };
        if in_log.as_deref() != Some(last_id.as_str()) {
            return Ok(Some(format!(
                "tenant {tenant}: the log holds {} at seq {}, {what} was built from {last_id}",
                in_log.as_deref().unwrap_or("no entry"),
                next_seq.saturating_sub(1)
            )));
        }
    }
    Ok(None)
}

/// Deletes a SQLite database and its `-wal` and `-shm` files, those that exist: how a derived
/// database (the query index, the gap database) is thrown away before it is rebuilt from the
/// log. On failure, the file that could not be removed and why.
pub fn remove_sqlite_database(database: &Path) -> Result<(), (PathBuf, io::Error)> {
    for file in [
        database.to_path_buf(),
        sqlite_sidecar(database, "-wal"),
        sqlite_sidecar(database, "-shm"),
    ] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err((file, source)),
        }
    }
    Ok(())
}

/// Creates the directory `path` with mode 0700 (and any missing parents likewise) if it does
/// not exist; an existing directory is left as it is. For the data directory and what
/// sealtrail creates inside it (`keys/`, `spool/`), so that each is private on its own even
/// where the data directory was made wider by its operator.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(PRIVATE_DIR_MODE);
        builder.create(path)?;
        // The mode given to mkdir is narrowed by the umask, never widened; setting it again
        // makes it exactly 0700 whatever the umask is.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
    }
    #[cfg(not(unix))]
    builder.create(path)
}

/// Creates `path` as an empty file of mode 0600 if it does not exist, so that the SQLite
/// database opened on it next — and the `-wal` and `-shm` files SQLite gives the same mode —
/// is its owner's alone whatever the umask. (SQLite itself would create it 0644 less the
/// umask; an empty file is a valid, empty database.)
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(PRIVATE_FILE_MODE);
    }
    match options.open(path) {
        Ok(_file) => {
            #[cfg(unix)]
            {
                // As with the directory: the umask can only narrow the mode given to open.
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
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

    /// The directory and a database created under a umask that grants everyone everything
    /// are still their owner's alone, and a database's `-wal` and `-shm` files follow it.
    /// The umask is set by a child process of its own (the umask is process-wide, and this
    /// test binary runs other tests in parallel): the test re-runs itself in that child.
    #[cfg(unix)]
    #[test]
    fn created_with_private_modes_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt as _;
        const CHILD: &str = "SEALTRAIL_LAYOUT_UMASK_CHILD";
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let Ok(root) = std::env::var(CHILD) else {
            let parent = tempfile::tempdir().unwrap();
            let root = parent.path().join("nested").join("data");
            let exe = std::env::current_exe().unwrap();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg("umask 000 && exec \"$0\" \"$@\"")
                .arg(exe)
                .args([
                    "--exact",
                    "layout::tests::created_with_private_modes_whatever_the_umask",
                ])
                .env(CHILD, &root)
                .status()
                .unwrap();
            assert!(status.success(), "the child under umask 000 failed");
            let dir = DataDir::new(&root);
            assert_eq!(mode(&root), 0o700);
            assert_eq!(mode(&dir.database()), 0o600);
            let wal = crate::sqlite::wal::wal_path(&dir.database());
            assert_eq!(
                mode(&wal),
                0o600,
                "SQLite gives the WAL its database's mode"
            );
            assert_eq!(mode(&sqlite_sidecar(&dir.database(), "-shm")), 0o600);
            assert_eq!(dir.too_open().unwrap(), Vec::new());
            assert_eq!(dir.too_open_warning(), None);

            // An existing directory keeps its modes, and too_open names what is wider.
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(dir.database(), std::fs::Permissions::from_mode(0o644))
                .unwrap();
            dir.create().unwrap();
            assert_eq!(mode(&root), 0o755);
            let open: Vec<PathBuf> = dir
                .too_open()
                .unwrap()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            assert_eq!(open, [root.clone(), dir.database()]);
            let warning = dir.too_open_warning().unwrap();
            assert!(
                warning.contains("is 0755") && warning.contains("is 0644"),
                "{warning}"
            );
            return;
        };
        // In the child, under umask 000: what the service does on a first start.
        let dir = DataDir::new(root);
        dir.create().unwrap();
        let store = crate::sqlite::SqliteStore::open_writer(&dir.database()).unwrap();
        drop(store);
        // A connection kept open keeps the WAL and shared-memory files for the parent to see.
        let conn = rusqlite::Connection::open(dir.database()).unwrap();
        conn.execute_batch("BEGIN; CREATE TABLE IF NOT EXISTS probe(x); COMMIT;")
            .unwrap();
        let wal = crate::sqlite::wal::wal_path(&dir.database());
        assert!(wal.exists());
        std::mem::forget(conn);
    }
}
