//! A request's events and explanation, the timeline, support bundles, the JSON-lines
//! export (streamed, a line a chunk); and `GET /openapi.json`.

use std::sync::OnceLock;

use bytes::Bytes;
use http::StatusCode;

use portal_core::access::permissions as perm;

use super::{JSON, Request, Response, authorized_org};
use crate::api::{Api, ExportQuery, PageQuery, SupportBundleQuery, TimelineQuery};
use crate::error::ApiError;
use crate::openapi::JSON_LINES;

pub(super) async fn request_events(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::DIAGNOSTICS_READ).await?;
    let query: PageQuery = req.query()?;
    Response::ok(
        &api.request_events(&caller, org, req.param("request_id")?, &query)
            .await?,
    )
}

pub(super) async fn explain_request(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::DIAGNOSTICS_READ).await?;
    Response::ok(&api.explain_request(&caller, org, req.param("request_id")?).await?)
}

pub(super) async fn timeline(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::DIAGNOSTICS_READ).await?;
    let query: TimelineQuery = req.query()?;
    Response::ok(&api.timeline(&caller, org, &query).await?)
}

pub(super) async fn support_bundle(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::DIAGNOSTICS_READ).await?;
    let query: SupportBundleQuery = req.query()?;
    Response::ok(&api.support_bundle(&caller, org, &query).await?)
}

/// The export as [`JSON_LINES`], sent as a stream of lines. The lines are assembled in
/// memory today (a window covers at most 31 days); a journal read page by page will feed
/// the same stream.
pub(super) async fn export_events(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::DIAGNOSTICS_READ).await?;
    let query: ExportQuery = req.query()?;
    let lines = api.export_events(&caller, org, &query).await?;
    let body = Bytes::from(lines.body);
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in body
        .iter()
        .enumerate()
        .filter_map(|(i, byte)| (*byte == b'\n').then_some(i + 1))
    {
        chunks.push(Ok(body.slice(start..end)));
        start = end;
    }
    if start < body.len() {
        chunks.push(Ok(body.slice(start..)));
    }
    let stream = futures_util::stream::iter(chunks);
    Ok(Response::stream(StatusCode::OK, JSON_LINES, Box::pin(stream)))
}

pub(super) async fn openapi_json(_api: Api, _req: Request) -> Result<Response, ApiError> {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    let body = DOC.get_or_init(|| Bytes::from(crate::openapi::openapi_json())).clone();
    Ok(Response::bytes(StatusCode::OK, JSON, body))
}

/// `GET /openapi/{version}`: the OpenAPI document of one supported API version
/// ([`version::document`](crate::version::document)); an unknown one is
/// `400 request.unknown_version`.
pub(super) async fn versioned_openapi_json(_api: Api, req: Request) -> Result<Response, ApiError> {
    static DOCS: OnceLock<Vec<Bytes>> = OnceLock::new();
    let version = crate::version::parse(req.param("version")?.as_bytes())?;
    let docs = DOCS.get_or_init(|| {
        crate::version::ApiVersion::all()
            .map(|v| Bytes::from(crate::version::document_json(v)))
            .collect()
    });
    let index = crate::version::ApiVersion::all()
        .position(|v| v == version)
        .unwrap_or(0);
    let body = docs.get(index).cloned().unwrap_or_default();
    Ok(Response::bytes(StatusCode::OK, JSON, body))
}
