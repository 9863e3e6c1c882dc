//! The customer audit log: a page of the org's events, and its export streamed as JSON
//! lines or CSV, behind `audit read`; its retention (read with `audit read`, set with
//! `audit manage`).

use http::StatusCode;
use http::header::{self, HeaderValue};

use portal_core::access::permissions as perm;

use super::{Request, Response, authorized_org};
use crate::api::{Api, AuditEventsQuery, AuditExportFormat, AuditExportQuery};
use crate::dto::AuditRetentionView;
use crate::error::ApiError;
use crate::openapi::{CSV, JSON_LINES};

pub(super) async fn list_audit_events(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::AUDIT_READ).await?;
    let query: AuditEventsQuery = req.query()?;
    Response::ok(&api.audit_events(&caller, org, &query).await?)
}

/// The export, streamed a page a chunk as the client reads it.
pub(super) async fn export_audit_events(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::AUDIT_READ).await?;
    let query: AuditExportQuery = req.query()?;
    let (format, body) = api.export_audit_events(&caller, org, &query).await?;
    let (content_type, file) = match format {
        AuditExportFormat::Jsonl => (JSON_LINES, "attachment; filename=\"audit-events.jsonl\""),
        AuditExportFormat::Csv => (CSV, "attachment; filename=\"audit-events.csv\""),
    };
    Ok(Response::stream(StatusCode::OK, content_type, body)
        .with_header(header::CONTENT_DISPOSITION, HeaderValue::from_static(file)))
}

pub(super) async fn get_audit_retention(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::AUDIT_READ).await?;
    Response::ok(&api.audit_retention(&caller, org).await?)
}

pub(super) async fn set_audit_retention(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, perm::AUDIT_MANAGE).await?;
    let body: AuditRetentionView = req.json()?;
    Response::ok(&api.set_audit_retention(&caller, org, body).await?)
}
