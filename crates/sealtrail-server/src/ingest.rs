//! The ingest service: turns a body of bytes and its content type into submissions to the
//! write path, and the ledger's outcomes into typed results — one per event, so that one bad
//! event in a batch rejects only itself.
//!
//! It knows the three input shapes — a single JSON event, a JSON array and NDJSON — and where
//! an event's idempotency key comes from (the `Idempotency-Key` header or the body's
//! `idempotency_key`, which must agree). It knows nothing of HTTP: `http::ingest` extracts
//! the bytes, the content type and the header and maps what comes back to status codes, and
//! the stream consumers will call the same functions with a message's bytes.
//!
//! It also refuses an event whose `occurred_at` is further ahead of the server's clock than
//! `max_future_skew` allows (rule `future`, [`Event::check_occurred_at`]). The check is here,
//! not in the core's parsing, because it needs the time and the core reads no clock; and not
//! in the ledger, because it is the producer's mistake to be answered like any other invalid
//! field, before anything reaches the write path. It is made per event, so in a batch an
//! event dated in the future rejects only itself. An `action` in the `sealtrail.` namespace
//! is refused the same way (rule `reserved_action`): those are sealtrail's own records, kept
//! in `_system`; only the heartbeat, `sealtrail.heartbeat`, may be sent by a producer.
//!
//! A frozen tenant's submissions are refused whole before anything else is looked at
//! ([`IngestError::Frozen`], HTTP `503` `tenant_frozen`): nothing of them is kept — unless
//! the tenant's `on_frozen` policy is `spool`: then they are checked as usual and the valid
//! events are held ([`Accepted::Held`], HTTP `202` `held`): kept durably in the tenant's
//! hold file, outside its log, until it is unfrozen (see `ledger::holding`). Whether a
//! tenant is frozen comes from [`Freezes`], this instance's copy of the store's state, read
//! again at most once per re-check interval (see [`crate::freeze`]).
//!
//! An idempotency key names one event. A retry of that event gets the original receipt
//! ([`Accepted::Duplicate`]); a different event sent under a key already used is refused
//! ([`KeyConflict`], HTTP `422` with rule `idempotency_conflict`), naming the original. The
//! ledger decides which it is, under the tenant's lock (see `ledger::group`).
//!
//! **Architecture invariant:** nothing is acknowledged here; an [`Accepted`] exists only once
//! the ledger reports the event durable (committed, or kept in the spool or a hold file).

use sealtrail_core::event::{Event, EventError, parse_json, parse_valid_batch};

use std::time::Duration;

use crate::clock::Clock;
use crate::config::{FrozenPolicies, FrozenPolicy};
use crate::freeze::{Freezes, TenantFrozen};
use crate::ledger::{Ledger, LedgerError, Original, Outcome, Receipt, SpoolReceipt, Submission};

/// A single event's body may be at most this large (its canonical entry is capped at 64 KiB).
pub const MAX_EVENT_BODY: usize = 1024 * 1024;
/// A batch may hold at most this many events...
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// ...in at most this many bytes.
pub const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;
/// Longest accepted idempotency key given beside the body (the `Idempotency-Key` header).
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The media type of a single event.
pub const JSON: &str = "application/json";
/// The media type of a newline-delimited batch.
pub const NDJSON: &str = "application/x-ndjson";

/// An event the log has taken, durably.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// Committed now.
    Created(Receipt),
    /// Committed earlier under the same idempotency key: the original receipt.
    Duplicate(Receipt),
    /// The store is unreachable; kept in the local spool and committed, in order, later.
    Spooled(SpoolReceipt),
    /// The tenant is frozen (`on_frozen = "spool"`); kept in its hold file and committed, in
    /// order, once it is unfrozen.
    Held(SpoolReceipt),
}

