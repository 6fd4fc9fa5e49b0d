//! First pages of filtered searches over HTTP, each checked against its filters.

use super::*;

// --- search -------------------------------------------------------------------------------

/// The filters searched, one kind per row of the figure's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryKind {
    Actor,
    Action,
    Patient,
    FailedLogin,
    Ip,
    Text,
    Time,
}

impl QueryKind {
    pub const ALL: [QueryKind; 7] = [
        QueryKind::Actor,
        QueryKind::Action,
        QueryKind::Patient,
        QueryKind::FailedLogin,
        QueryKind::Ip,
        QueryKind::Text,
        QueryKind::Time,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Actor => "actor",
            QueryKind::Action => "action",
            QueryKind::Patient => "patient",
            QueryKind::FailedLogin => "failed-login",
            QueryKind::Ip => "ip",
            QueryKind::Text => "q",
            QueryKind::Time => "from/to",
        }
    }
}

/// What an event must hold to match a search, as the API documents it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub activity: Option<String>,
    pub outcome: Option<String>,
    /// `(type, id)`, both of one target.
    pub target: Option<(String, String)>,
    /// In normal form.
    pub ip: Option<String>,
    /// Per whitespace-separated word of `q`, its tokens, which must occur in this order in the
    /// text of the values of `details`.
    pub words: Option<Vec<Vec<String>>>,
    /// Event time (unix microseconds): `from` inclusive, `to` exclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Filter {
    /// Why `event` (as the API shows it) does not match, or `None` when it does.
    pub fn mismatch(&self, event: &Value) -> Option<String> {
        let field = |value: &Value| value.as_str().map(str::to_string);
        let equal = |name: &str, want: &Option<String>, got: Option<String>| match want {
            Some(want) if got.as_deref() != Some(want.as_str()) => {
                Some(format!("{name} is {got:?}, not {want:?}"))
            }
            _ => None,
        };
        if let Some(why) = equal("actor.id", &self.actor, field(&event["actor"]["id"]))
            .or_else(|| equal("action", &self.action, field(&event["action"])))
            .or_else(|| equal("activity", &self.activity, field(&event["activity"])))
            .or_else(|| equal("outcome", &self.outcome, field(&event["outcome"])))
            .or_else(|| {
                let ip = event["context"]["ip"].as_str().map(normal_ip);
                equal("context.ip", &self.ip, ip)
            })
        {
            return Some(why);
        }
        if let Some((kind, id)) = &self.target {
            let found = event["targets"].as_array().is_some_and(|targets| {
                targets
                    .iter()
                    .any(|t| t["type"] == kind.as_str() && t["id"] == id.as_str())
            });
            if !found {
                return Some(format!("no target {kind} {id}"));
            }
        }
        if let Some(words) = &self.words {
            let mut text = String::new();
            if let Some(details) = event.get("details") {
                sealtrail_server::index::push_text(details, &mut text);
            }
            let tokens = tokens(&text);
            if let Some(word) = words.iter().find(|word| !contains_run(&tokens, word)) {
                return Some(format!("details hold no {:?}", word.join(" ")));
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let at = event_time(event)?;
            if self.from.is_some_and(|from| at < from) || self.to.is_some_and(|to| at >= to) {
                return Some(format!(
                    "event time {} is outside the range",
                    Timestamp::from_unix_micros(at).map_or(at.to_string(), |t| t.to_rfc3339())
                ));
            }
        }
        None
    }
}

/// The event time the API filters on: `occurred_at`, else `received_at`.
pub(super) fn event_time(event: &Value) -> Option<i64> {
    let text = event["occurred_at"]
        .as_str()
        .or_else(|| event["received_at"].as_str())?;
    Timestamp::parse(text).ok().map(|t| t.unix_micros())
}

/// An address in the normal form the API stores and compares (`2001:DB8::0:1` → `2001:db8::1`).
pub(super) fn normal_ip(text: &str) -> String {
    text.parse::<IpAddr>()
        .map_or_else(|_| text.to_string(), |ip| ip.to_string())
}

/// Words of letters and digits, lowercased: how the text index splits text.
pub(super) fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `run` occurs in `tokens` as consecutive tokens.
pub(super) fn contains_run(tokens: &[String], run: &[String]) -> bool {
    !run.is_empty() && tokens.windows(run.len()).any(|w| w == run)
}

