//! The command line: argument definitions and one handler per command.
//!
//! Handlers print results on stdout and nothing else, so their output can be piped (a signed
//! note from `note sign` is byte-for-byte the note). Problems go to stderr as one line saying
//! what failed and what to do, with exit status 1; usage errors exit with status 2.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use sealtrail_core::note::{self, SignerKey};

use crate::keyfiles;

/// Default data directory; signing keys live under `DIR/keys/`.
pub const DEFAULT_DATA_DIR: &str = "./sealtrail-data";

#[derive(Debug, Parser)]
#[command(
    name = "sealtrail",
    version,
    about = "A tamper-evident audit trail: server, command-line tool and offline verifier"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server on the embedded store in --data DIR
    Serve(crate::config::Settings),
    /// Create, list and revoke API tokens (works whether or not the server runs)
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Create and inspect Ed25519 log keys in the C2SP signed-note key formats
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign and verify C2SP signed notes (checkpoints are signed notes)
    #[command(subcommand)]
    Note(NoteCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a key pair named ORIGIN; writes <stem>.key (mode 0600) and <stem>.vkey, prints the verifier key
    Generate {
        /// The key name; for a log's key, its checkpoint origin line
        #[arg(long, value_name = "ORIGIN")]
        name: String,
        /// Directory to write the key files into (default: ./sealtrail-data/keys)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print the verifier keys kept under DIR/keys/
    Show(DataArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data directory
    #[arg(long, value_name = "DIR", env = "SEALTRAIL_DATA", default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
}

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
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Sign TEXTFILE (use - for stdin) and print the signed note, nothing else
    Sign {
        /// The signer key file (PRIVATE+KEY+...)
        #[arg(long, value_name = "SKEYFILE")]
        key: PathBuf,
        #[arg(value_name = "TEXTFILE")]
        text: PathBuf,
    },
    /// Verify NOTEFILE (use - for stdin) with a verifier key; prints the note text on success
    Verify {
        /// The verifier key, as a file or as the key text itself (<name>+<hash>+<base64>)
        #[arg(long, value_name = "VKEY")]
        key: String,
        #[arg(value_name = "NOTEFILE")]
        note: PathBuf,
    },
}

/// Parses the process arguments, runs the command and maps failure to exit status 1.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALTRAIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sealtrail: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(settings) => serve(settings),
        Command::Tokens(command) => tokens(command),
        Command::Keys(KeysCommand::Generate { name, out }) => keys_generate(&name, out),
        Command::Keys(KeysCommand::Show(data)) => keys_show(&data.data),
        Command::Note(NoteCommand::Sign { key, text }) => note_sign(&key, &text),
        Command::Note(NoteCommand::Verify { key, note }) => note_verify(&key, &note),
    }
}

fn keys_generate(name: &str, out: Option<PathBuf>) -> Result<()> {
    let dir = out.unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join("keys"));
    let signer = SignerKey::generate(name, &mut rand_core::OsRng)
        .with_context(|| format!("cannot generate a key named {name:?}"))?;
    let (key_path, vkey_path) = keyfiles::write_key_pair(&dir, &signer)?;
    eprintln!(
        "wrote signer key {} (mode 0600, keep it secret) and verifier key {}",
        key_path.display(),
        vkey_path.display()
    );
    println!("{}", signer.verifier());
    Ok(())
}

fn keys_show(data: &Path) -> Result<()> {
    let dir = data.join("keys");
    let keys = keyfiles::list_verifiers(&dir)?;
    if keys.is_empty() {
        bail!(
            "no verifier keys (*.vkey) in {}; create one with `sealtrail keys generate --name ORIGIN --out {}`",
            dir.display(),
            dir.display()
        );
    }
    for (_, key) in keys {
        println!("{key}");
    }
    Ok(())
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buffer)
            .context("cannot read standard input")?;
        return Ok(buffer);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn note_sign(key: &Path, text: &Path) -> Result<()> {
    let signer = keyfiles::read_signer(key)?;
    let bytes = read_input(text)?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", text.display()))?;
    let signed = note::sign(&text, &[&signer]).context("cannot sign the note")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(signed.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn note_verify(key: &str, note_path: &Path) -> Result<()> {
    let verifier = keyfiles::read_verifier(key)?;
    let bytes = read_input(note_path)?;
    let opened = note::open(&bytes, std::slice::from_ref(&verifier))
        .with_context(|| format!("{} does not verify", note_path.display()))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(opened.text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn serve(settings: crate::config::Settings) -> Result<()> {
    let settings = settings.resolve().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let data = settings.data.clone();
        let app = crate::app::Application::build(settings).await?;
        if let Some(admin) = &app.first_admin_token {
            // Shown once: only its hash is stored.
            println!("admin token (shown once; store it now): {}", admin.token);
        }
        println!(
            "sealtrail listening on http://{} with data in {}",
            app.local_addr(),
            data.display()
        );
        app.run_until_stopped(crate::app::shutdown_signal()).await
    })
}

fn open_ledger(data: &Path) -> Result<crate::ledger::Ledger> {
    // The CLI appends its own audit events; checkpoints follow the server's defaults.
    let settings = crate::config::Settings {
        data: Some(data.to_path_buf()),
        ..Default::default()
    }
    .resolve()
    .map_err(anyhow::Error::msg)?;
    crate::ledger::Ledger::start(crate::ledger::LedgerConfig {
        data_dir: settings.data,
        checkpoint_interval: settings.checkpoint_interval,
        origin_prefix: settings.origin_prefix,
    })
    .with_context(|| format!("cannot open the store in {}", data.display()))
}

fn cli_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn tokens(command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Create {
            data,
            tenant,
            scopes,
            json,
        } => {
            let ledger = open_ledger(&data.data)?;
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
            let conn = crate::store::open_reader(&crate::store::database_path(&data.data))?;
            let tokens = crate::store::list_tokens(&conn)?;
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
            let ledger = open_ledger(&data.data)?;
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
