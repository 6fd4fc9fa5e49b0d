//! Timelines and gap findings over HTTP, on nine days of a clinic's events written through
//! `POST /v1/events/batch` with `occurred_at` in the past: eight ordinary days, then a day
//! with planted trouble — a 40-minute outage, a producer that lost 17 sequence numbers, a
//! producer that fell silent, an hour at a third of its usual rate — beside a quiet night,
//! a producer restart, heartbeats and two hours of events that arrive last (late), none of
//! which may be reported.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sealtrail_core::Timestamp;

use crate::helpers::{TestApp, spawn_app_in};

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// One generated event.
#[derive(Debug, Clone)]
struct Planned {
    at: i64,
    app: &'static str,
    instance: &'static str,
    seq: Option<u64>,
    action: &'static str,
    /// Sent after everything else (spooled by its producer, say).
    late: bool,
    /// Numbered by its producer but never sent: lost on the way.
    lost: bool,
}

impl Planned {
    fn heartbeat(&self) -> bool {
        self.action == "sealtrail.heartbeat"
    }

    fn json(&self) -> serde_json::Value {
        let mut source = serde_json::json!({"app": self.app, "instance": self.instance});
        if let Some(seq) = self.seq {
            source["seq"] = seq.into();
        }
        serde_json::json!({
            "occurred_at": stamp(self.at),
            "action": self.action,
            "outcome": "success",
            "actor": {"id": format!("{}-{}", self.app, self.instance), "type": "service"},
            "source": source,
        })
    }
}

fn stamp(micros: i64) -> String {
    Timestamp::from_unix_micros(micros).unwrap().to_rfc3339()
}

/// The day under test starts at `base` (an hour boundary a day or more before now); the
/// eight days before it are ordinary. Every day is quiet from 00:00 to 06:00 (relative to
/// `base`), apart from the scheduler's heartbeats every 10 minutes.
struct Clinic {
    base: i64,
    events: Vec<Planned>,
    /// The source.seq numbers billing/worker-1 lost.
    lost: (u64, u64),
}

fn clinic(base: i64) -> Clinic {
    let mut events = Vec::new();
    let mut seqs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lost = (u64::MAX, 0);
    let producers: [(&str, &str, &str, i64); 3] = [
        ("ehr-web", "pod-1", "patient.record.read", 0),
        ("ehr-web", "pod-2", "patient.record.update", MIN),
        ("billing", "worker-1", "billing.claim.submit", 30_000_000),
    ];
    for day in -8..=0 {
        let start = base + day * DAY;
        let today = day == 0;
        // Heartbeats all day and night, except in the outage.
        for m in (0..1440).step_by(10) {
            let at = start + m * MIN;
            if today && (14 * HOUR + 10 * MIN..14 * HOUR + 50 * MIN).contains(&(at - start)) {
                continue;
            }
            events.push(Planned {
                at,
                app: "scheduler",
                instance: "cron-1",
                seq: None,
                action: "sealtrail.heartbeat",
                late: false,
                lost: false,
            });
        }
        for (app, instance, action, offset) in producers {
            let key = instance;
            // The morning deploy of the day under test restarts pod-1's numbering.
            if today && instance == "pod-1" {
                seqs.insert(key, 0);
            }
            for slot in 0..(18 * 30) {
                let rel = 6 * HOUR + slot * 2 * MIN + offset;
                if today {
                    // The outage: nothing is produced.
                    if (14 * HOUR + 10 * MIN..14 * HOUR + 50 * MIN).contains(&rel) {
                        continue;
                    }
                    // pod-2 falls silent at 18:00.
                    if instance == "pod-2" && rel >= 18 * HOUR {
                        continue;
                    }
                    // 20:00-21:00: a third of the usual rate; billing shifted by 3 minutes
                    // so that no five minutes in a row are empty.
                    if (20 * HOUR..21 * HOUR).contains(&rel) && slot % 3 != 0 {
                        continue;
                    }
                }
                let mut at = start + rel;
                if today && (20 * HOUR..21 * HOUR).contains(&rel) && app == "billing" {
                    at += 3 * MIN;
                }
                let seq = seqs.entry(key).or_insert(0);
                let number = *seq;
                *seq += 1;
                // billing/worker-1 numbers 17 events from 10:00 that never arrive.
                let lost_here =
                    today && app == "billing" && (10 * HOUR..10 * HOUR + 34 * MIN).contains(&rel);
                if lost_here {
                    lost = (lost.0.min(number), lost.1.max(number));
                }
                events.push(Planned {
                    at,
                    app,
                    instance,
                    seq: Some(number),
                    action,
                    late: today && (7 * HOUR..9 * HOUR).contains(&rel),
                    lost: lost_here,
                });
            }
        }
    }
    events.sort_by_key(|e| e.at);
    Clinic { base, events, lost }
}

