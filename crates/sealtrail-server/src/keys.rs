//! A log's keys: the key files on disk, and the one rule for which key signs a log, which keys
//! verify it and which key is published for it.
//!
//! # Key files
//!
//! A key pair named `ORIGIN` is kept as two files in a key directory (by default
//! `./sealtrail-data/keys`): `<stem>.key` holds the signer key in the C2SP
//! `PRIVATE+KEY+<name>+<hash>+<base64>` form and is created with mode 0600, and `<stem>.vkey` holds
//! the verifier key `<name>+<hash>+<base64>`, which is public. `<stem>` is the name with every
//! character outside `[A-Za-z0-9._-]` replaced by `_`, since origins usually contain `/`.
//!
//! Key files are never overwritten: losing a signing key breaks the link between old and new
//! checkpoints, so replacing one must be a deliberate act (delete the file first).
//!
//! # Which key ([`KeyResolver`])
//!
//! Each log has two places that say what its key is: the log's key files under `DIR/keys/`
//! (absent when every log's key is derived from one `--signing-key` root), and the verifier key
//! the store recorded when the tenant was created. The resolver is the one place that reads
//! both and decides:
//!
//! - **Signing** ([`KeyResolver::signer`]): the key derived from the root key when there is
//!   one, else the log's key file. It must be the key the store records; otherwise the writer
//!   refuses to sign, so two instances can never sign one log with different keys.
//! - **Verifying** ([`KeyResolver::verifiers`]): the key file when there is one, else the
//!   recorded key. When both exist and differ, the key is **disputed**: one of them was
//!   replaced (sealtrail never signs with a key that differs from the record), and a checkpoint
//!   counts only if it is signed by both, so a key substituted in either place cannot vouch for
//!   a rewritten log.
//! - **Publishing** ([`KeyResolver::published`], `GET /v1/log/key`): the same key that
//!   verification trusts, so a client checks checkpoints with the key the server's own
//!   verifier uses. A disputed key is not published silently: the route keeps serving the key
//!   file, as it did before this rule had one home, and every request for it logs a warning
//!   naming both keys, for an operator to find out which place was tampered with. It does not
//!   switch to the recorded key or refuse (409) on its own: either would change what existing
//!   clients receive, and is a decision for the operator's runbook, not a side effect of
//!   reading keys.
//!
//! **Architecture invariant:** no other module reads a log's key files or its recorded key to
//! decide which key signs, verifies or is published.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sealtrail_core::note::{NoteError, SignerKey, VerifierKey};
use sealtrail_store::{DataDir, Tenant};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the key directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a key (move or delete it first)")]
    Exists { path: PathBuf },
    #[error("{path} is not a valid key: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The file stem a key named `name` is stored under.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Paths of the signer and verifier key files for `name` in `dir`.
pub fn key_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let stem = file_stem(name);
    (
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.vkey")),
    )
}

/// Writes a new key pair into `dir` (created if missing): the signer key with mode 0600, the
/// verifier key world-readable. Fails without touching anything if either file exists.
pub fn write_key_pair(dir: &Path, signer: &SignerKey) -> Result<(PathBuf, PathBuf), KeyFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyFileError::Write { path, source }
    };
    sealtrail_store::layout::create_private_dir(dir).map_err(io(dir))?;
    let (key_path, vkey_path) = key_paths(dir, signer.name());
    for path in [&key_path, &vkey_path] {
        if path.exists() {
            return Err(KeyFileError::Exists { path: path.clone() });
        }
    }
    write_new_file(&key_path, signer.to_private_string().as_bytes(), 0o600)
        .map_err(io(&key_path))?;
    write_new_file(&vkey_path, signer.verifier().to_string().as_bytes(), 0o644)
        .map_err(io(&vkey_path))?;
    Ok((key_path, vkey_path))
}

/// Creates `path` exclusively with `mode` from the start (never briefly readable by others),
/// writes `contents` and a newline, and syncs it to disk before returning.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        // The directory entry must be durable too, or a crash could lose the new key file.
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn read_trimmed(path: &Path) -> Result<String, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a signer key file.
pub fn read_signer(path: &Path) -> Result<SignerKey, KeyFileError> {
    let text = read_trimmed(path)?;
    SignerKey::parse(&text).map_err(|e| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a verifier key from a file, or takes `arg` itself as the key when it is one.
pub fn read_verifier(arg: &str) -> Result<VerifierKey, KeyFileError> {
    if let Ok(key) = VerifierKey::parse(arg) {
        return Ok(key);
    }
    let path = Path::new(arg);
    let text = read_trimmed(path)?;
    VerifierKey::parse(&text).map_err(|e| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every verifier key (`*.vkey`) in `dir`, sorted by file name.
pub fn list_verifiers(dir: &Path) -> Result<Vec<(PathBuf, VerifierKey)>, KeyFileError> {
    let entries = fs::read_dir(dir).map_err(|source| KeyFileError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "vkey"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = read_trimmed(&path)?;
            let key = VerifierKey::parse(&text).map_err(|e| KeyFileError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Ok((path, key))
        })
        .collect()
}

/// Why a log's signing key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error(
        "no signing key for the log {origin} at {}: copy DIR/keys/ from the instance that created the tenant, or run every instance with the same --signing-key",
        path.display()
    )]
    Missing { origin: String, path: PathBuf },
    #[error(
        "the signing key available here for {origin} is not the one the store records ({recorded}); refusing to sign with it"
    )]
    NotRecorded { origin: String, recorded: String },
    #[error("cannot derive the key of {origin}: {source}")]
    Derive {
        origin: String,
        #[source]
        source: NoteError,
    },
    #[error("cannot create a key for {origin}: {source}")]
    Generate {
        origin: String,
        #[source]
        source: NoteError,
    },
}

