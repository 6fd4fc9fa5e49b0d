//! C2SP tlog-checkpoint bodies (<https://c2sp.org/tlog-checkpoint>), signed as notes
//! ([`crate::note`]), with sealtrail's timestamp extension line.
//!
//! # Format
//!
//! ```text
//! example.com/audit                                 origin: non-empty
//! 1234                                              tree size: decimal, no sign, no leading zeros
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=      root hash: base64 of the 32-byte RFC 9162 root
//! sealtrail-timestamp 2026-11-23T10:00:00.123456Z   optional: when the server issued it
//! <other extension lines>                           optional, non-empty, kept verbatim
//! ```
//!
//! Every line ends in a newline and, as for any note text, no line may contain a control
//! character. Parsing is strict so that a checkpoint text has one meaning and one spelling:
//! for every text [`Checkpoint::parse`] accepts, [`Checkpoint::to_text`] gives it back
//! byte for byte.
//!
//! # The timestamp extension
//!
//! sealtrail's servers add one extension line, placed directly after the root hash line:
//!
//! ```text
//! sealtrail-timestamp 2026-11-23T10:00:00.123456Z
//! ```
//!
//! It states when the server issued (signed) the checkpoint, in UTC, as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` with exactly six fractional digits — the canonical form of
//! [`Timestamp::to_rfc3339`]; any other spelling of the same instant is refused. At most one
//! such line may appear, and only as the first extension line. Clients that do not know the
//! extension ignore it, as the spec requires of extension lines, so sealtrail checkpoints stay
//! readable by any C2SP checkpoint client.
//!
//! # Key name and origin
//!
//! The spec says the log's key name SHOULD match the origin. sealtrail makes it a rule:
//! [`Checkpoint::sign`] refuses a key whose name differs from the origin, and
//! [`Checkpoint::open`] refuses a checkpoint whose origin differs from the verifier key's
//! name. Binding the two means a key for one log can never vouch for another log's checkpoint.
//! (Logs that predate the rule, such as Go's sumdb with origin `go.sum database tree` and key
//! `sum.golang.org`, can still be read with [`crate::note::open`] and [`Checkpoint::parse`].)

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::hash::{Hash, HashParseError};
use crate::note::{self, NoteError, SignerKey, VerifierKey};
use crate::timestamp::{Timestamp, TimestampError};

/// The prefix of sealtrail's timestamp extension line (including the separating space).
pub const TIMESTAMP_EXTENSION_PREFIX: &str = "sealtrail-timestamp ";

/// Line number of the first extension line, where the timestamp line must be.
const FIRST_EXTENSION_LINE: usize = 4;

/// How much of an offending input an error message quotes.
const EXCERPT_CHARS: usize = 40;

/// A log's signed statement of its tree: origin, size and root hash, and optional extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// When the server issued the checkpoint (the `sealtrail-timestamp` line), if stated.
    pub timestamp: Option<Timestamp>,
    /// Other extension lines, verbatim, without their newlines.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint text must end with a newline")]
    MissingNewline,
    #[error(
        "checkpoint line {line} contains control character 0x{byte:02x}; only newline is allowed"
    )]
    ControlCharacter { line: usize, byte: u8 },
    #[error("checkpoint origin (line 1) must not be empty")]
    EmptyOrigin,
    #[error("checkpoint has no {0} line")]
    MissingLine(&'static str),
    #[error("tree size (line 2) {found:?} must be ascii decimal digits with no sign")]
    SizeNotDecimal { found: String },
    #[error("tree size (line 2) {found:?} must not have leading zeros")]
    SizeLeadingZero { found: String },
    #[error("tree size (line 2) {found} does not fit in 64 bits")]
    SizeOverflow { found: String },
    #[error("root hash (line 3) must be base64 of 32 bytes: {0}")]
    Root(#[source] HashParseError),
    #[error("extension line {line} must not be empty")]
    EmptyExtension { line: usize },
    #[error("extension line {line} starts with \"sealtrail-timestamp \", which is reserved")]
    ReservedExtension { line: usize },
    #[error("sealtrail-timestamp on line {line} is not a valid timestamp: {source}")]
    Timestamp { line: usize, source: TimestampError },
    #[error("sealtrail-timestamp {found:?} is not in canonical form; expected {canonical:?}")]
    TimestampNotCanonical { found: String, canonical: String },
    #[error("duplicate sealtrail-timestamp line {line}; at most one is allowed")]
    DuplicateTimestamp { line: usize },
    #[error(
        "sealtrail-timestamp must be line 4, directly after the root hash (found on line {line})"
    )]
    MisplacedTimestamp { line: usize },
    #[error("checkpoint origin {origin:?} does not match the log key name {key_name:?}")]
    OriginMismatch { origin: String, key_name: String },
}

