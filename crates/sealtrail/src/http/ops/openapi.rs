//! The OpenAPI 3.1 document behind `GET /openapi.json`, generated with utoipa.
//!
//! Routes owned by this area (`/health`, `/metrics`, `/openapi.json`, `/v1/admin/…`) carry
//! `#[utoipa::path]` on their real handlers. Every other route of the API is described here by
//! a documentation-only function with the same method and path, so the document can be built
//! in one place while the handlers live in their own modules; the schemas of their bodies are
//! declared here too, following the interface contract (`BRIEF.md`).
//!
//! **Keeping it in sync.** The API test `the_openapi_document_matches_the_router` reads every
//! `.route(…)` of `src/http/` and fails when a served route is missing from the document or a
//! documented one is not served — except the routes in [`PENDING_ROUTES`], documented ahead of
//! their handlers. Adding a route therefore means adding its path item here (or on its
//! handler) and listing it in [`ApiDoc`]; once a pending route is served, the same test says
//! to remove it from [`PENDING_ROUTES`].

// The functions below exist only to carry `#[utoipa::path]`; nothing calls them.
#![allow(dead_code)]

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::super::admin;

/// Documented routes whose handlers are being built in other modules and are not served by
/// this build yet, as (method, path). The API test fails once one of them is served, so this
/// list only ever shrinks to empty.
pub const PENDING_ROUTES: &[(&str, &str)] = &[];

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealtrail",
        description = "A self-hosted, tamper-evident audit trail: ingest audit events, read \
            them back with inclusion proofs, and follow the log through signed checkpoints, \
            consistency proofs and C2SP tlog tiles.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        post_event,
        post_batch,
        list_events,
        get_event,
        log_checkpoint,
        log_key,
        inclusion_proof,
        consistency_proof,
        tlog_checkpoint,
        tlog_tile,
        tlog_entries,
        verify,
        super::health,
        super::metrics_text,
        super::openapi_json,
        admin::create_token,
        admin::list_tokens,
        admin::revoke_token,
        admin::list_tenants,
    ),
    components(schemas(ApiErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "events", description = "Ingest and read audit events"),
        (name = "log", description = "Checkpoints, keys and proofs of a tenant's log"),
        (name = "tiles", description = "The C2SP tlog-tiles read API"),
        (name = "verify", description = "Verification of a tenant's log"),
        (name = "admin", description = "Tokens and tenants (admin scope, _system tenant)"),
        (name = "ops", description = "Health, metrics and this document (no token)"),
    ),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`st_…`) from `sealtrail tokens create` or \
                         POST /v1/admin/tokens. A token is bound to one tenant; a \
                         multi-tenant token names the tenant in X-Tenant-ID.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served: built once, it never changes while the process runs.
pub(super) fn document_json() -> String {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        // Serializing a document of plain strings and maps cannot fail; an empty object
        // would still be valid JSON if it ever did.
        document().to_json().unwrap_or_else(|_| "{}".to_string())
    });
    JSON.clone()
}

// ---------------------------------------------------------------------------------------
// Schemas of bodies whose Rust types live elsewhere. They follow the interface contract.

/// An error: the status code says the class, `error` the stable code, `message` what to do.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    /// A stable snake_case code: `invalid_event`, `malformed_json`, `unauthorized`,
    /// `missing_scope`, `not_found`, `not_durable`, `storage_full`, …
    #[schema(example = "invalid_event")]
    error: String,
    /// What is wrong and what to do.
    message: String,
    /// The field at fault, as a JSON path (`actor.id`, `[3].targets[0].type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The rule it broke: `required`, `type`, `enum`, `max_length`, `unknown_field`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

/// What kind of thing happened.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Create,
    Read,
    Update,
    Delete,
    Login,
    Logout,
    Export,
    Disclose,
    Admin,
    Other,
}

/// How it ended.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    Success,
    Failure,
    Unknown,
}

/// Who did it.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    Service,
    ApiKey,
    System,
    Anonymous,
}

/// Who did it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[schema(min_length = 1, max_length = 256, example = "u-123")]
    id: String,
    #[serde(rename = "type")]
    kind: Option<ActorType>,
    #[schema(max_length = 256)]
    email: Option<String>,
    #[schema(max_length = 256)]
    name: Option<String>,
    #[schema(max_items = 32)]
    roles: Option<Vec<String>>,
}

