//! `sealtrail backup`: a consistent online copy of the embedded store, safe while the server
//! writes (a `cp -r` of a live data directory is not: `verify` then sees a corrupt database).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sealtrail_server::verify::{StoreVerifyRequest, verify_store};
use sealtrail_store::{DataDir, Location};

#[derive(Debug, Args)]
#[command(after_help = "\
PATH is a new directory, which becomes a data directory of its own: the database and a copy of DIR/keys/, private to their owner (start a server on it with `sealtrail serve --data PATH`). The copy is taken with SQLite's online backup API, checked with its integrity check and verified before the command returns; exit status 0 only when the copy verifies.

The query index and the gap database are not copied: they are derived from the logs and rebuilt on start. For the PostgreSQL store use the database's own tools (pg_dump, or a base backup with WAL archiving); docs/operations.md says how, and `sealtrail archive run` keeps an independent, verifiable copy of every log.")]
pub struct BackupArgs {
    /// The data directory of the embedded store to copy
    #[arg(long, value_name = "DIR", env = "SEALTRAIL_DATA", default_value = sealtrail_server::config::DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// Where to write the copy: a new directory
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
}

pub fn run(args: BackupArgs) -> Result<()> {
    let source = DataDir::new(&args.data);
    if args.to.exists()
        && args
            .to
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty; back up into a new directory",
            args.to.display()
        );
    }
    let copy = DataDir::new(&args.to);
    copy.create()
        .with_context(|| format!("cannot create {}", args.to.display()))?;
    let database = copy.database();
    let copied = sealtrail_store::sqlite::backup(&source.database(), &database)?;
    copy_keys(&source.keys(), &copy.keys())?;
    // Verified as `sealtrail verify` would verify it, with the copied keys.
    let request = StoreVerifyRequest {
        tenant: None,
        checkpoints: Vec::new(),
        keys: Vec::new(),
    };
    let verified = verify_store(&Location::new(copy.root(), None), copy.root(), &request)?;
    let entries: u64 = verified.logs.iter().map(|l| l.report.rows_checked).sum();
    let broken = verified.broken();
    println!(
        "backed up {} to {} ({} pages, {} bytes); {} logs, {entries} entries verified{}",
        source.database().display(),
        database.display(),
        copied.pages,
        copied.bytes,
        verified.logs.len(),
        if broken.is_empty() {
            ""
        } else {
            " — NOT VALID"
        }
    );
    if !broken.is_empty() {
        bail!("the copy does not verify for {}", broken.join(", "));
    }
    Ok(())
}

fn copy_keys(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let dest = to.join(entry.file_name());
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
            let private = entry.path().extension().is_some_and(|e| e == "key");
            let mode = if private { 0o600 } else { 0o644 };
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}
