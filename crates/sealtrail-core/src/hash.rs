//! The 32-byte SHA-256 hash every part of the log is built from, and the two RFC 9162 hashing
//! rules: leaves are hashed with a `0x00` prefix and interior nodes with `0x01`, so a leaf can
//! never be passed off as a node (second-preimage resistance, RFC 9162 §2.1.1).

use std::fmt;

mod pair;
pub(crate) use pair::leaf_hash_pair;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// A SHA-256 hash: an `event_hash`, a `prev_hash`, an interior Merkle node or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

/// Why a text could not be read as a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("expected 64 lowercase hex digits, got {0} characters")]
    HexLength(usize),
    #[error("expected lowercase hex digits (0-9, a-f), found {0:?}")]
    HexDigit(char),
    #[error("not valid base64: {0}")]
    Base64(String),
    #[error("expected 32 bytes, got {0}")]
    Length(usize),
}

impl Hash {
    /// The all-zero hash: the `prev_hash` of the entry at seq 0, which has no predecessor.
    pub const ZERO: Hash = Hash([0; 32]);

    /// The root of the empty tree, SHA-256 of the empty string (RFC 9162 §2.1.1).
    pub fn empty_root() -> Hash {
        Hash(Sha256::digest([]).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashParseError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| HashParseError::Length(bytes.len()))?;
        Ok(Hash(array))
    }

    /// Lowercase hex, the form hashes take in sealtrail's JSON.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        self.write_hex(&mut out);
        out
    }

    /// Appends the lowercase hex form to `out` without allocating.
    pub fn write_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for byte in self.0 {
            out.push(DIGITS[(byte >> 4) as usize] as char);
            out.push(DIGITS[(byte & 0x0f) as usize] as char);
        }
    }

    /// Parses exactly 64 lowercase hex digits. Uppercase is refused so that every hash has one
    /// spelling and a canonical entry has one byte form.
    pub fn from_hex(text: &str) -> Result<Hash, HashParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(HashParseError::HexLength(text.chars().count()));
        }
        // Table lookups with the validity check folded into one flag keep this branch-free on
        // the verifier's hot path; the offending digit is looked for only on failure.
        let mut out = [0u8; 32];
        let mut invalid = 0u8;
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = HEX_VALUES[pair[0] as usize];
            let low = HEX_VALUES[pair[1] as usize];
            invalid |= (high | low) & 0x80;
            out[i] = (high << 4) | (low & 0x0f);
        }
        if invalid != 0 {
            let bad = text
                .chars()
                .find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
                .unwrap_or('?');
            return Err(HashParseError::HexDigit(bad));
        }
        Ok(Hash(out))
    }

    /// Standard base64 with padding, the form hashes take in C2SP checkpoints and test vectors.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Result<Hash, HashParseError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| HashParseError::Base64(e.to_string()))?;
        Hash::from_slice(&bytes)
    }
}

/// Value of each lowercase hex digit; 0x80 marks every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// RFC 9162 leaf hash: `SHA-256(0x00 || entry)`. This is an entry's `event_hash`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 65];
    block[0] = 0x01;
    block[1..33].copy_from_slice(&left.0);
    block[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(block).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            Hash::empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_hash_of_empty_entry_matches_rfc6962_reference() {
        // The leaf hash of the empty leaf used throughout the RFC 6962 reference vectors.
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_uppercase_and_bad_lengths() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(
            Hash::from_hex(&h.to_hex().to_uppercase()),
            Err(HashParseError::HexDigit(
                h.to_hex()
                    .to_uppercase()
                    .chars()
                    .find(|c| c.is_ascii_uppercase())
                    .unwrap()
            ))
        );
        assert_eq!(Hash::from_hex("abc"), Err(HashParseError::HexLength(3)));
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert!(Hash::from_base64("AAAA").is_err());
    }
}
