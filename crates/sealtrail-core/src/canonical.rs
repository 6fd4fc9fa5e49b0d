//! Canonical entries: the exact bytes an event becomes in the log, and its `event_hash`.
//!
//! The committed entry is the RFC 8785 (JSON Canonicalization Scheme) serialization of the
//! normalised event (see [`crate::event`]) plus four server fields:
//!
//! - `id`: the event's UUID (UUIDv7 in practice), lowercase and hyphenated;
//! - `seq`: its position in the tenant's log, counting from 0;
//! - `received_at`: when the server accepted it, `YYYY-MM-DDTHH:MM:SS.ffffffZ`;
//! - `prev_hash`: the previous entry's `event_hash` as 64 lowercase hex digits, all zeros
//!   ([`Hash::ZERO`]) for the entry at seq 0.
//!
//! `event_hash` is [`event_hash`]`(entry)`, the RFC 9162 leaf hash `SHA-256(0x00 || entry)`;
//! it is derived from the entry and never stored in it.
//!
//! ## The RFC 8785 rules as applied here
//!
//! - No whitespace. Object members are sorted by the UTF-16 code units of their keys (so
//!   U+1F600 sorts before U+FB33, unlike in UTF-8 byte order); array order is kept.
//! - Strings are UTF-8. Only `"` and `\` and the control characters U+0000–U+001F are escaped:
//!   `\b \t \n \f \r` where JSON has a short form, `\u00xx` with lowercase hex otherwise.
//!   Everything else, including `/`, DEL and non-ASCII, is written as itself.
//! - Numbers are IEEE 754 doubles written as ECMAScript's `Number.prototype.toString` does
//!   (`0`, `100`, `0.1`, `1e+21`, `1e-7`), using the `json-canon` crate's `ryu-js` formatting.
//! - Absent optional fields are omitted, never written as `null`.
//!
//! ## Numbers: exact for entries, nearest for [`canonicalize`]
//!
//! RFC 8785 itself parses a number to the nearest double and serializes that, so its sample
//! input `333333333.33333329` canonicalises to `333333333.3333333`. [`canonicalize`] does the
//! same, for any already-parsed JSON. An event must not change what the producer sent, so
//! event parsing and [`canonical_entry`] accept a number only when the canonical text denotes
//! exactly the decimal value of the source text (rule `number_precision` otherwise, see
//! [`crate::event`]). For every number the event path accepts, both give the same bytes. The
//! exactness rules themselves are shared with event parsing and live in the crate's internal
//! `number` module.
//!
//! ## Bounds
//!
//! - An entry is at most [`MAX_ENTRY_BYTES`] (65,535) bytes, because entry bundles store each
//!   entry's length as a `u16`. [`canonical_entry`] refuses a bigger entry (rule `max_size`,
//!   field `""`): the producer must shrink `details` or split the event.
//! - `seq` and `source.seq` must be at most 2^53 − 1 (rule `range`): larger integers are not
//!   exactly representable as doubles, so they have no exact RFC 8785 form.
//!
//! ## Idempotency digests
//!
//! [`event_digest`] is the SHA-256 of the event's canonical JSON without the server fields and
//! without `idempotency_key`, behind a tag of its own. The server compares it to tell a retry
//! under an idempotency key (the same event: the original receipt) from a different event sent
//! under a key already used (refused). It is never stored in an entry nor part of the tree.
//!
//! ## Reading entries back
//!
//! [`Entry::parse`] reads a stored entry for queries. It applies the same checks as event
//! parsing plus those of the server fields, and for any entry built by [`canonical_entry`]
//! from a parsed event, `canonical_entry(parse(x)) == x` byte for byte. It does not check that
//! its input is canonical, nor the chain (`prev_hash` against the previous entry): that is
//! the verifier's job.
//!
//! ## Performance
//!
//! An entry is written in one pass into one buffer, without building an intermediate tree:
//! the event's typed fields already are that tree. The member order of the schema's own
//! objects is fixed in the code (checked by a debug assertion and by tests against a general
//! canonicaliser), so only `details` objects are sorted, and only when their keys are not
//! already in UTF-16 order. Strings are scanned eight bytes at a time for the rare characters
//! that need escaping and copied in runs. Timestamps and short integers are written directly;
//! other numbers are formatted into a stack buffer. `json-canon` is used for what it is best
//! at, ECMAScript number formatting; serializing a whole entry through it would allocate a
//! buffer per object member.

