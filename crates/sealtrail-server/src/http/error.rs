//! [`ApiError`], the error every route answers with, and every conversion into it: the one
//! place where errors become status codes.
//!
//! Services return their own error types (they know nothing of HTTP); each gets one `From`
//! here. The rule they follow: a fault of the request is a 4xx naming the field and the rule it
//! broke, a fault of the server or the store is a 5xx — never a 400, since a client told its
//! request is bad would not retry what a retry would fix.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sealtrail_core::event::EventError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::index::IndexError;
use crate::ingest::{IngestError, KeyConflict, Refused};
use crate::ledger::{LedgerError, Original};
use crate::query::QueryError;
use crate::query::admission::RETRY_AFTER_SECS;
use crate::readers::{ReadError, ReadFailure};
use crate::reports::ReportError;
use crate::retention::PlanError;
use crate::verify::VerificationError;
use sealtrail_store::StoreError;

/// An error as the API reports it: a status and `{"error": code, "message", "field"?, "rule"?}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (a search refused
    /// because too many run).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// For `idempotency_conflict`: the receipt of the event the key already names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<Box<Original>>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
            field: None,
            rule: None,
            retry_after: None,
            original: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error, naming the part of the request at fault (a JSON path, a parameter or a
    /// header) and the rule it broke, so that a client can act on it without reading prose.
    pub fn at(mut self, field: &str, rule: &'static str) -> ApiError {
        self.field = Some(field.to_string());
        self.rule = Some(rule);
        self
    }

    /// 404 for a path no route serves. Without it axum answers with an empty body, and every
    /// error of the API is to be the same JSON shape, whatever refused the request.
    pub fn unknown_route(path: &str) -> ApiError {
        ApiError::not_found(format!(
            "no route serves {}; GET /openapi.json lists the API's routes",
            shown(path)
        ))
        .at("path", "unknown_route")
    }

    /// 405 for a method the path's route does not serve (the `Allow` header lists those it
    /// does).
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not served on {}; the Allow header lists the methods that are",
                shown(method),
                shown(path)
            ),
        )
        .at("method", "method_not_allowed")
    }

    /// 414 for a request target longer than `max` bytes.
    pub fn uri_too_long(max: usize) -> ApiError {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request's path and query are longer than {max} bytes; send less"),
        )
        .at("path", "max_length")
    }

    /// 431 for request headers beyond the limits, naming the header that broke them when one
    /// alone did.
    pub fn headers_too_large(field: &str, message: String) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            message,
        )
        .at(field, "max_size")
    }

    /// 413 for a body larger than the route takes (`limit` bytes), whether its
    /// `Content-Length` said so or it grew past the limit while read.
    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than this route takes ({}); send a smaller one",
                byte_size(limit)
            ),
        )
        .at("", "max_size")
    }

    /// 408 for a body that arrived more slowly than the body timeout and rate allow.
    pub fn body_too_slow(error: &super::body::BodyTooSlow) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("{error}; send it faster, or in smaller requests"),
        )
        .at("", "timeout")
    }

    /// 503 when the memory set aside for request bodies (`total` bytes) stayed full for as
    /// long as a request may wait: the server's state, not the request's fault, so it names
    /// no field; a retry shortly after is likely to succeed.
    pub fn server_busy(total: usize) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            format!(
                "the bodies of other requests fill the {} set aside for them (max_body_memory_bytes); retry shortly",
                byte_size(total)
            ),
        )
    }

    /// A field of the request that breaks a rule.
    pub fn invalid(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message).at(field, rule)
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> ApiError {
        let code = error.rule.code();
        let status = match code {
            "syntax" => StatusCode::BAD_REQUEST,
            "max_size" => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let kind = if status == StatusCode::BAD_REQUEST {
            "malformed_json"
        } else {
            "invalid_event"
        };
        ApiError::new(status, kind, error.message.clone()).at(&error.field, code)
    }
}

impl ApiError {
    /// 507: the store's disk is full, so nothing was committed. Distinct from a 503 because
    /// what cures it is freeing space, not waiting for the store to come back.
    fn storage_full() -> ApiError {
        ApiError {
            rule: Some("storage_full"),
            ..ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "nothing was committed: the store's disk is full; free space there and retry with the same Idempotency-Key (no restart needed)",
            )
        }
    }
}

