//! The error that every event and entry check reports, and the JSON paths it names.
//!
//! An [`EventError`] says which field is wrong (as a JSON path such as `targets[2].type`),
//! which [`Rule`] it broke (a stable snake_case code that HTTP clients match on) and what the
//! producer should do about it. The type lives in its own module because three parts of the
//! core report in this one form: the number rules (`number`), event parsing (`event`) and
//! canonical entries (`canonical`). Keeping it apart lets each of them depend on the error
//! type without depending on the others.
//!
//! Paths are built on the stack while a document is walked ([`Path`]) and rendered into text
//! only when an error is actually reported, so that checking a valid event allocates nothing
//! for them.

use std::fmt;
use std::fmt::Write as _;

/// The rule an input broke. [`Rule::code`] is part of the HTTP API's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Not well-formed UTF-8 JSON.
    Syntax,
    /// A required field is missing or `null`.
    Required,
    /// A field that must carry a value is an empty string.
    Empty,
    /// The JSON type is wrong (a number where a string belongs, …).
    Type,
    /// Not one of the allowed values of an enumeration.
    Enum,
    /// Contains characters the field does not allow.
    Pattern,
    /// Not an RFC 3339 timestamp in the supported range.
    Timestamp,
    /// A time further in the future than the server accepts (`occurred_at`).
    Future,
    /// An `action` in the `sealtrail.` namespace, which only sealtrail's own `_system` log
    /// may hold (heartbeats, `sealtrail.heartbeat`, excepted).
    ReservedAction,
    /// Not an IPv4 or IPv6 address.
    Ip,
    /// A number outside the field's range.
    Range,
    /// A string longer than the field allows.
    MaxLength,
    /// An array or object with more items than allowed.
    MaxItems,
    /// Nested too deeply.
    MaxDepth,
    /// The canonical entry would exceed [`MAX_ENTRY_BYTES`](crate::canonical::MAX_ENTRY_BYTES).
    MaxSize,
    /// A number RFC 8785 cannot represent exactly.
    NumberPrecision,
    /// The same key twice in one object.
    DuplicateKey,
    /// A field the schema does not define (custom data belongs in `details`).
    UnknownField,
    /// A string containing U+0000.
    NulCharacter,
    /// A key reserved by the JSON implementation.
    ReservedKey,
    /// A stored entry's `id` is not a lowercase hyphenated UUID.
    Uuid,
    /// A stored entry's `prev_hash` is not 64 lowercase hex digits.
    Hash,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 22] = [
        Rule::Syntax,
        Rule::Required,
        Rule::Empty,
        Rule::Type,
        Rule::Enum,
        Rule::Pattern,
        Rule::Timestamp,
        Rule::Future,
        Rule::ReservedAction,
        Rule::Ip,
        Rule::Range,
        Rule::MaxLength,
        Rule::MaxItems,
        Rule::MaxDepth,
        Rule::MaxSize,
        Rule::NumberPrecision,
        Rule::DuplicateKey,
        Rule::UnknownField,
        Rule::NulCharacter,
        Rule::ReservedKey,
        Rule::Uuid,
        Rule::Hash,
    ];

    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::Required => "required",
            Rule::Empty => "empty",
            Rule::Type => "type",
            Rule::Enum => "enum",
            Rule::Pattern => "pattern",
            Rule::Timestamp => "timestamp",
            Rule::Future => "future",
            Rule::ReservedAction => "reserved_action",
            Rule::Ip => "ip",
            Rule::Range => "range",
            Rule::MaxLength => "max_length",
            Rule::MaxItems => "max_items",
            Rule::MaxDepth => "max_depth",
            Rule::MaxSize => "max_size",
            Rule::NumberPrecision => "number_precision",
            Rule::DuplicateKey => "duplicate_key",
            Rule::UnknownField => "unknown_field",
            Rule::NulCharacter => "nul_character",
            Rule::ReservedKey => "reserved_key",
            Rule::Uuid => "uuid",
            Rule::Hash => "hash",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// Why an event (or a stored entry) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct EventError {
    /// JSON path of the offending value: `actor.id`, `targets[2].type`, `details.a.b`, or `""`
    /// for the document as a whole.
    pub field: String,
    /// The rule that was broken.
    pub rule: Rule,
    /// What is wrong and what to do, lowercase, without a trailing period.
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, rule: Rule, message: impl Into<String>) -> EventError {
        EventError {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }

    pub(crate) fn at(path: &Path<'_>, rule: Rule, message: impl Into<String>) -> EventError {
        EventError::new(path.render(), rule, message)
    }

    fn render(&self) -> String {
        if self.field.is_empty() {
            format!("{} (rule {})", self.message, self.rule.code())
        } else {
            format!(
                "{}: {} (rule {})",
                self.field,
                self.message,
                self.rule.code()
            )
        }
    }
}

/// A JSON path built on the stack while walking a document, rendered only when an error needs
/// it, so that checking a valid event allocates nothing for paths.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render_into(out);
                push_key_segment(out, key);
            }
            Path::Index(parent, index) => {
                parent.render_into(out);
                push_index_segment(out, *index);
            }
        }
    }
}

/// Appends `.key`, or `["key"]` when the key is not a plain identifier, so that a path stays
/// unambiguous for keys containing dots, brackets or quotes.
pub(crate) fn push_key_segment(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push('[');
        push_quoted(out, key, 64);
        out.push(']');
    }
}

pub(crate) fn push_index_segment(out: &mut String, index: usize) {
    let _ = write!(out, "[{index}]");
}

/// Appends `text` as a JSON string literal, cut after `limit` characters (marked with `…`) so
/// that an error about a huge value does not repeat it in full.
fn push_quoted(out: &mut String, text: &str, limit: usize) {
    out.push('"');
    for (i, c) in text.chars().enumerate() {
        if i == limit {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `text` as a JSON string literal for an error message, cut after 64 characters.
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(64) + 2);
    push_quoted(&mut out, text, 64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_unambiguously() {
        let root = Path::Root;
        let details = Path::Key(&root, "details");
        let odd = Path::Key(&details, "a.b");
        let item = Path::Index(&odd, 3);
        let inner = Path::Key(&item, "x_y-1");
        assert_eq!(inner.render(), r#"details["a.b"][3].x_y-1"#);
        assert_eq!(Path::Key(&root, "").render(), r#"[""]"#);
        assert_eq!(Path::Index(&root, 0).render(), "[0]");
    }

    #[test]
    fn rule_codes_are_snake_case_and_unique() {
        let mut codes: Vec<&str> = Rule::ALL.iter().map(Rule::code).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Rule::ALL.len());
    }

    #[test]
    fn error_display_names_field_and_rule() {
        let e = EventError::new("actor.id", Rule::Required, "is required");
        assert_eq!(e.to_string(), "actor.id: is required (rule required)");
        let e = EventError::new("", Rule::Syntax, "invalid json");
        assert_eq!(e.to_string(), "invalid json (rule syntax)");
    }
}
