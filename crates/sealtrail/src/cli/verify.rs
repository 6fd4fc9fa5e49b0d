//! `sealtrail verify`: verifies the logs of a store offline — entries, stored hashes, signed
//! checkpoints (also copies kept elsewhere) and the store's append-only protections — through
//! the verification service (`sealtrail_server::verify::verify_store`), then prints a summary
//! or the JSON report and exits 0 only when everything holds.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use sealtrail_server::verify::{self, StoreVerifyRequest};

use super::DataArgs;

/// `sealtrail verify`: which logs, against which extra checkpoints and keys, and how to print.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every verified log is valid, 1 when one is not or nothing could be verified. A violation that `sealtrail repair` acknowledged (bytes that exist nowhere else) stays a violation, listed with \"acknowledged_by\": the seq of the repair marker; with --accept-repaired a log whose every violation is acknowledged counts as valid, and the report says so (\"accepted_repaired\": [tenants]).

With --json and --tenant, prints the report {\"valid\", \"rows_checked\", \"violations\": [{\"seq\", \"kind\", \"detail\"}], \"violation_count\", \"first_broken_seq\", \"checkpoint\", \"store_protections\"} and, for a log whose start retention pruned, \"pruned\": {\"below\", \"archive\", \"system_seq\", \"pruned_at\"} (those entries are not verified here; their hashes, and every proof, remain). Without --tenant, the same fields summarise every log (valid only when every log is; counts summed; each violation with its \"tenant\"; \"first_broken_seq\" and \"first_broken_tenant\" of the first damaged log by name; \"checkpoint\" null), with each log's own report under \"tenants\", keyed by tenant name (the _system log included).

A checkpoint kept outside the store (--checkpoint) is what catches a rewrite or a cut of the log's tail by someone with write access to the database: the store's own checkpoints can be deleted with it. Give every copy you kept (the newest exposes the damage, an older one still matching says where it starts), and the log's key (--key): without it, the key is taken from DIR/keys/ and from the store's record, and checkpoints must be signed by both when they differ. docs/checkpoints.md says how to keep checkpoints out of the store's reach and what each violation kind means.")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Verify only this tenant's log (default: every tenant's, _system included)
    #[arg(long)]
    pub tenant: Option<String>,
    /// A signed checkpoint saved elsewhere, checked too, for the log its origin line names (repeatable)
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// A verifier key (file or key text) to trust instead of the ones in DIR/keys/ and the store, for the log whose origin is its name (repeatable)
    #[arg(long = "key", value_name = "VKEY")]
    pub keys: Vec<String>,
    /// Verify an archive instead of a store: a directory or s3://bucket/prefix, checked on its own (manifests, file hashes, every entry against the tree, every checkpoint); needs the log's key (--key)
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["database_url", "checkpoints"])]
    pub archive: Option<String>,
    /// Print the verifier's report as JSON
    #[arg(long)]
    pub json: bool,
    /// Count a log as valid when every violation in it is acknowledged by a repair marker
    /// (`sealtrail repair`); each is still listed, with the marker's seq
    #[arg(long)]
    pub accept_repaired: bool,
}

/// Violations listed per log in the readable summary; `--json` lists up to 1,000 and counts all.
const SUMMARY_VIOLATIONS: usize = 10;