use std::cmp::Ordering;
use std::io::Write as _;

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{EventError, Path, Rule};
use crate::event::{self, Actor, Context, Disclosure, Event, ServerKeys, Source, Target};
use crate::hash::{Hash, leaf_hash};
use crate::number::{
    EcmaNumber, MAX_SAFE_INTEGER, NumberCheck, NumberError, check_number, is_short_integer,
    number_error,
};
use crate::timestamp::{Timestamp, TimestampError};

/// The largest canonical entry, in bytes: entry bundles store each length as a `u16`.
pub const MAX_ENTRY_BYTES: usize = 65_535;

/// How deep [`canonicalize`] follows nested arrays and objects; beyond this, recursion would
/// risk the stack. serde_json refuses to parse deeper documents anyway.
const MAX_CANONICAL_DEPTH: usize = 128;

/// The fields the server assigns to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFields {
    pub id: Uuid,
    /// At most 2^53 − 1.
    pub seq: u64,
    pub received_at: Timestamp,
    /// [`Hash::ZERO`] for seq 0.
    pub prev_hash: Hash,
}

/// A stored entry read back: the event and the fields the server added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event: Event,
    pub server: ServerFields,
}

impl Entry {
    /// Reads a stored canonical entry.
    pub fn parse(entry: &[u8]) -> Result<Entry, EventError> {
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(too_big(entry.len()));
        }
        let map = match event::parse_json(entry)? {
            Value::Object(map) => map,
            other => return Err(event::not_an_object(&other)),
        };
        let server = read_server_fields(&map)?;
        let event = event::from_owned_map(map, ServerKeys::Skip)?;
        Ok(Entry { event, server })
    }

    /// The entry's canonical bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EventError> {
        canonical_entry(&self.event, &self.server)
    }
}

/// The entry's `event_hash`: its RFC 9162 leaf hash.
pub fn event_hash(entry: &[u8]) -> Hash {
    leaf_hash(entry)
}

/// Reads some fields of a stored entry into `T`, borrowing its strings where they have no
/// escapes; the fields `T` does not name are skipped without being built. The followers of
/// the log (query index, gap detector, monitor) each read every entry this way.
///
/// The bytes are checked to be UTF-8 once, as a whole, and then parsed as text.
/// `serde_json::from_slice` checks each string it reads separately instead, which made up about
/// a quarter of a follower's parse of a 650-byte entry.
pub fn read_fields<'a, T: serde::Deserialize<'a>>(entry: &'a [u8]) -> serde_json::Result<T> {
    let text = std::str::from_utf8(entry).map_err(serde::de::Error::custom)?;
    serde_json::from_str(text)
}

/// Builds the canonical entry for `event` with the server's fields.
pub fn canonical_entry(event: &Event, server: &ServerFields) -> Result<Vec<u8>, EventError> {
    if server.seq > MAX_SAFE_INTEGER {
        return Err(EventError::new(
            "seq",
            Rule::Range,
            format!("must be at most {MAX_SAFE_INTEGER} (2^53 - 1) to be an exact json number"),
        ));
    }
    // Most entries are under 1 KiB; one allocation then covers the whole entry.
    let mut out = Vec::with_capacity(1024);
    write_entry(&mut out, event, server)?;
    if out.len() > MAX_ENTRY_BYTES {
        return Err(too_big(out.len()));
    }
    Ok(out)
}

