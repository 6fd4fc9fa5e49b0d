//! The monitor: a follower of the committed log ([`crate::follower`]) that runs every tenant's
//! rules ([`crate::monitor`]) over its events in seq order and records each alert they raise
//! in the tenant's own log ([`crate::monitor::alerts`]).
//!
//! ## State, restarts and several instances
//!
//! The monitor keeps nothing of its own on disk: its state is the rules' windows, which it
//! rebuilds from the log. On start it begins each tenant at the first entry received within
//! twice the tenant's longest rule window before the log's latest entry, so every window and
//! episode still open is read again. An alert the engine raises goes to the tenant's
//! *pending* list; an alert event met in the log (the monitor's own, from before the restart
//! or from another instance) takes its alert off that list. Pending alerts are appended only
//! once the monitor has caught up with the log — by then every alert event already written is
//! known — so a restart neither loses an alert (its episode is read again) nor repeats one
//! (its event is found). As a last guard the alert id is the event's idempotency key.
//!
//! Several instances on one PostgreSQL database all evaluate; only the holder of the
//! `monitor` lease appends. The others see its alert events and drop what they had pending;
//! if the holder goes, the next holder appends what it still has pending.
//!
//! Windows over a quiet log end by the clock: after a round with nothing new the monitor
//! ends the windows that passed two seconds ago (the grace lets an entry committed just
//! before come in first).
//!
//! An episode longer than twice its window that is still going on across a restart is read
//! again only from the restart's horizon, so the alert it raises at its end may name a
//! different peak than it would have without the restart.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sealtrail_core::canonical::Entry;
use sealtrail_store::{EntryRow, Location, Store};

use crate::clock::Clock;
use crate::follower::{Follow, Follower, FollowerError, FollowerOptions, Watermarks};
use crate::ledger::{Ledger, Outcome, Submission};
use crate::monitor::MonitorSettings;
use crate::monitor::alerts::{ALERT_ACTION, AlertRecord, alert_event, alert_id};
use crate::monitor::engine::{Alert, Engine, Observed};
use crate::monitor::metrics;

/// The name of the lease that decides which instance appends alerts.
pub const LEASE: &str = "monitor";
/// Entries per tenant per round.
const BATCH: usize = 5_000;

/// A quiet log's windows end this long after the clock passed them.
const GRACE: Duration = Duration::from_secs(2);

/// A running monitor; [`Monitor::stop`] ends it.
pub struct Monitor {
    follower: Follower,
}

impl Monitor {
    /// Starts following the log at `location`, appending alerts through `ledger`.
    pub fn start(
        location: &Location,
        ledger: Ledger,
        settings: MonitorSettings,
        clock: Clock,
    ) -> Result<Monitor, FollowerError> {
        let log = location.open_reader()?;
        let starts = replay_starts(log.as_ref(), &settings)?;
        let recent = ledger.recent();
        let watch = Watch {
            ledger,
            settings,
            clock: clock.clone(),
            starts,
            tenants: HashMap::new(),
        };
        let options = FollowerOptions {
            batch: BATCH,
            poll_interval: Duration::from_millis(250),
            round_pace: Duration::from_millis(250),
            appended: None,
            recent: Some(recent),
            clock,
        };
        Ok(Monitor {
            follower: Follower::start(watch, log, options)?,
        })
    }

    /// How far the monitor has evaluated each tenant's log.
    pub fn watermarks(&self) -> Watermarks {
        self.follower.watermarks()
    }

    pub fn stop(self) {
        self.follower.stop();
    }
}

/// Where each tenant's evaluation starts: its first entry received within twice its longest
/// window before its latest entry (or its prune mark, if later).
fn replay_starts(
    log: &dyn Store,
    settings: &MonitorSettings,
) -> Result<HashMap<String, u64>, sealtrail_store::StoreError> {
    let mut starts = HashMap::new();
    for tenant in log.tenants()? {
        let name = tenant.name;
        let size = log.size(&name)?;
        let low = log.prune_mark(&name)?.map_or(0, |m| m.below);
        if size <= low {
            continue;
        }
        let longest = settings
            .rules_for(&name)
            .map(|rules| rules.iter().map(|r| r.window).max().unwrap_or_default())
            .unwrap_or_default();
        let Some(latest) = received_at(log, &name, size - 1)? else {
            continue;
        };
        let horizon = latest - 2 * i64::try_from(longest.as_micros()).unwrap_or(i64::MAX / 4);
        // The first seq in [low, size) received at or after the horizon; an entry that does
        // not read counts as before it.
        let (mut lo, mut hi) = (low, size - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match received_at(log, &name, mid)? {
                Some(at) if at >= horizon => hi = mid,
                _ => lo = mid + 1,
            }
        }
        starts.insert(name, lo);
    }
    Ok(starts)
}

