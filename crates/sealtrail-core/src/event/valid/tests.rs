//! The direct reader against the ordinary parse: the same event for every valid document it
//! takes, and nothing taken that the ordinary parse refuses.

use super::super::parse_json;
use super::*;

/// Checks the one property the reader must keep, and says whether it took the document.
fn agrees(doc: &[u8]) -> bool {
    let ordinary = Event::parse(doc);
    match Event::parse_valid(doc) {
        Some(direct) => {
            assert_eq!(
                ordinary.as_ref().ok(),
                Some(&direct),
                "parse_valid read {:?} differently from parse ({ordinary:?})",
                String::from_utf8_lossy(doc)
            );
            true
        }
        None => false,
    }
}

const VALID: &[&str] = &[
    r#"{"action":"a","outcome":"success","actor":{"id":"u"}}"#,
    r#"{"action":"patient.record.read","activity":"read","outcome":"failure","outcome_reason":"denied",
       "occurred_at":"2026-11-23T10:00:00.5+02:00",
       "actor":{"id":"dr-1","type":"user","email":"a@b.example","name":"Dr A","roles":["doctor","admin"]},
       "targets":[{"type":"patient","id":"p-1","name":"P"},{"id":"doc-9"},{}],
       "context":{"ip":"2001:DB8::0001","user_agent":"ua","request_id":"r","session_id":"s","trace_id":"t"},
       "source":{"app":"ehr","instance":"i-1","seq":18233},
       "idempotency_key":"k-1",
       "disclosure":{"recipient":"insurer","recipient_address":"x","purpose":"claim","description":"d"},
       "details":{"n":1.0,"big":9007199254740992.0e0,"exact":12345678901234567000,"e":1e2,"neg":-0,"list":[1,2.50,{"x":null}],"o":{},"t":true,"s":"é"}}"#,
    r#"{"action":"a","outcome":"unknown","actor":{"id":"u","type":null,"roles":null},"activity":null,
       "targets":null,"context":null,"source":null,"disclosure":null,"details":null,"idempotency_key":null,
       "occurred_at":null,"outcome_reason":null}"#,
    r#"{"action":"a","outcome":"success","actor":{"id":"u","roles":[]},"targets":[],"context":{},
       "source":{},"disclosure":{},"details":{}}"#,
    r#"{"action":"a","outcome":"success","actor":{"id":"u"},"context":{"ip":null,"user_agent":""},
       "source":{"seq":1.8233e4},"details":{"k":"line\nbreak \"quoted\" \u00e9 \ud83d\ude00"}}"#,
    r#"{"\u0061ction":"a/b:c-d_e.f","outcome":"success","actor":{"id":"a\"b"},"source":{"seq":18233.0,"app":"x"}}"#,
    "  {\"action\":\"a\",\"outcome\":\"success\",\"actor\":{\"id\":\"u\"},\"details\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":1}}}}}}}}\n",
];

#[test]
fn every_valid_document_is_read_directly_and_as_the_ordinary_parse_reads_it() {
    for doc in VALID {
        if let Err(error) = Event::parse(doc.as_bytes()) {
            panic!("the case must be valid: {doc}: {error}");
        }
        assert!(agrees(doc.as_bytes()), "not read directly: {doc}");
    }
}