/// What an idempotency key is checked with: whether a retry under a key is the event the key
/// first named. It is SHA-256 over the tag `sealtrail event digest v1` and a newline, then the
/// canonical JSON of the event as [`canonical_entry`] writes it, less what the server assigns
/// (`id`, `seq`, `received_at`, `prev_hash`) and less `idempotency_key` itself: the key is what
/// the digest is looked up by, and whether it came in the body or beside it (an HTTP header,
/// which is not stored) does not change the event.
///
/// Two events have one digest exactly when their entries would differ only in those fields, so
/// every spelling the event path normalises (key order, timestamps with an offset, IP address
/// forms, `null` for absent, `1.0` for `1`) gives the same digest, and any other difference a
/// different one. For an entry `e` sealtrail wrote, `event_digest(&Entry::parse(e)?.event)` is
/// the digest of the event it was written from.
pub fn event_digest(event: &Event) -> Result<Hash, EventError> {
    let mut out = Vec::with_capacity(1024);
    write_event(&mut out, event, None)?;
    let mut hasher = Sha256::new();
    hasher.update(EVENT_DIGEST_TAG);
    hasher.update(&out);
    Ok(Hash(hasher.finalize().into()))
}

/// Sets [`event_digest`] apart from every other SHA-256 sealtrail computes (leaf and node
/// hashes begin with the byte 0 or 1, never with this text).
const EVENT_DIGEST_TAG: &[u8] = b"sealtrail event digest v1\n";

/// RFC 8785 canonical JSON of any value, e.g. one from [`event::parse_json`]. Numbers are
/// rounded to the nearest double as RFC 8785 specifies; only numbers beyond the range of a
/// double are refused (rule `number_precision`), as is nesting deeper than 128 levels.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, EventError> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value, &Path::Root, Numbers::Nearest, 1)?;
    Ok(out)
}

fn too_big(size: usize) -> EventError {
    EventError::new(
        "",
        Rule::MaxSize,
        format!(
            "the canonical entry is {size} bytes; the limit is {MAX_ENTRY_BYTES}: shorten details or split the event"
        ),
    )
}