pub fn run(args: VerifyArgs) -> Result<()> {
    if let Some(archive) = &args.archive {
        return verify_archive(&args, archive);
    }
    let request = StoreVerifyRequest {
        tenant: args.tenant.clone(),
        checkpoints: args.checkpoints.clone(),
        keys: args.keys.clone(),
    };
    let mut verified = verify::verify_store(&args.data.location(), &args.data.data, &request)?;
    // Damage a repair acknowledged, accepted on request: said so, never hidden.
    let mut accepted = Vec::new();
    if args.accept_repaired {
        for log in &mut verified.logs {
            if !log.report.valid && log.report.all_acknowledged() {
                log.report.valid = true;
                accepted.push(log.tenant.clone());
            }
        }
    }
    // A warning, not a failure: the logs can be intact while others could read them.
    if let Some(warning) = sealtrail_store::DataDir::new(&args.data.data).too_open_warning() {
        eprintln!("warning: {warning}");
    }
    for log in &verified.logs {
        if let Some(disputed) = &log.disputed_key {
            eprintln!(
                "warning: the verifier key of {}'s log in {} ({}) is not the one the store records ({}): one of them was replaced; its checkpoints count only if both signed them. Verify with the log's real key: --key VKEY",
                log.tenant,
                disputed.key_dir.display(),
                disputed.file,
                disputed.recorded
            );
        }
        if !args.json {
            print_summary(&log.tenant, &log.report);
            if accepted.contains(&log.tenant) {
                let markers: std::collections::BTreeSet<u64> = log
                    .report
                    .violations
                    .iter()
                    .filter_map(|v| v.acknowledged_by)
                    .collect();
                println!(
                    "  accepted with --accept-repaired: {} acknowledged by the repair markers at seqs {}",
                    sealtrail_core::text::count(
                        log.report.violation_count,
                        "violation",
                        "violations"
                    ),
                    markers
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for violation in &log.report.violations {
                    println!(
                        "  seq {}: {}: acknowledged by seq {}",
                        violation.seq.unwrap_or(0),
                        violation.kind.as_str(),
                        violation.acknowledged_by.unwrap_or(0)
                    );
                }
            }
        }
    }
    let missing = &verified.missing_protections;
    if !missing.is_empty() && !args.json {
        println!(
            "store {}: append-only protections missing: {}",
            verified.location,
            missing.join("; ")
        );
    }
    if args.json {
        let mut json = verified.to_json()?;
        if args.accept_repaired {
            json["accepted_repaired"] = serde_json::json!(accepted);
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    let broken = verified.broken();
    if !broken.is_empty() {
        bail!("verification failed for {}", broken.join(", "));
    }
    if !missing.is_empty() {
        bail!(
            "the store's append-only protections are missing ({}): anyone with write access to it can rewrite history undetected by the store itself; restore them (sealtrail migrate recreates them on PostgreSQL) and keep checkpoints outside the store (--checkpoint)",
            missing.join("; ")
        );
    }
    Ok(())
}

fn print_summary(tenant: &str, report: &sealtrail_core::verify::Report) {
    use sealtrail_core::text::{count, entries};
    let signed = |cp: &sealtrail_core::verify::CheckpointSummary| {
        let time = cp.timestamp.as_deref().map(|t| format!(" signed {t}"));
        format!(
            "the checkpoint of size {}{}",
            cp.size,
            time.unwrap_or_default()
        )
    };
    let checked = entries(report.rows_checked);
    // Retention removed them on purpose: said, never counted as missing.
    let pruned = report
        .pruned
        .as_ref()
        .map(|p| {
            format!(
                "\n  entries below {} were pruned at {}; the archive {} holds them (`sealtrail verify --archive` checks it)",
                p.below, p.pruned_at, p.archive
            )
        })
        .unwrap_or_default();
    if report.valid {
        let vouched = match &report.checkpoint {
            Some(cp) => format!("matches {}", signed(cp)),
            None => "not covered by a signed checkpoint".to_string(),
        };
        println!("{tenant}: valid, {checked} checked, {vouched}{pruned}");
        return;
    }
    let first = report
        .first_broken_seq
        .map(|seq| format!(", first broken seq {seq}"))
        .unwrap_or_default();
    // The checkpoint of an invalid log vouches for a prefix only: say which.
    let vouched = match &report.checkpoint {
        Some(cp) if cp.size > 0 => format!("seqs 0 to {} still match {}", cp.size - 1, signed(cp)),
        _ => "no signed checkpoint vouches for any of its entries".to_string(),
    };
    println!(
        "{tenant}: INVALID, {checked} checked, {}{first}; {vouched}{pruned}",
        count(report.violation_count, "violation", "violations")
    );
    for violation in report.violations.iter().take(SUMMARY_VIOLATIONS) {
        let place = violation
            .seq
            .map(|seq| format!("seq {seq}"))
            .unwrap_or_else(|| "checkpoint".to_string());
        let acknowledged = violation
            .acknowledged_by
            .map(|seq| format!(" (acknowledged by the repair marker at seq {seq})"))
            .unwrap_or_default();
        println!(
            "  {place}: {}: {}{acknowledged}",
            violation.kind.as_str(),
            violation.detail
        );
    }
    let more = report
        .violation_count
        .saturating_sub(SUMMARY_VIOLATIONS as u64);
    if more > 0 {
        println!("  ... and {more} more (see --json)");
    }
}

/// `verify --archive`: each tenant's archive checked alone, with the key the auditor trusts.
fn verify_archive(args: &VerifyArgs, spec: &str) -> Result<()> {
    use sealtrail_archive::restore::{archived_key, tenants_in};
    use sealtrail_archive::verify::verify_archive;

    let target = super::target::open(spec, super::target::Access::Read, 0)?;
    if args.keys.is_empty() {
        bail!(
            "verifying an archive needs the log's verifier key, obtained out of band: --key VKEY (a file or the key text; `sealtrail keys show` prints it on the server, GET /v1/log/key serves it)"
        );
    }
    let keys = args
        .keys
        .iter()
        .map(|k| sealtrail_server::keys::read_verifier(k))
        .collect::<Result<Vec<_>, _>>()?;
    let tenants = match &args.tenant {
        Some(t) => vec![t.clone()],
        None => tenants_in(&*target)?,
    };
    if tenants.is_empty() {
        bail!("{spec} holds no archived log (no <tenant>/verifier-key)");
    }
    let mut reports = serde_json::Map::new();
    let mut broken = Vec::new();
    let mut unverified = Vec::new();
    for tenant in &tenants {
        // The archive's own copy of the key only says which origin to look for; the key used
        // is the one given.
        let origin = archived_key(&*target, tenant)
            .map(|k| k.name().to_string())
            .ok();
        let key = match (&origin, keys.len()) {
            (Some(origin), _) => keys.iter().find(|k| k.name() == origin),
            (None, 1) => keys.first(),
            (None, _) => None,
        };
        let Some(key) = key else {
            unverified.push(format!(
                "{tenant} (no --key named {})",
                origin.as_deref().unwrap_or("after its origin")
            ));
            continue;
        };
        let report = verify_archive(
            &*target,
            tenant,
            key,
            sealtrail_core::verify::DEFAULT_MAX_VIOLATIONS,
        )?;
        if !args.json {
            print_summary(tenant, &report.report);
            println!(
                "  {} manifests, {} files checked, archived size {}",
                report.manifests_checked, report.files_checked, report.archived_size
            );
        }
        if !report.report.valid {
            broken.push(tenant.clone());
        }
        reports.insert(tenant.clone(), serde_json::to_value(&report)?);
    }
    if args.json {
        let out = if args.tenant.is_some() && reports.len() == 1 {
            reports
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default()
        } else {
            serde_json::json!({
                "valid": broken.is_empty() && unverified.is_empty(),
                "target": target.describe(),
                "tenants": reports,
                "not_verified": unverified,
            })
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if !broken.is_empty() {
        bail!("the archive is not valid for {}", broken.join(", "));
    }
    if !unverified.is_empty() {
        bail!(
            "not verified, for want of the log's key: {}; give each log's verifier key with --key, or choose one log with --tenant",
            unverified.join(", ")
        );
    }
    Ok(())
}
