//! Where the archiver writes: the target `archive_to` names, opened through a [`TargetOpener`].
//!
//! The server opens directories itself ([`open_directory`]). It does not build the AWS SDK:
//! an S3 target comes from the crate that does (`sealtrail-s3`), which only the `sealtrail`
//! binary links, and reaches the server as an opener the binary passes to
//! [`crate::app::Application::build_with_targets`]. An opener is called on the archiver's own
//! thread, never on a thread of the async runtime: an S3 target blocks on a runtime of its
//! own, which a runtime thread may not do.
//!
//! The archiver opens one target per retention: a tenant with its own
//! `[tenants.NAME] archive_retention_days` gets a target of its own, opened with that
//! retention, and the other tenants share one. A target therefore needs to know one retention
//! only, and an opener nothing about tenants.

use std::sync::Arc;
use std::time::Duration;

use sealtrail_archive::{DirTarget, Target, TargetError};

/// What an opener is asked to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveTargetSpec {
    /// `archive_to` as configured: a directory, or `s3://bucket/prefix`.
    pub url: String,
    /// How long Object Lock keeps each object the target writes (COMPLIANCE mode). A target
    /// that cannot lock (a directory) ignores it.
    pub retention: Duration,
    /// Whether the operator allows a target that does not keep objects immutable
    /// (`archive_allow_unlocked`). The archiver checks [`Target::lock_status`] itself before
    /// every run; a target may refuse on its own as well.
    pub allow_unlocked: bool,
}

/// Opens the target of a spec. See the module docs.
pub type TargetOpener =
    Arc<dyn Fn(&ArchiveTargetSpec) -> Result<Box<dyn Target>, TargetError> + Send + Sync>;

/// Whether `url` names an S3 target.
pub fn is_s3(url: &str) -> bool {
    url.starts_with("s3://")
}

/// The server's own opener: directories only ([`open_directory`]).
pub fn directory_opener() -> TargetOpener {
    Arc::new(open_directory)
}

/// Opens (creating it if missing) the directory `spec.url` names. An `s3://` URL is refused
/// with what to do instead: this opener does not write to S3.
pub fn open_directory(spec: &ArchiveTargetSpec) -> Result<Box<dyn Target>, TargetError> {
    if is_s3(&spec.url) {
        return Err(TargetError::Config(format!(
            "archive_to {}: this build of sealtrail cannot write to S3; archive to a directory (--archive-to DIR), or run a sealtrail binary built with S3 support",
            spec.url
        )));
    }
    if spec.url.contains("://") {
        return Err(TargetError::Config(format!(
            "archive_to {}: neither a directory nor s3://bucket/prefix",
            spec.url
        )));
    }
    Ok(Box::new(DirTarget::create(&spec.url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> ArchiveTargetSpec {
        ArchiveTargetSpec {
            url: url.to_string(),
            retention: Duration::from_secs(86_400),
            allow_unlocked: false,
        }
    }

    #[test]
    fn a_directory_is_opened_and_s3_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive");
        let target = directory_opener()(&spec(path.to_str().unwrap())).unwrap();
        assert!(path.is_dir(), "created");
        assert!(!target.lock_status().unwrap().immutable);
        let error = open_directory(&spec("s3://audit/sealtrail"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("s3://audit/sealtrail") && error.contains("--archive-to DIR"),
            "{error}"
        );
        assert!(open_directory(&spec("gs://audit")).is_err());
    }
}
