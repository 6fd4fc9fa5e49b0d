//! The `sealtrail` binary: the server, the command-line tool and the offline verifier.
//!
//! This crate is the application edge: [`cli`] parses the command line, calls the libraries
//! (`sealtrail_server`, `sealtrail_store`, `sealtrail_bench`, `sealtrail_core`) and prints what
//! they return. `anyhow` and exit codes live here and nowhere else.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
