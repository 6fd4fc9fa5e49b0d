//! A ledger for the unit tests of the modules that follow the log (`follower`, `index`):
//! those tests need a real log written by the real writer, and building one is the same for
//! each of them, so it is built here once.

use std::path::Path;
use std::time::Duration;

use sealtrail_store::Location;

use super::{Ledger, LedgerConfig};

/// A ledger over an embedded store in `dir`, with the tenant `acme` created (through a token,
/// as an administrator creates a tenant) so that events can be appended to it at once.
pub(crate) async fn with_acme(dir: &Path) -> Ledger {
    let ledger = Ledger::start(LedgerConfig {
        data_dir: dir.to_path_buf(),
        store: Location::new(dir, None),
        signing_key: None,
        // Long enough that no checkpoint is signed while a test runs, unless it asks for one.
        checkpoint_interval: Duration::from_secs(60),
        origin_prefix: "test.example".into(),
        audit_stdout: false,
    })
    .unwrap();
    ledger
        .create_token("acme", vec!["events:write".into()], "test")
        .await
        .unwrap();
    ledger
}