/// The keys a log's checkpoints are checked with (see the module docs).
#[derive(Debug, Clone)]
pub struct LogKeys {
    /// The key that must have signed each checkpoint: the log's key file in `DIR/keys/` when
    /// there is one, else the verifier key the store recorded when the tenant was created.
    pub key: VerifierKey,
    /// The recorded key, when there is a key file too and the two differ: one of them was
    /// replaced (sealtrail never signs with a key that differs from the record), so a
    /// checkpoint counts only if it is signed by both.
    pub disputed: Option<VerifierKey>,
}

/// Where a data directory's logs get their keys: the one rule for signing, verifying and
/// publishing (see the module docs). Cheap to build; it caches nothing, so it always answers
/// from the files and the record as they are now.
#[derive(Clone)]
pub struct KeyResolver {
    /// `DIR/keys/`.
    dir: PathBuf,
    /// The `--signing-key` root every log's key is derived from, if one is configured.
    root: Option<SignerKey>,
}

impl KeyResolver {
    /// The resolver of the data directory `data_dir`, with each log's own key file.
    pub fn new(data_dir: &Path) -> KeyResolver {
        KeyResolver {
            dir: DataDir::new(data_dir).keys(),
            root: None,
        }
    }

    /// The same, deriving every log's signing key from `root` instead of its key file.
    pub fn with_root_key(self, root: Option<SignerKey>) -> KeyResolver {
        KeyResolver { root, ..self }
    }

    /// The signing key of an existing tenant's log, refused unless it is the key the store
    /// records for the log.
    pub fn signer(&self, tenant: &Tenant) -> Result<SignerKey, KeyError> {
        let origin = &tenant.origin;
        let signer = match &self.root {
            Some(root) => derive(root, origin)?,
            None => {
                let (key_path, _) = key_paths(&self.dir, origin);
                if !key_path.exists() {
                    return Err(KeyError::Missing {
                        origin: origin.clone(),
                        path: key_path,
                    });
                }
                read_signer(&key_path)?
            }
        };
        if let Some(recorded) = &tenant.vkey
            && *recorded != signer.verifier().to_string()
        {
            return Err(KeyError::NotRecorded {
                origin: origin.clone(),
                recorded: recorded.clone(),
            });
        }
        Ok(signer)
    }

    /// The signing key of a log being created: derived, or a new key file (an existing file
    /// is kept, so that a tenant created again after a failed attempt keeps its key).
    pub fn create_signer(&self, origin: &str) -> Result<SignerKey, KeyError> {
        if let Some(root) = &self.root {
            return derive(root, origin);
        }
        let (key_path, _) = key_paths(&self.dir, origin);
        if key_path.exists() {
            return Ok(read_signer(&key_path)?);
        }
        let signer = SignerKey::generate(origin, &mut rand_core::OsRng).map_err(|source| {
            KeyError::Generate {
                origin: origin.to_string(),
                source,
            }
        })?;
        write_key_pair(&self.dir, &signer)?;
        Ok(signer)
    }

    /// The keys to verify a tenant's log with: the key to trust, and the recorded key to
    /// require as well when the two places disagree.
    pub fn verifiers(&self, tenant: &Tenant) -> Result<LogKeys, KeyFileError> {
        let recorded = tenant.vkey.as_deref().map(read_verifier).transpose()?;
        let (_, vkey_path) = key_paths(&self.dir, &tenant.origin);
        if !vkey_path.exists()
            && let Some(recorded) = recorded
        {
            return Ok(LogKeys {
                key: recorded,
                disputed: None,
            });
        }
        let file = read_verifier(&vkey_path.to_string_lossy())?;
        let disputed = recorded.filter(|recorded| *recorded != file);
        Ok(LogKeys {
            key: file,
            disputed,
        })
    }

