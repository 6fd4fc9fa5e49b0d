//! Operations endpoints, served without a token so that load balancers, Prometheus and API
//! tooling can reach them: `GET /health`, `GET /metrics` and `GET /openapi.json`.
//!
//! ## `GET /health`
//!
//! `{"status": "healthy|degraded|failing", "checks": {…}}`, HTTP 200 when healthy or
//! degraded, 503 when failing (take the instance out of rotation). The checks, and how the
//! status follows from them, are the health service's ([`crate::health`]); this handler only
//! runs them and writes the answer.
//!
//! ## `GET /metrics`
//!
//! The process's metrics ([`crate::metrics`]) in the OpenMetrics text format.
//!
//! ## `GET /openapi.json`
//!
//! The OpenAPI 3.1 description of the whole API, built in [`openapi`].

mod openapi;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::Checkpoint;

pub use self::openapi::{ApiDoc, ApiErrorBody, PENDING_ROUTES, document};
use super::{ApiError, AppState};
pub use crate::health::INDEX_LAG_DEGRADED;
use crate::health::{Health, HealthStatus};
use crate::metrics;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
}

/// Health with real checks of the store, the write path, the chain and the index.
#[utoipa::path(
    get, path = "/health", tag = "ops",
    responses(
        (status = 200, description = "Healthy or degraded", body = Health),
        (status = 503, description = "Failing: take the instance out of rotation", body = Health),
    ),
)]
async fn health(State(state): State<AppState>) -> Response {
    let health = state.health.check().await;
    let code = match health.status {
        HealthStatus::Failing => StatusCode::SERVICE_UNAVAILABLE,
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
    };
    if health.status != HealthStatus::Healthy {
        tracing::warn!(status = ?health.status, checks = ?health.checks, "health check");
    }
    (code, [(header::CACHE_CONTROL, "no-store")], Json(health)).into_response()
}

/// When a stored checkpoint note says it was issued (its `sealtrail-timestamp` line). Used
/// for an age gauge only, so the note is parsed, not verified.
fn issued_at(note: &str) -> Option<Timestamp> {
    let note = sealtrail_core::note::parse(note.as_bytes()).ok()?;
    Checkpoint::parse(&note.text).ok()?.timestamp
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "ops", operation_id = "metrics",
    responses(
        (status = 200, description = "The OpenMetrics text format", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ),
)]
async fn metrics_text(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Checkpoints signed before this process started (or by another process) are known only
    // to the store: read each such tenant's latest once, so its age gauge exists from the
    // first scrape.
    let seeded = state
        .readers
        .with(|conn| {
            for tenant in conn.tenants()? {
                if metrics::checkpoint_known(&tenant.name) {
                    continue;
                }
                let latest = conn.latest_checkpoint(&tenant.name)?;
                if let Some(at) = latest.and_then(|c| issued_at(&c.note)) {
                    metrics::checkpoint_signed(&tenant.name, at);
                }
            }
            Ok(())
        })
        .await;
    if let Err(error) = seeded {
        // Metrics must still be served while the store fails: that is when they matter.
        tracing::warn!(error = %error.message, "cannot read checkpoint times for the metrics");
    }
    let text =
        metrics::render().map_err(|_| ApiError::internal("cannot encode the metrics registry"))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json")),
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_checkpoint_says_when_it_was_issued() {
        let signer = sealtrail_core::note::SignerKey::generate(
            "sealtrail.local/acme",
            &mut rand_core::OsRng,
        )
        .unwrap();
        let issued = Timestamp::parse("2026-11-23T10:00:00.123456Z").unwrap();
        let note = Checkpoint {
            origin: "sealtrail.local/acme".into(),
            size: 3,
            root: sealtrail_core::Hash::ZERO,
            timestamp: Some(issued),
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap();
        assert_eq!(issued_at(&note), Some(issued));
        assert_eq!(issued_at("not a note"), None);
    }
}
