//! `InMemoryWorkflowStore`: the reference `WorkflowStore`, kept in one mutex-guarded map set.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::InMemoryAuditLog;
use async_trait::async_trait;
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::store::{Conflict, StoreError};
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, HistoryEntry, IdempotencyRecord, Instance, ListFilter, TransitionRecord,
    WorkflowStore,
};

/// A [`WorkflowStore`] that keeps everything in memory.
///
/// Its customer audit events go to an [`InMemoryAuditLog`] (its own, or one shared with
/// the other stores through [`with_audit_log`](Self::with_audit_log)), appended under the
/// store's lock after every rule of the change passed.
///
/// Every method takes one lock, checks every rule before it changes anything, and
/// releases the lock before it returns, so each call is atomic and isolated: of two
/// concurrent `apply` calls at the same expected version exactly one commits, of two
/// with the same principal and idempotency key the second replays the first. Nothing is
/// persisted; the data lives as long as the store.
///
/// ```
/// use portal_adapters::memory::{InMemoryTenancyStore, InMemoryWorkflowStore};
/// use portal_core::Portal;
/// use portal_core::workflow::catalog;
/// use std::sync::Arc;
///
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
///     .workflow_store(Arc::new(InMemoryWorkflowStore::new()))
///     .workflow_definitions(catalog::all()?)
///     .build()?;
/// assert!(portal.workflows().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct InMemoryWorkflowStore {
    state: Mutex<State>,
    audit: InMemoryAuditLog,
}

impl InMemoryWorkflowStore {
    /// An empty store with its own audit log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that writes its customer audit events to `audit` (shared with the
    /// other stores, such as [`InMemoryTenancyStore::with_audit_log`](super::InMemoryTenancyStore::with_audit_log)).
    pub fn with_audit_log(audit: InMemoryAuditLog) -> Self {
        Self {
            state: Mutex::default(),
            audit,
        }
    }

    /// The audit log this store writes to.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.audit.clone()
    }

    /// Locks the state. Every method validates before it mutates, so a lock poisoned by
    /// a panic elsewhere never guards a half-changed state and is safe to take over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryWorkflowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryWorkflowStore")
            .field("instances", &state.instances.len())
            .field("idempotency_records", &state.idempotency.len())
            .finish_non_exhaustive()
    }
}

/// Everything the store holds. Instances are keyed by `(org, id)`, so one org's
/// instances are a contiguous range in id order.
#[derive(Default)]
struct State {
    instances: BTreeMap<(OrgId, WorkflowId), Instance>,
    history: BTreeMap<WorkflowId, Vec<HistoryEntry>>,
    idempotency: BTreeMap<(OrgId, Principal, IdempotencyKey), IdempotencyRecord>,
    delegations: BTreeMap<(OrgId, UserId, UserId), Delegation>,
}

impl State {
    /// The replay of a key the principal already committed with the same fingerprint;
    /// `IdempotencyKeyReused` for another fingerprint; `None` for a key not committed.
    fn check_key(&self, org: OrgId, record: Option<&IdempotencyRecord>) -> Result<Option<Applied>, StoreError> {
        let Some(record) = record else {
            return Ok(None);
        };
        self.idempotency
            .get(&(org, record.principal.clone(), record.key.clone()))
            .map(|stored| stored.clone().replay_for(record))
            .transpose()
    }

    /// Stores the record of a committed request.
    fn complete_key(&mut self, org: OrgId, record: Option<&IdempotencyRecord>) {
        if let Some(record) = record {
            let key = (org, record.principal.clone(), record.key.clone());
            self.idempotency.insert(key, record.clone());
        }
    }
}

#[async_trait]
impl WorkflowStore for InMemoryWorkflowStore {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        let mut state = self.lock();
        let instance = &record.instance;
        if let Some(replayed) = state.check_key(instance.org, record.idempotency.as_ref())? {
            return Ok(replayed);
        }
        if state.history.contains_key(&instance.id) {
            return Err(Conflict::AlreadyExists { entity: "workflow" }.into());
        }
        self.audit.check(&record.event)?;
        state.instances.insert((instance.org, instance.id), instance.clone());
        state.history.insert(instance.id, vec![record.history.clone()]);
        state.complete_key(instance.org, record.idempotency.as_ref());
        self.audit.append(&record.event);
        Ok(Applied::Committed(instance.clone()))
    }

    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError> {
        Ok(self.lock().instances.get(&(org, id)).cloned())
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        let mut state = self.lock();
        let next = &change.next;
        if let Some(replayed) = state.check_key(next.org, change.idempotency.as_ref())? {
            return Ok(replayed);
        }
        let current = state
            .instances
            .get(&(next.org, next.id))
            .ok_or(StoreError::NotFound { entity: "workflow" })?;
        if current.version != change.expected_version {
            return Err(Conflict::Version {
                expected: change.expected_version,
                current: current.version,
            }
            .into());
        }
        self.audit.check(&change.event)?;
        state.instances.insert((next.org, next.id), next.clone());
        state.history.entry(next.id).or_default().push(change.history.clone());
        state.complete_key(next.org, change.idempotency.as_ref());
        self.audit.append(&change.event);
        Ok(Applied::Committed(next.clone()))
    }

    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let state = self.lock();
        Ok(state.idempotency.get(&(org, principal.clone(), key.clone())).cloned())
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError> {
        let state = self.lock();
        let nil = WorkflowId::from_uuid(uuid::Uuid::nil());
        Ok(state
            .instances
            .range((org, nil)..)
            .take_while(|((o, _), _)| *o == org)
            .map(|(_, instance)| instance)
            .filter(|instance| after.is_none_or(|after| instance.id > after))
            .filter(|instance| filter.matches(instance))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn history(
        &self,
        org: OrgId,
        id: WorkflowId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let state = self.lock();
        if !state.instances.contains_key(&(org, id)) {
            return Ok(Vec::new());
        }
        let after = after.unwrap_or(0);
        Ok(state
            .history
            .get(&id)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.version > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn put_delegation(&self, delegation: &Delegation) -> Result<(), StoreError> {
        let key = (delegation.org, delegation.from, delegation.to);
        self.lock().delegations.insert(key, delegation.clone());
        Ok(())
    }

    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError> {
        Ok(self.lock().delegations.get(&(org, from, to)).cloned())
    }
}