impl Checkpoint {
    /// The note text: origin, size, root, the timestamp line if any, then the other extension
    /// lines, each followed by a newline. It does not validate; [`Checkpoint::sign`] does.
    pub fn to_text(&self) -> String {
        let extensions_len: usize = self.extensions.iter().map(|e| e.len() + 1).sum();
        let mut out = String::with_capacity(self.origin.len() + 68 + 48 + extensions_len);
        out.push_str(&self.origin);
        out.push('\n');
        writeln!(out, "{}", self.size).expect("writing to a String cannot fail");
        BASE64.encode_string(self.root.0, &mut out);
        out.push('\n');
        if let Some(timestamp) = &self.timestamp {
            out.push_str(TIMESTAMP_EXTENSION_PREFIX);
            out.push_str(&timestamp.to_rfc3339());
            out.push('\n');
        }
        for extension in &self.extensions {
            out.push_str(extension);
            out.push('\n');
        }
        out
    }

    /// Parses a checkpoint text strictly (see the module docs). The text is not authenticated;
    /// use [`Checkpoint::open`] on signed notes.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingNewline)?;
        if let Some(at) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::ControlCharacter {
                line: line_number(text, at),
                byte: text.as_bytes()[at],
            });
        }
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(
            lines
                .next()
                .ok_or(CheckpointError::MissingLine("tree size (line 2)"))?,
        )?;
        let root = Hash::from_base64(
            lines
                .next()
                .ok_or(CheckpointError::MissingLine("root hash (line 3)"))?,
        )
        .map_err(CheckpointError::Root)?;

        let mut timestamp = None;
        let mut extensions = Vec::new();
        for (line, extension) in (FIRST_EXTENSION_LINE..).zip(lines) {
            if extension.is_empty() {
                return Err(CheckpointError::EmptyExtension { line });
            }
            match extension.strip_prefix(TIMESTAMP_EXTENSION_PREFIX) {
                Some(_) if timestamp.is_some() => {
                    return Err(CheckpointError::DuplicateTimestamp { line });
                }
                // Only one position, so that every checkpoint has one spelling.
                Some(_) if line != FIRST_EXTENSION_LINE => {
                    return Err(CheckpointError::MisplacedTimestamp { line });
                }
                Some(value) => timestamp = Some(parse_timestamp(value, line)?),
                None => extensions.push(extension.to_owned()),
            }
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            timestamp,
            extensions,
        })
    }

    /// Signs the checkpoint as a note with the log's key, whose name must equal the origin.
    ///
    /// Extension lines are checked so that the signed text parses back to exactly this
    /// checkpoint: each must be non-empty, free of control characters (newlines included) and
    /// must not start with [`TIMESTAMP_EXTENSION_PREFIX`]. The origin needs no further check:
    /// equal to a valid key name, it cannot hold a newline or a control character.
    pub fn sign(&self, signer: &SignerKey) -> Result<String, CheckpointError> {
        if self.origin != signer.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: excerpt(&self.origin),
                key_name: signer.name().to_owned(),
            });
        }
        let first = FIRST_EXTENSION_LINE + usize::from(self.timestamp.is_some());
        for (line, extension) in (first..).zip(&self.extensions) {
            if extension.is_empty() {
                return Err(CheckpointError::EmptyExtension { line });
            }
            if let Some(&byte) = extension.as_bytes().iter().find(|&&b| b < 0x20) {
                return Err(CheckpointError::ControlCharacter { line, byte });
            }
            if extension.starts_with(TIMESTAMP_EXTENSION_PREFIX) {
                return Err(CheckpointError::ReservedExtension { line });
            }
        }
        Ok(note::sign(&self.to_text(), &[signer])?)
    }

    /// Opens a signed checkpoint with the log's key: the note must carry a valid signature by
    /// that key (other signatures, such as witness cosignatures, are ignored), its text must
    /// be a valid checkpoint, and its origin must be the key's name.
    pub fn open(msg: &[u8], verifier: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        let (text, _) = note::open_text(msg, std::slice::from_ref(verifier), None)?;
        let checkpoint = Checkpoint::parse(text)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: excerpt(&checkpoint.origin),
                key_name: verifier.name().to_owned(),
            });
        }
        Ok(checkpoint)
    }
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::SizeNotDecimal {
            found: excerpt(line),
        });
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(CheckpointError::SizeLeadingZero {
            found: excerpt(line),
        });
    }
    // Only digits remain, so the one way parsing can fail is overflow.
    line.parse().map_err(|_| CheckpointError::SizeOverflow {
        found: excerpt(line),
    })
}

