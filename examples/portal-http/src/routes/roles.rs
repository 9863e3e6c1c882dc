//! Custom roles, giving and taking a member's role.

use portal_core::ids::{GroupId, UserId};

use portal_core::access::permissions as perm;

use super::{Request, Response, authorized_org};
use crate::api::{Api, PageQuery};
use crate::dto::{AssignRoleRequest, GroupRolesRequest, RoleUpdate, RoleView, WhoCanQuery};
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

/// Replaces a custom role's parent and permissions: `roles manage`, asked before the
/// role's name or the body are read.
pub(super) async fn update_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ROLES_MANAGE).await?;
    let body: RoleUpdate = req.json()?;
    Response::ok(&api.update_role(&caller, org, req.param("role")?, body).await?)
}

/// What a member may do: `roles read` (admins and owners), or only `org read` when the
/// path names the caller, which is decided on the path's text before it is parsed.
pub(super) async fn member_permissions(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let own = caller
        .context()
        .principal()
        .user()
        .is_some_and(|me| req.param("user_id").is_ok_and(|asked| asked == me.to_string()));
    let wanted = if own {
        perm::SELF_PERMISSIONS_READ
    } else {
        perm::ROLES_READ
    };
    let org = authorized_org(&api, &req, &mut caller, wanted).await?;
    let user = req.id::<UserId>("user_id")?;
    Response::ok(&api.member_permissions(&caller, org, user).await?)
}

/// The members who may do an action on an object: `roles read`, asked before the query
/// is read.
pub(super) async fn who_can(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::ROLES_READ).await?;
    let query: WhoCanQuery = req.query()?;
    Response::ok(&api.who_can(&caller, org, &query).await?)
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
