//! The built-in rules over a planted clinic log: each incident raises exactly one alert, with
//! the seqs behind it; the background raises none; and the alerts do not depend on how the
//! log was cut into batches or when the quiet periods were flushed.

use super::engine::{Alert, Engine, Observed};
use super::rules::{self, Field, Match, RuleDef, Severity};

const SECOND: i64 = 1_000_000;

struct Log {
    events: Vec<Observed<'static>>,
    at: i64,
}

impl Log {
    fn new() -> Log {
        Log {
            events: Vec::new(),
            at: 1_700_000_000 * SECOND,
        }
    }

    /// Appends an event `gap` seconds after the previous one; returns its seq.
    fn add(&mut self, gap: f64, activity: &str, outcome: &str, actor: &str, ip: &str) -> u64 {
        self.at += (gap * SECOND as f64) as i64;
        let seq = self.events.len() as u64;
        self.events.push(Observed {
            seq,
            at: self.at,
            action: format!("app.{activity}").into(),
            activity: Some(activity.to_string().into()),
            outcome: outcome.to_string().into(),
            actor: actor.to_string().into(),
            actor_type: Some("user".into()),
            ip: Some(ip.to_string().into()),
            targets: vec![("patient".into(), format!("p-{}", seq % 40).into())],
            source: Some("ehr".into()),
        });
        seq
    }
}

fn run(events: &[Observed], engine: &mut Engine) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for event in events {
        alerts.extend(engine.push(event));
    }
    alerts
}

/// Everything the log raises once it has gone quiet for a day.
fn evaluate(events: &[Observed]) -> Vec<Alert> {
    let mut engine = Engine::new(rules::effective(&[]).unwrap());
    let mut alerts = run(events, &mut engine);
    let end = events.last().map_or(0, |e| e.at) + 86_400 * SECOND;
    alerts.extend(engine.flush(end));
    alerts.sort_by(|a, b| (&a.rule, a.window_start).cmp(&(&b.rule, b.window_start)));
    alerts
}

