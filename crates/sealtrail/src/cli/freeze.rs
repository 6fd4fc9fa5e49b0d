//! `sealtrail freeze|unfreeze --tenant T --reason TEXT`: stop and resume a tenant's ingest,
//! on the store directly (whether or not a server runs), through the write path so that each
//! change is an audited admin action in the `_system` log (see `sealtrail_server::freeze`).
//! Running servers see it within their `token_recheck_ms` (1 s by default).

use anyhow::{Result, bail};
use clap::Args;

use sealtrail_server::ledger::{FreezeChange, LedgerError, Refusal};

use super::{DataArgs, cli_actor};

#[derive(Debug, Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The tenant (any but _system, which records the freeze itself)
    #[arg(long, value_name = "T")]
    tenant: String,
    /// Why: recorded in the _system log, and shown to a frozen tenant's producers in every refusal
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Print {"tenant", "frozen", "changed", "freeze": {"reason", "at", "actor"} | null} as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: FreezeArgs, frozen: bool) -> Result<()> {
    let FreezeArgs {
        data,
        tenant,
        reason,
        json,
    } = args;
    // Refused before the store is opened, so that a typo costs nothing.
    if let Err(error) = sealtrail_server::freeze::check_reason(&reason) {
        bail!("--reason: {error}");
    }
    let ledger = data.open_ledger()?;
    let changed = ledger.set_frozen_blocking(&tenant, frozen, &reason, &cli_actor());
    ledger.shutdown();
    let change = match changed {
        Ok(change) => change,
        Err(LedgerError::Invalid(Refusal::UnknownTenant(_))) => bail!(
            "there is no tenant {tenant:?} in the store {}; a tenant is created with its first token (`sealtrail tokens create`)",
            data.location()
        ),
        Err(error) => return Err(error.into()),
    };
    if json {
        println!("{}", as_json(&change));
        return Ok(());
    }
    eprintln!("{}", describe(&change, frozen));
    Ok(())
}

/// The change as the admin API answers it.
fn as_json(change: &FreezeChange) -> serde_json::Value {
    serde_json::json!({
        "tenant": change.tenant,
        "frozen": change.standing.is_some(),
        "changed": change.changed,
        "freeze": change.standing,
    })
}

/// What the operator is told, one line.
fn describe(change: &FreezeChange, frozen: bool) -> String {
    let tenant = &change.tenant;
    match (frozen, change.changed, &change.standing) {
        (true, false, Some(standing)) => format!(
            "tenant {tenant} was already frozen (since {}, by {}: {}); nothing changed",
            standing.at, standing.actor, standing.reason
        ),
        (true, _, _) => format!(
            "froze tenant {tenant}: its producers get 503 tenant_frozen and nothing they send is kept (running servers within their token_recheck_ms, 1 s by default); reads, proofs and verification go on. Lift it with `sealtrail unfreeze --tenant {tenant} --reason TEXT`"
        ),
        (false, false, _) => format!("tenant {tenant} was not frozen; nothing changed"),
        (false, true, _) => format!(
            "unfroze tenant {tenant}: its events are taken again (by running servers within their token_recheck_ms, 1 s by default)"
        ),
    }
}
