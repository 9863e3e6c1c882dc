//! `InMemoryAuditLog`: the customer audit log of the in-memory stores.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::ids::{AuditEventId, OrgId};
use portal_core::store::{Conflict, StoreError};
use time::OffsetDateTime;

use super::webhooks::WebhookState;

/// The log's events and the webhook state their appends fan out to, under one lock.
#[derive(Debug, Default)]
pub(crate) struct AuditState {
    pub(crate) events: Vec<AuditEvent>,
    pub(crate) webhooks: WebhookState,
    /// Each org's retention in days; absent keeps for ever.
    pub(crate) retention: std::collections::HashMap<OrgId, u32>,
}

impl AuditState {
    /// Writes `event` (refusing a duplicate id) and fans it out, for a store that holds
    /// this lock for its whole change.
    pub(crate) fn write(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        if self.events.iter().any(|e| e.id == event.id) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        self.append_checked(event);
        Ok(())
    }

    /// Appends `event` and fans it out, for a store that checked under this lock that
    /// its id is new (so appending cannot fail half-way through a change).
    pub(crate) fn append_checked(&mut self, event: &AuditEvent) {
        self.webhooks.fan_out(event);
        self.events.push(event.clone());
    }
}

/// The audit log the in-memory stores write their events to, and read back.
///
/// Clones share one log: give the same log to every store
/// ([`InMemoryTenancyStore::with_audit_log`](super::InMemoryTenancyStore::with_audit_log))
/// and read it through [`AuditLog`]. A store appends an event while it holds its own
/// lock, after every rule of the change passed, so the change and its event are stored
/// together or not at all.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAuditLog {
    state: Arc<Mutex<AuditState>>,
}

impl InMemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A poisoned lock is safe to take over: a push either happened or did not.
    pub(crate) fn lock(&self) -> MutexGuard<'_, AuditState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses an event whose id its org's log already holds, as the SQL stores' (org,
    /// id) key does. A store calls it before it changes anything.
    pub(crate) fn check(&self, event: &AuditEvent) -> Result<(), StoreError> {
        if self
            .lock()
            .events
            .iter()
            .any(|e| e.org == event.org && e.id == event.id)
        {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        Ok(())
    }

    /// Appends a checked event, and a pending webhook delivery for each enabled endpoint
    /// of its org that takes its action (the outbox's fan-out).
    pub(crate) fn append(&self, event: &AuditEvent) {
        let mut state = self.lock();
        state.webhooks.fan_out(event);
        state.events.push(event.clone());
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
        let state = self.lock();
        let mut found: Vec<&AuditEvent> = state
            .events
            .iter()
            .filter(|e| e.org == org && after.is_none_or(|a| e.id > a) && query.matches(e))
            .collect();
        found.sort_by_key(|e| e.id);
        Ok(found.into_iter().take(limit).cloned().collect())
    }

    async fn retention(&self, org: OrgId) -> Result<Option<u32>, StoreError> {
        Ok(self.lock().retention.get(&org).copied())
    }

    async fn set_retention(&self, org: OrgId, days: Option<u32>, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.write(event)?;
        match days {
            Some(days) => state.retention.insert(org, days),
            None => state.retention.remove(&org),
        };
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let retention = state.retention.clone();
        let expired = |e: &AuditEvent| {
            retention
                .get(&e.org)
                .is_some_and(|days| e.occurred_at < now - time::Duration::days(i64::from(*days)))
        };
        let gone: std::collections::BTreeSet<AuditEventId> =
            state.events.iter().filter(|e| expired(e)).map(|e| e.id).collect();
        state.events.retain(|e| !gone.contains(&e.id));
        state.webhooks.forget(&gone);
        Ok(gone.len() as u64)
    }
}