/// An expected alert: its rule, severity and seqs.
type Expected = (&'static str, Severity, Vec<u64>);

/// The planted clinic log, and the seqs each incident should name.
fn clinic() -> (Vec<Observed<'static>>, Vec<Expected>) {
    let mut log = Log::new();
    let mut want = Vec::new();
    // Background: staff reading records, a few mistyped passwords, spread out.
    for n in 0..200u64 {
        let staff = format!("nurse-{}", n % 9);
        log.add(7.0, "read", "success", &staff, "10.0.0.5");
        if n % 50 == 0 {
            log.add(1.0, "login", "failure", &staff, "10.0.0.5");
        }
    }
    // One user failing 12 times in a minute: critical at the tenth.
    let burst: Vec<u64> = (0..12)
        .map(|_| log.add(3.0, "login", "failure", "dr-kim", "10.0.0.9"))
        .collect();
    want.push((
        "failed-logins-per-user",
        Severity::Critical,
        burst[..10].to_vec(),
    ));
    log.add(600.0, "read", "success", "nurse-1", "10.0.0.5");
    // Credential stuffing: eight accounts failing from one address.
    let stuffing: Vec<u64> = (0..8)
        .map(|n| {
            log.add(
                20.0,
                "login",
                "failure",
                &format!("acct-{n}"),
                "203.0.113.7",
            )
        })
        .collect();
    want.push(("credential-stuffing", Severity::Warning, stuffing));
    log.add(900.0, "read", "success", "nurse-2", "10.0.0.5");
    // A success after six failures of one user.
    let mut guessed: Vec<u64> = (0..6)
        .map(|_| log.add(15.0, "login", "failure", "clerk-3", "198.51.100.4"))
        .collect();
    guessed.push(log.add(10.0, "login", "success", "clerk-3", "198.51.100.4"));
    // Fifteen seconds apart, no minute holds five of them: the per-user rule stays quiet.
    want.push(("login-after-failures", Severity::Warning, guessed));
    log.add(900.0, "read", "success", "nurse-3", "10.0.0.5");
    // A bulk export of 500 records in one event.
    log.at += 60 * SECOND;
    let seq = log.events.len() as u64;
    log.events.push(Observed {
        seq,
        at: log.at,
        action: "patients.export".into(),
        activity: Some("export".into()),
        outcome: "success".into(),
        actor: "analyst-1".into(),
        actor_type: Some("user".into()),
        ip: Some("10.0.0.8".into()),
        targets: (0..500)
            .map(|n| ("patient".into(), format!("p-{n}").into()))
            .collect(),
        source: Some("reports".into()),
    });
    want.push(("bulk-export", Severity::Critical, vec![seq]));
    log.add(900.0, "read", "success", "nurse-4", "10.0.0.5");
    // An admin burst: 25 actions in two minutes.
    let admin: Vec<u64> = (0..25)
        .map(|_| log.add(5.0, "admin", "success", "ops-1", "10.0.0.2"))
        .collect();
    want.push(("admin-burst", Severity::Warning, admin));
    log.add(900.0, "read", "success", "nurse-5", "10.0.0.5");
    want.sort_by(|a, b| (a.0, a.2[0]).cmp(&(b.0, b.2[0])));
    (log.events, want)
}

#[test]
fn every_planted_incident_raises_one_alert_with_its_seqs_and_the_background_none() {
    let (events, want) = clinic();
    let alerts = evaluate(&events);
    let got: Vec<(&str, Severity, Vec<u64>)> = alerts
        .iter()
        .map(|a| (a.rule.as_str(), a.severity, a.seqs.clone()))
        .collect();
    assert_eq!(got, want);
    let bulk = alerts.iter().find(|a| a.rule == "bulk-export").unwrap();
    assert_eq!((bulk.count, bulk.key.as_str()), (500, "actor=analyst-1"));
    let stuffing = alerts
        .iter()
        .find(|a| a.rule == "credential-stuffing")
        .unwrap();
    assert_eq!(
        (stuffing.count, stuffing.key.as_str()),
        (8, "ip=203.0.113.7")
    );
}

#[test]
fn the_alerts_do_not_depend_on_batches_or_when_quiet_periods_are_flushed() {
    let (events, _) = clinic();
    let whole = evaluate(&events);
    // The same log, with a flush after every event at its own time (a quiet tick between
    // any two events), as a follower that wakes often would do.
    let mut engine = Engine::new(rules::effective(&[]).unwrap());
    let mut alerts = Vec::new();
    for event in &events {
        alerts.extend(engine.push(event));
        alerts.extend(engine.flush(event.at));
    }
    alerts.extend(engine.flush(events.last().unwrap().at + 86_400 * SECOND));
    alerts.sort_by(|a, b| (&a.rule, a.window_start).cmp(&(&b.rule, b.window_start)));
    assert_eq!(alerts, whole);
    // Rebuilt from the log after a restart halfway: the same alerts, so each one already in
    // the log is recognised (rule, key, window_start) rather than raised again.
    let half = events.len() / 2;
    let mut before = Engine::new(rules::effective(&[]).unwrap());
    let first: Vec<Alert> = run(&events[..half], &mut before);
    let rebuilt = evaluate(&events);
    for alert in &first {
        assert!(rebuilt.contains(alert), "{alert:?}");
    }
}

#[test]
fn a_rule_is_configured_replaced_or_turned_off() {
    let custom: RuleDef = toml::from_str(
        r#"
        name = "night-reads"
        match = { action = "patient.*", activity = ["read", "export"] }
        group_by = ["actor", "source"]
        window = "30s"
        warning = 2
        "#,
    )
    .unwrap();
    let quieter = RuleDef {
        warning: Some(8),
        critical: Some(20),
        ..rules::builtin()[0].clone()
    };
    let off = RuleDef {
        enabled: false,
        ..rules::builtin()[1].clone()
    };
    let rules = rules::effective(&[custom, quieter, off]).unwrap();
    assert!(rules.iter().all(|r| r.name != "failed-logins-system-wide"));
    let per_user = rules
        .iter()
        .find(|r| r.name == "failed-logins-per-user")
        .unwrap();
    assert_eq!(per_user.thresholds[0].0, 8);
    let night = rules.iter().find(|r| r.name == "night-reads").unwrap();
    assert_eq!(night.group_by, [Field::Actor, Field::Source]);
    assert_eq!(night.window.as_secs(), 30);
    assert_eq!(
        night.matches,
        Match {
            action: Some("patient.*".into()),
            activity: vec!["read".into(), "export".into()],
            ..Match::default()
        }
    );

    let mut engine = Engine::new(
        rules
            .into_iter()
            .filter(|r| r.name == "night-reads")
            .collect(),
    );
    let mut log = Log::new();
    log.add(1.0, "read", "success", "u", "10.0.0.1");
    log.events[0].action = "patient.read".into();
    log.add(1.0, "read", "success", "u", "10.0.0.1");
    log.events[1].action = "patient.read".into();
    log.add(1.0, "read", "success", "u", "10.0.0.1");
    log.events[2].action = "claim.read".into();
    let mut alerts = run(&log.events, &mut engine);
    alerts.extend(engine.flush(log.at + 3600 * SECOND));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].seqs, [0, 1]);
    assert_eq!(alerts[0].key, "actor=u,source=ehr");
}

