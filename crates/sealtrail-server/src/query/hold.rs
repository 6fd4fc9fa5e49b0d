//! A test hook, built only with the feature `test-hooks` (which the server's own tests turn
//! on): [`SearchHold`] stops every admitted search once it has found its seqs in the index,
//! on the store connection it reads the page's entries with, until the test lets it go. A
//! held search so keeps everything a running search holds — its place among the searches,
//! a blocking thread, a store connection — for exactly as long as the test needs. Tests use
//! it to fill the search side deterministically and show that ingest, `/health` and
//! checkpoints still answer, and which further searches are refused. Without the feature
//! none of this exists.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Holds searches while held; cloning shares the hold.
#[derive(Clone, Default)]
pub struct SearchHold {
    state: Arc<(Mutex<HoldState>, Condvar)>,
}

#[derive(Default)]
struct HoldState {
    held: bool,
    /// Searches stopped at the hold right now.
    waiting: usize,
}

impl SearchHold {
    /// From now on, every admitted search stops before it reads its page's entries, until
    /// the guard is dropped. A guard, so that a test that fails while searches are stopped
    /// lets them go as it unwinds; the runtime it ran on waits for them to end.
    pub fn hold(&self) -> Held {
        self.lock().held = true;
        Held { hold: self.clone() }
    }

    /// Lets every stopped search go on, and later ones pass.
    fn release(&self) {
        self.lock().held = false;
        self.state.1.notify_all();
    }

    /// How many searches are stopped at the hold right now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Blocks until at least `count` searches are stopped at the hold, at most `timeout`;
    /// returns how many are. Blocking: call it from a blocking thread.
    pub fn wait_for_waiting(&self, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.waiting < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.state.1.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.waiting
    }

    /// Called by a search on the blocking pool: returns at once unless held, else when
    /// released.
    pub(crate) fn pass(&self) {
        let mut state = self.lock();
        if !state.held {
            return;
        }
        state.waiting += 1;
        self.state.1.notify_all();
        while state.held {
            state = self
                .state
                .1
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.waiting -= 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HoldState> {
        // A test that failed while holding the lock must still be able to release searches.
        self.state
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Searches are stopped while this lives ([`SearchHold::hold`]).
#[must_use = "searches are released when the guard is dropped"]
pub struct Held {
    hold: SearchHold,
}

impl Held {
    /// Lets the stopped searches go on.
    pub fn release(self) {}
}

impl Drop for Held {
    fn drop(&mut self) {
        self.hold.release();
    }
}
