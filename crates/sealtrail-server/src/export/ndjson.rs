//! NDJSON: one line per event, `{"tenant", "seq", "event_hash", "entry", "event"}`.
//!
//! `entry` is the stored canonical entry as a JSON string: its UTF-8 bytes are exactly the
//! bytes committed to the log, so `SHA-256(0x00 || entry)` is `event_hash`, the leaf of the
//! log's Merkle tree, and every line can be checked against a checkpoint with an inclusion
//! proof. `event` is the same entry as an object, written from the same bytes (canonical JSON
//! is JSON), so nothing is re-encoded on the way.

use serde::Serialize;

/// Appends the line of one event (with its newline).
pub fn write_line(
    out: &mut Vec<u8>,
    tenant: &str,
    seq: u64,
    event_hash: &str,
    entry: &str,
) -> serde_json::Result<()> {
    #[derive(Serialize)]
    struct Head<'a> {
        tenant: &'a str,
        seq: u64,
        event_hash: &'a str,
        entry: &'a str,
    }
    serde_json::to_writer(
        &mut *out,
        &Head {
            tenant,
            seq,
            event_hash,
            entry,
        },
    )?;
    // Replace the closing brace of the head by the `event` member.
    out.pop();
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(entry.as_bytes());
    out.extend_from_slice(b"}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_contracts_shape_and_the_exact_entry() {
        let entry = r#"{"action":"a.b","id":"x","note":"\"quoted\" é","seq":7}"#;
        let mut out = Vec::new();
        write_line(&mut out, "acme", 7, "ab12", entry).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            text.starts_with(r#"{"tenant":"acme","seq":7,"event_hash":"ab12","entry":""#),
            "{text}"
        );
        assert_eq!(line.as_object().unwrap().len(), 5);
        assert_eq!(line["entry"].as_str().unwrap(), entry);
        assert_eq!(
            line["event"],
            serde_json::from_str::<serde_json::Value>(entry).unwrap()
        );
    }
}
