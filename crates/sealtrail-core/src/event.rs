//! Event schema v1: the JSON document a producer sends, parsed into typed values with precise
//! errors.
//!
//! Parsing happens in two steps. [`parse_json`] turns bytes into a [`serde_json::Value`] and
//! enforces what must hold for the JSON as a whole: well-formed UTF-8 and JSON, no duplicate
//! object keys anywhere, and bounded nesting. [`Event::from_value`] then checks one event
//! against the schema and normalises it. [`Event::parse`] does both for a single document; a
//! batch is parsed once with [`parse_json`] and each element checked with
//! [`Event::from_value`] (or [`Event::from_owned_value`], which moves `details` instead of
//! cloning it), so one bad event rejects only itself.
//!
//! Every rejection is an [`EventError`] naming the field as a JSON path (`actor.id`,
//! `targets[2].type`, `details.a.b`, or `""` for the whole document; a key that is not a plain
//! identifier is written `details["odd key"]`, cut after 64 characters),
//! the [`Rule`] that was broken as a stable snake_case code, and a lowercase message that says
//! what is wrong and what to do.
//!
//! ## Fields
//!
//! Required: `action`, `actor.id`, `outcome`. Everything else is optional.
//!
//! | field | rule |
//! | --- | --- |
//! | `action` | 1–128 characters from `A-Z a-z 0-9 . _ : / -` |
//! | `activity` | `create read update delete login logout export disclose admin other` |
//! | `outcome` | `success failure unknown` |
//! | `outcome_reason` | free text |
//! | `occurred_at` | RFC 3339, any offset; stored as UTC with exactly six fractional digits; not further ahead of the server's clock than it allows (rule `future`, checked by the server with [`Event::check_occurred_at`]) |
//! | `actor.id`, `actor.email`, `actor.name` | name (`id` must not be empty) |
//! | `actor.type` | `user service api_key system anonymous` |
//! | `actor.roles` | at most 32 names |
//! | `targets` | at most 64 objects of `type`, `id`, `name` (all optional names) |
//! | `context.ip` | an IPv4 or IPv6 address, stored in its standard text form |
//! | `context.user_agent` | free text |
//! | `context.request_id`, `session_id`, `trace_id` | name |
//! | `source.app`, `source.instance` | name |
//! | `source.seq` | an integer from 0 to 2^53−1, in any spelling (`18233`, `1.8233e4`) |
//! | `idempotency_key` | non-empty name |
//! | `disclosure.recipient`, `disclosure.purpose` | name |
//! | `disclosure.recipient_address`, `disclosure.description` | free text |
//! | `details` | any JSON object, bounded as below |
//!
//! A *name* is at most [`MAX_NAME_CHARS`] (256) characters, *free text* at most
//! [`MAX_TEXT_CHARS`] (4096); lengths count Unicode scalar values, not bytes. `email` is not
//! checked for syntax: it is an identifier of the actor, not an address sealtrail writes to.
//!
//! ## Decisions
//!
//! - **`null` means absent.** An optional field sent as `null` is treated exactly like a field
//!   left out; a required field sent as `null` is missing (rule `required`). Absent fields are
//!   omitted from the canonical entry rather than written as `null`, so one event has one
//!   spelling. For the same reason an empty `targets` or `roles` array, an empty `details`
//!   object and a `context`, `source` or `disclosure` object with no fields are also treated
//!   as absent. Inside `details` nothing is dropped: a `null` or `{}` there is data.
//! - **Unknown fields are rejected** (rule `unknown_field`) at the top level and inside
//!   `actor`, `targets[]`, `context`, `source` and `disclosure`: a typo such as `outcom` must
//!   fail loudly instead of silently losing the field from the audit record. Custom data goes
//!   in `details`, which is free-form. The server-assigned fields `id`, `seq`, `received_at`,
//!   `prev_hash` and `event_hash` are rejected in producer input with the same rule.
//! - **No NUL characters.** No string anywhere, including `details` keys and values, may
//!   contain U+0000 (rule `nul_character`): databases and C tools truncate text at it, so the
//!   record a reader sees could differ from the one that was hashed.
//! - **Numbers are never rounded.** A number is accepted only if it is a finite IEEE 754 double
//!   whose RFC 8785 (ECMAScript) serialization denotes the same decimal value as the text that
//!   was sent; the two are compared digit by digit, not through floating point. So `1.0`,
//!   `1e2`, `0.1` and `-0` are accepted and stored as `1`, `100`, `0.1` and `0`, while
//!   `9007199254740993`, `1e400`, `0.1000000000000000000001` and
//!   `123456789012345678901234` are rejected (rule `number_precision`): storing them would
//!   change the value the producer sent. Such values should be sent as strings.
//! - **Duplicate keys are rejected** anywhere in the document (rule `duplicate_key`). RFC 8785
//!   requires I-JSON, and a JSON parser that silently keeps the first or the last of two keys
//!   would let two readers of the same bytes disagree about what was logged. Duplicates are
//!   found while parsing, so in a batch one makes the whole document invalid; the error's
//!   path names the element (`[3].details.x`).
//! - **Timestamps** (`occurred_at`) must carry a UTC offset or `Z`; they are normalised to UTC
//!   and truncated (not rounded) to whole microseconds, and must fall between 1970-01-01 and
//!   9999-12-31 (see [`Timestamp`]). The entry always spells them
//!   `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
//! - **`occurred_at` in the future** is refused beyond an allowed skew (rule `future`): an
//!   event cannot have happened later than it was received, and a year-9999 time would
//!   otherwise sort first in every time-ordered search for good. A little skew is allowed,
//!   because producers' clocks differ from the server's. The core reads no clock, so this
//!   check is not part of parsing: the server calls [`Event::check_occurred_at`] with its
//!   clock's reading and its configured skew (24 hours unless set otherwise), per event, so
//!   that in a batch a bad event rejects only itself.
//! - **IP addresses** are parsed by the Rust standard library and stored in its `Display`
//!   form: IPv4 dotted decimal without leading zeros (an octet with a leading zero is
//!   rejected, as it is ambiguous with octal), IPv6 in the RFC 5952 compressed lowercase form.
//!   An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) stays IPv6. Ports, brackets and zone
//!   identifiers (`%eth0`) are rejected.
//! - **`details`** nests at most [`MAX_DETAILS_DEPTH`] (8) levels, counting `details` itself as
//!   level 1; every object in it has at most [`MAX_DETAILS_ITEMS`] (256) keys and every array
//!   at most 256 items; keys are names and string values free text.
//! - **Documents** nest at most [`MAX_JSON_DEPTH`] (16) arrays and objects deep, which leaves
//!   room for a batch array around events whose `details` are at the limit.
//! - The whole canonical entry must fit in [`MAX_ENTRY_BYTES`](super::canonical::MAX_ENTRY_BYTES)
//!   (65,535) bytes; that is checked when the entry is built, because it depends on the
//!   server fields and on the canonical form of every value.
//! - The key `"$serde_json::private::Number"` is rejected anywhere (rule `reserved_key`):
//!   serde_json uses that spelling internally for numbers, so accepting it would let an object
//!   be mistaken for a number by the next program that parses the entry.

