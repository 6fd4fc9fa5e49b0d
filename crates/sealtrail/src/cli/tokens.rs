//! `sealtrail tokens create|list|revoke`: API tokens, created and revoked through the write
//! path (so each is an audited admin action) whether or not a server runs.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::{DataArgs, cli_actor};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token for a tenant (creating the tenant if it does not exist yet)
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// The tenant the token is bound to (`*` for an operator token that names the tenant in X-Tenant-ID)
        #[arg(long)]
        tenant: String,
        /// What the token may do: events:write, events:read, log:read, verify, reports, admin (repeatable)
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Print {"id": ..., "token": ...} as JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets)
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print a JSON array of {"id", "tenant", "scopes", "created_at", "revoked_at"}
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id; it stops working within the server's token_recheck_ms
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        /// The token's id, as `sealtrail tokens list` shows it (not the secret)
        #[arg(value_name = "ID")]
        id: String,
    },
}

pub fn run(command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Create {
            data,
            tenant,
            scopes,
            json,
        } => {
            let ledger = data.open_ledger()?;
            let created = ledger.create_token_blocking(&tenant, scopes, &cli_actor());
            ledger.shutdown();
            let created = created?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": created.id, "token": created.token, "tenant": created.tenant, "scopes": created.scopes, "tenant_created": created.tenant_created})
                );
            } else {
                if created.tenant_created {
                    eprintln!("created tenant {}", created.tenant);
                }
                eprintln!(
                    "created token {} for tenant {} with scopes {} (the secret below is shown once)",
                    created.id,
                    created.tenant,
                    created.scopes.join(" ")
                );
                println!("{}", created.token);
            }
            Ok(())
        }
        TokensCommand::List { data, json } => {
            let conn = data.existing_store()?.open_reader()?;
            let tokens = conn.list_tokens()?;
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "tenant": t.tenant, "scopes": t.scopes, "created_at": t.created_at, "revoked_at": t.revoked_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<22} {:<20} {:<28} {:<40} REVOKED",
                    "ID", "TENANT", "CREATED", "SCOPES"
                );
                for t in tokens {
                    println!(
                        "{:<22} {:<20} {:<28} {:<40} {}",
                        t.id,
                        t.tenant,
                        t.created_at,
                        t.scopes.join(" "),
                        t.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        TokensCommand::Revoke { data, id } => {
            let ledger = data.open_ledger()?;
            let revoked = ledger.revoke_token_blocking(&id, &cli_actor());
            ledger.shutdown();
            if !revoked? {
                bail!("no active token {id:?}; see `sealtrail tokens list`");
            }
            eprintln!("revoked token {id}");
            Ok(())
        }
    }
}
