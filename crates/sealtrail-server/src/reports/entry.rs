//! The fields of a committed entry the reports read, deserialized straight from the entry's
//! bytes (nothing else of the entry is kept), and the small helpers every report shares.
//!
//! Entries are sealtrail's canonical JSON, so every timestamp is spelled
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`: text order is time order, the day is the first 10
//! characters and the hour the first 13.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The action of a heartbeat: a producer saying it is alive, not activity.
pub use crate::gaps::HEARTBEAT_ACTION;

/// What the reports read of one entry.
#[derive(Debug, Clone, Deserialize)]
pub struct EntryView {
    pub seq: u64,
    pub action: String,
    #[serde(default)]
    pub activity: Option<String>,
    pub outcome: String,
    #[serde(default)]
    pub outcome_reason: Option<String>,
    #[serde(default)]
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub actor: ActorView,
    #[serde(default)]
    pub targets: Vec<TargetView>,
    #[serde(default)]
    pub context: Option<ContextView>,
    #[serde(default)]
    pub source: Option<SourceView>,
    #[serde(default)]
    pub disclosure: Option<DisclosureView>,
    #[serde(default)]
    pub details: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActorView {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TargetView {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContextView {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceView {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DisclosureView {
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub recipient_address: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl EntryView {
    /// Reads the fields out of an entry's bytes; `None` when they are not there (an entry
    /// sealtrail did not write).
    pub fn parse(bytes: &[u8]) -> Option<EntryView> {
        serde_json::from_slice(bytes).ok()
    }

    /// The event's time: `occurred_at`, else `received_at` (as the index and the gap
    /// detector measure it).
    pub fn event_time(&self) -> &str {
        self.occurred_at.as_deref().unwrap_or(&self.received_at)
    }

    pub fn ip(&self) -> Option<&str> {
        self.context.as_ref().and_then(|c| c.ip.as_deref())
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.context.as_ref().and_then(|c| c.user_agent.as_deref())
    }

    /// A string member of `details`.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }

    /// A string at `details.a.b`.
    pub fn detail_path(&self, outer: &str, inner: &str) -> Option<&str> {
        self.details.as_ref()?.get(outer)?.get(inner)?.as_str()
    }

    /// Each target as `type:id` (either part left empty when absent).
    pub fn target_labels(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    t.kind.as_deref().unwrap_or(""),
                    t.id.as_deref().unwrap_or("")
                )
            })
            .collect()
    }
}

/// A string or null.
pub fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.to_string()))
}