/// What it was done to.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(rename = "type")]
    #[schema(max_length = 256, example = "patient")]
    kind: Option<String>,
    #[schema(max_length = 256)]
    id: Option<String>,
    #[schema(max_length = 256)]
    name: Option<String>,
}

/// Where the request came from.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// An IPv4 or IPv6 address; stored in its standard text form.
    #[schema(example = "10.1.2.3")]
    ip: Option<String>,
    #[schema(max_length = 4096)]
    user_agent: Option<String>,
    #[schema(max_length = 256)]
    request_id: Option<String>,
    #[schema(max_length = 256)]
    session_id: Option<String>,
    #[schema(max_length = 256)]
    trace_id: Option<String>,
}

/// The producer. `seq` counts up per (`app`, `instance`); a gap in it proves a lost event.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[schema(max_length = 256, example = "ehr-web")]
    app: Option<String>,
    #[schema(max_length = 256)]
    instance: Option<String>,
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    seq: Option<u64>,
}

/// A disclosure of protected data to a third party (HIPAA accounting of disclosures).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    #[schema(max_length = 256)]
    recipient: Option<String>,
    #[schema(max_length = 4096)]
    recipient_address: Option<String>,
    #[schema(max_length = 256)]
    purpose: Option<String>,
    #[schema(max_length = 4096)]
    description: Option<String>,
}

