//! # sealtrail-server
//!
//! The service as a library: everything `sealtrail serve` runs, started the same way by the
//! binary and by the tests ([`app::Application`]). It stands between the pure core
//! (`sealtrail_core`: canonical entries, the Merkle tree, notes, the verifier) and the stores
//! (`sealtrail_store`), and moves bytes between them and the world.
//!
//! ## Layout
//!
//! - **The write path.** [`ledger`]: one writer thread per process that sequences, hashes and
//!   commits entries with group commit (`ledger::writer`, `ledger::group`), spools them while
//!   PostgreSQL is unreachable (`ledger::spooling`, over the file format in [`spool`]), signs
//!   checkpoints (`ledger::checkpoints`) and records administrative actions in the `_system`
//!   log (`ledger::admin`). An event is durable when [`ledger::Ledger::append`] returns.
//! - **Services**, which know nothing of HTTP and are shared by the API, the command line and
//!   (later) the stream adapters: [`ingest`] (request bytes to submissions, with per-element
//!   errors), [`query`] (search pages and cursors, an event with its proof, inclusion and
//!   consistency proofs, tiles), [`verify`] (verifying a log or a whole store, the background
//!   verifier and its board), [`health`] (the checks behind `/health`), [`keys`] (key files,
//!   and the one rule for which key signs, verifies and is published for a log), [`authn`]
//!   (from a bearer secret to its token, through a short-lived cache), [`refusals`] (refused
//!   admin attempts recorded in the `_system` log, within limits), [`directory`] (the
//!   listings of tenants and tokens) and [`freeze`] (which tenants are frozen, as ingest
//!   asks it). [`readers`]
//!   is the pool of store connections they read through, with connections kept for the
//!   control path (tokens, health, checkpoints) that searches and proofs cannot take;
//!   `query::admission` decides which searches run (a share per tenant, a cap, a time limit).
//! - **Followers of the committed log.** [`follower`]: the machinery every derived view shares
//!   (per-tenant cursor, batching, pacing, restart, watermarks); [`index`] is its first user,
//!   the query index; [`gaps`] the second (timelines and gap detection). A monitor or a delivery is a new module that
//!   implements [`follower::Follow`]. [`recent`] holds the entries the writer committed last,
//!   so that followers that keep up take them from memory rather than each from the log. [`archive`], the background archiver, follows the
//!   log's signed checkpoints rather than its entries, on a thread of its own, and resumes
//!   from what its target holds rather than from a cursor of its own.
//! - **The edge.** [`connections`]: the accept loop under the router, with the connection
//!   cap (derived from the open-file limit) and the header, body and idle timeouts.
//!   [`http`]: axum only — extractors, authentication of the caller, calling
//!   the services, and [`http::error`], the one place errors become status codes. [`metrics`]
//!   (the Prometheus registry), [`config`] (the `serve` settings, one definition for flags,
//!   environment and file) and [`app`], which builds it all; [`shutdown`] is the one task
//!   set and the one signal that stop every background task in order.
//! - **Domain types.** [`tenant::TenantName`] and [`auth::Scope`] are parsed once, at the
//!   edge; [`clock::Clock`] is the one place wall-clock time is read, and [`host::hostname`]
//!   the one place the host name sealtrail's own records carry is.
//!
//! **Architecture invariant:** integrity logic (hashing, canonical form, proofs, signatures,
//! verification) lives in `sealtrail_core`, and SQL in `sealtrail_store`; this crate names no
//! store backend's driver. **Architecture invariant:** `http` handlers parse, call a service
//! and shape the answer; they do not read the store or do the work themselves.

#![forbid(unsafe_code)]

pub mod alerting;
pub mod app;
pub mod archive;
pub mod auth;
pub mod authn;
pub mod clock;
pub mod config;
pub mod connections;
pub mod directory;
pub mod doctor;
pub mod duration;
pub mod export;
pub mod follower;
pub mod freeze;
pub mod gaps;
pub mod health;
pub mod holds;
pub mod host;
pub mod http;
pub mod index;
pub mod ingest;
pub mod keys;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod monitor;
pub mod query;
pub mod readers;
pub mod recent;
pub mod refusals;
pub mod repair;
pub mod replay;
pub mod reports;
pub mod retention;
pub mod seals;
pub mod shutdown;
pub mod spool;
pub mod tenant;
pub mod verify;
