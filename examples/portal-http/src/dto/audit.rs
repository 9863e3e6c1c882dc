//! The customer audit log's bodies: an event as the org's customers read it, a page of
//! them, and the lines of an export (JSON lines or CSV).

use portal_core::audit::{ActorKind, AuditEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Who did it, as they were at the time.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActorView {
    /// The actor's id (`usr_…`, `key_…`, or the host service's name).
    pub id: String,
    /// `user`, `api_key`, `service`, or `support_staff` (the vendor's staff member
    /// acting through a support grant, not a member of the org).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: ActorKind,
    /// How the actor was shown when it acted, if known.
    pub name: Option<String>,
}

/// Something an event is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTargetView {
    /// Its kind (`user`, `invitation`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// The request an event came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditContextView {
    /// The server's request id (`req_…`, the response's `X-Request-Id`).
    pub request_id: String,
    /// The client's own `X-Request-Id`, when it sent a valid one.
    pub client_request_id: Option<String>,
    /// The client's address, as the server's edge saw it.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// One event of the org's audit log: who did what, to what, from which request, when.
/// `action` and `version` name its schema (`docs/audit-and-webhooks.md`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Its id (`aud_…`); ids sort by time.
    pub id: String,
    /// What happened, such as `member.roles_changed`.
    pub action: String,
    /// The version of the action's schema.
    pub version: u16,
    /// Who did it.
    pub actor: AuditActorView,
    /// What it was done to.
    pub targets: Vec<AuditTargetView>,
    /// The request it came from.
    pub context: AuditContextView,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    /// The action's own fields, as its schema says.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            action: e.action.to_string(),
            version: e.version,
            actor: AuditActorView {
                id: e.actor.id.clone(),
                kind: e.actor.kind,
                name: e.actor.name.clone(),
            },
            targets: e
                .targets
                .iter()
                .map(|t| AuditTargetView {
                    kind: t.kind.clone(),
                    id: t.id.clone(),
                })
                .collect(),
            context: AuditContextView {
                request_id: e.context.request_id.to_string(),
                client_request_id: e.context.client_request_id.clone(),
                ip: e.context.ip.clone(),
                user_agent: e.context.user_agent.clone(),
            },
            occurred_at: e.occurred_at,
            metadata: e.metadata.clone(),
        }
    }
}

/// A page of the org's audit log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    /// The events.
    pub items: Vec<AuditEventView>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// The header line of a CSV export.
pub const AUDIT_CSV_HEADER: &str = "id,occurred_at,action,version,actor_id,actor_type,actor_name,targets,request_id,client_request_id,ip,user_agent,metadata\r\n";

/// One event as a line of a CSV export (RFC 4180, `\r\n` ended), its columns those of
/// [`AUDIT_CSV_HEADER`]: targets as `type:id` joined by `;`, metadata as JSON. Each cell
/// is guarded with [`csv_cell`].
pub fn audit_csv_line(view: &AuditEventView) -> String {
    let targets = view
        .targets
        .iter()
        .map(|t| format!("{}:{}", t.kind, t.id))
        .collect::<Vec<_>>()
        .join(";");
    let occurred_at = view
        .occurred_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let actor_type = match view.actor.kind {
        ActorKind::User => "user",
        ActorKind::ApiKey => "api_key",
        ActorKind::Service => "service",
        ActorKind::SupportStaff => "support_staff",
    };
    let cells = [
        view.id.as_str(),
        &occurred_at,
        &view.action,
        &view.version.to_string(),
        &view.actor.id,
        actor_type,
        view.actor.name.as_deref().unwrap_or(""),
        &targets,
        &view.context.request_id,
        view.context.client_request_id.as_deref().unwrap_or(""),
        view.context.ip.as_deref().unwrap_or(""),
        view.context.user_agent.as_deref().unwrap_or(""),
        &view.metadata.to_string(),
    ];
    let mut line = cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// A CSV cell: a value a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'` (OWASP's CSV injection guard); a
/// value holding a comma, a quote or a line break is quoted, its quotes doubled.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_formulas_are_guarded() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@cmd"), "'@cmd");
        assert_eq!(csv_cell("=a,b"), "\"'=a,b\"");
        assert_eq!(csv_cell(""), "");
    }
}

/// How long the org keeps its audit events: `GET` and `PUT
/// /v1/orgs/{org_id}/audit-retention`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRetentionView {
    /// Days, 7 to 3650; `null` keeps them for ever (the default). Older events are deleted
    /// within minutes of passing it, with their webhook deliveries.
    #[schema(minimum = 7, maximum = 3650, example = 365)]
    pub days: Option<u32>,
}
