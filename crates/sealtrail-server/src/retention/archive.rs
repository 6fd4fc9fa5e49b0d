//! The archive the server's retention compares with: `archive_to`, opened the way the
//! archiver opens it (through the same [`TargetOpener`], one target per Object Lock retention)
//! but for reading only, and with the log's verifier key that its manifests must verify with.
//!
//! Retention never writes to the archive: the target is wrapped in [`ReadOnly`], which refuses
//! every write, so that a prune can never add to (or disturb) what the archiver writes. A
//! target that does not keep what it is given immutable is refused, as the archiver refuses
//! it, unless the operator allowed it (`archive_allow_unlocked`): entries are removed from the
//! store only when a copy that cannot be deleted holds them, or the operator said otherwise.

use std::time::Duration;

use sealtrail_archive::{LockStatus, Put, Target, TargetError};
use sealtrail_core::note::VerifierKey;
use sealtrail_store::Tenant;

use crate::archive::{ArchiveTargetSpec, TargetOpener};
use crate::config::ArchiveSettings;
use crate::keys::KeyResolver;

/// Why the archive cannot be used for a prune or a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveUnusable {
    /// The target does not keep objects immutable and the operator did not allow that: a
    /// refusal, not a failure — nothing is pruned against it.
    #[error(
        "the archive target {target} does not keep what it is given immutable ({detail}); nothing is pruned against it unless archive_allow_unlocked = true"
    )]
    Unlocked { target: String, detail: String },
    /// The target, or the log's key, could not be read.
    #[error("{0}")]
    Failed(String),
}

/// `archive_to`, as retention reads it (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct ArchiveReader {
    settings: ArchiveSettings,
    opener: TargetOpener,
    keys: KeyResolver,
}

impl ArchiveReader {
    /// Reads the archive `settings` names through `opener`, checking its manifests with the
    /// keys `keys` gives (the same rule as the writer's and the archiver's).
    pub fn new(
        settings: ArchiveSettings,
        opener: TargetOpener,
        keys: KeyResolver,
    ) -> ArchiveReader {
        ArchiveReader {
            settings,
            opener,
            keys,
        }
    }

    /// The target as configured.
    pub fn describe(&self) -> &str {
        &self.settings.target
    }

    /// The Object Lock retention `tenant`'s target is opened with, in days: the archiver opens
    /// one target per retention, so targets are kept by it.
    pub fn retention_days_of(&self, tenant: &str) -> u64 {
        self.settings.retention_days_of(tenant)
    }

    /// Opens the target holding the logs whose archive retention is `days`, read-only, and
    /// checks its lock. Called off the async runtime (an S3 target blocks on a runtime of its
    /// own).
    pub fn open(&self, days: u64) -> Result<ReadOnly, ArchiveUnusable> {
        let spec = ArchiveTargetSpec {
            url: self.settings.target.clone(),
            retention: Duration::from_secs(days.saturating_mul(86_400)),
            allow_unlocked: self.settings.allow_unlocked,
        };
        let target = (self.opener)(&spec)
            .map_err(|e| ArchiveUnusable::Failed(format!("cannot open the archive target: {e}")))?;
        let target = ReadOnly(target);
        self.check_lock(&target)?;
        Ok(target)
    }

    /// Refuses a target that does not keep objects immutable, unless allowed.
    pub fn check_lock(&self, target: &dyn Target) -> Result<(), ArchiveUnusable> {
        let lock = target.lock_status().map_err(|e| {
            ArchiveUnusable::Failed(format!(
                "cannot read the lock of the archive target {}: {e}",
                target.describe()
            ))
        })?;
        if !lock.immutable && !self.settings.allow_unlocked {
            return Err(ArchiveUnusable::Unlocked {
                target: target.describe(),
                detail: lock.detail,
            });
        }
        Ok(())
    }

    /// The key `tenant`'s archived manifests must verify with: the log's verifier key.
    pub fn key(&self, tenant: &Tenant) -> Result<VerifierKey, ArchiveUnusable> {
        self.keys
            .verifiers(tenant)
            .map(|keys| keys.key)
            .map_err(|e| {
                ArchiveUnusable::Failed(format!("cannot read the log's verifier key: {e}"))
            })
    }
}

/// A target that reads and never writes: every write is refused.
pub struct ReadOnly(Box<dyn Target>);

impl Target for ReadOnly {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn lock_status(&self) -> Result<LockStatus, TargetError> {
        self.0.lock_status()
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, TargetError> {
        self.0.list(prefix)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        self.0.get(key)
    }

    fn put_new(&self, key: &str, _bytes: &[u8]) -> Result<Put, TargetError> {
        Err(TargetError::Config(format!(
            "{}: retention reads the archive and never writes to it (asked to write {key})",
            self.0.describe()
        )))
    }

    fn put_new_all(&self, objects: &[(String, Vec<u8>)]) -> Result<Vec<Put>, TargetError> {
        match objects.first() {
            Some((key, bytes)) => self.put_new(key, bytes).map(|put| vec![put]),
            None => Ok(Vec::new()),
        }
    }
}
