//! `sealtrail verify --database-url` on a PostgreSQL store damaged by a superuser — the
//! append-only triggers disabled, rows changed, deleted, inserted, swapped, cut, a tail
//! rewritten with recomputed hashes and links, the verifier key the store records replaced and
//! the checkpoints re-signed, and the triggers re-enabled as a careful administrator would: the
//! same scenarios as the embedded store's (`support/tamper.rs`), with the same findings.

use crate::support::TestDatabase;
use crate::support::tamper::{self, Log};

/// Builds the test log on its own database, or says why the test is skipped.
fn pristine(test: &str, dir: &std::path::Path) -> Option<Log> {
    let db = TestDatabase::create(test)?;
    Some(Log::build(dir.join("pristine"), Some(db)))
}

#[test]
fn damage_done_by_a_superuser_is_named_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pristine) = pristine("pg_tamper faults", dir.path()) else {
        return;
    };
    tamper::faults_are_named_at_their_seq(&pristine, dir.path());
    tamper::an_appended_entry_with_its_hashes_is_beyond_the_checkpoints(
        &pristine,
        &dir.path().join("appended"),
    );
}

#[test]
fn a_rewritten_or_cut_tail_is_caught_by_checkpoints_kept_outside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pristine) = pristine("pg_tamper tails", dir.path()) else {
        return;
    };
    tamper::a_rewritten_tail_is_caught_by_saved_checkpoints(&pristine, dir.path());
    tamper::a_cut_tail_is_caught_by_a_saved_checkpoint(&pristine, dir.path());
}

/// A superuser replaces `tenants.vkey` and re-signs the checkpoints: caught with the server's
/// key files, with the auditor's `--key`, or with a checkpoint saved earlier; verified with
/// none of these, verify has only the database's word for the key and cannot tell.
#[test]
fn a_replaced_verifier_key_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pristine) = pristine("pg_tamper key", dir.path()) else {
        return;
    };
    tamper::a_replaced_key_is_caught(&pristine, dir.path(), true);
}
