//! The service, started the same way by `sealtrail serve` and by the tests:
//! [`Application::build`] opens the store and binds the port, [`Application::run_until_stopped`]
//! serves until the shutdown future resolves, then finishes in-flight commits and signs final
//! checkpoints.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Resolved;
use crate::http::{self, AppState, Readers};
use crate::index::Indexer;
use crate::ledger::{Ledger, LedgerConfig, NewToken};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    indexer: Indexer,
    /// The admin token created on first start (shown once), if this start created one.
    pub first_admin_token: Option<NewToken>,
}

impl Application {
    /// Opens (or creates) the store in the data directory and binds the listen address.
    pub async fn build(settings: Resolved) -> anyhow::Result<Application> {
        let ledger_config = LedgerConfig {
            data_dir: settings.data.clone(),
            store: settings.store.clone(),
            signing_key: settings.signing_key.clone(),
            checkpoint_interval: settings.checkpoint_interval,
            origin_prefix: settings.origin_prefix.clone(),
            audit_stdout: settings.audit_stdout,
        };
        let spool = crate::ledger::SpoolConfig {
            max_bytes: settings.spool_max_bytes,
            default_policy: settings.on_store_failure,
            tenant_policies: settings.tenant_policies.clone(),
        };
        let ledger = tokio::task::spawn_blocking(move || {
            Ledger::start_with_spool(ledger_config, Some(spool))
        })
        .await??;
        let readers = Readers::new(settings.store.clone());
        let scopes = ["admin", "log:read", "events:read", "verify"]
            .map(String::from)
            .to_vec();
        let first_admin_token = ledger.first_admin_token(scopes).await?;
        // The query index follows the committed log on a thread of its own (`follower`).
        let (data, location) = (settings.data.clone(), settings.store.clone());
        let indexer =
            tokio::task::spawn_blocking(move || Indexer::start(&data, &location)).await??;
        // A configuration different from the last start's is an admin action: audited.
        ledger
            .record_config(serde_json::json!({
                "data": settings.data.display().to_string(),
                "listen": settings.listen.to_string(),
                "checkpoint_interval_ms": settings.checkpoint_interval.as_millis() as u64,
                "origin_prefix": settings.origin_prefix,
                "public_log": settings.public_log,
                "audit_stdout": settings.audit_stdout,
                "verify_interval_secs": settings.verify_interval.map(|d| d.as_secs()),
            }))
            .await?;
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; pick another with --listen",
                settings.listen
            )
        })?;
        let board = crate::verify::VerificationBoard::default();
        let state = AppState {
            ingest: crate::ingest::Ingest::new(ledger.clone()),
            queries: crate::query::Queries::new(readers.clone(), &settings.data),
            verifier: crate::verify::LogVerifier::new(
                readers.clone(),
                settings.data.clone(),
                board.clone(),
            ),
            health: crate::health::HealthCheck::new(
                readers.clone(),
                settings.data.clone(),
                board.clone(),
            ),
            board,
            ledger,
            readers,
            settings: Arc::new(settings),
            tokens: crate::http::TokenCache::default(),
        };
        Ok(Application {
            listener,
            state,
            indexer,
            first_admin_token,
        })
    }

    /// The writer, for callers that start the application in-process (tests, tools).
    pub fn ledger(&self) -> Ledger {
        self.state.ledger.clone()
    }

    /// What verification has found about each log, as `/health` reports it.
    pub fn verification_board(&self) -> crate::verify::VerificationBoard {
        self.state.board.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves: then stops accepting, lets in-flight requests and
    /// their commits finish, and signs a final checkpoint for every log that grew.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let ledger = self.state.ledger.clone();
        let verifier = self.state.settings.verify_interval.map(|every| {
            crate::verify::spawn_background(
                ledger.clone(),
                self.state.board.clone(),
                self.state.settings.data.clone(),
                self.state.settings.store.clone(),
                every,
            )
        });
        // The query routes find the index as a request extension (see `http::query`).
        let router = http::router(self.state).layer(axum::Extension(self.indexer.index()));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        if let Some(verifier) = verifier {
            verifier.abort();
        }
        let indexer = self.indexer;
        tokio::task::spawn_blocking(move || indexer.stop()).await?;
        tokio::task::spawn_blocking(move || ledger.shutdown()).await?;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight commits and signing final checkpoints");
}