use std::cell::RefCell;
use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Path, push_index_segment, push_key_segment, quoted};
use crate::number::{self, NumberCheck, SafeInteger};
use crate::timestamp::{Timestamp, TimestampError};

// The error type and the number limit are defined beside the other rules that share them.
// This module is their public home: callers name them `sealtrail_core::event::EventError`,
// `event::Rule` and `event::MAX_SAFE_INTEGER`.
pub use crate::error::{EventError, Rule};
pub use crate::number::MAX_SAFE_INTEGER;
pub use valid::parse_valid_batch;

mod valid;

/// The longest `action`, in characters.
pub const MAX_ACTION_CHARS: usize = 128;
/// The longest identifier or name (`actor.id`, `targets[].id`, `source.app`, `details` keys, …).
pub const MAX_NAME_CHARS: usize = 256;
/// The longest free-text string (`outcome_reason`, `context.user_agent`, `details` values, …).
pub const MAX_TEXT_CHARS: usize = 4096;
/// The most `targets` one event may name.
pub const MAX_TARGETS: usize = 64;
/// The most `actor.roles`.
pub const MAX_ROLES: usize = 32;
/// How deep `details` may nest; `details` itself is level 1.
pub const MAX_DETAILS_DEPTH: usize = 8;
/// The most keys in one `details` object, or items in one `details` array.
pub const MAX_DETAILS_ITEMS: usize = 256;
/// How deep any document given to [`parse_json`] may nest arrays and objects.
pub const MAX_JSON_DEPTH: usize = 16;
/// The key serde_json's `arbitrary_precision` feature uses to smuggle a number's text through
/// serde as a one-entry map.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The JSON spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Reads the JSON spelling; values are case-sensitive.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// What kind of thing the actor did; `action` says exactly what.
    Activity {
        Create => "create",
        Read => "read",
        Update => "update",
        Delete => "delete",
        Login => "login",
        Logout => "logout",
        Export => "export",
        Disclose => "disclose",
        Admin => "admin",
        Other => "other",
    }
}

string_enum! {
    /// Whether the action succeeded. A failed login is `activity: login, outcome: failure`.
    Outcome {
        Success => "success",
        Failure => "failure",
        Unknown => "unknown",
    }
}

string_enum! {
    /// What kind of principal the actor is.
    ActorType {
        User => "user",
        Service => "service",
        ApiKey => "api_key",
        System => "system",
        Anonymous => "anonymous",
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    /// JSON `type`.
    pub kind: Option<ActorType>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Empty means absent.
    pub roles: Vec<String>,
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// JSON `type`, e.g. `patient`.
    pub kind: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// Where the request came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        self == &Context::default()
    }
}

/// Which producer sent the event; `seq` counts up per `(app, instance)` so that a missing
/// number proves a lost event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub app: Option<String>,
    pub instance: Option<String>,
    /// At most [`MAX_SAFE_INTEGER`].
    pub seq: Option<u64>,
}

impl Source {
    pub fn is_empty(&self) -> bool {
        self == &Source::default()
    }
}

/// A disclosure of protected information, for the HIPAA accounting of disclosures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disclosure {
    pub recipient: Option<String>,
    pub recipient_address: Option<String>,
    pub purpose: Option<String>,
    pub description: Option<String>,
}

impl Disclosure {
    pub fn is_empty(&self) -> bool {
        self == &Disclosure::default()
    }
}

/// One audit event, checked and normalised (see the module documentation).
///
/// The fields are public for reading. An `Event` built or changed by hand has not been checked
/// against the schema bounds; [`canonical_entry`](super::canonical::canonical_entry) still
/// guarantees valid canonical JSON (exact numbers, bounded size), but only events from
/// [`Event::parse`] and [`Event::from_value`] are guaranteed to read back with
/// [`Entry::parse`](super::canonical::Entry::parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: String,
    pub activity: Option<Activity>,
    pub outcome: Outcome,
    pub outcome_reason: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub actor: Actor,
    /// Empty means absent.
    pub targets: Vec<Target>,
    pub context: Option<Context>,
    pub source: Option<Source>,
    pub idempotency_key: Option<String>,
    pub disclosure: Option<Disclosure>,
    /// Free-form producer data. Empty means absent. Numbers in it hold their RFC 8785 text
    /// (`1.0` was stored as `1`).
    pub details: Map<String, Value>,
}

