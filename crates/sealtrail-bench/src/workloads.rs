//! The workloads of one store in one round: batched ingest with the index-lag probe,
//! single-event ingest, the registered server workloads and offline verification.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::sync::watch;

use super::clinic::Clinic;
use super::load::{self, Acks, Connection, Latencies, LoadConfig, LoadReport, Mode};
use super::server::Running;
use super::{Figure, Plan, Server, StoreKind, Unit, Workload, WorkloadContext};

/// Generator streams of batched ingest start here, of single-event ingest at
/// [`SINGLE_STREAMS`], and the registered workloads get [`EXTRA_STREAMS`] upwards: no two
/// clients of one log share a stream (and so an idempotency key).
const BATCH_STREAMS: u64 = 0;
const SINGLE_STREAMS: u64 = 1_000;
const EXTRA_STREAMS: u64 = 10_000;

/// What one store's round measured, and what it wrote.
pub struct StoreRound {
    pub figures: Vec<Figure>,
}

/// Runs the selected workloads on a fresh server of `kind`; `report` is told each figure as
/// soon as it is measured.
pub fn run_store(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    kind: StoreKind,
    server_url: Option<&str>,
    clinic: &Arc<Clinic>,
    report: &mut dyn FnMut(&Figure),
) -> Result<StoreRound> {
    let selected = |w: Workload| plan.workloads.contains(&w);
    let mut running = Running::start(kind, server_url)
        .with_context(|| format!("cannot start sealtrail serve on the {} store", kind.name()))?;
    let server = running.server.clone();
    let addr = server.addr()?;
    let mut figures = Vec::new();
    let mut acknowledged = 0u64;
    let mut emit = |figure: Figure, figures: &mut Vec<Figure>| {
        report(&figure);
        figures.push(figure);
    };

    // Batched ingest also fills the log for verification when it alone is asked for.
    if selected(Workload::Batch) || selected(Workload::IndexLag) || selected(Workload::Verify) {
        let probe_lag = selected(Workload::IndexLag);
        let cpu = CpuMeter::start(running.pid());
        let (load, lag) =
            runtime.block_on(batch_with_lag(plan, &server, addr, clinic, probe_lag))?;
        let cpu = cpu.finish(load.elapsed);
        running.check_alive()?;
        acknowledged += load.events;
        let mut note = format!(
            "{} clients × {}-event batches, {:.1} s, {} events of {} bytes on average",
            plan.batch_clients,
            plan.batch_size,
            load.elapsed.as_secs_f64(),
            thousands(load.events as f64),
            load.bytes / load.events.max(1),
        );
        note.push_str(&cpu);
        note.push_str(&anomalies(&load));
        if selected(Workload::Batch) {
            let mut figure = Figure::new(
                Workload::Batch,
                kind,
                load.events_per_second(),
                Unit::EventsPerSecond,
            );
            figure.p50_ms = load.latencies.quantile_ms(0.5);
            figure.p99_ms = load.latencies.quantile_ms(0.99);
            figure.note = note.clone();
            emit(figure, &mut figures);
        }
        if let Some(lag) = lag {
            let max_s = lag
                .probes
                .max_ms()
                .context("the index lag probe probed nothing")?
                / 1000.0;
            let mut figure = Figure::new(Workload::IndexLag, kind, max_s, Unit::Seconds);
            figure.p50_ms = lag.probes.quantile_ms(0.5);
            figure.p99_ms = lag.probes.quantile_ms(0.99);
            figure.note = format!(
                "largest lag of {} probes (acknowledged batch → searchable) during batched ingest; the server's sealtrail_index_lag_seconds peaked at {}",
                lag.probes.len(),
                lag.health_max_s
                    .map_or("(not reported)".to_string(), |s| format!("{s:.2} s")),
            );
            emit(figure, &mut figures);
        }
    }

    if selected(Workload::Single) {
        let config = LoadConfig {
            addr,
            token: server.token.clone(),
            clients: plan.single_clients,
            duration: plan.duration(),
            mode: Mode::Single,
            clinic: Arc::clone(clinic),
            stream_base: SINGLE_STREAMS,
        };
        let cpu = CpuMeter::start(running.pid());
        let load = runtime.block_on(load::run(&config, None))?;
        let cpu = cpu.finish(load.elapsed);
        running.check_alive()?;
        acknowledged += load.events;
        let mut figure = Figure::new(
            Workload::Single,
            kind,
            load.events_per_second(),
            Unit::EventsPerSecond,
        );
        figure.p50_ms = load.latencies.quantile_ms(0.5);
        figure.p99_ms = load.latencies.quantile_ms(0.99);
        figure.note = format!(
            "{} clients, one event per request, {:.1} s, {} events{cpu}{}",
            plan.single_clients,
            load.elapsed.as_secs_f64(),
            thousands(load.events as f64),
            anomalies(&load),
        );
        emit(figure, &mut figures);
    }

    for (workload, run) in super::server_workloads() {
        if !selected(workload) {
            continue;
        }
        let context = WorkloadContext {
            server: &server,
            plan,
            stream_base: EXTRA_STREAMS + 10_000 * workload as u64,
            runtime,
        };
        let measured = run(&context).with_context(|| format!("workload {}", workload.name()))?;
        running.check_alive()?;
        for figure in measured {
            emit(figure, &mut figures);
        }
    }

    running.stop()?;
    if selected(Workload::Verify) {
        let figure = verify_offline(&server, acknowledged)?;
        emit(figure, &mut figures);
    }
    Ok(StoreRound { figures })
}

