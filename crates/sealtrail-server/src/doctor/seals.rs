//! The `seals` check of `sealtrail doctor`: every log created before yesterday has a seal of
//! yesterday (UTC), once the day has been over for [`GRACE_SECS`]. A running server seals each
//! day within seconds of midnight, and seals the days it missed when it starts again, so a log
//! behind means no server has run since midnight, or its sealer fails (its log says why).

use sealtrail_core::Timestamp;
use sealtrail_store::Store;

use super::{Check, LocalRequest};
use crate::seals::day_of;

const NAME: &str = "seals";
/// How long after midnight UTC yesterday's seal may still be missing without a warning.
pub const GRACE_SECS: i64 = 10 * 60;

pub(super) fn check(conn: &dyn Store, request: &LocalRequest, now: Timestamp) -> Check {
    let tenants = match conn.tenants() {
        Ok(tenants) => tenants,
        Err(error) => return Check::fail(NAME, error.to_string(), "sealtrail verify"),
    };
    let Ok(earlier) = Timestamp::from_unix_micros(now.unix_micros() - GRACE_SECS * 1_000_000)
    else {
        return Check::ok(NAME, "no day to seal yet");
    };
    let today = day_of(earlier);
    let yesterday = match Timestamp::from_unix_micros(earlier.unix_micros() - 86_400 * 1_000_000) {
        Ok(t) => day_of(t),
        Err(_) => return Check::ok(NAME, "no day to seal yet"),
    };
    let mut behind = Vec::new();
    let mut sealed = 0;
    for tenant in &tenants {
        // A log created today has no past day to seal.
        if tenant
            .created_at
            .get(..10)
            .is_none_or(|day| day >= today.as_str())
        {
            continue;
        }
        match conn.latest_seal(&tenant.name) {
            Ok(Some(seal)) if seal.day >= yesterday => sealed += 1,
            Ok(Some(seal)) => behind.push(format!("{}: last sealed {}", tenant.name, seal.day)),
            Ok(None) => behind.push(format!("{}: never sealed", tenant.name)),
            Err(error) => behind.push(format!("{}: {error}", tenant.name)),
        }
    }
    if behind.is_empty() {
        return Check::ok(
            NAME,
            format!("{sealed} logs sealed up to {yesterday} (UTC)"),
        );
    }
    Check::warn(
        NAME,
        format!("not sealed up to {yesterday}: {}", behind.join("; ")),
        format!(
            "start `sealtrail serve {}` (it seals the days it missed) or read its log for `cannot seal`",
            request.store_args
        ),
    )
}
