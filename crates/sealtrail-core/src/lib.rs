//! # sealtrail-core
//!
//! The part of sealtrail an auditor can trust without trusting the server: pure functions and
//! types over bytes, with no I/O, no async and no database. Everything that proves the log's
//! integrity lives here, so that an independent verifier needs only this crate.
//!
//! - [`hash`]: the SHA-256 [`Hash`] and the RFC 9162 leaf and node hashing rules.
//! - [`timestamp`]: UTC microsecond timestamps, the one time format sealtrail writes.
//! - [`event`]: event schema v1, parsed from producer JSON with precise errors.
//! - [`canonical`]: the RFC 8785 canonical entry an event becomes in the log, and its
//!   `event_hash`.
//! - [`merkle`]: the RFC 9162 Merkle tree: roots, inclusion and consistency proofs, and the
//!   stored-hash layout that appends in O(1) amortised and proves in O(log n) reads.
//! - [`tiles`]: the C2SP tlog-tiles layout of those hashes and the entry bundles.
//! - [`note`]: C2SP signed notes with Ed25519 keys in the signed-note key formats.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, with sealtrail's timestamp extension line.
//! - [`verify`]: the streaming verifier that turns entries, stored hashes and signed
//!   checkpoints into a report of violations.
//!
//! **Architecture invariant:** nothing in this crate opens a file, a socket or a clock. Callers
//! pass bytes in and get values out; storage reaches the Merkle code only through
//! [`merkle::HashReader`], and randomness only through a caller-supplied RNG.

pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod hash;
pub mod merkle;
pub mod note;
pub mod tiles;
pub mod timestamp;
pub mod verify;

pub use hash::{Hash, leaf_hash, node_hash};
pub use timestamp::Timestamp;
