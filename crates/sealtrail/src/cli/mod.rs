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

use sealtrail_server::keyfiles;
use sealtrail_server::verify::{self as verify_service, StoreVerifyRequest};

/// Default data directory; signing keys live under `DIR/keys/`.
use sealtrail_server::config::DEFAULT_DATA_DIR;

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
    /// Run the server: on the embedded store in --data DIR, or on PostgreSQL with --database-url
    Serve(sealtrail_server::config::Settings),
    /// Create or update sealtrail's schema in a PostgreSQL database (serve also does it on start)
    Migrate {
        /// The database, as the role that is to own sealtrail's tables
        #[arg(
            long,
            value_name = "URL",
            env = "SEALTRAIL_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: String,
    },
    /// Create, list and revoke API tokens (works whether or not the server runs)
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Create and inspect Ed25519 log keys in the C2SP signed-note key formats
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign and verify C2SP signed notes (checkpoints are signed notes)
    #[command(subcommand)]
    Note(NoteCommand),
    /// Verify logs in a store offline: entries, stored hashes and signed checkpoints (read-only, safe while the server runs)
    Verify(VerifyArgs),
    /// Measure the brief's performance workloads beside the hand-built baseline, in one run
    Bench(sealtrail_bench::BenchArgs),
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
    /// Print the verifier keys kept under DIR/keys/ (with --database-url: the verifier key the
    /// store records for each tenant's log)
    Show(DataArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data directory (the embedded store, and DIR/keys/)
    #[arg(long, value_name = "DIR", env = "SEALTRAIL_DATA", default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// Use the PostgreSQL store at this URL instead of the embedded store in DIR
    #[arg(
        long,
        value_name = "URL",
        env = "SEALTRAIL_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The root key the logs' signing keys are derived from, as given to `serve` (needed when
    /// a command creates a tenant and the server runs with --signing-key)
    #[arg(long, value_name = "FILE", env = "SEALTRAIL_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

impl DataArgs {
    fn location(&self) -> sealtrail_store::Location {
        sealtrail_store::Location::new(&self.data, self.database_url.as_deref())
    }
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
        Command::Keys(KeysCommand::Show(data)) => keys_show(&data),
        Command::Note(NoteCommand::Sign { key, text }) => note_sign(&key, &text),
        Command::Note(NoteCommand::Verify { key, note }) => note_verify(&key, &note),
        Command::Verify(args) => verify(args),
        Command::Migrate { database_url } => migrate(&database_url),
        Command::Bench(args) => sealtrail_bench::run(args),
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

fn keys_show(data: &DataArgs) -> Result<()> {
    if data.database_url.is_some() {
        let location = data.location();
        let store = location
            .open_reader()
            .with_context(|| format!("cannot open the store {location}"))?;
        for tenant in store.tenants()? {
            match tenant.vkey {
                Some(vkey) => println!("{vkey}"),
                None => eprintln!(
                    "tenant {} has no recorded verifier key (created by an older sealtrail); see its key file",
                    tenant.name
                ),
            }
        }
        return Ok(());
    }
    let dir = data.data.join("keys");
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

fn migrate(url: &str) -> Result<()> {
    let report = sealtrail_store::postgres::migrate(url).with_context(|| {
        format!(
            "cannot migrate {}",
            sealtrail_store::postgres::redact_url(url)
        )
    })?;
    if report.applied.is_empty() {
        println!(
            "schema of {} is up to date (version {})",
            sealtrail_store::postgres::redact_url(url),
            report.to
        );
    } else {
        println!(
            "migrated {} from schema version {} to {} (applied {})",
            sealtrail_store::postgres::redact_url(url),
            report.from,
            report.to,
            report
                .applied
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn serve(settings: sealtrail_server::config::Settings) -> Result<()> {
    let settings = settings.resolve().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (data, store) = (settings.data.clone(), settings.store.clone());
        let app = sealtrail_server::app::Application::build(settings).await?;
        if let Some(admin) = &app.first_admin_token {
            // Shown once: only its hash is stored.
            println!("admin token (shown once; store it now): {}", admin.token);
        }
        println!(
            "sealtrail listening on http://{} with the store {} and data in {}",
            app.local_addr(),
            store,
            data.display()
        );
        app.run_until_stopped(sealtrail_server::app::shutdown_signal())
            .await
    })
}

fn open_ledger(data: &DataArgs) -> Result<sealtrail_server::ledger::Ledger> {
    // The CLI appends its own audit events; checkpoints follow the server's defaults.
    let settings = sealtrail_server::config::Settings {
        data: Some(data.data.clone()),
        database_url: data.database_url.clone(),
        signing_key: data.signing_key.clone(),
        ..Default::default()
    }
    .resolve()
    .map_err(anyhow::Error::msg)?;
    let location = settings.store.clone();
    sealtrail_server::ledger::Ledger::start(sealtrail_server::ledger::LedgerConfig {
        data_dir: settings.data,
        store: settings.store,
        signing_key: settings.signing_key,
        checkpoint_interval: settings.checkpoint_interval,
        origin_prefix: settings.origin_prefix,
        audit_stdout: false,
    })
    .with_context(|| format!("cannot open the store {location}"))
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
            let ledger = open_ledger(&data)?;
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
            let conn = data.location().open_reader()?;
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
            let ledger = open_ledger(&data)?;
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

/// `sealtrail verify`: which logs, against which extra checkpoints and keys, and how to print.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every verified log is valid, 1 when one is not or nothing could be verified.

With --json and --tenant, prints the report {\"valid\", \"rows_checked\", \"violations\": [{\"seq\", \"kind\", \"detail\"}], \"violation_count\", \"first_broken_seq\", \"checkpoint\"}; without --tenant, an object with one such report per tenant, keyed by tenant name (the _system log included).

A checkpoint kept outside the store (--checkpoint) is what catches a rewrite or a cut of the log's tail by someone with write access to the database: the store's own checkpoints can be deleted with it. Give every copy you kept (the newest exposes the damage, an older one still matching says where it starts), and the log's key (--key): without it, the key is taken from DIR/keys/ and from the store's record, and checkpoints must be signed by both when they differ. docs/checkpoints.md says how to keep checkpoints out of the store's reach and what each violation kind means.")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Verify only this tenant's log (default: every tenant's, _system included)
    #[arg(long)]
    pub tenant: Option<String>,
    /// A signed checkpoint saved elsewhere, checked too, for the log its origin line names (repeatable)
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// A verifier key (file or key text) to trust instead of the ones in DIR/keys/ and the store, for the log whose origin is its name (repeatable)
    #[arg(long = "key", value_name = "VKEY")]
    pub keys: Vec<String>,
    /// Print the verifier's report as JSON
    #[arg(long)]
    pub json: bool,
}

/// Violations listed per log in the readable summary; `--json` lists up to 1,000 and counts all.
const SUMMARY_VIOLATIONS: usize = 10;

fn verify(args: VerifyArgs) -> Result<()> {
    let request = StoreVerifyRequest {
        tenant: args.tenant.clone(),
        checkpoints: args.checkpoints.clone(),
        keys: args.keys.clone(),
    };
    let verified = verify_service::verify_store(&args.data.location(), &args.data.data, &request)?;
    for log in &verified.logs {
        if let Some(disputed) = &log.disputed_key {
            eprintln!(
                "warning: the verifier key of {}'s log in {} ({}) is not the one the store records ({}): one of them was replaced; its checkpoints count only if both signed them. Verify with the log's real key: --key VKEY",
                log.tenant,
                disputed.key_dir.display(),
                disputed.file,
                disputed.recorded
            );
        }
        if !args.json {
            print_summary(&log.tenant, &log.report);
        }
    }
    let missing = &verified.missing_protections;
    if !missing.is_empty() && !args.json {
        println!(
            "store {}: append-only protections missing: {}",
            verified.location,
            missing.join("; ")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verified.to_json()?)?);
    }
    let broken = verified.broken();
    if !broken.is_empty() {
        bail!("verification failed for {}", broken.join(", "));
    }
    if !missing.is_empty() {
        bail!(
            "the store's append-only protections are missing ({}): anyone with write access to it can rewrite history undetected by the store itself; restore them (sealtrail migrate recreates them on PostgreSQL) and keep checkpoints outside the store (--checkpoint)",
            missing.join("; ")
        );
    }
    Ok(())
}

fn print_summary(tenant: &str, report: &sealtrail_core::verify::Report) {
    let signed = match &report.checkpoint {
        Some(cp) => format!(
            "matches the checkpoint of size {}{}",
            cp.size,
            cp.timestamp
                .as_deref()
                .map(|t| format!(" signed {t}"))
                .unwrap_or_default()
        ),
        None => "not covered by a signed checkpoint".to_string(),
    };
    if report.valid {
        println!(
            "{tenant}: valid, {} entries checked, {signed}",
            report.rows_checked
        );
        return;
    }
    let first = report
        .first_broken_seq
        .map(|seq| format!(", first broken seq {seq}"))
        .unwrap_or_default();
    println!(
        "{tenant}: INVALID, {} entries checked, {} violations{first}; {signed}",
        report.rows_checked, report.violation_count
    );
    for violation in report.violations.iter().take(SUMMARY_VIOLATIONS) {
        let place = violation
            .seq
            .map(|seq| format!("seq {seq}"))
            .unwrap_or_else(|| "checkpoint".to_string());
        println!(
            "  {place}: {}: {}",
            violation.kind.as_str(),
            violation.detail
        );
    }
    let more = report
        .violation_count
        .saturating_sub(SUMMARY_VIOLATIONS as u64);
    if more > 0 {
        println!("  ... and {more} more (see --json)");
    }
}