impl Event {
    /// Parses one event document.
    pub fn parse(bytes: &[u8]) -> Result<Event, EventError> {
        Event::from_owned_value(parse_json(bytes)?)
    }

    /// Checks one already-parsed event, e.g. an element of a batch parsed with [`parse_json`],
    /// which has already rejected duplicate keys. `details` is cloned.
    pub fn from_value(value: &Value) -> Result<Event, EventError> {
        let map = root_object(value)?;
        from_map(map, ServerKeys::Reject)
    }

    /// Like [`Event::from_value`], but moves `details` out of `value` instead of cloning it.
    pub fn from_owned_value(value: Value) -> Result<Event, EventError> {
        match value {
            Value::Object(map) => from_owned_map(map, ServerKeys::Reject),
            other => Err(not_an_object(&other)),
        }
    }

    /// The producer's idempotency key, if it sent one.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// Refuses an `occurred_at` more than `max_skew` later than `now` (rule `future`). `now`
    /// is the caller's clock reading: the core reads no clock of its own. An event without
    /// `occurred_at` passes, and so does every time when `now + max_skew` is beyond the
    /// latest [`Timestamp`].
    pub fn check_occurred_at(&self, now: Timestamp, max_skew: Duration) -> Result<(), EventError> {
        let Some(occurred_at) = self.occurred_at else {
            return Ok(());
        };
        let skew = i64::try_from(max_skew.as_micros()).unwrap_or(i64::MAX);
        let Ok(latest) = Timestamp::from_unix_micros(now.unix_micros().saturating_add(skew)) else {
            return Ok(());
        };
        if occurred_at <= latest {
            return Ok(());
        }
        Err(EventError::new(
            "occurred_at",
            Rule::Future,
            format!(
                "is {} but the server's clock reads {}, and at most {} s ahead of it is accepted: send the time the event happened, from a synchronised clock",
                occurred_at.to_rfc3339(),
                now.to_rfc3339(),
                max_skew.as_secs()
            ),
        ))
    }
}

fn root_object(value: &Value) -> Result<&Map<String, Value>, EventError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(not_an_object(other)),
    }
}

pub(crate) fn not_an_object(value: &Value) -> EventError {
    EventError::new(
        "",
        Rule::Type,
        format!("an event must be a json object, not {}", type_name(value)),
    )
}

/// Whether the fields the server assigns may appear in the object being read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKeys {
    /// Producer input: they are an error.
    Reject,
    /// A stored entry: the caller reads them; skip them here.
    Skip,
}

/// The fields the server adds to an entry. `event_hash` is derived from the entry and never
/// stored in it.
pub(crate) const SERVER_KEYS: [&str; 4] = ["id", "prev_hash", "received_at", "seq"];

pub(crate) fn from_owned_map(
    mut map: Map<String, Value>,
    server: ServerKeys,
) -> Result<Event, EventError> {
    let (mut event, details) = check_map(&map, server)?;
    if details.present
        && let Some(Value::Object(taken)) = map.remove("details")
    {
        event.details = taken;
        if details.normalise {
            normalise_numbers(&mut event.details);
        }
    }
    Ok(event)
}

fn from_map(map: &Map<String, Value>, server: ServerKeys) -> Result<Event, EventError> {
    let (mut event, details) = check_map(map, server)?;
    if details.present
        && let Some(Value::Object(source)) = map.get("details")
    {
        event.details = source.clone();
        if details.normalise {
            normalise_numbers(&mut event.details);
        }
    }
    Ok(event)
}

/// What checking `details` found: whether it is there at all, and whether a number in it is
/// spelled differently from its canonical form and must be rewritten.
#[derive(Default)]
struct DetailsCheck {
    present: bool,
    normalise: bool,
}

