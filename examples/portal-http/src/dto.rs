//! Request and response bodies of the `/v1` API, shared by every server: serde for the
//! wire, `utoipa::ToSchema` for the OpenAPI document. Conversions from the core's types
//! live here too, so a framework adapter never builds a body by hand.

use std::collections::BTreeMap;

use portal_core::access::{CustomRole, Effect, RolePermission};
use portal_core::diagnostics::{
    DiagnosticEvent, Explanation, FailureGroup, MemberRoles, SessionSummary, SupportBundle,
};
use portal_core::identity::{ApiKeyRecord, SessionRecord};
use portal_core::ids::{ApiKeyId, InvitationId, OrgId, RequestId, SessionId, UserId, WorkflowId};
use portal_core::tenancy::{Invitation, InvitationState, Membership, Organization, RoleName, User, UserOrg};
use portal_core::workflow::{AvailableTransition, HistoryEntry, Instance};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A secret shown once in a response (a session token, an API key, an invitation
/// token): serialized as a plain string, never printed by `Debug`.
#[derive(Clone, Serialize, ToSchema)]
#[schema(value_type = String)]
#[serde(transparent)]
pub struct ShownOnce(pub String);

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownOnce([REDACTED])")
    }
}

fn roles_of(roles: impl IntoIterator<Item = RoleName>) -> Vec<String> {
    roles.into_iter().map(|r| r.as_str().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

/// `POST /v1/auth/sign-in`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The login email.
    #[schema(example = "ada@acme.example")]
    pub email: String,
    /// The password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
}

/// A signed-in session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResponse {
    /// The session token, shown once: send it as `Authorization: Bearer <token>`, or rely
    /// on the `portal_session` cookie set with this response.
    pub session_token: ShownOnce,
    /// The CSRF token a cookie-authenticated client sends as `X-CSRF-Token` on unsafe
    /// requests (also set as the readable `portal_csrf` cookie).
    pub csrf_token: String,
    /// The session.
    pub session: SessionView,
}

/// A session of the signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    #[schema(value_type = String, example = "ses_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: SessionId,
    /// Its user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// The org requests made with it work in, if any.
    #[schema(value_type = Option<String>)]
    pub active_org: Option<OrgId>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// When it ends whatever happens.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub absolute_expires_at: OffsetDateTime,
    /// Whether this request was made with it.
    pub current: bool,
}

impl SessionView {
    /// The view of `record`; `current` when it is the caller's session.
    pub fn new(record: &SessionRecord, current: Option<SessionId>) -> Self {
        Self {
            id: record.id,
            user: record.user,
            active_org: record.active_org,
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            absolute_expires_at: record.absolute_expires_at,
            current: current == Some(record.id),
        }
    }
}

/// The signed-in user's live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    pub items: Vec<SessionView>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The principal, such as `user:usr_…` or `api_key:key_…`.
    pub principal: String,
    /// The user, for a user principal.
    pub user: Option<UserView>,
    /// The org the request works in, if any.
    #[schema(value_type = Option<String>)]
    pub org: Option<OrgId>,
    /// The session used, if any.
    #[schema(value_type = Option<String>)]
    pub session: Option<SessionId>,
    /// How the caller authenticated.
    pub via: AuthVia,
    /// The orgs the user belongs to, with their roles.
    pub orgs: Vec<MyOrgView>,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthVia {
    /// `Authorization: Bearer` (a session token or an API key): no CSRF token needed.
    Bearer,
    /// The `portal_session` cookie: unsafe methods need `X-CSRF-Token`.
    Cookie,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// The normalized email.
    pub email: String,
    /// The display name.
    pub display_name: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
        }
    }
}

/// `POST /v1/orgs/{org_id}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A name for people, 1 to 100 characters.
    #[schema(example = "nightly export")]
    pub name: String,
    /// What the key may do, as `object action`, such as `cases/* read`.
    #[schema(example = json!(["cases/* read"]))]
    pub scopes: Vec<String>,
    /// When it stops working (RFC 3339); at most a year away.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    /// Its org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Its name.
    pub name: String,
    /// The public prefix of the key, to recognize it.
    pub prefix: String,
    /// What it may do, as `object action`.
    pub scopes: Vec<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(key: &ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            org: key.org,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new API key: the key, shown once, and its record.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key: send it as `Authorization: Bearer <key>`. Only its hash is stored.
    pub key: ShownOnce,
    /// The key's record.
    pub api_key: ApiKeyView,
}

