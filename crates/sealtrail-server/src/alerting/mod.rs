//! Monitoring on the server: the follower that runs the monitoring rules over every tenant's
//! committed log and appends the alerts they raise ([`watch`]). The rules and their
//! evaluation are [`crate::monitor`], which knows nothing of the writer, so the configuration
//! can name rules without depending on the server's moving parts.

pub mod watch;
pub mod webhooks;
