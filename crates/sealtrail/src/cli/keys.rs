//! `sealtrail keys generate` and `sealtrail keys show`: log keys in the C2SP signed-note key
//! formats, written with safe permissions and read back from the key directory or the store.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use sealtrail_core::note::SignerKey;
use sealtrail_server::keys;
use sealtrail_store::DataDir;

use super::{DEFAULT_DATA_DIR, DataArgs};

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

pub fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate { name, out } => generate(&name, out),
        KeysCommand::Show(data) => show(&data),
    }
}

fn generate(name: &str, out: Option<PathBuf>) -> Result<()> {
    let dir = out.unwrap_or_else(|| DataDir::new(DEFAULT_DATA_DIR).keys());
    let signer = SignerKey::generate(name, &mut rand_core::OsRng)
        .with_context(|| format!("cannot generate a key named {name:?}"))?;
    let (key_path, vkey_path) = keys::write_key_pair(&dir, &signer)?;
    eprintln!(
        "wrote signer key {} (mode 0600, keep it secret) and verifier key {}",
        key_path.display(),
        vkey_path.display()
    );
    println!("{}", signer.verifier());
    Ok(())
}

fn show(data: &DataArgs) -> Result<()> {
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
    let dir = DataDir::new(&data.data).keys();
    let verifiers = keys::list_verifiers(&dir)?;
    if verifiers.is_empty() {
        bail!(
            "no verifier keys (*.vkey) in {}; create one with `sealtrail keys generate --name ORIGIN --out {}`",
            dir.display(),
            dir.display()
        );
    }
    for (_, key) in verifiers {
        println!("{key}");
    }
    Ok(())
}
