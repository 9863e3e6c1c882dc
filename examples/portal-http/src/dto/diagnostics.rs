//! Support triage bodies: diagnostic events, a request's explanation, support bundles,
//! and the JSON lines of a journal export.

use portal_core::diagnostics::DiagnosticEvent;
use portal_core::ids::{OrgId, RequestId, SessionId, UserId};
use portal_core::triage::{Explanation, FailureGroup, MemberRoles, SessionSummary, SupportBundle, Viewer};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The wire name of `viewer`: `support` or `customer`.
fn viewer_name(viewer: Viewer) -> String {
    serde_json::to_value(viewer)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

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
    /// The client's own id for the request (its `X-Request-Id`), when it sent a valid
    /// one: recorded beside the server's request id, never in its place.
    pub client_request_id: Option<String>,
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
            client_request_id: e.client_request_id.as_ref().map(ToString::to_string),
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
            viewer: viewer_name(x.viewer),
            events: x.events,
            root_cause: x.root_cause.map(|c| c.as_str().to_owned()),
            failed_step: x.failed_step.clone(),
            summary: x.summary.clone(),
            evidence: x.evidence.iter().filter_map(|e| serde_json::to_value(e).ok()).collect(),
            next_step: x.next_step.clone(),
        }
    }
}

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
            viewer: viewer_name(bundle.viewer),
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