#[test]
fn bad_rules_are_refused_naming_the_setting() {
    let base = || rules::builtin()[0].clone();
    for (def, setting) in [
        (
            RuleDef {
                name: "Bad Name".into(),
                ..base()
            },
            "name",
        ),
        (
            RuleDef {
                name: "a".repeat(rules::MAX_RULE_NAME_CHARS + 1),
                ..base()
            },
            "name",
        ),
        (
            RuleDef {
                group_by: vec![Field::Target, Field::Actor, Field::Target],
                ..base()
            },
            "group_by",
        ),
        (
            RuleDef {
                window: "soon".into(),
                ..base()
            },
            "window",
        ),
        (
            RuleDef {
                window: "2d".into(),
                ..base()
            },
            "window",
        ),
        (
            RuleDef {
                warning: None,
                critical: None,
                ..base()
            },
            "warning",
        ),
        (
            RuleDef {
                warning: Some(10),
                critical: Some(10),
                ..base()
            },
            "critical",
        ),
        (
            RuleDef {
                matches: Match {
                    outcome: Some("failed".into()),
                    ..Match::default()
                },
                ..base()
            },
            "match.outcome",
        ),
    ] {
        let error = def.compile().unwrap_err();
        assert_eq!(error.setting, setting, "{error}");
    }
    let unknown =
        toml::from_str::<RuleDef>("name = \"x\"\nwindow = \"1m\"\nwarning = 1\ncolour = 2\n");
    assert!(unknown.is_err());
}

/// Whatever a rule may be and whatever an event holds, its alert is an event the log accepts:
/// a rule of the longest name grouping by every field, over an event whose every field is as
/// long as an event allows, raises an alert that forms an event.
#[test]
fn an_alert_of_the_longest_rule_over_the_longest_fields_forms_an_event() {
    use sealtrail_core::event::{MAX_ACTION_CHARS, MAX_NAME_CHARS};
    let every_field = vec![
        Field::Action,
        Field::Activity,
        Field::Outcome,
        Field::Actor,
        Field::ActorType,
        Field::Ip,
        Field::Target,
        Field::TargetType,
        Field::Source,
    ];
    let def = RuleDef {
        name: "r".repeat(rules::MAX_RULE_NAME_CHARS),
        matches: Match::default(),
        group_by: every_field,
        warning: Some(1),
        critical: None,
        ..rules::builtin()[0].clone()
    };
    let rule = def.compile().unwrap();
    let mut engine = Engine::new(vec![rule]);
    let name = |c: char| c.to_string().repeat(MAX_NAME_CHARS);
    let event = Observed {
        // The largest seq a JSON number holds exactly; a log would need 9 × 10^15 entries
        // to pass it.
        seq: (1 << 53) - 1,
        at: 1_700_000_000 * SECOND,
        action: "a".repeat(MAX_ACTION_CHARS).into(),
        activity: Some("authorization".into()),
        outcome: "unknown".into(),
        actor: name('u').into(),
        actor_type: Some("service".into()),
        ip: Some("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".into()),
        targets: vec![(name('t').into(), name('i').into())],
        source: Some(name('s').into()),
    };
    let mut alerts = engine.push(&event);
    alerts.extend(engine.flush(event.at + 86_400 * SECOND));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let formed = super::alerts::alert_event("clinic", &alerts[0]);
    assert!(formed.is_ok(), "{formed:?}");
}