    /// The verifier key to publish for a tenant's log: the key verification trusts. A disputed
    /// key is logged as a warning each time it is published (see the module docs).
    pub fn published(&self, tenant: &Tenant) -> Result<VerifierKey, KeyFileError> {
        let keys = self.verifiers(tenant)?;
        if let Some(recorded) = &keys.disputed {
            tracing::warn!(
                tenant = %tenant.name,
                origin = %tenant.origin,
                key_file = %keys.key,
                recorded = %recorded,
                "the log's key file and the verifier key the store records differ; publishing the key file, and verification requires both: find out which one was replaced"
            );
        }
        Ok(keys.key)
    }
}

fn derive(root: &SignerKey, origin: &str) -> Result<SignerKey, KeyError> {
    root.derive(origin).map_err(|source| KeyError::Derive {
        origin: origin.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(origin: &str, recorded: Option<&SignerKey>) -> Tenant {
        Tenant {
            name: "acme".into(),
            origin: origin.into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            vkey: recorded.map(|k| k.verifier().to_string()),
        }
    }

    fn key(origin: &str) -> SignerKey {
        SignerKey::generate(origin, &mut rand_core::OsRng).unwrap()
    }

    #[test]
    fn a_key_file_that_differs_from_the_record_is_disputed() {
        let origin = "test.example/acme";
        let data = tempfile::tempdir().unwrap();
        let resolver = KeyResolver::new(data.path());
        let recorded = key(origin);
        let substitute = key(origin);
        // No key file: the record is the key, and nothing is disputed.
        let keys = resolver
            .verifiers(&tenant(origin, Some(&recorded)))
            .unwrap();
        assert!(keys.key == recorded.verifier() && keys.disputed.is_none());
        // A key file that matches the record: no dispute either.
        write_key_pair(&DataDir::new(data.path()).keys(), &recorded).unwrap();
        let keys = resolver
            .verifiers(&tenant(origin, Some(&recorded)))
            .unwrap();
        assert!(keys.key == recorded.verifier() && keys.disputed.is_none());
        // The key file replaced: it is trusted, and the record is required as well.
        let other = tempfile::tempdir().unwrap();
        let resolver = KeyResolver::new(other.path());
        write_key_pair(&DataDir::new(other.path()).keys(), &substitute).unwrap();
        let disputed = tenant(origin, Some(&recorded));
        let keys = resolver.verifiers(&disputed).unwrap();
        assert!(keys.key == substitute.verifier());
        assert!(keys.disputed == Some(recorded.verifier()));
        // Published: the key verification trusts, the key file, as the route always served.
        assert!(resolver.published(&disputed).unwrap() == substitute.verifier());
        // And nothing signs with the substitute.
        let error = resolver.signer(&disputed).unwrap_err();
        assert!(matches!(error, KeyError::NotRecorded { .. }), "{error}");
        assert!(resolver.signer(&tenant(origin, Some(&substitute))).is_ok());
    }

    #[test]
    fn a_root_key_derives_every_log_key_and_needs_no_file() {
        let data = tempfile::tempdir().unwrap();
        let root = key("sealtrail-root");
        let resolver = KeyResolver::new(data.path()).with_root_key(Some(root.clone()));
        let created = resolver.create_signer("test.example/acme").unwrap();
        let record = tenant("test.example/acme", Some(&created));
        assert!(resolver.signer(&record).unwrap().verifier() == created.verifier());
        assert!(!DataDir::new(data.path()).keys().exists());
        // Without the root, the log has no key here to sign with.
        let error = KeyResolver::new(data.path()).signer(&record).unwrap_err();
        assert!(matches!(error, KeyError::Missing { .. }), "{error}");
    }

    #[test]
    fn a_key_file_that_cannot_be_read_is_reported_as_a_read() {
        let data = tempfile::tempdir().unwrap();
        let origin = "test.example/acme";
        let (key_path, _) = key_paths(&DataDir::new(data.path()).keys(), origin);
        // A directory where the key file belongs: it exists, and reading it fails (also for
        // root, whom file modes would not stop).
        fs::create_dir_all(&key_path).unwrap();
        let error = KeyResolver::new(data.path())
            .signer(&tenant(origin, None))
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot read the key file {}: ",
                key_path.display()
            )),
            "{message}"
        );
    }

    /// The key directory is private by itself, signer keys 0600, verifier keys readable.
    #[cfg(unix)]
    #[test]
    fn the_key_directory_and_signer_keys_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let data = tempfile::tempdir().unwrap();
        let resolver = KeyResolver::new(data.path());
        resolver.create_signer("test.example/acme").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = DataDir::new(data.path()).keys();
        assert_eq!(mode(&dir), 0o700);
        let (key_path, vkey_path) = key_paths(&dir, "test.example/acme");
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&vkey_path), 0o644);
    }

    #[test]
    fn stems_are_filesystem_safe() {
        assert_eq!(file_stem("audit.example/acme"), "audit.example_acme");
        assert_eq!(file_stem("a b+c"), "a_b_c");
        assert_eq!(file_stem("plain-name_1.2"), "plain-name_1.2");
    }
}
