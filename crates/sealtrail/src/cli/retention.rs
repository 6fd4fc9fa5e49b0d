//! `sealtrail retention plan`: what pruning would remove from a tenant's log, and what stops
//! it from removing more (`sealtrail_server::retention`). Pruning itself (`apply`) is not
//! built yet.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use sealtrail_core::Timestamp;
use sealtrail_server::retention;

use super::DataArgs;
use super::target::{self, Access};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show what the retention period would prune from a tenant's log, and why not more (reads only)
    #[command(after_help = "\
An entry may be pruned only when it is older than the period (received before now minus --older-than), in the archive given (below the largest size whose manifest the log's key verifies), and covered by no legal hold in force (`sealtrail hold list`). Entries go from the start of the log only, so the plan is one seq: prunable_below. With --json: {\"tenant\", \"log_size\", \"cutoff\", \"older_below\", \"archived_below\", \"archive\", \"held\": [{\"hold_id\", \"reason\", \"first_seq\"}], \"prunable_below\", \"limited_by\"}.")]
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is planned for
    #[arg(long)]
    pub tenant: String,
    /// The retention period: entries received longer ago than this are old enough (e.g. 90d, 12h)
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
    /// The archive that holds the log (a directory or s3://bucket/prefix); without one nothing is prunable
    #[arg(long, value_name = "TARGET")]
    pub archive: Option<String>,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: RetentionCommand) -> Result<()> {
    let RetentionCommand::Plan(args) = command;
    let Some(period) = sealtrail_server::config::parse_duration(&args.older_than) else {
        bail!(
            "--older-than {:?} is not a duration: a whole number with s, m, h or d (e.g. 90d, 12h)",
            args.older_than
        );
    };
    let store = args.data.existing_store()?.open_reader()?;
    let now = sealtrail_server::clock::Clock::system().now();
    let micros = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
    let cutoff = Timestamp::from_unix_micros(now.unix_micros().saturating_sub(micros))
        .map_err(|e| anyhow::anyhow!("--older-than {}: {e}", args.older_than))?;
    let holds = sealtrail_server::holds::holds(store.as_ref())?;
    let target = match &args.archive {
        Some(url) => Some(target::open(url, Access::Read, 0)?),
        None => None,
    };
    let key = match &target {
        Some(_) => {
            let record = store
                .tenant(&args.tenant)?
                .ok_or_else(|| anyhow::anyhow!("no tenant {:?} in this store", args.tenant))?;
            Some(sealtrail_server::verify::log_keys(&args.data.data, &record)?.key)
        }
        None => None,
    };
    let archive = target.as_deref().zip(key.as_ref());
    let plan = retention::plan(store.as_ref(), &args.tenant, cutoff, archive, &holds)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    println!(
        "{}: {} entries; {} received before {}; {}",
        plan.tenant,
        plan.log_size,
        plan.older_below,
        plan.cutoff,
        match plan.archived_below {
            Some(n) => format!("{n} archived in {}", plan.archive.as_deref().unwrap_or("?")),
            None => "no archive given".to_string(),
        }
    );
    for held in &plan.held {
        println!(
            "  held from seq {} by hold {} ({})",
            held.first_seq, held.hold_id, held.reason
        );
    }
    match plan.prunable_below {
        0 => println!("prunable: nothing; limited by: {}", plan.limited_by),
        n => println!(
            "prunable: entries 0 to {} ({n} entries); limited by: {}",
            n - 1,
            plan.limited_by
        ),
    }
    Ok(())
}
