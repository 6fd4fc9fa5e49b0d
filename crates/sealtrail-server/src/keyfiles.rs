//! Key files on disk.
//!
//! A key pair named `ORIGIN` is kept as two files in a key directory (by default
//! `./sealtrail-data/keys`): `<stem>.key` holds the signer key in the C2SP
//! `PRIVATE+KEY+<name>+<hash>+<base64>` form and is created with mode 0600, and `<stem>.vkey` holds
//! the verifier key `<name>+<hash>+<base64>`, which is public. `<stem>` is the name with every
//! character outside `[A-Za-z0-9._-]` replaced by `_`, since origins usually contain `/`.
//!
//! Key files are never overwritten: losing a signing key breaks the link between old and new
//! checkpoints, so replacing one must be a deliberate act (delete the file first).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sealtrail_core::note::{SignerKey, VerifierKey};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
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
        move |source| KeyFileError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
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
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
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
    let entries = fs::read_dir(dir).map_err(|source| KeyFileError::Io {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_filesystem_safe() {
        assert_eq!(file_stem("audit.example/acme"), "audit.example_acme");
        assert_eq!(file_stem("a b+c"), "a_b_c");
        assert_eq!(file_stem("plain-name_1.2"), "plain-name_1.2");
    }
}
