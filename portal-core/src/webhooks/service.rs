//! `WebhookService`: an org manages its webhook endpoints, reads their attempt log and
//! replays messages, authorized through the gate (`webhooks manage`) before any input is
//! validated.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{
    DeliveryAttempt, EndpointSecrets, EndpointUrl, EventTypes, MAX_DESCRIPTION, Replay, UrlPolicy, WebhookEndpoint,
    WebhookSecret, WebhookStore,
};
use crate::access::permissions::WEBHOOKS_MANAGE;
use crate::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::ids::{IdGenerator, OrgId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId};
use crate::store::{Page, PageRequest};
use crate::tenancy::TenancyStore;

/// The most endpoints or attempts one page holds.
pub const MAX_WEBHOOK_PAGE: usize = 100;

/// How the service validates endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Which hosts beyond the public internet an endpoint may name.
    pub url_policy: UrlPolicy,
    /// The host's own event types an endpoint may subscribe to, beside the catalog.
    pub extra_event_types: Vec<AuditAction>,
    /// How long the previous secret still signs after a rotation (24 hours by default).
    pub rotation_window: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url_policy: UrlPolicy::default(),
            extra_event_types: Vec::new(),
            rotation_window: Duration::hours(24),
        }
    }
}

/// A new endpoint as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// Where deliveries go.
    pub url: String,
    /// A note, at most [`MAX_DESCRIPTION`] bytes.
    pub description: String,
    /// The event types it receives; empty for all.
    pub event_types: Vec<String>,
    /// Whether it receives events from now on.
    pub enabled: bool,
}

/// Changes to an endpoint; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    /// A new URL.
    pub url: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable it (enabling clears its failing state).
    pub enabled: Option<bool>,
}

/// Manages an org's webhook endpoints.
#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    tenancy: Arc<dyn TenancyStore>,
    gate: Gate,
    ids: Arc<dyn IdGenerator>,
    config: WebhookConfig,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

fn endpoint_not_found() -> PortalError {
    PortalError::new(ErrorCode::WebhookEndpointNotFound, "webhook endpoint not found")
}

fn description(text: &str) -> Result<String, PortalError> {
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(PortalError::invalid_field(
            "description",
            format!("a description is at most {MAX_DESCRIPTION} characters without control characters"),
        ));
    }
    Ok(text.to_owned())
}

fn page_size(page: &PageRequest) -> Result<usize, PortalError> {
    let size = page.size()?;
    if size > MAX_WEBHOOK_PAGE {
        return Err(PortalError::invalid_field(
            "limit",
            format!("page size `{size}` is outside 1 to {MAX_WEBHOOK_PAGE}"),
        ));
    }
    Ok(size)
}

fn cursor<T: std::str::FromStr>(page: &PageRequest) -> Result<Option<T>, PortalError> {
    page.after
        .as_ref()
        .map(|c| {
            c.as_str()
                .parse::<T>()
                .map_err(|_| PortalError::invalid_field("cursor", "the cursor is not one this listing returned"))
        })
        .transpose()
}

fn summary(endpoint: &WebhookEndpoint) -> serde_json::Value {
    json!({
        "url": endpoint.url.as_str(),
        "event_types": endpoint.event_types.names(),
        "enabled": endpoint.enabled,
    })
}

