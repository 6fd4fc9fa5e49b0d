//! `sealtrail export STORE --tenant T --format ndjson|csv|ocsf [filters] [--cursor C]
//! [--out FILE [--resume]]`: a tenant's log as NDJSON, CSV or OCSF, written page by page
//! (`sealtrail_server::export`), so memory stays the same at any size.
//!
//! - The export goes to stdout, or to `--out FILE`. Messages and the progress bar go to
//!   stderr only; the bar is drawn when stderr is a terminal (`--progress` prints progress
//!   lines even when it is not, `--quiet` nothing).
//! - **Resuming.** On interruption (Ctrl-C, SIGTERM, a closed pipe, a failed read) the command
//!   says on stderr the cursor to continue with (`--cursor C`: after the last seq written and
//!   flushed). At the end it prints the cursor the next export starts from, so that exports
//!   can be chained without overlap.
//! - **`--out FILE` refuses to overwrite** an existing non-empty file. With `--resume` it
//!   continues that file instead: it drops an incomplete last line, reads the seq of the last
//!   complete one, and appends from the next seq on (the CSV header is not repeated). The
//!   filters and format must be the ones the file was started with; they are not stored.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal as _, Read as _, Seek as _, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use sealtrail_core::Timestamp;
use sealtrail_core::event::{Activity, Outcome};
use sealtrail_server::export::{self, Encoder, Filter, Format, PAGE_ENTRIES};
use sealtrail_server::index::Order;
use sealtrail_server::query::{decode_cursor, encode_cursor};

use super::DataArgs;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The tenant whose log is exported
    #[arg(long)]
    pub tenant: String,
    /// ndjson (evidence: each line's entry hashes to its event_hash), csv or ocsf (OCSF 1.5.0)
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Event time (occurred_at, else received_at) at or after, RFC 3339
    #[arg(long, value_name = "TS")]
    pub from: Option<String>,
    /// Event time before, RFC 3339
    #[arg(long, value_name = "TS")]
    pub to: Option<String>,
    /// actor.id
    #[arg(long)]
    pub actor: Option<String>,
    /// The event's action, exactly
    #[arg(long)]
    pub action: Option<String>,
    /// create, read, update, delete, login, logout, export, disclose, admin or other
    #[arg(long)]
    pub activity: Option<String>,
    /// success, failure or unknown
    #[arg(long)]
    pub outcome: Option<String>,
    /// A target's type (with --target-id: of the same target)
    #[arg(long)]
    pub target_type: Option<String>,
    /// A target's id (with --target-type: of the same target)
    #[arg(long)]
    pub target_id: Option<String>,
    /// context.ip
    #[arg(long)]
    pub ip: Option<String>,
    /// source.app
    #[arg(long)]
    pub source: Option<String>,
    /// Words in details (every word must occur)
    #[arg(long)]
    pub q: Option<String>,
    /// Start after the seq this cursor names (printed by an earlier export, or next_cursor of GET /v1/events)
    #[arg(long, value_name = "C")]
    pub cursor: Option<String>,
    /// Write to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Continue an existing --out FILE after its last complete line
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Print progress to stderr even when it is not a terminal
    #[arg(long)]
    pub progress: bool,
    /// Print nothing to stderr but errors
    #[arg(long, conflicts_with = "progress")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Ndjson,
    Csv,
    Ocsf,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Csv => Format::Csv,
            FormatArg::Ocsf => Format::Ocsf,
        }
    }
}

