//! The process's file-descriptor budget: the open-file limit is raised to its hard limit at
//! start, and client connections get what that leaves after a reserve for everything else.
//!
//! Every client connection is a descriptor, and so is every store file the service needs to
//! keep working: the database and its WAL and shared-memory files for each pooled connection,
//! the query index's, the spool, key files, SQLite's temporary files. Without a cap, idle
//! sockets alone can take the last descriptor (with the common soft limit of 1,024, about a
//! thousand are enough), and then `accept` fails, checkpoints cannot be signed, verification
//! cannot open the database and `/health` cannot answer. So the connection cap is derived from
//! the limit minus [`RESERVED_DESCRIPTORS`], and a configured cap that would eat into the
//! reserve is refused at start rather than found out under attack.
//!
//! The limit is read and raised through `rustix` (a safe wrapper of `getrlimit`/`setrlimit`),
//! so that this crate keeps `#![forbid(unsafe_code)]`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections. What the service holds open at
/// most, with the embedded store: two pools of up to [`crate::readers::MAX_READERS`] (16)
/// read connections, to the log and to the query index, of three files each (the database,
/// its WAL and its shared memory), 96; the writer's, the indexer's and the background
/// verifier's connections, about 12; the listening socket, standard streams and the async
/// runtime's own, about 8; the spool. On PostgreSQL each connection is one socket instead of
/// three files. The rest (about 140) is room for what is open only for a moment: key files,
/// SQLite's temporary files for large sorts, the verifier's scan of a whole log
/// (`GET /v1/verify`), a `tokens` command's connection on the same machine.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// The largest default connection cap, however high the open-file limit: each connection
/// costs memory too (hyper's buffers, 8 KiB to about 400 KiB while a long head is read), and
/// thousands of producers hold far fewer connections than that through their pools.
/// `max_connections` sets a higher cap explicitly.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// Where the soft limit goes when the hard limit is unlimited: Linux's default `nr_open`
/// (a soft limit above it is refused), then macOS's `OPEN_MAX`.
const UNLIMITED_TARGETS: [u64; 2] = [1 << 20, 10_240];

/// The open-file limit before and after [`raise_open_file_limit`]; `u64::MAX` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now: the hard limit, unless the system refused to raise it that far.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft limit on open files to the hard limit (the most an unprivileged process
/// may), and says what it was and is. The soft limit is often 1,024 for compatibility with
/// `select(2)`, which sealtrail does not use; the hard limit is what the administrator allows.
/// A limit the system refuses to raise is left as it was.
pub fn raise_open_file_limit() -> OpenFileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let before = current.unwrap_or(u64::MAX);
    let hard = maximum.unwrap_or(u64::MAX);
    let targets = match maximum {
        Some(hard) => vec![hard],
        None => UNLIMITED_TARGETS.to_vec(),
    };
    for target in targets.into_iter().filter(|&target| target > before) {
        let raised = Rlimit {
            current: Some(target),
            maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return OpenFileLimit {
                before,
                soft: target,
                hard,
            };
        }
    }
    OpenFileLimit {
        before,
        soft: before,
        hard,
    }
}

/// The most client connections a process whose soft limit is `soft` can hold while keeping
/// [`RESERVED_DESCRIPTORS`] for the rest; with a limit under twice the reserve, half of it.
pub fn connection_budget(soft: u64) -> u64 {
    if soft >= 2 * RESERVED_DESCRIPTORS {
        soft - RESERVED_DESCRIPTORS
    } else {
        soft / 2
    }
}

/// A configured `max_connections` that leaves too few descriptors for the store.
#[derive(Debug, thiserror::Error)]
#[error(
    "max_connections {configured} leaves too few of this process's {soft} open files (ulimit -n) for the store and its files: at most {budget} connections fit beside the {RESERVED_DESCRIPTORS} kept for them; raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
)]
pub struct TooManyConnections {
    pub configured: usize,
    pub soft: u64,
    pub budget: u64,
}

/// The connection cap: `configured` when the budget allows it, else the budget up to
/// [`DEFAULT_MAX_CONNECTIONS`].
pub fn max_connections(
    configured: Option<usize>,
    limit: OpenFileLimit,
) -> Result<usize, TooManyConnections> {
    let budget = connection_budget(limit.soft).max(1);
    match configured {
        Some(configured) if configured as u64 > budget => Err(TooManyConnections {
            configured,
            soft: limit.soft,
            budget,
        }),
        Some(configured) => Ok(configured),
        None => Ok(usize::try_from(budget.min(DEFAULT_MAX_CONNECTIONS)).unwrap_or(usize::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64) -> OpenFileLimit {
        OpenFileLimit {
            before: soft,
            soft,
            hard: soft,
        }
    }

    /// The soft limit is lowered (as a shell's `ulimit -Sn 1024` would have it), then raised
    /// back to the hard limit.
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let Rlimit { maximum, .. } = getrlimit(Resource::Nofile);
        let hard = maximum.unwrap_or(UNLIMITED_TARGETS[0]);
        let lowered = if hard > 1024 { 1024 } else { hard / 2 };
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum,
            },
        )
        .expect("an unprivileged process may lower its soft limit");

        let raised = raise_open_file_limit();

        assert_eq!(raised.before, lowered);
        assert!(raised.soft > lowered, "{raised:?}");
        if let Some(hard) = maximum {
            assert_eq!(raised.soft, hard);
            assert_eq!(raised.hard, hard);
        }
        assert_eq!(getrlimit(Resource::Nofile).current, Some(raised.soft));
        // Raising again changes nothing.
        let again = raise_open_file_limit();
        assert_eq!((again.before, again.soft), (raised.soft, raised.soft));
    }

    #[test]
    fn the_connection_cap_leaves_the_reserve_to_the_store() {
        assert_eq!(max_connections(None, limit(1024)).unwrap(), 768);
        assert_eq!(max_connections(None, limit(20_000)).unwrap(), 4096);
        assert_eq!(max_connections(None, limit(u64::MAX)).unwrap(), 4096);
        // Under twice the reserve, half the descriptors are kept.
        assert_eq!(max_connections(None, limit(300)).unwrap(), 150);
        assert_eq!(max_connections(None, limit(1)).unwrap(), 1);
        assert_eq!(max_connections(Some(768), limit(1024)).unwrap(), 768);
        assert_eq!(
            max_connections(Some(10_000), limit(20_000)).unwrap(),
            10_000
        );
        let refused = max_connections(Some(769), limit(1024)).unwrap_err();
        assert_eq!((refused.budget, refused.soft), (768, 1024));
        let message = refused.to_string();
        assert!(
            message.contains("max_connections 769") && message.contains("ulimit -n"),
            "{message}"
        );
    }
}
