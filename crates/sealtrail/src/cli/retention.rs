//! `sealtrail retention plan|apply|report`: what a tenant's retention period would prune and
//! what stops it from pruning more, the prune itself (through the write path, recorded in
//! `_system` first), and the retention compliance report (`sealtrail_server::retention`).

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use sealtrail_core::Timestamp;
use sealtrail_server::retention::{self, Periods, RetentionPlan};

use super::target::{self, Access};
use super::{DataArgs, cli_actor};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show what the retention period would prune from a tenant's log, and why not more (reads only)
    #[command(after_help = "\
An entry may be pruned only when it is older than the period (received before now minus the period), in the archive (below the largest size whose manifest the log's key verifies), and covered by no legal hold in force (`sealtrail hold list`). Entries go from the start of the log only, and the newest entry is always kept, so the plan is one seq: prunable_below.

The period is --older-than, or else the tenant's: set through the admin API, or `[tenants.NAME] retention_days`, or `retention_days` of the configuration the server last started with. The archive is --archive, or else the server's archive_to.

With --json: {\"tenant\", \"log_size\", \"pruned_below\", \"cutoff\", \"older_below\", \"archived_below\", \"archive\", \"held\": [{\"hold_id\", \"reason\", \"first_seq\"}], \"prunable_below\", \"limited_by\"}.")]
    Plan(PlanArgs),
    /// Prune what the plan allows, after comparing that range with the archive once more
    #[command(after_help = "\
The range the plan allows is compared with the archive first — every entry byte for byte, the hash tiles, and the archived checkpoint's root against the store's tree — and nothing is pruned if anything differs. Then, in one transaction, the archive's verified size is recorded as the log's archive watermark, `sealtrail.retention.pruned` is appended to the _system log, and the store removes the entries below the mark (refusing, itself, to pass the watermark). Stored hashes and checkpoints stay: every proof about the log stays valid, and `sealtrail verify` reports the range as pruned, with the archive that holds it.

With --json: {\"plan\": <as retention plan --json>, \"entries_compared\", \"pruned\": {\"below\", \"removed\", \"archive\", \"system_seq\", \"pruned_at\"} | null}.")]
    Apply(PlanArgs),
    /// The retention compliance report: period, oldest entry kept, what was pruned and where it is archived, holds in force
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is planned for
    #[arg(long)]
    pub tenant: String,
    /// The retention period, overriding the tenant's: entries received longer ago than this are old enough (e.g. 90d, 12h)
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// The archive that holds the log (a directory or s3://bucket/prefix); default: the server's archive_to
    #[arg(long, value_name = "TARGET")]
    pub archive: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant reported on
    #[arg(long)]
    pub tenant: String,
    /// The archive to check the pruned range against; default: the server's archive_to
    #[arg(long, value_name = "TARGET")]
    pub archive: Option<String>,
    /// md: Markdown for the review's minutes; json: {"tenant", "generated_at", "checkpoint", "period", "log_size", "oldest_kept", "pruned_below", "prunes", "archive_check", "holds_in_force", "plan", "kept_past_period", "findings"}
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Json,
    Md,
}

pub fn run(command: RetentionCommand) -> Result<()> {
    match command {
        RetentionCommand::Plan(args) => plan(args, false),
        RetentionCommand::Apply(args) => plan(args, true),
        RetentionCommand::Report(args) => report(args),
    }
}

/// The archive named, or the one the server archives to (from its recorded configuration).
fn archive_url(given: Option<&str>, store: &dyn sealtrail_store::Store) -> Result<Option<String>> {
    if let Some(url) = given {
        return Ok(Some(url.to_string()));
    }
    let recorded: Option<serde_json::Value> = store
        .setting("config")?
        .and_then(|text| serde_json::from_str(&text).ok());
    Ok(recorded.and_then(|config| config["archive_to"].as_str().map(str::to_string)))
}

