//! Which entries an export keeps: the filters of `GET /v1/events`, checked on each entry as
//! it is read from the log (see the module docs of [`crate::export`] for why not the index).

use sealtrail_core::Timestamp;
use serde_json::Value;

use crate::index::push_text;

/// The filters of `GET /v1/events`, with the same meaning; absent filters match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Event time (`occurred_at`, else `received_at`) at or after.
    pub from: Option<Timestamp>,
    /// Event time before.
    pub to: Option<Timestamp>,
    /// `actor.id`.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub activity: Option<String>,
    pub outcome: Option<String>,
    /// With `target_id`, both must hold for the same target.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `context.ip` in its normal form (`IpAddr`'s display).
    pub ip: Option<String>,
    /// `source.app`.
    pub source: Option<String>,
    /// `q`: each word, as its lowercase tokens; every word must occur in the details' values
    /// as that sequence of tokens.
    pub words: Vec<Vec<String>>,
}

impl Filter {
    /// Sets `q`: `None` when it has no word with a letter or digit (it could match nothing).
    pub fn set_text(&mut self, q: &str) -> Option<()> {
        let words: Vec<Vec<String>> = q
            .split_whitespace()
            .map(tokens)
            .filter(|tokens| !tokens.is_empty())
            .collect();
        if words.is_empty() {
            return None;
        }
        self.words = words;
        Some(())
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the entry (parsed) matches every filter.
    pub fn matches(&self, entry: &Value) -> bool {
        if let Some(actor) = &self.actor
            && entry["actor"]["id"].as_str() != Some(actor)
        {
            return false;
        }
        let text_is = |field: &Option<String>, value: &Value| match field {
            Some(wanted) => value.as_str() == Some(wanted.as_str()),
            None => true,
        };
        if !text_is(&self.action, &entry["action"])
            || !text_is(&self.activity, &entry["activity"])
            || !text_is(&self.outcome, &entry["outcome"])
            || !text_is(&self.ip, &entry["context"]["ip"])
            || !text_is(&self.source, &entry["source"]["app"])
        {
            return false;
        }
        if (self.from.is_some() || self.to.is_some()) && !self.in_time(entry) {
            return false;
        }
        if (self.target_type.is_some() || self.target_id.is_some()) && !self.has_target(entry) {
            return false;
        }
        self.words.is_empty() || self.has_words(entry)
    }

    fn in_time(&self, entry: &Value) -> bool {
        let at = entry["occurred_at"]
            .as_str()
            .or_else(|| entry["received_at"].as_str())
            .and_then(|text| Timestamp::parse(text).ok());
        let Some(at) = at else { return false };
        self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at < to)
    }

    fn has_target(&self, entry: &Value) -> bool {
        let Some(targets) = entry["targets"].as_array() else {
            return false;
        };
        targets.iter().any(|target| {
            let is = |field: &Option<String>, value: &Value| {
                field
                    .as_deref()
                    .is_none_or(|wanted| value.as_str() == Some(wanted))
            };
            is(&self.target_type, &target["type"]) && is(&self.target_id, &target["id"])
        })
    }

    fn has_words(&self, entry: &Value) -> bool {
        let Some(details) = entry["details"].as_object() else {
            return false;
        };
        let mut text = String::new();
        details
            .values()
            .for_each(|value| push_text(value, &mut text));
        let haystack = tokens(&text);
        self.words.iter().all(|word| {
            haystack
                .windows(word.len())
                .any(|window| window == word.as_slice())
        })
    }
}

/// The tokens of a text as the index's tokenizer sees them: runs of letters and digits,
/// lowercased.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "id": "0190", "seq": 3, "received_at": "2026-11-23T10:00:05.000000Z",
            "occurred_at": "2026-11-23T10:00:00.000000Z",
            "action": "patient.record.read", "activity": "read", "outcome": "success",
            "actor": {"id": "u-1", "type": "user"},
            "targets": [{"type": "patient", "id": "p-9"}, {"type": "claim", "id": "c-1"}],
            "context": {"ip": "10.1.2.3"}, "source": {"app": "ehr"},
            "details": {"note": "Claim-123 reviewed", "n": 42}
        })
    }

    #[test]
    fn every_filter_matches_as_the_search_does() {
        let entry = entry();
        let mut filter = Filter::default();
        assert!(filter.is_empty() && filter.matches(&entry));
        filter.actor = Some("u-1".into());
        filter.action = Some("patient.record.read".into());
        filter.activity = Some("read".into());
        filter.outcome = Some("success".into());
        filter.ip = Some("10.1.2.3".into());
        filter.source = Some("ehr".into());
        filter.target_type = Some("patient".into());
        filter.target_id = Some("p-9".into());
        filter.from = Some(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
        filter.to = Some(Timestamp::parse("2026-11-23T10:00:01Z").unwrap());
        filter.set_text("claim-123 42").unwrap();
        assert!(filter.matches(&entry));

        let refuse = |change: &dyn Fn(&mut Filter)| {
            let mut other = filter.clone();
            change(&mut other);
            assert!(!other.matches(&entry), "{other:?}");
        };
        refuse(&|f| f.actor = Some("u-2".into()));
        refuse(&|f| f.outcome = Some("failure".into()));
        // Type and id of different targets do not make one target.
        refuse(&|f| f.target_id = Some("c-1".into()));
        // `to` is exclusive, and the time is occurred_at, not received_at.
        refuse(&|f| f.to = Some(Timestamp::parse("2026-11-23T10:00:00Z").unwrap()));
        refuse(&|f| f.from = Some(Timestamp::parse("2026-11-23T10:00:01Z").unwrap()));
        refuse(&|f| {
            f.set_text("123-claim").unwrap();
        });
        refuse(&|f| {
            f.set_text("reviewe").unwrap();
        });
    }

    #[test]
    fn text_without_a_word_is_refused() {
        assert_eq!(Filter::default().set_text("-- !!"), None);
    }
}
