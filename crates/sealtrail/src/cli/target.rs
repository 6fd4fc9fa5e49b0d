//! Opening an archive target named on the command line or in the configuration: a directory,
//! or `s3://bucket/prefix` (the `sealtrail-s3` crate, linked only into this binary). `serve`,
//! `doctor` and the archive commands all open targets here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use sealtrail_archive::{Target, TargetError};
use sealtrail_server::archive::{ArchiveTargetSpec, TargetOpener, open_directory};

/// How a target is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// To add to it: it must keep objects immutable (S3 with Object Lock), unless the operator
    /// allows an unlocked target (`--allow-unlocked`).
    Write { allow_unlocked: bool },
    /// To read it only.
    Read,
}

/// Object Lock retention when nothing else is configured: seven years.
pub const DEFAULT_RETENTION_DAYS: u64 = 2557;

/// Opens the target `spec` describes: `s3://` on S3, anything else as a directory.
pub fn open_spec(spec: &ArchiveTargetSpec) -> Result<Box<dyn Target>, TargetError> {
    if spec.url.starts_with("s3://") {
        let options = sealtrail_s3::S3Options {
            retention: spec.retention,
            allow_unlocked: spec.allow_unlocked,
            ..sealtrail_s3::S3Options::default()
        };
        return Ok(Box::new(sealtrail_s3::S3Target::from_url(
            &spec.url, &options,
        )?));
    }
    open_directory(spec)
}

/// How `serve` and `doctor` open `--archive-to`. It is called on the archiver's own thread,
/// outside any async runtime (the S3 target blocks on a runtime of its own).
pub fn opener() -> TargetOpener {
    Arc::new(open_spec)
}

/// Opens `url` for a command: for writing, it must keep objects immutable unless allowed.
pub fn open(url: &str, access: Access, retention_days: u64) -> Result<Box<dyn Target>> {
    let spec = ArchiveTargetSpec {
        url: url.to_string(),
        retention: Duration::from_secs(retention_days.saturating_mul(86_400)),
        allow_unlocked: matches!(
            access,
            Access::Write {
                allow_unlocked: true
            }
        ),
    };
    if access == Access::Read && !url.starts_with("s3://") {
        return Ok(Box::new(sealtrail_archive::DirTarget::open(url)?));
    }
    let target = open_spec(&spec)?;
    if let Access::Write { allow_unlocked } = access {
        let lock = target.lock_status()?;
        if !lock.immutable && !allow_unlocked {
            bail!(
                "{}: {}; archive to S3 with Object Lock, or pass --allow-unlocked to accept an archive that can be deleted",
                target.describe(),
                lock.detail
            );
        }
    }
    Ok(target)
}
