//! The `archive` check of `sealtrail doctor`, when an archive target is configured: the target
//! opens and answers, keeps objects immutable (S3 Object Lock) or the operator allowed it not
//! to, and every log's archive is close to the log (the lag `/health` reports, measured here
//! from the target's own manifests and the store).

use sealtrail_archive::run::archived_state;
use sealtrail_core::Timestamp;
use sealtrail_store::Store;

use super::{ArchiveRequest, Check};
use crate::archive::{ArchiveTargetSpec, lag, lag_limit};
use crate::keys::KeyResolver;

const NAME: &str = "archive";

/// The check; see the module docs.
pub(super) fn check(
    conn: &dyn Store,
    data_dir: &std::path::Path,
    request: &ArchiveRequest,
    now: Timestamp,
) -> Check {
    let settings = &request.settings;
    let spec = ArchiveTargetSpec {
        url: settings.target.clone(),
        retention: std::time::Duration::from_secs(settings.retention_days * 86_400),
        allow_unlocked: settings.allow_unlocked,
    };
    let target = match (request.opener)(&spec) {
        Ok(target) => target,
        Err(error) => {
            return Check::fail(
                NAME,
                format!(
                    "cannot open the archive target {}: {error}",
                    settings.target
                ),
                "check --archive-to: the directory's owner and modes, or the bucket, its credentials (AWS_*) and the network",
            );
        }
    };
    let lock = match target.lock_status() {
        Ok(lock) => lock,
        Err(error) => {
            return Check::fail(
                NAME,
                format!(
                    "the archive target {} does not answer: {error}",
                    target.describe()
                ),
                "check the target's credentials (AWS_*), permissions and the network; the server retries every interval",
            );
        }
    };
    if !lock.immutable && !settings.allow_unlocked {
        let remedy = if crate::archive::is_s3(&settings.target) {
            "enable Object Lock on the bucket (`aws s3api put-object-lock-configuration`, COMPLIANCE mode), or accept an unlocked bucket with --archive-allow-unlocked"
        } else {
            "a directory cannot be locked: archive to S3 with Object Lock, or accept the directory with --archive-allow-unlocked"
        };
        return Check::fail(
            NAME,
            format!(
                "the archive target {} does not keep what it is given immutable ({}); the server refuses to archive to it",
                target.describe(),
                lock.detail
            ),
            remedy,
        );
    }
    let lock_words = if lock.immutable {
        lock.detail.clone()
    } else {
        format!(
            "not immutable ({}), allowed by --archive-allow-unlocked",
            lock.detail
        )
    };
    let tenants = match conn.tenants() {
        Ok(tenants) => tenants,
        Err(error) => {
            return Check::fail(
                NAME,
                format!("cannot list the logs: {error}"),
                "see the store check",
            );
        }
    };
    let keys = KeyResolver::new(data_dir);
    let limit = lag_limit(settings.interval).as_secs_f64();
    let (mut entries, mut worst): (u64, Option<(f64, String)>) = (0, None);
    let mut problems = Vec::new();
    for tenant in &tenants {
        let measured = keys
            .verifiers(tenant)
            .map_err(|e| e.to_string())
            .and_then(|keys| {
                archived_state(target.as_ref(), &tenant.name, &keys.key).map_err(|e| e.to_string())
            })
            .and_then(|state| lag(conn, &tenant.name, state.size, now).map_err(|e| e.to_string()));
        match measured {
            Ok(lag) => {
                entries += lag.lag_entries;
                if let Some(seconds) = lag.lag_seconds
                    && worst.as_ref().is_none_or(|(w, _)| seconds > *w)
                {
                    worst = Some((seconds, tenant.name.clone()));
                }
            }
            Err(error) => problems.push(format!("{}: {error}", tenant.name)),
        }
    }
    if !problems.is_empty() {
        return Check::fail(
            NAME,
            format!("cannot read the archive of {}", problems.join("; ")),
            "`sealtrail verify --archive TARGET --key VKEY` for the report; a manifest the log's key does not verify stops the archive",
        );
    }
    let (seconds, tenant) = worst.unwrap_or((0.0, String::new()));
    let detail = format!(
        "{} ({lock_words}); {entries} entries not archived yet across {} logs, the oldest signed one waiting {seconds:.0} s",
        target.describe(),
        tenants.len()
    );
    if seconds > limit {
        return Check::warn(
            NAME,
            format!("{detail} (tenant {tenant}; more than {limit:.0} s)"),
            "is `sealtrail serve` running with --archive-to? Read /health's archive.last_error or the server's log",
        );
    }
    Check::ok(NAME, detail)
}