/// One first page to ask for.
#[derive(Debug, Clone)]
pub struct Query {
    pub kind: QueryKind,
    /// Whether the value was drawn by frequency (else uniformly from the distinct values).
    pub popular: bool,
    /// Newest first (`order=desc`).
    pub desc: bool,
    pub params: Vec<(&'static str, String)>,
    pub filter: Filter,
}

impl Query {
    pub fn path(&self) -> String {
        let mut path = String::from("/v1/events?");
        for (name, value) in &self.params {
            path.push_str(name);
            path.push('=');
            percent_encode(value, &mut path);
            path.push('&');
        }
        path.push_str(&format!("limit={PAGE_LIMIT}"));
        if self.desc {
            path.push_str("&order=desc");
        }
        path
    }
}

pub(super) fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Values seen in a sample: every occurrence (drawing from it follows the frequencies) and
/// each distinct value once (drawing from it favours the rare ones).
#[derive(Debug, Clone, Default)]
pub(super) struct Pool {
    pub(super) seen: Vec<String>,
    pub(super) distinct: Vec<String>,
}

impl Pool {
    fn new(seen: Vec<String>) -> Pool {
        let distinct = seen
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Pool { seen, distinct }
    }

    fn pick(&self, rng: &mut Rng, popular: bool) -> Result<String> {
        let from = if popular { &self.seen } else { &self.distinct };
        ensure!(!from.is_empty(), "the sample has no such value");
        Ok(rng.pick(from).clone())
    }
}

/// Where filter values come from: the first events the build's streams generated (so every
/// value is in the log), and the times of random events of the log.
pub struct QueryPools {
    actor: Pool,
    action: Pool,
    patient: Pool,
    ip: Pool,
    text: Pool,
    /// Event times (unix microseconds) of random entries of the log.
    times: Vec<i64>,
}

impl QueryPools {
    pub fn new(clinic: &Arc<Clinic>, size: u64, store: &dyn Store, seed: u64) -> Result<Self> {
        let per_stream = (size / BUILD_STREAMS).min(SAMPLE_PER_STREAM as u64).max(1);
        let (mut actor, mut action, mut patient, mut ip, mut text) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut bytes = Vec::new();
        for s in 0..BUILD_STREAMS {
            let mut stream = clinic.stream(BUILD_STREAM_BASE + s);
            for _ in 0..per_stream {
                bytes.clear();
                stream.write_event(&mut bytes);
                let event: Value = serde_json::from_slice(&bytes)?;
                if let Some(id) = event["actor"]["id"].as_str() {
                    actor.push(id.to_string());
                }
                if let Some(name) = event["action"].as_str() {
                    action.push(name.to_string());
                }
                for target in event["targets"].as_array().into_iter().flatten() {
                    if target["type"] == "patient"
                        && let Some(id) = target["id"].as_str()
                    {
                        patient.push(id.to_string());
                    }
                }
                if let Some(address) = event["context"]["ip"].as_str() {
                    ip.push(normal_ip(address));
                }
                if let Some(details) = event["details"].as_object() {
                    let mut values = String::new();
                    details
                        .values()
                        .for_each(|v| sealtrail_server::index::push_text(v, &mut values));
                    text.extend(
                        values
                            .lines()
                            .filter(|v| v.chars().any(char::is_alphanumeric))
                            .map(str::to_string),
                    );
                }
            }
        }
        let mut rng = Rng::new(seed ^ 0x7469_6d65); // "time"
        let mut times = Vec::with_capacity(TIME_POINTS);
        for _ in 0..TIME_POINTS {
            let seq = rng.below(size);
            let entry = store
                .entry(TENANT, seq)?
                .with_context(|| format!("no entry at seq {seq}"))?;
            let event: Value = serde_json::from_slice(&entry)?;
            times.push(event_time(&event).with_context(|| format!("entry {seq} has no time"))?);
        }
        Ok(QueryPools {
            actor: Pool::new(actor),
            action: Pool::new(action),
            patient: Pool::new(patient),
            ip: Pool::new(ip),
            text: Pool::new(text),
            times,
        })
    }
}

/// `count` first pages, the kinds in turn, values drawn with the seed (see the module docs).
pub fn plan_queries(pools: &QueryPools, count: usize, seed: u64) -> Vec<Query> {
    let mut rng = Rng::new(seed ^ 0x7365_6172_6368); // "search"
    let mut queries = Vec::with_capacity(count);
    let mut i = 0;
    while queries.len() < count {
        let kind = QueryKind::ALL[i % QueryKind::ALL.len()];
        i += 1;
        let popular = rng.chance(500);
        let desc = rng.chance(500);
        let mut filter = Filter::default();
        let params: Vec<(&'static str, String)> = match kind {
            QueryKind::Actor => {
                let Ok(v) = pools.actor.pick(&mut rng, popular) else {
                    continue;
                };
                filter.actor = Some(v.clone());
                vec![("actor", v)]
            }
            QueryKind::Action => {
                let Ok(v) = pools.action.pick(&mut rng, popular) else {
                    continue;
                };
                filter.action = Some(v.clone());
                vec![("action", v)]
            }
            QueryKind::Patient => {
                let Ok(v) = pools.patient.pick(&mut rng, popular) else {
                    continue;
                };
                filter.target = Some(("patient".to_string(), v.clone()));
                vec![("target_type", "patient".to_string()), ("target_id", v)]
            }
            QueryKind::FailedLogin => {
                filter.outcome = Some("failure".to_string());
                filter.activity = Some("login".to_string());
                vec![
                    ("outcome", "failure".to_string()),
                    ("activity", "login".to_string()),
                ]
            }
            QueryKind::Ip => {
                let Ok(v) = pools.ip.pick(&mut rng, popular) else {
                    continue;
                };
                filter.ip = Some(v.clone());
                vec![("ip", v)]
            }
            QueryKind::Text => {
                let Ok(v) = pools.text.pick(&mut rng, popular) else {
                    continue;
                };
                let words: Vec<Vec<String>> = v
                    .split_whitespace()
                    .map(tokens)
                    .filter(|t| !t.is_empty())
                    .collect();
                if words.is_empty() {
                    continue;
                }
                filter.words = Some(words);
                vec![("q", v)]
            }
            QueryKind::Time => {
                if pools.times.is_empty() {
                    continue;
                }
                let center = *rng.pick(&pools.times);
                let width = *rng.pick(&TIME_WINDOWS_SECONDS) * 1_000_000;
                let from = center - width / 2;
                let to = from + width;
                let text = |micros: i64| {
                    Timestamp::from_unix_micros(micros)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                };
                filter.from = Some(from);
                filter.to = Some(to);
                vec![("from", text(from)), ("to", text(to))]
            }
        };
        queries.push(Query {
            kind,
            popular,
            desc,
            params,
            filter,
        });
    }
    queries
}

/// What the search clients got: per query (by index), the latency in microseconds and the
/// answer.
#[derive(Debug, Clone)]
pub struct SearchRun {
    pub micros: Vec<u32>,
    pub bodies: Vec<Bytes>,
    pub clients: usize,
    pub elapsed: Duration,
}

/// Asks for every query's first page, client `c` taking queries `c`, `c + clients`, ….
pub async fn request_pages(
    endpoint: &Endpoint,
    queries: &Arc<Vec<Query>>,
    clients: usize,
) -> Result<SearchRun> {
    ensure!(clients > 0, "no clients");
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(endpoint.addr, &endpoint.events_token).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        let queries = Arc::clone(queries);
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for index in (client..queries.len()).step_by(clients) {
                let path = queries[index].path();
                let sent = Instant::now();
                let (status, body) = connection.get(&path).await?;
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                if !status.is_success() {
                    bail!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                answers.push((index, micros, body));
            }
            Ok::<_, anyhow::Error>(answers)
        });
    }
    let mut micros = vec![0; queries.len()];
    let mut bodies = vec![Bytes::new(); queries.len()];
    while let Some(joined) = tasks.join_next().await {
        for (index, m, body) in joined.context("a search client panicked")?? {
            micros[index] = m;
            bodies[index] = body;
        }
    }
    Ok(SearchRun {
        micros,
        bodies,
        clients,
        elapsed: started.elapsed(),
    })
}

