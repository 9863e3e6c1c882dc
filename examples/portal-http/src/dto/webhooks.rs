//! Webhook bodies: an org's endpoints (URL, event-type filter, description, enabled), the
//! signing secret shown once, the attempt log, replays and the event types an endpoint
//! may subscribe to, over `portal_core::webhooks`.

use portal_core::ids::{OrgId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId};
use portal_core::webhooks::{DeliveryAttempt, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::common::ShownOnce;

/// `POST /v1/orgs/{org_id}/webhook-endpoints`: a new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpointRequest {
    /// Where deliveries go: `https`, at most 2048 bytes, no credentials or fragment, not a
    /// loopback, private or link-local address (unless the server allows the host).
    #[schema(example = "https://hooks.example.com/portal", max_length = 2048)]
    pub url: String,
    /// A note for the org's admins (at most 256 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 256)]
    pub description: String,
    /// The event types it receives (see `GET /v1/webhook-event-types`); empty or absent
    /// for every event of the org. At most 64.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub event_types: Vec<String>,
    /// Whether it receives events from now on (default `true`).
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// `PATCH /v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}`: what changes; an absent
/// field stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpointRequest {
    /// A new URL (the rules of creation).
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// A new description.
    #[schema(max_length = 256)]
    pub description: Option<String>,
    /// New event types (empty for every event).
    #[schema(max_items = 64)]
    pub event_types: Option<Vec<String>>,
    /// Enable or disable it; enabling a failing endpoint clears its failing state, and its
    /// pending deliveries resume.
    pub enabled: Option<bool>,
}

/// `POST …/webhook-endpoints/{endpoint_id}/replay`: queue again every message of the
/// endpoint whose event occurred in `[since, until)`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRangeRequest {
    /// Inclusive start (RFC 3339).
    #[schema(format = DateTime, example = "2026-12-06T00:00:00Z")]
    pub since: String,
    /// Exclusive end (RFC 3339), after `since`.
    #[schema(format = DateTime, example = "2026-12-07T00:00:00Z")]
    pub until: String,
}

/// An org's webhook endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: WebhookEndpointId,
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Where deliveries go.
    pub url: String,
    /// The note.
    pub description: String,
    /// The event types it receives; empty for every event of the org.
    pub event_types: Vec<String>,
    /// Whether it receives new events.
    pub enabled: bool,
    /// Since when every attempt to it has failed, if they do.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<OffsetDateTime>,
    /// Until when the previous secret (after a rotation) still signs beside the current.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_valid_until: Option<OffsetDateTime>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpointView {
    /// The view of `endpoint` at `now` (a previous secret whose window closed is not shown).
    pub fn new(endpoint: &WebhookEndpoint, now: OffsetDateTime) -> Self {
        Self {
            id: endpoint.id,
            org: endpoint.org,
            url: endpoint.url.as_str().to_owned(),
            description: endpoint.description.clone(),
            event_types: endpoint.event_types.names(),
            enabled: endpoint.enabled,
            failing_since: endpoint.failing_since,
            previous_secret_valid_until: endpoint
                .secrets
                .previous
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| *until > now),
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

/// A new endpoint (or a rotated secret) and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpointView,
    /// The signing secret (`whsec_` and base64), shown only in this answer: give it to the
    /// receiver's Standard Webhooks verifier.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: ShownOnce,
}

/// A page of the org's endpoints, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    /// The endpoints.
    pub items: Vec<WebhookEndpointView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}

/// One delivery attempt of the attempt log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: WebhookAttemptId,
    /// The endpoint.
    #[schema(value_type = String)]
    pub endpoint: WebhookEndpointId,
    /// The message (`webhook-id`, the same on every retry and replay).
    #[schema(value_type = String)]
    pub message_id: WebhookMessageId,
    /// Its number for this message and endpoint (1 for the first).
    pub attempt: u32,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: OffsetDateTime,
    /// `delivered` (a 2xx), `rejected` (another status) or `unreachable` (no answer).
    #[schema(example = "delivered")]
    pub status: String,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u32,
    /// The start of the answer's body (at most 1024 bytes), or why there was none.
    pub response_excerpt: String,
}

impl From<&DeliveryAttempt> for DeliveryAttemptView {
    fn from(attempt: &DeliveryAttempt) -> Self {
        Self {
            id: attempt.id,
            endpoint: attempt.endpoint,
            message_id: attempt.message,
            attempt: attempt.attempt,
            attempted_at: attempt.attempted_at,
            status: attempt.status.as_str().to_owned(),
            http_status: attempt.http_status,
            latency_ms: attempt.latency_ms,
            response_excerpt: attempt.excerpt.clone(),
        }
    }
}

/// A page of an endpoint's attempt log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptList {
    /// The attempts.
    pub items: Vec<DeliveryAttemptView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}

/// How many messages a replay queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// The messages queued again (due now, a fresh retry schedule, the same `webhook-id`).
    pub queued: u64,
}

/// An event type an endpoint may subscribe to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventTypeView {
    /// The action, as deliveries name it in `type`.
    #[schema(example = "member.roles_changed")]
    pub name: String,
    /// The version of its schema (targets and metadata), `null` for the host's own.
    pub version: Option<u16>,
    /// What it records.
    pub description: String,
}

/// Every event type an endpoint may subscribe to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventTypeList {
    /// The catalog's actions, then the host's own.
    pub items: Vec<WebhookEventTypeView>,
}
