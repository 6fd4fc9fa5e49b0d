//! `sealtrail replay`: puts entries lost from the store back from the `AUDIT:` lines that
//! `serve --audit-stdout` prints (a log shipper's copy of its stdout).
//!
//! Each line `AUDIT: {"tenant", "event_hash", "entry"}` carries an entry's exact bytes. For
//! each, in order of the file:
//!
//! | what the store holds | what replay does |
//! | --- | --- |
//! | bytes that do not hash to the line's `event_hash`, or are not an entry | refuses the line (`refused`) |
//! | the same bytes at that seq | nothing (`present`) |
//! | other bytes at that seq | nothing: reported as a `conflict` |
//! | no row at that seq, and a stored leaf hash there equal to the entry's | puts the row back (`restored`) through [`sealtrail_store::Store::restore_entry`], which checks the hash again itself under the append lock |
//! | no row, and another stored leaf hash there | refuses the line: the bytes are not the entry the tree holds (`refused`) |
//! | no stored leaf hash at that seq (or no such tenant): the log never had it | reports it (`not_stored`); with `append`, appends it as a new event (`appended`) with its action, its other fields, and `details.replayed = {"id", "seq", "received_at"}` of the original, under the idempotency key `sealtrail.replay:<id>` |
//! | a replayed copy of it already (that idempotency key) | nothing (`present`) |
//!
//! Nothing is ever updated or duplicated. Restores and the run's record
//! (`sealtrail.replay.run` in `_system`, with every count) are one transaction of the write
//! path ([`Ledger::restore_blocking`]); appends go through [`Ledger::append_blocking`] before
//! it. A run that finds nothing to do and nothing wrong writes nothing at all, so replaying
//! the same file twice writes nothing the second time.

use std::collections::BTreeMap;

use sealtrail_core::canonical::Entry;
use sealtrail_core::hash::leaf_hash;
use sealtrail_core::merkle::{MissingHash, stored_hash_index};
use sealtrail_store::{Restore, Store, StoreError};
use serde::Serialize;

use crate::ledger::{Ledger, LedgerConfig, LedgerError, Outcome, RestoreEntry, Submission};

/// The marker before each line's JSON.
pub const AUDIT_MARKER: &str = "AUDIT: ";

/// One `AUDIT:` line, its entry bytes exactly as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub tenant: String,
    pub event_hash: String,
    pub entry: Vec<u8>,
}

/// Reads the `AUDIT:` lines of a file (anything before the marker, such as a shipper's
/// timestamp, is ignored; lines without it are skipped). A line with the marker that is not
/// `{"tenant":…,"event_hash":…,"entry":…}` is returned as an error with its line number.
pub fn parse_audit_lines(text: &[u8]) -> (Vec<AuditLine>, Vec<(usize, String)>) {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let Some(at) = find(raw, AUDIT_MARKER.as_bytes()) else {
            continue;
        };
        let body = trim_end(&raw[at + AUDIT_MARKER.len()..]);
        match parse_body(body) {
            Ok((tenant, event_hash, entry)) => lines.push(AuditLine {
                line: index + 1,
                tenant,
                event_hash,
                entry: entry.to_vec(),
            }),
            Err(why) => bad.push((index + 1, why)),
        }
    }
    (lines, bad)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    &bytes[..end]
}

/// `{"tenant":"…","event_hash":"<hex>","entry":<entry bytes>}` as the writer prints it: the
/// entry is the last member, so its bytes run to the closing brace.
fn parse_body(body: &[u8]) -> Result<(String, String, &[u8]), String> {
    let rest = body
        .strip_prefix(b"{\"tenant\":")
        .ok_or("does not start with {\"tenant\":")?;
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
    let tenant = match stream.next() {
        Some(Ok(tenant)) => tenant,
        _ => return Err("the tenant is not a JSON string".into()),
    };
    let rest = &rest[stream.byte_offset()..];
    let rest = rest
        .strip_prefix(b",\"event_hash\":\"")
        .ok_or("no event_hash after the tenant")?;
    if rest.len() < 64 || !rest[..64].iter().all(u8::is_ascii_hexdigit) {
        return Err("event_hash is not 64 hex digits".into());
    }
    let event_hash = String::from_utf8_lossy(&rest[..64]).to_ascii_lowercase();
    let rest = rest[64..]
        .strip_prefix(b"\",\"entry\":")
        .ok_or("no entry after the event_hash")?;
    let entry = rest.strip_suffix(b"}").ok_or("no closing brace")?;
    Ok((tenant, event_hash, entry))
}

