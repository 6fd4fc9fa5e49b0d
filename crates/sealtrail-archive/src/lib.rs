//! sealtrail's archive: each tenant's log as C2SP tlog-tiles (entry bundles and hash tiles,
//! full and partial), its signed checkpoints and, per archive step, a signed manifest of every
//! file written, on a [`Target`] that never rewrites an object. The archive can be verified on
//! its own with nothing but the log's verifier key ([`verify::verify_archive`]), compared with
//! the store it came from ([`compare::compare`]), and restored into an empty store
//! ([`restore::restore_tenant`]). See `docs/archive.md`.

pub mod compare;
/// The manifest format lives in the core, beside the other signed formats, with its parser fuzzed.
pub use sealtrail_core::manifest;
pub mod layout;
pub mod restore;
pub mod run;
pub mod target;
pub mod verify;

pub use run::{ArchiveError, ArchiveOptions, ArchivedState, Progress, RunReport, archive_tenant};
pub use target::{DirTarget, LockStatus, Put, Target, TargetError};