/// A read of `target` by `actor`, `n` milliseconds into the log.
fn read_at(n: u64, actor: &str, target: &str) -> Observed<'static> {
    Observed {
        seq: n,
        at: 1_700_000_000 * SECOND + n as i64 * 1000,
        action: "patient.record.read".into(),
        activity: Some("read".into()),
        outcome: "success".into(),
        actor: actor.to_string().into(),
        actor_type: Some("user".into()),
        ip: Some("10.0.0.5".into()),
        targets: vec![("patient".into(), target.to_string().into())],
        source: Some("ehr".into()),
    }
}

/// A million reads of four records within one hour, a millisecond apart, by a thousand
/// actors: the rules grouped by target hold a bounded state per record (not one item per
/// read), and still raise exactly the alerts a full window would, with exact counts.
#[test]
fn a_million_events_in_one_window_hold_a_state_bounded_per_group() {
    use super::engine::{BUCKETS_PER_WINDOW, EXACT_EVENTS, MAX_ALERT_SEQS};
    let per_record: RuleDef = toml::from_str(
        r#"
        name = "reads-per-record"
        match = { activity = "read" }
        group_by = ["target"]
        window = "1h"
        warning = 2000
        critical = 200000
        "#,
    )
    .unwrap();
    let rules: Vec<_> = rules::effective(&[per_record])
        .unwrap()
        .into_iter()
        .filter(|r| r.name == "record-many-actors" || r.name == "reads-per-record")
        .collect();
    assert_eq!(rules.len(), 2);
    let mut engine = Engine::new(rules);
    const EVENTS: u64 = 1_000_000;
    const RECORDS: u64 = 4;
    let mut alerts = Vec::new();
    let mut most_held = 0;
    let mut last_at = 0;
    for n in 0..EVENTS {
        let event = read_at(
            n,
            &format!("clerk-{}", n % 1000),
            &format!("p-{}", n % RECORDS),
        );
        last_at = event.at;
        alerts.extend(engine.push(&event));
        if n % 5000 == 4999 {
            alerts.extend(engine.flush(event.at));
            most_held = most_held.max(engine.held());
        }
    }
    most_held = most_held.max(engine.held());
    // Per record: at most 25 actors (the critical threshold of record-many-actors), and for
    // reads-per-record the newest 1000 reads and the buckets of the 1000 s so far (3.6 s
    // each).
    let buckets = (1000 * SECOND / (3600 * SECOND / BUCKETS_PER_WINDOW)) as usize + 2;
    let bound = RECORDS as usize * (25 + EXACT_EVENTS + buckets);
    assert!(most_held <= bound, "held {most_held} > {bound}");
    assert!(most_held < 6000, "held {most_held}");
    assert!(
        most_held > RECORDS as usize * EXACT_EVENTS,
        "held {most_held}"
    );

    alerts.extend(engine.flush(last_at + 86_400 * SECOND));
    assert_eq!(engine.held(), 0);
    // Every alert, however many events are behind it, is an event the log accepts.
    for alert in &alerts {
        let event = super::alerts::alert_event("clinic", alert);
        assert!(event.is_ok(), "{alert:?}: {event:?}");
    }
    alerts.sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
    assert_eq!(alerts.len(), 2 * RECORDS as usize, "{alerts:?}");
    // By rule: reads-per-record, then record-many-actors; each by record.
    let (per_record, many_actors) = alerts.split_at(RECORDS as usize);
    for (record, alert) in many_actors.iter().enumerate() {
        // The 25th distinct actor of the record makes it critical: its first 25 reads.
        let record = record as u64;
        assert_eq!(alert.rule, "record-many-actors");
        assert_eq!(alert.key, format!("target=patient:p-{record}"));
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.count, 25);
        let seqs: Vec<u64> = (0..25).map(|i| record + RECORDS * i).collect();
        assert_eq!(alert.seqs, seqs);
    }
    for (record, alert) in per_record.iter().enumerate() {
        // The record's 200,000th read makes it critical; the count is exact, the alert
        // names the newest 256 reads (the most an event's array holds) and starts at the
        // record's first.
        let record = record as u64;
        assert_eq!(alert.rule, "reads-per-record");
        assert_eq!(alert.key, format!("target=patient:p-{record}"));
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.count, 200_000);
        let last = record + RECORDS * 199_999;
        let named = MAX_ALERT_SEQS as u64;
        let seqs: Vec<u64> = (0..named)
            .map(|i| last - RECORDS * (named - 1 - i))
            .collect();
        assert_eq!(alert.seqs, seqs);
        assert_eq!(alert.window_start, read_at(record, "", "").at);
        assert_eq!(alert.window_end, read_at(last, "", "").at);
    }
}

