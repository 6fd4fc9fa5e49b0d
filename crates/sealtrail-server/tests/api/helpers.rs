//! `spawn_app()`: the application started exactly as `sealtrail serve` starts it, on
//! 127.0.0.1:0 with its own data directory.

// Shared by every test module; not each uses every helper.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use sealtrail_server::app::Application;
use sealtrail_server::clock::Clock;
use sealtrail_server::config::Settings;
use sealtrail_server::connections::ConnectionCount;
use sealtrail_server::index::Index;
use sealtrail_server::ledger::Ledger;
use sealtrail_server::query::hold::SearchHold;
use sealtrail_server::verify::VerificationBoard;
use sealtrail_store::testing::TestDatabase;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub base: String,
    /// The bound address, for tests that speak raw TCP.
    pub addr: std::net::SocketAddr,
    /// How many connections the server has open, and its cap.
    pub connections: ConnectionCount,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub ledger: Ledger,
    pub data: PathBuf,
    /// What verification has found about each log (what `/health` reports as `chain`).
    pub board: VerificationBoard,
    /// Stops the app's searches on request, to fill the search side deterministically.
    pub searches: SearchHold,
    /// The read side of the query index (how many searches wait for it, say).
    pub index: Index,
    /// How far the gap detector has counted each tenant's log.
    pub gap_marks: sealtrail_server::follower::Watermarks,
    /// How far the monitor has evaluated each tenant's log.
    pub monitor_marks: sealtrail_server::follower::Watermarks,
    /// Kept so the directory lives as long as the app (and across restarts).
    pub dir: std::sync::Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A PostgreSQL database of the test's own, made and dropped on a thread of its own: the
/// driver blocks, which it may not do on the test's runtime (nor while a failed test unwinds).
pub struct Database(Option<TestDatabase>);

impl Database {
    pub fn create(test: &'static str) -> Option<Database> {
        std::thread::spawn(move || TestDatabase::create(test))
            .join()
            .unwrap()
            .map(|db| Database(Some(db)))
    }
}

impl std::ops::Deref for Database {
    type Target = TestDatabase;

    fn deref(&self) -> &TestDatabase {
        self.0.as_ref().expect("dropped only once")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = std::thread::spawn(move || drop(db)).join();
        }
    }
}

/// Settings for a test server: fast checkpoints so tests need not wait long.
pub fn test_settings(data: PathBuf) -> Settings {
    Settings {
        data: Some(data),
        listen: Some("127.0.0.1:0".into()),
        checkpoint_interval_ms: Some(50),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("a temporary directory"));
    spawn_app_in(dir, |_| {}).await
}

/// Starts an app on `dir`'s data directory (reusing it across restarts), after `tweak` has
/// adjusted the settings.
pub async fn spawn_app_in(
    dir: std::sync::Arc<tempfile::TempDir>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_with_clock(dir, tweak, Clock::system()).await
}

/// [`spawn_app_in`], with `clock` as the time the API checks tokens by (a
/// `ManualClock`'s, to move it by hand).
pub async fn spawn_app_with_clock(
    dir: std::sync::Arc<tempfile::TempDir>,
    tweak: impl FnOnce(&mut Settings),
    clock: Clock,
) -> TestApp {
    let data = dir.path().join("data");
    let mut settings = test_settings(data.clone());
    tweak(&mut settings);
    let app = Application::build_with_clock(settings.resolve().expect("valid settings"), clock)
        .await
        .expect("the application starts");
    let addr = app.local_addr();
    let base = format!("http://{addr}");
    let connections = app.connections();
    let ledger = app.ledger();
    let board = app.verification_board();
    let searches = app.search_hold();
    let index = app.index();
    let gap_marks = app.gap_watermarks();
    let monitor_marks = app.monitor_watermarks();
    let admin_token = app
        .first_admin_token
        .as_ref()
        .map(|t| t.token.clone())
        .unwrap_or_default();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        addr,
        connections,
        admin_token,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        ledger,
        data,
        board,
        searches,
        index,
        gap_marks,
        monitor_marks,
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token for `tenant` with `scopes`, created the way the CLI and admin API create them.
    pub async fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.ledger
            .create_token(
                tenant,
                scopes.iter().map(|s| s.to_string()).collect(),
                "test",
            )
            .await
            .expect("token created")
            .token
    }

    pub async fn post_event(&self, token: &str, event: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(token)
            .json(event)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /v1/events/batch` with `events` (a JSON array, or anything that serializes to one).
    pub async fn post_batch(
        &self,
        token: &str,
        events: &(impl serde::Serialize + ?Sized),
    ) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events/batch"))
            .bearer_auth(token)
            .json(events)
            .send()
            .await
            .expect("request sent")
    }

    /// How many entries `tenant`'s log holds, as the store has them.
    pub fn log_size(&self, tenant: &str) -> u64 {
        sealtrail_store::Location::new(&self.data, None)
            .open_reader()
            .expect("the store opens")
            .size(tenant)
            .expect("the store reads")
    }

    /// Every entry of `tenant`'s log, as the store holds it: the canonical entry's bytes.
    pub fn entries(&self, tenant: &str) -> Vec<Vec<u8>> {
        let conn = sealtrail_store::Location::new(&self.data, None)
            .open_reader()
            .expect("the store opens");
        let mut entries = Vec::new();
        conn.for_each_entry(tenant, 0, u64::MAX, &mut |_, entry| {
            entries.push(entry.expect("every row holds an entry").to_vec());
        })
        .expect("the log reads");
        entries
    }

    /// The `_system` log's records of refused admin attempts, parsed, oldest first.
    pub fn refusal_records(&self) -> Vec<serde_json::Value> {
        self.entries("_system")
            .iter()
            .map(|entry| serde_json::from_slice::<serde_json::Value>(entry).expect("JSON"))
            .filter(|entry| entry["action"] == "sealtrail.admin.refused")
            .collect()
    }

    /// Stops the server gracefully (final checkpoints signed) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let ledger = self.ledger.clone();
        drop(self);
        drop(ledger);
    }
}

/// A valid event for tests, distinguishable by `n`.
pub fn event(n: u64) -> serde_json::Value {
    serde_json::json!({
        "action": "patient.record.read",
        "activity": "read",
        "outcome": "success",
        "actor": {"id": format!("u-{}", n % 7), "type": "user"},
        "targets": [{"type": "patient", "id": format!("p-{n}")}],
        "context": {"ip": "10.1.2.3"},
        "source": {"app": "ehr-web", "seq": n},
    })
}
