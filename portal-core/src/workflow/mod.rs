//! Workflows: customer operations (support cases, returns, quote approvals) as
//! instances of declared state machines, and the `WorkflowStore` port that keeps them.
//!
//! This module names the persisted shapes and the store contract; the definition
//! builder and the transition engine build on them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::context::{IdempotencyKey, Principal};
use crate::diagnostics::DiagnosticEvent;
use crate::ids::{OrgId, RequestId, UserId, WorkflowId};
use crate::store::StoreError;

/// One workflow instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Its id.
    pub id: WorkflowId,
    /// The org it belongs to.
    pub org: OrgId,
    /// The definition's name, such as `support_case`.
    pub definition: String,
    /// The definition version the instance started under; it keeps it.
    pub definition_version: u32,
    /// The current state.
    pub state: String,
    /// Incremented by every transition; the optimistic concurrency token (ETag).
    pub version: u64,
    /// Who works on it.
    pub assignee: Option<UserId>,
    /// The typed payload, serialized.
    pub payload: serde_json::Value,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One entry of an instance's history: a transition that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The instance version this transition produced.
    pub version: u64,
    /// The transition's name.
    pub transition: String,
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// Who fired it.
    pub actor: Principal,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The transition's input.
    pub input: serde_json::Value,
    /// The request that fired it.
    pub request_id: RequestId,
}

/// The stored outcome of an idempotent request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The client's key.
    pub key: IdempotencyKey,
    /// A fingerprint of the request, to tell a retry from a different request.
    pub request_fingerprint: [u8; 32],
    /// The response to replay.
    pub response: serde_json::Value,
}

/// Everything one transition writes, committed together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRecord {
    /// The org of the instance.
    pub org: OrgId,
    /// The instance.
    pub id: WorkflowId,
    /// The version the caller read; the store refuses the change if it is stale.
    pub expected_version: u64,
    /// The new state.
    pub state: String,
    /// The new payload.
    pub payload: serde_json::Value,
    /// The new assignee.
    pub assignee: Option<UserId>,
    /// The history entry.
    pub history: HistoryEntry,
    /// The audit event written in the same transaction.
    pub audit: DiagnosticEvent,
    /// The idempotency record, when the request carried a key.
    pub idempotency: Option<IdempotencyRecord>,
}

/// What [`WorkflowStore::apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The transition was committed; the instance as it now is.
    Committed(Instance),
    /// The idempotency key was already used with the same fingerprint: nothing was
    /// written and the stored response is returned.
    Replayed(IdempotencyRecord),
}

/// Filters for listing instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only instances of this definition.
    pub definition: Option<String>,
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances assigned to this user.
    pub assignee: Option<UserId>,
}

/// Persists workflow instances and their history.
///
/// # Errors
///
/// - [`StoreError::Conflict`] with [`Conflict::Version`](crate::store::Conflict::Version)
///   from [`apply`](Self::apply) if `expected_version` is stale; nothing is written.
/// - [`StoreError::NotFound`] (`workflow`) from [`apply`](Self::apply) for an instance
///   unknown in that org.
/// - [`StoreError::Unavailable`] or [`StoreError::Backend`] from any method.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Stores a new instance at version 1.
    async fn create(&self, instance: &Instance) -> Result<(), StoreError>;

    /// The instance `id` of `org`, if it exists.
    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError>;

    /// Applies one transition atomically: version check, new state, history entry, audit
    /// record and idempotency record commit together or not at all.
    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError>;

    /// Up to `limit` instances of `org` matching `filter`, by id, after `after`.
    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError>;

    /// The history of instance `id` of `org`, oldest first.
    async fn history(&self, org: OrgId, id: WorkflowId) -> Result<Vec<HistoryEntry>, StoreError>;
}