impl Clinic {
    /// The events as sent: in time order, the late ones last, the lost ones never.
    fn sent(&self) -> Vec<&Planned> {
        let on_time = self.events.iter().filter(|e| !e.lost && !e.late);
        let late = self.events.iter().filter(|e| !e.lost && e.late);
        on_time.chain(late).collect()
    }

    /// Activity (no heartbeats) per hour of the day under test, from `filter`'s events.
    fn hourly(&self, filter: impl Fn(&Planned) -> bool) -> Vec<i64> {
        let mut hours = vec![0; 24];
        for e in self.sent() {
            if e.heartbeat() || !filter(e) || e.at < self.base || e.at >= self.base + DAY {
                continue;
            }
            hours[((e.at - self.base) / HOUR) as usize] += 1;
        }
        hours
    }
}

/// The hour boundary 25 hours before now or earlier: the day under test ends before now.
fn base_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    (now / HOUR - 25) * HOUR
}

async fn send(app: &TestApp, token: &str, events: &[&Planned]) {
    for chunk in events.chunks(5_000) {
        let body: Vec<serde_json::Value> = chunk.iter().map(|e| e.json()).collect();
        let response = app.post_batch(token, &body).await;
        assert_eq!(response.status(), 200);
        let results: Vec<serde_json::Value> = response.json().await.unwrap();
        assert!(
            results.iter().all(|r| r["status"] == 201),
            "{:?}",
            results.iter().find(|r| r["status"] != 201)
        );
    }
}

