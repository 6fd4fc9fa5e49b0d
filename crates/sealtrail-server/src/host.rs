//! The machine's host name, as sealtrail's own `_system` records carry it: the server's start
//! and stop records (`crate::lifecycle`) and the record of a drained spool
//! (`ledger::spooling`), so that with several servers on one store each record says whose it is.

/// The kernel's host name (else `$HOSTNAME`), or `unknown`; at most 256 characters.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().chars().take(256).collect::<String>())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
