//! The daily seal: for one log and one UTC day, a signed note that names the size and root of
//! the day's last checkpoint and the hash of the previous day's seal, so that the seals of a
//! log form a chain of days a customer can keep and check on their own.
//!
//! The note's text, one item per line, each in one spelling:
//!
//! ```text
//! sealtrail-seal/v1
//! origin <the log's origin, as in its checkpoints>
//! day <YYYY-MM-DD, UTC>
//! size <tree size of the last checkpoint signed before the day ended>
//! root <base64 root hash of the tree at that size>
//! previous <base64 SHA-256 of the previous day's signed seal, or "none" for the first day>
//! supersedes <base64 SHA-256 of the seal of the same day this one replaces>   (optional)
//! ```
//!
//! It is signed with the log's key, like its checkpoints; the first line keeps a seal from
//! ever being read as a checkpoint (whose second line is a number) or a manifest. The hash a
//! seal is linked by ([`seal_hash`]) is the SHA-256 of the whole signed note, signature lines
//! included, as it is stored and served: a customer hashes the bytes they were given.
//!
//! A seal is re-issued (`supersedes`) when a repair acknowledges damage in its day: the new
//! seal names the one it replaces, so a customer holding the old seal finds the link, and the
//! next day's seal points at the newest seal of the day before.

use sha2::{Digest, Sha256};

use crate::Hash;
use crate::note::{self, SignerKey, VerifierKey};

/// The first line of every seal.
pub const HEADER: &str = "sealtrail-seal/v1";

/// A seal's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub origin: String,
    /// `YYYY-MM-DD`, a UTC day.
    pub day: String,
    pub size: u64,
    pub root: Hash,
    /// [`seal_hash`] of the previous day's seal; `None` for the log's first sealed day.
    pub previous: Option<[u8; 32]>,
    /// [`seal_hash`] of the seal of the same day that this one replaces.
    pub supersedes: Option<[u8; 32]>,
}

/// Why a seal was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the seal is not a signed note this log's key verifies: {0}")]
    Signature(String),
    #[error("seal line {line}: {problem}")]
    Line { line: usize, problem: String },
}

/// The SHA-256 of a signed seal, as the next day's seal names it.
pub fn seal_hash(signed: &[u8]) -> [u8; 32] {
    Sha256::digest(signed).into()
}

/// Whether `day` is a real calendar day written `YYYY-MM-DD` (years 1970 to 9999).
pub fn is_day(day: &str) -> bool {
    let b = day.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| day[r].parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(dom)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1970 && (1..=days_in_month).contains(&dom)
}

fn encode(bytes: &[u8; 32]) -> String {
    Hash(*bytes).to_base64()
}

impl Seal {
    /// The note text (before signing).
    pub fn to_text(&self) -> String {
        let previous = self.previous.as_ref().map_or("none".to_string(), encode);
        let mut out = format!(
            "{HEADER}\norigin {}\nday {}\nsize {}\nroot {}\nprevious {previous}\n",
            self.origin,
            self.day,
            self.size,
            encode(&self.root.0),
        );
        if let Some(replaced) = &self.supersedes {
            out.push_str(&format!("supersedes {}\n", encode(replaced)));
        }
        out
    }

    /// The signed note. The key's name must be the seal's origin, and the seal must parse
    /// back to itself (a day that is not a date is refused here, not by a verifier later).
    pub fn sign(&self, signer: &SignerKey) -> Result<String, SealError> {
        if self.origin != signer.name() {
            return Err(SealError::Line {
                line: 2,
                problem: format!(
                    "origin {:?} is not the key's name {:?}",
                    self.origin,
                    signer.name()
                ),
            });
        }
        let text = self.to_text();
        if Seal::parse(&text)? != *self {
            return Err(SealError::Line {
                line: 0,
                problem: "the seal does not read back as itself".into(),
            });
        }
        note::sign(&text, &[signer]).map_err(|e| SealError::Signature(e.to_string()))
    }

