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
/// The schema of an RFC 3339 timestamp, for handlers that carry their own path items.
pub(crate) use openapi::Timestamp as TimestampSchema;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use self::openapi::{ApiDoc, PENDING_ROUTES, document};
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

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "ops", operation_id = "metrics",
    responses(
        (status = 200, description = "The OpenMetrics text format", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ),
)]
async fn metrics_text(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Err(error) = metrics::observe_checkpoints(&state.readers).await {
        // Metrics must still be served while the store fails: that is when they matter.
        let error = ApiError::from(error);
        tracing::warn!(error = %error.message, "cannot read the checkpoints for the metrics");
    }
    metrics::observe_wal(&state.settings.storage);
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
