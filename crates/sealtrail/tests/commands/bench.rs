//! `sealtrail bench` run as an operator runs it, in its smallest configuration: the real
//! binary starting real servers. Nothing here judges a timing; the tests check that every
//! workload produces its figure, that figures meet the baseline and the targets in the
//! output, and that the bench refuses what it cannot do.

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{bench_figure as figure, json_stdout as json};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .arg("bench")
        .args(args)
        // The bench measures PostgreSQL only when asked here, whatever the caller's shell has.
        .env_remove("PGURL")
        .env("SEALTRAIL_LOG", "warn")
        .output()
        .expect("the sealtrail binary runs")
}

#[test]
fn a_quick_run_on_the_embedded_store_measures_every_ingest_workload() {
    let out = bench(&["--quick", "--seconds", "0.5", "--skip-baseline", "--json"]);
    let document = json(&out);
    for workload in ["batch", "single", "verify", "index-lag"] {
        let figure = figure(&document, workload, "embedded");
        assert!(figure["value"].as_f64().unwrap() > 0.0, "{figure}");
        assert!(
            figure["target"]["value"].as_f64().unwrap() > 0.0,
            "{figure}"
        );
        assert_eq!(figure["baseline"], Value::Null, "{figure}");
    }
    for workload in ["batch", "single"] {
        let figure = figure(&document, workload, "embedded");
        let (p50, p99) = (
            figure["p50_ms"].as_f64().unwrap(),
            figure["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{figure}");
    }
    assert_eq!(
        figure(&document, "single", "embedded")["target"]["p99_ms"],
        10.0
    );
    // Verification covered every event the ingest workloads had acknowledged.
    let verify = figure(&document, "verify", "embedded")["note"]
        .as_str()
        .unwrap();
    assert!(verify.contains("entries"), "{verify}");
    assert_eq!(document["baseline"]["status"], "skipped");
    assert_eq!(document["plan"]["quick"], true);
    assert_eq!(document["rounds"].as_array().unwrap().len(), 1);
    // The 10 M-event workloads run too, on a log of --quick's 20,000 events.
    assert_eq!(document["not_measured"], serde_json::json!([]));
    assert_eq!(document["plan"]["large_events"], 20_000);
    for workload in [
        "large-build",
        "index-catch-up",
        "index-incremental",
        "proof-inclusion",
        "proof-consistency",
        "search-first-page",
    ] {
        let figure = figure(&document, workload, "embedded");
        assert!(figure["value"].as_f64().unwrap() > 0.0, "{figure}");
    }
}

#[test]
fn the_text_output_puts_each_round_and_the_table_on_stdout() {
    let out = bench(&[
        "--quick",
        "--seconds",
        "0.3",
        "--skip-baseline",
        "--rounds",
        "2",
        "--only",
        "batch",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("round 1 embedded batch"), "{text}");
    assert!(text.contains("round 2 embedded batch"), "{text}");
    assert!(text.contains("medians of 2 rounds"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("batched ingest over HTTP, durable"))
        .unwrap_or_else(|| panic!("no table row: {text}"));
    assert!(row.contains("≥ 150,000 events/s"), "{row}");
    assert!(!text.contains("single-event ingest"), "{text}");
    // The limit, measured before the rounds, for the selected workload only, and the figure
    // as a fraction of it.
    assert!(text.contains("limit: each step alone on"), "{text}");
    assert!(text.contains("HTTP framing, batched"), "{text}");
    let fraction = text
        .split("against this machine's limit")
        .nth(1)
        .and_then(|rest| {
            rest.lines()
                .find(|l| l.starts_with("batched ingest over HTTP"))
        })
        .unwrap_or_else(|| panic!("no limit row: {text}"));
    let of_limit: f64 = fraction
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{fraction}: {e}"));
    assert!(of_limit > 0.0, "{fraction}");
    assert!(
        text.contains("no baseline figures: not run (--skip-baseline)"),
        "{text}"
    );
}

#[test]
fn postgres_without_a_database_url_is_refused() {
    let out = bench(&["--quick", "--store", "postgres"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--database-url"), "{stderr}");
}

/// The PostgreSQL store and the baseline, beside each other: needs a PostgreSQL server
/// (`SEALTRAIL_TEST_DATABASE_URL`) and pgbench.
#[test]
fn postgres_figures_stand_beside_the_baselines() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(url) = std::env::var("SEALTRAIL_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(!ci, "CI=true but SEALTRAIL_TEST_DATABASE_URL is not set");
        eprintln!("skipped: set SEALTRAIL_TEST_DATABASE_URL to run the bench on PostgreSQL");
        return;
    };
    let out = bench(&[
        "--quick",
        "--seconds",
        "0.5",
        "--database-url",
        &url,
        "--store",
        "postgres",
        "--only",
        "batch",
        "--only",
        "verify",
        "--json",
    ]);
    let document = json(&out);
    assert_eq!(document["baseline"]["status"], "measured", "{document:#}");
    let baseline = &document["rounds"][0]["baseline"]["values"];
    for workload in ["batch", "verify"] {
        let figure = figure(&document, workload, "postgres");
        let key = if workload == "batch" {
            "batch_events_per_s"
        } else {
            "verify_events_per_s"
        };
        assert_eq!(figure["baseline"], baseline[key], "{figure}");
        assert!(figure["baseline"].as_f64().unwrap() > 0.0, "{figure}");
    }
    assert!(baseline["verify_violations"].as_f64().is_some());
}
