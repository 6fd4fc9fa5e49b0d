//! RFC 8785 conformance of `canonicalize`, against the RFC's published examples and, for
//! random values, against the `json-canon` crate as an independent implementation.
//!
//! `canonicalize` follows RFC 8785 exactly, including rounding a number to the nearest double
//! (`333333333.33333329` → `333333333.3333333`). Event parsing is stricter and refuses such
//! numbers instead (rule `number_precision`); `rfc_sample_numbers_under_the_strict_event_rule`
//! shows where the two differ.

use proptest::prelude::*;
use sealtrail_core::canonical::canonicalize;
use sealtrail_core::event::{Event, Rule, parse_json};
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::{Map, Number, Value};

fn canonical_text(json: &str) -> String {
    let value = parse_json(json.as_bytes()).expect("valid json");
    String::from_utf8(canonicalize(&value).expect("canonicalizable")).expect("utf-8")
}

/// RFC 8785 §3.2.2 input, as printed in the RFC.
const RFC_SAMPLE: &str = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;

/// RFC 8785 §3.2.3 output for `RFC_SAMPLE`.
const RFC_SAMPLE_CANONICAL: &str = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";

#[test]
fn rfc_sample_object() {
    assert_eq!(canonical_text(RFC_SAMPLE), RFC_SAMPLE_CANONICAL);
}

#[test]
fn rfc_sample_utf8_bytes() {
    // RFC 8785 §3.2.4 lists the canonical form as UTF-8 bytes; spot-check the parts that are
    // not ASCII or are escapes: the euro sign and the escaped control character.
    let bytes = canonicalize(&parse_json(RFC_SAMPLE.as_bytes()).unwrap()).unwrap();
    let string_at = bytes.windows(9).position(|w| w == b"\"string\":").unwrap();
    assert_eq!(
        &bytes[string_at + 9..string_at + 20],
        &[
            0x22, 0xe2, 0x82, 0xac, 0x24, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x66
        ]
    );
    assert_eq!(bytes.len(), RFC_SAMPLE_CANONICAL.len());
}

