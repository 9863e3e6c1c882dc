//! The caller's orgs, orgs, members, invitations, the org's API version.

use portal_core::ids::{InvitationId, OrgId, UserId};

use portal_core::access::permissions as perm;

use super::{Request, Response, authorized_org};
use crate::api::{API_VERSION_MANAGE, Api, PageQuery};
use crate::dto::{AcceptInvitationRequest, ApiVersionView, CreateOrgRequest, InviteRequest, UpdateOrgRequest};
use crate::error::ApiError;

pub(super) async fn list_my_orgs(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_my_orgs(&caller, &query).await?)
}

pub(super) async fn create_org(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: CreateOrgRequest = req.json()?;
    Response::created(&api.create_org(&caller, body).await?)
}

pub(super) async fn get_org(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::ok(&api.get_org(&caller, req.id::<OrgId>("org_id")?).await?)
}

pub(super) async fn update_org(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ORG_WRITE).await?;
    let body: UpdateOrgRequest = req.json()?;
    Response::ok(&api.update_org(&caller, org, body).await?)
}

pub(super) async fn list_members(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_members(&caller, req.id::<OrgId>("org_id")?, &query).await?)
}

pub(super) async fn remove_member(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::MEMBERS_DELETE).await?;
    let user = req.id::<UserId>("user_id")?;
    api.remove_member(&caller, org, user).await?;
    Ok(Response::no_content())
}

pub(super) async fn list_invitations(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::INVITATIONS_READ).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_invitations(&caller, org, &query).await?)
}

pub(super) async fn invite(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::INVITATIONS_CREATE).await?;
    let body: InviteRequest = req.json()?;
    Response::created(&api.invite(&caller, org, body).await?)
}

pub(super) async fn revoke_invitation(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::INVITATIONS_DELETE).await?;
    let invitation = req.id::<InvitationId>("invitation_id")?;
    Response::ok(&api.revoke_invitation(&caller, org, invitation).await?)
}

pub(super) async fn accept_invitation(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: AcceptInvitationRequest = req.json()?;
    Response::ok(&api.accept_invitation(&caller, body).await?)
}

pub(super) async fn get_api_version(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ORG_READ).await?;
    Response::ok(&api.get_api_version(&caller, org).await?)
}

pub(super) async fn set_api_version(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, API_VERSION_MANAGE).await?;
    let body: ApiVersionView = req.json()?;
    Response::ok(&api.set_api_version(&caller, org, body).await?)
}
