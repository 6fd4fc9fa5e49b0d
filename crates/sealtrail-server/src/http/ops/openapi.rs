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

use crate::http::error::ApiErrorBody;
use std::sync::LazyLock;

use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::super::admin;
use super::super::alerts;
use super::super::holds;
use super::super::retention;
use super::super::whoami;

mod reports;

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
        export_events,
        timeline,
        gaps,
        gap_report,
        alerts::list,
        log_checkpoint,
        log_key,
        log_seals,
        log_seal,
        inclusion_proof,
        consistency_proof,
        tlog_checkpoint,
        tlog_tile,
        tlog_entries,
        verify,
        reports::report_daily_activity,
        reports::report_security_incidents,
        reports::report_record_access,
        reports::report_disclosures,
        reports::report_user_activity,
        reports::report_completeness,
        whoami_doc,
        super::health,
        super::metrics_text,
        super::openapi_json,
        admin::create_token,
        admin::list_tokens,
        admin::revoke_token,
        admin::list_tenants,
        holds::list,
        holds::add,
        holds::release,
        admin::freeze_tenant,
        admin::unfreeze_tenant,
        retention::show,
        retention::set,
        retention::report,
    ),
    components(schemas(ApiErrorBody, Timestamp, IpAddress, TenantName, Seq, TreeSize, Name)),
    modifiers(&BearerAuth),
    tags(
        (name = "events", description = "Ingest and read audit events"),
        (name = "log", description = "Checkpoints, keys and proofs of a tenant's log"),
        (name = "tiles", description = "The C2SP tlog-tiles read API"),
        (name = "gaps", description = "Timelines and gap findings of a tenant's log"),
        (name = "alerts", description = "Alerts the monitoring rules raised in a tenant's log"),
        (name = "verify", description = "Verification of a tenant's log"),
        (name = "reports", description = "Reports over a tenant's verified log (scope reports)"),
        (name = "admin", description = "Tokens, tenants, freezes, legal holds and retention (admin scope, _system tenant)"),
        (name = "token", description = "The caller's own token: tenant and scopes"),
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
// Value types shared by bodies and parameters. Each says exactly what the server accepts,
// so that a client (or a generator such as schemathesis) that follows the document is never
// refused, and one that breaks it always is.

/// An RFC 3339 timestamp with an offset, years 1971 to 9998 (the server takes 1970 to 9999
/// once converted to UTC; the pattern keeps to years no offset can push out of that range),
/// days valid in every year (the server also takes 29 February of leap years).
const TIMESTAMP_PATTERN: &str = "^(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// A tenant name: 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or
/// digit; `_system` is the one reserved exception (see `tenant::TenantName`).
const TENANT_PATTERN: &str = "^(_system|[a-z0-9][a-z0-9_-]{0,63})$";

/// 2^53 − 1, the largest seq: seqs are exact numbers in canonical JSON entries.
const MAX_SEQ: u64 = sealtrail_core::event::MAX_SAFE_INTEGER;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(minimum: u64, maximum: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(minimum as f64))
        .maximum(Some(maximum as f64))
}

/// An RFC 3339 timestamp, as producers and filters send it.
pub struct Timestamp;

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string()
            .description(Some(
                "An RFC 3339 timestamp with an offset or `Z` (any precision, `T` or a space); \
                 stored as UTC with microseconds. Years 1970 to 9999 in UTC.",
            ))
            .pattern(Some(TIMESTAMP_PATTERN))
            .examples(["2026-11-23T10:00:00.123456Z"])
            .into()
    }
}

impl ToSchema for Timestamp {}

/// An IPv4 or IPv6 address.
pub struct IpAddress;

impl PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))))
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))))
            .description(Some(
                "An IPv4 or IPv6 address, stored in its standard text form (`2001:DB8::0:1` \
                 becomes `2001:db8::1`). Leading-zero octets, ports, brackets and zones are \
                 refused.",
            ))
            .into()
    }
}

impl ToSchema for IpAddress {}

/// A tenant's name.
pub struct TenantName;

impl PartialSchema for TenantName {
    fn schema() -> RefOr<Schema> {
        string()
            .description(Some(
                "1-64 lowercase letters, digits, `-` and `_`, starting with a letter or digit",
            ))
            .pattern(Some(TENANT_PATTERN))
            .examples(["acme"])
            .into()
    }
}

impl ToSchema for TenantName {}

/// A name inside an event: at most 256 characters.
pub struct Name;

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        string().max_length(Some(256)).into()
    }
}

impl ToSchema for Name {}

/// A position in a log.
pub struct Seq;

impl PartialSchema for Seq {
    fn schema() -> RefOr<Schema> {
        integer(0, MAX_SEQ)
            .description(Some("A position in the log, from 0 to 2^53 - 1"))
            .into()
    }
}

impl ToSchema for Seq {}

/// The number of entries of a (non-empty) tree.
pub struct TreeSize;

