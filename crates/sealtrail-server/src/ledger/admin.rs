//! Administrative jobs: tenants, tokens and the recorded configuration.
//!
//! Each change is written in the same transaction as its `_system` audit entry, so an admin
//! action can never take effect unrecorded: if the audit entry cannot be appended, the change
//! rolls back with it. A tenant is created together with its signing key, and the store
//! records the key's verifier key, so no other key can later sign that log.

use sealtrail_core::event::Event;
use sealtrail_store::{StoreError, Tenant, TokenRecord};

use sealtrail_core::event::EventError;

use super::group::GroupWork;
use super::writer::Writer;
use super::{
    Fault, LedgerError, NewToken, Outcome, Refusal, RefusedAttempt, SYSTEM_TENANT, Submission,
};
use crate::tenant::TenantName;

/// The longest request path a refusal record keeps, in characters: a name's bound in the
/// event schema. The path is the caller's text; the rest of the record is the server's.
const MAX_RECORDED_PATH: usize = 256;

/// The `_system` event for a refused admin attempt: `sealtrail.admin.refused`, outcome
/// `failure`, the token as actor when the store knows it (else an anonymous actor), the route
/// as target, the client's address as `context.ip`, and in `details` the method, route, path,
/// status, error code, reason and how many attempts from the same address went unrecorded
/// before it. Nothing the caller presented as a credential is in it.
pub(super) fn refusal_event(
    attempt: &RefusedAttempt,
    suppressed: u64,
) -> Result<Event, EventError> {
    let actor = match &attempt.token_id {
        Some(id) => serde_json::json!({"id": id, "type": "api_key"}),
        None => serde_json::json!({"id": "unauthenticated", "type": "anonymous"}),
    };
    let path: String = attempt.path.chars().take(MAX_RECORDED_PATH).collect();
    let mut document = serde_json::json!({
        "action": "sealtrail.admin.refused",
        "activity": "admin",
        "outcome": "failure",
        "outcome_reason": attempt.reason,
        "actor": actor,
        "targets": [{"type": "route", "id": format!("{} {}", attempt.method, attempt.route)}],
        "details": {
            "method": attempt.method,
            "route": attempt.route,
            "path": path,
            "status": attempt.status,
            "error": attempt.error,
            "reason": attempt.reason,
            "suppressed": suppressed,
        },
    });
    if let Some(client) = attempt.client {
        document["context"] = serde_json::json!({"ip": client.to_string()});
    }
    Event::from_value(&document)
}

impl Writer {
    pub(super) fn ensure_tenant(&mut self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        self.written.clear();
        self.store.begin_write(&[tenant, SYSTEM_TENANT])?;
        let mut work = self.group_work();
        match work.ensure_tenant(tenant, actor) {
            Ok(created) => {
                if let Err(error) = self.store.commit() {
                    self.written.clear();
                    return Err(error.into());
                }
                self.after_commit();
                Ok(created)
            }
            Err(error) => {
                self.written.clear();
                let _ = self.store.rollback();
                self.forget_tails();
                Err(error)
            }
        }
    }
}

