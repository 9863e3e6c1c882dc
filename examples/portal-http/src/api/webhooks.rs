//! Webhook operations of [`Api`]: an org's endpoints (create with the secret shown once,
//! list, get, change, delete, rotate the secret), their attempt log, replays of one
//! message or a time range, and the event types an endpoint may take
//! (`portal_core::webhooks::WebhookService`, which authorizes and records each call).

use portal_core::audit::CATALOG;
use portal_core::ids::{OrgId, WebhookEndpointId, WebhookMessageId};
use portal_core::webhooks::{EndpointChanges, NewEndpoint, WebhookService};
use secrecy::ExposeSecret as _;

use super::{Api, PageQuery, parse_time};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

impl Api {
    /// The webhook service.
    pub(crate) fn webhooks(&self) -> &WebhookService {
        &self.inner.webhooks
    }

    /// Every event type an endpoint may subscribe to: the audit catalog, then the host's
    /// own ([`WebhookConfig::extra_event_types`](portal_core::webhooks::WebhookConfig)).
    pub fn webhook_event_types(&self) -> WebhookEventTypeList {
        let catalog = CATALOG.iter().map(|entry| WebhookEventTypeView {
            name: entry.name.to_owned(),
            version: Some(entry.version),
            description: entry.meaning.to_owned(),
        });
        let extra = self
            .webhooks()
            .config()
            .extra_event_types
            .iter()
            .map(|action| WebhookEventTypeView {
                name: action.as_str().to_owned(),
                version: None,
                description: "an event type of this deployment".to_owned(),
            });
        WebhookEventTypeList {
            items: catalog.chain(extra).collect(),
        }
    }

    /// Creates an endpoint of the org; the answer shows its signing secret this once.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`url`,
    /// `description`, `event_types`, `event_types/<i>`); `storage.*`.
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateWebhookEndpointRequest,
    ) -> Result<WebhookEndpointWithSecret, ApiError> {
        let new = NewEndpoint {
            url: body.url,
            description: body.description,
            event_types: body.event_types,
            enabled: body.enabled,
        };
        let (endpoint, secret) = self.webhooks().create(&caller.ctx, org, &new).await?;
        Ok(WebhookEndpointWithSecret {
            endpoint: WebhookEndpointView::new(&endpoint, caller.ctx.now()),
            secret: ShownOnce(secret.expose_secret().to_owned()),
        })
    }

    /// A page of the org's endpoints, in id order.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_webhook_endpoints(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &PageQuery,
    ) -> Result<WebhookEndpointList, ApiError> {
        let page = self.webhooks().list(&caller.ctx, org, &query.page()?).await?;
        let now = caller.ctx.now();
        Ok(WebhookEndpointList {
            items: page.items.iter().map(|e| WebhookEndpointView::new(e, now)).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// One endpoint of the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `webhook.endpoint_not_found` (also another
    /// org's); `storage.*`.
    pub async fn get_webhook_endpoint(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpointView, ApiError> {
        let endpoint = self.webhooks().get(&caller.ctx, org, id).await?;
        Ok(WebhookEndpointView::new(&endpoint, caller.ctx.now()))
    }

    /// Changes an endpoint's URL, description, event types or enabled flag.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` as
    /// [`create_webhook_endpoint`](Self::create_webhook_endpoint);
    /// `webhook.endpoint_not_found`; `storage.*`.
    pub async fn update_webhook_endpoint(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
        body: UpdateWebhookEndpointRequest,
    ) -> Result<WebhookEndpointView, ApiError> {
        let changes = EndpointChanges {
            url: body.url,
            description: body.description,
            event_types: body.event_types,
            enabled: body.enabled,
        };
        let endpoint = self.webhooks().update(&caller.ctx, org, id, &changes).await?;
        Ok(WebhookEndpointView::new(&endpoint, caller.ctx.now()))
    }

    /// Deletes an endpoint, its pending deliveries and its attempt log.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `webhook.endpoint_not_found`; `storage.*`.
    pub async fn delete_webhook_endpoint(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
    ) -> Result<(), ApiError> {
        Ok(self.webhooks().delete(&caller.ctx, org, id).await?)
    }

    /// Rotates an endpoint's signing secret: the new one, shown this once, signs from now
    /// on; the previous one keeps signing beside it for the rotation window.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `webhook.endpoint_not_found`; `storage.*`.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpointWithSecret, ApiError> {
        let (endpoint, secret) = self.webhooks().rotate_secret(&caller.ctx, org, id).await?;
        Ok(WebhookEndpointWithSecret {
            endpoint: WebhookEndpointView::new(&endpoint, caller.ctx.now()),
            secret: ShownOnce(secret.expose_secret().to_owned()),
        })
    }

    /// A page of the endpoint's attempt log, oldest first.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `webhook.endpoint_not_found`; `storage.*`.
    pub async fn list_webhook_attempts(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
        query: &PageQuery,
    ) -> Result<DeliveryAttemptList, ApiError> {
        let page = self.webhooks().attempts(&caller.ctx, org, id, &query.page()?).await?;
        Ok(DeliveryAttemptList {
            items: page.items.iter().map(DeliveryAttemptView::from).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Queues one message of the endpoint again (the same `webhook-id`).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `webhook.endpoint_not_found`;
    /// `webhook.message_not_found`; `storage.*`.
    pub async fn replay_webhook_message(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
        message: WebhookMessageId,
    ) -> Result<ReplayView, ApiError> {
        let queued = self.webhooks().replay_message(&caller.ctx, org, id, message).await?;
        Ok(ReplayView { queued })
    }

    /// Queues again every message of the endpoint whose event occurred in
    /// `[since, until)` and is not waiting already.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`since`, `until`);
    /// `webhook.endpoint_not_found`; `storage.*`.
    pub async fn replay_webhook_range(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WebhookEndpointId,
        body: ReplayRangeRequest,
    ) -> Result<ReplayView, ApiError> {
        let since = parse_time("since", &body.since)?;
        let until = parse_time("until", &body.until)?;
        let queued = self.webhooks().replay_range(&caller.ctx, org, id, since, until).await?;
        Ok(ReplayView { queued })
    }
}
