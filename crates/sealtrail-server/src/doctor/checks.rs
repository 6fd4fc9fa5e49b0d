//! The local checks of `sealtrail doctor`, one function each (see the module table in
//! `doctor/mod.rs`). Each returns one [`Check`] and never fails itself: what stops a check is
//! its finding.

use std::path::Path;

use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::note;
use sealtrail_store::{DataDir, Integrity, Location, Store};

use super::{
    CHECKPOINT_STALE_SECS, CLOCK_SKEW_FAIL_SECS, CLOCK_SKEW_WARN_SECS, Check, DISK_FAIL_PERCENT,
    DISK_WARN_PERCENT, FUTURE_CHECKPOINT_TOLERANCE_SECS, INDEX_LAG_WARN_ENTRIES, LocalRequest,
    PROBE_ACTION, RECENT_ENTRIES, SPOOL_AGE_FAIL_SECS, seconds_between, shown,
};
use crate::ledger::{Ledger, Outcome, SYSTEM_TENANT, Submission};

/// Opens the store for reading, or the failed `store` check.
pub(super) fn open_store(
    location: &Location,
    request: &LocalRequest,
) -> Result<Box<dyn Store>, Check> {
    if let Location::Embedded { data_dir } = location {
        let database = DataDir::new(data_dir).database();
        if !database.exists() {
            return Err(Check::fail(
                "store",
                format!(
                    "no sealtrail store at {} (the other store checks were not run)",
                    shown(&database)
                ),
                "point at the server's store with --data DIR or --database-url URL; only `sealtrail serve` creates one",
            ));
        }
    }
    location.open_reader().map_err(|error| {
        let remedy = match location {
            Location::Postgres { .. } => format!(
                "start PostgreSQL or check the URL and network (`pg_isready`), then run `sealtrail doctor {}` again",
                request.store_args
            ),
            Location::Embedded { .. } => format!(
                "check the file's owner and modes; if it is damaged, restore {} from a backup",
                request.store_args
            ),
        };
        Check::fail(
            "store",
            format!(
                "cannot open the {} store: {error} (the other store checks were not run)",
                location.kind()
            ),
            remedy,
        )
    })
}

