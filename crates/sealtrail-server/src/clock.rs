//! The service's one source of wall-clock time.
//!
//! Entries get their `received_at`, checkpoints their `sealtrail-timestamp`, and tokens and
//! tenants their creation times from a [`Clock`]. Reading the time in one place means there is
//! one conversion to [`Timestamp`] (whole microseconds since the Unix epoch, UTC), and that a
//! test can hand the writer a [`ManualClock`] and know every time it will write, instead of
//! sleeping or matching times loosely.
//!
//! The clock may be set back (by an operator, or by a time service correcting it). Times
//! the service records must still keep the log's order, so the writer never lets them go
//! backwards: an entry's `received_at` is the later of this clock's reading and the previous
//! entry's, and a checkpoint's timestamp the later of it and the previous checkpoint's. While
//! the clock is behind, entries keep the previous time, and the writer warns once.
//!
//! Elapsed time (timeouts, back-off, rates) is measured with `std::time::Instant`, not with a
//! `Clock`: wall-clock time can jump when the system clock is set, and a deadline must not.
//! The exceptions are the token cache (`authn::TokenCache`) and the copy of the frozen
//! tenants (`freeze::Freezes`), which read the application's `Clock` so that tests can move
//! it by hand: each trusts what it read only while the clock reads between the read and the
//! end of the interval, so a jump either way costs an extra store read and never extends
//! trust.
//!
//! **Architecture invariant:** `sealtrail-core` never reads a clock; the service reads it here
//! and passes the `Timestamp` in.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealtrail_core::Timestamp;

/// Where the current time comes from. Cloning is cheap; clones of a manual clock share its
/// hand, so moving a [`ManualClock`] moves every clone given out.
#[derive(Debug, Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    System,
    /// Microseconds since the Unix epoch, set by the test that holds the [`ManualClock`].
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The operating system's clock.
    pub const fn system() -> Clock {
        Clock {
            source: Source::System,
        }
    }

    /// The current time, in whole microseconds.
    pub fn now(&self) -> Timestamp {
        let micros = match &self.source {
            // A clock set before 1970 reads as the epoch rather than failing: the write path
            // must not stop because of it, and times are compared only for ordering hints.
            Source::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            Source::Manual(micros) => micros.load(Ordering::SeqCst),
        };
        Timestamp::from_unix_micros(micros).expect("the clock is between 1970 and 9999")
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

/// A clock that stands still until it is moved, for tests of time-dependent behaviour.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock {
            micros: Arc::new(AtomicI64::new(at.unix_micros())),
        }
    }

    /// A [`Clock`] that reads this clock's hand, to give to the code under test.
    pub fn clock(&self) -> Clock {
        Clock {
            source: Source::Manual(self.micros.clone()),
        }
    }

    /// Sets the hand to `at` (backwards too: tests of clock skew need that).
    pub fn set(&self, at: Timestamp) {
        self.micros.store(at.unix_micros(), Ordering::SeqCst);
    }

    /// Moves the hand forward by `by`, to the microsecond.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_follow() {
        let start = Timestamp::parse("2026-11-23T10:00:00.123456Z").unwrap();
        let hand = ManualClock::new(start);
        let clock = hand.clock();
        let copy = clock.clone();
        assert_eq!(clock.now(), start);
        hand.advance(Duration::from_millis(1500));
        assert_eq!(copy.now().to_rfc3339(), "2026-11-23T10:00:01.623456Z");
        hand.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn the_system_clock_reads_the_time_of_day() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = Clock::system().now().unix_micros();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(before.as_micros() as i64 <= now && now <= after.as_micros() as i64);
    }
}
