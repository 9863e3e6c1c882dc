//! Workflow operations of [`Api`]: listing, creating, reading and transitioning
//! instances, their history, assignment, approval votes and vote delegation; and the
//! [`WorkflowQuery`] of the listing.

use portal_core::access::Domain;
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::workflow::{NewInstance, WorkflowFilter, WorkflowService};
use portal_core::{ErrorCode, PortalError};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Api, PageQuery, parse_time, user_param};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::{Caller, parse_if_match};

/// Filters and paging of the workflow listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQuery {
    /// Only instances of this definition.
    pub definition: Option<String>,
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances assigned to this user id.
    pub assignee: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

impl Api {
    pub(crate) fn workflows(&self) -> &WorkflowService {
        &self.inner.workflows
    }

    /// `result` of a workflow step (create, transition, assign, vote) in `org`, except that
    /// a validation error (`400`) is answered only to a caller who may take some step
    /// there: a caller allowed none of the permissions any definition asks for (`create`
    /// and `write` on its resource, each transition's and each approval's permission)
    /// gets `access.denied` whatever the input, as the service would answer it for valid
    /// input. A step's permission depends on the instance, the transition and, for a vote,
    /// a delegation, so the edge cannot ask for it before it parses; this check runs only
    /// on input already refused, so it never refuses a valid request.
    ///
    /// # Errors
    ///
    /// `result`'s error, or `org.not_found`, `access.denied`, `access.policy_failure`,
    /// `storage.*` for a validation error.
    pub(crate) async fn authorized_step<T>(
        &self,
        caller: &Caller,
        org: OrgId,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let err = match result {
            Err(err) if err.status() == 400 => err,
            other => return other,
        };
        let gate = self.inner.portal.gate();
        let roles = gate
            .roles_or(&caller.ctx, org, || {
                PortalError::new(ErrorCode::OrgNotFound, "organization not found")
            })
            .await?;
        let domain = Domain::Org(org);
        let mut wanted: Vec<(String, String)> = Vec::new();
        for definition in self.workflows().definitions() {
            let any = format!("{}/*", definition.resource());
            wanted.push((any.clone(), "create".to_owned()));
            wanted.push((any, "write".to_owned()));
            for transition in definition.transitions() {
                let permissions = transition
                    .permission()
                    .into_iter()
                    .chain(transition.approval().map(|rule| &rule.permission));
                wanted.extend(permissions.map(|p| (p.object.clone(), p.action.clone())));
            }
        }
        for (object, action) in &wanted {
            if gate.allows(&caller.ctx, domain, &roles, object, action)? {
                return Err(err);
            }
        }
        match wanted.first() {
            // Records the denial and answers it.
            Some((object, action)) => gate.decide(&caller.ctx, domain, &roles, object, action)?,
            None => return Err(ApiError::from(portal_core::gate::denied())),
        }
        Err(err)
    }

    /// The instance as the caller sees it: with the transitions it may fire now, decided
    /// on the instance as given (no second read).
    pub(crate) async fn view(
        &self,
        caller: &Caller,
        instance: portal_core::workflow::Instance,
    ) -> Result<WorkflowView, ApiError> {
        let mut views = self.views(caller, instance.org, vec![instance]).await?;
        views
            .pop()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no view of the instance"))
    }

    /// [`view`](Self::view) for instances of `org`, the caller's roles resolved once.
    async fn views(
        &self,
        caller: &Caller,
        org: OrgId,
        instances: Vec<portal_core::workflow::Instance>,
    ) -> Result<Vec<WorkflowView>, ApiError> {
        let available = self.workflows().available_for(&caller.ctx, org, &instances).await?;
        Ok(instances
            .into_iter()
            .zip(available)
            .map(|(instance, available)| WorkflowView::new(instance, available))
            .collect())
    }

    /// A page of the org's workflow instances the caller may read, each with the
    /// transitions the caller may fire now.
    ///
    /// # Errors
    ///
    /// `org.not_found`/`workflow.not_found` (an org the caller cannot reach);
    /// `access.denied`; `validation.invalid_field`; `storage.*`.
    pub async fn list_workflows(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &WorkflowQuery,
    ) -> Result<WorkflowList, ApiError> {
        let filter = WorkflowFilter {
            definition: query.definition.clone(),
            state: query.state.clone(),
            assignee: user_param("assignee", query.assignee.as_deref())?,
        };
        let page = super::page_request(query.limit, query.cursor.as_deref())?;
        let page = self.workflows().list(&caller.ctx, org, &filter, &page).await?;
        let items = self.views(caller, org, page.items).await?;
        Ok(WorkflowList {
            items,
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Creates a workflow instance (idempotent under the caller's `Idempotency-Key`).
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the caller cannot reach); `access.denied`;
    /// `validation.invalid_field` (`definition`, `payload`, `assignee`);
    /// `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn create_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateWorkflowRequest,
    ) -> Result<WorkflowView, ApiError> {
        let assignee = body
            .assignee
            .as_deref()
            .map(|a| {
                a.parse::<UserId>()
                    .map_err(|e| PortalError::from(e).with_param("assignee"))
            })
            .transpose()?;
        let instance = self
            .workflows()
            .create(
                &caller.ctx,
                org,
                NewInstance {
                    definition: body.definition,
                    payload: body.payload,
                    assignee,
                },
            )
            .await?;
        self.view(caller, instance).await
    }

    /// One workflow instance with the transitions the caller may fire now.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (also another org's id); `access.denied`; `storage.*`.
    pub async fn get_workflow(&self, caller: &Caller, org: OrgId, id: WorkflowId) -> Result<WorkflowView, ApiError> {
        // One operation, one event (`workflow.view`): the read and the caller's transitions.
        let (instance, available) = self.workflows().get_with_available(&caller.ctx, org, id).await?;
        Ok(WorkflowView::new(instance, available))
    }

    /// Fires `transition` on the instance at the version `if_match` names (the `If-Match`
    /// header, `"<version>"`), idempotent under the caller's `Idempotency-Key`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`If-Match`, `input`); `workflow.not_found`;
    /// `access.denied`; `workflow.unknown_transition`; `workflow.transition_not_allowed`;
    /// `workflow.guard_failed`; `workflow.input_missing`; `workflow.approval_required`;
    /// `workflow.version_conflict` (409, with `current_version`);
    /// `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn transition_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WorkflowId,
        transition: &str,
        if_match: Option<&str>,
        body: TransitionRequest,
    ) -> Result<WorkflowView, ApiError> {
        let expected = parse_if_match(if_match)?;
        let instance = self
            .workflows()
            .transition(&caller.ctx, org, id, transition, expected, body.input)
            .await?;
        self.view(caller, instance).await
    }

    /// A page of the history of a workflow instance, oldest first.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (also another org's id); `access.denied`;
    /// `validation.invalid_field` (`limit`, `cursor`); `storage.*`.
    pub async fn workflow_history(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WorkflowId,
        query: &PageQuery,
    ) -> Result<HistoryList, ApiError> {
        let history = self.workflows().history(&caller.ctx, org, id, &query.page()?).await?;
        Ok(HistoryList {
            items: history.items.iter().map(HistoryEntryView::from).collect(),
            next: history.next.map(|c| c.as_str().to_owned()),
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
            .workflows()
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
        let instance = self.workflows().vote(&caller.ctx, org, id, vote).await?;
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
            .workflows()
            .delegate(&caller.ctx, org, to, starts_at, ends_at)
            .await?;
        Ok(DelegationView::from(&delegation))
    }
}