impl ApiError {
    /// 503: the tenant is frozen, so nothing of the request was kept. A 503 rather than a 4xx
    /// because the request itself is fine: the same request succeeds once an administrator
    /// lifts the freeze (the message says how). No `Retry-After`: a freeze lasts as long as
    /// the incident behind it.
    pub fn tenant_frozen(frozen: &crate::freeze::TenantFrozen) -> ApiError {
        ApiError {
            rule: Some(crate::freeze::FROZEN_ERROR),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::freeze::FROZEN_ERROR,
                frozen.to_string(),
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "store error");
        if let StoreError::Full(_) = error {
            return ApiError::storage_full();
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the store cannot serve this request: {error}"),
        )
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            // What the caller must fix (an unknown tenant, a scope that does not exist) is a
            // 400; a fault of the server (a writer that cannot start, a key that cannot be
            // derived) is a 500, never a 400.
            LedgerError::Invalid(refusal) => ApiError::bad_request(refusal.to_string()),
            LedgerError::Internal(fault) => {
                tracing::error!(error = %fault, "ledger fault");
                ApiError::internal(format!("the server failed: {fault}"))
            }
            LedgerError::Spool(crate::spool::SpoolError::DiskFull { .. }) => {
                tracing::error!(%error, "cannot spool");
                ApiError {
                    rule: Some("storage_full"),
                    ..ApiError::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "storage_full",
                        format!(
                            "nothing was kept: the store is unreachable and {error}; free space, then retry with the same Idempotency-Key"
                        ),
                    )
                }
            }
            LedgerError::Spool(spool_error) => {
                tracing::error!(error = %spool_error, "cannot spool");
                let remedy = match spool_error {
                    crate::spool::SpoolError::Full { .. } => {
                        "restore the database (the spool then drains) or raise spool_max_bytes, and "
                    }
                    _ => "",
                };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!(
                        "nothing was kept: the store is unreachable and {spool_error}; {remedy}retry with the same Idempotency-Key"
                    ),
                )
            }
            // A frozen tenant's events that could not be held: nothing was acknowledged.
            LedgerError::Hold { tenant, error } => {
                tracing::error!(%tenant, %error, "cannot hold a frozen tenant's events");
                match error {
                    crate::spool::SpoolError::DiskFull { .. } => ApiError {
                        rule: Some("storage_full"),
                        ..ApiError::new(
                            StatusCode::INSUFFICIENT_STORAGE,
                            "storage_full",
                            format!(
                                "nothing was kept: tenant {tenant} is frozen and its events cannot be held: {error}; free space, then retry with the same Idempotency-Key"
                            ),
                        )
                    },
                    crate::spool::SpoolError::Full { .. } => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "hold_full",
                        format!(
                            "nothing was kept: tenant {tenant} is frozen and {error}; retry with the same Idempotency-Key once it is unfrozen (its held events then enter the log) or spool_max_bytes is raised"
                        ),
                    ),
                    other => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not_durable",
                        format!(
                            "nothing was kept: tenant {tenant} is frozen and its events cannot be held: {other}; retry with the same Idempotency-Key"
                        ),
                    ),
                }
            }
            LedgerError::StorageFull(_) | LedgerError::Store(StoreError::Full(_)) => {
                tracing::error!(%error, "ledger error");
                ApiError::storage_full()
            }
            other => {
                tracing::error!(error = %other, "ledger error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_durable",
                    format!("nothing was committed: {other}; retry with the same Idempotency-Key"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let summary = super::access::ErrorSummary {
            error: self.error,
            rule: self.rule,
        };
        let mut response = (status, Json(self)).into_response();
        response.extensions_mut().insert(summary);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl ReadFailure for ApiError {
    fn pool_failure(message: String) -> Self {
        ApiError::internal(message)
    }

    /// A refusal of the request leaves the connection as good as it was.
    fn may_break_connection(&self) -> bool {
        self.status.is_server_error()
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> ApiError {
        match error {
            ReadError::Store(error) => error.into(),
            ReadError::Pool(message) => ApiError::internal(message),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(error: PlanError) -> ApiError {
        match error {
            PlanError::Store(error) => error.into(),
            PlanError::UnknownTenant(tenant) => ApiError::not_found(format!(
                "there is no tenant {tenant:?}; see GET /v1/admin/tenants"
            ))
            .at("tenant", "unknown_tenant"),
            // A log whose entry cannot be read: the server's data, not the request, is at
            // fault.
            PlanError::Unreadable { .. } => {
                tracing::error!(%error, "retention cannot read the log");
                ApiError::internal(error.to_string())
            }
            PlanError::Archive(message) => {
                tracing::warn!(%message, "retention cannot read the archive");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "archive_unavailable",
                    format!("the archive cannot be read: {message}"),
                )
            }
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> ApiError {
        tracing::error!(%error, "query index error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_unavailable",
            format!("the query index cannot serve this request: {error}"),
        )
    }
}

/// A size for a message: whole MiB or KiB when it is one, else bytes.
fn byte_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    match bytes {
        0 => "0 bytes".to_string(),
        b if b.is_multiple_of(MIB) => format!("{} MiB", b / MIB),
        b if b.is_multiple_of(KIB) => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// At most the first 256 characters of something the client sent, for a message: an error
/// must not echo a 40 KiB path back.
fn shown(text: &str) -> String {
    let mut shown: String = text.chars().take(256).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// A 400 naming the query parameter and the rule, as the routes that parse parameters word it.
pub fn bad_param(field: &str, rule: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        field: Some(field.to_string()),
        rule: Some(rule),
        ..ApiError::bad_request(message)
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> ApiError {
        match error {
            IngestError::ReservedTenant => {
                ApiError::new(StatusCode::FORBIDDEN, "reserved_tenant", error.to_string())
                    .at("X-Tenant-ID", "reserved")
            }
            IngestError::UnsupportedMediaType { .. } => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                error.to_string(),
            )
            .at("Content-Type", "media_type"),
            IngestError::Event(error) => error.into(),
            IngestError::IdempotencyKey { rule, message } => {
                ApiError::invalid("Idempotency-Key", rule, message)
            }
            IngestError::KeyConflict(conflict) => (*conflict).into(),
            IngestError::Frozen(frozen) => ApiError::tenant_frozen(&frozen),
            IngestError::TooManyEvents { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                error.to_string(),
            )
            .at("", "max_items"),
            IngestError::NotKept { error, .. } => error.into(),
            IngestError::NoOutcome => ApiError::internal(error.to_string()),
        }
    }
}

/// 422, as the IETF Idempotency-Key draft answers a key reused with a different payload: the
/// request is well formed, but it cannot be what its key says it is (a retry).
impl From<KeyConflict> for ApiError {
    fn from(conflict: KeyConflict) -> ApiError {
        ApiError {
            original: Some(Box::new(conflict.original.clone())),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                conflict.to_string(),
            )
            .at(&conflict.field, "idempotency_conflict")
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        match refused {
            Refused::Invalid(error) => error.into(),
            Refused::KeyConflict(conflict) => conflict.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> ApiError {
        match error {
            QueryError::Store(error) => error.into(),
            QueryError::Index(error) => error.into(),
            // Worded as the query routes word every parameter: the message starts with it.
            QueryError::NotYetInLog { .. } => {
                bad_param("wait_for_seq", "range", format!("wait_for_seq: {error}"))
            }
            QueryError::IndexLagging { .. } => ApiError {
                field: Some("wait_for_seq".to_string()),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "index_lagging",
                    error.to_string(),
                )
            },
            QueryError::NoCheckpoint { .. }
            | QueryError::NoSignedCheckpoint
            | QueryError::NotAtCheckpoint { .. } => ApiError::not_found(error.to_string()),
            QueryError::NoSuchLog(_) => {
                ApiError::not_found(error.to_string()).at("tenant", "unknown_tenant")
            }
            QueryError::OutOfRange { field, message } => bad_param(field, "range", message),
            // The server gave up on an expensive search: a 503 (nothing is wrong with the
            // request as such), naming the query as what to change.
            QueryError::TimedOut { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "query_timeout",
                error.to_string(),
            )
            .at("query", "query_timeout"),
            // The caller's tenant sends more searches at once than its share: it can slow
            // down, so a 429 naming the credentials whose tenant it is.
            QueryError::TenantShareFull { .. } => ApiError {
                retry_after: Some(RETRY_AFTER_SECS),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_searches",
                    error.to_string(),
                )
                .at("Authorization", "concurrent_searches")
            },
            // The instance is full of other tenants' searches: not the caller's doing.
            QueryError::SearchCapacityFull { .. } => ApiError {
                retry_after: Some(RETRY_AFTER_SECS),
                rule: Some("search_capacity"),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "search_busy",
                    error.to_string(),
                )
            },
            QueryError::Pruned { .. } => {
                ApiError::new(StatusCode::GONE, "pruned", error.to_string())
            }
            QueryError::Proof(_) => {
                // The sizes were checked against the committed tree, so only the store can
                // have failed.
                tracing::error!(%error, "cannot build a proof from the stored hashes");
                ApiError::internal(error.to_string())
            }
            QueryError::EventProof { .. }
            | QueryError::CorruptEntry(_)
            | QueryError::Key(_)
            | QueryError::TileRead { .. }
            | QueryError::MissingEntries { .. }
            | QueryError::BundleEncode(_)
            | QueryError::Pool(_) => {
                tracing::error!(%error, "cannot answer a query");
                ApiError::internal(error.to_string())
            }
        }
    }
}

impl From<VerificationError> for ApiError {
    fn from(error: VerificationError) -> ApiError {
        match error {
            VerificationError::Store(error) => error.into(),
            VerificationError::UnknownTenant(tenant) => {
                ApiError::not_found(format!("no log for tenant {tenant:?}"))
            }
            VerificationError::EmptyRange { .. } | VerificationError::BeyondLog { .. } => {
                bad_param("from_seq", "range", error.to_string())
            }
            other => {
                tracing::error!(error = %other, "cannot verify a log");
                ApiError::internal(format!("cannot verify the log: {other}"))
            }
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> ApiError {
        match error {
            ReportError::Invalid {
                field,
                rule,
                message,
            } => bad_param(field, rule, message),
            ReportError::UnknownTenant(_) | ReportError::NoCheckpoint(_) => {
                ApiError::not_found(error.to_string()).at("tenant", "no_checkpoint")
            }
            // The log is damaged where the report would read: not the request's fault and
            // not a passing outage, so neither a 400 nor a 503; the message names the first
            // broken seq.
            ReportError::Unverified { .. } => {
                tracing::error!(%error, "a report refused: its log prefix does not verify");
                ApiError::new(StatusCode::CONFLICT, "log_unverified", error.to_string())
                    .at("checkpoint", "verified_prefix")
            }
            ReportError::Verification(error) => error.into(),
            ReportError::Store(error) => error.into(),
            ReportError::Gaps(error) => error.into(),
            ReportError::Checkpoint(_)
            | ReportError::CorruptEntry { .. }
            | ReportError::Pool(_) => {
                tracing::error!(%error, "cannot compute a report");
                ApiError::internal(error.to_string())
            }
        }
    }
}

/// The OpenAPI schema of [`ApiError`]'s body, as `GET /openapi.json` documents it (the
/// response itself is serialised from [`ApiError`]). It lives here, beside the error, so that
/// every route's path item can name it without importing the document that lists the routes.
/// An error: the status code says the class, `error` the stable code, `message` what to do,
/// and for a refused request `field` and `rule` say which part of it broke which rule.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    /// A stable snake_case code: `invalid_event`, `idempotency_conflict`, `malformed_json`, `bad_request`,
    /// `unauthorized`, `missing_scope`, `wrong_tenant`, `not_found`, `not_durable`,
    /// `store_unavailable`, `storage_full`, `tenant_frozen`, `method_not_allowed`, `uri_too_long`,
    /// `headers_too_large`, `too_many_searches`, `search_busy`, `query_timeout`,
    /// `payload_too_large`, `request_timeout`, `server_busy`, …
    #[schema(example = "invalid_event")]
    error: String,
    /// What is wrong and what to do.
    message: String,
    /// The part of the request at fault: a JSON path into the body (`actor.id`,
    /// `[3].targets[0].type`, `""` for the whole body), a parameter (`seq`, `tile_path`) or
    /// a header (`Authorization`, `X-Tenant-ID`, `Idempotency-Key`, `Content-Type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The rule it broke: `required`, `type`, `enum`, `max_length`, `unknown_field`,
    /// `timestamp`, `future`, `range`, `format`, `scope`, `idempotency_conflict`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// With `idempotency_conflict` only: the receipt of the event the idempotency key already
    /// names — `id`, `seq`, `event_hash`, `received_at` when it is in the log; `id` and
    /// `received_at` when it waits in the spool.
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<OriginalReceipt>,
}

/// The receipt of the event an idempotency key already names, in an `idempotency_conflict`
/// error. `seq` and `event_hash` are absent while the event waits in the spool.
#[derive(Serialize, ToSchema)]
pub struct OriginalReceipt {
    #[schema(format = "uuid")]
    id: String,
    seq: Option<u64>,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    event_hash: Option<String>,
    #[schema(format = DateTime)]
    received_at: String,
}
