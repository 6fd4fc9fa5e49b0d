//! The directory of tenants and tokens, as the admin API lists them (tenants with their
//! freeze, if they are frozen).
//!
//! Changes to either (creating a token or a tenant, revoking a token) go through the ledger,
//! which audits them in the `_system` log; this service only reads. It is kept apart from the
//! HTTP edge so that the listings are the same wherever they are shown, and so that no
//! handler reads the store itself.

use sealtrail_store::{self as store, TokenRecord};

use crate::freeze::{self, Freeze};
use crate::readers::{ReadError, Readers};

/// A tenant with its log's size and latest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub name: String,
    /// The origin line of its checkpoints, which is also its signing key's name.
    pub origin: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Entries in its log.
    pub size: u64,
    /// The tree size of its latest signed checkpoint; `None` before the first.
    pub checkpoint_size: Option<u64>,
    /// Its freeze, while its ingest is frozen (see [`crate::freeze`]).
    pub freeze: Option<Freeze>,
}

/// Reads the tenants and tokens the store holds.
#[derive(Clone)]
pub struct Directory {
    readers: Readers,
}

impl Directory {
    pub fn new(readers: Readers) -> Directory {
        Directory { readers }
    }

    /// Every token, active and revoked, oldest first (as the store lists them). Only their
    /// hashes are stored, so no secret is among them.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, ReadError> {
        self.readers.read(|conn| Ok(conn.list_tokens()?)).await
    }

    /// Every tenant, by name, with the size of its log and of its latest checkpoint, and its
    /// freeze as the store holds it now (not this instance's copy, which may be a second old).
    pub async fn tenants(&self) -> Result<Vec<TenantSummary>, ReadError> {
        self.readers
            .read(|conn| {
                let frozen = freeze::read(conn)?;
                let mut tenants = Vec::new();
                for tenant in conn.tenants()? {
                    // The store, not the ledger's in-memory heads: another process (the CLI)
                    // may have appended, and a new tenant has no head until its first entry.
                    let size = store::tail(conn, &tenant.name)?.size;
                    let checkpoint_size = conn.latest_checkpoint(&tenant.name)?.map(|c| c.size);
                    let freeze = frozen.get(&tenant.name).cloned();
                    tenants.push(TenantSummary {
                        name: tenant.name,
                        origin: tenant.origin,
                        created_at: tenant.created_at,
                        size,
                        checkpoint_size,
                        freeze,
                    });
                }
                Ok(tenants)
            })
            .await
    }
}
