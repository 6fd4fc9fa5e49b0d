//! Refused attempts at the admin API, recorded in the `_system` log without letting anyone
//! flood it.
//!
//! A request to an admin route that does not get through — no token, an unknown or revoked
//! one, a token without the `admin` scope or of another tenant — and a request for the
//! `_system` log by a token without the `admin` scope are appended to the `_system` log as
//! `sealtrail.admin.refused` ([`Ledger::record_refusal`]), so that the log of admin actions
//! also shows who tried and failed: the route, the method, the reason, the token's id when the
//! store knows it, and the address the request came from. Never the secret presented, nor its
//! hash.
//!
//! Whoever can reach the port can cause such a record without any credential, so records are
//! limited ([`Limiter`]): at most [`PER_SOURCE`] per source address and [`TOTAL`] in all per
//! [`WINDOW`]. An attempt beyond either limit is answered as usual but not recorded; it is
//! counted, and the next record from the same address says how many went unrecorded before
//! it (`details.suppressed`). Every attempt, recorded or not, is also counted in
//! `sealtrail_admin_refusals_total{outcome}`, so a flood shows in the metrics whether or not
//! its source ever comes back.
//!
//! The source is the peer address of the connection. Behind a reverse proxy that is the
//! proxy's for every request, so the per-source limit becomes a limit for all; a header such as
//! `X-Forwarded-For` is not used, because any client can send one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ledger::{Ledger, RefusedAttempt};
use crate::metrics::{self, RefusalOutcome};

/// How long the limits count over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Records per source address per [`WINDOW`], at most.
pub const PER_SOURCE: u32 = 10;
/// Records from all sources together per [`WINDOW`], at most: a spread of addresses cannot
/// flood the log either.
pub const TOTAL: u32 = 100;
/// Source addresses tracked at once, at most. A new address beyond it is not recorded until
/// the window ends (it is still counted in the metrics).
const MAX_SOURCES: usize = 4096;

/// Records refused admin attempts through the ledger, within the limits. Cheap to clone.
#[derive(Clone)]
pub struct Refusals {
    ledger: Ledger,
    limiter: Arc<Mutex<Limiter>>,
}

impl Refusals {
    pub fn new(ledger: Ledger) -> Refusals {
        Refusals {
            ledger,
            limiter: Arc::new(Mutex::new(Limiter::new(Instant::now()))),
        }
    }

    /// Records `attempt` in the `_system` log unless its source is over the limits; returns
    /// once the record is durable. A failure to record is logged, never passed on: the
    /// request is refused either way, and the refusal is what its caller must hear.
    pub async fn record(&self, attempt: RefusedAttempt) {
        let source = attempt.client;
        let admitted = self
            .limiter
            .lock()
            .expect("refusal limiter lock")
            .admit(source, Instant::now());
        let Some(suppressed) = admitted else {
            metrics::admin_refused(RefusalOutcome::Suppressed);
            return;
        };
        match self.ledger.record_refusal(&attempt, suppressed).await {
            Ok(()) => metrics::admin_refused(RefusalOutcome::Recorded),
            Err(error) => {
                metrics::admin_refused(RefusalOutcome::Failed);
                tracing::error!(
                    %error,
                    method = %attempt.method,
                    route = %attempt.route,
                    reason = %attempt.reason,
                    "cannot record a refused admin attempt in the _system log"
                );
            }
        }
    }
}

/// How many refusals each source may still have recorded in the current window.
///
/// Fixed windows of [`WINDOW`]: simple to reason about, and at worst twice the limit over a
/// window's length straddling two windows, which is still a bounded trickle.
#[derive(Debug)]
pub struct Limiter {
    window_started: Instant,
    /// Records in the current window, from every source.
    total: u32,
    /// Per source (`None`: the address is unknown): records in the current window, and
    /// attempts not recorded since its last record.
    sources: HashMap<Option<IpAddr>, Source>,
}

#[derive(Debug, Default)]
struct Source {
    recorded: u32,
    suppressed: u64,
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            window_started: now,
            total: 0,
            sources: HashMap::new(),
        }
    }

    /// Whether a refusal from `source` at `now` is recorded: `Some(n)` when it is, `n` being
    /// the attempts from that source not recorded since its last record; `None` when it is
    /// over a limit (and is counted towards the next record's `n`).
    pub fn admit(&mut self, source: Option<IpAddr>, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window_started) >= WINDOW {
            self.window_started = now;
            self.total = 0;
            // Sources with unreported attempts are kept, so that their next record says so;
            // unless so many are that new sources could not get in (a flood from many
            // addresses), whose counts are then left to the metrics.
            self.sources.retain(|_, source| source.suppressed > 0);
            if self.sources.len() > MAX_SOURCES / 2 {
                self.sources.clear();
            }
            for source in self.sources.values_mut() {
                source.recorded = 0;
            }
        }
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            return None;
        }
        let entry = self.sources.entry(source).or_default();
        if entry.recorded >= PER_SOURCE || self.total >= TOTAL {
            entry.suppressed += 1;
            return None;
        }
        entry.recorded += 1;
        self.total += 1;
        Some(std::mem::take(&mut entry.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn a_source_gets_its_records_per_window_and_then_the_count_of_what_it_missed() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let attacker = address(1);
        for _ in 0..PER_SOURCE {
            assert_eq!(limiter.admit(attacker, start), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(limiter.admit(attacker, start + WINDOW / 2), None);
        }
        // Another address is not held back by the first one's flood.
        assert_eq!(limiter.admit(address(2), start + WINDOW / 2), Some(0));
        // The next window: the first record says how many went unrecorded.
        assert_eq!(limiter.admit(attacker, start + WINDOW), Some(7));
        assert_eq!(limiter.admit(attacker, start + WINDOW), Some(0));
    }

    #[test]
    fn many_sources_together_get_at_most_the_total_per_window() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        let recorded = (0..TOTAL * 2)
            .filter(|n| limiter.admit(address(*n), start).is_some())
            .count();
        assert_eq!(recorded, TOTAL as usize);
        // A source refused only for the total learns of it in its next record.
        assert_eq!(limiter.admit(address(TOTAL), start + WINDOW), Some(1));
    }

    #[test]
    fn sources_beyond_the_tracked_number_are_not_recorded_until_the_window_ends() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        for n in 0..MAX_SOURCES as u32 {
            // Past TOTAL these are suppressed, but each source is tracked.
            limiter.admit(address(n), start);
        }
        assert_eq!(limiter.sources.len(), MAX_SOURCES);
        assert_eq!(limiter.admit(address(MAX_SOURCES as u32), start), None);
        assert_eq!(limiter.sources.len(), MAX_SOURCES);
        // A new window starts over: so many sources with unreported attempts would keep
        // new ones out, so their counts are left to the metrics.
        assert_eq!(
            limiter.admit(address(MAX_SOURCES as u32), start + WINDOW),
            Some(0)
        );
        assert_eq!(limiter.sources.len(), 1);
    }
}
