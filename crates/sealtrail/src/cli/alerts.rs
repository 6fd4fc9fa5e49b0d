//! `sealtrail alerts list STORE --tenant T [--json]`: the alerts the monitoring rules raised in
//! a tenant's log, read straight from the log (`sealtrail_server::monitor::list`), so it
//! answers with no server running.

use anyhow::Result;
use clap::Subcommand;
use sealtrail_server::monitor::list;

use super::DataArgs;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List the alerts raised in a tenant's log, oldest first
    List {
        #[command(flatten)]
        data: DataArgs,
        /// The tenant whose alerts to list
        #[arg(long)]
        tenant: String,
        /// Print {"alerts": [{"id", "rule", "severity", "key", "window_start", "window_end", "count", "seqs", "seq", "raised_at"}]}
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AlertsCommand) -> Result<()> {
    match command {
        AlertsCommand::List { data, tenant, json } => {
            let store = data.existing_store()?.open_reader()?;
            if store.tenant(&tenant)?.is_none() {
                anyhow::bail!(
                    "no tenant {tenant:?} in this store; `sealtrail tokens list` shows the tenants"
                );
            }
            let alerts = list::scan(store.as_ref(), &tenant)?;
            if json {
                println!("{}", serde_json::json!({ "alerts": alerts }));
                return Ok(());
            }
            if alerts.is_empty() {
                println!("no alerts in {tenant}'s log");
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<26} {:<28} {:>6} {:>8}  events",
                "raised", "severity", "rule", "key", "count", "seq"
            );
            for alert in &alerts {
                let first = alert.seqs.first().map_or(String::new(), u64::to_string);
                let last = alert.seqs.last().map_or(String::new(), u64::to_string);
                println!(
                    "{:<20} {:<8} {:<26} {:<28} {:>6} {:>8}  seqs {first}..{last} ({} listed)",
                    &alert.raised_at[..alert.raised_at.len().min(19)],
                    alert.severity,
                    alert.rule,
                    alert.key,
                    alert.count,
                    alert.seq,
                    alert.seqs.len()
                );
            }
            Ok(())
        }
    }
}