/// Random logs over few actors, addresses and records, with bursts and pauses, through the
/// built-in rules and rules with short windows, several keys per event, counted targets,
/// distinct targets and a sequence rule: the compact engine raises the alerts the engine that
/// keeps every event raises. Rules counting distinct values name each value's latest event,
/// so for them the events named are among the reference's and one per value.
#[test]
fn the_compact_engine_raises_what_keeping_every_event_raises() {
    use super::reference::Reference;
    let extra: Vec<RuleDef> = [
        r#"
        name = "reads-per-record"
        match = { activity = ["read", "export"] }
        group_by = ["target", "actor"]
        window = "10s"
        warning = 3
        critical = 7
        "#,
        r#"
        name = "targets-per-actor"
        match = { activity = "export" }
        group_by = ["actor"]
        window = "20s"
        measure = "targets"
        warning = 6
        critical = 15
        "#,
        r#"
        name = "records-per-address"
        match = { activity = ["read", "export"] }
        group_by = ["ip"]
        distinct = "target"
        window = "15s"
        warning = 3
        critical = 6
        "#,
        r#"
        name = "actors-per-record"
        match = { activity = "read" }
        group_by = ["target"]
        distinct = "actor"
        window = "12s"
        warning = 2
        "#,
        r#"
        name = "export-after-reads"
        match = { activity = "export" }
        group_by = ["actor"]
        preceded_by = { match = { activity = "read" }, at_least = 3 }
        window = "8s"
        warning = 1
        "#,
        r#"
        name = "everything"
        window = "5s"
        warning = 4
        critical = 9
        "#,
    ]
    .iter()
    .map(|text| toml::from_str(text).unwrap())
    .collect();
    let rules = rules::effective(&extra).unwrap();
    let distinct: Vec<String> = rules
        .iter()
        .filter(|r| r.distinct.is_some())
        .map(|r| r.name.clone())
        .collect();
    let mut state = 0x5eed_u64;
    let mut random = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut compared = 0;
    for _log in 0..30 {
        let mut engine = Engine::new(rules.clone());
        let mut reference = Reference::new(rules.clone());
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut at = 1_700_000_000 * SECOND;
        for seq in 0..1500u64 {
            at += match random(10) {
                0..=3 => 0,
                4..=7 => random(900_000) as i64,
                8 => random(4 * SECOND as u64) as i64,
                _ => random(30 * SECOND as u64) as i64,
            };
            let activity = ["read", "read", "export", "login", "admin"][random(5) as usize];
            let outcome = ["success", "failure"][random(2) as usize];
            let targets = (0..random(4))
                .map(|_| ("patient".into(), format!("p-{}", random(6)).into()))
                .collect();
            let event = Observed {
                seq,
                at,
                action: format!("app.{activity}").into(),
                activity: Some(activity.into()),
                outcome: outcome.into(),
                actor: format!("u-{}", random(4)).into(),
                actor_type: Some("user".into()),
                ip: (random(8) > 0).then(|| format!("10.0.0.{}", random(3)).into()),
                targets,
                source: Some("ehr".into()),
            };
            got.extend(engine.push(&event));
            want.extend(reference.push(&event));
            if random(20) == 0 {
                let now = at + random(20 * SECOND as u64) as i64;
                got.extend(engine.flush(now));
                want.extend(reference.flush(now));
            }
        }
        got.extend(engine.flush(at + 86_400 * SECOND));
        want.extend(reference.flush(at + 86_400 * SECOND));
        assert_eq!(engine.held(), 0);
        assert_eq!(got.len(), want.len(), "{got:#?}\n{want:#?}");
        for (got, want) in got.iter().zip(&want) {
            if !distinct.contains(&want.rule) {
                assert_eq!(got, want);
                continue;
            }
            let summary = |a: &Alert| (a.rule.clone(), a.severity, a.key.clone(), a.count);
            assert_eq!(summary(got), summary(want), "{got:?}\n{want:?}");
            assert_eq!(got.window_end, want.window_end, "{got:?}\n{want:?}");
            assert!(got.window_start >= want.window_start, "{got:?}\n{want:?}");
            assert_eq!(got.seqs.len() as u64, got.count, "{got:?}");
            assert!(
                got.seqs.iter().all(|s| want.seqs.contains(s)),
                "{got:?}\n{want:?}"
            );
        }
        compared += want.len();
    }
    // Enough alerts of every kind for the comparison to mean something.
    assert!(compared > 300, "{compared}");
}

