//! `sealtrail note sign` and `sealtrail note verify`: C2SP signed notes (checkpoints are
//! signed notes), read from a file or stdin and written to stdout byte for byte.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use sealtrail_core::note;
use sealtrail_server::keys;

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Sign TEXTFILE (use - for stdin) and print the signed note, nothing else
    Sign {
        /// The signer key file (PRIVATE+KEY+...)
        #[arg(long, value_name = "SKEYFILE")]
        key: PathBuf,
        /// The note text to sign, ending in a newline (- for stdin)
        #[arg(value_name = "TEXTFILE")]
        text: PathBuf,
    },
    /// Verify NOTEFILE (use - for stdin) with a verifier key; prints the note text on success
    Verify {
        /// The verifier key, as a file or as the key text itself (<name>+<hash>+<base64>)
        #[arg(long, value_name = "VKEY")]
        key: String,
        /// The signed note, e.g. a checkpoint (- for stdin)
        #[arg(value_name = "NOTEFILE")]
        note: PathBuf,
    },
}

pub fn run(command: NoteCommand) -> Result<()> {
    match command {
        NoteCommand::Sign { key, text } => sign(&key, &text),
        NoteCommand::Verify { key, note } => verify(&key, &note),
    }
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

fn sign(key: &Path, text: &Path) -> Result<()> {
    let signer = keys::read_signer(key)?;
    let bytes = read_input(text)?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", text.display()))?;
    let signed = note::sign(&text, &[&signer]).context("cannot sign the note")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(signed.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn verify(key: &str, note_path: &Path) -> Result<()> {
    let verifier = keys::read_verifier(key)?;
    let bytes = read_input(note_path)?;
    let opened = note::open(&bytes, std::slice::from_ref(&verifier))
        .with_context(|| format!("{} does not verify", note_path.display()))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(opened.text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