/// Checks every field except that `details` is only checked, not copied, so that the caller
/// can either clone or move it.
fn check_map(
    map: &Map<String, Value>,
    server: ServerKeys,
) -> Result<(Event, DetailsCheck), EventError> {
    let root = Path::Root;
    let mut action = None;
    let mut activity = None;
    let mut outcome = None;
    let mut outcome_reason = None;
    let mut occurred_at = None;
    let mut actor = None;
    let mut targets = Vec::new();
    let mut context = None;
    let mut source = None;
    let mut idempotency_key = None;
    let mut disclosure = None;
    let mut details = DetailsCheck::default();

    for (key, value) in map {
        let path = Path::Key(&root, key);
        match key.as_str() {
            "action" => action = opt(value).map(|v| action_string(v, &path)).transpose()?,
            "activity" => activity = opt_enum(value, &path, Activity::from_name, Activity::ALL)?,
            "outcome" => outcome = opt_enum(value, &path, Outcome::from_name, Outcome::ALL)?,
            "outcome_reason" => outcome_reason = opt_string(value, &path, MAX_TEXT_CHARS)?,
            "occurred_at" => occurred_at = opt(value).map(|v| timestamp(v, &path)).transpose()?,
            "actor" => actor = opt(value).map(|v| parse_actor(v, &path)).transpose()?,
            "targets" => targets = parse_targets(value, &path)?,
            "context" => context = opt(value).map(|v| parse_context(v, &path)).transpose()?,
            "source" => source = opt(value).map(|v| parse_source(v, &path)).transpose()?,
            "idempotency_key" => {
                idempotency_key = opt(value)
                    .map(|v| non_empty_string(v, &path, MAX_NAME_CHARS))
                    .transpose()?;
            }
            "disclosure" => {
                disclosure = opt(value).map(|v| parse_disclosure(v, &path)).transpose()?;
            }
            "details" => details = check_details(value, &path)?,
            "event_hash" => return Err(server_field(&path)),
            other if SERVER_KEYS.contains(&other) => {
                if server == ServerKeys::Reject {
                    return Err(server_field(&path));
                }
            }
            _ => return Err(unknown_field(&path, "the event")),
        }
    }

    let action = action.ok_or_else(|| required(&Path::Key(&root, "action")))?;
    let actor = actor.ok_or_else(|| {
        EventError::at(
            &Path::Key(&root, "actor"),
            Rule::Required,
            "is required: an object with at least an \"id\"",
        )
    })?;
    let outcome = outcome.ok_or_else(|| {
        EventError::at(
            &Path::Key(&root, "outcome"),
            Rule::Required,
            format!("is required: one of {}", allowed(Outcome::ALL)),
        )
    })?;
    let event = Event {
        action,
        activity,
        outcome,
        outcome_reason,
        occurred_at,
        actor,
        targets,
        context: context.filter(|c: &Context| !c.is_empty()),
        source: source.filter(|s: &Source| !s.is_empty()),
        idempotency_key,
        disclosure: disclosure.filter(|d: &Disclosure| !d.is_empty()),
        details: Map::new(),
    };
    Ok((event, details))
}

fn parse_actor(value: &Value, path: &Path<'_>) -> Result<Actor, EventError> {
    let map = object(value, path)?;
    let mut id = None;
    let mut kind = None;
    let mut email = None;
    let mut name = None;
    let mut roles = Vec::new();
    for (key, value) in map {
        let path = Path::Key(path, key);
        match key.as_str() {
            "id" => {
                id = opt(value)
                    .map(|v| non_empty_string(v, &path, MAX_NAME_CHARS))
                    .transpose()?;
            }
            "type" => kind = opt_enum(value, &path, ActorType::from_name, ActorType::ALL)?,
            "email" => email = opt_string(value, &path, MAX_NAME_CHARS)?,
            "name" => name = opt_string(value, &path, MAX_NAME_CHARS)?,
            "roles" => roles = string_list(value, &path, MAX_ROLES, MAX_NAME_CHARS)?,
            _ => return Err(unknown_field(&path, "actor")),
        }
    }
    let id = id.ok_or_else(|| required(&Path::Key(path, "id")))?;
    Ok(Actor {
        id,
        kind,
        email,
        name,
        roles,
    })
}

fn parse_targets(value: &Value, path: &Path<'_>) -> Result<Vec<Target>, EventError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(type_error(path, "an array of objects", other)),
    };
    if items.len() > MAX_TARGETS {
        return Err(too_many(path, items.len(), MAX_TARGETS));
    }
    let mut targets = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = Path::Index(path, index);
        let map = object(item, &path)?;
        let mut target = Target::default();
        for (key, value) in map {
            let path = Path::Key(&path, key);
            match key.as_str() {
                "type" => target.kind = opt_string(value, &path, MAX_NAME_CHARS)?,
                "id" => target.id = opt_string(value, &path, MAX_NAME_CHARS)?,
                "name" => target.name = opt_string(value, &path, MAX_NAME_CHARS)?,
                _ => return Err(unknown_field(&path, "a target")),
            }
        }
        targets.push(target);
    }
    Ok(targets)
}

fn parse_context(value: &Value, path: &Path<'_>) -> Result<Context, EventError> {
    let map = object(value, path)?;
    let mut context = Context::default();
    for (key, value) in map {
        let path = Path::Key(path, key);
        match key.as_str() {
            "ip" => context.ip = opt(value).map(|v| ip_address(v, &path)).transpose()?,
            "user_agent" => context.user_agent = opt_string(value, &path, MAX_TEXT_CHARS)?,
            "request_id" => context.request_id = opt_string(value, &path, MAX_NAME_CHARS)?,
            "session_id" => context.session_id = opt_string(value, &path, MAX_NAME_CHARS)?,
            "trace_id" => context.trace_id = opt_string(value, &path, MAX_NAME_CHARS)?,
            _ => return Err(unknown_field(&path, "context")),
        }
    }
    Ok(context)
}

fn parse_source(value: &Value, path: &Path<'_>) -> Result<Source, EventError> {
    let map = object(value, path)?;
    let mut source = Source::default();
    for (key, value) in map {
        let path = Path::Key(path, key);
        match key.as_str() {
            "app" => source.app = opt_string(value, &path, MAX_NAME_CHARS)?,
            "instance" => source.instance = opt_string(value, &path, MAX_NAME_CHARS)?,
            "seq" => source.seq = opt(value).map(|v| safe_integer(v, &path)).transpose()?,
            _ => return Err(unknown_field(&path, "source")),
        }
    }
    Ok(source)
}

fn parse_disclosure(value: &Value, path: &Path<'_>) -> Result<Disclosure, EventError> {
    let map = object(value, path)?;
    let mut disclosure = Disclosure::default();
    for (key, value) in map {
        let path = Path::Key(path, key);
        match key.as_str() {
            "recipient" => disclosure.recipient = opt_string(value, &path, MAX_NAME_CHARS)?,
            "recipient_address" => {
                disclosure.recipient_address = opt_string(value, &path, MAX_TEXT_CHARS)?;
            }
            "purpose" => disclosure.purpose = opt_string(value, &path, MAX_NAME_CHARS)?,
            "description" => disclosure.description = opt_string(value, &path, MAX_TEXT_CHARS)?,
            _ => return Err(unknown_field(&path, "disclosure")),
        }
    }
    Ok(disclosure)
}

