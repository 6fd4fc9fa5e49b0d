//! `sealtrail serve` as an operator runs it: real server processes on real ports, started,
//! stopped, killed and starved of disk, on the embedded store and on PostgreSQL — including two
//! instances sharing one database and a PostgreSQL outage ridden out through the spool.

#[path = "../support/mod.rs"]
mod support;

mod archive;
mod crash;
mod doctor_url;
mod gap_causes;
mod ops;
mod pg_instances;
mod pg_outage;
mod replay;
mod serve_cli;
mod upgrade;
