//! `sealtrail hold add|list|release`: legal holds, each an audited record in the `_system` log
//! (`sealtrail_server::holds`), acting on the store directly like `sealtrail tokens`.

use anyhow::{Result, bail};
use clap::Subcommand;
use sealtrail_server::holds::{self, Hold};
use sealtrail_server::ledger::{Outcome, SYSTEM_TENANT, Submission};

use super::DataArgs;
use super::cli_actor;

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold on a tenant's log (or a window of it): nothing it covers is pruned until it is released
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The tenant whose log is held
        #[arg(long)]
        tenant: String,
        /// Hold only entries received from this time on (RFC 3339); default: the log's start
        #[arg(long, value_name = "TS")]
        from: Option<String>,
        /// Hold only entries received before this time (RFC 3339); default: no end
        #[arg(long, value_name = "TS")]
        to: Option<String>,
        /// Why (a matter, a request, a regulation); kept in the hold's record
        #[arg(long)]
        reason: String,
        /// Print the hold as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the holds, those in force and those released
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Only this tenant's holds
        #[arg(long)]
        tenant: Option<String>,
        /// Print a JSON array of {"id", "tenant", "from", "to", "reason", "added_at", "added_by", "seq", "released"}
        #[arg(long)]
        json: bool,
    },
    /// Release a hold by its id (from `hold list`)
    Release {
        #[command(flatten)]
        data: DataArgs,
        /// The hold's id
        id: String,
        /// Why it is released; kept in the release's record
        #[arg(long)]
        reason: String,
    },
}

fn append(data: &DataArgs, event: sealtrail_core::event::Event) -> Result<(String, u64)> {
    let ledger = data.open_ledger()?;
    let outcome = ledger.append_blocking(
        SYSTEM_TENANT,
        vec![Submission {
            event,
            idempotency_key: None,
        }],
    );
    ledger.shutdown();
    match outcome?.pop() {
        Some(Outcome::Created(receipt)) => Ok((receipt.id, receipt.seq)),
        other => bail!("the hold's record was not appended: {other:?}"),
    }
}

fn all_holds(data: &DataArgs) -> Result<Vec<Hold>> {
    let store = data.existing_store()?.open_reader()?;
    Ok(holds::holds(store.as_ref())?)
}

pub fn run(command: HoldCommand) -> Result<()> {
    match command {
        HoldCommand::Add {
            data,
            tenant,
            from,
            to,
            reason,
            json,
        } => {
            let store = data.existing_store()?.open_reader()?;
            if store.tenant(&tenant)?.is_none() {
                bail!(
                    "no tenant {tenant:?} in this store; `sealtrail tokens list` shows the tenants"
                );
            }
            drop(store);
            let event = holds::added_event(
                &tenant,
                from.as_deref(),
                to.as_deref(),
                &reason,
                &cli_actor(),
            )
            .map_err(|refusal| anyhow::anyhow!("--{}: {}", refusal.field, refusal.message))?;
            let (id, seq) = append(&data, event)?;
            if json {
                let hold = all_holds(&data)?.into_iter().find(|h| h.id == id);
                println!("{}", serde_json::to_string_pretty(&hold)?);
            } else {
                println!("hold {id} placed on {tenant} (recorded in _system at seq {seq})");
            }
            Ok(())
        }
        HoldCommand::List { data, tenant, json } => {
            let holds: Vec<Hold> = all_holds(&data)?
                .into_iter()
                .filter(|h| tenant.as_ref().is_none_or(|t| &h.tenant == t))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&holds)?);
                return Ok(());
            }
            if holds.is_empty() {
                println!("no holds");
            }
            for h in &holds {
                let window = match (&h.from, &h.to) {
                    (None, None) => "the whole log".to_string(),
                    (from, to) => format!(
                        "entries received {} to {}",
                        from.as_deref().unwrap_or("from the start"),
                        to.as_deref().unwrap_or("no end")
                    ),
                };
                let state = match &h.released {
                    None => "IN FORCE".to_string(),
                    Some(r) => format!("released {} by {} ({})", r.at, r.by, r.reason),
                };
                println!(
                    "{}  {}  {window}  {state}; placed {} by {}: {}",
                    h.id, h.tenant, h.added_at, h.added_by, h.reason
                );
            }
            Ok(())
        }
        HoldCommand::Release { data, id, reason } => {
            let Some(hold) = all_holds(&data)?.into_iter().find(|h| h.id == id) else {
                bail!("no hold {id:?}; `sealtrail hold list` shows them");
            };
            if let Some(released) = &hold.released {
                bail!(
                    "hold {id} was released already, at {} by {}",
                    released.at,
                    released.by
                );
            }
            let event = holds::released_event(&hold, &reason, &cli_actor())
                .map_err(|refusal| anyhow::anyhow!("--{}: {}", refusal.field, refusal.message))?;
            let (_, seq) = append(&data, event)?;
            println!(
                "hold {id} on {} released (recorded in _system at seq {seq})",
                hold.tenant
            );
            Ok(())
        }
    }
}
