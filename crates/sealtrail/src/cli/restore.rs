//! `sealtrail restore`: rebuilds a store from an archive into an empty store and verifies the
//! result; `--drill` does it into a temporary store and reports, the disaster-recovery test a
//! cron job can run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sealtrail_archive::restore::{RestoredTenant, archived_key, restore_tenant, tenants_in};
use sealtrail_core::verify::Report;
use sealtrail_server::config::DEFAULT_DATA_DIR;
use sealtrail_server::verify::{StoreVerifyRequest, verify_store};
use sealtrail_store::{DataDir, Location};

use super::target::{self, Access};

#[derive(Debug, Args)]
#[command(after_help = "\
The store restored into must be empty: a new --data directory, or a PostgreSQL database with no sealtrail log in it. Each log's archive is verified first (a restore from an archive that does not verify is refused), then restored, then the new store is verified; the exit status is 0 only when all of it holds.

What an archive does not hold is not restored: API tokens (create new ones with `sealtrail tokens create`), the logs' signing keys (secret: copy DIR/keys/*.key from the old data directory, or start serve with the same --signing-key, before writing to the restored logs), and the query index and gap database (rebuilt by serve on start).

--drill restores every log into a temporary embedded store, verifies it, prints the time taken, the entries and the verification, and deletes the temporary store: the disaster-recovery drill, as one command a cron job can run.")]
pub struct RestoreArgs {
    /// The archive: a directory or s3://bucket/prefix
    #[arg(long, value_name = "TARGET")]
    pub from: String,
    /// The new data directory to restore into (the embedded store; with --database-url, where the logs' key files go)
    #[arg(long, value_name = "NEWDIR", required_unless_present_any = ["database_url", "drill"])]
    pub data: Option<PathBuf>,
    /// Restore into this empty PostgreSQL database instead
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Restore only this tenant's log (default: every log in the archive)
    #[arg(long)]
    pub tenant: Option<String>,
    /// A verifier key to trust instead of the archive's own copy, for the log whose origin is its name (repeatable)
    #[arg(long = "key", value_name = "VKEY")]
    pub keys: Vec<String>,
    /// Restore into a temporary store, verify, report and delete it
    #[arg(long, conflicts_with_all = ["data", "database_url"])]
    pub drill: bool,
    /// Print the report (time, entries, each log's verification) as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct TenantOutcome {
    tenant: String,
    origin: String,
    key: String,
    entries: u64,
    checkpoints: u64,
    archive_valid: bool,
    restored_valid: bool,
    restored_checkpoint_size: Option<u64>,
    first_violation: Option<String>,
}

pub fn run(args: RestoreArgs) -> Result<()> {
    let started = Instant::now();
    let target = target::open(&args.from, Access::Read, 0)?;
    let scratch;
    let (location, data_dir) = if args.drill {
        scratch = tempfile::Builder::new()
            .prefix("sealtrail-drill-")
            .tempdir()
            .context("cannot create a temporary directory for the drill")?;
        (
            Location::new(scratch.path(), None),
            scratch.path().to_path_buf(),
        )
    } else {
        let data = args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        (Location::new(&data, args.database_url.as_deref()), data)
    };
    if let Location::Embedded { data_dir } = &location {
        let db = DataDir::new(data_dir).database();
        if db.exists() {
            let store = location.open_reader()?;
            if !store.tenants()?.is_empty() {
                bail!(
                    "{} already holds a store with logs; restore into a new, empty --data directory",
                    data_dir.display()
                );
            }
        }
        DataDir::new(data_dir)
            .create()
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
    }
    let store = location.open_writer()?;
    if args.tenant.is_none() && !store.tenants()?.is_empty() {
        bail!("{location} already holds sealtrail logs; restore only into an empty store");
    }
    let tenants = match &args.tenant {
        Some(t) => vec![t.clone()],
        None => tenants_in(&*target)?,
    };
    if tenants.is_empty() {
        bail!(
            "{} holds no archived log (no <tenant>/verifier-key)",
            args.from
        );
    }
    let given = args
        .keys
        .iter()
        .map(|k| sealtrail_server::keys::read_verifier(k))
        .collect::<Result<Vec<_>, _>>()?;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut restored: Vec<RestoredTenant> = Vec::new();
    for tenant in &tenants {
        let own = archived_key(&*target, tenant)?;
        let key = given
            .iter()
            .find(|k| k.name() == own.name())
            .cloned()
            .unwrap_or(own);
        let bar = indicatif::ProgressBar::new(0);
        if args.json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_prefix(tenant.clone());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} entries restored",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let done = restore_tenant(&*target, tenant, &key, &*store, &now, &mut |pos, len| {
            bar.set_length(len);
            bar.set_position(pos);
        });
        bar.finish_and_clear();
        restored.push(done?);
    }
    drop(store);
    // The restored store, verified as `sealtrail verify` would, with the archive's keys.
    let request = StoreVerifyRequest {
        tenant: args.tenant.clone(),
        checkpoints: Vec::new(),
        keys: restored.iter().map(|r| r.key.clone()).collect(),
    };
    let verified = verify_store(&location, &data_dir, &request)?;
    let mut outcomes = Vec::new();
    let mut all_valid = true;
    for r in &restored {
        let report: Option<&Report> = verified
            .logs
            .iter()
            .find(|l| l.tenant == r.tenant)
            .map(|l| &l.report);
        let valid = report.is_some_and(|r| r.valid);
        all_valid &= valid && r.archive.report.valid;
        outcomes.push(TenantOutcome {
            tenant: r.tenant.clone(),
            origin: r.origin.clone(),
            key: r.key.clone(),
            entries: r.entries,
            checkpoints: r.checkpoints,
            archive_valid: r.archive.report.valid,
            restored_valid: valid,
            restored_checkpoint_size: report.and_then(|r| r.checkpoint.as_ref().map(|c| c.size)),
            first_violation: report
                .and_then(|r| r.violations.first())
                .map(|v| format!("{} {}", v.kind.as_str(), v.detail)),
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let entries: u64 = outcomes.iter().map(|o| o.entries).sum();
    if args.json {
        let out = serde_json::json!({
            "drill": args.drill,
            "from": target.describe(),
            "into": if args.drill { "a temporary embedded store (deleted)".to_string() } else { location.to_string() },
            "valid": all_valid,
            "seconds": seconds,
            "entries": entries,
            "tenants": outcomes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let what = if args.drill {
            "drill: restored"
        } else {
            "restored"
        };
        for o in &outcomes {
            println!(
                "{}: {what} {} entries and {} checkpoints; archive {}, restored log {}{}",
                o.tenant,
                o.entries,
                o.checkpoints,
                if o.archive_valid { "valid" } else { "INVALID" },
                if o.restored_valid { "valid" } else { "INVALID" },
                o.restored_checkpoint_size
                    .map(|s| format!(" (matches the checkpoint of size {s})"))
                    .unwrap_or_default()
            );
            println!(
                "  verifier key {} — compare it with the one you keep",
                o.key
            );
        }
        println!(
            "{} logs, {entries} entries in {seconds:.1} s from {} into {}",
            outcomes.len(),
            target.describe(),
            if args.drill {
                "a temporary store (deleted)".to_string()
            } else {
                location.to_string()
            }
        );
        if !args.drill {
            println!(
                "to write to the restored logs, put their signing keys in {}/keys/ (or start serve with the same --signing-key) and create new API tokens",
                data_dir.display()
            );
        }
    }
    if !all_valid {
        bail!("the restored store does not verify");
    }
    Ok(())
}
