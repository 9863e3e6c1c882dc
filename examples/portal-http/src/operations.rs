//! More operations of [`Api`]: switching a session's org, a workflow instance's history,
//! assignment, approval votes and vote delegation, and support's bundle and journal export. Like those in
//! [`api`](crate::api), each checks nothing the service does not: permissions, org
//! reachability and redaction are the services' own.

use portal_core::diagnostics::Scope as TriageScope;
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::{ErrorCode, PortalError};
use secrecy::ExposeSecret;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::{Api, parse_time};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::{Caller, csrf_token_for, parse_if_match, path_id};

/// The longest window one journal export covers: 31 days. The export is assembled in
/// memory, so a longer period is exported in several windows.
pub const MAX_EXPORT_WINDOW: time::Duration = time::Duration::days(31);

/// Whose support bundle: the org's, or one member's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SupportBundleQuery {
    /// Only this user's failures, memberships and sessions (`usr_…`).
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

fn user_param(param: &str, text: Option<&str>) -> Result<Option<UserId>, ApiError> {
    text.map(|t| {
        t.parse::<UserId>()
            .map_err(|e| ApiError::from(PortalError::from(e).with_param(param)))
    })
    .transpose()
}

impl Api {
    fn triage_service(&self) -> Result<&portal_core::diagnostics::TriageService, ApiError> {
        self.portal()
            .triage()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the portal has no journal"))
    }

    /// Makes `body.org_id` the active org of the caller's session. The session is rotated:
    /// the answer carries the new session's token and CSRF token (the adapter sets them as
    /// cookies, as at sign-in), and the old token stops working.
    ///
    /// # Errors
    ///
    /// `access.denied` when the caller did not authenticate with a session (an API key
    /// or a JWT has no session to switch); `validation.invalid_field` (`org_id`);
    /// `org.not_found` when the user is not a member of the org; `storage.*`.
    pub async fn switch_org(&self, caller: &Caller, body: SwitchOrgRequest) -> Result<SignInResponse, ApiError> {
        let org = path_id::<OrgId>("org_id", &body.org_id)?;
        let Some(token) = &caller.session_token else {
            return Err(ApiError::new(
                ErrorCode::AccessDenied,
                "only a session can switch orgs; an API key or an access token works in its own org",
            ));
        };
        let new = self.identity().switch_org(&caller.ctx, token, org).await?;
        Ok(SignInResponse {
            csrf_token: csrf_token_for(&new.token),
            session_token: ShownOnce(new.token.expose_secret().to_owned()),
            session: SessionView::new(&new.session, Some(new.session.id)),
        })
    }

    /// The history of a workflow instance, oldest first.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (also another org's id); `access.denied`; `storage.*`.
    pub async fn workflow_history(&self, caller: &Caller, org: OrgId, id: WorkflowId) -> Result<HistoryList, ApiError> {
        let history = self.workflows()?.history(&caller.ctx, org, id).await?;
        Ok(HistoryList {
            items: history.iter().map(HistoryEntryView::from).collect(),
        })
    }

    /// Assigns the instance to a member, or unassigns it, at the version `if_match` names
    /// (`"<version>"`), idempotent under the caller's `Idempotency-Key`. The state stays;
    /// the version goes up by one.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`If-Match`, `assignee`: malformed or not a member);
    /// `workflow.not_found`; `access.denied`; `workflow.transition_not_allowed` (the
    /// instance is in a terminal state); `workflow.version_conflict` (409, with
    /// `current_version`); `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn assign_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WorkflowId,
        if_match: Option<&str>,
        body: AssignWorkflowRequest,
    ) -> Result<WorkflowView, ApiError> {
        let expected = parse_if_match(if_match)?;
        let assignee = user_param("assignee", body.assignee.as_deref())?;
        let instance = self
            .workflows()?
            .assign(&caller.ctx, org, id, expected, assignee)
            .await?;
        self.view(caller, instance).await
    }

    /// Casts the caller's vote (or, with `on_behalf_of`, the vote of a member who
    /// delegated theirs to the caller) on a transition with an approval rule, on the
    /// instance at the version `if_match` names, idempotent under the caller's
    /// `Idempotency-Key`. The transition fires once its rule has enough approving votes;
    /// one rejecting vote fires the rule's rejection transition.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`If-Match`, `on_behalf_of`); `workflow.not_found`;
    /// `access.denied`; `workflow.unknown_transition`; `approval.not_required`;
    /// `workflow.transition_not_allowed`; `approval.delegation_expired`;
    /// `approval.self_approval`; `approval.already_voted`; `workflow.input_missing`;
    /// `workflow.guard_failed`; `workflow.version_conflict` (409, with `current_version`);
    /// `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn vote_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WorkflowId,
        if_match: Option<&str>,
        body: VoteRequestBody,
    ) -> Result<WorkflowView, ApiError> {
        let expected_version = parse_if_match(if_match)?;
        let on_behalf_of = user_param("on_behalf_of", body.on_behalf_of.as_deref())?;
        let vote = portal_core::workflow::VoteRequest {
            transition: body.transition,
            decision: body.decision.into(),
            expected_version,
            input: body.input,
            on_behalf_of,
        };
        let instance = self.workflows()?.vote(&caller.ctx, org, id, vote).await?;
        self.view(caller, instance).await
    }

    /// Delegates the caller's approval votes in `org` to another member for a window
    /// (`starts_at`, default now, until `ends_at`), replacing an earlier delegation to the
    /// same member. The delegate casts them with `on_behalf_of` on
    /// [`vote_workflow`](Self::vote_workflow).
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the caller is not a member of); `access.denied` (a
    /// caller that is not a user, such as an API key); `validation.invalid_field` (`to`
    /// not another member, times not RFC 3339, `ends_at` not after `starts_at`);
    /// `storage.*`.
    pub async fn delegate_votes(
        &self,
        caller: &Caller,
        org: OrgId,
        body: DelegationRequest,
    ) -> Result<DelegationView, ApiError> {
        let to = user_param("to", Some(&body.to))?
            .ok_or_else(|| ApiError::invalid_field("to", "`to` names the delegate"))?;
        let starts_at = match body.starts_at.as_deref() {
            Some(text) => parse_time("starts_at", text)?,
            None => caller.ctx.now(),
        };
        let ends_at = parse_time("ends_at", &body.ends_at)?;
        let delegation = self
            .workflows()?
            .delegate(&caller.ctx, org, to, starts_at, ends_at)
            .await?;
        Ok(DelegationView::from(&delegation))
    }

    /// The support bundle of the org, or of one of its users: recent failures grouped by
    /// cause, memberships and roles, sessions. The org's admins see it redacted; vendor
    /// staff need a support grant.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`user`); `storage.*`.
    pub async fn support_bundle(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &SupportBundleQuery,
    ) -> Result<SupportBundleView, ApiError> {
        let user = user_param("user", query.user.as_deref())?;
        let bundle = self
            .triage_service()?
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
        let until = match &query.until {
            Some(text) => parse_time("until", text)?,
            None => caller.ctx.now() + time::Duration::seconds(1),
        };
        let from = match &query.from {
            Some(text) => parse_time("from", text)?,
            None => until - time::Duration::hours(24),
        };
        if until - from > MAX_EXPORT_WINDOW {
            return Err(ApiError::invalid_field(
                "until",
                "an export covers at most 31 days; export a longer period in several windows",
            ));
        }
        let mut body = Vec::new();
        let events = self
            .triage_service()?
            .export_jsonl(&caller.ctx, org, from, until, &mut body)
            .await?;
        Ok(JsonLines { body, events })
    }
}