/// An event sent under an idempotency key that already names a different event: nothing of
/// it was kept. Answering it with the original's receipt would tell the producer that an
/// event was recorded that never was.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the idempotency key {key:?} already names a different event ({}): a retry must send the same event as the first attempt; send a new event under a key of its own",
    describe(original)
)]
pub struct KeyConflict {
    /// Where the key was given: `Idempotency-Key` (the header), `idempotency_key` (the body),
    /// or `[3].idempotency_key` (an element of a batch).
    pub field: String,
    pub key: String,
    /// The event the key names.
    pub original: Original,
}

fn describe(original: &Original) -> String {
    match original {
        Original::Committed(receipt) => format!("seq {}, id {}", receipt.seq, receipt.id),
        Original::Spooled(receipt) => {
            format!("id {}, waiting in the spool for its seq", receipt.id)
        }
        Original::Held(receipt) => {
            format!(
                "id {}, held while the tenant is frozen, waiting for its seq",
                receipt.id
            )
        }
    }
}

/// Why one event was not taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    /// It breaks a rule of the schema (or is too large once canonical).
    #[error(transparent)]
    Invalid(#[from] EventError),
    #[error(transparent)]
    KeyConflict(#[from] KeyConflict),
}

/// One element of a batch: taken, or refused, naming the field (`[index].path`) and the rule.
pub type ElementResult = Result<Accepted, Refused>;

/// Why a submission was refused as a whole: nothing of it entered the log.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The `_system` log records sealtrail's own administrative actions only.
    #[error(
        "the _system log records sealtrail's administrative actions only; send events to another tenant"
    )]
    ReservedTenant,
    /// The tenant is frozen (boxed: it carries the freeze).
    #[error(transparent)]
    Frozen(Box<TenantFrozen>),
    #[error("Content-Type must be {want}, got {}", got.as_deref().unwrap_or("none"))]
    UnsupportedMediaType {
        got: Option<String>,
        want: &'static str,
    },
    /// The single event (or the batch as a JSON document) breaks a rule.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The idempotency key given beside the body breaks `rule`.
    #[error("{message}")]
    IdempotencyKey { rule: &'static str, message: String },
    /// The idempotency key already names a different event (boxed: it carries a receipt).
    #[error(transparent)]
    KeyConflict(Box<KeyConflict>),
    #[error("a batch holds at most {MAX_BATCH_EVENTS} events, this one has {count}; split it")]
    TooManyEvents { count: usize },
    /// The write path failed: nothing of the `submitted` events was kept.
    #[error("{error}")]
    NotKept {
        submitted: u64,
        #[source]
        error: LedgerError,
    },
    /// The ledger answered a submission with no outcome, which it never should.
    #[error("the ledger returned no outcome")]
    NoOutcome,
}

/// The ingest service. Cloning is cheap.
#[derive(Clone)]
pub struct Ingest {
    ledger: Ledger,
    /// Which tenants are frozen, and so take nothing (or have their events held).
    freezes: Freezes,
    /// What a frozen tenant's submissions get: refused, or held.
    on_frozen: FrozenPolicies,
    /// How far ahead of `clock` an event's `occurred_at` may be.
    max_future_skew: Duration,
    /// The time `occurred_at` is checked against.
    clock: Clock,
}

impl Ingest {
    pub fn new(
        ledger: Ledger,
        freezes: Freezes,
        max_future_skew: Duration,
        clock: Clock,
    ) -> Ingest {
        Ingest {
            ledger,
            freezes,
            on_frozen: FrozenPolicies::default(),
            max_future_skew,
            clock,
        }
    }

    /// The same, answering frozen tenants' submissions by `on_frozen` (by default every
    /// frozen tenant's are refused).
    pub fn with_frozen_policies(self, on_frozen: FrozenPolicies) -> Ingest {
        Ingest { on_frozen, ..self }
    }

