//! The built-in rules over a planted clinic log: each incident raises exactly one alert, with
//! the seqs behind it; the background raises none; and the alerts do not depend on how the
//! log was cut into batches or when the quiet periods were flushed.

use super::engine::{Alert, Engine, Observed};
use super::rules::{self, Field, Match, RuleDef, Severity};

const SECOND: i64 = 1_000_000;

struct Log {
    events: Vec<Observed>,
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
            action: format!("app.{activity}"),
            activity: Some(activity.into()),
            outcome: outcome.into(),
            actor: actor.into(),
            actor_type: Some("user".into()),
            ip: Some(ip.into()),
            targets: vec![("patient".into(), format!("p-{}", seq % 40))],
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
fn clinic() -> (Vec<Observed>, Vec<Expected>) {
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
            .map(|n| ("patient".into(), format!("p-{n}")))
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
