//! The manifest of one archive step (see the `sealtrail-archive` crate): which files the run wrote for a tenant, each with its
//! SHA-256 and size, signed as a C2SP signed note with the log's key, so that anyone holding
//! the log's verifier key can check an archive file by file without sealtrail's database.
//!
//! The note's text, one item per line:
//!
//! ```text
//! sealtrail-archive-manifest/v1
//! origin <the log's origin, as in its checkpoints>
//! tenant <tenant>
//! size <tree size archived by this run>
//! previous <tree size archived before this run; 0 for the first run>
//! <sha256 hex> <size in bytes> <path relative to the tenant's folder>
//! …
//! ```
//!
//! Files are listed in the order they were written (tiles and bundles, then the checkpoint);
//! the manifest itself is written last, so a manifest exists only for a run that completed.

use crate::note::{self, SignerKey, VerifierKey};

/// The first line of every manifest.
pub const HEADER: &str = "sealtrail-archive-manifest/v1";

/// One file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub sha256: String,
    pub bytes: u64,
    /// Relative to the tenant's folder, e.g. `tile/entries/000`.
    pub path: String,
}

/// A manifest's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub origin: String,
    pub tenant: String,
    pub size: u64,
    pub previous: u64,
    pub files: Vec<FileRecord>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest is not a signed note this log's key verifies: {0}")]
    Signature(String),
    #[error("manifest line {line}: {problem}")]
    Line { line: usize, problem: String },
}

impl Manifest {
    /// The note text (before signing).
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{HEADER}\norigin {}\ntenant {}\nsize {}\nprevious {}\n",
            self.origin, self.tenant, self.size, self.previous
        );
        for f in &self.files {
            out.push_str(&format!("{} {} {}\n", f.sha256, f.bytes, f.path));
        }
        out
    }

    /// The signed note.
    pub fn sign(&self, signer: &SignerKey) -> Result<String, ManifestError> {
        note::sign(&self.to_text(), &[signer]).map_err(|e| ManifestError::Signature(e.to_string()))
    }

    /// Opens a signed manifest: the signature must verify with `key`, and the origin must be
    /// the key's name (a key for one log never vouches for another's archive).
    pub fn open(bytes: &[u8], key: &VerifierKey) -> Result<Manifest, ManifestError> {
        let opened = note::open(bytes, std::slice::from_ref(key))
            .map_err(|e| ManifestError::Signature(e.to_string()))?;
        if opened.verified.is_empty() {
            return Err(ManifestError::Signature(format!(
                "no signature by {}",
                key.name()
            )));
        }
        let manifest = Manifest::parse(&opened.text)?;
        if manifest.origin != key.name() {
            return Err(ManifestError::Line {
                line: 2,
                problem: format!(
                    "origin {:?} is not the key's name {:?}",
                    manifest.origin,
                    key.name()
                ),
            });
        }
        Ok(manifest)
    }

    /// Parses a manifest's text, strictly: every line in its one spelling.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let bad = |line: usize, problem: String| ManifestError::Line { line, problem };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad(0, "the text must end with a newline".into()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&HEADER) {
            return Err(bad(1, format!("must be {HEADER:?}")));
        }
        let field = |i: usize, name: &str| -> Result<&str, ManifestError> {
            lines
                .get(i)
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(i + 1, format!("must be `{name} <value>`")))
        };
        let number = |i: usize, name: &str| -> Result<u64, ManifestError> {
            let v = field(i, name)?;
            if v.len() > 1 && v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(i + 1, format!("{name} {v:?} is not a decimal number")));
            }
            v.parse()
                .map_err(|_| bad(i + 1, format!("{name} {v:?} does not fit in 64 bits")))
        };
        let origin = field(1, "origin")?.to_string();
        let tenant = field(2, "tenant")?.to_string();
        let size = number(3, "size")?;
        let previous = number(4, "previous")?;
        if previous > size {
            return Err(bad(5, format!("previous {previous} is above size {size}")));
        }
        let mut files = Vec::with_capacity(lines.len().saturating_sub(5));
        for (i, line) in lines.iter().enumerate().skip(5) {
            let mut parts = line.splitn(3, ' ');
            let (Some(sha), Some(bytes), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(i + 1, "must be `<sha256 hex> <bytes> <path>`".into()));
            };
            if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad(
                    i + 1,
                    "the SHA-256 must be 64 lowercase hex digits".into(),
                ));
            }
            let decimal = !bytes.is_empty()
                && bytes.bytes().all(|b| b.is_ascii_digit())
                && (bytes == "0" || !bytes.starts_with('0'));
            let bytes: u64 = bytes
                .parse()
                .ok()
                .filter(|_| decimal)
                .ok_or_else(|| bad(i + 1, format!("{bytes:?} is not a byte count")))?;
            if !is_relative_path(path) {
                return Err(bad(
                    i + 1,
                    format!("{path:?} is not a relative path of plain names"),
                ));
            }
            files.push(FileRecord {
                sha256: sha.to_string(),
                bytes,
                path: path.to_string(),
            });
        }
        Ok(Manifest {
            origin,
            tenant,
            size,
            previous,
            files,
        })
    }
}

/// A `/`-separated relative path of plain names: no empty, `.` or `..` component, no leading
/// `/`, no backslash or control character. Archive keys are such paths, so no manifest can name
/// a file outside its tenant's folder.
pub fn is_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.bytes().any(|b| b == b'\\' || b.is_ascii_control())
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            origin: "example.com/log/acme".into(),
            tenant: "acme".into(),
            size: 300,
            previous: 256,
            files: vec![FileRecord {
                sha256: "ab".repeat(32),
                bytes: 12,
                path: "tile/entries/001.p/44".into(),
            }],
        }
    }

    #[test]
    fn a_signed_manifest_opens_with_its_key_only() {
        let signer = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        let note = sample().sign(&signer).unwrap();
        assert_eq!(
            Manifest::open(note.as_bytes(), &signer.verifier()).unwrap(),
            sample()
        );
        let other = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        assert!(matches!(
            Manifest::open(note.as_bytes(), &other.verifier()),
            Err(ManifestError::Signature(_))
        ));
        let changed = note.replacen("size 300", "size 301", 1);
        assert!(Manifest::open(changed.as_bytes(), &signer.verifier()).is_err());
    }

    #[test]
    fn a_manifest_has_one_spelling() {
        let text = sample().to_text();
        assert_eq!(Manifest::parse(&text).unwrap(), sample());
        for (from, to) in [
            ("size 300", "size 0300"),
            ("previous 256", "previous 301"),
            ("tenant acme", "tenant"),
            ("12 tile", "012 tile"),
            ("12 tile", "+12 tile"),
            ("tile/entries", "/tile/entries"),
            ("sealtrail-archive-manifest/v1", "manifest"),
        ] {
            let bad = text.replacen(from, to, 1);
            assert!(Manifest::parse(&bad).is_err(), "{to}");
        }
        assert!(Manifest::parse(text.trim_end()).is_err());
    }
}
