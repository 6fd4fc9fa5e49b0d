//! sealtrail's S3 archive target: [`S3Target`] keeps an archive in an S3 bucket with Object
//! Lock. Each object is written only if its key is free (an archived object is never
//! overwritten, and on a versioned bucket never given a second version), in COMPLIANCE mode
//! until the moment it is written plus the retention (seven years by default), with a SHA-256
//! checksum; then the lock the server reports on it is read back and must be what was asked.
//! A bucket without Object Lock is refused unless the operator allows it.
//!
//! The target is opened with [`S3Target::from_url`]`("s3://bucket/prefix", &options)`; the
//! endpoint, region and credentials come from [`S3Options`] or the standard AWS variables.
//!
//! This crate is apart from `sealtrail-archive` so that only the binary that archives to S3
//! builds the AWS SDK. With the `testing` feature, [`testing::Seaweed`] runs a throwaway
//! SeaweedFS server, which enforces Object Lock, for tests.

#![forbid(unsafe_code)]

mod options;
mod target;
#[cfg(feature = "testing")]
pub mod testing;

pub use options::{
    DEFAULT_CONCURRENCY, DEFAULT_REGION, DEFAULT_RETENTION, ENV_ACCESS_KEY_ID, ENV_DEFAULT_REGION,
    ENV_ENDPOINT, ENV_PATH_STYLE, ENV_REGION, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN, S3Options,
};
pub use target::S3Target;
