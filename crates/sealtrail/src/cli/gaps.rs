//! `sealtrail gaps list` and `sealtrail gaps timeline`: the gap detector's findings and
//! timelines for one tenant, from `DIR/gaps.db`, brought up to date with the log first
//! (`sealtrail_server::gaps::catch_up`: safe while the server runs, which keeps the same file).
//! `list` exits 0 only when the window has no gap.

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use sealtrail_core::Timestamp;
use sealtrail_server::gaps::{Bucket, GapConfig, Gaps, TimelineRequest};
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
    }
}

fn list(args: ListArgs) -> Result<()> {
    let from = args
        .from
        .as_deref()
        .map(|t| timestamp("from", t))
        .transpose()?;
    let to = args.to.as_deref().map(|t| timestamp("to", t)).transpose()?;
    let config = match &args.config {
        Some(file) => {
            sealtrail_server::config::Settings {
                config: Some(file.clone()),
                ..Default::default()
            }
            .resolve()?
            .gaps
        }
        None => GapConfig::default(),
    };
    ready(&args.data)?;
    let gaps = Gaps::new(
        &args.data.data,
        config,
        sealtrail_server::clock::Clock::system(),
    );
    let report = gaps.report(&args.tenant, from, to)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!(
            "{}: {} gap(s) from {} to {}",
            report.tenant,
            report.gaps.len(),
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
            "{} gap(s) found in {}'s log; see the list above",
            report.gaps.len(),
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
    let timeline = gaps
        .timeline(&args.tenant, &request)
        .map_err(|error| match error {
            sealtrail_server::gaps::GapsRequestError::Invalid { field, message, .. } => {
                anyhow::anyhow!("--{field}: {message}")
            }
            other => other.into(),
        })?;
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