    /// Where a submission to `tenant` goes: the log, or (frozen, policy `spool`) its hold
    /// file. A frozen tenant's submission under policy `refuse` is refused, whatever it
    /// holds, and counted (`sealtrail_frozen_refusals_total`).
    async fn destination(&self, tenant: &str) -> Result<Destination, IngestError> {
        let Some(freeze) = self.freezes.of(tenant).await else {
            return Ok(Destination::Log);
        };
        crate::metrics::held_known(tenant);
        if self.on_frozen.of(tenant) == FrozenPolicy::Spool {
            return Ok(Destination::Hold);
        }
        crate::metrics::frozen_refused(tenant);
        Err(IngestError::Frozen(Box::new(TenantFrozen {
            tenant: tenant.to_string(),
            freeze,
        })))
    }

    /// Hands submissions to the ledger for `destination`.
    async fn submit(
        &self,
        tenant: &str,
        destination: Destination,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        match destination {
            Destination::Log => self.ledger.append(tenant, submissions).await,
            Destination::Hold => self.ledger.hold(tenant, submissions).await,
        }
    }

    /// The event as submitted, unless it breaks a rule that depends on the time or on the
    /// log it is sent to (a producer's log never holds sealtrail's own actions).
    fn timely(&self, event: Event) -> Result<Event, EventError> {
        event.check_occurred_at(self.clock.now(), self.max_future_skew)?;
        check_action(&event)?;
        Ok(event)
    }

    /// Takes one event: `body` of media type `content_type` (lowercase, without parameters),
    /// with `key` the idempotency key given beside the body, if any.
    pub async fn event(
        &self,
        tenant: &str,
        content_type: Option<&str>,
        key: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        refuse_system_log(tenant)?;
        let destination = self.destination(tenant).await?;
        if content_type != Some(JSON) {
            return Err(unsupported(content_type, JSON));
        }
        // A valid event is read straight into an `Event`; anything else is parsed the
        // ordinary way, which names what is wrong.
        let event = match Event::parse_valid(body) {
            Some(event) => event,
            None => {
                let value = parse_json(body)?;
                if value.is_array() {
                    return Err(EventError::new(
                        "",
                        sealtrail_core::event::Rule::Type,
                        "this route takes one event object; send arrays to /v1/events/batch",
                    )
                    .into());
                }
                Event::from_owned_value(value)?
            }
        };
        let event = self.timely(event)?;
        let idempotency_key = idempotency_key(key, &event)?;
        // Named where the producer gave it, for a conflict.
        let key_field = if key.is_some() {
            "Idempotency-Key"
        } else {
            "idempotency_key"
        };
        let submission = Submission {
            event,
            idempotency_key: idempotency_key.clone(),
        };
        let outcomes = self
            .submit(tenant, destination, vec![submission])
            .await
            .map_err(|error| IngestError::NotKept {
                submitted: 1,
                error,
            })?;
        match outcomes.into_iter().next() {
            Some(Outcome::Rejected(error)) => Err(error.into()),
            Some(Outcome::Conflict(original)) => {
                Err(IngestError::KeyConflict(Box::new(KeyConflict {
                    field: key_field.to_string(),
                    key: idempotency_key.unwrap_or_default(),
                    original,
                })))
            }
            Some(outcome) => Ok(accepted(outcome).expect("not a refusal")),
            None => Err(IngestError::NoOutcome),
        }
    }