/// What the index-lag probe saw.
struct LagSamples {
    /// Per probe, from the acknowledgement of a batch to its last event being searchable.
    probes: Latencies,
    /// The largest `checks.index_lag_seconds` `GET /health` reported.
    health_max_s: Option<f64>,
}

async fn batch_with_lag(
    plan: &Plan,
    server: &Server,
    addr: SocketAddr,
    clinic: &Arc<Clinic>,
    probe_lag: bool,
) -> Result<(LoadReport, Option<LagSamples>)> {
    let config = LoadConfig {
        addr,
        token: server.token.clone(),
        clients: plan.batch_clients,
        duration: plan.duration(),
        mode: Mode::Batch {
            size: plan.batch_size,
        },
        clinic: Arc::clone(clinic),
        stream_base: BATCH_STREAMS,
    };
    if !probe_lag {
        return Ok((load::run(&config, None).await?, None));
    }
    let acks = Arc::new(Acks::default());
    let (done_tx, done_rx) = watch::channel(false);
    let probe = tokio::spawn(probe_index_lag(
        addr,
        server.token.clone(),
        Arc::clone(&acks),
        done_rx.clone(),
    ));
    let health = tokio::spawn(sample_health(addr, server.token.clone(), done_rx));
    let load = load::run(&config, Some(acks)).await;
    let _ = done_tx.send(true);
    let probes = probe.await.context("the index lag probe panicked")?;
    let health = health.await.context("the health sampler panicked")?;
    let load = load?;
    Ok((
        load,
        Some(LagSamples {
            probes: probes?,
            health_max_s: health?,
        }),
    ))
}

/// How often the index-lag probe looks for a newer acknowledgement, and the health sampler
/// asks `GET /health`.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
const HEALTH_INTERVAL: Duration = Duration::from_millis(250);

