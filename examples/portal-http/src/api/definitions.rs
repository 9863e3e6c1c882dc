//! Workflow definition operations of [`Api`]: the state machines the deployment runs, as
//! a screen draws them, read through an org so that the gate decides (`org read`).

use portal_core::ids::OrgId;

use super::Api;
use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

impl Api {
    /// The latest version of every workflow definition, by name.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the caller cannot reach); `access.denied`; `storage.*`.
    pub async fn list_workflow_definitions(
        &self,
        caller: &Caller,
        org: OrgId,
    ) -> Result<WorkflowDefinitionList, ApiError> {
        let definitions = self.workflows().definitions_in(&caller.ctx, org).await?;
        Ok(WorkflowDefinitionList {
            items: definitions.into_iter().map(WorkflowDefinitionView::from).collect(),
        })
    }

    /// The latest version of the workflow definition `name`.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the caller cannot reach, or no such definition);
    /// `access.denied`; `storage.*`.
    pub async fn get_workflow_definition(
        &self,
        caller: &Caller,
        org: OrgId,
        name: &str,
    ) -> Result<WorkflowDefinitionView, ApiError> {
        let definition = self.workflows().definition_in(&caller.ctx, org, name).await?;
        Ok(WorkflowDefinitionView::from(definition))
    }
}
