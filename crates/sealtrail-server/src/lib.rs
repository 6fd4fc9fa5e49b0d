//! # sealtrail
//!
//! The `sealtrail` binary's library: the command line, and (as the service grows) the stores,
//! ingest path, HTTP API and watchers around the pure [`sealtrail_core`] crate.
//!
//! - [`cli`]: argument parsing and the command handlers; the only place that uses `anyhow` and
//!   decides exit codes.
//! - [`keys`]: key files, and the one rule for which key signs, verifies and is published for
//!   a log.
//! - [`ledger`]: the write path, one writer thread per process.
//! - [`tenant`]: tenant names, parsed once at the edge.
//! - [`clock`]: wall-clock time, read in one place so that tests can fix it.
//!
//! **Architecture invariant:** integrity logic (hashing, canonical form, proofs, signatures,
//! verification) lives in `sealtrail_core`; this crate moves bytes between it and the world.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod follower;
pub mod http;
pub mod index;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod spool;
pub mod tenant;
pub mod tree_cache;
pub mod verification;