impl PartialSchema for TreeSize {
    fn schema() -> RefOr<Schema> {
        integer(1, MAX_SEQ + 1)
            .description(Some("A tree size: a number of entries, from 1 to 2^53"))
            .into()
    }
}

impl ToSchema for TreeSize {}

/// A batch as a JSON array.
pub struct EventArray;

impl PartialSchema for EventArray {
    fn schema() -> RefOr<Schema> {
        // Each element is the one Event schema, by reference, so that a generated client
        // sends a batch as a list of the same typed events it sends one at a time (an `anyOf`
        // of an inlined copy and "anything" gave generators a second, untyped event type).
        // The server still checks each element alone: one that is not a valid event is
        // rejected in its own result and the others are committed, as the description says.
        ArrayBuilder::new()
            .items(Ref::from_schema_name(Event::name()))
            .min_items(Some(1))
            .max_items(Some(super::super::ingest::MAX_BATCH_EVENTS))
            .description(Some(
                "1 to 10,000 events; an element that is not a valid event is rejected in its \
                 own result (status 4xx) while the valid ones are committed",
            ))
            .into()
    }
}

impl ToSchema for EventArray {}

/// A batch as NDJSON.
pub struct EventLines;

impl PartialSchema for EventLines {
    fn schema() -> RefOr<Schema> {
        string()
            .description(Some(
                "One event per line; blank lines are skipped, and a body of blank lines only \
                 is refused. Each line is checked alone.",
            ))
            // At least one character that is not ASCII white space: an event.
            .pattern(Some("[^\\t\\n\\f\\r ]"))
            .into()
    }
}

impl ToSchema for EventLines {}

// ---------------------------------------------------------------------------------------
// Schemas of bodies whose Rust types live elsewhere. They follow the interface contract
// (the error body's is `http::error::ApiErrorBody`, beside the error it describes).

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
    #[schema(max_items = 32, value_type = Option<Vec<Name>>)]
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
    #[schema(value_type = Option<IpAddress>)]
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
    #[schema(value_type = Option<Seq>)]
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
/// fields are rejected (custom data goes in `details`); no string may contain U+0000;
/// numbers that JSON cannot carry exactly are rejected, never rounded. The canonical entry is
/// at most 65,535 bytes.
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
    /// When it happened. At most `max_future_skew_secs` (a `serve` setting, 24 hours by
    /// default) ahead of the server's clock; a later time is refused with 422, rule `future`.
    #[schema(value_type = Option<Timestamp>)]
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
    /// Same key, same receipt: a retry never makes a second entry. When the
    /// `Idempotency-Key` header is sent too, the two must be equal.
    #[schema(min_length = 1, max_length = 256)]
    idempotency_key: Option<String>,
    disclosure: Option<Disclosure>,
    #[schema(value_type = Option<Details>)]
    details: Option<serde_json::Value>,
}

/// Free-form data about an event.
pub struct Details;

impl PartialSchema for Details {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Free-form data: at most 8 levels deep counting this object, 256 keys or items \
                 per object or array, keys of at most 256 characters, strings of at most 4096, \
                 and numbers only where an IEEE 754 double holds their exact decimal value (so \
                 `9007199254740993` or `1e400` are refused: send them as strings).",
            ))
            .max_properties(Some(256))
            .property_names(Some(string().max_length(Some(256))))
            .into()
    }
}

impl ToSchema for Details {}

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

/// `202`: the event is durable outside the log, in a file of the instance that answered; it
/// enters the log, in order, later, and gets its `seq` then (`GET /v1/events/{id}` finds it
/// from that moment). `status` says why: `spooled`, the PostgreSQL store was unreachable and
/// the event waits in the local spool until the database is back; `held`, the tenant is
/// frozen (`on_frozen = "spool"`) and the event waits in the tenant's hold file until it is
/// unfrozen.
#[derive(ToSchema)]
pub struct SpooledReceipt {
    /// `spooled` or `held`.
    #[schema(pattern = "^(spooled|held)$")]
    status: String,
    /// UUIDv7; the id the entry will have.
    #[schema(format = "uuid")]
    id: String,
    /// UTC, microseconds: when this instance accepted it (the entry keeps it).
    #[schema(format = DateTime)]
    received_at: String,
}