/// The `received_at` of an entry; `None` for one that cannot be read (a damaged row is the
/// verifier's to report, and must not keep the monitor, or the server, from starting). Only an
/// unreachable store is an error.
fn received_at(
    log: &dyn Store,
    tenant: &str,
    seq: u64,
) -> Result<Option<i64>, sealtrail_store::StoreError> {
    match log.entry(tenant, seq) {
        Ok(entry) => Ok(entry
            .and_then(|bytes| Entry::parse(&bytes).ok())
            .map(|e| e.server.received_at.unix_micros())),
        Err(error @ sealtrail_store::StoreError::Unavailable(_)) => Err(error),
        Err(error) => {
            tracing::warn!(tenant, seq, %error, "monitor: an entry cannot be read; passed over");
            Ok(None)
        }
    }
}

/// One tenant's evaluation.
struct TenantWatch {
    engine: Engine,
    /// Raised and not appended yet, with their ids, in the order raised; an entry whose id
    /// is no longer in `pending_ids` was met in the log since, and is passed over.
    pending: Vec<(String, Alert)>,
    /// The ids of the alerts pending. A read-back after a restart can hold thousands of alerts
    /// pending until it catches up, and every alert raised or met in the log is looked up
    /// among them: a scan of `pending` each time made the read-back quadratic.
    pending_ids: HashSet<String>,
    /// Ids of the alerts the log already holds (since the replay's start).
    recorded: HashSet<String>,
}

/// The monitor as a [`Follow`].
struct Watch {
    ledger: Ledger,
    settings: MonitorSettings,
    clock: Clock,
    starts: HashMap<String, u64>,
    tenants: HashMap<String, TenantWatch>,
}

impl Watch {
    fn tenant(&mut self, tenant: &str) -> &mut TenantWatch {
        let settings = &self.settings;
        self.tenants.entry(tenant.to_string()).or_insert_with(|| {
            let rules = settings.rules_for(tenant).unwrap_or_else(|error| {
                // The configuration is checked at start; this is only reachable through a
                // settings value built in code.
                tracing::error!(tenant, %error, "monitoring rules unusable; none run");
                Vec::new()
            });
            for rule in &rules {
                for (_, severity) in &rule.thresholds {
                    metrics::alert_series(tenant, &rule.name, severity.as_str());
                }
            }
            TenantWatch {
                engine: Engine::new(rules),
                pending: Vec::new(),
                pending_ids: HashSet::new(),
                recorded: HashSet::new(),
            }
        })
    }

