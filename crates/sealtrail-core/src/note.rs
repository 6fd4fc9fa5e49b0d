//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, in the key formats of
//! Go's `golang.org/x/mod/sumdb/note`, so that notes and keys are interchangeable with the Go
//! ecosystem (sumdb, transparency-dev witnesses, Sigsum, …).
//!
//! # Note format
//!
//! ```text
//! <text: one or more lines, each ending in "\n">
//! <blank line>
//! — <key name> <base64(key id, 4 bytes big-endian || signature)>
//! — <key name> <base64(…)>
//! ```
//!
//! - The whole message must be valid UTF-8 and contain no ASCII control character (below
//!   U+0020) other than newline; in particular `\r` and `\t` are refused.
//! - The text is everything up to and including the newline before the **last** blank line.
//!   Signature lines are never empty, so the last blank line is always the separator and a text
//!   may itself contain (and even end in) blank lines without ambiguity. [`sign`] therefore
//!   requires only that the text be non-empty, end in a newline and carry no control
//!   characters.
//! - Each signature line is an em dash (U+2014), a space, the key name, a space and the
//!   standard, padded base64 (RFC 4648 §4) of at least 5 bytes: the 4-byte key id and the
//!   signature. Base64 must be canonical (correct padding, zero trailing bits), so a signature
//!   has exactly one spelling.
//! - At most [`MAX_SIGNATURES`] (100, as in Go) signature lines are accepted. The spec asks
//!   verifiers to bound the signature count and to accept at least 16; the bound keeps the
//!   work an untrusted note can cause small.
//!
//! # Keys
//!
//! Only Ed25519 (signature type [`ALG_ED25519`]) is supported. A key is identified by its name
//! and its 32-bit key id, `SHA-256(name || 0x0A || 0x01 || public key)[:4]` ([`key_id`]).
//!
//! - Verifier key: `<name>+<key id, 8 lowercase hex>+<base64(0x01 || 32-byte public key)>`
//! - Signer key: `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>`
//!
//! Key names must be non-empty and contain no Unicode whitespace and no `+` (spec); sealtrail
//! also refuses control characters, which could never appear in a signature line anyway.
//! Parsing checks the algorithm byte, the length and that the key id matches the key, so a key
//! string that parses is self-consistent. Key ids are accepted in lowercase hex only, the form
//! every known implementation writes, so that each key has one spelling.
//!
//! # Verification
//!
//! [`open`] follows the spec (and Go's `note.Open`): signatures by unknown keys — no verifier
//! with the same name *and* key id — are ignored and reported in [`Opened::unknown`]; every
//! signature by a known key must verify, or the whole note is rejected with
//! [`NoteError::InvalidSignature`]; and at least one must verify, or the note is rejected with
//! [`NoteError::NoVerifiedSignature`]. Signatures are checked with
//! `ed25519_dalek::VerifyingKey::verify_strict`, which accepts every signature an RFC 8032
//! signer produces but refuses small-order keys and malleable encodings; verifier keys that are
//! small-order points are refused when parsed.
//!
//! Errors never contain secret key material.

use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte for Ed25519 in key ids and key encodings.
pub const ALG_ED25519: u8 = 0x01;

/// The most signature lines a note may carry. Go's `note.Open` uses the same bound; the spec
/// requires at least 16 to be accepted.
pub const MAX_SIGNATURES: usize = 100;

/// Prefix of every signature line: EM DASH (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Algorithm byte followed by a 32-byte key or seed.
const ENCODED_KEY_LEN: usize = 33;
/// Key id followed by an Ed25519 signature: the size of every signature sealtrail writes.
const ED25519_SIGNATURE_BLOB_LEN: usize = 4 + 64;

/// The spec's recommended key id: the first four bytes, big-endian, of
/// `SHA-256(name || 0x0A || 0x01 || public_key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Why a key name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("key name must not be empty")]
    Empty,
    #[error("key name must not contain whitespace (found {0:?})")]
    Whitespace(char),
    #[error("key name must not contain '+'")]
    Plus,
    #[error("key name must not contain control characters (found {0:?})")]
    Control(char),
}

