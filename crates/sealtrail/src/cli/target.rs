//! Opening an archive target named on the command line or in the configuration: a directory,
//! or `s3://bucket/prefix`.

use anyhow::{Result, bail};
use sealtrail_archive::{DirTarget, Target};

/// How a target is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// To add to it (created when it is a directory that does not exist).
    Write,
    /// To read it only.
    Read,
}

/// Opens `spec` (a directory or `s3://bucket/prefix`).
pub fn open(spec: &str, access: Access) -> Result<Box<dyn Target>> {
    if spec.starts_with("s3://") {
        bail!("{spec}: this build of sealtrail cannot reach S3 targets");
    }
    if spec.contains("://") {
        bail!("{spec}: an archive target is a directory or s3://bucket/prefix");
    }
    Ok(match access {
        Access::Write => Box::new(DirTarget::create(spec)?),
        Access::Read => Box::new(DirTarget::open(spec)?),
    })
}