    /// Appends the tenant's pending alerts, if this instance holds the lease. What cannot be
    /// appended now stays pending for the next round.
    fn emit(&mut self, log: &dyn Store, tenant: &str) {
        let has_pending = self
            .tenants
            .get(tenant)
            .is_some_and(|t| !t.pending_ids.is_empty());
        if !has_pending {
            return;
        }
        match log.try_lease(LEASE) {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot take the monitor lease; alerts wait");
                return;
            }
        }
        let ledger = self.ledger.clone();
        let watch = self.tenant(tenant);
        let pending = std::mem::take(&mut watch.pending);
        let mut ready: Vec<(String, Alert, Submission)> = Vec::new();
        for (id, alert) in pending {
            if !watch.pending_ids.remove(&id) {
                continue;
            }
            match alert_event(tenant, &alert) {
                Ok(event) => {
                    let submission = Submission {
                        event,
                        idempotency_key: Some(id.clone()),
                    };
                    ready.push((id, alert, submission));
                }
                Err(error) => {
                    tracing::error!(tenant, rule = %alert.rule, %error, "alert does not form an event; dropped");
                }
            }
        }
        // All of them in one append (one group commit) per chunk: appended one by one, each
        // waited for a commit of its own, and under heavy ingest the monitor stopped reading
        // the log for as long as hundreds of commits took.
        let mut ready = ready.into_iter().peekable();
        while ready.peek().is_some() {
            let chunk: Vec<(String, Alert, Submission)> = ready.by_ref().take(EMIT_CHUNK).collect();
            let (alerts, submissions): (Vec<(String, Alert)>, Vec<Submission>) = chunk
                .into_iter()
                .map(|(id, alert, submission)| ((id, alert), submission))
                .unzip();
            match ledger.append_blocking(tenant, submissions) {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (id, alert) in alerts {
                        match outcomes.next() {
                            Some(outcome) => watch.appended(tenant, id, &alert, outcome),
                            // One answer per submission; should one be missing, the alert is
                            // tried again rather than lost (its key makes a retry harmless).
                            None => watch.keep_pending(id, alert),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(tenant, alerts = alerts.len(), %error, "alerts not appended yet; retried");
                    for (id, alert) in alerts
                        .into_iter()
                        .chain(ready.by_ref().map(|(id, alert, _)| (id, alert)))
                    {
                        watch.keep_pending(id, alert);
                    }
                }
            }
        }
    }
}

/// How many alerts one append takes at most.
const EMIT_CHUNK: usize = 1_000;

impl TenantWatch {
    fn raise(&mut self, tenant: &str, alerts: Vec<Alert>) {
        for alert in alerts {
            let id = alert_id(tenant, &alert);
            if !self.recorded.contains(&id) && !self.pending_ids.contains(&id) {
                self.keep_pending(id, alert);
            }
        }
    }

    /// What the writer answered for the alert `id`.
    fn appended(&mut self, tenant: &str, id: String, alert: &Alert, outcome: Outcome) {
        match outcome {
            Outcome::Created(receipt) => {
                metrics::alert_raised(tenant, &alert.rule, alert.severity.as_str());
                tracing::warn!(
                    tenant,
                    rule = %alert.rule,
                    severity = alert.severity.as_str(),
                    key = %alert.key,
                    count = alert.count,
                    seq = receipt.seq,
                    alert_id = %id,
                    "alert raised"
                );
                self.recorded.insert(id);
            }
            Outcome::Duplicate(_) | Outcome::Spooled(_) | Outcome::Held(_) => {
                self.recorded.insert(id);
            }
            other => {
                tracing::error!(tenant, alert_id = %id, ?other, "alert refused by the writer; dropped");
            }
        }
    }

    fn keep_pending(&mut self, id: String, alert: Alert) {
        self.pending_ids.insert(id.clone());
        self.pending.push((id, alert));
    }

    /// Notes that the log holds the alert `id`: it is no longer pending (and, being recorded,
    /// is never raised again, so `pending` never holds an id twice).
    fn met_in_log(&mut self, id: String) {
        if self.pending_ids.remove(&id) && self.pending.len() > 2 * self.pending_ids.len() + 64 {
            // Mostly passed-over entries (an instance without the lease never appends, so it
            // only ever drops what the holder wrote): keep `pending` within twice its ids.
            let ids = &self.pending_ids;
            self.pending.retain(|(p, _)| ids.contains(p));
        }
        self.recorded.insert(id);
    }
}

impl Follow for Watch {
    type Error = std::convert::Infallible;

    fn name(&self) -> &str {
        "monitor"
    }

    fn cursors(&self) -> HashMap<String, u64> {
        self.starts.clone()
    }