/// An audit event as a producer sends it (event schema v1). `null` means absent; unknown
/// fields are rejected (custom data goes in `details`); numbers that JSON cannot carry
/// exactly are rejected, never rounded. The canonical entry is at most 65,535 bytes.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "occurred_at": "2026-11-23T10:00:00.123456Z",
    "action": "patient.record.read",
    "activity": "read",
    "outcome": "success",
    "actor": {"id": "u-123", "type": "user"},
    "targets": [{"type": "patient", "id": "p-9"}],
    "context": {"ip": "10.1.2.3"},
    "source": {"app": "ehr-web", "instance": "pod-7", "seq": 18233}
}))]
pub struct Event {
    /// When it happened: RFC 3339 with an offset; stored as UTC with microseconds.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:/-]+$")]
    action: String,
    activity: Option<Activity>,
    outcome: EventOutcome,
    #[schema(max_length = 4096)]
    outcome_reason: Option<String>,
    actor: Actor,
    #[schema(max_items = 64)]
    targets: Option<Vec<Target>>,
    context: Option<Context>,
    source: Option<Source>,
    /// Same key, same receipt: a retry never makes a second entry.
    #[schema(min_length = 1, max_length = 256)]
    idempotency_key: Option<String>,
    disclosure: Option<Disclosure>,
    /// Free-form data: at most 8 levels deep, 256 keys or items per level.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

/// The receipt of a durable entry.
#[derive(ToSchema)]
pub struct Receipt {
    /// UUIDv7.
    #[schema(format = "uuid")]
    id: String,
    /// Its position in the tenant's log, from 0.
    seq: u64,
    /// SHA-256(0x00 ‖ entry), lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    event_hash: String,
    /// UTC, microseconds.
    #[schema(format = DateTime)]
    received_at: String,
}

/// One event's result in a batch: a receipt, or an error.
#[derive(ToSchema)]
pub struct BatchResult {
    /// Its position in the batch.
    index: u64,
    /// 201 committed, 200 duplicate of an earlier idempotency key, 4xx rejected.
    status: u16,
    #[schema(format = "uuid")]
    id: Option<String>,
    seq: Option<u64>,
    event_hash: Option<String>,
    #[schema(format = DateTime)]
    received_at: Option<String>,
    error: Option<ApiErrorBody>,
}

/// An entry of the log: the event with its server-assigned fields.
#[derive(ToSchema)]
pub struct StoredEvent {
    #[schema(format = "uuid")]
    id: String,
    seq: u64,
    #[schema(format = DateTime)]
    received_at: String,
    /// The `event_hash` of the entry before it; all zeros at seq 0.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    prev_hash: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    event_hash: String,
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    action: String,
    activity: Option<Activity>,
    outcome: EventOutcome,
    outcome_reason: Option<String>,
    actor: Actor,
    targets: Option<Vec<Target>>,
    context: Option<Context>,
    source: Option<Source>,
    idempotency_key: Option<String>,
    disclosure: Option<Disclosure>,
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

/// A page of events in `seq` order.
#[derive(ToSchema)]
pub struct EventPage {
    events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// An inclusion proof: the audit path from a leaf to the root of the tree of `size` entries
/// (RFC 9162 §2.1.3).
#[derive(ToSchema)]
pub struct InclusionProof {
    seq: u64,
    size: u64,
    /// Sibling hashes from the leaf up, lowercase hex.
    proof: Vec<String>,
}

/// A consistency proof between two tree sizes (RFC 9162 §2.1.4).
#[derive(ToSchema)]
pub struct ConsistencyProof {
    from: u64,
    to: u64,
    /// Lowercase hex.
    proof: Vec<String>,
}

/// An event with its inclusion proof to the latest checkpoint.
#[derive(ToSchema)]
pub struct EventWithProof {
    event: StoredEvent,
    inclusion: InclusionProof,
    /// The signed checkpoint the proof leads to (the note text).
    checkpoint: String,
}

/// One violation found by verification.
#[derive(ToSchema)]
pub struct Violation {
    seq: Option<u64>,
    /// `content_mismatch`, `broken_link`, `missing_seq`, `checkpoint_root_mismatch`, …
    kind: String,
    detail: String,
}

/// What verification found.
#[derive(ToSchema)]
pub struct VerifyReport {
    valid: bool,
    rows_checked: u64,
    violations: Vec<Violation>,
    first_broken_seq: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// Documentation-only path items for routes whose handlers live in other modules.

/// Ingest one event.
///
/// Acknowledged only once durable. With an `Idempotency-Key` (header, or `idempotency_key`
/// in the body) a retry returns the original receipt with 200.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1-256 visible ASCII characters"),
        ("X-Tenant-ID" = Option<String>, Header, description = "The tenant, for multi-tenant tokens only"),
    ),
    request_body(content = Event, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed", body = Receipt),
        (status = 200, description = "A retry: the original receipt", body = Receipt),
        (status = 400, description = "Malformed JSON", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:write", body = ApiErrorBody),
        (status = 413, description = "Body or canonical entry too large", body = ApiErrorBody),
        (status = 415, description = "Not application/json", body = ApiErrorBody),
        (status = 422, description = "The event breaks a rule; `field` and `rule` say which", body = ApiErrorBody),
        (status = 503, description = "Nothing was committed; retry with the same key", body = ApiErrorBody),
        (status = 507, description = "The store's disk is full (`storage_full`): nothing was committed; retry with the same key once space is freed", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn post_event() {}

/// Ingest a batch.
///
/// A JSON array or NDJSON, up to 10,000 events or 16 MiB. Valid events are committed,
/// invalid ones rejected one by one.
#[utoipa::path(
    post, path = "/v1/events/batch", tag = "events",
    params(
        ("X-Tenant-ID" = Option<String>, Header, description = "The tenant, for multi-tenant tokens only"),
    ),
    request_body(
        description = "Events as a JSON array, or one per line as NDJSON",
        content(
            (Vec<Event> = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One result per event, in order", body = Vec<BatchResult>),
        (status = 400, description = "Malformed JSON", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:write", body = ApiErrorBody),
        (status = 413, description = "More than 10,000 events or 16 MiB", body = ApiErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON", body = ApiErrorBody),
        (status = 422, description = "Not an array, or empty", body = ApiErrorBody),
        (status = 503, description = "Nothing was committed; retry", body = ApiErrorBody),
        (status = 507, description = "The store's disk is full (`storage_full`): nothing was committed; retry once space is freed", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn post_batch() {}

/// Search events.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(
        ("from" = Option<String>, Query, description = "Received at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Received before (RFC 3339)"),
        ("actor" = Option<String>, Query, description = "actor.id"),
        ("action" = Option<String>, Query),
        ("activity" = Option<String>, Query),
        ("outcome" = Option<String>, Query),
        ("target_type" = Option<String>, Query),
        ("target_id" = Option<String>, Query),
        ("ip" = Option<String>, Query, description = "context.ip"),
        ("source" = Option<String>, Query, description = "source.app"),
        ("q" = Option<String>, Query, description = "Text in details"),
        ("limit" = Option<u32>, Query),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("order" = Option<String>, Query, description = "asc (default) or desc"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A bad filter", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn list_events() {}

/// One event with its inclusion proof to the latest checkpoint.
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event's id (UUIDv7)")),
    responses(
        (status = 200, description = "The event and its proof", body = EventWithProof),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read", body = ApiErrorBody),
        (status = 404, description = "No such event", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn get_event() {}

/// The latest signed checkpoint of the caller's log (a C2SP signed note).
#[utoipa::path(
    get, path = "/v1/log/checkpoint", tag = "log",
    responses(
        (status = 200, description = "The checkpoint note", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read", body = ApiErrorBody),
        (status = 404, description = "No checkpoint yet", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_checkpoint() {}

/// The verifier key of the caller's log, in the signed-note format.
#[utoipa::path(
    get, path = "/v1/log/key", tag = "log",
    responses(
        (status = 200, description = "`<name>+<hash>+<base64>`", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_key() {}

/// An inclusion proof of entry `seq` in the tree of `size` entries.
#[utoipa::path(
    get, path = "/v1/log/proof/inclusion", tag = "log",
    params(
        ("seq" = u64, Query, description = "The entry"),
        ("size" = u64, Query, description = "The tree size, greater than seq"),
    ),
    responses(
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "seq or size out of range", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn inclusion_proof() {}

/// A consistency proof from tree size `from` to `to`.
#[utoipa::path(
    get, path = "/v1/log/proof/consistency", tag = "log",
    params(
        ("from" = u64, Query, description = "The smaller size, at least 1"),
        ("to" = u64, Query, description = "The larger size"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "Sizes out of range", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn consistency_proof() {}

/// The latest checkpoint of a tenant's log (C2SP tlog-tiles). Public when the server runs
/// with `public_log`.
#[utoipa::path(
    get, path = "/logs/{tenant}/checkpoint", tag = "tiles",
    params(("tenant" = String, Path)),
    responses(
        (status = 200, description = "The checkpoint note", body = String, content_type = "text/plain"),
        (status = 401, description = "A token is needed unless the log is public", body = ApiErrorBody),
        (status = 404, description = "No such log or no checkpoint yet", body = ApiErrorBody),
    ),
    security((), ("bearer" = [])),
)]
fn tlog_checkpoint() {}

/// A hash tile (C2SP tlog-tiles).
#[utoipa::path(
    get, path = "/logs/{tenant}/tile/{tile_path}", tag = "tiles",
    params(
        ("tenant" = String, Path),
        ("tile_path" = String, Path, description = "`<L>/<N>[.p/<W>]`, N in `x001/x234/067` groups (spans several segments)"),
    ),
    responses(
        (status = 200, description = "The tile: concatenated 32-byte hashes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "A token is needed unless the log is public", body = ApiErrorBody),
        (status = 404, description = "No such tile", body = ApiErrorBody),
    ),
    security((), ("bearer" = [])),
)]
fn tlog_tile() {}

/// An entry bundle (C2SP tlog-tiles): each entry behind a big-endian u16 length.
#[utoipa::path(
    get, path = "/logs/{tenant}/tile/entries/{bundle_path}", tag = "tiles",
    params(
        ("tenant" = String, Path),
        ("bundle_path" = String, Path, description = "`<N>[.p/<W>]`, N in `x001/x234/067` groups (spans several segments)"),
    ),
    responses(
        (status = 200, description = "The entry bundle", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "A token is needed unless the log is public", body = ApiErrorBody),
        (status = 404, description = "No such bundle", body = ApiErrorBody),
    ),
    security((), ("bearer" = [])),
)]
fn tlog_entries() {}

/// Verifies the caller's log, or a range of it.
#[utoipa::path(
    get, path = "/v1/verify", tag = "verify",
    params(
        ("from_seq" = Option<u64>, Query),
        ("to_seq" = Option<u64>, Query),
    ),
    responses(
        (status = 200, description = "The report; `valid` says whether the log is intact", body = VerifyReport),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks verify", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn verify() {}
