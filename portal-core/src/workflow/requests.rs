//! The requests and answers of [`WorkflowService`](super::WorkflowService): what a caller
//! sends to create, edit, list and vote, and what it is told about the transitions it may take.

use serde::Serialize;

use super::{AssigneeChange, PayloadEdit, VoteDecision};
use crate::error::{ErrorCode, PortalError};
use crate::ids::UserId;

/// An instance to create. The payload is checked against the definition's payload type.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    /// The definition's name; the latest registered version is used.
    pub definition: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Who works on it; must be a member of the org.
    pub assignee: Option<UserId>,
}

impl NewInstance {
    /// An instance of `definition` carrying the typed `payload`, unassigned.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `payload`) if `payload` does not serialize.
    pub fn new<P: Serialize>(definition: impl Into<String>, payload: &P) -> Result<Self, PortalError> {
        let payload =
            serde_json::to_value(payload).map_err(|err| PortalError::invalid_field("payload", err.to_string()))?;
        Ok(Self {
            definition: definition.into(),
            payload,
            assignee: None,
        })
    }

    /// Assigns it to `user`.
    #[must_use]
    pub fn assigned_to(mut self, user: UserId) -> Self {
        self.assignee = Some(user);
        self
    }
}

/// What a transition changes besides the state, checked like the rest of the request:
/// the edited payload must still be a payload of the definition's type
/// (`validation.invalid_field`, param `payload`) and a new assignee a member of the org
/// (`validation.invalid_field`, param `assignee`). Guards see the instance as it was
/// before the edits. The edits are part of the request's fingerprint and of its history
/// entry ([`EntryKind::Transition`](super::EntryKind::Transition)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edits {
    /// How to change the payload.
    pub payload: Option<PayloadEdit>,
    /// How to change the assignee.
    pub assignee: Option<AssigneeChange>,
}

impl Edits {
    /// No edits.
    pub fn none() -> Self {
        Self::default()
    }

    /// The payload replaced by `payload`.
    #[must_use]
    pub fn replace_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(PayloadEdit::Replace(payload));
        self
    }

    /// The payload changed by the JSON merge patch `patch` (RFC 7396).
    #[must_use]
    pub fn merge_payload(mut self, patch: serde_json::Value) -> Self {
        self.payload = Some(PayloadEdit::Merge(patch));
        self
    }

    /// Assigned to `user`, or unassigned with `None`.
    #[must_use]
    pub fn assign(mut self, user: Option<UserId>) -> Self {
        self.assignee = Some(user.map_or(AssigneeChange::Unassign, AssigneeChange::Assign));
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.payload.is_none() && self.assignee.is_none()
    }
}

/// What to list; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    /// Only instances of this definition.
    pub definition: Option<String>,
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances assigned to this user.
    pub assignee: Option<UserId>,
}

/// A vote on a transition that needs approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteRequest {
    /// The transition voted on.
    pub transition: String,
    /// Approve or reject.
    pub decision: VoteDecision,
    /// The instance version the voter read.
    pub expected_version: u64,
    /// The vote's input (such as a comment); an approve vote must carry the transition's
    /// required input fields.
    pub input: serde_json::Value,
    /// Cast the vote of this member, who delegated it to the actor.
    pub on_behalf_of: Option<UserId>,
}

/// A transition the actor may take now: fire it, or vote on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailableTransition {
    /// Its name.
    pub name: String,
    /// The state it enters.
    pub to: String,
    /// The input fields it requires (of an approving vote, for `by_vote`).
    pub inputs: Vec<String>,
    /// `true` when it happens through approval votes and the actor may cast their own
    /// vote on it now ([`WorkflowService::vote`](super::WorkflowService::vote)); `false`
    /// when the actor may fire it
    /// ([`WorkflowService::transition`](super::WorkflowService::transition)).
    pub by_vote: bool,
}

/// Why a transition would be refused: the code the call would return, and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The code [`WorkflowService::transition`](super::WorkflowService::transition)
    /// would return.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
    /// The refusing guard, for `workflow.guard_failed`.
    pub guard: Option<String>,
}

/// One transition of the definition, checked against the instance and the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionCheck {
    /// Its name.
    pub name: String,
    /// The state it enters.
    pub to: String,
    /// The input fields it requires.
    pub inputs: Vec<String>,
    /// `None` if the actor may fire it now; otherwise why not (for a transition with an
    /// approval rule, always `workflow.approval_required`: it is never fired directly).
    pub refusal: Option<Refusal>,
    /// Whether the actor may cast their own vote on it now (a transition with an approval
    /// rule, in its source state, the actor holding the rule's permission, not the
    /// instance's creator, not having voted on it yet).
    pub by_vote: bool,
}
