//! `sealtrail serve` as the benchmark runs it: a child process of this same binary on a fresh
//! data directory (and a fresh PostgreSQL database), with a token made by `sealtrail tokens
//! create` once serve has created the store, stopped with SIGTERM and cleaned up afterwards.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{Server, StoreKind};

/// The tenant the benchmark writes to.
pub const TENANT: &str = "clinic";

/// How long `serve` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What is left to clean up if the benchmark is interrupted: the drops below do it on every
/// other path. Each entry is removed again once its owner has cleaned up after itself.
static LEFTOVERS: Mutex<Vec<Leftover>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, PartialEq, Eq)]
enum Leftover {
    Process(u32),
    Database { server_url: String, name: String },
    Dir(PathBuf),
}

fn remember(leftover: Leftover) {
    LEFTOVERS.lock().expect("leftovers lock").push(leftover);
}

fn forget(leftover: &Leftover) {
    LEFTOVERS
        .lock()
        .expect("leftovers lock")
        .retain(|l| l != leftover);
}

/// Set once an interrupt is being handled: the benchmark's own failures after that (its
/// servers vanishing) are consequences, not findings.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Waits for SIGINT or SIGTERM; `false` at once if the handlers cannot be installed.
pub(crate) async fn signalled() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return false;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    true
}

/// Whether an answer is the search's "index still lagging" refusal (503 `index_lagging`),
/// which a reader waiting for its own write asks again after.
pub(crate) fn index_lagging(status: hyper::StatusCode, body: &[u8]) -> bool {
    status == hyper::StatusCode::SERVICE_UNAVAILABLE
        && body.windows(13).any(|w| w == b"index_lagging")
}

