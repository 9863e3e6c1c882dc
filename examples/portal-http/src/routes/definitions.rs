//! Workflow definitions: the state machines the deployment runs (states, transitions,
//! Mermaid), read through an org.

use portal_core::ids::OrgId;

use super::{Request, Response};
use crate::api::Api;
use crate::error::ApiError;

pub(super) async fn list_workflow_definitions(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    Response::ok(&api.list_workflow_definitions(&caller, org).await?)
}

pub(super) async fn get_workflow_definition(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    Response::ok(
        &api.get_workflow_definition(&caller, org, req.param("definition")?)
            .await?,
    )
}