/// What checking the pages found.
#[derive(Debug, Clone, Default)]
pub struct PagesChecked {
    pub pages: usize,
    pub events: usize,
    pub empty: usize,
    pub full: usize,
}

/// Checks one page: at most [`PAGE_LIMIT`] events, each below `size` (or an alert the
/// server appended since), in seq order (or newest
/// first), each matching the query's filter, and a cursor exactly when the page is full.
/// Returns the seqs.
pub fn check_page(query: &Query, body: &[u8], size: u64) -> Result<Vec<u64>> {
    let path = query.path();
    let page: Value =
        serde_json::from_slice(body).with_context(|| format!("GET {path} answered no JSON"))?;
    let events = page["events"]
        .as_array()
        .with_context(|| format!("GET {path} answered no events"))?;
    ensure!(
        events.len() <= PAGE_LIMIT,
        "GET {path} answered {} events",
        events.len()
    );
    let mut seqs = Vec::with_capacity(events.len());
    for event in events {
        let seq = event["seq"]
            .as_u64()
            .with_context(|| format!("GET {path}: an event without a seq"))?;
        // Beyond the built log only what the server itself appended while serving it: the
        // monitor's alerts (the clinic generator's failed-login bursts raise some).
        ensure!(
            seq < size || event["action"] == "sealtrail.alert.raised",
            "GET {path}: seq {seq} is beyond the log"
        );
        if let Some(&last) = seqs.last() {
            let ordered = if query.desc { seq < last } else { seq > last };
            ensure!(
                ordered,
                "GET {path}: seq {seq} follows {last}, out of order"
            );
        }
        if let Some(why) = query.filter.mismatch(event) {
            bail!("GET {path}: the event at seq {seq} does not match: {why}");
        }
        seqs.push(seq);
    }
    // A cursor means another page follows, so only a full page can have one.
    ensure!(
        page["next_cursor"].is_null() || events.len() == PAGE_LIMIT,
        "GET {path}: {} events with next_cursor {}",
        events.len(),
        page["next_cursor"]
    );
    Ok(seqs)
}

