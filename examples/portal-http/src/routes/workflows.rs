//! Workflow instances and transitions (`Idempotency-Key`, `If-Match`, `ETag`), history,
//! assignment, votes, delegations.

use http::StatusCode;
use http::header::{ETAG, HeaderValue};
use portal_core::ErrorCode;
use portal_core::ids::{OrgId, WorkflowId};

use super::{Request, Response};
use crate::api::{Api, PageQuery, WorkflowQuery};
use crate::dto::{
    AssignWorkflowRequest, CreateWorkflowRequest, DelegationRequest, TransitionRequest, VoteRequestBody, WorkflowView,
};
use crate::error::ApiError;

/// `status` with the instance as JSON and its `ETag`.
fn with_etag(status: StatusCode, view: &WorkflowView) -> Result<Response, ApiError> {
    let etag = HeaderValue::try_from(view.etag())
        .map_err(|_| ApiError::new(ErrorCode::Internal, "an `ETag` that is not a header value"))?;
    Ok(Response::json(status, view)?.with_header(ETAG, etag))
}

/// The path's org and instance.
fn instance(req: &Request) -> Result<(OrgId, WorkflowId), ApiError> {
    Ok((req.id("org_id")?, req.id("workflow_id")?))
}

pub(super) async fn list_workflows(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let query: WorkflowQuery = req.query()?;
    Response::ok(&api.list_workflows(&caller, req.id::<OrgId>("org_id")?, &query).await?)
}

pub(super) async fn create_workflow(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    let view = async {
        let body: CreateWorkflowRequest = req.json()?;
        api.create_workflow(&caller, org, body).await
    }
    .await;
    with_etag(StatusCode::CREATED, &api.authorized_step(&caller, org, view).await?)
}

pub(super) async fn get_workflow(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let (org, id) = instance(&req)?;
    with_etag(StatusCode::OK, &api.get_workflow(&caller, org, id).await?)
}

pub(super) async fn transition_workflow(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    let view = async {
        let body: TransitionRequest = req.json()?;
        let id = req.id::<WorkflowId>("workflow_id")?;
        api.transition_workflow(&caller, org, id, req.param("transition")?, req.if_match(), body)
            .await
    }
    .await;
    with_etag(StatusCode::OK, &api.authorized_step(&caller, org, view).await?)
}

pub(super) async fn workflow_history(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let (org, id) = instance(&req)?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.workflow_history(&caller, org, id, &query).await?)
}

pub(super) async fn assign_workflow(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    let view = async {
        let body: AssignWorkflowRequest = req.json()?;
        let id = req.id::<WorkflowId>("workflow_id")?;
        api.assign_workflow(&caller, org, id, req.if_match(), body).await
    }
    .await;
    with_etag(StatusCode::OK, &api.authorized_step(&caller, org, view).await?)
}

pub(super) async fn vote_workflow(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let org = req.id::<OrgId>("org_id")?;
    let view = async {
        let body: VoteRequestBody = req.json()?;
        let id = req.id::<WorkflowId>("workflow_id")?;
        api.vote_workflow(&caller, org, id, req.if_match(), body).await
    }
    .await;
    with_etag(StatusCode::OK, &api.authorized_step(&caller, org, view).await?)
}

pub(super) async fn delegate_votes(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: DelegationRequest = req.json()?;
    Response::created(&api.delegate_votes(&caller, req.id::<OrgId>("org_id")?, body).await?)
}
