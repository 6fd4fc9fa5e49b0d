//! What `sealtrail bench` prints: the machine, each figure as it is measured, and the table of
//! medians beside the baseline and the brief's targets — as text, or as one JSON document.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::baseline::Baseline;
use super::limit::Limit;
use super::workloads::thousands;
use super::{BaselinePlan, Direction, Figure, Plan, StoreKind, Target, Unit, Workload};

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    /// `release` or `debug`: a debug build's figures say little.
    pub build: &'static str,
    pub sealtrail_version: &'static str,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_string());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib,
            kernel,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            sealtrail_version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} cores, {}, {} memory, Linux {}; sealtrail {} ({} build)",
            self.cores,
            self.cpu,
            self.memory_gib
                .map_or("unknown".to_string(), |g| format!("{g} GiB")),
            self.kernel.as_deref().unwrap_or("unknown"),
            self.sealtrail_version,
            self.build
        )
    }
}

/// One round: every store's figures, and the baseline's run.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: usize,
    pub figures: Vec<Figure>,
    pub baseline: Option<Baseline>,
}

/// A selected workload that has no figure, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotMeasured {
    pub workload: Workload,
    pub store: StoreKind,
    pub reason: String,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Per workload and store, the median of each number over the rounds (a p99 is the median of
/// the rounds' p99s).
pub fn medians(rounds: &[Round]) -> Vec<Figure> {
    let mut groups: BTreeMap<(Workload, StoreKind), Vec<&Figure>> = BTreeMap::new();
    for round in rounds {
        for figure in &round.figures {
            groups
                .entry((figure.workload, figure.store))
                .or_default()
                .push(figure);
        }
    }
    let mut out: Vec<Figure> = groups
        .into_values()
        .map(|figures| {
            let pick = |f: &dyn Fn(&Figure) -> Option<f64>| {
                let mut values: Vec<f64> = figures.iter().filter_map(|x| f(x)).collect();
                median(&mut values)
            };
            let mut figure = figures[0].clone();
            figure.value = pick(&|f| Some(f.value)).expect("a group has a figure");
            figure.p50_ms = pick(&|f| f.p50_ms);
            figure.p99_ms = pick(&|f| f.p99_ms);
            figure.baseline = pick(&|f| f.baseline);
            if figures.len() > 1 {
                figure.note = format!(
                    "median of {} rounds; round 1: {}",
                    figures.len(),
                    figure.note
                );
            }
            figure
        })
        .collect();
    out.sort_by_key(|f| (f.workload, f.store));
    out
}

/// The selected workloads and stores that produced no figure.
pub fn not_measured(plan: &Plan, medians: &[Figure]) -> Vec<NotMeasured> {
    let mut out = Vec::new();
    for &workload in &plan.workloads {
        for &store in &plan.stores {
            if medians
                .iter()
                .any(|f| f.workload == workload && f.store == store)
            {
                continue;
            }
            let reason = match (workload, store) {
                (w, StoreKind::Postgres) if super::large::is_large(w) => {
                    "the 10 M-event workloads run on the embedded store only"
                }
                _ => "no figure was produced",
            };
            out.push(NotMeasured {
                workload,
                store,
                reason: reason.to_string(),
            });
        }
    }
    out
}

fn value_text(value: f64, unit: Unit) -> String {
    match unit {
        Unit::EventsPerSecond => format!("{} events/s", thousands(value)),
        Unit::Seconds => format!("{value:.2} s"),
        Unit::Milliseconds => format!("{value:.2} ms"),
    }
}

fn ms_text(ms: Option<f64>) -> String {
    match ms {
        None => "—".to_string(),
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.1} ms"),
    }
}

fn target_text(target: &Target) -> String {
    let sign = match target.direction {
        Direction::AtLeast => "≥",
        Direction::AtMost => "≤",
    };
    let value = match target.unit {
        Unit::EventsPerSecond => format!("{} events/s", thousands(target.value)),
        unit => format!("{} {}", target.value, unit.symbol()),
    };
    match target.p99_ms {
        Some(p99) => format!("{sign} {value}, p99 ≤ {p99} ms"),
        None => format!("{sign} {value}"),
    }
}

