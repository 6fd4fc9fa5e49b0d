//! Building the 10 M-event log through the ledger, and the cache that keeps a built log for the next run.

use super::*;

// --- building the log --------------------------------------------------------------------

/// What building the log took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub events: u64,
    /// From starting the writer to its final checkpoint.
    pub seconds: f64,
    pub streams: u64,
    /// Generator threads.
    pub workers: usize,
    /// Signed checkpoints of the log when done.
    pub checkpoints: usize,
    /// The data directory's size when done.
    pub log_bytes: u64,
}

/// Builds the log of `events` clinic events in the (new) data directory `data_dir`, tenant
/// [`TENANT`]; see the module documentation. Progress goes to stderr when `progress`.
pub fn build(
    data_dir: &Path,
    clinic: &Arc<Clinic>,
    events: u64,
    progress: bool,
) -> Result<BuildReport> {
    ensure!(events > 0, "nothing to build");
    let started = Instant::now();
    let ledger = Ledger::start(LedgerConfig {
        data_dir: data_dir.to_path_buf(),
        store: Location::new(data_dir, None),
        signing_key: None,
        checkpoint_interval: Duration::from_secs(1),
        origin_prefix: "sealtrail.local".to_string(),
        audit_stdout: false,
    })
    .with_context(|| format!("cannot start the writer on {}", data_dir.display()))?;
    ledger.ensure_tenant_blocking(TENANT, "sealtrail-bench")?;
    let existing = ledger.head(TENANT).map_or(0, |head| head.size);
    ensure!(
        existing == 0,
        "{} already holds a log of {existing} entries",
        data_dir.display()
    );

    let per_stream: Vec<u64> = (0..BUILD_STREAMS)
        .map(|s| events / BUILD_STREAMS + u64::from(s < events % BUILD_STREAMS))
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, BUILD_STREAMS as usize);
    let mut senders: Vec<Vec<(usize, SyncSender<Batch>)>> = vec![Vec::new(); workers];
    let mut receivers: Vec<Receiver<Batch>> = Vec::new();
    for stream in 0..BUILD_STREAMS as usize {
        let (tx, rx) = mpsc::sync_channel(2);
        senders[stream % workers].push((stream, tx));
        receivers.push(rx);
    }
    let mut threads = Vec::new();
    for streams in senders {
        let clinic = Arc::clone(clinic);
        let counts = per_stream.clone();
        threads.push(
            std::thread::Builder::new()
                .name("bench-generator".into())
                .spawn(move || generate(&clinic, streams, &counts))
                .context("cannot start a generator thread")?,
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the runtime of the build")?;
    let mut appended = 0u64;
    let mut group: Vec<Submission> = Vec::with_capacity(MAX_GROUP_EVENTS);
    let mut last_progress = Instant::now();
    let rounds = per_stream
        .iter()
        .map(|&n| n.div_ceil(STREAM_BATCH as u64))
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        for (stream, receiver) in receivers.iter().enumerate() {
            if round >= per_stream[stream].div_ceil(STREAM_BATCH as u64) {
                continue;
            }
            let batch = receiver
                .recv()
                .map_err(|_| anyhow!("a generator thread stopped early"))?
                .map_err(|e| anyhow!("a generated event is invalid: {e}"))?;
            group.extend(batch);
            if group.len() >= MAX_GROUP_EVENTS {
                appended += append(&runtime, &ledger, &mut group, appended)?;
            }
        }
        if progress && last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            eprintln!(
                "bench: building the large log: {} of {} events, {} events/s",
                thousands(appended as f64),
                thousands(events as f64),
                thousands(appended as f64 / started.elapsed().as_secs_f64())
            );
        }
    }
    if !group.is_empty() {
        appended += append(&runtime, &ledger, &mut group, appended)?;
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow!("a generator thread panicked"))?;
    }
    // Signs the final checkpoint, at the full size.
    ledger.shutdown();
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        appended == events,
        "built {appended} events instead of {events}"
    );

    let reader = Location::new(data_dir, None).open_reader()?;
    let size = reader.size(TENANT)?;
    ensure!(size == events, "the log holds {size} entries, not {events}");
    let latest = reader
        .latest_checkpoint(TENANT)?
        .context("the built log has no checkpoint")?;
    ensure!(
        latest.size == events,
        "the final checkpoint is of size {}, not {events}",
        latest.size
    );
    let checkpoints = reader.checkpoints(TENANT)?.len();
    Ok(BuildReport {
        events,
        seconds,
        streams: BUILD_STREAMS,
        workers,
        checkpoints,
        log_bytes: dir_bytes(data_dir),
    })
}

/// A stream's next batch of parsed events, or why one could not be parsed.
pub(super) type Batch = Result<Vec<Submission>, String>;

