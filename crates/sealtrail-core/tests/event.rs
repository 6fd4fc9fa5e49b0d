//! Event schema v1 and canonical entries: what is rejected and why, what is normalised, the
//! exact bytes of the brief's example, round trips, the size limit, and properties over random
//! input.

use proptest::prelude::*;
use sealtrail_core::canonical::{
    Entry, MAX_ENTRY_BYTES, ServerFields, canonical_entry, canonicalize, event_hash,
};
use sealtrail_core::event::{
    Activity, ActorType, Event, EventError, MAX_DETAILS_DEPTH, MAX_JSON_DEPTH, MAX_SAFE_INTEGER,
    MAX_TEXT_CHARS, Outcome, Rule, parse_json,
};
use sealtrail_core::{Hash, Timestamp};
use serde_json::{Map, Value, json};

/// The example event from the brief's "Event schema v1".
const BRIEF_EXAMPLE: &str = r#"{
  "occurred_at": "2026-11-23T10:00:00.123456Z",
  "action": "patient.record.read",
  "activity": "read",
  "outcome": "success",
  "outcome_reason": null,
  "actor": {"id": "u-123", "type": "user", "email": "dr.lee@clinic.example", "name": "Dr Lee", "roles": ["physician"]},
  "targets": [{"type": "patient", "id": "p-9", "name": "J. Doe"}],
  "context": {"ip": "10.1.2.3", "user_agent": "ehr-web/4.2", "request_id": "req-77", "session_id": "s-5", "trace_id": "…"},
  "source": {"app": "ehr-web", "instance": "pod-7", "seq": 18233},
  "idempotency_key": "req-77:read:p-9",
  "disclosure": {"recipient": "Acme Insurance", "recipient_address": "…", "purpose": "payment", "description": "claim summary"},
  "details": {"fields": ["name", "dob"], "reason": "treatment"}
}"#;

fn server() -> ServerFields {
    ServerFields {
        id: uuid::Uuid::parse_str("019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b").unwrap(),
        seq: 18,
        received_at: Timestamp::parse("2026-11-23T10:00:00.2Z").unwrap(),
        prev_hash: Hash::from_hex(
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        )
        .unwrap(),
    }
}

