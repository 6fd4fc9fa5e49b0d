//! The service, started the same way by `sealtrail serve` and by the tests:
//! [`Application::build`] binds the port, opens the store, and starts the writer and the
//! followers; [`Application::run_until_stopped`] serves until the shutdown future resolves, then
//! stops everything in order.
//!
//! Every piece of background work — the writer thread, the query index's follower, the
//! background verifier — belongs to the application's one [`Tasks`] set and stops on its one
//! signal: in-flight requests finish first (`connections::serve`), then the async tasks,
//! then the followers, and the writer last, so that it commits whatever was handed to it and
//! signs a final checkpoint for every log that grew.
//!
//! Connections are served by [`crate::connections`] (a cap derived from the open-file limit,
//! which `build` raises first, and the header, body and idle timeouts), not `axum::serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::archive::{ArchiveBoard, Archiver, ArchiverConfig, TargetOpener};
use crate::clock::Clock;
use crate::config::Resolved;
use crate::connections::{self, ConnectionCount, Limits, fds};
use crate::http::{self, AppState, BodyBudget, Readers, Shared};
use crate::index::{Index, Indexer};
use crate::ledger::{Ledger, LedgerConfig, NewToken, SpoolConfig};
use crate::shutdown::Tasks;
use crate::verify::VerificationBoard;

/// A built service, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The read side of the query index, handed to the query routes.
    index: Index,
    /// Timelines and gap reports, handed to the gap routes.
    gaps: crate::gaps::Gaps,
    /// How far the gap detector has counted, per tenant.
    gap_watermarks: crate::follower::Watermarks,
    monitor_watermarks: crate::follower::Watermarks,
    /// This process, as its start and stop records in the `_system` log name it.
    instance: crate::lifecycle::Instance,
    /// The writer and the followers, registered to stop in order; the verifier joins them
    /// when serving starts.
    tasks: Tasks,
    /// The timeouts and the cap connections are served under.
    limits: Limits,
    /// How many connections are open, for callers that watch the cap (the tests).
    connections: ConnectionCount,
    /// The background archiver's findings, when a target is configured.
    archive: Option<ArchiveBoard>,
    /// The admin token created on first start (shown once), if this start created one.
    pub first_admin_token: Option<NewToken>,
}