/// On SIGINT or SIGTERM: kill the servers this run started, drop its databases, remove its
/// directories, and exit with status 130. Spawned on the benchmark's runtime.
pub async fn clean_up_on_signal() {
    if !signalled().await {
        return;
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
    eprintln!("bench: interrupted; stopping its servers and removing its scratch data");
    // The PostgreSQL client blocks, so the cleaning is done off the runtime's threads.
    let _ = tokio::task::spawn_blocking(|| {
        let leftovers = std::mem::take(&mut *LEFTOVERS.lock().expect("leftovers lock"));
        // Servers first: a database cannot be dropped while they hold it.
        for leftover in &leftovers {
            if let Leftover::Process(pid) = leftover {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        for leftover in leftovers {
            match leftover {
                Leftover::Process(_) => {}
                Leftover::Database { server_url, name } => drop_database(&server_url, &name),
                Leftover::Dir(path) => {
                    let _ = std::fs::remove_dir_all(path);
                }
            }
        }
        std::process::exit(130);
    })
    .await;
}

fn drop_database(server_url: &str, name: &str) {
    if let Err(error) = sealtrail_store::postgres::drop_database(server_url, name) {
        eprintln!("bench: could not drop the scratch database {name} ({error}); drop it by hand");
    }
}

/// A scratch directory, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(label: &str) -> Result<ScratchDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sealtrail-bench-{}-{label}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        remember(Leftover::Dir(path.clone()));
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        forget(&Leftover::Dir(self.0.clone()));
    }
}

/// A fresh PostgreSQL database on the server of `server_url`, dropped (with its connections)
/// when this is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    server_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub fn create(server_url: &str, label: &str) -> Result<ScratchDatabase> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sealtrail_bench_{}_{label}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let redacted = sealtrail_store::postgres::redact_url(server_url);
        sealtrail_store::postgres::create_database(server_url, &name)
            .with_context(|| format!("cannot create database {name} on {redacted}"))?;
        remember(Leftover::Database {
            server_url: server_url.to_string(),
            name: name.clone(),
        });
        Ok(ScratchDatabase {
            url: sealtrail_store::postgres::with_database(server_url, &name),
            server_url: server_url.to_string(),
            name,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        drop_database(&self.server_url, &self.name);
    }
}

/// `sealtrail tokens create` as an operator runs it: a token of the benchmark's tenant with
/// `scopes`, on the store that `store_args` (`--data DIR`, `--database-url URL`) name.
pub fn create_token(exe: &Path, store_args: &[String], scopes: &[&str]) -> Result<String> {
    let mut command = Command::new(exe);
    command
        .args(["tokens", "create"])
        .args(store_args)
        .args(["--tenant", TENANT, "--json"]);
    for scope in scopes {
        command.args(["--scope", scope]);
    }
    let created = command
        .env("SEALTRAIL_LOG", "warn")
        .output()
        .context("cannot run sealtrail tokens create")?;
    if !created.status.success() {
        bail!(
            "sealtrail tokens create failed: {}",
            String::from_utf8_lossy(&created.stderr).trim()
        );
    }
    let created: serde_json::Value = serde_json::from_slice(&created.stdout)
        .context("sealtrail tokens create --json printed no JSON")?;
    Ok(created["token"]
        .as_str()
        .context("sealtrail tokens create --json printed no token")?
        .to_string())
}

/// A `sealtrail serve` child process with everything it was started on; stopped and cleaned
/// up when dropped.
pub struct Running {
    pub server: Server,
    child: Option<Child>,
    /// serve's stderr, kept for the error message if it dies.
    log: PathBuf,
    // Dropped after the child is stopped: the database, then the directory.
    database: Option<ScratchDatabase>,
    _scratch: ScratchDir,
}

/// The `sealtrail` binary that serves: this one, or another build's, to compare two builds
/// under the same load (`SEALTRAIL_BENCH_SERVER=/path/to/old/sealtrail sealtrail bench ...`).
pub fn server_exe() -> Result<PathBuf> {
    match std::env::var_os("SEALTRAIL_BENCH_SERVER") {
        Some(path) => Ok(PathBuf::from(path)),
        None => std::env::current_exe().context("cannot find this sealtrail binary"),
    }
}

impl Running {
    /// Starts serve on a fresh store of `kind` (`server_url`: the PostgreSQL server to create
    /// a database on, for [`StoreKind::Postgres`]).
    pub fn start(kind: StoreKind, server_url: Option<&str>) -> Result<Running> {
        let exe = server_exe()?;
        let scratch = ScratchDir::new(kind.name())?;
        let data_dir = scratch.path().join("data");
        let log = scratch.path().join("serve.log");
        let database = match kind {
            StoreKind::Embedded => None,
            StoreKind::Postgres => Some(ScratchDatabase::create(
                server_url.context("the PostgreSQL figures need --database-url")?,
                "pg",
            )?),
        };
        let database_url = database.as_ref().map(|db| db.url.clone());
        let mut store_args: Vec<String> = vec!["--data".into(), data_dir.display().to_string()];
        if let Some(url) = &database_url {
            store_args.extend(["--database-url".into(), url.clone()]);
        }

        let mut child = spawn_serve(&exe, &store_args, create_log(&log)?)?;
        remember(Leftover::Process(child.id()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let address_rx = listening_address(stdout);
        let mut running = Running {
            server: Server {
                base_url: String::new(),
                // Set once serve has created the store: `tokens create` never creates one.
                token: String::new(),
                tenant: TENANT.to_string(),
                store: kind,
                data_dir,
                database_url,
            },
            child: Some(child),
            log,
            database,
            _scratch: scratch,
        };
        let started = Instant::now();
        let base = loop {
            match address_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(base)) => break base,
                Ok(None) => bail!("sealtrail serve printed no address"),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    running.check_alive()?;
                    if started.elapsed() > START_TIMEOUT {
                        bail!(
                            "sealtrail serve did not start within {START_TIMEOUT:?}: {}",
                            running.stderr_tail()
                        );
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    running.check_alive()?;
                    bail!("sealtrail serve closed its stdout before printing its address");
                }
            }
        };
        running.server.base_url = base.trim_end_matches('/').to_string();
        running.server.token = create_token(
            &exe,
            &store_args,
            &["events:write", "events:read", "log:read", "verify"],
        )?;
        Ok(running)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails with serve's last words if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        check_alive(self.child.as_mut(), &self.log)
    }

    fn stderr_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Stops serve with SIGTERM, as an operator would, and waits for it to exit; fails if
    /// it had died earlier or does not exit cleanly.
    pub fn stop(&mut self) -> Result<()> {
        self.check_alive()?;
        let mut child = self.child.take().expect("checked above");
        let _forget = Forget(Leftover::Process(child.id()));
        terminate(&mut child, &self.log, Duration::from_secs(30))
    }

    /// The PostgreSQL database of this run, if any.
    pub fn database(&self) -> Option<&ScratchDatabase> {
        self.database.as_ref()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            forget(&Leftover::Process(child.id()));
        }
    }
}

