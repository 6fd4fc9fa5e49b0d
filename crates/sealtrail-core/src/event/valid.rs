//! Valid events read straight into [`Event`], for ingest's common case.
//!
//! [`parse_json`](super::parse_json) and [`Event::from_owned_value`] build a JSON tree of the
//! whole document first (a map per object, a string per key and value) so that every rule can
//! be checked in a fixed order with a precise error, and then copy the fields out of it. For a
//! valid event most of that work is thrown away. [`Event::parse_valid`] and
//! [`parse_valid_batch`] read the fields the schema names straight into borrowed values and
//! apply the same rules, and give up — `None` — at the first thing that is not plainly valid:
//! any rule broken, a key repeated, an unknown field, a value of an unexpected type or
//! spelling. The caller then parses the same bytes the ordinary way, which finds the error and
//! names it exactly as before. So this module decides only which valid events it can read; it
//! never words an error, and it must never accept what the ordinary path refuses, nor read a
//! valid event differently (`tests` compares the two on every event they are given).
//!
//! `details` and `source.seq` are taken as raw JSON and read by the strict parser itself, so
//! that their checks (duplicate keys at any depth, the parser's reserved key, numbers in their
//! canonical form) are the ordinary path's code, not a copy of it.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Activity, Actor, ActorType, Context, Disclosure, Event, MAX_ACTION_CHARS, MAX_NAME_CHARS,
    MAX_ROLES, MAX_TARGETS, MAX_TEXT_CHARS, Outcome, Path, Source, Target, Timestamp, Value,
    check_details, check_text, normalise_numbers, parse_json, safe_integer,
};

impl Event {
    /// One event document read straight into an `Event` when it is valid; `None` when it is
    /// not, or is valid in a way this reader does not take (then [`Event::parse`] reads it,
    /// or says what is wrong). Whenever it returns an event, [`Event::parse`] returns the
    /// same one.
    pub fn parse_valid(bytes: &[u8]) -> Option<Event> {
        let text = std::str::from_utf8(bytes).ok()?;
        let raw: RawEvent<'_> = serde_json::from_str(text).ok()?;
        raw.into_event()
    }
}

/// A JSON array of events, each read as by [`Event::parse_valid`]; `None` unless every element
/// is a valid event this reader takes (then the batch is parsed the ordinary way, which
/// rejects only the elements that are wrong). An empty array gives an empty list.
pub fn parse_valid_batch(bytes: &[u8]) -> Option<Vec<Event>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let raws: Vec<RawEvent<'_>> = serde_json::from_str(text).ok()?;
    raws.into_iter().map(RawEvent::into_event).collect()
}

/// The producer's fields as they appear in the document. `null` reads as `None`, like a field
/// left out; a repeated key or an unknown one fails the read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    activity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<RawActor<'a>>,
    #[serde(borrow, default)]
    targets: Option<Vec<RawTarget<'a>>>,
    #[serde(borrow, default)]
    context: Option<RawContext<'a>>,
    #[serde(borrow, default)]
    source: Option<RawSource<'a>>,
    #[serde(borrow, default)]
    idempotency_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    disclosure: Option<RawDisclosure<'a>>,
    #[serde(borrow, default)]
    details: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActor<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    roles: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext<'a> {
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    trace_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource<'a> {
    #[serde(borrow, default)]
    app: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    instance: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisclosure<'a> {
    #[serde(borrow, default)]
    recipient: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    purpose: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
}

impl RawEvent<'_> {
    fn into_event(self) -> Option<Event> {
        let action = self.action.and_then(action)?;
        let actor = self.actor.and_then(RawActor::into_actor)?;
        let outcome = Outcome::from_name(&self.outcome?)?;
        let activity = match self.activity {
            Some(name) => Some(Activity::from_name(&name)?),
            None => None,
        };
        let occurred_at = match self.occurred_at {
            Some(text) => Some(timestamp(&text)?),
            None => None,
        };
        let targets = match self.targets {
            Some(items) if items.len() > MAX_TARGETS => return None,
            Some(items) => items
                .into_iter()
                .map(RawTarget::into_target)
                .collect::<Option<Vec<Target>>>()?,
            None => Vec::new(),
        };
        let context = match self.context {
            Some(raw) => Some(raw.into_context()?).filter(|c| !c.is_empty()),
            None => None,
        };
        let source = match self.source {
            Some(raw) => Some(raw.into_source()?).filter(|s| !s.is_empty()),
            None => None,
        };
        let disclosure = match self.disclosure {
            Some(raw) => Some(raw.into_disclosure()?).filter(|d| !d.is_empty()),
            None => None,
        };
        let idempotency_key = match self.idempotency_key {
            Some(key) => Some(non_empty(key, MAX_NAME_CHARS)?),
            None => None,
        };
        let details = match self.details {
            Some(raw) => details(raw)?,
            None => serde_json::Map::new(),
        };
        Some(Event {
            action,
            activity,
            outcome,
            outcome_reason: text(self.outcome_reason, MAX_TEXT_CHARS)?,
            occurred_at,
            actor,
            targets,
            context,
            source,
            idempotency_key,
            disclosure,
            details,
        })
    }
}

