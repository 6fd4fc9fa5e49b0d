//! Webhook delivery of alerts, signed per the Standard Webhooks specification.
//!
//! Each configured webhook (`[[monitor.webhooks]]`) is a follower of the committed log of its
//! own ([`crate::follower`]): it reads every tenant's entries in seq order, picks the alert
//! events (`sealtrail.alert.raised`) of the tenants and severities it wants, and POSTs each
//! one, in order, until the receiver answers 2xx:
//!
//! - **Signed.** `webhook-id` is the alert's id (the same on every attempt, so a receiver can
//!   drop a repeat), `webhook-timestamp` the attempt's unix seconds, and `webhook-signature`
//!   `v1,<base64 of HMAC-SHA256 over "id.timestamp.body">` keyed with the base64 part of the
//!   `whsec_` secret.
//! - **At least once, in order, with backoff.** A failed attempt (a connection error, a
//!   timeout of 10 s, any status but 2xx) is tried again after 1 s, 2 s, 4 s … up to 5
//!   minutes, for ever; later alerts of that tenant wait behind it.
//! - **Resumed after a restart.** Where each tenant's delivery stands is kept in
//!   `DIR/webhooks/<name>.json` (written whole and renamed into place after each delivered
//!   alert), so a restart resumes with the first alert not yet acknowledged. A crash between
//!   a receiver's 2xx and that write sends the alert once more, under the same `webhook-id`.
//! - **From when it is configured.** A webhook with no cursor file yet starts at the end of
//!   every log that exists (it delivers alerts raised from then on); a tenant created later
//!   from its start.
//! - **One sender.** With several instances on one database, only the holder of the
//!   `webhooks` lease delivers.
//!
//! The body: `{"type": "sealtrail.alert.raised", "timestamp": RFC 3339, "data": {"tenant",
//! "alert": {the shape of GET /v1/alerts}}}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealtrail_store::{DataDir, EntryRow, Location, Store};

use crate::clock::Clock;
use crate::follower::{Follow, Follower, FollowerError, FollowerOptions, Watermarks};
use crate::monitor::alerts::{ALERT_ACTION, AlertRecord};
use crate::monitor::metrics;
use crate::monitor::webhook::{Webhook, sign};
use crate::recent::RecentEntries;

/// The lease that decides which instance delivers.
pub const LEASE: &str = "webhooks";
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const TIMEOUT: Duration = Duration::from_secs(10);
const BATCH: usize = 5_000;

/// The running deliveries, one follower per webhook.
pub struct Deliveries {
    followers: Vec<Follower>,
}

