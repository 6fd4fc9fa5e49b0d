//! `sealtrail bench`'s workloads "at 10 M events", run by the real binary at a tiny size:
//! the log is built, served, indexed, proven and searched, and a second run reuses the
//! cached log. Nothing here judges a timing; a proof that does not verify or a page that
//! does not match its filter fails the bench, and so these tests.

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::json_stdout as json;

fn figure<'a>(document: &'a Value, workload: &str) -> &'a Value {
    crate::support::bench_figure(document, workload, "embedded")
}

const LARGE: [&str; 6] = [
    "large-build",
    "index-catch-up",
    "index-incremental",
    "proof-inclusion",
    "proof-consistency",
    "search-first-page",
];

fn bench(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealtrail"));
    command
        .args(["bench", "--quick", "--skip-baseline", "--json"])
        .env_remove("PGURL")
        .env("SEALTRAIL_LOG", "warn");
    for workload in LARGE {
        command.args(["--only", workload]);
    }
    command
        .args(args)
        .output()
        .expect("the sealtrail binary runs")
}

#[test]
fn the_large_workloads_build_serve_prove_and_search_a_log_and_reuse_it_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let first = bench(&["--large-events", "3000", "--large-cache", cache_dir]);
    let document = json(&first);
    assert_eq!(document["plan"]["large_events"], 3000);
    assert_eq!(document["not_measured"], serde_json::json!([]));
    let note = |workload| figure(&document, workload)["note"].as_str().unwrap();

    let build = figure(&document, "large-build");
    assert_eq!(build["unit"], "events/s");
    assert!(build["value"].as_f64().unwrap() > 0.0, "{build}");
    assert_eq!(build["target"], Value::Null, "informative: no target");
    assert!(note("large-build").contains("3,000 events"), "{build}");
    assert!(!note("large-build").contains("CACHED"), "{build}");

    let catch_up = figure(&document, "index-catch-up");
    assert_eq!(catch_up["unit"], "s");
    assert_eq!(catch_up["target"], Value::Null);
    assert!(note("index-catch-up").contains("whole log searchable"));

    // A fifth of the 3,000 events is timed, batch by batch, after the rest.
    let incremental = figure(&document, "index-incremental");
    assert_eq!(incremental["unit"], "events/s");
    assert_eq!(incremental["target"], Value::Null);
    assert!(
        incremental["value"].as_f64().unwrap() > 0.0,
        "{incremental}"
    );
    assert!(
        note("index-incremental").starts_with(
            "the last 600 entries indexed batch by batch (10,000 per transaction, bulk loads off) into an index already holding 2,400"
        ),
        "{incremental}"
    );

    for workload in ["proof-inclusion", "proof-consistency"] {
        let proofs = figure(&document, workload);
        assert_eq!(proofs["unit"], "ms");
        // The 1 ms target is for 10 M events: at 3,000 it is not applied, and the note says so.
        assert_eq!(proofs["target"], Value::Null, "{proofs}");
        assert!(
            note(workload).starts_with("at 3,000 events, not 10 M"),
            "{proofs}"
        );
        assert_eq!(proofs["value"], proofs["p99_ms"]);
        assert!(proofs["p50_ms"].as_f64().unwrap() > 0.0, "{proofs}");
        // --quick: 500 requests, every one of them verified.
        assert!(note(workload).contains("500 answers verified"), "{proofs}");
    }
    let search = figure(&document, "search-first-page");
    assert_eq!(search["target"], Value::Null, "{search}");
    let text = note("search-first-page");
    assert!(text.contains("280 first pages"), "{text}");
    assert!(text.contains("every page checked"), "{text}");
    for kind in [
        "actor",
        "action",
        "patient",
        "failed-login",
        "ip",
        "q",
        "from/to",
    ] {
        assert!(text.contains(&format!("{kind} ")), "{kind}: {text}");
    }

    // The built log was kept, and the next run uses it instead of building again.
    let kept = cache.path().join("1-3000");
    assert!(kept.join("manifest.json").is_file());
    assert!(kept.join("data").is_dir());
    let second = bench(&[
        "--large-events",
        "3000",
        "--large-cache",
        cache_dir,
        "--only",
        "batch",
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr).to_string();
    let document = json(&second);
    assert!(stderr.contains("using the cached large log"), "{stderr}");
    assert!(
        figure(&document, "large-build")["note"]
            .as_str()
            .unwrap()
            .contains("CACHED"),
    );
    // The ingest workloads still run on a fresh server of their own.
    assert!(figure(&document, "batch")["value"].as_f64().unwrap() > 0.0);
    figure(&document, "search-first-page");
}

#[test]
fn a_log_too_small_for_the_large_workloads_is_refused() {
    let out = bench(&["--large-events", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--large-events must be at least"),
        "{stderr}"
    );
}