impl GroupWork<'_> {
    pub(super) fn record_config(&mut self, config: serde_json::Value) -> Result<bool, LedgerError> {
        let text = config.to_string();
        let before = self.store.setting("config")?;
        if before.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let before: serde_json::Value = before
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        self.store.set_setting("config", &text)?;
        self.audit_admin(
            "sealtrail.config.changed",
            "sealtrail",
            "config",
            "serve",
            serde_json::json!({"before": before, "after": config}),
        )?;
        Ok(true)
    }

    /// Appends one administrative event to the `_system` log.
    pub(super) fn audit_admin(
        &mut self,
        action: &str,
        actor: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.audit_admin_at(action, actor, target_type, target_id, details)
            .map(|_| ())
    }

    /// [`GroupWork::audit_admin`], returning the seq of the event in the `_system` log.
    pub(super) fn audit_admin_at(
        &mut self,
        action: &str,
        actor: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
    ) -> Result<u64, LedgerError> {
        let document = serde_json::json!({
            "action": action,
            "activity": "admin",
            "outcome": "success",
            "actor": {"id": actor, "type": if actor == "sealtrail" { "system" } else { "api_key" }},
            "targets": [{"type": target_type, "id": target_id}],
            "details": details,
        });
        let bytes = serde_json::to_vec(&document).expect("json");
        let event = Event::parse(&bytes).map_err(Fault::AdminEvent)?;
        let outcomes = self.append_assigned(
            SYSTEM_TENANT,
            &[Submission {
                event,
                idempotency_key: None,
            }],
            None,
        )?;
        match outcomes.first() {
            Some(Outcome::Created(receipt)) => Ok(receipt.seq),
            // Whatever else the transaction holds must not commit without its audit record.
            other => Err(LedgerError::Store(StoreError::Corrupt(format!(
                "admin event was not recorded: {other:?}"
            )))),
        }
    }

    pub(super) fn ensure_tenant(&mut self, tenant: &str, actor: &str) -> Result<bool, LedgerError> {
        TenantName::parse(tenant).map_err(Refusal::from)?;
        if self.store.tenant(tenant)?.is_some() {
            return Ok(false);
        }
        let origin = format!("{}/{tenant}", self.config.origin_prefix);
        // Creates the key now, so the tenant never exists without its signing key, and records
        // its verifier key so that no other key can sign this log.
        let signer = self.keys.create_signer(&origin)?;
        self.store.insert_tenant(&Tenant {
            name: tenant.to_string(),
            origin: origin.clone(),
            created_at: self.clock.now().to_rfc3339(),
            vkey: Some(signer.verifier().to_string()),
        })?;
        if tenant != SYSTEM_TENANT {
            self.audit_admin(
                "sealtrail.tenant.created",
                actor,
                "tenant",
                tenant,
                serde_json::json!({"origin": origin}),
            )?;
        }
        Ok(true)
    }

    pub(super) fn create_token(
        &mut self,
        tenant: &str,
        scopes: Vec<String>,
        actor: &str,
    ) -> Result<NewToken, LedgerError> {
        for scope in &scopes {
            crate::auth::Scope::parse(scope).map_err(Refusal::from)?;
        }
        if scopes.is_empty() {
            return Err(Refusal::NoScope.into());
        }
        let tenant_created = if tenant == crate::auth::ANY_TENANT {
            false
        } else {
            self.ensure_tenant(tenant, actor)?
        };
        let secret = crate::auth::new_secret();
        let record = TokenRecord {
            id: crate::auth::new_token_id(),
            tenant: tenant.to_string(),
            scopes: scopes.clone(),
            created_at: self.clock.now().to_rfc3339(),
            revoked_at: None,
        };
        self.store
            .insert_token(&record, &crate::auth::secret_hash(&secret))?;
        self.audit_admin(
            "sealtrail.token.created",
            actor,
            "token",
            &record.id,
            serde_json::json!({"tenant": tenant, "scopes": scopes}),
        )?;
        Ok(NewToken {
            id: record.id,
            token: secret,
            tenant: tenant.to_string(),
            scopes,
            tenant_created,
        })
    }

    pub(super) fn revoke_token(&mut self, id: &str, actor: &str) -> Result<bool, LedgerError> {
        let revoked = self
            .store
            .revoke_token(id, &self.clock.now().to_rfc3339())?;
        if revoked {
            self.audit_admin(
                "sealtrail.token.revoked",
                actor,
                "token",
                id,
                serde_json::json!({}),
            )?;
        }
        Ok(revoked)
    }

    /// Puts back lost entries through the store's guarded
    /// [`sealtrail_store::Store::restore_entry`] and
    /// records the run, with how many were restored, in `_system`. The tails of every log are
    /// reloaded afterwards: a restored entry may lie at the end of a log.
    pub(super) fn restore(
        &mut self,
        entries: &[super::RestoreEntry],
        mut run: serde_json::Value,
        action: &str,
        actor: &str,
    ) -> Result<Vec<sealtrail_store::Restore>, LedgerError> {
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let (tenant, seq, id, bytes) = (&entry.tenant, entry.seq, &entry.id, &entry.entry);
            results.push(if entry.replace {
                self.store.repair_entry(tenant, seq, id, bytes)?
            } else {
                self.store.restore_entry(tenant, seq, id, bytes)?
            });
        }
        for state in self.tenants.values_mut() {
            state.stale = true;
        }
        let restored = results
            .iter()
            .filter(|r| **r == sealtrail_store::Restore::Restored)
            .count();
        run["restored"] = serde_json::json!(restored);
        let target = action
            .strip_prefix("sealtrail.")
            .and_then(|a| a.strip_suffix(".run"))
            .unwrap_or("replay");
        self.audit_admin(action, actor, "store", target, run)?;
        Ok(results)
    }
}
