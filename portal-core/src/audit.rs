//! The customer audit log: domain events written through a transactional outbox.
//!
//! An [`AuditEvent`] says who did what in an organization, in the shape customers know
//! from WorkOS Audit Logs and Retraced: an `action` with its schema `version`, the
//! `actor` (id, type and display name at the time), the `targets`, the request
//! `context` (server and client request ids, IP address, user agent), `occurred_at`
//! and `metadata`.
//!
//! Events are not recorded beside a change: a store method that changes something an
//! org's customers audit takes the event as an argument and writes it **in the same
//! transaction** as the change (the outbox). A change without its event cannot commit,
//! and an event without its change cannot exist. [`AuditLog`] reads one org's events
//! back, filtered and page by page. The diagnostics journal stays what it was: support's
//! triage record, which may drop events under load; this log never does.
//!
//! Every action the library writes is in [`CATALOG`] with its version; a host adds its
//! own actions with [`AuditAction::new`] (dotted lowercase names, such as
//! `invoice.paid`). `docs/audit-and-webhooks.md` documents each action's schema.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::context::RequestContext;
use crate::error::PortalError;
use crate::ids::{AuditEventId, IdGenerator, OrgId, RequestId};
use crate::principal::Principal;
use crate::store::StoreError;

/// The longest action name, in bytes.
pub const MAX_ACTION: usize = 64;

/// The most targets one event names.
pub const MAX_TARGETS: usize = 16;

/// What happened: a dotted lowercase name (`member.roles_changed`), 3 to
/// [`MAX_ACTION`] bytes, each segment starting with a letter, made of `a`–`z`, `0`–`9`
/// and `_`, with at least two segments.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuditAction(Cow<'static, str>);

