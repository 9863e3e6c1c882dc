//! Support access grants of an org: give, list and revoke.

use portal_core::access::permissions as perm;
use portal_core::ids::GrantId;

use super::{Request, Response, authorized_org};
use crate::api::{Api, PageQuery};
use crate::dto::CreateSupportGrantRequest;
use crate::error::ApiError;

pub(super) async fn list_support_grants(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::SUPPORT_GRANTS_READ).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_support_grants(&caller, org, &query).await?)
}

pub(super) async fn create_support_grant(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::SUPPORT_GRANTS_CREATE).await?;
    let body: CreateSupportGrantRequest = req.json()?;
    Response::created(&api.create_support_grant(&caller, org, body).await?)
}

pub(super) async fn revoke_support_grant(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::SUPPORT_GRANTS_DELETE).await?;
    let id = req.id::<GrantId>("grant_id")?;
    Response::ok(&api.revoke_support_grant(&caller, org, id).await?)
}