#[test]
fn nothing_the_ordinary_parse_refuses_is_read_directly() {
    let long_name = "n".repeat(MAX_NAME_CHARS + 1);
    let long_text = "t".repeat(MAX_TEXT_CHARS + 1);
    let many_roles = vec!["\"r\""; MAX_ROLES + 1].join(",");
    let many_targets = vec!["{}"; MAX_TARGETS + 1].join(",");
    let many_items = (0..257)
        .map(|i| format!("\"k{i}\":1"))
        .collect::<Vec<_>>()
        .join(",");
    let base =
        |rest: &str| format!(r#"{{"action":"a","outcome":"success","actor":{{"id":"u"}}{rest}}}"#);
    let cases: Vec<String> = vec![
        base(r#","outcom":"x""#),
        base(r#","id":"0190"#),
        base(r#","seq":1"#),
        base(r#","event_hash":"00""#),
        base(r#","prev_hash":null"#),
        base(r#","action":"b""#),
        base(r#","action":null"#),
        r#"{"action":"a","outcome":"success","actor":{"id":"u","id":"v"}}"#.into(),
        base(r#","details":{"a":{"b":1,"b":2}}"#),
        base(r#","details":{"$serde_json::private::Number":"1"}"#),
        base(r#","source":{"seq":{"$serde_json::private::Number":"5"}}"#),
        base(r#","source":{"seq":-1}"#),
        base(r#","source":{"seq":1.5}"#),
        base(r#","source":{"seq":9007199254740992}"#),
        base(r#","source":{"seq":"5"}"#),
        base(r#","source":{"seq":1,"seq":2}"#),
        r#"{"action":"a b","outcome":"success","actor":{"id":"u"}}"#.into(),
        r#"{"action":"","outcome":"success","actor":{"id":"u"}}"#.into(),
        format!(
            r#"{{"action":"{}","outcome":"success","actor":{{"id":"u"}}}}"#,
            "a".repeat(129)
        ),
        r#"{"action":"a","outcome":"done","actor":{"id":"u"}}"#.into(),
        r#"{"action":"a","outcome":"success","actor":{"id":""}}"#.into(),
        r#"{"action":"a","outcome":"success","actor":{"name":"u"}}"#.into(),
        r#"{"action":"a","outcome":"success","actor":null}"#.into(),
        r#"{"action":"a","outcome":"success"}"#.into(),
        r#"{"action":"a","actor":{"id":"u"}}"#.into(),
        r#"{"action":"a","outcome":"success","actor":{"id":"u","type":"robot"}}"#.into(),
        r#"{"action":"a","outcome":"success","actor":{"id":"u","extra":1}}"#.into(),
        format!(
            r#"{{"action":"a","outcome":"success","actor":{{"id":"u","roles":[{many_roles}]}}}}"#
        ),
        format!(r#"{{"action":"a","outcome":"success","actor":{{"id":"{long_name}"}}}}"#),
        base(&format!(r#","targets":[{many_targets}]"#)),
        base(r#","targets":[null]"#),
        base(r#","targets":[{"kind":"x"}]"#),
        base(r#","targets":{}"#),
        base(r#","activity":"read","activity":"read""#),
        base(r#","activity":"browse""#),
        base(r#","context":{"ip":"10.0.0.1:80"}"#),
        base(r#","context":{"ip":"[::1]"}"#),
        base(r#","occurred_at":"2026-11-23 10:00:00""#),
        base(r#","occurred_at":"10000-01-01T00:00:00Z""#),
        base(r#","outcome_reason":"a\u0000b""#),
        base(&format!(r#","outcome_reason":"{long_text}""#)),
        base(&format!(r#","context":{{"request_id":"{long_name}"}}"#)),
        base(r#","idempotency_key":"""#),
        base(r#","details":[]"#),
        base(r#","details":"x""#),
        base(r#","details":{"a":[[[[[[[[[1]]]]]]]]]}"#),
        base(&format!(r#","details":{{{many_items}}}"#)),
        base(r#","details":{"k\u0000":1}"#),
        base(r#","details":{"n":1e999}"#),
        base(r#","details":{"big":12345678901234567890}"#),
        base(r#","disclosure":{"to":"x"}"#),
        base(r#","disclosure":{"purpose":1}"#),
        base("} "),
        base(",}"),
        r#"[{"action":"a","outcome":"success","actor":{"id":"u"}}]"#.into(),
        "null".into(),
        "".into(),
    ];
    for doc in &cases {
        assert!(
            Event::parse(doc.as_bytes()).is_err(),
            "the case must be invalid: {doc}"
        );
        assert!(
            Event::parse_valid(doc.as_bytes()).is_none(),
            "read directly although invalid: {doc}"
        );
    }
    // Bytes that are not UTF-8.
    let mut bytes = base(r#","outcome_reason":"xx""#).into_bytes();
    let at = bytes.len() - 4;
    bytes[at] = 0xff;
    assert!(Event::parse(&bytes).is_err());
    assert!(Event::parse_valid(&bytes).is_none());
}

/// Every valid document, changed a byte at a time in many ways: whatever the reader takes,
/// the ordinary parse takes too, and reads the same.
#[test]
fn changed_documents_are_read_directly_only_where_the_ordinary_parse_agrees() {
    const ALPHABET: &[u8] = b"\"{}[],:0159.eE-+ anlu\\/\x00tfr";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let (mut taken, mut tried) = (0, 0);
    for doc in VALID {
        for _ in 0..3_000 {
            let mut bytes = doc.as_bytes().to_vec();
            for _ in 0..=next(2) {
                let at = next(bytes.len());
                match next(3) {
                    0 => bytes[at] = ALPHABET[next(ALPHABET.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, ALPHABET[next(ALPHABET.len())]),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            tried += 1;
            if agrees(&bytes) {
                taken += 1;
            }
        }
    }
    // Some changes keep a document valid (a digit for a digit, a letter in a string): the
    // reader must have been exercised on those, not only refused everything.
    assert!(
        taken > tried / 100,
        "only {taken} of {tried} changed documents were read directly"
    );
}

#[test]
fn a_batch_is_read_directly_only_when_every_element_is() {
    let batch = format!("[{}]", VALID.join(","));
    let direct = parse_valid_batch(batch.as_bytes()).expect("every element is valid");
    let ordinary: Vec<Event> = match parse_json(batch.as_bytes()).unwrap() {
        Value::Array(values) => values
            .into_iter()
            .map(|v| Event::from_owned_value(v).unwrap())
            .collect(),
        _ => unreachable!(),
    };
    assert_eq!(direct, ordinary);
    assert_eq!(parse_valid_batch(b" [ ] "), Some(Vec::new()));
    let one_bad = format!(
        "[{},{}]",
        VALID[0], r#"{"action":"a","outcome":"success","actor":{"id":"u"},"seq":1}"#
    );
    assert!(parse_valid_batch(one_bad.as_bytes()).is_none());
    assert!(parse_valid_batch(VALID[0].as_bytes()).is_none());
    assert!(parse_valid_batch(format!("[[{}]]", VALID[0]).as_bytes()).is_none());
    assert!(parse_valid_batch(format!("[{}] x", VALID[0]).as_bytes()).is_none());
}
