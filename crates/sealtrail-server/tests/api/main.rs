//! The service from outside: a real `sealtrail` application on a random port with a temporary
//! data directory per test, spoken to over HTTP.

mod admin;
mod auth;
mod config;
mod connections;
mod errors;
mod freeze;
mod gaps;
mod health;
mod held;
mod helpers;
mod holds;
mod idempotency;
mod ingest;
mod isolation;
mod log;
mod ops;
mod query;
mod reports;
mod retention;
mod seals;
mod searches;