#[test]
fn rfc_sorting_example() {
    // RFC 8785 §3.2.3: members sorted by UTF-16 code units.
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value = parse_json(input.as_bytes()).unwrap();
    let canonical = String::from_utf8(canonicalize(&value).unwrap()).unwrap();
    let reparsed: Vec<String> = {
        // Read the member values back in output order.
        let mut order = Vec::new();
        let mut rest = canonical.as_str();
        while let Some(start) = rest.find("\":\"") {
            let after = &rest[start + 3..];
            let end = after.find('"').unwrap();
            order.push(after[..end].to_owned());
            rest = &after[end..];
        }
        order
    };
    assert_eq!(
        reparsed,
        [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
    );
    assert_eq!(
        canonical,
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

/// RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
const APPENDIX_B: &[(u64, &str)] = &[
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7fefffffffffffff, "1.7976931348623157e+308"),
    (0xffefffffffffffff, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xc340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44b52d02c7e14af5, "9.999999999999997e+22"),
    (0x44b52d02c7e14af6, "1e+23"),
    (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
    (0x444b1ae4d6e2ef4e, "999999999999999700000"),
    (0x444b1ae4d6e2ef4f, "999999999999999900000"),
    (0x444b1ae4d6e2ef50, "1e+21"),
    (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
    (0x3eb0c6f7a0b5ed8d, "0.000001"),
    (0x41b3de4355555553, "333333333.3333332"),
    (0x41b3de4355555554, "333333333.33333325"),
    (0x41b3de4355555555, "333333333.3333333"),
    (0x41b3de4355555556, "333333333.3333334"),
    (0x41b3de4355555557, "333333333.33333343"),
    (0xbecbf647612f3696, "-0.0000033333333333333333"),
    (0x43143ff3c1cb0959, "1424953923781206.2"),
];

/// Every finite double as JSON text that parses back to exactly that double.
fn round_trip_text(value: f64) -> String {
    format!("{value:e}")
}

#[test]
fn rfc_appendix_b_numbers() {
    for &(bits, expected) in APPENDIX_B {
        let value = f64::from_bits(bits);
        let text = round_trip_text(value);
        assert_eq!(canonical_text(&text), expected, "{bits:#018x} ({text})");
        // The canonical text denotes the double exactly as far as RFC 8785 is concerned, so
        // the strict event rule accepts it unchanged.
        let event = format!(
            r#"{{"action":"a","actor":{{"id":"u"}},"outcome":"success","details":{{"n":{expected}}}}}"#
        );
        let parsed = Event::parse(event.as_bytes()).unwrap();
        assert_eq!(parsed.details["n"].as_number().unwrap().as_str(), expected);
    }
}

#[test]
fn nan_and_infinity_are_not_representable() {
    // JSON has no spelling for them…
    for text in ["NaN", "Infinity", "-Infinity"] {
        assert_eq!(parse_json(text.as_bytes()).unwrap_err().rule, Rule::Syntax);
    }
    assert!(Number::from_f64(f64::NAN).is_none());
    assert!(Number::from_f64(f64::INFINITY).is_none());
    // …and a number beyond the range of a double is refused rather than made infinite.
    for text in ["1e400", "-1e400", "[1, {\"a\": 2e308}]"] {
        let e = canonicalize(&parse_json(text.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(e.rule, Rule::NumberPrecision, "{text}");
    }
    let e = canonicalize(&parse_json(b"[1, {\"a\": 2e308}]").unwrap()).unwrap_err();
    assert_eq!(e.field, "[1].a");
}

#[test]
fn rfc_sample_numbers_under_the_strict_event_rule() {
    // canonicalize() rounds like RFC 8785; event parsing refuses a number whose canonical form
    // would have a different value, and accepts (and normalises) the rest.
    let accepted = [
        ("1E30", "1e+30"),
        ("4.50", "4.5"),
        ("2e-3", "0.002"),
        ("0.000000000000000000000000001", "1e-27"),
    ];
    for (text, canonical) in accepted {
        let event = format!(
            r#"{{"action":"a","actor":{{"id":"u"}},"outcome":"success","details":{{"n":{text}}}}}"#
        );
        let parsed = Event::parse(event.as_bytes()).unwrap();
        assert_eq!(parsed.details["n"].as_number().unwrap().as_str(), canonical);
        assert_eq!(canonical_text(text), canonical);
    }
    let event = r#"{"action":"a","actor":{"id":"u"},"outcome":"success","details":{"n":333333333.33333329}}"#;
    let e = Event::parse(event.as_bytes()).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.rule),
        ("details.n", Rule::NumberPrecision)
    );
    assert!(e.message.contains("333333333.3333333"), "{}", e.message);
    assert_eq!(canonical_text("333333333.33333329"), "333333333.3333333");
}

#[test]
fn literals_strings_and_structure() {
    for (input, want) in [
        ("null", "null"),
        ("true", "true"),
        (" [ ] ", "[]"),
        ("{ }", "{}"),
        ("-0", "0"),
        ("-0.0", "0"),
        (
            "[1e-7, 1e20, 1e21, 0.1, 100]",
            "[1e-7,100000000000000000000,1e+21,0.1,100]",
        ),
        (r#""\u00e9\/\u2028\u007f""#, "\"\u{e9}/\u{2028}\u{7f}\""),
        (r#""\b\f\n\r\t\u0001\u001F""#, r#""\b\f\n\r\t\u0001\u001f""#),
        (
            r#"{"b":[{"z":1,"a":2}],"a":{}}"#,
            r#"{"a":{},"b":[{"a":2,"z":1}]}"#,
        ),
        (
            r#"{"\ue000":1,"\ud800\udc00":2}"#,
            "{\"\u{10000}\":2,\"\u{e000}\":1}",
        ),
    ] {
        assert_eq!(canonical_text(input), want, "{input}");
    }
}

/// Serializes a value through serde's data model so that `json-canon` canonicalises it: our
/// own type, because serde_json's `Number` does not serialize as a number through other
/// serializers when `arbitrary_precision` is on.
struct Oracle<'a>(&'a Value);

impl serde::Serialize for Oracle<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => {
                let value: f64 = n.as_str().parse().map_err(serde::ser::Error::custom)?;
                serializer.serialize_f64(value)
            }
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Oracle(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(k, &Oracle(v))?;
                }
                out.end()
            }
        }
    }
}

fn arb_string() -> impl Strategy<Value = String> {
    let interesting = prop::sample::select(vec![
        '\u{0}',
        '\u{8}',
        '\u{1f}',
        '"',
        '\\',
        '/',
        'a',
        'Z',
        '1',
        '\u{7f}',
        '\u{80}',
        '\u{e9}',
        '\u{2028}',
        '\u{20ac}',
        '\u{e000}',
        '\u{fb33}',
        '\u{ffff}',
        '\u{10000}',
        '\u{1f600}',
        '\u{10ffff}',
    ]);
    prop::collection::vec(prop_oneof![interesting, any::<char>()], 0..6)
        .prop_map(|chars| chars.into_iter().collect())
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<u64>().prop_filter_map("finite", |bits| Number::from_f64(f64::from_bits(bits))),
        (-1_000_000i64..1_000_000, -30i32..30)
            .prop_map(|(m, e)| format!("{m}e{e}").parse::<Number>().unwrap()),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number().prop_map(Value::Number),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn canonicalize_agrees_with_json_canon(value in arb_json()) {
        let ours = canonicalize(&value).unwrap();
        let theirs = json_canon::to_vec(&Oracle(&value)).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }

    #[test]
    fn canonicalize_is_idempotent(value in arb_json()) {
        let once = canonicalize(&value).unwrap();
        let twice = canonicalize(&parse_json(&once).unwrap()).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn every_double_formats_like_json_canon(bits in any::<u64>()) {
        let value = f64::from_bits(bits);
        prop_assume!(value.is_finite());
        let text = round_trip_text(value);
        let ours = String::from_utf8(canonicalize(&parse_json(text.as_bytes()).unwrap()).unwrap()).unwrap();
        prop_assert_eq!(ours, json_canon::to_string(&value).unwrap());
    }
}
