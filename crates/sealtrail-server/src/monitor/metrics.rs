//! The monitor's metric, registered in the process's one registry
//! ([`crate::metrics`] calls [`register`]): `sealtrail_alerts_total{tenant,rule,severity}`,
//! each alert counted once, when this instance appends its event, and
//! `sealtrail_webhook_deliveries_total{webhook,outcome}`, each attempt to deliver one.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    tenant: String,
    rule: String,
    severity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    webhook: String,
    outcome: &'static str,
}

static DELIVERIES: LazyLock<Family<DeliveryLabels, Counter>> = LazyLock::new(Family::default);

static ALERTS: LazyLock<Family<AlertLabels, Counter>> = LazyLock::new(Family::default);

/// Adds the monitor's metric to the process's registry.
pub fn register(registry: &mut Registry) {
    registry.register(
        "sealtrail_alerts",
        "Alerts raised by the monitoring rules and appended to the tenant's log, by tenant, rule and severity",
        ALERTS.clone(),
    );
    registry.register(
        "sealtrail_webhook_deliveries",
        "Attempts to deliver an alert to a webhook, by webhook and outcome (delivered, failed)",
        DELIVERIES.clone(),
    );
}

/// Counts one attempt to deliver an alert to `webhook`.
pub fn webhook_delivered(webhook: &str, delivered: bool) {
    DELIVERIES
        .get_or_create(&DeliveryLabels {
            webhook: webhook.to_string(),
            outcome: if delivered { "delivered" } else { "failed" },
        })
        .inc();
}

/// Makes the series of a tenant's rule and severity exist (at 0) before its first alert, so
/// that `increase()` sees the first one.
pub fn alert_series(tenant: &str, rule: &str, severity: &str) {
    let _ = ALERTS.get_or_create(&AlertLabels {
        tenant: tenant.to_string(),
        rule: rule.to_string(),
        severity: severity.to_string(),
    });
}

/// Makes a webhook's series exist (at 0) before its first attempt.
pub fn webhook_series(webhook: &str) {
    for outcome in ["delivered", "failed"] {
        let _ = DELIVERIES.get_or_create(&DeliveryLabels {
            webhook: webhook.to_string(),
            outcome,
        });
    }
}

/// Counts one alert appended.
pub fn alert_raised(tenant: &str, rule: &str, severity: &str) {
    ALERTS
        .get_or_create(&AlertLabels {
            tenant: tenant.to_string(),
            rule: rule.to_string(),
            severity: severity.to_string(),
        })
        .inc();
}