    /// Opens a signed seal: the signature must verify with `key`, and the origin must be the
    /// key's name (a key for one log never vouches for another's days).
    pub fn open(bytes: &[u8], key: &VerifierKey) -> Result<Seal, SealError> {
        let opened = note::open(bytes, std::slice::from_ref(key))
            .map_err(|e| SealError::Signature(e.to_string()))?;
        if opened.verified.is_empty() {
            return Err(SealError::Signature(format!(
                "no signature by {}",
                key.name()
            )));
        }
        let seal = Seal::parse(&opened.text)?;
        if seal.origin != key.name() {
            return Err(SealError::Line {
                line: 2,
                problem: format!(
                    "origin {:?} is not the key's name {:?}",
                    seal.origin,
                    key.name()
                ),
            });
        }
        Ok(seal)
    }

    /// Parses a seal's text, strictly: every line in its one spelling.
    pub fn parse(text: &str) -> Result<Seal, SealError> {
        let bad = |line: usize, problem: String| SealError::Line { line, problem };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad(0, "the text must end with a newline".into()))?;
        if let Some(at) = body
            .bytes()
            .position(|b| b.is_ascii_control() && b != b'\n')
        {
            let line = body[..at].matches('\n').count() + 1;
            return Err(bad(line, "control characters are not allowed".into()));
        }
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&HEADER) {
            return Err(bad(1, format!("must be {HEADER:?}")));
        }
        if !(6..=7).contains(&lines.len()) {
            return Err(bad(
                lines.len().min(8),
                "a seal has six lines, or seven with `supersedes`".into(),
            ));
        }
        let field = |i: usize, name: &str| -> Result<&str, SealError> {
            lines
                .get(i)
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(i + 1, format!("must be `{name} <value>`")))
        };
        let hash = |i: usize, name: &str| -> Result<[u8; 32], SealError> {
            let value = field(i, name)?;
            match Hash::from_base64(value) {
                // Re-encoded to the same text: one spelling (no stray padding bits).
                Ok(hash) if hash.to_base64() == value => Ok(hash.0),
                _ => Err(bad(
                    i + 1,
                    format!("{name} must be 32 bytes in padded standard base64"),
                )),
            }
        };
        let origin = field(1, "origin")?;
        if origin.contains(' ') {
            return Err(bad(2, "the origin holds no space".into()));
        }
        let day = field(2, "day")?;
        if !is_day(day) {
            return Err(bad(3, format!("{day:?} is not a day written YYYY-MM-DD")));
        }
        let size_text = field(3, "size")?;
        if size_text.len() > 1 && size_text.starts_with('0')
            || !size_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad(
                4,
                format!("size {size_text:?} is not a decimal number"),
            ));
        }
        let size: u64 = size_text
            .parse()
            .map_err(|_| bad(4, format!("size {size_text:?} does not fit in 64 bits")))?;
        let root = Hash(hash(4, "root")?);
        let previous = match field(5, "previous")? {
            "none" => None,
            _ => Some(hash(5, "previous")?),
        };
        let supersedes = match lines.len() {
            7 => Some(hash(6, "supersedes")?),
            _ => None,
        };
        Ok(Seal {
            origin: origin.to_string(),
            day: day.to_string(),
            size,
            root,
            previous,
            supersedes,
        })
    }
}

/// The UTC day (`YYYY-MM-DD`) after `day`, or `None` past 9999-12-31 or for a text that is
/// not a day.
pub fn next_day(day: &str) -> Option<String> {
    if !is_day(day) {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (
        day[0..4].parse().ok()?,
        day[5..7].parse().ok()?,
        day[8..10].parse().ok()?,
    );
    let candidates = [(y, m, d + 1), (y, m + 1, 1), (y + 1, 1, 1)];
    candidates
        .iter()
        .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
        .find(|next| is_day(next))
}

/// One stored seal to check: the day and issue it is filed under and its signed note.
#[derive(Debug, Clone, Copy)]
pub struct FiledSeal<'a> {
    pub day: &'a str,
    pub issue: u32,
    pub note: &'a [u8],
}

