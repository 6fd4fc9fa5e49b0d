//! `sealtrail export` on a store written through the ledger: NDJSON on stdout with each line's
//! entry the stored bytes (hashing to its `event_hash`), the cursor it prints continuing
//! without overlap, `--out` refusing to overwrite and `--resume` completing a cut file
//! byte for byte in every format, and the filters.

use std::path::Path;

use sealtrail_core::hash::leaf_hash;
use sealtrail_store::Location;
use serde_json::Value;

use crate::support::tamper::{Log, SIZE, TENANT};
use crate::support::{sealtrail_here as sealtrail, stderr, succeed};

fn export(data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "export",
        "--data",
        data.to_str().unwrap(),
        "--tenant",
        TENANT,
    ];
    args.extend_from_slice(extra);
    sealtrail(&args)
}

fn stored_entries(data: &Path) -> Vec<Vec<u8>> {
    let store = Location::new(data, None).open_reader().unwrap();
    let mut entries = Vec::new();
    store
        .for_each_entry(TENANT, 0, u64::MAX, &mut |_, entry| {
            entries.push(entry.unwrap().to_vec())
        })
        .unwrap();
    entries
}

/// The cursor the command printed on stderr.
fn printed_cursor(output: &std::process::Output) -> String {
    let text = stderr(output);
    text.split("--cursor ")
        .nth(1)
        .unwrap_or_else(|| panic!("no cursor in {text:?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn ndjson_lines_are_the_stored_entries_and_the_cursor_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let output = export(&log.data, &["--format", "ndjson"]);
    let text = succeed(&output);
    let stored = stored_entries(&log.data);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, SIZE);
    for (seq, line) in lines.iter().enumerate() {
        let entry = line["entry"].as_str().unwrap();
        assert_eq!(entry.as_bytes(), stored[seq].as_slice());
        assert_eq!(line["event_hash"], leaf_hash(entry.as_bytes()).to_hex());
        assert_eq!(line["seq"], seq as u64);
        assert_eq!(line["tenant"], TENANT);
    }
    // Nothing but the export on stdout; the cursor of the next export on stderr.
    let cursor = printed_cursor(&output);
    log.session(SIZE..SIZE + 5);
    let next = export(&log.data, &["--format", "ndjson", "--cursor", &cursor]);
    let seqs: Vec<u64> = succeed(&next)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (SIZE..SIZE + 5).collect::<Vec<_>>());
}

/// SIGTERM in the middle of an export to stdout (a reader that has stopped reading, an
/// operator's Ctrl-C): the export ends at the end of a page, with failure, saying which cursor
/// continues it, and that cursor gives exactly the rest, so nothing is lost or repeated.
#[test]
fn sigterm_stops_an_export_between_pages_and_its_cursor_continues_it() {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    // Ten pages of 2,000 entries: far more than a pipe holds.
    log.session(SIZE..SIZE + 20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args([
            "export",
            "--data",
            log.data.to_str().unwrap(),
            "--tenant",
            TENANT,
            "--format",
            "ndjson",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Its first byte: the export is writing its first page (its handlers are in place), and
    // it now waits for this reader, the pipe being full.
    let mut first = [0u8];
    stdout.read_exact(&mut first).unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // Read on slowly, so that the export is still paging when the signal's flag is set.
    let mut written = first.to_vec();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        std::thread::sleep(std::time::Duration::from_millis(5));
        match stdout.read(&mut chunk).unwrap() {
            0 => break,
            n => written.extend_from_slice(&chunk[..n]),
        }
    }
    let output = child.wait_with_output().unwrap();
    let errors = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the export fails, not killed by the signal: {}\n{errors}",
        output.status
    );
    assert!(errors.contains("stopped after"), "{errors}");
    let written = String::from_utf8(written).unwrap();
    let lines = written.lines().count();
    assert!(
        lines > 0 && lines < (SIZE + 20_000) as usize && lines.is_multiple_of(2_000),
        "whole pages, not all of them: {lines} lines"
    );
    let cursor = printed_cursor(&output);
    let continued = succeed(&export(
        &log.data,
        &["--format", "ndjson", "--cursor", &cursor],
    ));
    let stored = stored_entries(&log.data);
    let all: Vec<Value> = written
        .lines()
        .chain(continued.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(all.len(), stored.len(), "nothing lost or repeated");
    for (seq, (line, entry)) in all.iter().zip(&stored).enumerate() {
        assert_eq!(line["seq"], seq as u64);
        assert_eq!(line["entry"].as_str().unwrap().as_bytes(), entry.as_slice());
    }
}

#[test]
fn out_refuses_to_overwrite_and_resume_completes_a_cut_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    for format in ["ndjson", "csv", "ocsf"] {
        let full = dir.path().join(format!("full.{format}"));
        succeed(&export(
            &log.data,
            &["--format", format, "--out", full.to_str().unwrap()],
        ));
        let bytes = std::fs::read(&full).unwrap();
        for cut in [bytes.len() / 3, bytes.len() / 2 + 7, 10] {
            let part = dir.path().join(format!("part.{format}"));
            std::fs::write(&part, &bytes[..cut]).unwrap();
            let refused = export(
                &log.data,
                &["--format", format, "--out", part.to_str().unwrap()],
            );
            assert!(!refused.status.success(), "{format}: overwrote a file");
            assert!(
                stderr(&refused).contains("--resume"),
                "{}",
                stderr(&refused)
            );
            succeed(&export(
                &log.data,
                &[
                    "--format",
                    format,
                    "--out",
                    part.to_str().unwrap(),
                    "--resume",
                ],
            ));
            assert!(
                std::fs::read(&part).unwrap() == bytes,
                "{format} cut at {cut}"
            );
        }
    }
}

#[test]
fn filters_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::build(dir.path().join("data"), None);
    let all: Vec<Value> = succeed(&export(&log.data, &["--format", "ndjson"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actor = all[3]["event"]["actor"]["id"].as_str().unwrap().to_string();
    let expected: Vec<&Value> = all
        .iter()
        .filter(|l| l["event"]["actor"]["id"] == actor.as_str())
        .collect();
    let csv = succeed(&export(&log.data, &["--format", "csv", "--actor", &actor]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let seqs: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert_eq!(
        seqs,
        expected
            .iter()
            .map(|l| l["seq"].to_string())
            .collect::<Vec<_>>()
    );
    let ocsf = succeed(&export(&log.data, &["--format", "ocsf", "--actor", &actor]));
    assert_eq!(ocsf.lines().count(), expected.len());
    for line in ocsf.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["metadata"]["tenant_uid"], TENANT);
        assert_eq!(event["actor"]["user"]["uid"], actor.as_str());
    }
    let bad = export(&log.data, &["--format", "ndjson", "--activity", "reading"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--activity"), "{}", stderr(&bad));
}
