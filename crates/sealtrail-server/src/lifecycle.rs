//! sealtrail's own start and stop, recorded in the `_system` log: `sealtrail.server.started`
//! when a server is ready to serve and `sealtrail.server.stopped` when it stops gracefully
//! (SIGINT, SIGTERM), each naming the process's instance id (a UUIDv7 drawn at start, also
//! its `source.instance`), the host name and sealtrail's version, and whether it mirrors
//! events to stdout as `AUDIT:` lines (`audit_stdout`: the gap report's compensating
//! records). A `started` that follows a
//! `started` of the same host without a `stopped` between them means the server before it
//! crashed or was killed. The gap detector (`crate::gaps`) shows the records that fall in a
//! time gap, so that a gap can be put down to sealtrail's own downtime.

use sealtrail_core::event::Event;
pub use sealtrail_store::gaps::{SERVER_STARTED, SERVER_STOPPED};

use crate::ledger::{Ledger, LedgerError, SYSTEM_TENANT, Submission};

/// Who this process is, for its start and stop records.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub hostname: String,
    pub version: &'static str,
    /// Whether this server runs with `--audit-stdout`.
    pub audit_stdout: bool,
}

impl Instance {
    /// A new instance id, and the machine's host name.
    pub fn current(audit_stdout: bool) -> Instance {
        Instance {
            id: uuid::Uuid::now_v7().to_string(),
            hostname: crate::host::hostname(),
            version: env!("CARGO_PKG_VERSION"),
            audit_stdout,
        }
    }

    fn event(&self, action: &str) -> Result<Event, sealtrail_core::event::EventError> {
        let hostname: String = self.hostname.chars().take(256).collect();
        Event::from_owned_value(serde_json::json!({
            "action": action,
            "activity": "admin",
            "outcome": "success",
            "actor": {"id": "sealtrail", "type": "system"},
            "source": {"app": "sealtrail", "instance": self.id},
            "details": {
                "instance": self.id,
                "hostname": hostname,
                "version": self.version,
                "pid": std::process::id(),
                "audit_stdout": self.audit_stdout,
            },
        }))
    }

    /// Appends `sealtrail.server.started` (or `stopped`) to the `_system` log.
    pub async fn record(&self, ledger: &Ledger, action: &str) -> Result<(), LedgerError> {
        let event = self
            .event(action)
            .map_err(crate::ledger::Fault::AdminEvent)?;
        ledger
            .append(
                SYSTEM_TENANT,
                vec![Submission {
                    event,
                    idempotency_key: None,
                }],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_the_instance_host_and_version() {
        let instance = Instance::current(true);
        let event = instance.event(SERVER_STARTED).unwrap();
        assert_eq!(event.action, SERVER_STARTED);
        let source = event.source.unwrap();
        assert_eq!(source.instance.as_deref(), Some(instance.id.as_str()));
        assert_eq!(source.app.as_deref(), Some("sealtrail"));
        assert_eq!(event.details["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(event.details["hostname"], instance.hostname.as_str());
        assert!(!instance.hostname.is_empty());
        assert_eq!(event.details["audit_stdout"], true);
    }
}
