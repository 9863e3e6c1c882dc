//! Workflow definition bodies: the state machine a screen draws (states, transitions with
//! what they ask, and its Mermaid text).

use portal_core::workflow::{RequiredPermission, WorkflowDefinition};
use serde::Serialize;
use utoipa::ToSchema;

/// A permission a transition or a vote asks for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequiredPermissionView {
    /// The object pattern, such as `cases/*`.
    pub object: String,
    /// The action, such as `write`.
    pub action: String,
}

impl From<&RequiredPermission> for RequiredPermissionView {
    fn from(p: &RequiredPermission) -> Self {
        Self {
            object: p.object.clone(),
            action: p.action.clone(),
        }
    }
}

/// A state of a definition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DefinitionStateView {
    /// Its name.
    pub name: String,
    /// Whether an instance ends here.
    pub terminal: bool,
    /// How long an instance may stay here before it is overdue, in seconds.
    pub due_within_seconds: Option<i64>,
}

/// The approvals a transition needs, by vote.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalRuleView {
    /// How many approve votes complete the transition.
    pub required: u32,
    /// What a voter must hold.
    pub permission: RequiredPermissionView,
    /// The transition a reject vote fires.
    pub on_reject: String,
}

/// A transition of a definition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DefinitionTransitionView {
    /// Its name.
    pub name: String,
    /// The states it leaves.
    pub from: Vec<String>,
    /// The state it enters.
    pub to: String,
    /// The permission it asks for, if any.
    pub permission: Option<RequiredPermissionView>,
    /// The input fields it requires.
    pub inputs: Vec<String>,
    /// The names of its guards, checked in order.
    pub guards: Vec<String>,
    /// The approvals it needs, if it happens by vote.
    pub approval: Option<ApprovalRuleView>,
}

/// A workflow definition (its latest version).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowDefinitionView {
    /// Its name, such as `support_case`.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The resource its permissions are on, such as `cases`.
    pub resource: String,
    /// The state a new instance starts in.
    pub initial: String,
    /// Its states.
    pub states: Vec<DefinitionStateView>,
    /// Its transitions.
    pub transitions: Vec<DefinitionTransitionView>,
    /// The state machine as a Mermaid `stateDiagram-v2`.
    pub mermaid: String,
}

impl From<&WorkflowDefinition> for WorkflowDefinitionView {
    fn from(d: &WorkflowDefinition) -> Self {
        Self {
            name: d.name().to_owned(),
            version: d.version(),
            resource: d.resource().to_owned(),
            initial: d.initial().to_owned(),
            states: d
                .states()
                .map(|s| DefinitionStateView {
                    name: s.name().to_owned(),
                    terminal: s.is_terminal(),
                    due_within_seconds: s.due_within().map(|d| d.whole_seconds()),
                })
                .collect(),
            transitions: d
                .transitions()
                .iter()
                .map(|t| DefinitionTransitionView {
                    name: t.name().to_owned(),
                    from: t.from().map(str::to_owned).collect(),
                    to: t.to().to_owned(),
                    permission: t.permission().map(RequiredPermissionView::from),
                    inputs: t.inputs().to_vec(),
                    guards: t.guards().iter().map(|g| g.name().to_owned()).collect(),
                    approval: t.approval().map(|a| ApprovalRuleView {
                        required: a.required,
                        permission: RequiredPermissionView::from(&a.permission),
                        on_reject: a.on_reject.clone(),
                    }),
                })
                .collect(),
            mermaid: d.to_mermaid(),
        }
    }
}

/// The definitions the deployment runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDefinitionList {
    /// The definitions, by name.
    pub items: Vec<WorkflowDefinitionView>,
}
