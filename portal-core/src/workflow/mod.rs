//! Workflows: customer operations (support cases, returns, quote approvals) as instances
//! of declared state machines, with permission-guarded, audited, idempotent transitions.
//!
//! - [`definition`]: the typed builder ([`WorkflowDefinition::builder`]) and its checks.
//! - [`catalog`]: the shipped definitions (support case, return request, quote approval).
//! - this module: the persisted shapes ([`Instance`], [`HistoryEntry`], [`Vote`],
//!   [`Delegation`]) and the [`WorkflowStore`] port.
//! - [`WorkflowService`]: the use cases, with the requests and answers beside them
//!   ([`NewInstance`], [`Edits`], [`VoteRequest`], [`TransitionCheck`], ...). Inside, the
//!   pure rules of a step (state, input, guards, voters, entering a state) and the
//!   handling of idempotency keys each have a file of their own.
//!
//! One transition is one atomic store call, [`WorkflowStore::apply`]: the version check,
//! the new instance, its history entry, the customer audit log's event (the outbox,
//! [`crate::audit`]) and the idempotency record commit together or not at all. Votes on
//! approvals go through the same call, so a vote is checked against the version its voter
//! read. An instance's trail is its history (who moved it, when, from where to where, in
//! which request) and, for customers, the audit log's events that name it as a target.

mod cache;
pub mod catalog;
pub mod definition;
mod idempotency;
mod in_flight;
mod requests;
mod rules;
mod service;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::context::{IdempotencyKey, Principal};
use crate::ids::{OrgId, RequestId, UserId, WorkflowId};
use crate::store::StoreError;

pub use definition::{
    ApprovalRule, DefinitionBuilder, DefinitionError, Guard, GuardContext, GuardFailure, RequiredPermission, StateSpec,
    Transition, TransitionBuilder, WorkflowDefinition,
};
pub use requests::{AvailableTransition, Edits, NewInstance, Refusal, TransitionCheck, VoteRequest, WorkflowFilter};
pub use service::WorkflowService;

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
    /// Starts at 1 and is incremented by every transition and vote; the optimistic
    /// concurrency token (ETag).
    pub version: u64,
    /// Who works on it.
    pub assignee: Option<UserId>,
    /// The typed payload, serialized.
    pub payload: serde_json::Value,
    /// Who created it: the requester, who may not approve its transitions.
    pub created_by: Principal,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it entered its current state.
    #[serde(with = "time::serde::rfc3339")]
    pub state_entered_at: OffsetDateTime,
    /// When it is due to leave its current state, if the state bounds its stay.
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    /// The votes cast in the current state, oldest first; cleared when the state changes.
    pub votes: Vec<Vote>,
}

impl Instance {
    /// Decodes the payload into its type.
    ///
    /// # Errors
    ///
    /// The decoder's error if the payload does not have the shape of `P`.
    pub fn payload_as<P: serde::de::DeserializeOwned>(&self) -> Result<P, serde_json::Error> {
        P::deserialize(&self.payload)
    }
}

/// A vote on a transition that needs approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The transition voted on.
    pub transition: String,
    /// Whose vote it is: the actor, or the member who delegated their vote to the actor.
    pub voter: Principal,
    /// Who cast it (differs from `voter` under a delegation).
    pub cast_by: Principal,
    /// Approve or reject.
    pub decision: VoteDecision,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteDecision {
    /// In favour.
    Approve,
    /// Against: fires the rule's rejection transition.
    Reject,
}

/// What a history entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// The instance was created.
    Created,
    /// A transition was fired directly, with the edits it made besides the state (none
    /// for most; stored as `{"kind":"transition"}` then).
    Transition {
        /// How the payload was changed, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<PayloadEdit>,
        /// How the assignee was changed, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<AssigneeChange>,
    },
    /// The assignee was changed on its own ([`WorkflowService::assign`]); the state stays.
    Assigned {
        /// Who it was assigned to before.
        previous: Option<UserId>,
        /// Who it is assigned to now.
        assignee: Option<UserId>,
    },
    /// A vote was cast; `from` and `to` differ when the vote completed the approval (or
    /// rejected it) and so fired a transition.
    Vote {
        /// Approve or reject.
        decision: VoteDecision,
        /// The member whose vote a delegate cast, if any.
        on_behalf_of: Option<UserId>,
    },
}

impl EntryKind {
    /// A transition fired without edits.
    pub const fn transition() -> Self {
        EntryKind::Transition {
            payload: None,
            assignee: None,
        }
    }
}

/// A change of an instance's payload made by a transition. The result must still be a
/// payload of the definition's type, or the transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEdit {
    /// The payload becomes this value.
    Replace(serde_json::Value),
    /// An RFC 7396 JSON merge patch: the patch's members replace the payload's, a `null`
    /// member removes one, and nested objects merge the same way.
    Merge(serde_json::Value),
}

impl PayloadEdit {
    /// The payload after the edit.
    pub fn applied_to(&self, payload: &serde_json::Value) -> serde_json::Value {
        match self {
            PayloadEdit::Replace(value) => value.clone(),
            PayloadEdit::Merge(patch) => {
                let mut out = payload.clone();
                merge_patch(&mut out, patch);
                out
            }
        }
    }
}

fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (name, value) in members {
            if value.is_null() {
                fields.remove(name);
            } else {
                merge_patch(fields.entry(name.clone()).or_insert(serde_json::Value::Null), value);
            }
        }
    }
}

/// A change of an instance's assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssigneeChange {
    /// Assign it to this member.
    Assign(UserId),
    /// Leave it unassigned.
    Unassign,
}

impl AssigneeChange {
    /// The assignee after the change.
    pub fn assignee(self) -> Option<UserId> {
        match self {
            AssigneeChange::Assign(user) => Some(user),
            AssigneeChange::Unassign => None,
        }
    }
}

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The instance version this entry produced (1 for creation).
    pub version: u64,
    /// What happened.
    pub kind: EntryKind,
    /// The transition's name (for a vote, the transition that fired, or the one voted
    /// on when none fired; empty for creation).
    pub transition: String,
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// Who acted.
    pub actor: Principal,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The input sent.
    pub input: serde_json::Value,
    /// The request that did it.
    pub request_id: RequestId,
    /// The idempotency key it came with, if any.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The stored outcome of an idempotent request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Who sent the key: keys are scoped to the org and the principal, so two users'
    /// keys never collide.
    pub principal: Principal,
    /// The client's key.
    pub key: IdempotencyKey,
    /// SHA-256 of the canonical request (see [`fingerprint`]), to tell a retry from a
    /// different request.
    pub fingerprint: [u8; 32],
    /// The instance as the request left it: what a retry receives.
    pub response: Instance,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl IdempotencyRecord {
    /// What a store answers when `self` is already stored under the key of `request`: the
    /// stored record replayed for the same request (same fingerprint), or
    /// [`Conflict::IdempotencyKeyReused`](crate::store::Conflict::IdempotencyKeyReused) for
    /// another. Every store applies this one rule.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the fingerprints differ.
    pub fn replay_for(self, request: &IdempotencyRecord) -> Result<Applied, StoreError> {
        if self.fingerprint == request.fingerprint {
            Ok(Applied::Replayed(self))
        } else {
            Err(crate::store::Conflict::IdempotencyKeyReused.into())
        }
    }
}

/// Everything creating an instance writes, committed together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRecord {
    /// The instance, at version 1.
    pub instance: Instance,
    /// Its creation history entry.
    pub history: HistoryEntry,
    /// The customer audit log's event (`workflow.created`), written to `audit_events` in
    /// the same transaction (and fanned out to webhook deliveries).
    pub event: AuditEvent,
    /// The idempotency record, when the request carried a key.
    pub idempotency: Option<IdempotencyRecord>,
}

/// Everything one transition or vote writes, committed together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRecord {
    /// The version the caller read; the store refuses the change if it is stale.
    pub expected_version: u64,
    /// The instance as it will be: same `id` and `org`, `version` one more than
    /// `expected_version`.
    pub next: Instance,
    /// The history entry.
    pub history: HistoryEntry,
    /// The customer audit log's event (`workflow.transitioned`, `workflow.voted` or
    /// `workflow.assigned`), written to `audit_events` in the same transaction (and
    /// fanned out to webhook deliveries); a replay or a refused change writes none.
    pub event: AuditEvent,
    /// The idempotency record, when the request carried a key.
    pub idempotency: Option<IdempotencyRecord>,
}

/// What [`WorkflowStore::apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The change was committed; the instance as it now is, equal to what
    /// [`WorkflowStore::get`] returns until the next change (the service caches it).
    Committed(Instance),
    /// The idempotency key was already used by this principal with the same fingerprint:
    /// nothing was written and the stored record is returned.
    Replayed(IdempotencyRecord),
}

/// A member's vote delegated to another member for a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The org.
    pub org: OrgId,
    /// Whose vote is delegated.
    pub from: UserId,
    /// Who may cast it.
    pub to: UserId,
    /// From when (inclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// Until when (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Delegation {
    /// Whether the delegation holds at `at`.
    pub fn is_active_at(&self, at: OffsetDateTime) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// What a store filters instances by. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only instances of these definitions; all definitions if empty.
    pub definitions: Vec<String>,
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances assigned to this user.
    pub assignee: Option<UserId>,
    /// Only instances whose `due_at` is at or before this time (overdue ones).
    pub due_at_or_before: Option<OffsetDateTime>,
}

impl ListFilter {
    /// Whether `instance` matches: the reference semantics every store implements.
    pub fn matches(&self, instance: &Instance) -> bool {
        (self.definitions.is_empty() || self.definitions.contains(&instance.definition))
            && self.state.as_ref().is_none_or(|s| *s == instance.state)
            && self.assignee.is_none_or(|a| instance.assignee == Some(a))
            && self
                .due_at_or_before
                .is_none_or(|t| instance.due_at.is_some_and(|due| due <= t))
    }
}