/// `null` is the same as absent for every optional field.
fn opt(value: &Value) -> Option<&Value> {
    match value {
        Value::Null => None,
        other => Some(other),
    }
}

fn object<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v Map<String, Value>, EventError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(type_error(path, "an object", other)),
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn type_error(path: &Path<'_>, expected: &str, got: &Value) -> EventError {
    EventError::at(
        path,
        Rule::Type,
        format!("must be {expected}, not {}", type_name(got)),
    )
}

pub(crate) fn required(path: &Path<'_>) -> EventError {
    EventError::at(path, Rule::Required, "is required")
}

fn unknown_field(path: &Path<'_>, within: &str) -> EventError {
    EventError::at(
        path,
        Rule::UnknownField,
        format!("is not a field of {within} in event schema v1; put custom data in \"details\""),
    )
}

fn server_field(path: &Path<'_>) -> EventError {
    EventError::at(
        path,
        Rule::UnknownField,
        "is assigned by the server; remove it from the event",
    )
}

fn too_many(path: &Path<'_>, count: usize, limit: usize) -> EventError {
    EventError::at(
        path,
        Rule::MaxItems,
        format!("has {count} items; the limit is {limit}"),
    )
}

fn allowed<T: fmt::Display>(values: &[T]) -> String {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{value}");
    }
    out
}

/// Checks what every stored string must satisfy: no NUL and at most `max` characters.
pub(crate) fn check_text(text: &str, path: &Path<'_>, max: usize) -> Result<(), EventError> {
    if text.as_bytes().contains(&0) {
        return Err(EventError::at(
            path,
            Rule::NulCharacter,
            "must not contain the nul character (u+0000): databases and c tools cut text at it",
        ));
    }
    // A string never has more characters than bytes, so short strings skip the count.
    if text.len() > max {
        let chars = text.chars().count();
        if chars > max {
            return Err(EventError::at(
                path,
                Rule::MaxLength,
                format!("is {chars} characters long; the limit is {max}"),
            ));
        }
    }
    Ok(())
}

fn string<'v>(value: &'v Value, path: &Path<'_>, max: usize) -> Result<&'v str, EventError> {
    match value {
        Value::String(text) => {
            check_text(text, path, max)?;
            Ok(text)
        }
        other => Err(type_error(path, "a string", other)),
    }
}

fn opt_string(value: &Value, path: &Path<'_>, max: usize) -> Result<Option<String>, EventError> {
    opt(value)
        .map(|v| string(v, path, max).map(str::to_owned))
        .transpose()
}

fn string_list(
    value: &Value,
    path: &Path<'_>,
    max_items: usize,
    max_chars: usize,
) -> Result<Vec<String>, EventError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(type_error(path, "an array of strings", other)),
    };
    if items.len() > max_items {
        return Err(too_many(path, items.len(), max_items));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| string(item, &Path::Index(path, index), max_chars).map(str::to_owned))
        .collect()
}

fn non_empty_string(value: &Value, path: &Path<'_>, max: usize) -> Result<String, EventError> {
    let text = string(value, path, max)?;
    if text.is_empty() {
        return Err(EventError::at(path, Rule::Empty, "must not be empty"));
    }
    Ok(text.to_owned())
}

fn action_string(value: &Value, path: &Path<'_>) -> Result<String, EventError> {
    let text = non_empty_string(value, path, MAX_ACTION_CHARS)?;
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')))
    {
        return Err(EventError::at(
            path,
            Rule::Pattern,
            format!(
                "may contain only letters, digits and . _ : / - (found {}), e.g. \"patient.record.read\"",
                quoted(bad.encode_utf8(&mut [0; 4]))
            ),
        ));
    }
    Ok(text)
}

fn opt_enum<T: Copy + fmt::Display>(
    value: &Value,
    path: &Path<'_>,
    from_name: fn(&str) -> Option<T>,
    all: &[T],
) -> Result<Option<T>, EventError> {
    let Some(value) = opt(value) else {
        return Ok(None);
    };
    let text = match value {
        Value::String(text) => text,
        other => {
            return Err(EventError::at(
                path,
                Rule::Type,
                format!(
                    "must be a string, one of {}, not {}",
                    allowed(all),
                    type_name(other)
                ),
            ));
        }
    };
    from_name(text).map(Some).ok_or_else(|| {
        EventError::at(
            path,
            Rule::Enum,
            format!("must be one of {} (got {})", allowed(all), quoted(text)),
        )
    })
}

fn timestamp(value: &Value, path: &Path<'_>) -> Result<Timestamp, EventError> {
    let text = string(value, path, MAX_NAME_CHARS)?;
    Timestamp::parse(text).map_err(|e| {
        let message = match e {
            TimestampError::Syntax => {
                "must be an rfc 3339 timestamp with a time zone, such as 2026-11-23T10:00:00.123456Z"
            }
            TimestampError::OutOfRange => {
                "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
            }
        };
        EventError::at(path, Rule::Timestamp, message)
    })
}