/// Checks a key name: non-empty, no Unicode whitespace, no `+`, no control characters.
pub fn check_key_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    for c in name.chars() {
        if c.is_whitespace() {
            return Err(NameError::Whitespace(c));
        }
        if c == '+' {
            return Err(NameError::Plus);
        }
        if c < ' ' {
            return Err(NameError::Control(c));
        }
    }
    Ok(())
}

/// Why a key, a note or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    // --- keys ---
    #[error("invalid key name: {0}")]
    KeyName(#[source] NameError),
    #[error("private key must start with \"PRIVATE+KEY+\"")]
    PrivateKeyPrefix,
    #[error("this is a private key; a verifier key must not start with \"PRIVATE+KEY+\"")]
    PrivateKeyAsVerifier,
    #[error("key must have the form <name>+<8 hex digit key id>+<base64 key>")]
    KeyFields,
    #[error("key id must be exactly 8 lowercase hex digits")]
    KeyIdSyntax,
    #[error("key material is not valid padded base64")]
    KeyBase64,
    #[error("key algorithm byte 0x{found:02x} is not supported; expected 0x01 (ed25519)")]
    KeyAlgorithm { found: u8 },
    #[error(
        "key material is {found} bytes; expected 33 (algorithm byte 0x01 and a 32-byte ed25519 key)"
    )]
    KeyLength { found: usize },
    #[error("public key is not a usable ed25519 key (not a curve point, or of small order)")]
    InvalidPublicKey,
    #[error("key hash {found:08x} does not match the key (expected {expected:08x})")]
    KeyHashMismatch { found: u32, expected: u32 },

    // --- note syntax ---
    #[error("note is not valid utf-8 (invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error(
        "note contains control character 0x{byte:02x} at byte offset {offset}; only newline is allowed"
    )]
    ControlCharacter { offset: usize, byte: u8 },
    #[error("note text must not be empty")]
    EmptyText,
    #[error("note text must end with a newline")]
    TextMissingNewline,
    #[error("signed note must end with a newline after its last signature line")]
    MissingFinalNewline,
    #[error("signed note has no blank line separating the text from the signatures")]
    MissingBlankLine,
    #[error("signed note has no signature lines after the blank line")]
    NoSignatures,
    #[error("signature line {line} does not start with an em dash (U+2014) and a space")]
    MissingEmDash { line: usize },
    #[error("signature line {line} has no signature after the key name")]
    MissingSignature { line: usize },
    #[error("signature line {line} has an invalid key name: {source}")]
    SignatureKeyName { line: usize, source: NameError },
    #[error("signature line {line} is not valid padded base64")]
    SignatureBase64 { line: usize },
    #[error(
        "signature line {line} decodes to {found} bytes; expected at least 5 (a 4-byte key id and a signature)"
    )]
    SignatureTooShort { line: usize, found: usize },
    #[error("signed note has more than {max} signature lines")]
    TooManySignatures { max: usize },
    #[error("at least one signer is required")]
    NoSigners,

    // --- verification ---
    #[error("signature by known key {name}+{key_id:08x} does not verify")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("more than one verifier key is {name}+{key_id:08x}; refusing to guess which applies")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("note has no signature that verifies with a known key")]
    NoVerifiedSignature,
}

/// A named Ed25519 signing key. Its `Debug` output shows only the name and key id, and the
/// underlying `ed25519_dalek::SigningKey` wipes the secret when dropped.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

