//! Custom roles, giving and taking a member's role.

use portal_core::ids::{OrgId, UserId};

use super::{Request, Response};
use crate::api::{Api, PageQuery};
use crate::dto::{AssignRoleRequest, RoleView};
use crate::error::ApiError;

pub(super) async fn list_roles(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_roles(&caller, req.id::<OrgId>("org_id")?, &query).await?)
}

pub(super) async fn create_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: RoleView = req.json()?;
    Response::created(&api.create_role(&caller, req.id::<OrgId>("org_id")?, body).await?)
}

pub(super) async fn delete_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    api.delete_role(&caller, req.id::<OrgId>("org_id")?, req.param("role")?)
        .await?;
    Ok(Response::no_content())
}

pub(super) async fn assign_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: AssignRoleRequest = req.json()?;
    let (org, user) = (req.id::<OrgId>("org_id")?, req.id::<UserId>("user_id")?);
    Response::ok(&api.assign_role(&caller, org, user, body).await?)
}

pub(super) async fn unassign_role(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let (org, user) = (req.id::<OrgId>("org_id")?, req.id::<UserId>("user_id")?);
    Response::ok(&api.unassign_role(&caller, org, user, req.param("role")?).await?)
}