fn ip_address(value: &Value, path: &Path<'_>) -> Result<IpAddr, EventError> {
    let text = string(value, path, MAX_NAME_CHARS)?;
    text.parse::<IpAddr>().map_err(|_| {
        EventError::at(
            path,
            Rule::Ip,
            format!(
                "must be an ipv4 or ipv6 address without port, brackets or zone, such as 10.1.2.3 or 2001:db8::1 (got {})",
                quoted(text)
            ),
        )
    })
}

/// Reads a non-negative integer no larger than 2^53 − 1. Any spelling of such an integer is
/// accepted (`18233`, `18233.0`, `1.8233e4`), since all of them canonicalise to the same text.
pub(crate) fn safe_integer(value: &Value, path: &Path<'_>) -> Result<u64, EventError> {
    let Value::Number(number) = value else {
        return Err(type_error(path, "a non-negative integer", value));
    };
    let limit = || format!("must be at most {MAX_SAFE_INTEGER} (2^53 - 1)");
    match number::safe_integer(number.as_str()) {
        SafeInteger::Value(n) => Ok(n),
        SafeInteger::Negative => Err(EventError::at(path, Rule::Range, "must not be negative")),
        SafeInteger::TooLarge => Err(EventError::at(path, Rule::Range, limit())),
        SafeInteger::Fraction => Err(EventError::at(
            path,
            Rule::Type,
            "must be a whole number, without a fraction",
        )),
        SafeInteger::Invalid => Err(EventError::at(
            path,
            Rule::Type,
            "must be a non-negative integer",
        )),
    }
}

fn check_details(value: &Value, path: &Path<'_>) -> Result<DetailsCheck, EventError> {
    match value {
        Value::Null => Ok(DetailsCheck::default()),
        Value::Object(map) if map.is_empty() => Ok(DetailsCheck::default()),
        Value::Object(map) => {
            let mut normalise = false;
            check_details_object(map, path, 1, &mut normalise)?;
            Ok(DetailsCheck {
                present: true,
                normalise,
            })
        }
        other => Err(type_error(path, "an object", other)),
    }
}

fn check_details_object(
    map: &Map<String, Value>,
    path: &Path<'_>,
    depth: usize,
    normalise: &mut bool,
) -> Result<(), EventError> {
    if map.len() > MAX_DETAILS_ITEMS {
        return Err(EventError::at(
            path,
            Rule::MaxItems,
            format!("has {} keys; the limit is {MAX_DETAILS_ITEMS}", map.len()),
        ));
    }
    for (key, value) in map {
        let path = Path::Key(path, key);
        if key.as_bytes().contains(&0) {
            return Err(EventError::at(
                &path,
                Rule::NulCharacter,
                "key must not contain the nul character (u+0000): databases and c tools cut text at it",
            ));
        }
        if key.len() > MAX_NAME_CHARS && key.chars().count() > MAX_NAME_CHARS {
            return Err(EventError::at(
                &path,
                Rule::MaxLength,
                format!(
                    "key is {} characters long; the limit is {MAX_NAME_CHARS}",
                    key.chars().count()
                ),
            ));
        }
        if key == NUMBER_TOKEN {
            return Err(reserved_key(&path));
        }
        check_details_value(value, &path, depth, normalise)?;
    }
    Ok(())
}

fn check_details_value(
    value: &Value,
    path: &Path<'_>,
    depth: usize,
    normalise: &mut bool,
) -> Result<(), EventError> {
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(number) => match number::check_number(number.as_str()) {
            Ok(NumberCheck::Canonical) => Ok(()),
            Ok(NumberCheck::Normalised(_)) => {
                *normalise = true;
                Ok(())
            }
            Err(e) => Err(number::number_error(path, number.as_str(), &e)),
        },
        Value::String(text) => check_text(text, path, MAX_TEXT_CHARS),
        Value::Array(items) => {
            check_details_depth(path, depth + 1)?;
            if items.len() > MAX_DETAILS_ITEMS {
                return Err(too_many(path, items.len(), MAX_DETAILS_ITEMS));
            }
            for (index, item) in items.iter().enumerate() {
                check_details_value(item, &Path::Index(path, index), depth + 1, normalise)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            check_details_depth(path, depth + 1)?;
            check_details_object(map, path, depth + 1, normalise)
        }
    }
}

fn check_details_depth(path: &Path<'_>, depth: usize) -> Result<(), EventError> {
    if depth > MAX_DETAILS_DEPTH {
        return Err(EventError::at(
            path,
            Rule::MaxDepth,
            format!(
                "nests too deeply: details may nest at most {MAX_DETAILS_DEPTH} levels; flatten the data"
            ),
        ));
    }
    Ok(())
}

/// Rewrites every number in `details` whose text differs from its canonical form, so that the
/// event holds what the log will hold. Only called after [`check_details`] accepted them all.
fn normalise_numbers(map: &mut Map<String, Value>) {
    for value in map.values_mut() {
        normalise_value(value);
    }
}

