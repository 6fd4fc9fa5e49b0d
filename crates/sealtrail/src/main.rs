//! The `sealtrail` binary: a thin shim over [`sealtrail::cli`].

fn main() -> std::process::ExitCode {
    sealtrail::cli::main()
}