/// Schema version and the engine's integrity check (the one `sealtrail verify` runs first).
pub(super) fn schema(conn: &dyn Store, request: &LocalRequest) -> Check {
    let versions = match conn.schema_versions() {
        Ok(v) => v,
        Err(error) => {
            return Check::fail(
                "schema",
                format!("cannot read the schema version: {error}"),
                format!("sealtrail verify {}", request.store_args),
            );
        }
    };
    let problems = match conn.integrity_problems(Integrity::Full) {
        Ok(problems) => problems,
        Err(error) => vec![error.to_string()],
    };
    if !problems.is_empty() {
        return Check::fail(
            "schema",
            format!(
                "the store's files are damaged: {}",
                problems
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "stop the server and restore the data from a backup or the archive, then `sealtrail verify`",
        );
    }
    let (found, known) = versions;
    let engine = match conn.kind() {
        "postgres" => {
            "PostgreSQL catalog sound (every table, key, unique constraint and index in place and valid; b-tree structure too where amcheck is installed)"
        }
        _ => "SQLite integrity_check ok",
    };
    if found < known {
        let remedy = match conn.kind() {
            "postgres" => format!("sealtrail migrate {}", request.store_args),
            _ => format!(
                "start `sealtrail serve {}` once to bring it up to date",
                request.store_args
            ),
        };
        return Check::warn(
            "schema",
            format!("schema version {found}, older than this build's {known}; {engine}"),
            remedy,
        );
    }
    Check::ok("schema", format!("schema version {found}; {engine}"))
}

/// The append-only triggers, as `sealtrail verify` checks them.
pub(super) fn protections(conn: &dyn Store, location: &Location, request: &LocalRequest) -> Check {
    let protections = match conn.protections() {
        Ok(p) => p,
        Err(error) => {
            return Check::fail(
                "protections",
                format!("cannot list the append-only triggers: {error}"),
                format!("sealtrail verify {}", request.store_args),
            );
        }
    };
    let missing: Vec<&str> = protections
        .iter()
        .filter(|p| !p.active)
        .map(|p| p.name.as_str())
        .collect();
    if missing.is_empty() {
        return Check::ok(
            "protections",
            format!("{} append-only triggers in force", protections.len()),
        );
    }
    let remedy = match location {
        Location::Postgres { .. } => format!(
            "find out who removed them, then `sealtrail migrate {}` (it recreates them) and `sealtrail verify {} --checkpoint FILE` with checkpoints kept elsewhere",
            request.store_args, request.store_args
        ),
        Location::Embedded { .. } => format!(
            "treat the store as tampered with: `sealtrail verify {} --checkpoint FILE` with checkpoints kept elsewhere, then restore the data directory from a verified backup",
            request.store_args
        ),
    };
    Check::fail(
        "protections",
        format!("missing or disabled: {}", missing.join("; ")),
        remedy,
    )
}

/// Who else may read the data directory, its databases and the key files.
pub(super) fn permissions(data_dir: &Path, location: &Location) -> Check {
    let dir = DataDir::new(data_dir);
    if !data_dir.exists() {
        return match location {
            // The PostgreSQL store may run without a local data directory until it spools.
            Location::Postgres { .. } => Check::ok(
                "permissions",
                format!("no data directory at {} yet", shown(data_dir)),
            ),
            Location::Embedded { .. } => Check::fail(
                "permissions",
                format!("the data directory {} does not exist", shown(data_dir)),
                "point --data at the server's data directory",
            ),
        };
    }
    let mut open = match dir.too_open() {
        Ok(open) => open,
        Err(error) => {
            return Check::fail(
                "permissions",
                format!("cannot read the modes in {}: {error}", shown(data_dir)),
                format!(
                    "run doctor as the user that runs the server, or `ls -l {}`",
                    shown(data_dir)
                ),
            );
        }
    };
    // Key files: the private keys must be their owner's alone.
    let mut private_keys = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.keys()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "key") {
                let mode = mode_of(&path);
                if mode & 0o077 != 0 {
                    private_keys.push((path, mode));
                }
            }
        }
    }
    let world_readable_db = open
        .iter()
        .any(|(path, mode)| path != data_dir && mode & 0o004 != 0);
    if open.is_empty() && private_keys.is_empty() {
        return Check::ok(
            "permissions",
            "data directory 0700, databases and key files 0600 or narrower",
        );
    }
    let mut chmods = Vec::new();
    if open.iter().any(|(path, _)| path == data_dir) {
        chmods.push(format!("chmod 700 {}", shown(data_dir)));
    }
    let files: Vec<String> = open
        .iter()
        .filter(|(path, _)| path != data_dir)
        .chain(private_keys.iter())
        .map(|(path, _)| shown(path))
        .collect();
    if !files.is_empty() {
        chmods.push(format!("chmod 600 {}", files.join(" ")));
    }
    open.extend(private_keys.iter().cloned());
    let listed: Vec<String> = open
        .iter()
        .map(|(path, mode)| format!("{} is {mode:04o}", shown(path)))
        .collect();
    let detail = format!("other local users can reach: {}", listed.join(", "));
    if world_readable_db || !private_keys.is_empty() {
        Check::fail("permissions", detail, chmods.join(" && "))
    } else {
        Check::warn("permissions", detail, chmods.join(" && "))
    }
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

/// How full the data directory's file system is.
pub(super) fn disk(data_dir: &Path) -> Check {
    let probe = if data_dir.exists() {
        data_dir
    } else {
        match data_dir.parent() {
            Some(parent) if parent.exists() => parent,
            _ => Path::new("."),
        }
    };
    match rustix::fs::statvfs(probe) {
        Ok(stat) => classify_disk(
            &shown(data_dir),
            stat.f_blocks.saturating_mul(stat.f_frsize),
            stat.f_bavail.saturating_mul(stat.f_frsize),
            stat.f_bfree.saturating_mul(stat.f_frsize),
        ),
        Err(error) => Check::fail(
            "disk",
            format!("cannot read the file system of {}: {error}", shown(probe)),
            format!("df -h {}", shown(probe)),
        ),
    }
}