impl Deliveries {
    /// Starts delivering to each of `webhooks`.
    pub fn start(
        data_dir: &Path,
        location: &Location,
        webhooks: &[Webhook],
        clock: Clock,
        recent: Option<RecentEntries>,
    ) -> Result<Deliveries, FollowerError> {
        let mut followers = Vec::new();
        for webhook in webhooks {
            let log = location.open_reader()?;
            let dir = DataDir::new(data_dir).webhooks();
            let path = dir.join(format!("{}.json", webhook.name));
            let cursors = match std::fs::read(&path) {
                Ok(bytes) => {
                    serde_json::from_slice(&bytes).map_err(|e| FollowerError::State(Box::new(e)))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // New: from the end of every log there is now.
                    let mut cursors = HashMap::new();
                    for tenant in log.tenants()? {
                        cursors.insert(tenant.name.clone(), log.size(&tenant.name)?);
                    }
                    cursors
                }
                Err(e) => return Err(FollowerError::State(Box::new(e))),
            };
            let client = reqwest::blocking::Client::builder()
                .timeout(TIMEOUT)
                .user_agent(concat!("sealtrail/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| FollowerError::State(Box::new(e)))?;
            let delivery = Delivery {
                webhook: webhook.clone(),
                client,
                dir,
                path,
                cursors,
                clock: clock.clone(),
                retry: HashMap::new(),
            };
            // Written at once, so that a restart resumes here rather than at the end of the
            // logs as they are then.
            delivery
                .save()
                .map_err(|e| FollowerError::State(Box::new(e)))?;
            let options = FollowerOptions {
                batch: BATCH,
                poll_interval: Duration::from_millis(250),
                round_pace: Duration::from_millis(250),
                appended: None,
                recent: recent.clone(),
                clock: clock.clone(),
            };
            metrics::webhook_series(&webhook.name);
            followers.push(Follower::start(delivery, log, options)?);
        }
        Ok(Deliveries { followers })
    }

    /// How far each webhook has delivered, per tenant, in the order configured.
    pub fn watermarks(&self) -> Vec<Watermarks> {
        self.followers.iter().map(Follower::watermarks).collect()
    }

    pub fn stop(self) {
        for follower in self.followers {
            follower.stop();
        }
    }
}

/// When to try a tenant's first undelivered alert again, and how long the wait after it is.
struct Retry {
    at: Instant,
    backoff: Duration,
}

struct Delivery {
    webhook: Webhook,
    client: reqwest::blocking::Client,
    dir: PathBuf,
    path: PathBuf,
    /// What is delivered, per tenant: every alert event below the cursor.
    cursors: HashMap<String, u64>,
    clock: Clock,
    retry: HashMap<String, Retry>,
}

/// Why delivery cannot go on: the cursor file cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot record webhook delivery in {path}: {source}")]
pub struct CursorError {
    path: String,
    source: std::io::Error,
}

impl Delivery {
    fn wants(&self, tenant: &str, alert: &AlertRecord) -> bool {
        (self.webhook.tenants.is_empty() || self.webhook.tenants.iter().any(|t| t == tenant))
            && (!self.webhook.critical_only || alert.severity == "critical")
    }

    /// Sends one alert; `Err` says why it was not acknowledged.
    fn send(&self, tenant: &str, alert: &AlertRecord) -> Result<(), String> {
        let now = self.clock.now();
        let body = serde_json::to_vec(&serde_json::json!({
            "type": ALERT_ACTION,
            "timestamp": now.to_rfc3339(),
            "data": {"tenant": tenant, "alert": alert},
        }))
        .map_err(|e| e.to_string())?;
        let timestamp = now.unix_micros().div_euclid(1_000_000);
        let response = self
            .client
            .post(&self.webhook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &alert.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(self.webhook.key(), &alert.id, timestamp, &body),
            )
            .body(body)
            .send()
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    }

    fn save(&self) -> Result<(), CursorError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let fail = |source| CursorError {
            path: self.path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let temp = self.path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(fail)?;
        file.write_all(&serde_json::to_vec(&self.cursors).expect("a map of numbers"))
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        std::fs::rename(&temp, &self.path).map_err(fail)
    }
}

impl Follow for Delivery {
    type Error = CursorError;

    fn name(&self) -> &str {
        "webhooks"
    }

    fn cursors(&self) -> HashMap<String, u64> {
        self.cursors.clone()
    }

    fn apply(
        &mut self,
        log: &dyn Store,
        tenant: &str,
        entries: &[(u64, EntryRow)],
    ) -> Result<u64, CursorError> {
        let start = self.cursors.get(tenant).copied().unwrap_or(0);
        let alerts: Vec<(u64, AlertRecord)> = entries
            .iter()
            .filter_map(|(seq, row)| {
                let bytes = row.as_deref().ok()?;
                let needle = ALERT_ACTION.as_bytes();
                if !bytes.windows(needle.len()).any(|w| w == needle) {
                    return None;
                }
                Some((*seq, AlertRecord::from_bytes(bytes)?))
            })
            .filter(|(_, alert)| self.wants(tenant, alert))
            .collect();
        let end = entries.last().map_or(start, |(seq, _)| seq + 1);
        if alerts.is_empty() {
            // Nothing to deliver: the cursor moves on, and is written with the next delivery
            // (or, at worst, these entries are read again after a restart).
            self.cursors.insert(tenant.to_string(), end);
            return Ok(end);
        }
        if self
            .retry
            .get(tenant)
            .is_some_and(|r| Instant::now() < r.at)
        {
            return Ok(start);
        }
        match log.try_lease(LEASE) {
            Ok(true) => {}
            Ok(false) => return Ok(start),
            Err(error) => {
                tracing::warn!(%error, "cannot take the webhooks lease; deliveries wait");
                return Ok(start);
            }
        }
        for (seq, alert) in alerts {
            match self.send(tenant, &alert) {
                Ok(()) => {
                    metrics::webhook_delivered(&self.webhook.name, true);
                    self.retry.remove(tenant);
                    self.cursors.insert(tenant.to_string(), seq + 1);
                    self.save()?;
                }
                Err(error) => {
                    metrics::webhook_delivered(&self.webhook.name, false);
                    let backoff = self
                        .retry
                        .get(tenant)
                        .map_or(Duration::from_secs(1), |r| (r.backoff * 2).min(MAX_BACKOFF));
                    tracing::warn!(
                        webhook = %self.webhook.name,
                        tenant,
                        alert_id = %alert.id,
                        %error,
                        retry_in_secs = backoff.as_secs(),
                        "webhook delivery failed; retried"
                    );
                    self.retry.insert(
                        tenant.to_string(),
                        Retry {
                            at: Instant::now() + backoff,
                            backoff,
                        },
                    );
                    self.cursors.insert(tenant.to_string(), seq);
                    self.save()?;
                    return Ok(seq);
                }
            }
        }
        self.cursors.insert(tenant.to_string(), end);
        Ok(end)
    }
}
