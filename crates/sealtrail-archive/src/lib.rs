//! sealtrail's archive: each tenant's log as C2SP tlog-tiles (entry bundles and hash tiles,
//! full and partial), its signed checkpoints and, per archive run, a signed manifest of every
//! file written, on a [`Target`] that never rewrites an object. The archive can be verified on
//! its own with nothing but the log's verifier key, compared with the store it came from, and
//! restored into an empty store. See `docs/archive.md`.

pub mod target;

pub use target::{DirTarget, LockStatus, Put, Target, TargetError};