fn parse_timestamp(value: &str, line: usize) -> Result<Timestamp, CheckpointError> {
    let timestamp =
        Timestamp::parse(value).map_err(|source| CheckpointError::Timestamp { line, source })?;
    let canonical = timestamp.to_rfc3339();
    if canonical != value {
        return Err(CheckpointError::TimestampNotCanonical {
            found: excerpt(value),
            canonical,
        });
    }
    Ok(timestamp)
}

/// The 1-based line holding byte `at`.
fn line_number(text: &str, at: usize) -> usize {
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Quotes at most [`EXCERPT_CHARS`] characters of untrusted input in an error message, so a
/// hostile checkpoint cannot make errors (and the logs they end up in) arbitrarily large.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/audit".to_owned(),
            size: 1234,
            root: leaf_hash(b"root"),
            timestamp: Some(Timestamp::parse("2026-11-23T10:00:00.123456Z").unwrap()),
            extensions: vec!["other extension".to_owned(), "\u{2014} x y".to_owned()],
        }
    }

    fn with_lines(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn to_text_has_the_documented_layout() {
        let cp = sample();
        let want = format!(
            "example.com/audit\n1234\n{}\nsealtrail-timestamp 2026-11-23T10:00:00.123456Z\n\
             other extension\n\u{2014} x y\n",
            cp.root.to_base64()
        );
        assert_eq!(cp.to_text(), want);
        assert_eq!(Checkpoint::parse(&want).unwrap(), cp);
    }

    #[test]
    fn round_trips_with_and_without_extensions() {
        let mut cp = sample();
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
        cp.timestamp = None;
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
        cp.extensions.clear();
        cp.size = 0;
        cp.root = Hash::empty_root();
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
        cp.size = u64::MAX;
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    }

    #[test]
    fn parses_the_spec_example() {
        let text = with_lines(&["example.com/behind-the-sofa", "20852163", ROOT]);
        let cp = Checkpoint::parse(&text).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(cp.root.to_base64(), ROOT);
        assert_eq!(cp.timestamp, None);
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), text);
    }

    #[test]
    fn origins_are_not_assumed_to_be_urls() {
        // Clients must not assume the origin format: spaces and '+' are fine in parse.
        let text = with_lines(&["go.sum database tree", "1", ROOT]);
        assert_eq!(
            Checkpoint::parse(&text).unwrap().origin,
            "go.sum database tree"
        );
    }

    #[test]
    fn rejects_bad_sizes() {
        let parse = |size: &str| Checkpoint::parse(&with_lines(&["log", size, ROOT]));
        assert_eq!(parse("0").unwrap().size, 0);
        assert_eq!(parse("18446744073709551615").unwrap().size, u64::MAX);
        for (size, want) in [
            (
                "007",
                CheckpointError::SizeLeadingZero {
                    found: "007".into(),
                },
            ),
            (
                "00",
                CheckpointError::SizeLeadingZero { found: "00".into() },
            ),
            ("-1", CheckpointError::SizeNotDecimal { found: "-1".into() }),
            ("+1", CheckpointError::SizeNotDecimal { found: "+1".into() }),
            ("", CheckpointError::SizeNotDecimal { found: "".into() }),
            (" 1", CheckpointError::SizeNotDecimal { found: " 1".into() }),
            (
                "1e3",
                CheckpointError::SizeNotDecimal {
                    found: "1e3".into(),
                },
            ),
            ("١", CheckpointError::SizeNotDecimal { found: "١".into() }),
            (
                "18446744073709551616",
                CheckpointError::SizeOverflow {
                    found: "18446744073709551616".into(),
                },
            ),
        ] {
            assert_eq!(parse(size), Err(want), "{size:?}");
        }
    }

    #[test]
    fn rejects_bad_roots() {
        let parse = |root: &str| Checkpoint::parse(&with_lines(&["log", "1", root]));
        assert!(matches!(parse("AAAA"), Err(CheckpointError::Root(_))));
        assert!(matches!(parse(""), Err(CheckpointError::Root(_))));
        assert!(matches!(
            parse(&ROOT.replace('=', "")),
            Err(CheckpointError::Root(_))
        ));
        assert!(matches!(
            parse(&Hash::empty_root().to_hex()),
            Err(CheckpointError::Root(_))
        ));
    }

    #[test]
    fn rejects_bad_structure() {
        let cases = [
            (with_lines(&["", "1", ROOT]), CheckpointError::EmptyOrigin),
            ("\n".to_owned(), CheckpointError::EmptyOrigin),
            (
                "log\n1\n".to_owned(),
                CheckpointError::MissingLine("root hash (line 3)"),
            ),
            (
                "log\n".to_owned(),
                CheckpointError::MissingLine("tree size (line 2)"),
            ),
            (format!("log\n1\n{ROOT}"), CheckpointError::MissingNewline),
            (String::new(), CheckpointError::MissingNewline),
            (
                with_lines(&["log", "1", ROOT, ""]),
                CheckpointError::EmptyExtension { line: 4 },
            ),
            (
                with_lines(&["log", "1", ROOT, "a", "", "b"]),
                CheckpointError::EmptyExtension { line: 5 },
            ),
            (
                with_lines(&["log", "1", ROOT, "a\rb"]),
                CheckpointError::ControlCharacter {
                    line: 4,
                    byte: b'\r',
                },
            ),
            (
                with_lines(&["lo\tg", "1", ROOT]),
                CheckpointError::ControlCharacter {
                    line: 1,
                    byte: b'\t',
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn timestamp_line_is_strict() {
        let ts = "sealtrail-timestamp 2026-11-23T10:00:00.123456Z";
        let parse = |ext: &[&str]| {
            let mut lines = vec!["log", "1", ROOT];
            lines.extend_from_slice(ext);
            Checkpoint::parse(&with_lines(&lines))
        };
        assert_eq!(
            parse(&[ts]).unwrap().timestamp.unwrap().to_rfc3339(),
            "2026-11-23T10:00:00.123456Z"
        );
        assert_eq!(
            parse(&[ts, ts]),
            Err(CheckpointError::DuplicateTimestamp { line: 5 })
        );
        assert_eq!(
            parse(&["other", ts]),
            Err(CheckpointError::MisplacedTimestamp { line: 5 })
        );
        for (value, canonical) in [
            ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00.000000Z"),
            ("2026-11-23T10:00:00.123Z", "2026-11-23T10:00:00.123000Z"),
            (
                "2026-11-23T10:00:00.1234567Z",
                "2026-11-23T10:00:00.123456Z",
            ),
            (
                "2026-11-23T11:00:00.123456+01:00",
                "2026-11-23T10:00:00.123456Z",
            ),
            ("2026-11-23t10:00:00.123456z", "2026-11-23T10:00:00.123456Z"),
            ("2026-11-23 10:00:00.123456Z", "2026-11-23T10:00:00.123456Z"),
        ] {
            assert_eq!(
                parse(&[&format!("{TIMESTAMP_EXTENSION_PREFIX}{value}")]),
                Err(CheckpointError::TimestampNotCanonical {
                    found: value.into(),
                    canonical: canonical.into()
                }),
                "{value}"
            );
        }
        assert_eq!(
            parse(&["sealtrail-timestamp yesterday"]),
            Err(CheckpointError::Timestamp {
                line: 4,
                source: TimestampError::Syntax
            })
        );
        assert_eq!(
            parse(&["sealtrail-timestamp "]),
            Err(CheckpointError::Timestamp {
                line: 4,
                source: TimestampError::Syntax
            })
        );
        // Without the space it is not sealtrail's line, just another extension.
        assert_eq!(
            parse(&["sealtrail-timestamp"]).unwrap().extensions,
            vec!["sealtrail-timestamp".to_owned()]
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt("short"), "short");
        let long = "9".repeat(1000);
        let quoted = excerpt(&long);
        assert_eq!(quoted.chars().count(), EXCERPT_CHARS + 1);
        assert!(quoted.ends_with('…'));
        assert_eq!(excerpt(&"é".repeat(50)).chars().count(), EXCERPT_CHARS + 1);
    }
}
