//! `sealtrail migrate`: creates or updates sealtrail's schema in a PostgreSQL database, so
//! that a deployment can migrate as the owning role before the servers start.

use anyhow::{Context as _, Result};

pub fn run(url: &str) -> Result<()> {
    let report = sealtrail_store::postgres::migrate(url).with_context(|| {
        format!(
            "cannot migrate {}",
            sealtrail_store::postgres::redact_url(url)
        )
    })?;
    if report.applied.is_empty() {
        println!(
            "schema of {} is up to date (version {})",
            sealtrail_store::postgres::redact_url(url),
            report.to
        );
    } else {
        println!(
            "migrated {} from schema version {} to {} (applied {})",
            sealtrail_store::postgres::redact_url(url),
            report.from,
            report.to,
            report
                .applied
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