impl Application {
    /// Binds the listen address, then opens (or creates) the store in the data directory and
    /// starts the writer and the query index.
    ///
    /// The address is bound first, before anything is created: the first start of a new store
    /// creates its admin token and returns it to be shown once, so a start that created the
    /// store and then failed to listen (the port taken) would lose that token for good — the
    /// next start finds the store and creates none.
    ///
    /// Before either, the open-file limit is raised to its hard limit and the connection cap
    /// decided from it ([`fds`]); a configured `max_connections` it cannot afford fails the
    /// start.
    pub async fn build(settings: Resolved) -> anyhow::Result<Application> {
        Application::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`], with `clock` as the time the API's checks read: when a cached
    /// token is due for a re-check with the store (`token_recheck_ms`), and how far ahead an
    /// event's `occurred_at` may be; and the background work that goes by the calendar: the
    /// sealer's days, the archiver's lag, the retention schedule's cutoff. A test hands it a
    /// [`crate::clock::ManualClock`]'s clock to move that time by hand. The writer keeps the
    /// system clock for the times it records and paces checkpoints by.
    pub async fn build_with_clock(settings: Resolved, clock: Clock) -> anyhow::Result<Application> {
        Application::build_with_targets(settings, clock, crate::archive::directory_opener()).await
    }

    /// [`Application::build_with_clock`], opening the archive target (`archive_to`) with
    /// `opener`: the binary passes one that opens S3 targets as well as directories (this
    /// crate does not build the AWS SDK; see `crate::archive`).
    pub async fn build_with_targets(
        settings: Resolved,
        clock: Clock,
        opener: TargetOpener,
    ) -> anyhow::Result<Application> {
        let descriptors = fds::raise_open_file_limit();
        if descriptors.soft > descriptors.before {
            tracing::info!(
                from = descriptors.before,
                to = descriptors.soft,
                "raised the open-file limit to its hard limit"
            );
        }
        let max_connections = fds::max_connections(settings.http.max_connections, descriptors)?;
        tracing::info!(
            max_connections,
            open_file_limit = descriptors.soft,
            reserved = fds::RESERVED_DESCRIPTORS,
            "serving at most {max_connections} connections at once"
        );
        let limits = Limits::from_settings(&settings.http, max_connections);
        let listen = settings.http.listen;
        let listener = connections::listen(listen).map_err(|e| {
            anyhow::anyhow!("cannot listen on {listen}: {e}; pick another with --listen")
        })?;
        let mut tasks = Tasks::new();
        let (ledger_config, spool) = (
            LedgerConfig::from_settings(&settings),
            SpoolConfig::from_settings(&settings),
        );
        let ledger = tokio::task::spawn_blocking(move || {
            Ledger::start_with_spool(ledger_config, Some(spool))
        })
        .await??;
        // Registered first, so that it stops last.
        let writer = ledger.clone();
        tasks.on_stop("writer", move || writer.shutdown());
        let readers = Readers::new(settings.storage.store.clone());
        let scopes = ["admin", "log:read", "events:read", "verify"]
            .map(String::from)
            .to_vec();
        let first_admin_token = ledger.first_admin_token(scopes).await?;
        // The query index follows the committed log on a thread of its own (`follower`).
        // Its rounds are paced by what the writer has committed (`Ledger::appended`).
        // Every follower takes the entries the writer committed last from memory while it keeps
        // up with them (`recent`), and reads the log otherwise.
        let (data, location, appended, recent) = (
            settings.storage.data.clone(),
            settings.storage.store.clone(),
            ledger.appended(),
            ledger.recent(),
        );
        let indexer = tokio::task::spawn_blocking(move || {
            Indexer::start(&data, &location, Some(appended), Some(recent))
        })
        .await??;
        let index = indexer.index();
        tasks.on_stop("indexer", move || indexer.stop());
        // The gap detector is the log's second follower (`gaps`).
        let (data, location, recent) = (
            settings.storage.data.clone(),
            settings.storage.store.clone(),
            ledger.recent(),
        );
        let detector = tokio::task::spawn_blocking(move || {
            crate::gaps::GapDetector::start(&data, &location, Some(recent))
        })
        .await??;
        let gap_watermarks = detector.watermarks();
        tasks.on_stop("gaps", move || detector.stop());
        // The monitor runs the monitoring rules over the log and appends the alerts they
        // raise through the writer (`monitor`); it stops before the writer.
        let (location, monitor_ledger, rules, monitor_clock) = (
            settings.storage.store.clone(),
            ledger.clone(),
            settings.monitor.clone(),
            clock.clone(),
        );
        let monitor = tokio::task::spawn_blocking(move || {
            crate::alerting::watch::Monitor::start(&location, monitor_ledger, rules, monitor_clock)
        })
        .await??;
        let monitor_watermarks = monitor.watermarks();
        tasks.on_stop("monitor", move || monitor.stop());
        // Alert webhooks: one delivery follower per configured webhook (`alerting::webhooks`).
        if !settings.webhooks.is_empty() {
            let (data, location, webhooks, clock, recent) = (
                settings.storage.data.clone(),
                settings.storage.store.clone(),
                settings.webhooks.clone(),
                clock.clone(),
                ledger.recent(),
            );
            let deliveries = tokio::task::spawn_blocking(move || {
                crate::alerting::webhooks::Deliveries::start(
                    &data,
                    &location,
                    &webhooks,
                    clock,
                    Some(recent),
                )
            })
            .await??;
            tasks.on_stop("webhooks", move || deliveries.stop());
        }
        let gaps =
            crate::gaps::Gaps::new(&settings.storage.data, settings.gaps.clone(), clock.clone());
        // The archiver, when a target is configured: a thread of its own that stops before
        // the followers and the writer (`crate::archive`).
        let root_key = match &settings.log.signing_key {
            Some(path) => Some(crate::keys::read_signer(path)?),
            None => None,
        };
        // The sealer: each log's past UTC days sealed, by the `seals` lease holder (`seals`).
        {
            let keys = crate::keys::KeyResolver::new(&settings.storage.data)
                .with_root_key(root_key.clone());
            let (location, clock) = (settings.storage.store.clone(), clock.clone());
            tasks.spawn(move |stop| crate::seals::run(location, keys, clock, stop));
        }
        // Retention reads the archive the archiver writes, through the same opener, read-only
        // (`crate::retention`): for the admin API's compliance report, and for the schedule.
        let archive_reader = settings.archive.as_ref().map(|archive| {
            crate::retention::ArchiveReader::new(
                archive.clone(),
                opener.clone(),
                crate::keys::KeyResolver::new(&settings.storage.data)
                    .with_root_key(root_key.clone()),
            )
        });
        let archive = match &settings.archive {
            Some(archive) => {
                let root_key = root_key.clone();
                let board = ArchiveBoard::new(&archive.target, archive.interval);
                let archiver = Archiver::start(
                    ArchiverConfig {
                        settings: archive.clone(),
                        store: settings.storage.store.clone(),
                        keys: crate::keys::KeyResolver::new(&settings.storage.data)
                            .with_root_key(root_key),
                        opener,
                        options: sealtrail_archive::ArchiveOptions::default(),
                        clock: clock.clone(),
                    },
                    board.clone(),
                )
                .map_err(|e| anyhow::anyhow!("cannot start the archiver thread: {e}"))?;
                tasks.on_stop("archiver", move || archiver.stop());
                Some(board)
            }
            None => None,
        };
        // A configuration different from the last start's is an admin action: audited.
        ledger.record_config(settings.audit_record()).await?;
        // The retention schedule, with an archive to prune against: every retention_interval,
        // by the `retention` lease holder (`retention::schedule`); started once the
        // configuration (whose periods it applies) is recorded.
        if let Some(archive) = &archive_reader {
            let schedule = crate::retention::schedule::Schedule {
                store: settings.storage.store.clone(),
                archive: archive.clone(),
                ledger: ledger.clone(),
                interval: settings.retention.interval,
                clock: clock.clone(),
            };
            tasks.spawn(move |stop| crate::retention::schedule::run(schedule, stop));
        }
        // Ready: recorded, so that a later gap can be put down to sealtrail's own downtime.
        let instance = crate::lifecycle::Instance::current(settings.log.audit_stdout);
        instance
            .record(&ledger, crate::lifecycle::SERVER_STARTED)
            .await?;
        let data = &settings.storage.data;
        let board = VerificationBoard::default();
        // Read again after the token re-check interval: one bound for how long a change made
        // elsewhere (a revocation, a freeze) takes to reach this instance.
        let freezes = crate::freeze::Freezes::new(
            readers.clone(),
            settings.auth.token_recheck,
            clock.clone(),
        );
        let state = AppState::new(Shared {
            ingest: crate::ingest::Ingest::new(
                ledger.clone(),
                freezes.clone(),
                settings.ingest.max_future_skew,
                clock.clone(),
            )
            .with_frozen_policies(settings.ingest.on_frozen.clone()),
            freezes,
            queries: crate::query::Queries::new(readers.clone(), data, settings.queries),
            verifier: crate::verify::LogVerifier::new(readers.clone(), data.clone(), board.clone()),
            health: crate::health::HealthCheck::new(
                readers.clone(),
                data.clone(),
                board.clone(),
                ledger.clone(),
            )
            .with_archive(archive.clone()),
            refusals: crate::refusals::Refusals::new(ledger.clone()),
            retention: crate::retention::RetentionService::new(
                readers.clone(),
                archive_reader,
                clock.clone(),
            ),
            reports: crate::reports::Reports::new(
                readers.clone(),
                settings.storage.data.clone(),
                gaps.clone(),
                gap_watermarks.clone(),
                clock.clone(),
            ),
            // A request waits for room for its body at most as long as its body may take.
            bodies: BodyBudget::new(settings.http.max_body_memory, settings.http.body_timeout),
            board,
            ledger,
            readers,
            tokens: crate::http::TokenCache::new(settings.auth.token_recheck, clock),
            settings: Arc::new(settings),
        });
        Ok(Application {
            listener,
            archive,
            state,
            index,
            gaps,
            gap_watermarks,
            monitor_watermarks,
            instance,
            tasks,
            connections: ConnectionCount::new(limits.max_connections),
            limits,
            first_admin_token,
        })
    }

    /// Timelines and gap reports, for callers that start the application in-process.
    pub fn gaps(&self) -> crate::gaps::Gaps {
        self.gaps.clone()
    }

    /// How far the gap detector has counted each tenant's log.
    pub fn gap_watermarks(&self) -> crate::follower::Watermarks {
        self.gap_watermarks.clone()
    }

    /// How far the monitor has evaluated each tenant's log.
    pub fn monitor_watermarks(&self) -> crate::follower::Watermarks {
        self.monitor_watermarks.clone()
    }

    /// The writer, for callers that start the application in-process (tests, tools).
    pub fn ledger(&self) -> Ledger {
        self.state.ledger.clone()
    }

    /// The hold that stops searches on request, for tests that fill the search side
    /// (feature `test-hooks`; see `crate::query::hold`).
    #[cfg(feature = "test-hooks")]
    pub fn search_hold(&self) -> crate::query::hold::SearchHold {
        self.state.queries.search_hold()
    }

    /// The read side of the query index, for callers that start the application in-process
    /// (tests, tools).
    pub fn index(&self) -> Index {
        self.index.clone()
    }

    /// What verification has found about each log, as `/health` reports it.
    pub fn verification_board(&self) -> VerificationBoard {
        self.state.board.clone()
    }

    /// What the background archiver has found, when a target is configured.
    pub fn archive(&self) -> Option<ArchiveBoard> {
        self.archive.clone()
    }

    /// How many connections are open, and the cap.
    pub fn connections(&self) -> ConnectionCount {
        self.connections.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves: then stops accepting, lets in-flight requests and
    /// their commits finish, stops the background work, and lets the writer sign a final
    /// checkpoint for every log that grew.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            index,
            gaps,
            instance,
            mut tasks,
            limits,
            connections,
            ..
        } = self;
        {
            let gaps = gaps.clone();
            tasks.spawn(move |stop| crate::gaps::metrics::run(gaps, stop));
        }
        if let Some(every) = state.settings.verification.interval {
            let (ledger, board) = (state.ledger.clone(), state.board.clone());
            let storage = state.settings.storage.clone();
            tasks.spawn(move |stop| {
                crate::verify::run_background(
                    ledger,
                    board,
                    storage.data,
                    storage.store,
                    every,
                    stop,
                )
            });
        }
        // The query routes find the index as a request extension (see `http::query`).
        let ledger = state.ledger.clone();
        let router = http::router(state)
            .layer(axum::Extension(index))
            .layer(axum::Extension(gaps));
        // Each connection is wrapped so that hyper's own refusals get the JSON error shape,
        // and each request carries the peer address (`connections`).
        connections::serve(listener, router, limits, connections, shutdown).await;
        // Serving has stopped and every connection closed. A graceful stop is recorded while
        // the writer still runs; a crash leaves a `started` without its `stopped`.
        if let Err(error) = instance
            .record(&ledger, crate::lifecycle::SERVER_STOPPED)
            .await
        {
            tracing::error!(%error, "cannot record the server's stop in the _system log");
        }
        // The writer still gets to finish and sign.
        tasks.stop().await;
        Ok(())
    }
}

/// Installs the SIGINT and SIGTERM handlers at once and returns a future that resolves on
/// either. `serve` calls it before it opens the store or listens, so a stop asked for at any
/// moment after that (while the store opens, or before the first request) is a graceful stop:
/// the server starts, records its stop and signs a final checkpoint, instead of dying by the
/// signal's default action.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight commits and signing final checkpoints");
    })
}
