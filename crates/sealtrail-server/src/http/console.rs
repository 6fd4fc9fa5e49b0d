//! The console: a web page for auditors at `/console` (and `/` redirects there), served from
//! files embedded in the binary — plain HTML, CSS and JavaScript modules under
//! `crates/sealtrail-server/console/`, with no build step and nothing loaded from elsewhere.
//! The page signs in with a token kept in the tab's memory, reads the JSON API like any
//! client, and verifies checkpoints and inclusion proofs itself with WebCrypto (the design is
//! in ARCHITECTURE.md, "The console").
//!
//! These routes serve a page, not the JSON API: they are not in the OpenAPI document, and the
//! test that matches the document against the router leaves out exactly [`ROUTES`].
//!
//! Every answer here, the 404 of an unknown file included, carries [`CONTENT_SECURITY_POLICY`]:
//! scripts, styles and connections from this origin only, no inline script or style, no
//! framing.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// The console's routes, as (method, path): served, and deliberately not part of the API
/// document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/console"),
    ("get", "/console/"),
    ("get", "/console/{file}"),
];

/// The policy on every console answer: everything from this origin only, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. `index.html` is also the answer to `/console`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("proof.js", JS),
    asset!("timeline.js", JS),
    asset!("search.js", JS),
    asset!("event.js", JS),
    asset!("health.js", JS),
    asset!("reports.js", JS),
];

/// The console's total size in bytes: every embedded file.
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|asset| asset.bytes.len()).sum()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(to_console))
        .route("/console", get(index))
        .route("/console/", get(to_console))
        .route("/console/{file}", get(file))
        .layer(axum::middleware::from_fn(secure_headers))
}

async fn to_console() -> Redirect {
    Redirect::to("/console")
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset),
        None => ApiError::not_found(format!("the console has no file {name:?}; open /console"))
            .into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Revalidate each time: a new binary may serve new files under the same names.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// Adds the policy and its companions to every answer of the console's routes.
async fn secure_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