impl AuditAction {
    /// A catalog action; the name is checked by a unit test of the catalog.
    const fn known(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// Validates an action name (a host's own, or one read from a filter).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `action`) if the name breaks the rule above.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        if valid_action(name) {
            Ok(Self(Cow::Owned(name.to_owned())))
        } else {
            Err(PortalError::invalid_field(
                "action",
                "an action is a dotted lowercase name such as `member.removed`, at most 64 bytes",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_action(name: &str) -> bool {
    (3..=MAX_ACTION).contains(&name.len())
        && name.split('.').count() >= 2
        && name.split('.').all(|segment| {
            segment.starts_with(|c: char| c.is_ascii_lowercase())
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

impl fmt::Debug for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AuditAction {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<AuditAction> for String {
    fn from(value: AuditAction) -> Self {
        value.0.into_owned()
    }
}

/// An action the library writes, with the version of its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The action's name.
    pub name: &'static str,
    /// The version of its schema (targets and metadata); it grows when they change.
    pub version: u16,
    /// What it records.
    pub meaning: &'static str,
}

impl CatalogEntry {
    /// The action.
    pub const fn action(&self) -> AuditAction {
        AuditAction::known(self.name)
    }
}

/// The actions the library writes.
pub mod actions {
    use super::CatalogEntry;

    /// A member's roles were replaced. Targets: the member (`user`). Metadata:
    /// `{"before": [role], "after": [role]}`.
    pub const MEMBER_ROLES_CHANGED: CatalogEntry = CatalogEntry {
        name: "member.roles_changed",
        version: 1,
        meaning: "a member's roles were replaced",
    };
    /// A member was added without an invitation (by directory sync). Targets: the member
    /// (`user`). Metadata: `{"roles": [role]}`, the roles they got.
    pub const MEMBER_ADDED: CatalogEntry = CatalogEntry {
        name: "member.added",
        version: 1,
        meaning: "a member was added to the organization without an invitation",
    };
    /// A member was removed. Targets: the member (`user`). Metadata: `{"roles": [role]}`,
    /// the roles they held.
    pub const MEMBER_REMOVED: CatalogEntry = CatalogEntry {
        name: "member.removed",
        version: 1,
        meaning: "a member was removed from the organization",
    };
    /// An invitation was sent. Targets: the invitation. Metadata:
    /// `{"email": "...", "roles": [role], "expires_at": "<RFC 3339>"}`.
    pub const INVITATION_CREATED: CatalogEntry = CatalogEntry {
        name: "invitation.created",
        version: 1,
        meaning: "an invitation to join the organization was sent",
    };
    /// An invitation was accepted. Targets: the invitation and the joining member
    /// (`user`). Metadata: `{"roles": [role]}`, the roles it gave.
    pub const INVITATION_ACCEPTED: CatalogEntry = CatalogEntry {
        name: "invitation.accepted",
        version: 1,
        meaning: "an invitation was accepted and its user joined",
    };
    /// An invitation was revoked. Targets: the invitation. Metadata: `{"email": "..."}`.
    pub const INVITATION_REVOKED: CatalogEntry = CatalogEntry {
        name: "invitation.revoked",
        version: 1,
        meaning: "a pending invitation was revoked",
    };
    /// A webhook endpoint was created. Targets: the endpoint (`webhook_endpoint`).
    /// Metadata: `{"url": "...", "event_types": [action], "enabled": bool}`.
    pub const WEBHOOK_ENDPOINT_CREATED: CatalogEntry = CatalogEntry {
        name: "webhook.endpoint_created",
        version: 1,
        meaning: "a webhook endpoint was created",
    };
    /// A webhook endpoint's URL, description, event types or state changed. Targets: the
    /// endpoint. Metadata: `{"url": "...", "event_types": [action], "enabled": bool}` as
    /// they are after the change.
    pub const WEBHOOK_ENDPOINT_UPDATED: CatalogEntry = CatalogEntry {
        name: "webhook.endpoint_updated",
        version: 1,
        meaning: "a webhook endpoint was changed",
    };
    /// A webhook endpoint was deleted. Targets: the endpoint. Metadata: `{"url": "..."}`.
    pub const WEBHOOK_ENDPOINT_DELETED: CatalogEntry = CatalogEntry {
        name: "webhook.endpoint_deleted",
        version: 1,
        meaning: "a webhook endpoint was deleted",
    };
    /// A webhook endpoint's signing secret was rotated. Targets: the endpoint. Metadata:
    /// `{"previous_valid_until": "<RFC 3339>"}` (never a secret).
    pub const WEBHOOK_SECRET_ROTATED: CatalogEntry = CatalogEntry {
        name: "webhook.secret_rotated",
        version: 1,
        meaning: "a webhook endpoint's signing secret was rotated",
    };
    /// The delivery worker disabled a webhook endpoint after sustained failure. Targets:
    /// the endpoint. Metadata: `{"disable_after_seconds": n}`, how long it had been failing
    /// at least.
    pub const WEBHOOK_ENDPOINT_DISABLED: CatalogEntry = CatalogEntry {
        name: "webhook.endpoint_disabled",
        version: 1,
        meaning: "a webhook endpoint was disabled after failing for too long",
    };
    /// The org's name or metadata changed ([`TenancyService::update_org`](crate::tenancy::TenancyService::update_org)).
    /// Targets: the org (`organization`). Metadata: `{"changed": ["name", "metadata"]}`
    /// (what changed), with `"name": {"before", "after"}` when the name did and
    /// `"metadata_keys"`: the keys added, removed or given another value (never the
    /// values: they are the integrator's).
    pub const ORG_UPDATED: CatalogEntry = CatalogEntry {
        name: "org.updated",
        version: 1,
        meaning: "the organization's name or metadata changed",
    };
    /// The org's pinned API version changed. Targets: the org (`organization`). Metadata:
    /// `{"before": "YYYY-MM-DD", "after": "YYYY-MM-DD"}`.
    pub const ORG_API_VERSION_CHANGED: CatalogEntry = CatalogEntry {
        name: "org.api_version_changed",
        version: 1,
        meaning: "the API version the organization is pinned to changed",
    };
    /// The org's audit log retention changed. Targets: none. Metadata:
    /// `{"before": days or null, "after": days or null}` (`null`: kept for ever).
    pub const AUDIT_RETENTION_CHANGED: CatalogEntry = CatalogEntry {
        name: "audit.retention_changed",
        version: 1,
        meaning: "how long the org's audit events are kept changed",
    };

    // Custom roles, API keys and support grants.

    /// A custom role was defined. Targets: the role (`role`, its name). Metadata:
    /// `{"parent": role or null, "permissions": [{"object", "action", "effect"}]}`, the
    /// role as the org's API shows it (never policy lines).
    pub const ROLE_CREATED: CatalogEntry = CatalogEntry {
        name: "role.created",
        version: 1,
        meaning: "a custom role was defined",
    };
    /// A custom role's permissions or parent were replaced. Targets: the role. Metadata:
    /// `{"before": {"parent", "permissions"}, "after": {"parent", "permissions"}}`.
    pub const ROLE_UPDATED: CatalogEntry = CatalogEntry {
        name: "role.updated",
        version: 1,
        meaning: "a custom role's permissions or parent were replaced",
    };
    /// A custom role was deleted. Targets: the role. Metadata: `{"parent", "permissions"}`
    /// as they were.
    pub const ROLE_DELETED: CatalogEntry = CatalogEntry {
        name: "role.deleted",
        version: 1,
        meaning: "a custom role was deleted",
    };
    /// An API key was created. Targets: the key (`api_key`). Metadata: `{"name": "...",
    /// "prefix": "...", "scopes": ["object action"], "expires_at": "<RFC 3339>" or null}`;
    /// never the secret or its hash.
    pub const API_KEY_CREATED: CatalogEntry = CatalogEntry {
        name: "api_key.created",
        version: 1,
        meaning: "an API key was created",
    };
    /// An API key was revoked. Targets: the key. Metadata: `{"name": "...", "prefix": "..."}`.
    pub const API_KEY_REVOKED: CatalogEntry = CatalogEntry {
        name: "api_key.revoked",
        version: 1,
        meaning: "an API key was revoked",
    };
    /// Support staff were given access to the org. Targets: the grant (`support_grant`)
    /// and the staff member (`user`). Metadata: `{"access": "read_only" or "read_write",
    /// "reason": "...", "expires_at": "<RFC 3339>"}`.
    pub const SUPPORT_GRANT_CREATED: CatalogEntry = CatalogEntry {
        name: "support_grant.created",
        version: 1,
        meaning: "support staff were given access to the organization",
    };
    /// Support staff first entered the org through a support grant (written once per
    /// grant). Actor: the staff member (`support_staff`, their display name then).
    /// Targets: the grant (`support_grant`) and the org (`organization`). Metadata:
    /// `{"access": "read_only" or "read_write", "expires_at": "<RFC 3339>"}`.
    pub const SUPPORT_GRANT_USED: CatalogEntry = CatalogEntry {
        name: "support_grant.used",
        version: 1,
        meaning: "support staff first used their access to the organization",
    };
    /// A support grant was revoked before it ended. Targets: the grant and the staff
    /// member. Metadata: `{"access": ..., "expires_at": "<RFC 3339>"}`.
    pub const SUPPORT_GRANT_REVOKED: CatalogEntry = CatalogEntry {
        name: "support_grant.revoked",
        version: 1,
        meaning: "a support grant was revoked",
    };

    // The identity events of a member: written once per org the user belongs to
    // (`identity::UserAuditEvent`), each filed under its org; targets: the user (`user`).

    /// A member signed in (a session started). Targets: the user. Metadata:
    /// `{"method": "password" | "mfa" | "sign_up", "session": "ses_…"}`.
    pub const USER_SIGNED_IN: CatalogEntry = CatalogEntry {
        name: "user.signed_in",
        version: 1,
        meaning: "a member signed in and a session started",
    };
    /// A member signed out (revoked a session of theirs). Targets: the user. Metadata:
    /// `{"session": "ses_…", "reason": "sign_out" | "revoked"}`.
    pub const USER_SIGNED_OUT: CatalogEntry = CatalogEntry {
        name: "user.signed_out",
        version: 1,
        meaning: "a member signed out or revoked one of their sessions",
    };
    /// Every live session of a member was revoked at once: they signed out everywhere, or
    /// the host reset their second factors. Targets: the user. Metadata:
    /// `{"sessions_revoked": n}` (how many were live, at least 1), with `"reset": true`
    /// and its `"reason"` for a reset (the actor is then the host's service). Not written for the sessions a
    /// password change or reset ends: those events say so themselves.
    pub const USER_SESSIONS_REVOKED: CatalogEntry = CatalogEntry {
        name: "user.sessions_revoked",
        version: 1,
        meaning: "every session of a member was revoked (they signed out everywhere, or the host reset their second factors)",
    };
    /// A member's password was changed or set. Targets: the user. Metadata:
    /// `{"method": "change" | "set"}` (`change`: with the current one; `set`: a first
    /// password, or one set by the host's service).
    pub const USER_PASSWORD_CHANGED: CatalogEntry = CatalogEntry {
        name: "user.password_changed",
        version: 1,
        meaning: "a member's password was changed",
    };
    /// A member's password was reset with a mailed link. Targets: the user. Metadata: none.
    pub const USER_PASSWORD_RESET: CatalogEntry = CatalogEntry {
        name: "user.password_reset",
        version: 1,
        meaning: "a member reset their password with a mailed link",
    };
    /// A member confirmed a second factor. Targets: the user. Metadata:
    /// `{"factor": "totp"}`.
    pub const USER_MFA_ENROLLED: CatalogEntry = CatalogEntry {
        name: "user.mfa_enrolled",
        version: 1,
        meaning: "a member enrolled a second factor",
    };
    /// A member's second factor was removed, by them or by the host's reset of their
    /// factors. Targets: the user. Metadata: `{"factor": "totp"}`, with `"reset": true`
    /// and the host's `"reason"` for a reset.
    pub const USER_MFA_REMOVED: CatalogEntry = CatalogEntry {
        name: "user.mfa_removed",
        version: 1,
        meaning: "a member's second factor was removed (by them, or by the host's reset)",
    };
    /// A member registered a passkey. Targets: the user. Metadata: `{"passkey": "pky_…",
    /// "name": the user's name for it}`.
    pub const USER_PASSKEY_ADDED: CatalogEntry = CatalogEntry {
        name: "user.passkey_added",
        version: 1,
        meaning: "a member registered a passkey",
    };
    /// A passkey of a member was removed, by them or by the host's reset of their factors.
    /// Targets: the user. Metadata: `{"passkey": "pky_…", "name": the user's name for
    /// it}`, with `"reset": true` and the host's `"reason"` for a reset.
    pub const USER_PASSKEY_REMOVED: CatalogEntry = CatalogEntry {
        name: "user.passkey_removed",
        version: 1,
        meaning: "a member's passkey was removed (by them, or by the host's reset)",
    };
    /// A member replaced their recovery codes. Targets: the user. Metadata: none (never a
    /// code).
    pub const USER_RECOVERY_CODES_REGENERATED: CatalogEntry = CatalogEntry {
        name: "user.recovery_codes_regenerated",
        version: 1,
        meaning: "a member replaced their second factor's recovery codes",
    };
    /// A member's email address changed (they confirmed a link mailed to the new one).
    /// Targets: the user. Metadata: `{"before": "old@…", "after": "new@…"}`.
    pub const USER_EMAIL_CHANGED: CatalogEntry = CatalogEntry {
        name: "user.email_changed",
        version: 1,
        meaning: "a member changed their email address",
    };
    /// The org's policy "members must use a second factor" was set. Targets: the org
    /// (`organization`). Metadata: `{"before": bool, "after": bool}`.
    pub const ORG_MFA_POLICY_CHANGED: CatalogEntry = CatalogEntry {
        name: "org.mfa_policy_changed",
        version: 1,
        meaning: "whether the organization requires its members to use a second factor changed",
    };

    // Workflows.

    /// A workflow instance was created. Targets: the instance (`workflow`), and the
    /// assignee (`user`) if it has one. Metadata: `{"definition": name,
    /// "definition_version": n, "state": initial state, "assignee": id or null,
    /// "version": 1}`. Never the payload.
    pub const WORKFLOW_CREATED: CatalogEntry = CatalogEntry {
        name: "workflow.created",
        version: 1,
        meaning: "a workflow instance was created",
    };
    /// A transition was fired on a workflow instance. Targets: the instance (`workflow`).
    /// Metadata: `{"definition": name, "transition": name, "from": state, "to": state,
    /// "version": the instance version it produced}`, and `"assignee": id or null` when
    /// the transition also changed the assignee. Never the payload or the input.
    pub const WORKFLOW_TRANSITIONED: CatalogEntry = CatalogEntry {
        name: "workflow.transitioned",
        version: 1,
        meaning: "a transition was fired on a workflow instance",
    };
    /// An approval vote was cast on a workflow instance. Targets: the instance
    /// (`workflow`), and the member on whose behalf a delegate voted (`user`). Metadata:
    /// `{"definition": name, "transition": the transition voted on, "decision": "approve"
    /// or "reject", "on_behalf_of": id or null, "fired": the transition the vote fired or
    /// null, "from": state, "to": state, "version": n}`.
    pub const WORKFLOW_VOTED: CatalogEntry = CatalogEntry {
        name: "workflow.voted",
        version: 1,
        meaning: "an approval vote was cast on a workflow instance",
    };
    /// A workflow instance's assignee was changed on its own. Targets: the instance
    /// (`workflow`), and the new assignee (`user`) if any. Metadata: `{"definition": name,
    /// "state": state, "previous": id or null, "assignee": id or null, "version": n}`.
    pub const WORKFLOW_ASSIGNED: CatalogEntry = CatalogEntry {
        name: "workflow.assigned",
        version: 1,
        meaning: "a workflow instance was assigned or unassigned",
    };
}

/// Every action the library writes.
pub const CATALOG: &[CatalogEntry] = &[
    actions::MEMBER_ROLES_CHANGED,
    actions::MEMBER_ADDED,
    actions::MEMBER_REMOVED,
    actions::INVITATION_CREATED,
    actions::INVITATION_ACCEPTED,
    actions::INVITATION_REVOKED,
    actions::WEBHOOK_ENDPOINT_CREATED,
    actions::WEBHOOK_ENDPOINT_UPDATED,
    actions::WEBHOOK_ENDPOINT_DELETED,
    actions::WEBHOOK_SECRET_ROTATED,
    actions::WEBHOOK_ENDPOINT_DISABLED,
    actions::ORG_UPDATED,
    actions::ORG_API_VERSION_CHANGED,
    actions::AUDIT_RETENTION_CHANGED,
    // Custom roles, API keys and support grants.
    actions::ROLE_CREATED,
    actions::ROLE_UPDATED,
    actions::ROLE_DELETED,
    actions::API_KEY_CREATED,
    actions::API_KEY_REVOKED,
    actions::SUPPORT_GRANT_CREATED,
    actions::SUPPORT_GRANT_USED,
    actions::SUPPORT_GRANT_REVOKED,
    actions::USER_SIGNED_IN,
    actions::USER_SIGNED_OUT,
    actions::USER_SESSIONS_REVOKED,
    actions::USER_PASSWORD_CHANGED,
    actions::USER_PASSWORD_RESET,
    actions::USER_MFA_ENROLLED,
    actions::USER_MFA_REMOVED,
    actions::USER_RECOVERY_CODES_REGENERATED,
    actions::USER_PASSKEY_ADDED,
    actions::USER_PASSKEY_REMOVED,
    actions::USER_EMAIL_CHANGED,
    actions::ORG_MFA_POLICY_CHANGED,
    actions::WORKFLOW_CREATED,
    actions::WORKFLOW_TRANSITIONED,
    actions::WORKFLOW_VOTED,
    actions::WORKFLOW_ASSIGNED,
];

/// The kind of an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person.
    User,
    /// An API key of the org.
    ApiKey,
    /// The host service's own code.
    Service,
    /// A member of the vendor's platform staff acting in the org through a support grant
    /// (not a member of the org).
    SupportStaff,
}

/// Who did it, as they were at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    /// The principal's id (`usr_…`, `key_…`, or the service's name).
    pub id: String,
    /// What kind of actor it is.
    #[serde(rename = "type")]
    pub kind: ActorKind,
    /// How the actor was shown when it acted (a user's display name), if known.
    pub name: Option<String>,
}

impl AuditActor {
    /// The vendor's staff member `staff`, acting through a support grant, shown as `name`.
    pub fn support_staff(staff: crate::ids::UserId, name: Option<String>) -> Self {
        Self {
            id: staff.to_string(),
            kind: ActorKind::SupportStaff,
            name,
        }
    }

    /// The actor for `principal`, shown as `name`.
    pub fn new(principal: &Principal, name: Option<String>) -> Self {
        let (id, kind) = match principal {
            Principal::User(user) => (user.to_string(), ActorKind::User),
            Principal::ApiKey { key, .. } => (key.to_string(), ActorKind::ApiKey),
            Principal::Service(service) => (service.to_string(), ActorKind::Service),
        };
        Self { id, kind, name }
    }
}

/// Something an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTarget {
    /// Its kind (`user`, `invitation`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

impl AuditTarget {
    /// A target of `kind` with the id `id`.
    pub fn new(kind: &str, id: impl fmt::Display) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_string(),
        }
    }
}

/// The request an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditContext {
    /// The server's request id.
    pub request_id: RequestId,
    /// The id the client gave its request, if any.
    pub client_request_id: Option<String>,
    /// The client's address, if the host's edge gave it.
    pub ip: Option<String>,
    /// The client's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
}

impl AuditContext {
    /// The context of `ctx`'s request.
    pub fn of(ctx: &RequestContext) -> Self {
        Self {
            request_id: ctx.request_id(),
            client_request_id: ctx.client_request_id().map(|id| id.as_str().to_owned()),
            ip: ctx.client_ip().map(|ip| ip.to_string()),
            user_agent: ctx.user_agent().map(str::to_owned),
        }
    }
}

/// One event of an org's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Its id; ids sort by the time they were made, and the log reads in id order. A store
    /// refuses an event whose id is already in its org's log
    /// ([`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists), `audit event`).
    pub id: AuditEventId,
    /// The org whose log it belongs to.
    pub org: OrgId,
    /// What happened.
    pub action: AuditAction,
    /// The version of the action's schema.
    pub version: u16,
    /// Who did it.
    pub actor: AuditActor,
    /// What it was done to (at most [`MAX_TARGETS`]).
    pub targets: Vec<AuditTarget>,
    /// The request it came from.
    pub context: AuditContext,
    /// When it happened, to the microsecond (what every store keeps).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The action's own fields, as its schema says.
    pub metadata: serde_json::Value,
}

impl AuditEvent {
    /// A catalog event `entry` in `org`, done by `actor` during `ctx`'s request, at its
    /// time, with no targets or metadata yet.
    pub fn new(
        ctx: &RequestContext,
        ids: &dyn IdGenerator,
        org: OrgId,
        entry: CatalogEntry,
        actor: AuditActor,
    ) -> Self {
        Self {
            id: AuditEventId::generate(ids, ctx.now()),
            org,
            action: entry.action(),
            version: entry.version,
            actor,
            targets: Vec::new(),
            context: AuditContext::of(ctx),
            occurred_at: crate::time::truncate_to_micros(ctx.now()),
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Adds a target.
    #[must_use]
    pub fn target(mut self, target: AuditTarget) -> Self {
        self.targets.push(target);
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The ids of its targets, for a store's target index.
    pub fn target_ids(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.id.as_str())
    }
}

/// A filter over an org's audit log. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events by the actor with this id.
    pub actor: Option<String>,
    /// Only events with a target of this id.
    pub target: Option<String>,
    /// Only events that occurred at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events that occurred before this time.
    pub until: Option<OffsetDateTime>,
}

impl AuditQuery {
    /// Whether `event` passes the filter; the reference every store answers like.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.action.as_ref().is_none_or(|a| *a == event.action)
            && self.actor.as_ref().is_none_or(|a| *a == event.actor.id)
            && self
                .target
                .as_ref()
                .is_none_or(|t| event.target_ids().any(|id| id == t))
            && self.since.is_none_or(|s| event.occurred_at >= s)
            && self.until.is_none_or(|u| event.occurred_at < u)
    }
}

/// Reads an org's audit log.
///
/// The events are written by the stores whose changes they describe, in the same
/// transaction; this port only reads them back. Every implementation must pass
/// `portal_core::testing::audit` (run it with `portal_core::audit_log_conformance!`,
/// feature `testing`).
///
/// # Errors
///
/// [`StoreError::Unavailable`] when the backend cannot be reached, and
/// [`StoreError::Backend`] or [`StoreError::Corrupt`] for other failures.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Up to `limit` events of `org` that pass `query`, in ascending id order, after the
    /// event `after` when it is given. Another org's events are never read.
    async fn list(
        &self,
        org: OrgId,
        query: &AuditQuery,
        after: Option<AuditEventId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// How many days `org` keeps its events, or `None` (the default) for ever.
    async fn retention(&self, org: OrgId) -> Result<Option<u32>, StoreError>;

    /// Sets how many days `org` keeps its events (`None`: for ever) and writes `event`
    /// (`audit.retention_changed`), in one transaction.
    async fn set_retention(&self, org: OrgId, days: Option<u32>, event: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes, in every org with a retention, the events that occurred more than its
    /// days before `now`, with their webhook deliveries and attempts; returns how many
    /// events. Orgs without a retention lose nothing.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// The fewest days an org may keep its audit events: more than the webhook retry
/// schedule (about three days), so no pending delivery loses its event.
pub const MIN_RETENTION_DAYS: u32 = 7;

/// The most days an org may set (ten years); longer is `None`, for ever.
pub const MAX_RETENTION_DAYS: u32 = 3650;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_action_is_a_valid_unique_name() {
        let mut seen = std::collections::BTreeSet::new();
        for entry in CATALOG {
            assert!(valid_action(entry.name), "{} is not a valid action name", entry.name);
            assert!(seen.insert(entry.name), "{} is listed twice", entry.name);
            assert!(entry.version >= 1);
        }
    }

    #[test]
    fn action_names_are_dotted_lowercase() {
        for good in ["member.removed", "invoice.paid_late", "a.b", "x1.y2.z3"] {
            assert!(AuditAction::new(good).is_ok(), "{good}");
        }
        for bad in [
            "member",
            "Member.removed",
            ".x",
            "x.",
            "x..y",
            "x.1y",
            "x.y-z",
            &"a.".repeat(40),
            "",
        ] {
            let err = AuditAction::new(bad).expect_err(bad);
            assert_eq!(err.param(), Some("action"), "{bad}");
        }
    }
}
