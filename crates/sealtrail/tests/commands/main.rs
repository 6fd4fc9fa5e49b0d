//! The `sealtrail` command line, run as a user runs it: the real binary against real stores
//! (embedded and PostgreSQL), one command at a time — keys and notes, `verify` on intact and
//! damaged stores, PostgreSQL roles, and `bench` in its smallest configuration.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod archive;
mod archive_s3;
mod bench;
mod bench_large;
mod doctor;
mod export;
mod first_use;
mod freeze;
mod gaps;
mod hold;
mod keys_notes;
mod pg_roles;
mod pg_tamper;
mod repair;
mod report;
mod retention;
mod tokens;
mod verify;