    /// Takes a batch: a JSON array or NDJSON, one result per event in the order sent. Valid
    /// events are committed together; each invalid one is rejected on its own.
    pub async fn batch(
        &self,
        tenant: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<ElementResult>, IngestError> {
        refuse_system_log(tenant)?;
        let destination = self.destination(tenant).await?;
        // Each element is an event read straight from the body when the whole batch (or the
        // NDJSON line) is valid, and otherwise a JSON value checked below, so that one bad
        // event rejects only itself with the ordinary parse's error.
        let values: Vec<Result<Element, EventError>> = match content_type {
            Some(JSON) => match parse_valid_batch(body) {
                Some(events) => events.into_iter().map(|e| Ok(Element::Read(e))).collect(),
                None => match parse_json(body)? {
                    serde_json::Value::Array(values) => {
                        values.into_iter().map(|v| Ok(Element::Value(v))).collect()
                    }
                    _ => {
                        return Err(EventError::new(
                            "",
                            sealtrail_core::event::Rule::Type,
                            "a JSON batch must be an array of events",
                        )
                        .into());
                    }
                },
            },
            Some(NDJSON) => parse_ndjson(body),
            other => {
                return Err(unsupported(
                    other,
                    "application/json or application/x-ndjson",
                ));
            }
        };
        if values.len() > MAX_BATCH_EVENTS {
            return Err(IngestError::TooManyEvents {
                count: values.len(),
            });
        }
        if values.is_empty() {
            return Err(EventError::new(
                "",
                sealtrail_core::event::Rule::Required,
                "the batch holds no events",
            )
            .into());
        }
        let mut results: Vec<Option<ElementResult>> = Vec::with_capacity(values.len());
        let mut submissions = Vec::new();
        let mut submitted_index = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            // An NDJSON line that is not JSON is named by its index too, like any other element.
            match value
                .and_then(Element::into_event)
                .and_then(|event| self.timely(event))
            {
                Ok(event) => {
                    let idempotency_key = event.idempotency_key().map(str::to_string);
                    submissions.push(Submission {
                        event,
                        idempotency_key,
                    });
                    submitted_index.push(index);
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(prefix_field(error, index).into()))),
            }
        }
        if !submissions.is_empty() {
            let submitted = submissions.len() as u64;
            let keys: Vec<Option<String>> = submissions
                .iter()
                .map(|s| s.idempotency_key.clone())
                .collect();
            let outcomes = self
                .submit(tenant, destination, submissions)
                .await
                .map_err(|error| IngestError::NotKept { submitted, error })?;
            for ((index, outcome), key) in submitted_index.into_iter().zip(outcomes).zip(keys) {
                results[index] = Some(match outcome {
                    Outcome::Rejected(error) => Err(prefix_field(error, index).into()),
                    Outcome::Conflict(original) => Err(KeyConflict {
                        field: format!("[{index}].idempotency_key"),
                        key: key.unwrap_or_default(),
                        original,
                    }
                    .into()),
                    outcome => Ok(accepted(outcome).expect("not a refusal")),
                });
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

/// Where a tenant's submissions go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    /// Its log: the tenant is not frozen.
    Log,
    /// Its hold file: the tenant is frozen, under policy `spool`.
    Hold,
}

/// The `sealtrail.` actions are sealtrail's own records (its start and stop, admin actions,
/// doctor probes, alerts) and are written only to the `_system` log; a producer sending one
/// could otherwise pass for sealtrail in its own log. The one a producer may send is the
/// heartbeat ([`crate::gaps::HEARTBEAT_ACTION`]).
fn check_action(event: &Event) -> Result<(), EventError> {
    if event.action.starts_with(RESERVED_ACTION_PREFIX)
        && event.action != crate::gaps::HEARTBEAT_ACTION
    {
        return Err(EventError::new(
            "action",
            sealtrail_core::event::Rule::ReservedAction,
            format!(
                "actions beginning with {RESERVED_ACTION_PREFIX:?} are sealtrail's own; name yours in your application's namespace (only {:?} may be sent, as a heartbeat)",
                crate::gaps::HEARTBEAT_ACTION
            ),
        ));
    }
    Ok(())
}

/// The namespace of sealtrail's own actions.
pub const RESERVED_ACTION_PREFIX: &str = "sealtrail.";

/// What the ledger took, as [`Accepted`]; `None` for a refusal.
fn accepted(outcome: Outcome) -> Option<Accepted> {
    match outcome {
        Outcome::Created(receipt) => Some(Accepted::Created(receipt)),
        Outcome::Duplicate(receipt) => Some(Accepted::Duplicate(receipt)),
        Outcome::Spooled(receipt) => Some(Accepted::Spooled(receipt)),
        Outcome::Held(receipt) => Some(Accepted::Held(receipt)),
        Outcome::Rejected(_) | Outcome::Conflict(_) => None,
    }
}

/// The `_system` log records administrative actions only; producers never write to it, so an
/// event there can always be trusted to be sealtrail's own record.
fn refuse_system_log(tenant: &str) -> Result<(), IngestError> {
    if tenant == crate::ledger::SYSTEM_TENANT {
        return Err(IngestError::ReservedTenant);
    }
    Ok(())
}

fn unsupported(got: Option<&str>, want: &'static str) -> IngestError {
    IngestError::UnsupportedMediaType {
        got: got.map(str::to_string),
        want,
    }
}

/// The key given beside the body: 1 to 256 visible ASCII characters (no spaces), or absent.
fn key_beside_body(key: Option<&[u8]>) -> Result<Option<String>, IngestError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let refuse = |rule, message: String| Err(IngestError::IdempotencyKey { rule, message });
    if key.is_empty() {
        return refuse(
            "min_length",
            "the Idempotency-Key header is empty: send a key of 1-256 characters, or no header"
                .to_string(),
        );
    }
    if key.len() > MAX_IDEMPOTENCY_KEY {
        return refuse(
            "max_length",
            format!("the Idempotency-Key header must be at most {MAX_IDEMPOTENCY_KEY} characters"),
        );
    }
    if !key.iter().all(|b| b.is_ascii_graphic()) {
        return refuse(
            "pattern",
            "the Idempotency-Key header must be visible ASCII characters (no spaces)".to_string(),
        );
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// The event's idempotency key: the one beside the body or the body's, which must agree when
/// both are given (two keys would make a retry's fate depend on which one is looked at).
fn idempotency_key(key: Option<&[u8]>, event: &Event) -> Result<Option<String>, IngestError> {
    match (key_beside_body(key)?, event.idempotency_key()) {
        (Some(beside), Some(body)) if beside != body => Err(IngestError::IdempotencyKey {
            rule: "conflict",
            message: "the Idempotency-Key header and the body's idempotency_key differ: send one key, or the same in both".to_string(),
        }),
        (Some(beside), _) => Ok(Some(beside)),
        (None, body) => Ok(body.map(str::to_string)),
    }
}

/// Names the batch element in an error's field path: `[3].actor.id`.
fn prefix_field(mut error: EventError, index: usize) -> EventError {
    if !error.field.starts_with('[') {
        error.field = if error.field.is_empty() {
            format!("[{index}]")
        } else {
            format!("[{index}].{}", error.field)
        };
    }
    error
}

/// One element of a batch: an event already read, or a JSON value still to be checked.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a JSON batch's elements are all of one kind, so boxing `Event` would only add an allocation per event to the common case"
)]
enum Element {
    Read(Event),
    Value(serde_json::Value),
}

impl Element {
    fn into_event(self) -> Result<Event, EventError> {
        match self {
            Element::Read(event) => Ok(event),
            Element::Value(value) => Event::from_owned_value(value),
        }
    }
}

/// Splits NDJSON into one parse result per non-empty line, so one bad line rejects only itself.
fn parse_ndjson(body: &[u8]) -> Vec<Result<Element, EventError>> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|line| match Event::parse_valid(line) {
            Some(event) => Ok(Element::Read(event)),
            None => parse_json(line).map(Element::Value),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frozen tenants of the embedded store in `dir`, read on every request.
    fn freezes(dir: &std::path::Path) -> Freezes {
        let readers = crate::readers::Readers::new(sealtrail_store::Location::new(dir, None));
        Freezes::new(readers, Duration::ZERO, Clock::system())
    }

    #[tokio::test]
    async fn a_frozen_tenant_is_refused_whole_and_nothing_of_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let ingest = Ingest::new(
            ledger.clone(),
            freezes(dir.path()),
            Duration::from_secs(3600),
            Clock::system(),
        );
        let event = br#"{"action":"a","outcome":"success","actor":{"id":"u"}}"#;
        let taken = ingest.event("acme", Some(JSON), None, event).await;
        assert!(matches!(taken, Ok(Accepted::Created(_))), "{taken:?}");
        let frozen = ledger.freeze("acme", "chain violation", "test").await;
        assert!(frozen.unwrap().changed);
        let size = ledger.head("acme").unwrap().size;
        // Whatever the body holds, valid or not, in whatever shape.
        let batch = format!("[{}]", String::from_utf8_lossy(event));
        for refused in [
            ingest.event("acme", Some(JSON), None, event).await.err(),
            ingest.event("acme", Some(NDJSON), None, b"{").await.err(),
            ingest
                .batch("acme", Some(JSON), batch.as_bytes())
                .await
                .err(),
        ] {
            match refused {
                Some(IngestError::Frozen(frozen)) => {
                    assert_eq!(frozen.tenant, "acme");
                    assert_eq!(frozen.freeze.reason, "chain violation");
                    assert!(
                        frozen
                            .to_string()
                            .contains("sealtrail unfreeze --tenant acme")
                    );
                }
                other => panic!("not refused as frozen: {other:?}"),
            }
        }
        assert_eq!(ledger.head("acme").unwrap().size, size);
        ledger.unfreeze("acme", "resolved", "test").await.unwrap();
        let taken = ingest.event("acme", Some(JSON), None, event).await;
        assert!(matches!(taken, Ok(Accepted::Created(_))), "{taken:?}");
        ledger.shutdown();
    }