fn target_ratio_text(figure: &Figure) -> String {
    let Some(ratio) = figure.target_ratio() else {
        return "—".to_string();
    };
    let p99 = figure.p99_target_ratio();
    let met = ratio >= 1.0 && p99.is_none_or(|r| r >= 1.0);
    let verdict = if met { "met" } else { "missed" };
    match p99 {
        Some(p99) => format!("{ratio:.2}×, p99 {p99:.2}× {verdict}"),
        None => format!("{ratio:.2}× {verdict}"),
    }
}

/// Text columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The rows of the summary table, header first.
pub fn summary_rows(medians: &[Figure]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "workload",
            "store",
            "sealtrail",
            "p50",
            "p99",
            "baseline",
            "vs baseline",
            "target",
            "vs target",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for figure in medians {
        rows.push(vec![
            figure.title(),
            figure.store.name().to_string(),
            match figure.workload {
                Workload::IndexLag => format!("{} max", value_text(figure.value, figure.unit)),
                Workload::ProofInclusion
                | Workload::ProofConsistency
                | Workload::SearchFirstPage => {
                    format!("{} p99", value_text(figure.value, figure.unit))
                }
                _ => value_text(figure.value, figure.unit),
            },
            ms_text(figure.p50_ms),
            ms_text(figure.p99_ms),
            figure
                .baseline
                .map_or("—".to_string(), |b| value_text(b, Unit::EventsPerSecond)),
            figure
                .baseline_ratio()
                .map_or("—".to_string(), |r| format!("{r:.1}×")),
            figure.target.as_ref().map_or("—".to_string(), target_text),
            target_ratio_text(figure),
        ]);
    }
    rows
}

/// What a run measured, as [`Printer::summary`] prints it.
#[derive(Clone, Copy)]
pub struct Results<'a> {
    pub rounds: &'a [Round],
    pub medians: &'a [Figure],
    pub missing: &'a [NotMeasured],
    pub limit: Option<&'a Limit>,
}

/// Each throughput figure over its workload's limit, header first.
pub fn limit_fraction_rows(limit: &Limit, medians: &[Figure]) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["workload", "store", "sealtrail", "limit", "of limit"]
            .map(String::from)
            .to_vec(),
    ];
    for (figure, of) in fractions(limit, medians) {
        rows.push(vec![
            figure.title(),
            figure.store.name().to_string(),
            value_text(figure.value, figure.unit),
            value_text(of.limit, Unit::EventsPerSecond),
            format!("{:.2}", figure.value / of.limit),
        ]);
    }
    rows
}

fn fractions<'a>(
    limit: &'a Limit,
    medians: &'a [Figure],
) -> impl Iterator<Item = (&'a Figure, &'a super::limit::WorkloadLimit)> {
    medians
        .iter()
        .filter_map(|figure| Some((figure, limit.of(figure.workload)?)))
}

fn of_limit_json(limit: &Limit, medians: &[Figure]) -> serde_json::Value {
    fractions(limit, medians)
        .map(|(figure, of)| {
            serde_json::json!({
                "workload": figure.workload,
                "store": figure.store,
                "value": figure.value,
                "limit": of.limit,
                "fraction": figure.value / of.limit,
            })
        })
        .collect()
}

/// One line per selected workload that has no figure.
pub fn missing_lines(missing: &[NotMeasured]) -> String {
    missing
        .iter()
        .map(|m| {
            format!(
                "not measured: {} on the {} store: {}\n",
                m.workload.title(),
                m.store.name(),
                m.reason
            )
        })
        .collect()
}

