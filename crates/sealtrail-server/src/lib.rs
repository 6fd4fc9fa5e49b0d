//! # sealtrail-server
//!
//! sealtrail's service around the pure [`sealtrail_core`] crate and the stores of
//! [`sealtrail_store`]: the write path, the services behind the API, the HTTP API itself,
//! followers of the committed log, metrics, configuration and the application.
//!
//! - [`ledger`]: the write path — sequencing, hashing, group commit, checkpoints, the spool.
//! - Services, which know nothing of HTTP and are shared by the API and the command line:
//!   [`ingest`] (bytes to submissions), [`query`] (pages, events with proofs, proofs),
//!   [`verify`] (verifying logs and stores, the background verifier and its board) and
//!   [`health`] (the checks behind `/health`). [`readers`] is the pool they read through.
//! - [`http`]: axum only — extractors, authentication, calling the services, and
//!   [`http::error`], the one place errors become status codes.
//! - [`index`], [`metrics`], [`config`], [`keyfiles`], [`auth`], [`spool`], and [`app`],
//!   which starts it all the same way for `sealtrail serve` and the tests.
//!
//! **Architecture invariant:** integrity logic (hashing, canonical form, proofs, signatures,
//! verification) lives in `sealtrail_core`; this crate moves bytes between it and the world.

pub mod app;
pub mod auth;
pub mod config;
pub mod health;
pub mod http;
pub mod index;
pub mod ingest;
pub mod keyfiles;
pub mod ledger;
pub mod metrics;
pub mod query;
pub mod readers;
pub mod spool;
pub mod verify;