fn plan(args: PlanArgs, apply: bool) -> Result<()> {
    let location = args.data.existing_store()?;
    let store = location.open_reader()?;
    let period = match &args.older_than {
        Some(text) => sealtrail_server::config::parse_duration(text).ok_or_else(|| {
            anyhow::anyhow!(
                "--older-than {text:?} is not a duration: a whole number with s, m, h or d (e.g. 90d, 12h)"
            )
        })?,
        None => match Periods::read(store.as_ref())?.of(&args.tenant) {
            Some(period) => std::time::Duration::from_secs(period.days * 86_400),
            None => bail!(
                "tenant {:?} has no retention period (its log is kept for ever): give --older-than DURATION, or set one (`retention_days` in the server's configuration, or PUT /v1/admin/tenants/{}/retention)",
                args.tenant,
                args.tenant
            ),
        },
    };
    let now = sealtrail_server::clock::Clock::system().now();
    let cutoff = retention::cutoff(now, period);
    let holds = sealtrail_server::holds::holds(store.as_ref())?;
    let url = archive_url(args.archive.as_deref(), store.as_ref())?;
    if apply && url.is_none() {
        bail!(
            "nothing is pruned without an archive: give --archive TARGET (a directory or s3://bucket/prefix), or run the server with archive_to"
        );
    }
    let target = match &url {
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
    if !apply {
        let archive = target.as_deref().zip(key.as_ref());
        let plan = retention::plan(store.as_ref(), &args.tenant, cutoff, archive, &holds)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print_plan(&plan);
        }
        return Ok(());
    }
    let (Some(target), Some(key)) = (target, key) else {
        unreachable!("an archive was required above");
    };
    let ledger = args.data.open_ledger()?;
    let applied = retention::apply(
        store.as_ref(),
        &ledger,
        &args.tenant,
        cutoff,
        target.as_ref(),
        &key,
        &holds,
        &cli_actor(),
    );
    ledger.shutdown();
    let applied = applied?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&applied)?);
        return Ok(());
    }
    print_plan(&applied.plan);
    match &applied.pruned {
        Some(pruned) => println!(
            "pruned: entries below {} ({} removed) after comparing {} entries with {}; recorded as seq {} of the _system log",
            pruned.below,
            pruned.removed,
            applied.entries_compared,
            pruned.archive,
            pruned.system_seq
        ),
        None => println!("pruned: nothing"),
    }
    Ok(())
}

fn print_plan(plan: &RetentionPlan) {
    println!(
        "{}: {} entries{}; {} received before {}; {}",
        plan.tenant,
        plan.log_size,
        match plan.pruned_below {
            0 => String::new(),
            n => format!(" (below {n} pruned already)"),
        },
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
    if plan.prunable_below > plan.pruned_below {
        println!(
            "prunable: entries {} to {} ({} entries); limited by: {}",
            plan.pruned_below,
            plan.prunable_below - 1,
            plan.prunable_below - plan.pruned_below,
            plan.limited_by
        );
    } else {
        println!("prunable: nothing; limited by: {}", plan.limited_by);
    }
}

fn report(args: ReportArgs) -> Result<()> {
    let location = args.data.existing_store()?;
    let store = location.open_reader()?;
    let record = store
        .tenant(&args.tenant)?
        .ok_or_else(|| anyhow::anyhow!("no tenant {:?} in this store", args.tenant))?;
    let url = archive_url(args.archive.as_deref(), store.as_ref())?;
    let target = match &url {
        Some(url) => Some(target::open(url, Access::Read, 0)?),
        None => None,
    };
    let key = sealtrail_server::verify::log_keys(&args.data.data, &record)?.key;
    let now: Timestamp = sealtrail_server::clock::Clock::system().now();
    let report = retention::compliance_report(
        store.as_ref(),
        &args.tenant,
        now,
        target.as_deref().map(|t| (t, &key)),
    )?;
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Md => print!("{}", report.to_markdown()),
    }
    Ok(())
}
