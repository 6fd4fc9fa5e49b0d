//! `sealtrail gaps list` and `gaps timeline` on a store, as an operator runs them: the exit
//! status says whether the window holds a gap, and the JSON is the shape scripts rely on.

use crate::support::tamper::{Log, SIZE};
use crate::support::{json_stdout, sealtrail_here as sealtrail};

#[test]
fn gaps_list_proves_the_missing_producer_numbers_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();

    // An intact sequence: no gap, exit 0.
    let out = sealtrail(&["gaps", "list", "--data", data, "--tenant", "acme", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_stdout(&out);
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["gaps"], serde_json::json!([]), "{report:#}");

    // The producer skips 17 numbers.
    log.session(SIZE + 17..SIZE + 20);
    let out = sealtrail(&["gaps", "list", "--data", data, "--tenant", "acme", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 gap found in acme's log"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gaps = report["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{report:#}");
    let gap = &gaps[0];
    assert_eq!(gap["kind"], "producer_seq_gap");
    assert_eq!(gap["producer"]["app"], "ehr");
    assert_eq!(
        gap["missing"],
        serde_json::json!([{"from": SIZE, "to": SIZE + 16}]),
        "{gap:#}"
    );
    for field in ["start", "end", "duration_seconds", "impact", "detail"] {
        assert!(!gap[field].is_null(), "{field}: {gap:#}");
    }

    // Another tenant's window is its own.
    let out = sealtrail(&[
        "gaps", "list", "--data", data, "--tenant", "_system", "--json",
    ]);
    assert_eq!(json_stdout(&out)["tenant"], "_system");

    // A bad timestamp names the flag and the expected form.
    let out = sealtrail(&[
        "gaps",
        "list",
        "--data",
        data,
        "--tenant",
        "acme",
        "--from",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--from") && stderr.contains("RFC 3339"),
        "{stderr}"
    );
}

#[test]
fn gaps_timeline_counts_every_event_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let hour = 3_600_000_000i64;
    let at = |micros: i64| {
        sealtrail_core::timestamp::Timestamp::from_unix_micros(micros)
            .unwrap()
            .to_rfc3339()
    };
    let (from, to) = (at(now / hour * hour - hour), at(now / hour * hour + hour));
    let out = sealtrail(&[
        "gaps", "timeline", "--data", data, "--tenant", "acme", "--bucket", "hour", "--from",
        &from, "--to", &to, "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timeline = json_stdout(&out);
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{timeline:#}");
    let sum: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, SIZE, "{timeline:#}");
    assert_eq!(timeline["total"], SIZE);
}

#[test]
fn gaps_report_in_markdown_names_the_lost_numbers_and_the_class_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let data = log.data.to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let hour = 3_600_000_000i64;
    let at = |micros: i64| {
        sealtrail_core::timestamp::Timestamp::from_unix_micros(micros)
            .unwrap()
            .to_rfc3339()
    };
    let (from, to) = (at(now - hour), at(now + hour));
    let report = |format: &str| {
        sealtrail(&[
            "gaps", "report", "--data", data, "--tenant", "acme", "--from", &from, "--to", &to,
            "--format", format,
        ])
    };

    // An intact sequence: no gap, exit 0, and the report says so.
    let out = report("md");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# Audit log gap report: acme\n"), "{md}");
    assert!(md.contains("No gap was found in this window."), "{md}");

    // The producer skips 17 numbers, within the same second: a low-impact gap whose numbers
    // are provably lost.
    log.session(SIZE + 17..SIZE + 20);
    let out = report("md");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 gap found in acme's log"), "{stderr}");
    let md = String::from_utf8(out.stdout).unwrap();
    let missing = format!("source.seq {}–{} (17 events)", SIZE, SIZE + 16);
    assert!(
        md.contains(&format!("- **Provably lost:** {missing} never arrived")),
        "{md}"
    );
    assert!(
        md.contains("## Gap 1: Producer sequence gap: events lost (low impact)"),
        "{md}"
    );
    assert!(md.contains("- **Compliance impact:** low"), "{md}");
    assert!(md.contains("`sealtrail replay"), "{md}");

    // JSON: the same content.
    let out = report("json");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gap = &json["gaps"][0];
    assert_eq!(gap["impact"], "low");
    assert_eq!(gap["recovery"]["lost"], 17);
    assert_eq!(
        gap["recovery"]["lost_ranges"],
        serde_json::json!([{"from": SIZE, "to": SIZE + 16}])
    );
    assert_eq!(
        json["compensating_records"]["audit_stdout"],
        serde_json::Value::Null
    );

    // A bad format names the flag and what it takes.
    let out = report("pdf");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--format") && stderr.contains("md or json"),
        "{stderr}"
    );
    // So does a window the wrong way round.
    let out = sealtrail(&[
        "gaps", "report", "--data", data, "--tenant", "acme", "--from", &to, "--to", &from,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--from") && stderr.contains("before"),
        "{stderr}"
    );
}