/// Repeatedly takes the newest acknowledged seq and waits until search covers it
/// (`GET /v1/events?wait_for_seq=`), recording the time from acknowledgement to searchable.
/// After the load ends it probes the last acknowledgement once more, so the catch-up at the
/// end counts too.
async fn probe_index_lag(
    addr: SocketAddr,
    token: String,
    acks: Arc<Acks>,
    mut done: watch::Receiver<bool>,
) -> Result<Latencies> {
    let mut connection = Connection::open(addr, &token).await?;
    let mut probed: Option<u64> = None;
    let mut lags = Vec::new();
    loop {
        let finished = *done.borrow_and_update();
        if let Some((seq, acked_at)) = acks.latest()
            && probed.is_none_or(|p| seq > p)
        {
            probed = Some(seq);
            let path = format!("/v1/events?wait_for_seq={seq}&limit=1");
            loop {
                let (status, body) = connection.get(&path).await?;
                if status.is_success() {
                    break;
                }
                // The server waits at most 5 s per request; keep asking until it is there.
                if !super::server::index_lagging(status, &body) {
                    bail!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
            lags.push(u32::try_from(acked_at.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        if finished {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = done.changed() => {}
        }
    }
    Ok(Latencies::from_micros(lags))
}

/// Samples `checks.index_lag_seconds` of `GET /health` until the load ends; the largest.
async fn sample_health(
    addr: SocketAddr,
    token: String,
    mut done: watch::Receiver<bool>,
) -> Result<Option<f64>> {
    let mut connection = Connection::open(addr, &token).await?;
    let mut max: Option<f64> = None;
    while !*done.borrow_and_update() {
        let (status, body) = connection.get("/health").await?;
        // /health answers 503 when the server judges itself failing; the lag is still there.
        if status.is_success() || status == hyper::StatusCode::SERVICE_UNAVAILABLE {
            let health: serde_json::Value =
                serde_json::from_slice(&body).context("GET /health answered no JSON")?;
            if let Some(lag) = health["checks"]["index_lag_seconds"].as_f64() {
                max = Some(max.map_or(lag, |m: f64| m.max(lag)));
            }
        } else {
            bail!("GET /health answered {status}");
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = done.changed() => {}
        }
    }
    Ok(max)
}

/// Verifies the benchmark tenant's log with the code of `sealtrail verify`, on the stopped
/// server's store; the log must be valid and hold every acknowledged event.
fn verify_offline(server: &Server, acknowledged: u64) -> Result<Figure> {
    let location = sealtrail_store::Location::new(&server.data_dir, server.database_url.as_deref());
    let conn = location
        .open_scanner()
        .with_context(|| format!("cannot open the store {location}"))?;
    let cpu_before = super::server::cpu_seconds(None);
    let started = Instant::now();
    let report = sealtrail_server::verify::verify_tenant(
        conn.as_ref(),
        &server.data_dir,
        &server.tenant,
        &[],
        None,
        None,
    )
    .context("cannot verify the benchmark's log")?;
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(super::server::cpu_seconds(None))
        .map(|(before, after)| after - before);
    if !report.valid {
        bail!(
            "the log written by the benchmark does not verify: {} violations, first at seq {:?}: {:?}",
            report.violation_count,
            report.first_broken_seq,
            report.violations.first()
        );
    }
    if report.rows_checked < acknowledged {
        bail!(
            "the log holds {} entries but {acknowledged} events were acknowledged",
            report.rows_checked
        );
    }
    if report.rows_checked == 0 {
        bail!("nothing to verify: no workload wrote events");
    }
    // The target is per core, and verification reads on one thread while it hashes on
    // another: divided by the CPU time this process spent when that exceeds the time it took
    // (the database server's CPU, for PostgreSQL, is not counted either way).
    let wall = elapsed.as_secs_f64();
    let per_core_seconds = cpu.map_or(wall, |cpu| cpu.max(wall));
    let entries = report.rows_checked as f64;
    let mut figure = Figure::new(
        Workload::Verify,
        server.store,
        entries / per_core_seconds,
        Unit::EventsPerSecond,
    );
    figure.note = format!(
        "per core: {} entries, stored hashes and {} in {wall:.2} s ({} events/s) using {} of CPU (reading and hashing on two threads), read from the store",
        thousands(entries),
        match &report.checkpoint {
            Some(cp) => format!("the checkpoint of size {}", thousands(cp.size as f64)),
            None => "no checkpoint".to_string(),
        },
        thousands(entries / wall),
        cpu.map_or("an unknown amount".to_string(), |cpu| format!("{cpu:.2} s")),
    );
    Ok(figure)
}

/// How much CPU the server and the load driver (this process) used during a workload: on a
/// machine where both share the cores, a figure means little without it.
struct CpuMeter {
    server_pid: Option<u32>,
    server: Option<f64>,
    client: Option<f64>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            server: super::server::cpu_seconds(server_pid),
            client: super::server::cpu_seconds(None),
        }
    }

    /// `; server 1.4 cores, load driver 0.5` — or nothing where `/proc` is not there.
    fn finish(self, elapsed: Duration) -> String {
        let used = |before: Option<f64>, pid| Some(super::server::cpu_seconds(pid)? - before?);
        let (Some(server), Some(client)) =
            (used(self.server, self.server_pid), used(self.client, None))
        else {
            return String::new();
        };
        let seconds = elapsed.as_secs_f64();
        format!(
            "; server {:.2} cores, load driver {:.2}",
            server / seconds,
            client / seconds
        )
    }
}

/// Notes on what should not happen in a benchmark of a healthy server.
fn anomalies(load: &LoadReport) -> String {
    let mut out = String::new();
    if load.duplicates > 0 {
        out.push_str(&format!("; {} answered as duplicates", load.duplicates));
    }
    if load.spooled > 0 {
        out.push_str(&format!("; {} spooled, not committed", load.spooled));
    }
    out
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    if !rounded.is_finite() {
        return value.to_string();
    }
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-45_000.0), "-45,000");
    }
}
