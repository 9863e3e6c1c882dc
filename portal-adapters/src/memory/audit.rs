//! `InMemoryAuditLog`: the customer audit log of the in-memory stores.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::ids::{AuditEventId, OrgId};
use portal_core::store::{Conflict, StoreError};

/// The audit log the in-memory stores write their events to, and read back.
///
/// Clones share one log: give the same log to every store
/// ([`InMemoryTenancyStore::with_audit_log`](super::InMemoryTenancyStore::with_audit_log))
/// and read it through [`AuditLog`]. A store appends an event while it holds its own
/// lock, after every rule of the change passed, so the change and its event are stored
/// together or not at all.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAuditLog {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl InMemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A poisoned lock is safe to take over: a push either happened or did not.
    fn lock(&self) -> MutexGuard<'_, Vec<AuditEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses an event whose id the log already holds, as the SQL stores' primary key
    /// does. A store calls it before it changes anything.
    pub(crate) fn check(&self, event: &AuditEvent) -> Result<(), StoreError> {
        if self.lock().iter().any(|e| e.id == event.id) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        Ok(())
    }

    /// Appends a checked event.
    pub(crate) fn append(&self, event: &AuditEvent) {
        self.lock().push(event.clone());
    }
}

#[async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn list(
        &self,
        org: OrgId,
        query: &AuditQuery,
        after: Option<AuditEventId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let events = self.lock();
        let mut found: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.org == org && after.is_none_or(|a| e.id > a) && query.matches(e))
            .collect();
        found.sort_by_key(|e| e.id);
        Ok(found.into_iter().take(limit).cloned().collect())
    }
}
