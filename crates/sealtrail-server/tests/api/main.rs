//! The service from outside: a real `sealtrail` application on a random port with a temporary
//! data directory per test, spoken to over HTTP.

mod admin;
mod alerts;
mod auth;
mod config;
mod connections;
mod console;
mod errors;
mod exports;
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
mod webhooks;
