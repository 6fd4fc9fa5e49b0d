//! One shutdown signal for the whole service, and the one set of background work it stops.
//!
//! A running service has work that is not a request: the background verifier (a tokio task),
//! the followers of the log (threads of their own) and the ledger's writer thread. Each used to
//! be started and stopped by hand, in an order that only `app.rs` knew. [`Tasks`] owns them all
//! instead: async tasks are spawned into it and get a [`Shutdown`] to watch, and threads are
//! registered with the blocking call that stops them. [`Tasks::stop`] then sends the signal once,
//! waits for every task to notice it and finish, and stops the threads in the reverse order of
//! their registration — so what was started first (the writer, which everything else feeds or
//! reads) stops last, after everything that might still hand it work, and signs the final
//! checkpoints.
//!
//! This is the shape of mini-redis's shutdown: a broadcast to say "stop" (here a `watch`
//! channel, so a task that starts watching late still sees it), and waiting for every holder to
//! finish before the process goes on.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// A task's view of the shutdown signal. Cloning is cheap; every clone sees the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether shutdown has been signalled.
    pub fn is_signalled(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown is signalled (at once if it already was). A task uses it in a
    /// `tokio::select!` beside its own work, so that it stops between units of work rather
    /// than being aborted in the middle of one.
    pub async fn signalled(&mut self) {
        // The sender lives in `Tasks` until it has signalled, so the channel cannot close
        // before the signal; should it, that is a shutdown too.
        let _ = self.receiver.wait_for(|stopping| *stopping).await;
    }
}

/// A thread's stop call, run on the blocking pool when the service stops.
type Stop = Box<dyn FnOnce() + Send + 'static>;

/// Every background task and thread of a running service; see the module docs.
pub struct Tasks {
    /// The one signal; `true` once shutdown has begun.
    signal: watch::Sender<bool>,
    /// The async tasks, each watching a [`Shutdown`].
    tasks: JoinSet<()>,
    /// The threads' stop calls, by name, in the order they were registered.
    stops: Vec<(&'static str, Stop)>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks::new()
    }
}

impl Tasks {
    pub fn new() -> Tasks {
        let (signal, _) = watch::channel(false);
        Tasks {
            signal,
            tasks: JoinSet::new(),
            stops: Vec::new(),
        }
    }

    /// A view of the signal, for work started outside [`Tasks::spawn`] (the HTTP server's
    /// graceful shutdown, say).
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            receiver: self.signal.subscribe(),
        }
    }

    /// Runs `task` until it returns; `make` gets the [`Shutdown`] it must watch and stop on.
    pub fn spawn<F, Fut>(&mut self, make: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = make(self.shutdown());
        self.tasks.spawn(task);
    }

    /// Registers a thread by the blocking call that stops it (and waits for it). Stop calls
    /// run in the reverse order of registration: register what others depend on first.
    pub fn on_stop(&mut self, name: &'static str, stop: impl FnOnce() + Send + 'static) {
        self.stops.push((name, Box::new(stop)));
    }

    /// Signals shutdown, waits for every task to finish, then stops the threads, last
    /// registered first. A task that panicked is logged; the others still stop.
    pub async fn stop(mut self) {
        // `send_replace` stores the value even when no task is watching (yet).
        self.signal.send_replace(true);
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a background task failed while stopping");
            }
        }
        while let Some((name, stop)) = self.stops.pop() {
            if let Err(error) = tokio::task::spawn_blocking(stop).await {
                tracing::error!(thread = name, %error, "a background thread failed to stop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn tasks_finish_before_threads_stop_and_threads_stop_in_reverse_order() {
        let events = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut tasks = Tasks::new();
        for name in ["writer", "indexer"] {
            let events = events.clone();
            tasks.on_stop(name, move || {
                events.lock().unwrap().push(format!("stop {name}"))
            });
        }
        let seen = events.clone();
        tasks.spawn(|mut shutdown| async move {
            let mut ticks = 0;
            loop {
                tokio::select! {
                    () = shutdown.signalled() => break,
                    () = tokio::time::sleep(Duration::from_millis(5)) => ticks += 1,
                }
            }
            assert!(shutdown.is_signalled());
            seen.lock()
                .unwrap()
                .push(format!("verifier stopped after {} ticks", ticks.min(1)));
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.stop().await;
        assert_eq!(
            *events.lock().unwrap(),
            [
                "verifier stopped after 1 ticks",
                "stop indexer",
                "stop writer"
            ]
        );
    }

    #[tokio::test]
    async fn a_task_that_starts_watching_after_the_signal_still_sees_it() {
        let tasks = Tasks::new();
        let mut late = tasks.shutdown();
        tasks.stop().await;
        assert!(late.is_signalled());
        // Resolves at once instead of waiting for a signal that already came.
        tokio::time::timeout(Duration::from_secs(5), late.signalled())
            .await
            .expect("an earlier signal is seen");
    }
}