/// The fingerprint of a request: SHA-256 over its canonical JSON form (object keys
/// sorted at every depth, no whitespace), so the same request always hashes the same
/// whatever order its input's keys came in.
pub fn fingerprint(request: &serde_json::Value) -> [u8; 32] {
    let mut text = String::new();
    canonical(request, &mut text);
    Sha256::digest(text.as_bytes()).into()
}

fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, &serde_json::Value> = map.iter().collect();
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Persists workflow instances, their history, idempotency records and vote delegations,
/// and writes each change's customer audit event in the change's transaction.
///
/// Every implementation must pass `portal_core::testing::workflow`
/// ([`workflow_store_conformance!`](crate::workflow_store_conformance)).
///
/// # Errors
///
/// - [`StoreError::Conflict`] with [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists)
///   (`workflow`) from [`create`](Self::create) for a duplicate id.
/// - [`StoreError::Conflict`] with [`Conflict::Version`](crate::store::Conflict::Version)
///   from [`apply`](Self::apply) if `expected_version` is stale; nothing is written.
/// - [`StoreError::Conflict`] with
///   [`Conflict::IdempotencyKeyReused`](crate::store::Conflict::IdempotencyKeyReused) from
///   [`apply`](Self::apply) and [`create`](Self::create) if the principal already
///   committed the key with another fingerprint; nothing is written. The key is checked
///   before the version, so a retry of a committed request replays even though its
///   expected version is now stale.
/// - [`StoreError::NotFound`] (`workflow`) from [`apply`](Self::apply) for an instance
///   unknown in that org.
/// - [`StoreError::Unavailable`] or [`StoreError::Backend`] from any method.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Stores a new instance (at version 1) with its creation history entry, its
    /// customer audit event ([`CreateRecord::event`], with its webhook fan-out)
    /// and idempotency record, together. A key the principal already committed
    /// replays ([`Applied::Replayed`], same fingerprint) or is refused (another
    /// fingerprint), writing nothing; of two concurrent calls under one key, one commits
    /// and the other then sees its record.
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError>;

    /// The instance `id` of `org`, if it exists there.
    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError>;

    /// Applies one transition or vote atomically: idempotency check, version check, the
    /// new instance, its history entry, the customer audit event
    /// ([`TransitionRecord::event`], with its webhook fan-out) and the idempotency record
    /// commit together or not at all; a replay, a refusal or a failed event insert
    /// writes no event and no change. This call is where a key is claimed: two calls
    /// with the same principal and key (duplicates racing, possibly on two replicas) are
    /// serialized, and the second sees the first's record and replays it, or is refused
    /// if its fingerprint differs.
    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError>;

    /// The idempotency record of `principal`'s `key` in `org`, if any.
    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Up to `limit` instances of `org` matching `filter`, in id order, after `after`.
    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError>;

    /// Up to `limit` entries of the history of instance `id` of `org`, oldest first (by
    /// version), those after version `after` if given; empty for an unknown instance. A
    /// long history is read page by page.
    async fn history(
        &self,
        org: OrgId,
        id: WorkflowId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Stores a delegation, replacing any earlier one from the same member to the same
    /// member in the same org.
    async fn put_delegation(&self, delegation: &Delegation) -> Result<(), StoreError>;

    /// The delegations `from` made to `to` in `org` (at most one).
    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = serde_json::json!({ "b": 1, "a": { "y": [1, 2], "x": "s" } });
        let b = serde_json::json!({ "a": { "x": "s", "y": [1, 2] }, "b": 1 });
        let c = serde_json::json!({ "a": { "x": "s", "y": [2, 1] }, "b": 1 });
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn merge_patches_follow_rfc_7396() {
        let payload = serde_json::json!({ "a": "b", "c": { "d": "e", "f": "g" }, "keep": [1, 2] });
        let patch = serde_json::json!({ "a": "z", "c": { "f": null, "h": 1 }, "new": { "x": null } });
        assert_eq!(
            PayloadEdit::Merge(patch).applied_to(&payload),
            serde_json::json!({ "a": "z", "c": { "d": "e", "h": 1 }, "keep": [1, 2], "new": {} })
        );
        assert_eq!(
            PayloadEdit::Merge(serde_json::json!(["x"])).applied_to(&payload),
            serde_json::json!(["x"]),
            "a patch that is not an object replaces"
        );
        assert_eq!(
            PayloadEdit::Merge(serde_json::json!({ "a": 1 })).applied_to(&serde_json::json!("text")),
            serde_json::json!({ "a": 1 }),
            "a target that is not an object starts empty"
        );
        assert_eq!(
            PayloadEdit::Replace(serde_json::json!({ "only": true })).applied_to(&payload),
            serde_json::json!({ "only": true })
        );
    }

    #[test]
    fn a_transition_without_edits_is_stored_as_before() {
        assert_eq!(
            serde_json::to_value(EntryKind::transition()).unwrap(),
            serde_json::json!({ "kind": "transition" })
        );
        let old: EntryKind = serde_json::from_value(serde_json::json!({ "kind": "transition" })).unwrap();
        assert_eq!(old, EntryKind::transition());
    }
}
