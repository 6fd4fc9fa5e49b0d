//! `GET /v1/whoami`: what the caller's token is — its id, the tenant it acts for and its
//! scopes. Any valid token may ask (no scope is needed); the console uses it to show only
//! what the token allows. It says nothing a token's holder could not learn by trying each
//! route, and nothing of the secret.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{AppState, Caller};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}

/// The caller's token as the server sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The tenant this request acts for (the token's, or `X-Tenant-ID` for a `*` token).
    tenant: String,
    /// The token's id (not its secret).
    token_id: String,
    /// The token's scopes, in the order they were granted.
    scopes: Vec<String>,
}

/// The caller's tenant, token id and scopes (documented in `http/ops/openapi.rs`).
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: caller.tenant,
        token_id: caller.token_id,
        scopes: caller
            .scopes
            .iter()
            .map(|scope| scope.as_str().to_string())
            .collect(),
    })
}