/// What happened to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Restored,
    Present,
    Appended,
    NotStored,
    Conflict,
    Refused,
    /// Below the log's prune mark: retention removed it on purpose; it stays in the archive.
    Pruned,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Restored => "restored",
            Disposition::Present => "present",
            Disposition::Appended => "appended",
            Disposition::NotStored => "not_stored",
            Disposition::Conflict => "conflict",
            Disposition::Refused => "refused",
            Disposition::Pruned => "pruned",
        }
    }
}

/// One line's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub line: usize,
    pub tenant: String,
    pub seq: Option<u64>,
    pub status: Disposition,
    pub detail: String,
}

/// A run's outcome: a count per disposition and every line that was not `present`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub lines: usize,
    pub counts: BTreeMap<&'static str, usize>,
    pub items: Vec<Item>,
    /// Whether the run was recorded in `_system` (it is whenever it wrote or refused).
    pub recorded: bool,
}

impl ReplayReport {
    pub fn count(&self, status: Disposition) -> usize {
        self.counts.get(status.as_str()).copied().unwrap_or(0)
    }
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the store {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What to replay, into which store, and who asks.
pub struct ReplayRequest {
    pub ledger: LedgerConfig,
    pub lines: Vec<AuditLine>,
    /// Lines with the marker that could not be read, as (line number, why): refused.
    pub unreadable: Vec<(usize, String)>,
    /// Append entries the store never had as new, replayed events.
    pub append: bool,
    /// The run's actor in `_system` (`cli:<user>`).
    pub actor: String,
}

/// A line classified against the store, before anything is written.
enum Plan {
    Done(Item),
    Restore(Item, RestoreEntry),
    Append(Item, String),
}

/// The idempotency key of an entry's replayed copy.
pub fn replay_key(id: &str) -> String {
    format!("sealtrail.replay:{id}")
}

/// Runs a replay (see the module documentation).
pub fn replay(request: ReplayRequest) -> Result<ReplayReport, ReplayError> {
    let location = request.ledger.store.clone();
    let conn = location
        .open_reader()
        .map_err(|source| ReplayError::Store {
            location: location.to_string(),
            source,
        })?;
    let mut plans = Vec::new();
    for (line, why) in &request.unreadable {
        plans.push(Plan::Done(Item {
            line: *line,
            tenant: String::new(),
            seq: None,
            status: Disposition::Refused,
            detail: format!("not an AUDIT line sealtrail prints: {why}"),
        }));
    }
    for line in &request.lines {
        plans.push(
            classify(conn.as_ref(), line).map_err(|source| ReplayError::Store {
                location: location.to_string(),
                source,
            })?,
        );
    }
    drop(conn);
    plans.sort_by_key(|p| match p {
        Plan::Done(item) | Plan::Restore(item, _) | Plan::Append(item, _) => item.line,
    });

    let wants_writes = plans.iter().any(|p| match p {
        Plan::Restore(..) => true,
        Plan::Append(..) => request.append,
        Plan::Done(item) => matches!(item.status, Disposition::Conflict | Disposition::Refused),
    });
    let mut items = Vec::with_capacity(plans.len());
    let mut recorded = false;
    if !wants_writes {
        for plan in plans {
            items.push(match plan {
                Plan::Done(item) | Plan::Restore(item, _) => item,
                Plan::Append(mut item, _) => {
                    item.status = Disposition::NotStored;
                    item
                }
            });
        }
    } else {
        let ledger = Ledger::start(request.ledger.clone())?;
        let result = write(&ledger, plans, &request, &mut items);
        ledger.shutdown();
        result?;
        recorded = true;
    }
    let mut counts = BTreeMap::new();
    for status in [
        Disposition::Restored,
        Disposition::Present,
        Disposition::Appended,
        Disposition::NotStored,
        Disposition::Conflict,
        Disposition::Refused,
    ] {
        counts.insert(
            status.as_str(),
            items.iter().filter(|i| i.status == status).count(),
        );
    }
    items.retain(|i| i.status != Disposition::Present);
    Ok(ReplayReport {
        lines: request.lines.len() + request.unreadable.len(),
        counts,
        items,
        recorded,
    })
}

/// Appends (with `append`), restores and records the run.
fn write(
    ledger: &Ledger,
    plans: Vec<Plan>,
    request: &ReplayRequest,
    items: &mut Vec<Item>,
) -> Result<(), ReplayError> {
    let mut restores: Vec<(usize, RestoreEntry)> = Vec::new();
    for plan in plans {
        match plan {
            Plan::Done(item) => items.push(item),
            Plan::Restore(item, entry) => {
                restores.push((items.len(), entry));
                items.push(item);
            }
            Plan::Append(mut item, id) if request.append => {
                let line = request
                    .lines
                    .iter()
                    .find(|l| l.line == item.line)
                    .expect("planned from a line");
                match replayed_event(&line.entry) {
                    Ok(event) => {
                        let outcome = ledger
                            .append_blocking(
                                &item.tenant,
                                vec![Submission {
                                    event,
                                    idempotency_key: Some(replay_key(&id)),
                                }],
                            )?
                            .pop();
                        match outcome {
                            Some(Outcome::Created(receipt)) => {
                                item.status = Disposition::Appended;
                                item.detail = format!(
                                    "never in the store; appended as a replayed event at seq {}",
                                    receipt.seq
                                );
                            }
                            Some(Outcome::Duplicate(receipt)) => {
                                item.status = Disposition::Present;
                                item.detail = format!("already replayed, at seq {}", receipt.seq);
                            }
                            other => {
                                item.status = Disposition::Refused;
                                item.detail = format!("could not be appended: {other:?}");
                            }
                        }
                    }
                    Err(why) => {
                        item.status = Disposition::Refused;
                        item.detail = format!("cannot be appended as an event: {why}");
                    }
                }
                items.push(item);
            }
            Plan::Append(mut item, _) => {
                item.status = Disposition::NotStored;
                items.push(item);
            }
        }
    }
    let count = |status: Disposition| items.iter().filter(|i| i.status == status).count();
    let run = serde_json::json!({
        "lines": items.len(),
        "to_restore": restores.len(),
        "appended": count(Disposition::Appended),
        "present": count(Disposition::Present),
        "not_stored": count(Disposition::NotStored),
        "conflicts": count(Disposition::Conflict),
        "refused": count(Disposition::Refused),
    });
    let (positions, entries): (Vec<usize>, Vec<RestoreEntry>) = restores.into_iter().unzip();
    let results = ledger.restore_blocking(entries, run, &request.actor)?;
    for (position, result) in positions.into_iter().zip(results) {
        let item = &mut items[position];
        match result {
            Restore::Restored => {}
            Restore::Present => {
                item.status = Disposition::Present;
                item.detail = "put back meanwhile by another process".into();
            }
            Restore::NoStoredHash | Restore::HashMismatch => {
                item.status = Disposition::Refused;
                item.detail = format!("the store refused to restore it ({result:?})");
            }
            Restore::Pruned => {
                item.status = Disposition::Pruned;
                item.detail = "pruned by retention meanwhile; nothing put back".into();
            }
        }
    }
    Ok(())
}

/// Classifies one line against the store (reads only).
fn classify(conn: &dyn Store, line: &AuditLine) -> Result<Plan, StoreError> {
    let mut item = Item {
        line: line.line,
        tenant: line.tenant.clone(),
        seq: None,
        status: Disposition::Refused,
        detail: String::new(),
    };
    let leaf = leaf_hash(&line.entry);
    if leaf.to_hex() != line.event_hash {
        item.detail = format!(
            "its entry bytes hash to {}, not to the line's event_hash {}: the line was altered",
            leaf.to_hex(),
            line.event_hash
        );
        return Ok(Plan::Done(item));
    }
    let entry = match Entry::parse(&line.entry) {
        Ok(entry) => entry,
        Err(error) => {
            item.detail = format!("its entry is not a sealtrail entry: {error}");
            return Ok(Plan::Done(item));
        }
    };
    let (seq, id) = (entry.server.seq, entry.server.id.to_string());
    item.seq = Some(seq);
    if conn.tenant(&line.tenant)?.is_none() {
        item.status = Disposition::NotStored;
        item.detail = format!("the store has no tenant {:?}", line.tenant);
        return Ok(Plan::Append(item, id));
    }
    if conn
        .idempotent_seq(&line.tenant, &replay_key(&id))?
        .is_some()
    {
        item.status = Disposition::Present;
        item.detail = "already replayed".into();
        return Ok(Plan::Done(item));
    }
    if let Some(stored) = conn.entry(&line.tenant, seq)? {
        if stored == line.entry {
            item.status = Disposition::Present;
            item.detail = "present".into();
        } else {
            item.status = Disposition::Conflict;
            item.detail = format!(
                "the store holds other bytes at seq {seq} (hash {}); nothing written",
                leaf_hash(&stored).to_hex()
            );
        }
        return Ok(Plan::Done(item));
    }
    if let Some(mark) = conn.prune_mark(&line.tenant)?
        && seq < mark.below
    {
        item.status = Disposition::Pruned;
        item.detail = format!(
            "pruned by retention (entries below {} were archived in {}, then removed): nothing to put back",
            mark.below, mark.archive
        );
        return Ok(Plan::Done(item));
    }
    match conn.read_hashes(&line.tenant, &[stored_hash_index(0, seq)]) {
        Ok(hashes) if hashes.first() == Some(&leaf) => {
            item.status = Disposition::Restored;
            item.detail = format!(
                "missing from the store; its bytes match the stored leaf hash at seq {seq}: put back"
            );
            Ok(Plan::Restore(
                item,
                RestoreEntry {
                    tenant: line.tenant.clone(),
                    seq,
                    id,
                    entry: line.entry.clone(),
                    replace: false,
                },
            ))
        }
        Ok(hashes) => {
            item.detail = format!(
                "missing from the store, but the stored leaf hash at seq {seq} is {}, not its hash: not the entry the log held",
                hashes.first().map(|h| h.to_hex()).unwrap_or_default()
            );
            Ok(Plan::Done(item))
        }
        Err(error) if MissingHash::in_error(&error).is_some() => {
            item.status = Disposition::NotStored;
            item.detail = format!("the log never had seq {seq} (no stored hash)");
            Ok(Plan::Append(item, id))
        }
        Err(error) => Err(StoreError::Corrupt(format!(
            "tenant {}: cannot read the stored hash of seq {seq}: {error}",
            line.tenant
        ))),
    }
}

/// The event of an entry the store never had, to append anew: its fields without the server
/// fields and its own idempotency key, and `details.replayed` naming the original.
fn replayed_event(entry: &[u8]) -> Result<sealtrail_core::event::Event, String> {
    let mut value: serde_json::Value = serde_json::from_slice(entry).map_err(|e| e.to_string())?;
    let object = value.as_object_mut().ok_or("not an object")?;
    let mut replayed = serde_json::Map::new();
    for field in ["id", "seq", "received_at"] {
        if let Some(v) = object.remove(field) {
            replayed.insert(field.to_string(), v);
        }
    }
    object.remove("prev_hash");
    if let Some(key) = object.remove("idempotency_key") {
        replayed.insert("idempotency_key".into(), key);
    }
    let details = object
        .entry("details")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let details = details.as_object_mut().ok_or("details is not an object")?;
    details.insert("replayed".into(), serde_json::Value::Object(replayed));
    sealtrail_core::event::Event::from_value(&value).map_err(|e| e.to_string())
}
