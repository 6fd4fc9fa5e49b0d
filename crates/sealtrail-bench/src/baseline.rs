//! The baseline: the hand-built PostgreSQL audit table of the runbooks, hash-chained by a
//! trigger under an advisory lock, measured by its own script with `pgbench` in the same run.
//!
//! The script is `../shared/baseline/run.sh` beside the repository when it is there (the
//! repository the working directory is in, else the one this binary was built from); otherwise the
//! copy kept in the repository's `bench/baseline/` and compiled into this binary is written to
//! a scratch directory and run the same way, so the comparison also runs where `../shared` is
//! absent. A test keeps the copy identical to the original.
//!
//! The script prints four lines, `baseline <key> <value>`:
//! `single_row_events_per_s` (8 clients, one INSERT per event), `batch_events_per_s` (2
//! clients, 1,000-row INSERT … SELECT), `verify_events_per_s` (every hash and link recomputed
//! in SQL) and `verify_violations` (false alarms: its chain order is not its id order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::server::ScratchDir;

/// The repository's copy of `../shared/baseline/`: (file name, contents).
const COPY: &[(&str, &str)] = &[
    ("run.sh", include_str!("../../../bench/baseline/run.sh")),
    (
        "schema.sql",
        include_str!("../../../bench/baseline/schema.sql"),
    ),
    (
        "insert_one.sql",
        include_str!("../../../bench/baseline/insert_one.sql"),
    ),
    (
        "insert_batch.sql",
        include_str!("../../../bench/baseline/insert_batch.sql"),
    ),
    (
        "verify.sql",
        include_str!("../../../bench/baseline/verify.sql"),
    ),
];

/// The keys the script prints, in its order.
pub const KEYS: [&str; 4] = [
    "single_row_events_per_s",
    "batch_events_per_s",
    "verify_events_per_s",
    "verify_violations",
];

/// Where the script comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Script {
    /// `../shared/baseline/run.sh` (this path).
    Shared(PathBuf),
    /// The copy in the repository's `bench/baseline/`, compiled into this binary.
    Copy,
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Script::Shared(path) => write!(f, "{}", path.display()),
            Script::Copy => f.write_str("bench/baseline/run.sh (the repository's copy)"),
        }
    }
}

/// `../shared/baseline/run.sh` beside the repository: the one the working directory is in,
/// else the one this binary was built from; else the copy.
pub fn locate() -> Script {
    let cwd = std::env::current_dir().ok();
    let in_repository = cwd
        .as_deref()
        .and_then(|cwd| cwd.ancestors().find(|dir| is_repository(dir)));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for root in in_repository.into_iter().chain([built_from.as_path()]) {
        let script = root.join("../shared/baseline/run.sh");
        if script.is_file() {
            return Script::Shared(script.canonicalize().unwrap_or(script));
        }
    }
    Script::Copy
}

/// Whether `dir` is the root of a sealtrail repository (a clone or a worktree).
fn is_repository(dir: &Path) -> bool {
    dir.join("bench/baseline/run.sh").is_file() && dir.join("crates/sealtrail").is_dir()
}

/// Why the baseline cannot run here, if it cannot: it needs a PostgreSQL server and the
/// `psql`, `pgbench` and `python3` programs the script calls.
pub fn unavailable(database_url: Option<&str>) -> Option<String> {
    if database_url.is_none() {
        return Some(
            "it needs PostgreSQL: give --database-url (or PGURL) to measure it".to_string(),
        );
    }
    let missing: Vec<&str> = ["psql", "pgbench", "python3", "bash"]
        .into_iter()
        .filter(|program| !on_path(program))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} not found on PATH (install postgresql-client and python3)",
            missing.join(", ")
        ));
    }
    None
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// One run of the baseline script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baseline {
    /// The script's figures by key (see [`KEYS`]).
    pub values: BTreeMap<String, f64>,
    /// Seconds each pgbench run lasted (`SECS`).
    pub seconds: u64,
}

impl Baseline {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }
}

/// Runs the script against the PostgreSQL server of `database_url` (it creates and drops
/// its own database there) with each pgbench run lasting `seconds`.
pub fn run(script: &Script, database_url: &str, seconds: u64) -> Result<Baseline> {
    let scratch;
    let path = match script {
        Script::Shared(path) => path.clone(),
        Script::Copy => {
            scratch = ScratchDir::new("baseline")?;
            for (name, text) in COPY {
                let path = scratch.path().join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            scratch.path().join("run.sh")
        }
    };
    let output = Command::new("bash")
        .arg(&path)
        .env("PGURL", database_url)
        .env("SECS", seconds.to_string())
        .output()
        .with_context(|| format!("cannot run the baseline {script}"))?;
    if !output.status.success() {
        bail!(
            "the baseline {script} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let values =
        parse(&stdout).with_context(|| format!("the baseline {script} printed:\n{stdout}"))?;
    Ok(Baseline { values, seconds })
}

/// Reads the script's `baseline <key> <value>` lines; every key of [`KEYS`] must be there.
pub fn parse(output: &str) -> Result<BTreeMap<String, f64>> {
    let mut values = BTreeMap::new();
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let (Some("baseline"), Some(key), Some(value), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let value: f64 = value
            .parse()
            .with_context(|| format!("baseline {key}: {value:?} is not a number"))?;
        if !value.is_finite() {
            bail!("baseline {key}: {value} is not a figure");
        }
        values.insert(key.to_string(), value);
    }
    let missing: Vec<&str> = KEYS
        .into_iter()
        .filter(|key| !values.contains_key(*key))
        .collect();
    if !missing.is_empty() {
        bail!("no baseline figure for {}", missing.join(", "));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_four_lines_are_parsed() {
        let output = "baseline single_row_events_per_s 1187\n\
                      baseline batch_events_per_s 41230\n\
                      baseline verify_events_per_s 231004\n\
                      baseline verify_violations 312\n";
        let values = parse(output).unwrap();
        assert_eq!(values["single_row_events_per_s"], 1187.0);
        assert_eq!(values["batch_events_per_s"], 41_230.0);
        assert_eq!(values["verify_events_per_s"], 231_004.0);
        assert_eq!(values["verify_violations"], 312.0);
    }

    #[test]
    fn a_missing_or_broken_line_is_an_error() {
        let partial = "baseline single_row_events_per_s 1187\nbaseline batch_events_per_s 41230\n";
        let error = parse(partial).unwrap_err().to_string();
        assert!(error.contains("verify_events_per_s"), "{error}");
        let garbled = "baseline single_row_events_per_s abc\n";
        assert!(parse(garbled).is_err());
    }

    /// The copy must be the original: the comparison is only fair if both run the same SQL.
    /// Checked wherever `../shared/baseline/` is beside the repository (always in CI).
    #[test]
    fn the_repositorys_copy_is_the_shared_baseline() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/baseline");
        if !shared.is_dir() {
            eprintln!("{} not found: copy not compared", shared.display());
            return;
        }
        for (name, text) in COPY {
            let original = std::fs::read_to_string(shared.join(name)).unwrap();
            assert_eq!(
                &original, text,
                "bench/baseline/{name} differs from ../shared/baseline/{name}: copy it again"
            );
        }
        let Script::Shared(found) = locate() else {
            panic!("../shared/baseline/run.sh is there but was not found");
        };
        assert_eq!(
            found.canonicalize().unwrap(),
            shared.join("run.sh").canonicalize().unwrap()
        );
    }
}
