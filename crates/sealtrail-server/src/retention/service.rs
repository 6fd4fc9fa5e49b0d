//! What the admin API asks of retention (`http::retention`): a tenant's period and how far its
//! log is pruned, and the compliance report, checked against the server's archive when one is
//! configured. Reads go through the service's reader pool, off the async runtime.

use sealtrail_archive::Target;
use sealtrail_store::{Store, StoreError};
use serde::Serialize;

use super::archive::ArchiveReader;
use super::{ComplianceReport, Period, Periods, PlanError, compliance_report};
use crate::clock::Clock;
use crate::readers::{ReadFailure, Readers};

/// A tenant's retention as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantRetention {
    #[schema(example = "acme")]
    pub tenant: String,
    /// The period in force, and where it is set; null: none is, the log is kept for ever.
    pub period: Option<Period>,
    /// Entries below this seq were pruned (0: never pruned).
    pub pruned_below: u64,
    /// The archive's verified size recorded at the latest prune; null before the first.
    pub archive_watermark: Option<Watermark>,
}

/// The size below which an archive, compared with the store when it was recorded, holds every
/// entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Watermark {
    pub size: u64,
    /// The archive, as it was named (a directory or `s3://bucket/prefix`).
    pub archive: String,
    /// When it was recorded, RFC 3339 UTC.
    pub recorded_at: String,
}

/// `tenant`'s retention as the store records it.
pub fn tenant_retention(store: &dyn Store, tenant: &str) -> Result<TenantRetention, PlanError> {
    sealtrail_store::in_snapshot(store, || {
        if store.tenant(tenant)?.is_none() {
            return Err(PlanError::UnknownTenant(tenant.to_string()));
        }
        let period = Periods::read(store)?.of(tenant);
        let pruned_below = store.prune_mark(tenant)?.map_or(0, |mark| mark.below);
        let archive_watermark = store.archive_watermark(tenant)?.map(|mark| Watermark {
            size: mark.size,
            archive: mark.archive,
            recorded_at: mark.recorded_at,
        });
        Ok(TenantRetention {
            tenant: tenant.to_string(),
            period,
            pruned_below,
            archive_watermark,
        })
    })
}

impl ReadFailure for PlanError {
    fn pool_failure(message: String) -> Self {
        PlanError::Store(StoreError::Unavailable(message))
    }

    /// Only the store's errors come from the connection; an unknown tenant or an archive that
    /// cannot be read leaves it as good as it was.
    fn may_break_connection(&self) -> bool {
        matches!(self, PlanError::Store(_))
    }
}

/// Retention for the admin API. Cheap to clone.
#[derive(Clone)]
pub struct RetentionService {
    readers: Readers,
    /// The server's archive (`archive_to`); `None` without one.
    archive: Option<ArchiveReader>,
    /// What "now" is for the report's period and plan.
    clock: Clock,
}

impl RetentionService {
    pub fn new(readers: Readers, archive: Option<ArchiveReader>, clock: Clock) -> RetentionService {
        RetentionService {
            readers,
            archive,
            clock,
        }
    }

    /// `tenant`'s period and how far its log is pruned.
    pub async fn state(&self, tenant: &str) -> Result<TenantRetention, PlanError> {
        let tenant = tenant.to_string();
        self.readers
            .read(move |store| tenant_retention(store, &tenant))
            .await
    }

    /// The compliance report of `tenant` now; with the server's archive, the pruned range is
    /// compared with it and the plan says how far the archive allows pruning.
    pub async fn report(&self, tenant: &str) -> Result<ComplianceReport, PlanError> {
        let (tenant, archive, now) = (tenant.to_string(), self.archive.clone(), self.clock.now());
        self.readers
            .read(move |store| {
                let Some(archive) = archive else {
                    return compliance_report(store, &tenant, now, None);
                };
                let record = store
                    .tenant(&tenant)?
                    .ok_or_else(|| PlanError::UnknownTenant(tenant.clone()))?;
                let unusable =
                    |e: super::archive::ArchiveUnusable| PlanError::Archive(e.to_string());
                let target = archive
                    .open(archive.retention_days_of(&tenant))
                    .map_err(unusable)?;
                let key = archive.key(&record).map_err(unusable)?;
                compliance_report(store, &tenant, now, Some((&target as &dyn Target, &key)))
            })
            .await
    }
}

/// The period as the API documents it: `source` is one of three words.
impl utoipa::PartialSchema for Period {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .property(
                "days",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1.0))
                    .maximum(Some(36_500.0))
                    .description(Some("The period in days: entries received longer ago are pruned once archived and not held")),
            )
            .required("days")
            .property(
                "source",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["admin_api", "tenant_config", "config"]))
                    .description(Some(
                        "Where it is set: `admin_api` (PUT /v1/admin/tenants/{tenant}/retention), `tenant_config` ([tenants.NAME] retention_days), `config` (retention_days)",
                    )),
            )
            .required("source")
            .into()
    }
}

impl utoipa::ToSchema for Period {}
