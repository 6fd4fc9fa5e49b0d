//! CSV: a header row, then one row per event, RFC 4180 (CRLF line ends, fields quoted when
//! they hold a comma, a quote or a line break, quotes doubled), written with the `csv` crate.
//!
//! The columns are fixed ([`COLUMNS`]), whatever the events hold, so that a spreadsheet or a
//! loader keeps working across exports. A field the event does not have is empty. `targets`
//! is the event's `targets` array as compact JSON (ids may hold any character, so no
//! separator of our own could be unambiguous). Values are written as they are in the log:
//! nothing is escaped for spreadsheets (a value starting with `=` stays as it is), because an
//! export is evidence and must match the log byte for byte.

use serde_json::Value;

/// The header row.
pub const COLUMNS: [&str; 16] = [
    "seq",
    "id",
    "received_at",
    "occurred_at",
    "action",
    "activity",
    "outcome",
    "outcome_reason",
    "actor_id",
    "actor_type",
    "ip",
    "targets",
    "source_app",
    "source_instance",
    "source_seq",
    "event_hash",
];

/// Writes rows into a buffer of its own, handed out with [`Rows::drain_into`].
pub struct Rows {
    writer: csv::Writer<Vec<u8>>,
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

impl Default for Rows {
    fn default() -> Rows {
        Rows { writer: writer() }
    }
}

impl Rows {
    /// The header row.
    pub fn header(&mut self) -> csv::Result<()> {
        self.writer.write_record(COLUMNS)
    }

    /// The row of one event.
    pub fn row(&mut self, seq: u64, event_hash: &str, event: &Value) -> csv::Result<()> {
        let text = |value: &Value| match value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let targets = match &event["targets"] {
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let row = [
            seq.to_string(),
            text(&event["id"]),
            text(&event["received_at"]),
            text(&event["occurred_at"]),
            text(&event["action"]),
            text(&event["activity"]),
            text(&event["outcome"]),
            text(&event["outcome_reason"]),
            text(&event["actor"]["id"]),
            text(&event["actor"]["type"]),
            text(&event["context"]["ip"]),
            targets,
            text(&event["source"]["app"]),
            text(&event["source"]["instance"]),
            text(&event["source"]["seq"]),
            event_hash.to_string(),
        ];
        self.writer.write_record(&row)
    }

    /// Moves the rows written so far to the end of `out`.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) -> csv::Result<()> {
        let written = std::mem::replace(&mut self.writer, writer());
        let mut rows = written
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        out.append(&mut rows);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_quoted_as_rfc_4180_says() {
        let mut rows = Rows::default();
        rows.header().unwrap();
        let event = json!({
            "id": "e1", "received_at": "2026-11-23T10:00:00.000000Z", "action": "a,b",
            "outcome": "failure", "outcome_reason": "said \"no\"\nthen left",
            "actor": {"id": "u-1", "type": "user"},
            "targets": [{"type": "patient", "id": "p,9"}], "source": {"app": "ehr", "seq": 12}
        });
        rows.row(5, "ff", &event).unwrap();
        let mut out = Vec::new();
        rows.drain_into(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        assert_eq!(
            text.split_once("\r\n").unwrap().1,
            "5,e1,2026-11-23T10:00:00.000000Z,,\"a,b\",,failure,\"said \"\"no\"\"\nthen left\",u-1,user,,\"[{\"\"id\"\":\"\"p,9\"\",\"\"type\"\":\"\"patient\"\"}]\",ehr,,12,ff\r\n"
        );
        // And it reads back to the same fields.
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[7], "said \"no\"\nthen left");
        assert_eq!(record.len(), COLUMNS.len());
    }
}