/// A named Ed25519 public key, as configured in a verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl SignerKey {
    /// Generates a fresh key named `name` from the caller's RNG.
    pub fn generate(
        name: &str,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<SignerKey, NoteError> {
        check_key_name(name).map_err(NoteError::KeyName)?;
        Ok(SignerKey::from_signing_key(name, SigningKey::generate(rng)))
    }

    fn from_signing_key(name: &str, key: SigningKey) -> SignerKey {
        SignerKey {
            name: name.to_owned(),
            key_id: key_id(name, key.verifying_key().as_bytes()),
            key,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`, allowing one trailing
    /// newline (as left by a key file). The key id must match the public key derived from the
    /// seed.
    pub fn parse(text: &str) -> Result<SignerKey, NoteError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(NoteError::PrivateKeyPrefix)?;
        let fields = KeyFields::split(rest)?;
        let mut material = [0u8; ENCODED_KEY_LEN];
        let result = decode_key_material(fields.key_base64, &mut material).map(|seed| {
            SigningKey::from_bytes(seed.try_into().expect("decode_key_material checks length"))
        });
        // Best effort: the seed must not linger on the stack once it is inside the SigningKey
        // (which wipes itself on drop). black_box keeps the compiler from eliding the store.
        material.fill(0);
        std::hint::black_box(&material);
        let signer = SignerKey::from_signing_key(fields.name, result?);
        check_key_hash(fields.key_id, signer.key_id)?;
        Ok(signer)
    }

    /// A key named `name` derived from this one: its seed is
    /// SHA-256(`"sealtrail key derivation v1\n"` ‖ this seed ‖ name). Everyone holding this
    /// key derives the same child for the same name, so one secret can stand for a family of
    /// keys (one per log) that need not be copied around one by one.
    pub fn derive(&self, name: &str) -> Result<SignerKey, NoteError> {
        check_key_name(name).map_err(NoteError::KeyName)?;
        let mut hasher = Sha256::new();
        hasher.update(b"sealtrail key derivation v1\n");
        hasher.update(self.key.as_bytes());
        hasher.update(name.as_bytes());
        let mut seed: [u8; 32] = hasher.finalize().into();
        let child = SigningKey::from_bytes(&seed);
        seed.fill(0);
        std::hint::black_box(&seed);
        Ok(SignerKey::from_signing_key(name, child))
    }

    /// The `PRIVATE+KEY+…` form. The result is a secret: store it as such.
    pub fn to_private_string(&self) -> String {
        let mut material = [0u8; ENCODED_KEY_LEN];
        material[0] = ALG_ED25519;
        material[1..].copy_from_slice(self.key.as_bytes());
        let mut out = String::with_capacity(PRIVATE_KEY_PREFIX.len() + self.name.len() + 54);
        out.push_str(PRIVATE_KEY_PREFIX);
        push_name_and_id(&mut out, &self.name, self.key_id);
        BASE64.encode_string(material, &mut out);
        material.fill(0);
        std::hint::black_box(&material);
        out
    }

    /// The matching public key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// A raw Ed25519 signature over `msg` (deterministic, RFC 8032).
    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl VerifierKey {
    /// Parses `<name>+<key id>+<base64(0x01 || public key)>`, allowing one trailing newline.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        // Say so plainly rather than complain about a key id of "KEY", and never echo it.
        if text.starts_with(PRIVATE_KEY_PREFIX) {
            return Err(NoteError::PrivateKeyAsVerifier);
        }
        let fields = KeyFields::split(text)?;
        let mut material = [0u8; ENCODED_KEY_LEN];
        let public = decode_key_material(fields.key_base64, &mut material)?;
        let verifier =
            VerifierKey::from_public_key(fields.name, public.try_into().expect("length checked"))?;
        check_key_hash(fields.key_id, verifier.key_id)?;
        Ok(verifier)
    }

    /// A verifier for a raw 32-byte Ed25519 public key, with the spec's key id.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<VerifierKey, NoteError> {
        check_key_name(name).map_err(NoteError::KeyName)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        // A small-order key would make every verify_strict call fail; refusing it here gives a
        // clear error at configuration time instead of "invalid signature" later.
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Whether `sig` is a valid Ed25519 signature of `msg` by this key. Anything but 64 bytes
    /// is simply invalid.
    pub fn verify_bytes(&self, msg: &[u8], sig: &[u8]) -> bool {
        match Signature::from_slice(sig) {
            Ok(sig) => self.key.verify_strict(msg, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = [0u8; ENCODED_KEY_LEN];
        material[0] = ALG_ED25519;
        material[1..].copy_from_slice(self.key.as_bytes());
        let mut out = String::with_capacity(self.name.len() + 54);
        push_name_and_id(&mut out, &self.name, self.key_id);
        BASE64.encode_string(material, &mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// `<name>+<key id>+<key>` after any `PRIVATE+KEY+` prefix. Names never contain `+`, so the
/// first two `+` delimit the fields; the base64 key may itself contain `+`.
struct KeyFields<'a> {
    name: &'a str,
    key_id: u32,
    key_base64: &'a str,
}

impl<'a> KeyFields<'a> {
    fn split(text: &'a str) -> Result<KeyFields<'a>, NoteError> {
        let (name, rest) = text.split_once('+').ok_or(NoteError::KeyFields)?;
        let (id_hex, key_base64) = rest.split_once('+').ok_or(NoteError::KeyFields)?;
        check_key_name(name).map_err(NoteError::KeyName)?;
        Ok(KeyFields {
            name,
            key_id: parse_key_id(id_hex)?,
            key_base64,
        })
    }
}

fn parse_key_id(hex: &str) -> Result<u32, NoteError> {
    if hex.len() != 8 {
        return Err(NoteError::KeyIdSyntax);
    }
    hex.bytes().try_fold(0u32, |acc, digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return Err(NoteError::KeyIdSyntax),
        };
        Ok(acc << 4 | u32::from(value))
    })
}

/// Decodes `0x01 || 32 bytes` into `buf` and returns the 32 bytes. Decoding into a fixed
/// buffer keeps private seeds off the heap.
fn decode_key_material<'b>(
    text: &str,
    buf: &'b mut [u8; ENCODED_KEY_LEN],
) -> Result<&'b [u8], NoteError> {
    // Anything longer than 33 bytes is refused by length; work the decoded size out from the
    // text so the error can say how long it was without decoding into a larger buffer.
    let len = match BASE64.decode_slice(text, buf) {
        Ok(len) => len,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            let found = BASE64.decode(text).map_err(|_| NoteError::KeyBase64)?.len();
            return Err(NoteError::KeyLength { found });
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(NoteError::KeyBase64),
    };
    match buf[..len] {
        [] => Err(NoteError::KeyLength { found: 0 }),
        [ALG_ED25519, ..] if len == ENCODED_KEY_LEN => Ok(&buf[1..]),
        [ALG_ED25519, ..] => Err(NoteError::KeyLength { found: len }),
        [found, ..] => Err(NoteError::KeyAlgorithm { found }),
    }
}

fn check_key_hash(found: u32, expected: u32) -> Result<(), NoteError> {
    if found == expected {
        Ok(())
    } else {
        Err(NoteError::KeyHashMismatch { found, expected })
    }
}

fn push_name_and_id(out: &mut String, name: &str, key_id: u32) {
    use fmt::Write as _;
    out.push_str(name);
    write!(out, "+{key_id:08x}+").expect("writing to a String cannot fail");
}

/// One signature of a note: the key it names and the signature bytes after the key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub signature: Vec<u8>,
}

/// A parsed but unverified note. Its text must not be trusted until [`open`] has verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

/// A key whose signature on a note verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub name: String,
    pub key_id: u32,
}

/// The result of [`open`]: the authenticated text, the known keys that signed it (each once,
/// in order of first appearance) and the signatures by keys the caller does not know (exact
/// duplicates dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub text: String,
    pub verified: Vec<VerifiedSignature>,
    pub unknown: Vec<NoteSignature>,
}

/// Signs `text` with each signer, in order, producing the note
/// `text + "\n" + "— <name> <base64(key id || signature)>\n"…`.
///
/// `text` must be non-empty, end in a newline and contain no control character other than
/// newline; blank lines inside it are fine (see the module docs).
pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    // Never produce a note that parse would refuse.
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures {
            max: MAX_SIGNATURES,
        });
    }
    let line_len = |s: &&SignerKey| SIGNATURE_PREFIX.len() + s.name.len() + 1 + 92 + 1;
    let mut out =
        String::with_capacity(text.len() + 1 + signers.iter().map(line_len).sum::<usize>());
    out.push_str(text);
    out.push('\n');
    for signer in signers {
        let mut blob = [0u8; ED25519_SIGNATURE_BLOB_LEN];
        blob[..4].copy_from_slice(&signer.key_id.to_be_bytes());
        blob[4..].copy_from_slice(&signer.sign_bytes(text.as_bytes()));
        out.push_str(SIGNATURE_PREFIX);
        out.push_str(&signer.name);
        out.push(' ');
        BASE64.encode_string(blob, &mut out);
        out.push('\n');
    }
    Ok(out)
}

/// Splits and syntax-checks a signed note without verifying anything.
pub fn parse(msg: &[u8]) -> Result<Note, NoteError> {
    let (text, block) = split(msg)?;
    let mut arena = Vec::new();
    let raw = parse_signatures(block, &mut arena)?;
    Ok(Note {
        text: text.to_owned(),
        signatures: raw.iter().map(|sig| sig.to_owned(&arena)).collect(),
    })
}

/// Parses `msg` and verifies its signatures against `verifiers` (see the module docs for the
/// rules). The whole note is syntax-checked before any signature is verified, so a malformed
/// note costs no public-key operations.
pub fn open(msg: &[u8], verifiers: &[VerifierKey]) -> Result<Opened, NoteError> {
    let mut unknown = Vec::new();
    let (text, verified) = open_text(msg, verifiers, Some(&mut unknown))?;
    Ok(Opened {
        text: text.to_owned(),
        verified,
        unknown,
    })
}

/// [`open`] without copying the text, and collecting unknown signatures only if asked: the
/// checkpoint verifier path needs neither.
pub(crate) fn open_text<'m>(
    msg: &'m [u8],
    verifiers: &[VerifierKey],
    mut unknown: Option<&mut Vec<NoteSignature>>,
) -> Result<(&'m str, Vec<VerifiedSignature>), NoteError> {
    let (text, block) = split(msg)?;
    let mut arena = Vec::new();
    let raw = parse_signatures(block, &mut arena)?;
    let mut verified: Vec<VerifiedSignature> = Vec::new();
    for (i, sig) in raw.iter().enumerate() {
        let bytes = &arena[sig.signature.clone()];
        // Verification is deterministic, so an exact repeat of an earlier line adds nothing.
        let repeat = raw[..i].iter().any(|earlier| {
            earlier.name == sig.name
                && earlier.key_id == sig.key_id
                && arena[earlier.signature.clone()] == *bytes
        });
        if repeat {
            continue;
        }
        match find_verifier(verifiers, sig.name, sig.key_id)? {
            Some(verifier) => {
                if !verifier.verify_bytes(text.as_bytes(), bytes) {
                    return Err(NoteError::InvalidSignature {
                        name: sig.name.to_owned(),
                        key_id: sig.key_id,
                    });
                }
                if !verified
                    .iter()
                    .any(|v| v.key_id == sig.key_id && v.name == sig.name)
                {
                    verified.push(VerifiedSignature {
                        name: sig.name.to_owned(),
                        key_id: sig.key_id,
                    });
                }
            }
            None => {
                if let Some(unknown) = unknown.as_deref_mut() {
                    unknown.push(sig.to_owned(&arena));
                }
            }
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoVerifiedSignature);
    }
    Ok((text, verified))
}

/// The verifier for `(name, key_id)`, if any. Two different keys under one name and id can only
/// come from a misconfigured (or attacked) key list; refuse rather than pick one.
fn find_verifier<'v>(
    verifiers: &'v [VerifierKey],
    name: &str,
    key_id: u32,
) -> Result<Option<&'v VerifierKey>, NoteError> {
    let mut found: Option<&VerifierKey> = None;
    for verifier in verifiers
        .iter()
        .filter(|v| v.key_id == key_id && v.name == name)
    {
        match found {
            None => found = Some(verifier),
            Some(first) if first.key != verifier.key => {
                return Err(NoteError::AmbiguousKey {
                    name: name.to_owned(),
                    key_id,
                });
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

/// Checks the character rules for the whole message and splits it at the last blank line into
/// the text (with its final newline) and the signature block (ending in a newline).
fn split(msg: &[u8]) -> Result<(&str, &str), NoteError> {
    let msg = check_characters(msg)?;
    if msg.is_empty() {
        return Err(NoteError::EmptyText);
    }
    if !msg.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    let at = msg.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
    let (text, block) = (&msg[..=at], &msg[at + 2..]);
    if block.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    Ok((text, block))
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    check_characters(text.as_bytes())?;
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    Ok(())
}

/// UTF-8 with no control character other than newline. Every byte below 0x20 in UTF-8 is an
/// ASCII character, so a byte scan finds them all.
fn check_characters(bytes: &[u8]) -> Result<&str, NoteError> {
    let text = std::str::from_utf8(bytes).map_err(|e| NoteError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some(offset) = bytes.iter().position(|&b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter {
            offset,
            byte: bytes[offset],
        });
    }
    Ok(text)
}

/// A signature line, borrowing its name from the message and its bytes from an arena.
struct RawSignature<'m> {
    name: &'m str,
    key_id: u32,
    signature: Range<usize>,
}

impl RawSignature<'_> {
    fn to_owned(&self, arena: &[u8]) -> NoteSignature {
        NoteSignature {
            name: self.name.to_owned(),
            key_id: self.key_id,
            signature: arena[self.signature.clone()].to_vec(),
        }
    }
}

/// Parses every line of the signature block, decoding all signatures into one arena so that a
/// note costs two allocations however many signatures it carries.
fn parse_signatures<'m>(
    block: &'m str,
    arena: &mut Vec<u8>,
) -> Result<Vec<RawSignature<'m>>, NoteError> {
    let mut out = Vec::new();
    // `block` ends in '\n' (checked by split), so split_terminator yields exactly its lines.
    for (index, line) in block.split_terminator('\n').enumerate() {
        let line_no = index + 1;
        if index == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::MissingEmDash { line: line_no })?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or(NoteError::MissingSignature { line: line_no })?;
        check_key_name(name).map_err(|source| NoteError::SignatureKeyName {
            line: line_no,
            source,
        })?;
        if encoded.is_empty() {
            return Err(NoteError::MissingSignature { line: line_no });
        }
        let start = arena.len();
        BASE64
            .decode_vec(encoded, arena)
            .map_err(|_| NoteError::SignatureBase64 { line: line_no })?;
        let blob = &arena[start..];
        if blob.len() < 5 {
            return Err(NoteError::SignatureTooShort {
                line: line_no,
                found: blob.len(),
            });
        }
        out.push(RawSignature {
            name,
            key_id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            signature: start + 4..arena.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed key, so the unit tests need no RNG.
    fn fixed_signer(name: &str) -> SignerKey {
        SignerKey::from_signing_key(name, SigningKey::from_bytes(&[7u8; 32]))
    }

    #[test]
    fn key_id_hashes_name_newline_alg_and_key() {
        let public = [9u8; 32];
        let mut preimage = b"example.com/log\n\x01".to_vec();
        preimage.extend_from_slice(&public);
        let digest = Sha256::digest(&preimage);
        assert_eq!(
            key_id("example.com/log", &public),
            u32::from_be_bytes(digest[..4].try_into().unwrap())
        );
    }

    #[test]
    fn key_names_follow_the_spec() {
        assert_eq!(check_key_name("example.com/log42"), Ok(()));
        assert_eq!(check_key_name("Señor-1"), Ok(()));
        assert_eq!(check_key_name(""), Err(NameError::Empty));
        assert_eq!(check_key_name("a b"), Err(NameError::Whitespace(' ')));
        assert_eq!(
            check_key_name("a\u{a0}b"),
            Err(NameError::Whitespace('\u{a0}'))
        );
        assert_eq!(
            check_key_name("a\u{3000}b"),
            Err(NameError::Whitespace('\u{3000}'))
        );
        assert_eq!(check_key_name("a+b"), Err(NameError::Plus));
        assert_eq!(check_key_name("a\u{1}b"), Err(NameError::Control('\u{1}')));
    }

    #[test]
    fn key_ids_are_eight_lowercase_hex_digits() {
        assert_eq!(parse_key_id("c74f20a3"), Ok(0xc74f20a3));
        assert_eq!(parse_key_id("00000000"), Ok(0));
        for bad in [
            "C74F20A3",
            "c74f20a",
            "c74f20a30",
            "+74f20a3",
            "c74f20ag",
            "",
        ] {
            assert_eq!(parse_key_id(bad), Err(NoteError::KeyIdSyntax), "{bad}");
        }
    }

    #[test]
    fn split_uses_the_last_blank_line() {
        assert_eq!(split(b"a\n\n\nb\n"), Ok(("a\n\n", "b\n")));
        assert_eq!(split(b"\n\nb\n"), Ok(("\n", "b\n")));
        assert_eq!(split(b""), Err(NoteError::EmptyText));
        assert_eq!(split(b"a\n"), Err(NoteError::MissingBlankLine));
        assert_eq!(split(b"a\n\n"), Err(NoteError::NoSignatures));
        assert_eq!(split(b"a\n\nb"), Err(NoteError::MissingFinalNewline));
    }

    #[test]
    fn texts_with_blank_lines_round_trip() {
        let signer = fixed_signer("example.com/log");
        let verifier = signer.verifier();
        for text in [
            "\n",
            "a\n\n",
            "a\n\nb\n",
            "a\n\n\n",
            "\u{2014} x AAAAAAA=\n\n",
        ] {
            let msg = sign(text, &[&signer]).unwrap();
            let opened = open(msg.as_bytes(), std::slice::from_ref(&verifier)).unwrap();
            assert_eq!(opened.text, text);
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let signer = fixed_signer("example.com/log");
        let debug = format!("{signer:?}");
        let private = signer.to_private_string();
        let secret = private.rsplit('+').next().unwrap();
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("example.com/log"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(!debug.contains(&format!("{:?}", [7u8; 32])), "{debug}");
    }

    #[test]
    fn key_material_errors_are_specific() {
        let mut buf = [0u8; ENCODED_KEY_LEN];
        assert_eq!(
            decode_key_material("", &mut buf),
            Err(NoteError::KeyLength { found: 0 })
        );
        assert_eq!(
            decode_key_material("AQ==", &mut buf),
            Err(NoteError::KeyLength { found: 1 })
        );
        assert_eq!(
            decode_key_material(&BASE64.encode([1u8; 40]), &mut buf),
            Err(NoteError::KeyLength { found: 40 })
        );
        assert_eq!(
            decode_key_material(&BASE64.encode([2u8; 33]), &mut buf),
            Err(NoteError::KeyAlgorithm { found: 2 })
        );
        assert_eq!(
            decode_key_material("not base64!", &mut buf),
            Err(NoteError::KeyBase64)
        );
        // Non-canonical trailing bits: "AR" + "==" would be 0x01 with stray bits.
        assert_eq!(
            decode_key_material("AR==", &mut buf),
            Err(NoteError::KeyBase64)
        );
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point, encoded as y = 1: small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            VerifierKey::from_public_key("log", &identity),
            Err(NoteError::InvalidPublicKey)
        );
    }

    #[test]
    fn verify_bytes_refuses_wrong_lengths() {
        let signer = fixed_signer("log");
        let sig = signer.sign_bytes(b"msg");
        let verifier = signer.verifier();
        assert!(verifier.verify_bytes(b"msg", &sig));
        assert!(!verifier.verify_bytes(b"msg", &sig[..63]));
        assert!(!verifier.verify_bytes(b"msg2", &sig));
    }
}
