//! An org's webhook endpoints: create (the secret shown once), list, get, change, delete,
//! rotate the secret, the attempt log, replays; and the event types they may take.

use portal_core::access::permissions as perm;
use portal_core::ids::{WebhookEndpointId, WebhookMessageId};

use super::{Request, Response, authorized_org};
use crate::api::{Api, PageQuery};
use crate::dto::{CreateWebhookEndpointRequest, ReplayRangeRequest, UpdateWebhookEndpointRequest};
use crate::error::ApiError;

/// The event types, for any signed-in caller (the same in every org).
pub(super) async fn list_webhook_event_types(api: Api, req: Request) -> Result<Response, ApiError> {
    req.authenticate(&api).await?;
    Response::ok(&api.webhook_event_types())
}

pub(super) async fn list_webhook_endpoints(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_webhook_endpoints(&caller, org, &query).await?)
}

pub(super) async fn create_webhook_endpoint(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let body: CreateWebhookEndpointRequest = req.json()?;
    Response::created(&api.create_webhook_endpoint(&caller, org, body).await?)
}

pub(super) async fn get_webhook_endpoint(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    Response::ok(&api.get_webhook_endpoint(&caller, org, id).await?)
}

pub(super) async fn update_webhook_endpoint(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let body: UpdateWebhookEndpointRequest = req.json()?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    Response::ok(&api.update_webhook_endpoint(&caller, org, id, body).await?)
}

pub(super) async fn delete_webhook_endpoint(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    api.delete_webhook_endpoint(&caller, org, id).await?;
    Ok(Response::no_content())
}

pub(super) async fn rotate_webhook_secret(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    Response::ok(&api.rotate_webhook_secret(&caller, org, id).await?)
}

pub(super) async fn list_webhook_attempts(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_webhook_attempts(&caller, org, id, &query).await?)
}

pub(super) async fn replay_webhook_message(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    let message = req.id::<WebhookMessageId>("message_id")?;
    Response::ok(&api.replay_webhook_message(&caller, org, id, message).await?)
}

pub(super) async fn replay_webhook_range(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::WEBHOOKS_MANAGE).await?;
    let body: ReplayRangeRequest = req.json()?;
    let id = req.id::<WebhookEndpointId>("endpoint_id")?;
    Response::ok(&api.replay_webhook_range(&caller, org, id, body).await?)
}