impl RawActor<'_> {
    fn into_actor(self) -> Option<Actor> {
        let kind = match self.kind {
            Some(name) => Some(ActorType::from_name(&name)?),
            None => None,
        };
        let roles = match self.roles {
            Some(roles) if roles.len() > MAX_ROLES => return None,
            Some(roles) => roles
                .into_iter()
                .map(|role| checked(role, MAX_NAME_CHARS))
                .collect::<Option<Vec<String>>>()?,
            None => Vec::new(),
        };
        Some(Actor {
            id: non_empty(self.id?, MAX_NAME_CHARS)?,
            kind,
            email: text(self.email, MAX_NAME_CHARS)?,
            name: text(self.name, MAX_NAME_CHARS)?,
            roles,
        })
    }
}

impl RawTarget<'_> {
    fn into_target(self) -> Option<Target> {
        Some(Target {
            kind: text(self.kind, MAX_NAME_CHARS)?,
            id: text(self.id, MAX_NAME_CHARS)?,
            name: text(self.name, MAX_NAME_CHARS)?,
        })
    }
}

impl RawContext<'_> {
    fn into_context(self) -> Option<Context> {
        let ip = match self.ip {
            Some(address) => {
                check_text(&address, &Path::Root, MAX_NAME_CHARS).ok()?;
                Some(address.parse::<IpAddr>().ok()?)
            }
            None => None,
        };
        Some(Context {
            ip,
            user_agent: text(self.user_agent, MAX_TEXT_CHARS)?,
            request_id: text(self.request_id, MAX_NAME_CHARS)?,
            session_id: text(self.session_id, MAX_NAME_CHARS)?,
            trace_id: text(self.trace_id, MAX_NAME_CHARS)?,
        })
    }
}

impl RawSource<'_> {
    fn into_source(self) -> Option<Source> {
        let seq = match self.seq {
            // The strict parser reads the number (and refuses anything that is not one).
            Some(raw) => match parse_json(raw.get().as_bytes()).ok()? {
                Value::Null => None,
                number => Some(safe_integer(&number, &Path::Root).ok()?),
            },
            None => None,
        };
        Some(Source {
            app: text(self.app, MAX_NAME_CHARS)?,
            instance: text(self.instance, MAX_NAME_CHARS)?,
            seq,
        })
    }
}

impl RawDisclosure<'_> {
    fn into_disclosure(self) -> Option<Disclosure> {
        Some(Disclosure {
            recipient: text(self.recipient, MAX_NAME_CHARS)?,
            recipient_address: text(self.recipient_address, MAX_TEXT_CHARS)?,
            purpose: text(self.purpose, MAX_NAME_CHARS)?,
            description: text(self.description, MAX_TEXT_CHARS)?,
        })
    }
}

/// `details` read by the strict parser and checked as the ordinary path checks it.
fn details(raw: &RawValue) -> Option<serde_json::Map<String, Value>> {
    let value = parse_json(raw.get().as_bytes()).ok()?;
    let check = check_details(&value, &Path::Root).ok()?;
    match value {
        Value::Object(mut map) if check.present => {
            if check.normalise {
                normalise_numbers(&mut map);
            }
            Some(map)
        }
        // `null` and `{}` are absent.
        _ => Some(serde_json::Map::new()),
    }
}

/// A string that passes the checks every stored string must (no NUL, at most `max`
/// characters), owned.
fn checked(text: Cow<'_, str>, max: usize) -> Option<String> {
    check_text(&text, &Path::Root, max).ok()?;
    Some(text.into_owned())
}

/// An optional string field: `Some(None)` when absent, `None` when it breaks a rule.
fn text(text: Option<Cow<'_, str>>, max: usize) -> Option<Option<String>> {
    match text {
        Some(text) => Some(Some(checked(text, max)?)),
        None => Some(None),
    }
}

fn non_empty(text: Cow<'_, str>, max: usize) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    checked(text, max)
}

fn action(text: Cow<'_, str>) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-');
    if !text.chars().all(allowed) {
        return None;
    }
    non_empty(text, MAX_ACTION_CHARS)
}

fn timestamp(text: &str) -> Option<Timestamp> {
    check_text(text, &Path::Root, MAX_NAME_CHARS).ok()?;
    Timestamp::parse(text).ok()
}

#[cfg(test)]
mod tests;
