//! `sealtrail report NAME`: one of the reports of `sealtrail_server::reports`, over a store
//! (`--data DIR`, `--database-url URL`: computed here, read-only, safe while the server runs)
//! or from a running server (`--url SERVER` with a `reports` token: `GET /v1/reports/NAME`).

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use sealtrail_core::Timestamp;
use sealtrail_server::gaps::{GapConfig, Gaps};
use sealtrail_server::reports::{self, ReportError, ReportName, ReportRequest, render};

use super::DataArgs;

#[derive(Debug, Args)]
#[command(after_help = "\
Every report is computed against the tenant's latest signed checkpoint, after the entries it signs were verified (entries, stored hashes and every checkpoint up to it, as `sealtrail verify` does); a log that does not verify is refused, naming the first broken seq, with exit status 1. Only entries below the checkpoint's size are read.

The window selects events by event time (occurred_at, else received_at): --to defaults to now, --from to 24 hours before --to (six years for disclosures); completeness covers at most 31 days.

With --format json: {\"report\", \"tenant\", \"from\", \"to\", \"generated_at\", \"checkpoint\": {\"origin\", \"size\", \"root\", \"note\"}, \"coverage\", \"parameters\", \"truncated\", \"total_rows\", \"rows\": [...]} and the report's own fields (README: Reports).")]
pub struct ReportArgs {
    /// The report: daily-activity, security-incidents, record-access, disclosures, user-activity or completeness
    #[arg(value_parser = ["daily-activity", "security-incidents", "record-access", "disclosures", "user-activity", "completeness"])]
    pub name: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Ask a running server instead of reading a store: its base URL (needs --token)
    #[arg(long, value_name = "SERVER", conflicts_with = "database_url")]
    pub url: Option<String>,
    /// A token with the reports scope, for --url
    #[arg(long, env = "SEALTRAIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The tenant whose log is reported on
    #[arg(long)]
    pub tenant: String,
    /// The window's start, RFC 3339 (inclusive)
    #[arg(long, value_name = "TS")]
    pub from: Option<String>,
    /// The window's end, RFC 3339 (exclusive; default now)
    #[arg(long, value_name = "TS")]
    pub to: Option<String>,
    /// json, csv or md
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// record-access: the record's type (targets[].type)
    #[arg(long)]
    pub target_type: Option<String>,
    /// record-access: the record's id (targets[].id)
    #[arg(long)]
    pub target_id: Option<String>,
    /// disclosures: the individual (a target's id, or details.subject)
    #[arg(long)]
    pub subject: Option<String>,
    /// user-activity: the actor's id
    #[arg(long)]
    pub actor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Md,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Md => "md",
        }
    }
}

fn timestamp(flag: &str, text: &Option<String>) -> Result<Option<Timestamp>> {
    text.as_deref()
        .map(|text| {
            Timestamp::parse(text).with_context(|| {
                format!(
                    "--{flag} {text:?} is not an RFC 3339 timestamp such as 2026-11-23T10:00:00Z"
                )
            })
        })
        .transpose()
}

/// A refusal as the command line names it: by its flag.
fn flagged(error: ReportError) -> anyhow::Error {
    match error {
        ReportError::Invalid { field, message, .. } => {
            let flag = field.replace('_', "-");
            let message = message
                .strip_prefix(&format!("{field}: "))
                .unwrap_or(&message)
                .to_string();
            anyhow::anyhow!("--{flag}: {message}")
        }
        other => other.into(),
    }
}

pub fn run(args: ReportArgs) -> Result<()> {
    let name = ReportName::parse(&args.name).expect("clap checks the name");
    let request = ReportRequest {
        name,
        tenant: args.tenant.clone(),
        from: timestamp("from", &args.from)?,
        to: timestamp("to", &args.to)?,
        target_type: args.target_type.clone(),
        target_id: args.target_id.clone(),
        subject: args.subject.clone(),
        actor: args.actor.clone(),
    };
    let now = sealtrail_server::clock::Clock::system().now();
    // Checked here first, so that a bad flag is named by its flag in both modes.
    let window = request.window(now).map_err(flagged)?;
    if let Some(url) = &args.url {
        return remote(url, &args, &request);
    }
    let location = args.data.existing_store()?;
    let conn = location
        .open_scanner()
        .with_context(|| format!("cannot open the store {location}"))?;
    let conn = conn.as_ref();
    if conn.tenant(&args.tenant)?.is_none() {
        bail!(
            "no tenant {:?} in {location}; `sealtrail tokens list` shows the tenants",
            args.tenant
        );
    }
    let checkpoint = conn
        .latest_checkpoint(&args.tenant)?
        .ok_or_else(|| ReportError::NoCheckpoint(args.tenant.clone()))?;
    let gaps = if name == ReportName::Completeness {
        // The detector's database, brought up to date with the log here (as `sealtrail gaps`
        // does), counts at least every entry the log held before.
        let counted_through = conn.size(&args.tenant)?;
        sealtrail_server::gaps::catch_up(&args.data.data, &location).with_context(|| {
            format!(
                "cannot bring {} up to date with the log",
                sealtrail_store::DataDir::new(&args.data.data)
                    .gaps()
                    .display()
            )
        })?;
        let gaps = Gaps::new(
            &args.data.data,
            GapConfig::default(),
            sealtrail_server::clock::Clock::system(),
        );
        Some(
            reports::gap_findings_now(&gaps, &args.tenant, window, counted_through)
                .map_err(flagged)?,
        )
    } else {
        None
    };
    let report = reports::compute(
        conn,
        &args.data.data,
        &request,
        window,
        &checkpoint,
        gaps,
        now,
    )
    .map_err(flagged)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
        Format::Csv => print!("{}", render::csv(&report)),
        Format::Md => print!("{}", render::markdown(&report)),
    }
    Ok(())
}

/// `GET /v1/reports/NAME` on a running server, its answer printed as it came.
fn remote(url: &str, args: &ReportArgs, request: &ReportRequest) -> Result<()> {
    let Some(token) = &args.token else {
        bail!("--url needs a token with the reports scope: --token TOKEN (or SEALTRAIL_TOKEN)");
    };
    let mut query: Vec<(&str, String)> = vec![("format", args.format.as_str().to_string())];
    if let Some(from) = request.from {
        query.push(("from", from.to_rfc3339()));
    }
    if let Some(to) = request.to {
        query.push(("to", to.to_rfc3339()));
    }
    for (key, value) in [
        ("target_type", &args.target_type),
        ("target_id", &args.target_id),
        ("subject", &args.subject),
        ("actor", &args.actor),
    ] {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    let endpoint = format!(
        "{}/v1/reports/{}",
        url.trim_end_matches('/'),
        request.name.as_str()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let response = client
            .get(&endpoint)
            .bearer_auth(token)
            .header("X-Tenant-ID", &args.tenant)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        anyhow::Ok((status, response.text().await?))
    })?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("{endpoint} answered {status}: {message}");
    }
    match args.format {
        Format::Json => {
            let value: serde_json::Value = serde_json::from_str(&body)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        _ => print!("{body}"),
    }
    Ok(())
}
