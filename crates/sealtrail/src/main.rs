//! The `sealtrail` binary: the server, the command-line tool and the offline verifier.
//!
//! This crate is the application edge: [`cli`] parses the command line, calls the libraries
//! (`sealtrail_server`, `sealtrail_store`, `sealtrail_bench`, `sealtrail_core`) and prints what
//! they return. `anyhow` and exit codes live here and nowhere else.

#![forbid(unsafe_code)]

mod cli;

/// mimalloc instead of the system allocator: ingest allocates and frees many small values per
/// event on several threads at once, where glibc's malloc spent a tenth to a quarter of those
/// threads' time (ARCHITECTURE.md, "Memory allocation").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
