//! `sealtrail doctor --url`: the checks a running server's published state answers, from the
//! bodies of its `GET /health` and `GET /metrics` (fetched by the caller; this module does no
//! I/O).
//!
//! What it can tell: whether the server answers and its overall status (`degraded` warns,
//! `failing` fails); its store check (a read of the store and an fsync'd file in its data
//! directory); whether audit writes fail; the background verifier's chain state; the
//! append-only triggers as the server finds them; its data directory's disk usage; the gap
//! findings open; the spool's depth and age; the index lag; the permissions warning `/health`
//! carries; the background archiver's state (`archive`, when the server archives); and, from
//! `/metrics`, each log's checkpoint age and the entries beyond its latest checkpoint — the
//! local check's rule: a log warns when it has entries beyond a checkpoint older than
//! [`CHECKPOINT_STALE_SECS`] (or entries and no checkpoint), so a quiet log whose checkpoint is
//! old is not flagged.
//!
//! What it cannot: key files, the schema and integrity check, the database's clock, a write probe into `_system`, or a fresh
//! verification of a chosen range. Run `sealtrail doctor --data DIR` or `--database-url URL`
//! on the server's host for those.

use std::collections::{BTreeMap, BTreeSet};

use sealtrail_core::text::count;
use serde_json::Value;

use super::{CHECKPOINT_STALE_SECS, Check, Diagnosis, SPOOL_AGE_FAIL_SECS};

/// The diagnosis from a server's answers: `health` is `GET /health`'s JSON body (or why it
/// could not be had), `metrics` the `GET /metrics` text (or why not).
pub fn assess(
    url: &str,
    health: Result<Value, String>,
    metrics: Result<String, String>,
) -> Diagnosis {
    let mut out = Vec::new();
    let health = match health {
        Ok(health) => health,
        Err(error) => {
            out.push(Check::fail(
                "server",
                format!("{url}/health did not answer: {error}"),
                "start `sealtrail serve`, or check the URL, the port and the network",
            ));
            return Diagnosis::new(out);
        }
    };
    let checks = &health["checks"];
    out.push(server_status(url, health["status"].as_str()));
    match checks["store"].as_str() {
        Some("ok") => out.push(Check::ok(
            "store",
            "the server reads its store and writes to its data directory",
        )),
        other => out.push(Check::fail(
            "store",
            format!(
                "store {}: {}",
                other.unwrap_or("unknown"),
                checks["store_error"].as_str().unwrap_or("no detail")
            ),
            "on the server's host: `sealtrail doctor --data DIR` (or --database-url URL)",
        )),
    }
    match checks["audit"].as_str() {
        Some("failing") => out.push(Check::fail(
            "audit",
            format!(
                "audit writes are failing: {}",
                checks["audit_error"].as_str().unwrap_or("no detail")
            ),
            "read the server's log for the commit error; `sealtrail doctor --data DIR` on its host",
        )),
        Some(state) => out.push(Check::ok(
            "audit",
            format!(
                "{state}, {} events in the last 5 minutes",
                checks["audit_log_count_5m"].as_u64().unwrap_or(0)
            ),
        )),
        None => out.push(Check::warn(
            "audit",
            "the server does not report its audit writes",
            "upgrade the server",
        )),
    }
    match checks["chain"].as_str() {
        Some("violated") => out.push(Check::fail(
            "chain",
            "the server's background verifier found a violation",
            "sealtrail verify --data DIR (or --database-url URL) for the report",
        )),
        Some("unchecked") => out.push(Check::warn(
            "chain",
            "not verified yet since the server started",
            "wait for the background verifier, or run `sealtrail verify`",
        )),
        Some(_) => out.push(Check::ok(
            "chain",
            "the background verifier finds the logs intact",
        )),
        None => out.push(Check::warn(
            "chain",
            "the server does not report its chain state",
            "sealtrail verify",
        )),
    }
    out.push(protections_check(checks));
    out.push(disk_check(&checks["disk"]));
    out.push(gaps_check(&checks["gaps_open"]));
    let depth = checks["spool"]["depth"].as_u64().unwrap_or(0);
    let age = checks["spool"]["oldest_age_seconds"].as_f64();
    let spool_remedy = "make PostgreSQL reachable again: the server drains the spool in order";
    if depth == 0 {
        out.push(Check::ok("spool", "no spooled events"));
    } else {
        let detail = format!(
            "{depth} events wait in the spool, the oldest for {:.0} s",
            age.unwrap_or(0.0)
        );
        if age.unwrap_or(0.0) > SPOOL_AGE_FAIL_SECS {
            out.push(Check::fail("spool", detail, spool_remedy));
        } else {
            out.push(Check::warn("spool", detail, spool_remedy));
        }
    }
    match checks["index_lag_seconds"].as_f64() {
        Some(lag) if lag > crate::health::INDEX_LAG_DEGRADED => out.push(Check::warn(
            "index",
            format!("the query index lags {lag:.0} s behind the log"),
            "check the server's log for indexer errors; searches miss recent events meanwhile",
        )),
        Some(lag) => out.push(Check::ok("index", format!("index lag {lag:.1} s"))),
        None => out.push(Check::ok("index", "no index lag reported yet")),
    }
    match checks["permissions_warning"].as_str() {
        Some(warning) => out.push(Check::warn(
            "permissions",
            warning.to_string(),
            "on the server's host: `chmod 700 DIR` and `chmod 600` on its database and key files",
        )),
        None => out.push(Check::ok(
            "permissions",
            "the server reports its data directory private",
        )),
    }
    if let Some(archive) = checks.get("archive") {
        out.push(archive_check(archive));
    }
    match metrics {
        Ok(text) => out.push(checkpoint_ages(&text)),
        Err(error) => out.push(Check::warn(
            "checkpoints",
            format!("cannot read {url}/metrics: {error}"),
            "pass a token with --token (or SEALTRAIL_TOKEN) if the metrics need one",
        )),
    }
    Diagnosis::new(out)
}