/// Prints progress and results: text on stdout, or with `--json` progress on stderr and one
/// JSON document on stdout at the end.
pub struct Printer {
    json: bool,
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        Printer { json }
    }

    fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
            let _ = std::io::stdout().flush();
        }
    }

    pub fn header(&self, plan: &Plan, machine: &Machine, baseline: &BaselinePlan) {
        self.line(&format!(
            "sealtrail bench: seed {}, {} round{} of {} s per workload{}",
            plan.seed,
            plan.rounds,
            if plan.rounds == 1 { "" } else { "s" },
            plan.seconds,
            if plan.quick {
                " (--quick: a smoke run, not a measurement)"
            } else {
                ""
            }
        ));
        self.line(&format!("machine: {}", machine.describe()));
        if machine.build == "debug" {
            self.line(
                "warning: this is a debug build; measure with `cargo run --release -p sealtrail -- bench`",
            );
        }
        self.line(&format!(
            "stores: {}",
            plan.stores
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.line(&format!("baseline: {}", baseline_text(baseline)));
        self.line("");
    }

    pub fn figure(&self, round: usize, figure: &Figure) {
        let mut text = format!(
            "round {round} {:<8} {:<9} {}",
            figure.store.name(),
            figure.workload.name(),
            value_text(figure.value, figure.unit)
        );
        if figure.p50_ms.is_some() || figure.p99_ms.is_some() {
            text.push_str(&format!(
                ", p50 {}, p99 {}",
                ms_text(figure.p50_ms),
                ms_text(figure.p99_ms)
            ));
        }
        text.push_str(&format!(" ({})", figure.note));
        self.line(&text);
    }

    /// The limit's steps and bounds, as soon as they are measured.
    pub fn limit(&self, limit: &Limit) {
        self.line(&format!(
            "limit: each step alone on {} clinic events ({:.0} bytes as sent, {:.0} as entries), µs of CPU per event:",
            limit.events, limit.mean_event_bytes, limit.mean_entry_bytes
        ));
        for step in &limit.steps {
            self.line(&format!(
                "  {:<44} {:>8.3}",
                step.name, step.micros_per_event
            ));
        }
        for (group, ms) in &limit.fsync_ms {
            self.line(&format!(
                "  write + fsync of a group of {group} entries: {ms:.2} ms (median)"
            ));
        }
        for w in &limit.workloads {
            self.line(&format!(
                "  {}: {:.2} µs of CPU per event → {} events/s on {} cores{}; limit {} events/s",
                w.workload.title(),
                w.cpu_micros_per_event,
                thousands(w.cpu_bound),
                if w.workload == Workload::Verify {
                    1.0
                } else {
                    super::limit::CORES
                },
                w.disk_bound.map_or(String::new(), |d| format!(
                    ", disk {} events/s in groups of {}",
                    thousands(d),
                    w.group.unwrap_or(0)
                )),
                thousands(w.limit)
            ));
        }
        self.line("");
    }

    pub fn baseline(&self, round: usize, baseline: &Baseline) {
        let get = |key| baseline.get(key).map_or("?".to_string(), thousands);
        self.line(&format!(
            "round {round} baseline single {} events/s, batch {} events/s, verify {} events/s, {} false chain violations (pgbench, {} s per run)",
            get("single_row_events_per_s"),
            get("batch_events_per_s"),
            get("verify_events_per_s"),
            get("verify_violations"),
            baseline.seconds
        ));
    }

    pub fn summary(
        &self,
        plan: &Plan,
        machine: &Machine,
        baseline: &BaselinePlan,
        results: &Results<'_>,
    ) -> Result<()> {
        let Results {
            rounds,
            medians,
            missing,
            limit,
        } = *results;
        if self.json {
            let (status, detail) = match baseline {
                BaselinePlan::Run(script) => ("measured", script.to_string()),
                BaselinePlan::Skipped(why) => ("skipped", why.clone()),
                BaselinePlan::Unavailable(why) => ("unavailable", why.clone()),
            };
            let document = serde_json::json!({
                "machine": machine,
                "plan": plan,
                "baseline": {"status": status, "detail": detail},
                "rounds": rounds,
                "median": medians,
                "not_measured": missing,
                "limit": limit,
                "of_limit": limit.map(|l| of_limit_json(l, medians)),
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
            return Ok(());
        }
        println!();
        if plan.rounds > 1 {
            println!("medians of {} rounds:", plan.rounds);
        }
        print!("{}", table(&summary_rows(medians)));
        print!("{}", missing_lines(missing));
        if let Some(limit) = limit {
            println!("\nagainst this machine's limit (measured before the rounds):");
            print!("{}", table(&limit_fraction_rows(limit, medians)));
        }
        if let BaselinePlan::Run(_) = baseline {
            println!(
                "\nbaseline: the hand-built PostgreSQL table of the runbooks; its single-row figure uses 8 pgbench clients, its batch figure 2 clients of 1,000-row INSERT ... SELECT."
            );
        } else {
            println!("\nno baseline figures: {}", baseline_text(baseline));
        }
        Ok(())
    }
}

fn baseline_text(baseline: &BaselinePlan) -> String {
    match baseline {
        BaselinePlan::Run(script) => format!("{script}"),
        BaselinePlan::Skipped(why) => format!("not run ({why})"),
        BaselinePlan::Unavailable(why) => format!("not run: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(workload: Workload, value: f64, baseline: Option<f64>) -> Figure {
        let unit = workload.target().unwrap().unit;
        let mut f = Figure::new(workload, StoreKind::Embedded, value, unit);
        f.baseline = baseline;
        f.p99_ms = Some(value / 1000.0);
        f
    }

    #[test]
    fn medians_are_taken_per_workload_and_store() {
        let rounds: Vec<Round> = [100.0, 300.0, 200.0]
            .into_iter()
            .enumerate()
            .map(|(i, v)| Round {
                round: i + 1,
                figures: vec![
                    figure(Workload::Batch, v * 1000.0, Some(v)),
                    figure(Workload::Single, v, None),
                ],
                baseline: None,
            })
            .collect();
        let medians = medians(&rounds);
        assert_eq!(medians.len(), 2);
        assert_eq!(medians[0].workload, Workload::Batch);
        assert_eq!(medians[0].value, 200_000.0);
        assert_eq!(medians[0].baseline, Some(200.0));
        assert_eq!(medians[0].p99_ms, Some(200.0));
        assert!(medians[0].note.starts_with("median of 3 rounds"));
        assert_eq!(medians[1].value, 200.0);
        assert_eq!(medians[1].baseline, None);
    }

    /// A large-log row names the size of the log it ran on, not the brief's 10 M, and only
    /// those rows do.
    #[test]
    fn large_log_rows_name_the_size_of_their_log() {
        let at = |workload: Workload, events: Option<u64>| {
            let mut f = figure(workload, 10.0, None);
            f.log_events = events;
            summary_rows(&[f])[1][0].clone()
        };
        let search = Workload::SearchFirstPage;
        assert_eq!(
            at(search, Some(30_000_000)),
            "filtered search, first page, 30 M"
        );
        assert_eq!(
            at(search, Some(2_500_000)),
            "filtered search, first page, 2.5 M"
        );
        assert_eq!(
            at(search, Some(20_000)),
            "filtered search, first page, 20,000"
        );
        assert_eq!(
            at(search, Some(10_000_000)),
            "filtered search, first page, 10 M"
        );
        assert_eq!(at(search, None), "filtered search, first page, 10 M");
        let mut build = Figure::new(
            Workload::LargeBuild,
            StoreKind::Embedded,
            1.0,
            Unit::EventsPerSecond,
        );
        build.log_events = Some(30_000_000);
        assert_eq!(build.title(), "build of the 30 M-event log");
        let mut batch = figure(Workload::Batch, 1.0, None);
        batch.log_events = Some(30_000_000);
        assert_eq!(batch.title(), "batched ingest over HTTP, durable");
    }

    #[test]
    fn an_even_number_of_rounds_takes_the_middle_two() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn the_table_puts_each_figure_beside_the_baseline_and_the_target() {
        let mut single = figure(Workload::Single, 30_000.0, Some(1_200.0));
        single.p99_ms = Some(20.0);
        let lag = figure(Workload::IndexLag, 0.5, None);
        let missing = [NotMeasured {
            workload: Workload::ProofInclusion,
            store: StoreKind::Embedded,
            reason: "later".into(),
        }];
        let rows = summary_rows(&[single, lag]);
        assert_eq!(rows.len(), 3);
        let single = &rows[1];
        assert_eq!(single[2], "30,000 events/s");
        assert_eq!(single[5], "1,200 events/s");
        assert_eq!(single[6], "25.0×");
        assert_eq!(single[7], "≥ 25,000 events/s, p99 ≤ 10 ms");
        // Throughput met, p99 missed: missed.
        assert_eq!(single[8], "1.20×, p99 0.50× missed");
        let lag = &rows[2];
        assert_eq!(lag[2], "0.50 s max");
        assert_eq!(lag[5], "—");
        assert_eq!(lag[8], "4.00× met");
        let text = table(&rows);
        assert_eq!(text.lines().count(), 3);
        // Columns line up: each row's store starts where the header's does.
        let column = |line: &str, word: &str| line.find(word).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(column(lines[0], "store"), column(lines[1], "embedded"));
        assert_eq!(column(lines[0], "store"), column(lines[2], "embedded"));
        assert_eq!(
            missing_lines(&missing),
            "not measured: inclusion proof, 10 M on the embedded store: later\n"
        );
    }
}