    #[test]
    fn the_key_beside_the_body_is_checked_and_must_agree_with_the_bodys() {
        let event = |key: Option<&str>| {
            let mut json =
                serde_json::json!({"action": "a", "actor": {"id": "u"}, "outcome": "success"});
            if let Some(key) = key {
                json["idempotency_key"] = key.into();
            }
            Event::parse(json.to_string().as_bytes()).unwrap()
        };
        let rule = |result: Result<Option<String>, IngestError>| match result {
            Err(IngestError::IdempotencyKey { rule, .. }) => rule,
            other => panic!("not an idempotency key error: {other:?}"),
        };
        assert_eq!(rule(idempotency_key(Some(b""), &event(None))), "min_length");
        let long = vec![b'k'; MAX_IDEMPOTENCY_KEY + 1];
        assert_eq!(
            rule(idempotency_key(Some(&long), &event(None))),
            "max_length"
        );
        assert_eq!(rule(idempotency_key(Some(b"a b"), &event(None))), "pattern");
        assert_eq!(
            rule(idempotency_key(Some(b"k1"), &event(Some("k2")))),
            "conflict"
        );
        for (beside, body, want) in [
            (Some(&b"k1"[..]), Some("k1"), Some("k1")),
            (Some(&b"k1"[..]), None, Some("k1")),
            (None, Some("k2"), Some("k2")),
            (None, None, None),
        ] {
            let key = idempotency_key(beside, &event(body)).unwrap();
            assert_eq!(key.as_deref(), want);
        }
    }