/// An org's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, revoked and expired ones included.
    pub items: Vec<ApiKeyView>,
}

// ---------------------------------------------------------------------------------------
// Tenancy
// ---------------------------------------------------------------------------------------

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    /// Its id.
    #[schema(value_type = String, example = "org_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: OrgId,
    /// Its unique URL name.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Integrator data.
    pub metadata: BTreeMap<String, String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&Organization> for OrgView {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id,
            slug: org.slug.as_str().to_owned(),
            name: org.name.as_str().to_owned(),
            metadata: org.metadata.entries().clone(),
            created_at: org.created_at,
        }
    }
}

/// An org of the caller, with the caller's roles in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrgView {
    /// The org.
    pub org: OrgView,
    /// The caller's roles there.
    pub roles: Vec<String>,
}

impl From<&UserOrg> for MyOrgView {
    fn from(entry: &UserOrg) -> Self {
        Self {
            org: OrgView::from(&entry.org),
            roles: roles_of(entry.membership.roles.iter().cloned()),
        }
    }
}

/// The caller's orgs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrgList {
    /// The orgs.
    pub items: Vec<MyOrgView>,
}

/// `POST /v1/orgs`: the caller becomes its owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// The unique URL name: lowercase letters, digits and dashes.
    #[schema(example = "initech")]
    pub slug: String,
    /// The display name.
    #[schema(example = "Initech")]
    pub name: String,
    /// Integrator data.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A member of an org.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// Their roles.
    pub roles: Vec<String>,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When their roles last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&Membership> for MemberView {
    fn from(m: &Membership) -> Self {
        Self {
            org: m.org,
            user: m.user,
            roles: roles_of(m.roles.iter().cloned()),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// The members.
    pub items: Vec<MemberView>,
    /// The cursor of the next page (`?cursor=`), if any.
    pub next: Option<String>,
}

/// `POST /v1/orgs/{org_id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Who is invited.
    #[schema(example = "new.hire@acme.example")]
    pub email: String,
    /// The roles they get on accepting.
    #[schema(example = json!(["member"]))]
    pub roles: Vec<String>,
}

/// An invitation (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: InvitationId,
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Who is invited.
    pub email: String,
    /// The roles they get.
    pub roles: Vec<String>,
    /// `pending`, `accepted` or `revoked`.
    pub state: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        let state = match &i.state {
            InvitationState::Pending => "pending",
            InvitationState::Accepted { .. } => "accepted",
            InvitationState::Revoked { .. } => "revoked",
        };
        Self {
            id: i.id,
            org: i.org,
            email: i.email.as_str().to_owned(),
            roles: roles_of(i.roles.iter().cloned()),
            state: state.to_owned(),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// A new invitation and its token, shown once (send it to the invitee).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: InvitationView,
    /// The token the invitee accepts with; only its hash is stored.
    pub token: ShownOnce,
}

/// A page of invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// The invitations.
    pub items: Vec<InvitationView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}

/// `POST /v1/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The invitation token.
    #[schema(value_type = String, format = Password)]
    pub token: SecretString,
}

/// A permission of a custom role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissionView {
    /// The object or pattern, such as `reports` or `cases/*`.
    #[schema(example = "reports")]
    pub object: String,
    /// The action or `*`.
    #[schema(example = "read")]
    pub action: String,
    /// `allow` (the default) or `deny`, which wins over any allow.
    #[serde(default)]
    pub effect: EffectView,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EffectView {
    /// Grants the action.
    #[default]
    Allow,
    /// Forbids it.
    Deny,
}

/// A custom role of an org.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    /// Its name; never a built-in role's.
    #[schema(example = "reports-reader")]
    pub name: String,
    /// The role it inherits from.
    #[serde(default)]
    #[schema(example = "viewer")]
    pub parent: Option<String>,
    /// Its own grants and denials.
    pub permissions: Vec<RolePermissionView>,
}