/// The monitor reads only the fields its rules need from each stored entry; what it reads
/// must be exactly what the entry, parsed and checked in full, holds.
#[test]
fn the_fields_read_from_stored_bytes_are_those_of_the_fully_parsed_entry() {
    use sealtrail_core::Timestamp;
    use sealtrail_core::canonical::{Entry, ServerFields, canonical_entry};
    use sealtrail_core::event::Event;
    use sealtrail_core::hash::Hash;

    let events = [
        // Every field the rules read.
        r#"{"action":"patient.record.read","activity":"read","outcome":"success",
            "actor":{"id":"u-1","type":"user","roles":["nurse"]},
            "context":{"ip":"2001:DB8::0:1","user_agent":"x"},"source":{"app":"ehr","instance":"a"},
            "targets":[{"type":"patient","id":"p-9"},{"id":"only-id"},{"type":"only-type"}],
            "details":{"fields":["name","dob"],"n":1.5,"nested":{"actor":{"id":"not-me"}}}}"#,
        // Only what is required; keys and values that need escapes in JSON.
        r#"{"action":"auth.login","outcome":"failure","actor":{"id":"d\u00e9j\u00e0 \"vu\"\n"}}"#,
        // Absent context ip, source without app, an occurred_at that differs from received_at.
        r#"{"action":"x","outcome":"unknown","actor":{"id":"svc","type":"service"},
            "context":{"request_id":"r"},"source":{"instance":"i"},
            "occurred_at":"2020-01-01T00:00:00+02:00","details":{"ok":null}}"#,
    ];
    for (seq, json) in events.iter().enumerate() {
        let event = Event::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
        let server = ServerFields {
            id: uuid::Uuid::from_u128(seq as u128 + 1),
            seq: seq as u64 + 41,
            received_at: Timestamp::from_unix_micros(1_764_000_000_123_456).unwrap(),
            prev_hash: Hash::ZERO,
        };
        let bytes = canonical_entry(&event, &server).unwrap();
        let full = Observed::from_entry(&Entry::parse(&bytes).unwrap());
        assert_eq!(Observed::from_bytes(&bytes), Some(full), "{json}");
    }
    // Bytes that are not an entry are passed over, not guessed at.
    for damaged in [&b"{\"seq\":1}"[..], b"not json", b"{\"seq\":1,\"received_at\":\"yesterday\",\"action\":\"a\",\"outcome\":\"success\",\"actor\":{\"id\":\"u\"}}"] {
        assert_eq!(Observed::from_bytes(damaged), None);
    }
}

/// A flush forgets the groups whose window has passed and keeps the others, and the queue it
/// finds them by holds one entry per group: thousands of actors and addresses, each seen once
/// a second apart, with a flush after every event as the monitor does after every batch.
#[test]
fn a_flush_forgets_the_groups_whose_window_passed_and_no_others() {
    let mut engine = Engine::new(rules::effective(&[]).unwrap());
    let mut log = Log::new();
    for n in 0..5_000 {
        log.add(
            1.0,
            "login",
            "failure",
            &format!("u-{n}"),
            &format!("10.1.{}.{}", n / 250, n % 250),
        );
        let event = log.events.last().unwrap().clone();
        engine.push(&event);
        engine.flush(event.at);
        let (groups, queued) = engine.groups_held();
        assert_eq!(queued, groups, "one queue entry per group after event {n}");
    }
    // The groups still in a window stay until it passes.
    let (held_before, _) = engine.groups_held();
    let last = log.events.last().unwrap().at;
    engine.flush(last);
    assert_eq!(
        engine.groups_held().0,
        held_before,
        "a second flush at the same time forgets nothing"
    );
    engine.flush(last + 86_400 * SECOND);
    assert_eq!(
        engine.groups_held(),
        (0, 0),
        "past every window nothing is held"
    );
    assert!(held_before > 0);
}
