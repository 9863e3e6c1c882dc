//! The customer audit log operations of [`Api`]: a page of the org's events, and the
//! export as JSON lines or CSV, read page by page; and their query strings.

use bytes::Bytes;
use portal_core::audit_trail::{AuditFilter, AuditTrailService, MAX_AUDIT_PAGE};
use portal_core::ids::OrgId;
use portal_core::store::{Cursor, PageRequest};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{Api, page_request, parse_time};
use crate::dto::{AUDIT_CSV_HEADER, AuditEventList, AuditEventView, AuditRetentionView, audit_csv_line};
use crate::error::ApiError;
use crate::request::Caller;
use crate::routes::BodyStream;

/// The filters and paging of the org's audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditEventsQuery {
    /// Only this action, such as `member.roles_changed`.
    pub action: Option<String>,
    /// Only events by the actor with this id (`usr_…`, `key_…`, a service's name).
    pub actor: Option<String>,
    /// Only events with a target of this id.
    pub target: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only events before this time (RFC 3339, after `from`).
    pub until: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// The format of an audit log export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditExportFormat {
    /// One JSON event per line (`application/x-ndjson`), each as the listing shows it.
    #[default]
    Jsonl,
    /// RFC 4180 CSV (`text/csv`) with a header line.
    Csv,
}

/// The format and filters of an audit log export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditExportQuery {
    /// `jsonl` (default) or `csv`.
    #[param(inline)]
    pub format: Option<AuditExportFormat>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events by the actor with this id.
    pub actor: Option<String>,
    /// Only events with a target of this id.
    pub target: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only events before this time (RFC 3339, after `from`).
    pub until: Option<String>,
}

/// The filter of a query's fields, the times parsed (`from`, then `until`).
fn filter(
    action: Option<&String>,
    actor: Option<&String>,
    target: Option<&String>,
    from: Option<&str>,
    until: Option<&str>,
) -> Result<AuditFilter, ApiError> {
    Ok(AuditFilter {
        action: action.cloned(),
        actor: actor.cloned(),
        target: target.cloned(),
        since: from.map(|t| parse_time("from", t)).transpose()?,
        until: until.map(|t| parse_time("until", t)).transpose()?,
    })
}

/// An export under way: the next page to read, or none once the last was read.
struct ExportState {
    trail: AuditTrailService,
    caller_ctx: portal_core::RequestContext,
    org: OrgId,
    filter: AuditFilter,
    format: AuditExportFormat,
    next: Option<Cursor>,
}

/// The bytes of one page of an export.
fn render(format: AuditExportFormat, events: &[portal_core::audit::AuditEvent]) -> Result<Bytes, ApiError> {
    let mut out = String::new();
    for event in events {
        let view = AuditEventView::from(event);
        match format {
            AuditExportFormat::Jsonl => {
                let line = serde_json::to_string(&view).map_err(|err| {
                    ApiError::new(
                        portal_core::ErrorCode::Internal,
                        format!("an audit event did not serialize: {err}"),
                    )
                })?;
                out.push_str(&line);
                out.push('\n');
            }
            AuditExportFormat::Csv => out.push_str(&audit_csv_line(&view)),
        }
    }
    Ok(Bytes::from(out))
}

impl Api {
    fn audit_trail(&self) -> &AuditTrailService {
        &self.inner.audit_trail
    }

    /// How long the org keeps its audit events.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn audit_retention(&self, caller: &Caller, org: OrgId) -> Result<AuditRetentionView, ApiError> {
        let days = self.audit_trail().retention(&caller.ctx, org).await?;
        Ok(AuditRetentionView { days })
    }

    /// Sets how long the org keeps its audit events (`audit manage`, owners).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`days`); `storage.*`.
    pub async fn set_audit_retention(
        &self,
        caller: &Caller,
        org: OrgId,
        body: AuditRetentionView,
    ) -> Result<AuditRetentionView, ApiError> {
        let days = self.audit_trail().set_retention(&caller.ctx, org, body.days).await?;
        Ok(AuditRetentionView { days })
    }

    /// A page of the org's audit log, oldest first.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`from`, `until`,
    /// `action`, `actor`, `target`, `limit`, `cursor`); `storage.*`.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &AuditEventsQuery,
    ) -> Result<AuditEventList, ApiError> {
        let filter = filter(
            query.action.as_ref(),
            query.actor.as_ref(),
            query.target.as_ref(),
            query.from.as_deref(),
            query.until.as_deref(),
        )?;
        let page = page_request(query.limit, query.cursor.as_deref())?;
        let events = self.audit_trail().list(&caller.ctx, org, &filter, &page).await?;
        Ok(AuditEventList {
            items: events.items.iter().map(AuditEventView::from).collect(),
            next: events.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// The org's audit log that passes the filters, oldest first, as a stream of
    /// [`MAX_AUDIT_PAGE`] events a chunk (a CSV export starts with its header line): the
    /// first page is read before the stream is returned, so access and input errors are
    /// answered as errors; each later page is read when the client takes the previous
    /// one, through the service again (an error there ends the body early). Never built
    /// whole in memory.
    ///
    /// # Errors
    ///
    /// As [`audit_events`](Self::audit_events), but for `limit` and `cursor`.
    pub async fn export_audit_events(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &AuditExportQuery,
    ) -> Result<(AuditExportFormat, BodyStream), ApiError> {
        let filter = filter(
            query.action.as_ref(),
            query.actor.as_ref(),
            query.target.as_ref(),
            query.from.as_deref(),
            query.until.as_deref(),
        )?;
        let format = query.format.unwrap_or_default();
        let limit = u32::try_from(MAX_AUDIT_PAGE).unwrap_or(super::MAX_PAGE_LIMIT);
        let first = self
            .audit_trail()
            .list(
                &caller.ctx,
                org,
                &filter,
                &PageRequest {
                    after: None,
                    limit: Some(limit),
                },
            )
            .await?;
        let mut head = match format {
            AuditExportFormat::Csv => AUDIT_CSV_HEADER.to_owned().into_bytes(),
            AuditExportFormat::Jsonl => Vec::new(),
        };
        head.extend_from_slice(&render(format, &first.items)?);
        let state = ExportState {
            trail: self.audit_trail().clone(),
            caller_ctx: caller.ctx.clone(),
            org,
            filter,
            format,
            next: first.next,
        };
        let first_chunk = futures_util::stream::once(std::future::ready(Ok(Bytes::from(head))));
        let rest = futures_util::stream::unfold(Some(state), move |state| async move {
            let mut state = state?;
            let after = state.next.take()?;
            let page = state
                .trail
                .list(
                    &state.caller_ctx,
                    state.org,
                    &state.filter,
                    &PageRequest {
                        after: Some(after),
                        limit: Some(limit),
                    },
                )
                .await;
            match page.map_err(ApiError::from).and_then(|page| {
                let bytes = render(state.format, &page.items)?;
                Ok((bytes, page.next))
            }) {
                Ok((bytes, next)) => {
                    state.next = next;
                    Some((Ok(bytes), Some(state)))
                }
                Err(err) => Some((Err(err), None)),
            }
        });
        use futures_util::StreamExt as _;
        Ok((format, Box::pin(first_chunk.chain(rest))))
    }
}