impl From<&CustomRole> for RoleView {
    fn from(role: &CustomRole) -> Self {
        Self {
            name: role.name.as_str().to_owned(),
            parent: role.parent.as_ref().map(|p| p.as_str().to_owned()),
            permissions: role
                .permissions
                .iter()
                .map(|p| RolePermissionView {
                    object: p.object.clone(),
                    action: p.action.clone(),
                    effect: match p.effect {
                        Effect::Allow => EffectView::Allow,
                        Effect::Deny => EffectView::Deny,
                    },
                })
                .collect(),
        }
    }
}

impl RoleView {
    /// The core's role.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`name`, `parent`) for names that are not role names.
    pub fn to_custom_role(&self) -> Result<CustomRole, portal_core::PortalError> {
        Ok(CustomRole {
            name: RoleName::new(&self.name).map_err(|e| e.with_param("name"))?,
            parent: self
                .parent
                .as_deref()
                .map(RoleName::new)
                .transpose()
                .map_err(|e| e.with_param("parent"))?,
            permissions: self
                .permissions
                .iter()
                .map(|p| RolePermission {
                    object: p.object.clone(),
                    action: p.action.clone(),
                    effect: match p.effect {
                        EffectView::Allow => Effect::Allow,
                        EffectView::Deny => Effect::Deny,
                    },
                })
                .collect(),
        })
    }
}

/// An org's custom roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// The roles.
    pub items: Vec<RoleView>,
}

/// `POST /v1/orgs/{org_id}/members/{user_id}/roles`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoleRequest {
    /// A built-in or custom role of the org.
    #[schema(example = "member")]
    pub role: String,
}

// ---------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------

/// A diagnostic event, as the reader may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The request it belongs to.
    #[schema(value_type = String)]
    pub request_id: RequestId,
    /// The W3C trace id, when the request carried `traceparent`.
    pub trace_id: Option<String>,
    /// The org.
    #[schema(value_type = Option<String>)]
    pub org: Option<OrgId>,
    /// Who acted.
    pub actor: Option<String>,
    /// `request`, `authentication`, `access`, `operation`, ...
    pub kind: String,
    /// What happened, such as `workflow.transition`.
    pub name: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// The error code, for a failure.
    pub code: Option<String>,
    /// Structured details (redacted for the org's own admins).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<&DiagnosticEvent> for EventView {
    fn from(e: &DiagnosticEvent) -> Self {
        Self {
            at: e.at,
            request_id: e.request_id,
            trace_id: e.trace_id.clone(),
            org: e.org,
            actor: e.actor.as_ref().map(ToString::to_string),
            kind: e.kind.as_str().to_owned(),
            name: e.name.to_string(),
            outcome: e.outcome.as_str().to_owned(),
            code: e.code.map(|c| c.as_str().to_owned()),
            detail: e.detail.value().clone(),
        }
    }
}

/// A request's events, or a page of a timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events, in journal order.
    pub items: Vec<EventView>,
    /// The cursor of the next page, for a timeline.
    pub next: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationView {
    /// The request.
    #[schema(value_type = String)]
    pub request_id: RequestId,
    /// `support` (everything) or `customer` (the org's own audit view).
    pub viewer: String,
    /// How many of its events the reader may see.
    pub events: usize,
    /// The code that caused the failure, if anything failed.
    pub root_cause: Option<String>,
    /// The operation that failed.
    pub failed_step: Option<String>,
    /// One paragraph for a person.
    pub summary: String,
    /// What the events show.
    #[schema(value_type = Vec<Object>)]
    pub evidence: Vec<serde_json::Value>,
    /// What to do about it.
    pub next_step: Option<String>,
}

