//! Support triage operations of [`Api`]: one request's events and explanation, an org's
//! timeline, support bundles and the JSON-lines export of the journal; and their query
//! strings.

use portal_core::ids::{OrgId, RequestId, UserId};
use portal_core::triage::{Scope as TriageScope, Timeline, TriageService};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::{Api, PageQuery, parse_time, user_param};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

/// The window and paging of an org's diagnostic timeline.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// From this time (RFC 3339, inclusive); default 24 hours before `until`.
    pub from: Option<String>,
    /// Until this time (RFC 3339, exclusive); default now.
    pub until: Option<String>,
    /// Only this user's events.
    pub user: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// The longest window one journal export covers: 31 days. The export is assembled in
/// memory, so a longer period is exported in several windows.
pub const MAX_EXPORT_WINDOW: time::Duration = time::Duration::days(31);

/// Whose support bundle: the org's, or one member's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SupportBundleQuery {
    /// Only this user's failures, memberships and sessions (`usr_…`): a member of the org;
    /// anyone else (unknown or not) is `member.not_found`.
    pub user: Option<String>,
}

/// The window of a journal export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// From this time (RFC 3339, inclusive); default 24 hours before `until`.
    pub from: Option<String>,
    /// Until this time (RFC 3339, exclusive, after `from`, at most 31 days after it);
    /// default now.
    pub until: Option<String>,
}

/// The window of a timeline or an export, `until` (exclusive) parsed first: `until`
/// defaults to a second from now, `from` to 24 hours before `until`.
fn window(
    caller: &Caller,
    from: Option<&str>,
    until: Option<&str>,
) -> Result<(OffsetDateTime, OffsetDateTime), ApiError> {
    let until = match until {
        Some(text) => parse_time("until", text)?,
        None => caller.ctx.now() + time::Duration::seconds(1),
    };
    let from = match from {
        Some(text) => parse_time("from", text)?,
        None => until - time::Duration::hours(24),
    };
    Ok((from, until))
}

impl Api {
    fn triage(&self) -> &TriageService {
        &self.inner.triage
    }

    /// A page of the events of one request in the org, as the caller may see them: a
    /// request with more events than `limit` is read page by page with `next`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`request_id`,
    /// `limit`, `cursor`); `storage.*`.
    pub async fn request_events(
        &self,
        caller: &Caller,
        org: OrgId,
        request_id: &str,
        query: &PageQuery,
    ) -> Result<EventList, ApiError> {
        let request_id = request_id.parse::<RequestId>()?;
        let events = self
            .triage()
            .by_request(&caller.ctx, TriageScope::Org(org), request_id, &query.page()?)
            .await?;
        Ok(EventList {
            items: events.items.iter().map(EventView::from).collect(),
            next: events.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Why one request of the org failed.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`request_id`);
    /// `storage.*`.
    pub async fn explain_request(
        &self,
        caller: &Caller,
        org: OrgId,
        request_id: &str,
    ) -> Result<ExplanationView, ApiError> {
        let request_id = request_id.parse::<RequestId>()?;
        let explanation = self
            .triage()
            .explain(&caller.ctx, TriageScope::Org(org), request_id)
            .await?;
        Ok(ExplanationView::from(&explanation))
    }

    /// A page of the org's events in a window.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`from`, `until`,
    /// `user`, `limit`, `cursor`); `storage.*`.
    pub async fn timeline(&self, caller: &Caller, org: OrgId, query: &TimelineQuery) -> Result<EventList, ApiError> {
        let (from, until) = window(caller, query.from.as_deref(), query.until.as_deref())?;
        let user = query.user.as_deref().map(str::parse::<UserId>).transpose()?;
        let filter = Timeline {
            user,
            from,
            until,
            kinds: Vec::new(),
        };
        let page = super::page_request(query.limit, query.cursor.as_deref())?;
        let page = self
            .triage()
            .timeline(&caller.ctx, TriageScope::Org(org), &filter, &page)
            .await?;
        Ok(EventList {
            items: page.items.iter().map(EventView::from).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// The support bundle of the org, or of one of its users: recent failures grouped by
    /// cause, memberships and roles, sessions. The org's admins see it redacted; vendor
    /// staff need a support grant.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`user`);
    /// `member.not_found` (`user` is not a member of the org); `storage.*`.
    pub async fn support_bundle(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &SupportBundleQuery,
    ) -> Result<SupportBundleView, ApiError> {
        let user = user_param("user", query.user.as_deref())?;
        let bundle = self
            .triage()
            .support_bundle(&caller.ctx, TriageScope::Org(org), user)
            .await?;
        Ok(SupportBundleView::new(org, &bundle))
    }

    /// The org's events in a window as JSON lines (one event per line, journal order),
    /// redacted for the org's admins. The window is at most [`MAX_EXPORT_WINDOW`].
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`from`, `until`: not RFC 3339, not after `from`, or
    /// more than 31 days after it); `org.not_found`; `access.denied`; `storage.*`.
    pub async fn export_events(&self, caller: &Caller, org: OrgId, query: &ExportQuery) -> Result<JsonLines, ApiError> {
        let (from, until) = window(caller, query.from.as_deref(), query.until.as_deref())?;
        if until - from > MAX_EXPORT_WINDOW {
            return Err(ApiError::invalid_field(
                "until",
                "an export covers at most 31 days; export a longer period in several windows",
            ));
        }
        let mut body = Vec::new();
        let events = self
            .triage()
            .export_jsonl(&caller.ctx, org, from, until, &mut body)
            .await?;
        Ok(JsonLines { body, events })
    }
}