    fn apply(
        &mut self,
        log: &dyn Store,
        tenant: &str,
        entries: &[(u64, EntryRow)],
    ) -> Result<u64, Self::Error> {
        let watch = self.tenant(tenant);
        let mut last_at = None;
        for (_, row) in entries {
            // A damaged row is the verifier's to report; it cannot be evaluated.
            let Ok(bytes) = row.as_deref() else {
                continue;
            };
            let Some(observed) = Observed::from_bytes(bytes) else {
                continue;
            };
            if observed.action == ALERT_ACTION {
                // Rare, and read in full: the alert's own fields are in its details.
                if let Some(record) = AlertRecord::from_bytes(bytes) {
                    watch.met_in_log(record.id);
                }
                continue;
            }
            last_at = Some(observed.at);
            let raised = watch.engine.push(&observed);
            watch.raise(tenant, raised);
        }
        if let Some(at) = last_at {
            let ended = watch.engine.flush(at);
            watch.raise(tenant, ended);
        }
        let reached = entries.last().map_or(0, |(seq, _)| seq + 1);
        // Caught up (nothing after this batch yet): every alert event written so far has been
        // read, so what is pending is new. Appended before the cursor is published, so that a
        // reader who waits for the monitor to pass an entry finds the alerts it raised.
        if log.size(tenant).is_ok_and(|size| size <= reached) {
            self.emit(log, tenant);
        }
        Ok(reached)
    }

    fn idle(&mut self, log: &dyn Store) {
        let now = self.clock.now().unix_micros()
            - i64::try_from(GRACE.as_micros()).expect("a small duration");
        let names: Vec<String> = self.tenants.keys().cloned().collect();
        for tenant in names {
            let watch = self.tenant(&tenant);
            let ended = watch.engine.flush(now);
            watch.raise(&tenant, ended);
            self.emit(log, &tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::testing::with_acme;
    use sealtrail_core::event::Event;

    fn failure(actor: &str) -> Submission {
        Submission {
            event: Event::from_owned_value(serde_json::json!({
                "action": "auth.login",
                "activity": "login",
                "outcome": "failure",
                "actor": {"id": actor, "type": "user"},
            }))
            .unwrap(),
            idempotency_key: None,
        }
    }

    /// Alert `n` of a rule, over the seqs `n * 10 ..= n * 10 + 4`.
    fn nth_alert(n: u64) -> Alert {
        Alert {
            rule: "failed-logins-per-user".to_string(),
            severity: crate::monitor::rules::Severity::Warning,
            key: format!("actor={n}"),
            window_start: 0,
            window_end: 1,
            count: 5,
            seqs: (n * 10..=n * 10 + 4).collect(),
        }
    }

    /// What a read-back does to the pending list: thousands of alerts raised, most of them met
    /// in the log afterwards (an instance without the lease meets every one). Each is looked
    /// up by id, the list keeps only what is still pending (within twice that, plus 64), in
    /// the order raised, and an alert met in the log is never pending again.
    #[test]
    fn pending_alerts_are_found_by_id_and_the_list_stays_bounded_by_what_is_pending() {
        let mut watch = TenantWatch {
            engine: Engine::new(Vec::new()),
            pending: Vec::new(),
            pending_ids: HashSet::new(),
            recorded: HashSet::new(),
        };
        let count = 5_000;
        for n in 0..count {
            watch.raise("acme", vec![nth_alert(n)]);
            // Raised twice (a second read of the same episode): pending once.
            watch.raise("acme", vec![nth_alert(n)]);
        }
        assert_eq!(watch.pending.len(), count as usize);
        assert_eq!(watch.pending_ids.len(), count as usize);
        // Every alert but each hundredth is met in the log.
        for n in (0..count).filter(|n| n % 100 != 0) {
            watch.met_in_log(alert_id("acme", &nth_alert(n)));
            assert!(
                watch.pending.len() <= 2 * watch.pending_ids.len() + 65,
                "{} entries for {} pending",
                watch.pending.len(),
                watch.pending_ids.len()
            );
        }
        let still: Vec<String> = watch
            .pending
            .iter()
            .filter(|(id, _)| watch.pending_ids.contains(id))
            .map(|(_, alert)| alert.key.clone())
            .collect();
        let expected: Vec<String> = (0..count)
            .step_by(100)
            .map(|n| format!("actor={n}"))
            .collect();
        assert_eq!(still, expected);
        // Met in the log, an alert raised again is not pending again.
        watch.raise("acme", vec![nth_alert(1)]);
        assert!(!watch.pending_ids.contains(&alert_id("acme", &nth_alert(1))));
        assert_eq!(watch.pending_ids.len(), expected.len());
    }

    fn alerts(dir: &std::path::Path) -> Vec<AlertRecord> {
        let log = Location::new(dir, None).open_reader().unwrap();
        crate::monitor::list::scan(log.as_ref(), "acme").unwrap()
    }

    /// Runs a monitor until it has evaluated the whole log and gone idle once, then stops it.
    async fn run_once(dir: &std::path::Path, ledger: &Ledger) {
        let location = Location::new(dir, None);
        let monitor = Monitor::start(
            &location,
            ledger.clone(),
            MonitorSettings::default(),
            Clock::system(),
        )
        .unwrap();
        let size = location.open_reader().unwrap().size("acme").unwrap();
        monitor
            .watermarks()
            .wait_for("acme", size - 1, Duration::from_secs(20))
            .await
            .unwrap();
        // Caught up means its pending alerts were offered to the writer in the same apply;
        // a few idle rounds more must add nothing.
        tokio::time::sleep(Duration::from_millis(800)).await;
        monitor.stop();
    }

    /// Events that arrived while no monitor ran raise their alert when one starts (nothing
    /// is lost); a monitor started again over the same log finds the alert's event and
    /// appends nothing (nothing is repeated); new events after the restart still count.
    #[tokio::test]
    async fn a_restart_neither_loses_nor_repeats_an_alert() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = with_acme(dir.path()).await;
        ledger
            .append("acme", (0..12).map(|_| failure("dr-kim")).collect())
            .await
            .unwrap();
        assert!(alerts(dir.path()).is_empty());

        run_once(dir.path(), &ledger).await;
        let first = alerts(dir.path());
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].rule, "failed-logins-per-user");
        assert_eq!(first[0].seqs, (0..10).collect::<Vec<u64>>());
        assert_eq!(first[0].seq, 12);

        run_once(dir.path(), &ledger).await;
        assert_eq!(alerts(dir.path()), first, "a restart appended again");

        ledger
            .append("acme", (0..10).map(|_| failure("dr-lee")).collect())
            .await
            .unwrap();
        run_once(dir.path(), &ledger).await;
        let both = alerts(dir.path());
        assert_eq!(both.len(), 2, "{both:?}");
        assert_eq!(both[0], first[0]);
        assert_eq!(both[1].key, "actor=dr-lee");
        assert_eq!(both[1].seqs, (13..23).collect::<Vec<u64>>());
        ledger.shutdown();
    }