fn read_server_fields(map: &Map<String, Value>) -> Result<ServerFields, EventError> {
    let root = Path::Root;
    let get = |name: &'static str| -> Result<(&Value, Path<'_>), EventError> {
        let path = Path::Key(&root, name);
        match map.get(name) {
            None | Some(Value::Null) => Err(event::required(&path)),
            Some(value) => Ok((value, path)),
        }
    };
    let string = |value: &'_ Value, path: &Path<'_>| -> Result<String, EventError> {
        match value {
            Value::String(text) => Ok(text.clone()),
            other => Err(event::type_error(path, "a string", other)),
        }
    };

    let (value, path) = get("id")?;
    let text = string(value, &path)?;
    let id = Uuid::try_parse(&text)
        .ok()
        .filter(|id| id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == text.as_str())
        .ok_or_else(|| {
            EventError::at(
                &path,
                Rule::Uuid,
                "must be a lowercase hyphenated uuid such as 01890a5d-ac96-774b-bcce-b302099a8057",
            )
        })?;

    let (value, path) = get("seq")?;
    let seq = event::safe_integer(value, &path)?;

    let (value, path) = get("received_at")?;
    let received_at = Timestamp::parse(&string(value, &path)?).map_err(|e| {
        EventError::at(
            &path,
            Rule::Timestamp,
            match e {
                TimestampError::Syntax => "must be an rfc 3339 timestamp",
                TimestampError::OutOfRange => "must be between years 1970 and 9999",
            },
        )
    })?;

    let (value, path) = get("prev_hash")?;
    let prev_hash = Hash::from_hex(&string(value, &path)?).map_err(|_| {
        EventError::at(&path, Rule::Hash, "must be 64 lowercase hexadecimal digits")
    })?;

    Ok(ServerFields {
        id,
        seq,
        received_at,
        prev_hash,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes the members of an object whose keys are known at compile time. Keys must be given
/// in canonical order; they are ASCII without characters that need escaping, so byte order is
/// UTF-16 order.
struct Members<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
    last: &'static str,
}

impl<'o> Members<'o> {
    fn open(out: &'o mut Vec<u8>) -> Members<'o> {
        out.push(b'{');
        Members {
            out,
            first: true,
            last: "",
        }
    }

    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(
            self.first || self.last < key,
            "member {key:?} written after {:?}",
            self.last
        );
        self.last = key;
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn string(&mut self, key: &'static str, value: &str) {
        write_str(self.key(key), value);
    }

    fn opt_string(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(key, value);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn write_entry(out: &mut Vec<u8>, event: &Event, server: &ServerFields) -> Result<(), EventError> {
    write_event(out, event, Some(server))
}

/// Writes the canonical object of `event`: with `server`, the entry; without, the event alone
/// as [`event_digest`] hashes it (no server fields, no `idempotency_key`).
fn write_event(
    out: &mut Vec<u8>,
    event: &Event,
    server: Option<&ServerFields>,
) -> Result<(), EventError> {
    let root = Path::Root;
    let mut m = Members::open(out);
    m.string("action", &event.action);
    if let Some(activity) = event.activity {
        m.string("activity", activity.as_str());
    }
    write_actor(m.key("actor"), &event.actor);
    if let Some(context) = event.context.as_ref().filter(|c| !c.is_empty()) {
        write_context(m.key("context"), context);
    }
    if !event.details.is_empty() {
        let path = Path::Key(&root, "details");
        write_object(m.key("details"), &event.details, &path, Numbers::Exact, 1)?;
    }
    if let Some(disclosure) = event.disclosure.as_ref().filter(|d| !d.is_empty()) {
        write_disclosure(m.key("disclosure"), disclosure);
    }
    if let Some(server) = server {
        m.string(
            "id",
            server
                .id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        m.opt_string("idempotency_key", event.idempotency_key.as_deref());
    }
    if let Some(occurred_at) = event.occurred_at {
        write_timestamp(m.key("occurred_at"), occurred_at);
    }
    m.string("outcome", event.outcome.as_str());
    m.opt_string("outcome_reason", event.outcome_reason.as_deref());
    if let Some(server) = server {
        write_hash(m.key("prev_hash"), &server.prev_hash);
        write_timestamp(m.key("received_at"), server.received_at);
        write_u64(m.key("seq"), server.seq);
    }
    if let Some(source) = event.source.as_ref().filter(|s| !s.is_empty()) {
        let path = Path::Key(&root, "source");
        write_source(m.key("source"), source, &path)?;
    }
    if !event.targets.is_empty() {
        write_targets(m.key("targets"), &event.targets);
    }
    m.close();
    Ok(())
}

fn write_actor(out: &mut Vec<u8>, actor: &Actor) {
    let mut m = Members::open(out);
    m.opt_string("email", actor.email.as_deref());
    m.string("id", &actor.id);
    m.opt_string("name", actor.name.as_deref());
    if !actor.roles.is_empty() {
        let out = m.key("roles");
        out.push(b'[');
        for (i, role) in actor.roles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, role);
        }
        out.push(b']');
    }
    m.opt_string("type", actor.kind.map(|k| k.as_str()));
    m.close();
}

fn write_context(out: &mut Vec<u8>, context: &Context) {
    let mut m = Members::open(out);
    if let Some(ip) = context.ip {
        // An address's text form contains only hex digits, dots and colons: nothing to escape.
        let _ = write!(m.key("ip"), "\"{ip}\"");
    }
    m.opt_string("request_id", context.request_id.as_deref());
    m.opt_string("session_id", context.session_id.as_deref());
    m.opt_string("trace_id", context.trace_id.as_deref());
    m.opt_string("user_agent", context.user_agent.as_deref());
    m.close();
}

fn write_source(out: &mut Vec<u8>, source: &Source, path: &Path<'_>) -> Result<(), EventError> {
    let mut m = Members::open(out);
    m.opt_string("app", source.app.as_deref());
    m.opt_string("instance", source.instance.as_deref());
    if let Some(seq) = source.seq {
        if seq > MAX_SAFE_INTEGER {
            return Err(EventError::at(
                &Path::Key(path, "seq"),
                Rule::Range,
                format!("must be at most {MAX_SAFE_INTEGER} (2^53 - 1)"),
            ));
        }
        write_u64(m.key("seq"), seq);
    }
    m.close();
    Ok(())
}

fn write_disclosure(out: &mut Vec<u8>, disclosure: &Disclosure) {
    let mut m = Members::open(out);
    m.opt_string("description", disclosure.description.as_deref());
    m.opt_string("purpose", disclosure.purpose.as_deref());
    m.opt_string("recipient", disclosure.recipient.as_deref());
    m.opt_string("recipient_address", disclosure.recipient_address.as_deref());
    m.close();
}

fn write_targets(out: &mut Vec<u8>, targets: &[Target]) {
    out.push(b'[');
    for (i, target) in targets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut m = Members::open(out);
        m.opt_string("id", target.id.as_deref());
        m.opt_string("name", target.name.as_deref());
        m.opt_string("type", target.kind.as_deref());
        m.close();
    }
    out.push(b']');
}

fn write_hash(out: &mut Vec<u8>, hash: &Hash) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for byte in hash.0 {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes a JSON string with RFC 8785 escaping (§3.2.2.2).
fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(offset) = find_escape(&bytes[start..]) {
        let at = start + offset;
        out.extend_from_slice(&bytes[start..at]);
        push_escape(out, bytes[at]);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first byte that must be escaped. Almost no byte needs it, so the bytes
/// are tested eight at a time with the classic SWAR "has a byte less than n" and "has a zero
/// byte" tricks, which are exact about whether such a byte exists in the word (the word is
/// then searched byte by byte).
fn find_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        if control
            || has_zero(word ^ (ONES * u64::from(b'"')))
            || has_zero(word ^ (ONES * u64::from(b'\\')))
        {
            return chunk
                .iter()
                .position(|&b| needs_escape(b))
                .map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| needs_escape(b))
        .map(|i| offset + i)
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        }
    }
}

/// Writes a timestamp as a JSON string in [`Timestamp::to_rfc3339`]'s form
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), straight into the entry.
fn write_timestamp(out: &mut Vec<u8>, timestamp: Timestamp) {
    out.push(b'"');
    out.extend_from_slice(&timestamp.rfc3339_bytes());
    out.push(b'"');
}