/// Writes and parses the events of `streams` (each with its channel) in batches, one batch
/// per stream in turn, as the appender takes them.
pub(super) fn generate(
    clinic: &Arc<Clinic>,
    streams: Vec<(usize, SyncSender<Batch>)>,
    counts: &[u64],
) {
    let mut generators: Vec<_> = streams
        .into_iter()
        .map(|(stream, tx)| {
            (
                clinic.stream(BUILD_STREAM_BASE + stream as u64),
                counts[stream],
                tx,
            )
        })
        .collect();
    let mut bytes = Vec::with_capacity(1024);
    loop {
        let mut any = false;
        for (stream, left, tx) in &mut generators {
            if *left == 0 {
                continue;
            }
            any = true;
            let n = (*left).min(STREAM_BATCH as u64);
            *left -= n;
            let mut batch = Vec::with_capacity(n as usize);
            let mut failure = None;
            for _ in 0..n {
                bytes.clear();
                stream.write_event(&mut bytes);
                match Event::parse(&bytes) {
                    Ok(event) => {
                        let idempotency_key = event.idempotency_key().map(str::to_string);
                        batch.push(Submission {
                            event,
                            idempotency_key,
                        });
                    }
                    Err(error) => {
                        failure = Some(format!("{error}: {}", String::from_utf8_lossy(&bytes)));
                        break;
                    }
                }
            }
            let failed = failure.is_some();
            let sent = tx.send(match failure {
                Some(error) => Err(error),
                None => Ok(batch),
            });
            if sent.is_err() || failed {
                return;
            }
        }
        if !any {
            return;
        }
    }
}

/// Appends the group and empties it; every event must be newly committed.
pub(super) fn append(
    runtime: &tokio::runtime::Runtime,
    ledger: &Ledger,
    group: &mut Vec<Submission>,
    appended: u64,
) -> Result<u64> {
    let submissions = std::mem::replace(group, Vec::with_capacity(MAX_GROUP_EVENTS));
    let count = submissions.len() as u64;
    let outcomes = runtime
        .block_on(ledger.append(TENANT, submissions))
        .context("the writer did not commit a group")?;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Created(receipt) if receipt.seq == appended + i as u64 => {}
            other => bail!(
                "event {} of the build was not appended as the next entry: {other:?}",
                appended + i as u64
            ),
        }
    }
    Ok(count)
}

// --- the cache ---------------------------------------------------------------------------

/// What a cached log must have been built by and of, to be reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CacheKey {
    pub(super) sealtrail: String,
    pub(super) profile: String,
    pub(super) store_schema: i64,
    pub(super) seed: u64,
    pub(super) events: u64,
    pub(super) streams: u64,
    pub(super) stream_batch: usize,
    /// A hash of the first events of the first stream: the generator's output.
    pub(super) generator: String,
}

impl CacheKey {
    fn current(clinic: &Arc<Clinic>, seed: u64, events: u64) -> CacheKey {
        let mut stream = clinic.stream(BUILD_STREAM_BASE);
        let mut bytes = Vec::new();
        for _ in 0..256 {
            stream.write_event(&mut bytes);
        }
        CacheKey {
            sealtrail: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            store_schema: sealtrail_store::sqlite::SCHEMA_VERSION,
            seed,
            events,
            streams: BUILD_STREAMS,
            stream_batch: STREAM_BATCH,
            generator: leaf_hash(&bytes).to_hex()[..16].to_string(),
        }
    }
}

/// `manifest.json` of a cached log, written once the build is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) key: CacheKey,
    pub(super) built_at: String,
    pub(super) build: BuildReport,
}

/// The log of this plan: built in a scratch directory, or found in (or built into) the cache.
pub(super) fn prepare(plan: &Plan, clinic: &Arc<Clinic>) -> Result<Prepared> {
    let events = plan.large_events;
    let Some(root) = &plan.large_cache else {
        let scratch = ScratchDir::new("large")?;
        let data_dir = scratch.path().join("data");
        eprintln!(
            "bench: building the large log of {} events in {}",
            thousands(events as f64),
            data_dir.display()
        );
        let build = build(&data_dir, clinic, events, true)?;
        return Ok(Prepared {
            data_dir,
            events,
            build,
            cached: None,
            _scratch: Some(scratch),
        });
    };
    let key = CacheKey::current(clinic, plan.seed, events);
    let dir = root.join(format!("{}-{events}", plan.seed));
    let manifest_path = dir.join("manifest.json");
    let found: Option<Manifest> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match found {
        Some(manifest) if manifest.key == key => {
            eprintln!(
                "bench: using the cached large log in {} (built at {}; --large-cache): not rebuilt",
                dir.display(),
                manifest.built_at
            );
            return Ok(Prepared {
                data_dir: dir.join("data"),
                events,
                build: manifest.build,
                cached: Some((dir, manifest.built_at)),
                _scratch: None,
            });
        }
        Some(manifest) => eprintln!(
            "bench: the cached large log in {} was built by another build of sealtrail or of the generator ({:?}; this is {:?}); rebuilding it",
            dir.display(),
            manifest.key,
            key
        ),
        None if dir.exists() => eprintln!(
            "bench: {} holds no complete cached log; rebuilding it",
            dir.display()
        ),
        None => {}
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the stale cache {}", dir.display()))?;
    }
    let partial = root.join(format!("{}-{events}.partial", plan.seed));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    eprintln!(
        "bench: building the large log of {} events into the cache {}",
        thousands(events as f64),
        dir.display()
    );
    let build = build(&partial.join("data"), clinic, events, true)?;
    let built_at = sealtrail_server::clock::Clock::system().now().to_rfc3339();
    let manifest = Manifest {
        key,
        built_at: built_at.clone(),
        build: build.clone(),
    };
    std::fs::write(
        partial.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("cannot move {} to {}", partial.display(), dir.display()))?;
    Ok(Prepared {
        data_dir: dir.join("data"),
        events,
        build,
        cached: None,
        _scratch: None,
    })
}
