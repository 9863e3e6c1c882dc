//! Workflow bodies: instances with the transitions the caller may take, creation and
//! transitions, history, assignment, approval votes and vote delegation.

use portal_core::ids::{OrgId, RequestId, UserId, WorkflowId};
use portal_core::workflow::{AvailableTransition, HistoryEntry, Instance};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A transition the caller may take now: fire it, or (`by_vote`) vote on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    /// Its name (the `{transition}` of the transition route, or the `transition` of a vote).
    pub name: String,
    /// The state it enters.
    pub to: String,
    /// The input fields it requires (of an approving vote, for `by_vote`).
    pub inputs: Vec<String>,
    /// `true`: it happens through approval votes, and the caller may cast theirs now with
    /// `POST …/votes`; `false`: the caller may fire it with `POST …/transitions/{name}`.
    pub by_vote: bool,
}

impl From<AvailableTransition> for TransitionView {
    fn from(t: AvailableTransition) -> Self {
        Self {
            name: t.name,
            to: t.to,
            inputs: t.inputs,
            by_vote: t.by_vote,
        }
    }
}

/// A workflow instance, with what the caller may do with it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    /// Its id.
    #[schema(value_type = String, example = "wf_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: WorkflowId,
    /// Its org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The definition's name, such as `support_case`.
    pub definition: String,
    /// The definition's version.
    pub definition_version: u32,
    /// The current state.
    pub state: String,
    /// The instance version; the `ETag` is `"<version>"`, and a transition sends it back as
    /// `If-Match`.
    pub version: u64,
    /// Who works on it.
    #[schema(value_type = Option<String>)]
    pub assignee: Option<UserId>,
    /// The payload.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When it is due, if its state has a deadline.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<OffsetDateTime>,
    /// The transitions the caller may fire now.
    pub available_transitions: Vec<TransitionView>,
}

impl WorkflowView {
    /// The view of `instance` with the caller's `available` transitions.
    pub fn new(instance: Instance, available: Vec<AvailableTransition>) -> Self {
        Self {
            id: instance.id,
            org: instance.org,
            definition: instance.definition,
            definition_version: instance.definition_version,
            state: instance.state,
            version: instance.version,
            assignee: instance.assignee,
            payload: instance.payload,
            created_by: instance.created_by.to_string(),
            created_at: instance.created_at,
            updated_at: instance.updated_at,
            due_at: instance.due_at,
            available_transitions: available.into_iter().map(TransitionView::from).collect(),
        }
    }

    /// The `ETag` of this version: `"<version>"`.
    pub fn etag(&self) -> String {
        crate::request::etag(self.version)
    }
}

/// A page of workflow instances.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    /// The instances, each with the caller's available transitions.
    pub items: Vec<WorkflowView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}

/// `POST /v1/orgs/{org_id}/workflows`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflowRequest {
    /// The definition: `support_case`, `return_request` or `quote_approval`.
    #[schema(example = "support_case")]
    pub definition: String,
    /// The payload, of the definition's type.
    #[schema(value_type = Object, example = json!({"subject": "The export button does nothing"}))]
    pub payload: serde_json::Value,
    /// Who works on it; a member of the org.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<String>,
}

/// `POST /v1/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The transition's input fields, such as `{"priority": "high"}` for `triage`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object, example = json!({"priority": "high"}))]
    pub input: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// One entry of a workflow instance's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryView {
    /// The instance version this entry produced (1 for creation).
    pub version: u64,
    /// What happened: `created`, `transition`, `assigned` or `vote`.
    #[schema(example = "transition")]
    pub kind: String,
    /// The transition's name (for a vote, the transition that fired, or the one voted on
    /// when none fired); empty for creation and assignment.
    pub transition: String,
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// Who acted, such as `usr_…`.
    pub actor: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The transition's input; `{}` for creation and assignment.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// What the entry changed besides the state, by kind: for `transition` the edits made
    /// (`payload`, `assignee`), for `assigned` `previous` and `assignee`, for `vote`
    /// `decision` and `on_behalf_of`; empty for `created`.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    /// The request that did it: give it to support.
    #[schema(value_type = String)]
    pub request_id: RequestId,
}

impl From<&HistoryEntry> for HistoryEntryView {
    fn from(entry: &HistoryEntry) -> Self {
        let mut changes = serde_json::to_value(&entry.kind).unwrap_or_else(|_| empty_object());
        let kind = match &mut changes {
            serde_json::Value::Object(fields) => fields
                .remove("kind")
                .and_then(|k| k.as_str().map(str::to_owned))
                .unwrap_or_default(),
            _ => String::new(),
        };
        if !changes.is_object() {
            changes = empty_object();
        }
        Self {
            version: entry.version,
            kind,
            transition: entry.transition.clone(),
            from: entry.from.clone(),
            to: entry.to.clone(),
            actor: entry.actor.to_string(),
            at: entry.at,
            input: if entry.input.is_null() {
                empty_object()
            } else {
                entry.input.clone()
            },
            changes,
            request_id: entry.request_id,
        }
    }
}

/// A workflow instance's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryList {
    /// The entries, by version.
    pub items: Vec<HistoryEntryView>,
    /// The cursor of the next page, if there are more entries.
    pub next: Option<String>,
}

/// `PUT /v1/orgs/{org_id}/workflows/{workflow_id}/assignee`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignWorkflowRequest {
    /// The member to assign it to (`usr_…`), or `null` to unassign it. Required.
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, required = true)]
    pub assignee: Option<String>,
}

/// How a vote goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoteChoice {
    /// In favour of the transition.
    Approve,
    /// Against it: fires the approval rule's rejection transition.
    Reject,
}

impl From<VoteChoice> for portal_core::workflow::VoteDecision {
    fn from(choice: VoteChoice) -> Self {
        match choice {
            VoteChoice::Approve => Self::Approve,
            VoteChoice::Reject => Self::Reject,
        }
    }
}

/// `POST /v1/orgs/{org_id}/workflows/{workflow_id}/votes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteRequestBody {
    /// The transition voted on, one with an approval rule (such as `approve`).
    #[schema(example = "approve")]
    pub transition: String,
    /// `approve` or `reject`.
    pub decision: VoteChoice,
    /// The vote's input (such as a comment); an approving vote carries the transition's
    /// required input fields.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Cast the vote of this member (`usr_…`), who delegated their vote to the caller.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
}

/// `POST /v1/orgs/{org_id}/delegations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationRequest {
    /// The member who may cast the caller's votes (`usr_…`).
    pub to: String,
    /// From when (RFC 3339, inclusive); default now.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// Until when (RFC 3339, exclusive); after `starts_at`.
    #[schema(example = "2026-12-24T00:00:00Z")]
    pub ends_at: String,
}

/// A member's approval votes delegated to another member for a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct DelegationView {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Whose votes are delegated.
    #[schema(value_type = String)]
    pub from: UserId,
    /// Who may cast them.
    #[schema(value_type = String)]
    pub to: UserId,
    /// From when (inclusive).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// Until when (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&portal_core::workflow::Delegation> for DelegationView {
    fn from(d: &portal_core::workflow::Delegation) -> Self {
        Self {
            org: d.org,
            from: d.from,
            to: d.to,
            starts_at: d.starts_at,
            ends_at: d.ends_at,
            created_at: d.created_at,
        }
    }
}

/// A field that must be present but may be `null`.
fn nullable<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}