impl WebhookService {
    /// A service over `store`, reading actors' names from `tenancy`, deciding through
    /// `gate`.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        tenancy: Arc<dyn TenancyStore>,
        gate: Gate,
        ids: Arc<dyn IdGenerator>,
        config: WebhookConfig,
    ) -> Self {
        Self {
            store,
            tenancy,
            gate,
            ids,
            config,
        }
    }

    /// The service's configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    async fn audit_event(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        entry: CatalogEntry,
        endpoint: WebhookEndpointId,
    ) -> Result<AuditEvent, PortalError> {
        let name = match ctx.principal() {
            Principal::User(user) => self.tenancy.get_user(*user).await?.map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        Ok(
            AuditEvent::new(ctx, &*self.ids, org, entry, AuditActor::new(ctx.principal(), name))
                .target(AuditTarget::new("webhook_endpoint", endpoint)),
        )
    }

    async fn existing(&self, org: OrgId, id: WebhookEndpointId) -> Result<WebhookEndpoint, PortalError> {
        self.store.get_endpoint(org, id).await?.ok_or_else(endpoint_not_found)
    }

    /// Creates an endpoint; returns it and its signing secret, shown this once.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, then `validation.invalid_field` (`url`,
    /// `description`, `event_types`, `event_types/<i>`), `storage.*`.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: &NewEndpoint,
    ) -> Result<(WebhookEndpoint, SecretString), PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "webhooks.create");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let url = EndpointUrl::parse(&new.url, &self.config.url_policy)?;
            let description = description(&new.description)?;
            let event_types = EventTypes::parse(&new.event_types, &self.config.extra_event_types)?;
            let secret = WebhookSecret::generate()?;
            let shown = secret.to_text();
            let now = crate::time::truncate_to_micros(ctx.now());
            let endpoint = WebhookEndpoint {
                id: WebhookEndpointId::generate(&*self.ids, ctx.now()),
                org,
                url,
                description,
                event_types,
                enabled: new.enabled,
                secrets: EndpointSecrets {
                    current: secret,
                    previous: None,
                },
                created_at: now,
                updated_at: now,
                failing_since: None,
            };
            let event = self
                .audit_event(ctx, org, actions::WEBHOOK_ENDPOINT_CREATED, endpoint.id)
                .await?
                .metadata(summary(&endpoint));
            self.store.create_endpoint(&endpoint, &event).await?;
            Ok((endpoint, shown))
        }
        .await;
        op.in_org(org)
            .finish(&result, |(e, _)| json!({ "endpoint": e.id.to_string() }));
        result
    }

    /// A page of the org's endpoints, in id order.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `validation.invalid_field` (`limit`, `cursor`),
    /// `storage.*`.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "webhooks.list");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let size = page_size(page)?;
            let after = cursor::<WebhookEndpointId>(page)?;
            let items = self.store.list_endpoints(org, after, size + 1).await?;
            Ok(Page::from_overfetch(items, size, |e: &WebhookEndpoint| {
                e.id.to_string()
            }))
        }
        .await;
        op.in_org(org)
            .finish(&result, |p: &Page<WebhookEndpoint>| json!({ "count": p.items.len() }));
        result
    }

    /// One endpoint.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`, `storage.*`.
    pub async fn get(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpoint, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "webhooks.get");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            self.existing(org, id).await
        }
        .await;
        op.in_org(org)
            .finish(&result, |_| json!({ "endpoint": id.to_string() }));
        result
    }

    /// Changes an endpoint.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`,
    /// `validation.invalid_field` as [`create`](Self::create), `storage.*`.
    pub async fn update(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
        changes: &EndpointChanges,
    ) -> Result<WebhookEndpoint, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "webhooks.update");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let url = changes
                .url
                .as_deref()
                .map(|u| EndpointUrl::parse(u, &self.config.url_policy))
                .transpose()?;
            let new_description = changes.description.as_deref().map(description).transpose()?;
            let event_types = changes
                .event_types
                .as_deref()
                .map(|t| EventTypes::parse(t, &self.config.extra_event_types))
                .transpose()?;
            let mut endpoint = self.existing(org, id).await?;
            if let Some(url) = url {
                endpoint.url = url;
            }
            if let Some(text) = new_description {
                endpoint.description = text;
            }
            if let Some(types) = event_types {
                endpoint.event_types = types;
            }
            if let Some(enabled) = changes.enabled {
                if enabled && !endpoint.enabled {
                    endpoint.failing_since = None;
                }
                endpoint.enabled = enabled;
            }
            endpoint.updated_at = crate::time::truncate_to_micros(ctx.now());
            let event = self
                .audit_event(ctx, org, actions::WEBHOOK_ENDPOINT_UPDATED, id)
                .await?
                .metadata(summary(&endpoint));
            self.store.update_endpoint(&endpoint, &event).await?;
            Ok(endpoint)
        }
        .await;
        op.in_org(org)
            .finish(&result, |_| json!({ "endpoint": id.to_string() }));
        result
    }

    /// Deletes an endpoint, its pending deliveries and its attempt log.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`, `storage.*`.
    pub async fn delete(&self, ctx: &RequestContext, org: OrgId, id: WebhookEndpointId) -> Result<(), PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "webhooks.delete");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let endpoint = self.existing(org, id).await?;
            let event = self
                .audit_event(ctx, org, actions::WEBHOOK_ENDPOINT_DELETED, id)
                .await?
                .metadata(json!({ "url": endpoint.url.as_str() }));
            self.store.delete_endpoint(org, id, &event).await?;
            Ok(())
        }
        .await;
        op.in_org(org)
            .finish(&result, |_| json!({ "endpoint": id.to_string() }));
        result
    }

    /// Rotates the endpoint's secret: a new one signs from now on, shown this once, and
    /// the current one keeps signing beside it for the rotation window.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`, `storage.*`.
    pub async fn rotate_secret(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
    ) -> Result<(WebhookEndpoint, SecretString), PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "webhooks.rotate_secret");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let mut endpoint = self.existing(org, id).await?;
            let secret = WebhookSecret::generate()?;
            let shown = secret.to_text();
            let now = crate::time::truncate_to_micros(ctx.now());
            let until = now + self.config.rotation_window;
            let previous = std::mem::replace(&mut endpoint.secrets.current, secret);
            endpoint.secrets.previous = Some((previous, until));
            endpoint.updated_at = now;
            let valid_until = until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let event = self
                .audit_event(ctx, org, actions::WEBHOOK_SECRET_ROTATED, id)
                .await?
                .metadata(json!({ "previous_valid_until": valid_until }));
            self.store.update_endpoint(&endpoint, &event).await?;
            Ok((endpoint, shown))
        }
        .await;
        op.in_org(org)
            .finish(&result, |_| json!({ "endpoint": id.to_string() }));
        result
    }

    /// A page of the endpoint's attempt log, oldest first.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`,
    /// `validation.invalid_field` (`limit`, `cursor`), `storage.*`.
    pub async fn attempts(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
        page: &PageRequest,
    ) -> Result<Page<DeliveryAttempt>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "webhooks.attempts");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let size = page_size(page)?;
            let after = cursor::<WebhookAttemptId>(page)?;
            self.existing(org, id).await?;
            let items = self.store.list_attempts(org, id, after, size + 1).await?;
            Ok(Page::from_overfetch(items, size, |a: &DeliveryAttempt| {
                a.id.to_string()
            }))
        }
        .await;
        op.in_org(org)
            .finish(&result, |p: &Page<DeliveryAttempt>| json!({ "count": p.items.len() }));
        result
    }

    /// Queues one message of the endpoint again, due now with a fresh schedule (the same
    /// `webhook-id`).
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `webhook.endpoint_not_found`,
    /// `webhook.message_not_found`, `storage.*`.
    pub async fn replay_message(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
        message: WebhookMessageId,
    ) -> Result<u64, PortalError> {
        self.replay(ctx, org, id, Ok(Replay::Message(message))).await
    }

    /// Queues again every message of the endpoint whose event occurred in
    /// `[since, until)` and is not waiting already; returns how many.
    ///
    /// # Errors
    ///
    /// `org.not_found`, `access.denied`, `validation.invalid_field` (`until` not after
    /// `since`), `webhook.endpoint_not_found`, `storage.*`.
    pub async fn replay_range(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64, PortalError> {
        let replay = if until > since {
            Ok(Replay::Range { since, until })
        } else {
            Err(PortalError::invalid_field("until", "`until` must be after `since`"))
        };
        self.replay(ctx, org, id, replay).await
    }

    async fn replay(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: WebhookEndpointId,
        replay: Result<Replay, PortalError>,
    ) -> Result<u64, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "webhooks.replay");
        let result = async {
            self.gate.authorize(ctx, org, WEBHOOKS_MANAGE, org_not_found).await?;
            let replay = replay?;
            Ok(self.store.replay(org, id, replay, ctx.now()).await?)
        }
        .await;
        op.in_org(org)
            .finish(&result, |n| json!({ "endpoint": id.to_string(), "queued": n }));
        result
    }
}
