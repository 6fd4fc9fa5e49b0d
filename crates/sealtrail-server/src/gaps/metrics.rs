//! The gap detector's metrics, registered in the process's one registry
//! (`crate::metrics`), for alert rules:
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `sealtrail_gaps_open{tenant,kind}` | gauge | findings of the last 24 hours still going on or ended within the last hour |
//! | `sealtrail_gap_findings_total{tenant,kind}` | counter | findings, each counted once when first seen (by kind, start and producer); a `producer_seq_gap` when the gap database finds its missing range, however old its events (a backfill), the other kinds when they appear in the last 24 hours |
//! | `sealtrail_producer_missing_events_total{tenant}` | counter | `source.seq` numbers proven missing, counted when found (a late arrival that fills one later does not subtract it) |
//! | `sealtrail_producer_silent{tenant}` | gauge | producers silent now |
//!
//! The gauges and the findings counter are set by [`run`], which judges the last 24 hours of
//! every tenant once a minute ([`EVALUATE_EVERY`]); which findings were counted is kept in
//! the gap database, so a restart does not count them again. The `_system` log is not
//! judged: it records administration, which has no regular rate. Tenant labels are those of
//! the log, never a caller's.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sealtrail_store::gaps::GapsReader;

use super::{Gaps, Kind};
use crate::shutdown::Shutdown;
use crate::tenant::SYSTEM_TENANT;

/// How often [`run`] judges every tenant.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(60);
/// A finding that ended less than this long ago is still open.
pub const OPEN_FOR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantKind {
    tenant: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

struct GapMetrics {
    open: Family<TenantKind, Gauge>,
    findings: Family<TenantKind, Counter>,
    missing: Family<TenantLabel, Counter>,
    silent: Family<TenantLabel, Gauge>,
}

/// Open findings across tenants at the latest judgement, for `GET /health`.
static OPEN_NOW: AtomicU64 = AtomicU64::new(0);

/// Gap findings across every tenant that were open (ongoing, or ended within the last hour)
/// when [`evaluate`] last ran; 0 before it first has.
pub fn open_now() -> u64 {
    OPEN_NOW.load(Ordering::Relaxed)
}

static GAP_METRICS: LazyLock<GapMetrics> = LazyLock::new(|| GapMetrics {
    open: Family::default(),
    findings: Family::default(),
    missing: Family::default(),
    silent: Family::default(),
});

/// Adds the gap detector's metrics to the process's registry.
pub fn register(registry: &mut Registry) {
    let m = &*GAP_METRICS;
    registry.register(
        "sealtrail_gaps_open",
        "Gap findings ongoing or ended within the last hour, by tenant and kind",
        m.open.clone(),
    );
    registry.register(
        "sealtrail_gap_findings",
        "Gap findings, each counted once when first seen, by tenant and kind",
        m.findings.clone(),
    );
    registry.register(
        "sealtrail_producer_missing_events",
        "source.seq numbers proven missing (events a producer numbered that never arrived)",
        m.missing.clone(),
    );
    registry.register(
        "sealtrail_producer_silent",
        "Producers seen regularly that are silent now",
        m.silent.clone(),
    );
}

/// Counts `count` `source.seq` numbers of `tenant` newly proven missing, in `ranges` new
/// missing ranges: each range is a `producer_seq_gap` finding, counted here when it is found,
/// however long ago its events occurred (a backfill of last week's events that reveals a
/// gap counts as much as a gap found now).
pub fn missing_found(tenant: &str, count: u64, ranges: u64) {
    let series = GAP_METRICS.missing.get_or_create(&TenantLabel {
        tenant: tenant.to_string(),
    });
    // The series exists from the tenant's first batch on, so `increase()` starts at zero.
    series.inc_by(count);
    GAP_METRICS
        .findings
        .get_or_create(&TenantKind {
            tenant: tenant.to_string(),
            kind: Kind::ProducerSeqGap.as_str(),
        })
        .inc_by(ranges);
}

/// Judges every tenant's last 24 hours and sets the metrics; see the module docs.
pub fn evaluate(gaps: &Gaps) -> Result<(), super::GapsRequestError> {
    let Some(reader) = GapsReader::open_for_marks(&gaps.path)? else {
        return Ok(());
    };
    let now = gaps.clock.now().unix_micros();
    let m = &*GAP_METRICS;
    let mut open_total = 0u64;
    for tenant in reader.tenants()? {
        if tenant == SYSTEM_TENANT {
            continue;
        }
        let report = gaps.report(&tenant, None, None)?;
        let mut silent = 0;
        for kind in Kind::ALL {
            let open = report
                .gaps
                .iter()
                .filter(|f| f.kind == kind)
                .filter(|f| is_open(f, now))
                .count();
            let labels = TenantKind {
                tenant: tenant.clone(),
                kind: kind.as_str(),
            };
            m.open.get_or_create(&labels).set(open as i64);
            open_total += open as u64;
            let counter = m.findings.get_or_create(&labels);
            // Sequence gaps are counted when the gap database finds them ([`missing_found`]).
            if kind == Kind::ProducerSeqGap {
                continue;
            }
            for finding in report.gaps.iter().filter(|f| f.kind == kind) {
                if reader.mark_counted(&tenant, kind.as_str(), &finding.key())? {
                    counter.inc();
                }
            }
        }
        for finding in &report.gaps {
            if finding.kind == Kind::SilentProducer && finding.ongoing {
                silent += 1;
            }
        }
        m.silent
            .get_or_create(&TenantLabel {
                tenant: tenant.clone(),
            })
            .set(silent);
    }
    OPEN_NOW.store(open_total, Ordering::Relaxed);
    Ok(())
}

/// Whether a finding counts as open at `now` (microseconds): ongoing, or ended within
/// [`OPEN_FOR`].
pub fn is_open(finding: &super::detect::Finding, now: i64) -> bool {
    finding.ongoing || now - finding.end < OPEN_FOR.as_micros() as i64
}

/// Runs [`evaluate`] every [`EVALUATE_EVERY`] until shutdown.
pub async fn run(gaps: Gaps, mut stop: Shutdown) {
    loop {
        let judged = gaps.clone();
        match tokio::task::spawn_blocking(move || evaluate(&judged)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "judging gaps for the metrics failed"),
            Err(error) => tracing::error!(%error, "judging gaps for the metrics panicked"),
        }
        tokio::select! {
            () = stop.signalled() => return,
            () = tokio::time::sleep(EVALUATE_EVERY) => {}
        }
    }
}
