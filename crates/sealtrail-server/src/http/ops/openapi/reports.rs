//! The reports' part of the OpenAPI document: the path item of each `GET /v1/reports/…` route
//! and the schema of a report's body. Like the rest of [`super`], documentation only; the
//! handlers are in `crate::http::reports`.

use super::{ApiErrorBody, Timestamp};
use utoipa::ToSchema;

/// The signed checkpoint a report was computed against: the report covers the first `size`
/// entries of the log, verified against it before the report was computed.
#[derive(ToSchema)]
pub struct ReportCheckpoint {
    origin: String,
    size: u64,
    /// The root hash, lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    root: String,
    /// The signed note itself (C2SP tlog-checkpoint), to check with the log's key.
    note: String,
}

/// What the report's verification established.
#[derive(ToSchema)]
pub struct ReportCoverage {
    /// Entries the verifier checked.
    entries_verified: u64,
    /// The first seq read: 0, or where retention pruned the log.
    first_seq: u64,
    /// Entries below this seq were pruned after archiving and are not covered.
    pruned_below: Option<u64>,
    /// The archive that holds the pruned entries.
    pruned_archive: Option<String>,
    /// Violations acknowledged by repair markers (0 for an undamaged log).
    acknowledged_violations: u64,
}

/// A report. Beside the fields below, each report adds its own: `events` and
/// `events_not_in_rows` (daily-activity); `excluded` (`{"total", "by_basis"}`) and
/// `not_disclosed` (disclosures); `gaps` (the gap findings, as `GET /v1/gaps` lists them),
/// `gaps_counted_through`, `gaps_cover_checkpoint` and `events_of_other_producers`
/// (completeness).
///
/// Rows, by report: daily-activity `{"day", "action", "activity", "outcome", "actor_type",
/// "count"}`; security-incidents `{"seq", "alert_id", "rule", "severity", "key",
/// "window_start", "window_end", "count", "raised_at", "events": [{"seq", "at", "action",
/// "actor_id", "actor_type", "ip", "outcome"}], "unavailable_seqs", "events_truncated"}`;
/// record-access `{"seq", "at", "actor_id", "actor_type", "actor_name", "ip", "user_agent",
/// "action", "activity", "outcome", "outcome_reason"}`; user-activity `{"seq", "at",
/// "action", "activity", "outcome", "outcome_reason", "targets", "ip", "user_agent",
/// "session_id"}`; disclosures `{"seq", "date", "recipient", "recipient_address",
/// "description", "purpose", "basis", "actor_id", "action"}`; completeness `{"hour", "app",
/// "instance", "events", "heartbeats", "gap_findings"}`.
#[derive(ToSchema)]
pub struct ReportBody {
    /// The report's name.
    report: String,
    tenant: String,
    /// The window's start (event time, inclusive).
    from: String,
    /// The window's end (exclusive).
    to: String,
    generated_at: String,
    checkpoint: ReportCheckpoint,
    coverage: ReportCoverage,
    /// The report's own parameters (`target_type`, `target_id`, `subject`, `actor`).
    #[schema(value_type = Object)]
    parameters: serde_json::Value,
    /// Rows were left out to stay within 10,000.
    truncated: bool,
    /// How many rows the report has in all.
    total_rows: u64,
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Value>,
}

/// Events per UTC day by action, activity, outcome and actor type (heartbeats not counted).
///
/// Every report is computed against the log's latest signed checkpoint (`checkpoint`) after
/// the entries it signs were verified; a log that does not verify is a 409 `log_unverified`
/// naming the first broken seq. `from` must be before `to`; by default the 24 hours before
/// `to`, which defaults to now. Windows are by event time.
#[utoipa::path(
    get, path = "/v1/reports/daily-activity", tag = "reports",
    params(
        ("from" = Option<Timestamp>, Query, description = "Window start (default: 24 hours before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad parameter, or `from` not before `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_daily_activity() {}

/// The alerts raised in the window (`sealtrail.alert.raised` entries of the log) and, for
/// each, the events behind it. Verified as every report is (see daily-activity).
#[utoipa::path(
    get, path = "/v1/reports/security-incidents", tag = "reports",
    params(
        ("from" = Option<Timestamp>, Query, description = "Window start (default: 24 hours before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad parameter, or `from` not before `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_security_incidents() {}

/// Every event whose targets include the record (`target_type`, `target_id`): who, when,
/// from where, what, with what outcome. Verified as every report is (see daily-activity).
#[utoipa::path(
    get, path = "/v1/reports/record-access", tag = "reports",
    params(
        ("target_type" = String, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "The record's type (`targets[].type`)"),
        ("target_id" = String, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "The record's id (`targets[].id`)"),
        ("from" = Option<Timestamp>, Query, description = "Window start (default: 24 hours before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad or missing parameter, or `from` not before `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_record_access() {}

/// The HIPAA accounting of disclosures of one subject (45 CFR 164.528): date, recipient and
/// address, description and purpose of each disclosure (`activity: disclose` or a
/// `disclosure` object, naming the subject as a target's id or `details.subject`), by
/// default over the six years before `to`. Disclosures the rule exempts (by
/// `details.basis` or purpose: treatment, payment, health_care_operations, to_individual,
/// incidental, authorization, facility_directory, involved_in_care, national_security,
/// custody, limited_data_set; or before 14 April 2003) are counted under `excluded`, not
/// listed. Verified as every report is (see daily-activity).
#[utoipa::path(
    get, path = "/v1/reports/disclosures", tag = "reports",
    params(
        ("subject" = String, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "The individual: a target's id, or details.subject"),
        ("from" = Option<Timestamp>, Query, description = "Window start (default: six years before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad or missing parameter, or `from` not before `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_disclosures() {}

/// What one actor (`actor.id`) did, with the records each event named. Verified as every
/// report is (see daily-activity).
#[utoipa::path(
    get, path = "/v1/reports/user-activity", tag = "reports",
    params(
        ("actor" = String, Query, min_length = 1, max_length = 256, pattern = "^[^\\x00]*$", description = "The actor's id"),
        ("from" = Option<Timestamp>, Query, description = "Window start (default: 24 hours before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad or missing parameter, or `from` not before `to`; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_user_activity() {}

/// Events per hour and producer (`source.app`, `source.instance`), zeros included, with the
/// gap detector's findings of the window; at most 31 days (`rule: max_range`). Verified as
/// every report is (see daily-activity).
#[utoipa::path(
    get, path = "/v1/reports/completeness", tag = "reports",
    params(
        ("from" = Option<Timestamp>, Query, description = "Window start (default: 24 hours before to)"),
        ("to" = Option<Timestamp>, Query, description = "Window end, exclusive (default: now)"),
        ("format" = Option<String>, Query, pattern = "^(json|csv|md)$", description = "json (default), csv or md"),
    ),
    responses(
        (status = 200, description = "The report", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A bad parameter, `from` not before `to`, or a window over 31 days; `field` names it", body = ApiErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "The token lacks reports, or names the _system log without the admin scope (`rule: system_log`)", body = ApiErrorBody),
        (status = 404, description = "The log has no signed checkpoint yet (`rule: no_checkpoint`)", body = ApiErrorBody),
        (status = 409, description = "`log_unverified`: the entries the checkpoint signs do not verify; the message names the first broken seq", body = ApiErrorBody),
        (status = 503, description = "The store cannot be read", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) fn report_completeness() {}
