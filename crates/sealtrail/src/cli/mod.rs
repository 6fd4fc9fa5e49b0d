//! The command line: the clap definitions of `sealtrail` and its commands, the arguments
//! several commands share, and [`main`]. Each command lives in a file of its own that parses
//! what is left, calls the libraries (`sealtrail_server`, `sealtrail_store`,
//! `sealtrail_bench`, `sealtrail_core`) and prints what they return.
//!
//! Handlers print results on stdout and nothing else, so their output can be piped (a signed
//! note from `note sign` is byte-for-byte the note). Problems go to stderr as one line saying
//! what failed and what to do, with exit status 1; usage errors exit with status 2. `anyhow`
//! and exit codes belong here and nowhere else.

mod alerts;
mod archive;
mod backup;
mod bench;
mod doctor;
mod export;
mod freeze;
mod gaps;
mod hold;
mod keys;
mod migrate;
mod note;
mod repair;
mod replay;
mod report;
mod restore;
mod retention;
mod serve;
mod target;
mod tokens;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

/// Default data directory; signing keys live under `DIR/keys/`.
use sealtrail_server::config::DEFAULT_DATA_DIR;

pub use self::keys::KeysCommand;
pub use self::note::NoteCommand;
pub use self::tokens::TokensCommand;
pub use self::verify::VerifyArgs;

#[derive(Debug, Parser)]
#[command(
    name = "sealtrail",
    version,
    about = "A tamper-evident audit trail: server, command-line tool and offline verifier"
)]
pub struct Cli {
    /// How log lines on stderr are written: `text` (one readable line per event; colours only
    /// when stderr is a terminal) or `json` (one JSON object per line, for log shippers)
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "SEALTRAIL_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Which log lines are written: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// per-module directives such as `info,sealtrail_server=debug`. Each request is one `info`
    /// line (target `sealtrail_server::http::access`)
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        env = "SEALTRAIL_LOG",
        default_value = "info"
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: on the embedded store in --data DIR, or on PostgreSQL with --database-url
    Serve(Box<sealtrail_server::config::Settings>),
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
    /// Create, list and revoke API tokens in an existing store (works whether or not the server runs; never creates a store)
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
    /// Run the runbooks' triage: store, write probe, disk, permissions, schema, protections, recent chain, spool, index, checkpoints, keys, clock
    Doctor(Box<doctor::DoctorArgs>),
    /// Put back entries lost from the store from `AUDIT:` lines (serve --audit-stdout), each checked against its stored hash
    Replay(replay::ReplayArgs),
    /// Retention: what the retention period would prune from a log, and why not more
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Export a tenant's log as NDJSON (each line checkable against the log), CSV or OCSF, streamed
    Export(Box<export::ExportArgs>),
    /// Alerts the monitoring rules raised in a tenant's log
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Legal holds: place, list and release them (each an audited record in the _system log)
    #[command(subcommand)]
    Hold(hold::HoldCommand),
    /// Put back damaged or missing entries of a log from the archive or AUDIT lines: only the bytes its signed tree commits to, never a rewrite
    Repair(repair::RepairArgs),
    /// Stop a tenant's ingest (503 tenant_frozen, nothing kept) while reads go on; audited in the _system log
    Freeze(freeze::FreezeArgs),
    /// Resume a frozen tenant's ingest; audited in the _system log
    Unfreeze(freeze::FreezeArgs),
    /// Reports over a tenant's verified log: daily activity, security incidents, record access, disclosures (HIPAA accounting), user activity, completeness
    Report(Box<report::ReportArgs>),
    /// Timelines and gap findings of a tenant's log (time gaps, rate drops, lost producer events, silent producers)
    #[command(subcommand)]
    Gaps(gaps::GapsCommand),
    /// Archive the logs to a directory or S3 with Object Lock, and compare an archive with the store
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// Rebuild a store from an archive into an empty store and verify it; --drill does it into a temporary store
    Restore(restore::RestoreArgs),
    /// Take a consistent copy of a running embedded store into a new data directory, and verify it
    Backup(backup::BackupArgs),
    /// Measure the brief's performance workloads beside the hand-built baseline, in one run
    Bench(sealtrail_bench::BenchArgs),
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
    pub(crate) fn location(&self) -> sealtrail_store::Location {
        sealtrail_store::Location::new(&self.data, self.database_url.as_deref())
    }

