//! `sealtrail doctor`: runs the triage checks of `sealtrail_server::doctor` against a store
//! (a data directory or a PostgreSQL URL) or a running server (`--url`), prints them as a
//! table or as `{"status", "checks": [{"name", "status", "detail", "remedy"}]}`, and exits 0
//! only when nothing fails (and, with `--strict`, nothing warns).

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use sealtrail_server::doctor::{self, Diagnosis, LocalRequest, Status};

/// `sealtrail doctor`: where to look and how to print.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when no check fails (with --strict: none warns either), 1 otherwise.

Against a store (--data DIR, the default, or --database-url URL) every check runs, including a write probe: one audited `sealtrail.doctor.probe` event appended to the _system log through the write path, as `sealtrail tokens create` appends its events (safe while the server runs), then read back and verified.

It reads the server's settings as serve does (flags, SEALTRAIL_* variables, --config FILE): with an archive target (--archive-to, SEALTRAIL_ARCHIVE_TO or archive_to in the file) the target is checked too: it answers, keeps objects immutable (S3 Object Lock) unless --archive-allow-unlocked, and how far each log's archive is behind.

Against a running server (--url) only what /health and /metrics publish is checked (its status, store, audit writes, chain, append-only triggers, disk, open gaps, spool, index, permissions, archive, checkpoints): not key files, schema integrity, the database clock, the write probe or a fresh verification. Run doctor on the server's host for those.")]
pub struct DoctorArgs {
    /// What serve is given: doctor reads the same flags, environment variables and config
    /// file (--config), so that it checks the setup the server runs with
    #[command(
        flatten,
        next_help_heading = "The server's settings, as serve reads them"
    )]
    pub settings: sealtrail_server::config::Settings,
    /// Diagnose a running server from its /health and /metrics instead of a store
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "database_url",
        help_heading = "Doctor"
    )]
    pub url: Option<String>,
    /// A token for --url, if the server asks for one on /metrics
    #[arg(
        long,
        env = "SEALTRAIL_TOKEN",
        hide_env_values = true,
        help_heading = "Doctor"
    )]
    pub token: Option<String>,
    /// Print {"status", "checks": [{"name", "status", "detail", "remedy"}]}
    #[arg(long, help_heading = "Doctor")]
    pub json: bool,
    /// Exit 1 on warnings too
    #[arg(long, help_heading = "Doctor")]
    pub strict: bool,
}

pub fn run(args: DoctorArgs) -> Result<()> {
    let diagnosis = match &args.url {
        Some(url) => remote(url, args.token.as_deref())?,
        None => local(&args)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print_table(&diagnosis);
    }
    let failing: Vec<&str> = diagnosis
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail || (args.strict && c.status == Status::Warn))
        .map(|c| c.name)
        .collect();
    if !failing.is_empty() {
        bail!(
            "doctor: {} did not pass; each row's remedy says what to do",
            failing.join(", ")
        );
    }
    Ok(())
}

fn local(args: &DoctorArgs) -> Result<Diagnosis> {
    let settings = args
        .settings
        .clone()
        .resolve()
        .map_err(anyhow::Error::msg)?;
    let ledger = sealtrail_server::ledger::LedgerConfig {
        audit_stdout: false,
        ..sealtrail_server::ledger::LedgerConfig::from_settings(&settings)
    };
    let store_args = doctor::store_args(&ledger.store, &ledger.data_dir);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Ok(doctor::run_local(&LocalRequest {
        ledger,
        actor: format!("cli:{user}"),
        store_args,
        gaps: settings.gaps.clone(),
        archive: settings.archive.map(|settings| doctor::ArchiveRequest {
            settings,
            opener: super::serve::target_opener(),
        }),
    }))
}

fn remote(url: &str, token: Option<&str>) -> Result<Diagnosis> {
    let url = url.trim_end_matches('/').to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (health, metrics) = runtime.block_on(async {
        let health = async {
            let response = client
                .get(format!("{url}/health"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            // A failing server answers 503 with the same body.
            response
                .json::<serde_json::Value>()
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let metrics = async {
            let mut request = client.get(format!("{url}/metrics"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            response.text().await.map_err(|e| e.to_string())
        }
        .await;
        (health, metrics)
    });
    Ok(doctor::remote::assess(&url, health, metrics))
}

fn print_table(diagnosis: &Diagnosis) {
    let width = diagnosis
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$}  {:<7}DETAIL", "CHECK", "STATUS");
    for check in &diagnosis.checks {
        println!(
            "{:<width$}  {:<7}{}",
            check.name,
            check.status.as_str(),
            check.detail
        );
        if !check.remedy.is_empty() {
            println!("{:<width$}  {:<7}-> {}", "", "", check.remedy);
        }
    }
    println!("status: {}", diagnosis.status.as_str());
}