/// [`check_page`] on every answer.
pub fn check_pages(queries: &[Query], bodies: &[Bytes], size: u64) -> Result<PagesChecked> {
    let mut checked = PagesChecked::default();
    for (query, body) in queries.iter().zip(bodies) {
        let seqs = check_page(query, body, size)?;
        checked.pages += 1;
        checked.events += seqs.len();
        checked.empty += usize::from(seqs.is_empty());
        checked.full += usize::from(seqs.len() == PAGE_LIMIT);
    }
    Ok(checked)
}

pub(super) fn search_figure(queries: &[Query], run: &SearchRun, checked: &PagesChecked) -> Figure {
    let all = Latencies::from_micros(run.micros.clone());
    let p99 = all.quantile_ms(0.99).unwrap_or(f64::NAN);
    let mut figure = Figure::new(
        Workload::SearchFirstPage,
        StoreKind::Embedded,
        p99,
        Unit::Milliseconds,
    );
    figure.p50_ms = all.quantile_ms(0.5);
    figure.p99_ms = all.quantile_ms(0.99);
    let mut by_kind: BTreeMap<QueryKind, Vec<u32>> = BTreeMap::new();
    for (query, &micros) in queries.iter().zip(&run.micros) {
        by_kind.entry(query.kind).or_default().push(micros);
    }
    let kinds: Vec<String> = by_kind
        .into_iter()
        .map(|(kind, micros)| {
            let latencies = Latencies::from_micros(micros);
            let ms = |q| latencies.quantile_ms(q).unwrap_or(f64::NAN);
            format!(
                "{} {:.2}/{:.2}/{:.1}",
                kind.name(),
                ms(0.5),
                ms(0.99),
                latencies.max_ms().unwrap_or(f64::NAN)
            )
        })
        .collect();
    figure.note = format!(
        "{} first pages of up to {PAGE_LIMIT} from {} concurrent clients with an events:read token, {:.1} s; filters in turn: actor, action, target_type=patient&target_id, outcome=failure&activity=login, ip, q, from/to windows of 1 s, 1 min and 1 h around random events; values drawn from the clinic generator's events, half by frequency and half uniformly from the distinct ones; half newest first; every page checked (at most {PAGE_LIMIT}, in order, each event matching): {} events, {} full pages, {} empty; p50/p99/max ms per filter: {}; {}",
        thousands(checked.pages as f64),
        run.clients,
        run.elapsed.as_secs_f64(),
        thousands(checked.events as f64),
        thousands(checked.full as f64),
        thousands(checked.empty as f64),
        kinds.join(", "),
        EMBEDDED_ONLY,
    );
    figure
}
