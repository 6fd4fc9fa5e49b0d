//! `sealtrail report NAME` on a store, as an auditor runs it: rows that match the log, the
//! checkpoint the report covers, CSV and Markdown, flags named in refusals, and a damaged log
//! refused with exit status 1 naming the first broken seq — on the embedded store and on
//! PostgreSQL.

use crate::support::tamper::{Log, SIZE, TENANT};
use crate::support::{TestDatabase, json_stdout, sealtrail_here as sealtrail, stderr, stdout};

fn store_args(log: &Log) -> Vec<String> {
    let mut args = vec!["--data".to_string(), log.data.to_str().unwrap().to_string()];
    if let Some(url) = log.url() {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args
}

fn report(log: &Log, name: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["report".to_string(), name.to_string()];
    args.extend(store_args(log));
    args.extend(["--tenant".to_string(), TENANT.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sealtrail(&args)
}

fn reports_over(log: &Log) {
    // The test log: SIZE reads by u-0 … u-6 (n % 7), no occurred_at, received now.
    let out = report(log, "user-activity", &["--actor", "u-3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let body = json_stdout(&out);
    assert_eq!(body["report"], "user-activity");
    assert_eq!(body["tenant"], TENANT);
    assert_eq!(body["checkpoint"]["size"], SIZE);
    assert_eq!(body["coverage"]["entries_verified"], SIZE);
    let seqs: Vec<u64> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..SIZE).filter(|n| n % 7 == 3).collect();
    assert_eq!(seqs, expected);

    let out = report(log, "daily-activity", &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "day,action,activity,outcome,actor_type,count");
    let total: u64 = lines[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, SIZE, "{csv}");

    let out = report(log, "completeness", &["--format", "md"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    assert!(md.starts_with("# Data completeness — acme"), "{md}");
    assert!(md.contains(&format!("size {SIZE} root ")), "{md}");

    // A refusal names the flag.
    let out = report(log, "record-access", &["--target-type", "patient"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--target-id: is required"),
        "{}",
        stderr(&out)
    );

    // A damaged entry: the report refuses, naming where the damage starts.
    let mut db = log.open();
    db.disarm();
    let mut entry = db.entry(5);
    let at = entry.windows(3).position(|w| w == b"u-5").unwrap();
    entry[at + 2] = b'6';
    db.set_entry(5, &entry);
    drop(db);
    let out = report(log, "user-activity", &["--actor", "u-6"]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("do not verify") && message.contains("seq 5"),
        "{message}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn reports_over_an_embedded_store_match_the_log_and_refuse_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    reports_over(&log);
}

#[test]
fn reports_over_a_postgres_store_match_the_log_and_refuse_damage() {
    let Some(db) = TestDatabase::create("report::postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), Some(db));
    reports_over(&log);
}

/// `--url`: the same report from a running server, with a token of the reports scope; a
/// token without it is refused with the server's message.
#[test]
fn report_asks_a_running_server_with_url_and_a_token() {
    use crate::support::serve::{Serve, create_token, post_batch};
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--checkpoint-interval-ms", "50"]);
    let token = create_token(dir.path(), &["--scope", "reports"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let events: Vec<serde_json::Value> = (0..4)
        .map(|n| {
            serde_json::json!({"action": "user.login", "activity": "login",
                "outcome": if n % 2 == 0 { "failure" } else { "success" },
                "actor": {"id": "u-1", "type": "user"}})
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime.block_on(post_batch(
        &reqwest::Client::new(),
        &serve.base,
        &token,
        &events,
    ));
    assert_eq!(response.status().as_u16(), 200);

    let ask = |token: &str| {
        sealtrail(&[
            "report",
            "user-activity",
            "--url",
            &serve.base,
            "--token",
            token,
            "--tenant",
            "acme",
            "--actor",
            "u-1",
        ])
    };
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        let out = ask(&token);
        if out.status.success() {
            body = json_stdout(&out);
            if body["checkpoint"]["size"] == 4 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(body["report"], "user-activity", "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 4, "{body}");

    let writer = create_token(dir.path(), &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ask(&writer);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("reports scope"), "{}", stderr(&out));
    serve.stop();
}