    #[tokio::test]
    async fn an_event_dated_beyond_the_skew_is_refused_and_in_a_batch_only_itself() {
        use sealtrail_core::Timestamp;
        use sealtrail_core::event::Rule;

        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let hand =
            crate::clock::ManualClock::new(Timestamp::parse("2026-11-23T10:00:00Z").unwrap());
        let ingest = Ingest::new(
            ledger.clone(),
            freezes(dir.path()),
            Duration::from_secs(3600),
            hand.clock(),
        );
        let event = |at: &str| {
            format!(
                r#"{{"action":"a","outcome":"success","actor":{{"id":"u"}},"occurred_at":"{at}"}}"#
            )
        };
        let (ok, late, far) = (
            event("2026-11-23T11:00:00Z"),
            event("2026-11-23T11:00:00.000001Z"),
            event("9999-01-01T00:00:00Z"),
        );
        let batch = format!("[{ok},{late},{ok},{far}]");
        let results = ingest
            .batch("acme", Some(JSON), batch.as_bytes())
            .await
            .unwrap();
        let refused: Vec<(usize, String, Rule)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Err(Refused::Invalid(e)) => Some((i, e.field.clone(), e.rule)),
                Err(other) => panic!("{other:?}"),
                Ok(_) => None,
            })
            .collect();
        assert_eq!(
            refused,
            [
                (1, "[1].occurred_at".to_string(), Rule::Future),
                (3, "[3].occurred_at".to_string(), Rule::Future)
            ]
        );
        assert!(matches!(results[0], Ok(Accepted::Created(_))));
        assert!(matches!(results[2], Ok(Accepted::Created(_))));
        match ingest.event("acme", Some(JSON), None, far.as_bytes()).await {
            Err(IngestError::Event(error)) => {
                assert_eq!(
                    (error.field.as_str(), error.rule),
                    ("occurred_at", Rule::Future)
                );
            }
            other => panic!("not refused: {other:?}"),
        }
        // As the server's clock moves on, the same time becomes acceptable.
        hand.advance(Duration::from_secs(1));
        assert!(matches!(
            ingest
                .event("acme", Some(JSON), None, late.as_bytes())
                .await,
            Ok(Accepted::Created(_))
        ));
        ledger.shutdown();
    }

    #[tokio::test]
    async fn sealtrails_own_actions_are_refused_from_producers_except_the_heartbeat() {
        use sealtrail_core::event::Rule;

        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::testing::with_acme(dir.path()).await;
        let ingest = Ingest::new(
            ledger.clone(),
            freezes(dir.path()),
            Duration::from_secs(3600),
            Clock::system(),
        );
        let event = |action: &str| {
            format!(r#"{{"action":"{action}","outcome":"success","actor":{{"id":"u"}}}}"#)
        };
        for action in [
            "sealtrail.server.stopped",
            "sealtrail.doctor.probe",
            "sealtrail.",
        ] {
            match ingest
                .event("acme", Some(JSON), None, event(action).as_bytes())
                .await
            {
                Err(IngestError::Event(error)) => {
                    assert_eq!(
                        (error.field.as_str(), error.rule),
                        ("action", Rule::ReservedAction)
                    );
                    assert!(error.message.contains("sealtrail.heartbeat"), "{error:?}");
                }
                other => panic!("{action} not refused: {other:?}"),
            }
        }
        // In a batch only the reserved one is refused; a heartbeat and look-alikes are taken.
        let batch = format!(
            "[{},{},{},{}]",
            event("sealtrail.heartbeat"),
            event("sealtrail.server.started"),
            event("sealtrailer.login"),
            event("app.sealtrail.export")
        );
        let results = ingest
            .batch("acme", Some(JSON), batch.as_bytes())
            .await
            .unwrap();
        let refused: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(refused, [1]);
        ledger.shutdown();
    }

    #[test]
    fn ndjson_is_one_result_per_non_blank_line_and_errors_name_the_element() {
        let body = b"{\"a\":1}\r\n\n   \n{oops\n[1]";
        let parsed = parse_ndjson(body);
        assert_eq!(parsed.len(), 3);
        assert!(parsed[0].is_ok() && parsed[2].is_ok());
        let error = parsed.into_iter().nth(1).unwrap().unwrap_err();
        assert_eq!(prefix_field(error, 1).field, "[1]");
        let nested = EventError::new("actor.id", sealtrail_core::event::Rule::Required, "x");
        assert_eq!(prefix_field(nested, 3).field, "[3].actor.id");
        let named = EventError::new("[2].x", sealtrail_core::event::Rule::Required, "x");
        assert_eq!(prefix_field(named, 5).field, "[2].x");
    }
}