/// The `disk` verdict for a file system of `total` bytes with `available` free to
/// unprivileged users and `free` in all. Usage counts the root reserve as used, as `df` does.
pub(super) fn classify_disk(place: &str, total: u64, available: u64, free: u64) -> Check {
    let used = total.saturating_sub(free);
    let usable = used + available;
    let percent = if usable == 0 {
        100.0
    } else {
        used as f64 * 100.0 / usable as f64
    };
    let detail = format!(
        "{percent:.0} % used on the file system of {place} ({} free)",
        human_bytes(available)
    );
    let remedy = format!(
        "free space or grow the volume of {place} (`df -h {place}`); an archived, verified log can be pruned with `sealtrail retention apply`"
    );
    if percent >= DISK_FAIL_PERCENT {
        Check::fail("disk", detail, remedy)
    } else if percent >= DISK_WARN_PERCENT {
        Check::warn("disk", detail, remedy)
    } else {
        Check::ok("disk", detail)
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The checkpoint's text, parsed, from a stored signed note (signatures are the chain
/// check's concern).
fn parse_checkpoint(signed: &str) -> Option<Checkpoint> {
    let parsed = note::parse(signed.as_bytes()).ok()?;
    Checkpoint::parse(&parsed.text).ok()
}

/// Logs that grew past their latest checkpoint long ago, or have none.
pub(super) fn checkpoints(conn: &dyn Store, now: Timestamp) -> Check {
    let tenants = match conn.tenants() {
        Ok(t) => t,
        Err(error) => return Check::fail("checkpoints", error.to_string(), "sealtrail verify"),
    };
    let mut behind = Vec::new();
    for tenant in &tenants {
        let (size, latest) = match (
            conn.size(&tenant.name),
            conn.latest_checkpoint(&tenant.name),
        ) {
            (Ok(size), Ok(latest)) => (size, latest),
            (Err(error), _) | (_, Err(error)) => {
                return Check::fail("checkpoints", error.to_string(), "sealtrail verify");
            }
        };
        if size == 0 {
            continue;
        }
        match latest {
            None => behind.push(format!(
                "{} has {size} entries and no checkpoint",
                tenant.name
            )),
            Some(cp) if cp.size < size => {
                let signed_at = parse_checkpoint(&cp.note)
                    .and_then(|c| c.timestamp)
                    .or_else(|| Timestamp::parse(&cp.created_at).ok());
                let age = signed_at.map(|t| seconds_between(t, now));
                if age.is_none_or(|age| age > CHECKPOINT_STALE_SECS as f64) {
                    behind.push(format!(
                        "{}: {size} entries, latest checkpoint {} ({})",
                        tenant.name,
                        cp.size,
                        age.map(|a| format!("{:.0} s old", a))
                            .unwrap_or_else(|| "undated".into())
                    ));
                }
            }
            Some(_) => {}
        }
    }
    if behind.is_empty() {
        Check::ok(
            "checkpoints",
            format!(
                "every non-empty log of {} is covered by a checkpoint, or was within {} min",
                tenants.len(),
                CHECKPOINT_STALE_SECS / 60
            ),
        )
    } else {
        Check::warn(
            "checkpoints",
            format!("unsigned entries: {}", behind.join("; ")),
            "start (or restart) `sealtrail serve`: its writer signs every log behind its checkpoint at start; if it runs, check its log for signing errors (a key file unreadable)",
        )
    }
}

/// This machine's clock against the database's and against the latest checkpoints.
pub(super) fn clock(conn: &dyn Store, now: Timestamp) -> Check {
    let mut findings = Vec::new();
    let mut worst = super::Status::Ok;
    let tolerance = FUTURE_CHECKPOINT_TOLERANCE_SECS as f64;
    if let Ok(tenants) = conn.tenants() {
        for tenant in tenants {
            let Ok(Some(cp)) = conn.latest_checkpoint(&tenant.name) else {
                continue;
            };
            let Some(at) = parse_checkpoint(&cp.note).and_then(|c| c.timestamp) else {
                continue;
            };
            let ahead = seconds_between(now, at);
            if ahead > tolerance {
                worst = super::Status::Fail;
                findings.push(format!(
                    "{}'s latest checkpoint is dated {} , {ahead:.0} s ahead of this clock (it went back)",
                    tenant.name,
                    at.to_rfc3339()
                ));
            }
        }
    }
    let mut compared = "no database clock (embedded store)".to_string();
    match conn.database_time() {
        Ok(Some(text)) => match Timestamp::parse(&text) {
            Ok(db) => {
                let skew = seconds_between(now, db).abs();
                compared = format!("{skew:.1} s from the database's clock");
                if skew > CLOCK_SKEW_FAIL_SECS {
                    worst = super::Status::Fail;
                    findings.push(compared.clone());
                } else if skew > CLOCK_SKEW_WARN_SECS {
                    worst = worst.max(super::Status::Warn);
                    findings.push(compared.clone());
                }
            }
            Err(error) => findings.push(format!("unreadable database time {text:?}: {error}")),
        },
        Ok(None) => {}
        Err(error) => {
            worst = worst.max(super::Status::Warn);
            findings.push(format!("cannot read the database's clock: {error}"));
        }
    }
    let remedy = "synchronise the clocks (`timedatectl status`, `chronyc tracking`) on this host and the database's; sealtrail keeps received_at and checkpoint times monotonic meanwhile";
    match worst {
        super::Status::Ok => Check::ok(
            "clock",
            format!("no checkpoint dated in the future; {compared}"),
        ),
        super::Status::Warn => Check::warn("clock", findings.join("; "), remedy),
        super::Status::Fail => Check::fail("clock", findings.join("; "), remedy),
    }
}

/// Each log's key file against the verifier key the store recorded.
pub(super) fn keys(conn: &dyn Store, data_dir: &Path) -> Check {
    let tenants = match conn.tenants() {
        Ok(t) => t,
        Err(error) => return Check::fail("keys", error.to_string(), "sealtrail verify"),
    };
    let mut problems = Vec::new();
    for tenant in &tenants {
        match crate::verify::log_keys(data_dir, tenant) {
            Ok(keys) => {
                if let Some(recorded) = keys.disputed {
                    problems.push(format!(
                        "{}: the key file's verifier key ({}) is not the one the store recorded ({recorded})",
                        tenant.name, keys.key
                    ));
                }
            }
            Err(error) => problems.push(format!("{}: {error}", tenant.name)),
        }
    }
    if problems.is_empty() {
        Check::ok(
            "keys",
            format!(
                "the key files of {} logs match the verifier keys the store recorded",
                tenants.len()
            ),
        )
    } else {
        Check::fail(
            "keys",
            problems.join("; "),
            format!(
                "one of the keys was replaced or lost: restore {} from a backup and verify with the log's published key (`sealtrail verify --key VKEY`)",
                shown(&DataDir::new(data_dir).keys())
            ),
        )
    }
}

/// The query index's cursor of each log against the log's size.
pub(super) fn index(conn: &dyn Store, data_dir: &Path, request: &LocalRequest) -> Check {
    let path = DataDir::new(data_dir).index();
    let cursors = match sealtrail_store::index::read_cursors(&path) {
        Ok(Some(cursors)) => cursors,
        Ok(None) => {
            return Check::ok(
                "index",
                format!(
                    "no query index at {} yet; `sealtrail serve` builds it from the log",
                    shown(&path)
                ),
            );
        }
        Err(error) => {
            return Check::warn(
                "index",
                format!("cannot read the query index {}: {error}", shown(&path)),
                format!(
                    "stop the server, remove {} and start it again: the index is rebuilt from the log",
                    shown(&path)
                ),
            );
        }
    };
    let tenants = match conn.tenants() {
        Ok(t) => t,
        Err(error) => return Check::fail("index", error.to_string(), "sealtrail verify"),
    };
    let mut worst_lag = 0u64;
    let mut lagging = Vec::new();
    for tenant in &tenants {
        let Ok(size) = conn.size(&tenant.name) else {
            continue;
        };
        let cursor = cursors.get(&tenant.name).copied().unwrap_or(0);
        let lag = size.saturating_sub(cursor);
        worst_lag = worst_lag.max(lag);
        if lag > INDEX_LAG_WARN_ENTRIES {
            lagging.push(format!("{} is {lag} entries behind", tenant.name));
        }
    }
    if lagging.is_empty() {
        Check::ok(
            "index",
            format!("the query index trails the logs by at most {worst_lag} entries"),
        )
    } else {
        Check::warn(
            "index",
            format!("the query index lags: {}", lagging.join("; ")),
            format!(
                "keep `sealtrail serve {}` running to catch up; if it does not move, remove {} while the server is stopped (it is rebuilt)",
                request.store_args,
                shown(&path)
            ),
        )
    }
}

/// Events accepted into the local spool while PostgreSQL was unreachable.
pub(super) fn spool(location: &Location, data_dir: &Path, now: Timestamp) -> Check {
    if let Location::Embedded { .. } = location {
        return Check::ok("spool", "no spool: the embedded store commits directly");
    }
    let status = match crate::spool::inspect(&crate::spool::spool_path(data_dir)) {
        Ok(Some(status)) => status,
        Ok(None) => return Check::ok("spool", "no spooled events"),
        Err(error) => {
            return Check::fail(
                "spool",
                format!(
                    "cannot read the spool {}: {error}",
                    shown(&crate::spool::spool_path(data_dir))
                ),
                "check the spool file's owner and modes (run doctor as the server's user)",
            );
        }
    };
    if status.depth == 0 {
        return Check::ok("spool", "no spooled events");
    }
    let age = crate::spool::oldest_age_seconds(&status, now).unwrap_or(0.0);
    let detail = format!(
        "{} events ({} bytes) wait in the spool, the oldest for {age:.0} s",
        status.depth, status.bytes
    );
    let remedy = "make PostgreSQL reachable again and keep `sealtrail serve` running: it drains the spool in order";
    if age > SPOOL_AGE_FAIL_SECS {
        Check::fail("spool", detail, remedy)
    } else {
        Check::warn("spool", detail, remedy)
    }
}

/// A real append to `_system` through the write path, read back and checked.
pub(super) fn write_probe(conn: &dyn Store, request: &LocalRequest) -> Check {
    let remedy = format!(
        "see the error; `sealtrail verify {}` and the server's log say more",
        request.store_args
    );
    let ledger = match Ledger::start(request.ledger.clone()) {
        Ok(ledger) => ledger,
        Err(error) => {
            return Check::fail(
                "write_probe",
                format!("cannot start the write path: {error}"),
                remedy,
            );
        }
    };
    let event = serde_json::json!({
        "action": PROBE_ACTION,
        "activity": "admin",
        "outcome": "success",
        "actor": {"id": request.actor, "type": "user"},
        "targets": [{"type": "log", "id": SYSTEM_TENANT}],
        "details": {"purpose": "write probe of sealtrail doctor"},
    });
    let appended = sealtrail_core::event::Event::from_value(&event)
        .map_err(|e| e.to_string())
        .and_then(|event| {
            ledger
                .append_blocking(
                    SYSTEM_TENANT,
                    vec![Submission {
                        event,
                        idempotency_key: None,
                    }],
                )
                .map_err(|e| e.to_string())
        });
    ledger.shutdown();
    let receipt = match appended.map(|mut o| o.pop()) {
        Ok(Some(Outcome::Created(receipt))) => receipt,
        Ok(Some(Outcome::Spooled(spooled))) => {
            return Check::warn(
                "write_probe",
                format!(
                    "the probe event {} was spooled, not committed: the database is unreachable",
                    spooled.id
                ),
                remedy,
            );
        }
        Ok(other) => {
            return Check::fail(
                "write_probe",
                format!("the probe event was not committed: {other:?}"),
                remedy,
            );
        }
        Err(error) => {
            return Check::fail(
                "write_probe",
                format!("the probe append failed: {error}"),
                remedy,
            );
        }
    };
    // Read back through the doctor's own reader, as any other process would see it.
    let read = conn.entry(SYSTEM_TENANT, receipt.seq);
    let stored = conn.read_hashes(
        SYSTEM_TENANT,
        &[sealtrail_core::merkle::stored_hash_index(0, receipt.seq)],
    );
    match (read, stored) {
        (Ok(Some(bytes)), Ok(hashes))
            if leaf_hash(&bytes).to_hex() == receipt.event_hash
                && hashes.first().map(|h| h.to_hex()) == Some(receipt.event_hash.clone()) =>
        {
            Check::ok(
                "write_probe",
                format!(
                    "appended {PROBE_ACTION} to {SYSTEM_TENANT} at seq {}, read back, its hash matches the receipt and the stored tree",
                    receipt.seq
                ),
            )
        }
        (Ok(Some(_)), Ok(_)) => Check::fail(
            "write_probe",
            format!(
                "the probe entry at {SYSTEM_TENANT} seq {} does not hash to its receipt's event_hash",
                receipt.seq
            ),
            remedy,
        ),
        (Ok(None), _) => Check::fail(
            "write_probe",
            format!(
                "the probe entry at {SYSTEM_TENANT} seq {} is not in the store after its commit",
                receipt.seq
            ),
            remedy,
        ),
        (Err(error), _) => Check::fail(
            "write_probe",
            format!("cannot read the probe entry back: {error}"),
            remedy,
        ),
        (_, Err(error)) => Check::fail(
            "write_probe",
            format!("cannot read the probe's stored hash: {error}"),
            remedy,
        ),
    }
}

/// A fresh verification of each log's latest entries.
pub(super) fn chain(conn: &dyn Store, data_dir: &Path, request: &LocalRequest) -> Check {
    let tenants = match conn.tenants() {
        Ok(t) => t,
        Err(error) => return Check::fail("chain", error.to_string(), "sealtrail verify"),
    };
    let mut checked = 0u64;
    let mut broken = Vec::new();
    for tenant in &tenants {
        let size = match conn.size(&tenant.name) {
            Ok(size) => size,
            Err(error) => {
                broken.push(format!("{}: {error}", tenant.name));
                continue;
            }
        };
        if size == 0 {
            continue;
        }
        let from = size.saturating_sub(RECENT_ENTRIES);
        let result = crate::verify::log_keys(data_dir, tenant).and_then(|keys| {
            crate::verify::verify_tenant_with_log_keys(
                conn,
                &tenant.name,
                &keys,
                &[],
                Some(from),
                None,
            )
        });
        match result {
            Ok(report) => {
                checked += report.rows_checked;
                if !report.valid {
                    let first = report
                        .violations
                        .first()
                        .map(|v| format!(": {} {}", v.kind.as_str(), v.detail))
                        .unwrap_or_default();
                    broken.push(format!(
                        "{} from seq {}{first}",
                        tenant.name,
                        report.first_broken_seq.unwrap_or(from)
                    ));
                }
            }
            Err(error) => broken.push(format!("{}: {error}", tenant.name)),
        }
    }
    // What the server's background verifier last recorded in the data directory.
    let background = match crate::verify::latest_verification(data_dir) {
        Ok(Some(latest)) => {
            let violated: Vec<String> = latest
                .tenants
                .iter()
                .filter(|(_, status)| status.state == "violated")
                .map(|(tenant, status)| match status.first_broken_seq {
                    Some(seq) => format!("{tenant} from seq {seq}"),
                    None => tenant.clone(),
                })
                .collect();
            if latest.chain == "violated" {
                broken.push(format!(
                    "the server's background verification at {} found the chain violated{}",
                    latest.at,
                    if violated.is_empty() {
                        " (it could not verify)".to_string()
                    } else {
                        format!(": {}", violated.join(", "))
                    }
                ));
            }
            format!(
                "; the server's latest background verification, at {}: {}",
                latest.at, latest.chain
            )
        }
        Ok(None) => "; no background verification recorded here (the server writes one to verification.json after each pass)".to_string(),
        Err(error) => format!("; the latest background verification cannot be read: {error}"),
    };
    if broken.is_empty() {
        Check::ok(
            "chain",
            format!(
                "the latest {RECENT_ENTRIES} entries of each of {} logs verify ({checked} checked){background}",
                tenants.len()
            ),
        )
    } else {
        Check::fail(
            "chain",
            format!("violations: {}{background}", broken.join("; ")),
            format!(
                "sealtrail verify {} --tenant TENANT for the full report; entries lost from the store can be put back with `sealtrail replay`",
                request.store_args
            ),
        )
    }
}

/// Open gap findings of every tenant's last 24 hours (see the module table).
pub(super) fn gaps(
    conn: &dyn Store,
    location: &Location,
    data_dir: &Path,
    request: &LocalRequest,
    now: Timestamp,
) -> Check {
    if let Err(error) = crate::gaps::catch_up(data_dir, location) {
        return Check::warn(
            "gaps",
            format!("cannot bring the gap database up to date: {error}"),
            format!("sealtrail gaps list {} --tenant TENANT", request.store_args),
        );
    }
    let tenants = match conn.tenants() {
        Ok(tenants) => tenants,
        Err(error) => return Check::fail("gaps", error.to_string(), "sealtrail verify"),
    };
    let gaps = crate::gaps::Gaps::new(
        data_dir,
        request.gaps.clone(),
        crate::clock::Clock::system(),
    );
    let mut open = Vec::new();
    for tenant in tenants.iter().filter(|t| t.name != SYSTEM_TENANT) {
        let report = match gaps.report(&tenant.name, None, None) {
            Ok(report) => report,
            Err(error) => {
                return Check::warn(
                    "gaps",
                    format!("cannot judge the gaps of {}: {error}", tenant.name),
                    format!(
                        "sealtrail gaps list {} --tenant {}",
                        request.store_args, tenant.name
                    ),
                );
            }
        };
        // Each kind once, with how many findings of it are open.
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for finding in report
            .gaps
            .iter()
            .filter(|f| crate::gaps::metrics::is_open(f, now.unix_micros()))
        {
            match kinds
                .iter_mut()
                .find(|(kind, _)| *kind == finding.kind.as_str())
            {
                Some((_, n)) => *n += 1,
                None => kinds.push((finding.kind.as_str(), 1)),
            }
        }
        if !kinds.is_empty() {
            let kinds = kinds
                .iter()
                .map(|(kind, n)| {
                    if *n == 1 {
                        kind.to_string()
                    } else {
                        format!("{n} × {kind}")
                    }
                })
                .collect::<Vec<_>>();
            open.push((tenant.name.clone(), kinds));
        }
    }
    match open.first() {
        None => Check::ok(
            "gaps",
            "no open gap in any log's last 24 hours (default rules)".to_string(),
        ),
        Some((first, _)) => Check::warn(
            "gaps",
            format!(
                "open gap findings: {}",
                open.iter()
                    .map(|(tenant, kinds)| format!("{tenant}: {}", kinds.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!(
                "sealtrail gaps list {} --tenant {first}",
                request.store_args
            ),
        ),
    }
}