/// The `server` row: it answers, and its overall status — `degraded` warns and `failing`
/// fails, so a server that is not healthy never makes a table of `ok`s.
fn server_status(url: &str, status: Option<&str>) -> Check {
    let detail = format!("{url} answers; status {}", status.unwrap_or("unknown"));
    match status {
        Some("healthy") => Check::ok("server", detail),
        Some("failing") => Check::fail(
            "server",
            detail,
            "the failing rows below name the cause; `sealtrail doctor --data DIR` on its host for the rest",
        ),
        _ => Check::warn("server", detail, "the rows below that warn name the cause"),
    }
}

/// The `protections` row from `/health`'s `protections` and `protections_missing`.
fn protections_check(checks: &Value) -> Check {
    match checks["protections"].as_str() {
        Some("intact") => Check::ok(
            "protections",
            "the server finds its store's append-only triggers in force",
        ),
        Some("missing") => {
            let missing: Vec<&str> = checks["protections_missing"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Check::fail(
                "protections",
                format!("append-only triggers missing: {}", missing.join(", ")),
                "find out who removed them (the database's own log), then on the server's host `sealtrail migrate --database-url URL` or restart `sealtrail serve` (it recreates them) and `sealtrail verify` with checkpoints kept elsewhere",
            )
        }
        other => Check::warn(
            "protections",
            format!(
                "the server cannot tell ({})",
                other.unwrap_or("not reported")
            ),
            "on the server's host: `sealtrail doctor --data DIR` (or --database-url URL)",
        ),
    }
}

/// The `disk` row from `/health`'s `disk`: its thresholds are the local check's.
fn disk_check(disk: &Value) -> Check {
    let remedy = "free space or grow the volume holding the data directory; `sealtrail archive run` then a retention prune once archived";
    let Some(ratio) = disk["used_ratio"].as_f64() else {
        return Check::warn(
            "disk",
            "the server cannot measure its data directory's file system",
            "on the server's host: `df -h DIR`",
        );
    };
    let detail = format!(
        "the data directory's file system is {:.0} % used",
        ratio * 100.0
    );
    match disk["status"].as_str() {
        Some("critical") => Check::fail("disk", detail, remedy),
        Some("warning") => Check::warn("disk", detail, remedy),
        _ => Check::ok("disk", detail),
    }
}

/// The `gaps` row from `/health`'s `gaps_open`.
fn gaps_check(open: &Value) -> Check {
    match open.as_u64() {
        Some(0) => Check::ok("gaps", "no gap finding open"),
        Some(n) => Check::warn(
            "gaps",
            format!(
                "{} open (ongoing, or ended within the last hour)",
                count(n, "gap finding", "gap findings")
            ),
            "`GET /v1/gaps` names them; on the server's host `sealtrail gaps report --tenant T --from --to` for the write-up",
        ),
        None => Check::warn(
            "gaps",
            "the server does not report its gap findings",
            "upgrade the server",
        ),
    }
}

/// The `archive` check from `/health`'s `archive` section.
pub fn archive_check(archive: &Value) -> Check {
    let target = archive["target"].as_str().unwrap_or("?");
    let lease = archive["lease"].as_str().unwrap_or("unknown");
    let entries = archive["lag_entries"].as_u64();
    let seconds = archive["lag_seconds"].as_f64();
    let lag = match (entries, seconds) {
        (Some(entries), Some(seconds)) => {
            format!("{entries} entries not archived, the oldest signed one waiting {seconds:.0} s")
        }
        _ => "lag not known yet".to_string(),
    };
    let detail = format!(
        "{target}: {} (lease {lease}, immutable {}); {lag}; last success {}",
        archive["state"].as_str().unwrap_or("unknown"),
        archive["immutable"],
        archive["last_success"]
            .as_str()
            .unwrap_or("none since the start"),
    );
    match archive["state"].as_str() {
        Some("failing") => Check::fail(
            "archive",
            format!(
                "{detail}; last error: {}",
                archive["last_error"].as_str().unwrap_or("no detail")
            ),
            "fix what the error names (the target's lock, credentials or reachability); the server retries every interval",
        ),
        Some("lagging") => Check::warn(
            "archive",
            detail,
            "read the server's log for archive errors; on the server's host `sealtrail doctor --archive-to TARGET`",
        ),
        _ => Check::ok("archive", detail),
    }
}

/// Each tenant's value of the gauge `name` in an OpenMetrics text.
fn tenant_samples<'a>(metrics: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter_map(|line| {
            let (labels, value) = line.strip_prefix(&prefix)?.split_once("} ")?;
            let tenant = labels
                .split(',')
                .find_map(|l| l.strip_prefix("tenant=\""))
                .map_or("?", |t| t.trim_end_matches('"'));
            Some((tenant, value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// The `checkpoints` check from the `sealtrail_checkpoint_age_seconds{tenant="…"}` and
/// `sealtrail_checkpoint_unsigned_entries{tenant="…"}` samples: a log is behind when it has
/// unsigned entries and its latest checkpoint is older than [`CHECKPOINT_STALE_SECS`] or
/// missing. A server that does not export the unsigned entries (an older version) is judged by
/// the age alone, and the detail says a quiet log cannot be told apart.
pub fn checkpoint_ages(metrics: &str) -> Check {
    let ages: BTreeMap<&str, f64> = tenant_samples(metrics, "sealtrail_checkpoint_age_seconds")
        .into_iter()
        .collect();
    let unsigned: BTreeMap<&str, f64> =
        tenant_samples(metrics, "sealtrail_checkpoint_unsigned_entries")
            .into_iter()
            .collect();
    let stale = |age: f64| age > CHECKPOINT_STALE_SECS as f64;
    let mut behind = Vec::new();
    let tenants: BTreeSet<&str> = ages.keys().chain(unsigned.keys()).copied().collect();
    for tenant in &tenants {
        let age = ages.get(tenant).copied();
        match (unsigned.get(tenant).copied(), age) {
            (Some(n), _) if n <= 0.0 => {}
            (Some(n), None) => behind.push(format!(
                "{tenant}: {} and no checkpoint",
                count(n as u64, "entry", "entries")
            )),
            (Some(n), Some(age)) if stale(age) => behind.push(format!(
                "{tenant}: {} beyond a checkpoint {age:.0} s old",
                count(n as u64, "entry", "entries")
            )),
            (Some(_), Some(_)) => {}
            (None, Some(age)) if unsigned.is_empty() && stale(age) => behind.push(format!(
                "{tenant}: checkpoint {age:.0} s old (the server does not report unsigned entries, so a quiet log cannot be told apart)"
            )),
            (None, _) => {}
        }
    }
    if behind.is_empty() {
        Check::ok(
            "checkpoints",
            format!(
                "{} logs: every entry is covered by a checkpoint, or was signed within {} min",
                tenants.len(),
                CHECKPOINT_STALE_SECS / 60
            ),
        )
    } else {
        Check::warn(
            "checkpoints",
            format!("unsigned entries: {}", behind.join("; ")),
            "check the server's log for signing errors (a key file unreadable); `sealtrail doctor --data DIR` on its host",
        )
    }
}
