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
