//! Serving the built log with `sealtrail serve`, and timing the query index's catch-up.

use super::*;

// --- serve --------------------------------------------------------------------------------

/// `sealtrail tokens create` on the data directory, as an operator would: a token of the
/// benchmark's tenant with one scope.
pub(super) fn create_token(data_dir: &Path, scope: &str) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find this sealtrail binary")?;
    let store_args = ["--data".to_string(), data_dir.display().to_string()];
    crate::server::create_token(&exe, &store_args, &[scope])
}

/// Removes the query index of a data directory, so that serve rebuilds it from the log.
pub(super) fn remove_index(data_dir: &Path) -> Result<()> {
    let index = sealtrail_store::DataDir::new(data_dir).index();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = index.clone().into_os_string();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// A `sealtrail serve` child on an existing data directory; killed if dropped running.
pub(super) struct Serve {
    pub(super) child: Option<Child>,
    pub(super) addr: SocketAddr,
    pub(super) log: PathBuf,
    /// When it was started, and how long it took to listen.
    pub(super) spawned: Instant,
    pub(super) listening: Duration,
    /// Kills it if the benchmark is interrupted.
    pub(super) guard: tokio::task::JoinHandle<()>,
}

impl Serve {
    pub(super) fn start(
        runtime: &tokio::runtime::Runtime,
        data_dir: &Path,
        log: &Path,
    ) -> Result<Serve> {
        // This build, or the one SEALTRAIL_BENCH_SERVER names (the same as the other workloads).
        let exe = crate::server::server_exe()?;
        let stderr = crate::server::create_log(log)?;
        let store_args = [std::ffi::OsStr::new("--data"), data_dir.as_os_str()];
        let spawned = Instant::now();
        let mut child = crate::server::spawn_serve(&exe, &store_args, stderr)?;
        let guard = runtime.spawn(kill_on_signal(child.id()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let address_rx = crate::server::listening_address(stdout);
        let mut serve = Serve {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
            spawned,
            listening: Duration::ZERO,
            guard,
        };
        let host = loop {
            match address_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(host)) => break host,
                Ok(None) => bail!("sealtrail serve printed no address"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    serve.check_alive()?;
                    if spawned.elapsed() > SERVE_START_TIMEOUT {
                        bail!(
                            "sealtrail serve did not start within {SERVE_START_TIMEOUT:?}: {}",
                            serve.stderr_tail()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    serve.check_alive()?;
                    bail!("sealtrail serve closed its stdout before printing its address");
                }
            }
        };
        serve.listening = spawned.elapsed();
        serve.addr = host
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("sealtrail serve printed the address {host:?}"))?;
        Ok(serve)
    }

    pub(super) fn check_alive(&mut self) -> Result<()> {
        crate::server::check_alive(self.child.as_mut(), &self.log)
    }

    fn stderr_tail(&self) -> String {
        crate::server::log_tail(&self.log)
    }

    /// The largest resident set serve has had so far (`VmHWM`), where `/proc` tells.
    pub(super) fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The CPU time serve has used so far, in seconds, where `/proc` tells.
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        crate::server::cpu_seconds(Some(self.child.as_ref()?.id()))
    }

    /// Waits until serve has finished the work it does after a start, whatever it is — the
    /// monitor reading back the windows of its rules (on a log received within minutes, the
    /// whole log), the gap detector, the index — so that none of it runs beside the requests
    /// measured next: until serve used less than [`QUIET_CPU`] of a core over each of
    /// [`QUIET_WINDOWS`] windows of [`QUIET_WINDOW`] in a row. `Ok(None)` where `/proc` does
    /// not tell a process's CPU time; an error when serve is still busy after `timeout`.
    pub(super) async fn wait_until_quiet(&mut self, timeout: Duration) -> Result<Option<Duration>> {
        let started = Instant::now();
        let Some(mut before) = self.cpu_seconds() else {
            return Ok(None);
        };
        let mut quiet = 0;
        while quiet < QUIET_WINDOWS {
            tokio::time::sleep(QUIET_WINDOW).await;
            self.check_alive()?;
            let now = self
                .cpu_seconds()
                .context("serve's CPU time stopped being readable")?;
            let share = (now - before) / QUIET_WINDOW.as_secs_f64();
            quiet = if share < QUIET_CPU { quiet + 1 } else { 0 };
            before = now;
            ensure!(
                started.elapsed() < timeout,
                "sealtrail serve was still busy after {} s (it used {:.0}% of a core over the last {:.0} s); nothing measured beside it would mean much",
                timeout.as_secs(),
                share * 100.0,
                QUIET_WINDOW.as_secs_f64()
            );
        }
        Ok(Some(started.elapsed()))
    }

    /// SIGTERM, as an operator stops it; it must exit cleanly.
    pub(super) fn stop(&mut self) -> Result<()> {
        self.check_alive()?;
        let mut child = self.child.take().expect("checked above");
        self.guard.abort();
        crate::server::terminate(&mut child, &self.log, SERVE_STOP_TIMEOUT)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.guard.abort();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills serve when the benchmark is interrupted (the benchmark's own handler cleans up what
/// [`super::server`] started and exits; this server is not among those). Serve shares the
/// benchmark's process group, so an interrupt from the terminal reaches it directly too.
pub(super) async fn kill_on_signal(pid: u32) {
    if !crate::server::signalled().await {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
    })
    .await;
}

/// A running server with the large log, and the benchmark's tokens for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Scope `log:read` only.
    pub log_token: String,
    /// Scope `events:read` only.
    pub events_token: String,
}

// --- index catch-up ----------------------------------------------------------------------

/// How the index caught up.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// From `since` to the whole log being searchable.
    pub elapsed: Duration,
    /// The largest `checks.index_lag_seconds` `GET /health` reported meanwhile.
    pub health_lag_max: Option<f64>,
    /// When serve's start-up verification had found every log valid (`GET /metrics`:
    /// `sealtrail_verification_runs_total{result="valid"}` reached the number of logs).
    pub verified_after: Option<Duration>,
}

/// Waits until search covers seq `size - 1` (`GET /v1/events?wait_for_seq=`, which the server
/// holds up to 5 s per request) while sampling `GET /health` and `GET /metrics` (the store
/// holds `logs` logs, all verified by serve at start).
pub async fn wait_for_index(
    endpoint: &Endpoint,
    size: u64,
    logs: usize,
    since: Instant,
) -> Result<CatchUp> {
    ensure!(size > 0, "an empty log has nothing to index");
    let (done_tx, done_rx) = watch::channel(false);
    let health = tokio::spawn(watch_health(
        endpoint.addr,
        endpoint.events_token.clone(),
        logs,
        since,
        done_rx,
    ));
    let waited = async {
        let mut connection = Connection::open(endpoint.addr, &endpoint.events_token).await?;
        let last = size - 1;
        let path = format!("/v1/events?limit=1&order=desc&wait_for_seq={last}");
        loop {
            let (status, body) = connection.get(&path).await?;
            if status.is_success() {
                let elapsed = since.elapsed();
                let page: Value =
                    serde_json::from_slice(&body).context("GET /v1/events answered no JSON")?;
                // The newest is the log's last built event, or an alert the monitor has
                // appended since (the clinic's failed-login bursts raise some).
                let newest = page["events"][0]["seq"].as_u64();
                let alert = page["events"][0]["action"] == "sealtrail.alert.raised";
                ensure!(
                    newest == Some(last) || (alert && newest > Some(last)),
                    "GET {path}: the newest event found is {newest:?}, not seq {last}"
                );
                return Ok(elapsed);
            }
            if !crate::server::index_lagging(status, &body) {
                bail!(
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    .await;
    let _ = done_tx.send(true);
    let (health_lag_max, verified_after) =
        health.await.context("the health sampler panicked")??;
    Ok(CatchUp {
        elapsed: waited?,
        health_lag_max,
        verified_after,
    })
}

pub(super) async fn watch_health(
    addr: SocketAddr,
    token: String,
    logs: usize,
    since: Instant,
    mut done: watch::Receiver<bool>,
) -> Result<(Option<f64>, Option<Duration>)> {
    let mut connection = Connection::open(addr, &token).await?;
    let mut lag_max: Option<f64> = None;
    let mut verified = None;
    while !*done.borrow_and_update() {
        let (status, body) = connection.get("/health").await?;
        // /health answers 503 when the server judges itself failing; the lag is still there.
        if status.is_success() || status == hyper::StatusCode::SERVICE_UNAVAILABLE {
            let health: Value =
                serde_json::from_slice(&body).context("GET /health answered no JSON")?;
            if let Some(lag) = health["checks"]["index_lag_seconds"].as_f64() {
                lag_max = Some(lag_max.map_or(lag, |m: f64| m.max(lag)));
            }
            ensure!(
                health["checks"]["chain"] != "violated",
                "GET /health reports a violated chain: {health}"
            );
        } else {
            bail!("GET /health answered {status}");
        }
        if verified.is_none() {
            let (status, body) = connection.get("/metrics").await?;
            ensure!(status.is_success(), "GET /metrics answered {status}");
            let text = String::from_utf8_lossy(&body);
            if counter(&text, "sealtrail_verification_runs_total{result=\"valid\"}")
                .is_some_and(|runs| runs >= logs as f64)
            {
                verified = Some(since.elapsed());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = done.changed() => {}
        }
    }
    Ok((lag_max, verified))
}

/// Waits until serve has verified each of the `logs` logs once (`/metrics`), at most
/// [`VERIFY_TIMEOUT`].
pub(super) async fn wait_for_verification(endpoint: &Endpoint, logs: usize) -> Result<()> {
    let mut connection = Connection::open(endpoint.addr, &endpoint.events_token).await?;
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    loop {
        let (status, body) = connection.get("/metrics").await?;
        ensure!(status.is_success(), "GET /metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        if counter(&text, "sealtrail_verification_runs_total{result=\"valid\"}")
            .is_some_and(|runs| runs >= logs as f64)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "serve had not verified the log after {} s",
            VERIFY_TIMEOUT.as_secs()
        );
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text exposition.
pub(super) fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}
