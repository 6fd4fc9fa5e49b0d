//! What an operator runs `sealtrail serve` with: its request log (text or JSON, no colours
//! into a pipe, no secrets), its metrics against the shipped alert rules and dashboard, and
//! the chain-violation metrics across repeated background verification runs.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::serve::{Serve, create_token, post_event};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// Every `sealtrail_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sealtrail_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The sample names `/metrics` exposes, from each family's `# TYPE` line (so that a family
/// with no series yet still counts) and from the samples.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

async fn scrape(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One sample's value, e.g. `sample(text, "sealtrail_chain_violations_total")`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

fn event(n: u64) -> Value {
    json!({"action": "patient.record.read", "outcome": "success", "actor": {"id": format!("u-{n}")}})
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exposed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[]);
    let token = create_token(dir.path(), &["--scope", "events:read"]);
    let client = reqwest::Client::new();
    let created = post_event(
        &client,
        &server.base,
        token["token"].as_str().unwrap(),
        &event(1),
    )
    .await;
    assert_eq!(created.status(), 201);
    // A family shows in the exposition once it has a series: ingest errors once there was one.
    let invalid = post_event(
        &client,
        &server.base,
        token["token"].as_str().unwrap(),
        &json!({"action": ""}),
    )
    .await;
    assert_eq!(invalid.status(), 422);
    // The gap detector's families get their series when it judges a tenant it has counted:
    // once the event is in the gap database, a restart judges it at once.
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let at = |micros: i64| {
        sealtrail_core::timestamp::Timestamp::from_unix_micros(micros)
            .unwrap()
            .to_rfc3339()
    };
    let hour = 3_600_000_000;
    let timeline = format!(
        "{}/v1/timeline?bucket=hour&from={}&to={}",
        server.base,
        at(now / hour * hour - hour),
        at(now / hour * hour + hour),
    );
    // Up to 30 s: on a busy machine (CI runs the tests in parallel) a follower's round can
    // wait for the CPU.
    let counted = async {
        for _ in 0..300 {
            let body: Value = client
                .get(&timeline)
                .header("Authorization", &bearer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["total"] == 1 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(counted.await, "the gap database never counted the event");
    // The frozen-refusal family once a frozen tenant's request was refused: frozen on the
    // store, it is seen within the re-check interval (1 s).
    let frozen = crate::support::sealtrail(
        &[
            "freeze", "--data", "data", "--tenant", "acme", "--reason", "metrics",
        ],
        dir.path(),
    );
    crate::support::succeed(&frozen);
    let refused = async {
        for n in 0..100 {
            let response = post_event(
                &client,
                &server.base,
                token["token"].as_str().unwrap(),
                &event(100 + n),
            )
            .await;
            if response.status() == 503 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        refused.await,
        "the frozen tenant's events were never refused"
    );
    let before_restart = scrape(&client, &server.base).await;
    server.stop();
    // With an archive, whose families get their series once it measured a log (and the
    // sealer's, once it looked at each log).
    // And a webhook, whose delivery family gets its series when the delivery starts.
    std::fs::write(
        dir.path().join("ops.toml"),
        "[[monitor.webhooks]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/hooks\"\n\
         secret = \"whsec_c2VhbHRyYWlsLW9wcy10ZXN0\"\n",
    )
    .unwrap();
    let server = Serve::start(
        dir.path(),
        &[
            "--archive-to",
            "archive",
            "--archive-allow-unlocked",
            "--config",
            "ops.toml",
        ],
    );
    let mut text = String::new();
    for _ in 0..300 {
        text = scrape(&client, &server.base).await;
        if text.contains("sealtrail_gaps_open{")
            && text.contains("sealtrail_archive_lag_seconds{")
            && text.contains("sealtrail_seal_errors_total{")
            && text.contains("sealtrail_alerts_total{")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut exposed = exposed(&text);
    exposed.extend(self::exposed(&before_restart));
    let text = format!("{before_restart}\n{text}");

    let rules = std::fs::read_to_string(deploy("prometheus/sealtrail-alerts.yml")).unwrap();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/sealtrail.json")).unwrap())
            .expect("the dashboard is valid JSON");
    let mut expressions = String::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        for target in panel["targets"].as_array().expect("each panel has targets") {
            let expr = target["expr"].as_str().expect("each target has an expr");
            assert!(
                !metric_names(expr).is_empty(),
                "{expr} uses no sealtrail metric"
            );
            expressions.push_str(expr);
            expressions.push('\n');
        }
    }
    for (what, used) in [
        ("the alert rules", metric_names(&rules)),
        ("the dashboard", metric_names(&expressions)),
    ] {
        assert!(used.len() > 5, "{what}: {used:?}");
        let missing: Vec<_> = used
            .iter()
            .filter(|name| !exposed.contains(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "{what} use metrics the server does not expose: {missing:?}\n{text}"
        );
    }
    server.stop();
}

#[tokio::test]
async fn requests_are_logged_as_json_lines_with_their_route_and_never_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &["--log-format", "json"]);
    let token = create_token(dir.path(), &[]);
    let secret = token["token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let base = &server.base;

    let created = post_event(&client, base, &secret, &event(1)).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let malformed = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&secret)
        .header("content-type", "application/json")
        .body("{\"action\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let wrong = "st_not-a-real-token-0123456789";
    let refused = client
        .get(format!("{base}/v1/events/{id}"))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let anonymous = client
        .get(format!("{base}/v1/events/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // Each refusal is counted by why, so a revoked token is told from a typo or a missing one.
    let metrics = scrape(&client, base).await;
    for (reason, count) in [
        ("unknown_token", 1.0),
        ("missing_token", 1.0),
        ("revoked", 0.0),
    ] {
        assert_eq!(
            sample(
                &metrics,
                &format!("sealtrail_auth_refusals_total{{reason=\"{reason}\"}}")
            ),
            Some(count),
            "{reason}: {metrics}"
        );
    }

    let stderr = server.stderr();
    server.stop();
    assert!(!stderr.contains(&secret), "the token is never logged");
    assert!(!stderr.contains(wrong), "nor a refused one");
    assert!(!stderr.contains("patient.record.read"), "nor event content");
    let requests: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|line| line["message"] == "request")
        .collect();
    let find = |status: u64| {
        requests
            .iter()
            .find(|r| r["status"] == status)
            .unwrap_or_else(|| panic!("no {status} line in {requests:#?}"))
    };
    let ok = find(201);
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["route"], "/v1/events");
    assert_eq!(ok["tenant"], "acme");
    assert!(ok["latency_ms"].as_f64().unwrap() >= 0.0, "{ok}");
    assert!(ok.get("error").is_none(), "{ok}");
    let bad = find(400);
    assert_eq!(bad["route"], "/v1/events");
    assert_eq!(bad["tenant"], "acme");
    assert!(bad["error"].is_string(), "{bad}");
    assert!(bad["rule"].is_string(), "{bad}");
    let unauthorized = find(401);
    // The route template, not the path with the event's id in it.
    assert_eq!(unauthorized["route"], "/v1/events/{id}");
    assert_eq!(unauthorized["method"], "GET");
    assert_eq!(unauthorized["error"], "unauthorized");
    assert_eq!(unauthorized["rule"], "unknown_token");
    assert!(unauthorized.get("tenant").is_none(), "{unauthorized}");
    assert!(
        !stderr.contains(&id),
        "the path's id is not logged: {stderr}"
    );
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(["serve", "--data", "data", "--listen", "127.0.0.1:0"])
        .env_remove("SEALTRAIL_LOG_FORMAT")
        .env_remove("SEALTRAIL_LOG")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = stdout.next().expect("serve prints its address").unwrap();
        if line.starts_with("sealtrail listening on") {
            break line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap()
                .to_string();
        }
    };
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let missing = reqwest::get(format!("{base}/no/such/route")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr:?}");
    let line = stderr
        .lines()
        .find(|l| l.contains("request") && l.contains("/health"))
        .unwrap_or_else(|| panic!("no request line for /health in {stderr}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    // A path no route serves is not written out: it is the caller's text.
    assert!(!stderr.contains("/no/such/route"), "{stderr}");
    assert!(stderr.contains("status=404"), "{stderr}");
}

#[tokio::test]
async fn the_violation_counter_counts_damage_once_across_verification_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &["--verify-interval-secs", "1"]);
    let token = create_token(dir.path(), &["--scope", "verify"]);
    let secret = token["token"].as_str().unwrap();
    let client = reqwest::Client::new();
    for n in 0..3 {
        assert_eq!(
            post_event(&client, &server.base, secret, &event(n))
                .await
                .status(),
            201
        );
    }

    // Alter seq 1 behind the server's back and put the trigger back as it was.
    let db = rusqlite::Connection::open(dir.path().join("data/sealtrail.db")).unwrap();
    let trigger: String = db
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'entries_append_only_update'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    db.execute_batch("DROP TRIGGER entries_append_only_update")
        .unwrap();
    db.execute(
        "UPDATE entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'success', 'failure') AS BLOB) WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'acme') | 1",
        [],
    )
    .unwrap();
    db.execute_batch(&trigger).unwrap();
    drop(db);

    let violated_runs = |text: &str| {
        sample(
            text,
            "sealtrail_verification_runs_total{result=\"violated\"}",
        )
        .unwrap_or(0.0)
    };
    let wait_for_runs = |at_least: f64| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            for _ in 0..300 {
                let text = scrape(&client, &base).await;
                if violated_runs(&text) >= at_least {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("fewer than {at_least} violated verification runs in 30 s");
        }
    };
    let first = wait_for_runs(1.0).await;
    let counted = sample(&first, "sealtrail_chain_violations_total").unwrap();
    let known = sample(&first, "sealtrail_chain_violations_known").unwrap();
    assert!(counted >= 1.0, "{first}");
    assert_eq!(known, counted, "{first}");
    // What verification reports is what the gauge says is known.
    let report: Value = client
        .get(format!("{}/v1/verify", server.base))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(report["violation_count"].as_f64(), Some(known), "{report}");

    let later = wait_for_runs(violated_runs(&first) + 3.0).await;
    assert_eq!(
        sample(&later, "sealtrail_chain_violations_total"),
        Some(counted),
        "the same damage found again is not counted again:\n{later}"
    );
    assert_eq!(
        sample(&later, "sealtrail_chain_violations_known"),
        Some(known)
    );
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    server.stop();
}