    /// The store, once it is known to exist; otherwise an error saying where it was looked for
    /// and how to point at the right one.
    ///
    /// Only `serve` and `migrate` create a store. Every other command that writes (`tokens
    /// create`, `tokens revoke`) would otherwise create an empty one wherever it happens to be
    /// run — `./sealtrail-data` by default — and a token made there is silently useless to the
    /// server, which reads another store.
    pub(crate) fn existing_store(&self) -> Result<sealtrail_store::Location> {
        let location = self.location();
        match &location {
            sealtrail_store::Location::Embedded { data_dir } => {
                let database = sealtrail_store::DataDir::new(data_dir).database();
                if !database.exists() {
                    // The absolute path, because the default is relative to wherever the
                    // command happened to run.
                    let shown = std::path::absolute(&database).unwrap_or(database);
                    anyhow::bail!(
                        "no sealtrail store at {} (nothing was created); point at the server's store with --data DIR (or SEALTRAIL_DATA) or --database-url URL (or SEALTRAIL_DATABASE_URL); only `sealtrail serve` creates a store",
                        shown.display()
                    );
                }
            }
            sealtrail_store::Location::Postgres { .. } => {
                // Opening for reading fails, naming the database and what to run, when it has
                // no sealtrail schema (or an older one); it never creates anything.
                location.open_reader().map_err(|error| {
                    anyhow::anyhow!(
                        "{error} (nothing was created); check --database-url (or SEALTRAIL_DATABASE_URL)"
                    )
                })?;
            }
        }
        Ok(location)
    }
}

impl DataArgs {
    /// A writer on the existing store, for commands that change it through the write path
    /// (so that each change is an audited admin action, appended under the same locks a
    /// running server takes): `tokens create|revoke`, `freeze`, `unfreeze`.
    pub(crate) fn open_ledger(&self) -> Result<sealtrail_server::ledger::Ledger> {
        // The ledger would create a missing store; a change to a store no server reads is
        // useless.
        self.existing_store()?;
        // The CLI appends its own audit events; checkpoints follow the server's defaults.
        let settings = sealtrail_server::config::Settings {
            data: Some(self.data.clone()),
            database_url: self.database_url.clone(),
            signing_key: self.signing_key.clone(),
            ..Default::default()
        }
        .resolve()
        .map_err(anyhow::Error::msg)?;
        let location = settings.storage.store.clone();
        sealtrail_server::ledger::Ledger::start(sealtrail_server::ledger::LedgerConfig {
            audit_stdout: false,
            ..sealtrail_server::ledger::LedgerConfig::from_settings(&settings)
        })
        .with_context(|| format!("cannot open the store {location}"))
    }
}

/// The actor the command line's admin actions are recorded under: `cli:<user>`.
pub(crate) fn cli_actor() -> String {
    // Where a service manager or a container leaves USER unset, LOGNAME often is.
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}

/// Parses the process arguments, runs the command and maps failure to exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(cli.log_format, &cli.log) {
        eprintln!("sealtrail: {error}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sealtrail: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Sends log lines to stderr in `format`, filtered by `filter` (`--log`, `SEALTRAIL_LOG`).
/// Colours only when stderr is a terminal: a file, a pipe or journald gets plain text.
fn init_logging(format: LogFormat, filter: &str) -> Result<()> {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        anyhow::anyhow!(
            "--log (or SEALTRAIL_LOG) {filter:?} is not a log filter ({e}); give a level such as `info` or directives such as `info,sealtrail_server=debug`"
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(())
}

/// The error and its causes as one line, each said once: most of sealtrail's errors already
/// include their cause's text in their own message (so that a log line or an HTTP body,
/// which show one message, are complete), and a cause already said is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(settings) => serve::run(*settings),
        Command::Tokens(command) => tokens::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Note(command) => note::run(command),
        Command::Verify(args) => verify::run(args),
        Command::Migrate { database_url } => migrate::run(&database_url),
        Command::Bench(args) => bench::run(args),
        Command::Doctor(args) => doctor::run(*args),
        Command::Replay(args) => replay::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Hold(command) => hold::run(command),
        Command::Alerts(command) => alerts::run(command),
        Command::Export(args) => export::run(*args),
        Command::Retention(command) => retention::run(command),
        Command::Freeze(args) => freeze::run(args, true),
        Command::Unfreeze(args) => freeze::run(args, false),
        Command::Gaps(command) => gaps::run(command),
        Command::Report(args) => report::run(*args),
        Command::Archive(command) => archive::run(command),
        Command::Restore(args) => restore::run(args),
        Command::Backup(args) => backup::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::{Cli, describe};

    /// An error whose message includes its cause's, as most of sealtrail's do.
    #[derive(Debug)]
    struct Wrapping {
        source: std::io::Error,
    }

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read the key directory /x/keys: {}", self.source)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let os = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Wrapping { source: os() });
        assert_eq!(
            describe(&error),
            format!("cannot read the key directory /x/keys: {}", os())
        );
        // A context that adds something new keeps its cause.
        let error = anyhow::Error::new(os()).context("cannot open the store /x");
        assert_eq!(
            describe(&error),
            format!("cannot open the store /x: {}", os())
        );
        let error = anyhow::Error::new(Wrapping { source: os() }).context("keys show");
        assert_eq!(
            describe(&error),
            format!("keys show: cannot read the key directory /x/keys: {}", os())
        );
    }

    /// Every command and every flag or argument a user can see says what it is for.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() && path != " sealtrail" {
                missing.push(format!("{path}: no description"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
