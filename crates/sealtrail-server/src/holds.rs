//! Legal holds: what must not be pruned, whatever its age, until released.
//!
//! A hold is nothing but its record in the `_system` log: `sealtrail.hold.added` (the tenant,
//! an optional window of `received_at` times it covers — the whole log without one — the
//! reason, the actor) and `sealtrail.hold.released` (naming the hold by the id of its
//! `added` entry, with the reason and the actor). The holds in force are read from the log
//! ([`holds`]), so they are as tamper-evident as any entry, survive every restart and are the
//! same for every instance sharing a store; there is no table to keep in step with the log.
//! Adding and releasing are single appends through the write path, so each is audited by
//! construction.

use sealtrail_core::Timestamp;
use sealtrail_core::canonical::Entry;
use sealtrail_core::event::Event;
use sealtrail_store::{Store, StoreError};
use serde::Serialize;

use crate::tenant::SYSTEM_TENANT;

pub const HOLD_ADDED: &str = "sealtrail.hold.added";
pub const HOLD_RELEASED: &str = "sealtrail.hold.released";

/// The longest reason kept (the event schema's bound on free text).
pub const MAX_REASON: usize = 4096;

/// A hold, as its records in `_system` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Hold {
    /// The id of its `sealtrail.hold.added` entry.
    pub id: String,
    pub tenant: String,
    /// The window of `received_at` times it covers (`from` inclusive, `to` exclusive); both
    /// `None`: the whole log.
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: String,
    pub added_at: String,
    pub added_by: String,
    /// The `_system` seq of its `added` entry.
    pub seq: u64,
    pub released: Option<Release>,
}

/// A hold's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Release {
    pub at: String,
    pub by: String,
    pub reason: String,
}

impl Hold {
    /// Whether the hold covers an entry received at `received_at` (RFC 3339, the store's
    /// spelling): in force, and inside its window.
    pub fn covers(&self, received_at: &str) -> bool {
        self.released.is_none()
            && self.from.as_deref().is_none_or(|from| received_at >= from)
            && self.to.as_deref().is_none_or(|to| received_at < to)
    }
}

/// Why a hold request is refused: the field and the rule, as the API names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct HoldRefusal {
    pub field: &'static str,
    pub rule: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, rule: &'static str, message: impl Into<String>) -> HoldRefusal {
    HoldRefusal {
        field,
        rule,
        message: message.into(),
    }
}

fn reason_checked(reason: &str) -> Result<&str, HoldRefusal> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(refuse(
            "reason",
            "required",
            "say why the hold is placed or released (a matter, a request, a regulation)",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(refuse(
            "reason",
            "max_length",
            format!("at most {MAX_REASON} characters"),
        ));
    }
    Ok(reason)
}

fn time_checked(field: &'static str, text: Option<&str>) -> Result<Option<String>, HoldRefusal> {
    match text {
        None => Ok(None),
        Some(text) => Timestamp::parse(text)
            .map(|t| Some(t.to_rfc3339()))
            .map_err(|e| refuse(field, "timestamp", format!("not an RFC 3339 time: {e}"))),
    }
}

/// The `sealtrail.hold.added` event for a hold on `tenant` (which the caller has checked
/// exists), over `[from, to)` when given.
pub fn added_event(
    tenant: &str,
    from: Option<&str>,
    to: Option<&str>,
    reason: &str,
    actor: &str,
) -> Result<Event, HoldRefusal> {
    if tenant == SYSTEM_TENANT {
        return Err(refuse(
            "tenant",
            "reserved",
            "the _system log is never pruned; holds are for tenants' logs",
        ));
    }
    let reason = reason_checked(reason)?;
    let (from, to) = (time_checked("from", from)?, time_checked("to", to)?);
    if let (Some(f), Some(t)) = (&from, &to)
        && f >= t
    {
        return Err(refuse(
            "from",
            "range",
            format!("must be before to ({f} is not before {t})"),
        ));
    }
    let document = serde_json::json!({
        "action": HOLD_ADDED,
        "activity": "admin",
        "outcome": "success",
        "actor": {"id": actor, "type": "user"},
        "targets": [{"type": "tenant", "id": tenant}],
        "details": {"tenant": tenant, "from": from, "to": to, "reason": reason},
    });
    Event::from_value(&document).map_err(|e| refuse("", "invalid", e.to_string()))
}