fn normalise_value(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Ok(NumberCheck::Normalised(text)) = number::check_number(number.as_str())
                && let Ok(canonical) = text.as_str().parse::<Number>()
            {
                *number = canonical;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_value),
        Value::Object(map) => normalise_numbers(map),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

fn reserved_key(path: &Path<'_>) -> EventError {
    EventError::at(
        path,
        Rule::ReservedKey,
        format!("the key {NUMBER_TOKEN:?} is reserved by the json parser; rename it"),
    )
}

/// Parses JSON strictly: well-formed UTF-8 and JSON (RFC 8259) with nothing after the value,
/// no duplicate key in any object, no key `"$serde_json::private::Number"`, and at most
/// [`MAX_JSON_DEPTH`] nested arrays and objects. Numbers keep their source text.
pub fn parse_json(bytes: &[u8]) -> Result<Value, EventError> {
    // Validating UTF-8 up front gives a precise position for bad bytes and lets serde_json
    // read from a &str, which skips its own per-string validation.
    let text = std::str::from_utf8(bytes).map_err(|e| utf8_error(bytes, e.valid_up_to()))?;
    let state = ParseState {
        input: text.as_bytes().as_ptr_range(),
        error: RefCell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = ValueSeed {
        state: &state,
        depth: 1,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match result {
        Ok(value) => Ok(value),
        Err(e) => Err(match state.error.into_inner() {
            Some(pending) => pending.into_error(),
            None => syntax_error(&e),
        }),
    }
}

fn utf8_error(bytes: &[u8], offset: usize) -> EventError {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    EventError::new(
        "",
        Rule::Syntax,
        format!(
            "invalid utf-8 at line {line} column {column} (byte {offset}); send json encoded as utf-8"
        ),
    )
}

fn syntax_error(error: &serde_json::Error) -> EventError {
    let full = error.to_string();
    // serde_json appends the position; it is given separately below.
    let reason = match full.rfind(" at line ") {
        Some(at) => &full[..at],
        None => &full,
    };
    EventError::new(
        "",
        Rule::Syntax,
        format!(
            "invalid json at line {} column {}: {}",
            error.line(),
            error.column(),
            reason.to_lowercase()
        ),
    )
}

/// State shared by the visitors of one [`parse_json`] call. serde's errors are opaque strings,
/// so a rule violation found by a visitor is recorded here, and each enclosing array or object
/// adds its path segment while the error unwinds; nothing is allocated for paths on success.
struct ParseState {
    /// The input's address range, used to tell serde_json's internal number key (a static
    /// string) from the same text written as a key in the document (a slice of the input).
    input: Range<*const u8>,
    error: RefCell<Option<PendingError>>,
}

struct PendingError {
    rule: Rule,
    message: String,
    /// Innermost segment first.
    path: Vec<Segment>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl PendingError {
    fn into_error(self) -> EventError {
        let mut field = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(key) => push_key_segment(&mut field, key),
                Segment::Index(index) => push_index_segment(&mut field, *index),
            }
        }
        EventError::new(field, self.rule, self.message)
    }
}

impl ParseState {
    fn fail<E: de::Error>(&self, rule: Rule, message: String, segment: Option<Segment>) -> E {
        *self.error.borrow_mut() = Some(PendingError {
            rule,
            message,
            path: segment.into_iter().collect(),
        });
        E::custom(rule.code())
    }

    fn annotate(&self, segment: impl FnOnce() -> Segment) {
        if let Some(pending) = self.error.borrow_mut().as_mut() {
            pending.path.push(segment());
        }
    }

    fn check_depth<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.fail(
                Rule::MaxDepth,
                format!(
                    "nests more than {MAX_JSON_DEPTH} arrays and objects deep; flatten the data"
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// Builds a [`Value`] like serde_json's own visitor, but checks keys for duplicates and limits
/// nesting. `depth` is the nesting level this value has if it is an array or object.
struct ValueSeed<'s> {
    state: &'s ParseState,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any json value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    // With `arbitrary_precision`, serde_json hands integers that fit 64 bits to these and
    // every other number to `visit_map` as its source text.
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.state.check_depth(self.depth)?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let seed = ValueSeed {
                state: self.state,
                depth: self.depth + 1,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    let index = items.len();
                    self.state.annotate(|| Segment::Index(index));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let state = self.state;
        let mut key = match map.next_key_seed(KeySeed { state })? {
            None => {
                state.check_depth(self.depth)?;
                return Ok(Value::Object(Map::new()));
            }
            Some(MapKey::Number) => {
                let text: String = map.next_value()?;
                return text
                    .parse::<Number>()
                    .map(Value::Number)
                    .map_err(de::Error::custom);
            }
            Some(MapKey::Key(key)) => key,
        };
        state.check_depth(self.depth)?;
        let mut object = Map::new();
        loop {
            if key == NUMBER_TOKEN {
                return Err(state.fail(
                    Rule::ReservedKey,
                    format!("the key {NUMBER_TOKEN:?} is reserved by the json parser; rename it"),
                    Some(Segment::Key(key)),
                ));
            }
            if object.contains_key(&key) {
                let message = format!(
                    "duplicate key {}: each key may appear only once in an object (rfc 8785 requires i-json)",
                    quoted(&key)
                );
                return Err(state.fail(Rule::DuplicateKey, message, Some(Segment::Key(key))));
            }
            let seed = ValueSeed {
                state,
                depth: self.depth + 1,
            };
            match map.next_value_seed(seed) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(e) => {
                    state.annotate(|| Segment::Key(key));
                    return Err(e);
                }
            }
            key = match map.next_key_seed(KeySeed { state })? {
                None => return Ok(Value::Object(object)),
                // Only a real number's single-entry map yields this, never a later key; treat
                // it like the literal key it would then have to be.
                Some(MapKey::Number) => NUMBER_TOKEN.to_owned(),
                Some(MapKey::Key(key)) => key,
            };
        }
    }
}

enum MapKey {
    /// serde_json's marker that the "map" is really a number's source text.
    Number,
    Key(String),
}

struct KeySeed<'s> {
    state: &'s ParseState,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = MapKey;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<MapKey, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = MapKey;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<MapKey, E> {
        // serde_json passes its number marker as a `&'static str`; a key written in the
        // document with the same text is borrowed from the input (or, if it contains escapes,
        // arrives through `visit_str`). Comparing addresses tells them apart.
        if key == NUMBER_TOKEN && !self.state.input.contains(&key.as_ptr()) {
            return Ok(MapKey::Number);
        }
        Ok(MapKey::Key(key.to_owned()))
    }

    fn visit_str<E>(self, key: &str) -> Result<MapKey, E> {
        Ok(MapKey::Key(key.to_owned()))
    }

    fn visit_string<E>(self, key: String) -> Result<MapKey, E> {
        Ok(MapKey::Key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurred_at_may_be_ahead_of_the_servers_clock_by_the_skew_and_no_more() {
        let event = |at: &str| {
            let json = format!(
                r#"{{"action":"a","outcome":"success","actor":{{"id":"u"}},"occurred_at":"{at}"}}"#
            );
            Event::parse(json.as_bytes()).unwrap()
        };
        let now = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let day = Duration::from_secs(86_400);
        for at in [
            "1970-01-01T00:00:00Z",
            "2026-11-23T10:00:00Z",
            "2026-11-24T10:00:00Z",
        ] {
            assert_eq!(event(at).check_occurred_at(now, day), Ok(()), "{at}");
        }
        for at in ["2026-11-24T10:00:00.000001Z", "9999-12-31T23:59:59Z"] {
            let error = event(at).check_occurred_at(now, day).unwrap_err();
            assert_eq!(
                (error.field.as_str(), error.rule),
                ("occurred_at", Rule::Future)
            );
            assert!(error.message.contains("at most 86400 s ahead"), "{error}");
        }
        // No occurred_at, or a skew reaching past the last representable time: nothing to refuse.
        let json = br#"{"action":"a","outcome":"success","actor":{"id":"u"}}"#;
        assert_eq!(
            Event::parse(json).unwrap().check_occurred_at(now, day),
            Ok(())
        );
        let forever = Duration::from_secs(u64::MAX);
        assert_eq!(
            event("9999-12-31T23:59:59Z").check_occurred_at(now, forever),
            Ok(())
        );
    }

    fn err(json: &str) -> EventError {
        parse_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn parse_json_keeps_number_text_and_builds_values() {
        let value = parse_json(
            br#"{"a":[1,-2,1.50,1E3,-0,18446744073709551616],"b":null,"c":true,"d":"x"}"#,
        )
        .unwrap();
        let numbers: Vec<&str> = value["a"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_number().unwrap().as_str())
            .collect();
        assert_eq!(
            numbers,
            ["1", "-2", "1.50", "1e+3", "-0", "18446744073709551616"]
        );
        assert_eq!(value["b"], Value::Null);
        assert_eq!(value["c"], Value::Bool(true));
        assert_eq!(value["d"], Value::String("x".into()));
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth_with_their_path() {
        let e = err(r#"{"a":1,"a":2}"#);
        assert_eq!((e.field.as_str(), e.rule), ("a", Rule::DuplicateKey));
        let e = err(r#"{"details":{"x":[{"k":1},{"k":1,"k":2}]}}"#);
        assert_eq!(
            (e.field.as_str(), e.rule),
            ("details.x[1].k", Rule::DuplicateKey)
        );
        // Escapes do not hide a duplicate: both keys decode to "a".
        let e = err(r#"{"a":1,"\u0061":2}"#);
        assert_eq!(e.rule, Rule::DuplicateKey);
        let e = err(r#"[{}, {"odd key":1,"odd key":2}]"#);
        assert_eq!(e.field, r#"[1]["odd key"]"#);
    }

    #[test]
    fn the_parser_number_marker_is_a_reserved_key_not_a_number() {
        for json in [
            r#"{"$serde_json::private::Number":"5"}"#,
            r#"{"a":{"$serde_json::private::Number":"5"}}"#,
            r#"{"b":1,"$serde_json::private::Number":"5"}"#,
            r#"{"\u0024serde_json::private::Number":"5"}"#,
        ] {
            let e = err(json);
            assert_eq!(e.rule, Rule::ReservedKey, "{json}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_json(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        let e = err(&deep);
        assert_eq!(e.rule, Rule::MaxDepth);
        assert_eq!(e.field, "[0]".repeat(MAX_JSON_DEPTH));
        // Far beyond serde_json's own recursion limit, still a clean error.
        let very_deep = "{\"a\":".repeat(10_000);
        assert_eq!(err(&very_deep).rule, Rule::MaxDepth);
    }

    #[test]
    fn syntax_and_utf8_errors_have_positions() {
        let e = err("{\"a\":\n  tru}");
        assert_eq!(e.rule, Rule::Syntax);
        assert!(e.message.contains("line 2 column"), "{}", e.message);
        assert_eq!(e.message, e.message.to_lowercase());
        let e = parse_json(b"{\"a\":\n\"\xff\"}").unwrap_err();
        assert_eq!(e.rule, Rule::Syntax);
        assert_eq!(
            e.message,
            "invalid utf-8 at line 2 column 2 (byte 7); send json encoded as utf-8"
        );
        for bad in [
            "",
            "{} {}",
            "{\"a\":1,}",
            "[1 2]",
            "\"\\ud800\"",
            "NaN",
            "01",
        ] {
            assert_eq!(err(bad).rule, Rule::Syntax, "{bad:?}");
        }
    }

    #[test]
    fn enums_round_trip_their_names() {
        for a in Activity::ALL {
            assert_eq!(Activity::from_name(a.as_str()), Some(*a));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(*o));
        }
        for t in ActorType::ALL {
            assert_eq!(ActorType::from_name(t.as_str()), Some(*t));
        }
        assert_eq!(Activity::from_name("Read"), None);
    }
}