/// Forgets a leftover when it goes out of scope, however the scope is left.
struct Forget(Leftover);

impl Drop for Forget {
    fn drop(&mut self) {
        forget(&self.0);
    }
}

/// CPU time (user + system) a process has used so far, in seconds: this process with
/// `None`. Read from `/proc/PID/stat` (Linux; `None` elsewhere), in clock ticks of 1/100 s,
/// which is what Linux reports on every architecture sealtrail runs on.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Sends serve SIGTERM, as an operator would, and waits up to `timeout` for a clean exit
/// (killing it after that); fails with its last words if it exits otherwise.
pub(super) fn terminate(child: &mut Child, log: &Path, timeout: Duration) -> Result<()> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        let _ = child.kill();
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!(
                    "sealtrail serve exited with {status} on SIGTERM: {}",
                    log_tail(log)
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sealtrail serve did not stop within {timeout:?} of SIGTERM; killed it");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails with the last lines of its stderr (`log`) if serve has exited, or was stopped.
pub(super) fn check_alive(child: Option<&mut Child>, log: &Path) -> Result<()> {
    let child = child.context("sealtrail serve was stopped")?;
    if let Some(status) = child.try_wait()? {
        bail!("sealtrail serve exited ({status}): {}", log_tail(log));
    }
    Ok(())
}

/// The last 20 lines of serve's stderr.
pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Reads serve's stdout on a thread of its own and sends the base URL it says it listens on
/// (`http://HOST:PORT`), or `None` if it says so without one; afterwards the thread keeps
/// draining stdout so that serve never blocks on it. On a thread, so that a server that hangs
/// before printing its address cannot hang the benchmark.
/// Starts `EXE serve STORE_ARGS… --listen 127.0.0.1:0`, as every workload runs the server:
/// warnings only (or the filter `SEALTRAIL_BENCH_SERVE_LOG` names: `info` is serve's
/// default, with a line per request), written to `log`, and stdout piped, since that is where
/// the server prints the address it bound ([`listening_address`]).
pub(crate) fn spawn_serve(
    exe: &Path,
    store_args: &[impl AsRef<OsStr>],
    stderr: std::fs::File,
) -> Result<Child> {
    Command::new(exe)
        .arg("serve")
        .args(store_args)
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "SEALTRAIL_LOG",
            std::env::var("SEALTRAIL_BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("cannot start sealtrail serve")
}

/// Creates the file serve's stderr goes to (kept for the error message if it dies). Created
/// before any start-up timer begins, so that timing measures serve and nothing else.
pub(crate) fn create_log(log: &Path) -> Result<std::fs::File> {
    std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))
}

pub(crate) fn listening_address(
    stdout: std::process::ChildStdout,
) -> std::sync::mpsc::Receiver<Option<String>> {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut address_tx = Some(address_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("sealtrail listening on")
                && let Some(tx) = address_tx.take()
            {
                let base = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .map(|w| w.trim_end_matches('/').to_string());
                let _ = tx.send(base);
            }
        }
    });
    address_rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_time_and_a_busy_loop_adds_some() {
        let before = cpu_seconds(None).expect("/proc/self/stat is readable");
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = cpu_seconds(None).unwrap();
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_seconds(Some(u32::MAX)), None);
    }
}