/// The `sealtrail.hold.released` event for `hold`.
pub fn released_event(hold: &Hold, reason: &str, actor: &str) -> Result<Event, HoldRefusal> {
    let reason = reason_checked(reason)?;
    let document = serde_json::json!({
        "action": HOLD_RELEASED,
        "activity": "admin",
        "outcome": "success",
        "actor": {"id": actor, "type": "user"},
        "targets": [{"type": "hold", "id": hold.id}, {"type": "tenant", "id": hold.tenant}],
        "details": {"hold_id": hold.id, "tenant": hold.tenant, "reason": reason},
    });
    Event::from_value(&document).map_err(|e| refuse("", "invalid", e.to_string()))
}

/// Every hold the `_system` log records, in the order they were added, each with its release
/// if it has one.
pub fn holds(store: &dyn Store) -> Result<Vec<Hold>, StoreError> {
    const BATCH: usize = 4096;
    let size = store.size(SYSTEM_TENANT)?;
    let mut holds: Vec<Hold> = Vec::new();
    let mut from = 0;
    while from < size {
        let rows = store.entries(SYSTEM_TENANT, from, size, BATCH)?;
        let Some(&(last, _)) = rows.last() else { break };
        for (seq, entry) in &rows {
            let Ok(bytes) = entry else { continue };
            // Canonical entries begin with their action: most are skipped unparsed.
            if !bytes.starts_with(br#"{"action":"sealtrail.hold."#) {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let details = &value["details"];
            match value["action"].as_str() {
                Some(HOLD_ADDED) => holds.push(Hold {
                    id: text(&value["id"]).unwrap_or_default(),
                    tenant: text(&details["tenant"]).unwrap_or_default(),
                    from: text(&details["from"]),
                    to: text(&details["to"]),
                    reason: text(&details["reason"]).unwrap_or_default(),
                    added_at: text(&value["received_at"]).unwrap_or_default(),
                    added_by: text(&value["actor"]["id"]).unwrap_or_default(),
                    seq: *seq,
                    released: None,
                }),
                Some(HOLD_RELEASED) => {
                    let id = details["hold_id"].as_str().unwrap_or_default();
                    if let Some(hold) = holds
                        .iter_mut()
                        .find(|h| h.id == id && h.released.is_none())
                    {
                        hold.released = Some(Release {
                            at: text(&value["received_at"]).unwrap_or_default(),
                            by: text(&value["actor"]["id"]).unwrap_or_default(),
                            reason: text(&details["reason"]).unwrap_or_default(),
                        });
                    }
                }
                _ => {}
            }
        }
        from = last + 1;
    }
    Ok(holds)
}

/// A hold that stops pruning, and where.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldRange {
    pub hold_id: String,
    pub reason: String,
    /// The first seq it covers.
    pub first_seq: u64,
}

/// Why the entries a hold covers could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("entry {seq} of {tenant} cannot be read ({why}); `sealtrail verify` first")]
    Unreadable {
        tenant: String,
        seq: u64,
        why: String,
    },
}

/// The first seq in `[from, size)` whose entry was received at or after `at` (`size` when none).
pub fn first_received_from(
    store: &dyn Store,
    tenant: &str,
    from: u64,
    size: u64,
    at: &Timestamp,
) -> Result<u64, CoverError> {
    let (mut lo, mut hi) = (from.min(size), size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let unreadable = |why: String| CoverError::Unreadable {
            tenant: tenant.to_string(),
            seq: mid,
            why,
        };
        let bytes = store
            .entry(tenant, mid)?
            .ok_or_else(|| unreadable("it is missing".into()))?;
        let entry = Entry::parse(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if entry.server.received_at < *at {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The holds in force on `tenant` that cover entries in `from..to`, each with the first seq
/// it covers there.
pub fn held_ranges(
    store: &dyn Store,
    tenant: &str,
    from: u64,
    to: u64,
    holds: &[Hold],
) -> Result<Vec<HeldRange>, CoverError> {
    let mut held = Vec::new();
    for hold in holds
        .iter()
        .filter(|h| h.tenant == tenant && h.released.is_none())
    {
        let start = match &hold.from {
            Some(at) => Timestamp::parse(at)
                .map(|t| first_received_from(store, tenant, from, to, &t))
                .unwrap_or(Ok(from))?,
            None => from,
        };
        let end = match &hold.to {
            Some(at) => Timestamp::parse(at)
                .map(|t| first_received_from(store, tenant, from, to, &t))
                .unwrap_or(Ok(to))?,
            None => to,
        };
        if start < end {
            held.push(HeldRange {
                hold_id: hold.id.clone(),
                reason: hold.reason.clone(),
                first_seq: start,
            });
        }
    }
    Ok(held)
}