/// One event's result in a batch: a receipt, or an error.
#[derive(ToSchema)]
pub struct BatchResult {
    /// Its position in the batch.
    index: u64,
    /// 201 committed, 200 duplicate of an earlier idempotency key, 202 kept in the local
    /// spool while the PostgreSQL store is unreachable, or held while the tenant is frozen
    /// (`held: true`; `on_frozen = "spool"`) — `id` and `received_at`, no `seq` yet —, 4xx
    /// rejected (422 with `rule: idempotency_conflict` for a key that already names a
    /// different event).
    status: u16,
    #[schema(format = "uuid")]
    id: Option<String>,
    seq: Option<u64>,
    event_hash: Option<String>,
    #[schema(format = DateTime)]
    received_at: Option<String>,
    /// `true` for an event held for its frozen tenant (status 202); absent otherwise.
    held: Option<bool>,
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

/// An inclusion proof: the audit path from a leaf to the root of the tree of `tree_size`
/// entries (RFC 9162 §2.1.3).
#[derive(ToSchema)]
pub struct InclusionProof {
    /// The entry's seq.
    leaf_index: u64,
    tree_size: u64,
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

/// The inclusion proof of one event, with the checkpoint it leads to.
#[derive(ToSchema)]
pub struct EventProof {
    /// The event's seq.
    leaf_index: u64,
    tree_size: u64,
    /// Sibling hashes from the leaf up, lowercase hex.
    hashes: Vec<String>,
    /// The signed checkpoint of `tree_size` entries (the note text), or null when the event
    /// is newer than the latest checkpoint: the proof then leads to the current, not yet
    /// signed root, and asking again after the next checkpoint gives the signed one.
    checkpoint: Option<String>,
}

/// An event with its inclusion proof.
#[derive(ToSchema)]
pub struct EventWithProof {
    event: StoredEvent,
    proof: EventProof,
}

/// One violation found by verification.
#[derive(ToSchema)]
pub struct Violation {
    seq: Option<u64>,
    /// `content_mismatch`, `broken_link`, `missing_seq`, `checkpoint_root_mismatch`, …
    kind: String,
    detail: String,
}

/// The checkpoint a report vouches for: the largest signed checkpoint the entries match.
#[derive(ToSchema)]
pub struct CheckpointSummary {
    origin: String,
    size: u64,
    /// Lowercase hex.
    root_hash: String,
    timestamp: Option<String>,
}

/// What verification found.
#[derive(ToSchema)]
pub struct VerifyReport {
    valid: bool,
    rows_checked: u64,
    /// The first violations found, ordered by seq.
    violations: Vec<Violation>,
    /// All violations found, including those beyond the listed ones.
    violation_count: u64,
    first_broken_seq: Option<u64>,
    checkpoint: Option<CheckpointSummary>,
    /// Present only for a log whose start retention pruned: entries below `below` were
    /// archived, compared with the store and then removed; verification starts at `below`.
    pruned: Option<PrunedRange>,
}

/// The start of a log that retention pruned (absent for a log never pruned).
#[derive(ToSchema)]
pub struct PrunedRange {
    /// Entries below this seq were removed; their hashes, and every proof, remain.
    below: u64,
    /// The archive that holds them (a directory or `s3://bucket/prefix`).
    archive: String,
    /// The seq of the `sealtrail.retention.pruned` entry in the `_system` log.
    system_seq: u64,
    /// When they were pruned, RFC 3339 UTC.
    pruned_at: String,
}

// ---------------------------------------------------------------------------------------
// Documentation-only path items for routes whose handlers live in other modules.

/// Ingest one event.
///
/// Acknowledged only once durable. With an `Idempotency-Key` (header, or `idempotency_key`
/// in the body; equal when both are sent) a retry returns the original receipt with 200. A
/// key names one event: a different event under a key already used is refused with 422
/// (`rule: idempotency_conflict`, `original`: the receipt of the event the key names). A
/// frozen tenant's event is refused (503 `tenant_frozen`) or, with `on_frozen = "spool"`,
/// held (202 `held`): a retry of a held event gets the same 202, and the key is checked
/// against held events as against the log.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 256,
            pattern = "^[!-~]+$", description = "1-256 visible ASCII characters"),
        ("X-Tenant-ID" = Option<TenantName>, Header, description = "The tenant, for multi-tenant tokens only"),
    ),
    request_body(content = Event, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed", body = Receipt),
        (status = 200, description = "A retry: the original receipt", body = Receipt),
        (status = 202, description = "Durable, not yet in the log (`id` and `received_at`, no `seq` yet); also the answer to a retry while it waits. `status: spooled`: the PostgreSQL store is unreachable; kept, fsync'd, in the local spool, and drained into the log in order when it is back. `status: held`: the tenant is frozen and its `on_frozen` policy is `spool`; kept, fsync'd, in the tenant's hold file, and drained into the log in the order accepted, before the tenant's newer events, once it is unfrozen", body = SpooledReceipt),
        (status = 400, description = "Malformed JSON, or a malformed X-Tenant-ID", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:write, belongs to another tenant, or names the _system log, which takes no events", body = ApiErrorBody),
        (status = 404, description = "X-Tenant-ID names no tenant", body = ApiErrorBody),
        (status = 408, description = "The body arrived too slowly (`request_timeout`; body_timeout_secs, body_min_rate)", body = ApiErrorBody),
        (status = 413, description = "Body (by its Content-Length, before it is read) or canonical entry too large", body = ApiErrorBody),
        (status = 415, description = "Not application/json", body = ApiErrorBody),
        (status = 422, description = "The event or the Idempotency-Key breaks a rule; `field` and `rule` say which. `idempotency_conflict`: the key already names a different event, whose receipt is `original`; nothing was kept", body = ApiErrorBody),
        (status = 503, description = "Nothing was committed (or spooled, for a tenant with on_store_failure = reject, or with the spool full), or no room for the body in memory yet (`server_busy`, with Retry-After); retry with the same key. `tenant_frozen`: the tenant is frozen (POST /v1/admin/tenants/{tenant}/freeze, `sealtrail freeze`) and its `on_frozen` policy is `refuse`: nothing of the request was kept; the message names the reason, and the same request is taken once it is unfrozen. `hold_full`: the tenant is frozen and its hold file has reached spool_max_bytes; nothing was kept", body = ApiErrorBody),
        (status = 507, description = "The store's disk (or the spool's, or the hold file's) is full (`storage_full`): nothing was kept; retry with the same key once space is freed", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn post_event() {}

/// Ingest a batch.
///
/// A JSON array or NDJSON, up to 10,000 events or 16 MiB. Valid events are committed,
/// invalid ones rejected one by one. An event whose `idempotency_key` already names a
/// different event (in the log, or earlier in the same batch) is refused on its own: status
/// 422, `rule: idempotency_conflict`, with the original's receipt in `error.original`.
#[utoipa::path(
    post, path = "/v1/events/batch", tag = "events",
    params(
        ("X-Tenant-ID" = Option<TenantName>, Header, description = "The tenant, for multi-tenant tokens only"),
    ),
    request_body(
        description = "Events as a JSON array, or one per line as NDJSON",
        content(
            (EventArray = "application/json"),
            (EventLines = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "One result per event, in order", body = Vec<BatchResult>),
        (status = 400, description = "Malformed JSON, or a malformed X-Tenant-ID", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:write, belongs to another tenant, or names the _system log, which takes no events", body = ApiErrorBody),
        (status = 404, description = "X-Tenant-ID names no tenant", body = ApiErrorBody),
        (status = 408, description = "The body arrived too slowly (`request_timeout`; body_timeout_secs, body_min_rate)", body = ApiErrorBody),
        (status = 413, description = "More than 10,000 events or 16 MiB (by its Content-Length, before it is read)", body = ApiErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON", body = ApiErrorBody),
        (status = 422, description = "Not an array, or empty", body = ApiErrorBody),
        (status = 503, description = "Nothing was committed (or spooled), or no room for the body in memory yet (`server_busy`, with Retry-After); retry. `tenant_frozen`: the tenant is frozen, its `on_frozen` policy is `refuse`, and no event of the batch was kept; the message names the reason (with policy `spool` its valid events are held instead: status 202 with `held: true` each). `hold_full`: the tenant is frozen and its hold file has reached spool_max_bytes; no event of the batch was kept", body = ApiErrorBody),
        (status = 507, description = "The store's disk (or the spool's, or the hold file's) is full (`storage_full`): nothing was kept; retry once space is freed", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn post_batch() {}

/// Search events.
///
/// Every parameter at most once; an unknown parameter is refused, and so is a NUL character
/// in any of them (`rule: nul_character`). `from` must not be later
/// than `to`; a `cursor` must come from a listing in the same `order`; `wait_for_seq` must be
/// a seq the log already holds.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(
        ("from" = Option<Timestamp>, Query, description = "Occurred at or after"),
        ("to" = Option<Timestamp>, Query, description = "Occurred before"),
        ("actor" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "actor.id"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("activity" = Option<Activity>, Query),
        ("outcome" = Option<EventOutcome>, Query),
        ("target_type" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("target_id" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("ip" = Option<IpAddress>, Query, description = "context.ip"),
        ("source" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "source.app"),
        ("q" = Option<String>, Query, max_length = 1024, pattern = "^[^\\x00]*[^\\W_][^\\x00]*$",
            description = "Words in details; at least one letter or digit, and no NUL"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events per page, 100 by default"),
        ("cursor" = Option<String>, Query, pattern = "^[^\\x00]*$", description = "next_cursor of the previous page; empty for the first"),
        ("order" = Option<String>, Query, pattern = "^(asc|desc)$", description = "asc (default) or desc"),
        ("wait_for_seq" = Option<Seq>, Query,
            description = "Wait (5 s at most) until the search covers this seq: read your own writes"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A bad parameter; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 429, description = "The tenant already runs max_searches_per_tenant searches and none ended within a second (`too_many_searches`, rule `concurrent_searches`); retry after Retry-After", body = ApiErrorBody),
        (status = 503, description = "The index has not reached wait_for_seq in 5 s (`index_lagging`); the instance already runs max_searches searches (`search_busy`, rule `search_capacity`; retry after Retry-After); or the search ran past query_timeout_ms and was stopped (`query_timeout`: narrow it)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn list_events() {}

/// Export the caller's log: NDJSON, CSV or OCSF, streamed.
///
/// The events with seq below the log's size when the export started (header
/// `Sealtrail-Export-End`) that match the filters — the filters of `GET /v1/events`, checked
/// the same way — in seq order, sent as they are read. NDJSON (`application/x-ndjson`): one
/// line per event, `{"tenant", "seq", "event_hash", "entry", "event"}`, where `entry` is the
/// stored canonical entry as a string (its UTF-8 bytes hash to `event_hash`) and `event` the
/// same entry as an object. CSV (`text/csv`, RFC 4180): a header row, then one row per event
/// with the columns seq, id, received_at, occurred_at, action, activity, outcome,
/// outcome_reason, actor_id, actor_type, ip, targets, source_app, source_instance,
/// source_seq, event_hash. OCSF (`application/x-ndjson`): one OCSF 1.5.0 event per line.
/// Every line carries its seq; a download that broke off (a failed export cuts the
/// connection) is resumed with `after_seq` = the seq of the last complete line.
#[utoipa::path(
    get, path = "/v1/export", tag = "events",
    params(
        ("format" = Option<String>, Query, pattern = "^(ndjson|csv|ocsf)$", description = "ndjson (default), csv or ocsf"),
        ("from" = Option<Timestamp>, Query, description = "Occurred at or after"),
        ("to" = Option<Timestamp>, Query, description = "Occurred before"),
        ("actor" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "actor.id"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("activity" = Option<Activity>, Query),
        ("outcome" = Option<EventOutcome>, Query),
        ("target_type" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("target_id" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("ip" = Option<IpAddress>, Query, description = "context.ip"),
        ("source" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "source.app"),
        ("q" = Option<String>, Query, max_length = 1024, pattern = "^[^\\x00]*[^\\W_][^\\x00]*$",
            description = "Words in details; at least one letter or digit, and no NUL"),
        ("cursor" = Option<String>, Query, pattern = "^[^\\x00]*$", description = "Start after the seq this cursor names: the cursor `sealtrail export` prints, or an ascending next_cursor of GET /v1/events; empty for the start. Not with after_seq"),
        ("after_seq" = Option<Seq>, Query, description = "Start after this seq (the last line received). Not with cursor"),
    ),
    responses(
        (status = 200, description = "The export, streamed; `Sealtrail-Export-End` is the end of its window (exclusive seq)",
            headers(("Sealtrail-Export-End" = u64, description = "The log's size when the export started: the export holds the matching events with seq below it")),
            content(
                (String = "application/x-ndjson"),
                (String = "text/csv"),
            )),
        (status = 400, description = "A bad parameter; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn export_events() {}

/// One event with its inclusion proof to the latest checkpoint (or, for an event newer
/// than that, to the current tree, with `checkpoint: null`).
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, format = "uuid", description = "The event's id (UUIDv7)")),
    responses(
        (status = 200, description = "The event and its proof", body = EventWithProof),
        (status = 400, description = "Not a UUID", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No such event in this log", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn get_event() {}

/// One bucket of a timeline.
#[derive(ToSchema)]
pub struct TimelineBucket {
    /// The bucket's start, UTC.
    start: String,
    count: u64,
}

/// Events per bucket of the caller's log, zeros included (heartbeats are not counted).
#[derive(ToSchema)]
pub struct Timeline {
    tenant: String,
    /// `minute`, `hour` or `day`.
    bucket: String,
    /// `occurred_at` (event time: `occurred_at`, else `received_at`) or `received_at`.
    time: String,
    /// The first bucket's start: the request's `from` rounded down to a bucket.
    from: String,
    /// The last bucket's end: the request's `to` rounded up to a bucket.
    to: String,
    total: u64,
    buckets: Vec<TimelineBucket>,
}

/// A producer: `source.app` and `source.instance` (null when it sends none).
#[derive(ToSchema)]
pub struct GapProducer {
    app: String,
    instance: Option<String>,
}

/// An inclusive range of `source.seq` numbers that never arrived.
#[derive(ToSchema)]
pub struct SeqRange {
    from: u64,
    to: u64,
}

/// One gap finding.
#[derive(ToSchema)]
pub struct GapFinding {
    /// `time_gap`, `rate_drop`, `producer_seq_gap` or `silent_producer`.
    kind: String,
    start: String,
    end: String,
    duration_seconds: u64,
    producer: Option<GapProducer>,
    missing: Option<Vec<SeqRange>>,
    /// By duration: `low` below 5 minutes, `medium` 5 to 30, `high` above 30.
    impact: String,
    detail: String,
    /// From 0 to 1: how sure the rule is that this is a real gap.
    confidence: f64,
    /// Still going on at the end of the window.
    ongoing: bool,
    /// What the rule saw (history, baselines, sealtrail's own start/stop records, …).
    #[schema(value_type = Object)]
    evidence: serde_json::Value,
}

/// The gap findings of a window.
#[derive(ToSchema)]
pub struct GapReport {
    tenant: String,
    from: String,
    to: String,
    gaps: Vec<GapFinding>,
}

/// Events per minute, hour or day of the caller's log, from the gap detector's counters.
///
/// `from` must be before `to`, and the range may hold at most 44,640 buckets (a month by the
/// minute; `rule: max_buckets`). Every parameter at most once; an unknown one is refused.
#[utoipa::path(
    get, path = "/v1/timeline", tag = "gaps",
    params(
        ("bucket" = String, Query, pattern = "^(minute|hour|day)$", description = "minute, hour or day"),
        ("from" = Timestamp, Query, description = "From (rounded down to a bucket)"),
        ("to" = Timestamp, Query, description = "To, exclusive (rounded up to a bucket)"),
        ("time" = Option<String>, Query, pattern = "^(occurred_at|received_at)$", description = "occurred_at (default: event time) or received_at"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"),
        ("source" = Option<String>, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "source.app"),
    ),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        (status = 400, description = "A bad parameter, `from` not before `to`, or too many buckets; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn timeline() {}

/// Gap findings of the caller's log: time gaps, rate drops, producer sequence gaps and
/// silent producers.
///
/// The window defaults to the 24 hours before `to`, which defaults to now; `from` must be
/// before `to`, at most 31 days earlier.
#[utoipa::path(
    get, path = "/v1/gaps", tag = "gaps",
    params(
        ("from" = Option<Timestamp>, Query, description = "Window start"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive"),
    ),
    responses(
        (status = 200, description = "The findings, in order of start", body = GapReport),
        (status = 400, description = "A bad parameter, `from` not before `to`, or a window over 31 days; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn gaps() {}

/// An action's average count in a gap's clock window on earlier days.
#[derive(ToSchema)]
pub struct ExpectedAction {
    action: String,
    events: f64,
}

/// The activity expected in a gap: the same clock window on up to 7 earlier days.
#[derive(ToSchema)]
pub struct ExpectedActivity {
    /// Earlier days averaged over (0: none to compare with).
    history_days: u64,
    /// For a producer's finding, its `source.app` (all its instances): the counts are of it.
    app: Option<String>,
    events: f64,
    /// Largest first.
    actions: Vec<ExpectedAction>,
}

/// The expected events whose action looks like a record access.
#[derive(ToSchema)]
pub struct PhiAccessEstimate {
    /// Null without an earlier day to estimate from.
    events: Option<f64>,
    /// `low` below 10, `medium` 10 to 100, `high` above 100; `unknown` without history.
    class: String,
}

/// One line of what sealtrail knows about a cause.
#[derive(ToSchema)]
pub struct CauseState {
    state: String,
    detail: String,
}

/// What sealtrail's own start/stop records say about a gap.
#[derive(ToSchema)]
pub struct ServerCauseState {
    /// `planned_downtime`, `crash`, `stopped`, `not_restarted` or `unknown` (no start or stop record before the gap ended).
    state: String,
    detail: String,
    /// The host name the deciding record names; null for `not_restarted`, `unknown` or a record that
    /// names none.
    host: Option<String>,
}

/// What sealtrail knows about a gap's cause.
#[derive(ToSchema)]
pub struct GapCause {
    /// From sealtrail's own start/stop records.
    server: ServerCauseState,
    /// `spooled` when a spool period (a `sealtrail.spool.drained` record in `_system`)
    /// overlaps the gap: a store outage, with how many events were spooled and committed
    /// later; else `none_recorded`.
    store_outage: CauseState,
    /// `silent` or `sequence_gap`, for a producer's finding.
    producer: Option<CauseState>,
}

/// What came back, and what is provably lost.
#[derive(ToSchema)]
pub struct GapRecovery {
    /// Events that occurred in the window and arrived after it: at least this many.
    late_arrivals_at_least: u64,
    /// `source.seq` numbers still missing (producer sequence gaps only).
    lost: Option<u64>,
    lost_ranges: Option<Vec<SeqRange>>,
}

/// The report on one gap finding.
#[derive(ToSchema)]
pub struct GapReportSection {
    kind: String,
    start: String,
    end: String,
    duration_seconds: u64,
    impact: String,
    ongoing: bool,
    producer: Option<GapProducer>,
    detail: String,
    expected: ExpectedActivity,
    phi_access_estimate: PhiAccessEstimate,
    cause: GapCause,
    recovery: GapRecovery,
}

/// Totals of a gap report.
#[derive(ToSchema)]
pub struct GapReportSummary {
    gaps: u64,
    high: u64,
    medium: u64,
    low: u64,
    expected_events: f64,
    phi_access_estimate: f64,
    provably_lost: u64,
}

/// Other copies of the events that may fill a gap.
#[derive(ToSchema)]
pub struct CompensatingRecords {
    /// Whether the servers that ran during the gaps mirrored events to stdout as `AUDIT:`
    /// lines (null: unknown).
    audit_stdout: Option<bool>,
    /// `start_records` (sealtrail's own start records say), `this_server` (they do not; this
    /// server's setting is given) or `unknown`.
    known_from: String,
    detail: String,
}

/// The gap report of a window, in the shape of the HIPAA runbook's incident write-up.
#[derive(ToSchema)]
pub struct GapIncidentReport {
    tenant: String,
    from: String,
    to: String,
    generated_at: String,
    summary: GapReportSummary,
    gaps: Vec<GapReportSection>,
    previous_gaps: PreviousGaps,
    compensating_records: CompensatingRecords,
    what_to_do: Vec<String>,
}

/// The gap findings of the 12 months before the window (the HIPAA template's "previous gaps"):
/// judged window by window, a gap running across two windows counted once.
#[derive(ToSchema)]
pub struct PreviousGaps {
    from: String,
    to: String,
    total: u64,
    /// Every kind (`time_gap`, `rate_drop`, `producer_seq_gap`, `silent_producer`) with its count.
    by_kind: std::collections::BTreeMap<String, u64>,
    /// Every impact class (`low`, `medium`, `high`) with its count.
    by_impact: std::collections::BTreeMap<String, u64>,
    /// Time gaps judged with no earlier day to learn from (the tenant's first day).
    without_history: u64,
}

/// The gap report of the caller's log for a window: each finding with the activity expected
/// in it, a PHI-access estimate, what sealtrail knows of its cause, recovery and loss.
///
/// `from` must be before `to`, at most 31 days earlier. `format=md` answers with the same
/// report as Markdown.
#[utoipa::path(
    get, path = "/v1/gaps/report", tag = "gaps",
    params(
        ("from" = Timestamp, Query, description = "Window start"),
        ("to" = Timestamp, Query, description = "Window end, exclusive"),
        ("format" = Option<String>, Query, pattern = "^(json|md)$", description = "json (default) or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (GapIncidentReport = "application/json"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad or missing parameter, `from` not before `to`, or a window over 31 days; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks events:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn gap_report() {}

/// The latest signed checkpoint of the caller's log (a C2SP signed note).
#[utoipa::path(
    get, path = "/v1/log/checkpoint", tag = "log",
    responses(
        (status = 200, description = "The checkpoint note", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No checkpoint yet", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_checkpoint() {}

/// One daily seal as listed: what its note says (null where the stored note does not read as
/// a seal; `verify` reports that) and the signed note itself.
#[derive(ToSchema)]
pub struct ListedSeal {
    /// The UTC day, `YYYY-MM-DD`.
    day: String,
    /// 0 for the day's first seal; a re-issue after a repair is the next number.
    issue: u32,
    /// The size of the last checkpoint signed before the day ended.
    size: Option<u64>,
    /// Its root hash, base64.
    root: Option<String>,
    /// The SHA-256 (base64) of the previous day's seal; null for the log's first day.
    previous: Option<String>,
    /// The SHA-256 (base64) of the seal of the same day this one replaces.
    supersedes: Option<String>,
    created_at: String,
    /// The signed note (`sealtrail-seal/v1`), as `GET /v1/log/seals/{date}` serves it.
    note: String,
}

/// The seals of a window of days.
#[derive(ToSchema)]
pub struct SealList {
    tenant: String,
    seals: Vec<ListedSeal>,
}

/// The daily seals of the caller's log: one per UTC day from the day the log was created, each
/// a signed note naming the day's last checkpoint and linked to the previous day's seal.
///
/// `from` and `to` (both inclusive, default all) must be days written `YYYY-MM-DD`, `from` not
/// after `to`.
#[utoipa::path(
    get, path = "/v1/log/seals", tag = "log",
    params(
        ("from" = Option<String>, Query, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description = "First day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description = "Last day, YYYY-MM-DD"),
    ),
    responses(
        (status = 200, description = "The seals, by day and issue", body = SealList),
        (status = 400, description = "A day that is not YYYY-MM-DD, or `from` after `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_seals() {}

/// The newest seal of one day of the caller's log (its latest issue), the signed note.
#[utoipa::path(
    get, path = "/v1/log/seals/{date}", tag = "log",
    params(("date" = String, Path, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description = "The UTC day, YYYY-MM-DD")),
    responses(
        (status = 200, description = "The seal note", body = String, content_type = "text/plain"),
        (status = 400, description = "Not a day written YYYY-MM-DD (`field: date`)", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "That day is not sealed (yet)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_seal() {}

/// The verifier key of the caller's log, in the signed-note format.
#[utoipa::path(
    get, path = "/v1/log/key", tag = "log",
    responses(
        (status = 200, description = "`<name>+<hash>+<base64>`", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn log_key() {}

/// An inclusion proof of entry `seq` in the tree of `size` entries.
///
/// `seq` must be below `size`, and `size` at most the log's committed size (a 400 with
/// `rule: range` otherwise). Without `size`, the latest checkpoint's size is used.
#[utoipa::path(
    get, path = "/v1/log/proof/inclusion", tag = "log",
    params(
        ("seq" = Seq, Query, description = "The entry"),
        ("size" = Option<TreeSize>, Query, description = "The tree size, greater than seq; the latest checkpoint's by default"),
    ),
    responses(
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "A parameter missing, malformed or out of range; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No size given and no checkpoint yet", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn inclusion_proof() {}

/// A consistency proof from tree size `from` to `to`.
///
/// `from` must not exceed `to`, and `to` must be at most the log's committed size (a 400 with
/// `rule: range` otherwise). Without `to`, the latest checkpoint's size is used.
#[utoipa::path(
    get, path = "/v1/log/proof/consistency", tag = "log",
    params(
        ("from" = TreeSize, Query, description = "The smaller size, at least 1"),
        ("to" = Option<TreeSize>, Query, description = "The larger size; the latest checkpoint's by default"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "A parameter missing, malformed or out of range; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No to given and no checkpoint yet", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn consistency_proof() {}

/// The latest checkpoint of a tenant's log (C2SP tlog-tiles). Public when the server runs
/// with `public_log`.
#[utoipa::path(
    get, path = "/logs/{tenant}/checkpoint", tag = "tiles",
    params(("tenant" = TenantName, Path)),
    responses(
        (status = 200, description = "The checkpoint note", body = String, content_type = "text/plain"),
        (status = 400, description = "Not a tenant name", body = ApiErrorBody),
        (status = 401, description = "A token is needed unless the log is public", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No such log, or no checkpoint yet", body = ApiErrorBody),
    ),
    security((), ("bearer" = [])),
)]
fn tlog_checkpoint() {}

/// A hash tile (C2SP tlog-tiles).
#[utoipa::path(
    get, path = "/logs/{tenant}/tile/{tile_path}", tag = "tiles",
    params(
        ("tenant" = TenantName, Path),
        ("tile_path" = String, Path,
            pattern = "^([0-9]|[1-5][0-9]|6[0-3])/(x(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(/x[0-9]{3}){0,4}/)?[0-9]{3}(\\.p/([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$",
            example = "0/x001/234.p/7",
            description = "`<L>/<N>[.p/<W>]`: level 0-63, N in `x001/x234/067` groups (spans several segments), partial width 1-255"),
    ),
    responses(
        (status = 200, description = "The tile: concatenated 32-byte hashes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a tenant name, or not a tile path in its canonical form", body = ApiErrorBody),
        (status = 401, description = "A token is needed unless the log is public", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No such log, or no such tile at the latest checkpoint", body = ApiErrorBody),
    ),
    security((), ("bearer" = [])),
)]
fn tlog_tile() {}

/// An entry bundle (C2SP tlog-tiles): each entry behind a big-endian u16 length.
#[utoipa::path(
    get, path = "/logs/{tenant}/tile/entries/{bundle_path}", tag = "tiles",
    params(
        ("tenant" = TenantName, Path),
        ("bundle_path" = String, Path,
            pattern = "^(x(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(/x[0-9]{3}){0,4}/)?[0-9]{3}(\\.p/([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$",
            example = "x001/234",
            description = "`<N>[.p/<W>]`, N in `x001/x234/067` groups (spans several segments), partial width 1-255"),
    ),
    responses(
        (status = 200, description = "The entry bundle", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a tenant name, or not a bundle path in its canonical form", body = ApiErrorBody),
        (status = 401, description = "A token of the log's tenant is needed", body = ApiErrorBody),
        (status = 403, description = "The token lacks log:read, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "No such log, or no such bundle at the latest checkpoint", body = ApiErrorBody),
        (status = 410, description = "`pruned`: retention removed these entries after archiving them; the message names the archive that holds the bundle (the hash tiles, and every proof, remain)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn tlog_entries() {}

/// Verifies the caller's log, or the entries `from_seq` to `to_seq` (both inclusive).
///
/// `from_seq` must not exceed `to_seq` nor the log's size (a 400 with `rule: range`
/// otherwise).
#[utoipa::path(
    get, path = "/v1/verify", tag = "verify",
    params(
        ("from_seq" = Option<Seq>, Query, description = "The first entry to verify; 0 by default"),
        ("to_seq" = Option<Seq>, Query, description = "The last entry to verify; the last of the log by default"),
    ),
    responses(
        (status = 200, description = "The report; `valid` says whether the log is intact", body = VerifyReport),
        (status = 400, description = "A parameter malformed or out of range; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks verify, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn verify() {}

/// The caller's token: the tenant the request acts for, the token's id and its scopes.
///
/// Any valid token may ask; no scope is needed. The console uses it to show only what the
/// token allows.
#[utoipa::path(
    get, path = "/v1/whoami", tag = "token", operation_id = "whoami",
    responses(
        (status = 200, description = "The token", body = whoami::WhoAmI),
        (status = 400, description = "A multi-tenant token without X-Tenant-ID (which names the tenant, as on every route), or a malformed X-Tenant-ID", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "X-Tenant-ID names another tenant than the token's, or the token names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "X-Tenant-ID names no tenant", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
fn whoami_doc() {}
