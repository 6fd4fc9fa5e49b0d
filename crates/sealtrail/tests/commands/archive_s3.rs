//! The archive on a real S3 server that enforces Object Lock (SeaweedFS, started by the test on
//! free ports): archive a log, kill a run half-way and resume it, refuse a bucket without
//! Object Lock, see the server refuse to delete what was archived, verify the archive alone,
//! restore from it and drill.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sealtrail_s3::testing::Seaweed;
use sealtrail_s3::testing::aws_sdk_s3::types::ObjectLockMode;
use serde_json::Value;

use crate::support::tamper::{Log, TENANT};

/// Events in the log: enough entry bundles that a run can be killed half-way.
const EVENTS: u64 = 24_000;

fn sealtrail(s3: &Seaweed, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealtrail"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", s3.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", s3.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_access_key());
    command
}

fn run(s3: &Seaweed, args: &[&str]) -> (i32, Value, String) {
    let out: Output = sealtrail(s3, args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn keys(s3: &Seaweed, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .block_on(
                s3.client()
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send(),
            )
            .unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return keys;
        }
    }
}

/// Every version of every key under `prefix`: (key, version count).
fn versions(s3: &Seaweed, bucket: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    let mut key_marker = None;
    let mut version_marker = None;
    loop {
        let page = s3
            .block_on(
                s3.client()
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send(),
            )
            .unwrap();
        for v in page.versions() {
            *counts.entry(v.key().unwrap().to_string()).or_insert(0) += 1;
        }
        if page.is_truncated() != Some(true) {
            return counts.into_iter().collect();
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

fn verifier_key(log: &Log) -> String {
    for entry in std::fs::read_dir(log.data.join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_str().unwrap().ends_with(&format!("{TENANT}.vkey")) {
            return std::fs::read_to_string(path).unwrap().trim().to_string();
        }
    }
    panic!("no verifier key");
}

#[test]
fn an_archive_on_s3_with_object_lock_is_kept_resumed_verified_and_restored() {
    let Some(s3) = Seaweed::start_or_skip("archive_s3") else {
        return;
    };
    s3.create_bucket("audit", true);
    s3.create_bucket("unlocked", false);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    log.session(200..EVENTS);
    let data = log.data.to_str().unwrap();
    let target = "s3://audit/sealtrail";

    // A bucket without Object Lock is refused, saying how to fix it; nothing is written.
    let (code, _, err) = run(
        &s3,
        &["archive", "run", "--data", data, "--to", "s3://unlocked/x"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Object Lock"), "{err}");
    assert!(keys(&s3, "unlocked", "").is_empty());

    // A run killed half-way: some objects are there, not the final manifest.
    let mut child = sealtrail(&s3, &["archive", "run", "--data", data, "--to", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("sealtrail/{TENANT}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = keys(&s3, "audit", &format!("{prefix}tile/entries/"));
        if written.len() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the run wrote nothing in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let manifests = keys(&s3, "audit", &format!("{prefix}manifest/"));
    assert!(
        !manifests.contains(&format!("{prefix}manifest/{EVENTS}")),
        "the run finished before it was killed: {manifests:?}"
    );

    // The rerun resumes: the whole log, every object once, each in COMPLIANCE mode.
    let (code, json, err) = run(
        &s3,
        &["archive", "run", "--data", data, "--to", target, "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let acme = json["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == TENANT)
        .unwrap()
        .clone();
    assert_eq!(acme["to_size"], EVENTS, "{json:#}");
    assert_eq!(json["immutable"], true);
    let all = versions(&s3, "audit", &prefix);
    assert!(all.len() > 2 * (EVENTS as usize / 256), "{}", all.len());
    let twice: Vec<_> = all.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        twice.is_empty(),
        "objects written more than once: {twice:?}"
    );
    let bundle = format!("{prefix}tile/entries/000");
    let head = s3
        .block_on(
            s3.client()
                .head_object()
                .bucket("audit")
                .key(&bundle)
                .send(),
        )
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));

    // The server refuses to delete or overwrite an archived object's version.
    let version = head.version_id().unwrap().to_string();
    let delete = s3.block_on(
        s3.client()
            .delete_object()
            .bucket("audit")
            .key(&bundle)
            .version_id(&version)
            .bypass_governance_retention(true)
            .send(),
    );
    assert!(delete.is_err(), "a locked version was deleted");
    let still = s3
        .block_on(
            s3.client()
                .get_object()
                .bucket("audit")
                .key(&bundle)
                .version_id(&version)
                .send(),
        )
        .unwrap();
    assert_eq!(still.version_id(), Some(version.as_str()));

    // The archive alone verifies with the key; archive and store agree.
    let key = verifier_key(&log);
    let (code, report, err) = run(
        &s3,
        &[
            "verify",
            "--archive",
            target,
            "--key",
            &key,
            "--tenant",
            TENANT,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err} {report:#}");
    assert_eq!(report["rows_checked"], EVENTS);
    assert_eq!(report["checkpoint"]["size"], EVENTS);
    let (code, json, err) = run(
        &s3,
        &[
            "archive", "verify", "--data", data, "--to", target, "--tenant", TENANT, "--json",
        ],
    );
    assert_eq!(code, 0, "{err} {json:#}");

    // Restore from S3 into an empty embedded store, and the drill.
    let restored = dir.path().join("restored");
    let (code, json, err) = run(
        &s3,
        &[
            "restore",
            "--from",
            target,
            "--data",
            restored.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err} {json:#}");
    assert_eq!(json["valid"], true);
    let (code, json, err) = run(&s3, &["restore", "--drill", "--from", target, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["valid"], true);
    assert!(json["entries"].as_u64().unwrap() >= EVENTS);
}