fn filter(args: &ExportArgs) -> Result<Filter> {
    let time = |flag: &str, text: &Option<String>| -> Result<Option<Timestamp>> {
        text.as_deref()
            .map(|text| {
                Timestamp::parse(text).map_err(|e| {
                    anyhow!("--{flag} {text:?} is not an RFC 3339 timestamp such as 2026-11-23T10:00:00Z: {e}")
                })
            })
            .transpose()
    };
    let mut filter = Filter {
        from: time("from", &args.from)?,
        to: time("to", &args.to)?,
        actor: args.actor.clone(),
        action: args.action.clone(),
        target_type: args.target_type.clone(),
        target_id: args.target_id.clone(),
        source: args.source.clone(),
        ..Filter::default()
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        bail!("--to must not be earlier than --from");
    }
    if let Some(name) = &args.activity {
        let activity = Activity::from_name(name).ok_or_else(|| {
            anyhow!(
                "--activity {name:?} is not one of {}",
                Activity::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        filter.activity = Some(activity.as_str().to_string());
    }
    if let Some(name) = &args.outcome {
        let outcome = Outcome::from_name(name)
            .ok_or_else(|| anyhow!("--outcome {name:?} is not one of success, failure, unknown"))?;
        filter.outcome = Some(outcome.as_str().to_string());
    }
    if let Some(ip) = &args.ip {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| anyhow!("--ip {ip:?} is not an IPv4 or IPv6 address"))?;
        filter.ip = Some(ip.to_string());
    }
    if let Some(q) = &args.q {
        filter
            .set_text(q)
            .ok_or_else(|| anyhow!("--q {q:?} has no word of letters or digits"))?;
    }
    Ok(filter)
}

pub fn run(args: ExportArgs) -> Result<()> {
    let format = Format::from(args.format);
    let filter = filter(&args)?;
    let mut after = match args.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => match decode_cursor(text) {
            Some((Order::Asc, seq)) => Some(seq),
            Some((Order::Desc, _)) => {
                bail!("--cursor continues a newest-first listing; exports run in seq order")
            }
            None => {
                bail!("--cursor {text:?} is not a cursor of sealtrail export or GET /v1/events")
            }
        },
    };
    let location = args.data.existing_store()?;
    let store = location.open_reader()?;
    if store.tenant(&args.tenant)?.is_none() {
        bail!("no tenant {:?} in this store", args.tenant);
    }
    let mut header = true;
    let sink: Box<dyn Write> = match &args.out {
        None => Box::new(io::stdout().lock()),
        Some(path) => {
            let existing = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if existing > 0 && !args.resume {
                bail!(
                    "{} exists; give --resume to continue it, or remove it",
                    path.display()
                );
            }
            if existing > 0 {
                if after.is_some() {
                    bail!(
                        "--resume takes the place to start from the file; do not give --cursor too"
                    );
                }
                let resumed = resume_point(path, format)?;
                after = resumed.after;
                header = resumed.needs_header;
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(resumed.keep)?;
                drop(file);
                if !args.quiet {
                    match after {
                        Some(seq) => eprintln!("resuming {} after seq {seq}", path.display()),
                        None => eprintln!("resuming {} from the start", path.display()),
                    }
                }
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Box::new(file)
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let window = export::window(store.as_ref(), &args.tenant, after)?;
    let interrupted = watch_signals();
    let bar = progress(&args, window.len());
    let mut encoder = Encoder::new(&args.tenant, format, filter);
    let mut buffer = Vec::new();
    if header {
        encoder.header(&mut buffer)?;
    }
    let mut next = window.start;
    let mut done: Option<u64> = after;
    let mut written = 0u64;
    let result = (|| -> Result<()> {
        out.write_all(&buffer)?;
        while next < window.end {
            if interrupted.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let page =
                export::read_page(store.as_ref(), &args.tenant, next, window.end, PAGE_ENTRIES)?;
            let Some(&(last, _)) = page.last() else { break };
            buffer.clear();
            written += encoder.page(&page, &mut buffer)?;
            out.write_all(&buffer)?;
            out.flush()?;
            done = Some(last);
            bar.inc(last + 1 - next);
            next = last + 1;
        }
        out.flush()?;
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(error) = result {
        let resume = match (&args.out, done) {
            (Some(path), _) => format!("continue with --out {} --resume", path.display()),
            (None, Some(seq)) => {
                format!("continue with --cursor {}", encode_cursor(Order::Asc, seq))
            }
            (None, None) => "nothing was written; start again".to_string(),
        };
        eprintln!(
            "sealtrail export: stopped after {written} events{}; {resume}",
            done.map(|s| format!(" (through seq {s})"))
                .unwrap_or_default()
        );
        return Err(error);
    }
    if !args.quiet {
        let next_cursor = match window.end.checked_sub(1) {
            Some(last) => encode_cursor(Order::Asc, last.max(after.unwrap_or(0))),
            None => String::new(),
        };
        eprintln!(
            "exported {written} events of {} (seqs {} to {} examined); the next export starts with --cursor {next_cursor}",
            args.tenant,
            window.start,
            window.end.saturating_sub(1),
        );
    }
    Ok(())
}

/// Where a partial `--out` file continues.
struct ResumePoint {
    /// The seq of the last complete line (`None`: no event line yet).
    after: Option<u64>,
    /// How many bytes of the file to keep (up to the end of that line).
    keep: u64,
    /// Whether the CSV header must still be written.
    needs_header: bool,
}

fn resume_point(path: &Path, format: Format) -> Result<ResumePoint> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if format == Format::Csv {
        return csv_resume_point(file);
    }
    // JSON lines never hold a raw line break, so the last complete line is found from the
    // end: read backwards in growing chunks.
    let len = file.metadata()?.len();
    let mut chunk = 1u64 << 20;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(io::SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        io::Read::by_ref(&mut file)
            .take(len - start)
            .read_to_end(&mut tail)?;
        // Complete lines end with '\n'; what follows the last one is dropped.
        let complete = tail.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
        if let Some(end) = complete {
            let before = &tail[..end - 1];
            let line_start = before.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
            if let Some(line_start) = line_start.or((start == 0).then_some(0)) {
                let line = std::str::from_utf8(&before[line_start..]).unwrap_or_default();
                let seq = format.seq_of_line(line).ok_or_else(|| {
                    anyhow!(
                        "the last complete line of {} is not a {} export line; give another --out",
                        path.display(),
                        format.as_str()
                    )
                })?;
                return Ok(ResumePoint {
                    after: Some(seq),
                    keep: start + end as u64,
                    needs_header: false,
                });
            }
        } else if start == 0 {
            // Not one complete line: start again.
            return Ok(ResumePoint {
                after: None,
                keep: 0,
                needs_header: true,
            });
        }
        chunk *= 4;
    }
}

/// CSV fields may hold line breaks, so the file is read as CSV from the start (one record
/// at a time): the last record with every column that ends in a line break is the last
/// complete one.
fn csv_resume_point(file: File) -> Result<ResumePoint> {
    let len = file.metadata()?.len();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(io::BufReader::new(file));
    let mut record = csv::ByteRecord::new();
    let mut point = ResumePoint {
        after: None,
        keep: 0,
        needs_header: true,
    };
    let mut first = true;
    while reader.read_byte_record(&mut record)? {
        let end = reader.position().byte();
        // A record cut short ends at the end of the file without a line break.
        let terminated = end < len || ends_with_newline(reader.get_ref())?;
        if !terminated || record.len() != export::csv::COLUMNS.len() {
            break;
        }
        if first {
            first = false;
            if record.get(0) == Some(b"seq".as_slice()) {
                point.needs_header = false;
                point.keep = end;
                continue;
            }
        }
        let seq = std::str::from_utf8(&record[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("a row of the file does not start with a seq"))?;
        point.after = Some(seq);
        point.keep = end;
    }
    // The reader stops after the CR of a CRLF; the LF belongs to the kept row.
    if point.keep > 0 && point.keep < len {
        let mut file = reader.into_inner().into_inner();
        file.seek(io::SeekFrom::Start(point.keep))?;
        let mut next = [0u8];
        file.read_exact(&mut next)?;
        if next[0] == b'\n' {
            point.keep += 1;
        }
    }
    Ok(point)
}

fn ends_with_newline(reader: &io::BufReader<File>) -> Result<bool> {
    let mut file = reader.get_ref().try_clone()?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(io::SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Set on SIGINT or SIGTERM, so that the export stops between pages and says where it was.
/// The handlers are installed before this returns, so a signal from then on always ends the
/// export that way, never by the signal's default action; a thread of its own waits for them.
fn watch_signals() -> Arc<AtomicBool> {
    use tokio::signal::unix::{SignalKind, signal};
    let flag = Arc::new(AtomicBool::new(false));
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return flag;
    };
    let installed = {
        let _inside = runtime.enter();
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    let (Ok(mut interrupt), Ok(mut terminate)) = installed else {
        return flag;
    };
    let set = flag.clone();
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            set.store(true, Ordering::Relaxed);
        });
    });
    flag
}

fn progress(args: &ExportArgs, len: u64) -> indicatif::ProgressBar {
    let stderr_is_terminal = io::stderr().is_terminal();
    if args.quiet || (!stderr_is_terminal && !args.progress) {
        return indicatif::ProgressBar::hidden();
    }
    let target = if stderr_is_terminal {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        // Not a terminal: a plain line now and then.
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(Lines), 1)
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(args.tenant.clone());
    bar
}

/// Progress as plain lines on stderr, for logs rather than terminals.
#[derive(Debug)]
struct Lines;

impl indicatif::TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> io::Result<()> {
        if !line.trim().is_empty() {
            eprintln!("{line}");
        }
        Ok(())
    }
    fn write_str(&self, text: &str) -> io::Result<()> {
        if !text.trim().is_empty() {
            eprintln!("{text}");
        }
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}