/// A minimal valid event with `extra` members added.
fn with(extra: &str) -> String {
    if extra.is_empty() {
        r#"{"action":"a.b","actor":{"id":"u"},"outcome":"success"}"#.to_owned()
    } else {
        format!(r#"{{"action":"a.b","actor":{{"id":"u"}},"outcome":"success",{extra}}}"#)
    }
}

fn nested(levels: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
}

fn list(count: usize, item: &str) -> String {
    vec![item; count].join(",")
}

fn object_with_keys(count: usize) -> String {
    let members: Vec<String> = (0..count).map(|i| format!("\"k{i}\":{i}")).collect();
    format!("{{{}}}", members.join(","))
}

#[test]
fn bad_inputs_name_the_field_and_the_rule() {
    let long = |n: usize| "x".repeat(n);
    let long_key_path = format!("details.{}", long(257));
    let cases: Vec<(String, &str, &str)> = vec![
        // The document.
        ("{\"action\":".into(), "", "syntax"),
        ("{\"action\":\"a\"} x".into(), "", "syntax"),
        ("[]".into(), "", "type"),
        ("\"event\"".into(), "", "type"),
        ("null".into(), "", "type"),
        // Required fields; null is the same as missing.
        ("{}".into(), "action", "required"),
        (
            r#"{"actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "required",
        ),
        (
            r#"{"action":null,"actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "required",
        ),
        (
            r#"{"action":"a","outcome":"success"}"#.into(),
            "actor",
            "required",
        ),
        (
            r#"{"action":"a","actor":null,"outcome":"success"}"#.into(),
            "actor",
            "required",
        ),
        (
            r#"{"action":"a","actor":{},"outcome":"success"}"#.into(),
            "actor.id",
            "required",
        ),
        (
            r#"{"action":"a","actor":{"id":null},"outcome":"success"}"#.into(),
            "actor.id",
            "required",
        ),
        (
            r#"{"action":"a","actor":{"id":"u"}}"#.into(),
            "outcome",
            "required",
        ),
        // action.
        (
            r#"{"action":"","actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "empty",
        ),
        (
            r#"{"action":"read record","actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "pattern",
        ),
        (
            r#"{"action":"lecture.é","actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "pattern",
        ),
        (
            format!(
                r#"{{"action":"{}","actor":{{"id":"u"}},"outcome":"success"}}"#,
                long(129)
            ),
            "action",
            "max_length",
        ),
        (
            r#"{"action":5,"actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "type",
        ),
        // Enumerations.
        (
            r#"{"action":"a","actor":{"id":"u"},"outcome":"ok"}"#.into(),
            "outcome",
            "enum",
        ),
        (
            r#"{"action":"a","actor":{"id":"u"},"outcome":true}"#.into(),
            "outcome",
            "type",
        ),
        (with(r#""activity":"Read""#), "activity", "enum"),
        (with(r#""activity":["read"]"#), "activity", "type"),
        (
            r#"{"action":"a","actor":{"id":"u","type":"robot"},"outcome":"success"}"#.into(),
            "actor.type",
            "enum",
        ),
        // actor.
        (
            r#"{"action":"a","actor":"u-1","outcome":"success"}"#.into(),
            "actor",
            "type",
        ),
        (
            r#"{"action":"a","actor":{"id":""},"outcome":"success"}"#.into(),
            "actor.id",
            "empty",
        ),
        (
            r#"{"action":"a","actor":{"id":7},"outcome":"success"}"#.into(),
            "actor.id",
            "type",
        ),
        (
            format!(
                r#"{{"action":"a","actor":{{"id":"{}"}},"outcome":"success"}}"#,
                long(257)
            ),
            "actor.id",
            "max_length",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","roles":"admin"},"outcome":"success"}"#.into(),
            "actor.roles",
            "type",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","roles":["a",1]},"outcome":"success"}"#.into(),
            "actor.roles[1]",
            "type",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","roles":["a",null]},"outcome":"success"}"#.into(),
            "actor.roles[1]",
            "type",
        ),
        (
            format!(
                r#"{{"action":"a","actor":{{"id":"u","roles":[{}]}},"outcome":"success"}}"#,
                list(33, "\"r\"")
            ),
            "actor.roles",
            "max_items",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","department":"x"},"outcome":"success"}"#.into(),
            "actor.department",
            "unknown_field",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","name":"a\u0000b"},"outcome":"success"}"#.into(),
            "actor.name",
            "nul_character",
        ),
        // targets.
        (with(r#""targets":{"id":"p"}"#), "targets", "type"),
        (with(r#""targets":[null]"#), "targets[0]", "type"),
        (
            with(r#""targets":[{"id":"p"},{"id":"q"},{"type":5}]"#),
            "targets[2].type",
            "type",
        ),
        (
            with(r#""targets":[{"id":"p"},{"id":"p","kind":"x"}]"#),
            "targets[1].kind",
            "unknown_field",
        ),
        (
            with(&format!(r#""targets":[{}]"#, list(65, r#"{"id":"p"}"#))),
            "targets",
            "max_items",
        ),
        // context.
        (with(r#""context":{"ip":"10.1.2.256"}"#), "context.ip", "ip"),
        (with(r#""context":{"ip":"010.1.2.3"}"#), "context.ip", "ip"),
        (
            with(r#""context":{"ip":"10.1.2.3:443"}"#),
            "context.ip",
            "ip",
        ),
        (with(r#""context":{"ip":"[::1]"}"#), "context.ip", "ip"),
        (
            with(r#""context":{"ip":"fe80::1%eth0"}"#),
            "context.ip",
            "ip",
        ),
        (with(r#""context":{"ip":""}"#), "context.ip", "ip"),
        (with(r#""context":{"ip":167838211}"#), "context.ip", "type"),
        (
            with(&format!(r#""context":{{"user_agent":"{}"}}"#, long(4097))),
            "context.user_agent",
            "max_length",
        ),
        (
            with(r#""context":{"hostname":"x"}"#),
            "context.hostname",
            "unknown_field",
        ),
        (with(r#""context":"10.1.2.3""#), "context", "type"),
        // source.
        (with(r#""source":{"seq":-1}"#), "source.seq", "range"),
        (
            with(r#""source":{"seq":9007199254740992}"#),
            "source.seq",
            "range",
        ),
        (
            with(r#""source":{"seq":18446744073709551616}"#),
            "source.seq",
            "range",
        ),
        (with(r#""source":{"seq":1e400}"#), "source.seq", "range"),
        (with(r#""source":{"seq":1.5}"#), "source.seq", "type"),
        (with(r#""source":{"seq":"5"}"#), "source.seq", "type"),
        (with(r#""source":{"pid":1}"#), "source.pid", "unknown_field"),
        // occurred_at.
        (
            with(r#""occurred_at":"yesterday""#),
            "occurred_at",
            "timestamp",
        ),
        (
            with(r#""occurred_at":"2026-11-23T10:00:00""#),
            "occurred_at",
            "timestamp",
        ),
        (
            with(r#""occurred_at":"2026-11-23""#),
            "occurred_at",
            "timestamp",
        ),
        (
            with(r#""occurred_at":"1969-12-31T23:59:59Z""#),
            "occurred_at",
            "timestamp",
        ),
        (with(r#""occurred_at":1795000000"#), "occurred_at", "type"),
        // idempotency_key, outcome_reason, disclosure.
        (with(r#""idempotency_key":"""#), "idempotency_key", "empty"),
        (
            with(&format!(r#""outcome_reason":"{}""#, long(4097))),
            "outcome_reason",
            "max_length",
        ),
        (
            with(r#""disclosure":{"recipient":5}"#),
            "disclosure.recipient",
            "type",
        ),
        (
            with(r#""disclosure":{"to":"x"}"#),
            "disclosure.to",
            "unknown_field",
        ),
        // details.
        (with(r#""details":"x""#), "details", "type"),
        (with(r#""details":[1]"#), "details", "type"),
        (
            with(&format!(r#""details":{}"#, nested(MAX_DETAILS_DEPTH + 1))),
            "details.a.a.a.a.a.a.a.a",
            "max_depth",
        ),
        (
            with(&format!(r#""details":{}"#, nested(MAX_JSON_DEPTH + 2))),
            "details.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
            "max_depth",
        ),
        (
            with(&format!(r#""details":{}"#, object_with_keys(257))),
            "details",
            "max_items",
        ),
        (
            with(&format!(r#""details":{{"a":[{}]}}"#, list(257, "0"))),
            "details.a",
            "max_items",
        ),
        (
            with(&format!(r#""details":{{"{}":1}}"#, long(257))),
            &long_key_path,
            "max_length",
        ),
        (
            with(&format!(r#""details":{{"s":"{}"}}"#, long(4097))),
            "details.s",
            "max_length",
        ),
        (
            with(r#""details":{"s":"a\u0000"}"#),
            "details.s",
            "nul_character",
        ),
        (
            with(r#""details":{"a\u0000":1}"#),
            r#"details["a\u0000"]"#,
            "nul_character",
        ),
        (
            with(r#""details":{"$serde_json::private::Number":"1"}"#),
            r#"details["$serde_json::private::Number"]"#,
            "reserved_key",
        ),
        (
            with(r#""details":{"n":9007199254740993}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"n":1e400}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"n":-1e400}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"n":1e-400}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"n":0.1000000000000000000001}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"n":123456789012345678901234}"#),
            "details.n",
            "number_precision",
        ),
        (
            with(r#""details":{"a":[1,{"b":[0.30000000000000000001]}]}"#),
            "details.a[1].b[0]",
            "number_precision",
        ),
        // Duplicate keys, anywhere.
        (
            r#"{"action":"a","action":"b","actor":{"id":"u"},"outcome":"success"}"#.into(),
            "action",
            "duplicate_key",
        ),
        (
            r#"{"action":"a","actor":{"id":"u","id":"v"},"outcome":"success"}"#.into(),
            "actor.id",
            "duplicate_key",
        ),
        (
            with(r#""details":{"x":{"y":1,"y":1}}"#),
            "details.x.y",
            "duplicate_key",
        ),
        // Unknown and server-assigned fields.
        (with(r#""foo":1"#), "foo", "unknown_field"),
        (with(r#""outcom":"success""#), "outcom", "unknown_field"),
        (
            with(r#""id":"019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b""#),
            "id",
            "unknown_field",
        ),
        (with(r#""seq":1"#), "seq", "unknown_field"),
        (
            with(r#""received_at":"2026-11-23T10:00:00Z""#),
            "received_at",
            "unknown_field",
        ),
        (with(r#""prev_hash":"00""#), "prev_hash", "unknown_field"),
        (with(r#""event_hash":"00""#), "event_hash", "unknown_field"),
    ];
    for (input, field, rule) in &cases {
        let error = match Event::parse(input.as_bytes()) {
            Ok(event) => panic!("accepted {input}: {event:?}"),
            Err(error) => error,
        };
        assert_eq!(
            (error.field.as_str(), error.rule.code()),
            (*field, *rule),
            "{input}\n{error}"
        );
        let first = error.message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "message starts uppercase: {error}");
        assert!(
            !error.message.ends_with('.'),
            "message ends with a period: {error}"
        );
    }
    assert!(cases.len() > 80);

    // Bytes that are not UTF-8.
    let error = Event::parse(b"{\"action\":\"\xc3\x28\"}").unwrap_err();
    assert_eq!((error.field.as_str(), error.rule), ("", Rule::Syntax));
}

#[test]
fn error_messages_say_what_to_do() {
    let e = Event::parse(with(r#""activity":"reed""#).as_bytes()).unwrap_err();
    assert_eq!(
        e.message,
        "must be one of create, read, update, delete, login, logout, export, disclose, admin, other (got \"reed\")"
    );
    let e = Event::parse(with(r#""colour":"red""#).as_bytes()).unwrap_err();
    assert!(e.message.contains("put custom data in \"details\""), "{e}");
    let e = Event::parse(with(r#""details":{"n":9007199254740993}"#).as_bytes()).unwrap_err();
    assert_eq!(
        e.message,
        "number 9007199254740993 cannot be represented exactly and would be stored as 9007199254740992; send it as a string"
    );
    let e = Event::parse(b"{\"action\":\n  tru}").unwrap_err();
    assert!(
        e.message.starts_with("invalid json at line 2 column"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!("{} (rule syntax)", e.message),
        "an error about the whole document has no field prefix"
    );
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["rule"], "syntax");
    assert_eq!(json["field"], "");
}

#[test]
fn the_brief_example_parses() {
    let event = Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(event.action, "patient.record.read");
    assert_eq!(event.activity, Some(Activity::Read));
    assert_eq!(event.outcome, Outcome::Success);
    assert_eq!(event.outcome_reason, None);
    assert_eq!(event.actor.kind, Some(ActorType::User));
    assert_eq!(event.actor.roles, ["physician"]);
    assert_eq!(event.targets[0].kind.as_deref(), Some("patient"));
    assert_eq!(
        event.context.as_ref().unwrap().ip,
        Some("10.1.2.3".parse().unwrap())
    );
    assert_eq!(event.source.as_ref().unwrap().seq, Some(18233));
    assert_eq!(event.idempotency_key(), Some("req-77:read:p-9"));
    assert_eq!(
        event.occurred_at.unwrap().to_rfc3339(),
        "2026-11-23T10:00:00.123456Z"
    );
    assert_eq!(event.details["reason"], "treatment");
}

#[test]
fn the_brief_example_has_a_stable_canonical_entry() {
    let event = Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap();
    let entry = canonical_entry(&event, &server()).unwrap();
    let expected = concat!(
        r#"{"action":"patient.record.read","activity":"read","#,
        r#""actor":{"email":"dr.lee@clinic.example","id":"u-123","name":"Dr Lee","roles":["physician"],"type":"user"},"#,
        r#""context":{"ip":"10.1.2.3","request_id":"req-77","session_id":"s-5","trace_id":"…","user_agent":"ehr-web/4.2"},"#,
        r#""details":{"fields":["name","dob"],"reason":"treatment"},"#,
        r#""disclosure":{"description":"claim summary","purpose":"payment","recipient":"Acme Insurance","recipient_address":"…"},"#,
        r#""id":"019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b","idempotency_key":"req-77:read:p-9","#,
        r#""occurred_at":"2026-11-23T10:00:00.123456Z","outcome":"success","#,
        r#""prev_hash":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","#,
        r#""received_at":"2026-11-23T10:00:00.200000Z","seq":18,"#,
        r#""source":{"app":"ehr-web","instance":"pod-7","seq":18233},"#,
        r#""targets":[{"id":"p-9","name":"J. Doe","type":"patient"}]}"#,
    );
    assert_eq!(std::str::from_utf8(&entry).unwrap(), expected);
    // The hand-written member order above is RFC 8785's: a general canonicaliser agrees.
    assert_eq!(canonicalize(&parse_json(&entry).unwrap()).unwrap(), entry);
    // Regression pin: if this changes, every existing log's hashes change with it.
    assert_eq!(
        event_hash(&entry).to_hex(),
        sealtrail_core::leaf_hash(expected.as_bytes()).to_hex()
    );
    assert_eq!(
        event_hash(&entry).to_hex(),
        "0277dc9e13cd29b44c9893056fe5938b4461d15f869d69f698e9bca315ed19dd"
    );
}

#[test]
fn seq_zero_links_to_the_zero_hash() {
    let event = Event::parse(with("").as_bytes()).unwrap();
    let server = ServerFields {
        seq: 0,
        prev_hash: Hash::ZERO,
        ..server()
    };
    let entry = canonical_entry(&event, &server).unwrap();
    let text = std::str::from_utf8(&entry).unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"action":"a.b","actor":{{"id":"u"}},"id":"019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b","outcome":"success","prev_hash":"{}","received_at":"2026-11-23T10:00:00.200000Z","seq":0}}"#,
            "0".repeat(64)
        )
    );
}

#[test]
fn server_seq_must_be_an_exact_json_number() {
    let event = Event::parse(with("").as_bytes()).unwrap();
    let mut server = server();
    server.seq = MAX_SAFE_INTEGER;
    assert!(canonical_entry(&event, &server).is_ok());
    server.seq = MAX_SAFE_INTEGER + 1;
    let e = canonical_entry(&event, &server).unwrap_err();
    assert_eq!((e.field.as_str(), e.rule), ("seq", Rule::Range));
}

#[test]
fn values_are_normalised() {
    let input = with(concat!(
        r#""occurred_at":"2026-11-23T11:30:00.1234567+01:30","#,
        r#""context":{"ip":"2001:DB8:0:0:0:0:0:1","user_agent":null},"#,
        r#""source":{"seq":1.8233e4},"#,
        r#""details":{"a":1.0,"b":1e2,"c":0.1,"d":-0,"e":[4.50,2e-3],"f":{"g":1E30}}"#
    ));
    let event = Event::parse(input.as_bytes()).unwrap();
    let entry = String::from_utf8(canonical_entry(&event, &server()).unwrap()).unwrap();
    assert!(
        entry.contains(r#""occurred_at":"2026-11-23T10:00:00.123456Z""#),
        "{entry}"
    );
    assert!(
        entry.contains(r#""context":{"ip":"2001:db8::1"}"#),
        "{entry}"
    );
    assert!(entry.contains(r#""source":{"seq":18233}"#), "{entry}");
    assert!(
        entry
            .contains(r#""details":{"a":1,"b":100,"c":0.1,"d":0,"e":[4.5,0.002],"f":{"g":1e+30}}"#),
        "{entry}"
    );
    // The event itself holds the normalised numbers, so it equals what reading the entry back
    // gives.
    assert_eq!(event.details["b"].as_number().unwrap().as_str(), "100");
    assert_eq!(Entry::parse(entry.as_bytes()).unwrap().event, event);

    let v4_mapped = Event::parse(with(r#""context":{"ip":"::FFFF:10.1.2.3"}"#).as_bytes()).unwrap();
    assert_eq!(
        v4_mapped.context.unwrap().ip.unwrap().to_string(),
        "::ffff:10.1.2.3"
    );
}

#[test]
fn null_and_empty_mean_absent() {
    let bare = Event::parse(with("").as_bytes()).unwrap();
    let spelled_out = Event::parse(
        with(concat!(
            r#""activity":null,"outcome_reason":null,"occurred_at":null,"targets":[],"#,
            r#""context":{"ip":null,"trace_id":null},"source":{},"idempotency_key":null,"#,
            r#""disclosure":null,"details":{}"#
        ))
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(spelled_out, bare);
    assert_eq!(
        canonical_entry(&spelled_out, &server()).unwrap(),
        canonical_entry(&bare, &server()).unwrap()
    );
    let roles = Event::parse(
        br#"{"action":"a.b","actor":{"id":"u","roles":[],"type":null},"outcome":"success"}"#,
    )
    .unwrap();
    assert_eq!(roles, bare);
    // Inside details nothing is dropped.
    let details = Event::parse(with(r#""details":{"n":null,"o":{},"a":[]}"#).as_bytes()).unwrap();
    let entry = String::from_utf8(canonical_entry(&details, &server()).unwrap()).unwrap();
    assert!(
        entry.contains(r#""details":{"a":[],"n":null,"o":{}}"#),
        "{entry}"
    );
}

#[test]
fn limits_are_inclusive() {
    let ok = [
        format!(
            r#"{{"action":"{}","actor":{{"id":"u"}},"outcome":"success"}}"#,
            "a".repeat(128)
        ),
        format!(
            r#"{{"action":"a","actor":{{"id":"{}"}},"outcome":"success"}}"#,
            "é".repeat(256)
        ),
        with(&format!(r#""outcome_reason":"{}""#, "€".repeat(4096))),
        with(&format!(r#""targets":[{}]"#, list(64, "{}"))),
        format!(
            r#"{{"action":"a","actor":{{"id":"u","roles":[{}]}},"outcome":"success"}}"#,
            list(32, "\"r\"")
        ),
        with(&format!(r#""details":{}"#, nested(MAX_DETAILS_DEPTH))),
        with(&format!(r#""details":{}"#, object_with_keys(256))),
        with(&format!(r#""details":{{"a":[{}]}}"#, list(256, "0"))),
        with(r#""source":{"seq":9007199254740991}"#),
        with(r#""source":{"seq":0}"#),
        with(r#""occurred_at":"9999-12-31T23:59:59.999999Z""#),
        r#"{"action":"Az09._:/-","actor":{"id":"u"},"outcome":"success"}"#.to_owned(),
    ];
    for input in ok {
        if let Err(e) = Event::parse(input.as_bytes()) {
            panic!("rejected {}…: {e}", &input[..input.len().min(80)]);
        }
    }
}

#[test]
fn batches_are_parsed_once_and_checked_one_by_one() {
    let batch = format!("[{}, {}, {}]", with(""), r#"{"action":"a"}"#, BRIEF_EXAMPLE);
    let Value::Array(items) = parse_json(batch.as_bytes()).unwrap() else {
        panic!("not an array");
    };
    let results: Vec<Result<Event, EventError>> = items.iter().map(Event::from_value).collect();
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err().field, "actor");
    assert_eq!(
        results[2].as_ref().unwrap(),
        &Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap()
    );
    let owned: Vec<_> = items.into_iter().map(Event::from_owned_value).collect();
    assert_eq!(owned[2], results[2]);
    // A duplicate key makes the batch document itself invalid; the path names the element.
    let batch = format!(r#"[{}, {{"action":"a","action":"b"}}]"#, with(""));
    let e = parse_json(batch.as_bytes()).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.rule),
        ("[1].action", Rule::DuplicateKey)
    );
}

fn entry_size_with_details(fill: usize) -> Result<Vec<u8>, EventError> {
    // Sixteen keys of up to MAX_TEXT_CHARS each; the fill is spread over them.
    let mut details = Map::new();
    let mut left = fill;
    for i in 0..16 {
        let n = left.min(MAX_TEXT_CHARS);
        left -= n;
        details.insert(format!("p{i:02}"), Value::String("x".repeat(n)));
    }
    assert_eq!(left, 0);
    let mut value = parse_json(with("").as_bytes()).unwrap();
    value["details"] = Value::Object(details);
    let event = Event::from_value(&value)?;
    canonical_entry(&event, &server())
}

#[test]
fn entry_size_limit_just_under_and_over() {
    let base = entry_size_with_details(0).unwrap().len();
    let under = entry_size_with_details(MAX_ENTRY_BYTES - base).unwrap();
    assert_eq!(under.len(), MAX_ENTRY_BYTES);
    assert_eq!(Entry::parse(&under).unwrap().to_bytes().unwrap(), under);

    let e = entry_size_with_details(MAX_ENTRY_BYTES - base + 1).unwrap_err();
    assert_eq!((e.field.as_str(), e.rule), ("", Rule::MaxSize));
    assert_eq!(
        e.message,
        "the canonical entry is 65536 bytes; the limit is 65535: shorten details or split the event"
    );
    let mut over = under.clone();
    over.insert(1, b' ');
    assert_eq!(Entry::parse(&over).unwrap_err().rule, Rule::MaxSize);
}

#[test]
fn entries_round_trip() {
    let event = Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap();
    let entry = canonical_entry(&event, &server()).unwrap();
    let read = Entry::parse(&entry).unwrap();
    assert_eq!(read.event, event);
    assert_eq!(read.server, server());
    assert_eq!(canonical_entry(&read.event, &read.server).unwrap(), entry);
}

#[test]
fn canonicalisation_is_idempotent() {
    // The canonical entry with its server fields removed is itself a valid event document,
    // and parsing it again gives the same event and the same entry.
    let event = Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap();
    let entry = canonical_entry(&event, &server()).unwrap();
    let mut value = parse_json(&entry).unwrap();
    let map = value.as_object_mut().unwrap();
    for key in ["id", "seq", "received_at", "prev_hash"] {
        map.remove(key);
    }
    let again = Event::from_value(&value).unwrap();
    assert_eq!(again, event);
    assert_eq!(canonical_entry(&again, &server()).unwrap(), entry);
}

#[test]
fn stored_entries_are_checked() {
    let event = Event::parse(with("").as_bytes()).unwrap();
    let entry = String::from_utf8(canonical_entry(&event, &server()).unwrap()).unwrap();
    let cases = [
        (
            entry.replace(
                "019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b",
                "019AB0C3-6F2E-7D41-9A8B-0C1D2E3F4A5B",
            ),
            "id",
            Rule::Uuid,
        ),
        (
            entry.replace(
                "019ab0c3-6f2e-7d41-9a8b-0c1d2e3f4a5b",
                "019ab0c36f2e7d419a8b0c1d2e3f4a5b",
            ),
            "id",
            Rule::Uuid,
        ),
        (
            entry.replace("\"seq\":18", "\"seq\":-1"),
            "seq",
            Rule::Range,
        ),
        (entry.replace(",\"seq\":18", ""), "seq", Rule::Required),
        (
            entry.replace("2c26b46b", "2C26B46B"),
            "prev_hash",
            Rule::Hash,
        ),
        (
            entry.replace("2026-11-23T10:00:00.200000Z", "noon"),
            "received_at",
            Rule::Timestamp,
        ),
        (
            entry.replace("{\"action\"", "{\"event_hash\":\"00\",\"action\""),
            "event_hash",
            Rule::UnknownField,
        ),
        ("[]".to_owned(), "", Rule::Type),
    ];
    for (input, field, rule) in cases {
        let e = Entry::parse(input.as_bytes()).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), (field, rule), "{input}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z0-9._:/-]{1,12}",
        4 => prop::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
        1 => Just(String::new()),
        1 => Just("a\u{0}b".to_owned()),
    ]
}

fn arb_number_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop_oneof![3 => "[0-9]{1,6}", 1 => "[0-9]{1,22}"],
        prop::option::of(prop_oneof![3 => "[0-9]{1,6}", 1 => "[0-9]{1,22}"]),
        prop::option::of(-340i32..340),
    )
        .prop_map(|(negative, int, frac, exp)| {
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let mut text = String::new();
            if negative {
                text.push('-');
            }
            text.push_str(int);
            if let Some(frac) = frac {
                text.push('.');
                text.push_str(&frac);
            }
            if let Some(exp) = exp {
                text.push_str(&format!("e{exp}"));
            }
            text
        })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        arb_number_text().prop_map(|t| Value::Number(t.parse().unwrap())),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_text(), inner), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly-valid events: every optional field is sometimes present, sometimes with a random
/// (often invalid) value.
fn arb_event() -> impl Strategy<Value = Value> {
    let field = |valid: Value| {
        prop_oneof![
            6 => Just(None),
            8 => Just(Some(valid)),
            1 => arb_json().prop_map(Some),
        ]
    };
    let required = |valid: Value| {
        prop_oneof![
            1 => Just(None),
            12 => Just(Some(valid)),
            1 => arb_json().prop_map(Some),
        ]
    };
    (
        (
            required(json!("patient.record.read")),
            field(json!("read")),
            required(json!("success")),
            required(json!({"id": "u-1", "type": "user", "roles": ["a", "b"]})),
            field(json!([{"type": "patient", "id": "p-9"}])),
        ),
        (
            field(json!({"ip": "10.1.2.3", "user_agent": "x"})),
            field(json!({"app": "ehr", "seq": 7})),
            field(json!("2026-11-23T10:00:00.123456Z")),
            field(json!({"recipient": "Acme"})),
            prop::collection::vec((arb_text(), arb_json()), 0..4),
            arb_text(),
        ),
    )
        .prop_map(
            |(
                (action, activity, outcome, actor, targets),
                (context, source, occurred_at, disclosure, details, actor_id),
            )| {
                let mut map = Map::new();
                let mut put = |key: &str, value: Option<Value>| {
                    if let Some(value) = value {
                        map.insert(key.to_owned(), value);
                    }
                };
                put("action", action);
                put("activity", activity);
                put("outcome", outcome);
                put(
                    "actor",
                    actor.map(|mut a| {
                        if a.get("id").is_some() {
                            a["id"] = Value::String(actor_id);
                        }
                        a
                    }),
                );
                put("targets", targets);
                put("context", context);
                put("source", source);
                put("occurred_at", occurred_at);
                put("disclosure", disclosure);
                put(
                    "details",
                    Some(Value::Object(details.into_iter().collect())),
                );
                Value::Object(map)
            },
        )
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match kind % 3 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

/// Whatever is accepted must survive the round trip through a canonical entry exactly.
fn check_accepted(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(event) = Event::parse(bytes) else {
        return Ok(());
    };
    let entry = match canonical_entry(&event, &server()) {
        Ok(entry) => entry,
        Err(e) => {
            prop_assert_eq!(e.rule, Rule::MaxSize);
            return Ok(());
        }
    };
    let read = Entry::parse(&entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&read.event, &event);
    prop_assert_eq!(
        canonical_entry(&read.event, &read.server).unwrap(),
        entry.clone()
    );
    prop_assert_eq!(canonicalize(&parse_json(&entry).unwrap()).unwrap(), entry);
    Ok(())
}

/// An independent statement of the number rule: the value of the text equals the value of its
/// ECMAScript form, both written as 0.DIGITS × 10^EXP.
fn decimal_value(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().unwrap()),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let digits = digits.trim_matches('0').to_owned();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, digits, int.len() as i64 - leading as i64 + exp)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_accepted(&bytes)?;
        let _ = Entry::parse(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)) {
        let bytes = mutate(BRIEF_EXAMPLE.as_bytes().to_vec(), &edits);
        check_accepted(&bytes)?;
        let entry = canonical_entry(&Event::parse(BRIEF_EXAMPLE.as_bytes()).unwrap(), &server()).unwrap();
        let _ = Entry::parse(&mutate(entry, &edits));
    }

    #[test]
    fn random_json_values_never_panic(value in arb_json()) {
        check_accepted(&serde_json::to_vec(&value).unwrap())?;
        let _ = Event::from_value(&value);
    }

    #[test]
    fn random_events_round_trip(value in arb_event()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        check_accepted(&bytes)?;
        prop_assert_eq!(Event::from_value(&value).ok(), Event::parse(&bytes).ok());
    }

    #[test]
    fn numbers_are_accepted_iff_their_canonical_form_has_the_same_value(text in arb_number_text()) {
        let input = with(&format!(r#""details":{{"n":{text}}}"#));
        let value: f64 = text.parse().unwrap();
        let exact = value.is_finite()
            && decimal_value(&text) == decimal_value(&json_canon::to_string(&value).unwrap());
        match Event::parse(input.as_bytes()) {
            Ok(event) => {
                prop_assert!(exact, "accepted {}", text);
                let stored = event.details["n"].as_number().unwrap().as_str().to_owned();
                prop_assert_eq!(stored, json_canon::to_string(&value).unwrap());
            }
            Err(e) => {
                prop_assert!(!exact, "rejected {}: {}", text, e);
                prop_assert_eq!(e.rule, Rule::NumberPrecision);
            }
        }
    }
}

#[test]
fn the_event_generator_produces_accepted_events() {
    // Guard against a property that passes only because everything is rejected.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_event();
    let accepted = (0..500)
        .filter(|_| {
            let value = strategy.new_tree(&mut runner).unwrap().current();
            Event::from_value(&value).is_ok()
        })
        .count();
    println!("{accepted} of 500 generated events were valid");
    assert!(
        accepted > 50,
        "only {accepted} of 500 generated events were valid"
    );
}
