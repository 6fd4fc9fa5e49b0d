//! # sealtrail-core
//!
//! The part of sealtrail an auditor can trust without trusting the server: pure functions and
//! types over bytes, with no I/O, no async and no database. Everything that proves the log's
//! integrity lives here, so that an independent verifier needs only this crate.
//!
//! ## Modules
//!
//! - [`hash`]: the SHA-256 [`Hash`](struct@Hash) and the RFC 9162 leaf and node hashing rules.
//! - [`timestamp`]: UTC microsecond timestamps, the one time format sealtrail writes.
//! - `error` (internal): the [`EventError`](event::EventError) and [`Rule`](event::Rule) that
//!   every event and entry check reports, re-exported from [`event`].
//! - `number` (internal): the RFC 8785 number rules, exact-value checking and safe integers up
//!   to [`MAX_SAFE_INTEGER`](event::MAX_SAFE_INTEGER), shared by [`event`] and [`canonical`].
//! - [`event`]: event schema v1, parsed from producer JSON with precise errors.
//! - [`canonical`]: the RFC 8785 canonical entry an event becomes in the log, and its
//!   `event_hash`.
//! - [`merkle`]: the RFC 9162 Merkle tree: roots, inclusion and consistency proofs, and the
//!   stored-hash layout that appends in O(1) amortised and proves in O(log n) reads.
//! - [`tiles`]: the C2SP tlog-tiles layout of those hashes and the entry bundles.
//! - [`note`]: C2SP signed notes with Ed25519 keys in the signed-note key formats.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, with sealtrail's timestamp extension line.
//! - [`text`]: counted nouns ("1 entry", "2 entries") for every message that prints a number.
//! - [`verify`]: the streaming verifier that turns entries, stored hashes and signed
//!   checkpoints into a report of violations.
//! - `verify::scan` (internal): the entry scanner, with its SIMD fast path, that reads `seq`
//!   and `prev_hash` from an entry's bytes; re-exported as [`verify::scan_entry_links`].
//!
//! The modules depend on one another in one direction only: `error` depends on nothing,
//! `number` on `error`, [`event`] on both, and [`canonical`] on all three, so no module
//! reaches back into one that builds on it.
//!
//! ## Invariant: no I/O
//!
//! The core does no I/O of its own: it opens no files and no sockets, reads no clock and draws
//! no randomness. Callers pass bytes in and get values out; storage reaches the Merkle code
//! only through [`merkle::HashReader`], the current time only as a [`Timestamp`] the caller
//! supplies, and randomness only through a caller-supplied RNG.

mod error;
mod number;

pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod hash;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod seal;
pub mod text;
pub mod tiles;
pub mod timestamp;
pub mod verify;

pub use hash::{Hash, leaf_hash, node_hash};
pub use timestamp::Timestamp;
