//! One log line per request, at `info` on the target `sealtrail_server::http::access`: method,
//! route (the matched route template such as `/v1/events/{id}`, never the raw path, which
//! carries ids and search terms), status, tenant (once the request authenticated), latency in
//! milliseconds, and on a 4xx or 5xx the error code and rule the body names. Never a header,
//! a token or anything of the body: what an event says stays in the log it was written to.
//!
//! Every 401 and 403 is also counted in `sealtrail_auth_refusals_total{reason}`, by why
//! ([`refusal_reason`]): `missing_token`, `malformed_header`, `unknown_token`, `revoked`
//! (401), `missing_scope`, `wrong_tenant`, `reserved_tenant` (403).
//!
//! The tenant reaches this layer through a [`TenantSlot`] the layer puts into the request and
//! [`super::Caller`] fills when it authenticates; the error through the [`ErrorSummary`]
//! extension [`super::ApiError`] puts on its response.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics;

/// Where the authenticated tenant of a request is written for the access log.
#[derive(Debug, Clone, Default)]
pub struct TenantSlot(Arc<OnceLock<String>>);

impl TenantSlot {
    /// Records the request's tenant (the first one set stays).
    pub fn set(&self, tenant: &str) {
        let _ = self.0.set(tenant.to_string());
    }
}

/// What an error response was about: its code and rule, never its message (which may quote
/// the request).
#[derive(Debug, Clone, Copy)]
pub struct ErrorSummary {
    pub error: &'static str,
    pub rule: Option<&'static str>,
}

/// The middleware: logs the request once its response is ready.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_string(), |m| m.as_str().to_string());
    let slot = TenantSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status();
    let summary = response.extensions().get::<ErrorSummary>().copied();
    if status == axum::http::StatusCode::UNAUTHORIZED || status == axum::http::StatusCode::FORBIDDEN
    {
        metrics::auth_refused(refusal_reason(status, summary));
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let tenant = slot.0.get().map(String::as_str);
    match summary {
        Some(summary) if status.is_client_error() || status.is_server_error() => {
            tracing::info!(
                method = %method,
                route,
                status = status.as_u16(),
                tenant,
                latency_ms,
                error = summary.error,
                rule = summary.rule,
                "request"
            );
        }
        _ => {
            tracing::info!(
                method = %method,
                route,
                status = status.as_u16(),
                tenant,
                latency_ms,
                "request"
            );
        }
    }
    response
}

/// The `reason` label of a 401 or 403: for a 401 (whose error code is always `unauthorized`)
/// the rule that refused the token, named for the operator; for a 403 its error code. Both
/// come from fixed sets, so the label is bounded.
pub fn refusal_reason(
    status: axum::http::StatusCode,
    summary: Option<ErrorSummary>,
) -> &'static str {
    if status == axum::http::StatusCode::UNAUTHORIZED {
        match summary.and_then(|s| s.rule) {
            Some("required") => "missing_token",
            Some("format") => "malformed_header",
            Some(rule) => rule,
            None => "unauthorized",
        }
    } else {
        summary.map_or("forbidden", |s| s.error)
    }
}