    /// Alerts raised together are appended together: one group commit for all of them (their
    /// entries share the group's `received_at`), in the order raised, rather than one commit
    /// each, which kept the monitor from reading the log for as long as they all took.
    #[tokio::test]
    async fn alerts_raised_together_are_appended_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = with_acme(dir.path()).await;
        let actors = 40;
        ledger
            .append(
                "acme",
                (0..actors)
                    .flat_map(|n| (0..10).map(move |_| failure(&format!("user-{n:02}"))))
                    .collect(),
            )
            .await
            .unwrap();
        run_once(dir.path(), &ledger).await;
        let raised = alerts(dir.path());
        // One per user, and the failures of all of them together make a system-wide burst.
        let per_user: Vec<&str> = raised
            .iter()
            .filter(|a| a.rule == "failed-logins-per-user")
            .map(|a| a.key.as_str())
            .collect();
        let expected: Vec<String> = (0..actors).map(|n| format!("actor=user-{n:02}")).collect();
        assert_eq!(per_user, expected, "{raised:?}");
        assert!(raised.len() > actors, "{raised:?}");
        let events = 10 * actors as u64;
        let seqs: Vec<u64> = raised.iter().map(|a| a.seq).collect();
        assert_eq!(
            seqs,
            (events..events + raised.len() as u64).collect::<Vec<u64>>()
        );
        let log = Location::new(dir.path(), None).open_reader().unwrap();
        let received: HashSet<String> = log
            .entries("acme", events, u64::MAX, raised.len())
            .unwrap()
            .into_iter()
            .map(|(_, row)| {
                let entry: serde_json::Value = serde_json::from_slice(&row.unwrap()).unwrap();
                entry["received_at"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(received.len(), 1, "alerts committed apart: {received:?}");
        ledger.shutdown();
    }
}