/// How numbers are turned into their canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Numbers {
    /// Refuse any number whose canonical form has a different value (event entries).
    Exact,
    /// Round to the nearest double, as RFC 8785 does ([`canonicalize`]).
    Nearest,
}

/// Writes a number's RFC 8785 form under the given policy. Short integers are copied as they
/// are, because their text already is their canonical form.
fn write_number(out: &mut Vec<u8>, number: &Number, numbers: Numbers) -> Result<(), NumberError> {
    let text = number.as_str();
    if is_short_integer(text) && text != "-0" {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    match numbers {
        Numbers::Exact => match check_number(text)? {
            NumberCheck::Canonical => out.extend_from_slice(text.as_bytes()),
            NumberCheck::Normalised(canonical) => {
                out.extend_from_slice(canonical.as_str().as_bytes())
            }
        },
        Numbers::Nearest => {
            let value: f64 = text.parse().map_err(|_| NumberError::Invalid)?;
            if !value.is_finite() {
                return Err(NumberError::NotFinite);
            }
            out.extend_from_slice(EcmaNumber::format(value).as_str().as_bytes());
        }
    }
    Ok(())
}

fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    path: &Path<'_>,
    numbers: Numbers,
    depth: usize,
) -> Result<(), EventError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number, numbers)
            .map_err(|e| number_error(path, number.as_str(), &e))?,
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            check_depth(path, depth)?;
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item, &Path::Index(path, index), numbers, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map, path, numbers, depth)?,
    }
    Ok(())
}

fn check_depth(path: &Path<'_>, depth: usize) -> Result<(), EventError> {
    if depth > MAX_CANONICAL_DEPTH {
        return Err(EventError::at(
            path,
            Rule::MaxDepth,
            format!("nests more than {MAX_CANONICAL_DEPTH} levels deep"),
        ));
    }
    Ok(())
}

