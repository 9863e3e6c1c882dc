//! `InMemorySupportGrantStore`: the reference `SupportGrantStore`, one mutex-guarded map.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::ids::{GrantId, OrgId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::support::{SupportGrant, SupportGrantStore};
use time::OffsetDateTime;

use super::InMemoryAuditLog;

/// A [`SupportGrantStore`] that keeps grants in memory, keyed by id.
///
/// Every method takes the one lock for its whole call, so each is atomic. Nothing is
/// persisted; the grants live as long as the store. Audit events go to its
/// [`InMemoryAuditLog`], appended under the grants' lock after every rule passed.
#[derive(Default)]
pub struct InMemorySupportGrantStore {
    grants: Mutex<BTreeMap<GrantId, SupportGrant>>,
    audit: InMemoryAuditLog,
}

impl InMemorySupportGrantStore {
    /// An empty store with its own audit log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that writes its audit events to `audit` (shared with other stores).
    pub fn with_audit_log(audit: InMemoryAuditLog) -> Self {
        Self {
            grants: Mutex::default(),
            audit,
        }
    }

    /// The audit log this store writes to.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.audit.clone()
    }

    /// Locks the grants. No method panics while holding the lock with a half-changed map,
    /// so a lock poisoned elsewhere is safe to take over.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<GrantId, SupportGrant>> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemorySupportGrantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemorySupportGrantStore")
            .field("grants", &self.lock().len())
            .finish()
    }
}

#[async_trait]
impl SupportGrantStore for InMemorySupportGrantStore {
    async fn create(&self, grant: &SupportGrant, event: &AuditEvent) -> Result<(), StoreError> {
        let mut grants = self.lock();
        if grants.contains_key(&grant.id) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists {
                entity: "support_grant",
            }));
        }
        self.audit.check(event)?;
        grants.insert(grant.id, grant.clone());
        self.audit.append(event);
        Ok(())
    }

    async fn get(&self, org: OrgId, id: GrantId) -> Result<Option<SupportGrant>, StoreError> {
        Ok(self.lock().get(&id).filter(|g| g.org == org).cloned())
    }

    async fn find_active(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError> {
        Ok(self
            .lock()
            .values()
            .rev()
            .find(|g| g.staff == staff && g.org == org && g.is_active_at(at))
            .cloned())
    }

    async fn list(&self, org: OrgId, after: Option<GrantId>, limit: usize) -> Result<Vec<SupportGrant>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|g| g.org == org && after.is_none_or(|a| g.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<SupportGrant, StoreError> {
        let mut grants = self.lock();
        let grant = grants
            .get_mut(&id)
            .filter(|g| g.org == org)
            .ok_or(StoreError::NotFound {
                entity: "support_grant",
            })?;
        if grant.revoked_at.is_none() {
            self.audit.check(event)?;
            grant.revoked_at = Some(at);
            self.audit.append(event);
        }
        Ok(grant.clone())
    }

    async fn record_first_use(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut grants = self.lock();
        let grant = grants
            .get_mut(&id)
            .filter(|g| g.org == org)
            .ok_or(StoreError::NotFound {
                entity: "support_grant",
            })?;
        if grant.first_used_at.is_some() {
            return Ok(false);
        }
        self.audit.check(event)?;
        grant.first_used_at = Some(at);
        self.audit.append(event);
        Ok(true)
    }
}