/// Checks a log's chain of seals, given in `(day, issue)` order: each opens with `key` and is
/// filed under its own day; the first names no previous seal and every later one names a
/// seal of the day before (no day is missing in between); issue 0 of a day supersedes
/// nothing and issue `k` supersedes issue `k - 1`; and each seal's size and root are the
/// log's — `root_at(size)` gives the root the log vouches for at that size (a verified
/// checkpoint's), `None` when it vouches for none there. Returns the violations found, each
/// naming the day and issue (they have no seq).
pub fn check_chain(
    seals: &[FiledSeal<'_>],
    key: &VerifierKey,
    root_at: impl Fn(u64) -> Option<Hash>,
) -> Vec<crate::verify::Violation> {
    use crate::verify::{Violation, ViolationKind};
    let violation = |kind, detail: String| Violation::new(None, kind, detail);
    let mut out = Vec::new();
    // Per day: the hashes of its issues, in order.
    let mut previous_day: Option<(String, Vec<[u8; 32]>)> = None;
    let mut this_day: Option<(String, Vec<[u8; 32]>)> = None;
    let mut largest = 0u64;
    for filed in seals {
        let name = format!("seal {} #{}", filed.day, filed.issue);
        let hash = seal_hash(filed.note);
        if this_day.as_ref().is_none_or(|(day, _)| day != filed.day) {
            if let Some(done) = this_day.take() {
                previous_day = Some(done);
            }
            this_day = Some((filed.day.to_string(), Vec::new()));
        }
        let issues = &mut this_day.as_mut().expect("set above").1;
        let expected_issue = issues.len() as u32;
        issues.push(hash);
        let seal = match Seal::open(filed.note, key) {
            Ok(seal) => seal,
            Err(error) => {
                out.push(violation(
                    ViolationKind::InvalidSeal,
                    format!("{name}: {error}"),
                ));
                continue;
            }
        };
        if seal.day != filed.day || filed.issue != expected_issue {
            out.push(violation(
                ViolationKind::InvalidSeal,
                format!(
                    "{name}: filed as issue {} of {}, but it seals {} (expected issue {expected_issue})",
                    filed.issue, filed.day, seal.day
                ),
            ));
        }
        match (&seal.previous, &previous_day) {
            (None, None) => {}
            (None, Some((day, _))) => out.push(violation(
                ViolationKind::SealBrokenLink,
                format!("{name} names no previous seal, but {day} was sealed before it"),
            )),
            (Some(_), None) => out.push(violation(
                ViolationKind::SealBrokenLink,
                format!("{name} names a previous seal, but no earlier seal is stored"),
            )),
            (Some(link), Some((day, hashes))) => {
                if next_day(day).as_deref() != Some(filed.day) {
                    out.push(violation(
                        ViolationKind::SealBrokenLink,
                        format!(
                            "{name} follows the seal of {day}: the days between are not sealed"
                        ),
                    ));
                } else if !hashes.contains(link) {
                    out.push(violation(
                        ViolationKind::SealBrokenLink,
                        format!("{name} names a previous seal that is not a seal of {day} (its hash {})", encode(link)),
                    ));
                }
            }
        }
        let replaced = expected_issue
            .checked_sub(1)
            .map(|i| this_day.as_ref().expect("set above").1[i as usize]);
        if seal.supersedes != replaced {
            out.push(violation(
                ViolationKind::SealBrokenLink,
                match replaced {
                    Some(_) => format!(
                        "{name} does not name issue {} of its day as the seal it supersedes",
                        expected_issue - 1
                    ),
                    None => format!("{name} is the day's first seal but names one it supersedes"),
                },
            ));
        }
        let vouched = if seal.size == 0 {
            Some(Hash::empty_root())
        } else {
            root_at(seal.size)
        };
        match vouched {
            Some(root) if root == seal.root => {}
            Some(root) => out.push(violation(
                ViolationKind::SealCheckpointMismatch,
                format!(
                    "{name} seals size {} with root {}, but the log's root at that size is {}",
                    seal.size,
                    seal.root.to_base64(),
                    root.to_base64()
                ),
            )),
            None => out.push(violation(
                ViolationKind::SealCheckpointMismatch,
                format!(
                    "{name} seals size {}, for which the log holds no verified checkpoint",
                    seal.size
                ),
            )),
        }
        if seal.size < largest {
            out.push(violation(
                ViolationKind::SealCheckpointMismatch,
                format!(
                    "{name} seals size {}, smaller than the {largest} an earlier day sealed",
                    seal.size
                ),
            ));
        }
        largest = largest.max(seal.size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Seal {
        Seal {
            origin: "example.com/log/acme".into(),
            day: "2026-12-02".into(),
            size: 300,
            root: Hash([7; 32]),
            previous: Some([9; 32]),
            supersedes: None,
        }
    }

    #[test]
    fn a_signed_seal_opens_with_its_key_only_and_its_hash_covers_the_signature() {
        let signer = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        let note = sample().sign(&signer).unwrap();
        assert_eq!(
            Seal::open(note.as_bytes(), &signer.verifier()).unwrap(),
            sample()
        );
        let other = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        assert!(matches!(
            Seal::open(note.as_bytes(), &other.verifier()),
            Err(SealError::Signature(_))
        ));
        let changed = note.replacen("size 300", "size 301", 1);
        assert!(Seal::open(changed.as_bytes(), &signer.verifier()).is_err());
        // The signature is part of what the next day links to.
        let again = sample().sign(&other).unwrap();
        assert_ne!(seal_hash(note.as_bytes()), seal_hash(again.as_bytes()));
        // A key for another log signs no seal of this one.
        let stranger = SignerKey::generate("example.com/log/other", &mut rand_core::OsRng).unwrap();
        assert!(sample().sign(&stranger).is_err());
    }

    #[test]
    fn a_seal_has_one_spelling() {
        let first = Seal {
            previous: None,
            ..sample()
        };
        let replacing = Seal {
            supersedes: Some([1; 32]),
            ..sample()
        };
        for seal in [sample(), first, replacing] {
            assert_eq!(Seal::parse(&seal.to_text()).unwrap(), seal);
        }
        let text = sample().to_text();
        for (from, to) in [
            ("size 300", "size 0300"),
            ("size 300", "size +300"),
            ("day 2026-12-02", "day 2026-02-30"),
            ("day 2026-12-02", "day 2026-12-2"),
            ("origin example.com", "origin  example.com"),
            ("sealtrail-seal/v1", "sealtrail-seal/v2"),
            ("previous CQkJ", "previous CQk"),
            ("previous ", "previous  "),
        ] {
            let bad = text.replacen(from, to, 1);
            assert!(Seal::parse(&bad).is_err(), "{to}");
        }
        assert!(Seal::parse(text.trim_end()).is_err());
        assert!(Seal::parse(&format!("{text}extra line\n")).is_err());
        assert!(Seal::parse(&text.replacen("previous", "prev", 1)).is_err());
        // Unpadded base64, or 31 bytes, is not a hash.
        let root = encode(&[7; 32]);
        assert!(Seal::parse(&text.replacen(&root, root.trim_end_matches('='), 1)).is_err());
    }

    #[test]
    fn days_are_real_calendar_days_and_follow_one_another() {
        for day in ["2024-02-29", "1970-01-01", "9999-12-31", "2026-12-31"] {
            assert!(is_day(day), "{day}");
        }
        for day in [
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "1969-12-31",
            "2026-1-01",
            "２０２６-01-01",
        ] {
            assert!(!is_day(day), "{day}");
        }
        assert_eq!(next_day("2026-12-31").as_deref(), Some("2027-01-01"));
        assert_eq!(next_day("2024-02-28").as_deref(), Some("2024-02-29"));
        assert_eq!(next_day("2025-02-28").as_deref(), Some("2025-03-01"));
        assert_eq!(next_day("2026-04-30").as_deref(), Some("2026-05-01"));
        assert_eq!(next_day("9999-12-31"), None);
    }

    /// Seals of `days` (each `(day, size)`) linked one to the next, signed by `signer`.
    fn chain(signer: &SignerKey, days: &[(&str, u64)]) -> Vec<(String, u32, String)> {
        let mut previous = None;
        days.iter()
            .map(|(day, size)| {
                let note = Seal {
                    origin: signer.name().to_string(),
                    day: day.to_string(),
                    size: *size,
                    root: root_of(*size),
                    previous,
                    supersedes: None,
                }
                .sign(signer)
                .unwrap();
                previous = Some(seal_hash(note.as_bytes()));
                (day.to_string(), 0, note)
            })
            .collect()
    }

    fn root_of(size: u64) -> Hash {
        if size == 0 {
            Hash::empty_root()
        } else {
            Hash([size as u8; 32])
        }
    }

    fn check(
        signer: &SignerKey,
        seals: &[(String, u32, String)],
    ) -> Vec<(crate::verify::ViolationKind, String)> {
        let filed: Vec<FiledSeal<'_>> = seals
            .iter()
            .map(|(day, issue, note)| FiledSeal {
                day,
                issue: *issue,
                note: note.as_bytes(),
            })
            .collect();
        check_chain(&filed, &signer.verifier(), |size| {
            (size <= 50).then(|| root_of(size))
        })
        .into_iter()
        .map(|v| (v.kind, v.detail))
        .collect()
    }

    #[test]
    fn a_chain_of_days_checks_and_each_break_is_named() {
        use crate::verify::ViolationKind::*;
        let signer = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        let days = [
            ("2026-11-30", 0),
            ("2026-12-01", 10),
            ("2026-12-02", 10),
            ("2026-12-03", 30),
        ];
        let seals = chain(&signer, &days);
        assert_eq!(check(&signer, &seals), []);

        // A day taken out of the chain.
        let mut gap = seals.clone();
        gap.remove(2);
        let found = check(&signer, &gap);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, SealBrokenLink);
        assert!(
            found[0]
                .1
                .contains("seal 2026-12-03 #0 follows the seal of 2026-12-01"),
            "{found:?}"
        );

        // A seal replaced by one signed with the right key but linking elsewhere.
        let mut relinked = seals.clone();
        relinked[2].2 = Seal {
            previous: Some([0; 32]),
            ..Seal::parse(&note::parse(relinked[2].2.as_bytes()).unwrap().text).unwrap()
        }
        .sign(&signer)
        .unwrap();
        let kinds: Vec<_> = check(&signer, &relinked)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // Its own link is broken, and so is the next day's, which named the original.
        assert_eq!(kinds, [SealBrokenLink, SealBrokenLink]);

        // A root the log does not have at that size, and a size it vouches for nowhere.
        let mut wrong = chain(&signer, &[("2026-12-01", 10)]);
        wrong[0].2 = Seal {
            root: Hash([99; 32]),
            ..Seal::parse(&note::parse(wrong[0].2.as_bytes()).unwrap().text).unwrap()
        }
        .sign(&signer)
        .unwrap();
        assert_eq!(check(&signer, &wrong)[0].0, SealCheckpointMismatch);
        let beyond = chain(&signer, &[("2026-12-01", 70)]);
        assert_eq!(check(&signer, &beyond)[0].0, SealCheckpointMismatch);

        // Another key's seal.
        let other = SignerKey::generate("example.com/log/acme", &mut rand_core::OsRng).unwrap();
        let forged = chain(&other, &days);
        assert!(
            check(&signer, &forged)
                .iter()
                .all(|(k, _)| *k == InvalidSeal)
        );

        // A re-issue of a day supersedes its first issue; the chain still checks.
        let mut reissued = seals.clone();
        let first = &reissued[1];
        let again = Seal {
            supersedes: Some(seal_hash(first.2.as_bytes())),
            ..Seal::parse(&note::parse(first.2.as_bytes()).unwrap().text).unwrap()
        }
        .sign(&signer)
        .unwrap();
        reissued.insert(2, ("2026-12-01".to_string(), 1, again.clone()));
        assert_eq!(check(&signer, &reissued), []);
        // Filed as issue 1 but superseding nothing: a broken link.
        let plain = Seal {
            supersedes: None,
            ..Seal::parse(&note::parse(again.as_bytes()).unwrap().text).unwrap()
        }
        .sign(&signer)
        .unwrap();
        reissued[2].2 = plain;
        assert_eq!(check(&signer, &reissued)[0].0, SealBrokenLink);
    }
}