fn write_object(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    path: &Path<'_>,
    numbers: Numbers,
    depth: usize,
) -> Result<(), EventError> {
    check_depth(path, depth)?;
    out.push(b'{');
    let member = |out: &mut Vec<u8>, index: usize, key: &str, value: &Value| {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value, &Path::Key(path, key), numbers, depth + 1)
    };
    // serde_json's map iterates in code point order, which is UTF-16 order unless keys mix
    // supplementary characters with U+E000..U+FFFF; sort only in that rare case.
    if keys_in_utf16_order(map) {
        for (index, (key, value)) in map.iter().enumerate() {
            member(out, index, key, value)?;
        }
    } else {
        let mut members: Vec<(&String, &Value)> = map.iter().collect();
        members.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
        for (index, (key, value)) in members.into_iter().enumerate() {
            member(out, index, key, value)?;
        }
    }
    out.push(b'}');
    Ok(())
}

fn keys_in_utf16_order(map: &Map<String, Value>) -> bool {
    let mut keys = map.keys();
    let Some(mut previous) = keys.next() else {
        return true;
    };
    for key in keys {
        if cmp_utf16(previous, key) != Ordering::Less {
            return false;
        }
        previous = key;
    }
    true
}

/// Compares strings by their UTF-16 code units, the member order RFC 8785 §3.2.3 requires.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let Some(i) = x.iter().zip(y).position(|(p, q)| p != q) else {
        return x.len().cmp(&y.len());
    };
    if x[i] < 0x80 && y[i] < 0x80 {
        return x[i].cmp(&y[i]);
    }
    // The strings agree up to byte i, so they have the same character boundaries up to it;
    // compare the first differing characters as UTF-16.
    let mut start = i;
    while !a.is_char_boundary(start) {
        start -= 1;
    }
    let units = |text: &str| {
        text.get(start..)
            .and_then(|rest| rest.chars().next())
            .map(|c| {
                let mut buffer = [0u16; 2];
                let encoded = c.encode_utf16(&mut buffer);
                (encoded[0], encoded.get(1).copied().unwrap_or(0))
            })
    };
    units(a).cmp(&units(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_fields` borrows what has no escapes, unescapes what has, skips the rest, and
    /// refuses bytes that are not UTF-8 anywhere, in a skipped field as well.
    #[test]
    fn read_fields_borrows_skips_and_refuses_what_is_not_utf8() {
        #[derive(serde::Deserialize)]
        struct Fields<'a> {
            #[serde(borrow)]
            action: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            actor: std::borrow::Cow<'a, str>,
            seq: u64,
        }
        let bytes = br#"{"action":"a.b","actor":"say \"hi\"","details":{"x":[1,"y"]},"seq":7}"#;
        let fields: Fields<'_> = read_fields(bytes).unwrap();
        assert!(matches!(fields.action, std::borrow::Cow::Borrowed("a.b")));
        assert_eq!(fields.actor, "say \"hi\"");
        assert!(matches!(fields.actor, std::borrow::Cow::Owned(_)));
        assert_eq!(fields.seq, 7);

        let mut damaged = bytes.to_vec();
        let at = damaged.windows(1).position(|w| w == b"y").unwrap();
        damaged[at] = 0xff;
        let error = read_fields::<Fields<'_>>(&damaged).err().expect("refused");
        assert!(error.to_string().contains("utf-8"), "{error}");
        assert!(read_fields::<Fields<'_>>(br#"{"action":"a","seq":1}"#).is_err());
    }

    #[test]
    fn utf16_order_differs_from_code_point_order_only_above_the_bmp() {
        assert_eq!(cmp_utf16("a", "b"), Ordering::Less);
        assert_eq!(cmp_utf16("a", "ab"), Ordering::Less);
        assert_eq!(cmp_utf16("", ""), Ordering::Equal);
        assert_eq!(cmp_utf16("\u{e9}", "\u{ea}"), Ordering::Less);
        // U+1F600 is D83D DE00 in UTF-16, below U+FB33.
        assert_eq!(cmp_utf16("\u{1f600}", "\u{fb33}"), Ordering::Less);
        assert_eq!(cmp_utf16("x\u{1f600}", "x\u{fb33}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{1f600}", "\u{1f601}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{7f}", "\u{80}"), Ordering::Less);
    }

    #[test]
    fn strings_escape_only_what_rfc_8785_escapes() {
        let mut out = Vec::new();
        write_str(
            &mut out,
            "a\"b\\c/\u{8}\t\n\u{c}\r\u{0}\u{1f}\u{7f}\u{2028}é",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c/\\b\\t\\n\\f\\r\\u0000\\u001f\u{7f}\u{2028}é\""
        );
    }

    #[test]
    fn a_timestamp_is_written_as_a_json_string_of_its_rfc3339_form() {
        // The form itself is checked against the `time` crate in `timestamp`; here, only that
        // the entry holds it quoted and unescaped.
        let timestamp = Timestamp::from_unix_micros(951_782_400_000_001).unwrap();
        let mut out = Vec::new();
        write_timestamp(&mut out, timestamp);
        assert_eq!(out, b"\"2000-02-29T00:00:00.000001Z\"");
    }

    fn parsed(json: &str) -> Event {
        Event::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn an_event_digest_ignores_spelling_server_fields_and_the_key_but_nothing_else() {
        let base = r#"{"action":"patient.record.read","activity":"read","outcome":"success",
            "actor":{"id":"u-1","type":"user"},"occurred_at":"2026-11-23T10:00:00Z",
            "context":{"ip":"2001:db8::1"},"targets":[{"type":"patient","id":"p-9"}],
            "idempotency_key":"k-1","details":{"n":1,"fields":["name","dob"]}}"#;
        let digest = event_digest(&parsed(base)).unwrap();
        // Other spellings of the same event, and the same event under no key or another one.
        for same in [
            r#"{"details":{"fields":["name","dob"],"n":1.0},"idempotency_key":"k-1",
                "targets":[{"id":"p-9","type":"patient"}],"context":{"ip":"2001:DB8::0:1"},
                "occurred_at":"2026-11-23T11:00:00.000000+01:00","actor":{"type":"user","id":"u-1"},
                "outcome":"success","activity":"read","action":"patient.record.read",
                "outcome_reason":null,"source":null}"#,
            &base.replace(r#""idempotency_key":"k-1","#, ""),
            &base.replace("k-1", "k-2"),
        ] {
            assert_eq!(event_digest(&parsed(same)).unwrap(), digest, "{same}");
        }
        // Any difference in what would be stored is a different event.
        for (from, to) in [
            ("patient.record.read", "patient.record.delete"),
            (r#""activity":"read""#, r#""activity":"delete""#),
            ("u-1", "u-2"),
            ("10:00:00Z", "10:00:00.000001Z"),
            ("2001:db8::1", "2001:db8::2"),
            ("p-9", "p-8"),
            (r#""n":1"#, r#""n":2"#),
            (r#"["name","dob"]"#, r#"["dob","name"]"#),
            (r#""outcome":"success""#, r#""outcome":"failure""#),
            (
                r#""type":"user""#,
                r#""type":"user","email":"u@example.com""#,
            ),
        ] {
            let other = base.replace(from, to);
            assert_ne!(event_digest(&parsed(&other)).unwrap(), digest, "{other}");
        }
        // The digest of a stored entry's event is the digest of the event it was written from,
        // whatever the server assigned.
        let server = ServerFields {
            id: Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap(),
            seq: 41,
            received_at: Timestamp::parse("2026-11-23T10:00:01Z").unwrap(),
            prev_hash: leaf_hash(b"previous"),
        };
        let entry = canonical_entry(&parsed(base), &server).unwrap();
        let stored = Entry::parse(&entry).unwrap();
        assert_eq!(event_digest(&stored.event).unwrap(), digest);
        // Nothing a log holds or proves is that digest.
        assert_ne!(leaf_hash(&entry), digest);
    }

    #[test]
    fn escape_search_finds_the_first_byte_that_needs_escaping() {
        let mut text = vec![b'a'; 40];
        assert_eq!(find_escape(&text), None);
        for special in [0u8, 0x1f, b'"', b'\\', 0x08] {
            for at in 0..text.len() {
                text[at] = special;
                assert_eq!(find_escape(&text), Some(at));
                text[at] = b'a';
            }
        }
        // Bytes just above the escaped ranges, and non-ASCII, do not match.
        let near: Vec<u8> = (0x20u8..=0xff)
            .filter(|b| *b != b'"' && *b != b'\\')
            .collect();
        assert_eq!(find_escape(&near), None);
    }
}
