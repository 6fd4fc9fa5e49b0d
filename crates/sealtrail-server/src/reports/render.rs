//! A report as CSV (RFC 4180: a header line of [`super::ReportName::columns`], then one
//! line per row, CRLF line ends) or as Markdown (what it covers, then the table, then the
//! report's own sections).
//!
//! Cells: null is empty, a list of strings is joined with `; `, anything else that is not a
//! string or number is compact JSON. A CSV cell that would start with `=`, `+`, `-`, `@`, a
//! tab or a carriage return gets a leading `'`, so that a spreadsheet opening the file does
//! not run what a producer wrote (a user agent, say) as a formula.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Report, ReportName, incidents};

/// The report's rows as table lines, by column name.
fn lines(report: &Report) -> Vec<Map<String, Value>> {
    match report.name {
        ReportName::SecurityIncidents => incidents::table_rows(&report.rows.rows),
        _ => report
            .rows
            .rows
            .iter()
            .filter_map(|row| row.as_object().cloned())
            .collect(),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    }
}

fn csv_cell(value: Option<&Value>) -> String {
    let mut text = cell(value);
    if matches!(value, Some(Value::String(_))) && text.starts_with(['=', '+', '-', '@', '\t', '\r'])
    {
        text.insert(0, '\'');
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub fn csv(report: &Report) -> String {
    let columns = report.name.columns();
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for line in lines(report) {
        let cells: Vec<String> = columns.iter().map(|c| csv_cell(line.get(*c))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn md_cell(value: Option<&Value>) -> String {
    cell(value)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let c = &report.checkpoint;
    let _ = writeln!(out, "# {} — {}\n", report.name.title(), report.tenant);
    let _ = writeln!(
        out,
        "- Window: {} to {} (event time; from inclusive, to exclusive)",
        report.window.from.to_rfc3339(),
        report.window.to.to_rfc3339()
    );
    for (name, value) in &report.parameters {
        let _ = writeln!(out, "- {name}: {}", md_cell(Some(value)));
    }
    let _ = writeln!(
        out,
        "- Checkpoint: {} size {} root {} — the first {} entries were verified against it before this report was computed",
        c.origin, c.size, c.root, c.size
    );
    let coverage = &report.coverage;
    if let Some(below) = coverage.pruned_below {
        let _ = writeln!(
            out,
            "- Not covered: entries below seq {below}, pruned after archiving in {}",
            coverage.pruned_archive.as_deref().unwrap_or("the archive")
        );
    }
    if coverage.acknowledged_violations > 0 {
        let _ = writeln!(
            out,
            "- Repaired: {} violation(s) acknowledged by repair markers (`sealtrail verify` lists them)",
            coverage.acknowledged_violations
        );
    }
    let _ = writeln!(out, "- Generated: {}", report.generated_at.to_rfc3339());
    if report.truncated() {
        let _ = writeln!(
            out,
            "- Truncated: {} of {} rows shown",
            report.rows.rows.len(),
            report.rows.total
        );
    }
    out.push('\n');
    let columns = report.name.columns();
    let table = lines(report);
    if table.is_empty() {
        out.push_str("No rows.\n");
    } else {
        let _ = writeln!(out, "| {} |", columns.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(columns.len()));
        for line in &table {
            let cells: Vec<String> = columns.iter().map(|c| md_cell(line.get(*c))).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    let extra = &report.rows.extra;
    match report.name {
        ReportName::Disclosures => {
            let _ = writeln!(
                out,
                "\n## Excluded from the accounting (45 CFR 164.528(a)(1))\n\n{} disclosure(s) excluded; {} attempted disclosure(s) failed and are not listed.\n",
                extra["excluded"]["total"], extra["not_disclosed"]
            );
            if let Some(by) = extra["excluded"]["by_basis"].as_object() {
                for (basis, count) in by {
                    let _ = writeln!(out, "- {basis}: {count}");
                }
            }
        }
        ReportName::Completeness => {
            let gaps = extra["gaps"].as_array().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "\n## Gap findings\n\nThe gap detector had counted {} entries of the log (the checkpoint has {}).\n",
                extra["gaps_counted_through"], c.size
            );
            if gaps.is_empty() {
                out.push_str("No gaps found in the window.\n");
            }
            for gap in gaps {
                let _ = writeln!(
                    out,
                    "- {} {} to {} ({} impact): {}",
                    cell(gap.get("kind")),
                    cell(gap.get("start")),
                    cell(gap.get("end")),
                    cell(gap.get("impact")),
                    md_cell(gap.get("detail"))
                );
            }
        }
        ReportName::DailyActivity => {
            let _ = writeln!(out, "\nEvents in the window: {}", extra["events"]);
        }
        _ => {}
    }
    out
}
