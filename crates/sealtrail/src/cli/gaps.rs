//! `sealtrail gaps list`, `gaps timeline` and `gaps report`: the gap detector's findings,
//! timelines and gap report for one tenant, from `DIR/gaps.db`, brought up to date with the
//! log first (`sealtrail_server::gaps::catch_up`: safe while the server runs, which keeps the
//! same file). `list` and `report` exit 0 only when the window has no gap.

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use sealtrail_core::Timestamp;
use sealtrail_server::gaps::{
    AuditStdout, Bucket, GapConfig, Gaps, GapsRequestError, TimelineRequest,
};
use sealtrail_store::gaps::ActivityFilter;

use super::DataArgs;

#[derive(Debug, Subcommand)]
pub enum GapsCommand {
    /// List a tenant's gap findings in a window (exit status 1 when there is any)
    #[command(after_help = "\
Exit status: 0 when the window holds no gap, 1 when it holds one (or the command failed).

Findings: time_gap (a silence the tenant's history says is unusual), rate_drop (an hour below half the same hour a day and a week earlier), producer_seq_gap (source.seq numbers a producer sent that never arrived: `missing` lists them, inclusive) and silent_producer (a producer seen regularly that stopped). With --json: {\"tenant\", \"from\", \"to\", \"gaps\": [{\"kind\", \"start\", \"end\", \"duration_seconds\", \"producer\", \"missing\", \"impact\", \"detail\", \"confidence\", \"ongoing\", \"evidence\"}]}. Per-tenant thresholds are read from the [tenants.NAME] section of --config FILE.")]
    List(ListArgs),
    /// Print a tenant's events per minute, hour or day (zeros included)
    Timeline(TimelineArgs),
    /// Write the gap report of a window, for the incident record (exit status 1 when there is a gap)
    #[command(after_help = "\
Exit status: 0 when the window holds no gap, 1 when it holds one (or the command failed).

For each gap: start, end, duration, compliance impact (low < 5 min, medium 5-30 min, high > 30 min), the actions expected in it (the same clock window on up to 7 earlier days), a PHI-access estimate (expected events whose action contains read, view, access, export or disclos), what sealtrail knows of the cause (its own start/stop records; producer silence or sequence gaps), events that arrived late and source.seq numbers provably lost; then the compensating records and what to do. --format md (default) is Markdown to read as it is; --format json the same as GET /v1/gaps/report.")]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is reported on
    #[arg(long)]
    pub tenant: String,
    /// Window start, RFC 3339
    #[arg(long, value_name = "TS")]
    pub from: String,
    /// Window end, RFC 3339, exclusive
    #[arg(long, value_name = "TS")]
    pub to: String,
    /// md (Markdown) or json
    #[arg(long, default_value = "md")]
    pub format: String,
    /// The server's config file, for the tenant's gap thresholds ([tenants.NAME])
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is judged
    #[arg(long)]
    pub tenant: String,
    /// Window start, RFC 3339 (default: 24 hours before --to)
    #[arg(long, value_name = "TS")]
    pub from: Option<String>,
    /// Window end, RFC 3339, exclusive (default: now)
    #[arg(long, value_name = "TS")]
    pub to: Option<String>,
    /// The server's config file, for the tenant's gap thresholds ([tenants.NAME])
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Print the findings as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose events are counted
    #[arg(long)]
    pub tenant: String,
    /// Bucket size: minute, hour or day
    #[arg(long)]
    pub bucket: String,
    /// Start, RFC 3339 (rounded down to a bucket)
    #[arg(long, value_name = "TS")]
    pub from: String,
    /// End, RFC 3339, exclusive (rounded up to a bucket)
    #[arg(long, value_name = "TS")]
    pub to: String,
    /// Count by received_at instead of event time (occurred_at, else received_at)
    #[arg(long)]
    pub received_at: bool,
    /// Count only this action
    #[arg(long)]
    pub action: Option<String>,
    /// Count only events of this source.app
    #[arg(long, value_name = "APP")]
    pub source: Option<String>,
    /// Print the timeline as JSON
    #[arg(long)]
    pub json: bool,
}

fn timestamp(flag: &str, text: &str) -> Result<Timestamp> {
    Timestamp::parse(text).with_context(|| {
        format!("--{flag} {text:?} is not an RFC 3339 timestamp such as 2026-11-23T10:00:00Z")
    })
}

/// The store, and its gap database brought up to date.
fn ready(data: &DataArgs) -> Result<()> {
    let location = data.existing_store()?;
    sealtrail_server::gaps::catch_up(&data.data, &location).with_context(|| {
        format!(
            "cannot bring {} up to date with the log",
            sealtrail_store::DataDir::new(&data.data).gaps().display()
        )
    })
}

pub fn run(command: GapsCommand) -> Result<()> {
    match command {
        GapsCommand::List(args) => list(args),
        GapsCommand::Timeline(args) => timeline(args),
        GapsCommand::Report(args) => report(args),
    }
}

fn gap_config(file: &Option<std::path::PathBuf>) -> Result<GapConfig> {
    Ok(match file {
        Some(file) => {
            sealtrail_server::config::Settings {
                config: Some(file.clone()),
                ..Default::default()
            }
            .resolve()?
            .gaps
        }
        None => GapConfig::default(),
    })
}

/// A request error as the command line names it: by its flag.
fn flag_error(error: GapsRequestError) -> anyhow::Error {
    match error {
        GapsRequestError::Invalid { field, message, .. } => anyhow::anyhow!("--{field}: {message}"),
        other => other.into(),
    }
}

fn report(args: ReportArgs) -> Result<()> {
    let markdown = match args.format.as_str() {
        "md" => true,
        "json" => false,
        other => bail!("--format {other:?}: use md or json"),
    };
    let from = timestamp("from", &args.from)?;
    let to = timestamp("to", &args.to)?;
    let config = gap_config(&args.config)?;
    ready(&args.data)?;
    let gaps = Gaps::new(
        &args.data.data,
        config,
        sealtrail_server::clock::Clock::system(),
    );
    let report = gaps
        .incident_report(&args.tenant, from, to, AuditStdout::Unknown)
        .map_err(flag_error)?;
    if markdown {
        print!("{}", report.to_markdown());
    } else {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    }
    if !report.sections.is_empty() {
        bail!(
            "{} found in {}'s log (reported on stdout)",
            sealtrail_core::text::count(report.sections.len() as u64, "gap", "gaps"),
            report.tenant
        );
    }
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let from = args
        .from
        .as_deref()
        .map(|t| timestamp("from", t))
        .transpose()?;
    let to = args.to.as_deref().map(|t| timestamp("to", t)).transpose()?;
    let config = gap_config(&args.config)?;
    ready(&args.data)?;
    let gaps = Gaps::new(
        &args.data.data,
        config,
        sealtrail_server::clock::Clock::system(),
    );
    let report = gaps.report(&args.tenant, from, to).map_err(flag_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!(
            "{}: {} from {} to {}",
            report.tenant,
            sealtrail_core::text::count(report.gaps.len() as u64, "gap", "gaps"),
            report.from,
            report.to
        );
        for finding in &report.gaps {
            println!(
                "{:<17} {:<6} {}  {}",
                finding.kind.as_str(),
                finding.impact().as_str(),
                sealtrail_core::Timestamp::from_unix_micros(finding.start)?,
                finding.detail
            );
        }
    }
    if !report.gaps.is_empty() {
        bail!(
            "{} found in {}'s log (listed on stdout)",
            sealtrail_core::text::count(report.gaps.len() as u64, "gap", "gaps"),
            report.tenant
        );
    }
    Ok(())
}

fn timeline(args: TimelineArgs) -> Result<()> {
    let bucket = Bucket::parse(&args.bucket)
        .with_context(|| format!("--bucket {:?}: use minute, hour or day", args.bucket))?;
    let request = TimelineRequest {
        bucket,
        from: timestamp("from", &args.from)?,
        to: timestamp("to", &args.to)?,
        received: args.received_at,
        filter: ActivityFilter {
            action: args.action.clone(),
            app: args.source.clone(),
        },
    };
    ready(&args.data)?;
    let gaps = Gaps::new(
        &args.data.data,
        GapConfig::default(),
        sealtrail_server::clock::Clock::system(),
    );
    let timeline = gaps.timeline(&args.tenant, &request).map_err(flag_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&timeline.to_json())?);
    } else {
        for (start, count) in &timeline.buckets {
            println!("{start}  {count}");
        }
        println!("total  {}", timeline.total);
    }
    Ok(())
}
