//! `sealtrail archive run|verify`: archives a store's logs to a target once, with a progress
//! bar (the server does the same in the background with `--archive-to`), and compares an
//! archive with its store in both directions.

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use sealtrail_archive::compare::{CompareReport, compare};
use sealtrail_archive::{ArchiveOptions, RunReport, archive_tenant};
use sealtrail_server::keys::{KeyResolver, read_signer};
use sealtrail_store::{Store, Tenant};

use super::DataArgs;
use super::target::{self, Access};

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Archive the logs' tiles, checkpoints and signed manifests to a target, resuming from what it already holds
    Run(RunArgs),
    /// Compare an archive with the store in both directions and name the first difference
    Verify(CompareArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
TARGET is a directory or s3://bucket/prefix (S3: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; path-style when the endpoint is an IP address or SEALTRAIL_S3_PATH_STYLE=true). Every archived object is written once and never rewritten; a run resumes from the newest manifest the target holds. docs/archive.md describes the layout.")]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to archive: a directory or s3://bucket/prefix
    #[arg(long, value_name = "TARGET")]
    pub to: String,
    /// Archive only this tenant's log (default: every log, _system included)
    #[arg(long)]
    pub tenant: Option<String>,
    /// How long S3 Object Lock keeps each object written (COMPLIANCE mode), in days
    #[arg(long, value_name = "DAYS", default_value_t = super::target::DEFAULT_RETENTION_DAYS)]
    pub retention_days: u64,
    /// Accept a target that does not keep objects immutable: a directory, or a bucket without Object Lock
    #[arg(long)]
    pub allow_unlocked: bool,
    /// Print what was archived as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every archived entry, tile and checkpoint equals the store's, 1 otherwise. Entries the store holds beyond the archive are reported as not yet archived, not as a difference.")]
pub struct CompareArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The archive: a directory or s3://bucket/prefix
    #[arg(long, value_name = "TARGET")]
    pub to: String,
    /// Compare only this tenant's log (default: every log of the store, _system included)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print each log's comparison as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: ArchiveCommand) -> Result<()> {
    match command {
        ArchiveCommand::Run(args) => archive_run(args),
        ArchiveCommand::Verify(args) => archive_verify(args),
    }
}

/// The tenants a command works on: one by name, or every log of the store.
pub(crate) fn chosen_tenants(store: &dyn Store, tenant: Option<&str>) -> Result<Vec<Tenant>> {
    match tenant {
        Some(name) => match store.tenant(name)? {
            Some(t) => Ok(vec![t]),
            None => bail!(
                "the store has no log named {name:?}; `sealtrail verify` lists the logs it holds"
            ),
        },
        None => Ok(store.tenants()?),
    }
}

fn archive_run(args: RunArgs) -> Result<()> {
    let location = args.data.existing_store()?;
    let store = location.open_reader()?;
    let target = target::open(
        &args.to,
        Access::Write {
            allow_unlocked: args.allow_unlocked,
        },
        args.retention_days,
    )?;
    let lock = target.lock_status()?;
    if !lock.immutable && !args.json {
        eprintln!("note: {}: {}", target.describe(), lock.detail);
    }
    let root = match &args.data.signing_key {
        Some(path) => Some(read_signer(path)?),
        None => None,
    };
    let keys = KeyResolver::new(&args.data.data).with_root_key(root);
    let started = Instant::now();
    let mut reports: Vec<RunReport> = Vec::new();
    for tenant in chosen_tenants(&*store, args.tenant.as_deref())? {
        let signer = keys.signer(&tenant).with_context(|| {
            format!(
                "the archive of {} is signed with the log's key",
                tenant.name
            )
        })?;
        let bar = progress_bar(&tenant.name, args.json);
        let report = archive_tenant(
            &*store,
            &tenant.name,
            &*target,
            &signer,
            &ArchiveOptions::default(),
            &mut |p| {
                bar.set_length(p.goal);
                bar.set_position(p.archived);
            },
        );
        bar.finish_and_clear();
        let report = report?;
        if !args.json {
            println!(
                "{}: archived {} to {} (store {}): {} files written, {} already there, {} bytes",
                report.tenant,
                report.from_size,
                report.to_size,
                report.store_size,
                report.files_written,
                report.files_already_there,
                report.bytes_written
            );
        }
        reports.push(report);
    }
    if args.json {
        let out = serde_json::json!({
            "target": target.describe(),
            "immutable": lock.immutable,
            "seconds": started.elapsed().as_secs_f64(),
            "tenants": reports,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn progress_bar(tenant: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(tenant.to_string());
    bar
}

fn archive_verify(args: CompareArgs) -> Result<()> {
    let location = args.data.existing_store()?;
    let store = location.open_reader()?;
    let target = target::open(&args.to, Access::Read, 0)?;
    let mut reports: Vec<CompareReport> = Vec::new();
    for tenant in chosen_tenants(&*store, args.tenant.as_deref())? {
        let keys = sealtrail_server::verify::log_keys(&args.data.data, &tenant)?;
        if let Some(recorded) = &keys.disputed {
            bail!(
                "the verifier key of {}'s log in the key directory ({}) is not the one the store records ({recorded}): one was replaced; run `sealtrail verify --tenant {}` first",
                tenant.name,
                keys.key,
                tenant.name
            );
        }
        let key = keys.key;
        let report = compare(&*store, &tenant.name, &*target, &key, 100)?;
        if !args.json {
            match &report.first_difference {
                None => println!(
                    "{}: archive and store agree on {} entries ({} not yet archived)",
                    report.tenant, report.entries_compared, report.not_yet_archived
                ),
                Some(d) => println!(
                    "{}: DIFFERENT, {} differences; first: {}{}: {}",
                    report.tenant,
                    report.differences.len(),
                    d.seq.map(|s| format!("seq {s} ")).unwrap_or_default(),
                    d.kind,
                    d.detail
                ),
            }
        }
        reports.push(report);
    }
    let differing: Vec<&str> = reports
        .iter()
        .filter(|r| !r.valid)
        .map(|r| r.tenant.as_str())
        .collect();
    if args.json {
        let out = serde_json::json!({
            "valid": differing.is_empty(),
            "target": target.describe(),
            "tenants": reports,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if !differing.is_empty() {
        bail!(
            "the archive differs from the store for {}",
            differing.join(", ")
        );
    }
    Ok(())
}