impl From<&Explanation> for ExplanationView {
    fn from(x: &Explanation) -> Self {
        Self {
            request_id: x.request_id,
            viewer: serde_json::to_value(x.viewer)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            events: x.events,
            root_cause: x.root_cause.map(|c| c.as_str().to_owned()),
            failed_step: x.failed_step.clone(),
            summary: x.summary.clone(),
            evidence: x.evidence.iter().filter_map(|e| serde_json::to_value(e).ok()).collect(),
            next_step: x.next_step.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Switching a session's org
// ---------------------------------------------------------------------------------------

/// `POST /v1/auth/switch-org`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrgRequest {
    /// The org to work in (`org_…`); the caller must be a member.
    #[schema(example = "org_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub org_id: String,
}

// ---------------------------------------------------------------------------------------
// Workflow history and assignment
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Support bundles
// ---------------------------------------------------------------------------------------

/// Failures of one cause in a support bundle: the same code at the same place.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureGroupView {
    /// The error code.
    pub code: String,
    /// Where: the operation's name, such as `workflow.transition`.
    pub place: String,
    /// How many.
    pub count: u64,
    /// The first one's time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_at: OffsetDateTime,
    /// The last one's time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_at: OffsetDateTime,
    /// The last one's request: explain it with `…/diagnostics/requests/{request_id}/explain`.
    #[schema(value_type = String)]
    pub last_request: RequestId,
}

impl From<&FailureGroup> for FailureGroupView {
    fn from(g: &FailureGroup) -> Self {
        Self {
            code: g.code.as_str().to_owned(),
            place: g.place.clone(),
            count: g.count,
            first_at: g.first_at,
            last_at: g.last_at,
            last_request: g.last_request,
        }
    }
}

/// A member and their roles, in a support bundle.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRolesView {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The member.
    #[schema(value_type = String)]
    pub user: UserId,
    /// Their roles there.
    pub roles: Vec<String>,
}

impl From<&MemberRoles> for MemberRolesView {
    fn from(m: &MemberRoles) -> Self {
        Self {
            org: m.org,
            user: m.user,
            roles: m.roles.clone(),
        }
    }
}

/// A session, as a support bundle describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummaryView {
    /// The session.
    #[schema(value_type = String)]
    pub id: SessionId,
    /// Whose.
    #[schema(value_type = String)]
    pub user: UserId,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl From<&SessionSummary> for SessionSummaryView {
    fn from(s: &SessionSummary) -> Self {
        Self {
            id: s.id,
            user: s.user,
            created_at: s.created_at,
            expires_at: s.expires_at,
            revoked: s.revoked,
        }
    }
}

/// What support needs to start on a customer's problem: recent failures grouped by cause,
/// memberships and roles, and sessions, of an org or of one of its users.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportBundleView {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user, for a user's bundle.
    #[schema(value_type = Option<String>)]
    pub user: Option<UserId>,
    /// `support` (everything) or `customer` (the org's own admins).
    pub viewer: String,
    /// The start of the window looked at.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: OffsetDateTime,
    /// Its end.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub until: OffsetDateTime,
    /// Recent failures, grouped by cause, most frequent first.
    pub failures: Vec<FailureGroupView>,
    /// Whether the window held more events than the bundle read.
    pub truncated: bool,
    /// Memberships and roles: the user's, or the org's members (the first 200).
    pub memberships: Vec<MemberRolesView>,
    /// Sessions: the user's, or those of the org's members; `null` when the server has
    /// no session directory.
    pub sessions: Option<Vec<SessionSummaryView>>,
}

impl SupportBundleView {
    /// The view of `bundle`, a bundle of `org`.
    pub fn new(org: OrgId, bundle: &SupportBundle) -> Self {
        Self {
            org,
            user: bundle.user,
            viewer: serde_json::to_value(bundle.viewer)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            from: bundle.from,
            until: bundle.until,
            failures: bundle.failures.iter().map(FailureGroupView::from).collect(),
            truncated: bundle.truncated,
            memberships: bundle.memberships.iter().map(MemberRolesView::from).collect(),
            sessions: bundle
                .sessions
                .as_ref()
                .map(|s| s.iter().map(SessionSummaryView::from).collect()),
        }
    }
}

/// An org's events in a window as JSON lines: one diagnostic event per line, in journal
/// order, redacted for the org's own admins.
#[derive(Debug)]
pub struct JsonLines {
    /// The lines, each ending in `\n`.
    pub body: Vec<u8>,
    /// How many events.
    pub events: u64,
}
