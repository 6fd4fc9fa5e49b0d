//! `sealtrail serve` as an operator runs it: a real process in a working directory whose data
//! directory is `data`, the command line beside it, SIGTERM to stop it and SIGKILL to crash it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::sealtrail;

/// `sealtrail tokens create --data data --tenant acme --scope events:write --json EXTRA…` in
/// `dir` (more `--scope`s, or `--database-url`, go in `extra`); the printed JSON.
pub fn create_token(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "tokens",
        "create",
        "--data",
        "data",
        "--tenant",
        "acme",
        "--scope",
        "events:write",
        "--json",
    ];
    args.extend_from_slice(extra);
    let created = sealtrail(&args, dir);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    serde_json::from_slice(&created.stdout).unwrap()
}

/// `POST /v1/events` with one event, as a producer sends it.
pub async fn post_event(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    event: &serde_json::Value,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .json(event)
        .send()
        .await
        .unwrap()
}

/// `POST /v1/events/batch` with `events` as one JSON array.
pub async fn post_batch(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    events: &[serde_json::Value],
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/events/batch"))
        .bearer_auth(token)
        .json(events)
        .send()
        .await
        .unwrap()
}

/// Copies a directory tree (a data directory left by a crash, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub type StdoutLines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// A running `sealtrail serve`. Dropped without [`Serve::stop`] or [`Serve::kill`] (a failed
/// test), it is killed, so no server outlives its test.
pub struct Serve {
    child: Child,
    /// What serve prints on stdout after its address.
    lines: Option<StdoutLines>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token, when this start printed one (the first start of a new store).
    pub admin_token: Option<String>,
    /// serve's stderr, appended to `DIR/serve.log` across starts, and where this start's
    /// output begins in it.
    log: PathBuf,
    log_from: u64,
}

impl Serve {
    /// Starts `sealtrail serve --data data --listen 127.0.0.1:0 EXTRA…` in `dir` and waits
    /// until it prints the address it listens on.
    pub fn start(dir: &Path, extra: &[&str]) -> Serve {
        let log = dir.join("serve.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let log_from = stderr.metadata().unwrap().len();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
            .args(["serve", "--data", "data", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin_token = None;
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "serve exited before printing its address:\n{}",
                    &stderr[(log_from as usize).min(stderr.len())..]
                );
            };
            if let Some(token) = line.strip_prefix("admin token (shown once; store it now): ") {
                admin_token = Some(token.to_string());
            } else if line.starts_with("sealtrail listening on") {
                break line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .expect("the address is printed")
                    .to_string();
            }
        };
        Serve {
            child,
            lines: Some(lines),
            base,
            admin_token,
            log,
            log_from,
        }
    }

    /// What this start of serve wrote on stderr so far.
    pub fn stderr(&self) -> String {
        let log = std::fs::read(&self.log).unwrap();
        String::from_utf8_lossy(&log[(self.log_from as usize).min(log.len())..]).into_owned()
    }

    /// Sends SIGTERM and waits for a clean exit; returns what serve printed on stdout after
    /// its address.
    pub fn stop(mut self) -> StdoutLines {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "serve exits cleanly on SIGTERM: {status}\n{}",
            self.stderr()
        );
        self.lines.take().expect("taken only here")
    }

    /// Sends SIGKILL, the way a crash ends a process: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
