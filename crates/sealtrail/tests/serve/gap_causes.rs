//! The gap report's causes from sealtrail's own start and stop records, with real servers: a
//! producer numbers its events (`source.seq`) while `sealtrail serve` is stopped with SIGTERM
//! and started again, and later while it is killed with SIGKILL and started again; the
//! numbers sent to no server never arrive. The report puts the first gap down to planned
//! downtime and the second to a crash, each naming the host from the records.
//!
//! The gaps are producer sequence gaps: their bounds are the events' own times, so a real
//! restart falls inside them at once. A time gap starts and ends on whole minutes, and a
//! restart explains it only when the server's previous start is before the gap's first
//! silent minute, so the same test with time gaps would wait a minute or more per gap.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::sealtrail;
use crate::support::serve::{Serve, create_token, post_event};

/// Sends `ehr/pod-1`'s events numbered `seqs` to a running server.
async fn produce(serve: &Serve, token: &str, seqs: std::ops::RangeInclusive<u64>) {
    let client = reqwest::Client::new();
    for seq in seqs {
        let event = json!({"action": "patient.record.read", "outcome": "success",
            "actor": {"id": "dr-lee", "type": "user"},
            "targets": [{"type": "patient", "id": format!("p-{seq}")}],
            "source": {"app": "ehr", "instance": "pod-1", "seq": seq}});
        let response = post_event(&client, &serve.base, token, &event).await;
        assert_eq!(response.status(), 201, "seq {seq}");
    }
}

/// The `received_at` of each of sealtrail's start and stop records in `_system`, in order.
fn lifecycle_records(data: &Path) -> Vec<(String, String, String)> {
    let store = sealtrail_store::Location::new(data, None)
        .open_reader()
        .unwrap();
    let size = store.size("_system").unwrap();
    store
        .entries("_system", 0, size, size as usize)
        .unwrap()
        .into_iter()
        .filter_map(|(_, entry)| {
            let v: Value = serde_json::from_slice(&entry.unwrap()).unwrap();
            let action = v["action"].as_str()?.strip_prefix("sealtrail.server.")?;
            Some((
                action.to_string(),
                v["received_at"].as_str().unwrap().to_string(),
                v["details"]["hostname"].as_str().unwrap().to_string(),
            ))
        })
        .collect()
}

fn stamp(offset_secs: i64) -> String {
    let now = sealtrail_server::clock::Clock::system().now().unix_micros();
    sealtrail_core::Timestamp::from_unix_micros(now + offset_secs * 1_000_000)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test]
async fn the_gap_report_tells_a_planned_stop_from_a_crash_and_names_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let from = stamp(-3600);

    // Run 1: the producer's numbers 0–4 arrive; then a graceful stop.
    let run = Serve::start(dir.path(), &[]);
    let token = create_token(dir.path(), &[]);
    let token = token["token"].as_str().unwrap().to_string();
    produce(&run, &token, 0..=4).await;
    run.stop();
    // While it is down the producer numbers 5–7, and gets no answer.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Run 2: 8–10 arrive; then the server is killed.
    let run = Serve::start(dir.path(), &[]);
    produce(&run, &token, 8..=10).await;
    run.kill();

    // Run 3: 11–13 were lost in the crash; 14–15 arrive.
    let run = Serve::start(dir.path(), &[]);
    produce(&run, &token, 14..=15).await;
    run.stop();

    let data = dir.path().join("data");
    let records = lifecycle_records(&data);
    let actions: Vec<&str> = records.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["started", "stopped", "started", "started", "stopped"],
        "{records:?}"
    );
    let host = records[0].2.clone();
    assert!(!host.is_empty());
    assert!(records.iter().all(|(_, _, h)| *h == host), "{records:?}");
    let (stopped_at, planned_start, crash_start) = (&records[1].1, &records[2].1, &records[3].1);

    let to = stamp(60);
    let report = |format: &str| {
        sealtrail(
            &[
                "gaps", "report", "--data", "data", "--tenant", "acme", "--from", &from, "--to",
                &to, "--format", format,
            ],
            dir.path(),
        )
    };
    let out = report("json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "gaps found: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gaps = json["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{json:#}");
    for gap in gaps {
        assert_eq!(gap["kind"], "producer_seq_gap", "{gap:#}");
        assert_eq!(gap["producer"]["app"], "ehr");
    }
    assert_eq!(
        gaps[0]["recovery"]["lost_ranges"],
        json!([{"from": 5, "to": 7}])
    );
    assert_eq!(
        gaps[1]["recovery"]["lost_ranges"],
        json!([{"from": 11, "to": 13}])
    );

    let planned = &gaps[0]["cause"]["server"];
    assert_eq!(planned["state"], "planned_downtime", "{json:#}");
    assert_eq!(planned["host"], host.as_str());
    assert_eq!(
        planned["detail"],
        format!(
            "sealtrail on host {host} was stopped gracefully at {stopped_at} and started again at {planned_start}: planned downtime"
        )
    );
    let crash = &gaps[1]["cause"]["server"];
    assert_eq!(crash["state"], "crash", "{json:#}");
    assert_eq!(crash["host"], host.as_str());
    assert_eq!(
        crash["detail"],
        format!(
            "sealtrail on host {host} started at {crash_start} with no graceful stop recorded before it: the server before it crashed or was killed"
        )
    );
    let steps = json["what_to_do"].to_string();
    assert!(steps.contains("stopped without a graceful stop"), "{steps}");

    // The Markdown report says the same on each gap's cause line.
    let out = report("md");
    assert_eq!(out.status.code(), Some(1));
    let md = String::from_utf8(out.stdout).unwrap();
    let causes: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("  - sealtrail server: "))
        .collect();
    assert_eq!(causes.len(), 2, "{md}");
    assert!(
        causes[0].contains(&format!(
            "sealtrail on host {host} was stopped gracefully at {stopped_at}"
        )),
        "{md}"
    );
    assert!(
        causes[1].contains(&format!(
            "sealtrail on host {host} started at {crash_start}"
        )),
        "{md}"
    );
}
