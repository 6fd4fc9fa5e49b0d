//! Shared by both test binaries of the `sealtrail` binary (`commands`, `serve`): the binary run
//! as a user runs it, a real `sealtrail serve` process ([`serve`]), a damaged store
//! ([`tamper`]), a full disk ([`disk`]), a PostgreSQL server that can be stopped ([`cluster`]), and a
//! PostgreSQL database of their own
//! ([`TestDatabase`], from the store crate's suite harness).

#![allow(dead_code)]

pub mod cluster;
pub mod disk;
pub mod serve;
pub mod tamper;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub use sealtrail_store::testing::TestDatabase;

/// Runs the `sealtrail` binary in `cwd`.
pub fn sealtrail(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the sealtrail binary runs")
}

/// Runs the `sealtrail` binary in the test's own working directory (for commands whose paths
/// are all absolute).
pub fn sealtrail_here(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(args)
        .output()
        .expect("the sealtrail binary runs")
}

/// Asserts that the command succeeded, showing its exit status and output if not; its stdout.
pub fn succeed(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A successful command's stdout as JSON.
pub fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "the command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The median figure of `sealtrail bench --json` for one workload on one store.
pub fn bench_figure<'a>(document: &'a Value, workload: &str, store: &str) -> &'a Value {
    document["median"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["workload"] == workload && f["store"] == store)
        .unwrap_or_else(|| panic!("no {workload} figure on {store}: {document:#}"))
}
