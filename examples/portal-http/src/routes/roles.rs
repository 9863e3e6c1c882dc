//! Custom roles, giving and taking a member's role.

use portal_core::ids::{GroupId, UserId};

use portal_core::access::permissions as perm;

use super::{Request, Response, authorized_org};
use crate::api::{Api, PageQuery};
use crate::dto::{AssignRoleRequest, GroupRolesRequest, RoleView};
use crate::error::ApiError;

pub(super) async fn list_roles(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ROLES_READ).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_roles(&caller, org, &query).await?)
}

pub(super) async fn create_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ROLES_MANAGE).await?;
    let body: RoleView = req.json()?;
    Response::created(&api.create_role(&caller, org, body).await?)
}

pub(super) async fn delete_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ROLES_MANAGE).await?;
    api.delete_role(&caller, org, req.param("role")?).await?;
    Ok(Response::no_content())
}

pub(super) async fn assign_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::MEMBERS_WRITE).await?;
    let body: AssignRoleRequest = req.json()?;
    let user = req.id::<UserId>("user_id")?;
    Response::ok(&api.assign_role(&caller, org, user, body).await?)
}

pub(super) async fn unassign_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::MEMBERS_WRITE).await?;
    let user = req.id::<UserId>("user_id")?;
    Response::ok(&api.unassign_role(&caller, org, user, req.param("role")?).await?)
}

/// The owner maps a directory (SCIM) group to roles: `scim configure`, asked before the
/// group id or the body are read.
pub(super) async fn set_group_roles(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::SCIM_CONFIGURE).await?;
    let body: GroupRolesRequest = req.json()?;
    let group = req.id::<GroupId>("group_id")?;
    Response::ok(&api.set_group_roles(&caller, org, group, body).await?)
}
