//! `sealtrail repair`: puts back damaged or missing entries of a tenant's log from the
//! archive or from `AUDIT:` lines, only bytes the log's signed tree commits to
//! (`sealtrail_server::repair`), and says what it could not put back.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sealtrail_server::repair::{self, RepairRequest};

use super::DataArgs;
use super::target::{self, Access};

/// `sealtrail repair`: the store, the tenant, the sources and why.
#[derive(Debug, Args)]
#[command(after_help = "\
The log is verified first; a valid log is left alone. For each seq a violation names, the original bytes are looked for in the archive (--from-archive) and in AUDIT lines (--audit-log), and put back only when their leaf hash is the stored one and the stored tree proves it in the latest checkpoint the log's key signed. Stored hashes and checkpoints are never changed. A changed row is replaced past the append-only trigger inside the same transaction (on PostgreSQL this needs the schema owner's URL). The run is recorded in the _system log as sealtrail.repair.run, and the log is verified again.

Damage no source holds is listed, not touched; with --acknowledge-lost a marker event sealtrail.chain.repaired is appended to the log naming the range, the violation kinds, the reason and the evidence, and the seal of the first sealed day covering it is re-issued with a link to the seal it replaces. Verify then lists each such violation with the marker's seq (acknowledged_by); `sealtrail verify --accept-repaired` counts the log as valid, saying so.

Exit status: 0 when the log verifies afterwards, or every violation left is acknowledged; 1 otherwise (what could not be put back is listed with why).")]
pub struct RepairArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is repaired
    #[arg(long)]
    pub tenant: String,
    /// An archive of the log (a directory or s3://bucket/prefix) to take original entries from
    #[arg(long, value_name = "TARGET")]
    pub from_archive: Option<String>,
    /// The captured stdout of `sealtrail serve --audit-stdout` to take original entries from
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// What happened, for the record (kept in the _system log's sealtrail.repair.run)
    #[arg(long)]
    pub reason: String,
    /// Record what no source holds as lost: a sealtrail.chain.repaired marker in the log names
    /// it (verify then lists each violation with the marker's seq) and the day's seal is
    /// re-issued linked to the one it replaces. Check every source first: this is final
    #[arg(long)]
    pub acknowledge_lost: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RepairArgs) -> Result<()> {
    if args.reason.trim().is_empty() {
        bail!("--reason must say what happened; it is kept with the repair's record");
    }
    args.data.existing_store()?;
    let audit_lines = match &args.audit_log {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read --audit-log {}", path.display()))?;
            sealtrail_server::replay::parse_audit_lines(&text).0
        }
        None => Vec::new(),
    };
    let archive = match &args.from_archive {
        Some(url) => Some(target::open(url, Access::Read, 0)?),
        None => None,
    };
    let settings = sealtrail_server::config::Settings {
        data: Some(args.data.data.clone()),
        database_url: args.data.database_url.clone(),
        signing_key: args.data.signing_key.clone(),
        ..Default::default()
    }
    .resolve()
    .map_err(anyhow::Error::msg)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let report = repair::repair(RepairRequest {
        ledger: sealtrail_server::ledger::LedgerConfig {
            audit_stdout: false,
            ..sealtrail_server::ledger::LedgerConfig::from_settings(&settings)
        },
        tenant: args.tenant.clone(),
        reason: args.reason.clone(),
        actor: format!("cli:{user}"),
        archive: archive.as_deref(),
        audit_lines,
        acknowledge_lost: args.acknowledge_lost,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.violations_before == 0 {
        println!("{}: valid; nothing to repair", report.tenant);
    } else {
        for r in &report.restored {
            println!(
                "seq {}: {} entry put back from the {}",
                r.seq,
                r.was,
                r.source.replace('_', " ")
            );
        }
        for n in &report.not_restored {
            println!("seq {}: not put back: {}", n.seq, n.reason);
        }
        if let Some(ack) = &report.acknowledged {
            println!(
                "seqs {} to {}: acknowledged as lost ({}) by the repair marker at seq {}{}",
                ack.from_seq,
                ack.to_seq,
                ack.kinds.join(", "),
                ack.marker_seq,
                ack.reissued_seal
                    .as_ref()
                    .map(|s| format!("; the seal of {s} re-issued, linked to the one it replaces"))
                    .unwrap_or_default()
            );
        }
        println!(
            "{}: {} violations before, {} entries put back; now {}",
            report.tenant,
            report.violations_before,
            report.restored.len(),
            if report.after.valid {
                "valid".to_string()
            } else {
                format!("{} violations remain", report.after.violation_count)
            }
        );
    }
    if report.after.valid {
        return Ok(());
    }
    if report.after.all_acknowledged() {
        // Finished: what is lost is recorded as such; verify still lists it.
        return Ok(());
    }
    if report.not_restored.is_empty() || args.acknowledge_lost {
        bail!(
            "{}'s log does not verify after the repair; `sealtrail verify --tenant {}` lists what remains",
            report.tenant,
            report.tenant
        );
    }
    Err(anyhow::anyhow!(
        "{} entries of {} could not be put back; give every source you have (--from-archive, --audit-log), or record them as lost with --acknowledge-lost",
        report.not_restored.len(),
        report.tenant
    ))
}