/// Waits until the gap detector has counted every entry of `tenant`'s log.
async fn counted(app: &TestApp, tenant: &str) {
    let size = app.log_size(tenant);
    assert!(size > 0);
    app.gap_marks
        .wait_for(tenant, size - 1, Duration::from_secs(60))
        .await
        .expect("the gap detector catches up");
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The planted findings, every field the brief names checked exactly.
fn assert_planted(clinic: &Clinic, report: &serde_json::Value) {
    let base = clinic.base;
    let gaps = report["gaps"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = gaps
        .iter()
        .map(|g| {
            (
                g["kind"].as_str().unwrap().to_string(),
                g["start"].as_str().unwrap().to_string(),
                g["end"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let hm = |h: i64, m: i64, s: i64| stamp(base + h * HOUR + m * MIN + s * 1_000_000);
    assert_eq!(
        summary,
        vec![
            ("producer_seq_gap".into(), hm(9, 58, 30), hm(10, 34, 30)),
            ("time_gap".into(), hm(14, 10, 0), hm(14, 50, 0)),
            ("silent_producer".into(), hm(18, 0, 0), hm(24, 0, 0)),
            ("rate_drop".into(), hm(20, 0, 0), hm(21, 0, 0)),
        ],
        "{report:#}"
    );
    let seq_gap = &gaps[0];
    assert_eq!(
        seq_gap["producer"],
        serde_json::json!({"app": "billing", "instance": "worker-1"})
    );
    let (from, to) = clinic.lost;
    assert_eq!(to - from + 1, 17);
    assert_eq!(
        seq_gap["missing"],
        serde_json::json!([{"from": from, "to": to}])
    );
    assert_eq!(seq_gap["duration_seconds"], 36 * 60);
    assert_eq!(seq_gap["impact"], "high");
    assert_eq!(seq_gap["confidence"], 1.0);

    let outage = &gaps[1];
    assert_eq!(outage["producer"], serde_json::Value::Null);
    assert_eq!(outage["missing"], serde_json::Value::Null);
    assert_eq!(outage["duration_seconds"], 40 * 60);
    assert_eq!(outage["impact"], "high");
    assert_eq!(outage["evidence"]["history_days"], 7);
    assert!(outage["confidence"].as_f64().unwrap() > 0.99, "{outage}");

    let silent = &gaps[2];
    assert_eq!(
        silent["producer"],
        serde_json::json!({"app": "ehr-web", "instance": "pod-2"})
    );
    assert_eq!(silent["duration_seconds"], 6 * 3600);
    assert_eq!(silent["impact"], "high");

    let drop = &gaps[3];
    assert_eq!(drop["producer"], serde_json::Value::Null);
    assert_eq!(drop["duration_seconds"], 3600);
    assert_eq!(drop["impact"], "high");
    let hour = &drop["evidence"]["hours"][0];
    assert_eq!(hour["events"], 20);
    assert_eq!(hour["day_earlier"], 90);
    assert_eq!(hour["week_earlier"], 90);
    for gap in gaps {
        assert!(gap["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

fn window(base: i64) -> String {
    format!(
        "from={}&to={}",
        urlencode(&stamp(base)),
        urlencode(&stamp(base + DAY))
    )
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

/// A realistic day with planted gaps: each finding exactly, and nothing for the quiet night,
/// the restart, the heartbeats or the late hours. Timelines count by event time, zeros
/// included, hours equal to the sums of their minutes, filters by action and source.app.
/// Another tenant's token sees none of it.
#[tokio::test]
async fn a_day_with_planted_gaps_reports_each_exactly_and_nothing_else() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |_| {}).await;
    let token = app.token("clinic", &["events:write", "events:read"]).await;
    let clinic = clinic(base_now());
    send(&app, &token, &clinic.sent()).await;
    counted(&app, "clinic").await;

    let (status, report) =
        get_json(&app, &token, &format!("/v1/gaps?{}", window(clinic.base))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tenant"], "clinic");
    assert_eq!(report["from"], stamp(clinic.base));
    assert_planted(&clinic, &report);

    // Timelines: by the hour, the quiet night is zeros (heartbeats are not counted).
    let (status, hours) = get_json(
        &app,
        &token,
        &format!("/v1/timeline?bucket=hour&{}", window(clinic.base)),
    )
    .await;
    assert_eq!(status, 200, "{hours}");
    let counts: Vec<i64> = hours["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    let expected = clinic.hourly(|_| true);
    assert_eq!(counts, expected);
    assert_eq!(&counts[..6], &[0; 6]);
    assert_eq!(counts[20], 20);
    assert_eq!(hours["buckets"][0]["start"], stamp(clinic.base));
    assert_eq!(hours["total"], expected.iter().sum::<i64>());

    // By the minute: 1,440 buckets, zeros included, each hour the sum of its minutes.
    let (_, minutes) = get_json(
        &app,
        &token,
        &format!("/v1/timeline?bucket=minute&{}", window(clinic.base)),
    )
    .await;
    let per_minute: Vec<i64> = minutes["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    assert_eq!(per_minute.len(), 1440);
    let summed: Vec<i64> = per_minute.chunks(60).map(|h| h.iter().sum()).collect();
    assert_eq!(summed, expected);
    assert!(
        per_minute[14 * 60 + 10..14 * 60 + 50]
            .iter()
            .all(|c| *c == 0)
    );
    assert_eq!(
        minutes["buckets"][61]["start"],
        stamp(clinic.base + 61 * MIN)
    );

    // Filters: source.app and action.
    let (_, billing) = get_json(
        &app,
        &token,
        &format!(
            "/v1/timeline?bucket=hour&source=billing&{}",
            window(clinic.base)
        ),
    )
    .await;
    let billing: Vec<i64> = billing["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    assert_eq!(billing, clinic.hourly(|e| e.app == "billing"));
    let (_, updates) = get_json(
        &app,
        &token,
        &format!(
            "/v1/timeline?bucket=hour&action=patient.record.update&{}",
            window(clinic.base)
        ),
    )
    .await;
    assert_eq!(
        updates["total"],
        clinic
            .hourly(|e| e.action == "patient.record.update")
            .iter()
            .sum::<i64>()
    );

    // Another tenant's token sees nothing of this tenant's.
    let other = app.token("other", &["events:write", "events:read"]).await;
    let (status, theirs) =
        get_json(&app, &other, &format!("/v1/gaps?{}", window(clinic.base))).await;
    assert_eq!(status, 200);
    assert_eq!(theirs["tenant"], "other");
    assert_eq!(theirs["gaps"], serde_json::json!([]));
    let (_, theirs) = get_json(
        &app,
        &other,
        &format!("/v1/timeline?bucket=day&{}", window(clinic.base)),
    )
    .await;
    assert_eq!(theirs["total"], 0);
    // Naming this tenant in X-Tenant-ID does not help.
    let response = app
        .client
        .get(app.url(&format!("/v1/gaps?{}", window(clinic.base))))
        .bearer_auth(&other)
        .header("X-Tenant-ID", "clinic")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // The counters behind the alert rules.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sealtrail_producer_missing_events_total{tenant=\"clinic\"}"),
        "{metrics}"
    );
    app.stop().await;
}

/// The gap report of the planted day: one section per finding with its impact class, the
/// day's usual actions expected in the outage, the producer's 17 numbers provably lost, the
/// same in Markdown; another tenant's token sees nothing of it.
#[tokio::test]
async fn the_gap_report_of_the_planted_day_fills_in_each_finding() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |_| {}).await;
    let token = app.token("clinic", &["events:write", "events:read"]).await;
    let clinic = clinic(base_now());
    send(&app, &token, &clinic.sent()).await;
    counted(&app, "clinic").await;

    let path = format!("/v1/gaps/report?{}", window(clinic.base));
    let (status, report) = get_json(&app, &token, &path).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tenant"], "clinic");
    assert_eq!(report["from"], stamp(clinic.base));
    assert_eq!(report["to"], stamp(clinic.base + DAY));
    let gaps = report["gaps"].as_array().unwrap();
    let classes: Vec<(&str, &str)> = gaps
        .iter()
        .map(|g| (g["kind"].as_str().unwrap(), g["impact"].as_str().unwrap()))
        .collect();
    assert_eq!(
        classes,
        [
            ("producer_seq_gap", "high"),
            ("time_gap", "high"),
            ("silent_producer", "high"),
            ("rate_drop", "high"),
        ],
        "{report:#}"
    );
    assert_eq!(report["summary"]["gaps"], 4);
    assert_eq!(report["summary"]["high"], 4);
    assert_eq!(report["summary"]["provably_lost"], 17);

    // The outage: the day's three usual actions, 20 of each in 40 minutes on each of the
    // seven earlier days; the record reads are the PHI-access estimate.
    let outage = &gaps[1];
    assert_eq!(outage["expected"]["history_days"], 7, "{outage:#}");
    let mut expected: Vec<(String, f64)> = outage["expected"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["events"].as_f64().unwrap(),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        expected,
        [
            ("billing.claim.submit".to_string(), 20.0),
            ("patient.record.read".to_string(), 20.0),
            ("patient.record.update".to_string(), 20.0),
        ]
    );
    assert_eq!(outage["expected"]["events"], 60.0);
    assert_eq!(
        outage["phi_access_estimate"],
        serde_json::json!({"events": 20.0, "class": "medium"})
    );
    // This server started long after the planted day: no start or stop record of sealtrail's
    // reaches back to the gap, so its own records cannot tell whether it ran.
    assert_eq!(outage["cause"]["server"]["state"], "unknown");
    // The 12 months before: the eight earlier days, of which the first had no earlier day
    // to learn from, so each of its night's 9-minute silences between heartbeats (00:00 to
    // 06:00) is a time gap; from the second day on, the quiet night is known.
    let previous = &report["previous_gaps"];
    assert_eq!(previous["to"], stamp(clinic.base), "{previous}");
    assert_eq!(previous["total"], 36, "{previous}");
    assert_eq!(
        previous["by_kind"],
        serde_json::json!({"time_gap": 36, "rate_drop": 0, "producer_seq_gap": 0, "silent_producer": 0})
    );
    assert_eq!(
        previous["by_impact"],
        serde_json::json!({"low": 0, "medium": 36, "high": 0})
    );
    assert_eq!(previous["without_history"], 36);
    // The embedded store has no spool: no spool period to put it down to.
    assert_eq!(outage["cause"]["store_outage"]["state"], "none_recorded");
    assert_eq!(outage["cause"]["producer"], serde_json::Value::Null);
    assert_eq!(outage["recovery"]["late_arrivals_at_least"], 0);
    assert_eq!(outage["recovery"]["lost"], serde_json::Value::Null);

    // The producer's gap: the 17 numbers still missing are provably lost.
    let seq_gap = &gaps[0];
    let (from, to) = clinic.lost;
    assert_eq!(seq_gap["recovery"]["lost"], 17);
    assert_eq!(
        seq_gap["recovery"]["lost_ranges"],
        serde_json::json!([{"from": from, "to": to}])
    );
    assert_eq!(seq_gap["cause"]["producer"]["state"], "sequence_gap");
    let detail = seq_gap["cause"]["producer"]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("{from}–{to}")), "{detail}");
    // Only billing's own action is expected of billing.
    let actions: Vec<&str> = seq_gap["expected"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["billing.claim.submit"]);
    assert_eq!(seq_gap["expected"]["app"], "billing");
    assert_eq!(seq_gap["phi_access_estimate"]["class"], "low");

    let silent = &gaps[2];
    assert_eq!(silent["cause"]["producer"]["state"], "silent");
    // The test server runs without --audit-stdout.
    assert_eq!(report["compensating_records"]["audit_stdout"], false);
    assert_eq!(report["compensating_records"]["known_from"], "this_server");
    assert!(
        report["what_to_do"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step.as_str().unwrap().contains("sealtrail verify")),
        "{report:#}"
    );

    // The same as Markdown.
    let response = app
        .client
        .get(app.url(&format!("{path}&format=md")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    let md = response.text().await.unwrap();
    assert!(md.starts_with("# Audit log gap report: clinic\n"), "{md}");
    assert_eq!(md.matches("\n## Gap ").count(), 4, "{md}");
    for gap in gaps {
        let start = gap["start"].as_str().unwrap();
        assert!(
            md.contains(&format!("- **Start:** {start}")),
            "{start}: {md}"
        );
    }
    assert_eq!(md.matches("(high impact)").count(), 4, "{md}");
    assert!(
        md.contains(&format!("source.seq {from}–{to} (17 events)")),
        "{md}"
    );
    assert!(md.contains("| patient.record.read | 20.0 |"), "{md}");
    assert!(md.contains("## What to do"), "{md}");
    assert!(!md.contains("-0.0"), "{md}");
    assert!(
        md.contains(": 36 (36 time_gap; impact 36 medium), of which 36 time gaps were judged on days with no earlier day"),
        "{md}"
    );

    // Another tenant's token sees nothing of this tenant's.
    let other = app.token("other", &["events:write", "events:read"]).await;
    let (status, theirs) = get_json(&app, &other, &path).await;
    assert_eq!(status, 200);
    assert_eq!(theirs["tenant"], "other");
    assert_eq!(theirs["gaps"], serde_json::json!([]));
    assert_eq!(theirs["summary"]["gaps"], 0);
    let md = app
        .client
        .get(app.url(&format!("{path}&format=md")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("No gap was found"), "{md}");
    assert!(!md.contains("clinic") && !md.contains("billing"), "{md}");
    app.stop().await;
}

/// The detector stopped and started again half-way (a server restart), and then rebuilt
/// from the log with its database deleted, finds exactly what one uninterrupted run finds.
#[tokio::test]
async fn a_restart_in_the_middle_of_detection_changes_nothing() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let clinic = clinic(base_now());
    let sent = clinic.sent();
    let half = sent.len() / 2;
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    let token = app.token("clinic", &["events:write", "events:read"]).await;
    send(&app, &token, &sent[..half]).await;
    counted(&app, "clinic").await;
    app.stop().await;

    let app = spawn_app_in(dir.clone(), |_| {}).await;
    send(&app, &token, &sent[half..]).await;
    // A producer cannot speak for the server: a `sealtrail.server.stopped` posted in its own
    // log is an ordinary event there, not a start/stop record of any gap report.
    let forged = serde_json::json!({
        "occurred_at": stamp(clinic.base + 13 * 3_600_000_000),
        "action": "sealtrail.server.stopped",
        "outcome": "success",
        "actor": {"id": "mallory", "type": "service"},
        "source": {"app": "sealtrail", "instance": "forged-instance"},
    });
    let response = app.post_batch(&token, &[forged]).await;
    assert_eq!(response.status(), 200);
    counted(&app, "clinic").await;
    let (_, report) = get_json(&app, &token, &format!("/v1/gaps?{}", window(clinic.base))).await;
    assert_planted(&clinic, &report);
    let data = app.data.clone();
    app.stop().await;

    // The server's own start and stop records are in the _system log.
    let reader = sealtrail_store::Location::new(&data, None)
        .open_reader()
        .unwrap();
    let mut actions = Vec::new();
    reader
        .for_each_entry("_system", 0, u64::MAX, &mut |_, entry| {
            let entry: serde_json::Value = serde_json::from_slice(entry.unwrap()).unwrap();
            let action = entry["action"].as_str().unwrap().to_string();
            if action.starts_with("sealtrail.server.") {
                actions.push(action);
            }
        })
        .unwrap();
    assert_eq!(
        actions,
        [
            "sealtrail.server.started",
            "sealtrail.server.stopped",
            "sealtrail.server.started",
            "sealtrail.server.stopped"
        ]
    );

    // The gap database keeps them, each start with its --audit-stdout setting (the last stop
    // is appended after the detector has stopped, so it is counted at the next start).
    let gaps_db =
        sealtrail_store::gaps::GapsReader::open(&sealtrail_store::DataDir::new(&data).gaps())
            .unwrap()
            .unwrap();
    let records: Vec<(String, Option<bool>)> = gaps_db
        .lifecycle("_system", i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.audit_stdout))
        .collect();
    let instances: Vec<String> = gaps_db
        .lifecycle("_system", i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.instance)
        .collect();
    assert!(
        !instances.iter().any(|i| i == "forged-instance"),
        "{instances:?}"
    );
    assert_eq!(
        records[..3],
        [
            ("sealtrail.server.started".to_string(), Some(false)),
            ("sealtrail.server.stopped".to_string(), None),
            ("sealtrail.server.started".to_string(), Some(false)),
        ]
    );
    drop(gaps_db);

    std::fs::remove_file(sealtrail_store::DataDir::new(&data).gaps()).unwrap();
    let app = spawn_app_in(dir, |_| {}).await;
    counted(&app, "clinic").await;
    let (_, rebuilt) = get_json(&app, &token, &format!("/v1/gaps?{}", window(clinic.base))).await;
    assert_eq!(rebuilt, report);
    app.stop().await;
}

/// Bad parameters get a 400 in the JSON error shape naming the parameter and the rule.
#[tokio::test]
async fn bad_timeline_and_gap_parameters_are_refused_naming_the_field() {
    let app = crate::helpers::spawn_app().await;
    let token = app.token("clinic", &["events:read"]).await;
    let cases = [
        (
            "/v1/timeline?bucket=week&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            "bucket",
            "enum",
        ),
        (
            "/v1/timeline?bucket=hour&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "range",
        ),
        (
            "/v1/timeline?bucket=minute&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "bucket",
            "max_buckets",
        ),
        (
            "/v1/timeline?bucket=hour&to=2026-01-01T00:00:00Z",
            "from",
            "required",
        ),
        (
            "/v1/timeline?bucket=hour&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&tenant=x",
            "tenant",
            "unknown_parameter",
        ),
        (
            "/v1/gaps?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "range",
        ),
        (
            "/v1/gaps?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "max_range",
        ),
        ("/v1/gaps?to=yesterday", "to", "timestamp"),
        (
            "/v1/gaps/report?to=2026-01-02T00:00:00Z",
            "from",
            "required",
        ),
        (
            "/v1/gaps/report?from=2026-01-01T00:00:00Z",
            "to",
            "required",
        ),
        (
            "/v1/gaps/report?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&format=pdf",
            "format",
            "enum",
        ),
        (
            "/v1/gaps/report?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "range",
        ),
        (
            "/v1/gaps/report?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
            "max_range",
        ),
        (
            "/v1/gaps/report?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&tenant=x",
            "tenant",
            "unknown_parameter",
        ),
    ];
    for (path, field, rule) in cases {
        let (status, body) = get_json(&app, &token, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
        assert_eq!(body["rule"], rule, "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    // A token without events:read is refused.
    let writer = app.token("clinic", &["events:write"]).await;
    let (status, _) = get_json(&app, &writer, "/v1/gaps").await;
    assert_eq!(status, 403);
    let (status, _) = get_json(
        &app,
        &writer,
        "/v1/gaps/report?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}
