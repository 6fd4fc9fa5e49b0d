//! `sealtrail replay`: reads the `AUDIT:` lines of a file, hands them to
//! `sealtrail_server::replay`, and prints what became of each (a summary, or JSON).

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sealtrail_server::replay::{self, Disposition, ReplayRequest};

use super::DataArgs;

/// `sealtrail replay`: the store, the file and whether to append what the store never had.
#[derive(Debug, Args)]
#[command(after_help = "\
Each AUDIT line whose entry is missing from the store is put back only when its bytes hash to the leaf hash the store still holds at its seq; an entry already there with the same bytes is skipped, one with other bytes is a conflict (nothing written). Entries the store never had are listed, and appended as new events (details.replayed naming the original id, seq and received_at) only with --append. Every run that writes or refuses something is recorded in the _system log as sealtrail.replay.run.

Exit status: 0 when no line was refused or in conflict, 1 otherwise.

With --json, prints {\"lines\", \"counts\": {\"restored\", \"present\", \"appended\", \"not_stored\", \"conflict\", \"refused\"}, \"items\": [{\"line\", \"tenant\", \"seq\", \"status\", \"detail\"}], \"recorded\"}.")]
pub struct ReplayArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The captured stdout of `sealtrail serve --audit-stdout` (lines without `AUDIT: ` are skipped)
    #[arg(long, value_name = "FILE")]
    pub audit_log: PathBuf,
    /// Append entries the store never had as new events marked as replayed
    #[arg(long)]
    pub append: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let text = std::fs::read(&args.audit_log).with_context(|| {
        format!(
            "cannot read --audit-log {}; give the file holding serve's AUDIT lines",
            args.audit_log.display()
        )
    })?;
    let (lines, unreadable) = replay::parse_audit_lines(&text);
    if lines.is_empty() && unreadable.is_empty() {
        bail!(
            "{} holds no `AUDIT: ` line; give the captured stdout of `sealtrail serve --audit-stdout`",
            args.audit_log.display()
        );
    }
    args.data.existing_store()?;
    let settings = sealtrail_server::config::Settings {
        data: Some(args.data.data.clone()),
        database_url: args.data.database_url.clone(),
        signing_key: args.data.signing_key.clone(),
        ..Default::default()
    }
    .resolve()
    .map_err(anyhow::Error::msg)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let report = replay::replay(ReplayRequest {
        ledger: sealtrail_server::ledger::LedgerConfig {
            audit_stdout: false,
            ..sealtrail_server::ledger::LedgerConfig::from_settings(&settings)
        },
        lines,
        unreadable,
        append: args.append,
        actor: format!("cli:{user}"),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for item in &report.items {
            let seq = item.seq.map(|s| format!(" seq {s}")).unwrap_or_default();
            println!(
                "line {}: {}{seq}: {}: {}",
                item.line,
                if item.tenant.is_empty() {
                    "-"
                } else {
                    &item.tenant
                },
                item.status.as_str(),
                item.detail
            );
        }
        let counts: Vec<String> = report
            .counts
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        println!("{} lines: {}", report.lines, counts.join(", "));
        if report.count(Disposition::NotStored) > 0 && !args.append {
            println!(
                "entries the store never had were not written; run again with --append to add them as replayed events"
            );
        }
    }
    let bad = report.count(Disposition::Refused) + report.count(Disposition::Conflict);
    if bad > 0 {
        bail!(
            "{bad} lines were refused or conflict with the store (listed above); nothing was written for them: check where the file came from"
        );
    }
    Ok(())
}
